/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Test frame source: a static background plus small damaged rectangles. */
#include "hfe/testsrc.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hfe/log.h"
#include "worker.h"

#define BOX 64u
#define DIGIT_W 12u
#define DIGIT_H 20u
#define COUNTER_DIGITS 8u
#define TITLE_H 32u /* the pointer's I-beam band at the top */

enum cursor_kind { CURSOR_NONE, CURSOR_ARROW, CURSOR_BEAM };

struct hfe_testsrc {
	struct hfe_stream *stream;
	uint32_t width, height, fps;
	uint8_t *fb;
	uint32_t stride;
	struct hfe_worker w;
	enum cursor_kind cursor; /* loop thread (hfe_testsrc_pointer): the shape defined */
};

static void put(uint8_t *p, uint8_t r, uint8_t g, uint8_t b)
{
	p[0] = b;
	p[1] = g;
	p[2] = r;
	p[3] = 0xff;
}

/* Smooth diagonal gradient with a coarse grid: easy to recognise, compresses
 * well, and colour errors (channel swaps) show. */
static void background_px(uint8_t *p, uint32_t x, uint32_t y, uint32_t w, uint32_t h)
{
	uint8_t r = (uint8_t)(x * 255u / (w - 1));
	uint8_t g = (uint8_t)(y * 255u / (h - 1));
	uint8_t b = (uint8_t)(128 + ((x + y) % 128) / 2);
	if (x % 128 < 2 || y % 128 < 2)
		r = g = b = 40;
	put(p, r, g, b);
}

static void box_pos(uint64_t tick, uint32_t w, uint32_t h, uint32_t *bx, uint32_t *by)
{
	/* Bounce across the picture, 4 px per tick. */
	uint32_t span_x = w > BOX ? w - BOX : 1, span_y = h > BOX ? h - BOX : 1;
	uint64_t px = (tick * 4) % (2 * (uint64_t)span_x);
	uint64_t py = (tick * 3) % (2 * (uint64_t)span_y);
	*bx = (uint32_t)(px < span_x ? px : 2 * span_x - px);
	*by = (uint32_t)(py < span_y ? py : 2 * span_y - py);
}

/* 7-segment digit, segments a..g as bits 0..6. */
static const uint8_t seg7[10] = { 0x3f, 0x06, 0x5b, 0x4f, 0x66, 0x6d, 0x7d, 0x07, 0x7f, 0x6f };

static bool seg_on(unsigned digit, uint32_t x, uint32_t y)
{
	uint8_t s = seg7[digit];
	bool top = y < 3, mid = y >= DIGIT_H / 2 - 1 && y < DIGIT_H / 2 + 2, bot = y >= DIGIT_H - 3;
	bool left = x < 3, right = x >= DIGIT_W - 3;
	bool upper = y < DIGIT_H / 2, lower = !upper;
	return (top && (s & 0x01)) || (right && upper && (s & 0x02)) ||
	       (right && lower && (s & 0x04)) || (bot && (s & 0x08)) ||
	       (left && lower && (s & 0x10)) || (left && upper && (s & 0x20)) ||
	       (mid && (s & 0x40));
}

/* The counter's rectangle: top-left corner, COUNTER_DIGITS digits. */
static void draw_counter(uint8_t *fb, uint32_t stride, uint32_t w, uint32_t h, uint64_t tick)
{
	uint32_t cw = COUNTER_DIGITS * (DIGIT_W + 4), ch = DIGIT_H + 8;
	if (cw + 8 > w || ch + 8 > h)
		return;
	for (uint32_t y = 0; y < ch; y++) {
		for (uint32_t x = 0; x < cw; x++) {
			uint8_t *p = fb + (size_t)(8 + y) * stride + (size_t)(8 + x) * 4;
			uint32_t d = x / (DIGIT_W + 4), dx = x % (DIGIT_W + 4), dy = y;
			uint64_t v = tick;
			for (uint32_t k = COUNTER_DIGITS - 1; k > d; k--)
				v /= 10;
			bool on = dx >= 2 && dx < DIGIT_W + 2 && dy >= 4 && dy < DIGIT_H + 4 &&
				  seg_on((unsigned)(v % 10), dx - 2, dy - 4);
			if (on)
				put(p, 255, 255, 255);
			else
				put(p, 0, 0, 0);
		}
	}
}

/* The box, clipped to the w x h picture (hfe_testsrc_render takes any size). */
static void draw_box(uint8_t *fb, uint32_t stride, uint32_t w, uint32_t h, uint32_t bx,
		     uint32_t by, uint64_t tick)
{
	uint8_t r = (uint8_t)(200 + (tick % 56)), g = 60, b = (uint8_t)(255 - (tick % 128));
	for (uint32_t y = 0; y < BOX && by + y < h; y++)
		for (uint32_t x = 0; x < BOX && bx + x < w; x++) {
			/* soft edge so PSNR stays meaningful */
			uint32_t e = x < 4 ? x : (x >= BOX - 4 ? BOX - 1 - x : 4);
			uint32_t f = y < 4 ? y : (y >= BOX - 4 ? BOX - 1 - y : 4);
			uint32_t k = (e < f ? e : f) * 64;
			put(fb + (size_t)(by + y) * stride + (size_t)(bx + x) * 4,
			    (uint8_t)(r * k / 256), (uint8_t)(g * k / 256 + 40),
			    (uint8_t)(b * k / 256));
		}
}

static void restore_background(uint8_t *fb, uint32_t stride, uint32_t w, uint32_t h,
			       uint32_t bx, uint32_t by)
{
	for (uint32_t y = by; y < by + BOX && y < h; y++)
		for (uint32_t x = bx; x < bx + BOX && x < w; x++)
			background_px(fb + (size_t)y * stride + (size_t)x * 4, x, y, w, h);
}

void hfe_testsrc_render(uint8_t *bgrx, uint32_t stride, uint32_t width, uint32_t height,
			uint64_t tick)
{
	for (uint32_t y = 0; y < height; y++)
		for (uint32_t x = 0; x < width; x++)
			background_px(bgrx + (size_t)y * stride + (size_t)x * 4, x, y, width, height);
	uint32_t bx, by;
	box_pos(tick, width, height, &bx, &by);
	draw_box(bgrx, stride, width, height, bx, by, tick);
	draw_counter(bgrx, stride, width, height, tick);
}

static void *run(void *arg)
{
	struct hfe_testsrc *t = arg;
	uint64_t tick = 0;
	uint32_t bx, by;

	hfe_testsrc_render(t->fb, t->stride, t->width, t->height, 0);
	struct hfe_rect full = { 0, 0, t->width, t->height };
	hfe_stream_update_rects(t->stream, &full, 1, t->fb, t->stride, HFE_FMT_XRGB8888);
	box_pos(0, t->width, t->height, &bx, &by);

	uint64_t next = hfe_mono_ns();
	pthread_mutex_lock(&t->w.lock);
	while (!t->w.stop) {
		if (t->fps == 0) {
			pthread_cond_wait(&t->w.cond, &t->w.lock);
			continue;
		}
		next += 1000000000u / t->fps;
		while (!t->w.stop && !hfe_worker_wait_until(&t->w, next))
			; /* woken early (stop or spurious): only stop ends the wait */
		if (t->w.stop)
			break;
		pthread_mutex_unlock(&t->w.lock);

		tick++;
		uint32_t nx, ny;
		box_pos(tick, t->width, t->height, &nx, &ny);
		restore_background(t->fb, t->stride, t->width, t->height, bx, by);
		draw_box(t->fb, t->stride, t->width, t->height, nx, ny, tick);
		draw_counter(t->fb, t->stride, t->width, t->height, tick);
		/* Old and new box positions and the counter, in one flush, as a
		 * display driver would report them. */
		struct hfe_rect r[3] = {
			{ bx, by, BOX, BOX },
			{ nx, ny, BOX, BOX },
			{ 8, 8, COUNTER_DIGITS * (DIGIT_W + 4), DIGIT_H + 8 },
		};
		hfe_stream_update_rects(t->stream, r, 3, t->fb, t->stride, HFE_FMT_XRGB8888);
		bx = nx;
		by = ny;

		pthread_mutex_lock(&t->w.lock);
	}
	pthread_mutex_unlock(&t->w.lock);
	return NULL;
}

/* A 12x19 arrow, white with a black edge, hot spot at its tip. */
static void arrow_px(uint8_t *p, int x, int y)
{
	enum { AH = 19 };
	bool in = x <= y * 2 / 3;
	bool edge = in && (x == 0 || x == y * 2 / 3 || y == AH - 1);
	p[0] = p[1] = p[2] = edge ? 0 : 255;
	p[3] = in ? 255 : 0;
}

/* A 9x17 I-beam, black with a white edge, hot spot at its middle. */
static void beam_px(uint8_t *p, int x, int y)
{
	enum { BW = 9, BH = 17 };
	bool bar = y < 2 || y >= BH - 2 || (x >= 3 && x <= 5);
	bool core = (y == 0 || y == BH - 1) ? x > 0 && x < BW - 1 : x == 4;
	p[0] = p[1] = p[2] = core ? 0 : 255;
	p[3] = bar ? 255 : 0;
}

static void define_cursor(struct hfe_stream *stream, enum cursor_kind kind)
{
	uint8_t img[12 * 19 * 4]; /* the larger of the two; the stream copies it */
	struct hfe_cursor_shape shape = { 12, 19, 0, 0 };
	void (*px)(uint8_t *p, int x, int y) = arrow_px;
	if (kind == CURSOR_BEAM) {
		shape = (struct hfe_cursor_shape){ 9, 17, 4, 8 };
		px = beam_px;
	}
	for (uint32_t y = 0; y < shape.height; y++)
		for (uint32_t x = 0; x < shape.width; x++)
			px(img + (y * shape.width + x) * 4, (int)x, (int)y);
	struct hfe_err err;
	hfe_stream_cursor_define(stream, &shape, img, &err);
}

/* The arrow over the picture, an I-beam over its top band (as a guest's
 * cursor changes over a title's text), each defined when it changes: a
 * cursor channel sees shapes come back, as with a desktop's. */
void hfe_testsrc_pointer(struct hfe_testsrc *t, uint32_t x, uint32_t y)
{
	enum cursor_kind want = y < TITLE_H ? CURSOR_BEAM : CURSOR_ARROW;
	if (t->cursor != want) {
		define_cursor(t->stream, want);
		t->cursor = want;
	}
	hfe_stream_cursor_move(t->stream, (int32_t)x, (int32_t)y, true);
}

struct hfe_testsrc *hfe_testsrc_start(struct hfe_stream *stream, uint32_t width,
				      uint32_t height, uint32_t fps, struct hfe_err *err)
{
	if (width < 2 * BOX || height < 2 * BOX || fps > 240) {
		hfe_err_set(err, HFE_ERR_UNSUPPORTED,
			    "test source needs at least %ux%u and at most 240 fps", 2 * BOX, 2 * BOX);
		return NULL;
	}
	width &= ~1u;
	height &= ~1u;
	struct hfe_testsrc *t = calloc(1, sizeof(*t));
	if (!t || !(t->fb = calloc((size_t)width * 4, height))) {
		free(t);
		hfe_err_set(err, HFE_ERR_INTERNAL, "out of memory");
		return NULL;
	}
	t->stream = stream;
	t->width = width;
	t->height = height;
	t->fps = fps;
	t->stride = width * 4;
	if (hfe_stream_resize(stream, width, height, err) < 0)
		goto fail;
	if (hfe_worker_start(&t->w, run, t, "test source", err) < 0)
		goto fail;
	return t;
fail:
	free(t->fb);
	free(t);
	return NULL;
}

void hfe_testsrc_stop(struct hfe_testsrc *t)
{
	if (!t)
		return;
	hfe_worker_stop(&t->w);
	free(t->fb);
	free(t);
}
