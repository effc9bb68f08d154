/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Records the guest tool writes to its "out" virtio-serial port
 * (/dev/virtio-ports/org.helix.out.0) for the host harness to collect.
 * Shared by tests/e2e/guest/hfe-guest.c and the host harness; header only.
 *
 * Each record: a 32-byte little-endian header, then `len` payload bytes.
 *   off size field
 *    0  u32  magic  E2E_REC_MAGIC ("HFEO")
 *    4  u16  kind   E2E_REC_*
 *    6  u16  flags  AU: bit 0 = keyframe
 *    8  u32  seq    counts records of this kind from 0
 *   12  u32  len    payload bytes
 *   16  i64  value  AU: the FRAME_RESPONSE's pts; DRAW: the frame index
 *   24  i64  t_ns   guest CLOCK_MONOTONIC when the record was made
 * Payloads: AU = one Annex-B access unit (all NAL units of the response, in
 * order); DRAW = empty; TEXT and END = "key=value ..." text (END is the last
 * record of a run: its text carries the guest's result and measurements).
 */
#ifndef HFE_E2E_OUT_H
#define HFE_E2E_OUT_H

#include <stdint.h>

#define E2E_REC_MAGIC 0x4F454648u /* bytes "HFEO" */
#define E2E_REC_HDR_SIZE 32u
#define E2E_REC_MAX_LEN (64u << 20) /* sanity bound for the reader */

enum e2e_rec_kind {
	E2E_REC_AU = 1,   /* an access unit received from the host */
	E2E_REC_DRAW = 2, /* draw mode: frame `value` is now in the framebuffer */
	E2E_REC_TEXT = 3, /* a note (measurements, phase changes) */
	E2E_REC_END = 4,  /* last record; text: result=ok|fail ... */
};

#define E2E_REC_FLAG_KEYFRAME 0x1u

struct e2e_rec_hdr {
	uint32_t magic;
	uint16_t kind;
	uint16_t flags;
	uint32_t seq;
	uint32_t len;
	int64_t value;
	int64_t t_ns;
};

static inline void e2e_put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t e2e_get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static inline void e2e_rec_hdr_write(const struct e2e_rec_hdr *h, uint8_t out[E2E_REC_HDR_SIZE])
{
	e2e_put_le(out, h->magic, 4);
	e2e_put_le(out + 4, h->kind, 2);
	e2e_put_le(out + 6, h->flags, 2);
	e2e_put_le(out + 8, h->seq, 4);
	e2e_put_le(out + 12, h->len, 4);
	e2e_put_le(out + 16, (uint64_t)h->value, 8);
	e2e_put_le(out + 24, (uint64_t)h->t_ns, 8);
}

/* 0, or -1 if the magic is wrong or len is beyond E2E_REC_MAX_LEN. */
static inline int e2e_rec_hdr_read(const uint8_t in[E2E_REC_HDR_SIZE], struct e2e_rec_hdr *h)
{
	h->magic = (uint32_t)e2e_get_le(in, 4);
	h->kind = (uint16_t)e2e_get_le(in + 4, 2);
	h->flags = (uint16_t)e2e_get_le(in + 6, 2);
	h->seq = (uint32_t)e2e_get_le(in + 8, 4);
	h->len = (uint32_t)e2e_get_le(in + 12, 4);
	h->value = (int64_t)e2e_get_le(in + 16, 8);
	h->t_ns = (int64_t)e2e_get_le(in + 24, 8);
	return h->magic == E2E_REC_MAGIC && h->len <= E2E_REC_MAX_LEN ? 0 : -1;
}

#endif
