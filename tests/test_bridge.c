/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The deployed desktop bridge's exact byte sequence against the real daemon
 * (its built-in test scanouts), as a raw client written from the spec:
 *   SUBSCRIBE with the scanout id in the body and in session_id; read
 *   SUBSCRIBE_RESP within 5 s; CONFIG_REQ (session_id = scanout, width and
 *   height 0, bitrate = kbit/s x 1000, 60/1 fps, profile 66, level 40,
 *   realtime 1) with no reply expected; then FRAME_RESPONSEs only.
 * That client treats any other message type as a fatal read error, so
 * everything it receives after SUBSCRIBE_RESP must be a FRAME_RESPONSE for
 * its scanout with nal_count 1 and one whole Annex-B access unit, the first
 * an IDR, all decodable (errors fatal). Over TCP (as deployed) and unix,
 * and with two bridges on two scanouts at once (each gets only its own).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hfe/wire.h"
#include "raw_peer.h"
#include "test_util.h"

#define IO_MS 5000
#define FRAMES 40

static struct daemon d;

static int send_body(struct tconn *c, uint8_t type, uint16_t sid, const uint8_t *body,
		     uint32_t len)
{
	uint8_t b[HFE_HEADER_SIZE + 64];

	REQUIRE(len <= 64);
	put_hdr(b, HFE_MAGIC, type, 0, sid, len);
	memcpy(b + HFE_HEADER_SIZE, body, len);
	return io_send(c, b, HFE_HEADER_SIZE + len, IO_MS);
}

/* SUBSCRIBE + SUBSCRIBE_RESP + CONFIG_REQ, as the bridge does them. */
static bool bridge_start(struct tconn *c, uint32_t scanout, uint32_t kbps)
{
	uint8_t body[HFE_CONFIG_REQ_SIZE];
	struct rmsg m;

	put32(body, scanout);
	REQUIRE(send_body(c, HFE_MSG_SUBSCRIBE, (uint16_t)scanout, body, 4) == 0);
	bool ok = recv_msg(c, &m, IO_MS) == 1;
	CHECKF(ok, "scanout %u: no SUBSCRIBE_RESP within 5 s", scanout);
	if (!ok)
		return false;
	ok = m.type == HFE_MSG_SUBSCRIBE_RESP && m.size == HFE_SUBSCRIBE_RESP_SIZE &&
	     get32(m.p) == scanout && get32(m.p + 4) == 1;
	CHECKF(ok, "scanout %u: got type 0x%02x size %u instead of SUBSCRIBE_RESP success",
	       scanout, m.type, m.size);
	rmsg_free(&m);
	struct config_fields cf = { .w = 0, .h = 0, .bitrate = kbps * 1000, .fps_num = 60,
				    .fps_den = 1, .profile = 66, .level = 40, .realtime = 1 };
	put_config_req(body, &cf);
	REQUIRE(send_body(c, HFE_MSG_CONFIG_REQ, (uint16_t)scanout, body, sizeof(body)) == 0);
	return ok;
}

struct bridge_result {
	int frames, decoded, keyframes;
	uint32_t w, h;
};

/* Read FRAMES messages as the bridge does: anything but a FRAME_RESPONSE of
 * this scanout is a failure. */
static void bridge_read(struct tconn *c, uint32_t scanout, struct bridge_result *r)
{
	struct tu_decoder *dec = tu_decoder_new();

	REQUIRE(dec);
	memset(r, 0, sizeof(*r));
	for (int i = 0; i < FRAMES; i++) {
		struct rmsg m;
		struct frame_resp fr;
		struct tu_yuv pic;

		bool ok = recv_msg(c, &m, IO_MS) == 1;
		CHECKF(ok, "scanout %u: message %d did not come", scanout, i);
		if (!ok)
			break;
		ok = m.type == HFE_MSG_FRAME_RESPONSE && m.sid == scanout &&
		     m.size >= HFE_FRAME_RESPONSE_SIZE + 4;
		CHECKF(ok,
		       "scanout %u: message %d is type 0x%02x session %u size %u (the bridge "
		       "would drop the stream)",
		       scanout, i, m.type, m.sid, m.size);
		if (ok) {
			get_frame_resp(&m, &fr);
			ok = fr.nal_count == 1 && fr.au_len == m.size - HFE_FRAME_RESPONSE_SIZE - 4;
			CHECKF(ok, "scanout %u: nal_count %u, unit %u bytes of %u", scanout,
			       fr.nal_count, fr.au_len, m.size);
		}
		if (ok && i == 0)
			CHECKF(fr.is_keyframe, "scanout %u: the first frame is not an IDR", scanout);
		if (ok) {
			r->frames++;
			r->keyframes += fr.is_keyframe;
			int got = tu_decoder_decode(dec, fr.au, fr.au_len, &pic, NULL);
			CHECKF(got >= 0, "scanout %u: frame %d does not decode", scanout, i);
			if (got == 1) {
				r->decoded++;
				r->w = pic.w;
				r->h = pic.h;
				tu_yuv_free(&pic);
			}
		}
		rmsg_free(&m);
		if (!ok)
			break;
	}
	tu_decoder_free(dec);
}

static void test_one(bool tcp)
{
	section(tcp ? "deployed bridge sequence over TCP" : "deployed bridge sequence over unix");
	struct tconn c = { .fd = tcp ? connect_tcp(d.port) : connect_unix(d.sock) };
	struct bridge_result r;

	REQUIRE(c.fd >= 0);
	if (bridge_start(&c, 2, 3000)) {
		bridge_read(&c, 2, &r);
		CHECKF(r.frames == FRAMES && r.decoded == FRAMES,
		       "%d frames, %d decoded (want %d each)", r.frames, r.decoded, FRAMES);
		CHECKF(r.w == 320 && r.h == 240, "pictures %ux%u, want 320x240", r.w, r.h);
		printf("scanout 2: %d FRAME_RESPONSEs and nothing else, %d decoded at %ux%u\n",
		       r.frames, r.decoded, r.w, r.h);
	}
	conn_close(&c);
}

static void test_two_bridges(void)
{
	section("two bridges, two scanouts");
	struct tconn a = { .fd = connect_tcp(d.port) }, b = { .fd = connect_tcp(d.port) };
	struct bridge_result ra, rb;

	REQUIRE(a.fd >= 0 && b.fd >= 0);
	if (bridge_start(&a, 2, 2000) && bridge_start(&b, 3, 6000)) {
		bridge_read(&a, 2, &ra);
		bridge_read(&b, 3, &rb);
		CHECKF(ra.w == 320 && ra.h == 240 && rb.w == 192 && rb.h == 128,
		       "sizes %ux%u and %ux%u, want 320x240 and 192x128", ra.w, ra.h, rb.w, rb.h);
		CHECKF(ra.decoded == FRAMES && rb.decoded == FRAMES, "decoded %d and %d of %d",
		       ra.decoded, rb.decoded, FRAMES);
	}
	conn_close(&a);
	conn_close(&b);
}

int main(void)
{
	int skip = harness_setup("hfe-tb");

	if (skip)
		return skip;
	daemon_init(&d, "hfe.sock");
	const char *args[] = { "--listen", d.listen_unix, "--listen", d.listen_tcp,
			       "--test-scanout", "2:320x240@30", "--test-scanout", "3:192x128@30",
			       NULL };
	d.pid = start_daemon(args, d.log, d.sock, 0);
	REQUIRE(d.pid > 0);

	test_one(true);
	test_one(false);
	test_two_bridges();

	kill_wait(d.pid, SIGTERM, 10000);
	if (tu_failures)
		show_log(d.log);
	return harness_finish("test_bridge");
}
