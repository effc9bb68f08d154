/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An H.264 RBSP bit writer (MSB first, exp-Golomb codes of ITU-T H.264
 * 9.1), shared by the patch-frame writers (h264_splice.c, h264_intra.c).
 * Out of memory is sticky in `oom`; the caller checks it once at the end.
 */
#ifndef HFE_H264_BITWRITER_H
#define HFE_H264_BITWRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>


struct bw {
	uint8_t *buf;
	size_t cap, len;
	uint64_t acc;  /* pending bits, the newest in the low end */
	unsigned nacc; /* how many (< 8 between calls) */
	bool oom;
};

static inline void bw_byte(struct bw *w, uint8_t b)
{
	if (w->len == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 256;
		uint8_t *n = realloc(w->buf, cap);
		if (!n) {
			w->oom = true;
			return;
		}
		w->buf = n;
		w->cap = cap;
	}
	w->buf[w->len++] = b;
}

static inline void bw_bits(struct bw *w, unsigned n, uint32_t v)
{
	while (n) {
		unsigned k = n > 24 ? 24 : n;
		n -= k;
		w->acc = (w->acc << k) | ((v >> n) & ((1u << k) - 1));
		w->nacc += k;
		while (w->nacc >= 8) {
			w->nacc -= 8;
			bw_byte(w, (uint8_t)(w->acc >> w->nacc));
		}
	}
}

static inline void bw_ue(struct bw *w, uint32_t v)
{
	uint64_t x = (uint64_t)v + 1;
	unsigned len = 64 - (unsigned)__builtin_clzll(x);
	bw_bits(w, len - 1, 0);
	bw_bits(w, len, (uint32_t)x);
}

static inline void bw_se(struct bw *w, int32_t v)
{
	bw_ue(w, v > 0 ? 2u * (uint32_t)v - 1 : 2u * (uint32_t)-v);
}

static inline void bw_align_zero(struct bw *w) { bw_bits(w, (8 - w->nacc) % 8, 0); }

static inline void bw_trailing(struct bw *w)
{
	bw_bits(w, 1, 1);
	bw_align_zero(w);
}

/* Whole bytes at a byte-aligned position. */
static inline void bw_bytes(struct bw *w, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		bw_byte(w, p[i]);
}

#endif
