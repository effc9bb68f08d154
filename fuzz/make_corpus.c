/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Writes the seed corpus for fuzz_wire into the directory given as argv[1]:
 * one valid example of every message type (in the direction it travels) and a
 * few sequences, each prefixed with fuzz_wire's control byte; and the seeds of
 * fuzz_peer into argv[1]/fuzz_peer/ (client scripts in fuzz_peer's operation
 * format: pushes, clock steps, drains and events; see fuzz_peer.c).
 *
 *   make_corpus fuzz/corpus
 *
 * Frames are 16x16 to keep the files small.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hfe/wire.h"

struct out {
	uint8_t buf[16384];
	size_t n;
};

static const char *dir;
static int written;

static void add(struct out *o, const struct hfe_msg *m, const void *extra, size_t len)
{
	size_t n = hfe_msg_build(m, len, o->buf + o->n, sizeof(o->buf) - o->n);

	if (!n || o->n + n + len > sizeof(o->buf)) {
		fprintf(stderr, "make_corpus: cannot build type 0x%02x\n", m->hdr.type);
		exit(1);
	}
	o->n += n;
	if (len)
		memcpy(o->buf + o->n, extra, len);
	o->n += len;
}

static void save(const char *name, uint8_t ctl, const struct out *o)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(&ctl, 1, 1, f) != 1 || fwrite(o->buf, 1, o->n, f) != o->n ||
	    fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	written++;
}

static struct hfe_msg mk(uint8_t type, uint16_t sid)
{
	struct hfe_msg m;

	memset(&m, 0, sizeof(m));
	m.hdr.type = type;
	m.hdr.session_id = sid;
	return m;
}

static struct hfe_msg frame(uint32_t fmt, uint32_t stride, int64_t pts, uint32_t res)
{
	struct hfe_msg m = mk(HFE_MSG_FRAME_REQUEST, 1);

	m.u.frame_req = (struct hfe_frame_request){ res, 16, 16, fmt, stride, pts, 16666667, 0 };
	return m;
}

/* One message alone in a file. */
static void single(const char *name, uint8_t ctl, const struct hfe_msg *m, const void *extra,
		   size_t len)
{
	struct out o = { .n = 0 };

	add(&o, m, extra, len);
	save(name, ctl, &o);
}

/* ---- fuzz_peer scripts (operation bytes: see fuzz_peer.c) ---- */

/* Push `len` bytes as fuzz_peer push operations of 1 + a*a bytes. */
static void op_push(struct out *o, const uint8_t *b, size_t len)
{
	while (len) {
		unsigned a = 63;
		while (1u + a * a > len)
			a--;
		size_t n = 1u + a * a;
		if (o->n + 1 + n > sizeof(o->buf)) {
			fprintf(stderr, "make_corpus: fuzz_peer script too long\n");
			exit(1);
		}
		o->buf[o->n++] = (uint8_t)(a << 2);
		memcpy(o->buf + o->n, b, n);
		o->n += n;
		b += n;
		len -= n;
	}
}

static void op_msg(struct out *o, const struct hfe_msg *m, const void *extra, size_t len)
{
	struct out one = { .n = 0 };

	add(&one, m, extra, len);
	op_push(o, one.buf, one.n);
}

static void op(struct out *o, unsigned kind, unsigned a)
{
	o->buf[o->n++] = (uint8_t)(a << 2 | kind);
}

enum { OP_TIME = 1, OP_DRAIN = 2, OP_EVENT = 3 };
enum { EV_EOF = 1, EV_STOP = 2, EV_DRAW = 4, EV_WAIT = 8, EV_TURN = 16 };

static void peer_seeds(const uint8_t *pix)
{
	static char sub[4096];
	struct hfe_msg m, hello = mk(HFE_MSG_HELLO, 0);
	struct out o;

	snprintf(sub, sizeof(sub), "%s/fuzz_peer", dir);
	if (mkdir(sub, 0755) != 0 && errno != EEXIST) {
		perror(sub);
		exit(1);
	}
	dir = sub;
	hello.u.hello = (struct hfe_hello){ 1, 2, 0, "corpus" };

	/* config 0x03: 1 MiB queue, 1 in flight */
	memset(&o, 0, sizeof(o));
	op_msg(&o, &hello, NULL, 0);
	m = mk(HFE_MSG_PING, 3);
	op_msg(&o, &m, NULL, 0);
	m = mk(HFE_MSG_STATS_REQ, 0);
	op_msg(&o, &m, NULL, 0);
	op(&o, OP_EVENT, EV_TURN);
	save("peer_hello_ping_stats", 0x03, &o);

	/* config 0x0f: 4 in flight */
	memset(&o, 0, sizeof(o));
	op_msg(&o, &hello, NULL, 0);
	m = mk(HFE_MSG_CONFIG_REQ, 1);
	m.u.config_req = (struct hfe_config_req){ 0, 0, 300000, 30, 1, 66, 0, 1 };
	op_msg(&o, &m, NULL, 0);
	m = frame(HFE_FMT_XRGB8888, 64, 0, 0);
	op_msg(&o, &m, pix, 16 * 16 * 4);
	m = mk(HFE_MSG_KEYFRAME_REQ, 1);
	op_msg(&o, &m, NULL, 0);
	m = frame(HFE_FMT_NV12, 16, 1, 0);
	op_msg(&o, &m, pix, 16 * 24);
	m = frame(HFE_FMT_XRGB8888, 64, 2, 7); /* resource frame: no resolver */
	op_msg(&o, &m, NULL, 0);
	for (int i = 0; i < 4; i++)
		op(&o, OP_EVENT, EV_WAIT | EV_TURN);
	save("peer_pull_frames", 0x0f, &o);

	/* config 0x13: a scanout in the hub */
	memset(&o, 0, sizeof(o));
	m = mk(HFE_MSG_ENABLE_SCANOUT, 0);
	m.u.enable_scanout = (struct hfe_enable_scanout){ 1, 0, 0, 60 };
	op_msg(&o, &m, NULL, 0);
	m = mk(HFE_MSG_SUBSCRIBE, 0);
	m.u.scanout_id = 1;
	op_msg(&o, &m, NULL, 0);
	op(&o, OP_EVENT, EV_WAIT | EV_TURN);
	op(&o, OP_EVENT, EV_DRAW | EV_WAIT | EV_TURN);
	m = mk(HFE_MSG_KEYFRAME_REQ, 1);
	op_msg(&o, &m, NULL, 0);
	op(&o, OP_EVENT, EV_WAIT | EV_TURN);
	m = mk(HFE_MSG_DISABLE_SCANOUT, 0);
	m.u.scanout_id = 1;
	op_msg(&o, &m, NULL, 0);
	op(&o, OP_EVENT, EV_TURN);
	save("peer_subscribe", 0x13, &o);

	/* a message begun, then silence past the stall limit; a linger after */
	memset(&o, 0, sizeof(o));
	m = mk(HFE_MSG_PING, 1);
	{
		struct out one = { .n = 0 };
		add(&one, &m, NULL, 0);
		op_push(&o, one.buf, 5);
	}
	op(&o, OP_TIME, 20);
	op(&o, OP_DRAIN, 0);
	op(&o, OP_TIME, 1);
	op(&o, OP_TIME, 20);
	save("peer_stall", 0x03, &o);

	/* config 0x00: a 64-byte queue, PINGs until reading pauses */
	memset(&o, 0, sizeof(o));
	m = mk(HFE_MSG_PING, 1);
	for (int i = 0; i < 8; i++)
		op_msg(&o, &m, NULL, 0);
	op(&o, OP_DRAIN, 1);
	op(&o, OP_TIME, 1);
	op(&o, OP_DRAIN, 0);
	op(&o, OP_EVENT, EV_TURN);
	save("peer_backpressure", 0x00, &o);

	/* a frame, then a bad header: the reply owed before the ERROR */
	memset(&o, 0, sizeof(o));
	m = frame(HFE_FMT_XRGB8888, 64, 0, 0);
	op_msg(&o, &m, pix, 16 * 16 * 4);
	op_push(&o, (const uint8_t *)"HXFR\x77\0\0\0\0\0\0\0", 12);
	op(&o, OP_EVENT, EV_WAIT | EV_TURN);
	op(&o, OP_TIME, 10);
	save("peer_error_after_frame", 0x0f, &o);

	/* a frame in flight when the host stops */
	memset(&o, 0, sizeof(o));
	m = frame(HFE_FMT_XRGB8888, 64, 0, 0);
	op_msg(&o, &m, pix, 16 * 16 * 4);
	op(&o, OP_EVENT, EV_STOP);
	op(&o, OP_EVENT, EV_WAIT | EV_TURN);
	op(&o, OP_EVENT, EV_TURN);
	save("peer_shutdown", 0x1f, &o);

	/* config 0x2f: a resolver lends resources 9 (16x16) and 42 (24x48);
	 * resource 70000 does not exist, and the size change reopens the encoder */
	memset(&o, 0, sizeof(o));
	op_msg(&o, &hello, NULL, 0);
	for (int i = 0; i < 3; i++) {
		static const uint32_t ids[] = { 9, 70000, 42 };
		m = frame(HFE_FMT_XRGB8888, 64, i, ids[i]);
		op_msg(&o, &m, NULL, 0);
	}
	op(&o, OP_EVENT, EV_WAIT | EV_TURN);
	op(&o, OP_EVENT, EV_WAIT | EV_TURN);
	save("peer_resource_frames", 0x2f, &o);

	/* config 0x5f: the rawvideo encoder behind a pull session and a scanout */
	memset(&o, 0, sizeof(o));
	m = frame(HFE_FMT_XRGB8888, 64, 0, 0);
	op_msg(&o, &m, pix, 16 * 16 * 4);
	m = mk(HFE_MSG_SUBSCRIBE, 0);
	m.u.scanout_id = 1;
	op_msg(&o, &m, NULL, 0);
	op(&o, OP_EVENT, EV_DRAW | EV_WAIT | EV_TURN);
	op(&o, OP_EVENT, EV_WAIT | EV_TURN);
	save("peer_rawvideo", 0x5f, &o);

	/* config 0x90: a control peer with an input sink and the scanout:
	 * keys and buttons held when it goes, a move, the wheel, an unwatched id */
	memset(&o, 0, sizeof(o));
	op_msg(&o, &hello, NULL, 0);
	m = mk(HFE_MSG_SUBSCRIBE, 1);
	m.u.scanout_id = 1;
	op_msg(&o, &m, NULL, 0);
	m = mk(HFE_MSG_INPUT_KEY, 1);
	m.u.key = (struct hfe_input_key){ 42, 1 };
	op_msg(&o, &m, NULL, 0);
	m = mk(HFE_MSG_INPUT_POINTER, 1);
	m.u.pointer = (struct hfe_input_pointer){ 10, 20, 0, 0, 0 };
	op_msg(&o, &m, NULL, 0);
	m.u.pointer = (struct hfe_input_pointer){ 11, 21, HFE_BUTTON_LEFT, 2, -1 };
	op_msg(&o, &m, NULL, 0);
	m = mk(HFE_MSG_INPUT_KEY, 0); /* scanout 0: not watched */
	m.u.key = (struct hfe_input_key){ 30, 1 };
	op_msg(&o, &m, NULL, 0);
	op(&o, OP_EVENT, EV_TURN);
	save("peer_input", 0x90, &o);

	/* config 0x5f: a v2 subscriber with the cursor channel, then without */
	memset(&o, 0, sizeof(o));
	op_msg(&o, &hello, NULL, 0);
	m = mk(HFE_MSG_SUBSCRIBE, 1);
	m.hdr.flags = HFE_FLAG_CURSOR;
	m.u.scanout_id = 1;
	op_msg(&o, &m, NULL, 0);
	op(&o, OP_EVENT, EV_DRAW | EV_WAIT | EV_TURN);
	m.hdr.flags = 0;
	op_msg(&o, &m, NULL, 0);
	op(&o, OP_EVENT, EV_WAIT | EV_TURN);
	save("peer_cursor", 0x5f, &o);
}

int main(int argc, char **argv)
{
	static uint8_t pix[2048];
	static const uint8_t au[] = { 0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0, 0, 0, 1, 0x68,
				      0xce, 0x3c, 0x80, 0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00 };
	struct hfe_msg m, hello, cfg, hresp, cresp, stats, err;
	struct out o;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	dir = argv[1];
	for (size_t i = 0; i < sizeof(pix); i++)
		pix[i] = (uint8_t)(i * 13 + 1);

	/* client -> host, control 0x00 */
	m = frame(HFE_FMT_XRGB8888, 64, 0, 0);
	single("host_frame_request_xr24", 0x00, &m, pix, 16 * 16 * 4);
	m = frame(HFE_FMT_ABGR8888, 64 + 16, 1, 0);
	single("host_frame_request_ab24_padded", 0x01, &m, pix, (64 + 16) * 16 + 32);
	m = frame(HFE_FMT_NV12, 16, 2, 0);
	single("host_frame_request_nv12", 0x02, &m, pix, 16 * 24);
	m = frame(HFE_FMT_I420, 17, 3, 0);
	single("host_frame_request_i420_odd_stride", 0x03, &m, pix, 17 * 16 + 2 * 9 * 8);
	m = frame(HFE_FMT_ARGB8888, 64, 4, 42);
	single("host_frame_request_resource", 0x00, &m, NULL, 0);
	m = mk(HFE_MSG_KEYFRAME_REQ, 1);
	single("host_keyframe_req", 0x00, &m, NULL, 0);
	cfg = mk(HFE_MSG_CONFIG_REQ, 1);
	cfg.u.config_req = (struct hfe_config_req){ 16, 16, 2000000, 30, 1, 66, 31, 1 };
	single("host_config_req", 0x00, &cfg, NULL, 0);
	m = mk(HFE_MSG_PING, 7);
	single("host_ping", 0x00, &m, NULL, 0);
	m = mk(HFE_MSG_ENABLE_SCANOUT, 0);
	m.u.enable_scanout = (struct hfe_enable_scanout){ 0, 1024, 768, 60 };
	single("host_enable_scanout", 0x00, &m, NULL, 0);
	m = mk(HFE_MSG_DISABLE_SCANOUT, 0);
	single("host_disable_scanout", 0x00, &m, NULL, 0);
	m = mk(HFE_MSG_SUBSCRIBE, 1);
	m.u.scanout_id = 1;
	single("host_subscribe", 0x00, &m, NULL, 0);
	hello = mk(HFE_MSG_HELLO, 0);
	hello.u.hello = (struct hfe_hello){ 1, 2, 0, "gst-vsockenc" };
	single("host_hello", 0x00, &hello, NULL, 0);
	m = mk(HFE_MSG_INPUT_KEY, 1);
	m.u.key = (struct hfe_input_key){ 30, 1 };
	single("host_input_key", 0x00, &m, NULL, 0);
	m = mk(HFE_MSG_INPUT_POINTER, 1);
	m.u.pointer = (struct hfe_input_pointer){ 8, 9, HFE_BUTTON_LEFT, -1, 1 };
	single("host_input_pointer", 0x00, &m, NULL, 0);
	m = mk(HFE_MSG_SUBSCRIBE, 1); /* CURSOR is v2 only: after a HELLO */
	m.hdr.flags = HFE_FLAG_CURSOR;
	m.u.scanout_id = 1;
	memset(&o, 0, sizeof(o));
	add(&o, &hello, NULL, 0);
	add(&o, &m, NULL, 0);
	save("host_subscribe_cursor", 0x00, &o);
	m = mk(HFE_MSG_STATS_REQ, 0); /* v2 only: after a HELLO */
	memset(&o, 0, sizeof(o));
	add(&o, &hello, NULL, 0);
	add(&o, &m, NULL, 0);
	save("host_stats_req", 0x00, &o);

	/* host -> client, control 0x08: the client sent HELLO */
	m = mk(HFE_MSG_FRAME_RESPONSE, 1);
	m.u.frame_resp = (struct hfe_frame_response){ 5, 5, 1, 1 };
	single("client_frame_response", 0x08, &m, au, sizeof(au));
	m.u.frame_resp.nal_count = 0;
	single("client_frame_response_empty", 0x08, &m, NULL, 0);
	cresp = mk(HFE_MSG_CONFIG_RESP, 1);
	cresp.u.config_resp = (struct hfe_config_resp){ 16, 16, 2000000, 30, 1, 66, 31, 1,
							"libx264" };
	single("client_config_resp", 0x08, &cresp, NULL, 0);
	m = mk(HFE_MSG_CURSOR_SHAPE, 1);
	m.u.cursor_shape = (struct hfe_cursor_shape){ 8, 8, 1, 2 };
	single("client_cursor_shape", 0x08, &m, pix, 8 * 8 * 4);
	m = mk(HFE_MSG_CURSOR_POSITION, 1);
	m.u.cursor_pos = (struct hfe_cursor_position){ -3, 200, 1 };
	single("client_cursor_position", 0x08, &m, NULL, 0);
	m = mk(HFE_MSG_PONG, 7);
	single("client_pong", 0x08, &m, NULL, 0);
	m = mk(HFE_MSG_SCANOUT_RESP, 0);
	m.u.scanout_resp.success = 1;
	strcpy(m.u.scanout_resp.connector, "Virtual-1");
	single("client_scanout_resp", 0x08, &m, NULL, 0);
	m = mk(HFE_MSG_SUBSCRIBE_RESP, 1);
	m.u.subscribe_resp = (struct hfe_subscribe_resp){ 1, 1 };
	single("client_subscribe_resp", 0x08, &m, NULL, 0);
	hresp = mk(HFE_MSG_HELLO_RESP, 0);
	hresp.u.hello_resp = (struct hfe_hello_resp){
		2, HFE_CODEC_H264, HFE_SOURCE_PIXELS | HFE_SOURCE_SCANOUT, 1024, 1024,
		(4u << 20) + 64, 4, 6,
		{ HFE_FMT_ARGB8888, HFE_FMT_XRGB8888, HFE_FMT_ABGR8888, HFE_FMT_XBGR8888,
		  HFE_FMT_NV12, HFE_FMT_I420 },
		"helix-frame-export 0.1.0"
	};
	single("client_hello_resp", 0x08, &hresp, NULL, 0);
	stats = mk(HFE_MSG_STATS_RESP, 0);
	stats.u.stats = (struct hfe_stats){ 100, 99, 1, 4, 123456, 7890, 800, 4000, 1 };
	single("client_stats_resp", 0x08, &stats, NULL, 0);
	err = mk(HFE_MSG_ERROR, 1);
	err.u.error.code = HFE_ERR_RESOURCE_NOT_FOUND;
	strcpy(err.u.error.message, "resource 42 is not known to this host");
	single("client_error", 0x00, &err, NULL, 0);

	/* sequences */
	memset(&o, 0, sizeof(o));
	add(&o, &hello, NULL, 0);
	add(&o, &cfg, NULL, 0);
	m = frame(HFE_FMT_XRGB8888, 64, 10, 0);
	add(&o, &m, pix, 16 * 16 * 4);
	m = mk(HFE_MSG_KEYFRAME_REQ, 1);
	add(&o, &m, NULL, 0);
	m = frame(HFE_FMT_NV12, 16, 11, 0);
	add(&o, &m, pix, 16 * 24);
	m = mk(HFE_MSG_STATS_REQ, 0);
	add(&o, &m, NULL, 0);
	m = mk(HFE_MSG_PING, 1);
	add(&o, &m, NULL, 0);
	save("seq_host_v2", 0x01, &o);

	memset(&o, 0, sizeof(o));
	m = frame(HFE_FMT_ARGB8888, 64, 0, 0);
	add(&o, &m, pix, sizeof(pix)); /* whole mapped buffer, longer than the frame */
	add(&o, &cfg, NULL, 0);
	m = frame(HFE_FMT_ARGB8888, 64, 1, 0);
	add(&o, &m, pix, 16 * 16 * 4);
	m = mk(HFE_MSG_ENABLE_SCANOUT, 0);
	add(&o, &m, NULL, 0);
	m = mk(HFE_MSG_SUBSCRIBE, 0);
	add(&o, &m, NULL, 0);
	m = mk(HFE_MSG_DISABLE_SCANOUT, 0);
	add(&o, &m, NULL, 0);
	save("seq_host_v1", 0x06, &o);

	memset(&o, 0, sizeof(o));
	add(&o, &hresp, NULL, 0);
	add(&o, &cresp, NULL, 0);
	m = mk(HFE_MSG_FRAME_RESPONSE, 1);
	m.u.frame_resp = (struct hfe_frame_response){ 10, 10, 1, 1 };
	add(&o, &m, au, sizeof(au));
	m.u.frame_resp = (struct hfe_frame_response){ 11, 11, 0, 1 };
	add(&o, &m, au + 16, 8);
	add(&o, &stats, NULL, 0);
	add(&o, &err, NULL, 0);
	save("seq_client_v2", 0x18, &o);

	/* three NAL units: the builder makes one per response, so patch it in */
	memset(&o, 0, sizeof(o));
	m = mk(HFE_MSG_FRAME_RESPONSE, 1);
	m.u.frame_resp = (struct hfe_frame_response){ 12, 12, 1, 0 };
	add(&o, &m, NULL, 0);
	{
		static const uint32_t sizes[3] = { 4, 4, 4 };
		size_t at = o.n;

		for (int i = 0; i < 3; i++) {
			o.buf[o.n++] = (uint8_t)sizes[i];
			o.buf[o.n++] = 0;
			o.buf[o.n++] = 0;
			o.buf[o.n++] = 0;
			memcpy(o.buf + o.n, au + 4 + 8 * i, 4);
			o.n += 4;
		}
		o.buf[12 + 20] = 3;                        /* nal_count */
		o.buf[8] = (uint8_t)(24 + (o.n - at)); /* payload_size */
	}
	save("client_frame_response_3nal", 0x0a, &o);

	/* failures: HELLO too late, bad magic after a good message */
	memset(&o, 0, sizeof(o));
	m = mk(HFE_MSG_PING, 1);
	add(&o, &m, NULL, 0);
	add(&o, &hello, NULL, 0);
	save("fail_hello_after_ping", 0x00, &o);
	memset(&o, 0, sizeof(o));
	add(&o, &m, NULL, 0);
	memcpy(o.buf + o.n, "HXFS\x10\0\0\0\0\0\0\0", 12);
	o.n += 12;
	save("fail_bad_magic", 0x07, &o);

	peer_seeds(pix);
	printf("make_corpus: wrote %d files to %s and %s/fuzz_peer\n", written, argv[1], argv[1]);
	return 0;
}
