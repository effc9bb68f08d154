/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfe-viewer: the pages, one WebSocket each.
 *
 * Admission (at most MAX_PAGES; access.c's checks ran before the upgrade),
 * the text messages a page sends (ack, ping, keyframe), and per-page flow
 * control: the frames sent
 * and not yet acknowledged sit in a ring; a page past INFLIGHT_MAX_FRAMES or
 * INFLIGHT_MAX_BYTES is skipped until it has caught up and then resynced
 * with an IDR, so a slow page never holds the others back. Closed pages are
 * freed by an idle reaper, never inside a loop over the pages.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "viewer.h"

/* Serial-number order for u32 frame numbers (they may wrap). */
static bool seq_le(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) <= 0;
}

unsigned page_inflight(const struct page *p)
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

bool page_send_text(struct page *p, const char *text)
{
	if (!page_open(p))
		return false;
	soup_websocket_connection_send_text(p->ws, text);
	return true;
}

void broadcast_text(struct viewer *v, const char *text)
{
	for (guint i = 0; i < v->pages->len; i++)
		page_send_text(g_ptr_array_index(v->pages, i), text);
}

/* Ask for an IDR if a page waits for one and has room to take it. */
void maybe_request_keyframe(struct viewer *v)
{
	for (guint i = 0; i < v->pages->len; i++) {
		struct page *p = g_ptr_array_index(v->pages, i);
		if (!p->gone && p->waiting_key && page_inflight(p) <= INFLIGHT_RESUME_FRAMES) {
			request_keyframe(v);
			return;
		}
	}
}

void fan_out(struct viewer *v, GBytes *msg, uint32_t seq, bool key)
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
	page_input_release(p);
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
	} else if (!strncmp(text, "key ", 4) || !strncmp(text, "ptr ", 4)) {
		page_input(p, text);
	} else if (!strncmp(text, "size ", 5)) {
		size_page(p, text);
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

static void on_refused_closed(SoupWebsocketConnection *ws, gpointer data)
{
	(void)data;
	g_object_unref(ws);
}

void on_ws(SoupServer *server, SoupServerMessage *msg, const char *path,
	   SoupWebsocketConnection *ws, gpointer data)
{
	struct viewer *v = data;
	(void)server;
	(void)path;

	/* on_http has checked the token, host and origin before the upgrade. */
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
	cursor_page_joined(p);
	/* Joined mid-GOP: nothing until an IDR, and ask for one now. */
	maybe_request_keyframe(v);
}

/* Close every page with a Going Away and give the close frames a moment. */
void close_pages(struct viewer *v)
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

