/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Pull session: an ordered job queue in front of one encoder running on the
 * session's worker thread. The I/O side submits validated requests and
 * collects results; the worker converts, encodes and keeps replies in request
 * order. All shared state is under one mutex; the encoder itself is touched
 * only by the worker.
 */
#include "hfe/session.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hfe/image.h"
#include "hfe/log.h"
#include "worker.h"

enum job_kind { JOB_FRAME, JOB_CONFIG, JOB_ERROR };

struct job {
	enum job_kind kind;
	uint16_t session_id;
	struct hfe_frame_request frame;
	const uint8_t *pixels;
	void (*release)(void *opaque); /* gives the pixels back */
	void *opaque;
	bool force_keyframe;
	struct hfe_config_req config;
	bool reply;
	int32_t code;
	char msg[HFE_ERROR_MSG_LEN];
};

/* A frame handed to the encoder whose packet has not come out yet. */
struct pending {
	int64_t index;
	int64_t pts;
	uint16_t session_id;
	uint64_t t_start_ns;
};

#define RING HFE_SESSION_MAX_INFLIGHT

struct hfe_session {
	struct hfe_session_params p;
	struct hfe_worker w;

	/* under lock */
	struct job jobs[RING];
	unsigned job_head, job_count;
	struct hfe_session_result results[RING];
	unsigned res_head, res_count;
	unsigned working; /* jobs taken by the worker and not yet turned into results */
	struct hfe_stats stats;
	uint64_t encode_us_total;
	bool detached; /* the owner let go: the worker frees the session */

	/* worker only */
	const struct hfe_encoder_ops *ops;
	struct hfe_encoder *enc;
	struct hfe_encoder_params want; /* defaults with CONFIG_REQ applied */
	uint32_t enc_width, enc_height, enc_input;
	uint8_t *conv_buf;
	size_t conv_size;
	struct pending pend[RING];
	unsigned pend_head, pend_count;
	int64_t next_index;
};

/* Detached sessions still running (hfe_session_wait_detached). */
static pthread_mutex_t detached_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t detached_cond = PTHREAD_COND_INITIALIZER;
static unsigned detached_live;

/* ---- results (worker side) ---- */

/* Tell the owner a result or a free slot is there (lock held, so that once
 * hfe_session_detach has set stop no notify can still be on its way). */
static void notify_locked(struct hfe_session *s)
{
	if (s->p.notify && !s->w.stop)
		s->p.notify(s->p.opaque);
}

/* Publish a result for a job the worker had taken; the job leaves `working`
 * and enters `results` atomically so the in-flight count never dips. */
static void push_result(struct hfe_session *s, const struct hfe_session_result *r)
{
	pthread_mutex_lock(&s->w.lock);
	/* Capacity is guaranteed: results + jobs + working <= max_inflight <= RING. */
	s->results[(s->res_head + s->res_count) % RING] = *r;
	s->res_count++;
	s->working--;
	notify_locked(s);
	pthread_mutex_unlock(&s->w.lock);
}

static void push_error(struct hfe_session *s, uint16_t sid, int32_t code, const char *msg)
{
	struct hfe_session_result r = { .kind = HFE_RESULT_ERROR, .session_id = sid };
	r.error.code = code;
	snprintf(r.error.message, sizeof(r.error.message), "%s", msg);
	push_result(s, &r);
}

/* Pair encoder output with pending frames, oldest first. */
static int collect_packets(struct hfe_session *s)
{
	struct hfe_err err;
	struct hfe_packet pkt;
	int rc;

	while ((rc = s->ops->receive(s->enc, &pkt, &err)) == 1) {
		/* Frames older than this packet that produced nothing were dropped
		 * by the encoder: every request still gets an answer. */
		while (s->pend_count && s->pend[s->pend_head].index < pkt.frame_index) {
			struct pending *d = &s->pend[s->pend_head];
			s->pend_head = (s->pend_head + 1) % RING;
			s->pend_count--;
			pthread_mutex_lock(&s->w.lock);
			s->stats.frames_dropped++;
			pthread_mutex_unlock(&s->w.lock);
			push_error(s, d->session_id, HFE_ERR_ENCODE_FAILED,
				   "the encoder dropped this frame");
		}
		if (!s->pend_count || s->pend[s->pend_head].index != pkt.frame_index) {
			hfe_packet_release(&pkt); /* not ours (cannot happen with sane encoders) */
			continue;
		}
		struct pending *d = &s->pend[s->pend_head];
		s->pend_head = (s->pend_head + 1) % RING;
		s->pend_count--;

		uint64_t us = (hfe_mono_ns() - d->t_start_ns) / 1000u;
		struct hfe_session_result r = { .kind = HFE_RESULT_FRAME,
						.session_id = d->session_id };
		r.frame.pts = d->pts;
		r.frame.dts = d->pts; /* no B-frames: decode order = presentation order */
		r.frame.is_keyframe = pkt.keyframe;
		r.frame.nal_count = 1;
		r.packet = pkt;

		pthread_mutex_lock(&s->w.lock);
		s->stats.frames_encoded++;
		s->stats.keyframes += pkt.keyframe;
		s->encode_us_total += us;
		if (us > s->stats.encode_us_max)
			s->stats.encode_us_max = (uint32_t)(us > UINT32_MAX ? UINT32_MAX : us);
		pthread_mutex_unlock(&s->w.lock);
		push_result(s, &r);
	}
	if (rc < 0)
		hfe_warn("session: encoder receive failed: %s", err.msg);
	return rc;
}

/* Flush frames still inside the encoder (results keep request order), then
 * close it; the next frame opens a fresh stream starting with an IDR. */
static void close_encoder(struct hfe_session *s)
{
	if (!s->enc)
		return;
	struct hfe_err err;
	if (s->pend_count && s->ops->drain(s->enc, &err) == 0)
		collect_packets(s);
	while (s->pend_count) {
		struct pending *d = &s->pend[s->pend_head];
		s->pend_head = (s->pend_head + 1) % RING;
		s->pend_count--;
		pthread_mutex_lock(&s->w.lock);
		s->stats.frames_dropped++;
		pthread_mutex_unlock(&s->w.lock);
		push_error(s, d->session_id, HFE_ERR_ENCODE_FAILED,
			   "frame lost while the encoder was flushed");
	}
	s->ops->close(s->enc);
	s->enc = NULL;
}

static int open_encoder(struct hfe_session *s, const struct hfe_frame_request *f,
			struct hfe_err *err)
{
	struct hfe_encoder_params ep = s->want;
	ep.width = f->width;
	ep.height = f->height;
	uint32_t hint = f->format == HFE_FMT_NV12 ? HFE_FMT_NV12 : HFE_FMT_I420;
	if (s->ops->open(&s->enc, &ep, hint, err) < 0) {
		s->enc = NULL;
		return -1;
	}
	s->enc_width = f->width;
	s->enc_height = f->height;
	s->enc_input = s->ops->input_format(s->enc);

	/* Conversion target, 64-byte aligned rows for the SIMD paths. */
	uint32_t stride = (f->width + 63u) & ~63u;
	size_t need = (size_t)stride * f->height * 3 / 2 + 64;
	if (need > s->conv_size) {
		free(s->conv_buf);
		s->conv_buf = aligned_alloc(64, (need + 63) & ~(size_t)63);
		s->conv_size = s->conv_buf ? need : 0;
		if (!s->conv_buf) {
			hfe_err_set(err, HFE_ERR_INTERNAL, "out of memory for a conversion buffer");
			s->ops->close(s->enc);
			s->enc = NULL;
			return -1;
		}
	}
	hfe_info("session: %s %ux%u, %u bit/s, %u/%u fps, gop %u", s->ops->name(s->enc),
		 f->width, f->height, ep.bitrate, ep.fps_num, ep.fps_den, ep.gop);
	return 0;
}

static void do_frame(struct hfe_session *s, struct job *j)
{
	const struct hfe_frame_request *f = &j->frame;
	struct hfe_err err = { 0 };
	uint64_t t0 = hfe_mono_ns();

	if (s->enc && (f->width != s->enc_width || f->height != s->enc_height))
		close_encoder(s); /* resolution change: a new stream, IDR first */
	if (!s->enc && open_encoder(s, f, &err) < 0)
		goto fail;

	struct hfe_image src, conv;
	hfe_image_wrap(&src, f->format, f->width, f->height, f->stride, j->pixels);
	const struct hfe_image *in = &src;
	if (src.format != s->enc_input) {
		uint32_t stride = (f->width + 63u) & ~63u;
		hfe_image_wrap(&conv, s->enc_input, f->width, f->height, stride, s->conv_buf);
		if (hfe_convert(&src, &conv) < 0) {
			hfe_err_set(&err, HFE_ERR_UNSUPPORTED, "cannot convert this pixel format");
			goto fail;
		}
		in = &conv;
	}

	int64_t index = s->next_index++;
	if (s->ops->encode(s->enc, in, index, j->force_keyframe, &err) < 0)
		goto fail;
	s->pend[(s->pend_head + s->pend_count) % RING] =
		(struct pending){ index, f->pts, j->session_id, t0 };
	s->pend_count++;
	collect_packets(s);
	return;
fail:
	hfe_warn("session: frame pts %lld: %s", (long long)f->pts, err.msg);
	push_error(s, j->session_id, err.code ? err.code : HFE_ERR_ENCODE_FAILED, err.msg);
}

static void do_config(struct hfe_session *s, struct job *j)
{
	const struct hfe_config_req *c = &j->config;
	struct hfe_encoder_params old = s->want;

	if (c->bitrate)
		s->want.bitrate = c->bitrate;
	if (c->fps_num) {
		s->want.fps_num = c->fps_num;
		s->want.fps_den = c->fps_den;
	}
	if (c->profile)
		s->want.profile = c->profile;
	s->want.level = c->level;

	if (s->enc) {
		bool size_changed = c->width && (c->width != s->enc_width || c->height != s->enc_height);
		bool restart = size_changed || old.fps_num != s->want.fps_num ||
			       old.fps_den != s->want.fps_den || old.profile != s->want.profile ||
			       old.level != s->want.level;
		if (!restart && old.bitrate != s->want.bitrate &&
		    s->ops->set_bitrate(s->enc, s->want.bitrate) < 0)
			restart = true;
		if (restart)
			close_encoder(s);
	}

	if (!j->reply) {
		pthread_mutex_lock(&s->w.lock);
		s->working--;
		/* No result, but a slot freed: the owner may be waiting for room. */
		notify_locked(s);
		pthread_mutex_unlock(&s->w.lock);
		return;
	}
	struct hfe_session_result r = { .kind = HFE_RESULT_CONFIG, .session_id = j->session_id };
	r.config.width = s->enc ? s->enc_width : c->width;
	r.config.height = s->enc ? s->enc_height : c->height;
	r.config.bitrate = s->want.bitrate;
	r.config.fps_num = s->want.fps_num;
	r.config.fps_den = s->want.fps_den;
	r.config.profile = s->want.profile;
	r.config.level = s->want.level;
	r.config.realtime = c->realtime;
	snprintf(r.config.encoder, sizeof(r.config.encoder), "%s",
		 s->enc ? s->ops->name(s->enc) : s->want.name);
	push_result(s, &r);
}

/* Everything but the worker: queued jobs, results, the encoder; then s. */
static void destroy(struct hfe_session *s)
{
	for (unsigned i = 0; i < s->job_count; i++) {
		struct job *j = &s->jobs[(s->job_head + i) % RING];
		if (j->release)
			j->release(j->opaque);
	}
	for (unsigned i = 0; i < s->res_count; i++)
		hfe_session_result_release(&s->results[(s->res_head + i) % RING]);
	if (s->enc)
		s->ops->close(s->enc);
	free(s->conv_buf);
	free(s);
}

static void *worker(void *arg)
{
	struct hfe_session *s = arg;

	pthread_mutex_lock(&s->w.lock);
	for (;;) {
		while (!s->w.stop && s->job_count == 0)
			pthread_cond_wait(&s->w.cond, &s->w.lock);
		if (s->w.stop)
			break;
		struct job j = s->jobs[s->job_head];
		s->job_head = (s->job_head + 1) % RING;
		s->job_count--;
		s->working++;
		pthread_mutex_unlock(&s->w.lock);

		switch (j.kind) {
		case JOB_FRAME:
			do_frame(s, &j);
			break;
		case JOB_CONFIG:
			do_config(s, &j);
			break;
		case JOB_ERROR:
			/* Earlier frames still inside a delayed encoder answer first. */
			if (s->pend_count)
				close_encoder(s);
			push_error(s, j.session_id, j.code, j.msg);
			break;
		}
		if (j.release)
			j.release(j.opaque);
		pthread_mutex_lock(&s->w.lock);
	}
	bool detached = s->detached;
	pthread_mutex_unlock(&s->w.lock);
	if (detached) {
		hfe_worker_destroy(&s->w);
		destroy(s);
		pthread_mutex_lock(&detached_lock);
		detached_live--;
		pthread_cond_broadcast(&detached_cond);
		pthread_mutex_unlock(&detached_lock);
	}
	return NULL;
}

/* ---- owner side ---- */

struct hfe_session *hfe_session_new(const struct hfe_session_params *p, struct hfe_err *err)
{
	if (p->max_inflight < 1 || p->max_inflight > HFE_SESSION_MAX_INFLIGHT) {
		hfe_err_set(err, HFE_ERR_INTERNAL, "max_inflight %u out of range 1..%u",
			    p->max_inflight, HFE_SESSION_MAX_INFLIGHT);
		return NULL;
	}
	struct hfe_session *s = calloc(1, sizeof(*s));
	if (!s) {
		hfe_err_set(err, HFE_ERR_INTERNAL, "out of memory");
		return NULL;
	}
	s->p = *p;
	s->ops = p->ops ? p->ops : &hfe_encoder_lavc;
	s->want = p->enc;
	if (!s->want.name[0])
		snprintf(s->want.name, sizeof(s->want.name), "%s", HFE_DEFAULT_ENCODER);
	if (hfe_worker_start(&s->w, worker, s, "encoder", err) < 0) {
		free(s);
		return NULL;
	}
	return s;
}

void hfe_session_free(struct hfe_session *s)
{
	if (!s)
		return;
	hfe_worker_stop(&s->w);
	destroy(s);
}

void hfe_session_detach(struct hfe_session *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&detached_lock);
	detached_live++;
	pthread_mutex_unlock(&detached_lock);
	pthread_t thread = s->w.thread;
	pthread_mutex_lock(&s->w.lock);
	s->detached = true; /* before stop: the worker reads it once stopped */
	pthread_mutex_unlock(&s->w.lock);
	hfe_worker_signal_stop(&s->w);
	/* From here on the worker owns s (it may already be gone). */
	pthread_detach(thread);
}

void hfe_session_wait_detached(void)
{
	pthread_mutex_lock(&detached_lock);
	while (detached_live)
		pthread_cond_wait(&detached_cond, &detached_lock);
	pthread_mutex_unlock(&detached_lock);
}

static unsigned inflight_locked(const struct hfe_session *s)
{
	return s->job_count + s->working + s->res_count;
}

unsigned hfe_session_inflight(struct hfe_session *s)
{
	pthread_mutex_lock(&s->w.lock);
	unsigned n = inflight_locked(s);
	pthread_mutex_unlock(&s->w.lock);
	return n;
}

bool hfe_session_can_submit(struct hfe_session *s)
{
	return hfe_session_inflight(s) < s->p.max_inflight;
}

static int submit(struct hfe_session *s, const struct job *j)
{
	pthread_mutex_lock(&s->w.lock);
	if (inflight_locked(s) >= s->p.max_inflight) {
		pthread_mutex_unlock(&s->w.lock);
		return -1;
	}
	s->jobs[(s->job_head + s->job_count) % RING] = *j;
	s->job_count++;
	if (j->kind == JOB_FRAME)
		s->stats.frames_received++;
	pthread_cond_signal(&s->w.cond);
	pthread_mutex_unlock(&s->w.lock);
	return 0;
}

int hfe_session_submit_frame(struct hfe_session *s, uint16_t session_id,
			     const struct hfe_frame_request *fr, const uint8_t *pixels,
			     void (*release)(void *opaque), void *opaque, bool force_keyframe)
{
	struct job j = { .kind = JOB_FRAME, .session_id = session_id, .frame = *fr,
			 .pixels = pixels, .release = release, .opaque = opaque,
			 .force_keyframe = force_keyframe || fr->force_keyframe };
	if (submit(s, &j) < 0) {
		if (release)
			release(opaque);
		return -1;
	}
	return 0;
}

int hfe_session_submit_config(struct hfe_session *s, uint16_t session_id,
			      const struct hfe_config_req *cfg, bool reply_v2)
{
	struct job j = { .kind = JOB_CONFIG, .session_id = session_id, .config = *cfg,
			 .reply = reply_v2 };
	return submit(s, &j);
}

int hfe_session_submit_error(struct hfe_session *s, uint16_t session_id, int32_t code,
			     const char *msg)
{
	struct job j = { .kind = JOB_ERROR, .session_id = session_id, .code = code };
	snprintf(j.msg, sizeof(j.msg), "%s", msg);
	return submit(s, &j);
}

int hfe_session_poll(struct hfe_session *s, struct hfe_session_result *r)
{
	pthread_mutex_lock(&s->w.lock);
	if (!s->res_count) {
		pthread_mutex_unlock(&s->w.lock);
		return 0;
	}
	*r = s->results[s->res_head];
	s->res_head = (s->res_head + 1) % RING;
	s->res_count--;
	pthread_mutex_unlock(&s->w.lock);
	return 1;
}

void hfe_session_result_release(struct hfe_session_result *r)
{
	if (r->kind == HFE_RESULT_FRAME)
		hfe_packet_release(&r->packet);
	r->kind = HFE_RESULT_ERROR; /* releasing twice is harmless */
}

void hfe_session_stats(struct hfe_session *s, struct hfe_stats *st)
{
	pthread_mutex_lock(&s->w.lock);
	*st = s->stats;
	st->encode_us_avg = s->stats.frames_encoded
				    ? (uint32_t)(s->encode_us_total / s->stats.frames_encoded)
				    : 0;
	st->inflight = inflight_locked(s);
	pthread_mutex_unlock(&s->w.lock);
}
