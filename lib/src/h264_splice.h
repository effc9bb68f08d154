/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Patch frames for small screen changes, spliced between an H.264 encoder's
 * own frames.
 *
 * A full encoder run costs the same few milliseconds at 1080p whether one
 * character or the whole screen changed (x264's per-frame work scales with
 * the picture, not the change). For a small change the stream instead sends
 * a patch frame built here in microseconds: a P picture whose changed
 * macroblocks are intra coded (h264_intra.h; a typed character, 2x2
 * macroblocks, ~0.27 kB), or I_PCM (raw samples, 384 bytes each) where the
 * PPS does not let us switch the deblocking filter off, and whose other
 * macroblocks are P_Skip (copied from the reference). Patch frames are non-reference
 * pictures, so the decoder's reference stays the encoder's last frame, which
 * is exactly what the encoder predicts its next frame from: the two never
 * drift apart, and the encoder's next frame carries every change since.
 *
 * To make room for them the encoder's own access units are rewritten in two
 * fixed places: the SPS gets picture order count type 0 (x264 uses type 2,
 * which forbids two non-reference pictures in a row) and every slice header
 * gets the matching pic_order_cnt_lsb. Nothing else is touched. Streams this
 * cannot handle (CABAC, interlace, slice groups, weighted prediction, ...)
 * pass through unchanged and get no patch frames.
 */
#ifndef HFE_H264_SPLICE_H
#define HFE_H264_SPLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hfe/encoder.h"
#include "hfe/image.h"

struct h264_splicer;

struct h264_splicer *h264_splicer_new(void);
void h264_splicer_free(struct h264_splicer *sp);

/* Pass one encoder access unit (Annex B) through. On success *pkt is
 * replaced by the rewritten access unit (the original is released) or left
 * as it is; -1 only when out of memory (*pkt untouched). */
int h264_splice_encoder_au(struct h264_splicer *sp, struct hfe_packet *pkt);

/* Can a patch frame follow now (supported stream, an IDR seen)? And the
 * coded size in macroblocks. */
bool h264_splicer_can_patch(const struct h264_splicer *sp, uint32_t *mb_w, uint32_t *mb_h);

/* Build a patch frame from `pic` (I420 or NV12, the encoder's input size):
 * macroblock i (raster order) is sent intra coded (or raw) when changed[i]
 * is non-zero, else skipped. 0 with *pkt filled, -1 (out of memory, or
 * can_patch false). */
int h264_splice_patch(struct h264_splicer *sp, const struct hfe_image *pic, const uint8_t *changed,
		      struct hfe_packet *pkt);

#endif
