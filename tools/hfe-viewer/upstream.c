/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfe-viewer: the upstream side, one HXFR subscription to the scanout.
 *
 * Connect, HELLO, SUBSCRIBE (retried every RETRY_MS while the host is away),
 * then every FRAME_RESPONSE becomes one WebSocket frame message (a 32-byte
 * header, docs/viewer.md, and the access unit) handed to the pages and the
 * recorder. Keyframe requests for the pages go up from here, at most one
 * per KEY_RETRY_NS while the last is unanswered.
 */
#include <stdio.h>
#include <string.h>

#include <glib-unix.h>

#include "hfe/h264.h"
#include "viewer.h"

#define CONNECT_TIMEOUT_MS 1000  /* blocks the loop: keep it short */
#define UPSTREAM_TIMEOUT_MS 2000 /* HELLO, SUBSCRIBE */
#define SEND_TIMEOUT_MS 200      /* KEYFRAME_REQ */
#define KEY_RETRY_NS (1000LL * 1000000) /* re-request an IDR that did not come */
#define DRAIN_BATCH 256          /* upstream messages per main-loop turn */

/* WebSocket frame message header (docs/viewer.md). */
#define WS_HEADER_SIZE 32
#define WS_FLAG_KEY 0x01


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

char *upstream_status_json(struct viewer *v)
{
	char *addr = g_strescape(v->addr, NULL);
	char *name = g_strescape(v->server_name, NULL);
	char *s = g_strdup_printf("{\"type\":\"upstream\",\"connected\":%s,\"address\":\"%s\","
				  "\"scanout\":%u,\"server\":\"%s\",\"input\":%s,\"cursor\":%s,"
				  "\"size\":\"%s\"}",
				  v->up ? "true" : "false", addr, v->scanout, name,
				  input_enabled(v) ? "true" : "false", v->up_cursor ? "true" : "false",
				  size_mode_name(v));
	g_free(addr);
	g_free(name);
	return s;
}

void request_keyframe(struct viewer *v)
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

static void handle_frame(struct viewer *v, const struct hfe_msg *m)
{
	int64_t recv_ns = mono_ns();
	size_t pos = 0, total = 0;
	const uint8_t *nal;
	uint32_t len;

	/* This host sends one unit per access unit; join several anyway, as
	 * Annex B (WebCodecs and the MP4 take nothing else). */
	while (hfe_nal_next(m, &pos, &nal, &len))
		total += hfe_h264_put_annexb(NULL, nal, len);
	if (!total)
		return;
	uint8_t *buf = g_malloc(WS_HEADER_SIZE + total);
	size_t off = WS_HEADER_SIZE;
	pos = 0;
	while (hfe_nal_next(m, &pos, &nal, &len))
		off += hfe_h264_put_annexb(buf + off, nal, len);

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
		size_keyframe(v, buf + WS_HEADER_SIZE, total);
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
		case HFE_MSG_CURSOR_SHAPE:
			if (m.hdr.session_id == v->scanout && v->up_cursor)
				cursor_shape(v, &m);
			break;
		case HFE_MSG_CURSOR_POSITION:
			if (m.hdr.session_id == v->scanout && v->up_cursor)
				cursor_position(v, &m);
			break;
		case HFE_MSG_SCANOUT_RESP:
			size_answer(v, &m);
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

void upstream_schedule_drain(struct viewer *v)
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

bool upstream_connect(struct viewer *v)
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
					       .flags = cursor_wanted(v, caps.features)
								? HFE_FLAG_CURSOR
								: 0,
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
	v->up_input = caps.features & HFE_FEATURE_INPUT;
	v->up_cursor = cursor_wanted(v, caps.features);
	v->up_max_w = caps.max_width;
	v->up_max_h = caps.max_height;
	if (v->control && !v->up_input)
		say("--control: the host at %s takes no input on this listener (connect to its "
		    "control listener); the pages' input is dropped", v->addr);
	snprintf(v->server_name, sizeof(v->server_name), "%s", caps.server_name);
	v->key_pending = true; /* the subscribe IDR is on its way */
	v->key_req_ns = mono_ns();
	for (guint i = 0; i < v->pages->len; i++)
		((struct page *)g_ptr_array_index(v->pages, i))->waiting_key = true;
	v->up_watch = g_unix_fd_add(hfe_client_fd(c), G_IO_IN | G_IO_HUP | G_IO_ERR,
				    on_upstream_fd, v);
	upstream_schedule_drain(v);
	size_upstream_ready(v);
	say("subscribed to scanout %u at %s (%s)%s%s", v->scanout, v->addr, v->server_name,
	    input_enabled(v) ? "; forwarding the pages' input" : "",
	    v->up_cursor ? "; the cursor as its own channel" : "");
	char *st = upstream_status_json(v);
	broadcast_text(v, st);
	g_free(st);
	return true;
}

gboolean on_retry(gpointer data)
{
	struct viewer *v = data;
	if (upstream_connect(v)) {
		v->retry_timer = 0;
		return G_SOURCE_REMOVE;
	}
	return G_SOURCE_CONTINUE;
}

void upstream_close(struct viewer *v)
{
	if (v->up_watch)
		g_source_remove(v->up_watch);
	if (v->up_idle)
		g_source_remove(v->up_idle);
	v->up_watch = v->up_idle = 0;
	hfe_client_close(v->up);
	v->up = NULL;
}

void upstream_lost(struct viewer *v, const char *why)
{
	if (!v->up)
		return;
	say("lost the host: %s; reconnecting", why);
	upstream_close(v);
	if (v->up_cursor)
		cursor_forget(v);
	v->up_cursor = false;
	v->reconnects++;
	char *st = upstream_status_json(v);
	broadcast_text(v, st);
	g_free(st);
	if (!v->retry_timer)
		v->retry_timer = g_timeout_add(RETRY_MS, on_retry, v);
}

