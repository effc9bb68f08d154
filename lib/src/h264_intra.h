/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Intra-coded macroblocks for patch frames (h264_splice.c): I_NxN with
 * every 4x4 luma block and the chroma in DC prediction, CAVLC residuals.
 * A glyph-sized change costs a few tens of bytes per macroblock instead of
 * I_PCM's 384.
 *
 * Intra prediction reads the neighbouring macroblocks' decoded samples.
 * In a patch frame the neighbours are P_Skip copies of the encoder's lossy
 * picture, which we do not have; so the caller keeps them out: by slices
 * (a neighbour in another slice is not available) or, when the PPS sets
 * constrained_intra_pred_flag, because inter neighbours are then not
 * available for intra prediction. The remaining neighbours are our own
 * intra macroblocks, whose reconstruction is computed here exactly as the
 * decoder does (ITU-T H.264 8.3.1.2.3, 8.3.4, 8.5), and the picture edge.
 * The slice must switch the deblocking filter off, so the decoded samples
 * are exactly that reconstruction.
 */
#ifndef HFE_H264_INTRA_H
#define HFE_H264_INTRA_H

#include <stdbool.h>
#include <stdint.h>

#include "h264_bitwriter.h"

/* What a macroblock leaves for the ones coded after it. */
struct h264_intra_mb {
	bool intra;            /* false: skipped (inter), no samples to predict from */
	uint8_t tc[4][4];      /* luma total_coeff per 4x4 block, [y][x] */
	uint8_t tc_c[2][2][2]; /* chroma AC total_coeff, [Cb/Cr][y][x] */
	uint8_t y[16][16];     /* reconstruction */
	uint8_t c[2][8][8];
};

struct h264_intra_params {
	int qp;                /* luma QP of the slice, 0..51 */
	int chroma_qp_offset[2]; /* chroma_qp_index_offset, second_chroma_qp_index_offset */
	bool transform_8x8_mode; /* the PPS's: transform_size_8x8_flag is then sent */
};

/* A neighbour that is "skipped": available for nC (total_coeff 0), not for
 * prediction. */
void h264_intra_mb_skipped(struct h264_intra_mb *mb);

/* Write macroblock_layer() of macroblock `src` (16x16 luma, then 8x8 Cb and
 * 8x8 Cr) as I_NxN in a P slice, whose QP is p->qp (mb_qp_delta 0). left
 * and top are the neighbours (NULL when not available: outside the picture
 * or the slice); *out receives this macroblock's state. */
void h264_intra_write_mb(struct bw *w, const struct h264_intra_params *p, const uint8_t src[384],
			 const struct h264_intra_mb *left, const struct h264_intra_mb *top,
			 struct h264_intra_mb *out);

#endif
