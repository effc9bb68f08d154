/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfe-viewer: watch a scanout live in a browser.
 *
 * One upstream HXFR connection subscribes to a scanout; every access unit it
 * pushes is sent, whole, as one WebSocket message to each page that is
 * watching, where WebCodecs decodes it (tools/viewer/viewer.js). Optionally
 * the same stream is written to an MP4.
 *
 * Everything runs in one GMainLoop: libsoup's HTTP/WebSocket server and the
 * upstream socket (g_unix_fd_add). A page joining mid-GOP is sent nothing
 * until a keyframe, and one is requested upstream (KEYFRAME_REQ) for it. Pages
 * acknowledge what they have decoded; a page too far behind is skipped until
 * it has caught up and then resynced with an IDR, so it never slows the others
 * and the server's memory stays bounded. See docs/viewer.md.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib-unix.h>
#include <glib.h>
#include <libsoup/soup.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/mem.h>

#include "hfe/addr.h"
#include "hfe/client.h"
#include "hfe/log.h"
#include "hfe/wire.h"

#define PROG "hfe-viewer"
#define EXIT_USAGE 2

#define CONNECT_TIMEOUT_MS 1000  /* blocks the loop: keep it short */
#define UPSTREAM_TIMEOUT_MS 2000 /* HELLO, SUBSCRIBE */
#define SEND_TIMEOUT_MS 200      /* KEYFRAME_REQ */
#define RETRY_MS 1000            /* reconnect interval */
#define TICK_MS 250              /* keyframe re-requests, stalled pages */
#define KEY_RETRY_NS (1000LL * 1000000) /* re-request an IDR that did not come */
#define DRAIN_BATCH 256          /* upstream messages per main-loop turn */

/* Per page: frames sent but not yet acknowledged. Past either cap the page
 * is skipped until it has caught up, then resynced with an IDR. */
#define INFLIGHT_MAX_FRAMES 60
#define INFLIGHT_MAX_BYTES (8u << 20)
#define INFLIGHT_RESUME_FRAMES 2
#define MAX_PAGES 32

/* WebSocket frame message header (docs/viewer.md). */
#define WS_VERSION 1
#define WS_HEADER_SIZE 32
#define WS_FLAG_KEY 0x01

/* The page, compiled in (tools/viewer/viewer.gresource.xml; registered by
 * the generated code's constructor). */
#define RES_PREFIX "/org/helix/hfe-viewer/"

struct viewer;

struct page {
	struct viewer *v;
	SoupWebsocketConnection *ws;
	unsigned id;
	char peer[80];
	bool gone; /* closed: freed by the reaper, never used for sending */
	bool waiting_key;

	/* Unacknowledged frames, oldest first. */
	uint32_t ring_seq[INFLIGHT_MAX_FRAMES];
	uint32_t ring_size[INFLIGHT_MAX_FRAMES];
	unsigned ring_head, ring_count;
	uint64_t inflight_bytes;

	uint64_t frames_sent, frames_skipped, bytes_sent, resyncs;
};

struct recorder {
	char *path; /* absolute */
	AVFormatContext *oc;
	AVStream *st;
	bool failed;
	int64_t first_ns, last_ts, last_dur;
	uint32_t width, height;
	uint64_t frames, bytes;
	unsigned parts; /* earlier sizes, each moved to its own file */
};

struct viewer {
	/* options */
	const char *addr;
	uint32_t scanout;
	const char *http;

	GMainLoop *loop;
	SoupServer *server;
	char *url;

	/* upstream */
	struct hfe_client *up;
	char server_name[HFE_NAME_LEN];
	guint up_watch, up_idle, retry_timer, tick_timer;
	char last_fail[HFE_ERROR_MSG_LEN];
	uint32_t seq; /* access units received, all connections: the page's frame number */
	bool key_pending;
	int64_t key_req_ns;
	uint64_t frames_in, keyframes_in, bytes_in, key_requests, reconnects;

	/* pages */
	GPtrArray *pages;
	unsigned next_page_id;
	guint reaper;

	struct recorder rec;
	bool recording;
	int exit_code;
};

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Serial-number order for u32 frame numbers (they may wrap). */
static bool seq_le(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) <= 0;
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, int64_t v)
{
	uint64_t u = (uint64_t)v;
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(u >> (8 * i));
}

/* ---- Annex B helpers ---- */

/* Next NAL unit at or after *pos: its payload (after the start code) in
 * [*start, *end). Returns false when there is none. */
static bool annexb_next(const uint8_t *d, size_t n, size_t *pos, size_t *start, size_t *end)
{
	size_t i = *pos;
	while (i + 3 <= n && !(d[i] == 0 && d[i + 1] == 0 && d[i + 2] == 1))
		i++;
	if (i + 3 > n)
		return false;
	*start = i + 3;
	size_t j = *start;
	while (j + 3 <= n && !(d[j] == 0 && d[j + 1] == 0 && (d[j + 2] == 1 || d[j + 2] == 0)))
		j++;
	if (j + 3 > n)
		j = n;
	*end = j;
	*pos = j;
	return true;
}

/* SPS and PPS of an IDR access unit, each behind a 4-byte start code: the
 * MP4 muxer turns this into the avcC box. Returns the size, 0 if missing. */
static size_t extract_parameter_sets(const uint8_t *d, size_t n, uint8_t **out)
{
	size_t pos = 0, s, e, len = 0;
	bool sps = false, pps = false;
	uint8_t *buf = av_mallocz(n + 4 * 8 + AV_INPUT_BUFFER_PADDING_SIZE);
	if (!buf)
		return 0;
	while (annexb_next(d, n, &pos, &s, &e)) {
		unsigned type = e > s ? d[s] & 0x1f : 0;
		if (type != 7 && type != 8)
			continue;
		sps |= type == 7;
		pps |= type == 8;
		memcpy(buf + len, "\0\0\0\1", 4);
		memcpy(buf + len + 4, d + s, e - s);
		len += 4 + (e - s);
	}
	if (!sps || !pps) {
		av_free(buf);
		return 0;
	}
	*out = buf;
	return len;
}

/* Picture size from the SPS, through libavcodec's H.264 parser. */
static bool probe_size(const uint8_t *d, size_t n, uint32_t *w, uint32_t *h)
{
	AVCodecParserContext *pc = av_parser_init(AV_CODEC_ID_H264);
	AVCodecContext *ac = avcodec_alloc_context3(NULL);
	uint8_t *copy = av_mallocz(n + AV_INPUT_BUFFER_PADDING_SIZE);
	bool ok = false;
	if (pc && ac && copy && n <= INT_MAX) {
		uint8_t *out;
		int out_len;
		memcpy(copy, d, n);
		pc->flags |= PARSER_FLAG_COMPLETE_FRAMES;
		av_parser_parse2(pc, ac, &out, &out_len, copy, (int)n, AV_NOPTS_VALUE,
				 AV_NOPTS_VALUE, 0);
		int pw = pc->width > 0 ? pc->width : ac->width;
		int ph = pc->height > 0 ? pc->height : ac->height;
		if (pw > 0 && ph > 0) {
			*w = (uint32_t)pw;
			*h = (uint32_t)ph;
			ok = true;
		}
	}
	av_free(copy);
	avcodec_free_context(&ac);
	if (pc)
		av_parser_close(pc);
	return ok;
}

/* ---- recording ---- */

static const char *av_err(int e, char *buf, size_t len)
{
	av_strerror(e, buf, len);
	return buf;
}

static void recorder_fail(struct recorder *r, const char *what, int e)
{
	char eb[128];
	say("recording to %s failed: %s: %s; not recording any more", r->path, what,
	    av_err(e, eb, sizeof(eb)));
	r->failed = true;
}

/* Open the MP4 at the first IDR: its SPS/PPS become the extradata. */
static int recorder_open(struct recorder *r, const uint8_t *au, size_t n)
{
	uint8_t *extra = NULL;
	size_t extra_len = extract_parameter_sets(au, n, &extra);
	int e;

	if (!extra_len || !probe_size(au, n, &r->width, &r->height)) {
		av_free(extra);
		say("recording to %s failed: the first keyframe has no usable SPS/PPS", r->path);
		r->failed = true;
		return -1;
	}
	e = avformat_alloc_output_context2(&r->oc, NULL, "mp4", r->path);
	if (e < 0 || !r->oc) {
		av_free(extra);
		recorder_fail(r, "cannot set up the MP4 muxer", e < 0 ? e : AVERROR(ENOMEM));
		return -1;
	}
	r->st = avformat_new_stream(r->oc, NULL);
	if (!r->st) {
		av_free(extra);
		recorder_fail(r, "cannot add a stream", AVERROR(ENOMEM));
		return -1;
	}
	AVCodecParameters *par = r->st->codecpar;
	par->codec_type = AVMEDIA_TYPE_VIDEO;
	par->codec_id = AV_CODEC_ID_H264;
	par->width = (int)r->width;
	par->height = (int)r->height;
	par->extradata = extra;
	par->extradata_size = (int)extra_len;
	r->st->time_base = (AVRational){ 1, 90000 };

	e = avio_open(&r->oc->pb, r->path, AVIO_FLAG_WRITE);
	if (e < 0) {
		recorder_fail(r, "cannot create the file", e);
		return -1;
	}
	AVDictionary *opts = NULL;
	/* moov in front: the file plays while it is still being downloaded */
	av_dict_set(&opts, "movflags", "+faststart", 0);
	e = avformat_write_header(r->oc, &opts);
	av_dict_free(&opts);
	if (e < 0) {
		recorder_fail(r, "cannot write the MP4 header", e);
		return -1;
	}
	say("recording %ux%u to %s", r->width, r->height, r->path);
	return 0;
}

/* Write the trailer and close the file (r->path stays). */
static void recorder_finish(struct recorder *r)
{
	char eb[128];
	int e = r->st && r->oc->pb ? av_write_trailer(r->oc) : 0;
	if (e < 0)
		say("recording to %s: finishing the MP4 failed: %s", r->path,
		    av_err(e, eb, sizeof(eb)));
	double secs = r->last_ts > 0 ? (double)r->last_ts * av_q2d(r->st->time_base) : 0;
	if (r->oc->pb)
		avio_closep(&r->oc->pb);
	avformat_free_context(r->oc);
	r->oc = NULL;
	r->st = NULL;
	if (e >= 0 && r->frames)
		say("wrote %" PRIu64 " frames (%.1f s, %ux%u, %" PRIu64 " bytes) to %s", r->frames,
		    secs, r->width, r->height, r->bytes, r->path);
}

/*
 * The picture size changed (a VM switching modes, e.g. from QEMU's 640x480
 * "not initialized" picture to the guest's desktop). An MP4 track has one
 * size, so the part recorded so far moves to NAME-N-WxH.mp4 and NAME.mp4
 * starts again at the new size: nothing is lost, and NAME.mp4 always holds
 * the latest size.
 */
static void recorder_next_part(struct recorder *r)
{
	recorder_finish(r);
	const char *dot = strrchr(r->path, '.');
	size_t base = dot && !strchr(dot, '/') ? (size_t)(dot - r->path) : strlen(r->path);
	char *part = g_strdup_printf("%.*s-%u-%ux%u%s", (int)base, r->path, ++r->parts, r->width,
				     r->height, r->path + base);
	if (rename(r->path, part) == 0)
		say("picture size changed: the %ux%u part is %s; %s goes on at the new size",
		    r->width, r->height, part, r->path);
	else
		say("picture size changed, and %s cannot be moved to %s (%s): it is overwritten",
		    r->path, part, strerror(errno));
	g_free(part);
	r->frames = r->bytes = 0;
}

static void recorder_write(struct recorder *r, const uint8_t *au, size_t n, int64_t pts_ns,
			   bool key)
{
	if (r->failed || n == 0 || n > INT_MAX)
		return;
	uint32_t w, h;
	if (r->oc && key && probe_size(au, n, &w, &h) && (w != r->width || h != r->height))
		recorder_next_part(r);
	if (!r->oc) {
		if (!key)
			return; /* an MP4 starts with an IDR */
		if (recorder_open(r, au, n) < 0)
			return;
		r->first_ns = pts_ns;
		r->last_ts = -1;
		r->last_dur = 0;
	}
	/* Host time of the damage, so pauses on a static screen play as pauses.
	 * A re-encode of an unchanged picture may repeat a pts: keep dts rising. */
	int64_t ts = av_rescale_q(pts_ns - r->first_ns, (AVRational){ 1, 1000000000 },
				  r->st->time_base);
	if (ts < r->last_ts - r->last_dur) {
		/* A clock from before: a host on another machine restarted. Go on
		 * one frame after the last. */
		int64_t step = r->last_dur > 0 ? r->last_dur : 1;
		r->first_ns = pts_ns - av_rescale_q(r->last_ts + step, r->st->time_base,
						    (AVRational){ 1, 1000000000 });
		ts = r->last_ts + step;
	}
	if (ts <= r->last_ts)
		ts = r->last_ts + 1;
	if (r->last_ts >= 0)
		r->last_dur = ts - r->last_ts;

	AVPacket *pkt = av_packet_alloc();
	if (!pkt || av_new_packet(pkt, (int)n) < 0) {
		av_packet_free(&pkt);
		recorder_fail(r, "out of memory", AVERROR(ENOMEM));
		return;
	}
	memcpy(pkt->data, au, n);
	pkt->pts = pkt->dts = ts;
	pkt->duration = r->last_dur > 0 ? r->last_dur : 0;
	pkt->stream_index = r->st->index;
	if (key)
		pkt->flags |= AV_PKT_FLAG_KEY;
	int e = av_write_frame(r->oc, pkt);
	av_packet_free(&pkt);
	if (e < 0) {
		recorder_fail(r, "writing a frame", e);
		return;
	}
	r->last_ts = ts;
	r->frames++;
	r->bytes += n;
}

static void recorder_close(struct recorder *r)
{
	if (!r->path)
		return;
	if (r->oc)
		recorder_finish(r);
	else if (!r->failed && !r->parts)
		say("no keyframe arrived: nothing recorded, %s not written", r->path);
	g_free(r->path);
	r->path = NULL;
}

/* ---- pages ---- */

static unsigned page_inflight(const struct page *p)
{
	return p->ring_count;
}

static void page_ack(struct page *p, uint32_t seq)
{
	while (p->ring_count && seq_le(p->ring_seq[p->ring_head], seq)) {
		p->inflight_bytes -= p->ring_size[p->ring_head];
		p->ring_head = (p->ring_head + 1) % INFLIGHT_MAX_FRAMES;
		p->ring_count--;
	}
}

static void page_push(struct page *p, uint32_t seq, uint32_t size)
{
	unsigned tail = (p->ring_head + p->ring_count) % INFLIGHT_MAX_FRAMES;
	p->ring_seq[tail] = seq;
	p->ring_size[tail] = size;
	p->ring_count++;
	p->inflight_bytes += size;
}

static bool page_open(const struct page *p)
{
	return !p->gone &&
	       soup_websocket_connection_get_state(p->ws) == SOUP_WEBSOCKET_STATE_OPEN;
}

static void page_send_text(struct page *p, const char *text)
{
	if (page_open(p))
		soup_websocket_connection_send_text(p->ws, text);
}

static void broadcast_text(struct viewer *v, const char *text)
{
	for (guint i = 0; i < v->pages->len; i++)
		page_send_text(g_ptr_array_index(v->pages, i), text);
}

static char *upstream_status_json(struct viewer *v)
{
	char *addr = g_strescape(v->addr, NULL);
	char *name = g_strescape(v->server_name, NULL);
	char *s = g_strdup_printf("{\"type\":\"upstream\",\"connected\":%s,\"address\":\"%s\","
				  "\"scanout\":%u,\"server\":\"%s\"}",
				  v->up ? "true" : "false", addr, v->scanout, name);
	g_free(addr);
	g_free(name);
	return s;
}

/* ---- upstream ---- */

static void upstream_lost(struct viewer *v, const char *why);
static void upstream_schedule_drain(struct viewer *v);

static void request_keyframe(struct viewer *v)
{
	if (!v->up)
		return;
	int64_t now = mono_ns();
	if (v->key_pending && now - v->key_req_ns < KEY_RETRY_NS)
		return;
	struct hfe_msg m = { .hdr = { .type = HFE_MSG_KEYFRAME_REQ,
				      .session_id = (uint16_t)v->scanout } };
	struct hfe_err err = { 0 };
	if (hfe_client_send_msg(v->up, &m, SEND_TIMEOUT_MS, &err) < 0) {
		upstream_lost(v, err.msg);
		return;
	}
	v->key_pending = true;
	v->key_req_ns = now;
	v->key_requests++;
	/* A send may have read replies into the client's buffer: the socket
	 * will not signal them, so look now. */
	upstream_schedule_drain(v);
}

/* Ask for an IDR if a page waits for one and has room to take it. */
static void maybe_request_keyframe(struct viewer *v)
{
	for (guint i = 0; i < v->pages->len; i++) {
		struct page *p = g_ptr_array_index(v->pages, i);
		if (!p->gone && p->waiting_key && page_inflight(p) <= INFLIGHT_RESUME_FRAMES) {
			request_keyframe(v);
			return;
		}
	}
}

static void fan_out(struct viewer *v, GBytes *msg, uint32_t seq, bool key)
{
	uint32_t size = (uint32_t)g_bytes_get_size(msg);
	for (guint i = 0; i < v->pages->len; i++) {
		struct page *p = g_ptr_array_index(v->pages, i);
		if (!page_open(p))
			continue;
		if (p->waiting_key && !key) {
			p->frames_skipped++;
			continue;
		}
		if (page_inflight(p) >= INFLIGHT_MAX_FRAMES ||
		    (page_inflight(p) && p->inflight_bytes + size > INFLIGHT_MAX_BYTES)) {
			/* Too far behind: skip it; once it has caught up it
			 * gets an IDR (maybe_request_keyframe on its acks). */
			if (!p->waiting_key) {
				p->resyncs++;
				say("viewer %u is %u frames behind: skipping to a keyframe", p->id,
				    page_inflight(p));
			}
			p->waiting_key = true;
			p->frames_skipped++;
			continue;
		}
		soup_websocket_connection_send_message(p->ws, SOUP_WEBSOCKET_DATA_BINARY, msg);
		page_push(p, seq, size);
		p->waiting_key = false;
		p->frames_sent++;
		p->bytes_sent += size;
	}
}

static void handle_frame(struct viewer *v, const struct hfe_msg *m)
{
	int64_t recv_ns = mono_ns();
	size_t pos = 0, total = 0;
	const uint8_t *nal;
	uint32_t len;

	/* This host sends one unit per access unit; join several anyway. */
	while (hfe_nal_next(m, &pos, &nal, &len))
		total += len;
	if (!total)
		return;
	uint8_t *buf = g_malloc(WS_HEADER_SIZE + total);
	size_t off = WS_HEADER_SIZE;
	pos = 0;
	while (hfe_nal_next(m, &pos, &nal, &len)) {
		memcpy(buf + off, nal, len);
		off += len;
	}

	bool key = m->u.frame_resp.is_keyframe != 0;
	uint32_t seq = ++v->seq;
	buf[0] = WS_VERSION;
	buf[1] = key ? WS_FLAG_KEY : 0;
	put_le16(buf + 2, WS_HEADER_SIZE);
	put_le32(buf + 4, seq);
	put_le64(buf + 8, m->u.frame_resp.pts);
	put_le64(buf + 16, recv_ns);
	put_le64(buf + 24, mono_ns());

	v->frames_in++;
	v->bytes_in += total;
	if (key) {
		v->keyframes_in++;
		v->key_pending = false;
	}
	GBytes *msg = g_bytes_new_take(buf, WS_HEADER_SIZE + total);
	fan_out(v, msg, seq, key);
	/* After sending: the disk does not delay the pages. */
	if (v->recording)
		recorder_write(&v->rec, buf + WS_HEADER_SIZE, total, m->u.frame_resp.pts, key);
	g_bytes_unref(msg);
}

/* Handle every message already available. Returns false if the connection
 * was lost (v->up is then NULL). */
static bool upstream_drain(struct viewer *v)
{
	for (int n = 0; n < DRAIN_BATCH; n++) {
		struct hfe_msg m;
		struct hfe_err err = { 0 };
		int r = hfe_client_recv(v->up, &m, 0, &err);
		if (r < 0) {
			upstream_lost(v, err.msg);
			return false;
		}
		if (r == 0)
			return true;
		switch (m.hdr.type) {
		case HFE_MSG_FRAME_RESPONSE:
			if (m.hdr.session_id == v->scanout)
				handle_frame(v, &m);
			break;
		case HFE_MSG_ERROR:
			say("host at %s: ERROR %s (%d): %s", v->addr,
			    hfe_error_name(m.u.error.code), m.u.error.code, m.u.error.message);
			break;
		default:
			break; /* PONG, late replies: nothing to do */
		}
	}
	/* More may be buffered inside the client: come back next turn. */
	upstream_schedule_drain(v);
	return true;
}

static gboolean on_upstream_idle(gpointer data)
{
	struct viewer *v = data;
	v->up_idle = 0;
	if (v->up)
		upstream_drain(v);
	return G_SOURCE_REMOVE;
}

static void upstream_schedule_drain(struct viewer *v)
{
	if (v->up && !v->up_idle)
		v->up_idle = g_idle_add(on_upstream_idle, v);
}

static gboolean on_upstream_fd(gint fd, GIOCondition cond, gpointer data)
{
	struct viewer *v = data;
	(void)fd;
	(void)cond;
	/* HUP/ERR too: recv reads to EOF and reports why. */
	if (!upstream_drain(v))
		return G_SOURCE_REMOVE; /* upstream_lost cleared up_watch */
	return G_SOURCE_CONTINUE;
}

static bool upstream_connect(struct viewer *v)
{
	struct hfe_err err = { 0 };
	struct hfe_hello_resp caps;
	struct hfe_msg m;
	struct hfe_client *c = hfe_client_connect(v->addr, CONNECT_TIMEOUT_MS, &err);

	if (c && hfe_client_hello(c, PROG, &caps, UPSTREAM_TIMEOUT_MS, &err) < 0) {
		hfe_client_close(c);
		c = NULL;
	}
	if (c) {
		m = (struct hfe_msg){ .hdr = { .type = HFE_MSG_SUBSCRIBE,
					       .session_id = (uint16_t)v->scanout } };
		m.u.scanout_id = v->scanout;
		int r = hfe_client_send_msg(c, &m, UPSTREAM_TIMEOUT_MS, &err);
		/* Nothing else is expected before the answer. */
		while (r == 0) {
			r = hfe_client_recv(c, &m, UPSTREAM_TIMEOUT_MS, &err);
			if (r == 0) {
				snprintf(err.msg, sizeof(err.msg),
					 "host at %s did not answer SUBSCRIBE within %d ms",
					 v->addr, UPSTREAM_TIMEOUT_MS);
				r = -1;
			} else if (r == 1 && m.hdr.type == HFE_MSG_ERROR) {
				snprintf(err.msg, sizeof(err.msg),
					 "host at %.60s: ERROR %s: %.160s", v->addr,
					 hfe_error_name(m.u.error.code), m.u.error.message);
				r = -1;
			} else if (r == 1 && m.hdr.type == HFE_MSG_SUBSCRIBE_RESP) {
				if (!m.u.subscribe_resp.success) {
					snprintf(err.msg, sizeof(err.msg),
						 "host at %s has no scanout %u (SUBSCRIBE refused)",
						 v->addr, v->scanout);
					r = -1;
				}
				break;
			} else {
				r = 0;
			}
		}
		if (r < 0) {
			hfe_client_close(c);
			c = NULL;
		}
	}
	if (!c) {
		/* Say it once per distinct reason, not every second. */
		if (strcmp(err.msg, v->last_fail)) {
			say("waiting for the host: %s (retrying every %d ms)", err.msg, RETRY_MS);
			snprintf(v->last_fail, sizeof(v->last_fail), "%s", err.msg);
		}
		return false;
	}

	v->up = c;
	v->last_fail[0] = '\0';
	snprintf(v->server_name, sizeof(v->server_name), "%s", caps.server_name);
	v->key_pending = true; /* the subscribe IDR is on its way */
	v->key_req_ns = mono_ns();
	for (guint i = 0; i < v->pages->len; i++)
		((struct page *)g_ptr_array_index(v->pages, i))->waiting_key = true;
	v->up_watch = g_unix_fd_add(hfe_client_fd(c), G_IO_IN | G_IO_HUP | G_IO_ERR,
				    on_upstream_fd, v);
	upstream_schedule_drain(v);
	say("subscribed to scanout %u at %s (%s)", v->scanout, v->addr, v->server_name);
	char *st = upstream_status_json(v);
	broadcast_text(v, st);
	g_free(st);
	return true;
}

static gboolean on_retry(gpointer data)
{
	struct viewer *v = data;
	if (upstream_connect(v)) {
		v->retry_timer = 0;
		return G_SOURCE_REMOVE;
	}
	return G_SOURCE_CONTINUE;
}

static void upstream_close(struct viewer *v)
{
	if (v->up_watch)
		g_source_remove(v->up_watch);
	if (v->up_idle)
		g_source_remove(v->up_idle);
	v->up_watch = v->up_idle = 0;
	hfe_client_close(v->up);
	v->up = NULL;
}

static void upstream_lost(struct viewer *v, const char *why)
{
	if (!v->up)
		return;
	say("lost the host: %s; reconnecting", why);
	upstream_close(v);
	v->reconnects++;
	char *st = upstream_status_json(v);
	broadcast_text(v, st);
	g_free(st);
	if (!v->retry_timer)
		v->retry_timer = g_timeout_add(RETRY_MS, on_retry, v);
}

/* ---- WebSocket ---- */

static void page_free(struct page *p)
{
	g_signal_handlers_disconnect_by_data(p->ws, p);
	g_object_unref(p->ws);
	g_free(p);
}

static gboolean on_reap(gpointer data)
{
	struct viewer *v = data;
	v->reaper = 0;
	for (guint i = 0; i < v->pages->len;) {
		struct page *p = g_ptr_array_index(v->pages, i);
		if (p->gone) {
			g_ptr_array_remove_index(v->pages, i);
			page_free(p);
		} else {
			i++;
		}
	}
	return G_SOURCE_REMOVE;
}

static void on_ws_closed(SoupWebsocketConnection *ws, gpointer data)
{
	struct page *p = data;
	struct viewer *v = p->v;
	(void)ws;
	if (p->gone)
		return;
	p->gone = true;
	say("viewer %u (%s) left: %" PRIu64 " frames, %.1f MB sent, %" PRIu64 " skipped", p->id,
	    p->peer, p->frames_sent, (double)p->bytes_sent / 1e6, p->frames_skipped);
	/* Freed outside any loop over the pages. */
	if (!v->reaper)
		v->reaper = g_idle_add(on_reap, v);
}

static void on_ws_message(SoupWebsocketConnection *ws, gint type, GBytes *message,
			  gpointer data)
{
	struct page *p = data;
	struct viewer *v = p->v;
	char text[128];
	gsize n;
	const char *d = g_bytes_get_data(message, &n);
	(void)ws;

	if (type != SOUP_WEBSOCKET_DATA_TEXT || p->gone || n >= sizeof(text))
		return;
	memcpy(text, d, n);
	text[n] = '\0';

	if (!strncmp(text, "ack ", 4)) {
		char *end;
		errno = 0;
		unsigned long seq = strtoul(text + 4, &end, 10);
		if (!errno && end != text + 4 && !*end && seq <= UINT32_MAX) {
			page_ack(p, (uint32_t)seq);
			if (p->waiting_key)
				maybe_request_keyframe(v);
		}
	} else if (!strncmp(text, "ping ", 5)) {
		/* Clock sync: echo the page's time with ours (CLOCK_MONOTONIC ms). */
		char *end;
		double t = g_ascii_strtod(text + 5, &end);
		if (end != text + 5 && !*end && t > -1e12 && t < 1e12) {
			char reply[128];
			snprintf(reply, sizeof(reply),
				 "{\"type\":\"pong\",\"client\":%.3f,\"server\":%.3f}", t,
				 (double)mono_ns() / 1e6);
			page_send_text(p, reply);
		}
	} else if (!strcmp(text, "keyframe")) {
		/* The page reset its decoder: it needs an IDR. */
		if (!p->waiting_key)
			p->resyncs++;
		p->waiting_key = true;
		maybe_request_keyframe(v);
	}
}

static void on_ws_error(SoupWebsocketConnection *ws, GError *error, gpointer data)
{
	struct page *p = data;
	(void)ws;
	say("viewer %u: %s", p->id, error->message);
}

static gboolean host_allowed(SoupServerMessage *msg);

static void on_refused_closed(SoupWebsocketConnection *ws, gpointer data)
{
	(void)data;
	g_object_unref(ws);
}

static void on_ws(SoupServer *server, SoupServerMessage *msg, const char *path,
		  SoupWebsocketConnection *ws, gpointer data)
{
	struct viewer *v = data;
	(void)server;
	(void)path;

	/* Another site's page must not watch the screen: only same-origin
	 * pages (or non-browser clients, which send no Origin). */
	SoupMessageHeaders *h = soup_server_message_get_request_headers(msg);
	const char *origin = soup_message_headers_get_one(h, "Origin");
	const char *host = soup_message_headers_get_one(h, "Host");
	if (!host_allowed(msg) ||
	    (origin && (!host || !g_str_has_prefix(origin, "http") ||
			strcmp(strstr(origin, "://") ? strstr(origin, "://") + 3 : "", host)))) {
		say("refused a WebSocket from origin %s (host %s)", origin ? origin : "-",
		    host ? host : "-");
		/* Keep it until the close handshake is done. */
		g_signal_connect(g_object_ref(ws), "closed", G_CALLBACK(on_refused_closed), NULL);
		soup_websocket_connection_close(ws, SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION,
						"cross-origin");
		return;
	}

	unsigned open_pages = 0;
	for (guint i = 0; i < v->pages->len; i++)
		open_pages += !((struct page *)g_ptr_array_index(v->pages, i))->gone;
	if (open_pages >= MAX_PAGES) {
		say("refused a viewer: %u are watching already", open_pages);
		g_signal_connect(g_object_ref(ws), "closed", G_CALLBACK(on_refused_closed), NULL);
		soup_websocket_connection_close(ws, 1013 /* try again later */,
						"too many viewers");
		return;
	}

	struct page *p = g_new0(struct page, 1);
	p->v = v;
	p->ws = g_object_ref(ws);
	p->id = ++v->next_page_id;
	p->waiting_key = true;
	const char *rh = soup_server_message_get_remote_host(msg);
	snprintf(p->peer, sizeof(p->peer), "%s", rh ? rh : "?");
	/* Pages send acks and pings only. */
	soup_websocket_connection_set_max_incoming_payload_size(ws, 4096);
	g_signal_connect(ws, "message", G_CALLBACK(on_ws_message), p);
	g_signal_connect(ws, "closed", G_CALLBACK(on_ws_closed), p);
	g_signal_connect(ws, "error", G_CALLBACK(on_ws_error), p);
	g_ptr_array_add(v->pages, p);
	say("viewer %u connected from %s", p->id, p->peer);

	char hello[160];
	snprintf(hello, sizeof(hello),
		 "{\"type\":\"hello\",\"version\":%d,\"viewer\":%u,\"scanout\":%u}", WS_VERSION,
		 p->id, v->scanout);
	page_send_text(p, hello);
	char *st = upstream_status_json(v);
	page_send_text(p, st);
	g_free(st);
	/* Joined mid-GOP: nothing until an IDR, and ask for one now. */
	maybe_request_keyframe(v);
}

/* ---- HTTP ---- */

/* Against DNS rebinding: answer only requests addressed to an IP literal or
 * localhost (what --http binds), not to some other name. */
static gboolean host_allowed(SoupServerMessage *msg)
{
	SoupMessageHeaders *h = soup_server_message_get_request_headers(msg);
	const char *host = soup_message_headers_get_one(h, "Host");
	if (!host)
		return TRUE; /* HTTP/1.0 client */
	char name[256];
	const char *end;
	if (host[0] == '[') {
		end = strchr(host, ']');
		if (!end)
			return FALSE;
		host++;
	} else {
		end = strrchr(host, ':');
		if (!end)
			end = host + strlen(host);
	}
	size_t n = (size_t)(end - host);
	if (n == 0 || n >= sizeof(name))
		return FALSE;
	memcpy(name, host, n);
	name[n] = '\0';
	if (!g_ascii_strcasecmp(name, "localhost") || g_hostname_is_ip_address(name))
		return TRUE;
	return FALSE;
}

static void serve_resource(SoupServerMessage *msg, const char *name, const char *type)
{
	GBytes *b = g_resources_lookup_data(name, G_RESOURCE_LOOKUP_FLAGS_NONE, NULL);
	if (!b) {
		soup_server_message_set_status(msg, SOUP_STATUS_NOT_FOUND, NULL);
		return;
	}
	gsize n;
	const void *d = g_bytes_get_data(b, &n);
	soup_server_message_set_response(msg, type, SOUP_MEMORY_COPY, d, n);
	soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
	g_bytes_unref(b);
}

static char *stats_json(struct viewer *v)
{
	GString *s = g_string_new(NULL);
	char *addr = g_strescape(v->addr, NULL);
	g_string_append_printf(s,
			       "{\"upstream\":{\"connected\":%s,\"address\":\"%s\",\"scanout\":%u,"
			       "\"frames\":%" PRIu64 ",\"keyframes\":%" PRIu64 ",\"bytes\":%" PRIu64
			       ",\"keyframe_requests\":%" PRIu64 ",\"reconnects\":%" PRIu64 "},",
			       v->up ? "true" : "false", addr, v->scanout, v->frames_in,
			       v->keyframes_in, v->bytes_in, v->key_requests, v->reconnects);
	g_free(addr);
	g_string_append(s, "\"viewers\":[");
	bool first = true;
	for (guint i = 0; i < v->pages->len; i++) {
		struct page *p = g_ptr_array_index(v->pages, i);
		if (p->gone)
			continue;
		g_string_append_printf(s,
				       "%s{\"id\":%u,\"frames_sent\":%" PRIu64
				       ",\"frames_skipped\":%" PRIu64 ",\"bytes_sent\":%" PRIu64
				       ",\"inflight\":%u,\"resyncs\":%" PRIu64
				       ",\"waiting_key\":%s}",
				       first ? "" : ",", p->id, p->frames_sent, p->frames_skipped,
				       p->bytes_sent, page_inflight(p), p->resyncs,
				       p->waiting_key ? "true" : "false");
		first = false;
	}
	g_string_append(s, "],\"record\":");
	if (v->recording) {
		char *path = g_strescape(v->rec.path, NULL);
		g_string_append_printf(s, "{\"path\":\"%s\",\"frames\":%" PRIu64 "}", path,
				       v->rec.frames);
		g_free(path);
	} else {
		g_string_append(s, "null");
	}
	g_string_append(s, "}\n");
	return g_string_free(s, FALSE);
}

static void on_http(SoupServer *server, SoupServerMessage *msg, const char *path,
		    GHashTable *query, gpointer data)
{
	struct viewer *v = data;
	const char *method = soup_server_message_get_method(msg);
	(void)server;
	(void)query;

	if (!host_allowed(msg)) {
		soup_server_message_set_status(msg, SOUP_STATUS_FORBIDDEN, NULL);
		return;
	}
	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		soup_server_message_set_status(msg, SOUP_STATUS_METHOD_NOT_ALLOWED, NULL);
		return;
	}
	SoupMessageHeaders *rh = soup_server_message_get_response_headers(msg);
	soup_message_headers_replace(rh, "Cache-Control", "no-store");
	soup_message_headers_replace(rh, "X-Content-Type-Options", "nosniff");
	if (!strcmp(path, "/") || !strcmp(path, "/index.html")) {
		serve_resource(msg, RES_PREFIX "index.html", "text/html; charset=utf-8");
	} else if (!strcmp(path, "/viewer.js")) {
		serve_resource(msg, RES_PREFIX "viewer.js", "text/javascript; charset=utf-8");
	} else if (!strcmp(path, "/stats.json")) {
		char *j = stats_json(v);
		soup_server_message_set_response(msg, "application/json", SOUP_MEMORY_TAKE, j,
						 strlen(j));
		soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
	} else {
		soup_server_message_set_status(msg, SOUP_STATUS_NOT_FOUND, NULL);
	}
}

/* "HOST:PORT", HOST an IP literal (IPv6 in brackets) or localhost. */
static GSocketAddress *parse_http(const char *s)
{
	char host[256];
	const char *colon;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return NULL;
		if ((size_t)(rb - s - 1) >= sizeof(host))
			return NULL;
		memcpy(host, s + 1, (size_t)(rb - s - 1));
		host[rb - s - 1] = '\0';
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || (size_t)(colon - s) >= sizeof(host))
			return NULL;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
	}
	char *end;
	errno = 0;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || port > 65535)
		return NULL;
	if (!strcmp(host, "localhost"))
		snprintf(host, sizeof(host), "127.0.0.1");
	return g_inet_socket_address_new_from_string(host, (guint)port);
}

static bool start_http(struct viewer *v)
{
	GError *error = NULL;
	GSocketAddress *sa = parse_http(v->http);
	if (!sa) {
		say("--http: expected IP:PORT (e.g. 127.0.0.1:8080 or [::1]:8080), got '%s'",
		    v->http);
		v->exit_code = EXIT_USAGE;
		return false;
	}
	v->server = soup_server_new("server-header", PROG " ", NULL);
	/* H.264 does not deflate; spare the CPU. */
	soup_server_remove_websocket_extension(v->server, SOUP_TYPE_WEBSOCKET_EXTENSION_DEFLATE);
	soup_server_add_websocket_handler(v->server, "/ws", NULL, NULL, on_ws, v, NULL);
	soup_server_add_handler(v->server, NULL, on_http, v, NULL);
	if (!soup_server_listen(v->server, sa, 0, &error)) {
		say("cannot listen on %s: %s", v->http, error->message);
		g_error_free(error);
		g_object_unref(sa);
		return false;
	}
	g_object_unref(sa);

	GSList *uris = soup_server_get_uris(v->server);
	if (uris) {
		GUri *u = uris->data;
		const char *h = g_uri_get_host(u);
		bool any = !strcmp(h, "0.0.0.0") || !strcmp(h, "::");
		bool v6 = strchr(h, ':') != NULL;
		v->url = g_strdup_printf("http://%s%s%s:%d/", v6 && !any ? "[" : "",
					 any ? "127.0.0.1" : h, v6 && !any ? "]" : "",
					 g_uri_get_port(u));
	}
	g_slist_free_full(uris, (GDestroyNotify)g_uri_unref);
	return v->url != NULL;
}

/* ---- main ---- */

static gboolean on_tick(gpointer data)
{
	struct viewer *v = data;
	maybe_request_keyframe(v);
	return G_SOURCE_CONTINUE;
}

static gboolean on_signal(gpointer data)
{
	struct viewer *v = data;
	g_main_loop_quit(v->loop);
	return G_SOURCE_CONTINUE;
}

/* Close every page with a Going Away and give the close frames a moment. */
static void close_pages(struct viewer *v)
{
	for (guint i = 0; i < v->pages->len; i++) {
		struct page *p = g_ptr_array_index(v->pages, i);
		if (page_open(p))
			soup_websocket_connection_close(p->ws, SOUP_WEBSOCKET_CLOSE_GOING_AWAY,
							"viewer stopped");
	}
	int64_t deadline = mono_ns() + 500LL * 1000000;
	for (;;) {
		bool open = false;
		for (guint i = 0; i < v->pages->len; i++) {
			struct page *p = g_ptr_array_index(v->pages, i);
			open |= soup_websocket_connection_get_state(p->ws) !=
				SOUP_WEBSOCKET_STATE_CLOSED;
		}
		if (!open || mono_ns() > deadline)
			break;
		g_main_context_iteration(NULL, FALSE);
		g_usleep(2000);
	}
	for (guint i = 0; i < v->pages->len; i++)
		page_free(g_ptr_array_index(v->pages, i));
	g_ptr_array_set_size(v->pages, 0);
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " --connect ADDR --scanout N [--http IP:PORT] [--record FILE.mp4]\n"
		"Watch a scanout live in a browser: subscribe to it on a helix-frame-export host\n"
		"and serve a page that decodes the H.264 with WebCodecs.\n"
		"\n"
		"  -c, --connect ADDR   host address (unix:PATH, tcp:HOST:PORT, vsock:CID:PORT)\n"
		"  -s, --scanout N      scanout id (0..%u)\n"
		"      --http IP:PORT   where to serve the page (default 127.0.0.1:8080;\n"
		"                       port 0 picks a free one; the URL is printed)\n"
		"  -r, --record FILE    also write the stream to an MP4 (finished at exit)\n"
		"  -h, --help           this help\n"
		"  -V, --version        print the version\n"
		"\n"
		"WebCodecs needs a secure context: open the page as http://127.0.0.1 or\n"
		"http://localhost (use an SSH tunnel from another machine). Ctrl-C stops.\n",
		HFE_MAX_SCANOUTS - 1);
}

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die_usage(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see '" PROG " --help')\n");
	exit(EXIT_USAGE);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "connect", required_argument, NULL, 'c' },
		{ "scanout", required_argument, NULL, 's' },
		{ "http", required_argument, NULL, 'H' },
		{ "record", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	struct viewer v = { .scanout = UINT32_MAX, .http = "127.0.0.1:8080" };
	const char *record = NULL;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:s:r:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			v.addr = optarg;
			break;
		case 's': {
			char *end;
			errno = 0;
			unsigned long n = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || *optarg == '-' ||
			    n >= HFE_MAX_SCANOUTS)
				die_usage("--scanout: expected a number 0..%u, got '%s'",
					  HFE_MAX_SCANOUTS - 1, optarg);
			v.scanout = (uint32_t)n;
			break;
		}
		case 'H':
			v.http = optarg;
			break;
		case 'r':
			record = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("%s (" PROG ")\n", hfe_version_string());
			return 0;
		case ':':
			die_usage("option '%s' needs a value", argv[optind - 1]);
		default:
			die_usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		die_usage("unexpected argument '%s'", argv[optind]);
	if (!v.addr)
		die_usage("--connect ADDR is required");
	struct hfe_addr a;
	char why[256];
	if (hfe_addr_parse(v.addr, &a, why, sizeof(why)) < 0)
		die_usage("--connect: %s", why);
	if (v.scanout == UINT32_MAX)
		die_usage("--scanout N is required");
	if (record && !*record)
		die_usage("--record: empty file name");

	signal(SIGPIPE, SIG_IGN);
	av_log_set_level(AV_LOG_WARNING);
	say("%s", hfe_version_string());

	v.loop = g_main_loop_new(NULL, FALSE);
	v.pages = g_ptr_array_new();
	v.exit_code = EXIT_FAILURE;
	if (record) {
		v.rec.path = g_canonicalize_filename(record, NULL);
		v.recording = true;
		say("will record to %s (from the first keyframe)", v.rec.path);
	}
	if (!start_http(&v))
		goto out;

	if (!upstream_connect(&v))
		v.retry_timer = g_timeout_add(RETRY_MS, on_retry, &v);
	v.tick_timer = g_timeout_add(TICK_MS, on_tick, &v);
	g_unix_signal_add(SIGINT, on_signal, &v);
	g_unix_signal_add(SIGTERM, on_signal, &v);

	printf("%s: open %s in a browser\n", PROG, v.url);
	fflush(stdout);
	g_main_loop_run(v.loop);

	say("stopping: %" PRIu64 " frames received (%" PRIu64 " keyframes, %" PRIu64
	    " requested), %.1f MB",
	    v.frames_in, v.keyframes_in, v.key_requests, (double)v.bytes_in / 1e6);
	v.exit_code = 0;
out:
	close_pages(&v);
	if (v.server) {
		soup_server_disconnect(v.server);
		g_object_unref(v.server);
	}
	upstream_close(&v);
	if (v.retry_timer)
		g_source_remove(v.retry_timer);
	if (v.tick_timer)
		g_source_remove(v.tick_timer);
	if (v.reaper)
		g_source_remove(v.reaper);
	recorder_close(&v.rec);
	if (v.rec.failed && v.exit_code == 0)
		v.exit_code = EXIT_FAILURE;
	g_ptr_array_free(v.pages, TRUE);
	g_main_loop_unref(v.loop);
	g_free(v.url);
	return v.exit_code;
}
