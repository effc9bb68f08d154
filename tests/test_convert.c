/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfe_image_wrap / hfe_convert against an independent reference.
 *
 * Every input format x {I420, NV12} output, at a tight size and at a size
 * with odd stride padding on both sides. RGB input must match the plain-C
 * BT.601 reference (PSNR Y >= 40, U/V >= 35 dB) and must not match the
 * reference with R and B swapped; YUV input must come out bit exact. Stride
 * padding of the destination must stay untouched.
 */
#include <string.h>

#include "hfe/image.h"
#include "test_util.h"

#define CANARY 0x5B
#define GUARD 64

static const uint32_t in_fmts[] = {
	HFE_FMT_ARGB8888, HFE_FMT_XRGB8888, HFE_FMT_ABGR8888,
	HFE_FMT_XBGR8888, HFE_FMT_NV12,     HFE_FMT_I420,
};
static const uint32_t out_fmts[] = { HFE_FMT_I420, HFE_FMT_NV12 };

static bool is_rgb(uint32_t f)
{
	return tu_bpp(f) == 4;
}

/* Destination buffer in wire layout + guard, all canary. */
static uint8_t *dst_alloc(uint32_t fmt, uint32_t w, uint32_t h, uint32_t stride, size_t *size)
{
	uint8_t *b;

	*size = tu_frame_size(fmt, w, h, stride);
	b = malloc(*size + GUARD);
	REQUIRE(b);
	memset(b, CANARY, *size + GUARD);
	return b;
}

/* Bytes outside the picture (row padding, guard) must be untouched. */
static bool canaries_intact(const struct hfe_image *img, const uint8_t *buf, size_t size)
{
	uint32_t w = img->width, h = img->height, cw = (w + 1) / 2, ch = (h + 1) / 2;
	const uint32_t used[3] = { w, img->format == HFE_FMT_NV12 ? 2 * cw : cw, cw };
	const uint32_t rows[3] = { h, ch, ch };
	int planes = img->format == HFE_FMT_NV12 ? 2 : 3;

	for (int p = 0; p < planes; p++) {
		for (uint32_t y = 0; y < rows[p]; y++) {
			const uint8_t *r = img->plane[p] + (size_t)y * img->stride[p];

			for (uint32_t x = used[p]; x < img->stride[p]; x++) {
				if (r[x] != CANARY)
					return false;
			}
		}
	}
	for (size_t i = size; i < size + GUARD; i++) {
		if (buf[i] != CANARY)
			return false;
	}
	return true;
}

static void swap_rb(uint8_t *rgb, size_t pixels)
{
	for (size_t i = 0; i < pixels; i++) {
		uint8_t t = rgb[3 * i];

		rgb[3 * i] = rgb[3 * i + 2];
		rgb[3 * i + 2] = t;
	}
}

static void test_wrap_layout(void)
{
	static uint8_t buf[4096];
	struct hfe_image img;

	printf("wrap: plane layout as on the wire\n");
	hfe_image_wrap(&img, HFE_FMT_XRGB8888, 16, 16, 72, buf);
	CHECK(img.plane[0] == buf && img.stride[0] == 72 && img.plane[1] == NULL);
	hfe_image_wrap(&img, HFE_FMT_NV12, 16, 16, 20, buf);
	CHECK(img.plane[0] == buf && img.stride[0] == 20);
	CHECK(img.plane[1] == buf + 20 * 16 && img.stride[1] == 20 && img.plane[2] == NULL);
	/* I420 with an odd stride: chroma stride (21 + 1) / 2 = 11. */
	hfe_image_wrap(&img, HFE_FMT_I420, 16, 16, 21, buf);
	CHECK(img.plane[0] == buf && img.stride[0] == 21);
	CHECK(img.plane[1] == buf + 21 * 16 && img.stride[1] == 11);
	CHECK(img.plane[2] == buf + 21 * 16 + 11 * 8 && img.stride[2] == 11);
	CHECK(img.width == 16 && img.height == 16 && img.format == HFE_FMT_I420);
}

static void test_pair(uint32_t in, uint32_t out, uint32_t w, uint32_t h, uint32_t pad)
{
	uint32_t sstride = w * tu_bpp(in) + pad, dstride = w + (pad ? pad + 2 : 0);
	uint8_t *rgb = malloc((size_t)w * h * 3), *src;
	struct tu_yuv ref, swapped, got;
	struct hfe_image si, di;
	double ps[3], pw[3];
	size_t dsize;
	uint8_t *dbuf;

	REQUIRE(rgb);
	tu_pattern_rgb(rgb, w, h, 7);
	tu_ref_rgb_to_yuv(rgb, w, h, &ref);
	src = malloc(tu_frame_size(in, w, h, sstride));
	REQUIRE(src);
	tu_write_frame(in, w, h, sstride, rgb, src);

	dbuf = dst_alloc(out, w, h, dstride, &dsize);
	hfe_image_wrap(&si, in, w, h, sstride, src);
	hfe_image_wrap(&di, out, w, h, dstride, dbuf);
	CHECK(hfe_convert(&si, &di) == 0);
	CHECKF(canaries_intact(&di, dbuf, dsize), "%s -> %s %ux%u: wrote outside the picture",
	       tu_fmt_name(in), tu_fmt_name(out), w, h);
	REQUIRE(tu_yuv_from_image(&got, &di) == 0);
	REQUIRE(tu_psnr_yuv(&got, &ref, ps) == 0);

	if (is_rgb(in)) {
		swap_rb(rgb, (size_t)w * h);
		tu_ref_rgb_to_yuv(rgb, w, h, &swapped);
		tu_psnr_yuv(&got, &swapped, pw);
		printf("  %s -> %s %3ux%-3u stride %4u/%-4u  PSNR Y %.1f U %.1f V %.1f"
		       "  (vs R/B swapped: U %.1f V %.1f)\n",
		       tu_fmt_name(in), tu_fmt_name(out), w, h, sstride, dstride, ps[0], ps[1],
		       ps[2], pw[1], pw[2]);
		CHECKF(ps[0] >= 40.0, "%s->%s Y %.2f", tu_fmt_name(in), tu_fmt_name(out), ps[0]);
		CHECKF(ps[1] >= 35.0, "%s->%s U %.2f", tu_fmt_name(in), tu_fmt_name(out), ps[1]);
		CHECKF(ps[2] >= 35.0, "%s->%s V %.2f", tu_fmt_name(in), tu_fmt_name(out), ps[2]);
		/* The content tells the channel orders apart: a converter
		 * reading R and B the wrong way round lands far from the
		 * reference and close to the swapped one. */
		CHECKF(pw[1] < 30.0 && pw[2] < 30.0, "output matches the R/B-swapped reference");
		tu_yuv_free(&swapped);
	} else {
		printf("  %s -> %s %3ux%-3u stride %4u/%-4u  %s\n", tu_fmt_name(in),
		       tu_fmt_name(out), w, h, sstride, dstride,
		       ps[0] == 100.0 && ps[1] == 100.0 && ps[2] == 100.0 ? "bit exact"
									   : "DIFFERS");
		CHECKF(ps[0] == 100.0 && ps[1] == 100.0 && ps[2] == 100.0,
		       "%s->%s not exact: %.1f %.1f %.1f", tu_fmt_name(in), tu_fmt_name(out), ps[0],
		       ps[1], ps[2]);
	}

	tu_yuv_free(&got);
	tu_yuv_free(&ref);
	free(dbuf);
	free(src);
	free(rgb);
}

/* Solid colours through each RGB format must give the reference YUV of that
 * colour within +-2 (and so cannot confuse red with blue). */
static void test_solid_colours(void)
{
	static const uint8_t colours[][3] = {
		{ 255, 0, 0 }, { 0, 0, 255 }, { 0, 255, 0 }, { 255, 255, 255 }, { 0, 0, 0 },
		{ 200, 120, 30 },
	};
	const uint32_t w = 32, h = 16;

	printf("solid colours through every RGB format\n");
	for (size_t f = 0; f < 4; f++) {
		for (size_t c = 0; c < sizeof(colours) / sizeof(colours[0]); c++) {
			for (size_t o = 0; o < 2; o++) {
				uint8_t rgb[32 * 16 * 3], src[32 * 16 * 4], dst[32 * 16 * 2];
				struct hfe_image si, di;
				struct tu_yuv got;
				uint8_t ey, eu, ev;

				for (size_t i = 0; i < (size_t)w * h; i++)
					memcpy(rgb + 3 * i, colours[c], 3);
				tu_write_frame(in_fmts[f], w, h, w * 4, rgb, src);
				hfe_image_wrap(&si, in_fmts[f], w, h, w * 4, src);
				hfe_image_wrap(&di, out_fmts[o], w, h, w, dst);
				CHECK(hfe_convert(&si, &di) == 0);
				REQUIRE(tu_yuv_from_image(&got, &di) == 0);
				tu_ref_pixel(colours[c][0], colours[c][1], colours[c][2], &ey, &eu,
					     &ev);
				int dy = got.y[w + 5] - ey, du = got.u[9] - eu, dv = got.v[9] - ev;

				CHECKF(abs(dy) <= 2 && abs(du) <= 2 && abs(dv) <= 2,
				       "%s->%s rgb(%u,%u,%u): got %u/%u/%u want %u/%u/%u",
				       tu_fmt_name(in_fmts[f]), tu_fmt_name(out_fmts[o]),
				       colours[c][0], colours[c][1], colours[c][2], got.y[w + 5],
				       got.u[9], got.v[9], ey, eu, ev);
				tu_yuv_free(&got);
			}
		}
	}
}

static void test_refused(void)
{
	static uint8_t a[64 * 64 * 4], b[64 * 64 * 4];
	struct hfe_image si, di;

	printf("unsupported pairs are refused\n");
	hfe_image_wrap(&si, HFE_FMT_XRGB8888, 64, 64, 256, a);
	hfe_image_wrap(&di, HFE_FMT_XRGB8888, 64, 64, 256, b);
	CHECK(hfe_convert(&si, &di) == -1); /* RGB destination */
	hfe_image_wrap(&di, HFE_FMT_NV12, 32, 64, 32, b);
	CHECK(hfe_convert(&si, &di) == -1); /* size mismatch */
	hfe_image_wrap(&si, HFE_FOURCC('Y', 'U', 'Y', 'V'), 32, 64, 64, a);
	CHECK(hfe_convert(&si, &di) == -1); /* unknown source */
	CHECK(si.plane[0] == NULL);
	hfe_image_wrap(&si, HFE_FMT_NV12, 32, 64, 32, a);
	di.plane[1] = NULL;
	CHECK(hfe_convert(&si, &di) == -1); /* missing plane */
}

/* Informational: the cost of the conversions the daemon does per frame. */
static void report_speed(void)
{
	const uint32_t w = 1920, h = 1080, runs = 20;
	const uint32_t srcs[] = { HFE_FMT_XRGB8888, HFE_FMT_NV12 };

	printf("speed at 1080p (informational)\n");
	for (size_t s = 0; s < 2; s++) {
		uint32_t stride = w * tu_bpp(srcs[s]);
		uint8_t *src = tu_pattern_frame(srcs[s], w, h, stride, 1);

		for (size_t o = 0; o < 2; o++) {
			size_t dsize = tu_frame_size(out_fmts[o], w, h, w);
			uint8_t *dst = malloc(dsize);
			struct hfe_image si, di;
			uint64_t best = UINT64_MAX;

			REQUIRE(dst);
			hfe_image_wrap(&si, srcs[s], w, h, stride, src);
			hfe_image_wrap(&di, out_fmts[o], w, h, w, dst);
			for (uint32_t i = 0; i < runs; i++) {
				uint64_t t0 = tu_now_ns();

				uint64_t d;

				CHECK(hfe_convert(&si, &di) == 0);
				d = tu_now_ns() - t0;
				if (d < best)
					best = d;
			}
			printf("  %s -> %s: %.3f ms (best of %u)\n", tu_fmt_name(srcs[s]),
			       tu_fmt_name(out_fmts[o]), best / 1e6, runs);
			free(dst);
		}
		free(src);
	}
}

int main(void)
{
	static const struct {
		uint32_t w, h, pad;
	} sizes[] = {
		{ 320, 240, 0 }, /* tight strides */
		{ 178, 98, 13 }, /* odd padding: stride > width * bpp */
	};

	test_wrap_layout();
	printf("every input x output format vs the reference\n");
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		for (size_t i = 0; i < sizeof(in_fmts) / sizeof(in_fmts[0]); i++) {
			for (size_t o = 0; o < 2; o++)
				test_pair(in_fmts[i], out_fmts[o], sizes[s].w, sizes[s].h,
					  sizes[s].pad);
		}
	}
	test_solid_colours();
	test_refused();
	report_speed();
	return tu_finish("test_convert");
}
