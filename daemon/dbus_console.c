/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A console's Listener: QEMU's pixels and cursor into a scanout stream (see
 * dbus_console.h).
 *
 * QEMU has no flow control (one method call per flush, pixels inside, sent
 * without waiting for our reply). A message filter handles the Listener
 * calls on GDBus's I/O thread as each message is read: copy the rectangle
 * into the console's shadow picture and into the stream (which coalesces
 * damage and encodes at its own pace), answer, drop the message. GDBus's
 * normal dispatch would first queue every message for the control context,
 * without a bound if that thread ever fell behind; this way at most one
 * message is in memory. The calls are dispatched through one table (member,
 * signature, handler): a message whose arguments do not match the signature
 * is refused before any handler reads them.
 *
 * The cursor (CursorDefine/MouseSet) goes to the stream's cursor, which
 * draws it into the encoded picture or sends it as its own channel.
 */
#include "dbus_console.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hfe/log.h"

#define LISTENER_PATH "/org/qemu/Display1/Listener"
#define LISTENER_IFACE "org.qemu.Display1.Listener"

/* pixman format codes in Scanout/Update (PIXMAN_FORMAT(bpp, type, a, r, g, b)) */
#define PIXMAN_X8R8G8B8 0x20020888u /* bytes B,G,R,x: what QEMU's 2D surfaces use */
#define PIXMAN_A8R8G8B8 0x20028888u
#define PIXMAN_X8B8G8R8 0x20030888u /* bytes R,G,B,x */
#define PIXMAN_A8B8G8R8 0x20038888u

static const char listener_xml[] =
	"<node><interface name='" LISTENER_IFACE "'>"
	"<method name='Scanout'><arg type='u' direction='in'/><arg type='u' direction='in'/>"
	"<arg type='u' direction='in'/><arg type='u' direction='in'/>"
	"<arg type='ay' direction='in'/></method>"
	"<method name='Update'><arg type='i' direction='in'/><arg type='i' direction='in'/>"
	"<arg type='i' direction='in'/><arg type='i' direction='in'/>"
	"<arg type='u' direction='in'/><arg type='u' direction='in'/>"
	"<arg type='ay' direction='in'/></method>"
	"<method name='ScanoutDMABUF'><arg type='h' direction='in'/><arg type='u' direction='in'/>"
	"<arg type='u' direction='in'/><arg type='u' direction='in'/>"
	"<arg type='u' direction='in'/><arg type='t' direction='in'/>"
	"<arg type='b' direction='in'/></method>"
	"<method name='UpdateDMABUF'><arg type='i' direction='in'/><arg type='i' direction='in'/>"
	"<arg type='i' direction='in'/><arg type='i' direction='in'/></method>"
	"<method name='Disable'/>"
	"<method name='MouseSet'><arg type='i' direction='in'/><arg type='i' direction='in'/>"
	"<arg type='i' direction='in'/></method>"
	"<method name='CursorDefine'><arg type='i' direction='in'/><arg type='i' direction='in'/>"
	"<arg type='i' direction='in'/><arg type='i' direction='in'/>"
	"<arg type='ay' direction='in'/></method>"
	"</interface></node>";

struct hfe_dbus_console {
	uint32_t index;
	uint32_t max_w, max_h;
	struct hfe_stream *stream;
	struct hfe_stream_params owner; /* the owner's notify */
	char tag[96]; /* "vm1 console 0" */
	GDBusNodeInfo *node; /* listener_xml */

	/* Filter side (GDBus's I/O thread) and _unserve, under lock. */
	pthread_mutex_t lock;
	GDBusConnection *conn; /* the listener connection served; NULL: none */
	uint8_t *shadow;       /* QEMU's picture, B,G,R,x */
	uint32_t w, h, stride;
	bool surface;          /* a Scanout was accepted on this connection */
	bool streaming;        /* the stream runs at the surface's size */
	bool hidden;           /* an unplugged output: pictures not streamed */
	uint64_t msgs, msg_bytes, busy_us; /* busy: time spent on Listener calls */
	bool warned_format, warned_size, warned_dmabuf;

	atomic_uint_fast64_t damage_px; /* pushed since the last encode (for the log) */
	atomic_int filter_alive;        /* GDBus still holds our filter */

	/* stream worker thread only (on_encoded) */
	uint64_t seen_bytes, seen_keys, seen_patches, seen_frames;

	/* control thread only: what _serve installed on `served` */
	GDBusConnection *served;
	guint reg_id, filter_id;
};

/* ---- pixels (GDBus's I/O thread, console lock held) ---- */

static bool format_ok(uint32_t fmt)
{
	return fmt == PIXMAN_X8R8G8B8 || fmt == PIXMAN_A8R8G8B8 || fmt == PIXMAN_X8B8G8R8 ||
	       fmt == PIXMAN_A8B8G8R8;
}

/* A rectangle of QEMU's pixels into the shadow (as B,G,R,x). */
static void copy_in(struct hfe_dbus_console *c, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
		    const uint8_t *src, uint32_t src_stride, uint32_t fmt)
{
	bool swap = fmt == PIXMAN_X8B8G8R8 || fmt == PIXMAN_A8B8G8R8;

	for (uint32_t row = 0; row < h; row++) {
		const uint8_t *s = src + (size_t)row * src_stride;
		uint8_t *d = c->shadow + (size_t)(y + row) * c->stride + (size_t)x * 4;

		if (!swap) {
			memcpy(d, s, (size_t)w * 4);
			continue;
		}
		for (uint32_t i = 0; i < w; i++) {
			d[4 * i] = s[4 * i + 2];
			d[4 * i + 1] = s[4 * i + 1];
			d[4 * i + 2] = s[4 * i];
			d[4 * i + 3] = s[4 * i + 3];
		}
	}
}

/* A rectangle of the shadow into the stream. */
static void push(struct hfe_dbus_console *c, const struct hfe_rect *r)
{
	/* Counted first: a patch frame can be out before the update returns. */
	atomic_fetch_add(&c->damage_px, (uint64_t)r->w * r->h);
	hfe_stream_update_rects(c->stream, r, 1, c->shadow, c->stride, HFE_FMT_XRGB8888);
}

static void surface_off(struct hfe_dbus_console *c)
{
	c->surface = false;
	c->streaming = false;
	hfe_stream_disable(c->stream);
}

/* Rectangle r of the shadow into the stream; the first one after a new
 * surface (or after _show) starts the stream at the surface's size, with
 * the whole picture (the stream restarts with an IDR). Nothing while
 * hidden. r NULL: the whole picture. 0, or -1 when the stream cannot take
 * the surface. */
static int feed(struct hfe_dbus_console *c, const struct hfe_rect *r)
{
	struct hfe_rect all = { 0, 0, c->w, c->h };
	struct hfe_err err;

	if (c->hidden)
		return 0;
	if (!c->streaming || !r) {
		if (hfe_stream_resize(c->stream, c->w, c->h, &err) < 0) {
			hfe_error("%s: cannot take a %ux%u surface: %s", c->tag, c->w, c->h,
				  err.msg);
			surface_off(c);
			return -1;
		}
		c->streaming = true;
		r = &all;
	}
	push(c, r);
	return 0;
}

/* Each handler returns NULL, or the text of an error reply. */
static const char *on_scanout(struct hfe_dbus_console *c, GVariant *body)
{
	uint32_t w, h, stride, fmt;
	GVariant *v;
	gsize len;
	const char *why = NULL;

	g_variant_get(body, "(uuuu@ay)", &w, &h, &stride, &fmt, &v);
	const uint8_t *px = g_variant_get_fixed_array(v, &len, 1);

	if (!format_ok(fmt)) {
		if (!c->warned_format)
			hfe_warn("%s: pixman format 0x%08x is not supported (32-bit RGB only); "
				 "scanout disabled", c->tag, fmt);
		c->warned_format = true;
		surface_off(c);
		why = "unsupported pixel format";
		goto out;
	}
	if (w < HFE_MIN_DIMENSION || h < HFE_MIN_DIMENSION || w > c->max_w ||
	    h > c->max_h) {
		if (!c->warned_size)
			hfe_warn("%s: surface %ux%u is outside %ux%u..%ux%u; scanout disabled",
				 c->tag, w, h, HFE_MIN_DIMENSION, HFE_MIN_DIMENSION, c->max_w,
				 c->max_h);
		c->warned_size = true;
		surface_off(c);
		why = "unsupported surface size";
		goto out;
	}
	if (stride < w * 4 || len < (uint64_t)stride * (h - 1) + (uint64_t)w * 4) {
		why = "pixel data shorter than the surface";
		goto out;
	}
	if (!c->surface || w != c->w || h != c->h) {
		uint8_t *shadow = malloc((size_t)w * 4 * h);

		if (!shadow) {
			hfe_error("%s: cannot take a %ux%u surface: out of memory", c->tag, w, h);
			surface_off(c);
			why = "cannot take the surface";
			goto out;
		}
		free(c->shadow);
		c->shadow = shadow;
		if (w != c->w || h != c->h)
			hfe_info("%s: surface %ux%u%s", c->tag, w, h,
				 c->hidden ? " (output unplugged: not streamed)" : "");
		c->w = w;
		c->h = h;
		c->stride = w * 4;
		c->surface = true;
		c->streaming = false;
		c->warned_size = c->warned_format = false;
	}
	copy_in(c, 0, 0, w, h, px, stride, fmt);
	if (feed(c, &(struct hfe_rect){ 0, 0, w, h }) < 0)
		why = "cannot take the surface";
out:
	g_variant_unref(v);
	return why;
}

static const char *on_update(struct hfe_dbus_console *c, GVariant *body)
{
	int32_t x, y, w, h;
	uint32_t stride, fmt;
	GVariant *v;
	gsize len;
	const char *why = NULL;

	g_variant_get(body, "(iiiiuu@ay)", &x, &y, &w, &h, &stride, &fmt, &v);
	const uint8_t *px = g_variant_get_fixed_array(v, &len, 1);

	if (!c->surface) /* none yet, or refused: nothing to update */
		goto out;
	if (!format_ok(fmt)) {
		why = "unsupported pixel format";
		goto out;
	}
	if (x < 0 || y < 0 || w <= 0 || h <= 0 || (uint32_t)x >= c->w || (uint32_t)y >= c->h ||
	    stride < (uint64_t)w * 4 ||
	    len < (uint64_t)stride * (uint32_t)(h - 1) + (uint64_t)w * 4) {
		why = "bad update rectangle";
		goto out;
	}
	/* Clip to the surface; the rows keep QEMU's stride. */
	uint32_t cw = (uint32_t)w, ch = (uint32_t)h;

	if (cw > c->w - (uint32_t)x)
		cw = c->w - (uint32_t)x;
	if (ch > c->h - (uint32_t)y)
		ch = c->h - (uint32_t)y;
	copy_in(c, (uint32_t)x, (uint32_t)y, cw, ch, px, stride, fmt);
	if (feed(c, &(struct hfe_rect){ (uint32_t)x, (uint32_t)y, cw, ch }) < 0)
		why = "cannot take the surface";
out:
	g_variant_unref(v);
	return why;
}

static const char *on_mouse_set(struct hfe_dbus_console *c, GVariant *body)
{
	int32_t x, y, on;

	g_variant_get(body, "(iii)", &x, &y, &on);
	hfe_stream_cursor_move(c->stream, x, y, on != 0);
	return NULL;
}

static const char *on_cursor_define(struct hfe_dbus_console *c, GVariant *body)
{
	int32_t w, h, hot_x, hot_y;
	GVariant *v;
	gsize len;
	const char *why = NULL;
	struct hfe_err err;

	g_variant_get(body, "(iiii@ay)", &w, &h, &hot_x, &hot_y, &v);
	const uint8_t *px = g_variant_get_fixed_array(v, &len, 1);

	/* Bounded before anything is read or copied. */
	if (w <= 0 || h <= 0 || w > (int32_t)HFE_CURSOR_MAX || h > (int32_t)HFE_CURSOR_MAX ||
	    len < (uint64_t)w * (uint64_t)h * 4) {
		why = "bad cursor image";
		goto out;
	}
	/* QEMUCursor pixels are native-endian ARGB words: B,G,R,A bytes here. */
	struct hfe_cursor_shape shape = { (uint32_t)w, (uint32_t)h, hot_x < 0 ? 0u : (uint32_t)hot_x,
					  hot_y < 0 ? 0u : (uint32_t)hot_y };
	if (hfe_stream_cursor_define(c->stream, &shape, px, &err) < 0)
		why = "cannot take the cursor image";
out:
	g_variant_unref(v);
	return why;
}

static void send_reply(GDBusConnection *conn, GDBusMessage *msg, const char *error_name,
		       const char *error)
{
	GDBusMessage *r;

	if (g_dbus_message_get_flags(msg) & G_DBUS_MESSAGE_FLAGS_NO_REPLY_EXPECTED)
		return;
	r = error ? g_dbus_message_new_method_error_literal(msg, error_name, error)
		  : g_dbus_message_new_method_reply(msg);
	/* Fails only when the connection is closing: nothing left to answer. */
	g_dbus_connection_send_message(conn, r, G_DBUS_SEND_MESSAGE_FLAGS_NONE, NULL, NULL);
	g_object_unref(r);
}

struct handler {
	const char *member;
	const char *signature;
	const char *(*fn)(struct hfe_dbus_console *c, GVariant *body);
};

static const char *on_disable(struct hfe_dbus_console *c, GVariant *body)
{
	(void)body;
	surface_off(c);
	return NULL;
}

static const struct handler handlers[] = {
	{ "Scanout", "(uuuuay)", on_scanout },
	{ "Update", "(iiiiuuay)", on_update },
	{ "Disable", "()", on_disable },
	{ "MouseSet", "(iii)", on_mouse_set },
	{ "CursorDefine", "(iiiiay)", on_cursor_define },
};

/*
 * Every message of a listener connection passes here, on GDBus's I/O thread,
 * as soon as it is read. Listener calls are handled and answered here and
 * dropped; anything else (QEMU's Properties.GetAll when it builds its proxy,
 * introspection) goes on to the registered object in our context.
 */
static GDBusMessage *listener_filter(GDBusConnection *conn, GDBusMessage *msg, gboolean incoming,
				     gpointer data)
{
	struct hfe_dbus_console *c = data;
	const char *path, *iface, *member;

	if (!incoming || g_dbus_message_get_message_type(msg) != G_DBUS_MESSAGE_TYPE_METHOD_CALL)
		return msg;
	path = g_dbus_message_get_path(msg);
	iface = g_dbus_message_get_interface(msg);
	member = g_dbus_message_get_member(msg);
	if (g_strcmp0(path, LISTENER_PATH) || (iface && strcmp(iface, LISTENER_IFACE)) || !member)
		return msg;

	const char *error_name = "org.freedesktop.DBus.Error.Failed", *why = NULL;
	GVariant *body = g_dbus_message_get_body(msg);
	const struct handler *hd = NULL;

	for (size_t i = 0; i < G_N_ELEMENTS(handlers); i++)
		if (!strcmp(member, handlers[i].member))
			hd = &handlers[i];

	pthread_mutex_lock(&c->lock);
	if (conn != c->conn) {
		/* a connection being torn down (QEMU gone or reattaching) */
		why = "listener detached";
	} else if (!hd) {
		if (!strcmp(member, "ScanoutDMABUF") || !strcmp(member, "UpdateDMABUF")) {
			if (!c->warned_dmabuf)
				hfe_warn("%s: QEMU sends DMA-BUF scanouts (a GL display); only "
					 "2D surfaces are supported: start QEMU with "
					 "-display dbus,p2p=yes,gl=off", c->tag);
			c->warned_dmabuf = true;
		}
		error_name = "org.freedesktop.DBus.Error.NotSupported";
		why = "method not supported";
	} else if (!(body ? g_variant_is_of_type(body, G_VARIANT_TYPE(hd->signature))
			  : !strcmp(hd->signature, "()"))) {
		error_name = "org.freedesktop.DBus.Error.InvalidArgs";
		why = "unexpected arguments";
	} else {
		int64_t t0 = g_get_monotonic_time();

		c->msgs++;
		c->msg_bytes += body ? g_variant_get_size(body) : 0;
		why = hd->fn(c, body);
		c->busy_us += (uint64_t)(g_get_monotonic_time() - t0);
	}
	pthread_mutex_unlock(&c->lock);

	send_reply(conn, msg, error_name, why);
	g_object_unref(msg);
	return NULL;
}

/* ---- encoded access units (stream worker thread) ---- */

static void on_encoded(void *opaque)
{
	struct hfe_dbus_console *c = opaque;
	struct hfe_stream_stats st;
	uint64_t px = atomic_exchange(&c->damage_px, 0);

	hfe_stream_get_stats(c->stream, &st);
	if (st.frames_encoded == c->seen_frames) /* a cursor change: no access unit */
		goto out;
	c->seen_frames = st.frames_encoded;
	/* One line per access unit at debug level: what a change costs. */
	hfe_debug("%s: encoded #%llu %s %llu bytes in %u us, damage %llu px", c->tag,
		  (unsigned long long)st.frames_encoded,
		  st.keyframes != c->seen_keys        ? "IDR"
		  : st.frames_patched != c->seen_patches ? "patch"
							 : "P",
		  (unsigned long long)(st.bytes_out - c->seen_bytes), st.encode_us_last,
		  (unsigned long long)px);
	c->seen_keys = st.keyframes;
	c->seen_patches = st.frames_patched;
	c->seen_bytes = st.bytes_out;
out:
	if (c->owner.notify)
		c->owner.notify(c->owner.opaque);
}


/* ---- serving a listener connection (control thread) ---- */

static void on_method_call(GDBusConnection *conn, const gchar *sender, const gchar *path,
			   const gchar *iface, const gchar *method, GVariant *params,
			   GDBusMethodInvocation *inv, gpointer data)
{
	(void)conn, (void)sender, (void)path, (void)iface, (void)method, (void)params, (void)data;
	/* The filter answers every Listener call; only a detached connection's
	 * late messages can get here. */
	g_dbus_method_invocation_return_dbus_error(inv, "org.freedesktop.DBus.Error.Failed",
						   "listener detached");
}

static const GDBusInterfaceVTable listener_vtable = { .method_call = on_method_call };

static void filter_gone(gpointer data)
{
	struct hfe_dbus_console *c = data;

	atomic_fetch_sub(&c->filter_alive, 1);
}

void hfe_dbus_console_serve(struct hfe_dbus_console *c, GDBusConnection *conn)
{
	GError *e = NULL;

	pthread_mutex_lock(&c->lock);
	c->conn = conn;
	c->surface = false;
	pthread_mutex_unlock(&c->lock);
	c->served = conn;
	atomic_fetch_add(&c->filter_alive, 1);
	c->filter_id = g_dbus_connection_add_filter(conn, listener_filter, c, filter_gone);
	/* The object answers the rest (QEMU's Properties.GetAll, introspection). */
	c->reg_id = g_dbus_connection_register_object(conn, LISTENER_PATH, c->node->interfaces[0],
						      &listener_vtable, c, NULL, &e);
	if (!c->reg_id) {
		hfe_warn("%s: cannot export the listener: %s", c->tag, e->message);
		g_clear_error(&e);
	}
}

static void log_stats(struct hfe_dbus_console *c, const char *reason)
{
	struct hfe_stream_stats st;
	uint64_t msgs, bytes, busy;

	pthread_mutex_lock(&c->lock);
	msgs = c->msgs;
	bytes = c->msg_bytes;
	busy = c->busy_us;
	pthread_mutex_unlock(&c->lock);
	hfe_stream_get_stats(c->stream, &st);
	hfe_info("%s: detached (%s): %llu messages, %.1f MiB from QEMU, %.0f us each to take; "
		 "%llu updates (%llu unchanged), %llu frames (%llu coalesced), %llu IDR, %llu patch frames "
		 "(%.0f us each; encoder %.0f us each), %llu bytes out, max %u us",
		 c->tag, reason, (unsigned long long)msgs, bytes / 1048576.0,
		 msgs ? (double)busy / (double)msgs : 0.0,
		 (unsigned long long)st.updates, (unsigned long long)st.updates_unchanged,
		 (unsigned long long)st.frames_encoded, (unsigned long long)st.updates_coalesced, (unsigned long long)st.keyframes,
		 (unsigned long long)st.frames_patched,
		 st.frames_patched ? (double)st.patch_us_total / (double)st.frames_patched : 0.0,
		 st.frames_encoded > st.frames_patched
			 ? (double)st.encoder_us_total /
				   (double)(st.frames_encoded - st.frames_patched)
			 : 0.0,
		 (unsigned long long)st.bytes_out, st.encode_us_max);
}

void hfe_dbus_console_unserve(struct hfe_dbus_console *c, const char *reason)
{
	pthread_mutex_lock(&c->lock);
	c->conn = NULL; /* the filter now refuses this connection's messages */
	c->surface = false;
	c->streaming = false;
	pthread_mutex_unlock(&c->lock);
	hfe_stream_cursor_move(c->stream, 0, 0, false); /* the next QEMU defines its own */
	hfe_stream_disable(c->stream);
	if (!c->served)
		return;
	if (reason)
		log_stats(c, reason);
	g_dbus_connection_remove_filter(c->served, c->filter_id);
	if (c->reg_id)
		g_dbus_connection_unregister_object(c->served, c->reg_id);
	c->served = NULL;
	c->reg_id = c->filter_id = 0;
}

void hfe_dbus_console_hide(struct hfe_dbus_console *c)
{
	pthread_mutex_lock(&c->lock);
	c->hidden = true;
	c->streaming = false;
	hfe_stream_disable(c->stream);
	pthread_mutex_unlock(&c->lock);
}

void hfe_dbus_console_show(struct hfe_dbus_console *c, uint32_t w, uint32_t h)
{
	pthread_mutex_lock(&c->lock);
	bool was = c->hidden;

	c->hidden = false;
	/* The picture QEMU has now is the output's own only if it has the
	 * mode asked for; else it is the placeholder, and the guest's modeset
	 * brings the real one. */
	if (was && c->conn && c->surface && c->w == w && c->h == h)
		feed(c, NULL);
	pthread_mutex_unlock(&c->lock);
}

int hfe_dbus_console_filter_alive(const struct hfe_dbus_console *c)
{
	return atomic_load(&c->filter_alive);
}

/* ---- lifetime ---- */

struct hfe_dbus_console *hfe_dbus_console_new(const char *vm, uint32_t index, uint32_t max_w,
					      uint32_t max_h, const struct hfe_stream_params *sp,
					      struct hfe_err *err)
{
	struct hfe_dbus_console *c = calloc(1, sizeof(*c));
	struct hfe_stream_params own = *sp;
	GError *e = NULL;

	if (!c) {
		hfe_err_set(err, HFE_ERR_INTERNAL, "out of memory");
		return NULL;
	}
	c->index = index;
	c->max_w = max_w;
	c->max_h = max_h;
	c->owner = *sp;
	snprintf(c->tag, sizeof(c->tag), "%s console %u", vm, index);
	pthread_mutex_init(&c->lock, NULL);
	atomic_init(&c->damage_px, 0);
	atomic_init(&c->filter_alive, 0);
	c->node = g_dbus_node_info_new_for_xml(listener_xml, &e);
	if (!c->node) {
		hfe_err_set(err, HFE_ERR_INTERNAL, "listener interface: %s", e->message);
		g_error_free(e);
		hfe_dbus_console_free(c);
		return NULL;
	}
	own.notify = on_encoded;
	own.opaque = c;
	c->stream = hfe_stream_new(&own, err);
	if (!c->stream) {
		hfe_dbus_console_free(c);
		return NULL;
	}
	return c;
}

void hfe_dbus_console_free(struct hfe_dbus_console *c)
{
	if (!c)
		return;
	hfe_stream_free(c->stream); /* joins its worker: no more on_encoded */
	if (c->node)
		g_dbus_node_info_unref(c->node);
	free(c->shadow);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

struct hfe_stream *hfe_dbus_console_stream(struct hfe_dbus_console *c)
{
	return c->stream;
}

bool hfe_dbus_console_size(struct hfe_dbus_console *c, uint32_t *w, uint32_t *h)
{
	pthread_mutex_lock(&c->lock);
	bool ok = c->surface;
	*w = c->w;
	*h = c->h;
	pthread_mutex_unlock(&c->lock);
	return ok;
}

uint32_t hfe_dbus_console_index(const struct hfe_dbus_console *c)
{
	return c->index;
}

const char *hfe_dbus_console_tag(const struct hfe_dbus_console *c)
{
	return c->tag;
}
