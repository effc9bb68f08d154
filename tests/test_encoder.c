/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The libavcodec encoder backend with libx264, checked by decoding its
 * output with libavcodec's H.264 decoder and scanning its NAL units:
 * stream shape (SPS/PPS before every IDR, IDR on request, no B-frames, one
 * access unit out per frame in, at once), quality, profiles and levels,
 * bitrate changes on the fly, NV12 input with padded strides, errors.
 */
#include <string.h>

#include <libavutil/log.h>

#include "hfe/encoder.h"
#include "test_util.h"

static const struct hfe_encoder_ops *ops = &hfe_encoder_lavc;

/* A source frame: the pattern in wire layout and its exact YUV. */
struct src {
	uint8_t *buf;
	struct hfe_image img;
	struct tu_yuv yuv;
};

static void src_make(struct src *s, uint32_t fmt, uint32_t w, uint32_t h, uint32_t stride,
		     uint32_t t)
{
	uint8_t *rgb = malloc((size_t)w * h * 3);

	REQUIRE(rgb);
	tu_pattern_rgb(rgb, w, h, t);
	tu_ref_rgb_to_yuv(rgb, w, h, &s->yuv);
	free(rgb);
	s->buf = malloc(tu_frame_size(fmt, w, h, stride));
	REQUIRE(s->buf);
	tu_write_yuv_frame(fmt, stride, &s->yuv, s->buf);
	hfe_image_wrap(&s->img, fmt, w, h, stride, s->buf);
}

/* The encoder must be done with the pixels when encode() returns: scribble
 * over them and free them (ASan turns a late read into an error). */
static void src_drop_pixels(struct src *s)
{
	memset(s->buf, 0x80, tu_frame_size(s->img.format, s->img.width, s->img.height,
					   s->img.stride[0]));
	free(s->buf);
	s->buf = NULL;
}

static void src_free(struct src *s)
{
	free(s->buf);
	tu_yuv_free(&s->yuv);
}

/* slice_type of a slice NAL (0..9; 1 and 6 are B), -1 if unreadable. */
static int slice_type(const uint8_t *nal, size_t len)
{
	uint8_t rbsp[16];
	size_t k = 0, pos = 0;
	int zeros = 0, v[2];

	/* Undo emulation prevention for the first bytes of the header. */
	for (size_t i = 1; i < len && k < sizeof(rbsp); i++) {
		if (zeros >= 2 && nal[i] == 3) {
			zeros = 0;
			continue;
		}
		rbsp[k++] = nal[i];
		zeros = nal[i] == 0 ? zeros + 1 : 0;
	}
	/* first_mb_in_slice ue(v), slice_type ue(v) */
	for (int n = 0; n < 2; n++) {
		int lz = 0;
		uint32_t x = 0;

		while (pos < k * 8 && !((rbsp[pos / 8] >> (7 - pos % 8)) & 1)) {
			lz++;
			pos++;
		}
		if (pos >= k * 8 || lz > 16)
			return -1;
		pos++;
		for (int b = 0; b < lz; b++, pos++) {
			if (pos >= k * 8)
				return -1;
			x = x << 1 | ((rbsp[pos / 8] >> (7 - pos % 8)) & 1);
		}
		v[n] = (int)((1u << lz) - 1 + x);
	}
	return v[1];
}

/* True if no slice of the access unit is a B slice. */
static bool no_b_slices(const struct tu_nals *n)
{
	for (int i = 0; i < n->count; i++) {
		if (n->type[i] == TU_NAL_SLICE || n->type[i] == TU_NAL_IDR) {
			int st = slice_type(n->data[i], n->len[i]);

			if (st < 0 || st % 5 == 1)
				return false;
		}
	}
	return true;
}

static struct hfe_encoder *open_x264(uint32_t w, uint32_t h, uint32_t bitrate, uint32_t hint,
				     struct hfe_encoder_params *pout)
{
	struct hfe_encoder_params p;
	struct hfe_encoder *enc = NULL;
	struct hfe_err err = { 0 };

	hfe_encoder_params_default(&p);
	p.width = w;
	p.height = h;
	p.bitrate = bitrate;
	if (pout)
		p = *pout, p.width = w, p.height = h, p.bitrate = bitrate;
	CHECKF(ops->open(&enc, &p, hint, &err) == 0, "open: %s", err.msg);
	REQUIRE(enc);
	return enc;
}

static void test_defaults(void)
{
	struct hfe_encoder_params p;

	printf("params defaults\n");
	memset(&p, 0x55, sizeof(p));
	hfe_encoder_params_default(&p);
	CHECK(strcmp(p.name, "libx264") == 0);
	CHECK(p.bitrate == 4000000 && p.fps_num == 30 && p.fps_den == 1 && p.gop == 120);
	CHECK(p.profile == 66 && p.level == 0 && p.threads == 0);
	CHECK(strcmp(p.preset, "ultrafast") == 0 && strcmp(p.tune, "zerolatency") == 0);
	CHECK(p.width == 0 && p.height == 0);
	CHECK(strcmp(ops->backend, "lavc") == 0);
}

static void test_availability(void)
{
	struct hfe_encoder_params p;
	struct hfe_encoder *enc = (struct hfe_encoder *)&p;
	struct hfe_err err = { 0 };
	const char *bogus = "hfe-no-such-encoder";

	printf("availability and a missing encoder\n");
	CHECK(hfe_encoder_available("libx264"));
	CHECK(hfe_encoder_available("")); /* the default */
	CHECK(!hfe_encoder_available(bogus));
	CHECK(!hfe_encoder_available("h264")); /* a decoder, not an encoder */
	CHECK(hfe_encoder_codec("libx264") == HFE_CODEC_H264);
	CHECK(hfe_encoder_codec(bogus) == 0);

	hfe_encoder_params_default(&p);
	snprintf(p.name, sizeof(p.name), "%s", bogus);
	p.width = 320;
	p.height = 240;
	CHECK(ops->open(&enc, &p, HFE_FMT_I420, &err) == -1);
	CHECK(enc == NULL);
	CHECKF(err.code == HFE_ERR_UNSUPPORTED, "code %d", err.code);
	CHECKF(strstr(err.msg, bogus) != NULL, "message '%s'", err.msg);
	CHECKF(strstr(err.msg, "not available") != NULL, "message '%s'", err.msg);
	printf("  error: %s\n", err.msg);

	/* A profile that does not exist. */
	hfe_encoder_params_default(&p);
	p.width = 320;
	p.height = 240;
	p.profile = 88;
	memset(&err, 0, sizeof(err));
	CHECK(ops->open(&enc, &p, HFE_FMT_I420, &err) == -1);
	CHECKF(err.code == HFE_ERR_UNSUPPORTED, "code %d (%s)", err.code, err.msg);
	/* No size. */
	hfe_encoder_params_default(&p);
	memset(&err, 0, sizeof(err));
	CHECK(ops->open(&enc, &p, HFE_FMT_I420, &err) == -1);
	CHECK(err.code != 0);
}

/* The main scenario of the brief: 60 frames 320x240 at 2 Mbit/s. */
static void test_stream(void)
{
	const uint32_t w = 320, h = 240, n = 60, idr_at = 30;
	struct hfe_encoder *enc = open_x264(w, h, 2000000, HFE_FMT_I420, NULL);
	struct tu_decoder *dec = tu_decoder_new();
	struct hfe_err err = { 0 };
	double sum[3] = { 0, 0, 0 }, min_y = 100;
	uint32_t decoded = 0, dims_ok = 0, order_ok = 0, one_each = 0, shape_ok = 0, no_b = 0;
	struct hfe_packet pkt;

	printf("libx264 320x240 2 Mbit/s, 60 frames, IDR forced at %u\n", idr_at);
	REQUIRE(dec);
	CHECK(ops->input_format(enc) == HFE_FMT_I420);
	CHECK(strcmp(ops->name(enc), "libx264") == 0);

	for (uint32_t i = 0; i < n; i++) {
		struct src s;
		int got = 0, r;

		src_make(&s, HFE_FMT_I420, w, h, w, i);
		CHECKF(ops->encode(enc, &s.img, 1000 + i, i == idr_at, &err) == 0, "encode: %s",
		       err.msg);
		src_drop_pixels(&s);

		/* Zero delay: the frame's access unit is there already, alone. */
		while ((r = ops->receive(enc, &pkt, &err)) == 1) {
			struct tu_nals nals;
			struct tu_yuv pic;
			double ps[3];
			bool key = i == 0 || i == idr_at;

			got++;
			order_ok += pkt.frame_index == 1000 + i;
			CHECKF(tu_nal_parse(pkt.data, pkt.size, &nals) > 0, "frame %u: not Annex-B",
			       i);
			if (key) {
				int sps = tu_nal_find(&nals, TU_NAL_SPS);
				int pps = tu_nal_find(&nals, TU_NAL_PPS);
				int idr = tu_nal_find(&nals, TU_NAL_IDR);

				CHECKF(sps >= 0 && pps > sps && idr > pps,
				       "frame %u: SPS %d PPS %d IDR %d", i, sps, pps, idr);
				CHECKF(nals.sps_profile == 66 && (nals.sps_constraints & 0x40),
				       "profile_idc %d constraints 0x%02x", nals.sps_profile,
				       nals.sps_constraints);
			}
			/* Keyframe flag, IDR and headers exactly where expected. */
			shape_ok += pkt.keyframe == key && nals.has_idr == key &&
				    nals.has_sps == key && nals.has_pps == key &&
				    nals.has_slice == !key;
			no_b += no_b_slices(&nals);

			r = tu_decoder_decode(dec, pkt.data, pkt.size, &pic, NULL);
			CHECKF(r == 1, "frame %u: decoder gave %d", i, r);
			if (r == 1) {
				decoded++;
				dims_ok += pic.w == w && pic.h == h;
				if (tu_psnr_yuv(&pic, &s.yuv, ps) == 0) {
					for (int c = 0; c < 3; c++)
						sum[c] += ps[c];
					if (ps[0] < min_y)
						min_y = ps[0];
				}
				tu_yuv_free(&pic);
			}
			hfe_packet_release(&pkt);
			CHECK(pkt.priv == NULL && pkt.data == NULL);
		}
		CHECK(r == 0);
		one_each += got == 1;
		src_free(&s);
	}

	CHECK(ops->drain(enc, &err) == 0);
	CHECKF(ops->receive(enc, &pkt, &err) == 0, "a packet was held back");
	{
		struct tu_yuv pic;

		CHECKF(tu_decoder_flush(dec, &pic) == 0, "decoder held a picture back");
	}
	/* After drain no more input. */
	{
		struct src s;

		src_make(&s, HFE_FMT_I420, w, h, w, 0);
		CHECK(ops->encode(enc, &s.img, 99, false, &err) == -1);
		src_free(&s);
	}

	printf("  %u/%u frames gave exactly one AU at once, %u in order, %u decoded at %ux%u\n",
	       one_each, n, order_ok, decoded, w, h);
	printf("  AU shape (SPS+PPS+IDR only at 0 and %u, P otherwise) ok in %u/%u, no B in %u\n",
	       idr_at, shape_ok, n, no_b);
	printf("  PSNR avg Y %.2f U %.2f V %.2f, min Y %.2f\n", sum[0] / n, sum[1] / n, sum[2] / n,
	       min_y);
	CHECK(one_each == n && order_ok == n);
	CHECK(decoded == n && dims_ok == n);
	CHECK(shape_ok == n && no_b == n);
	CHECKF(sum[0] / n >= 35.0, "Y PSNR %.2f", sum[0] / n);
	CHECKF(sum[1] / n >= 35.0 && sum[2] / n >= 35.0, "U/V PSNR %.2f %.2f", sum[1] / n,
	       sum[2] / n);
	CHECKF(min_y >= 30.0, "min Y PSNR %.2f", min_y);

	tu_decoder_free(dec);
	ops->close(enc);
}

/* NV12 input with padded strides (x264 gets the caller's planes directly). */
static void test_nv12(void)
{
	const uint32_t w = 320, h = 240, stride = 352, n = 20;
	struct hfe_encoder *enc = open_x264(w, h, 2000000, HFE_FMT_NV12, NULL);
	struct tu_decoder *dec = tu_decoder_new();
	struct hfe_err err = { 0 };
	struct hfe_packet pkt;
	double sum_y = 0, sum_c = 0;
	uint32_t decoded = 0;

	printf("NV12 input, stride %u\n", stride);
	REQUIRE(dec);
	CHECK(ops->input_format(enc) == HFE_FMT_NV12);
	for (uint32_t i = 0; i < n; i++) {
		struct src s;
		struct tu_yuv pic;
		double ps[3];

		src_make(&s, HFE_FMT_NV12, w, h, stride, i);
		CHECKF(ops->encode(enc, &s.img, i, false, &err) == 0, "encode: %s", err.msg);
		src_drop_pixels(&s);
		if (ops->receive(enc, &pkt, &err) == 1) {
			CHECK(pkt.frame_index == i);
			if (tu_decoder_decode(dec, pkt.data, pkt.size, &pic, NULL) == 1) {
				decoded++;
				CHECK(pic.w == w && pic.h == h);
				tu_psnr_yuv(&pic, &s.yuv, ps);
				sum_y += ps[0];
				sum_c += (ps[1] + ps[2]) / 2;
				tu_yuv_free(&pic);
			}
			hfe_packet_release(&pkt);
		}
		src_free(&s);
	}
	printf("  %u/%u decoded, PSNR avg Y %.2f UV %.2f\n", decoded, n, sum_y / n, sum_c / n);
	CHECK(decoded == n);
	CHECKF(sum_y / n >= 35.0 && sum_c / n >= 35.0, "PSNR %.2f %.2f", sum_y / n, sum_c / n);

	/* An image that does not match the encoder is refused. */
	{
		struct src s;

		src_make(&s, HFE_FMT_I420, w, h, w, 0);
		memset(&err, 0, sizeof(err));
		CHECK(ops->encode(enc, &s.img, 100, false, &err) == -1 && err.code != 0);
		src_free(&s);
		src_make(&s, HFE_FMT_NV12, w - 16, h, w, 0);
		CHECK(ops->encode(enc, &s.img, 100, false, &err) == -1);
		src_free(&s);
	}
	tu_decoder_free(dec);
	ops->close(enc);
}

/* Mean AU size over frames [from, to) of a run, encoding more as needed. */
struct run {
	struct hfe_encoder *enc;
	struct tu_decoder *dec;
	uint32_t next;
	uint32_t keyframes, decoded, packets;
};

static double encode_span(struct run *r, uint32_t frames, uint32_t measure_last)
{
	struct hfe_err err = { 0 };
	uint64_t bytes = 0;

	for (uint32_t k = 0; k < frames; k++, r->next++) {
		struct hfe_packet pkt;
		struct src s;

		src_make(&s, HFE_FMT_I420, 320, 240, 320, r->next);
		CHECK(ops->encode(r->enc, &s.img, r->next, false, &err) == 0);
		while (ops->receive(r->enc, &pkt, &err) == 1) {
			struct tu_yuv pic;

			r->packets++;
			r->keyframes += pkt.keyframe;
			if (k >= frames - measure_last)
				bytes += pkt.size;
			if (tu_decoder_decode(r->dec, pkt.data, pkt.size, &pic, NULL) == 1) {
				r->decoded++;
				tu_yuv_free(&pic);
			}
			hfe_packet_release(&pkt);
		}
		src_free(&s);
	}
	return (double)bytes / measure_last;
}

static void test_set_bitrate(void)
{
	struct hfe_encoder_params p;
	struct run r = { 0 };
	double hi1, lo, hi2;

	printf("set_bitrate on a running libx264 (gop 0: IDR only on request)\n");
	hfe_encoder_params_default(&p);
	p.gop = 0;
	r.enc = open_x264(320, 240, 1500000, HFE_FMT_I420, &p);
	r.dec = tu_decoder_new();
	REQUIRE(r.dec);

	hi1 = encode_span(&r, 60, 30);
	CHECK(ops->set_bitrate(r.enc, 150000) == 0);
	lo = encode_span(&r, 60, 30);
	CHECK(ops->set_bitrate(r.enc, 1500000) == 0);
	hi2 = encode_span(&r, 60, 30);
	printf("  mean AU: %.0f B at 1.5 Mbit/s, %.0f B at 150 kbit/s, %.0f B back at 1.5 Mbit/s"
	       " (targets %.0f / %.0f B)\n",
	       hi1, lo, hi2, 1500000 / 8.0 / 30, 150000 / 8.0 / 30);
	CHECKF(lo < hi1 * 0.35, "lowering the bitrate: %.0f -> %.0f", hi1, lo);
	CHECKF(hi2 > lo * 3, "raising the bitrate: %.0f -> %.0f", lo, hi2);
	/* Roughly on target: within a factor of 2 of bitrate / fps. */
	CHECKF(lo < 2 * 150000 / 8.0 / 30, "low phase %.0f B/frame", lo);
	CHECKF(hi1 > 0.5 * 1500000 / 8.0 / 30, "high phase %.0f B/frame", hi1);
	/* The stream went on: no new IDR (gop 0, no scene cuts), all decoded. */
	CHECKF(r.keyframes == 1, "%u keyframes", r.keyframes);
	CHECK(r.packets == 180 && r.decoded == 180);
	tu_decoder_free(r.dec);
	ops->close(r.enc);
}

/* Profiles other than the default, and an explicit level. */
static void test_profiles(void)
{
	static const struct {
		uint8_t profile, level;
	} cases[] = { { 77, 0 }, { 100, 0 }, { 66, 31 }, { 100, 40 } };

	printf("profiles and levels in the SPS\n");
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct hfe_encoder_params p;
		struct hfe_encoder *enc;
		struct hfe_err err = { 0 };
		struct hfe_packet pkt;
		uint32_t no_b = 0, n = 0;
		int profile = -1, level = -1;

		hfe_encoder_params_default(&p);
		p.profile = cases[c].profile;
		p.level = cases[c].level;
		enc = open_x264(320, 240, 1000000, HFE_FMT_I420, &p);
		for (uint32_t i = 0; i < 8; i++) {
			struct src s;

			src_make(&s, HFE_FMT_I420, 320, 240, 320, i);
			CHECK(ops->encode(enc, &s.img, i, i == 5, &err) == 0);
			while (ops->receive(enc, &pkt, &err) == 1) {
				struct tu_nals nals;

				tu_nal_parse(pkt.data, pkt.size, &nals);
				if (nals.has_sps) {
					profile = nals.sps_profile;
					level = nals.sps_level;
				}
				no_b += no_b_slices(&nals);
				n++;
				hfe_packet_release(&pkt);
			}
			src_free(&s);
		}
		printf("  asked profile %u level %u: SPS profile_idc %d level_idc %d, %u/%u AUs"
		       " without B slices\n",
		       cases[c].profile, cases[c].level, profile, level, no_b, n);
		CHECK(profile == cases[c].profile);
		if (cases[c].level)
			CHECK(level == cases[c].level);
		CHECK(n == 8 && no_b == 8);
		ops->close(enc);
	}
}

int main(void)
{
	av_log_set_level(AV_LOG_ERROR);
	test_defaults();
	test_availability();
	if (!hfe_encoder_available("libx264")) {
		printf("libx264 is not in this FFmpeg build: cannot test encoding\n");
		return 77;
	}
	test_stream();
	test_nv12();
	test_set_bitrate();
	test_profiles();
	return tu_finish("test_encoder");
}
