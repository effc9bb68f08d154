/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * lib/src/host.c, what a peer is answered: HELLO and version negotiation,
 * v1 peers, PING, STATS, pull frames (in order, KEYFRAME_REQ, resource
 * frames with and without a resolver) and the busy refusal. No sockets: the
 * host harness (host_harness.h) scripts the bytes; the session encodes for
 * real on its worker thread. One behaviour per test; run one by naming it
 * (`test_host_proto NAME`, `--list`).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_harness.h"
#include "unit_check.h"

/* ---- HELLO ---- */

static void hello_v2_negotiated(void)
{
	struct hfe_host_config cfg;
	struct hh h;

	hh_config(&cfg);
	cfg.max_inflight = 3;
	hh_start(&h, &cfg);
	struct hfe_msg m = hh_mk_hello(1, 2);
	m.hdr.session_id = 7;
	CHECK(hh_push_msg(&h, &m, NULL, 0) == hh_msg_size(&m, 0));
	hh_step(&h);
	if (CHECK(h.n_got == 1 && h.got[0].hdr.type == HFE_MSG_HELLO_RESP)) {
		const struct hfe_hello_resp *r = &h.got[0].u.hello_resp;
		CHECK(h.got[0].hdr.session_id == 7);
		CHECK(r->version == HFE_PROTO_V2);
		CHECK(r->max_inflight == 3);
		CHECK(r->max_width == 640 && r->max_height == 480);
		CHECK((r->sources & HFE_SOURCE_PIXELS) && !(r->sources & HFE_SOURCE_RESOURCE));
		CHECK(r->format_count == 6);
	}
	CHECK(hfe_peer_wants_read(h.peer));
	hh_stop(&h);
}

/* A client that speaks only v1 but says HELLO gets v1. */
static void hello_v1_only_client_gets_v1(void)
{
	struct hh h;

	hh_start_default(&h);
	struct hfe_msg m = hh_mk_hello(1, 1);
	hh_push_msg(&h, &m, NULL, 0);
	hh_step(&h);
	CHECK(h.n_got == 1 && h.got[0].hdr.type == HFE_MSG_HELLO_RESP &&
	      h.got[0].u.hello_resp.version == HFE_PROTO_V1);
	hh_stop(&h);
}

/* No common version: ERROR VERSION, then the half-close of a failed peer. */
static void hello_without_common_version_errors(void)
{
	struct hh h;

	hh_start_default(&h);
	struct hfe_msg m = hh_mk_hello(3, 4);
	hh_push_msg(&h, &m, NULL, 0);
	CHECK(!hfe_peer_wants_read(h.peer));
	hh_step(&h);
	CHECK(h.n_got == 1 && h.got[0].hdr.type == HFE_MSG_ERROR &&
	      h.got[0].u.error.code == HFE_ERR_VERSION);
	CHECK(h.shutdown_wr == 1);
	CHECK(h.peer && hfe_peer_discarding(h.peer));
	hh_stop(&h);
}

/* ---- v1 peers and small requests ---- */

/* A v1 peer never says HELLO; PING works and echoes the session id. */
static void v1_ping_gets_pong(void)
{
	struct hh h;

	hh_start_default(&h);
	struct hfe_msg m = hh_mk(HFE_MSG_PING, 9);
	hh_push_msg(&h, &m, NULL, 0);
	hh_step(&h);
	CHECK(h.n_got == 1 && h.got[0].hdr.type == HFE_MSG_PONG && h.got[0].hdr.session_id == 9);
	CHECK(hfe_peer_wants_read(h.peer));
	hh_stop(&h);
}

/* CONFIG_REQ then a frame; returns the index of the FRAME_RESPONSE or -1. */
static int config_then_frame(struct hh *h)
{
	struct hfe_msg c = hh_mk(HFE_MSG_CONFIG_REQ, 2);
	c.u.config_req = (struct hfe_config_req){ .bitrate = 400000, .fps_num = 30, .fps_den = 1 };
	hh_push_msg(h, &c, NULL, 0);
	hh_push_frame(h, 2, 1);
	unsigned base = h->n_got;
	if (!CHECK(hh_wait_msgs(h, base + 1)))
		return -1;
	/* the frame's reply closes the ordered sequence: wait for it */
	while (hh_find(h, HFE_MSG_FRAME_RESPONSE, base) < 0 && hh_wait_msgs(h, h->n_got + 1))
		;
	return hh_find(h, HFE_MSG_FRAME_RESPONSE, base);
}

/* v1 has no CONFIG_RESP: the session applies CONFIG_REQ silently. */
static void v1_config_req_has_no_reply(void)
{
	struct hh h;

	hh_start_default(&h);
	int f = config_then_frame(&h);
	CHECK(f == 0);
	CHECK(hh_find(&h, HFE_MSG_CONFIG_RESP, 0) < 0);
	hh_stop(&h);
}

/* v2 answers CONFIG_REQ, in order before the frame sent after it. */
static void v2_config_req_gets_config_resp(void)
{
	struct hh h;

	hh_start_default(&h);
	struct hfe_msg m = hh_mk_hello(1, 2);
	hh_push_msg(&h, &m, NULL, 0);
	int f = config_then_frame(&h);
	int c = hh_find(&h, HFE_MSG_CONFIG_RESP, 0);
	CHECK(c == 1 && f == 2);
	if (c >= 0)
		CHECK(h.got[c].hdr.session_id == 2 && h.got[c].u.config_resp.bitrate == 400000);
	hh_stop(&h);
}

/* STATS_RESP counts the bytes exchanged so far. */
static void stats_count_bytes(void)
{
	struct hh h;
	size_t in = 0;

	hh_start_default(&h);
	struct hfe_msg m = hh_mk_hello(1, 2);
	in += hh_push_msg(&h, &m, NULL, 0);
	m = hh_mk(HFE_MSG_PING, 1);
	in += hh_push_msg(&h, &m, NULL, 0);
	hh_step(&h);
	uint64_t out = h.tx_total;
	m = hh_mk(HFE_MSG_STATS_REQ, 3);
	in += hh_push_msg(&h, &m, NULL, 0);
	hh_step(&h);
	CHECK(out > 0);
	if (CHECK(h.n_got == 3 && h.got[2].hdr.type == HFE_MSG_STATS_RESP)) {
		CHECK(h.got[2].hdr.session_id == 3);
		CHECK(h.got[2].u.stats.bytes_received == in);
		CHECK(h.got[2].u.stats.bytes_sent == out);
	}
	hh_stop(&h);
}

/* ---- pull frames ---- */

/* Frames are answered in order, on their session id, the first an IDR. */
static void frames_answered_in_order(void)
{
	struct hh h;

	hh_start_default(&h);
	struct hfe_msg f = hh_mk_frame(4, 0);
	for (int i = 1; i <= 3; i++)
		CHECK(hh_push_frame(&h, 4, i * 1000) == hh_msg_size(&f, HH_FRAME_BYTES));
	CHECK(hh_wait_msgs(&h, 3));
	for (unsigned i = 0; i < h.n_got && i < 3; i++) {
		CHECK(h.got[i].hdr.type == HFE_MSG_FRAME_RESPONSE);
		CHECK(h.got[i].hdr.session_id == 4);
		CHECK(h.got[i].u.frame_resp.pts == (int64_t)(i + 1) * 1000);
		CHECK(h.got[i].data_len > 0);
	}
	CHECK(h.n_got == 3 && h.got[0].u.frame_resp.is_keyframe);
	hh_stop(&h);
}

/* KEYFRAME_REQ makes the next pull frame an IDR. */
static void keyframe_req_forces_pull_idr(void)
{
	struct hh h;

	hh_start_default(&h);
	hh_push_frame(&h, 1, 1);
	hh_push_frame(&h, 1, 2);
	CHECK(hh_wait_msgs(&h, 2));
	struct hfe_msg k = hh_mk(HFE_MSG_KEYFRAME_REQ, 1);
	hh_push_msg(&h, &k, NULL, 0);
	hh_push_frame(&h, 1, 3);
	CHECK(hh_wait_msgs(&h, 3));
	CHECK(h.n_got == 3);
	CHECK(h.got[0].u.frame_resp.is_keyframe);
	CHECK(!h.got[1].u.frame_resp.is_keyframe); /* gop is 120: no IDR by itself */
	CHECK(h.got[2].u.frame_resp.is_keyframe);
	hh_stop(&h);
}

static size_t push_resource_frame(struct hh *h, uint16_t sid, int64_t pts, uint32_t res)
{
	struct hfe_msg m = hh_mk_frame(sid, pts);
	m.hdr.flags = 0;
	m.u.frame_req.resource_id = res;
	return hh_push_msg(h, &m, NULL, 0);
}

/* Without a resolver a resource frame gets RESOURCE_NOT_FOUND in its place
 * among the frame replies, and the connection goes on. */
static void resource_frame_without_resolver_errors_in_order(void)
{
	struct hh h;

	hh_start_default(&h);
	hh_push_frame(&h, 5, 1);
	push_resource_frame(&h, 5, 2, 77);
	hh_push_frame(&h, 5, 3);
	CHECK(hh_wait_msgs(&h, 3));
	CHECK(h.n_got == 3);
	CHECK(h.got[0].hdr.type == HFE_MSG_FRAME_RESPONSE && h.got[0].u.frame_resp.pts == 1);
	CHECK(h.got[1].hdr.type == HFE_MSG_ERROR && h.got[1].hdr.session_id == 5 &&
	      h.got[1].u.error.code == HFE_ERR_RESOURCE_NOT_FOUND);
	CHECK(h.got[2].hdr.type == HFE_MSG_FRAME_RESPONSE && h.got[2].u.frame_resp.pts == 3);
	CHECK(h.peer && hfe_peer_wants_read(h.peer) && h.shutdown_wr == 0);
	hh_stop(&h);
}

static uint8_t resource_pixels[32 * 32 * 4];
static atomic_int resource_released;

static void resource_release(void *opaque)
{
	(void)opaque;
	atomic_fetch_add(&resource_released, 1);
}

static int resolve(void *opaque, const struct hfe_frame_request *fr,
		   struct hfe_resource_frame *out, struct hfe_err *err)
{
	(void)opaque;
	if (fr->resource_id != 42) {
		hfe_err_set(err, HFE_ERR_RESOURCE_NOT_FOUND, "no resource %u", fr->resource_id);
		return -1;
	}
	*out = (struct hfe_resource_frame){ resource_pixels, HFE_FMT_XRGB8888, 32, 32, 32 * 4,
					    resource_release, NULL };
	return 0;
}

/* With a resolver: HELLO offers resources, the resolved pixels are encoded
 * and lent back, and an unknown id gets the resolver's error. */
static void resource_frame_resolved_and_released(void)
{
	struct hfe_host_config cfg;
	struct hh h;

	hh_config(&cfg);
	cfg.resolve_resource = resolve;
	atomic_store(&resource_released, 0);
	memset(resource_pixels, 0x80, sizeof(resource_pixels));
	hh_start(&h, &cfg);
	struct hfe_msg m = hh_mk_hello(1, 2);
	hh_push_msg(&h, &m, NULL, 0);
	push_resource_frame(&h, 6, 10, 42);
	push_resource_frame(&h, 6, 11, 43);
	CHECK(hh_wait_msgs(&h, 3));
	CHECK(h.n_got == 3 && (h.got[0].u.hello_resp.sources & HFE_SOURCE_RESOURCE));
	CHECK(h.got[1].hdr.type == HFE_MSG_FRAME_RESPONSE && h.got[1].u.frame_resp.pts == 10);
	CHECK(h.got[2].hdr.type == HFE_MSG_ERROR &&
	      h.got[2].u.error.code == HFE_ERR_RESOURCE_NOT_FOUND);
	hh_stop(&h); /* waits for the detached session: every release has run */
	CHECK(atomic_load(&resource_released) == 1);
}

/* ---- refusal ---- */

/* Too many clients: ERROR BUSY naming the limit, then a half-close. */
static void busy_refusal_errors_then_half_closes(void)
{
	struct hh h;

	hh_start_default(&h);
	hfe_peer_refuse_busy(h.peer, 3);
	CHECK(!hfe_peer_wants_read(h.peer));
	hh_drain(&h, SIZE_MAX);
	if (CHECK(h.n_got == 1 && h.got[0].hdr.type == HFE_MSG_ERROR)) {
		CHECK(h.got[0].u.error.code == HFE_ERR_BUSY);
		CHECK(strstr(h.got[0].u.error.message, "(3)") != NULL);
	}
	CHECK(hh_service(&h) == HFE_PEER_SHUTDOWN_WR);
	hh_stop(&h);
}

int main(int argc, char **argv)
{
	static const struct unit_test tests[] = {
		{ "hello_v2_negotiated", hello_v2_negotiated },
		{ "hello_v1_only_client_gets_v1", hello_v1_only_client_gets_v1 },
		{ "hello_without_common_version_errors", hello_without_common_version_errors },
		{ "v1_ping_gets_pong", v1_ping_gets_pong },
		{ "v1_config_req_has_no_reply", v1_config_req_has_no_reply },
		{ "v2_config_req_gets_config_resp", v2_config_req_gets_config_resp },
		{ "stats_count_bytes", stats_count_bytes },
		{ "frames_answered_in_order", frames_answered_in_order },
		{ "keyframe_req_forces_pull_idr", keyframe_req_forces_pull_idr },
		{ "resource_frame_without_resolver_errors_in_order",
		  resource_frame_without_resolver_errors_in_order },
		{ "resource_frame_resolved_and_released", resource_frame_resolved_and_released },
		{ "busy_refusal_errors_then_half_closes", busy_refusal_errors_then_half_closes },
	};
	return unit_run("test_host_proto", tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
