/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Image views and colour conversion to the encoders' 4:2:0 formats.
 *
 * Everything is done by libyuv, which has SIMD row functions for every pair
 * used here; there are no per-pixel loops in this file. libyuv's RGB -> YUV
 * matrices are BT.601 limited range, which is what x264 signals by default
 * and what browsers assume for an untagged stream.
 *
 * Byte orders: DRM "AR24"/"XR24" are B,G,R,A in memory, which libyuv calls
 * ARGB (it names formats by the little-endian 32-bit word); DRM "AB24"/"XB24"
 * are R,G,B,A in memory, libyuv's ABGR. The alpha/x byte is ignored.
 */
#include <limits.h>
#include <string.h>

#include <libyuv.h>

#include "hfe/image.h"

void hfe_image_wrap(struct hfe_image *img, uint32_t format, uint32_t width, uint32_t height,
		    uint32_t stride, const uint8_t *data)
{
	/* The view does not own or write the pixels; hfe_image has no const
	 * variant, so the const is dropped here once. */
	uint8_t *p = (uint8_t *)(uintptr_t)data;
	size_t luma = (size_t)stride * height;

	memset(img, 0, sizeof(*img));
	img->format = format;
	img->width = width;
	img->height = height;

	switch (format) {
	case HFE_FMT_ARGB8888:
	case HFE_FMT_XRGB8888:
	case HFE_FMT_ABGR8888:
	case HFE_FMT_XBGR8888:
		img->plane[0] = p;
		img->stride[0] = stride;
		break;
	case HFE_FMT_NV12:
		img->plane[0] = p;
		img->stride[0] = stride;
		img->plane[1] = p + luma;
		img->stride[1] = stride;
		break;
	case HFE_FMT_I420: {
		uint32_t cstride = stride / 2 + (stride & 1);
		size_t chroma = (size_t)cstride * (height / 2 + (height & 1));

		img->plane[0] = p;
		img->stride[0] = stride;
		img->plane[1] = p + luma;
		img->stride[1] = cstride;
		img->plane[2] = p + luma + chroma;
		img->stride[2] = cstride;
		break;
	}
	default:
		/* Unknown format: an empty view that hfe_convert refuses. */
		break;
	}
}

static int planes_of(uint32_t format)
{
	switch (format) {
	case HFE_FMT_ARGB8888:
	case HFE_FMT_XRGB8888:
	case HFE_FMT_ABGR8888:
	case HFE_FMT_XBGR8888:
		return 1;
	case HFE_FMT_NV12:
		return 2;
	case HFE_FMT_I420:
		return 3;
	default:
		return 0;
	}
}

/* libyuv takes int sizes and strides; reject what does not fit and views
 * with missing planes rather than crash inside SIMD code. */
static bool image_ok(const struct hfe_image *img)
{
	int n = planes_of(img->format);

	if (n == 0 || img->width == 0 || img->height == 0 || img->width > INT_MAX ||
	    img->height > INT_MAX)
		return false;
	for (int i = 0; i < n; i++) {
		if (!img->plane[i] || img->stride[i] > INT_MAX)
			return false;
	}
	return true;
}

int hfe_convert(const struct hfe_image *src, struct hfe_image *dst)
{
	const bool to_nv12 = dst->format == HFE_FMT_NV12;
	int w, h, r;

	if (dst->format != HFE_FMT_I420 && dst->format != HFE_FMT_NV12)
		return -1;
	if (src->width != dst->width || src->height != dst->height)
		return -1;
	if (!image_ok(src) || !image_ok(dst))
		return -1;

	w = (int)src->width;
	h = (int)src->height;

	/* Short names for the planes and strides. */
	const uint8_t *s0 = src->plane[0], *s1 = src->plane[1], *s2 = src->plane[2];
	const int ss0 = (int)src->stride[0], ss1 = (int)src->stride[1], ss2 = (int)src->stride[2];
	uint8_t *d0 = dst->plane[0], *d1 = dst->plane[1], *d2 = dst->plane[2];
	const int ds0 = (int)dst->stride[0], ds1 = (int)dst->stride[1], ds2 = (int)dst->stride[2];

	switch (src->format) {
	case HFE_FMT_ARGB8888:
	case HFE_FMT_XRGB8888:
		r = to_nv12 ? ARGBToNV12(s0, ss0, d0, ds0, d1, ds1, w, h)
			    : ARGBToI420(s0, ss0, d0, ds0, d1, ds1, d2, ds2, w, h);
		break;
	case HFE_FMT_ABGR8888:
	case HFE_FMT_XBGR8888:
		r = to_nv12 ? ABGRToNV12(s0, ss0, d0, ds0, d1, ds1, w, h)
			    : ABGRToI420(s0, ss0, d0, ds0, d1, ds1, d2, ds2, w, h);
		break;
	case HFE_FMT_NV12:
		r = to_nv12 ? NV12Copy(s0, ss0, s1, ss1, d0, ds0, d1, ds1, w, h)
			    : NV12ToI420(s0, ss0, s1, ss1, d0, ds0, d1, ds1, d2, ds2, w, h);
		break;
	case HFE_FMT_I420:
		r = to_nv12 ? I420ToNV12(s0, ss0, s1, ss1, s2, ss2, d0, ds0, d1, ds1, w, h)
			    : I420Copy(s0, ss0, s1, ss1, s2, ss2, d0, ds0, d1, ds1, d2, ds2, w, h);
		break;
	default:
		return -1;
	}
	return r == 0 ? 0 : -1;
}
