/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The scanout hub without sockets: hot-plugged outputs (ENABLE_SCANOUT /
 * DISABLE_SCANOUT, who may do what) and a subscriber's CONFIG_REQ bitrate,
 * one behaviour per test. Real streams and connections; the display device
 * behind hfe_hub_outputs is a recording table (the real ones, QEMU's
 * dpy_set_ui_info and D-Bus SetUIInfo, are exercised by the e2e tests).
 */
#include <stdio.h>
#include <string.h>

#include "hfe/conn.h"
#include "hfe/scanout.h"
#include "hfe/stream.h"
#include "unit_check.h"

#define N_OUTPUTS 4

/* ---- a display device that records what the hub asked of it ---- */

struct call {
	bool enable;
	uint32_t id, w, h, refresh;
};

static struct device {
	struct call calls[32];
	unsigned n;
	bool fail; /* the next call fails, as a device refusing would */
} dev;

static int dev_enable(void *opaque, uint32_t id, uint32_t w, uint32_t h, uint32_t refresh,
		      struct hfe_err *err)
{
	(void)opaque;
	if (dev.fail) {
		hfe_err_set(err, HFE_ERR_INTERNAL, "device refused");
		return -1;
	}
	dev.calls[dev.n++ % 32] = (struct call){ true, id, w, h, refresh };
	return 0;
}

static int dev_disable(void *opaque, uint32_t id, struct hfe_err *err)
{
	(void)opaque;
	if (dev.fail) {
		hfe_err_set(err, HFE_ERR_INTERNAL, "device refused");
		return -1;
	}
	dev.calls[dev.n++ % 32] = (struct call){ false, id, 0, 0, 0 };
	return 0;
}

/* ---- fixture: a hub with N_OUTPUTS scanouts, each a real stream ---- */

static struct hfe_hub *hub;
static struct hfe_stream *streams[N_OUTPUTS];
static struct hfe_limits lim;

static void setup(bool with_outputs)
{
	memset(&dev, 0, sizeof(dev));
	hfe_limits_default(&lim);
	hub = hfe_hub_new(1u << 20);
	for (unsigned i = 0; i < N_OUTPUTS; i++) {
		struct hfe_stream_params sp = { .max_fps = 60 };
		hfe_encoder_params_default(&sp.enc);
		sp.enc.bitrate = 2000000;
		struct hfe_err err;
		streams[i] = hfe_stream_new(&sp, &err);
		char name[16];
		snprintf(name, sizeof(name), "Virtual-%u", i + 1);
		hfe_hub_add_scanout(hub, i, streams[i], name);
	}
	if (with_outputs) {
		struct hfe_hub_outputs o = { .max_outputs = N_OUTPUTS,
					     .max_width = 4096,
					     .max_height = 2160,
					     .enable = dev_enable,
					     .disable = dev_disable };
		hfe_hub_set_outputs(hub, &o);
	}
}

static void teardown(void)
{
	hfe_hub_free(hub);
	for (unsigned i = 0; i < N_OUTPUTS; i++)
		hfe_stream_free(streams[i]);
}

static struct hfe_conn *peer(unsigned version)
{
	struct hfe_conn *c = hfe_conn_new(HFE_ROLE_HOST, &lim);
	hfe_conn_set_version(c, version);
	return c;
}

static void drop(struct hfe_conn *c)
{
	hfe_hub_drop_conn(hub, c);
	hfe_conn_free(c);
}

/* Everything queued for c, parsed as a client would: returns how many
 * messages, the first `max` of them in out. */
static unsigned replies(struct hfe_conn *c, struct hfe_msg *out, unsigned max)
{
	struct hfe_conn *cl = hfe_conn_new(HFE_ROLE_CLIENT, &lim);
	hfe_conn_set_version(cl, hfe_conn_version(c));
	unsigned count = 0;
	struct iovec iov[8];
	int n;
	while ((n = hfe_conn_tx_iov(c, iov, 8)) > 0) {
		size_t total = 0;
		for (int i = 0; i < n; i++) {
			const uint8_t *p = iov[i].iov_base;
			size_t left = iov[i].iov_len;
			total += left;
			while (left) { /* feed takes up to one message at a time */
				size_t took = hfe_conn_feed(cl, p, left);
				p += took;
				left -= took;
				struct hfe_msg m;
				while (hfe_conn_next(cl, &m) == 1) {
					if (count < max)
						out[count] = m;
					count++;
				}
				if (!took && left)
					break;
			}
		}
		hfe_conn_tx_consume(c, total);
	}
	CHECKC(!hfe_conn_failed(cl) && !hfe_conn_rx_partial(cl), "replies parse");
	hfe_conn_free(cl);
	return count;
}

static void send_enable(struct hfe_conn *c, uint32_t id, uint32_t w, uint32_t h, uint32_t hz)
{
	struct hfe_msg m = { .hdr = { .type = HFE_MSG_ENABLE_SCANOUT, .session_id = (uint16_t)id } };
	m.u.enable_scanout = (struct hfe_enable_scanout){ id, w, h, hz };
	CHECK(hfe_hub_handle(hub, c, &m) == 1);
}

static void send_id(struct hfe_conn *c, enum hfe_msg_type type, uint32_t id)
{
	struct hfe_msg m = { .hdr = { .type = type, .session_id = (uint16_t)id } };
	m.u.scanout_id = id;
	CHECK(hfe_hub_handle(hub, c, &m) == 1);
}

/* The one SCANOUT_RESP a v1 peer gets: its success. */
static int v1_scanout_resp(struct hfe_conn *c, uint32_t id)
{
	struct hfe_msg r[4];
	unsigned n = replies(c, r, 4);
	if (!CHECKC(n == 1 && r[0].hdr.type == HFE_MSG_SCANOUT_RESP, "exactly one SCANOUT_RESP"))
		return -1;
	CHECK(r[0].u.scanout_resp.scanout_id == id);
	return (int)r[0].u.scanout_resp.success;
}

/* ---- tests ---- */

static void test_enable_plugs_output_and_names_connector(void)
{
	setup(true);
	struct hfe_conn *c = peer(HFE_PROTO_V1);
	send_enable(c, 2, 1280, 720, 60);
	struct hfe_msg r[2];
	CHECK(replies(c, r, 2) == 1);
	CHECK(r[0].hdr.type == HFE_MSG_SCANOUT_RESP && r[0].u.scanout_resp.success == 1);
	CHECK(strcmp(r[0].u.scanout_resp.connector, "Virtual-3") == 0);
	CHECK(dev.n == 1 && dev.calls[0].enable && dev.calls[0].id == 2 &&
	      dev.calls[0].w == 1280 && dev.calls[0].h == 720 && dev.calls[0].refresh == 60);
	drop(c);
	teardown();
}

static void test_enable_again_changes_mode(void)
{
	setup(true);
	struct hfe_conn *c = peer(HFE_PROTO_V1);
	send_enable(c, 1, 1280, 720, 60);
	send_enable(c, 1, 1920, 1080, 0);
	struct hfe_msg r[3];
	CHECK(replies(c, r, 3) == 2);
	CHECK(r[0].u.scanout_resp.success == 1 && r[1].u.scanout_resp.success == 1);
	CHECK(dev.n == 2 && dev.calls[1].w == 1920 && dev.calls[1].h == 1080);
	CHECK(dev.calls[1].refresh == 60); /* 0 = the usual 60 Hz */
	drop(c);
	teardown();
}

static void test_enable_unknown_output_refused(void)
{
	setup(true);
	struct hfe_conn *c = peer(HFE_PROTO_V1);
	send_enable(c, 9, 1280, 720, 60);
	CHECK(v1_scanout_resp(c, 9) == 0);
	CHECK(dev.n == 0);
	drop(c);
	teardown();
}

static void test_enable_bad_mode_refused(void)
{
	static const struct {
		uint32_t w, h, hz;
	} bad[] = { { 8, 720, 60 }, { 1280, 0, 60 }, { 5000, 720, 60 }, { 1280, 3000, 60 },
		    { 1280, 720, 241 }, { 1280, 720, 1000 },
		    /* no valid preferred mode in QEMU's EDID (scanout.c) */
		    { 63, 720, 60 }, { 1280, 199, 60 }, { 664, 120, 60 } };
	setup(true);
	struct hfe_conn *c = peer(HFE_PROTO_V1);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		send_enable(c, 1, bad[i].w, bad[i].h, bad[i].hz);
		char ctx[64];
		snprintf(ctx, sizeof(ctx), "%ux%u@%u", bad[i].w, bad[i].h, bad[i].hz);
		CHECKC(v1_scanout_resp(c, 1) == 0, ctx);
	}
	CHECK(dev.n == 0);
	send_enable(c, 1, 4096, 2160, 240); /* the limits themselves are fine */
	CHECK(v1_scanout_resp(c, 1) == 1);
	send_enable(c, 1, 64, 200, 60);
	CHECK(v1_scanout_resp(c, 1) == 1);
	drop(c);
	teardown();
}

static void test_refusal_tells_v2_peers_why(void)
{
	setup(true);
	struct hfe_conn *c = peer(HFE_PROTO_V2);
	send_enable(c, 1, 1280, 720, 500);
	struct hfe_msg r[3];
	CHECK(replies(c, r, 3) == 2);
	CHECK(r[0].hdr.type == HFE_MSG_ERROR && strstr(r[0].u.error.message, "refresh"));
	CHECK(r[1].hdr.type == HFE_MSG_SCANOUT_RESP && r[1].u.scanout_resp.success == 0);
	CHECK(!hfe_conn_failed(c)); /* a refusal, not a protocol error */
	drop(c);
	teardown();
}

static void test_device_failure_refused(void)
{
	setup(true);
	struct hfe_conn *c = peer(HFE_PROTO_V1);
	dev.fail = true;
	send_enable(c, 1, 1280, 720, 60);
	CHECK(v1_scanout_resp(c, 1) == 0);
	dev.fail = false;
	send_id(c, HFE_MSG_DISABLE_SCANOUT, 1); /* never plugged: nothing to undo */
	CHECK(v1_scanout_resp(c, 1) == 1);
	CHECK(dev.n == 0);
	drop(c);
	teardown();
}

static void test_output_controlled_by_another_peer_refused(void)
{
	setup(true);
	struct hfe_conn *a = peer(HFE_PROTO_V1), *b = peer(HFE_PROTO_V1);
	send_enable(a, 1, 1280, 720, 60);
	CHECK(v1_scanout_resp(a, 1) == 1);
	send_enable(b, 1, 800, 600, 60);
	CHECK(v1_scanout_resp(b, 1) == 0);
	CHECK(dev.n == 1);
	send_enable(b, 2, 800, 600, 60); /* another output is free */
	CHECK(v1_scanout_resp(b, 2) == 1);
	drop(a);
	send_enable(b, 1, 800, 600, 60); /* its controller has gone */
	CHECK(v1_scanout_resp(b, 1) == 1);
	CHECK(dev.n == 3 && dev.calls[2].id == 1 && dev.calls[2].w == 800);
	drop(b);
	teardown();
}

static void test_disable_by_controller_unplugs_and_unsubscribes(void)
{
	setup(true);
	struct hfe_conn *a = peer(HFE_PROTO_V1);
	send_enable(a, 3, 1024, 768, 60);
	send_id(a, HFE_MSG_SUBSCRIBE, 3);
	CHECK(hfe_hub_subscribers(hub, 3) == 1);
	replies(a, NULL, 0);
	send_id(a, HFE_MSG_DISABLE_SCANOUT, 3);
	CHECK(v1_scanout_resp(a, 3) == 1);
	CHECK(hfe_hub_subscribers(hub, 3) == 0);
	CHECK(dev.n == 2 && !dev.calls[1].enable && dev.calls[1].id == 3);
	drop(a);
	teardown();
}

static void test_disable_by_other_peer_only_unsubscribes(void)
{
	setup(true);
	struct hfe_conn *a = peer(HFE_PROTO_V1), *b = peer(HFE_PROTO_V1);
	send_enable(a, 1, 1280, 720, 60);
	send_id(b, HFE_MSG_SUBSCRIBE, 1);
	replies(b, NULL, 0);
	send_id(b, HFE_MSG_DISABLE_SCANOUT, 1);
	CHECK(v1_scanout_resp(b, 1) == 1);
	CHECK(hfe_hub_subscribers(hub, 1) == 0);
	CHECK(dev.n == 1); /* still plugged */
	drop(a);
	drop(b);
	teardown();
}

static void test_orphaned_output_can_be_unplugged(void)
{
	setup(true);
	struct hfe_conn *a = peer(HFE_PROTO_V1), *b = peer(HFE_PROTO_V1);
	send_enable(a, 2, 1280, 720, 60);
	drop(a); /* a manager that restarted: its outputs stay plugged */
	CHECK(dev.n == 1);
	send_id(b, HFE_MSG_DISABLE_SCANOUT, 2);
	CHECK(v1_scanout_resp(b, 2) == 1);
	CHECK(dev.n == 2 && !dev.calls[1].enable && dev.calls[1].id == 2);
	drop(b);
	teardown();
}

static void test_boot_output_never_unplugged_by_a_peer(void)
{
	setup(true);
	struct hfe_conn *b = peer(HFE_PROTO_V1);
	send_id(b, HFE_MSG_DISABLE_SCANOUT, 0);
	CHECK(v1_scanout_resp(b, 0) == 1);
	CHECK(dev.n == 0);
	drop(b);
	teardown();
}

static void test_fixed_scanouts_enable_changes_nothing(void)
{
	setup(false);
	struct hfe_conn *c = peer(HFE_PROTO_V1);
	send_enable(c, 1, 1280, 720, 60);
	CHECK(v1_scanout_resp(c, 1) == 1);
	send_enable(c, 7, 1280, 720, 60);
	CHECK(v1_scanout_resp(c, 7) == 0);
	send_enable(c, 1, 8, 8, 60); /* judged all the same */
	CHECK(v1_scanout_resp(c, 1) == 0);
	drop(c);
	teardown();
}

static struct hfe_msg config_req(uint16_t session, uint32_t bitrate)
{
	struct hfe_msg m = { .hdr = { .type = HFE_MSG_CONFIG_REQ, .session_id = session } };
	m.u.config_req = (struct hfe_config_req){ .bitrate = bitrate, .fps_num = 60, .fps_den = 1,
						  .profile = 66, .level = 40, .realtime = 1 };
	return m;
}

static uint32_t stream_bitrate(unsigned id)
{
	struct hfe_config_resp c;
	hfe_stream_get_config(streams[id], &c);
	return c.bitrate;
}

static void test_subscriber_bitrate_applies_to_its_stream(void)
{
	setup(true);
	struct hfe_conn *a = peer(HFE_PROTO_V1);
	send_id(a, HFE_MSG_SUBSCRIBE, 2);
	replies(a, NULL, 0);
	struct hfe_msg m = config_req(2, 6000000);
	CHECK(hfe_hub_config(hub, a, &m) == 1);
	CHECK(stream_bitrate(2) == 6000000);
	CHECK(stream_bitrate(1) == 2000000); /* other outputs untouched */
	CHECK(replies(a, NULL, 0) == 0);     /* v1: no reply, as deployed bridges expect */
	drop(a);
	teardown();
}

static void test_highest_subscriber_bitrate_wins(void)
{
	setup(true);
	struct hfe_conn *a = peer(HFE_PROTO_V1), *b = peer(HFE_PROTO_V1);
	send_id(a, HFE_MSG_SUBSCRIBE, 1);
	send_id(b, HFE_MSG_SUBSCRIBE, 1);
	struct hfe_msg ma = config_req(1, 3000000), mb = config_req(1, 8000000);
	hfe_hub_config(hub, a, &ma);
	hfe_hub_config(hub, b, &mb);
	CHECK(stream_bitrate(1) == 8000000);
	drop(b); /* the one who asked for more leaves */
	CHECK(stream_bitrate(1) == 3000000);
	drop(a); /* nobody asks: the host's default again */
	CHECK(stream_bitrate(1) == 2000000);
	teardown();
}

static void test_config_from_non_subscriber_not_taken(void)
{
	setup(true);
	struct hfe_conn *a = peer(HFE_PROTO_V1);
	struct hfe_msg m = config_req(1, 6000000); /* a pull client's CONFIG_REQ */
	CHECK(hfe_hub_config(hub, a, &m) == 0);
	CHECK(stream_bitrate(1) == 2000000);
	drop(a);
	teardown();
}

static void test_config_v2_gets_config_resp(void)
{
	setup(true);
	struct hfe_conn *a = peer(HFE_PROTO_V2);
	send_id(a, HFE_MSG_SUBSCRIBE, 0);
	replies(a, NULL, 0);
	struct hfe_msg m = config_req(0, 5000000);
	CHECK(hfe_hub_config(hub, a, &m) == 1);
	struct hfe_msg r[2];
	CHECK(replies(a, r, 2) == 1);
	CHECK(r[0].hdr.type == HFE_MSG_CONFIG_RESP && r[0].u.config_resp.bitrate == 5000000);
	drop(a);
	teardown();
}

int main(int argc, char **argv)
{
	static const struct unit_test tests[] = {
#define T(name) { #name, test_##name }
		T(enable_plugs_output_and_names_connector),
		T(enable_again_changes_mode),
		T(enable_unknown_output_refused),
		T(enable_bad_mode_refused),
		T(refusal_tells_v2_peers_why),
		T(device_failure_refused),
		T(output_controlled_by_another_peer_refused),
		T(disable_by_controller_unplugs_and_unsubscribes),
		T(disable_by_other_peer_only_unsubscribes),
		T(orphaned_output_can_be_unplugged),
		T(boot_output_never_unplugged_by_a_peer),
		T(fixed_scanouts_enable_changes_nothing),
		T(subscriber_bitrate_applies_to_its_stream),
		T(highest_subscriber_bitrate_wins),
		T(config_from_non_subscriber_not_taken),
		T(config_v2_gets_config_resp),
#undef T
	};
	return unit_run("test_hub", tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
