/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * H.264 bitstream reading: Annex-B NAL units, the RBSP bit reader and the
 * SPS. See hfe/h264.h; section numbers below are those of ITU-T H.264.
 */
#include "hfe/h264.h"

#include <stdlib.h>
#include <string.h>

#include "hfe/wire.h"

/* Enough for every SPS field up to the cropping window (255 offsets of
 * the picture order count cycle and 12 scaling lists take about 3 KiB);
 * a larger SPS NAL is read through its first bytes only. */
#define SPS_RBSP_MAX 4096

/* ---- NAL units ---- */

size_t hfe_h264_start_code(const uint8_t *p, size_t n)
{
	if (n >= 3 && p[0] == 0 && p[1] == 0 && p[2] == 1)
		return 3;
	if (n >= 4 && p[0] == 0 && p[1] == 0 && p[2] == 0 && p[3] == 1)
		return 4;
	return 0;
}

bool hfe_h264_next_nal(const uint8_t *buf, size_t size, size_t *pos, struct hfe_h264_nal *nal)
{
	size_t i = *pos;
	for (;;) {
		while (i + 3 <= size && !(buf[i] == 0 && buf[i + 1] == 0 && buf[i + 2] == 1))
			i++;
		if (i + 3 > size) {
			*pos = size;
			return false;
		}
		/* The unit ends where 00 00 00 or 00 00 01 starts (B.2: neither
		 * can occur inside one), or at the end of the buffer. */
		size_t start = i + 3, end = start;
		while (end + 3 <= size && !(buf[end] == 0 && buf[end + 1] == 0 && buf[end + 2] <= 1))
			end++;
		if (end + 3 > size)
			end = size;
		i = end;
		while (end > start && buf[end - 1] == 0) /* trailing_zero_8bits, zero_byte */
			end--;
		if (end > start) {
			*pos = i;
			nal->data = buf + start;
			nal->size = end - start;
			nal->type = buf[start] & 0x1f;
			nal->ref_idc = (buf[start] >> 5) & 3;
			return true;
		}
	}
}

size_t hfe_h264_put_annexb(uint8_t *dst, const uint8_t *unit, size_t len)
{
	static const uint8_t start[4] = { 0, 0, 0, 1 };
	size_t sc = hfe_h264_start_code(unit, len) ? 0 : sizeof(start);
	if (dst) {
		memcpy(dst, start, sc);
		memcpy(dst + sc, unit, len);
	}
	return sc + len;
}

size_t hfe_h264_unescape(const uint8_t *src, size_t n, uint8_t *dst)
{
	size_t o = 0;
	unsigned zeros = 0;
	for (size_t i = 0; i < n; i++) {
		if (zeros >= 2 && src[i] == 3) { /* emulation_prevention_three_byte */
			zeros = 0;
			continue;
		}
		zeros = src[i] ? 0 : zeros + 1;
		dst[o++] = src[i];
	}
	return o;
}

/* ---- bits ---- */

void hfe_h264_bits_init(struct hfe_h264_bits *b, const uint8_t *rbsp, size_t size)
{
	*b = (struct hfe_h264_bits){ .data = rbsp, .nbits = size * 8 };
}

uint32_t hfe_h264_u(struct hfe_h264_bits *b, unsigned n)
{
	if (n > 32 || b->nbits - b->pos < n) {
		b->err = true;
		b->pos = b->nbits;
		return 0;
	}
	uint64_t v = 0;
	while (n) { /* at most one byte per step */
		unsigned avail = 8 - (unsigned)(b->pos & 7), take = n < avail ? n : avail;
		unsigned byte = b->data[b->pos >> 3];
		v = (v << take) | ((byte >> (avail - take)) & ((1u << take) - 1));
		b->pos += take;
		n -= take;
	}
	return (uint32_t)v;
}

uint32_t hfe_h264_ue(struct hfe_h264_bits *b)
{
	unsigned zeros = 0;
	while (!hfe_h264_u(b, 1)) {
		if (b->err || ++zeros > 31) { /* 2^32 - 1 and up do not fit */
			b->err = true;
			return 0;
		}
	}
	return zeros ? (uint32_t)((1ull << zeros) - 1 + hfe_h264_u(b, zeros)) : 0;
}

int32_t hfe_h264_se(struct hfe_h264_bits *b)
{
	uint32_t k = hfe_h264_ue(b); /* 9.1.1: 1, 2, 3, 4 ... -> 1, -1, 2, -2 ... */
	return (k & 1) ? (int32_t)((k + 1) / 2) : -(int32_t)(k / 2);
}

size_t hfe_h264_rbsp_stop_bit(const uint8_t *rbsp, size_t size)
{
	while (size && !rbsp[size - 1])
		size--;
	if (!size)
		return 0;
	return size * 8 - 1 - (size_t)__builtin_ctz(rbsp[size - 1]);
}

bool hfe_h264_more_rbsp_data(const struct hfe_h264_bits *b)
{
	return b->pos < hfe_h264_rbsp_stop_bit(b->data, b->nbits / 8);
}

/* ---- SPS (7.3.2.1.1) ---- */

/* ue(v) that must not exceed max. */
static uint32_t ue_max(struct hfe_h264_bits *b, uint32_t max)
{
	uint32_t v = hfe_h264_ue(b);
	if (v > max)
		b->err = true;
	return v;
}

/* Profiles whose SPS codes chroma_format_idc, bit depths, scaling lists. */
static bool profile_has_chroma_info(uint32_t p)
{
	static const uint8_t ids[] = { 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135 };
	for (size_t i = 0; i < sizeof(ids); i++)
		if (p == ids[i])
			return true;
	return false;
}

/* Skip one scaling_list() of `size` coefficients (7.3.2.1.1.1). */
static void skip_scaling_list(struct hfe_h264_bits *b, unsigned size)
{
	int32_t last = 8, next = 8;
	for (unsigned j = 0; j < size && !b->err; j++) {
		if (next != 0) {
			int32_t delta = hfe_h264_se(b);
			if (delta < -128 || delta > 127)
				b->err = true;
			next = (last + delta + 256) % 256;
		}
		last = next == 0 ? last : next;
	}
}

/* The coded size minus the cropping window; 7.4.2.1.1 gives the crop units,
 * which depend on chroma subsampling and field coding. */
static bool cropped_size(struct hfe_h264_sps *s)
{
	uint64_t unit_x = 1, unit_y = 2 - s->frame_mbs_only;
	if (s->chroma_format_idc != 0 && !s->separate_colour_plane) {
		unit_x = s->chroma_format_idc == 3 ? 1 : 2;
		unit_y *= s->chroma_format_idc == 1 ? 2 : 1;
	}
	uint64_t w = (uint64_t)s->width_mbs * 16;
	uint64_t h = (uint64_t)s->height_map_units * 16 * (2 - s->frame_mbs_only);
	uint64_t cx = unit_x * ((uint64_t)s->crop_left + s->crop_right);
	uint64_t cy = unit_y * ((uint64_t)s->crop_top + s->crop_bottom);
	if (cx >= w || cy >= h)
		return false;
	s->width = (uint32_t)(w - cx);
	s->height = (uint32_t)(h - cy);
	return true;
}

bool hfe_h264_parse_sps(const uint8_t *rbsp, size_t size, struct hfe_h264_sps *s)
{
	struct hfe_h264_bits bits, *b = &bits;
	hfe_h264_bits_init(b, rbsp, size);
	*s = (struct hfe_h264_sps){ .chroma_format_idc = 1, .bit_depth_luma = 8,
				    .bit_depth_chroma = 8 };

	s->profile_idc = (uint8_t)hfe_h264_u(b, 8);
	s->constraint_flags = (uint8_t)hfe_h264_u(b, 8);
	s->level_idc = (uint8_t)hfe_h264_u(b, 8);
	s->sps_id = ue_max(b, 31);
	if (profile_has_chroma_info(s->profile_idc)) {
		s->chroma_format_idc = ue_max(b, 3);
		if (s->chroma_format_idc == 3)
			s->separate_colour_plane = hfe_h264_u(b, 1);
		s->bit_depth_luma = 8 + ue_max(b, 6);
		s->bit_depth_chroma = 8 + ue_max(b, 6);
		hfe_h264_u(b, 1); /* qpprime_y_zero_transform_bypass_flag */
		s->scaling_matrix_present = hfe_h264_u(b, 1);
		if (s->scaling_matrix_present) {
			unsigned lists = s->chroma_format_idc != 3 ? 8 : 12;
			for (unsigned i = 0; i < lists && !b->err; i++)
				if (hfe_h264_u(b, 1)) /* seq_scaling_list_present_flag */
					skip_scaling_list(b, i < 6 ? 16 : 64);
		}
	}
	s->log2_max_frame_num = 4 + ue_max(b, 12);
	s->poc_bitpos = b->pos;
	s->poc_type = ue_max(b, 2);
	if (s->poc_type == 0) {
		s->log2_max_poc_lsb = 4 + ue_max(b, 12);
	} else if (s->poc_type == 1) {
		hfe_h264_u(b, 1); /* delta_pic_order_always_zero_flag */
		hfe_h264_se(b);   /* offset_for_non_ref_pic */
		hfe_h264_se(b);   /* offset_for_top_to_bottom_field */
		uint32_t cycle = ue_max(b, 255);
		for (uint32_t i = 0; i < cycle && !b->err; i++)
			hfe_h264_se(b); /* offset_for_ref_frame[i] */
	}
	s->poc_end_bitpos = b->pos;
	s->max_num_ref_frames = hfe_h264_ue(b);
	s->gaps_in_frame_num_allowed = hfe_h264_u(b, 1);
	s->width_mbs = ue_max(b, HFE_MAX_DIMENSION / 16 - 1) + 1;
	s->height_map_units = ue_max(b, HFE_MAX_DIMENSION / 16 - 1) + 1;
	s->frame_mbs_only = hfe_h264_u(b, 1);
	if (!s->frame_mbs_only)
		s->mb_adaptive_frame_field = hfe_h264_u(b, 1);
	s->direct_8x8_inference = hfe_h264_u(b, 1);
	if (hfe_h264_u(b, 1)) { /* frame_cropping_flag */
		s->crop_left = hfe_h264_ue(b);
		s->crop_right = hfe_h264_ue(b);
		s->crop_top = hfe_h264_ue(b);
		s->crop_bottom = hfe_h264_ue(b);
	}
	return !b->err && cropped_size(s);
}

bool hfe_h264_parse_sps_nal(const struct hfe_h264_nal *nal, struct hfe_h264_sps *sps)
{
	if (nal->size < 2 || (nal->data[0] & 0x80) || nal->type != HFE_H264_NAL_SPS)
		return false;
	size_t n = nal->size - 1 < SPS_RBSP_MAX ? nal->size - 1 : SPS_RBSP_MAX;
	/* Exactly sized, so that a reader bug is an out-of-bounds access that
	 * sanitizers see. */
	uint8_t *rbsp = malloc(n);
	if (!rbsp)
		return false;
	bool ok = hfe_h264_parse_sps(rbsp, hfe_h264_unescape(nal->data + 1, n, rbsp), sps);
	free(rbsp);
	return ok;
}
