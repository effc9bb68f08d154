/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared test helpers; see test_util.h. */
#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavutil/frame.h>

int tu_failures;

int tu_finish(const char *test_name)
{
	if (tu_failures) {
		printf("%s: %d check(s) FAILED\n", test_name, tu_failures);
		return 1;
	}
	printf("%s: all checks passed\n", test_name);
	return 0;
}

/* ---- frames in wire layout -------------------------------------------- */

uint32_t tu_bpp(uint32_t format)
{
	switch (format) {
	case HFE_FMT_ARGB8888:
	case HFE_FMT_XRGB8888:
	case HFE_FMT_ABGR8888:
	case HFE_FMT_XBGR8888:
		return 4;
	case HFE_FMT_NV12:
	case HFE_FMT_I420:
		return 1;
	default:
		return 0;
	}
}

size_t tu_frame_size(uint32_t format, uint32_t w, uint32_t h, uint32_t stride)
{
	size_t luma = (size_t)stride * h, ch = (h + 1) / 2;

	(void)w;
	switch (format) {
	case HFE_FMT_NV12:
		return luma + (size_t)stride * ch;
	case HFE_FMT_I420:
		return luma + 2 * (size_t)((stride + 1) / 2) * ch;
	default:
		return tu_bpp(format) ? luma : 0;
	}
}

const char *tu_fmt_name(uint32_t format)
{
	switch (format) {
	case HFE_FMT_ARGB8888:
		return "AR24";
	case HFE_FMT_XRGB8888:
		return "XR24";
	case HFE_FMT_ABGR8888:
		return "AB24";
	case HFE_FMT_XBGR8888:
		return "XB24";
	case HFE_FMT_NV12:
		return "NV12";
	case HFE_FMT_I420:
		return "I420";
	default:
		return "????";
	}
}

/* ---- plain I420 pictures ---------------------------------------------- */

void tu_yuv_alloc(struct tu_yuv *p, uint32_t w, uint32_t h)
{
	p->w = w;
	p->h = h;
	p->cw = (w + 1) / 2;
	p->ch = (h + 1) / 2;
	p->y = malloc((size_t)w * h);
	p->u = malloc((size_t)p->cw * p->ch);
	p->v = malloc((size_t)p->cw * p->ch);
	if (!p->y || !p->u || !p->v)
		abort();
}

void tu_yuv_free(struct tu_yuv *p)
{
	free(p->y);
	free(p->u);
	free(p->v);
	memset(p, 0, sizeof(*p));
}

int tu_yuv_from_image(struct tu_yuv *p, const struct hfe_image *img)
{
	if (img->format != HFE_FMT_I420 && img->format != HFE_FMT_NV12)
		return -1;
	tu_yuv_alloc(p, img->width, img->height);
	for (uint32_t y = 0; y < p->h; y++)
		memcpy(p->y + (size_t)y * p->w, img->plane[0] + (size_t)y * img->stride[0], p->w);
	for (uint32_t y = 0; y < p->ch; y++) {
		if (img->format == HFE_FMT_I420) {
			memcpy(p->u + (size_t)y * p->cw, img->plane[1] + (size_t)y * img->stride[1],
			       p->cw);
			memcpy(p->v + (size_t)y * p->cw, img->plane[2] + (size_t)y * img->stride[2],
			       p->cw);
		} else {
			const uint8_t *uv = img->plane[1] + (size_t)y * img->stride[1];

			for (uint32_t x = 0; x < p->cw; x++) {
				p->u[(size_t)y * p->cw + x] = uv[2 * x];
				p->v[(size_t)y * p->cw + x] = uv[2 * x + 1];
			}
		}
	}
	return 0;
}

/* ---- test pattern ----------------------------------------------------- */

/* Triangle wave, period 1, range 0..1. */
static double tri(double t)
{
	t -= floor(t);
	return t < 0.5 ? 2 * t : 2 - 2 * t;
}

/* Bounce position in 0..range, speed px per frame. */
static uint32_t bounce(uint32_t t, uint32_t speed, uint32_t range)
{
	uint64_t p;

	if (range == 0)
		return 0;
	p = ((uint64_t)t * speed) % (2 * (uint64_t)range);
	return (uint32_t)(p <= range ? p : 2 * range - p);
}

static uint32_t hash32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352dU;
	x ^= x >> 15;
	x *= 0x846ca68bU;
	x ^= x >> 16;
	return x;
}

static uint8_t clamp8(double v)
{
	return v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)(v + 0.5);
}

void tu_pattern_rgb(uint8_t *rgb, uint32_t w, uint32_t h, uint32_t t)
{
	uint8_t *col_r = malloc(w), *row_g = malloc(h), *diag_b = malloc(w + h);

	if (!col_r || !row_g || !diag_b)
		abort();

	/* Background: R follows x, G follows y, B a slow diagonal wave; all
	 * drift with t so that every frame differs. Each is rounded once per
	 * column, row or diagonal, never per pixel: floating point is emulated
	 * (slowly) under qemu-user. */
	for (uint32_t x = 0; x < w; x++)
		col_r[x] = clamp8(25 + 210 * tri((x + 2.0 * t) / (2.0 * w)));
	for (uint32_t y = 0; y < h; y++)
		row_g[y] = clamp8(30 + 170 * tri((y + 1.0 * t) / (2.0 * h)));
	for (uint32_t d = 0; d < w + h; d++)
		diag_b[d] = clamp8(128 + 100 * sin(2 * M_PI * (d + 3.0 * t) / (w + h)));
	for (uint32_t y = 0; y < h; y++) {
		uint8_t *p = rgb + (size_t)y * w * 3;

		for (uint32_t x = 0; x < w; x++) {
			p[3 * x] = col_r[x];
			p[3 * x + 1] = row_g[y];
			p[3 * x + 2] = diag_b[x + (h - 1 - y)];
		}
	}

	/* A red box with soft (4 px) edges bouncing around. */
	uint32_t bw = w / 4 > 8 ? w / 4 : 8, bh = h / 4 > 8 ? h / 4 : 8;

	if (bw < w && bh < h) {
		uint32_t bx = bounce(t, 3, w - bw), by = bounce(t, 2, h - bh);

		for (uint32_t y = by; y < by + bh; y++) {
			for (uint32_t x = bx; x < bx + bw; x++) {
				uint32_t ex = x - bx < bx + bw - 1 - x ? x - bx : bx + bw - 1 - x;
				uint32_t ey = y - by < by + bh - 1 - y ? y - by : by + bh - 1 - y;
				uint32_t e = ex < ey ? ex : ey;
				uint8_t *p = rgb + ((size_t)y * w + x) * 3;
				static const uint8_t box[3] = { 230, 35, 55 };

				if (e >= 4) { /* opaque: the blend below gives box[] exactly */
					memcpy(p, box, 3);
					continue;
				}
				double a = (e + 0.5) / 4.5;
				for (int c = 0; c < 3; c++)
					p[c] = clamp8(p[c] * (1 - a) + box[c] * a);
			}
		}
	}

	/* Text-like detail: two lines of 5x7 "glyphs" (dark on a light
	 * panel) near the bottom, one more glyph typed every other frame. */
	uint32_t tx0 = w / 16, ty0 = h * 3 / 4, line_h = 10, cell_w = 6;

	if (w >= 32 && ty0 + 2 * line_h <= h) {
		uint32_t cols = (w - 2 * tx0) / cell_w, shown = 12 + t / 2;

		for (uint32_t y = ty0; y < ty0 + 2 * line_h; y++) {
			for (uint32_t x = tx0; x < tx0 + cols * cell_w; x++) {
				uint32_t line = (y - ty0) / line_h, gy = (y - ty0) % line_h;
				uint32_t gi = line * cols + (x - tx0) / cell_w;
				uint32_t gx = (x - tx0) % cell_w;
				bool ink = gi < shown && gx < 5 && gy >= 1 && gy < 8 &&
					   (hash32(gi * 64 + gy * 8 + gx) % 100) < 45;
				uint8_t *p = rgb + ((size_t)y * w + x) * 3;

				p[0] = ink ? 20 : 236;
				p[1] = ink ? 24 : 234;
				p[2] = ink ? 40 : 228;
			}
		}
	}

	free(col_r);
	free(row_g);
	free(diag_b);
}

void tu_write_yuv_frame(uint32_t format, uint32_t stride, const struct tu_yuv *s, uint8_t *buf)
{
	size_t size = tu_frame_size(format, s->w, s->h, stride);
	uint8_t *c = buf + (size_t)stride * s->h;

	memset(buf, 0xA5, size);
	for (uint32_t y = 0; y < s->h; y++)
		memcpy(buf + (size_t)y * stride, s->y + (size_t)y * s->w, s->w);
	if (format == HFE_FMT_I420) {
		uint32_t cs = (stride + 1) / 2;

		for (uint32_t y = 0; y < s->ch; y++) {
			memcpy(c + (size_t)y * cs, s->u + (size_t)y * s->cw, s->cw);
			memcpy(c + (size_t)(s->ch + y) * cs, s->v + (size_t)y * s->cw, s->cw);
		}
	} else {
		for (uint32_t y = 0; y < s->ch; y++) {
			uint8_t *uv = c + (size_t)y * stride;

			for (uint32_t x = 0; x < s->cw; x++) {
				uv[2 * x] = s->u[(size_t)y * s->cw + x];
				uv[2 * x + 1] = s->v[(size_t)y * s->cw + x];
			}
		}
	}
}

void tu_write_frame(uint32_t format, uint32_t w, uint32_t h, uint32_t stride, const uint8_t *rgb,
		    uint8_t *buf)
{
	int ri, gi, bi, ai;
	uint8_t a;

	switch (format) {
	case HFE_FMT_ARGB8888: /* B,G,R,A */
	case HFE_FMT_XRGB8888:
		bi = 0, gi = 1, ri = 2, ai = 3;
		break;
	case HFE_FMT_ABGR8888: /* R,G,B,A */
	case HFE_FMT_XBGR8888:
		ri = 0, gi = 1, bi = 2, ai = 3;
		break;
	case HFE_FMT_NV12:
	case HFE_FMT_I420: {
		struct tu_yuv yuv;

		tu_ref_rgb_to_yuv(rgb, w, h, &yuv);
		tu_write_yuv_frame(format, stride, &yuv, buf);
		tu_yuv_free(&yuv);
		return;
	}
	default:
		abort();
	}
	/* The x byte carries junk: converters must ignore it (and alpha). */
	a = format == HFE_FMT_ARGB8888 || format == HFE_FMT_ABGR8888 ? 0xFF : 0x3C;
	memset(buf, 0xA5, (size_t)stride * h);
	for (uint32_t y = 0; y < h; y++) {
		uint8_t *d = buf + (size_t)y * stride;
		const uint8_t *s = rgb + (size_t)y * w * 3;

		for (uint32_t x = 0; x < w; x++) {
			d[4 * x + ri] = s[3 * x];
			d[4 * x + gi] = s[3 * x + 1];
			d[4 * x + bi] = s[3 * x + 2];
			d[4 * x + ai] = a;
		}
	}
}

uint8_t *tu_pattern_frame(uint32_t format, uint32_t w, uint32_t h, uint32_t stride,
			  uint32_t frame_no)
{
	uint8_t *rgb = malloc((size_t)w * h * 3);
	uint8_t *buf = malloc(tu_frame_size(format, w, h, stride));

	if (!rgb || !buf)
		abort();
	tu_pattern_rgb(rgb, w, h, frame_no);
	tu_write_frame(format, w, h, stride, rgb, buf);
	free(rgb);
	return buf;
}

/* ---- reference colour conversion -------------------------------------- */

/* BT.601 (Kr = 0.299, Kb = 0.114) scaled to 219 / 224 levels. */
static double ref_y(double r, double g, double b)
{
	return 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0;
}
static double ref_u(double r, double g, double b)
{
	return 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0;
}
static double ref_v(double r, double g, double b)
{
	return 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0;
}

void tu_ref_pixel(uint8_t r, uint8_t g, uint8_t b, uint8_t *y, uint8_t *u, uint8_t *v)
{
	*y = clamp8(ref_y(r, g, b));
	*u = clamp8(ref_u(r, g, b));
	*v = clamp8(ref_v(r, g, b));
}

void tu_ref_rgb_to_yuv(const uint8_t *rgb, uint32_t w, uint32_t h, struct tu_yuv *out)
{
	/* ref_y's products by value: the same sums as ref_y (in its order) with
	 * three fewer multiplications a pixel (emulated floating point is slow). */
	double yr[256], yg[256], yb[256];

	for (int i = 0; i < 256; i++) {
		yr[i] = 65.481 * i;
		yg[i] = 128.553 * i;
		yb[i] = 24.966 * i;
	}
	tu_yuv_alloc(out, w, h);
	for (uint32_t y = 0; y < h; y++) {
		for (uint32_t x = 0; x < w; x++) {
			const uint8_t *p = rgb + ((size_t)y * w + x) * 3;

			out->y[(size_t)y * w + x] = clamp8(16 + (yr[p[0]] + yg[p[1]] + yb[p[2]]) / 255.0);
		}
	}
	for (uint32_t cy = 0; cy < out->ch; cy++) {
		for (uint32_t cx = 0; cx < out->cw; cx++) {
			unsigned s[3] = { 0, 0, 0 }, n = 0;

			for (uint32_t y = 2 * cy; y < 2 * cy + 2 && y < h; y++) {
				for (uint32_t x = 2 * cx; x < 2 * cx + 2 && x < w; x++) {
					const uint8_t *p = rgb + ((size_t)y * w + x) * 3;

					s[0] += p[0];
					s[1] += p[1];
					s[2] += p[2];
					n++;
				}
			}
			double r = (double)s[0] / n, g = (double)s[1] / n, b = (double)s[2] / n;
			out->u[(size_t)cy * out->cw + cx] = clamp8(ref_u(r, g, b));
			out->v[(size_t)cy * out->cw + cx] = clamp8(ref_v(r, g, b));
		}
	}
}

/* ---- PSNR ------------------------------------------------------------- */

double tu_psnr_plane(const uint8_t *a, size_t a_stride, const uint8_t *b, size_t b_stride,
		     uint32_t w, uint32_t h)
{
	uint64_t sse = 0;
	double mse;

	for (uint32_t y = 0; y < h; y++) {
		const uint8_t *pa = a + y * a_stride, *pb = b + y * b_stride;

		for (uint32_t x = 0; x < w; x++) {
			int d = pa[x] - pb[x];

			sse += (uint64_t)(d * d);
		}
	}
	if (sse == 0 || w == 0 || h == 0)
		return 100.0;
	mse = (double)sse / ((double)w * h);
	return 10.0 * log10(255.0 * 255.0 / mse);
}

int tu_psnr_yuv(const struct tu_yuv *a, const struct tu_yuv *b, double out[3])
{
	if (a->w != b->w || a->h != b->h)
		return -1;
	out[0] = tu_psnr_plane(a->y, a->w, b->y, b->w, a->w, a->h);
	out[1] = tu_psnr_plane(a->u, a->cw, b->u, b->cw, a->cw, a->ch);
	out[2] = tu_psnr_plane(a->v, a->cw, b->v, b->cw, a->cw, a->ch);
	return 0;
}

/* ---- NAL units -------------------------------------------------------- */

/* Offset of the next 00 00 01 at or after i, or len. */
static size_t next_start(const uint8_t *p, size_t len, size_t i)
{
	for (; i + 3 <= len; i++) {
		if (p[i] == 0 && p[i + 1] == 0 && p[i + 2] == 1)
			return i;
	}
	return len;
}

int tu_nal_parse(const uint8_t *au, size_t len, struct tu_nals *out)
{
	size_t i;

	memset(out, 0, sizeof(*out));
	out->sps_profile = out->sps_constraints = out->sps_level = -1;
	if (len >= 4 && au[0] == 0 && au[1] == 0 && au[2] == 0 && au[3] == 1)
		i = 1;
	else if (len >= 3 && au[0] == 0 && au[1] == 0 && au[2] == 1)
		i = 0;
	else
		return -1;

	while (i < len) {
		size_t start = i + 3, end = next_start(au, len, start), n;

		/* Zero bytes before the next start code are not part of this
		 * unit (trailing_zero_8bits, or a 4-byte start code). */
		n = end;
		while (n > start && au[n - 1] == 0)
			n--;
		if (n > start) {
			int k = out->count;

			if (k == TU_MAX_NALS)
				return -1;
			out->data[k] = au + start;
			out->len[k] = n - start;
			out->type[k] = au[start] & 0x1f;
			switch (out->type[k]) {
			case TU_NAL_SPS:
				out->has_sps = true;
				if (out->sps_profile < 0 && out->len[k] >= 4) {
					out->sps_profile = au[start + 1];
					out->sps_constraints = au[start + 2];
					out->sps_level = au[start + 3];
				}
				break;
			case TU_NAL_PPS:
				out->has_pps = true;
				break;
			case TU_NAL_IDR:
				out->has_idr = true;
				break;
			case TU_NAL_SLICE:
				out->has_slice = true;
				break;
			default:
				break;
			}
			out->count++;
		}
		i = end;
	}
	return out->count;
}

int tu_nal_find(const struct tu_nals *n, int type)
{
	for (int i = 0; i < n->count; i++) {
		if (n->type[i] == type)
			return i;
	}
	return -1;
}

/* ---- H.264 decoder ---------------------------------------------------- */

struct tu_decoder {
	AVCodecContext *ctx;
	AVPacket *pkt;
	AVFrame *frame;
	bool flushing;
};

struct tu_decoder *tu_decoder_new(void)
{
	const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_H264);
	struct tu_decoder *d = calloc(1, sizeof(*d));

	if (!codec || !d)
		goto fail;
	d->ctx = avcodec_alloc_context3(codec);
	d->pkt = av_packet_alloc();
	d->frame = av_frame_alloc();
	if (!d->ctx || !d->pkt || !d->frame)
		goto fail;
	d->ctx->thread_count = 1;
	d->ctx->flags |= AV_CODEC_FLAG_LOW_DELAY;
	d->ctx->err_recognition = AV_EF_EXPLODE;
	if (avcodec_open2(d->ctx, codec, NULL) < 0)
		goto fail;
	return d;
fail:
	tu_decoder_free(d);
	return NULL;
}

void tu_decoder_free(struct tu_decoder *d)
{
	if (!d)
		return;
	avcodec_free_context(&d->ctx);
	av_packet_free(&d->pkt);
	av_frame_free(&d->frame);
	free(d);
}

static int take_frame(struct tu_decoder *d, struct tu_yuv *out)
{
	AVFrame *f = d->frame;
	int r = avcodec_receive_frame(d->ctx, f);

	if (r == AVERROR(EAGAIN) || r == AVERROR_EOF)
		return 0;
	if (r < 0)
		return -1;
	if (f->format != AV_PIX_FMT_YUV420P && f->format != AV_PIX_FMT_YUVJ420P) {
		av_frame_unref(f);
		return -1;
	}
	tu_yuv_alloc(out, (uint32_t)f->width, (uint32_t)f->height);
	for (uint32_t y = 0; y < out->h; y++)
		memcpy(out->y + (size_t)y * out->w, f->data[0] + (size_t)y * f->linesize[0],
		       out->w);
	for (uint32_t y = 0; y < out->ch; y++) {
		memcpy(out->u + (size_t)y * out->cw, f->data[1] + (size_t)y * f->linesize[1],
		       out->cw);
		memcpy(out->v + (size_t)y * out->cw, f->data[2] + (size_t)y * f->linesize[2],
		       out->cw);
	}
	av_frame_unref(f);
	return 1;
}

int tu_decoder_decode(struct tu_decoder *d, const uint8_t *au, size_t len, struct tu_yuv *out,
		      struct tu_nals *nals)
{
	int r;

	memset(out, 0, sizeof(*out));
	if (nals)
		tu_nal_parse(au, len, nals);
	if (len > INT_MAX || av_new_packet(d->pkt, (int)len) < 0)
		return -1;
	memcpy(d->pkt->data, au, len);
	r = avcodec_send_packet(d->ctx, d->pkt);
	av_packet_unref(d->pkt);
	if (r < 0)
		return -1;
	return take_frame(d, out);
}

int tu_decoder_flush(struct tu_decoder *d, struct tu_yuv *out)
{
	memset(out, 0, sizeof(*out));
	if (!d->flushing) {
		d->flushing = true;
		if (avcodec_send_packet(d->ctx, NULL) < 0)
			return -1;
	}
	return take_frame(d, out);
}

/* ---- processes, files, time ------------------------------------------- */

pid_t tu_spawn(const char *const argv[], const char *log_path)
{
	int pfd[2], e = 0;
	pid_t pid;
	ssize_t n;

	/* The child reports a failed exec through a close-on-exec pipe. */
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		close(pfd[0]);
		if (log_path) {
			int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);

			if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) {
				e = errno;
				(void)!write(pfd[1], &e, sizeof(e));
				_exit(127);
			}
			close(fd);
		}
		execvp(argv[0], (char *const *)(uintptr_t)argv);
		e = errno;
		(void)!write(pfd[1], &e, sizeof(e));
		_exit(127);
	}
	close(pfd[1]);
	do {
		n = read(pfd[0], &e, sizeof(e));
	} while (n < 0 && errno == EINTR);
	close(pfd[0]);
	if (n == (ssize_t)sizeof(e)) {
		waitpid(pid, NULL, 0);
		fprintf(stderr, "tu_spawn: cannot run %s: %s\n", argv[0], strerror(e));
		return -1;
	}
	return pid;
}

int tu_wait(pid_t pid, int timeout_ms, int *status)
{
	uint64_t deadline = tu_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid) {
			if (status)
				*status = st;
			return 0;
		}
		if (r < 0 && errno != EINTR)
			return -1;
		if (tu_now_ns() >= deadline)
			return -1;
		usleep(2000);
	}
}

int tu_kill_wait(pid_t pid, int sig, int timeout_ms)
{
	int st;

	if (pid <= 0)
		return -1;
	kill(pid, sig);
	if (tu_wait(pid, timeout_ms, &st) == 0)
		return st;
	kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return st;
}

char *tu_mkdtemp(const char *prefix)
{
	const char *dir = getenv("TMPDIR");
	size_t n;
	char *path;

	if (!dir || !dir[0])
		dir = "/tmp";
	n = strlen(dir) + strlen(prefix) + 16;
	path = malloc(n);
	if (!path)
		return NULL;
	snprintf(path, n, "%s/%s-XXXXXX", dir, prefix);
	if (!mkdtemp(path)) {
		free(path);
		return NULL;
	}
	return path;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int tu_rm_rf(const char *path)
{
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

double tu_time_scale(void)
{
	const char *v = getenv("HFE_TEST_TIME_SCALE");
	char *end;
	double d;

	if (!v || !*v)
		return 1.0;
	d = strtod(v, &end);
	if (*end || !(d >= 1.0 && d <= 100.0)) {
		fprintf(stderr, "HFE_TEST_TIME_SCALE='%s' is not a number from 1 to 100: using 1\n", v);
		return 1.0;
	}
	return d;
}

uint64_t tu_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void tu_asan_glib_malloc(void)
{
#ifdef __SANITIZE_ADDRESS__
	setenv("G_SLICE", "always-malloc", 1);
#endif
}

double tu_proc_cpu_ms(pid_t pid, pid_t tid)
{
	char path[96], buf[2048];
	unsigned long ut, st;
	size_t n;
	char *p;
	FILE *f;

	if (tid)
		snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	else
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = pid > 0 ? fopen(path, "r") : NULL;
	if (!f)
		return NAN;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* After the command name (which may hold anything): state ppid pgrp
	 * session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
			 &st) != 2)
		return NAN;
	return (double)(ut + st) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

long tu_proc_status_kb(pid_t pid, const char *key)
{
	char path[64], line[256];
	long v = -1;
	size_t kl = strlen(key);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = pid > 0 ? fopen(path, "r") : NULL;
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':')
			v = strtol(line + kl + 1, NULL, 10);
	fclose(f);
	return v;
}

long tu_proc_fds(pid_t pid, bool no_eventfds)
{
	char path[64], link[PATH_MAX], target[64];
	struct dirent *e;
	long n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (no_eventfds) {
			snprintf(link, sizeof(link), "%s/%s", path, e->d_name);
			ssize_t k = readlink(link, target, sizeof(target) - 1);

			target[k > 0 ? k : 0] = 0;
			if (!strcmp(target, "anon_inode:[eventfd]"))
				continue;
		}
		n++;
	}
	closedir(d);
	return n;
}

void tu_asan_small_quarantine(void)
{
#ifdef __SANITIZE_ADDRESS__
	const char *o = getenv("ASAN_OPTIONS");
	char opts[1024];

	snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=4", o ? o : "", o && *o ? ":" : "");
	setenv("ASAN_OPTIONS", opts, 1);
#endif
}
