/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A view of a picture in memory (no ownership) and colour conversion. */
#ifndef HFE_IMAGE_H
#define HFE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "hfe/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

struct hfe_image {
	uint32_t format; /* HFE_FMT_* */
	uint32_t width;
	uint32_t height;
	uint8_t *plane[3];
	uint32_t stride[3];
};

/* Describe a frame laid out as on the wire (see hfe_frame_size) starting at
 * data. The caller has validated the size with hfe_frame_size. */
void hfe_image_wrap(struct hfe_image *img, uint32_t format, uint32_t width, uint32_t height,
		    uint32_t stride, const uint8_t *data);

/*
 * Convert src into dst (same width/height). dst->format must be HFE_FMT_I420
 * or HFE_FMT_NV12; src any supported format (BT.601 limited range for RGB
 * input, as x264 and browsers assume by default). Strides are honoured.
 * Returns 0 or -1 if the pair is not supported.
 */
int hfe_convert(const struct hfe_image *src, struct hfe_image *dst);

#ifdef __cplusplus
}
#endif
#endif
