/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfe-viewer: the HTTP server (libsoup 3), plain or HTTPS. Under the
 * run's token it serves the page (compiled in as a GResource), /stats.json,
 * and the WebSocket endpoint ws (pages.c); every request passes access.c's
 * checks first, so nothing is served or upgraded without them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "viewer.h"

/* The page, compiled in (tools/viewer/viewer.gresource.xml; registered by
 * the generated code's constructor). */
#define RES_PREFIX "/org/helix/hfe-viewer/"

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
			       ",\"keyframe_requests\":%" PRIu64 ",\"reconnects\":%" PRIu64
			       ",\"cursor\":%s,\"cursor_shapes\":%" PRIu64
			       ",\"cursor_positions\":%" PRIu64 ",\"cursor_shapes_sent_full\":%" PRIu64
			       ",\"cursor_shapes_sent_ref\":%" PRIu64 "},",
			       v->up ? "true" : "false", addr, v->scanout, v->frames_in,
			       v->keyframes_in, v->bytes_in, v->key_requests, v->reconnects,
			       v->up_cursor ? "true" : "false", v->cursor_shapes, v->cursor_moves,
			       v->cursor_sent_full, v->cursor_sent_ref);
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
	g_string_append_printf(s, "],\"refused\":%" PRIu64 ",\"record\":", v->refused);
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

/* Refuse with STATUS; say why at most once a second (the network may flood
 * us), count the rest. */
static void refuse(struct viewer *v, SoupServerMessage *msg, guint status, const char *why)
{
	v->refused++;
	int64_t now = mono_ns();
	if (!v->refused_said_ns || now - v->refused_said_ns >= 1000000000LL) {
		const char *peer = soup_server_message_get_remote_host(msg);
		say("refused %s from %s (%" PRIu64 " refused so far)", why, peer ? peer : "?",
		    v->refused);
		v->refused_said_ns = now;
	}
	static const char body[] = "hfe-viewer: refused (open the URL hfe-viewer printed)\n";
	soup_server_message_set_response(msg, "text/plain", SOUP_MEMORY_STATIC, body,
					 sizeof(body) - 1);
	soup_server_message_set_status(msg, status, NULL);
}

static void on_http(SoupServer *server, SoupServerMessage *msg, const char *path,
		    GHashTable *query, gpointer data)
{
	struct viewer *v = data;
	const char *method = soup_server_message_get_method(msg);
	(void)server;
	(void)query;

	SoupMessageHeaders *rh = soup_server_message_get_response_headers(msg);
	soup_message_headers_replace(rh, "Cache-Control", "no-store");
	soup_message_headers_replace(rh, "X-Content-Type-Options", "nosniff");
	/* The token is in the URL: no Referer may carry it anywhere. */
	soup_message_headers_replace(rh, "Referrer-Policy", "no-referrer");

	if (!host_allowed(v, msg)) {
		refuse(v, msg, SOUP_STATUS_FORBIDDEN, "a request for another host name");
		return;
	}
	const char *rest = access_strip_token(v, path);
	if (!rest) {
		refuse(v, msg, SOUP_STATUS_FORBIDDEN, "a request without the token");
		return;
	}
	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		soup_server_message_set_status(msg, SOUP_STATUS_METHOD_NOT_ALLOWED, NULL);
		return;
	}
	if (!*rest) {
		/* The page's relative URLs need the trailing slash. */
		char *to = g_strdup_printf("/%s/", v->token);
		soup_server_message_set_redirect(msg, SOUP_STATUS_FOUND, to);
		g_free(to);
	} else if (!strcmp(rest, "/ws")) {
		/* Another site's page must not watch the screen. */
		if (!origin_allowed(v, msg)) {
			const char *o = soup_message_headers_get_one(
				soup_server_message_get_request_headers(msg), "Origin");
			char *e = g_strescape(o, NULL);
			char why[200];
			snprintf(why, sizeof(why), "a WebSocket from origin %.120s", e);
			g_free(e);
			refuse(v, msg, SOUP_STATUS_FORBIDDEN, why);
		}
		/* Else no status: libsoup checks the handshake, upgrades, on_ws. */
	} else if (!strcmp(rest, "/") || !strcmp(rest, "/index.html")) {
		serve_resource(msg, RES_PREFIX "index.html", "text/html; charset=utf-8");
	} else if (!strcmp(rest, "/viewer.js")) {
		serve_resource(msg, RES_PREFIX "viewer.js", "text/javascript; charset=utf-8");
	} else if (!strcmp(rest, "/cursor.js")) {
		serve_resource(msg, RES_PREFIX "cursor.js", "text/javascript; charset=utf-8");
	} else if (!strcmp(rest, "/draw.js")) {
		serve_resource(msg, RES_PREFIX "draw.js", "text/javascript; charset=utf-8");
	} else if (!strcmp(rest, "/stats.json")) {
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

bool start_http(struct viewer *v)
{
	GError *error = NULL;
	GSocketAddress *sa = parse_http(v->http);
	if (!sa) {
		say("--http: expected IP:PORT (e.g. 127.0.0.1:8080 or [::1]:8080), got '%s'",
		    v->http);
		v->exit_code = EXIT_USAGE;
		return false;
	}
	if (v->tls_cert && !(v->tls = tls_load(v->tls_cert, v->tls_key))) {
		g_object_unref(sa);
		return false;
	}
	v->server = soup_server_new("server-header", PROG " ", "tls-certificate", v->tls, NULL);
	/* H.264 does not deflate; spare the CPU. */
	soup_server_remove_websocket_extension(v->server, SOUP_TYPE_WEBSOCKET_EXTENSION_DEFLATE);
	/* One handler for every path, so on_http's checks run before any
	 * WebSocket upgrade (libsoup upgrades only if it set no status). */
	soup_server_add_handler(v->server, NULL, on_http, v, NULL);
	soup_server_add_websocket_handler(v->server, NULL, NULL, NULL, on_ws, v, NULL);
	if (!soup_server_listen(v->server, sa, v->tls ? SOUP_SERVER_LISTEN_HTTPS : 0, &error)) {
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
		v->url = g_strdup_printf("%s://%s%s%s:%d/%s/", v->tls ? "https" : "http",
					 v6 && !any ? "[" : "", any ? "127.0.0.1" : h,
					 v6 && !any ? "]" : "", g_uri_get_port(u), v->token);
	}
	g_slist_free_full(uris, (GDestroyNotify)g_uri_unref);
	return v->url != NULL;
}

