/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Scanout stream: latest picture + accumulated damage, encoded on a worker
 * thread at its own pace. See hfe/stream.h.
 *
 * Two locks, so that the owner's event loop (a QEMU main loop) never waits
 * for pixel work:
 *  - fb_lock guards the pixels of `fb` (32-bit BGRx, host-owned). Sources
 *    copy into it, the worker converts the damaged box out of it into its
 *    persistent encoder-format picture. Sources wait at most for one box
 *    conversion, never for an encode.
 *  - w.lock guards the small state: damage box, flags, the output ring,
 *    statistics. It is only ever held for a few field updates, so
 *    hfe_stream_poll/request_keyframe/get_stats return at once.
 * Lock order: fb_lock, then w.lock. The encoder is opened, closed and run
 * with neither held.
 */
#include "hfe/stream.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cursor.h"
#include "encoder_desktop.h"
#include "h264_splice.h"
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
	struct hfe_stream_params p; /* p.enc.bitrate: the worker's current target */
	uint32_t base_bitrate;      /* p.enc.bitrate at creation */
	const struct hfe_encoder_ops *ops;
	struct hfe_worker w;
	pthread_mutex_t fb_lock;
	struct hfe_cursor cursor; /* its own lock, taken after fb_lock */
	uint8_t *cursor_pic;      /* worker: a cursor-sized piece of fb with it drawn in */

	/* written under both locks, read under either */
	uint8_t *fb; /* pixels under fb_lock */
	uint32_t fb_stride, width, height;

	/* under w.lock */
	bool active;
	bool resized; /* size changed since the worker last looked */
	struct box damage;
	bool damaged;
	int64_t damage_ns; /* time of the first damage not yet encoded */
	bool want_idr;
	bool resync; /* access units were dropped: publish nothing before an IDR */
	bool blank;  /* resized, no pixels yet: nothing worth encoding */
	unsigned consumers; /* subscribers; none = damage accumulates, no encoding */
	bool cursor_composite; /* draw the cursor into the picture */
	bool cursor_pending;   /* a cursor change not yet notified */
	uint64_t cursor_notified_ns;
	uint32_t bitrate_want; /* hfe_stream_set_bitrate; 0 = base_bitrate */
	bool bitrate_changed;
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
	/* patch frames (h264_splice.h); splice NULL = every change is encoded */
	struct h264_splicer *splice;
	uint8_t *mb_changed; /* macroblocks changed since the encoder's last frame */
	uint32_t mb_w, mb_h, mb_changed_count, patch_max_mbs;
	uint8_t *ref_pic;  /* the picture as of the encoder's last frame (pic layout) */
	struct hfe_image ref_img;
	struct box ref_stale; /* where pic may differ from ref_pic */
	bool ref_stale_set;
	int64_t enc_inflight; /* frames inside the encoder: no patch may overtake them */
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
	pthread_mutex_lock(&s->fb_lock);
	pthread_mutex_lock(&s->w.lock);
	uint8_t *old = s->fb;
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
	pthread_mutex_unlock(&s->fb_lock);
	free(old);
	return 0;
}

/* Copy the rows of a rectangle that differ from what fb holds: guests
 * often flush pixels they did not change (a cursor-plane move makes some
 * compositors re-commit the whole primary plane), and an unchanged flush
 * must cost no encode. Returns whether any row changed; *first and *last
 * are the changed rows' range (relative to the rectangle). */
static bool copy_rows(uint8_t *dst, uint32_t dst_stride, const uint8_t *src, uint32_t src_stride,
		      uint32_t w, uint32_t h, uint32_t format, uint32_t *first, uint32_t *last)
{
	bool swap = format == HFE_FMT_ABGR8888 || format == HFE_FMT_XBGR8888;
	bool any = false;
	for (uint32_t row = 0; row < h; row++) {
		const uint8_t *sp = src + (size_t)row * src_stride;
		uint8_t *dp = dst + (size_t)row * dst_stride;
		bool changed = false;
		if (!swap) {
			changed = memcmp(dp, sp, (size_t)w * 4) != 0;
			if (changed)
				memcpy(dp, sp, (size_t)w * 4);
		} else {
			for (uint32_t i = 0; i < w; i++) { /* R,G,B,A bytes -> B,G,R,A */
				uint8_t px[4] = { sp[4 * i + 2], sp[4 * i + 1], sp[4 * i],
						  sp[4 * i + 3] };
				if (memcmp(dp + 4 * i, px, 4)) {
					memcpy(dp + 4 * i, px, 4);
					changed = true;
				}
			}
		}
		if (changed) {
			*first = any ? *first : row;
			*last = row;
			any = true;
		}
	}
	return any;
}

static bool rgb32(uint32_t format)
{
	return format == HFE_FMT_XRGB8888 || format == HFE_FMT_ARGB8888 ||
	       format == HFE_FMT_XBGR8888 || format == HFE_FMT_ABGR8888;
}

/* Copy one rectangle into fb (fb_lock held). Returns false when nothing of
 * it is on the surface or none of its pixels changed (right after a resize
 * every copy counts: it brings the first picture); else *out is the clipped
 * rectangle, narrowed to the rows that changed. */
static bool copy_locked(struct hfe_stream *s, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
			const uint8_t *pixels, uint32_t stride, uint32_t format, struct box *out)
{
	if (!s->fb || x >= s->width || y >= s->height || !w || !h)
		return false;
	if (w > s->width - x)
		w = s->width - x;
	if (h > s->height - y)
		h = s->height - y;
	uint32_t first = 0, last = h - 1;
	bool changed = copy_rows(s->fb + (size_t)y * s->fb_stride + (size_t)x * 4, s->fb_stride,
				 pixels, stride, w, h, format, &first, &last);
	if (!changed && !s->blank) {
		pthread_mutex_lock(&s->w.lock);
		s->stats.updates++;
		s->stats.updates_unchanged++;
		pthread_mutex_unlock(&s->w.lock);
		return false;
	}
	*out = (struct box){ x, y + first, x + w, y + last + 1 };
	return true;
}

/* b grows to cover d (*set false: b is d). */
static void grow_box(struct box *b, bool *set, struct box d)
{
	if (!*set) {
		*b = d;
		*set = true;
		return;
	}
	b->x0 = d.x0 < b->x0 ? d.x0 : b->x0;
	b->y0 = d.y0 < b->y0 ? d.y0 : b->y0;
	b->x1 = d.x1 > b->x1 ? d.x1 : b->x1;
	b->y1 = d.y1 > b->y1 ? d.y1 : b->y1;
}

/* Report damage: `rects` rectangles already copied into fb, b their
 * bounding box (fb_lock held; takes w.lock). */
static void add_damage(struct hfe_stream *s, struct box b, unsigned rects)
{
	pthread_mutex_lock(&s->w.lock);
	s->blank = false;
	s->stats.updates += rects;
	s->stats.updates_coalesced += s->damaged ? rects : rects - 1;
	if (!s->damaged)
		s->damage_ns = (int64_t)hfe_mono_ns();
	grow_box(&s->damage, &s->damaged, b);
	pthread_cond_signal(&s->w.cond);
	pthread_mutex_unlock(&s->w.lock);
}

void hfe_stream_update(struct hfe_stream *s, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
		       const uint8_t *pixels, uint32_t stride, uint32_t format)
{
	if (!rgb32(format))
		return;
	struct box b;
	pthread_mutex_lock(&s->fb_lock);
	if (copy_locked(s, x, y, w, h, pixels, stride, format, &b))
		add_damage(s, b, 1);
	pthread_mutex_unlock(&s->fb_lock);
}

void hfe_stream_update_rects(struct hfe_stream *s, const struct hfe_rect *rects, unsigned n,
			     const uint8_t *surface, uint32_t stride, uint32_t format)
{
	if (!rgb32(format))
		return;
	/* One damage report for all: an encode sees all of them or none. */
	struct box all, b;
	bool any = false;
	unsigned copied = 0;
	pthread_mutex_lock(&s->fb_lock);
	for (unsigned i = 0; i < n; i++) {
		const struct hfe_rect *r = &rects[i];
		if (r->x >= s->width || r->y >= s->height)
			continue;
		if (!copy_locked(s, r->x, r->y, r->w, r->h,
				 surface + (size_t)r->y * stride + (size_t)r->x * 4, stride, format,
				 &b))
			continue;
		grow_box(&all, &any, b);
		copied++;
	}
	if (copied)
		add_damage(s, all, copied);
	pthread_mutex_unlock(&s->fb_lock);
}

void hfe_stream_disable(struct hfe_stream *s)
{
	pthread_mutex_lock(&s->w.lock);
	s->active = false;
	s->damaged = false;
	pthread_mutex_unlock(&s->w.lock);
}

/* ---- the hardware cursor ---- */

/* Repaint area r of the picture (w.lock held): the cursor appeared, moved or
 * left it. Nothing before the source's first pixels. */
static void damage_area(struct hfe_stream *s, const struct hfe_rect *r)
{
	if (!s->active || !s->fb || s->blank || r->x >= s->width || r->y >= s->height)
		return;
	struct box b = { r->x, r->y, r->x + r->w, r->y + r->h };
	if (b.x1 > s->width)
		b.x1 = s->width;
	if (b.y1 > s->height)
		b.y1 = s->height;
	if (!s->damaged)
		s->damage_ns = (int64_t)hfe_mono_ns();
	grow_box(&s->damage, &s->damaged, b);
}

/* After a cursor change: repaint where it was and is (when drawn into the
 * picture), and tell the owner (rate-bound by the worker). */
static void cursor_changed(struct hfe_stream *s, bool had, const struct hfe_rect *old)
{
	struct hfe_rect now;
	bool has = hfe_cursor_area(&s->cursor, HFE_MAX_DIMENSION, HFE_MAX_DIMENSION, &now);

	pthread_mutex_lock(&s->w.lock);
	if (s->cursor_composite) {
		if (had)
			damage_area(s, old);
		if (has)
			damage_area(s, &now);
	}
	/* Unwatched: nobody to tell (a new subscriber reads the cursor as it is). */
	if (s->consumers) {
		s->cursor_pending = true;
		pthread_cond_signal(&s->w.cond);
	}
	pthread_mutex_unlock(&s->w.lock);
}

int hfe_stream_cursor_define(struct hfe_stream *s, const struct hfe_cursor_shape *shape,
			     const uint8_t *pixels, struct hfe_err *err)
{
	struct hfe_rect old;
	bool had;
	if (hfe_cursor_define(&s->cursor, shape, pixels, &old, &had, err) < 0)
		return -1;
	cursor_changed(s, had, &old);
	return 0;
}

void hfe_stream_cursor_move(struct hfe_stream *s, int32_t x, int32_t y, bool visible)
{
	struct hfe_rect old;
	bool had;
	hfe_cursor_move(&s->cursor, x, y, visible, &old, &had);
	cursor_changed(s, had, &old);
}

void hfe_stream_set_cursor_composite(struct hfe_stream *s, bool on)
{
	struct hfe_rect r;
	bool has = hfe_cursor_area(&s->cursor, HFE_MAX_DIMENSION, HFE_MAX_DIMENSION, &r);

	pthread_mutex_lock(&s->w.lock);
	if (s->cursor_composite != on) {
		s->cursor_composite = on;
		if (has)
			damage_area(s, &r);
		pthread_cond_signal(&s->w.cond);
	}
	pthread_mutex_unlock(&s->w.lock);
}

void hfe_stream_get_cursor(struct hfe_stream *s, struct hfe_stream_cursor *out, uint8_t *image)
{
	hfe_cursor_get(&s->cursor, out, image);
}

/* ---- control ---- */

void hfe_stream_set_bitrate(struct hfe_stream *s, uint32_t bitrate)
{
	pthread_mutex_lock(&s->w.lock);
	s->bitrate_want = bitrate;
	s->bitrate_changed = true; /* no wake-up: it waits for the next encode */
	pthread_mutex_unlock(&s->w.lock);
}

void hfe_stream_get_config(struct hfe_stream *s, struct hfe_config_resp *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&s->w.lock);
	out->width = s->width;
	out->height = s->height;
	out->bitrate = s->bitrate_want ? s->bitrate_want : s->base_bitrate;
	pthread_mutex_unlock(&s->w.lock);
	out->fps_num = s->p.max_fps;
	out->fps_den = 1;
	out->profile = s->p.enc.profile;
	out->level = s->p.enc.level;
	out->realtime = 1;
	snprintf(out->encoder, sizeof(out->encoder), "%s",
		 s->p.enc.name[0] ? s->p.enc.name : HFE_DEFAULT_ENCODER);
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

bool hfe_stream_picture_pending(struct hfe_stream *s)
{
	pthread_mutex_lock(&s->w.lock);
	bool pending = s->damaged && s->active && s->consumers > 0;
	pthread_mutex_unlock(&s->w.lock);
	return pending;
}

void hfe_stream_get_stats(struct hfe_stream *s, struct hfe_stream_stats *st)
{
	pthread_mutex_lock(&s->w.lock);
	*st = s->stats;
	pthread_mutex_unlock(&s->w.lock);
}

/* ---- worker ---- */

/* An I420/NV12 picture's memory: 64-byte aligned for the SIMD paths. */
static uint8_t *picture_alloc(uint32_t stride, uint32_t h)
{
	return aligned_alloc(64, ((size_t)stride * h * 3 / 2 + 63) & ~(size_t)63);
}

/* d widened to even coordinates (whole chroma samples) and clipped to the
 * encoder's even size; false if nothing is left. */
static bool even_box(const struct hfe_stream *s, struct box *d)
{
	d->x0 &= ~1u;
	d->y0 &= ~1u;
	d->x1 = (d->x1 + 1) & ~1u;
	d->y1 = (d->y1 + 1) & ~1u;
	if (d->x1 > s->enc_w)
		d->x1 = s->enc_w;
	if (d->y1 > s->enc_h)
		d->y1 = s->enc_h;
	return d->x0 < d->x1 && d->y0 < d->y1;
}

/* The part of an I420 or NV12 picture in box d (even coordinates). */
static struct hfe_image sub_image(const struct hfe_image *img, struct box d)
{
	struct hfe_image sub = *img;
	sub.width = d.x1 - d.x0;
	sub.height = d.y1 - d.y0;
	sub.plane[0] += (size_t)d.y0 * sub.stride[0] + d.x0;
	if (sub.format == HFE_FMT_NV12) {
		sub.plane[1] += (size_t)(d.y0 / 2) * sub.stride[1] + d.x0;
	} else {
		sub.plane[1] += (size_t)(d.y0 / 2) * sub.stride[1] + d.x0 / 2;
		sub.plane[2] += (size_t)(d.y0 / 2) * sub.stride[2] + d.x0 / 2;
	}
	return sub;
}

/* Convert the damaged box of fb into the encoder picture (fb_lock held). */
static void convert_damage(struct hfe_stream *s, struct box d)
{
	if (!even_box(s, &d))
		return;
	struct hfe_image src = {
		.format = HFE_FMT_XRGB8888,
		.width = d.x1 - d.x0,
		.height = d.y1 - d.y0,
		.plane = { s->fb + (size_t)d.y0 * s->fb_stride + (size_t)d.x0 * 4 },
		.stride = { s->fb_stride },
	};
	struct hfe_image dst = sub_image(&s->pic_img, d);
	hfe_convert(&src, &dst);
}

/* The cursor drawn over its part of the converted box d: that part again,
 * from a copy of fb with the cursor in it (fb keeps the source's pixels). */
static void composite_cursor(struct hfe_stream *s, struct box d)
{
	struct hfe_rect c;
	if (!even_box(s, &d) || !hfe_cursor_area(&s->cursor, s->enc_w, s->enc_h, &c))
		return;
	struct box b = { c.x > d.x0 ? c.x : d.x0, c.y > d.y0 ? c.y : d.y0,
			 c.x + c.w < d.x1 ? c.x + c.w : d.x1, c.y + c.h < d.y1 ? c.y + c.h : d.y1 };
	if (b.x0 >= b.x1 || b.y0 >= b.y1 || !even_box(s, &b))
		return;
	struct hfe_rect r = { b.x0, b.y0, b.x1 - b.x0, b.y1 - b.y0 };
	uint32_t stride = r.w * 4; /* at most HFE_CURSOR_MAX + 2 wide */
	for (uint32_t y = 0; y < r.h; y++)
		memcpy(s->cursor_pic + (size_t)y * stride,
		       s->fb + (size_t)(r.y + y) * s->fb_stride + (size_t)r.x * 4, stride);
	hfe_cursor_blend(&s->cursor, s->cursor_pic, stride, &r);
	struct hfe_image src = { .format = HFE_FMT_XRGB8888, .width = r.w, .height = r.h,
				 .plane = { s->cursor_pic }, .stride = { stride } };
	struct hfe_image dst = sub_image(&s->pic_img, b);
	hfe_convert(&src, &dst);
}

/*
 * Patch frames: a change of a few macroblocks goes out as a patch frame
 * instead of an encoder run. Changes accumulate until the encoder's next
 * frame (patches are non-reference: each carries every change since that
 * frame), so steady changes soon pass the limit and go to the encoder.
 *
 * Patch macroblocks are intra coded (h264_intra.h, ~70 bytes of text each;
 * raw ones 384), while the encoder (quality-based rate, encoder_lavc.c),
 * predicting from its last picture, codes a changed macroblock of text in
 * tens of bytes:
 * a terminal window of numbers scrolled by three lines cost ~8 kB per step
 * as patches and ~0.4 kB through the encoder (bench/desktop-scroll.c). So
 * patches are kept for what costs little either way and is frequent, a
 * blinking text cursor or a clock's digit: at most PATCH_MAX_MBS, and never
 * more than an average frame at the configured bitrate and frame rate.
 */
#define PATCH_MAX_MBS 4
static void patch_budget(struct hfe_stream *s)
{
	uint64_t bitrate = s->p.enc.bitrate ? s->p.enc.bitrate : 4000000u;
	uint64_t fps_num = s->p.enc.fps_num ? s->p.enc.fps_num : 30;
	uint64_t fps_den = s->p.enc.fps_den ? s->p.enc.fps_den : 1;
	uint64_t per_frame = bitrate * fps_den / 8 / fps_num / 384;
	s->patch_max_mbs = per_frame < 1 ? 1 : per_frame > PATCH_MAX_MBS ? PATCH_MAX_MBS
									: (uint32_t)per_frame;
}

static void setup_patches(struct hfe_stream *s, uint32_t w, uint32_t h)
{
	h264_splicer_free(s->splice);
	s->splice = NULL;
	free(s->mb_changed);
	s->mb_changed = NULL;
	free(s->ref_pic);
	s->ref_pic = NULL;
	if (s->p.no_patch_frames || hfe_encoder_codec(s->p.enc.name) != HFE_CODEC_H264)
		return;
	s->mb_w = (w + 15) / 16;
	s->mb_h = (h + 15) / 16;
	uint32_t mbs = s->mb_w * s->mb_h;
	patch_budget(s);
	s->mb_changed = calloc(mbs, 1);
	s->ref_pic = picture_alloc(s->pic_img.stride[0], h);
	if (s->mb_changed && s->ref_pic) {
		hfe_image_wrap(&s->ref_img, s->enc_fmt, w, h, s->pic_img.stride[0], s->ref_pic);
		s->splice = h264_splicer_new();
	}
	s->mb_changed_count = 0;
	s->ref_stale = (struct box){ 0, 0, w, h };
	s->ref_stale_set = true;
}

/* Rows [y0, y0 + h) x columns [x0, x0 + w) of one plane: same bytes? */
static bool same_block(const uint8_t *a, const uint8_t *b, size_t stride, uint32_t x0, uint32_t y0,
		       uint32_t w, uint32_t h)
{
	for (uint32_t y = y0; y < y0 + h; y++)
		if (memcmp(a + y * stride + x0, b + y * stride + x0, w))
			return false;
	return true;
}

/* Has macroblock (mx, my) of pic changed since the encoder's last frame? */
static bool mb_differs(const struct hfe_stream *s, uint32_t mx, uint32_t my)
{
	const struct hfe_image *a = &s->pic_img, *b = &s->ref_img;
	uint32_t x0 = mx * 16, y0 = my * 16;
	uint32_t w = x0 + 16 <= a->width ? 16 : a->width - x0;
	uint32_t h = y0 + 16 <= a->height ? 16 : a->height - y0;
	if (!same_block(a->plane[0], b->plane[0], a->stride[0], x0, y0, w, h))
		return true;
	if (a->format == HFE_FMT_NV12)
		return !same_block(a->plane[1], b->plane[1], a->stride[1], x0, y0 / 2, (w + 1) & ~1u,
				   (h + 1) / 2);
	for (int p = 1; p < 3; p++)
		if (!same_block(a->plane[p], b->plane[p], a->stride[p], x0 / 2, y0 / 2, (w + 1) / 2,
				(h + 1) / 2))
			return true;
	return false;
}

/* Re-evaluate the macroblocks of a damaged box against the encoder's last
 * picture (damage reports are often bigger than the change: fbdev reports
 * whole rows, some guests redraw unchanged pixels). False once more have
 * changed since that frame than a patch frame may carry. */
static bool mark_changed(struct hfe_stream *s, struct box d)
{
	uint32_t mx0 = d.x0 / 16, my0 = d.y0 / 16;
	uint32_t mx1 = (d.x1 + 15) / 16, my1 = (d.y1 + 15) / 16;
	if (mx1 > s->mb_w)
		mx1 = s->mb_w;
	if (my1 > s->mb_h)
		my1 = s->mb_h;
	for (uint32_t my = my0; my < my1; my++) {
		uint8_t *row = s->mb_changed + (size_t)my * s->mb_w;
		for (uint32_t mx = mx0; mx < mx1; mx++) {
			uint8_t now = mb_differs(s, mx, my);
			s->mb_changed_count += (uint32_t)now - row[mx];
			row[mx] = now;
		}
	}
	return s->mb_changed_count <= s->patch_max_mbs;
}

/* After an encoder frame: ref_pic catches up with pic where they may differ. */
static void ref_catch_up(struct hfe_stream *s)
{
	struct box d = s->ref_stale;
	if (s->ref_stale_set && even_box(s, &d)) {
		struct hfe_image from = sub_image(&s->pic_img, d), to = sub_image(&s->ref_img, d);
		hfe_convert(&from, &to); /* same format: a copy */
	}
	s->ref_stale_set = false;
}

static void publish(struct hfe_stream *s, struct hfe_packet *pkt, int64_t damage_ns,
		    uint64_t encode_us, bool patch);

/* Send the change as a patch frame if it is small enough. */
static bool try_patch(struct hfe_stream *s, bool idr, bool damaged, struct box damage,
		      int64_t damage_ns)
{
	uint32_t mb_w, mb_h;
	if (s->splice && damaged)
		grow_box(&s->ref_stale, &s->ref_stale_set, damage);
	if (!s->splice || idr || !damaged || s->enc_inflight ||
	    !h264_splicer_can_patch(s->splice, &mb_w, &mb_h) ||
	    mb_w != s->mb_w || mb_h != s->mb_h || !mark_changed(s, damage))
		return false;
	uint64_t t0 = hfe_mono_ns();
	struct hfe_packet pkt;
	if (h264_splice_patch(s->splice, &s->pic_img, s->mb_changed, &pkt) < 0)
		return false;
	publish(s, &pkt, damage_ns, (hfe_mono_ns() - t0) / 1000u, true);
	return true;
}

/* Worker only, no lock held: opening x264 takes milliseconds. */
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
	s->enc_inflight = 0;
	uint32_t stride = (w + 63u) & ~63u;
	free(s->pic);
	s->pic = picture_alloc(stride, h);
	if (!s->pic) {
		s->ops->close(s->enc);
		s->enc = NULL;
		return -1;
	}
	hfe_image_wrap(&s->pic_img, s->enc_fmt, w, h, stride, s->pic);
	setup_patches(s, w, h);
	hfe_info("scanout stream: %s %ux%u, max %u fps%s", s->ops->name(s->enc), w, h,
		 s->p.max_fps, s->splice ? ", patch frames for small changes" : "");
	return 0;
}

static void publish(struct hfe_stream *s, struct hfe_packet *pkt, int64_t damage_ns,
		    uint64_t encode_us, bool patch)
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
	s->stats.frames_patched += patch;
	if (patch)
		s->stats.patch_us_total += encode_us;
	else
		s->stats.encoder_us_total += encode_us;
	pthread_mutex_unlock(&s->w.lock);
	if (s->p.notify)
		s->p.notify(s->p.opaque);
}

/* An encoder run; its output passes the splicer. */
static void encode(struct hfe_stream *s, bool idr, int64_t damage_ns, uint64_t t0)
{
	struct hfe_err err;
	if (s->splice) { /* the encoder's frame carries every change so far */
		memset(s->mb_changed, 0, (size_t)s->mb_w * s->mb_h);
		s->mb_changed_count = 0;
		ref_catch_up(s);
	}
	if (s->ops->encode(s->enc, &s->pic_img, s->index++, idr, &err) < 0) {
		hfe_warn("scanout stream: encode failed: %s", err.msg);
		return;
	}
	s->enc_inflight++;
	struct hfe_packet pkt;
	while (s->ops->receive(s->enc, &pkt, &err) == 1) {
		s->enc_inflight--;
		if (s->splice && h264_splice_encoder_au(s->splice, &pkt) < 0) {
			hfe_packet_release(&pkt);
			hfe_warn("scanout stream: out of memory");
			continue;
		}
		publish(s, &pkt, damage_ns, (hfe_mono_ns() - t0) / 1000u, false);
	}
}

/* A new target bitrate (w.lock held; dropped around the encoder call). In
 * place if the encoder can, else the encoder is reopened at the new rate. */
static void apply_bitrate(struct hfe_stream *s)
{
	s->bitrate_changed = false;
	uint32_t b = s->bitrate_want ? s->bitrate_want : s->base_bitrate;
	if (b == s->p.enc.bitrate)
		return;
	s->p.enc.bitrate = b;
	if (!s->enc)
		return; /* opened at the new rate */
	pthread_mutex_unlock(&s->w.lock);
	bool in_place = s->ops->set_bitrate && s->ops->set_bitrate(s->enc, b) == 0;
	if (in_place && s->splice)
		patch_budget(s);
	pthread_mutex_lock(&s->w.lock);
	if (!in_place)
		s->resized = true;
	hfe_info("scanout stream: bitrate %u bit/s%s", b, in_place ? "" : " (encoder reopened)");
}

/* The source's picture is no longer pending. Without w.lock: the callback
 * may take the source's own locks. */
static void picture_taken(struct hfe_stream *s)
{
	if (s->p.picture_taken)
		s->p.picture_taken(s->p.opaque);
}

/* Something to encode (w.lock held). */
static bool encode_ready(const struct hfe_stream *s)
{
	return s->active && s->fb && !s->blank && s->consumers && (s->damaged || s->want_idr);
}

static void *worker(void *arg)
{
	struct hfe_stream *s = arg;
	uint64_t frame_ns = 1000000000u / s->p.max_fps;

	pthread_mutex_lock(&s->w.lock);
	for (;;) {
		while (!s->w.stop && !encode_ready(s) && !s->cursor_pending)
			pthread_cond_wait(&s->w.cond, &s->w.lock);
		if (s->w.stop)
			break;

		/* Cursor changes: the owner hears of them at most HFE_CURSOR_RATE
		 * times a second and then reads the latest. */
		uint64_t now = hfe_mono_ns();
		uint64_t cursor_due = s->cursor_notified_ns + 1000000000u / HFE_CURSOR_RATE;
		if (s->cursor_pending && now >= cursor_due) {
			s->cursor_pending = false;
			s->cursor_notified_ns = now;
			pthread_mutex_unlock(&s->w.lock);
			if (s->p.notify)
				s->p.notify(s->p.opaque);
			pthread_mutex_lock(&s->w.lock);
			continue;
		}
		if (!encode_ready(s)) {
			hfe_worker_wait_until(&s->w, cursor_due);
			continue;
		}

		/* Pacing: let damage accumulate until the next slot (newest wins). */
		uint64_t due = s->last_encode_ns + frame_ns;
		if (s->last_encode_ns && now < due) {
			hfe_worker_wait_until(&s->w, s->cursor_pending && cursor_due < due ? cursor_due
											   : due);
			continue;
		}

		if (s->bitrate_changed)
			apply_bitrate(s);
		if (s->resized || !s->enc) {
			s->resized = false;
			uint32_t w = s->width, h = s->height;
			pthread_mutex_unlock(&s->w.lock);
			int rc = reopen_encoder(s, w, h);
			pthread_mutex_lock(&s->w.lock);
			if (rc < 0) {
				s->active = false; /* until the next resize */
				pthread_mutex_unlock(&s->w.lock);
				picture_taken(s);
				pthread_mutex_lock(&s->w.lock);
				continue;
			}
			if (s->resized)
				continue; /* resized again meanwhile: start over */
			s->damage = (struct box){ 0, 0, w, h };
			s->damaged = true;
			s->want_idr = true;
		}
		bool idr = s->want_idr, damaged = s->damaged, composite = s->cursor_composite;
		struct box damage = s->damage;
		int64_t damage_ns = damaged ? s->damage_ns : (int64_t)now;
		s->damaged = false;
		s->want_idr = false;
		pthread_mutex_unlock(&s->w.lock);
		if (damaged)
			picture_taken(s);

		/* Sources may add damage meanwhile: it is encoded next time. A
		 * resize meanwhile means this picture is stale: skip it. */
		bool stale = false;
		pthread_mutex_lock(&s->fb_lock);
		if (s->width != s->enc_w || s->height != s->enc_h || !s->fb)
			stale = true;
		else if (damaged) {
			convert_damage(s, damage);
			if (composite)
				composite_cursor(s, damage);
		}
		pthread_mutex_unlock(&s->fb_lock);
		if (stale) {
			pthread_mutex_lock(&s->w.lock);
			continue;
		}

		uint64_t t0 = hfe_mono_ns();
		s->last_encode_ns = t0;
		if (!try_patch(s, idr, damaged, damage, damage_ns))
			encode(s, idr, damage_ns, t0);
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
	s->base_bitrate = p->enc.bitrate;
	s->ops = p->ops ? p->ops : &hfe_encoder_lavc_desktop;
	s->cursor_composite = true;
	s->cursor_pic = malloc((size_t)(HFE_CURSOR_MAX + 2) * (HFE_CURSOR_MAX + 2) * 4);
	if (!s->cursor_pic) {
		hfe_err_set(err, HFE_ERR_INTERNAL, "out of memory");
		free(s);
		return NULL;
	}
	hfe_cursor_init(&s->cursor);
	pthread_mutex_init(&s->fb_lock, NULL);
	if (hfe_worker_start(&s->w, worker, s, "stream", err) < 0) {
		pthread_mutex_destroy(&s->fb_lock);
		hfe_cursor_destroy(&s->cursor);
		free(s->cursor_pic);
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
	h264_splicer_free(s->splice);
	free(s->mb_changed);
	free(s->ref_pic);
	free(s->pic);
	free(s->fb);
	free(s->cursor_pic);
	hfe_cursor_destroy(&s->cursor);
	pthread_mutex_destroy(&s->fb_lock);
	free(s);
}
