/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * I_NxN macroblocks for patch frames, see h264_intra.h. Section and table
 * numbers are those of ITU-T H.264: 7.3.5 macroblock_layer(), 8.3.1.2.3 and
 * 8.3.4 DC prediction, 8.5.12 scaling and the 4x4 inverse transform,
 * 8.5.11 chroma DC, 9.2 CAVLC.
 */
#include "h264_intra.h"

#include <string.h>

#define MB_TYPE_P_I_NXN 5 /* I_NxN (0) after the 5 P macroblock types */

/* ---- CAVLC tables (9.2) ---- */

struct vlc {
	uint8_t len, code;
};

/* Table 9-5, coeff_token by nC class (0 <= nC < 2, 2 <= nC < 4,
 * 4 <= nC < 8), [TotalCoeff][TrailingOnes]; 8 <= nC is a 6-bit code. */
static const struct vlc coeff_token[3][17][4] = {
	{ { { 1, 1 } }, { { 6, 5 }, { 2, 1 } }, { { 8, 7 }, { 6, 4 }, { 3, 1 } },
	  { { 9, 7 }, { 8, 6 }, { 7, 5 }, { 5, 3 } }, { { 10, 7 }, { 9, 6 }, { 8, 5 }, { 6, 3 } },
	  { { 11, 7 }, { 10, 6 }, { 9, 5 }, { 7, 4 } }, { { 13, 15 }, { 11, 6 }, { 10, 5 }, { 8, 4 } },
	  { { 13, 11 }, { 13, 14 }, { 11, 5 }, { 9, 4 } }, { { 13, 8 }, { 13, 10 }, { 13, 13 }, { 10, 4 } },
	  { { 14, 15 }, { 14, 14 }, { 13, 9 }, { 11, 4 } }, { { 14, 11 }, { 14, 10 }, { 14, 13 }, { 13, 12 } },
	  { { 15, 15 }, { 15, 14 }, { 14, 9 }, { 14, 12 } }, { { 15, 11 }, { 15, 10 }, { 15, 13 }, { 14, 8 } },
	  { { 16, 15 }, { 15, 1 }, { 15, 9 }, { 15, 12 } }, { { 16, 11 }, { 16, 14 }, { 16, 13 }, { 15, 8 } },
	  { { 16, 7 }, { 16, 10 }, { 16, 9 }, { 16, 12 } }, { { 16, 4 }, { 16, 6 }, { 16, 5 }, { 16, 8 } } },
	{ { { 2, 3 } }, { { 6, 11 }, { 2, 2 } }, { { 6, 7 }, { 5, 7 }, { 3, 3 } },
	  { { 7, 7 }, { 6, 10 }, { 6, 9 }, { 4, 5 } }, { { 8, 7 }, { 6, 6 }, { 6, 5 }, { 4, 4 } },
	  { { 8, 4 }, { 7, 6 }, { 7, 5 }, { 5, 6 } }, { { 9, 7 }, { 8, 6 }, { 8, 5 }, { 6, 8 } },
	  { { 11, 15 }, { 9, 6 }, { 9, 5 }, { 6, 4 } }, { { 11, 11 }, { 11, 14 }, { 11, 13 }, { 7, 4 } },
	  { { 12, 15 }, { 11, 10 }, { 11, 9 }, { 9, 4 } }, { { 12, 11 }, { 12, 14 }, { 12, 13 }, { 11, 12 } },
	  { { 12, 8 }, { 12, 10 }, { 12, 9 }, { 11, 8 } }, { { 13, 15 }, { 13, 14 }, { 13, 13 }, { 12, 12 } },
	  { { 13, 11 }, { 13, 10 }, { 13, 9 }, { 13, 12 } }, { { 13, 7 }, { 14, 11 }, { 13, 6 }, { 13, 8 } },
	  { { 14, 9 }, { 14, 8 }, { 14, 10 }, { 13, 1 } }, { { 14, 7 }, { 14, 6 }, { 14, 5 }, { 14, 4 } } },
	{ { { 4, 15 } }, { { 6, 15 }, { 4, 14 } }, { { 6, 11 }, { 5, 15 }, { 4, 13 } },
	  { { 6, 8 }, { 5, 12 }, { 5, 14 }, { 4, 12 } }, { { 7, 15 }, { 5, 10 }, { 5, 11 }, { 4, 11 } },
	  { { 7, 11 }, { 5, 8 }, { 5, 9 }, { 4, 10 } }, { { 7, 9 }, { 6, 14 }, { 6, 13 }, { 4, 9 } },
	  { { 7, 8 }, { 6, 10 }, { 6, 9 }, { 4, 8 } }, { { 8, 15 }, { 7, 14 }, { 7, 13 }, { 5, 13 } },
	  { { 8, 11 }, { 8, 14 }, { 7, 10 }, { 6, 12 } }, { { 9, 15 }, { 8, 10 }, { 8, 13 }, { 7, 12 } },
	  { { 9, 11 }, { 9, 14 }, { 8, 9 }, { 8, 12 } }, { { 9, 8 }, { 9, 10 }, { 9, 13 }, { 8, 8 } },
	  { { 10, 13 }, { 9, 7 }, { 9, 9 }, { 9, 12 } }, { { 10, 9 }, { 10, 12 }, { 10, 11 }, { 10, 10 } },
	  { { 10, 5 }, { 10, 8 }, { 10, 7 }, { 10, 6 } }, { { 10, 1 }, { 10, 4 }, { 10, 3 }, { 10, 2 } } },
};

/* Table 9-5, nC == -1 (chroma DC, 4:2:0). */
static const struct vlc coeff_token_chroma_dc[5][4] = {
	{ { 2, 1 } },
	{ { 6, 7 }, { 1, 1 } },
	{ { 6, 4 }, { 6, 6 }, { 3, 1 } },
	{ { 6, 3 }, { 7, 3 }, { 7, 2 }, { 6, 5 } },
	{ { 6, 2 }, { 8, 3 }, { 8, 2 }, { 7, 0 } },
};

/* Tables 9-7 and 9-8, total_zeros for 4x4 blocks, [TotalCoeff - 1][total_zeros]. */
static const struct vlc total_zeros_4x4[15][16] = {
	{ { 1, 1 }, { 3, 3 }, { 3, 2 }, { 4, 3 }, { 4, 2 }, { 5, 3 }, { 5, 2 }, { 6, 3 },
	  { 6, 2 }, { 7, 3 }, { 7, 2 }, { 8, 3 }, { 8, 2 }, { 9, 3 }, { 9, 2 }, { 9, 1 } },
	{ { 3, 7 }, { 3, 6 }, { 3, 5 }, { 3, 4 }, { 3, 3 }, { 4, 5 }, { 4, 4 }, { 4, 3 },
	  { 4, 2 }, { 5, 3 }, { 5, 2 }, { 6, 3 }, { 6, 2 }, { 6, 1 }, { 6, 0 } },
	{ { 4, 5 }, { 3, 7 }, { 3, 6 }, { 3, 5 }, { 4, 4 }, { 4, 3 }, { 3, 4 }, { 3, 3 },
	  { 4, 2 }, { 5, 3 }, { 5, 2 }, { 6, 1 }, { 5, 1 }, { 6, 0 } },
	{ { 5, 3 }, { 3, 7 }, { 4, 5 }, { 4, 4 }, { 3, 6 }, { 3, 5 }, { 3, 4 }, { 4, 3 },
	  { 3, 3 }, { 4, 2 }, { 5, 2 }, { 5, 1 }, { 5, 0 } },
	{ { 4, 5 }, { 4, 4 }, { 4, 3 }, { 3, 7 }, { 3, 6 }, { 3, 5 }, { 3, 4 }, { 3, 3 },
	  { 4, 2 }, { 5, 1 }, { 4, 1 }, { 5, 0 } },
	{ { 6, 1 }, { 5, 1 }, { 3, 7 }, { 3, 6 }, { 3, 5 }, { 3, 4 }, { 3, 3 }, { 3, 2 },
	  { 4, 1 }, { 3, 1 }, { 6, 0 } },
	{ { 6, 1 }, { 5, 1 }, { 3, 5 }, { 3, 4 }, { 3, 3 }, { 2, 3 }, { 3, 2 }, { 4, 1 },
	  { 3, 1 }, { 6, 0 } },
	{ { 6, 1 }, { 4, 1 }, { 5, 1 }, { 3, 3 }, { 2, 3 }, { 2, 2 }, { 3, 2 }, { 3, 1 },
	  { 6, 0 } },
	{ { 6, 1 }, { 6, 0 }, { 4, 1 }, { 2, 3 }, { 2, 2 }, { 3, 1 }, { 2, 1 }, { 5, 1 } },
	{ { 5, 1 }, { 5, 0 }, { 3, 1 }, { 2, 3 }, { 2, 2 }, { 2, 1 }, { 4, 1 } },
	{ { 4, 0 }, { 4, 1 }, { 3, 1 }, { 3, 2 }, { 1, 1 }, { 3, 3 } },
	{ { 4, 0 }, { 4, 1 }, { 2, 1 }, { 1, 1 }, { 3, 1 } },
	{ { 3, 0 }, { 3, 1 }, { 1, 1 }, { 2, 1 } },
	{ { 2, 0 }, { 2, 1 }, { 1, 1 } },
	{ { 1, 0 }, { 1, 1 } },
};

/* Table 9-9a, total_zeros for chroma DC 2x2, [TotalCoeff - 1][total_zeros]. */
static const struct vlc total_zeros_chroma_dc[3][4] = {
	{ { 1, 1 }, { 2, 1 }, { 3, 1 }, { 3, 0 } },
	{ { 1, 1 }, { 2, 1 }, { 2, 0 } },
	{ { 1, 1 }, { 1, 0 } },
};

/* Table 9-10, run_before, [min(zerosLeft, 7) - 1][run_before]. */
static const struct vlc run_before[7][15] = {
	{ { 1, 1 }, { 1, 0 } },
	{ { 1, 1 }, { 2, 1 }, { 2, 0 } },
	{ { 2, 3 }, { 2, 2 }, { 2, 1 }, { 2, 0 } },
	{ { 2, 3 }, { 2, 2 }, { 2, 1 }, { 3, 1 }, { 3, 0 } },
	{ { 2, 3 }, { 2, 2 }, { 3, 3 }, { 3, 2 }, { 3, 1 }, { 3, 0 } },
	{ { 2, 3 }, { 3, 0 }, { 3, 1 }, { 3, 3 }, { 3, 2 }, { 3, 5 }, { 3, 4 } },
	{ { 3, 7 }, { 3, 6 }, { 3, 5 }, { 3, 4 }, { 3, 3 }, { 3, 2 }, { 3, 1 }, { 4, 1 },
	  { 5, 1 }, { 6, 1 }, { 7, 1 }, { 8, 1 }, { 9, 1 }, { 10, 1 }, { 11, 1 } },
};

/* Table 9-4, coded_block_pattern of Intra_4x4 macroblocks by codeNum. */
static const uint8_t cbp_intra[48] = {
	47, 31, 15, 0,  23, 27, 29, 30, 7,  11, 13, 14, 39, 43, 45, 46,
	16, 3,  5,  10, 12, 19, 21, 26, 28, 35, 37, 42, 44, 1,  2,  4,
	8,  17, 18, 20, 24, 6,  9,  22, 25, 32, 33, 34, 36, 40, 38, 41,
};

/* 8.5.6, zig-zag scan of a 4x4 frame block: raster position of each index. */
static const uint8_t zigzag[16] = { 0, 1, 4, 8, 5, 2, 3, 6, 9, 12, 13, 10, 7, 11, 14, 15 };

static void put(struct bw *w, struct vlc v) { bw_bits(w, v.len, v.code); }

/* ---- residual_block_cavlc() (7.3.5.3.2), written ---- */

/* levels[0..max) in scan order. Returns TotalCoeff. */
static unsigned put_residual(struct bw *w, const int16_t *levels, unsigned max, int nc)
{
	int16_t lev[16]; /* nonzero levels, highest scan position first */
	uint8_t pos[16];
	unsigned tc = 0;
	for (unsigned i = max; i-- > 0;)
		if (levels[i]) {
			lev[tc] = levels[i];
			pos[tc++] = (uint8_t)i;
		}
	unsigned t1 = 0;
	while (t1 < tc && t1 < 3 && (lev[t1] == 1 || lev[t1] == -1))
		t1++;

	if (nc < 0)
		put(w, coeff_token_chroma_dc[tc][t1]);
	else if (nc >= 8)
		bw_bits(w, 6, tc ? ((tc - 1) << 2) | t1 : 3);
	else
		put(w, coeff_token[nc >= 4 ? 2 : nc >= 2 ? 1 : 0][tc][t1]);
	if (!tc)
		return 0;

	for (unsigned i = 0; i < t1; i++)
		bw_bits(w, 1, lev[i] < 0); /* trailing_ones_sign_flag */
	unsigned suffix_len = tc > 10 && t1 < 3 ? 1 : 0;
	for (unsigned i = t1; i < tc; i++) {
		int level = lev[i];
		uint32_t code = level > 0 ? 2u * (uint32_t)level - 2 : 2u * (uint32_t)-level - 1;
		if (i == t1 && t1 < 3)
			code -= 2; /* the decoder adds 2: this level cannot be +-1 */
		if (suffix_len == 0) {
			if (code < 14) {
				bw_bits(w, code + 1, 1); /* level_prefix, no suffix */
			} else if (code < 30) {
				bw_bits(w, 15, 1); /* prefix 14, 4-bit suffix */
				bw_bits(w, 4, code - 14);
			} else {
				bw_bits(w, 16, 1); /* prefix 15, 12-bit suffix */
				bw_bits(w, 12, code - 30);
			}
		} else if (code < (15u << suffix_len)) {
			bw_bits(w, (code >> suffix_len) + 1, 1);
			bw_bits(w, suffix_len, code & ((1u << suffix_len) - 1));
		} else {
			bw_bits(w, 16, 1);
			bw_bits(w, 12, code - (15u << suffix_len));
		}
		if (suffix_len == 0)
			suffix_len = 1;
		unsigned mag = (unsigned)(level < 0 ? -level : level);
		if (mag > (3u << (suffix_len - 1)) && suffix_len < 6)
			suffix_len++;
	}

	if (tc < max) {
		unsigned total_zeros = pos[0] + 1 - tc;
		put(w, max == 4 ? total_zeros_chroma_dc[tc - 1][total_zeros]
				: total_zeros_4x4[tc - 1][total_zeros]);
		unsigned zeros_left = total_zeros;
		for (unsigned i = 0; i + 1 < tc && zeros_left; i++) {
			unsigned run = pos[i] - pos[i + 1] - 1;
			put(w, run_before[(zeros_left > 7 ? 7 : zeros_left) - 1][run]);
			zeros_left -= run;
		}
	}
	return tc;
}

/* ---- transform and quantisation (8.5.12; the forward side mirrors it) ---- */

/* normAdjust4x4 (8-315) by qP % 6, for positions of class 0 (both
 * coordinates even), 1 (both odd), 2 (the others); the flat weight 16
 * cancels against the >> 4 of 8.5.12.1. */
static const int dequant[6][3] = {
	{ 10, 16, 13 }, { 11, 18, 14 }, { 13, 20, 16 }, { 14, 23, 18 }, { 16, 25, 20 }, { 18, 29, 23 },
};
/* Forward quantisation multipliers matching dequant (2^15 / scale-ish). */
static const int quant[6][3] = {
	{ 13107, 5243, 8066 }, { 11916, 4660, 7490 }, { 10082, 4194, 6554 },
	{ 9362, 3647, 5825 },  { 8192, 3355, 5243 },  { 7282, 2893, 4559 },
};

static int pos_class(unsigned i) /* i raster in 4x4 */
{
	unsigned x = i & 3, y = i >> 2;
	return !(x & 1) && !(y & 1) ? 0 : (x & 1) && (y & 1) ? 1 : 2;
}

static uint8_t clip_sample(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

/* Forward core transform of a 4x4 residual, in place (raster). */
static void forward4x4(int *b)
{
	for (int i = 0; i < 4; i++) { /* rows */
		int *r = b + 4 * i;
		int s03 = r[0] + r[3], d03 = r[0] - r[3], s12 = r[1] + r[2], d12 = r[1] - r[2];
		r[0] = s03 + s12;
		r[1] = 2 * d03 + d12;
		r[2] = s03 - s12;
		r[3] = d03 - 2 * d12;
	}
	for (int i = 0; i < 4; i++) { /* columns */
		int *c = b + i;
		int s03 = c[0] + c[12], d03 = c[0] - c[12], s12 = c[4] + c[8], d12 = c[4] - c[8];
		c[0] = s03 + s12;
		c[4] = 2 * d03 + d12;
		c[8] = s03 - s12;
		c[12] = d03 - 2 * d12;
	}
}

/* 8.5.12.2: scaled coefficients d (raster) to residual r, in place. */
static void inverse4x4(int *d)
{
	for (int i = 0; i < 4; i++) { /* rows first */
		int *r = d + 4 * i;
		int e0 = r[0] + r[2], e1 = r[0] - r[2], e2 = (r[1] >> 1) - r[3], e3 = r[1] + (r[3] >> 1);
		r[0] = e0 + e3;
		r[1] = e1 + e2;
		r[2] = e1 - e2;
		r[3] = e0 - e3;
	}
	for (int i = 0; i < 4; i++) {
		int *c = d + i;
		int e0 = c[0] + c[8], e1 = c[0] - c[8], e2 = (c[4] >> 1) - c[12], e3 = c[4] + (c[12] >> 1);
		c[0] = (e0 + e3 + 32) >> 6;
		c[4] = (e1 + e2 + 32) >> 6;
		c[8] = (e1 - e2 + 32) >> 6;
		c[12] = (e0 - e3 + 32) >> 6;
	}
}

/* Quantise one coefficient (intra rounding, a third). */
static int16_t quantise(int coef, int mf, int qbits)
{
	int mag = coef < 0 ? -coef : coef;
	int q = (int)(((int64_t)mag * mf + ((int64_t)1 << qbits) / 3) >> qbits);
	if (q > 2047) /* far beyond 8-bit content; keeps every level code short */
		q = 2047;
	return (int16_t)(coef < 0 ? -q : q);
}

/* ---- prediction ---- */

/* 8.3.1.2.3 (Intra_4x4_DC) and 8.3.4.1-3 (chroma DC) share this: the mean
 * of the available edges, or 128. */
static int dc_of(const uint8_t *top, const uint8_t *left, size_t left_stride, bool top_first)
{
	int st = 0, sl = 0;
	for (int i = 0; i < 4; i++) {
		if (top)
			st += top[i];
		if (left)
			sl += left[i * left_stride];
	}
	if (top && left && !top_first)
		return (st + sl + 4) >> 3;
	if (top_first && top)
		return (st + 2) >> 2;
	if (left)
		return (sl + 2) >> 2;
	if (top)
		return (st + 2) >> 2;
	return 128;
}

/* ---- the macroblock ---- */

static int chroma_qp(int qp, int offset)
{
	static const uint8_t above29[22] = { 29, 30, 31, 32, 32, 33, 34, 34, 35, 35, 36,
					     36, 37, 37, 37, 38, 38, 38, 39, 39, 39, 39 };
	int q = qp + offset;
	q = q < 0 ? 0 : q > 51 ? 51 : q;
	return q < 30 ? q : above29[q - 30];
}

void h264_intra_mb_skipped(struct h264_intra_mb *mb)
{
	mb->intra = false;
	memset(mb->tc, 0, sizeof(mb->tc));
	memset(mb->tc_c, 0, sizeof(mb->tc_c));
}

/* nC (9.2.1) from the left and upper blocks' counts; -1 = not available. */
static int nc_of(int a, int b)
{
	if (a >= 0 && b >= 0)
		return (a + b + 1) >> 1;
	return a >= 0 ? a : b >= 0 ? b : 0;
}

struct coded {
	int16_t luma[16][16]; /* [blkIdx][scan] */
	int16_t dc[2][4];
	int16_t ac[2][4][15];  /* [comp][blk][scan - 1] */
	unsigned cbp;
};

static void code_luma(const struct h264_intra_params *p, const uint8_t *src,
		      const struct h264_intra_mb *left, const struct h264_intra_mb *top,
		      struct h264_intra_mb *out, struct coded *cd)
{
	int m = p->qp % 6, shift = p->qp / 6, qbits = 15 + shift;
	for (unsigned blk = 0; blk < 16; blk++) {
		/* luma4x4BlkIdx order: 8x8 quadrants, 4x4 within each (6.4.3) */
		unsigned bx = (blk >> 2 & 1) * 2 + (blk & 1), by = (blk >> 3) * 2 + (blk >> 1 & 1);
		unsigned x0 = bx * 4, y0 = by * 4;
		const uint8_t *t = y0 ? &out->y[y0 - 1][x0] : top && top->intra ? &top->y[15][x0] : NULL;
		const uint8_t *l = x0 ? &out->y[y0][x0 - 1] : left && left->intra ? &left->y[y0][15] : NULL;
		int pred = dc_of(t, l, 16, false);
		int b[16];
		for (unsigned i = 0; i < 16; i++)
			b[i] = src[(y0 + i / 4) * 16 + x0 + i % 4] - pred;
		forward4x4(b);
		unsigned n = 0;
		for (unsigned s = 0; s < 16; s++) {
			unsigned r = zigzag[s];
			int16_t q = quantise(b[r], quant[m][pos_class(r)], qbits);
			cd->luma[blk][s] = q;
			n += q != 0;
		}
		for (unsigned s = 0; s < 16; s++) {
			unsigned r = zigzag[s];
			b[r] = cd->luma[blk][s] * dequant[m][pos_class(r)] * (1 << shift);
		}
		inverse4x4(b);
		for (unsigned i = 0; i < 16; i++)
			out->y[y0 + i / 4][x0 + i % 4] = clip_sample(pred + b[i]);
		out->tc[by][bx] = (uint8_t)n;
		if (n)
			cd->cbp |= 1u << (blk >> 2);
	}
}

static void code_chroma(const struct h264_intra_params *p, const uint8_t *src, int comp,
			const struct h264_intra_mb *left, const struct h264_intra_mb *top,
			struct h264_intra_mb *out, struct coded *cd)
{
	int qp = chroma_qp(p->qp, p->chroma_qp_offset[comp]);
	int m = qp % 6, shift = qp / 6, qbits = 15 + shift;
	bool have_top = top && top->intra, have_left = left && left->intra;
	int pred[4], b[4][16];
	for (unsigned blk = 0; blk < 4; blk++) {
		unsigned x0 = (blk & 1) * 4, y0 = (blk >> 1) * 4;
		const uint8_t *t = have_top ? &top->c[comp][7][x0] : NULL;
		const uint8_t *l = have_left ? &left->c[comp][y0][7] : NULL;
		/* 8.3.4.1-3: the block at the top right prefers the upper edge,
		 * the bottom left the left edge; the others use both. */
		if (x0 && !y0)
			pred[blk] = dc_of(t, l, 8, true);
		else if (!x0 && y0)
			pred[blk] = l ? dc_of(NULL, l, 8, false) : dc_of(t, NULL, 8, false);
		else
			pred[blk] = dc_of(t, l, 8, false);
		for (unsigned i = 0; i < 16; i++)
			b[blk][i] = src[(y0 + i / 4) * 8 + x0 + i % 4] - pred[blk];
		forward4x4(b[blk]);
	}
	/* DC: 2x2 Hadamard, quantised at twice the step (8.5.11.2 mirrored) */
	int w0 = b[0][0], w1 = b[1][0], w2 = b[2][0], w3 = b[3][0];
	int f[4] = { w0 + w1 + w2 + w3, w0 - w1 + w2 - w3, w0 + w1 - w2 - w3, w0 - w1 - w2 + w3 };
	bool any_dc = false, any_ac = false;
	for (unsigned i = 0; i < 4; i++) {
		cd->dc[comp][i] = quantise(f[i], quant[m][0], qbits + 1);
		any_dc |= cd->dc[comp][i] != 0;
	}
	int c0 = cd->dc[comp][0], c1 = cd->dc[comp][1], c2 = cd->dc[comp][2], c3 = cd->dc[comp][3];
	int g[4] = { c0 + c1 + c2 + c3, c0 - c1 + c2 - c3, c0 + c1 - c2 - c3, c0 - c1 - c2 + c3 };
	for (unsigned blk = 0; blk < 4; blk++) {
		unsigned n = 0;
		for (unsigned s = 1; s < 16; s++) {
			unsigned r = zigzag[s];
			int16_t q = quantise(b[blk][r], quant[m][pos_class(r)], qbits);
			cd->ac[comp][blk][s - 1] = q;
			n += q != 0;
		}
		out->tc_c[comp][blk >> 1][blk & 1] = (uint8_t)n;
		any_ac |= n != 0;
		int d[16];
		d[0] = (g[blk] * dequant[m][0] * (1 << shift)) >> 1;
		for (unsigned s = 1; s < 16; s++) {
			unsigned r = zigzag[s];
			d[r] = cd->ac[comp][blk][s - 1] * dequant[m][pos_class(r)] * (1 << shift);
		}
		inverse4x4(d);
		unsigned x0 = (blk & 1) * 4, y0 = (blk >> 1) * 4;
		for (unsigned i = 0; i < 16; i++)
			out->c[comp][y0 + i / 4][x0 + i % 4] = clip_sample(pred[blk] + d[i]);
	}
	unsigned cc = any_ac ? 2 : any_dc ? 1 : 0;
	if (cc > (cd->cbp >> 4))
		cd->cbp = (cd->cbp & 15) | cc << 4;
}

void h264_intra_write_mb(struct bw *w, const struct h264_intra_params *p, const uint8_t src[384],
			 const struct h264_intra_mb *left, const struct h264_intra_mb *top,
			 struct h264_intra_mb *out)
{
	struct coded cd = { 0 };
	out->intra = true;
	code_luma(p, src, left, top, out, &cd);
	code_chroma(p, src + 256, 0, left, top, out, &cd);
	code_chroma(p, src + 320, 1, left, top, out, &cd);
	/* Blocks of an 8x8 quadrant without coefficients are not sent. */
	if ((cd.cbp >> 4) < 2)
		memset(out->tc_c, 0, sizeof(out->tc_c));

	bw_ue(w, MB_TYPE_P_I_NXN);
	if (p->transform_8x8_mode)
		bw_bits(w, 1, 0); /* transform_size_8x8_flag */
	for (unsigned i = 0; i < 16; i++)
		bw_bits(w, 1, 1); /* prev_intra4x4_pred_mode_flag: DC, the predicted mode */
	bw_ue(w, 0);              /* intra_chroma_pred_mode: DC */
	unsigned code = 0;
	while (cbp_intra[code] != cd.cbp)
		code++;
	bw_ue(w, code);
	if (!cd.cbp)
		return;
	bw_se(w, 0); /* mb_qp_delta */

	for (unsigned blk = 0; blk < 16; blk++) {
		if (!(cd.cbp >> (blk >> 2) & 1))
			continue;
		unsigned bx = (blk >> 2 & 1) * 2 + (blk & 1), by = (blk >> 3) * 2 + (blk >> 1 & 1);
		int a = bx ? out->tc[by][bx - 1] : left ? left->tc[by][3] : -1;
		int b = by ? out->tc[by - 1][bx] : top ? top->tc[3][bx] : -1;
		put_residual(w, cd.luma[blk], 16, nc_of(a, b));
	}
	if (cd.cbp >> 4) {
		for (int comp = 0; comp < 2; comp++)
			put_residual(w, cd.dc[comp], 4, -1);
	}
	if (cd.cbp >> 4 == 2) {
		for (int comp = 0; comp < 2; comp++)
			for (unsigned blk = 0; blk < 4; blk++) {
				unsigned bx = blk & 1, by = blk >> 1;
				int a = bx ? out->tc_c[comp][by][0] : left ? left->tc_c[comp][by][1] : -1;
				int b = by ? out->tc_c[comp][0][bx] : top ? top->tc_c[comp][1][bx] : -1;
				put_residual(w, cd.ac[comp][blk], 15, nc_of(a, b));
			}
	}
}
