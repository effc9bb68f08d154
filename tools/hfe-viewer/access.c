/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfe-viewer: who may watch (and, with input, type). A request is answered
 * only if
 *  - its path starts with the run's secret token (/TOKEN/, /TOKEN/ws, ...):
 *    random per run unless given in a file or the environment, compared in
 *    constant time;
 *  - it is addressed to an IP literal or localhost, or with TLS to a name
 *    the certificate is for (a DNS-rebinding page names its own domain);
 *  - a WebSocket from a browser comes from the page's own origin.
 * docs/viewer.md says why each is there.
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <glib/gstdio.h>

#include "viewer.h"

#define TOKEN_BYTES 24 /* 192 bits: 32 characters of base64url */
#define TOKEN_MIN 16   /* a shorter given token is too easy to guess */
#define TOKEN_MAX 256

/* Equal in time independent of where the first difference is (the length
 * is not secret). GLib has no such comparison. */
static bool secret_equal(const char *a, size_t na, const char *b, size_t nb)
{
	if (na != nb)
		return false;
	unsigned char d = 0;
	for (size_t i = 0; i < na; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

/* A token goes into URLs as a path segment: only unreserved characters. */
static bool token_ok(const char *t)
{
	size_t n = strlen(t);
	return n >= TOKEN_MIN && n <= TOKEN_MAX &&
	       strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") == n;
}

/* 192 bits from the kernel's CSPRNG (GLib's GRand is not one). */
static char *token_random(void)
{
	guchar raw[TOKEN_BYTES];
	size_t got = 0;
	while (got < sizeof(raw)) {
		ssize_t r = getrandom(raw + got, sizeof(raw) - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			say("getrandom: %s", strerror(errno));
			return NULL;
		}
		got += (size_t)r;
	}
	char *t = g_base64_encode(raw, sizeof(raw)); /* 24 bytes: no '=' padding */
	g_strdelimit(t, "+", '-');
	g_strdelimit(t, "/", '_');
	memset(raw, 0, sizeof(raw));
	return t;
}

bool access_init(struct viewer *v, const char *token_file)
{
	char *t = NULL;
	const char *from;
	if (token_file) {
		GError *error = NULL;
		if (!g_file_get_contents(token_file, &t, NULL, &error)) {
			say("--token-file: %s", error->message);
			g_error_free(error);
			return false;
		}
		g_strstrip(t);
		from = "--token-file";
		GStatBuf st;
		if (g_stat(token_file, &st) == 0 && (st.st_mode & 077))
			say("warning: other users may read %s (chmod 600 it)", token_file);
	} else if (g_getenv("HFE_VIEWER_TOKEN") && *g_getenv("HFE_VIEWER_TOKEN")) {
		t = g_strdup(g_getenv("HFE_VIEWER_TOKEN"));
		from = "HFE_VIEWER_TOKEN";
	} else {
		t = token_random();
		from = NULL;
	}
	if (!t)
		return false;
	if (from && !token_ok(t)) {
		say("%s: the token must be %d to %d characters of A-Z a-z 0-9 - . _ ~", from,
		    TOKEN_MIN, TOKEN_MAX);
		g_free(t);
		return false;
	}
	v->token = t;
	return true;
}

const char *access_strip_token(const struct viewer *v, const char *path)
{
	if (!path || path[0] != '/')
		return NULL;
	const char *seg = path + 1;
	size_t n = strcspn(seg, "/");
	if (!secret_equal(seg, n, v->token, strlen(v->token)))
		return NULL;
	return seg + n;
}

/* "name" of a Host header ("name:port", "[v6]:port"), or false. */
static bool host_name(const char *host, char *name, size_t size)
{
	const char *end;
	if (host[0] == '[') {
		end = strchr(host, ']');
		if (!end)
			return false;
		host++;
	} else {
		end = strrchr(host, ':');
		if (!end)
			end = host + strlen(host);
	}
	size_t n = (size_t)(end - host);
	if (n == 0 || n >= size)
		return false;
	memcpy(name, host, n);
	name[n] = '\0';
	return true;
}

bool host_allowed(const struct viewer *v, SoupServerMessage *msg)
{
	SoupMessageHeaders *h = soup_server_message_get_request_headers(msg);
	const char *host = soup_message_headers_get_one(h, "Host");
	if (!host)
		return true; /* HTTP/1.0 client */
	char name[256];
	if (!host_name(host, name, sizeof(name)))
		return false;
	if (!g_ascii_strcasecmp(name, "localhost") || g_hostname_is_ip_address(name))
		return true;
	if (!v->tls)
		return false;
	/* Over TLS a name the certificate is for: a rebinding page's domain is
	 * not, and the browser would not accept our certificate for it anyway. */
	GSocketConnectable *id = g_network_address_new(name, 0);
	GTlsCertificateFlags f = g_tls_certificate_verify(v->tls, id, NULL);
	g_object_unref(id);
	return !(f & G_TLS_CERTIFICATE_BAD_IDENTITY);
}

bool origin_allowed(const struct viewer *v, SoupServerMessage *msg)
{
	SoupMessageHeaders *h = soup_server_message_get_request_headers(msg);
	const char *origin = soup_message_headers_get_one(h, "Origin");
	const char *host = soup_message_headers_get_one(h, "Host");
	if (!origin)
		return true; /* not a browser; it has the token */
	if (!host)
		return false;
	const char *scheme = v->tls ? "https://" : "http://";
	return g_str_has_prefix(origin, scheme) && !strcmp(origin + strlen(scheme), host);
}
