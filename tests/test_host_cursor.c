/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The hardware cursor through a host (lib/src/cursor.c, stream.c, scanout.c):
 * a subscriber without the cursor channel (v1, or v2 that did not ask) gets
 * nothing new and the cursor drawn into its decoded pictures; a v2 subscriber
 * with SUBSCRIBE's CURSOR flag gets CURSOR_SHAPE / CURSOR_POSITION (the
 * latest position only) and pictures without it, and a moving cursor costs
 * it no access unit. The test source is the harness's picture; pictures are
 * decoded with libavcodec. No sockets (host_harness.h); one behaviour per
 * test (`test_host_cursor NAME`, `--list`).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host_harness.h"
#include "test_util.h"
#undef CHECK /* unit_check.h's counting CHECK */
#include "unit_check.h"

#define SCANOUT 0u
#define W 160u
#define H 96u
#define CW 16u /* the cursor: CW x CH, opaque red */
#define CH 12u

/* ---- what the client saw ---- */

static struct tu_decoder *dec;
static struct tu_yuv last;  /* the latest decoded picture */
static unsigned decoded;
static uint8_t shape[4 * CW * CH];
static size_t shape_len;

static void on_data(struct hh *h, const struct hfe_msg *m)
{
	(void)h;
	if (m->hdr.type == HFE_MSG_CURSOR_SHAPE) {
		shape_len = m->data_len < sizeof(shape) ? m->data_len : sizeof(shape);
		memcpy(shape, m->data, shape_len);
		return;
	}
	if (m->hdr.type != HFE_MSG_FRAME_RESPONSE)
		return;
	size_t pos = 0;
	const uint8_t *nal;
	uint32_t len;
	while (hfe_nal_next(m, &pos, &nal, &len)) {
		struct tu_yuv pic;
		int rc = tu_decoder_decode(dec, nal, len, &pic, NULL);
		CHECK(rc >= 0);
		if (rc == 1) {
			tu_yuv_free(&last);
			last = pic;
			decoded++;
		}
	}
}

/* Is the decoded picture's pixel at x, y the cursor's red? (BT.601 red:
 * Y 81, V 240; the test picture has no such colour.) */
static bool red_at(uint32_t x, uint32_t y)
{
	if (!last.y || x >= last.w || y >= last.h)
		return false;
	uint8_t yy = last.y[(size_t)y * last.w + x], v = last.v[(size_t)(y / 2) * last.cw + x / 2];
	return yy > 60 && yy < 105 && v > 215;
}

/* ---- setup ---- */

static uint8_t red[4 * CW * CH];

/* A host whose scanout shows the test picture with the cursor at 40, 30. */
static void start(struct hh *h, bool v2)
{
	struct hfe_err err;

	dec = tu_decoder_new();
	if (!dec)
		abort();
	memset(&last, 0, sizeof(last));
	decoded = 0;
	shape_len = 0;
	for (size_t i = 0; i < CW * CH; i++)
		memcpy(red + 4 * i, (uint8_t[]){ 0, 0, 255, 255 }, 4); /* B,G,R,A */
	hh_start_default(h);
	h->on_data = on_data;
	struct hfe_stream *s = hh_add_scanout(h, SCANOUT, W, H);
	hh_draw(h, 0);
	struct hfe_cursor_shape cs = { CW, CH, 1, 2 };
	CHECK(hfe_stream_cursor_define(s, &cs, red, &err) == 0);
	hfe_stream_cursor_move(s, 40, 30, true);
	if (v2) {
		struct hfe_msg m = hh_mk_hello(1, 2);
		hh_push_msg(h, &m, NULL, 0);
		hh_step(h);
	}
}

static void stop(struct hh *h)
{
	hh_stop(h);
	tu_yuv_free(&last);
	tu_decoder_free(dec);
}

static void subscribe(struct hh *h, bool cursor)
{
	struct hfe_msg m = hh_mk(HFE_MSG_SUBSCRIBE, SCANOUT);
	m.hdr.flags = cursor ? HFE_FLAG_CURSOR : 0;
	m.u.scanout_id = SCANOUT;
	hh_push_msg(h, &m, NULL, 0);
	hh_step(h);
}

static unsigned count(const struct hh *h, uint8_t type)
{
	unsigned n = 0;
	for (unsigned i = 0; i < h->n_got; i++)
		n += h->got[i].hdr.type == type;
	return n;
}

/* Step the host until a picture decodes with the cursor at x, y (red) or
 * not (!red), up to 5 s. */
static bool wait_picture(struct hh *h, uint32_t x, uint32_t y, bool want_red)
{
	for (int i = 0; i < 500; i++) {
		hh_step(h);
		if (decoded && red_at(x, y) == want_red)
			return true;
		unsigned seen = hh_notifies(h);
		hh_wait_notify(h, seen, 10);
	}
	return false;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* ---- the behaviours ---- */

/* v1 (the deployed bridge): the cursor in the picture, where it is now, and
 * nothing but SUBSCRIBE_RESP and FRAME_RESPONSEs on the wire. */
static void v1_subscriber_sees_cursor_in_picture_only(void)
{
	struct hh h;

	start(&h, false);
	subscribe(&h, false);
	/* the cursor's image spans 40..55 x 30..41 */
	CHECK(wait_picture(&h, 47, 35, true));
	hfe_stream_cursor_move(h.streams[0], 100, 60, true);
	CHECK(wait_picture(&h, 107, 65, true));
	CHECK(!red_at(47, 35)); /* taken off where it was */
	hfe_stream_cursor_move(h.streams[0], 100, 60, false);
	CHECK(wait_picture(&h, 107, 65, false));
	for (unsigned i = 0; i < h.n_got; i++)
		CHECKC(h.got[i].hdr.type == HFE_MSG_SUBSCRIBE_RESP ||
			       h.got[i].hdr.type == HFE_MSG_FRAME_RESPONSE,
		       hfe_msg_type_name(h.got[i].hdr.type));
	CHECK(!h.closed && !h.client_failed);
	stop(&h);
}

/* v2 without the CURSOR flag: the same as v1. */
static void v2_subscriber_without_flag_gets_no_cursor_messages(void)
{
	struct hh h;

	start(&h, true);
	CHECK(h.n_got == 1 && (h.got[0].u.hello_resp.features & HFE_FEATURE_CURSOR));
	subscribe(&h, false);
	CHECK(wait_picture(&h, 47, 35, true));
	hfe_stream_cursor_move(h.streams[0], 100, 60, true);
	CHECK(wait_picture(&h, 107, 65, true));
	CHECK(count(&h, HFE_MSG_CURSOR_SHAPE) == 0 && count(&h, HFE_MSG_CURSOR_POSITION) == 0);
	stop(&h);
}

/* v2 with CURSOR: the shape (bytes as defined) and position right after the
 * reply, pictures without the cursor. */
static void channel_subscriber_gets_shape_and_position(void)
{
	struct hh h;

	start(&h, true);
	subscribe(&h, true);
	CHECK(h.n_got >= 4);
	CHECK(h.got[1].hdr.type == HFE_MSG_SUBSCRIBE_RESP && h.got[1].u.subscribe_resp.success);
	int s = hh_find(&h, HFE_MSG_CURSOR_SHAPE, 0), p = hh_find(&h, HFE_MSG_CURSOR_POSITION, 0);
	CHECK(s == 2 && p == 3);
	if (s >= 0) {
		const struct hfe_cursor_shape *cs = &h.got[s].u.cursor_shape;
		CHECK(cs->width == CW && cs->height == CH && cs->hot_x == 1 && cs->hot_y == 2);
		CHECK(h.got[s].hdr.session_id == SCANOUT);
		CHECK(shape_len == sizeof(red) && memcmp(shape, red, sizeof(red)) == 0);
	}
	if (p >= 0) {
		const struct hfe_cursor_position *cp = &h.got[p].u.cursor_pos;
		CHECK(cp->x == 40 && cp->y == 30 && cp->visible == 1);
	}
	/* the picture comes without the cursor */
	CHECK(wait_picture(&h, 47, 35, false));
	sleep_ms(100);
	hh_step(&h);
	CHECK(!red_at(47, 35) && !red_at(41, 31));
	stop(&h);
}

/* Moving the cursor costs a channel subscriber no access unit, and a burst
 * of moves reaches it as fewer positions, the last one the latest. */
static void moves_are_coalesced_and_encode_nothing(void)
{
	struct hh h;

	start(&h, true);
	subscribe(&h, true);
	CHECK(wait_picture(&h, 47, 35, false));
	sleep_ms(100); /* the stream settles: its IDR and nothing after */
	hh_step(&h);
	unsigned frames = count(&h, HFE_MSG_FRAME_RESPONSE);
	unsigned pos0 = count(&h, HFE_MSG_CURSOR_POSITION);

	for (int i = 0; i < 200; i++)
		hfe_stream_cursor_move(h.streams[0], i % W, i % H, true);
	hfe_stream_cursor_move(h.streams[0], 77, 55, true);
	for (int i = 0; i < 30; i++) {
		sleep_ms(10);
		hh_step(&h);
	}
	int latest = -1;
	for (unsigned i = 0; i < h.n_got; i++)
		if (h.got[i].hdr.type == HFE_MSG_CURSOR_POSITION)
			latest = (int)i;
	unsigned moves = count(&h, HFE_MSG_CURSOR_POSITION) - pos0;
	CHECKC(moves >= 1 && moves < 100, "positions sent for 201 moves");
	CHECK(latest >= 0 && h.got[latest].u.cursor_pos.x == 77 &&
	      h.got[latest].u.cursor_pos.y == 55);
	CHECKC(count(&h, HFE_MSG_FRAME_RESPONSE) == frames, "access units after the moves");
	printf("201 moves: %u positions sent, %u access units\n", moves,
	       count(&h, HFE_MSG_FRAME_RESPONSE) - frames);
	/* a new shape reaches it too */
	struct hfe_cursor_shape cs = { 2, 2, 0, 0 };
	struct hfe_err err;
	uint8_t px[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
	CHECK(hfe_stream_cursor_define(h.streams[0], &cs, px, &err) == 0);
	for (int i = 0; i < 30 && h.got[h.n_got - 1].hdr.type != HFE_MSG_CURSOR_SHAPE; i++) {
		sleep_ms(10);
		hh_step(&h);
	}
	CHECK(h.got[h.n_got - 1].hdr.type == HFE_MSG_CURSOR_SHAPE && shape_len == 16 &&
	      memcmp(shape, px, 16) == 0);
	stop(&h);
}

/* The choice is per subscription: subscribing again without the flag puts
 * the cursor back into the picture (one stream serves the scanout). */
static void resubscribe_without_flag_composites_again(void)
{
	struct hh h;

	start(&h, true);
	subscribe(&h, true);
	CHECK(wait_picture(&h, 47, 35, false));
	subscribe(&h, false);
	CHECK(wait_picture(&h, 47, 35, true));
	stop(&h);
}

/* CURSOR is a v2 flag: a v1 peer using it is a protocol error. */
static void v1_cursor_flag_is_protocol_error(void)
{
	struct hh h;

	start(&h, false);
	subscribe(&h, true);
	hh_step(&h);
	int e = hh_find(&h, HFE_MSG_ERROR, 0);
	CHECK(e >= 0 && h.got[e].u.error.code == HFE_ERR_PROTOCOL);
	CHECK(hh_find(&h, HFE_MSG_CURSOR_SHAPE, 0) < 0);
	stop(&h);
}

/* Images past 256x256 are refused before anything is copied. */
static void oversized_cursor_refused(void)
{
	struct hh h;
	struct hfe_err err;
	struct hfe_cursor_shape cs = { HFE_CURSOR_MAX + 1, 1, 0, 0 };

	start(&h, true);
	CHECK(hfe_stream_cursor_define(h.streams[0], &cs, red, &err) == -1);
	cs = (struct hfe_cursor_shape){ 1, 0, 0, 0 };
	CHECK(hfe_stream_cursor_define(h.streams[0], &cs, red, &err) == -1);
	struct hfe_stream_cursor cur;
	hfe_stream_get_cursor(h.streams[0], &cur, NULL);
	CHECK(cur.shape_serial == 1 && cur.shape.width == CW); /* the old one stays */
	stop(&h);
}

int main(int argc, char **argv)
{
	static const struct unit_test tests[] = {
		{ "v1_subscriber_sees_cursor_in_picture_only",
		  v1_subscriber_sees_cursor_in_picture_only },
		{ "v2_subscriber_without_flag_gets_no_cursor_messages",
		  v2_subscriber_without_flag_gets_no_cursor_messages },
		{ "channel_subscriber_gets_shape_and_position",
		  channel_subscriber_gets_shape_and_position },
		{ "moves_are_coalesced_and_encode_nothing", moves_are_coalesced_and_encode_nothing },
		{ "resubscribe_without_flag_composites_again",
		  resubscribe_without_flag_composites_again },
		{ "v1_cursor_flag_is_protocol_error", v1_cursor_flag_is_protocol_error },
		{ "oversized_cursor_refused", oversized_cursor_refused },
	};
	return unit_run("test_host_cursor", tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
