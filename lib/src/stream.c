/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Scanout stream: latest picture + accumulated damage, encoded on a worker
 * thread at its own pace. See hfe/stream.h.
 *
 * The source writes into `fb` (32-bit BGRx, host-owned) under the lock and
 * grows the damage box. The worker, also under the lock, converts just the
 * damaged box into its persistent encoder-format picture, then encodes with
 * the lock released. Sources therefore wait at most for one box conversion,
 * never for an encode.
 */
#include "hfe/stream.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hfe/image.h"
#include "hfe/log.h"
#include "worker.h"

#define OUT_RING 8 /* access units waiting for the owner's loop */

struct au_box {
	struct hfe_stream_au au; /* first: hfe_stream_au * converts back */
	atomic_int refs;
	struct hfe_packet pkt;
};

struct box {
	uint32_t x0, y0, x1, y1; /* half-open */
};

struct hfe_stream {
	struct hfe_stream_params p;
	const struct hfe_encoder_ops *ops;
	struct hfe_worker w;

	/* under w.lock */
	bool active;
	bool resized; /* size changed since the worker last looked */
	uint8_t *fb;
	uint32_t fb_stride, width, height;
	struct box damage;
	bool damaged;
	int64_t damage_ns; /* time of the first damage not yet encoded */
	bool want_idr;
	bool resync; /* access units were dropped: publish nothing before an IDR */
	bool blank;  /* resized, no pixels yet: nothing worth encoding */
	unsigned consumers; /* subscribers; none = damage accumulates, no encoding */
	struct au_box *out[OUT_RING];
	unsigned out_head, out_count;
	struct hfe_stream_stats stats;
	uint64_t seq;

	/* worker only */
	struct hfe_encoder *enc;
	uint32_t enc_w, enc_h, enc_fmt;
	uint8_t *pic; /* encoder-format picture, persistent between encodes */
	struct hfe_image pic_img;
	int64_t index;
	uint64_t last_encode_ns;
};

/* ---- access units ---- */

struct hfe_stream_au *hfe_stream_au_ref(struct hfe_stream_au *au)
{
	atomic_fetch_add(&((struct au_box *)au)->refs, 1);
	return au;
}

void hfe_stream_au_unref(struct hfe_stream_au *au)
{
	struct au_box *b = (struct au_box *)au;
	if (b && atomic_fetch_sub(&b->refs, 1) == 1) {
		hfe_packet_release(&b->pkt);
		free(b);
	}
}

void hfe_stream_au_release(void *au) { hfe_stream_au_unref(au); }

/* ---- source side ---- */

int hfe_stream_resize(struct hfe_stream *s, uint32_t width, uint32_t height, struct hfe_err *err)
{
	if (width < HFE_MIN_DIMENSION || height < HFE_MIN_DIMENSION || width > HFE_MAX_DIMENSION ||
	    height > HFE_MAX_DIMENSION) {
		hfe_err_set(err, HFE_ERR_UNSUPPORTED, "scanout size %ux%u out of range", width,
			    height);
		return -1;
	}
	/* Encoders need even sizes: the odd last row/column is dropped. */
	uint32_t ew = width & ~1u, eh = height & ~1u;
	uint32_t stride = ew * 4;
	uint8_t *fb = calloc((size_t)stride, eh);
	if (!fb) {
		hfe_err_set(err, HFE_ERR_INTERNAL, "out of memory for a %ux%u scanout", width,
			    height);
		return -1;
	}
	pthread_mutex_lock(&s->w.lock);
	free(s->fb);
	s->fb = fb;
	s->fb_stride = stride;
	s->width = ew;
	s->height = eh;
	s->active = true;
	s->resized = true;
	s->blank = true; /* the source's first update brings the pixels */
	s->damage = (struct box){ 0, 0, ew, eh };
	if (!s->damaged)
		s->damage_ns = (int64_t)hfe_mono_ns();
	s->damaged = true;
	s->want_idr = true;
	pthread_cond_signal(&s->w.cond);
	pthread_mutex_unlock(&s->w.lock);
	return 0;
}

static void copy_rows(uint8_t *dst, uint32_t dst_stride, const uint8_t *src, uint32_t src_stride,
		      uint32_t w, uint32_t h, uint32_t format)
{
	bool swap = format == HFE_FMT_ABGR8888 || format == HFE_FMT_XBGR8888;
	for (uint32_t row = 0; row < h; row++) {
		const uint8_t *sp = src + (size_t)row * src_stride;
		uint8_t *dp = dst + (size_t)row * dst_stride;
		if (!swap) {
			memcpy(dp, sp, (size_t)w * 4);
			continue;
		}
		for (uint32_t i = 0; i < w; i++) { /* R,G,B,A bytes -> B,G,R,A */
			dp[4 * i] = sp[4 * i + 2];
			dp[4 * i + 1] = sp[4 * i + 1];
			dp[4 * i + 2] = sp[4 * i];
			dp[4 * i + 3] = sp[4 * i + 3];
		}
	}
}

static bool rgb32(uint32_t format)
{
	return format == HFE_FMT_XRGB8888 || format == HFE_FMT_ARGB8888 ||
	       format == HFE_FMT_XBGR8888 || format == HFE_FMT_ABGR8888;
}

/* Copy one rectangle into fb and grow the damage box (lock held). */
static void update_locked(struct hfe_stream *s, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
			  const uint8_t *pixels, uint32_t stride, uint32_t format)
{
	if (!s->fb || x >= s->width || y >= s->height || !w || !h)
		return;
	if (w > s->width - x)
		w = s->width - x;
	if (h > s->height - y)
		h = s->height - y;
	copy_rows(s->fb + (size_t)y * s->fb_stride + (size_t)x * 4, s->fb_stride, pixels, stride, w,
		  h, format);
	s->blank = false;

	struct box *d = &s->damage;
	if (!s->damaged) {
		*d = (struct box){ x, y, x + w, y + h };
		s->damage_ns = (int64_t)hfe_mono_ns();
		s->damaged = true;
	} else {
		s->stats.updates_coalesced++;
		d->x0 = x < d->x0 ? x : d->x0;
		d->y0 = y < d->y0 ? y : d->y0;
		d->x1 = x + w > d->x1 ? x + w : d->x1;
		d->y1 = y + h > d->y1 ? y + h : d->y1;
	}
	s->stats.updates++;
}

void hfe_stream_update(struct hfe_stream *s, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
		       const uint8_t *pixels, uint32_t stride, uint32_t format)
{
	if (!rgb32(format))
		return;
	pthread_mutex_lock(&s->w.lock);
	update_locked(s, x, y, w, h, pixels, stride, format);
	pthread_cond_signal(&s->w.cond);
	pthread_mutex_unlock(&s->w.lock);
}

void hfe_stream_update_rects(struct hfe_stream *s, const struct hfe_rect *rects, unsigned n,
			     const uint8_t *surface, uint32_t stride, uint32_t format)
{
	if (!rgb32(format))
		return;
	pthread_mutex_lock(&s->w.lock);
	for (unsigned i = 0; i < n; i++) {
		const struct hfe_rect *r = &rects[i];
		if (r->x >= s->width || r->y >= s->height)
			continue;
		update_locked(s, r->x, r->y, r->w, r->h,
			      surface + (size_t)r->y * stride + (size_t)r->x * 4, stride, format);
	}
	pthread_cond_signal(&s->w.cond);
	pthread_mutex_unlock(&s->w.lock);
}

void hfe_stream_disable(struct hfe_stream *s)
{
	pthread_mutex_lock(&s->w.lock);
	s->active = false;
	s->damaged = false;
	pthread_mutex_unlock(&s->w.lock);
}

/* ---- consumer side ---- */

void hfe_stream_set_consumers(struct hfe_stream *s, unsigned n)
{
	pthread_mutex_lock(&s->w.lock);
	s->consumers = n;
	pthread_cond_signal(&s->w.cond);
	pthread_mutex_unlock(&s->w.lock);
}

void hfe_stream_request_keyframe(struct hfe_stream *s)
{
	pthread_mutex_lock(&s->w.lock);
	s->want_idr = true;
	pthread_cond_signal(&s->w.cond);
	pthread_mutex_unlock(&s->w.lock);
}

int hfe_stream_poll(struct hfe_stream *s, struct hfe_stream_au **au)
{
	pthread_mutex_lock(&s->w.lock);
	if (!s->out_count) {
		pthread_mutex_unlock(&s->w.lock);
		return 0;
	}
	*au = &s->out[s->out_head]->au;
	s->out_head = (s->out_head + 1) % OUT_RING;
	s->out_count--;
	pthread_mutex_unlock(&s->w.lock);
	return 1;
}

bool hfe_stream_active(struct hfe_stream *s)
{
	pthread_mutex_lock(&s->w.lock);
	bool a = s->active;
	pthread_mutex_unlock(&s->w.lock);
	return a;
}

void hfe_stream_get_stats(struct hfe_stream *s, struct hfe_stream_stats *st)
{
	pthread_mutex_lock(&s->w.lock);
	*st = s->stats;
	pthread_mutex_unlock(&s->w.lock);
}

/* ---- worker ---- */

/* Convert the damaged box of fb into the encoder picture (lock held). The
 * box is widened to even coordinates so chroma stays aligned. */
static void convert_damage(struct hfe_stream *s, struct box d)
{
	d.x0 &= ~1u;
	d.y0 &= ~1u;
	d.x1 = (d.x1 + 1) & ~1u;
	d.y1 = (d.y1 + 1) & ~1u;
	if (d.x1 > s->enc_w)
		d.x1 = s->enc_w;
	if (d.y1 > s->enc_h)
		d.y1 = s->enc_h;

	struct hfe_image src = {
		.format = HFE_FMT_XRGB8888,
		.width = d.x1 - d.x0,
		.height = d.y1 - d.y0,
		.plane = { s->fb + (size_t)d.y0 * s->fb_stride + (size_t)d.x0 * 4 },
		.stride = { s->fb_stride },
	};
	struct hfe_image dst = s->pic_img;
	dst.width = src.width;
	dst.height = src.height;
	dst.plane[0] += (size_t)d.y0 * dst.stride[0] + d.x0;
	if (dst.format == HFE_FMT_NV12) {
		dst.plane[1] += (size_t)(d.y0 / 2) * dst.stride[1] + d.x0;
	} else {
		dst.plane[1] += (size_t)(d.y0 / 2) * dst.stride[1] + d.x0 / 2;
		dst.plane[2] += (size_t)(d.y0 / 2) * dst.stride[2] + d.x0 / 2;
	}
	hfe_convert(&src, &dst);
}

static int reopen_encoder(struct hfe_stream *s, uint32_t w, uint32_t h)
{
	struct hfe_err err;
	if (s->enc) {
		s->ops->close(s->enc);
		s->enc = NULL;
	}
	struct hfe_encoder_params ep = s->p.enc;
	ep.width = w;
	ep.height = h;
	if (s->ops->open(&s->enc, &ep, HFE_FMT_I420, &err) < 0) {
		hfe_error("scanout stream: cannot open the encoder: %s", err.msg);
		s->enc = NULL;
		return -1;
	}
	s->enc_w = w;
	s->enc_h = h;
	s->enc_fmt = s->ops->input_format(s->enc);
	uint32_t stride = (w + 63u) & ~63u;
	free(s->pic);
	s->pic = aligned_alloc(64, ((size_t)stride * h * 3 / 2 + 63) & ~(size_t)63);
	if (!s->pic) {
		s->ops->close(s->enc);
		s->enc = NULL;
		return -1;
	}
	hfe_image_wrap(&s->pic_img, s->enc_fmt, w, h, stride, s->pic);
	hfe_info("scanout stream: %s %ux%u, max %u fps", s->ops->name(s->enc), w, h, s->p.max_fps);
	return 0;
}

static void publish(struct hfe_stream *s, struct hfe_packet *pkt, int64_t damage_ns,
		    uint64_t encode_us)
{
	struct au_box *b = calloc(1, sizeof(*b));
	if (!b) {
		hfe_packet_release(pkt);
		return;
	}
	b->pkt = *pkt;
	atomic_init(&b->refs, 1);
	b->au = (struct hfe_stream_au){ .pts_ns = damage_ns, .width = s->enc_w,
					.height = s->enc_h, .keyframe = pkt->keyframe,
					.data = pkt->data, .size = pkt->size };

	pthread_mutex_lock(&s->w.lock);
	if (s->out_count == OUT_RING) {
		/* The owner is not collecting. Every queued delta depends on the
		 * oldest, so drop them all and publish nothing until an IDR. */
		while (s->out_count) {
			hfe_stream_au_unref(&s->out[s->out_head]->au);
			s->out_head = (s->out_head + 1) % OUT_RING;
			s->out_count--;
			s->stats.frames_dropped++;
		}
		s->resync = true;
		s->want_idr = true;
	}
	if (s->resync && !pkt->keyframe) {
		s->stats.frames_dropped++;
		pthread_mutex_unlock(&s->w.lock);
		hfe_stream_au_unref(&b->au);
		return;
	}
	s->resync = false;
	b->au.seq = s->seq++;
	s->out[(s->out_head + s->out_count) % OUT_RING] = b;
	s->out_count++;
	s->stats.frames_encoded++;
	s->stats.keyframes += pkt->keyframe;
	s->stats.bytes_out += pkt->size;
	s->stats.encode_us_last = (uint32_t)encode_us;
	if (encode_us > s->stats.encode_us_max)
		s->stats.encode_us_max = (uint32_t)encode_us;
	pthread_mutex_unlock(&s->w.lock);
	if (s->p.notify)
		s->p.notify(s->p.opaque);
}

static void *worker(void *arg)
{
	struct hfe_stream *s = arg;
	uint64_t frame_ns = 1000000000u / s->p.max_fps;

	pthread_mutex_lock(&s->w.lock);
	for (;;) {
		while (!s->w.stop && !(s->active && s->fb && !s->blank && s->consumers &&
					(s->damaged || s->want_idr)))
			pthread_cond_wait(&s->w.cond, &s->w.lock);
		if (s->w.stop)
			break;

		/* Pacing: let damage accumulate until the next slot (newest wins). */
		uint64_t now = hfe_mono_ns(), due = s->last_encode_ns + frame_ns;
		if (s->last_encode_ns && now < due) {
			hfe_worker_wait_until(&s->w, due);
			continue;
		}

		if (s->resized || !s->enc) {
			s->resized = false;
			uint32_t w = s->width, h = s->height;
			if (reopen_encoder(s, w, h) < 0) {
				s->active = false; /* until the next resize */
				continue;
			}
			s->damage = (struct box){ 0, 0, w, h };
			s->damaged = true;
			s->want_idr = true;
		}
		bool idr = s->want_idr;
		int64_t damage_ns = s->damaged ? s->damage_ns : (int64_t)now;
		if (s->damaged)
			convert_damage(s, s->damage);
		s->damaged = false;
		s->want_idr = false;
		pthread_mutex_unlock(&s->w.lock);

		struct hfe_err err;
		uint64_t t0 = hfe_mono_ns();
		s->last_encode_ns = t0;
		if (s->ops->encode(s->enc, &s->pic_img, s->index++, idr, &err) < 0) {
			hfe_warn("scanout stream: encode failed: %s", err.msg);
		} else {
			struct hfe_packet pkt;
			while (s->ops->receive(s->enc, &pkt, &err) == 1)
				publish(s, &pkt, damage_ns, (hfe_mono_ns() - t0) / 1000u);
		}
		pthread_mutex_lock(&s->w.lock);
	}
	pthread_mutex_unlock(&s->w.lock);
	return NULL;
}

struct hfe_stream *hfe_stream_new(const struct hfe_stream_params *p, struct hfe_err *err)
{
	if (p->max_fps < 1 || p->max_fps > 240) {
		hfe_err_set(err, HFE_ERR_INTERNAL, "max_fps %u out of range 1..240", p->max_fps);
		return NULL;
	}
	struct hfe_stream *s = calloc(1, sizeof(*s));
	if (!s) {
		hfe_err_set(err, HFE_ERR_INTERNAL, "out of memory");
		return NULL;
	}
	s->p = *p;
	s->ops = p->ops ? p->ops : &hfe_encoder_lavc;
	if (hfe_worker_start(&s->w, worker, s, "stream", err) < 0) {
		free(s);
		return NULL;
	}
	return s;
}

void hfe_stream_free(struct hfe_stream *s)
{
	if (!s)
		return;
	hfe_worker_stop(&s->w);
	while (s->out_count) {
		hfe_stream_au_unref(&s->out[s->out_head]->au);
		s->out_head = (s->out_head + 1) % OUT_RING;
		s->out_count--;
	}
	if (s->enc)
		s->ops->close(s->enc);
	free(s->pic);
	free(s->fb);
	free(s);
}
