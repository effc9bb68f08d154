/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A flush of pixels the stream already has costs no access unit. Guests
 * report damage they did not make: weston on virtio-gpu re-commits the whole
 * primary plane on every cursor-plane move, so each mouse move arrives as a
 * full-screen flush of an unchanged picture. Through a real stream and
 * libx264, decoded by libavcodec with errors fatal:
 *  - right after a resize the first flush always counts, even when it is
 *    all black like the stream's fresh buffer (else no first IDR);
 *  - the same picture flushed again, whole or in part, in both byte
 *    orders: no access unit, each report counted as unchanged;
 *  - a full-screen flush in which a few rows changed: one access unit,
 *    decoded equal to the source (the narrowed damage lost nothing);
 *  - a keyframe request still encodes the unchanged picture.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hfe/stream.h"
#include "test_util.h"

#define W 320
#define H 240

static uint8_t rgb[W * H * 3];  /* the truth */
static uint8_t xrgb[W * H * 4]; /* B,G,R,X bytes, as most sources hand them */
static uint8_t xbgr[W * H * 4]; /* R,G,B,X bytes */

static void from_truth(void)
{
	for (size_t i = 0; i < (size_t)W * H; i++) {
		const uint8_t *p = rgb + 3 * i;
		uint8_t *a = xrgb + 4 * i, *b = xbgr + 4 * i;
		a[0] = p[2], a[1] = p[1], a[2] = p[0], a[3] = 0xff;
		b[0] = p[0], b[1] = p[1], b[2] = p[2], b[3] = 0xff;
	}
}

/* The next access unit within ms, decoded into pic: 1, or 0 when none came. */
static int next_au(struct hfe_stream *s, struct tu_decoder *dec, struct tu_yuv *pic, int ms,
		   bool *key)
{
	struct hfe_stream_au *au = NULL;
	tu_yuv_free(pic);
	ms = (int)(ms * tu_time_scale()); /* an emulated x264 is slower (arm64 job) */
	for (int i = 0; i < ms / 5 && hfe_stream_poll(s, &au) != 1; i++)
		nanosleep(&(struct timespec){ 0, 5000000 }, NULL);
	if (!au)
		return 0;
	*key = au->keyframe;
	int rc = tu_decoder_decode(dec, au->data, au->size, pic, NULL);
	hfe_stream_au_unref(au);
	CHECKF(rc == 1, "an access unit that does not decode (%d)", rc);
	return rc == 1;
}

static void check_truth(const struct tu_yuv *pic, const char *what)
{
	struct tu_yuv truth;
	double p[3];
	tu_ref_rgb_to_yuv(rgb, W, H, &truth);
	CHECKF(tu_psnr_yuv(pic, &truth, p) == 0 && p[0] >= 40.0 && p[1] >= 40.0 && p[2] >= 40.0,
	       "%s: %.1f/%.1f/%.1f dB against the source (want >= 40)", what, p[0], p[1], p[2]);
	tu_yuv_free(&truth);
}

int main(void)
{
	struct hfe_stream_params sp = { .max_fps = 240 };
	struct hfe_err err;
	hfe_encoder_params_default(&sp.enc);
	struct hfe_stream *s = hfe_stream_new(&sp, &err);
	REQUIRE(s != NULL);
	REQUIRE(hfe_stream_resize(s, W, H, &err) == 0);
	hfe_stream_set_consumers(s, 1);
	struct tu_decoder *dec = tu_decoder_new();
	REQUIRE(dec != NULL);
	struct tu_yuv pic = { 0 };
	bool key = false;

	/* A black first picture: the same bytes as the fresh buffer. */
	memset(rgb, 0, sizeof(rgb));
	from_truth();
	memset(xrgb, 0, sizeof(xrgb)); /* X = 0 too: byte for byte the calloc'd buffer */
	hfe_stream_update(s, 0, 0, W, H, xrgb, W * 4, HFE_FMT_XRGB8888);
	CHECK(next_au(s, dec, &pic, 2000, &key) == 1 && key);
	check_truth(&pic, "the black first picture");

	tu_pattern_rgb(rgb, W, H, 1);
	from_truth();
	hfe_stream_update(s, 0, 0, W, H, xrgb, W * 4, HFE_FMT_XRGB8888);
	CHECK(next_au(s, dec, &pic, 2000, &key) == 1);
	check_truth(&pic, "the pattern");

	/* The same picture again: whole, a part, both byte orders. */
	struct hfe_stream_stats st0, st1;
	hfe_stream_get_stats(s, &st0);
	for (int i = 0; i < 4; i++)
		hfe_stream_update(s, 0, 0, W, H, xrgb, W * 4, HFE_FMT_XRGB8888);
	hfe_stream_update(s, 16, 16, 64, 32, xrgb + (16 * W + 16) * 4, W * 4, HFE_FMT_XRGB8888);
	hfe_stream_update(s, 0, 0, W, H, xbgr, W * 4, HFE_FMT_XBGR8888);
	int got = next_au(s, dec, &pic, 300, &key);
	CHECKF(got == 0, "6 flushes of the unchanged picture brought %d access unit(s)", got);
	hfe_stream_get_stats(s, &st1);
	CHECKF(st1.updates - st0.updates == 6 && st1.updates_unchanged - st0.updates_unchanged == 6,
	       "6 reports, %llu counted, %llu of them unchanged",
	       (unsigned long long)(st1.updates - st0.updates),
	       (unsigned long long)(st1.updates_unchanged - st0.updates_unchanged));
	CHECK(st1.frames_encoded == st0.frames_encoded);

	/* A full-screen flush in which rows 100..109 changed. */
	for (size_t i = 100 * W * 3; i < 110 * W * 3; i++)
		rgb[i] = (uint8_t)(255 - rgb[i]);
	from_truth();
	hfe_stream_update(s, 0, 0, W, H, xbgr, W * 4, HFE_FMT_XBGR8888);
	CHECK(next_au(s, dec, &pic, 2000, &key) == 1);
	check_truth(&pic, "ten changed rows in a full-screen flush");
	got = next_au(s, dec, &pic, 300, &key);
	CHECKF(got == 0, "one change brought %d more access unit(s)", got);

	/* A keyframe request encodes the picture though nothing changed. */
	hfe_stream_request_keyframe(s);
	CHECK(next_au(s, dec, &pic, 2000, &key) == 1 && key);
	check_truth(&pic, "the IDR on request");

	tu_yuv_free(&pic);
	tu_decoder_free(dec);
	hfe_stream_free(s);
	return tu_finish("test_stream_damage");
}
