/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Patch frames (lib/src/h264_splice.c) through a real scanout stream and
 * libx264: small changes come out as non-reference pictures of raw
 * macroblocks between the encoder's frames. Every access unit is decoded by
 * libavcodec with errors fatal, and checked:
 *  - against the source picture (reference colour conversion, PSNR);
 *  - a patch frame must equal the encoder's last picture outside the
 *    changed macroblocks (skipped = copied) and carry the change inside;
 *  - changes keep accumulating into patches until the limit, then the
 *    encoder takes over (and later patches start from its picture);
 *  - keyframe requests still give IDRs; streams that cannot be spliced
 *    (CABAC in High profile) get no patches and decode as before.
 * The frame size, 640x360, is not a multiple of 16 (edge macroblocks).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hfe/stream.h"
#include "test_util.h"

#define W 640
#define H 360
#define MBW ((W + 15) / 16)
#define MBH ((H + 15) / 16)

static uint8_t rgb[W * H * 3];  /* the truth */
static uint8_t xrgb[W * H * 4]; /* what the source hands the stream */

static void to_xrgb(void)
{
	for (size_t i = 0; i < (size_t)W * H; i++) {
		xrgb[4 * i] = rgb[3 * i + 2];
		xrgb[4 * i + 1] = rgb[3 * i + 1];
		xrgb[4 * i + 2] = rgb[3 * i];
		xrgb[4 * i + 3] = 0xff;
	}
}

struct run {
	struct hfe_stream *s;
	struct tu_decoder *dec;
	struct tu_yuv last_ref; /* decoded picture of the encoder's last frame */
	bool have_ref;
	unsigned patches, encoded;
	size_t last_size; /* bytes of the last access unit */
};

/* The next access unit, decoded. Returns 1 patch, 0 encoder frame, -1 none
 * or undecodable. */
static int next_au(struct run *r, struct tu_yuv *pic, bool *key)
{
	struct hfe_stream_au *au = NULL;
	for (int i = 0; i < 1000 && hfe_stream_poll(r->s, &au) != 1; i++)
		nanosleep(&(struct timespec){ 0, 5000000 }, NULL);
	if (!au)
		return -1;
	struct tu_nals nals;
	int rc = tu_decoder_decode(r->dec, au->data, au->size, pic, &nals);
	*key = au->keyframe;
	r->last_size = au->size;
	bool patch = nals.count > 0; /* non-reference slices only (one, or one per changed run) */
	for (int i = 0; i < nals.count; i++)
		patch &= nals.type[i] == TU_NAL_SLICE && !(nals.data[i][0] & 0x60);
	hfe_stream_au_unref(au);
	if (rc != 1)
		return -1;
	if (!patch) {
		tu_yuv_free(&r->last_ref);
		tu_yuv_alloc(&r->last_ref, pic->w, pic->h);
		memcpy(r->last_ref.y, pic->y, (size_t)pic->w * pic->h);
		memcpy(r->last_ref.u, pic->u, (size_t)pic->cw * pic->ch);
		memcpy(r->last_ref.v, pic->v, (size_t)pic->cw * pic->ch);
		r->have_ref = true;
		r->encoded++;
	} else {
		r->patches++;
	}
	return patch;
}

static double psnr_y(const struct tu_yuv *a, const struct tu_yuv *b)
{
	double p[3];
	if (tu_psnr_yuv(a, b, p) < 0)
		return -1;
	return p[0] < p[1] ? (p[0] < p[2] ? p[0] : p[2]) : (p[1] < p[2] ? p[1] : p[2]);
}

/* One plane of a macroblock: the part inside the picture. */
struct mb_plane {
	const uint8_t *a, *b;
	uint32_t stride, w, h;
};

static struct mb_plane mb_plane(const uint8_t *a, const uint8_t *b, uint32_t stride, uint32_t pw,
				uint32_t ph, uint32_t mx, uint32_t my, uint32_t size)
{
	uint32_t x0 = mx * size, y0 = my * size;
	size_t off = (size_t)y0 * stride + x0;
	return (struct mb_plane){ a + off, b + off, stride, x0 + size <= pw ? size : pw - x0,
				  y0 + size <= ph ? size : ph - y0 };
}

static bool plane_equal(struct mb_plane p)
{
	for (uint32_t y = 0; y < p.h; y++)
		if (memcmp(p.a + (size_t)y * p.stride, p.b + (size_t)y * p.stride, p.w))
			return false;
	return true;
}

static double plane_psnr(struct mb_plane p) { return tu_psnr_plane(p.a, p.stride, p.b, p.stride, p.w, p.h); }

/* Macroblocks a patch must have left alone equal the reference exactly
 * (luma and chroma); the changed ones equal the truth to min_db or better
 * in every plane (raw samples: only the colour conversion differs from the
 * reference converter; intra ones are quantised). */
static void check_patch_db(const struct run *r, const struct tu_yuv *pic, const uint8_t *changed,
			   double min_db, const char *what)
{
	struct tu_yuv truth;
	tu_ref_rgb_to_yuv(rgb, W, H, &truth);
	unsigned same_bad = 0, changed_bad = 0;
	double worst = 99;
	for (uint32_t my = 0; my < MBH; my++) {
		for (uint32_t mx = 0; mx < MBW; mx++) {
			bool ch = changed[my * MBW + mx];
			const struct tu_yuv *other = ch ? &truth : &r->last_ref;
			struct mb_plane pl[3] = {
				mb_plane(pic->y, other->y, W, W, H, mx, my, 16),
				mb_plane(pic->u, other->u, pic->cw, pic->cw, pic->ch, mx, my, 8),
				mb_plane(pic->v, other->v, pic->cw, pic->cw, pic->ch, mx, my, 8),
			};
			for (int c = 0; c < 3; c++) {
				if (!ch) {
					same_bad += !plane_equal(pl[c]);
					continue;
				}
				double p = plane_psnr(pl[c]);
				worst = p < worst ? p : worst;
				changed_bad += p < min_db;
			}
		}
	}
	CHECKF(same_bad == 0, "%s: %u planes of skipped macroblocks differ from the reference",
	       what, same_bad);
	CHECKF(changed_bad == 0, "%s: %u planes of changed macroblocks below %.0f dB (worst %.1f)",
	       what, changed_bad, min_db, worst);
	tu_yuv_free(&truth);
}

static void check_patch(const struct run *r, const struct tu_yuv *pic, const uint8_t *changed,
			const char *what)
{
	check_patch_db(r, pic, changed, 40.0, what);
}

static void check_truth(const struct tu_yuv *pic, double min_db, const char *what)
{
	struct tu_yuv truth;
	tu_ref_rgb_to_yuv(rgb, W, H, &truth);
	double p = psnr_y(pic, &truth);
	CHECKF(p >= min_db, "%s: %.1f dB against the source (want >= %.0f)", what, p, min_db);
	tu_yuv_free(&truth);
}

/* Hand the box (x, y, w, h) of rgb to the stream; mark its macroblocks. */
static void report_box(struct run *r, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
		       uint8_t *changed)
{
	to_xrgb();
	hfe_stream_update(r->s, x, y, w, h, xrgb + ((size_t)y * W + x) * 4, W * 4,
			  HFE_FMT_XRGB8888);
	if (changed)
		for (uint32_t my = y / 16; my <= (y + h - 1) / 16; my++)
			for (uint32_t mx = x / 16; mx <= (x + w - 1) / 16; mx++)
				changed[my * MBW + mx] = 1;
}

/* Paint a box of text-like strokes in a new colour and report it. */
static void paint_box(struct run *r, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
		      unsigned seed, uint8_t *changed)
{
	for (uint32_t j = y; j < y + h; j++)
		for (uint32_t i = x; i < x + w; i++) {
			uint8_t *p = rgb + ((size_t)j * W + i) * 3;
			bool ink = ((i * 7 + j * 3 + seed * 11) % 9) < 3;
			p[0] = ink ? (uint8_t)(seed * 37) : 250;
			p[1] = ink ? (uint8_t)(seed * 91) : 248;
			p[2] = ink ? (uint8_t)(200 - seed * 13) : 240;
		}
	report_box(r, x, y, w, h, changed);
}

static void full_frame(struct run *r, unsigned n)
{
	tu_pattern_rgb(rgb, W, H, n);
	to_xrgb();
	hfe_stream_update(r->s, 0, 0, W, H, xrgb, W * 4, HFE_FMT_XRGB8888);
}

static struct hfe_stream *new_stream(uint8_t profile)
{
	struct hfe_stream_params p = { .max_fps = 60 };
	struct hfe_err err;
	hfe_encoder_params_default(&p.enc);
	p.enc.profile = profile;
	struct hfe_stream *s = hfe_stream_new(&p, &err);
	REQUIRE(s != NULL);
	REQUIRE(hfe_stream_resize(s, W, H, &err) == 0);
	hfe_stream_set_consumers(s, 1);
	return s;
}

static void test_patches(void)
{
	struct run r = { .s = new_stream(66), .dec = tu_decoder_new() };
	REQUIRE(r.dec != NULL);
	struct tu_yuv pic = { 0 };
	uint8_t changed[MBW * MBH] = { 0 };
	bool key;

	full_frame(&r, 0);
	CHECKF(next_au(&r, &pic, &key) == 0 && key, "the first access unit is an encoder IDR");
	check_truth(&pic, 35, "IDR");
	tu_yuv_free(&pic);

	/* Two small changes: each a patch, the second carrying both. */
	paint_box(&r, 100, 50, 24, 12, 1, changed);
	CHECKF(next_au(&r, &pic, &key) == 1 && !key, "a small change is a patch frame");
	check_patch(&r, &pic, changed, "patch 1");
	check_truth(&pic, 35, "patch 1");
	tu_yuv_free(&pic);
	paint_box(&r, 624, 352, 16, 8, 2, changed); /* the cropped bottom-right edge */
	CHECKF(next_au(&r, &pic, &key) == 1, "a second small change is a patch frame");
	check_patch(&r, &pic, changed, "patch 2 (both changes)");
	check_truth(&pic, 35, "patch 2");
	tu_yuv_free(&pic);

	/* A full change goes to the encoder; patches then start from it. */
	full_frame(&r, 1);
	CHECKF(next_au(&r, &pic, &key) == 0, "a full-screen change is an encoder frame");
	check_truth(&pic, 35, "encoder frame after patches");
	tu_yuv_free(&pic);
	memset(changed, 0, sizeof(changed));
	paint_box(&r, 300, 200, 8, 8, 3, changed);
	CHECKF(next_au(&r, &pic, &key) == 1, "a patch after an encoder frame");
	check_patch(&r, &pic, changed, "patch 3");
	tu_yuv_free(&pic);

	/* Steady small changes: patches until their sum passes the limit,
	 * then an encoder frame. */
	int kinds[40], n = 0, encoder_at = -1;
	for (; n < 40 && encoder_at < 0; n++) {
		paint_box(&r, 16 + (uint32_t)n * 15, 120, 14, 20, 4 + (unsigned)n, changed);
		kinds[n] = next_au(&r, &pic, &key);
		CHECKF(kinds[n] >= 0, "access unit %d decodes", n);
		if (kinds[n] == 1)
			check_patch(&r, &pic, changed, "steady patch");
		else if (kinds[n] == 0)
			encoder_at = n;
		check_truth(&pic, 35, "steady changes");
		tu_yuv_free(&pic);
	}
	CHECKF(encoder_at > 0 && encoder_at < 40,
	       "accumulated changes go to the encoder (at change %d)", encoder_at);

	hfe_stream_request_keyframe(r.s);
	CHECKF(next_au(&r, &pic, &key) == 0 && key, "a keyframe request is an encoder IDR");
	check_truth(&pic, 35, "IDR on request");
	tu_yuv_free(&pic);
	memset(changed, 0, sizeof(changed));
	paint_box(&r, 0, 0, 10, 10, 9, changed);
	CHECKF(next_au(&r, &pic, &key) == 1, "a patch right after an IDR");
	check_patch(&r, &pic, changed, "patch after IDR");
	tu_yuv_free(&pic);

	struct hfe_stream_stats st;
	hfe_stream_get_stats(r.s, &st);
	CHECKF(st.frames_patched == r.patches && st.frames_encoded == r.patches + r.encoded,
	       "stats: %llu patched of %llu, seen %u patches %u encoder frames",
	       (unsigned long long)st.frames_patched, (unsigned long long)st.frames_encoded,
	       r.patches, r.encoded);
	printf("patch frames: %u, encoder frames: %u; avg build %.0f us vs encode %.0f us\n",
	       r.patches, r.encoded, (double)st.patch_us_total / (st.frames_patched ? st.frames_patched : 1),
	       (double)st.encoder_us_total / (r.encoded ? r.encoded : 1));
	hfe_stream_free(r.s);
	tu_decoder_free(r.dec);
	tu_yuv_free(&r.last_ref);
}

/* A typed character: dark strokes of a 9x15 glyph on a light background,
 * at (x, y); a 32 x box_h box around it is reported as changed (a key
 * press on the desktop damages about 32x32: 2x2 macroblocks). */
static void paint_glyph(struct run *r, uint32_t x, uint32_t y, uint32_t box_h, unsigned seed,
			uint8_t *changed)
{
	static const char *const glyph[15] = {
		"..#####..", ".##...##.", "##.....##", "##.....##", "##.....##",
		"##....###", "##...####", "##..##.##", "##.##..##", "####...##",
		"###....##", "##.....##", "##.....##", ".##...##.", "..#####..",
	};
	for (uint32_t j = y; j < y + box_h && j < H; j++)
		for (uint32_t i = x; i < x + 32 && i < W; i++) {
			uint32_t gx = i - x - 11 + seed % 3, gy = j - y - 8;
			bool ink = gx < 9 && gy < 15 && glyph[gy][gx] == '#';
			uint8_t *p = rgb + ((size_t)j * W + i) * 3;
			p[0] = ink ? 30 : 250;
			p[1] = ink ? (uint8_t)(30 + seed * 40) : 248;
			p[2] = ink ? 40 : 240;
		}
	uint32_t w = x + 32 <= W ? 32 : W - x, h = y + box_h <= H ? box_h : H - y;
	report_box(r, x, y, w, h, changed);
}

/* Random samples around a colour of the seed's: many coefficients per
 * block, so the larger CAVLC codes (levels with suffixes, every nC class)
 * are written, and chroma unlike its neighbours' (prediction edges). */
static void paint_noise(struct run *r, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
			uint32_t seed, uint8_t *changed)
{
	uint32_t state = seed;
	for (uint32_t j = y; j < y + h; j++)
		for (uint32_t i = x; i < x + w; i++) {
			uint8_t *p = rgb + ((size_t)j * W + i) * 3;
			for (int c = 0; c < 3; c++) {
				state = state * 1103515245u + 12345u;
				p[c] = (uint8_t)(((seed * 97u * (c + 1u)) & 0x7f) + (state >> 16 & 0x7f));
			}
		}
	report_box(r, x, y, w, h, changed);
}

/* A flat colour with `dots` random impulses of up to +-amp per channel:
 * few coefficients at scattered positions, so the total_zeros and
 * run_before codes of every count are written. */
static void paint_dots(struct run *r, uint32_t x, uint32_t y, unsigned dots, unsigned amp,
		       uint32_t seed, uint8_t *changed)
{
	uint32_t state = seed;
	for (uint32_t j = y; j < y + 32; j++)
		for (uint32_t i = x; i < x + 32; i++) {
			uint8_t *p = rgb + ((size_t)j * W + i) * 3;
			p[0] = 120;
			p[1] = 130;
			p[2] = 140;
		}
	for (unsigned d = 0; d < dots; d++) {
		state = state * 1103515245u + 12345u;
		uint32_t i = x + (state >> 8) % 32, j = y + (state >> 20) % 32;
		uint8_t *p = rgb + ((size_t)j * W + i) * 3;
		for (int c = 0; c < 3; c++) {
			state = state * 1103515245u + 12345u;
			p[c] = (uint8_t)((int)p[c] + (int)((state >> 16) % (2 * amp + 1)) - (int)amp);
		}
	}
	report_box(r, x, y, 32, 32, changed);
}

/* Start over from an encoder frame of the whole picture. */
static void fresh_reference(struct run *r, unsigned n, uint8_t *changed)
{
	struct tu_yuv pic = { 0 };
	bool key;
	full_frame(r, n);
	CHECKF(next_au(r, &pic, &key) == 0, "a full change is an encoder frame");
	tu_yuv_free(&pic);
	memset(changed, 0, MBW * MBH);
}

/* The next access unit must be a patch matching the source; its size. */
static size_t expect_patch(struct run *r, const uint8_t *changed, double min_db, const char *what)
{
	struct tu_yuv pic = { 0 };
	bool key;
	CHECKF(next_au(r, &pic, &key) == 1, "%s: a patch frame", what);
	check_patch_db(r, &pic, changed, min_db, what);
	tu_yuv_free(&pic);
	return r->last_size;
}

/* Typed characters as patches of intra macroblocks, with x264's PPS as
 * configured (no constrained_intra_pred_flag: a slice per run of changed
 * macroblocks) or with constrained-intra=1 (one slice, intra macroblocks
 * predict from those above too). Returns the bytes of a 2x2 macroblock
 * glyph patch. */
static size_t glyph_patch_bytes(bool constrained_intra)
{
	if (constrained_intra)
		setenv("HFE_X264_PARAMS", "constrained-intra=1", 1);
	struct run r = { .s = new_stream(66), .dec = tu_decoder_new() };
	REQUIRE(r.dec != NULL);
	uint8_t changed[MBW * MBH] = { 0 };
	struct tu_yuv pic = { 0 };
	bool key;
	full_frame(&r, 0);
	CHECK(next_au(&r, &pic, &key) == 0 && key); /* the encoder opens here */
	unsetenv("HFE_X264_PARAMS");
	tu_yuv_free(&pic);

	/* Text on a flat background: the common case. */
	fresh_reference(&r, 1, changed);
	paint_glyph(&r, 160, 96, 32, 0, changed);
	size_t glyph = expect_patch(&r, changed, 40.0, "glyph, 2x2 macroblocks");
	paint_glyph(&r, 160, 96, 32, 1, changed); /* the character typed over */
	expect_patch(&r, changed, 40.0, "second glyph");
	/* Picture corners (no neighbours; the bottom right is cropped). */
	fresh_reference(&r, 2, changed);
	paint_glyph(&r, 0, 0, 32, 2, changed);
	expect_patch(&r, changed, 40.0, "glyph at the top left corner");
	fresh_reference(&r, 3, changed);
	paint_glyph(&r, 624, 344, 32, 3, changed);
	expect_patch(&r, changed, 40.0, "glyph at the bottom right corner");
	/* The last macroblock of a row, then the first of the next: not
	 * neighbours, though adjacent in decoding order. */
	fresh_reference(&r, 4, changed);
	paint_noise(&r, 624, 160, 16, 16, 1, changed);
	expect_patch(&r, changed, 38.0, "row end"); /* one update, one access unit */
	paint_noise(&r, 0, 176, 16, 16, 2, changed);
	expect_patch(&r, changed, 38.0, "row end and next row start");
	/* Noise over 2x1 macroblocks: dense coefficients, large levels; then
	 * glyphs under it (nC and prediction from noisy neighbours). */
	fresh_reference(&r, 5, changed);
	paint_noise(&r, 320, 160, 32, 16, 3, changed);
	expect_patch(&r, changed, 38.0, "noise");
	paint_glyph(&r, 320, 176, 16, 4, changed);
	expect_patch(&r, changed, 38.0, "glyph under noise");
	/* Scattered impulses, from a few to many, small to large. */
	for (unsigned k = 0; k < 64; k++) {
		fresh_reference(&r, 6 + k, changed);
		paint_dots(&r, 64 + 32 * (k % 16), 224 - 64 * (k / 16), 1 + (k * k * 7) % 300,
			   4 + (k * 37) % 124, k, changed);
		char what[32];
		snprintf(what, sizeof(what), "impulses %u", k);
		expect_patch(&r, changed, 38.0, what);
	}
	printf("glyph patch (2x2 macroblocks), %s: %zu bytes (raw: %d bytes of samples)\n",
	       constrained_intra ? "constrained intra, one slice" : "a slice per changed run",
	       glyph, 4 * 384);
	hfe_stream_free(r.s);
	tu_decoder_free(r.dec);
	tu_yuv_free(&r.last_ref);
	return glyph;
}

static void test_intra_patches(void)
{
	size_t slices = glyph_patch_bytes(false), constrained = glyph_patch_bytes(true);
	CHECKF(slices * 4 <= 4 * 384 && constrained * 4 <= 4 * 384,
	       "glyph patches of %zu / %zu bytes, raw macroblocks %d (want 4x smaller)", slices,
	       constrained, 4 * 384);
}

/* High profile: CABAC, which patch frames do not speak. */
static void test_unspliceable(void)
{
	struct run r = { .s = new_stream(100), .dec = tu_decoder_new() };
	REQUIRE(r.dec != NULL);
	struct tu_yuv pic = { 0 };
	bool key;
	full_frame(&r, 0);
	CHECK(next_au(&r, &pic, &key) == 0 && key);
	tu_yuv_free(&pic);
	for (unsigned i = 0; i < 3; i++) {
		paint_box(&r, 50 + i * 20, 50, 10, 10, i, NULL);
		CHECKF(next_au(&r, &pic, &key) == 0, "CABAC stream: change %u is an encoder frame", i);
		check_truth(&pic, 35, "CABAC stream");
		tu_yuv_free(&pic);
	}
	struct hfe_stream_stats st;
	hfe_stream_get_stats(r.s, &st);
	CHECK(st.frames_patched == 0);
	hfe_stream_free(r.s);
	tu_decoder_free(r.dec);
	tu_yuv_free(&r.last_ref);
}

int main(void)
{
	test_patches();
	test_intra_patches();
	test_unspliceable();
	return tu_finish("test_patch_frames");
}
