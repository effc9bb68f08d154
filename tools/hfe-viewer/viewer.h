/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfe-viewer: watch a scanout live in a browser. The state the parts share
 * and what each part offers the others.
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
 *
 * The parts: main.c (options, start, shutdown), upstream.c (the HXFR
 * subscription), pages.c (the WebSocket pages and their flow control),
 * http.c (the HTTP server: page, stats), access.c (the token, host and
 * origin checks every request passes), tls.c (the HTTPS certificate),
 * record.c (the MP4), input.c (the pages' keyboard and pointer, forwarded
 * with --control), cursor.c (the VM's cursor to the pages), size.c (the
 * output's size: the page's, or fixed).
 */
#ifndef HFE_VIEWER_H
#define HFE_VIEWER_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>
#include <libsoup/soup.h>

#include "hfe/client.h"
#include "hfe/wire.h"
#include "record.h"

#define PROG "hfe-viewer"
#define EXIT_USAGE 2

#define RETRY_MS 1000 /* reconnect interval */

/* Per page: frames sent but not yet acknowledged. Past either cap the page
 * is skipped until it has caught up, then resynced with an IDR. */
#define INFLIGHT_MAX_FRAMES 60
#define INFLIGHT_MAX_BYTES (8u << 20)
#define INFLIGHT_RESUME_FRAMES 2
#define MAX_PAGES 32

/* cursor.c: recent distinct cursor shapes kept, each sent to a page in full
 * once; ids alive at once differ modulo this (the page keeps one per id % it). */
#define CURSOR_SLOTS 16

/* WebSocket protocol version (docs/viewer.md). */
#define WS_VERSION 1

struct viewer;

enum size_mode { SIZE_GUEST, SIZE_PAGE, SIZE_FIXED };

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

	/* cursor.c: the shape id of each cache slot this page has in full (0: none) */
	uint32_t cursor_held[CURSOR_SLOTS];

	/* input.c: what this page holds (released when it goes) */
	uint8_t keys[(HFE_KEY_MAX + 8) / 8];
	uint32_t buttons, x, y;
};

struct viewer {
	/* options */
	const char *addr;
	uint32_t scanout;
	const char *http;
	const char *tls_cert, *tls_key;
	bool control; /* --control: forward the pages' input */
	enum size_mode size_mode; /* --size */
	uint32_t size_w, size_h;  /* --size WxH */
	bool replug;              /* --replug: a new size unplugs and replugs the output */

	GMainLoop *loop;
	SoupServer *server;
	char *url;

	/* access (access.c) */
	char *token;          /* the URL's first path segment */
	GTlsCertificate *tls; /* serving HTTPS */
	uint64_t refused;     /* requests refused: token, host, origin */
	int64_t refused_said_ns;

	/* upstream */
	struct hfe_client *up;
	char server_name[HFE_NAME_LEN];
	guint up_watch, up_idle, retry_timer, tick_timer;
	char last_fail[HFE_ERROR_MSG_LEN];
	uint32_t seq; /* access units received, all connections: the page's frame number */
	bool key_pending;
	int64_t key_req_ns;
	uint64_t frames_in, keyframes_in, bytes_in, key_requests, reconnects;
	bool up_input;             /* the host takes input on this connection */
	uint32_t up_max_w, up_max_h; /* its limits: input positions below them */

	/* cursor.c: the channel is on (asked for and granted), the recent shapes,
	 * the current one (-1: none), the latest position */
	bool up_cursor;
	struct cursor_cached {
		uint32_t id; /* 0: empty; else slot + 1 + k * CURSOR_SLOTS */
		uint32_t hash;
		uint64_t used; /* cursor_shapes when last current: the oldest is reused */
		struct hfe_cursor_shape shape;
		uint8_t *bgra;
		size_t len;
	} cursor_cache[CURSOR_SLOTS];
	int cursor_cur;
	char *cursor_pos_json;
	uint64_t cursor_shapes, cursor_moves; /* received from the host */
	uint64_t cursor_sent_full, cursor_sent_ref; /* shape messages to pages */

	/* input.c */
	int64_t motion_ns; /* last pure motion forwarded */
	struct hfe_input_pointer motion_due; /* the latest thinned move ... */
	guint motion_timer;                  /* ... sent when the gap is over */
	uint64_t input_in, input_sent, input_thinned, input_bad;

	/* size.c */
	uint32_t size_want_w, size_want_h; /* the last page's (or --size WxH) */
	uint32_t size_sent_w, size_sent_h; /* ... as last sent on this connection */
	uint32_t size_asked_w, size_asked_h; /* clamped, as the host got it */
	guint size_timer, replug_timer;
	unsigned replug_tries;
	uint32_t stream_w, stream_h; /* from the last IDR's SPS */
	uint64_t size_requests, size_granted, size_refused;

	/* pages */
	GPtrArray *pages;
	unsigned next_page_id;
	guint reaper;

	struct recorder rec;
	bool recording;
	int exit_code;
};

/* main.c */
int64_t mono_ns(void);
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* upstream.c */
bool upstream_connect(struct viewer *v);
gboolean on_retry(gpointer data); /* a g_timeout: upstream_connect until it works */
void upstream_close(struct viewer *v);
void request_keyframe(struct viewer *v);
char *upstream_status_json(struct viewer *v); /* g_free it */
void upstream_lost(struct viewer *v, const char *why);
void upstream_schedule_drain(struct viewer *v);

/* input.c */
bool input_enabled(const struct viewer *v);
/* "key ..." / "ptr ..." from a page: checked, forwarded upstream. */
void page_input(struct page *p, char *text);
/* The page is going: release what it holds. */
void page_input_release(struct page *p);
void input_stop(struct viewer *v);

/* cursor.c */
/* Ask for the cursor channel: the host offers it and no MP4 needs the
 * cursor in its pictures. */
bool cursor_wanted(const struct viewer *v, uint16_t host_features);
void cursor_shape(struct viewer *v, const struct hfe_msg *m);
void cursor_position(struct viewer *v, const struct hfe_msg *m);
/* A new page gets the cursor as it is. */
void cursor_page_joined(struct page *p);
/* Upstream lost: the pages hide the cursor; the next host sends its own. */
void cursor_forget(struct viewer *v);
/* Shutdown: the shapes kept. */
void cursor_free(struct viewer *v);

/* size.c */
/* --size ARG: page, guest or WxH; false if malformed. */
bool size_parse(struct viewer *v, const char *arg);
const char *size_mode_name(const struct viewer *v);
/* "size W H" from a page (--size page). */
void size_page(struct page *p, const char *text);
/* Upstream (re)connected: ask for the size wanted, if any. */
void size_upstream_ready(struct viewer *v);
/* An IDR from the host: note the stream's size. */
void size_keyframe(struct viewer *v, const uint8_t *annexb, size_t len);
/* SCANOUT_RESP from the host. */
void size_answer(struct viewer *v, const struct hfe_msg *m);
void size_stop(struct viewer *v);

/* pages.c */
unsigned page_inflight(const struct page *p);
/* Queued: the page is open. */
bool page_send_text(struct page *p, const char *text);
void broadcast_text(struct viewer *v, const char *text);
/* One frame message to every page that can take it. */
void fan_out(struct viewer *v, GBytes *msg, uint32_t seq, bool key);
/* Ask for an IDR if a page waits for one and has room to take it. */
void maybe_request_keyframe(struct viewer *v);
/* libsoup's WebSocket handler for /ws. */
void on_ws(SoupServer *server, SoupServerMessage *msg, const char *path,
	   SoupWebsocketConnection *ws, gpointer data);
/* Close every page with a Going Away, give the close frames a moment, free them. */
void close_pages(struct viewer *v);

/* access.c */
/* The token from --token-file (TOKEN_FILE), HFE_VIEWER_TOKEN or random. */
bool access_init(struct viewer *v, const char *token_file);
/* PATH after its "/TOKEN" prefix ("" or "/..."), NULL without the token. */
const char *access_strip_token(const struct viewer *v, const char *path);
/* Addressed to us, not to a name a rebinding DNS gave our address. */
bool host_allowed(const struct viewer *v, SoupServerMessage *msg);
/* No Origin (not a browser) or the page's own. */
bool origin_allowed(const struct viewer *v, SoupServerMessage *msg);

/* http.c */
bool start_http(struct viewer *v);

/* tls.c: the certificate and key, proven in a handshake; NULL after saying why. */
GTlsCertificate *tls_load(const char *cert_file, const char *key_file);

#endif
