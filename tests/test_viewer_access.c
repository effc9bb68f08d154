/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Who may watch through hfe-viewer ($HFE_VIEWER), against the real thing:
 * the daemon ($HFE_DAEMON) serves a test scanout, two viewers subscribe to
 * it, one over plain HTTP with a random token, one over HTTPS (a certificate
 * made here with the openssl CLI) with a token from a file, and a real
 * libsoup client (plus a raw socket) asks them for things:
 *  - without the token, with a wrong one, from a foreign origin, for another
 *    host name, in plain HTTP on the HTTPS port: refused, never upgraded to
 *    a WebSocket, no page ever counted by the viewer;
 *  - with the token: the page, its script, /stats.json, and a WebSocket that
 *    starts with a keyframe and keeps streaming;
 *  - bad tokens and certificates stop the viewer at start with a reason.
 * One behaviour per test case (GLib's g_test).
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <libsoup/soup.h>

#define FPS 15
#define TOKEN_FILE_TOKEN "file-token_0123456789.abc~XYZ"

struct viewer {
	GSubprocess *proc;
	char *url;  /* as printed: SCHEME://127.0.0.1:PORT/TOKEN/ */
	char *base; /* SCHEME://127.0.0.1:PORT */
	char *token;
	guint port;
	char *log;
};

static struct {
	char *dir, *sock, *cert, *key, *other_key, *token_file;
	GSubprocess *daemon;
	struct viewer plain, tls;
	GTlsCertificate *cert_obj;
	SoupSession *session;
} F;

static void run_ok(const char *const *argv)
{
	GError *e = NULL;
	int status = 0;
	gchar *err = NULL;
	if (!g_spawn_sync(F.dir, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, &err,
			  &status, &e) ||
	    !g_spawn_check_wait_status(status, NULL)) {
		g_printerr("%s failed: %s %s (openssl: scripts/deps.sh test)\n", argv[0],
			   e ? e->message : "", err ? err : "");
		exit(1);
	}
	g_free(err);
}

static char *read_file(const char *path)
{
	char *s = NULL;
	g_file_get_contents(path, &s, NULL, NULL);
	return s ? s : g_strdup("");
}

/* Children die with the test, even when it crashes. */
static void die_with_parent(gpointer data)
{
	(void)data;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
}

/* Start a viewer; with URL_OUT, wait for the URL it prints. Its stderr
 * goes to LOG. */
static GSubprocess *start_viewer(const char *log, const char *const *extra, const char *env_token,
				 char **url_out)
{
	GSubprocessLauncher *l = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE);
	g_subprocess_launcher_set_child_setup(l, die_with_parent, NULL, NULL);
	g_subprocess_launcher_set_stderr_file_path(l, log);
	if (env_token)
		g_subprocess_launcher_setenv(l, "HFE_VIEWER_TOKEN", env_token, TRUE);
	else
		g_subprocess_launcher_unsetenv(l, "HFE_VIEWER_TOKEN");
	GPtrArray *argv = g_ptr_array_new();
	char *connect = g_strdup_printf("unix:%s", F.sock);
	const char *fixed[] = { g_getenv("HFE_VIEWER"), "--connect", connect, "--scanout", "0",
				"--http", "127.0.0.1:0" };
	for (size_t i = 0; i < G_N_ELEMENTS(fixed); i++)
		g_ptr_array_add(argv, (char *)fixed[i]);
	for (size_t i = 0; extra && extra[i]; i++)
		g_ptr_array_add(argv, (char *)extra[i]);
	g_ptr_array_add(argv, NULL);
	GError *e = NULL;
	GSubprocess *p = g_subprocess_launcher_spawnv(l, (const char *const *)argv->pdata, &e);
	g_assert_no_error(e);
	g_ptr_array_free(argv, TRUE);
	g_free(connect);
	g_object_unref(l);
	if (url_out) {
		GDataInputStream *in = g_data_input_stream_new(g_subprocess_get_stdout_pipe(p));
		char *line;
		*url_out = NULL;
		while (!*url_out && (line = g_data_input_stream_read_line(in, NULL, NULL, NULL))) {
			char *open = strstr(line, "open ");
			char *end = open ? strstr(open, " in a browser") : NULL;
			if (end)
				*url_out = g_strndup(open + 5, (size_t)(end - open - 5));
			g_free(line);
		}
		g_object_unref(in);
	}
	return p;
}

/* SIGTERM: a clean exit (0), also for the sanitizers' leak check. */
static bool stop(GSubprocess *p, const char *name)
{
	g_subprocess_send_signal(p, SIGTERM);
	g_subprocess_wait(p, NULL, NULL);
	bool ok = g_subprocess_get_if_exited(p) && g_subprocess_get_exit_status(p) == 0;
	if (!ok)
		g_printerr("%s did not exit 0 on SIGTERM\n", name);
	g_object_unref(p);
	return ok;
}

static void viewer_up(struct viewer *v, const char *name, const char *const *extra,
		      const char *env_token)
{
	v->log = g_build_filename(F.dir, name, NULL);
	v->proc = start_viewer(v->log, extra, env_token, &v->url);
	if (!v->url) {
		char *log = read_file(v->log);
		g_printerr("viewer %s printed no URL:\n%s\n", name, log);
		exit(1);
	}
	char *slash = strchr(strstr(v->url, "://") + 3, '/');
	v->base = g_strndup(v->url, (size_t)(slash - v->url));
	v->token = g_strndup(slash + 1, strlen(slash + 1) - 1);
	v->port = (guint)atoi(strrchr(v->base, ':') + 1);
}

/* ---- a client ---- */

/* Only our own certificate is accepted, whatever name it is asked under. */
static gboolean accept_ours(SoupMessage *m, GTlsCertificate *c, GTlsCertificateFlags f,
			    gpointer data)
{
	(void)m;
	(void)f;
	(void)data;
	return g_tls_certificate_is_same(c, F.cert_obj);
}

static SoupMessage *new_msg(const char *url, const char *host)
{
	SoupMessage *m = soup_message_new("GET", url);
	g_assert_nonnull(m);
	g_signal_connect(m, "accept-certificate", G_CALLBACK(accept_ours), NULL);
	if (host)
		soup_message_headers_replace(soup_message_get_request_headers(m), "Host", host);
	return m;
}

/* GET URL (with another Host header): the status (0: no HTTP response). */
static guint get(const char *url, const char *host, char **body, char **referrer_policy)
{
	SoupMessage *m = new_msg(url, host);
	GBytes *b = soup_session_send_and_read(F.session, m, NULL, NULL);
	guint status = soup_message_get_status(m);
	if (body)
		*body = b ? g_strndup(g_bytes_get_data(b, NULL), g_bytes_get_size(b)) : g_strdup("");
	if (referrer_policy)
		*referrer_policy = g_strdup(soup_message_headers_get_one(
			soup_message_get_response_headers(m), "Referrer-Policy"));
	if (b)
		g_bytes_unref(b);
	g_object_unref(m);
	return status;
}

static guint get_path(const struct viewer *v, const char *path)
{
	char *url = g_strconcat(v->base, path, NULL);
	guint s = get(url, NULL, NULL, NULL);
	g_free(url);
	return s;
}

struct ws_try {
	bool done;
	SoupWebsocketConnection *ws;
	GError *error;
	unsigned texts, binaries;
	int first_flags; /* of the first binary message, -1 before */
};

static void on_ws_message(SoupWebsocketConnection *ws, gint type, GBytes *msg, gpointer data)
{
	struct ws_try *t = data;
	(void)ws;
	if (type == SOUP_WEBSOCKET_DATA_TEXT) {
		t->texts++;
		return;
	}
	gsize n;
	const guint8 *d = g_bytes_get_data(msg, &n);
	if (t->binaries++ == 0)
		t->first_flags = n >= 2 ? d[1] : 0;
}

static void on_ws_connected(GObject *src, GAsyncResult *res, gpointer data)
{
	struct ws_try *t = data;
	t->ws = soup_session_websocket_connect_finish(SOUP_SESSION(src), res, &t->error);
	if (t->ws)
		g_signal_connect(t->ws, "message", G_CALLBACK(on_ws_message), t);
	t->done = true;
}

static gboolean on_deadline(gpointer data)
{
	*(bool *)data = true;
	return G_SOURCE_REMOVE;
}

/* Run the main loop until *FLAG or MS have passed. */
static void spin(bool *flag, guint ms)
{
	bool late = false;
	guint id = g_timeout_add(ms, on_deadline, &late);
	while (!late && !(flag && *flag))
		g_main_context_iteration(NULL, TRUE);
	if (!late)
		g_source_remove(id);
}

/* Open a WebSocket at URL (http[s]://...) with ORIGIN (NULL: none); return
 * the handshake's HTTP status, and in T what came in within LISTEN_MS. */
static guint ws_try(const char *url, const char *origin, guint listen_ms, struct ws_try *t)
{
	memset(t, 0, sizeof(*t));
	t->first_flags = -1;
	SoupMessage *m = new_msg(url, NULL);
	soup_session_websocket_connect_async(F.session, m, origin, NULL, G_PRIORITY_DEFAULT, NULL,
					     on_ws_connected, t);
	spin(&t->done, 10000);
	g_assert_true(t->done);
	if (t->ws) {
		/* Stop early once streaming is shown (a keyframe and two more). */
		int64_t end = g_get_monotonic_time() + (int64_t)listen_ms * 1000;
		while (g_get_monotonic_time() < end && t->binaries < 3)
			spin(NULL, 50);
	}
	guint status = soup_message_get_status(m);
	g_object_unref(m);
	return status;
}

static void ws_done(struct ws_try *t)
{
	if (t->ws) {
		soup_websocket_connection_close(t->ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
		g_object_unref(t->ws);
	}
	g_clear_error(&t->error);
}

static void ws_refused(const struct viewer *v, const char *path, const char *origin)
{
	char *url = g_strconcat(v->base, path, NULL);
	struct ws_try t;
	guint status = ws_try(url, origin, 1500, &t);
	g_test_message("%s (origin %s): HTTP %u, %s", url, origin ? origin : "none", status,
		       t.error ? t.error->message : "connected");
	g_assert_cmpuint(status, ==, SOUP_STATUS_FORBIDDEN);
	g_assert_null(t.ws);
	g_assert_cmpuint(t.binaries, ==, 0);
	ws_done(&t);
	g_free(url);
}

static void ws_streams(const struct viewer *v, const char *origin)
{
	char *url = g_strconcat(v->url, "ws", NULL);
	struct ws_try t;
	guint status = ws_try(url, origin, 10000, &t);
	g_assert_no_error(t.error);
	g_assert_cmpuint(status, ==, SOUP_STATUS_SWITCHING_PROTOCOLS);
	g_assert_nonnull(t.ws);
	g_assert_cmpuint(t.texts, >=, 2); /* hello, upstream */
	g_assert_cmpuint(t.binaries, >=, 3);
	g_assert_cmpint(t.first_flags & 1, ==, 1); /* a keyframe first */
	ws_done(&t);
	g_free(url);
}

/* The viewer's own count of pages (it must never have one from a refusal). */
static unsigned pages_ever(const struct viewer *v)
{
	char *url = g_strconcat(v->url, "stats.json", NULL), *body = NULL;
	g_assert_cmpuint(get(url, NULL, &body, NULL), ==, 200);
	char *log = read_file(v->log);
	unsigned n = 0;
	for (const char *p = log; (p = strstr(p, " connected from ")); p++)
		n++;
	g_free(log);
	g_free(body);
	g_free(url);
	return n;
}

/* ---- the plain HTTP viewer ---- */

static void test_token_printed(void)
{
	const struct viewer *v = &F.plain;
	GRegex *re = g_regex_new("^http://127\\.0\\.0\\.1:[0-9]+/[A-Za-z0-9_-]{32}/$", 0, 0, NULL);
	g_assert_true(g_regex_match(re, v->url, 0, NULL));
	g_regex_unref(re);
	/* and nowhere in the log */
	char *log = read_file(v->log);
	g_assert_null(strstr(log, v->token));
	g_free(log);
}

static void test_page_needs_token(void)
{
	const struct viewer *v = &F.plain;
	const char *paths[] = { "/", "/index.html", "/viewer.js", "/stats.json", "/ws", "/x/" };
	for (size_t i = 0; i < G_N_ELEMENTS(paths); i++) {
		char *url = g_strconcat(v->base, paths[i], NULL), *body = NULL;
		g_assert_cmpuint(get(url, NULL, &body, NULL), ==, SOUP_STATUS_FORBIDDEN);
		g_assert_null(strstr(body, "<canvas"));
		g_assert_null(strstr(body, "upstream"));
		g_free(body);
		g_free(url);
	}
}

static void test_page_with_token(void)
{
	const struct viewer *v = &F.plain;
	char *body = NULL, *policy = NULL;
	g_assert_cmpuint(get(v->url, NULL, &body, &policy), ==, 200);
	g_assert_nonnull(strstr(body, "<canvas"));
	g_assert_cmpstr(policy, ==, "no-referrer");
	g_free(body);
	g_free(policy);
	const char *paths[] = { "viewer.js", "stats.json", "index.html" };
	for (size_t i = 0; i < G_N_ELEMENTS(paths); i++) {
		char *url = g_strconcat(v->url, paths[i], NULL);
		g_assert_cmpuint(get(url, NULL, NULL, NULL), ==, 200);
		g_free(url);
	}
}

static void test_wrong_tokens(void)
{
	const struct viewer *v = &F.plain;
	size_t n = strlen(v->token);
	char *last = g_strdup(v->token);
	last[n - 1] = last[n - 1] == 'A' ? 'B' : 'A';
	char *first = g_strdup(v->token);
	first[0] = first[0] == 'A' ? 'B' : 'A';
	char *shorter = g_strndup(v->token, n - 1);
	char *longer = g_strconcat(v->token, "A", NULL);
	const char *wrong[] = { last, first, shorter, longer, "" };
	for (size_t i = 0; i < G_N_ELEMENTS(wrong); i++) {
		char *page = g_strdup_printf("/%s/", wrong[i]);
		char *stats = g_strdup_printf("/%s/stats.json", wrong[i]);
		char *ws = g_strdup_printf("/%s/ws", wrong[i]);
		g_assert_cmpuint(get_path(v, page), ==, SOUP_STATUS_FORBIDDEN);
		g_assert_cmpuint(get_path(v, stats), ==, SOUP_STATUS_FORBIDDEN);
		ws_refused(v, ws, NULL);
		g_free(page);
		g_free(stats);
		g_free(ws);
	}
	g_free(last);
	g_free(first);
	g_free(shorter);
	g_free(longer);
}

static void test_ws_needs_token(void)
{
	unsigned before = pages_ever(&F.plain);
	ws_refused(&F.plain, "/ws", NULL);
	char *same = g_strdup_printf("http://127.0.0.1:%u", F.plain.port);
	ws_refused(&F.plain, "/ws", same);
	g_free(same);
	g_assert_cmpuint(pages_ever(&F.plain), ==, before);
}

static void test_ws_foreign_origin(void)
{
	const struct viewer *v = &F.plain;
	unsigned before = pages_ever(v);
	char *path = g_strdup_printf("/%s/ws", v->token);
	char *localhost = g_strdup_printf("http://localhost:%u", v->port);
	char *other_port = g_strdup_printf("http://127.0.0.1:%u", v->port + 1);
	char *https = g_strdup_printf("https://127.0.0.1:%u", v->port);
	const char *origins[] = { "http://evil.example", localhost, other_port, https, "null" };
	for (size_t i = 0; i < G_N_ELEMENTS(origins); i++)
		ws_refused(v, path, origins[i]);
	g_assert_cmpuint(pages_ever(v), ==, before);
	g_free(path);
	g_free(localhost);
	g_free(other_port);
	g_free(https);
}

static void test_ws_streams(void)
{
	unsigned before = pages_ever(&F.plain);
	ws_streams(&F.plain, NULL); /* not a browser: no Origin */
	char *same = g_strdup_printf("http://127.0.0.1:%u", F.plain.port);
	ws_streams(&F.plain, same);
	g_free(same);
	g_assert_cmpuint(pages_ever(&F.plain), ==, before + 2);
}

static void test_host_rebinding(void)
{
	char *host = g_strdup_printf("rebound.example:%u", F.plain.port);
	g_assert_cmpuint(get(F.plain.url, host, NULL, NULL), ==, SOUP_STATUS_FORBIDDEN);
	g_free(host);
}

static void test_refusals_counted(void)
{
	char *url = g_strconcat(F.plain.url, "stats.json", NULL), *body = NULL;
	g_assert_cmpuint(get(url, NULL, &body, NULL), ==, 200);
	const char *r = strstr(body, "\"refused\":");
	g_assert_nonnull(r);
	g_assert_cmpuint(strtoul(r + 10, NULL, 10), >=, 20);
	g_free(body);
	g_free(url);
}

/* ---- the HTTPS viewer ---- */

static void test_tls_page_and_stream(void)
{
	const struct viewer *v = &F.tls;
	g_assert_true(g_str_has_prefix(v->url, "https://127.0.0.1:"));
	g_assert_cmpstr(v->token, ==, TOKEN_FILE_TOKEN);
	char *log = read_file(v->log);
	g_assert_nonnull(strstr(log, "other users may read"));
	g_assert_null(strstr(log, TOKEN_FILE_TOKEN));
	g_free(log);
	char *body = NULL;
	g_assert_cmpuint(get(v->url, NULL, &body, NULL), ==, 200);
	g_assert_nonnull(strstr(body, "<canvas"));
	g_free(body);
	ws_streams(v, NULL);
	char *same = g_strdup_printf("https://127.0.0.1:%u", v->port);
	ws_streams(v, same);
	g_free(same);
}

static void test_tls_needs_token(void)
{
	g_assert_cmpuint(get_path(&F.tls, "/"), ==, SOUP_STATUS_FORBIDDEN);
	g_assert_cmpuint(get_path(&F.tls, "/stats.json"), ==, SOUP_STATUS_FORBIDDEN);
	ws_refused(&F.tls, "/ws", NULL);
	char *plain_origin = g_strdup_printf("http://127.0.0.1:%u", F.tls.port);
	char *path = g_strdup_printf("/%s/ws", F.tls.token);
	ws_refused(&F.tls, path, plain_origin);
	g_free(plain_origin);
	g_free(path);
}

/* Plain HTTP to the HTTPS port: no HTTP answer at all, let alone the page. */
static void test_tls_plain_http_refused(void)
{
	const struct viewer *v = &F.tls;
	unsigned before = pages_ever(v);
	/* The page, and a WebSocket handshake. */
	const char *what[][2] = {
		{ "", "" },
		{ "ws", "Upgrade: websocket\r\nConnection: Upgrade\r\n"
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			"Sec-WebSocket-Version: 13\r\n" },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(what); i++) {
		GSocketClient *c = g_socket_client_new();
		g_socket_client_set_timeout(c, 5);
		GError *e = NULL;
		GSocketConnection *conn = g_socket_client_connect_to_host(c, "127.0.0.1", (guint16)v->port,
									  NULL, &e);
		g_assert_no_error(e);
		char *req = g_strdup_printf("GET /%s/%s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n%s\r\n",
					    v->token, what[i][0], v->port, what[i][1]);
		g_output_stream_write_all(g_io_stream_get_output_stream(G_IO_STREAM(conn)), req,
					  strlen(req), NULL, NULL, &e);
		g_assert_no_error(e);
		GString *got = g_string_new(NULL);
		char buf[4096];
		gssize r;
		while ((r = g_input_stream_read(g_io_stream_get_input_stream(G_IO_STREAM(conn)), buf,
						sizeof(buf), NULL, NULL)) > 0)
			g_string_append_len(got, buf, r);
		g_test_message("plain HTTP to the HTTPS port: %zu bytes back", got->len);
		g_assert_false(g_str_has_prefix(got->str, "HTTP/"));
		g_assert_null(g_strstr_len(got->str, (gssize)got->len, "canvas"));
		g_assert_cmpuint(got->len, <, 64); /* at most a TLS alert */
		g_string_free(got, TRUE);
		g_free(req);
		g_object_unref(conn);
		g_object_unref(c);
	}
	/* The same through libsoup: no response. */
	char *url = g_strdup_printf("http://127.0.0.1:%u/%s/", v->port, v->token);
	g_assert_cmpuint(get(url, NULL, NULL, NULL), ==, 0);
	g_free(url);
	g_assert_cmpuint(pages_ever(v), ==, before);
}

/* Over TLS a name the certificate is for is a fine Host; another is not. */
static void test_tls_host_names(void)
{
	char *ok = g_strdup_printf("hfe-test.example:%u", F.tls.port);
	char *bad = g_strdup_printf("rebound.example:%u", F.tls.port);
	g_assert_cmpuint(get(F.tls.url, ok, NULL, NULL), ==, 200);
	g_assert_cmpuint(get(F.tls.url, bad, NULL, NULL), ==, SOUP_STATUS_FORBIDDEN);
	/* Plain HTTP takes IP literals and localhost only. */
	char *plain = g_strdup_printf("hfe-test.example:%u", F.plain.port);
	g_assert_cmpuint(get(F.plain.url, plain, NULL, NULL), ==, SOUP_STATUS_FORBIDDEN);
	g_free(ok);
	g_free(bad);
	g_free(plain);
}

/* ---- start-up errors ---- */

/* Run a viewer that must not start: its exit status and stderr. */
static int must_fail(const char *const *extra, const char *env_token, char **log_out)
{
	char *log = g_build_filename(F.dir, "fail.log", NULL);
	char *url = NULL;
	GSubprocess *p = start_viewer(log, extra, env_token, &url);
	g_assert_null(url);
	g_subprocess_wait(p, NULL, NULL);
	int rc = g_subprocess_get_if_exited(p) ? g_subprocess_get_exit_status(p) : -1;
	*log_out = read_file(log);
	g_test_message("exit %d: %s", rc, *log_out);
	g_object_unref(p);
	g_free(log);
	return rc;
}

static void test_bad_tokens(void)
{
	char *log;
	g_assert_cmpint(must_fail(NULL, "short", &log), ==, 1);
	g_assert_nonnull(strstr(log, "HFE_VIEWER_TOKEN"));
	g_free(log);
	g_assert_cmpint(must_fail(NULL, "has/a/slash/in/it/0123456789", &log), ==, 1);
	g_free(log);
	const char *missing[] = { "--token-file", "/nonexistent/token", NULL };
	g_assert_cmpint(must_fail(missing, NULL, &log), ==, 1);
	g_assert_nonnull(strstr(log, "--token-file"));
	g_free(log);

	/* The environment's token is used as given; a random one differs per run. */
	char *url = NULL, *log_path = g_build_filename(F.dir, "env.log", NULL);
	GSubprocess *p = start_viewer(log_path, NULL, "env-token-0123456789", &url);
	g_assert_nonnull(url);
	g_assert_true(g_str_has_suffix(url, "/env-token-0123456789/"));
	g_assert_true(stop(p, "the HFE_VIEWER_TOKEN viewer"));
	g_free(url);
	p = start_viewer(log_path, NULL, NULL, &url);
	g_assert_nonnull(url);
	g_assert_null(strstr(url, F.plain.token));
	g_assert_true(stop(p, "another random-token viewer"));
	g_free(url);
	g_free(log_path);
}

static void test_bad_certificates(void)
{
	const struct {
		const char *cert, *key;
		int rc;
		const char *says;
	} cases[] = {
		{ "/nonexistent.pem", F.key, 1, "/nonexistent.pem" },
		{ F.token_file, F.key, 1, "certificate" }, /* not PEM */
		{ F.cert, F.cert, 1, "private key" },
		{ F.cert, F.other_key, 1, "handshake" }, /* another certificate's key */
		{ F.cert, NULL, 2, "go together" },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		const char *args[] = { "--tls-cert", cases[i].cert, cases[i].key ? "--tls-key" : NULL,
				       cases[i].key, NULL };
		char *log;
		g_assert_cmpint(must_fail(args, NULL, &log), ==, cases[i].rc);
		g_assert_nonnull(strstr(log, cases[i].says));
		g_free(log);
	}
}

/* ---- setup ---- */

static void setup(void)
{
	GError *e = NULL;
	if (!g_getenv("HFE_DAEMON") || !g_getenv("HFE_VIEWER")) {
		g_printerr("HFE_DAEMON and HFE_VIEWER must be set (run through meson test)\n");
		exit(1);
	}
	F.dir = g_dir_make_tmp("hfe-viewer-access-XXXXXX", &e);
	g_assert_no_error(e);
	F.sock = g_build_filename(F.dir, "hfe.sock", NULL);
	F.cert = g_build_filename(F.dir, "cert.pem", NULL);
	F.key = g_build_filename(F.dir, "key.pem", NULL);
	F.other_key = g_build_filename(F.dir, "other-key.pem", NULL);
	F.token_file = g_build_filename(F.dir, "token", NULL);

	const char *req[] = { "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
			      "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", F.key,
			      "-out", F.cert, "-days", "2", "-subj", "/CN=hfe-viewer test",
			      "-addext", "subjectAltName=IP:127.0.0.1,DNS:hfe-test.example",
			      NULL };
	run_ok(req);
	const char *other[] = { "openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
				"ec_paramgen_curve:prime256v1", "-out", F.other_key, NULL };
	run_ok(other);
	F.cert_obj = g_tls_certificate_new_from_file(F.cert, &e);
	g_assert_no_error(e);
	g_file_set_contents(F.token_file, TOKEN_FILE_TOKEN "\n", -1, &e);
	g_assert_no_error(e);
	g_chmod(F.token_file, 0644); /* the viewer warns about that */

	char *listen = g_strdup_printf("unix:%s", F.sock);
	char *scanout = g_strdup_printf("0:320x240@%d", FPS);
	char *dlog = g_build_filename(F.dir, "daemon.log", NULL);
	GSubprocessLauncher *l = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_NONE);
	g_subprocess_launcher_set_child_setup(l, die_with_parent, NULL, NULL);
	g_subprocess_launcher_set_stderr_file_path(l, dlog);
	F.daemon = g_subprocess_launcher_spawn(l, &e, g_getenv("HFE_DAEMON"), "--listen", listen,
					       "--test-scanout", scanout, NULL);
	g_assert_no_error(e);
	g_object_unref(l);
	for (int i = 0; i < 200 && !g_file_test(F.sock, G_FILE_TEST_EXISTS); i++)
		g_usleep(50000);
	g_assert_true(g_file_test(F.sock, G_FILE_TEST_EXISTS));
	g_free(listen);
	g_free(scanout);
	g_free(dlog);

	viewer_up(&F.plain, "plain.log", NULL, NULL);
	const char *tls[] = { "--tls-cert", F.cert, "--tls-key", F.key, "--token-file",
			      F.token_file, NULL };
	viewer_up(&F.tls, "tls.log", tls, NULL);
	F.session = soup_session_new_with_options("timeout", 10, NULL);
}

static void viewer_free(struct viewer *v)
{
	g_free(v->url);
	g_free(v->base);
	g_free(v->token);
	g_free(v->log);
}

/* Stop everything; false if something did not exit cleanly. */
static bool stop_all(void)
{
	g_object_unref(F.session);
	bool ok = stop(F.plain.proc, "the plain viewer");
	ok &= stop(F.tls.proc, "the HTTPS viewer");
	ok &= stop(F.daemon, "the daemon");
	return ok;
}

static void teardown(bool keep)
{
	viewer_free(&F.plain);
	viewer_free(&F.tls);
	g_object_unref(F.cert_obj);
	if (keep) {
		g_printerr("logs kept in %s\n", F.dir);
	} else {
		const char *files[] = { F.sock, F.cert, F.key, F.other_key, F.token_file };
		for (size_t i = 0; i < G_N_ELEMENTS(files); i++)
			unlink(files[i]);
		const char *logs[] = { "daemon.log", "plain.log", "tls.log", "fail.log", "env.log" };
		for (size_t i = 0; i < G_N_ELEMENTS(logs); i++) {
			char *p = g_build_filename(F.dir, logs[i], NULL);
			unlink(p);
			g_free(p);
		}
		rmdir(F.dir);
	}
	g_free(F.sock);
	g_free(F.cert);
	g_free(F.key);
	g_free(F.other_key);
	g_free(F.token_file);
	g_free(F.dir);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	/* A failed check fails its case; the others still run, the children are stopped. */
	g_test_set_nonfatal_assertions();
	signal(SIGPIPE, SIG_IGN);
	setup();
	g_test_add_func("/viewer-access/token-printed", test_token_printed);
	g_test_add_func("/viewer-access/page-needs-token", test_page_needs_token);
	g_test_add_func("/viewer-access/page-with-token", test_page_with_token);
	g_test_add_func("/viewer-access/wrong-tokens", test_wrong_tokens);
	g_test_add_func("/viewer-access/ws-needs-token", test_ws_needs_token);
	g_test_add_func("/viewer-access/ws-foreign-origin", test_ws_foreign_origin);
	g_test_add_func("/viewer-access/ws-streams", test_ws_streams);
	g_test_add_func("/viewer-access/host-rebinding", test_host_rebinding);
	g_test_add_func("/viewer-access/refusals-counted", test_refusals_counted);
	g_test_add_func("/viewer-access/tls-page-and-stream", test_tls_page_and_stream);
	g_test_add_func("/viewer-access/tls-needs-token", test_tls_needs_token);
	g_test_add_func("/viewer-access/tls-plain-http-refused", test_tls_plain_http_refused);
	g_test_add_func("/viewer-access/tls-host-names", test_tls_host_names);
	g_test_add_func("/viewer-access/bad-tokens", test_bad_tokens);
	g_test_add_func("/viewer-access/bad-certificates", test_bad_certificates);
	int rc = g_test_run();
	if (!stop_all())
		rc = 1;
	teardown(rc != 0);
	return rc;
}
