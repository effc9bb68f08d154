/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The known pictures of the end-to-end tests, compiled into both the guest
 * tool (static, no FFmpeg, no libm) and the host checkers, so that what the
 * guest sends and what the host expects come from the same code.
 *
 * Integer arithmetic only: the guest and the host produce bit-identical RGB
 * whatever the compiler or CPU. The host compares decoded pictures against
 * this RGB through its own reference conversion (tests/test_util.c), not
 * against e2e_rgb_to_nv12 below.
 */
#ifndef HFE_E2E_PATTERN_H
#define HFE_E2E_PATTERN_H

#include <stddef.h>
#include <stdint.h>

/* DRM fourccs the guest tool can send (same values as hfe/wire.h). */
#define E2E_FMT_XR24 0x34325258u /* bytes B,G,R,x */
#define E2E_FMT_NV12 0x3231564Eu

/* Packed R,G,B (w*h*3 bytes) of moving pattern frame `t`: gradients that
 * drift with t, a bouncing box with a border, and a band of sharp
 * "glyphs" that grows. Every frame differs from the previous one. */
void e2e_pattern_rgb(uint8_t *rgb, uint32_t w, uint32_t h, uint32_t t);

/*
 * Draw-mode schedule: frame k of a run that draws n_full full-screen
 * changes and then small changes. k < n_full: e2e_pattern_rgb(k).
 * k >= n_full: frame n_full - 1 with only a small box
 * (E2E_SMALL_BOX x E2E_SMALL_BOX) changed at e2e_small_box_pos(k - n_full).
 */
#define E2E_SMALL_BOX 32u
void e2e_draw_rgb(uint8_t *rgb, uint32_t w, uint32_t h, uint32_t k, uint32_t n_full);
void e2e_small_box_pos(uint32_t w, uint32_t h, uint32_t i, uint32_t *x, uint32_t *y);

/* Outputs mode (hot-plugged outputs): picture k of output id is
 * e2e_pattern_rgb(E2E_OUTPUT_T(id, k)); the one left on screen is
 * k = E2E_OUTPUT_FINAL. Distinct per output. */
#define E2E_OUTPUT_FINAL 999u
#define E2E_OUTPUT_T(id, k) ((uint32_t)(id) * 1000u + (uint32_t)(k))

/* The hardware cursor of hfe-guest mode `cursor`: E2E_CURSOR_SIZE square,
 * opaque, pixel (x, y) from e2e_cursor_px, hot spot E2E_CURSOR_HOT_X/_Y,
 * moved to each of the E2E_CURSOR_MOVES positions of e2e_cursor_at (the
 * image's top-left corner, in the 640x480 console's pixels). */
#define E2E_CURSOR_SIZE 64u
#define E2E_CURSOR_HOT_X 5u
#define E2E_CURSOR_HOT_Y 7u
#define E2E_CURSOR_MOVES 3u
void e2e_cursor_px(uint32_t x, uint32_t y, uint8_t bgra[4]);
void e2e_cursor_at(uint32_t i, uint32_t *x, uint32_t *y);

/* Bytes of a frame in wire layout (NV12: UV plane at stride * h). 0 if the
 * format is not one of E2E_FMT_*. */
size_t e2e_frame_size(uint32_t format, uint32_t h, uint32_t stride);
/* Smallest stride of plane 0 (w*4 or w). */
uint32_t e2e_min_stride(uint32_t format, uint32_t w);

/* Packed RGB -> XR24 rows (x byte 0xFF) / NV12 (BT.601 limited range,
 * integer approximation, chroma from each 2x2 block's average). Padding
 * bytes past the width are left as they are. */
void e2e_rgb_to_xr24(const uint8_t *rgb, uint32_t w, uint32_t h, uint8_t *dst, uint32_t stride);
void e2e_rgb_to_nv12(const uint8_t *rgb, uint32_t w, uint32_t h, uint8_t *dst, uint32_t stride);

/* "XR24" / "NV12" -> fourcc; 0 if unknown. */
uint32_t e2e_format_parse(const char *s);
const char *e2e_format_name(uint32_t format);

#endif
