/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Encoder backend over FFmpeg's libavcodec (written against FFmpeg 5.1).
 *
 * What the stream must look like (lessons from the first implementation):
 * no B-frames, one reference, zero delay, IDR on request with SPS/PPS in
 * band in front of it, Annex-B, a VBV of about one frame. For libx264 all of
 * this is set explicitly; other encoders get the same through the generic
 * AVCodecContext fields plus their private options where those exist (tried
 * one by one, an unknown option is skipped, not an error).
 *
 * Packets are collected from libavcodec right after each frame is sent, so
 * the encoder has consumed the input before encode() returns and
 * avcodec_send_frame() never finds its internal packet slot full (which
 * would make it keep the frame until the next receive).
 */
#include <limits.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavutil/buffer.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/hwcontext.h>
#include <libavutil/log.h>
#include <libavutil/macros.h>
#include <libavutil/opt.h>
#include <libavutil/pixfmt.h>

#include "encoder_desktop.h"
#include "hfe/encoder.h"
#include "hfe/log.h"

/* x264's "infinite" keyint; also fine as a GOP length for other encoders. */
#define GOP_INFINITE (1 << 30)
/* Desktop content (configure_x264): x264's constant rate factor, the quality
 * its rate control aims at (x264's own default; the bitrate only caps it),
 * and, over ultrafast, a motion search that finds scrolled text. */
#define DESKTOP_X264 "crf=23"
#define DESKTOP_X264_SEARCH "me=umh:merange=64:subme=2:partitions=p8x8,i4x4"
/* Fixed pool of input surfaces for hardware-frame encoders. */
#define HW_POOL_SIZE 16

#define SET_ERR(err, code, ...)                                                                    \
	do {                                                                                       \
		if (err)                                                                           \
			hfe_err_set(err, code, __VA_ARGS__);                                       \
	} while (0)

enum input_mode {
	/* The AVFrame points at the caller's planes: no copy. Only for encoders
	 * that are done with the frame data when avcodec_send_frame returns. */
	INPUT_WRAP,
	/* Copied into a pooled, refcounted buffer libavcodec may keep. */
	INPUT_COPY,
	/* Uploaded into a hardware surface (av_hwframe_transfer_data). */
	INPUT_HW,
};

struct hfe_encoder {
	const AVCodec *codec;
	AVCodecContext *ctx;
	AVFrame *frame; /* software input frame, reused */
	enum AVPixelFormat sw_fmt; /* AV_PIX_FMT_YUV420P or AV_PIX_FMT_NV12 */
	uint32_t input_format;     /* the same as an HFE_FMT_* */
	enum input_mode mode;
	bool is_x264;
	uint32_t pending_bitrate; /* set_bitrate waiting for a non-IDR frame */
	bool draining;
	bool eof;

	/* INPUT_WRAP: live references to caller memory (must be 0 after send). */
	atomic_int wrap_live;

	/* INPUT_COPY: pooled buffers, layout below. */
	AVBufferPool *pool;
	int copy_linesize[2];
	size_t copy_offset[3];

	/* INPUT_HW */
	AVBufferRef *hw_device;
	AVBufferRef *hw_frames;

	/* Packets received from libavcodec, not yet handed out (FIFO ring). */
	AVPacket **queue;
	size_t q_head, q_len, q_cap;
};

void hfe_encoder_params_default(struct hfe_encoder_params *p)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", HFE_DEFAULT_ENCODER);
	p->bitrate = 4000000;
	p->fps_num = 30;
	p->fps_den = 1;
	p->gop = 120;
	p->profile = 66;
	p->level = 0;
	snprintf(p->preset, sizeof(p->preset), "ultrafast");
	snprintf(p->tune, sizeof(p->tune), "zerolatency");
	p->threads = 0;
}

void hfe_packet_release(struct hfe_packet *pkt)
{
	if (!pkt)
		return;
	if (pkt->priv) {
		AVPacket *avpkt = pkt->priv;

		av_packet_free(&avpkt);
	}
	memset(pkt, 0, sizeof(*pkt));
}

static const char *name_or_default(const char *name)
{
	return name && name[0] ? name : HFE_DEFAULT_ENCODER;
}

bool hfe_encoder_available(const char *name)
{
	const AVCodec *c = avcodec_find_encoder_by_name(name_or_default(name));

	return c && c->type == AVMEDIA_TYPE_VIDEO;
}

uint32_t hfe_encoder_codec(const char *name)
{
	const AVCodec *c = avcodec_find_encoder_by_name(name_or_default(name));

	if (!c)
		return 0;
	switch (c->id) {
	case AV_CODEC_ID_H264:
		return HFE_CODEC_H264;
	case AV_CODEC_ID_HEVC:
		return HFE_CODEC_HEVC;
	default:
		return 0;
	}
}

static const char *averr(int e, char buf[AV_ERROR_MAX_STRING_SIZE])
{
	av_strerror(e, buf, AV_ERROR_MAX_STRING_SIZE);
	return buf;
}

static enum AVPixelFormat hint_to_pixfmt(uint32_t hint)
{
	switch (hint) {
	case HFE_FMT_NV12:
		return AV_PIX_FMT_NV12;
	case HFE_FMT_I420:
		return AV_PIX_FMT_YUV420P;
	default:
		return AV_PIX_FMT_NONE;
	}
}

static bool fmt_listed(const enum AVPixelFormat *list, enum AVPixelFormat f)
{
	if (!list || f == AV_PIX_FMT_NONE)
		return false;
	for (; *list != AV_PIX_FMT_NONE; list++) {
		if (*list == f)
			return true;
	}
	return false;
}

/*
 * The software 4:2:0 format to feed: the hint if the list has it, else NV12
 * (what x264 and hardware encoders store internally, so their input copy is
 * a plain copy rather than an interleave), else I420. A NULL list means the
 * codec did not say; assume the hint or I420.
 */
static enum AVPixelFormat pick_sw_format(const enum AVPixelFormat *list, uint32_t hint)
{
	enum AVPixelFormat want = hint_to_pixfmt(hint);

	if (!list)
		return want != AV_PIX_FMT_NONE ? want : AV_PIX_FMT_YUV420P;
	if (fmt_listed(list, want))
		return want;
	if (fmt_listed(list, AV_PIX_FMT_NV12))
		return AV_PIX_FMT_NV12;
	if (fmt_listed(list, AV_PIX_FMT_YUV420P))
		return AV_PIX_FMT_YUV420P;
	return AV_PIX_FMT_NONE;
}

/* A private option of the codec (ctx->priv_data). Encoders differ in what
 * they offer, so a missing or rejected optional one is only logged.
 * Returns 0 if set, 1 if an optional one was not, -1 (err set) if a
 * required one was not. */
static int set_priv(AVCodecContext *ctx, const char *key, const char *val, bool required,
		    struct hfe_err *err)
{
	char eb[AV_ERROR_MAX_STRING_SIZE];
	int r;

	if (!ctx->priv_data) {
		r = AVERROR_OPTION_NOT_FOUND;
	} else {
		r = av_opt_set(ctx->priv_data, key, val, 0);
		if (r >= 0)
			return 0;
	}
	if (required) {
		SET_ERR(err, HFE_ERR_UNSUPPORTED, "encoder '%s': option %s=%s: %s",
			ctx->codec->name, key, val, averr(r, eb));
		return -1;
	}
	hfe_debug("encoder '%s': option %s=%s not applied (%s)", ctx->codec->name, key, val,
		  averr(r, eb));
	return 1;
}

/* Set up a hardware device and a pool of NV12 (or I420) surfaces for an
 * encoder that only takes hardware frames (h264_vaapi, hevc_vaapi).
 * Not exercised by the tests: the build machine has no VAAPI device. */
static int setup_hw(struct hfe_encoder *enc, const struct hfe_encoder_params *p, uint32_t hint,
		    struct hfe_err *err)
{
	const AVCodec *codec = enc->codec;
	const AVCodecHWConfig *cfg = NULL;
	AVHWFramesConstraints *cons;
	AVHWFramesContext *fc;
	char eb[AV_ERROR_MAX_STRING_SIZE];
	int r;

	for (int i = 0;; i++) {
		const AVCodecHWConfig *c = avcodec_get_hw_config(codec, i);

		if (!c)
			break;
		if ((c->methods & AV_CODEC_HW_CONFIG_METHOD_HW_FRAMES_CTX) &&
		    fmt_listed(codec->pix_fmts, c->pix_fmt)) {
			cfg = c;
			break;
		}
	}
	if (!cfg) {
		SET_ERR(err, HFE_ERR_UNSUPPORTED,
			"encoder '%s' takes neither NV12/I420 nor hardware frames", codec->name);
		return -1;
	}

	/* HFE_HW_DEVICE picks the device (e.g. /dev/dri/renderD129 for VAAPI);
	 * unset = libavutil's default for the device type. */
	r = av_hwdevice_ctx_create(&enc->hw_device, cfg->device_type, getenv("HFE_HW_DEVICE"),
				   NULL, 0);
	if (r < 0) {
		SET_ERR(err, HFE_ERR_UNSUPPORTED, "encoder '%s': cannot open %s device: %s",
			codec->name, av_hwdevice_get_type_name(cfg->device_type), averr(r, eb));
		return -1;
	}

	/* Upload format: the hint, NV12 or I420, whichever the device takes. */
	enc->sw_fmt = AV_PIX_FMT_NONE;
	cons = av_hwdevice_get_hwframe_constraints(enc->hw_device, NULL);
	if (cons && cons->valid_sw_formats)
		enc->sw_fmt = pick_sw_format(cons->valid_sw_formats, hint);
	else
		enc->sw_fmt = AV_PIX_FMT_NV12;
	av_hwframe_constraints_free(&cons);
	if (enc->sw_fmt == AV_PIX_FMT_NONE) {
		SET_ERR(err, HFE_ERR_UNSUPPORTED,
			"encoder '%s': device takes neither NV12 nor I420", codec->name);
		return -1;
	}

	enc->hw_frames = av_hwframe_ctx_alloc(enc->hw_device);
	if (!enc->hw_frames) {
		SET_ERR(err, HFE_ERR_INTERNAL, "out of memory");
		return -1;
	}
	fc = (AVHWFramesContext *)enc->hw_frames->data;
	fc->format = cfg->pix_fmt;
	fc->sw_format = enc->sw_fmt;
	fc->width = (int)p->width;
	fc->height = (int)p->height;
	fc->initial_pool_size = HW_POOL_SIZE;
	r = av_hwframe_ctx_init(enc->hw_frames);
	if (r < 0) {
		SET_ERR(err, HFE_ERR_UNSUPPORTED, "encoder '%s': cannot create surfaces: %s",
			codec->name, averr(r, eb));
		return -1;
	}
	enc->ctx->hw_frames_ctx = av_buffer_ref(enc->hw_frames);
	if (!enc->ctx->hw_frames_ctx) {
		SET_ERR(err, HFE_ERR_INTERNAL, "out of memory");
		return -1;
	}
	enc->ctx->pix_fmt = cfg->pix_fmt;
	enc->mode = INPUT_HW;
	return 0;
}

/* Pooled buffer layout for INPUT_COPY: 64-byte aligned rows and planes. */
static int setup_copy_pool(struct hfe_encoder *enc, uint32_t w, uint32_t h)
{
	size_t ls0 = FFALIGN((size_t)w, 64);
	size_t ls1 = enc->sw_fmt == AV_PIX_FMT_NV12 ? ls0 : FFALIGN((size_t)(w + 1) / 2, 64);
	size_t ch = (size_t)(h + 1) / 2;
	size_t size;

	enc->copy_linesize[0] = (int)ls0;
	enc->copy_linesize[1] = (int)ls1;
	enc->copy_offset[0] = 0;
	enc->copy_offset[1] = ls0 * h;
	enc->copy_offset[2] = enc->copy_offset[1] + ls1 * ch;
	size = enc->copy_offset[2] + (enc->sw_fmt == AV_PIX_FMT_NV12 ? 0 : ls1 * ch);
	size += AV_INPUT_BUFFER_PADDING_SIZE;
	if (size > INT_MAX)
		return -1;
	enc->pool = av_buffer_pool_init(size, NULL);
	return enc->pool ? 0 : -1;
}

static const char *x264_profile_name(uint8_t profile)
{
	switch (profile) {
	case 0:
	case 66:
		/* x264's "baseline" is constrained baseline: profile_idc 66 with
		 * constraint_set1 (no FMO/ASO/redundant slices). */
		return "baseline";
	case 77:
		return "main";
	case 100:
		return "high";
	default:
		return NULL;
	}
}

static int lavc_profile(uint8_t profile)
{
	switch (profile) {
	case 0:
	case 66:
		return FF_PROFILE_H264_CONSTRAINED_BASELINE;
	case 77:
		return FF_PROFILE_H264_MAIN;
	case 100:
		return FF_PROFILE_H264_HIGH;
	default:
		return FF_PROFILE_UNKNOWN;
	}
}

/* VBV of about one frame: bitrate * fps_den / fps_num bits (>= 1 kbit,
 * which is x264's unit). */
static void apply_rate(AVCodecContext *ctx, uint32_t bitrate, uint32_t fps_num, uint32_t fps_den)
{
	uint64_t vbv = (uint64_t)bitrate * fps_den / fps_num;

	if (vbv < 1000)
		vbv = 1000;
	if (vbv > INT_MAX)
		vbv = INT_MAX;
	ctx->bit_rate = bitrate;
	ctx->rc_max_rate = bitrate;
	ctx->rc_buffer_size = (int)vbv;
}

static int configure_x264(AVCodecContext *ctx, const struct hfe_encoder_params *p, bool desktop,
			  struct hfe_err *err)
{
	const char *prof = x264_profile_name(p->profile);

	if (!prof) {
		SET_ERR(err, HFE_ERR_UNSUPPORTED, "profile %u not supported (66, 77, 100)",
			p->profile);
		return -1;
	}
	if (set_priv(ctx, "preset", p->preset[0] ? p->preset : "ultrafast", true, err) < 0 ||
	    set_priv(ctx, "tune", p->tune[0] ? p->tune : "zerolatency", true, err) < 0 ||
	    set_priv(ctx, "profile", prof, true, err) < 0 ||
	    /* pict_type I -> IDR rather than a recovery-point I frame */
	    set_priv(ctx, "forced-idr", "1", true, err) < 0)
		return -1;
	/*
	 * x264's profile is a ceiling: the SPS names the lowest profile the
	 * tools in use need, and fast presets (ultrafast: CAVLC, no 8x8
	 * transform) always come out as baseline. Turn on the tools that
	 * define main (CABAC) and high (8x8 transform) so that the stream is
	 * what was asked for.
	 */
	if (p->profile == 77 || p->profile == 100)
		set_priv(ctx, "coder", "cabac", false, err);
	if (p->profile == 100)
		set_priv(ctx, "8x8dct", "1", false, err);
	/* Only IDRs on request: no scene-cut keyframes either. */
	if (p->gop == 0)
		set_priv(ctx, "sc_threshold", "0", false, err);
	/*
	 * FFmpeg's wrapper maps thread_type onto x264's b_sliced_threads;
	 * frame threads would override tune=zerolatency's sliced threads and
	 * add threads-1 frames of delay (seen with FFmpeg 5.1). Say so
	 * explicitly rather than rely on the default.
	 */
	ctx->thread_type = FF_THREAD_SLICE;
	/*
	 * Desktop content (scanout streams; bench/desktop-scroll.c,
	 * bench/README.md "Scrolling: bytes per step"). The bitrate is a cap,
	 * not a target: with ABR, x264 spends the whole per-frame budget on
	 * every frame however little changed; CRF spends what the content needs,
	 * and the VBV set by apply_rate still caps each frame. ultrafast's
	 * motion search (diamond within 16 px, full-pixel) does not find a
	 * scrolled text (three 17 px lines: ~50 px) and codes it anew: umh
	 * within 64 px finds it, and sub-pixel level 2 (which also decides
	 * skips and modes better) with 8x8 partitions and 4x4 intra codes the
	 * rest cheaply. A terminal window of `seq` output scrolled by three
	 * lines: ~5.5 kB per step before, ~0.4 kB after. The price is CPU: a
	 * maximised terminal of dense text takes 2x (1280x800) to 2.5x
	 * (1920x1080) the CPU per frame; without the 8x8 partitions 1.5-1.8x,
	 * but on the real desktop at 1920x1080 a wheel notch cost 1.6x the
	 * bytes (bench/README.md). Other presets keep their own search (umh is
	 * what the slower ones use anyway); CRF applies to all. Pull sessions
	 * (video from the guest) keep ABR at their bitrate.
	 *
	 * Through x264-params rather than the wrapper's crf option, which it
	 * would restore before every frame (reconfig_encoder) over a crf given
	 * in HFE_X264_PARAMS: x264's own key=value:... syntax, applied last,
	 * for experiments ("bitrate=4000": ABR at 4 Mbit/s).
	 */
	const char *extra = getenv("HFE_X264_PARAMS");
	bool ultrafast = !p->preset[0] || strcmp(p->preset, "ultrafast") == 0;
	char params[512];
	int n = snprintf(params, sizeof(params), "%s%s%s%s",
			 desktop ? DESKTOP_X264 : "",
			 desktop && ultrafast ? ":" DESKTOP_X264_SEARCH : "",
			 desktop && extra && extra[0] ? ":" : "", extra ? extra : "");
	if (n < 0 || (size_t)n >= sizeof(params)) {
		SET_ERR(err, HFE_ERR_UNSUPPORTED, "HFE_X264_PARAMS is too long");
		return -1;
	}
	if (!params[0])
		return 0;
	if (set_priv(ctx, "x264-params", params, true, err) < 0)
		return -1;
	return 0;
}

/* Low-latency and in-band-header knobs of other encoders, where they exist:
 * nvenc (zerolatency, delay, forced-idr; repeats SPS/PPS without
 * GLOBAL_HEADER), qsv (forced_idr, async_depth), vaapi (async_depth; writes
 * SPS/PPS into IDR packets without GLOBAL_HEADER), videotoolbox (realtime;
 * puts parameter sets in keyframes without GLOBAL_HEADER). */
static void configure_other(AVCodecContext *ctx, const struct hfe_encoder_params *p)
{
	static const char *const knobs[][2] = {
		{ "forced-idr", "1" }, { "forced_idr", "1" }, { "zerolatency", "1" },
		{ "delay", "0" },      { "async_depth", "1" }, { "realtime", "1" },
	};

	for (size_t i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++)
		set_priv(ctx, knobs[i][0], knobs[i][1], false, NULL);
	if (p->preset[0])
		set_priv(ctx, "preset", p->preset, false, NULL);
	if (p->tune[0])
		set_priv(ctx, "tune", p->tune, false, NULL);
	if (ctx->codec_id == AV_CODEC_ID_H264) {
		ctx->profile = lavc_profile(p->profile);
		/* vaapi names it constrained_baseline, nvenc/qsv baseline. */
		if (p->profile == 66 || p->profile == 0) {
			if (set_priv(ctx, "profile", "constrained_baseline", false, NULL) != 0)
				set_priv(ctx, "profile", "baseline", false, NULL);
		} else {
			set_priv(ctx, "profile", p->profile == 77 ? "main" : "high", false, NULL);
		}
	}
}

static void lavc_close(struct hfe_encoder *enc);

/* FFmpeg's own messages go through our log sink: its errors and warnings
 * stay visible, its chatter (x264's per-stream summaries) becomes debug. */
static void lavc_log(void *avcl, int level, const char *fmt, va_list vl)
{
	static int print_prefix = 1;
	char line[1024];
	enum hfe_log_level lvl;

	if (level > AV_LOG_VERBOSE)
		return;
	lvl = level <= AV_LOG_ERROR ? HFE_LOG_ERROR
	      : level <= AV_LOG_WARNING ? HFE_LOG_WARN
				       : HFE_LOG_DEBUG;
	av_log_format_line2(avcl, level, fmt, vl, line, sizeof(line), &print_prefix);
	size_t n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	if (n)
		hfe_log(lvl, "%s", line);
}

static void lavc_log_init(void)
{
	av_log_set_callback(lavc_log);
}

static int lavc_open(struct hfe_encoder **out, const struct hfe_encoder_params *p,
		     uint32_t input_format_hint, bool desktop, struct hfe_err *err)
{
	static pthread_once_t log_once = PTHREAD_ONCE_INIT;
	pthread_once(&log_once, lavc_log_init);

	struct hfe_encoder_params q = *p;
	char eb[AV_ERROR_MAX_STRING_SIZE];
	struct hfe_encoder *enc;
	AVCodecContext *ctx;
	uint32_t fps_num = p->fps_num, fps_den = p->fps_den;
	uint32_t bitrate = p->bitrate ? p->bitrate : 4000000;
	const char *name;
	int r;

	*out = NULL;
	/* Fixed-size strings: make sure they end before using them. */
	q.name[sizeof(q.name) - 1] = '\0';
	q.preset[sizeof(q.preset) - 1] = '\0';
	q.tune[sizeof(q.tune) - 1] = '\0';
	p = &q;
	name = name_or_default(p->name);
	if (fps_num == 0 || fps_den == 0) {
		fps_num = 30;
		fps_den = 1;
	}
	if (p->width == 0 || p->height == 0 || p->width > INT_MAX / 4 || p->height > INT_MAX / 4 ||
	    fps_num > INT_MAX || fps_den > INT_MAX) {
		SET_ERR(err, HFE_ERR_INVALID_MSG, "bad encoder parameters %ux%u @ %u/%u", p->width,
			p->height, fps_num, fps_den);
		return -1;
	}

	const AVCodec *codec = avcodec_find_encoder_by_name(name);

	if (!codec || codec->type != AVMEDIA_TYPE_VIDEO) {
		SET_ERR(err, HFE_ERR_UNSUPPORTED,
			"encoder '%s' is not available in this FFmpeg build", name);
		return -1;
	}

	enc = calloc(1, sizeof(*enc));
	if (!enc) {
		SET_ERR(err, HFE_ERR_INTERNAL, "out of memory");
		return -1;
	}
	atomic_init(&enc->wrap_live, 0);
	enc->codec = codec;
	enc->is_x264 = strcmp(codec->name, "libx264") == 0;
	enc->ctx = ctx = avcodec_alloc_context3(codec);
	enc->frame = av_frame_alloc();
	if (!ctx || !enc->frame) {
		SET_ERR(err, HFE_ERR_INTERNAL, "out of memory");
		goto fail;
	}

	ctx->width = (int)p->width;
	ctx->height = (int)p->height;
	ctx->time_base = (AVRational){ (int)fps_den, (int)fps_num };
	ctx->framerate = (AVRational){ (int)fps_num, (int)fps_den };
	ctx->gop_size = p->gop ? (int)(p->gop > GOP_INFINITE ? GOP_INFINITE : p->gop)
			       : GOP_INFINITE;
	ctx->max_b_frames = 0;
	ctx->refs = 1;
	ctx->thread_count = p->threads > 0 ? p->threads : 0;
	if (p->level)
		ctx->level = p->level;
	/* No GLOBAL_HEADER: SPS/PPS stay in band (x264: repeat-headers).
	 * Closed GOPs: FFmpeg's x264 wrapper asks for open GOPs otherwise
	 * (x264 ignores that without B-frames, other encoders may not). */
	ctx->flags &= ~AV_CODEC_FLAG_GLOBAL_HEADER;
	ctx->flags |= AV_CODEC_FLAG_CLOSED_GOP;
	/* Tag what hfe_convert produces. */
	ctx->colorspace = AVCOL_SPC_SMPTE170M;
	ctx->color_range = AVCOL_RANGE_MPEG;
	apply_rate(ctx, bitrate, fps_num, fps_den);

	if (enc->is_x264) {
		if (configure_x264(ctx, p, desktop, err) < 0)
			goto fail;
	} else {
		configure_other(ctx, p);
	}

	enc->sw_fmt = pick_sw_format(codec->pix_fmts, input_format_hint);
	if (enc->sw_fmt != AV_PIX_FMT_NONE) {
		ctx->pix_fmt = enc->sw_fmt;
		/*
		 * Zero copy is safe when nothing keeps the frame after
		 * avcodec_send_frame returns. libx264: x264_encoder_encode
		 * copies the picture into its own frame pool (whatever the
		 * lookahead/threads), and libavcodec drops its reference once
		 * the encode callback returned, which happens inside
		 * send_frame because we always empty the packet slot. Other
		 * encoders that buffer frames (CAP_DELAY) or run libavcodec
		 * frame threads may hold the reference: copy for them.
		 */
		if (enc->is_x264 ||
		    !(codec->capabilities & (AV_CODEC_CAP_DELAY | AV_CODEC_CAP_FRAME_THREADS)))
			enc->mode = INPUT_WRAP;
		else
			enc->mode = INPUT_COPY;
	} else if (setup_hw(enc, p, input_format_hint, err) < 0) {
		goto fail;
	}
	enc->input_format = enc->sw_fmt == AV_PIX_FMT_NV12 ? HFE_FMT_NV12 : HFE_FMT_I420;
	if (enc->mode == INPUT_COPY && setup_copy_pool(enc, p->width, p->height) < 0) {
		SET_ERR(err, HFE_ERR_INTERNAL, "out of memory");
		goto fail;
	}

	r = avcodec_open2(ctx, codec, NULL);
	if (r < 0) {
		SET_ERR(err, HFE_ERR_UNSUPPORTED, "cannot open encoder '%s' (%ux%u, %s): %s",
			codec->name, p->width, p->height,
			enc->is_x264 ? "see preset/tune/profile" : "device or settings",
			averr(r, eb));
		goto fail;
	}
	*out = enc;
	return 0;

fail:
	lavc_close(enc);
	return -1;
}

static uint32_t lavc_input_format(const struct hfe_encoder *enc)
{
	return enc->input_format;
}

static const char *lavc_name(const struct hfe_encoder *enc)
{
	return enc->codec->name;
}

static int queue_push(struct hfe_encoder *enc, AVPacket *pkt)
{
	if (enc->q_len == enc->q_cap) {
		size_t cap = enc->q_cap ? enc->q_cap * 2 : 8;
		AVPacket **q = malloc(cap * sizeof(*q));

		if (!q)
			return -1;
		for (size_t i = 0; i < enc->q_len; i++)
			q[i] = enc->queue[(enc->q_head + i) % enc->q_cap];
		free(enc->queue);
		enc->queue = q;
		enc->q_cap = cap;
		enc->q_head = 0;
	}
	enc->queue[(enc->q_head + enc->q_len) % enc->q_cap] = pkt;
	enc->q_len++;
	return 0;
}

static AVPacket *queue_pop(struct hfe_encoder *enc)
{
	AVPacket *pkt;

	if (enc->q_len == 0)
		return NULL;
	pkt = enc->queue[enc->q_head];
	enc->q_head = (enc->q_head + 1) % enc->q_cap;
	enc->q_len--;
	return pkt;
}

/* Move every packet libavcodec has ready into the queue. */
static int pull_packets(struct hfe_encoder *enc, struct hfe_err *err)
{
	char eb[AV_ERROR_MAX_STRING_SIZE];

	while (!enc->eof) {
		AVPacket *pkt = av_packet_alloc();
		int r;

		if (!pkt) {
			SET_ERR(err, HFE_ERR_INTERNAL, "out of memory");
			return -1;
		}
		r = avcodec_receive_packet(enc->ctx, pkt);
		if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) {
			av_packet_free(&pkt);
			if (r == AVERROR_EOF)
				enc->eof = true;
			return 0;
		}
		if (r < 0) {
			av_packet_free(&pkt);
			SET_ERR(err, HFE_ERR_ENCODE_FAILED, "%s: %s", enc->codec->name,
				averr(r, eb));
			return -1;
		}
		if (queue_push(enc, pkt) < 0) {
			av_packet_free(&pkt);
			SET_ERR(err, HFE_ERR_INTERNAL, "out of memory");
			return -1;
		}
	}
	return 0;
}

static void wrap_free(void *opaque, uint8_t *data)
{
	struct hfe_encoder *enc = opaque;

	(void)data;
	atomic_fetch_sub(&enc->wrap_live, 1);
}

/* Point enc->frame at the image's planes (no buffer attached). */
static void frame_point_at(struct hfe_encoder *enc, AVFrame *f, const struct hfe_image *img)
{
	int n = enc->sw_fmt == AV_PIX_FMT_NV12 ? 2 : 3;

	f->format = enc->sw_fmt;
	f->width = (int)img->width;
	f->height = (int)img->height;
	for (int i = 0; i < n; i++) {
		f->data[i] = img->plane[i];
		f->linesize[i] = (int)img->stride[i];
	}
}

/* Fill enc->frame (a refcounted software frame) from the image. */
static int prepare_sw_frame(struct hfe_encoder *enc, const struct hfe_image *img,
			    struct hfe_err *err)
{
	AVFrame *f = enc->frame;

	if (enc->mode == INPUT_WRAP) {
		/* A do-nothing buffer makes the frame refcounted, so
		 * avcodec_send_frame refs it instead of copying it; its free
		 * callback tells us when libavcodec let go. */
		size_t sz = (size_t)img->stride[0] * img->height;

		frame_point_at(enc, f, img);
		f->buf[0] = av_buffer_create(img->plane[0], sz > INT_MAX ? INT_MAX : (int)sz,
					     wrap_free, enc, AV_BUFFER_FLAG_READONLY);
		if (!f->buf[0]) {
			SET_ERR(err, HFE_ERR_INTERNAL, "out of memory");
			return -1;
		}
		atomic_fetch_add(&enc->wrap_live, 1);
		return 0;
	}

	/* INPUT_COPY: a pooled buffer the encoder may keep as long as it likes. */
	struct hfe_image dst = {
		.format = enc->input_format,
		.width = img->width,
		.height = img->height,
	};
	AVBufferRef *buf = av_buffer_pool_get(enc->pool);

	if (!buf) {
		SET_ERR(err, HFE_ERR_INTERNAL, "out of memory");
		return -1;
	}
	f->buf[0] = buf;
	f->format = enc->sw_fmt;
	f->width = (int)img->width;
	f->height = (int)img->height;
	for (int i = 0; i < (enc->sw_fmt == AV_PIX_FMT_NV12 ? 2 : 3); i++) {
		f->data[i] = buf->data + enc->copy_offset[i];
		f->linesize[i] = enc->copy_linesize[i ? 1 : 0];
		dst.plane[i] = f->data[i];
		dst.stride[i] = (uint32_t)f->linesize[i];
	}
	if (hfe_convert(img, &dst) < 0) {
		av_frame_unref(f);
		SET_ERR(err, HFE_ERR_INTERNAL, "input copy failed");
		return -1;
	}
	return 0;
}

static int lavc_encode(struct hfe_encoder *enc, const struct hfe_image *img, int64_t index,
		       bool force_idr, struct hfe_err *err)
{
	char eb[AV_ERROR_MAX_STRING_SIZE];
	AVFrame *send = enc->frame, *hw = NULL;
	int r;

	if (enc->draining) {
		SET_ERR(err, HFE_ERR_INTERNAL, "encoder already drained");
		return -1;
	}
	/* x264 reconfigures its VBV with an almost empty buffer: an IDR on that
	 * very frame comes out starved (seen: 16.7 kB instead of 27 kB at
	 * 320x240, ~21 dB chroma). So the IDR keeps the old rate and the new one
	 * applies from the next frame. */
	if (enc->pending_bitrate && !force_idr) {
		apply_rate(enc->ctx, enc->pending_bitrate, (uint32_t)enc->ctx->framerate.num,
			   (uint32_t)enc->ctx->framerate.den);
		enc->pending_bitrate = 0;
	}
	if (img->format != enc->input_format || img->width != (uint32_t)enc->ctx->width ||
	    img->height != (uint32_t)enc->ctx->height || !img->plane[0] || !img->plane[1] ||
	    (enc->input_format == HFE_FMT_I420 && !img->plane[2])) {
		SET_ERR(err, HFE_ERR_INTERNAL,
			"image %ux%u does not match the encoder's %dx%d input", img->width,
			img->height, enc->ctx->width, enc->ctx->height);
		return -1;
	}

	if (enc->mode == INPUT_HW) {
		/* The upload copies synchronously: the caller's planes can be
		 * used directly as the source. */
		frame_point_at(enc, enc->frame, img);
		hw = av_frame_alloc();
		if (!hw) {
			av_frame_unref(enc->frame);
			SET_ERR(err, HFE_ERR_INTERNAL, "out of memory");
			return -1;
		}
		r = av_hwframe_get_buffer(enc->hw_frames, hw, 0);
		if (r >= 0)
			r = av_hwframe_transfer_data(hw, enc->frame, 0);
		av_frame_unref(enc->frame);
		if (r < 0) {
			av_frame_free(&hw);
			SET_ERR(err, HFE_ERR_ENCODE_FAILED, "%s: upload failed: %s",
				enc->codec->name, averr(r, eb));
			return -1;
		}
		send = hw;
	} else if (prepare_sw_frame(enc, img, err) < 0) {
		return -1;
	}

	send->pts = index;
	send->pict_type = force_idr ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
	send->color_range = AVCOL_RANGE_MPEG;
	send->colorspace = AVCOL_SPC_SMPTE170M;

	r = avcodec_send_frame(enc->ctx, send);
	if (r == AVERROR(EAGAIN)) {
		/* Only asynchronous encoders get here: make room and retry. */
		if (pull_packets(enc, err) < 0) {
			av_frame_unref(send);
			av_frame_free(&hw);
			return -1;
		}
		r = avcodec_send_frame(enc->ctx, send);
	}
	av_frame_unref(send);
	av_frame_free(&hw);
	if (r < 0) {
		SET_ERR(err, HFE_ERR_ENCODE_FAILED, "%s: %s", enc->codec->name, averr(r, eb));
		return -1;
	}
	if (pull_packets(enc, err) < 0)
		return -1;

	if (enc->mode == INPUT_WRAP && atomic_load(&enc->wrap_live) != 0) {
		/* Should not happen (see lavc_open); if some FFmpeg build
		 * keeps the frame anyway, stop lending it caller memory. */
		hfe_warn("encoder '%s' kept a reference to an input frame; copying from now on",
			 enc->codec->name);
		if (setup_copy_pool(enc, img->width, img->height) == 0)
			enc->mode = INPUT_COPY;
	}
	return 0;
}

static int lavc_drain(struct hfe_encoder *enc, struct hfe_err *err)
{
	char eb[AV_ERROR_MAX_STRING_SIZE];
	int r;

	if (enc->draining)
		return 0;
	enc->draining = true;
	r = avcodec_send_frame(enc->ctx, NULL);
	if (r < 0 && r != AVERROR_EOF) {
		SET_ERR(err, HFE_ERR_ENCODE_FAILED, "%s: drain: %s", enc->codec->name,
			averr(r, eb));
		return -1;
	}
	while (!enc->eof) {
		size_t before = enc->q_len;

		if (pull_packets(enc, err) < 0)
			return -1;
		/* An encoder that says EAGAIN while draining would spin. */
		if (!enc->eof && enc->q_len == before)
			break;
	}
	return 0;
}

static int lavc_receive(struct hfe_encoder *enc, struct hfe_packet *pkt, struct hfe_err *err)
{
	AVPacket *avpkt;

	memset(pkt, 0, sizeof(*pkt));
	/* Asynchronous encoders may finish a frame between calls. */
	if (enc->q_len == 0 && pull_packets(enc, err) < 0)
		return -1;
	avpkt = queue_pop(enc);
	if (!avpkt)
		return 0;
	pkt->data = avpkt->data;
	pkt->size = (size_t)avpkt->size;
	pkt->frame_index = avpkt->pts;
	pkt->keyframe = (avpkt->flags & AV_PKT_FLAG_KEY) != 0;
	pkt->priv = avpkt;
	return 1;
}

/*
 * FFmpeg's libx264 wrapper compares bit_rate, rc_max_rate and
 * rc_buffer_size with x264's parameters before every frame and calls
 * x264_encoder_reconfig when they changed: the stream goes on, no IDR.
 * The change is applied in encode(), on the next frame that is not an IDR.
 * Other wrappers read these fields only at open.
 */
static int lavc_set_bitrate(struct hfe_encoder *enc, uint32_t bitrate)
{
	if (!enc->is_x264 || bitrate == 0)
		return -1;
	enc->pending_bitrate = bitrate; /* applied by the next encode() */
	return 0;
}

static void lavc_close(struct hfe_encoder *enc)
{
	AVPacket *pkt;

	if (!enc)
		return;
	while ((pkt = queue_pop(enc)))
		av_packet_free(&pkt);
	free(enc->queue);
	avcodec_free_context(&enc->ctx);
	av_frame_free(&enc->frame);
	av_buffer_pool_uninit(&enc->pool);
	av_buffer_unref(&enc->hw_frames);
	av_buffer_unref(&enc->hw_device);
	free(enc);
}

static int lavc_open_video(struct hfe_encoder **out, const struct hfe_encoder_params *p,
			   uint32_t input_format_hint, struct hfe_err *err)
{
	return lavc_open(out, p, input_format_hint, false, err);
}

static int lavc_open_desktop(struct hfe_encoder **out, const struct hfe_encoder_params *p,
			     uint32_t input_format_hint, struct hfe_err *err)
{
	return lavc_open(out, p, input_format_hint, true, err);
}

/* Both tables: the same backend, opened with or without the desktop tuning. */
#define LAVC_OPS(open_fn)                                                                          \
	{                                                                                          \
		.backend = "lavc", .open = open_fn, .input_format = lavc_input_format,             \
		.encode = lavc_encode, .drain = lavc_drain, .receive = lavc_receive,               \
		.set_bitrate = lavc_set_bitrate, .name = lavc_name, .close = lavc_close,           \
	}

const struct hfe_encoder_ops hfe_encoder_lavc = LAVC_OPS(lavc_open_video);
const struct hfe_encoder_ops hfe_encoder_lavc_desktop = LAVC_OPS(lavc_open_desktop);
