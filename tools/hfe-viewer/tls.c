/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfe-viewer: the HTTPS certificate. Loaded with GIO (glib-networking's
 * GnuTLS backend), then tried in one TLS handshake with ourselves over a
 * socket pair: GIO accepts a private key that does not belong to the
 * certificate, and every browser would then fail with an opaque "bad
 * signature" instead of the viewer saying so at start.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "viewer.h"

#define TRY_MS 5000

struct try {
	int pending;
	GCancellable *stop; /* one side failed: the other need not wait for it */
	GError *error;      /* the first failure */
	bool timed_out;
};

/* The client is us: any certificate will do; the handshake is the test. */
static gboolean accept_any(GTlsConnection *c, GTlsCertificate *cert, GTlsCertificateFlags f,
			   gpointer data)
{
	(void)c;
	(void)cert;
	(void)f;
	(void)data;
	return TRUE;
}

static void on_done(GObject *src, GAsyncResult *res, gpointer data)
{
	struct try *t = data;
	GError *e = NULL;
	if (!g_tls_connection_handshake_finish(G_TLS_CONNECTION(src), res, &e)) {
		if (!t->error)
			t->error = e;
		else
			g_error_free(e);
		g_cancellable_cancel(t->stop);
	}
	t->pending--;
}

static gboolean on_timeout(gpointer data)
{
	struct try *t = data;
	t->timed_out = true;
	g_cancellable_cancel(t->stop);
	return G_SOURCE_REMOVE;
}

static GIOStream *pair_end(int fd, GError **error)
{
	GSocket *s = g_socket_new_from_fd(fd, error);
	if (!s) {
		close(fd);
		return NULL;
	}
	GIOStream *io = G_IO_STREAM(g_socket_connection_factory_create_connection(s));
	g_object_unref(s);
	return io;
}

/* One handshake between CERT as a server and an accept-all client. */
static bool try_handshake(GTlsCertificate *cert, GError **error)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "socketpair: %s",
			    strerror(errno));
		return false;
	}
	GIOStream *a = pair_end(sv[0], error);
	GIOStream *b = a ? pair_end(sv[1], error) : (close(sv[1]), NULL);
	GIOStream *server = NULL, *client = NULL;
	bool ok = false;
	if (!a || !b)
		goto out;
	server = g_tls_server_connection_new(a, cert, error);
	if (!server)
		goto out;
	client = g_tls_client_connection_new(b, NULL, error);
	if (!client)
		goto out;
	g_signal_connect(client, "accept-certificate", G_CALLBACK(accept_any), NULL);

	/* Our own context: nothing else runs meanwhile. */
	GMainContext *ctx = g_main_context_new();
	g_main_context_push_thread_default(ctx);
	struct try t = { .pending = 2, .stop = g_cancellable_new() };
	GSource *timer = g_timeout_source_new(TRY_MS);
	g_source_set_callback(timer, on_timeout, &t, NULL);
	g_source_attach(timer, ctx);
	g_tls_connection_handshake_async(G_TLS_CONNECTION(server), G_PRIORITY_DEFAULT, t.stop,
					 on_done, &t);
	g_tls_connection_handshake_async(G_TLS_CONNECTION(client), G_PRIORITY_DEFAULT, t.stop,
					 on_done, &t);
	while (t.pending > 0)
		g_main_context_iteration(ctx, TRUE);
	g_source_destroy(timer);
	g_source_unref(timer);
	g_main_context_pop_thread_default(ctx);
	g_main_context_unref(ctx);
	g_object_unref(t.stop);

	ok = !t.error && !t.timed_out;
	if (t.timed_out) {
		g_clear_error(&t.error); /* "cancelled" */
		g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
				    "the handshake did not finish");
	} else if (!ok) {
		g_propagate_error(error, t.error);
	}
out:
	g_clear_object(&client);
	g_clear_object(&server);
	g_clear_object(&a);
	g_clear_object(&b);
	return ok;
}

GTlsCertificate *tls_load(const char *cert_file, const char *key_file)
{
	GError *error = NULL;
	GTlsCertificate *c = g_tls_certificate_new_from_files(cert_file, key_file, &error);
	if (!c) {
		say("--tls-cert %s --tls-key %s: %s", cert_file, key_file, error->message);
		g_error_free(error);
		return NULL;
	}
	if (!try_handshake(c, &error)) {
		say("--tls-cert %s --tls-key %s: a TLS handshake with them fails (is this the "
		    "certificate's key?): %s",
		    cert_file, key_file, error->message);
		g_error_free(error);
		g_object_unref(c);
		return NULL;
	}
	return c;
}
