/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-pull: what does the daemon's transport cost in pull mode?
 *
 * The same pre-generated frames are encoded with the same encoder settings
 * three ways in one run:
 *   in-process  hfe_session (convert + encode on its worker), no transport;
 *   unix        through a helix-frame-export daemon over a unix socket;
 *   tcp         the same daemon over TCP loopback.
 * Each mode keeps the same number of frames in flight. We report frames/s and
 * per-frame latency (request start -> reply in hand) and compare them with
 * the targets of DESIGN.md. A missed target is a result, not an error: the
 * exit status is non-zero only when something could not be measured.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <libavutil/log.h>

#include "hfe/client.h"
#include "hfe/encoder.h"
#include "hfe/image.h"
#include "hfe/log.h"
#include "hfe/session.h"
#include "hfe/wire.h"

#define IO_TIMEOUT_MS 30000
#define RING 64 /* >= HFE_SESSION_MAX_INFLIGHT: send timestamps by frame */

/* DESIGN.md targets. */
#define TARGET_RATIO 0.9
#define TARGET_ADDED_P99_UNIX_MS 1.0
#define TARGET_ADDED_P99_TCP_MS 2.0

enum mode { MODE_INPROC, MODE_UNIX, MODE_TCP, MODE_COUNT };
static const char *const mode_name[MODE_COUNT] = { "in-process", "unix", "tcp" };

struct opts {
	uint32_t width, height;
	uint32_t format;
	unsigned frames;
	unsigned warmup;
	unsigned inflight;
	unsigned distinct;
	unsigned rounds;
	bool modes[MODE_COUNT];
	const char *daemon;
	bool json;
	struct hfe_encoder_params enc; /* name, bitrate, fps, gop, preset, tune, threads */
};

/* The pre-generated input. */
struct frames {
	uint8_t **buf;
	unsigned count;
	size_t size;     /* bytes per frame as sent on the wire */
	uint32_t stride; /* plane 0 */
};

/* One mode, accumulated over rounds. */
struct result {
	bool ran;
	double fps[64];   /* per round */
	double *lat_ms;   /* frames x rounds, pooled */
	size_t n_lat;
	double p50_r[64], p99_r[64]; /* per round */
	double p50, p99, pmax, fps_median; /* medians over rounds; max of all */
	double pooled_p50, pooled_p99;
	uint64_t bytes;   /* encoded bytes, last round */
	uint64_t hash;    /* of the access units, last round */
	unsigned keyframes;
	double cpu_ms;    /* all processes involved, all rounds */
	double cpu_daemon_ms;
	double faults;    /* minor page faults, all processes, all rounds */
	double faults_daemon;
};

/* ---- small helpers ---- */

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("bench-pull: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static uint32_t mix32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}

/* Order-sensitive digest of the bitstream (to compare modes, not for security). */
static uint64_t digest(uint64_t h, const uint8_t *p, size_t n)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x100000001b3ull;
		h ^= h >> 29;
	}
	for (; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h ^ n;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double percentile(const double *v, size_t n, double q)
{
	if (!n)
		return NAN;
	size_t k = (size_t)ceil(q * (double)n);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

/* CPU time (ms) and minor page faults of this process, all threads. */
static void usage_self(double *cpu_ms, double *minflt)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	*cpu_ms = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
		  (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
	*minflt = (double)ru.ru_minflt;
}

/* The same for another process, from /proc/PID/stat; 0s if unreadable. */
static void usage_pid(pid_t pid, double *cpu_ms, double *minflt)
{
	char path[64], buf[1024];
	*cpu_ms = *minflt = 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* the command name may contain anything */
	unsigned long flt, ut, st;
	/* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %lu %*u %*u %*u %lu %lu", &flt, &ut,
			 &st) != 3)
		return;
	*cpu_ms = (double)(ut + st) * 1e3 / (double)sysconf(_SC_CLK_TCK);
	*minflt = (double)flt;
}

/* A "Vm...:" line of /proc/PID/status in KiB; -1 if missing. */
static long proc_status_kib(pid_t pid, const char *key)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	long v = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			v = strtol(line + klen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* ---- frames ---- */

/* Bounce p back and forth in [0, span]. */
static uint32_t bounce(uint32_t p, uint32_t span)
{
	if (!span)
		return 0;
	p %= 2 * span;
	return p <= span ? p : 2 * span - p;
}

static void fill_rect(uint8_t *img, uint32_t stride, uint32_t x0, uint32_t y0, uint32_t w,
		      uint32_t h, uint32_t bgrx)
{
	for (uint32_t y = y0; y < y0 + h; y++) {
		uint8_t *row = img + (size_t)y * stride + (size_t)x0 * 4;
		for (uint32_t x = 0; x < w; x++)
			memcpy(row + 4 * x, &bgrx, 4);
	}
}

/*
 * Desktop-like moving content in B,G,R,x bytes: a scrolling gradient, a
 * "document" of pseudo-glyphs scrolling up, a noisy "video" rectangle and a
 * few boxes bouncing around. Everything moves every frame, so the encoder
 * has real work (motion search, residuals) on every frame.
 */
static void gen_frame(uint8_t *img, uint32_t stride, uint32_t w, uint32_t h, unsigned t)
{
	/* Background gradient, drifting right and down. */
	for (uint32_t y = 0; y < h; y++) {
		uint8_t *row = img + (size_t)y * stride;
		uint8_t g = (uint8_t)((y + 3 * t) >> 2);
		for (uint32_t x = 0; x < w; x++) {
			row[4 * x + 0] = (uint8_t)((x + y + 8 * t) >> 3);
			row[4 * x + 1] = g;
			row[4 * x + 2] = (uint8_t)((x + 6 * t) >> 2);
			row[4 * x + 3] = 0xff;
		}
	}

	/* Document with text lines scrolling up 3 px per frame. */
	uint32_t dx0 = w / 16, dx1 = w / 2, dy0 = h / 8, dy1 = h - h / 8;
	for (uint32_t y = dy0; y < dy1; y++) {
		uint8_t *row = img + (size_t)y * stride;
		uint32_t yy = y - dy0 + 3 * t;
		uint32_t line = yy / 18, ly = yy % 18;
		uint32_t len = 10 + mix32(line * 7919u) % 60; /* ragged right margin */
		for (uint32_t x = dx0; x < dx1; x++) {
			uint32_t xx = x - dx0, col = xx / 9, cx = xx % 9;
			bool ink = false;
			if (ly >= 3 && ly < 15 && cx < 7 && col < len) {
				uint32_t glyph = mix32(line * 131u + col);
				if (glyph % 7) /* some cells are spaces */
					ink = (mix32(glyph ^ ((ly / 2) * 8 + cx)) & 3) == 0;
			}
			uint8_t v = ink ? 30 : 242;
			row[4 * x + 0] = v;
			row[4 * x + 1] = v;
			row[4 * x + 2] = ink ? 30 : 238;
		}
	}

	/* "Video": moving bands plus grain. */
	uint32_t vw = w / 5, vh = h / 5, vx0 = w - vw - w / 20, vy0 = h - vh - h / 20;
	for (uint32_t y = 0; y < vh; y++) {
		uint8_t *row = img + (size_t)(vy0 + y) * stride + (size_t)vx0 * 4;
		for (uint32_t x = 0; x < vw; x++) {
			uint32_t n = mix32((y * 4099u + x) ^ (t * 0x9e3779b9u)) & 31;
			uint32_t base = ((x * 3 + y * 2 + 11 * t) & 255) / 2 + 40;
			row[4 * x + 0] = (uint8_t)(base + n);
			row[4 * x + 1] = (uint8_t)(base / 2 + n);
			row[4 * x + 2] = (uint8_t)(255 - base - n);
		}
	}

	/* Bouncing boxes ("windows" being dragged). */
	for (uint32_t b = 0; b < 5; b++) {
		uint32_t bw = w / 8 + b * w / 64, bh = h / 8 + b * h / 48;
		if (bw + 8 >= w || bh + 8 >= h)
			continue;
		uint32_t x = bounce(b * w / 5 + t * (7 + 3 * b), w - bw);
		uint32_t y = bounce(b * h / 7 + t * (5 + 2 * b), h - bh);
		uint32_t colour = mix32(b + 1) | 0xff000000u;
		fill_rect(img, stride, x, y, bw, bh, 0xff202020u);
		fill_rect(img, stride, x + 4, y + 4, bw - 8, bh - 8, colour);
	}
}

static void swap_rb(uint8_t *img, uint32_t stride, uint32_t w, uint32_t h)
{
	for (uint32_t y = 0; y < h; y++) {
		uint8_t *row = img + (size_t)y * stride;
		for (uint32_t x = 0; x < w; x++) {
			uint8_t b = row[4 * x];
			row[4 * x] = row[4 * x + 2];
			row[4 * x + 2] = b;
		}
	}
}

static bool is_rgb(uint32_t f)
{
	return f == HFE_FMT_XRGB8888 || f == HFE_FMT_ARGB8888 || f == HFE_FMT_XBGR8888 ||
	       f == HFE_FMT_ABGR8888;
}

static int frames_make(const struct opts *o, struct frames *fr)
{
	struct hfe_limits lim;
	struct hfe_err err;
	uint64_t size;

	hfe_limits_default(&lim);
	fr->stride = is_rgb(o->format) ? o->width * 4 : o->width;
	if (hfe_frame_size(o->format, o->width, o->height, fr->stride, &lim, &size, &err) < 0) {
		note("bad frame geometry: %s", err.msg);
		return -1;
	}
	fr->size = (size_t)size;
	fr->count = o->distinct;
	fr->buf = calloc(fr->count, sizeof(*fr->buf));
	uint32_t rgb_stride = o->width * 4;
	uint8_t *rgb = is_rgb(o->format) ? NULL : malloc((size_t)rgb_stride * o->height);
	if (!fr->buf || (!is_rgb(o->format) && !rgb)) {
		free(rgb);
		note("out of memory");
		return -1;
	}
	for (unsigned i = 0; i < fr->count; i++) {
		fr->buf[i] = malloc(fr->size);
		if (!fr->buf[i]) {
			free(rgb);
			note("out of memory for %u frames of %zu bytes", fr->count, fr->size);
			return -1;
		}
		if (is_rgb(o->format)) {
			gen_frame(fr->buf[i], fr->stride, o->width, o->height, i);
			if (o->format == HFE_FMT_XBGR8888 || o->format == HFE_FMT_ABGR8888)
				swap_rb(fr->buf[i], fr->stride, o->width, o->height);
			continue;
		}
		struct hfe_image src, dst;
		gen_frame(rgb, rgb_stride, o->width, o->height, i);
		hfe_image_wrap(&src, HFE_FMT_XRGB8888, o->width, o->height, rgb_stride, rgb);
		hfe_image_wrap(&dst, o->format, o->width, o->height, fr->stride, fr->buf[i]);
		if (hfe_convert(&src, &dst) < 0) {
			free(rgb);
			note("cannot convert test frames to the requested format");
			return -1;
		}
	}
	free(rgb);
	return 0;
}

static void frames_free(struct frames *fr)
{
	for (unsigned i = 0; fr->buf && i < fr->count; i++)
		free(fr->buf[i]);
	free(fr->buf);
}

/* ---- per-run bookkeeping shared by the modes ---- */

struct run {
	const struct opts *o;
	const struct frames *fr;
	struct result *res;
	int64_t frame_ns;
	double t_start[RING];
	uint64_t hash;
	uint64_t bytes;
	unsigned keyframes;
};

static void frame_req(const struct run *r, unsigned k, struct hfe_frame_request *fr)
{
	memset(fr, 0, sizeof(*fr));
	fr->width = r->o->width;
	fr->height = r->o->height;
	fr->format = r->o->format;
	fr->stride = r->fr->stride;
	fr->pts = (int64_t)k * r->frame_ns;
	fr->duration = r->frame_ns;
}

static const uint8_t *frame_pixels(const struct run *r, unsigned k)
{
	return r->fr->buf[k % r->fr->count];
}

/* A reply for frame k arrived at time t. lat: where measured latencies go
 * (NULL during warm-up). Returns -1 on a mismatch. */
static int account(struct run *r, unsigned k, double t, int64_t pts, bool key,
		   const uint8_t *au, size_t au_len, double *lat, unsigned idx)
{
	if (pts != (int64_t)k * r->frame_ns) {
		note("reply out of order: pts %" PRId64 ", expected frame %u", pts, k);
		return -1;
	}
	if (!au_len) {
		note("frame %u: empty access unit", k);
		return -1;
	}
	if (lat)
		lat[idx] = t - r->t_start[k % RING];
	r->hash = digest(r->hash, au, au_len);
	r->bytes += au_len;
	r->keyframes += key;
	return 0;
}

/* ---- (a) in-process ---- */

struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned long seq;
};

static void inproc_notify(void *opaque)
{
	struct waiter *w = opaque;
	pthread_mutex_lock(&w->lock);
	w->seq++;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* Block until the session has a result. */
static int inproc_next(struct hfe_session *s, struct waiter *w, struct hfe_session_result *res)
{
	for (;;) {
		pthread_mutex_lock(&w->lock);
		unsigned long seen = w->seq;
		pthread_mutex_unlock(&w->lock);
		if (hfe_session_poll(s, res) == 1)
			return 0;
		pthread_mutex_lock(&w->lock);
		while (w->seq == seen) {
			struct timespec dl;
			clock_gettime(CLOCK_REALTIME, &dl);
			dl.tv_sec += IO_TIMEOUT_MS / 1000;
			if (pthread_cond_timedwait(&w->cond, &w->lock, &dl) == ETIMEDOUT) {
				pthread_mutex_unlock(&w->lock);
				note("in-process: no result within %d ms", IO_TIMEOUT_MS);
				return -1;
			}
		}
		pthread_mutex_unlock(&w->lock);
	}
}

/* Frames [first, first + count) with at most o->inflight outstanding. */
static int inproc_phase(struct run *r, struct hfe_session *s, struct waiter *w, unsigned first,
			unsigned count, double *lat)
{
	unsigned sent = 0, got = 0;

	while (got < count) {
		if (sent < count && sent - got < r->o->inflight) {
			unsigned k = first + sent;
			struct hfe_frame_request fr;
			frame_req(r, k, &fr);
			r->t_start[k % RING] = now_ms();
			/* No release callback: the pixels are ours and outlive the job. */
			if (hfe_session_submit_frame(s, 1, &fr, frame_pixels(r, k), NULL, NULL,
						     false) < 0) {
				note("in-process: session refused frame %u", k);
				return -1;
			}
			sent++;
			continue;
		}
		struct hfe_session_result res;
		if (inproc_next(s, w, &res) < 0)
			return -1;
		double t = now_ms();
		unsigned k = first + got;
		if (res.kind != HFE_RESULT_FRAME) {
			note("in-process: frame %u: %s", k,
			     res.kind == HFE_RESULT_ERROR ? res.error.message : "unexpected result");
			hfe_session_result_release(&res);
			return -1;
		}
		int rc = account(r, k, t, res.frame.pts, res.frame.is_keyframe, res.packet.data,
				 res.packet.size, lat, got);
		hfe_session_result_release(&res);
		if (rc < 0)
			return -1;
		got++;
	}
	return 0;
}

static int run_inproc(struct run *r, double *lat, double *fps)
{
	struct waiter w = { .seq = 0 };
	struct hfe_session_params p = {
		.enc = r->o->enc,
		.max_inflight = r->o->inflight,
		.notify = inproc_notify,
		.opaque = &w,
	};
	struct hfe_err err;
	int rc = -1;

	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	struct hfe_session *s = hfe_session_new(&p, &err);
	if (!s) {
		note("in-process: %s", err.msg);
		goto out;
	}
	if (inproc_phase(r, s, &w, 0, r->o->warmup, NULL) < 0)
		goto out;
	double c0, f0, c1, f1;
	usage_self(&c0, &f0);
	double t0 = now_ms();
	if (inproc_phase(r, s, &w, r->o->warmup, r->o->frames, lat) < 0)
		goto out;
	double t1 = now_ms();
	usage_self(&c1, &f1);
	r->res->cpu_ms += c1 - c0;
	r->res->faults += f1 - f0;
	*fps = r->o->frames / ((t1 - t0) / 1e3);
	rc = 0;
out:
	hfe_session_free(s);
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
	return rc;
}

/* ---- (b), (c) through the daemon ---- */

static int daemon_phase(struct run *r, struct hfe_client *c, unsigned first, unsigned count,
			double *lat)
{
	unsigned sent = 0, got = 0;
	struct hfe_err err;

	while (got < count) {
		if (sent < count && sent - got < r->o->inflight) {
			unsigned k = first + sent;
			struct hfe_frame_request fr;
			frame_req(r, k, &fr);
			r->t_start[k % RING] = now_ms();
			if (hfe_client_send_frame(c, 1, &fr, frame_pixels(r, k), r->fr->size,
						  IO_TIMEOUT_MS, &err) < 0) {
				note("sending frame %u: %s", k, err.msg);
				return -1;
			}
			sent++;
			continue;
		}
		struct hfe_msg m;
		int rc = hfe_client_recv(c, &m, IO_TIMEOUT_MS, &err);
		if (rc <= 0) {
			note("waiting for frame %u: %s", first + got,
			     rc ? err.msg : "timed out");
			return -1;
		}
		double t = now_ms();
		if (m.hdr.type == HFE_MSG_ERROR) {
			note("host: %s (%d): %s", hfe_error_name(m.u.error.code), m.u.error.code,
			     m.u.error.message);
			return -1;
		}
		if (m.hdr.type != HFE_MSG_FRAME_RESPONSE)
			continue; /* not ours to interpret */
		/* Deployed hosts send one NAL unit = the whole access unit. */
		size_t pos = 0;
		const uint8_t *nal;
		uint32_t len;
		if (m.u.frame_resp.nal_count != 1 || !hfe_nal_next(&m, &pos, &nal, &len)) {
			note("frame %u: expected one access unit, got %u", first + got,
			     m.u.frame_resp.nal_count);
			return -1;
		}
		if (account(r, first + got, t, m.u.frame_resp.pts, m.u.frame_resp.is_keyframe, nal,
			    len, lat, got) < 0)
			return -1;
		got++;
	}
	return 0;
}

static int run_daemon(struct run *r, const char *addr, pid_t dpid, double *lat, double *fps)
{
	struct hfe_err err;
	struct hfe_client *c = hfe_client_connect(addr, 5000, &err);
	int rc = -1;

	if (!c) {
		note("%s", err.msg);
		return -1;
	}
	if (hfe_client_hello(c, "bench-pull", NULL, 5000, &err) < 0) {
		note("%s", err.msg);
		goto out;
	}
	if (daemon_phase(r, c, 0, r->o->warmup, NULL) < 0)
		goto out;
	double dc0, df0, dc1, df1, c0, f0, c1, f1;
	usage_pid(dpid, &dc0, &df0);
	usage_self(&c0, &f0);
	double t0 = now_ms();
	if (daemon_phase(r, c, r->o->warmup, r->o->frames, lat) < 0)
		goto out;
	double t1 = now_ms();
	usage_pid(dpid, &dc1, &df1);
	usage_self(&c1, &f1);
	r->res->cpu_daemon_ms += dc1 - dc0;
	r->res->cpu_ms += dc1 - dc0 + c1 - c0;
	r->res->faults_daemon += df1 - df0;
	r->res->faults += df1 - df0 + f1 - f0;
	*fps = r->o->frames / ((t1 - t0) / 1e3);
	rc = 0;
out:
	hfe_client_close(c);
	return rc;
}

/* ---- the floor: raw socket transfer of one frame ---- */

struct xfer {
	int fd;
	const struct frames *fr;
	unsigned n;
	int err;
};

static void *xfer_writer(void *arg)
{
	struct xfer *x = arg;
	for (unsigned i = 0; i < x->n && !x->err; i++) {
		const uint8_t *p = x->fr->buf[i % x->fr->count];
		size_t off = 0;
		while (off < x->fr->size) {
			ssize_t w = write(x->fd, p + off, x->fr->size - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				x->err = errno ? errno : EIO;
				break;
			}
			off += (size_t)w;
		}
	}
	return NULL;
}

/* Wall time per frame to push n frames from one thread to another through
 * a connected pair of blocking sockets; -1 on error. No protocol, no
 * encoder: the least any transport of inline pixels can add. */
static double xfer_ms(int rfd, int wfd, const struct frames *fr, unsigned n)
{
	struct xfer x = { .fd = wfd, .fr = fr, .n = n };
	uint8_t *dst = malloc(fr->size);
	pthread_t t;
	double ms = -1;

	if (!dst)
		return -1;
	memset(dst, 0, fr->size); /* fault it in: measure the transport only */
	double t0 = now_ms();
	if (pthread_create(&t, NULL, xfer_writer, &x) != 0) {
		free(dst);
		return -1;
	}
	size_t total = fr->size * n, got = 0;
	while (got < total) {
		size_t off = got % fr->size;
		ssize_t r = read(rfd, dst + off, fr->size - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (got < total)
		shutdown(rfd, SHUT_RDWR); /* unblock the writer */
	pthread_join(t, NULL);
	if (got == total && !x.err)
		ms = (now_ms() - t0) / n;
	free(dst);
	return ms;
}

static void transport_floor(const struct frames *fr, double *unix_ms, double *tcp_ms)
{
	const unsigned n = 60;
	int sv[2];

	*unix_ms = *tcp_ms = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
		*unix_ms = xfer_ms(sv[0], sv[1], fr, n);
		close(sv[0]);
		close(sv[1]);
	}

	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), c = -1, a = -1;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (l >= 0 && bind(l, (struct sockaddr *)&sin, sizeof(sin)) == 0 && listen(l, 1) == 0 &&
	    getsockname(l, (struct sockaddr *)&sin, &len) == 0 &&
	    (c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0 &&
	    connect(c, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    (a = accept4(l, NULL, NULL, SOCK_CLOEXEC)) >= 0)
		*tcp_ms = xfer_ms(a, c, fr, n);
	if (a >= 0)
		close(a);
	if (c >= 0)
		close(c);
	if (l >= 0)
		close(l);
}

/* ---- the daemon process ---- */

struct daemon {
	pid_t pid;
	char dir[64];
	char sock[128];
	char log[128];
	char unix_addr[160];
	char tcp_addr[64];
};

static struct daemon *g_daemon; /* for cleanup on early exit */
static double g_load_start;     /* 1-min load average before we started */
static double g_floor_ms[MODE_COUNT] = { -1, -1, -1 }; /* raw transfer of one frame */

static const char *find_daemon(const char *opt)
{
	static char path[PATH_MAX];
	if (opt)
		return opt;
	const char *env = getenv("HFE_DAEMON");
	if (env && *env)
		return env;
	/* build/bench/bench-pull -> build/daemon/helix-frame-export */
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
	if (n > 0) {
		path[n] = '\0';
		char *slash = strrchr(path, '/');
		if (slash) {
			*slash = '\0';
			size_t len = strlen(path);
			if (len + sizeof("/../daemon/helix-frame-export") <= sizeof(path)) {
				strcat(path, "/../daemon/helix-frame-export");
				static char real[PATH_MAX];
				if (access(path, X_OK) == 0)
					return realpath(path, real) ? real : path;
			}
		}
	}
	return "helix-frame-export"; /* let execvp search PATH */
}

/* A TCP port nobody listens on right now (the daemon binds it next). */
static int free_tcp_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	if (fd < 0)
		return -1;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	return ntohs(sin.sin_port);
}

static void print_log(const struct daemon *d)
{
	FILE *f = fopen(d->log, "r");
	char line[512];
	if (!f)
		return;
	note("daemon log (%s):", d->log);
	while (fgets(line, sizeof(line), f))
		fprintf(stderr, "  | %s", line);
	fclose(f);
}

static void daemon_stop(struct daemon *d, bool keep_log)
{
	if (d->pid > 0) {
		int status;
		kill(d->pid, SIGTERM);
		pid_t w = 0;
		for (int i = 0; i < 700 && (w = waitpid(d->pid, &status, WNOHANG)) == 0; i++)
			usleep(10000);
		if (w == 0) {
			note("daemon did not stop after SIGTERM; killing it");
			kill(d->pid, SIGKILL);
			waitpid(d->pid, &status, 0);
		} else if (w == d->pid && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
			note("daemon exited abnormally (status 0x%x)", status);
			keep_log = true;
		}
		d->pid = 0;
	}
	if (keep_log)
		print_log(d);
	unlink(d->log);
	unlink(d->sock);
	rmdir(d->dir);
}

static void cleanup_at_exit(void)
{
	if (g_daemon && g_daemon->pid > 0)
		daemon_stop(g_daemon, true);
}

static int daemon_start(const struct opts *o, const char *exe, struct daemon *d)
{
	snprintf(d->dir, sizeof(d->dir), "/tmp/bench-pull.XXXXXX");
	if (!mkdtemp(d->dir)) {
		note("mkdtemp: %s", strerror(errno));
		return -1;
	}
	snprintf(d->sock, sizeof(d->sock), "%s/hfe.sock", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/daemon.log", d->dir);
	snprintf(d->unix_addr, sizeof(d->unix_addr), "unix:%s", d->sock);
	int port = free_tcp_port();
	if (port < 0) {
		note("no free TCP port: %s", strerror(errno));
		return -1;
	}
	snprintf(d->tcp_addr, sizeof(d->tcp_addr), "tcp:127.0.0.1:%d", port);

	char bitrate[32], fps[32], gop[32], threads[32], inflight[32], profile[16];
	snprintf(bitrate, sizeof(bitrate), "%" PRIu32, o->enc.bitrate);
	snprintf(fps, sizeof(fps), "%" PRIu32 "/%" PRIu32, o->enc.fps_num, o->enc.fps_den);
	snprintf(gop, sizeof(gop), "%" PRIu32, o->enc.gop);
	snprintf(threads, sizeof(threads), "%d", o->enc.threads);
	snprintf(inflight, sizeof(inflight), "%u", o->inflight);
	snprintf(profile, sizeof(profile), "%s",
		 o->enc.profile == 100 ? "high" : o->enc.profile == 77 ? "main" : "baseline");
	char *argv[] = {
		(char *)exe,
		"--listen", d->unix_addr, "--listen", d->tcp_addr,
		"--encoder", (char *)o->enc.name,
		"--bitrate", bitrate, "--fps", fps, "--gop", gop, "--profile", profile,
		"--preset", (char *)o->enc.preset, "--tune", (char *)o->enc.tune,
		"--threads", threads, "--max-inflight", inflight,
		NULL,
	};

	int logfd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (logfd < 0) {
		note("%s: %s", d->log, strerror(errno));
		return -1;
	}
	fflush(NULL);
	d->pid = fork();
	if (d->pid < 0) {
		note("fork: %s", strerror(errno));
		close(logfd);
		return -1;
	}
	if (d->pid == 0) {
		dup2(logfd, STDOUT_FILENO);
		dup2(logfd, STDERR_FILENO);
		int nul = open("/dev/null", O_RDONLY);
		if (nul >= 0)
			dup2(nul, STDIN_FILENO);
		execvp(exe, argv);
		fprintf(stderr, "bench-pull: cannot run %s: %s\n", exe, strerror(errno));
		_exit(127);
	}
	close(logfd);
	g_daemon = d;

	/* Ready when both listeners answer (they are set up before the loop runs). */
	const char *addrs[2] = { d->unix_addr, d->tcp_addr };
	for (int i = 0; i < 2; i++) {
		double deadline = now_ms() + 10000;
		for (;;) {
			int status;
			if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
				d->pid = 0;
				note("daemon %s exited at start (status 0x%x)", exe, status);
				print_log(d);
				return -1;
			}
			struct hfe_err err;
			struct hfe_client *c = hfe_client_connect(addrs[i], 200, &err);
			if (c) {
				hfe_client_close(c);
				break;
			}
			if (now_ms() > deadline) {
				note("daemon not reachable at %s: %s", addrs[i], err.msg);
				return -1;
			}
			usleep(20000);
		}
	}
	return 0;
}

/* ---- report ---- */

static const char *fmt_str(uint32_t f, char buf[5])
{
	return hfe_fourcc_str(f, buf);
}

static double median(const double *v, unsigned n)
{
	double f[64];
	memcpy(f, v, n * sizeof(double));
	qsort(f, n, sizeof(double), cmp_double);
	return n % 2 ? f[n / 2] : (f[n / 2 - 1] + f[n / 2]) / 2;
}

/* One round's latencies (sorted in place). */
static void round_percentiles(struct result *res, unsigned round, double *lat, unsigned n)
{
	qsort(lat, n, sizeof(double), cmp_double);
	res->p50_r[round] = percentile(lat, n, 0.50);
	res->p99_r[round] = percentile(lat, n, 0.99);
}

/* Medians over rounds resist a neighbour's compile job hitting one round. */
static void finish_result(struct result *res, unsigned rounds)
{
	res->fps_median = median(res->fps, rounds);
	res->p50 = median(res->p50_r, rounds);
	res->p99 = median(res->p99_r, rounds);
	qsort(res->lat_ms, res->n_lat, sizeof(double), cmp_double);
	res->pooled_p50 = percentile(res->lat_ms, res->n_lat, 0.50);
	res->pooled_p99 = percentile(res->lat_ms, res->n_lat, 0.99);
	res->pmax = res->n_lat ? res->lat_ms[res->n_lat - 1] : NAN;
}

struct target {
	const char *what;
	enum mode mode;
	bool ratio; /* else added p99 */
	double limit;
	double value;
	bool known;
	bool met;
};

static void eval_targets(const struct result *res, struct target *t, unsigned n)
{
	const struct result *base = &res[MODE_INPROC];
	for (unsigned i = 0; i < n; i++) {
		const struct result *r = &res[t[i].mode];
		t[i].known = base->ran && r->ran;
		if (!t[i].known)
			continue;
		if (t[i].ratio) {
			t[i].value = r->fps_median / base->fps_median;
			t[i].met = t[i].value >= t[i].limit;
		} else {
			t[i].value = r->p99 - base->p99;
			t[i].met = t[i].value < t[i].limit;
		}
	}
}

static void print_table(const struct opts *o, const struct result *res, const struct target *t,
			unsigned nt, long hwm, long rss, const char *daemon_exe, bool same_bits,
			size_t frame_bytes)
{
	char fb[5];
	const struct result *base = &res[MODE_INPROC];

	printf("bench-pull: %ux%u %s, %u frames (+%u warm-up) x %u round(s), %u in flight, "
	       "%u distinct frames\n",
	       o->width, o->height, fmt_str(o->format, fb), o->frames, o->warmup, o->rounds,
	       o->inflight, o->distinct);
	printf("encoder: %s preset %s tune %s, profile %u, %u bit/s, %u/%u fps, gop %u, "
	       "threads %d\n",
	       o->enc.name, o->enc.preset, o->enc.tune, o->enc.profile, o->enc.bitrate,
	       o->enc.fps_num, o->enc.fps_den, o->enc.gop, o->enc.threads);
	printf("daemon: %s\n", daemon_exe ? daemon_exe : "(not started)");
	printf("machine: %ld CPUs, 1-min load average %.2f before the run (other work skews "
	       "every number)\n\n",
	       sysconf(_SC_NPROCESSORS_ONLN), g_load_start);

	printf("%-10s | %7s | %9s | %9s | %9s | %9s | %9s | %9s | %12s\n", "mode", "fps",
	       "vs in-pr.", "lat p50", "lat p99", "added p50", "added p99", "lat max",
	       "cpu ms/frame");
	printf("-----------+---------+-----------+-----------+-----------+-----------+-----------+"
	       "-----------+-------------\n");
	for (int m = 0; m < MODE_COUNT; m++) {
		const struct result *r = &res[m];
		if (!r->ran)
			continue;
		char ratio[16] = "-", a50[16] = "-", a99[16] = "-";
		if (base->ran) {
			snprintf(ratio, sizeof(ratio), "%.3fx", r->fps_median / base->fps_median);
			if (m != MODE_INPROC) {
				snprintf(a50, sizeof(a50), "%+.2f ms", r->p50 - base->p50);
				snprintf(a99, sizeof(a99), "%+.2f ms", r->p99 - base->p99);
			}
		}
		printf("%-10s | %7.1f | %9s | %6.2f ms | %6.2f ms | %9s | %9s | %6.2f ms | %12.2f\n",
		       mode_name[m], r->fps_median, ratio, r->p50, r->p99, a50, a99, r->pmax,
		       r->cpu_ms / ((double)o->frames * o->rounds));
	}
	printf("\n");
	for (int m = 0; m < MODE_COUNT; m++) {
		if (!res[m].ran)
			continue;
		double nf = (double)o->frames * o->rounds;
		printf("%-10s: %" PRIu64 " bytes, %u IDR (last round, incl. warm-up); "
		       "%.0f page faults/frame",
		       mode_name[m], res[m].bytes, res[m].keyframes, res[m].faults / nf);
		if (m != MODE_INPROC) {
			printf(" (daemon %.0f), daemon cpu %.2f ms/frame", res[m].faults_daemon / nf,
			       res[m].cpu_daemon_ms / nf);
			if (base->ran && base->cpu_ms > 0)
				printf(", cpu %.2fx in-process", res[m].cpu_ms / base->cpu_ms);
		}
		printf("; per round fps/p99:");
		for (unsigned i = 0; i < o->rounds; i++)
			printf(" %.1f/%.1f", res[m].fps[i], res[m].p99_r[i]);
		printf("\n");
	}
	/* x264's sliced threads make rate control timing-dependent: only a
	 * single-threaded encoder is expected to give identical streams. */
	printf("bitstreams identical across modes and rounds: %s%s\n", same_bits ? "yes" : "no",
	       o->enc.threads == 1 ? "" : " (only expected with --threads 1)");
	if (hwm >= 0)
		printf("daemon peak RSS (VmHWM): %.1f MiB (VmRSS at end %.1f MiB)\n", hwm / 1024.0,
		       rss / 1024.0);
	if (g_floor_ms[MODE_UNIX] > 0 || g_floor_ms[MODE_TCP] > 0)
		printf("raw socket transfer of one %zu-byte frame (no protocol, no encoder): "
		       "unix %.2f ms, tcp %.2f ms\n",
		       frame_bytes, g_floor_ms[MODE_UNIX], g_floor_ms[MODE_TCP]);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (isfinite(g_load_start) && g_load_start > 0.5 * (double)cpus)
		printf("\nwarning: the machine was busy before the run (load %.2f on %ld CPUs); "
		       "fps and latency\nare skewed by the other work: use --rounds, or rerun "
		       "when idle.\n",
		       g_load_start, cpus);
	printf("\ntargets (DESIGN.md):\n");
	for (unsigned i = 0; i < nt; i++) {
		if (!t[i].known) {
			printf("  %-44s not measured\n", t[i].what);
			continue;
		}
		char val[32];
		if (t[i].ratio)
			snprintf(val, sizeof(val), "%.3fx", t[i].value);
		else
			snprintf(val, sizeof(val), "%+.3f ms", t[i].value);
		printf("  %-44s %-12s %s", t[i].what, val, t[i].met ? "MET" : "NOT MET");
		if (!t[i].ratio && t[i].value < 0)
			printf(" (below zero: run-to-run noise exceeds the transport's cost)");
		else if (!t[i].ratio && g_floor_ms[t[i].mode] >= t[i].limit)
			printf(" (moving the pixels alone takes %.2f ms)", g_floor_ms[t[i].mode]);
		printf("\n");
	}
}

static void json_num(const char *key, double v, bool comma)
{
	if (isfinite(v))
		printf("\"%s\": %.4f%s", key, v, comma ? ", " : "");
	else
		printf("\"%s\": null%s", key, comma ? ", " : "");
}

/* A JSON string (user-supplied text: names, paths). */
static void json_str(const char *str)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static void print_json(const struct opts *o, const struct result *res, const struct target *t,
		       unsigned nt, long hwm, long rss, const char *daemon_exe, bool same_bits)
{
	char fb[5];
	const struct result *base = &res[MODE_INPROC];
	printf("{\n  \"machine\": {\"cpus\": %ld, ", sysconf(_SC_NPROCESSORS_ONLN));
	json_num("loadavg_1m_before", g_load_start, false);
	printf("},\n");
	printf("  \"config\": {\"width\": %u, \"height\": %u, \"format\": \"%s\", \"frames\": %u, "
	       "\"warmup\": %u, \"rounds\": %u, \"inflight\": %u, \"distinct_frames\": %u, ",
	       o->width, o->height, fmt_str(o->format, fb), o->frames, o->warmup, o->rounds,
	       o->inflight, o->distinct);
	printf("\"encoder\": ");
	json_str(o->enc.name);
	printf(", \"preset\": ");
	json_str(o->enc.preset);
	printf(", \"tune\": ");
	json_str(o->enc.tune);
	printf(", \"profile\": %u, \"bitrate\": %u, \"fps_num\": %u, \"fps_den\": %u, "
	       "\"gop\": %u, \"threads\": %d},\n",
	       o->enc.profile, o->enc.bitrate, o->enc.fps_num, o->enc.fps_den, o->enc.gop,
	       o->enc.threads);
	printf("  \"daemon\": {\"path\": ");
	if (daemon_exe)
		json_str(daemon_exe);
	else
		printf("null");
	printf(", ");
	printf("\"peak_rss_kib\": %ld, \"rss_end_kib\": %ld},\n", hwm, rss);
	printf("  \"raw_transfer_ms\": {");
	json_num("unix", g_floor_ms[MODE_UNIX] > 0 ? g_floor_ms[MODE_UNIX] : NAN, true);
	json_num("tcp", g_floor_ms[MODE_TCP] > 0 ? g_floor_ms[MODE_TCP] : NAN, false);
	printf("},\n");
	printf("  \"bitstreams_identical\": %s,\n", same_bits ? "true" : "false");
	printf("  \"modes\": [");
	bool first = true;
	for (int m = 0; m < MODE_COUNT; m++) {
		const struct result *r = &res[m];
		if (!r->ran)
			continue;
		printf("%s\n    {\"mode\": \"%s\", ", first ? "" : ",", mode_name[m]);
		first = false;
		json_num("fps", r->fps_median, true);
		json_num("ratio", base->ran ? r->fps_median / base->fps_median : NAN, true);
		json_num("lat_p50_ms", r->p50, true);
		json_num("lat_p99_ms", r->p99, true);
		json_num("lat_max_ms", r->pmax, true);
		json_num("pooled_p50_ms", r->pooled_p50, true);
		json_num("pooled_p99_ms", r->pooled_p99, true);
		bool d = base->ran && m != MODE_INPROC;
		json_num("added_p50_ms", d ? r->p50 - base->p50 : NAN, true);
		json_num("added_p99_ms", d ? r->p99 - base->p99 : NAN, true);
		json_num("cpu_ms_per_frame", r->cpu_ms / ((double)o->frames * o->rounds), true);
		json_num("daemon_cpu_ms_per_frame",
			 m == MODE_INPROC ? NAN
					  : r->cpu_daemon_ms / ((double)o->frames * o->rounds),
			 true);
		json_num("cpu_vs_inprocess",
			 base->ran && base->cpu_ms > 0 ? r->cpu_ms / base->cpu_ms : NAN, true);
		json_num("page_faults_per_frame", r->faults / ((double)o->frames * o->rounds), true);
		json_num("daemon_page_faults_per_frame",
			 m == MODE_INPROC ? NAN
					  : r->faults_daemon / ((double)o->frames * o->rounds),
			 true);
		printf("\"bytes\": %" PRIu64 ", \"keyframes\": %u, \"fps_rounds\": [", r->bytes,
		       r->keyframes);
		for (unsigned i = 0; i < o->rounds; i++)
			printf("%s%.2f", i ? ", " : "", r->fps[i]);
		printf("], \"p99_rounds_ms\": [");
		for (unsigned i = 0; i < o->rounds; i++)
			printf("%s%.3f", i ? ", " : "", r->p99_r[i]);
		printf("]}");
	}
	printf("\n  ],\n  \"targets\": [");
	for (unsigned i = 0; i < nt; i++) {
		printf("%s\n    {\"target\": \"%s\", ", i ? "," : "", t[i].what);
		json_num("limit", t[i].limit, true);
		json_num("value", t[i].known ? t[i].value : NAN, true);
		printf("\"met\": %s}", !t[i].known ? "null" : t[i].met ? "true" : "false");
	}
	printf("\n  ]\n}\n");
}

/* ---- options ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: bench-pull [OPTION]...\n"
		"Pull-mode benchmark: the same frames encoded in-process and through a\n"
		"helix-frame-export daemon (unix socket, TCP loopback); reports frames/s,\n"
		"latency p50/p99 and the latency the transport adds, against DESIGN.md targets.\n"
		"\n"
		"  --size WxH        frame size (default 1920x1080)\n"
		"  --frames N        measured frames per mode (default 300)\n"
		"  --warmup N        frames encoded before measuring (default 30)\n"
		"  --format FOURCC   XR24 AR24 XB24 AB24 NV12 I420 (default XR24)\n"
		"  --inflight N      frames in flight, 1..%u (default 2)\n"
		"  --distinct N      distinct frames generated, then cycled (default 30)\n"
		"  --rounds N        repeat all modes N times, 1..64; fps = median, latencies\n"
		"                    pooled (default 1)\n"
		"  --modes LIST      comma list of inproc,unix,tcp (default all)\n"
		"  --daemon PATH     daemon binary (default $HFE_DAEMON, else\n"
		"                    ../daemon/helix-frame-export next to this program)\n"
		"  --encoder NAME    libavcodec encoder (default libx264)\n"
		"  --bitrate BPS     bit/s (default 4000000)\n"
		"  --fps N[/D]       frame rate for rate control (default 30)\n"
		"  --gop N           frames between IDRs (default 120)\n"
		"  --preset NAME     (default ultrafast)\n"
		"  --tune NAME       (default zerolatency)\n"
		"  --threads N       encoder threads, same in every mode (default: online CPUs)\n"
		"  --json            machine-readable results on stdout\n"
		"  -h, --help        this help\n"
		"\n"
		"Exit status: 0 when everything was measured (targets met or not), 1 on errors,\n"
		"2 on bad usage.\n",
		HFE_SESSION_MAX_INFLIGHT);
}

static int parse_u(const char *s, unsigned long min, unsigned long max, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int parse_format(const char *s, uint32_t *f)
{
	static const struct {
		const char *name;
		uint32_t fmt;
	} tab[] = {
		{ "XR24", HFE_FMT_XRGB8888 }, { "AR24", HFE_FMT_ARGB8888 },
		{ "XB24", HFE_FMT_XBGR8888 }, { "AB24", HFE_FMT_ABGR8888 },
		{ "NV12", HFE_FMT_NV12 },     { "I420", HFE_FMT_I420 },
		{ "YU12", HFE_FMT_I420 },
	};
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (!strcasecmp(s, tab[i].name)) {
			*f = tab[i].fmt;
			return 0;
		}
	return -1;
}

static int parse_modes(const char *s, bool modes[MODE_COUNT])
{
	char buf[64];
	snprintf(buf, sizeof(buf), "%s", s);
	memset(modes, 0, MODE_COUNT * sizeof(bool));
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "inproc") || !strcmp(tok, "in-process"))
			modes[MODE_INPROC] = true;
		else if (!strcmp(tok, "unix"))
			modes[MODE_UNIX] = true;
		else if (!strcmp(tok, "tcp"))
			modes[MODE_TCP] = true;
		else
			return -1;
	}
	return modes[MODE_INPROC] || modes[MODE_UNIX] || modes[MODE_TCP] ? 0 : -1;
}

static int bad_opt(const char *opt, const char *val)
{
	fprintf(stderr, "bench-pull: invalid value '%s' for %s\nTry 'bench-pull --help'.\n", val,
		opt);
	return 2;
}

enum {
	O_SIZE = 256, O_FRAMES, O_WARMUP, O_FORMAT, O_INFLIGHT, O_DISTINCT, O_ROUNDS, O_MODES,
	O_DAEMON, O_ENCODER, O_BITRATE, O_FPS, O_GOP, O_PRESET, O_TUNE, O_THREADS, O_JSON,
};

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "size", required_argument, NULL, O_SIZE },
		{ "frames", required_argument, NULL, O_FRAMES },
		{ "warmup", required_argument, NULL, O_WARMUP },
		{ "format", required_argument, NULL, O_FORMAT },
		{ "inflight", required_argument, NULL, O_INFLIGHT },
		{ "distinct", required_argument, NULL, O_DISTINCT },
		{ "rounds", required_argument, NULL, O_ROUNDS },
		{ "modes", required_argument, NULL, O_MODES },
		{ "daemon", required_argument, NULL, O_DAEMON },
		{ "encoder", required_argument, NULL, O_ENCODER },
		{ "bitrate", required_argument, NULL, O_BITRATE },
		{ "fps", required_argument, NULL, O_FPS },
		{ "gop", required_argument, NULL, O_GOP },
		{ "preset", required_argument, NULL, O_PRESET },
		{ "tune", required_argument, NULL, O_TUNE },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	unsigned v;
	int c;

	memset(o, 0, sizeof(*o));
	o->width = 1920;
	o->height = 1080;
	o->format = HFE_FMT_XRGB8888;
	o->frames = 300;
	o->warmup = 30;
	o->inflight = 2;
	o->distinct = 30;
	o->rounds = 1;
	o->modes[MODE_INPROC] = o->modes[MODE_UNIX] = o->modes[MODE_TCP] = true;
	hfe_encoder_params_default(&o->enc);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	o->enc.threads = cpus > 0 && cpus <= 64 ? (int)cpus : 1;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case O_SIZE: {
			unsigned w, h;
			char tail;
			if (sscanf(optarg, "%ux%u%c", &w, &h, &tail) != 2 || w < HFE_MIN_DIMENSION ||
			    h < HFE_MIN_DIMENSION || w > 8192 || h > 8192 || (w | h) & 1)
				return bad_opt("--size", optarg);
			o->width = w;
			o->height = h;
			break;
		}
		case O_FRAMES:
			if (parse_u(optarg, 1, 1000000, &o->frames) < 0)
				return bad_opt("--frames", optarg);
			break;
		case O_WARMUP:
			if (parse_u(optarg, 0, 100000, &o->warmup) < 0)
				return bad_opt("--warmup", optarg);
			break;
		case O_FORMAT:
			if (parse_format(optarg, &o->format) < 0)
				return bad_opt("--format", optarg);
			break;
		case O_INFLIGHT:
			if (parse_u(optarg, 1, HFE_SESSION_MAX_INFLIGHT, &o->inflight) < 0)
				return bad_opt("--inflight", optarg);
			break;
		case O_DISTINCT:
			if (parse_u(optarg, 1, 10000, &o->distinct) < 0)
				return bad_opt("--distinct", optarg);
			break;
		case O_ROUNDS:
			if (parse_u(optarg, 1, 64, &o->rounds) < 0)
				return bad_opt("--rounds", optarg);
			break;
		case O_MODES:
			if (parse_modes(optarg, o->modes) < 0)
				return bad_opt("--modes", optarg);
			break;
		case O_DAEMON:
			o->daemon = optarg;
			break;
		case O_ENCODER:
			if (strlen(optarg) >= sizeof(o->enc.name))
				return bad_opt("--encoder", optarg);
			snprintf(o->enc.name, sizeof(o->enc.name), "%s", optarg);
			break;
		case O_BITRATE:
			if (parse_u(optarg, 10000, 1000000000, &v) < 0)
				return bad_opt("--bitrate", optarg);
			o->enc.bitrate = v;
			break;
		case O_FPS: {
			unsigned num, den = 1;
			char tail;
			int n = sscanf(optarg, "%u/%u%c", &num, &den, &tail);
			if (n < 1 || n > 2 || !num || !den || num > 240u * den)
				return bad_opt("--fps", optarg);
			o->enc.fps_num = num;
			o->enc.fps_den = den;
			break;
		}
		case O_GOP:
			if (parse_u(optarg, 0, 100000, &v) < 0)
				return bad_opt("--gop", optarg);
			o->enc.gop = v;
			break;
		case O_PRESET:
			if (strlen(optarg) >= sizeof(o->enc.preset))
				return bad_opt("--preset", optarg);
			snprintf(o->enc.preset, sizeof(o->enc.preset), "%s", optarg);
			break;
		case O_TUNE:
			if (strlen(optarg) >= sizeof(o->enc.tune))
				return bad_opt("--tune", optarg);
			snprintf(o->enc.tune, sizeof(o->enc.tune), "%s", optarg);
			break;
		case O_THREADS:
			if (parse_u(optarg, 0, 64, &v) < 0)
				return bad_opt("--threads", optarg);
			o->enc.threads = (int)v;
			break;
		case O_JSON:
			o->json = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			fprintf(stderr, "Try 'bench-pull --help'.\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "bench-pull: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	return 0;
}

/* ---- main ---- */

int main(int argc, char **argv)
{
	struct opts o;
	struct frames fr = { 0 };
	struct result res[MODE_COUNT];
	struct daemon d = { .pid = 0 };
	const char *exe = NULL;
	long hwm = -1, rss = -1;
	int rc = parse_opts(argc, argv, &o);
	bool failed = false;

	if (rc)
		return rc;
	signal(SIGPIPE, SIG_IGN);
	atexit(cleanup_at_exit);
	if (getloadavg(&g_load_start, 1) != 1)
		g_load_start = NAN;
	if (!getenv("HFE_LOG"))
		hfe_log_set_level(HFE_LOG_WARN); /* the session logs each encoder open */
	av_log_set_level(AV_LOG_WARNING);        /* x264's per-stream summary */
	if (!hfe_encoder_available(o.enc.name)) {
		note("encoder '%s' is not available in this FFmpeg build", o.enc.name);
		return 1;
	}

	memset(res, 0, sizeof(res));
	for (int m = 0; m < MODE_COUNT; m++) {
		res[m].lat_ms = calloc((size_t)o.frames * o.rounds, sizeof(double));
		if (!res[m].lat_ms) {
			note("out of memory");
			return 1;
		}
	}

	double t = now_ms();
	if (frames_make(&o, &fr) < 0) {
		frames_free(&fr);
		return 1;
	}
	note("generated %u distinct %ux%u frames (%zu bytes each) in %.0f ms", fr.count, o.width,
	     o.height, fr.size, now_ms() - t);

	if (o.modes[MODE_UNIX] || o.modes[MODE_TCP]) {
		transport_floor(&fr, &g_floor_ms[MODE_UNIX], &g_floor_ms[MODE_TCP]);
		note("raw transfer of one frame: unix %.2f ms, tcp %.2f ms", g_floor_ms[MODE_UNIX],
		     g_floor_ms[MODE_TCP]);
		exe = find_daemon(o.daemon);
		if (daemon_start(&o, exe, &d) < 0) {
			daemon_stop(&d, false);
			frames_free(&fr);
			return 1;
		}
		note("daemon %s pid %d on %s and %s", exe, (int)d.pid, d.unix_addr, d.tcp_addr);
	}

	uint64_t first_hash = 0;
	bool same = true, have_hash = false;
	for (unsigned round = 0; round < o.rounds && !failed; round++) {
		for (int m = 0; m < MODE_COUNT && !failed; m++) {
			if (!o.modes[m])
				continue;
			struct run r = { .o = &o, .fr = &fr, .res = &res[m],
					 .hash = 0xcbf29ce484222325ull };
			r.frame_ns = (int64_t)(1e9 * o.enc.fps_den / o.enc.fps_num);
			double *lat = res[m].lat_ms + (size_t)round * o.frames;
			double fps = 0;
			int e;
			if (m == MODE_INPROC)
				e = run_inproc(&r, lat, &fps);
			else
				e = run_daemon(&r, m == MODE_UNIX ? d.unix_addr : d.tcp_addr, d.pid,
					       lat, &fps);
			if (e < 0) {
				note("%s: run failed", mode_name[m]);
				failed = true;
				break;
			}
			res[m].ran = true;
			res[m].fps[round] = fps;
			res[m].n_lat += o.frames;
			round_percentiles(&res[m], round, lat, o.frames);
			res[m].bytes = r.bytes;
			res[m].keyframes = r.keyframes;
			res[m].hash = r.hash;
			if (have_hash && r.hash != first_hash)
				same = false;
			first_hash = r.hash;
			have_hash = true;
			note("round %u %-10s %7.1f fps, %" PRIu64 " bytes, digest %016" PRIx64, round + 1,
			     mode_name[m], fps, r.bytes, r.hash);
		}
	}

	if (d.pid > 0) {
		hwm = proc_status_kib(d.pid, "VmHWM");
		rss = proc_status_kib(d.pid, "VmRSS");
		daemon_stop(&d, failed);
	}
	g_daemon = NULL;

	if (!failed) {
		for (int m = 0; m < MODE_COUNT; m++)
			if (res[m].ran)
				finish_result(&res[m], o.rounds);
		struct target tg[] = {
			{ .what = "throughput unix >= 0.9x in-process", .mode = MODE_UNIX,
			  .ratio = true, .limit = TARGET_RATIO },
			{ .what = "throughput tcp >= 0.9x in-process", .mode = MODE_TCP,
			  .ratio = true, .limit = TARGET_RATIO },
			{ .what = "added latency p99 unix < 1 ms", .mode = MODE_UNIX,
			  .limit = TARGET_ADDED_P99_UNIX_MS },
			{ .what = "added latency p99 tcp < 2 ms", .mode = MODE_TCP,
			  .limit = TARGET_ADDED_P99_TCP_MS },
		};
		unsigned nt = sizeof(tg) / sizeof(tg[0]);
		eval_targets(res, tg, nt);
		if (o.json)
			print_json(&o, res, tg, nt, hwm, rss, exe, same);
		else
			print_table(&o, res, tg, nt, hwm, rss, exe, same, fr.size);
	}

	for (int m = 0; m < MODE_COUNT; m++)
		free(res[m].lat_ms);
	frames_free(&fr);
	return failed ? 1 : 0;
}
