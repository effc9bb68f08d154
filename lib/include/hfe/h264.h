/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Reading H.264 bitstreams: Annex-B framing, NAL unit headers, the RBSP bit
 * reader (u(n), ue(v), se(v), more_rbsp_data()) and the sequence parameter
 * set fields the project uses. The one copy of this in the code base: the
 * patch-frame splicer (lib/src/h264_splice.c), hfescanoutsrc (caps from the
 * SPS) and hfe-viewer (MP4 extradata, picture size) all read through it.
 *
 * The bytes come from encoders and from hosts, so every read is checked: a
 * malformed or truncated stream is an error flag or a false return, never a
 * read past the buffer. Names are those of ITU-T H.264 (B.1 byte stream,
 * 7.3.1 NAL unit, 7.3.2.1.1 SPS, 7.2 more_rbsp_data, 9.1 exp-Golomb codes).
 * No FFmpeg: part of the protocol half of libhfe, so hfe-viewer links it.
 */
#ifndef HFE_H264_H
#define HFE_H264_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* nal_unit_type values the project looks at. */
enum {
	HFE_H264_NAL_SLICE = 1, /* non-IDR slice */
	HFE_H264_NAL_IDR = 5,
	HFE_H264_NAL_SEI = 6,
	HFE_H264_NAL_SPS = 7,
	HFE_H264_NAL_PPS = 8,
	HFE_H264_NAL_AUD = 9,
};

/* ---- NAL units in an Annex-B byte stream ---- */

/* One NAL unit: header byte first; no start code, and none of the zero
 * bytes in front of the next one (a NAL unit never ends in 0x00). */
struct hfe_h264_nal {
	const uint8_t *data;
	size_t size;      /* >= 1 */
	unsigned type;    /* nal_unit_type */
	unsigned ref_idc; /* nal_ref_idc */
};

/* The start code at p: 3 (00 00 01), 4 (00 00 00 01), or 0 if there is none. */
size_t hfe_h264_start_code(const uint8_t *p, size_t n);

/* The next NAL unit of buf from *pos (0 to begin; advanced past the unit).
 * Bytes before the first start code and empty units are skipped. False when
 * there is none left. */
bool hfe_h264_next_nal(const uint8_t *buf, size_t size, size_t *pos, struct hfe_h264_nal *nal);

/* One unit as Annex B into dst: as it is when it starts with a start code,
 * else behind 00 00 00 01 (hosts may send bare units). Returns the bytes
 * written; dst NULL only counts them. */
size_t hfe_h264_put_annexb(uint8_t *dst, const uint8_t *unit, size_t len);

/* A NAL payload without its emulation prevention bytes (00 00 03 -> 00 00):
 * writes at most n bytes to dst and returns how many. */
size_t hfe_h264_unescape(const uint8_t *src, size_t n, uint8_t *dst);

/* ---- bits of an RBSP (emulation prevention already removed) ---- */

struct hfe_h264_bits {
	const uint8_t *data;
	size_t nbits, pos; /* size and read position, in bits */
	bool err;          /* sticky: a read ran past the end or a code was too long */
};

void hfe_h264_bits_init(struct hfe_h264_bits *b, const uint8_t *rbsp, size_t size);
/* u(n), n <= 32. Past the end: 0, err set and pos at the end. */
uint32_t hfe_h264_u(struct hfe_h264_bits *b, unsigned n);
/* ue(v): 0 .. 2^32 - 2; a longer code sets err and returns 0. */
uint32_t hfe_h264_ue(struct hfe_h264_bits *b);
/* se(v): -(2^31 - 1) .. 2^31 - 1. */
int32_t hfe_h264_se(struct hfe_h264_bits *b);
/* more_rbsp_data(): is there anything before the rbsp_stop_one_bit? */
bool hfe_h264_more_rbsp_data(const struct hfe_h264_bits *b);
/* Bit position of the rbsp_stop_one_bit of an RBSP, 0 when there is none. */
size_t hfe_h264_rbsp_stop_bit(const uint8_t *rbsp, size_t size);

/* ---- sequence parameter set ---- */

/* The SPS up to the cropping window (the VUI is not read). */
struct hfe_h264_sps {
	uint8_t profile_idc, constraint_flags, level_idc;
	uint32_t sps_id;
	uint32_t chroma_format_idc; /* 1 (4:2:0) unless the profile codes it */
	bool separate_colour_plane;
	uint32_t bit_depth_luma, bit_depth_chroma; /* 8 + the coded _minus8 */
	bool scaling_matrix_present;
	uint32_t log2_max_frame_num;                /* 4 .. 16: bits of frame_num */
	uint32_t poc_type;                          /* pic_order_cnt_type 0 .. 2 */
	uint32_t log2_max_poc_lsb;                  /* 4 .. 16, poc_type 0 only */
	uint32_t max_num_ref_frames;
	bool gaps_in_frame_num_allowed;
	uint32_t width_mbs, height_map_units;       /* the _minus1 fields + 1 */
	bool frame_mbs_only, mb_adaptive_frame_field, direct_8x8_inference;
	uint32_t crop_left, crop_right, crop_top, crop_bottom; /* as coded, in crop units */
	uint32_t width, height; /* displayed picture: coded size minus the crop */
	/* Bit positions in the RBSP of pic_order_cnt_type and of what follows
	 * its fields: where the splicer rewrites them. */
	size_t poc_bitpos, poc_end_bitpos;
};

/* Parse an SPS RBSP (after the NAL header byte, emulation prevention
 * removed). False for a truncated SPS, a value out of the standard's range,
 * a crop as large as the picture, or more than HFE_MAX_DIMENSION / 16
 * macroblocks (map units) in either direction. */
bool hfe_h264_parse_sps(const uint8_t *rbsp, size_t size, struct hfe_h264_sps *sps);
/* The same from a NAL unit as hfe_h264_next_nal gives it (header checked:
 * type 7, forbidden_zero_bit clear). */
bool hfe_h264_parse_sps_nal(const struct hfe_h264_nal *nal, struct hfe_h264_sps *sps);

#ifdef __cplusplus
}
#endif

#endif
