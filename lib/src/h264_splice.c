/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * H.264 patch frames between encoder frames. See h264_splice.h; syntax
 * element names below are those of ITU-T H.264 (7.3.2.1 SPS, 7.3.2.2 PPS,
 * 7.3.3 slice header, 7.3.4 slice data, 7.3.5 macroblock layer).
 */
#include "h264_splice.h"

#include <libavcodec/avcodec.h>
#include <stdlib.h>
#include <string.h>

#include "h264_bitwriter.h"
#include "h264_intra.h"
#include "hfe/h264.h"

#define POC_LSB_BITS 16 /* log2_max_pic_order_cnt_lsb written into the SPS */
#define MB_TYPE_P_I_PCM 30 /* I_PCM (25) after the 5 P macroblock types */
/* QP of intra patch macroblocks: text comes out at >= 40 dB
 * (tests/test_patch_frames.c) for a fraction of I_PCM's bytes. */
#define INTRA_QP 18

/* ---- bits in: hfe/h264.h ---- */

/* Copy the bits [r->pos, end) of r to w. */
static void copy_bits(struct bw *w, struct hfe_h264_bits *r, size_t end)
{
	while (r->pos < end && !w->oom) {
		unsigned n = end - r->pos > 24 ? 24 : (unsigned)(end - r->pos);
		bw_bits(w, n, hfe_h264_u(r, n));
	}
}

/* ---- NAL units out ---- */

/* Start code, NAL header byte, then the RBSP with emulation prevention. */
static void put_nal(struct bw *out, uint8_t header, const uint8_t *rbsp, size_t n)
{
	static const uint8_t start[4] = { 0, 0, 0, 1 };
	bw_bytes(out, start, sizeof(start));
	bw_byte(out, header);
	unsigned zeros = 0;
	for (size_t i = 0; i < n; i++) {
		if (zeros >= 2 && rbsp[i] <= 3) {
			bw_byte(out, 3);
			zeros = 0;
		}
		zeros = rbsp[i] ? 0 : zeros + 1;
		bw_byte(out, rbsp[i]);
	}
}

/* An RBSP body out as one NAL unit (trailing bits added here); frees it. */
static void put_body(struct bw *out, uint8_t hdr, struct bw *body)
{
	bw_trailing(body);
	put_nal(out, hdr, body->buf, body->len);
	out->oom |= body->oom;
	free(body->buf);
}

/* ---- the splicer ---- */

struct h264_splicer {
	/* from the current SPS / PPS */
	bool sps_ok, pps_ok;
	uint32_t sps_id, pps_id;
	unsigned frame_num_bits;
	unsigned in_poc_type, in_poc_lsb_bits;
	uint32_t mb_w, mb_h;
	int32_t pic_init_qp;
	bool deblock_ctl;
	bool intra_ok; /* changed macroblocks may be intra coded (h264_intra.h) */
	bool constrained_intra; /* the PPS's constrained_intra_pred_flag */
	struct h264_intra_params intra;

	/* stream state */
	bool idr_seen;          /* since the current SPS: patches may follow */
	uint32_t last_ref_frame_num;
	uint32_t poc;           /* of the last picture sent (grows by 2) */

	uint8_t *rbsp; /* scratch */
	size_t rbsp_cap;
	struct h264_intra_mb *rows; /* two rows of macroblock state for intra patches */
	uint32_t rows_w;
};

struct h264_splicer *h264_splicer_new(void) { return calloc(1, sizeof(struct h264_splicer)); }

void h264_splicer_free(struct h264_splicer *sp)
{
	if (!sp)
		return;
	free(sp->rbsp);
	free(sp->rows);
	free(sp);
}

static bool rewriting(const struct h264_splicer *sp) { return sp->sps_ok && sp->pps_ok; }

bool h264_splicer_can_patch(const struct h264_splicer *sp, uint32_t *mb_w, uint32_t *mb_h)
{
	if (!rewriting(sp) || !sp->idr_seen)
		return false;
	*mb_w = sp->mb_w;
	*mb_h = sp->mb_h;
	return true;
}

/* SPS: learn the stream's layout. Returns whether it is one we can splice:
 * raw samples are written as 8-bit 4:2:0 frames, and only the picture
 * order count types 0 and 2 are rewritten. */
static bool take_sps(struct h264_splicer *sp, const struct hfe_h264_sps *s)
{
	sp->sps_id = s->sps_id;
	sp->frame_num_bits = s->log2_max_frame_num;
	sp->in_poc_type = s->poc_type;
	sp->in_poc_lsb_bits = s->log2_max_poc_lsb;
	sp->mb_w = s->width_mbs;
	sp->mb_h = s->height_map_units;
	return s->chroma_format_idc == 1 && s->bit_depth_luma == 8 && s->bit_depth_chroma == 8 &&
	       !s->scaling_matrix_present && (s->poc_type == 0 || s->poc_type == 2) &&
	       s->frame_mbs_only;
}

/* The same SPS with pic_order_cnt_type 0 and our lsb size. */
static void rewrite_sps(struct bw *out, uint8_t hdr, const uint8_t *rbsp, size_t n, size_t end,
			const struct hfe_h264_sps *s)
{
	struct hfe_h264_bits r;
	struct bw body = { 0 };
	hfe_h264_bits_init(&r, rbsp, n);
	copy_bits(&body, &r, s->poc_bitpos);
	bw_ue(&body, 0);                /* pic_order_cnt_type */
	bw_ue(&body, POC_LSB_BITS - 4); /* log2_max_pic_order_cnt_lsb_minus4 */
	r.pos = s->poc_end_bitpos;
	copy_bits(&body, &r, end);
	put_body(out, hdr, &body);
}

/* PPS: only read (whether slices can be rewritten and patches written). */
static void read_pps(struct h264_splicer *sp, struct hfe_h264_bits *r)
{
	sp->pps_ok = false;
	sp->pps_id = hfe_h264_ue(r);
	uint32_t sps_id = hfe_h264_ue(r);
	bool cabac = hfe_h264_u(r, 1);
	bool bottom_field_poc = hfe_h264_u(r, 1);
	uint32_t slice_groups = hfe_h264_ue(r);
	hfe_h264_ue(r);   /* num_ref_idx_l0_default_active_minus1 */
	hfe_h264_ue(r);   /* l1 */
	bool weighted = hfe_h264_u(r, 1);
	hfe_h264_u(r, 2); /* weighted_bipred_idc */
	sp->pic_init_qp = 26 + hfe_h264_se(r);
	hfe_h264_se(r);   /* pic_init_qs_minus26 */
	int32_t chroma_qp_offset = hfe_h264_se(r);
	sp->deblock_ctl = hfe_h264_u(r, 1);
	bool constrained_intra = hfe_h264_u(r, 1);
	bool redundant = hfe_h264_u(r, 1);
	bool transform_8x8 = false, scaling_matrix = false;
	int32_t second_chroma_qp_offset = chroma_qp_offset;
	if (hfe_h264_more_rbsp_data(r)) {
		transform_8x8 = hfe_h264_u(r, 1);
		scaling_matrix = hfe_h264_u(r, 1);
		if (!scaling_matrix) /* else its lists follow: not read, no intra */
			second_chroma_qp_offset = hfe_h264_se(r);
	}
	sp->pps_ok = !r->err && sps_id == sp->sps_id && !cabac && !bottom_field_poc &&
		     !slice_groups && !weighted && !redundant;
	/* Intra patch macroblocks need the deblocking filter off and inter
	 * neighbours kept out of their prediction (h264_intra.h), by
	 * constrained_intra_pred_flag or by slices (starts_slice). */
	sp->constrained_intra = constrained_intra;
	sp->intra_ok = sp->pps_ok && sp->deblock_ctl && !scaling_matrix &&
		       chroma_qp_offset >= -12 && chroma_qp_offset <= 12 &&
		       second_chroma_qp_offset >= -12 && second_chroma_qp_offset <= 12;
	sp->intra = (struct h264_intra_params){
		.qp = INTRA_QP,
		.chroma_qp_offset = { chroma_qp_offset, second_chroma_qp_offset },
		.transform_8x8_mode = transform_8x8,
	};
}

/* Slice: pic_order_cnt_lsb in, frame_num noted. */
static void splice_slice(struct h264_splicer *sp, struct bw *out, const struct hfe_h264_nal *nal,
			 struct hfe_h264_bits *r, size_t end)
{
	hfe_h264_ue(r); /* first_mb_in_slice */
	hfe_h264_ue(r); /* slice_type */
	hfe_h264_ue(r); /* pic_parameter_set_id */
	uint32_t frame_num = hfe_h264_u(r, sp->frame_num_bits);
	if (nal->type == HFE_H264_NAL_IDR)
		hfe_h264_ue(r); /* idr_pic_id */
	size_t poc_at = r->pos;
	if (sp->in_poc_type == 0)
		hfe_h264_u(r, sp->in_poc_lsb_bits);
	size_t rest_at = r->pos;
	if (nal->ref_idc)
		sp->last_ref_frame_num = frame_num;

	struct hfe_h264_bits again = *r;
	struct bw body = { 0 };
	again.pos = 0;
	copy_bits(&body, &again, poc_at);
	bw_bits(&body, POC_LSB_BITS, sp->poc & ((1u << POC_LSB_BITS) - 1));
	again.pos = rest_at;
	copy_bits(&body, &again, end);
	put_body(out, nal->data[0], &body);
}

static int packet_from(struct bw *w, struct hfe_packet *pkt, int64_t index, bool keyframe)
{
	AVPacket *av = av_packet_alloc();
	if (!av || w->oom || av_new_packet(av, (int)w->len) < 0) {
		av_packet_free(&av);
		return -1;
	}
	memcpy(av->data, w->buf, w->len);
	*pkt = (struct hfe_packet){ .data = av->data, .size = w->len, .frame_index = index,
				    .keyframe = keyframe, .priv = av };
	return 0;
}

static bool grow_scratch(struct h264_splicer *sp, size_t n)
{
	if (n <= sp->rbsp_cap)
		return true;
	uint8_t *b = realloc(sp->rbsp, n);
	if (!b)
		return false;
	sp->rbsp = b;
	sp->rbsp_cap = n;
	return true;
}

int h264_splice_encoder_au(struct h264_splicer *sp, struct hfe_packet *pkt)
{
	struct hfe_h264_nal nal;
	size_t off = 0;
	struct hfe_h264_sps sps = { 0 };
	bool have_sps = false;

	if (!grow_scratch(sp, pkt->size))
		return -1;
	/* First the parameter sets: whether this stream can be spliced is
	 * known only once both are read, and the SPS comes first. */
	while (hfe_h264_next_nal(pkt->data, pkt->size, &off, &nal)) {
		if (nal.type != HFE_H264_NAL_SPS && nal.type != HFE_H264_NAL_PPS)
			continue;
		size_t n = hfe_h264_unescape(nal.data + 1, nal.size - 1, sp->rbsp);
		if (nal.type == HFE_H264_NAL_SPS) {
			have_sps = true;
			sp->sps_ok = hfe_h264_parse_sps(sp->rbsp, n, &sps) && take_sps(sp, &sps);
			sp->pps_ok = false; /* a new SPS needs its PPS along */
			sp->idr_seen = false;
		} else {
			struct hfe_h264_bits r;
			hfe_h264_bits_init(&r, sp->rbsp, n);
			read_pps(sp, &r);
		}
	}

	struct bw out = { 0 };
	bool any = false, poc_set = false;
	off = 0;
	while (hfe_h264_next_nal(pkt->data, pkt->size, &off, &nal)) {
		bool slice = nal.type == HFE_H264_NAL_SLICE || nal.type == HFE_H264_NAL_IDR;
		if (!rewriting(sp) || (nal.type != HFE_H264_NAL_SPS && !slice)) {
			static const uint8_t start[4] = { 0, 0, 0, 1 };
			bw_bytes(&out, start, sizeof(start));
			bw_bytes(&out, nal.data, nal.size);
			continue;
		}
		size_t n = hfe_h264_unescape(nal.data + 1, nal.size - 1, sp->rbsp);
		size_t end = hfe_h264_rbsp_stop_bit(sp->rbsp, n);
		if (nal.type == HFE_H264_NAL_SPS && have_sps) {
			rewrite_sps(&out, nal.data[0], sp->rbsp, n, end, &sps);
		} else if (slice) {
			if (!poc_set) { /* one picture order count per access unit */
				sp->poc = nal.type == HFE_H264_NAL_IDR ? 0 : sp->poc + 2;
				poc_set = true;
			}
			struct hfe_h264_bits r;
			hfe_h264_bits_init(&r, sp->rbsp, n);
			splice_slice(sp, &out, &nal, &r, end);
		}
		any = true;
		if (nal.type == HFE_H264_NAL_IDR)
			sp->idr_seen = true;
	}
	if (!any) {
		free(out.buf);
		return 0; /* nothing of ours in it: pass through as it is */
	}
	struct hfe_packet n;
	int rc = packet_from(&out, &n, pkt->frame_index, pkt->keyframe);
	free(out.buf);
	if (rc < 0)
		return -1;
	hfe_packet_release(pkt);
	*pkt = n;
	return 0;
}

/* One macroblock's raw samples: 16x16 luma, 8x8 Cb, 8x8 Cr. Positions past
 * the picture (the coded size is a multiple of 16; the decoder crops) repeat
 * the last row/column. Zero is avoided: the original H.264 text forbade it
 * in PCM samples. */
static void pcm_samples(const struct hfe_image *pic, uint32_t mx, uint32_t my, uint8_t out[384])
{
	uint32_t w = pic->width, h = pic->height;
	uint8_t *o = out;
	for (uint32_t y = 0; y < 16; y++) {
		uint32_t sy = my * 16 + y < h ? my * 16 + y : h - 1;
		const uint8_t *row = pic->plane[0] + (size_t)sy * pic->stride[0];
		for (uint32_t x = 0; x < 16; x++) {
			uint32_t sx = mx * 16 + x < w ? mx * 16 + x : w - 1;
			*o++ = row[sx] ? row[sx] : 1;
		}
	}
	uint32_t cw = (w + 1) / 2, ch = (h + 1) / 2;
	for (int c = 0; c < 2; c++) {
		for (uint32_t y = 0; y < 8; y++) {
			uint32_t sy = my * 8 + y < ch ? my * 8 + y : ch - 1;
			for (uint32_t x = 0; x < 8; x++) {
				uint32_t sx = mx * 8 + x < cw ? mx * 8 + x : cw - 1;
				uint8_t v;
				if (pic->format == HFE_FMT_NV12)
					v = pic->plane[1][(size_t)sy * pic->stride[1] + 2 * sx + c];
				else
					v = pic->plane[1 + c][(size_t)sy * pic->stride[1 + c] + sx];
				*o++ = v ? v : 1;
			}
		}
	}
}

static bool grow_rows(struct h264_splicer *sp)
{
	if (sp->rows_w >= sp->mb_w)
		return true;
	struct h264_intra_mb *r = realloc(sp->rows, 2 * sp->mb_w * sizeof(*r));
	if (!r)
		return false;
	sp->rows = r;
	sp->rows_w = sp->mb_w;
	return true;
}

/* slice_header() of a P slice of the non-reference picture `poc`. */
static void patch_slice_header(const struct h264_splicer *sp, struct bw *body, uint32_t first_mb,
			       uint32_t poc, int32_t qp)
{
	bw_ue(body, first_mb);          /* first_mb_in_slice */
	bw_ue(body, 5);                 /* slice_type: P, all slices */
	bw_ue(body, sp->pps_id);
	bw_bits(body, sp->frame_num_bits, (sp->last_ref_frame_num + 1) & ((1u << sp->frame_num_bits) - 1));
	bw_bits(body, POC_LSB_BITS, poc & ((1u << POC_LSB_BITS) - 1));
	bw_bits(body, 1, 1);            /* num_ref_idx_active_override_flag */
	bw_ue(body, 0);                 /* num_ref_idx_l0_active_minus1: the last reference */
	bw_bits(body, 1, 0);            /* ref_pic_list_modification_flag_l0 */
	bw_se(body, qp - sp->pic_init_qp); /* slice_qp_delta */
	if (sp->deblock_ctl)
		bw_ue(body, 1); /* disable_deblocking_filter_idc */
}

/*
 * Without constrained intra prediction an intra macroblock would predict
 * from skipped neighbours too. Neighbours in another slice are never
 * available, so then each run of changed macroblocks within a row starts a
 * slice of its own: inside it, a macroblock sees only the changed ones to
 * its left (the row above is in earlier slices).
 */
static bool starts_slice(const struct h264_splicer *sp, const uint8_t *changed, uint32_t i)
{
	if (i == 0)
		return true;
	if (!sp->intra_ok || sp->constrained_intra || !changed[i])
		return false;
	return i % sp->mb_w == 0 || !changed[i - 1];
}

int h264_splice_patch(struct h264_splicer *sp, const struct hfe_image *pic, const uint8_t *changed,
		      struct hfe_packet *pkt)
{
	if (!rewriting(sp) || !sp->idr_seen || pic->width > sp->mb_w * 16 ||
	    pic->height > sp->mb_h * 16 || !pic->width || !pic->height)
		return -1;
	uint32_t mbs = sp->mb_w * sp->mb_h;
	uint32_t poc = sp->poc + 2;
	bool intra = sp->intra_ok;
	if (intra && !grow_rows(sp))
		return -1;
	/* Raw macroblocks at QP 0: with it no edge is filtered even where
	 * deblocking cannot be switched off, so skipped areas stay exact
	 * copies. Intra ones need it off (intra_ok) and get their own QP. */
	int32_t qp = intra ? sp->intra.qp : 0;

	struct bw out = { 0 }, body = { 0 };
	uint32_t run = 0;
	uint8_t samples[384];
	for (uint32_t i = 0; i < mbs; i++) {
		if (starts_slice(sp, changed, i)) {
			if (i) { /* the slice before ends here */
				if (run)
					bw_ue(&body, run);
				put_body(&out, HFE_H264_NAL_SLICE, &body); /* nal_ref_idc 0 */
				body = (struct bw){ 0 };
				run = 0;
			}
			patch_slice_header(sp, &body, i, poc, qp);
		}
		uint32_t mx = i % sp->mb_w, my = i / sp->mb_w;
		struct h264_intra_mb *cur = intra ? &sp->rows[(my & 1) * sp->mb_w + mx] : NULL;
		if (!changed[i]) {
			if (cur)
				h264_intra_mb_skipped(cur);
			run++;
			continue;
		}
		bw_ue(&body, run);
		run = 0;
		pcm_samples(pic, mx, my, samples);
		if (intra) {
			const struct h264_intra_mb *top =
				my && sp->constrained_intra ? &sp->rows[((my + 1) & 1) * sp->mb_w + mx] : NULL;
			const struct h264_intra_mb *left =
				mx && (sp->constrained_intra || changed[i - 1]) ? cur - 1 : NULL;
			h264_intra_write_mb(&body, &sp->intra, samples, left, top, cur);
			continue;
		}
		bw_ue(&body, MB_TYPE_P_I_PCM);
		bw_align_zero(&body); /* pcm_alignment_zero_bit */
		bw_bytes(&body, samples, sizeof(samples));
	}
	if (run)
		bw_ue(&body, run);
	put_body(&out, HFE_H264_NAL_SLICE, &body);

	int rc = packet_from(&out, pkt, -1, false);
	free(out.buf);
	if (rc == 0)
		sp->poc = poc;
	return rc;
}
