/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A frame source that draws a moving test picture into a scanout stream, the
 * way a display would: a static background once, then per tick only the
 * rectangles that changed (a bouncing box, a frame counter). For tests, the
 * benchmark and demos where no VM is at hand; it drives the same stream code
 * as the QEMU and D-Bus sources.
 */
#ifndef HFE_TESTSRC_H
#define HFE_TESTSRC_H

#include <stdint.h>

#include "hfe/stream.h"

#ifdef __cplusplus
extern "C" {
#endif

struct hfe_testsrc;

/* Starts a thread that resizes `stream` to width x height and updates it
 * `fps` times a second (0 = draw once, then stay static). */
struct hfe_testsrc *hfe_testsrc_start(struct hfe_stream *stream, uint32_t width,
				      uint32_t height, uint32_t fps, struct hfe_err *err);
void hfe_testsrc_stop(struct hfe_testsrc *src);

/* A pointer at x, y over the picture (input to a test scanout): the source
 * shows its hardware cursor there, the way a VM's display moves its cursor
 * plane: an arrow, and an I-beam over the top 32 rows, each defined again
 * whenever the pointer crosses, as a guest redefines its cursor. Until the
 * first call it has none, so pictures stay hfe_testsrc_render's. */
void hfe_testsrc_pointer(struct hfe_testsrc *src, uint32_t x, uint32_t y);

/* Draw the whole picture of tick `tick` into a BGRx buffer (what the stream
 * holds after that tick), e.g. to compare decoded output against. */
void hfe_testsrc_render(uint8_t *bgrx, uint32_t stride, uint32_t width, uint32_t height,
			uint64_t tick);

#ifdef __cplusplus
}
#endif
#endif
