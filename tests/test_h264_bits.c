/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The H.264 reading toolkit (hfe/h264.h, lib/src/h264_bits.c), one behaviour
 * per test function:
 *  - Annex-B framing: 3- and 4-byte start codes, bytes before the first one,
 *    trailing zero bytes, empty units, nal_unit_type and nal_ref_idc;
 *  - emulation prevention removal; units written out as Annex B;
 *  - u(n), ue(v), se(v) at their edge values, more_rbsp_data(), and reads
 *    past the end or codes too long for 32 bits flagged, not performed;
 *  - the SPS of real libx264 output (the project's encoder) at several sizes
 *    and profiles, cropping included, checked against the size asked for;
 *  - hand-written SPSs for the paths x264 does not take (scaling lists,
 *    picture order count type 1, field coding, 4:4:4, monochrome) and the
 *    fields the splicer rewrites;
 *  - malformed and truncated SPSs rejected (every prefix, out-of-range
 *    values, random corruption: run under ASan, nothing is read out of bounds).
 * Bit strings are written here as text ("0100..."), independently of the
 * library's own writer.
 */
#include <string.h>

#include "hfe/encoder.h"
#include "hfe/h264.h"
#include "test_util.h"

/* ---- bit strings written by hand ---- */

struct bitstr {
	char s[8192]; /* '0' / '1'; spaces are ignored */
	size_t n;
	size_t mark; /* write_sps: bits of the fields the parser reads */
};

static void bs_put(struct bitstr *b, const char *bits)
{
	for (; *bits; bits++) {
		if (*bits == ' ')
			continue;
		REQUIRE(b->n + 1 < sizeof(b->s));
		b->s[b->n++] = *bits;
	}
	b->s[b->n] = '\0';
}

/* n bits of v, most significant first. */
static void bs_u(struct bitstr *b, unsigned n, uint32_t v)
{
	while (n--)
		bs_put(b, (v >> n) & 1 ? "1" : "0");
}

/* 9.1: ue(v) is (len - 1) zeros, then v + 1 in len bits. */
static void bs_ue(struct bitstr *b, uint32_t v)
{
	uint64_t x = (uint64_t)v + 1;
	unsigned len = 0;
	while (x >> len)
		len++;
	bs_u(b, len - 1, 0);
	for (unsigned i = len; i-- > 0;)
		bs_put(b, (x >> i) & 1 ? "1" : "0");
}

static void bs_se(struct bitstr *b, int32_t v)
{
	bs_ue(b, v > 0 ? 2 * (uint32_t)v - 1 : 2 * (uint32_t)(-(int64_t)v));
}

/* rbsp_trailing_bits(), then the bytes (zero-padded). Returns the size. */
static size_t bs_bytes(struct bitstr *b, bool trailing, uint8_t *out, size_t cap)
{
	if (trailing) {
		bs_put(b, "1");
		while (b->n % 8)
			bs_put(b, "0");
	}
	size_t n = (b->n + 7) / 8;
	REQUIRE(n <= cap);
	memset(out, 0, n);
	for (size_t i = 0; i < b->n; i++)
		if (b->s[i] == '1')
			out[i / 8] |= (uint8_t)(0x80 >> (i % 8));
	return n;
}

/* ---- Annex B ---- */

static void test_start_codes(void)
{
	printf("start codes\n");
	CHECK(hfe_h264_start_code((const uint8_t[]){ 0, 0, 1, 0x67 }, 4) == 3);
	CHECK(hfe_h264_start_code((const uint8_t[]){ 0, 0, 0, 1, 0x67 }, 5) == 4);
	CHECK(hfe_h264_start_code((const uint8_t[]){ 0, 0, 1 }, 3) == 3);
	CHECK(hfe_h264_start_code((const uint8_t[]){ 0, 0, 0, 1 }, 4) == 4);
	CHECK(hfe_h264_start_code((const uint8_t[]){ 0, 0, 0, 1 }, 3) == 0); /* cut short */
	CHECK(hfe_h264_start_code((const uint8_t[]){ 0, 0 }, 2) == 0);
	CHECK(hfe_h264_start_code((const uint8_t[]){ 0, 0, 2 }, 3) == 0);
	CHECK(hfe_h264_start_code((const uint8_t[]){ 0, 1, 0x67 }, 3) == 0);
	CHECK(hfe_h264_start_code((const uint8_t[]){ 0, 0, 0, 0, 1 }, 5) == 0);
	CHECK(hfe_h264_start_code((const uint8_t[]){ 0x67, 0, 0, 1 }, 4) == 0);
}

/* Collect the units of buf: types, sizes, first bytes, ref_idc. */
static int scan(const uint8_t *buf, size_t n, struct hfe_h264_nal *out, int max)
{
	size_t pos = 0;
	int k = 0;
	while (k < max && hfe_h264_next_nal(buf, n, &pos, &out[k]))
		k++;
	CHECK(pos <= n);
	return k;
}

static void test_nal_framing(void)
{
	printf("NAL units: start codes, leading bytes, trailing zeros\n");
	static const uint8_t au[] = {
		0xff, 0x00,                   /* junk before the first start code */
		0, 0, 0, 1, 0x67, 0x42,       /* SPS behind a 4-byte start code */
		0, 0, 0, 1, 0x68, 0xce,       /* PPS, the same */
		0, 0, 0, 0, 0, 1, 0x06, 0x05, /* trailing zero bytes, then an SEI */
		0, 0, 1, 0x65, 0x88, 0x80,    /* IDR slice */
		0, 0, 0,                      /* trailing_zero_8bits at the end */
	};
	struct hfe_h264_nal n[8];
	int k = scan(au, sizeof(au), n, 8);
	CHECKF(k == 4, "%d units", k);
	if (k != 4)
		return;
	/* A unit ends before 00 00 01 or 00 00 00, its trailing 0x00 bytes
	 * (zero_byte of a 4-byte start code) are not part of it. */
	CHECK(n[0].data == au + 6 && n[0].size == 2 && n[0].type == 7 && n[0].ref_idc == 3);
	CHECK(n[1].data == au + 12 && n[1].size == 2 && n[1].type == 8 && n[1].ref_idc == 3);
	CHECK(n[2].data == au + 20 && n[2].size == 2 && n[2].type == 6 && n[2].ref_idc == 0);
	CHECK(n[3].data == au + 25 && n[3].size == 3 && n[3].type == 5 && n[3].ref_idc == 3);
}

static void test_nal_edges(void)
{
	printf("NAL units: empty units, no start code, unit up to the end\n");
	struct hfe_h264_nal n[4];
	/* Empty units between start codes are skipped, not returned. */
	static const uint8_t empty[] = { 0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0x41, 0x9a };
	int k = scan(empty, sizeof(empty), n, 4);
	CHECK(k == 1 && n[0].type == 1 && n[0].ref_idc == 2 && n[0].size == 2);
	/* No start code: nothing. */
	static const uint8_t none[] = { 0x67, 0x42, 0, 0, 2, 0x11 };
	CHECK(scan(none, sizeof(none), n, 4) == 0);
	CHECK(scan(none, 0, n, 4) == 0);
	/* A start code alone, or followed by zeros only. */
	CHECK(scan((const uint8_t[]){ 0, 0, 1 }, 3, n, 4) == 0);
	CHECK(scan((const uint8_t[]){ 0, 0, 1, 0, 0 }, 5, n, 4) == 0);
	/* The last unit runs to the end, a short tail of zeros dropped. */
	static const uint8_t tail[] = { 0, 0, 1, 0x09, 0x10, 0, 0 };
	k = scan(tail, sizeof(tail), n, 4);
	CHECK(k == 1 && n[0].type == 9 && n[0].size == 2);
	/* 00 00 02 inside a unit does not end it (only 00 00 00 / 00 00 01). */
	static const uint8_t inner[] = { 0, 0, 1, 0x01, 0, 0, 2, 0x05 };
	k = scan(inner, sizeof(inner), n, 4);
	CHECK(k == 1 && n[0].size == 5);
	/* 00 00 00 cannot occur inside a unit (B.2): it ends one, and what
	 * follows up to the next start code belongs to none. */
	static const uint8_t zeros3[] = { 0, 0, 1, 0x41, 0x9a, 0, 0, 0, 5, 6, 0, 0, 1, 0x09, 0x10 };
	k = scan(zeros3, sizeof(zeros3), n, 4);
	CHECK(k == 2 && n[0].size == 2 && n[1].type == 9 && n[1].data == zeros3 + 13);
	/* Once at the end it stays there. */
	size_t pos = sizeof(tail);
	CHECK(!hfe_h264_next_nal(tail, sizeof(tail), &pos, &n[0]) && pos == sizeof(tail));
}

static void test_unescape(void)
{
	printf("emulation prevention bytes\n");
	static const uint8_t src[] = { 0x11, 0, 0, 3, 1, 0, 0, 3, 3, 0, 0, 3, 0, 0, 3 };
	static const uint8_t want[] = { 0x11, 0, 0, 1, 0, 0, 3, 0, 0, 0, 0 };
	uint8_t out[sizeof(src)];
	size_t n = hfe_h264_unescape(src, sizeof(src), out);
	CHECKF(n == sizeof(want) && !memcmp(out, want, n), "%zu bytes", n);
	/* After a removed 03 the zero count starts again: 00 00 03 00 03 keeps
	 * the second 03; 00 03 and 03 alone are data. */
	static const uint8_t src2[] = { 0, 0, 3, 0, 3, 0, 3, 3 };
	static const uint8_t want2[] = { 0, 0, 0, 3, 0, 3, 3 };
	n = hfe_h264_unescape(src2, sizeof(src2), out);
	CHECK(n == sizeof(want2) && !memcmp(out, want2, n));
	CHECK(hfe_h264_unescape(src, 0, out) == 0);
}

static void test_put_annexb(void)
{
	printf("units written as Annex B\n");
	static const uint8_t sc4[] = { 0, 0, 0, 1, 0x65, 0x88 }, sc3[] = { 0, 0, 1, 0x41 };
	static const uint8_t bare[] = { 0x67, 0x42 }, almost[] = { 0, 0, 2, 0x41 };
	uint8_t out[16];
	CHECK(hfe_h264_put_annexb(NULL, sc4, sizeof(sc4)) == 6);
	CHECK(hfe_h264_put_annexb(out, sc4, sizeof(sc4)) == 6 && !memcmp(out, sc4, 6));
	CHECK(hfe_h264_put_annexb(out, sc3, sizeof(sc3)) == 4 && !memcmp(out, sc3, 4));
	CHECK(hfe_h264_put_annexb(NULL, bare, sizeof(bare)) == 6);
	memset(out, 0xee, sizeof(out));
	CHECK(hfe_h264_put_annexb(out, bare, sizeof(bare)) == 6 &&
	      !memcmp(out, (const uint8_t[]){ 0, 0, 0, 1, 0x67, 0x42 }, 6) && out[6] == 0xee);
	CHECK(hfe_h264_put_annexb(out, almost, sizeof(almost)) == 8 &&
	      !memcmp(out + 4, almost, 4));
}

/* ---- bits ---- */

static void test_u(void)
{
	printf("u(n)\n");
	static const uint8_t d[] = { 0xA5, 0x3C, 0xFF, 0x00, 0x81, 0x7E };
	struct hfe_h264_bits b;
	hfe_h264_bits_init(&b, d, sizeof(d));
	CHECK(hfe_h264_u(&b, 0) == 0 && b.pos == 0);
	CHECK(hfe_h264_u(&b, 1) == 1);
	CHECK(hfe_h264_u(&b, 3) == 2);          /* 010 */
	CHECK(hfe_h264_u(&b, 8) == 0x53);       /* 0101 0011: across a byte */
	CHECK(hfe_h264_u(&b, 32) == 0xCFF00817u); /* 1100 + 0xFF 0x00 0x81 + 0111 */
	CHECK(b.pos == 44 && !b.err);
	CHECK(hfe_h264_u(&b, 4) == 0xE && b.pos == 48 && !b.err); /* exactly to the end */
	CHECK(hfe_h264_u(&b, 1) == 0 && b.err && b.pos == 48);    /* past it */

	hfe_h264_bits_init(&b, d, 2);
	CHECK(hfe_h264_u(&b, 17) == 0 && b.err && b.pos == 16);
	hfe_h264_bits_init(&b, d, sizeof(d));
	CHECK(hfe_h264_u(&b, 33) == 0 && b.err); /* more than u(32) */
	hfe_h264_bits_init(&b, NULL, 0);
	CHECK(hfe_h264_u(&b, 1) == 0 && b.err);
}

static void test_ue_se(void)
{
	printf("ue(v), se(v) edge values\n");
	static const uint32_t ue[] = { 0, 1, 2, 3, 6, 7, 254, 255, 65535, 0x7fffffffu,
				       0xfffffffeu };
	static const int32_t se[] = { 0, 1, -1, 2, -2, 127, -128, 2147483647, -2147483647 };
	struct bitstr s = { 0 };
	for (size_t i = 0; i < sizeof(ue) / sizeof(ue[0]); i++)
		bs_ue(&s, ue[i]);
	for (size_t i = 0; i < sizeof(se) / sizeof(se[0]); i++)
		bs_se(&s, se[i]);
	uint8_t d[64];
	size_t n = bs_bytes(&s, true, d, sizeof(d));
	struct hfe_h264_bits b;
	hfe_h264_bits_init(&b, d, n);
	for (size_t i = 0; i < sizeof(ue) / sizeof(ue[0]); i++) {
		uint32_t v = hfe_h264_ue(&b);
		CHECKF(v == ue[i], "ue %u read as %u", ue[i], v);
	}
	for (size_t i = 0; i < sizeof(se) / sizeof(se[0]); i++) {
		int32_t v = hfe_h264_se(&b);
		CHECKF(v == se[i], "se %d read as %d", se[i], v);
	}
	CHECK(!b.err && !hfe_h264_more_rbsp_data(&b));

	/* Literal codes, the table of 9.1. */
	/* 010 1 1 1 00101, stop bit: 0101 1100 1011 0000 */
	hfe_h264_bits_init(&b, (const uint8_t[]){ 0x5C, 0xB0 }, 2);
	CHECK(hfe_h264_ue(&b) == 1 && hfe_h264_ue(&b) == 0 && hfe_h264_se(&b) == 0);
	CHECK(hfe_h264_ue(&b) == 0 && hfe_h264_se(&b) == -2 && !b.err);
	CHECK(!hfe_h264_more_rbsp_data(&b));

	/* 2^32 - 1 needs 32 leading zeros: too long for 32 bits. */
	struct bitstr big = { 0 };
	bs_u(&big, 32, 0);
	bs_put(&big, "1");
	bs_u(&big, 32, 0);
	n = bs_bytes(&big, true, d, sizeof(d));
	hfe_h264_bits_init(&b, d, n);
	CHECK(hfe_h264_ue(&b) == 0 && b.err);

	/* Codes cut off: in the zeros, and in the suffix. */
	hfe_h264_bits_init(&b, (const uint8_t[]){ 0x00 }, 1);
	CHECK(hfe_h264_ue(&b) == 0 && b.err);
	hfe_h264_bits_init(&b, (const uint8_t[]){ 0x01 }, 1); /* 7 zeros, 1, suffix missing */
	hfe_h264_ue(&b);
	CHECK(b.err);
	hfe_h264_bits_init(&b, NULL, 0);
	CHECK(hfe_h264_se(&b) == 0 && b.err);
}

static void test_more_rbsp_data(void)
{
	printf("more_rbsp_data, rbsp_stop_one_bit\n");
	CHECK(hfe_h264_rbsp_stop_bit((const uint8_t[]){ 0x80 }, 1) == 0);
	CHECK(hfe_h264_rbsp_stop_bit((const uint8_t[]){ 0x01 }, 1) == 7);
	CHECK(hfe_h264_rbsp_stop_bit((const uint8_t[]){ 0xAB, 0x40, 0, 0 }, 4) == 9);
	CHECK(hfe_h264_rbsp_stop_bit((const uint8_t[]){ 0, 0 }, 2) == 0);
	CHECK(hfe_h264_rbsp_stop_bit(NULL, 0) == 0);

	/* 1 (data) 1 (stop) 000000, then cabac_zero_words-like zero bytes */
	const uint8_t d[] = { 0xC0, 0x00, 0x00 };
	struct hfe_h264_bits b;
	hfe_h264_bits_init(&b, d, sizeof(d));
	CHECK(hfe_h264_more_rbsp_data(&b));
	hfe_h264_u(&b, 1);
	CHECK(!hfe_h264_more_rbsp_data(&b));
	/* A 1 bit further on is data, not the stop bit. */
	const uint8_t e[] = { 0xC0, 0x01 };
	hfe_h264_bits_init(&b, e, sizeof(e));
	hfe_h264_u(&b, 1);
	CHECK(hfe_h264_more_rbsp_data(&b));
	hfe_h264_u(&b, 14);
	CHECK(!hfe_h264_more_rbsp_data(&b) && !b.err);
}

/* ---- SPS of the project's encoder ---- */

/* The first access unit (an IDR) of libx264 through the lavc backend. */
static struct hfe_packet encode_idr(uint32_t w, uint32_t h, uint8_t profile)
{
	const struct hfe_encoder_ops *ops = &hfe_encoder_lavc;
	struct hfe_encoder_params p;
	struct hfe_encoder *enc = NULL;
	struct hfe_err err = { 0 };
	struct hfe_packet pkt = { 0 };

	hfe_encoder_params_default(&p);
	p.width = w;
	p.height = h;
	p.profile = profile;
	CHECKF(ops->open(&enc, &p, HFE_FMT_I420, &err) == 0, "open %ux%u: %s", w, h, err.msg);
	REQUIRE(enc);
	uint32_t stride = w;
	uint8_t *buf = tu_pattern_frame(ops->input_format(enc), w, h, stride, 0);
	struct hfe_image img;
	hfe_image_wrap(&img, ops->input_format(enc), w, h, stride, buf);
	CHECKF(ops->encode(enc, &img, 0, true, &err) == 0, "encode: %s", err.msg);
	CHECK(ops->drain(enc, &err) == 0);
	CHECK(ops->receive(enc, &pkt, &err) == 1 && pkt.keyframe);
	free(buf);
	ops->close(enc);
	return pkt;
}

static void test_sps_x264(void)
{
	static const struct {
		uint32_t w, h;
		uint8_t profile;
	} cases[] = {
		{ 1920, 1080, 66 }, { 1280, 720, 66 }, { 1366, 768, 77 }, { 642, 482, 100 },
		{ 16, 16, 66 },     { 1920, 1200, 100 }, { 720, 400, 77 }, { 34, 18, 66 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint32_t w = cases[i].w, h = cases[i].h;
		printf("SPS of libx264 output, %ux%u, profile %u\n", w, h, cases[i].profile);
		struct hfe_packet pkt = encode_idr(w, h, cases[i].profile);
		if (!pkt.data)
			continue;
		struct hfe_h264_nal nal;
		struct hfe_h264_sps sps;
		size_t pos = 0;
		int sps_seen = 0, pps_seen = 0, idr_seen = 0;
		while (hfe_h264_next_nal(pkt.data, pkt.size, &pos, &nal)) {
			sps_seen += nal.type == HFE_H264_NAL_SPS;
			pps_seen += nal.type == HFE_H264_NAL_PPS;
			idr_seen += nal.type == HFE_H264_NAL_IDR;
			if (nal.type != HFE_H264_NAL_SPS)
				continue;
			CHECK(nal.ref_idc == 3);
			bool ok = hfe_h264_parse_sps_nal(&nal, &sps);
			CHECKF(ok, "%ux%u: SPS not parsed", w, h);
			if (!ok)
				continue;
			CHECKF(sps.width == w && sps.height == h, "%ux%u read as %ux%u", w, h,
			       sps.width, sps.height);
			CHECK(sps.width_mbs == (w + 15) / 16 && sps.height_map_units == (h + 15) / 16);
			/* 4:2:0 frames: crop units of 2 pixels, right and bottom only */
			CHECK(sps.crop_left == 0 && sps.crop_top == 0);
			CHECKF(sps.crop_right * 2 == sps.width_mbs * 16 - w &&
				       sps.crop_bottom * 2 == sps.height_map_units * 16 - h,
			       "crop r %u b %u", sps.crop_right, sps.crop_bottom);
			CHECK(sps.profile_idc == cases[i].profile && sps.profile_idc == nal.data[1]);
			CHECK(sps.constraint_flags == nal.data[2] && sps.level_idc == nal.data[3]);
			CHECK(sps.sps_id == 0 && sps.chroma_format_idc == 1 &&
			      sps.bit_depth_luma == 8 && sps.bit_depth_chroma == 8);
			CHECK(!sps.scaling_matrix_present && sps.frame_mbs_only);
			CHECK(sps.log2_max_frame_num >= 4 && sps.log2_max_frame_num <= 16);
			/* x264 without B-frames: pic_order_cnt_type 2, one ue(v) */
			CHECKF(sps.poc_type == 2 && sps.poc_end_bitpos == sps.poc_bitpos + 3,
			       "poc_type %u at %zu..%zu", sps.poc_type, sps.poc_bitpos,
			       sps.poc_end_bitpos);
			CHECK(sps.max_num_ref_frames >= 1);
		}
		CHECK(sps_seen == 1 && pps_seen == 1 && idr_seen >= 1);
		hfe_packet_release(&pkt);
	}
}

/* ---- SPS written by hand ---- */

struct sps_fields {
	uint8_t profile;
	uint32_t sps_id;
	uint32_t chroma; /* chroma_format_idc, profiles with chroma info only */
	bool separate_planes, scaling;
	int32_t scaling_delta0; /* first delta_scale of the first list; 0: 8 */
	uint32_t poc_type;
	bool frame_mbs_only;
	uint32_t w_mbs_m1, h_map_m1;
	bool crop;
	uint32_t crop_lrtb[4];
};

/* An SPS RBSP up to the cropping window (vui_parameters_present_flag 0). */
static size_t write_sps(const struct sps_fields *f, struct bitstr *s, uint8_t *out, size_t cap)
{
	*s = (struct bitstr){ 0 };
	bs_u(s, 8, f->profile);
	bs_u(s, 8, 0);  /* constraint flags */
	bs_u(s, 8, 40); /* level_idc */
	bs_ue(s, f->sps_id);
	if (f->profile == 100 || f->profile == 244) {
		bs_ue(s, f->chroma);
		if (f->chroma == 3)
			bs_u(s, 1, f->separate_planes);
		bs_ue(s, 0); /* bit_depth_luma_minus8 */
		bs_ue(s, 2); /* bit_depth_chroma_minus8 */
		bs_u(s, 1, 0);
		bs_u(s, 1, f->scaling);
		if (f->scaling) {
			unsigned lists = f->chroma != 3 ? 8 : 12;
			for (unsigned i = 0; i < lists; i++) {
				bs_u(s, 1, i == 0 || i == 6); /* present: one 4x4, one 8x8 */
				if (i == 0) { /* 16 deltas: 8 (+8 = 16), then zeros */
					bs_se(s, f->scaling_delta0 ? f->scaling_delta0 : 8);
					for (int j = 1; j < 16; j++)
						bs_se(s, 0);
				} else if (i == 6) { /* -8: next 0 ends the list */
					bs_se(s, -8);
				}
			}
		}
	}
	bs_ue(s, 2); /* log2_max_frame_num_minus4 */
	bs_ue(s, f->poc_type);
	if (f->poc_type == 0) {
		bs_ue(s, 3);
	} else if (f->poc_type == 1) {
		bs_u(s, 1, 0);
		bs_se(s, -3);
		bs_se(s, 7);
		bs_ue(s, 3);
		bs_se(s, 1);
		bs_se(s, -(1 << 30)); /* 31 leading zeros: emulation prevention */
		bs_se(s, 2);
	}
	bs_ue(s, 4);   /* max_num_ref_frames */
	bs_u(s, 1, 1); /* gaps_in_frame_num_value_allowed_flag */
	bs_ue(s, f->w_mbs_m1);
	bs_ue(s, f->h_map_m1);
	bs_u(s, 1, f->frame_mbs_only);
	if (!f->frame_mbs_only)
		bs_u(s, 1, 1);
	bs_u(s, 1, 1); /* direct_8x8_inference_flag */
	bs_u(s, 1, f->crop);
	if (f->crop)
		for (int i = 0; i < 4; i++)
			bs_ue(s, f->crop_lrtb[i]);
	s->mark = s->n;
	bs_u(s, 1, 0); /* vui_parameters_present_flag */
	return bs_bytes(s, true, out, cap);
}

static void test_sps_hand_written(void)
{
	printf("SPS written by hand: profiles, crop units, POC fields\n");
	uint8_t d[1024];
	struct bitstr s;
	struct hfe_h264_sps sps;

	/* Baseline, poc type 0, crop units of 2x2. The POC fields: after
	 * 24 bits, ue(5) = 00110, ue(2) = 011, so pic_order_cnt_type at 32. */
	struct sps_fields f = { .profile = 66, .sps_id = 5, .poc_type = 0, .frame_mbs_only = true,
				.w_mbs_m1 = 79, .h_map_m1 = 44, .crop = true,
				.crop_lrtb = { 1, 2, 3, 4 } };
	size_t n = write_sps(&f, &s, d, sizeof(d));
	CHECK(hfe_h264_parse_sps(d, n, &sps));
	CHECK(sps.sps_id == 5 && sps.level_idc == 40 && sps.log2_max_frame_num == 6);
	CHECK(sps.poc_type == 0 && sps.log2_max_poc_lsb == 7);
	CHECKF(sps.poc_bitpos == 32 && sps.poc_end_bitpos == 32 + 1 + 5, "%zu %zu",
	       sps.poc_bitpos, sps.poc_end_bitpos);
	CHECK(sps.max_num_ref_frames == 4 && sps.gaps_in_frame_num_allowed);
	CHECK(sps.width == 1280 - 2 * 3 && sps.height == 720 - 2 * 7);

	/* High 4:2:0 with scaling lists and poc type 1 (cycle of 3). */
	f = (struct sps_fields){ .profile = 100, .chroma = 1, .scaling = true, .poc_type = 1,
				 .frame_mbs_only = true, .w_mbs_m1 = 9, .h_map_m1 = 9 };
	n = write_sps(&f, &s, d, sizeof(d));
	CHECK(hfe_h264_parse_sps(d, n, &sps));
	CHECK(sps.scaling_matrix_present && sps.bit_depth_chroma == 10 && sps.poc_type == 1);
	CHECK(sps.width == 160 && sps.height == 160 && sps.max_num_ref_frames == 4);

	/* Field coding: map units are field macroblock pairs, crop units doubled. */
	f = (struct sps_fields){ .profile = 77, .poc_type = 2, .frame_mbs_only = false,
				 .w_mbs_m1 = 44, .h_map_m1 = 17, .crop = true,
				 .crop_lrtb = { 0, 0, 0, 2 } };
	n = write_sps(&f, &s, d, sizeof(d));
	CHECK(hfe_h264_parse_sps(d, n, &sps));
	CHECK(!sps.frame_mbs_only && sps.mb_adaptive_frame_field);
	CHECKF(sps.width == 720 && sps.height == 18 * 32 - 4 * 2, "%ux%u", sps.width, sps.height);

	/* 4:4:4: crop unit 1 across; with separate planes, 1 both ways. */
	f = (struct sps_fields){ .profile = 244, .chroma = 3, .poc_type = 2,
				 .frame_mbs_only = true, .w_mbs_m1 = 3, .h_map_m1 = 3,
				 .crop = true, .crop_lrtb = { 1, 1, 1, 1 } };
	n = write_sps(&f, &s, d, sizeof(d));
	CHECK(hfe_h264_parse_sps(d, n, &sps) && sps.width == 62 && sps.height == 62);
	f.separate_planes = true;
	f.scaling = true; /* 12 lists with 4:4:4 */
	n = write_sps(&f, &s, d, sizeof(d));
	CHECK(hfe_h264_parse_sps(d, n, &sps) && sps.separate_colour_plane && sps.width == 62 &&
	      sps.height == 62);
	/* Monochrome: crop unit 1 both ways. */
	f = (struct sps_fields){ .profile = 100, .chroma = 0, .poc_type = 2,
				 .frame_mbs_only = true, .w_mbs_m1 = 3, .h_map_m1 = 3,
				 .crop = true, .crop_lrtb = { 0, 3, 0, 5 } };
	n = write_sps(&f, &s, d, sizeof(d));
	CHECK(hfe_h264_parse_sps(d, n, &sps) && sps.width == 61 && sps.height == 59);
}

static void test_sps_nal_escaped(void)
{
	printf("SPS NAL with emulation prevention bytes\n");
	/* offset_for_ref_frame -2^30 (poc type 1) is 31 zero bits in a row:
	 * 00 00 00 in the RBSP, 00 00 03 00 in the NAL. */
	uint8_t rbsp[256], nal[512];
	struct bitstr s;
	struct hfe_h264_sps want, got;
	bool found = false;
	for (uint32_t c = 0; c < 64 && !found; c++) {
		struct sps_fields f = { .profile = 66, .poc_type = 1, .frame_mbs_only = true,
					.w_mbs_m1 = 255, .h_map_m1 = 255 + c, .crop = true,
					.crop_lrtb = { 0, c, 0, 0 } };
		size_t n = write_sps(&f, &s, rbsp, sizeof(rbsp));
		/* Escape as an encoder would. */
		size_t o = 0, zeros = 0;
		nal[o++] = 0x67;
		for (size_t i = 0; i < n; i++) {
			if (zeros >= 2 && rbsp[i] <= 3) {
				nal[o++] = 3;
				zeros = 0;
				found = true;
			}
			zeros = rbsp[i] ? 0 : zeros + 1;
			nal[o++] = rbsp[i];
		}
		if (!found)
			continue;
		REQUIRE(hfe_h264_parse_sps(rbsp, n, &want));
		struct hfe_h264_nal unit = { .data = nal, .size = o, .type = 7, .ref_idc = 3 };
		CHECK(hfe_h264_parse_sps_nal(&unit, &got));
		CHECK(got.width == want.width && got.height == want.height &&
		      got.width == 4096 - 2 * c && got.crop_right == c &&
		      got.poc_bitpos == want.poc_bitpos && got.poc_end_bitpos == want.poc_end_bitpos);
	}
	CHECK(found);
}

/* ---- malformed ---- */

static void test_sps_rejected(void)
{
	printf("SPS: truncated and out-of-range rejected\n");
	uint8_t d[1024];
	struct bitstr s;
	struct hfe_h264_sps sps;
	struct sps_fields base = { .profile = 100, .chroma = 1, .scaling = true, .poc_type = 1,
				   .frame_mbs_only = false, .w_mbs_m1 = 119, .h_map_m1 = 33,
				   .crop = true, .crop_lrtb = { 0, 0, 0, 4 } };
	size_t n = write_sps(&base, &s, d, sizeof(d));
	REQUIRE(hfe_h264_parse_sps(d, n, &sps));
	/* Every prefix: accepted exactly when it holds every field read. */
	for (size_t k = 0; k <= n; k++) {
		uint8_t *cut = malloc(k ? k : 1); /* exact size: ASan sees overreads */
		memcpy(cut, d, k);
		bool ok = hfe_h264_parse_sps(cut, k, &sps);
		CHECKF(ok == (k * 8 >= s.mark), "prefix of %zu bytes (%zu bits of fields): %s", k,
		       s.mark, ok ? "accepted" : "rejected");
		free(cut);
	}

	struct {
		const char *what;
		struct sps_fields f;
	} bad[] = {
		{ "seq_parameter_set_id 32",
		  { .profile = 66, .sps_id = 32, .poc_type = 2, .frame_mbs_only = true } },
		{ "chroma_format_idc 4", { .profile = 100, .chroma = 4, .frame_mbs_only = true } },
		{ "delta_scale 128",
		  { .profile = 100, .chroma = 1, .scaling = true, .scaling_delta0 = 128,
		    .poc_type = 2, .frame_mbs_only = true } },
		{ "delta_scale -129",
		  { .profile = 100, .chroma = 1, .scaling = true, .scaling_delta0 = -129,
		    .poc_type = 2, .frame_mbs_only = true } },
		{ "pic_order_cnt_type 3", { .profile = 66, .poc_type = 3, .frame_mbs_only = true } },
		{ "1025 macroblocks across",
		  { .profile = 66, .poc_type = 2, .frame_mbs_only = true, .w_mbs_m1 = 1024 } },
		{ "1025 map units down",
		  { .profile = 66, .poc_type = 2, .frame_mbs_only = true, .h_map_m1 = 1024 } },
		{ "crop the whole width",
		  { .profile = 66, .poc_type = 2, .frame_mbs_only = true, .w_mbs_m1 = 1,
		    .crop = true, .crop_lrtb = { 8, 8, 0, 0 } } },
		{ "crop the whole height",
		  { .profile = 66, .poc_type = 2, .frame_mbs_only = true, .h_map_m1 = 0,
		    .crop = true, .crop_lrtb = { 0, 0, 4, 4 } } },
		{ "crop overflowing 32 bits",
		  { .profile = 66, .poc_type = 2, .frame_mbs_only = true, .crop = true,
		    .crop_lrtb = { 0xfffffffeu, 0xfffffffeu, 0, 0 } } },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = write_sps(&bad[i].f, &s, d, sizeof(d));
		CHECKF(!hfe_h264_parse_sps(d, n, &sps), "%s accepted", bad[i].what);
	}
	/* The largest allowed is taken. */
	struct sps_fields max = { .profile = 66, .poc_type = 2, .frame_mbs_only = true,
				  .w_mbs_m1 = 1023, .h_map_m1 = 1023 };
	n = write_sps(&max, &s, d, sizeof(d));
	CHECK(hfe_h264_parse_sps(d, n, &sps) && sps.width == 16384 && sps.height == 16384);

	/* The edges of the ranges are taken. */
	struct sps_fields edge = { .profile = 100, .sps_id = 31, .chroma = 1, .scaling = true,
				   .scaling_delta0 = -128, .poc_type = 2, .frame_mbs_only = true };
	n = write_sps(&edge, &s, d, sizeof(d));
	CHECK(hfe_h264_parse_sps(d, n, &sps) && sps.sps_id == 31);
	edge.scaling_delta0 = 127;
	n = write_sps(&edge, &s, d, sizeof(d));
	CHECK(hfe_h264_parse_sps(d, n, &sps));

	/* NAL headers: wrong type, forbidden_zero_bit, header only. */
	n = write_sps(&base, &s, d + 1, sizeof(d) - 1) + 1;
	struct hfe_h264_nal nal = { .data = d, .size = n, .type = 7, .ref_idc = 3 };
	d[0] = 0x67;
	CHECK(hfe_h264_parse_sps_nal(&nal, &sps));
	d[0] = 0xE7;
	CHECK(!hfe_h264_parse_sps_nal(&nal, &sps));
	d[0] = 0x68;
	nal.type = 8;
	CHECK(!hfe_h264_parse_sps_nal(&nal, &sps));
	d[0] = 0x67;
	nal.type = 7;
	nal.size = 1;
	CHECK(!hfe_h264_parse_sps_nal(&nal, &sps));
}

/* Random corruption of a real SPS: any answer, but no out-of-bounds read
 * (ASan) and a size within what the fields allow when accepted. */
static void test_sps_corrupted(void)
{
	printf("SPS: random corruption\n");
	struct hfe_packet pkt = encode_idr(1366, 768, 100);
	if (!pkt.data)
		return;
	struct hfe_h264_nal nal;
	size_t pos = 0;
	while (hfe_h264_next_nal(pkt.data, pkt.size, &pos, &nal) && nal.type != HFE_H264_NAL_SPS)
		;
	REQUIRE(nal.type == HFE_H264_NAL_SPS);
	uint8_t *rbsp = malloc(nal.size);
	size_t n = hfe_h264_unescape(nal.data + 1, nal.size - 1, rbsp);
	uint32_t seed = 12345;
	unsigned accepted = 0;
	for (int i = 0; i < 20000; i++) {
		size_t len = n;
		uint8_t *m = malloc(len);
		memcpy(m, rbsp, len);
		for (int k = 0; k < 1 + i % 4; k++) {
			seed = seed * 1103515245u + 12345u;
			m[(seed >> 8) % len] ^= (uint8_t)(1u << ((seed >> 4) % 8));
		}
		seed = seed * 1103515245u + 12345u;
		if (i % 3 == 0)
			len = (seed >> 8) % (n + 1); /* and cut short */
		struct hfe_h264_sps sps;
		if (hfe_h264_parse_sps(m, len, &sps)) {
			accepted++;
			CHECK(sps.width >= 1 && sps.width <= 16384 && sps.height >= 1 &&
			      sps.height <= 32768);
		}
		free(m);
	}
	printf("  %u of 20000 corrupted SPSs still parse\n", accepted);
	free(rbsp);
	hfe_packet_release(&pkt);
}

int main(void)
{
	test_start_codes();
	test_nal_framing();
	test_nal_edges();
	test_unescape();
	test_put_annexb();
	test_u();
	test_ue_se();
	test_more_rbsp_data();
	test_sps_x264();
	test_sps_hand_written();
	test_sps_nal_escaped();
	test_sps_rejected();
	test_sps_corrupted();
	return tu_finish("test_h264_bits");
}
