/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The -display dbus frame source (see qemu_dbus.h).
 *
 * Attach: QMP qmp_capabilities, getfd (one end of a socketpair, by
 * SCM_RIGHTS), add_client @dbus-display, then a GDBus peer connection on the
 * other end (QEMU authenticates as the server). Per console:
 * RegisterListener(h) with one end of another socketpair. QEMU answers, then
 * blocks its main loop while it authenticates that connection and builds its
 * proxy (a Properties.GetAll to us), so our end is set up at once and in
 * parallel with the call: connection with DELAY_MESSAGE_PROCESSING, filter,
 * object, then processing.
 *
 * Pixels: QEMU has no flow control (one method call per flush, pixels inside,
 * sent without waiting for our reply). A message filter handles the Listener
 * calls on GDBus's I/O thread as each message is read: copy the rectangle
 * into the console's shadow picture and into the stream (which coalesces
 * damage and encodes at its own pace), answer, drop the message. GDBus's
 * normal dispatch would first queue every message for our context, without a
 * bound if that thread ever fell behind; this way at most one message is in
 * memory. The control thread (QMP, set-up, reattach) never touches pixels.
 *
 * The cursor (CursorDefine/MouseSet) is composited into the stream: the
 * shadow keeps QEMU's picture without it, and every push draws the cursor
 * over the pushed rectangles and takes it off again afterwards.
 */
#include "qemu_dbus.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <gio/gio.h>
#include <gio/gunixfdlist.h>

#include "hfe/log.h"

#define LISTENER_PATH "/org/qemu/Display1/Listener"
#define LISTENER_IFACE "org.qemu.Display1.Listener"
#define CONSOLE_IFACE "org.qemu.Display1.Console"

/* pixman format codes in Scanout/Update (PIXMAN_FORMAT(bpp, type, a, r, g, b)) */
#define PIXMAN_X8R8G8B8 0x20020888u /* bytes B,G,R,x: what QEMU's 2D surfaces use */
#define PIXMAN_A8R8G8B8 0x20028888u
#define PIXMAN_X8B8G8R8 0x20030888u /* bytes R,G,B,x */
#define PIXMAN_A8B8G8R8 0x20038888u

#define QMP_TIMEOUT_MS 3000     /* each QMP reply */
#define ATTACH_TIMEOUT_MS 10000 /* add_client done -> every console's listener up */
#define CALL_TIMEOUT_MS 5000    /* RegisterListener */
#define CURSOR_MAX 512          /* larger cursor images are refused */
#define DEFAULT_RETRY_MS 500
#define REFUSED_RETRY_MS 5000
#define STOP_DRAIN_MS 5000      /* at stop: wait for GDBus callbacks this long */

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

struct console {
	struct hfe_qemu_dbus *q;
	uint32_t index;
	struct hfe_stream *stream;
	char tag[96]; /* "vm1 console 0" */

	/* Filter side (GDBus's I/O thread) and detach, under lock. */
	pthread_mutex_t lock;
	GDBusConnection *conn; /* the listener connection served; NULL: none */
	uint8_t *shadow;       /* QEMU's picture without the cursor, B,G,R,x */
	uint32_t w, h, stride;
	bool surface;          /* a Scanout was accepted on this connection */
	uint8_t *cursor;       /* cw x ch, B,G,R,A, straight alpha */
	uint8_t *under;        /* shadow pixels under the drawn cursor */
	int cw, ch;
	int cx, cy;            /* top-left of the cursor image on the surface */
	bool cursor_on;
	uint64_t msgs, msg_bytes, busy_us; /* busy: time spent on Listener calls */
	bool warned_format, warned_size, warned_dmabuf;

	atomic_uint_fast64_t damage_px; /* pushed since the last encode (for the log) */

	/* stream worker thread only (on_encoded) */
	uint64_t seen_bytes, seen_keys, seen_patches;

	/* control thread only */
	GCancellable *cancel; /* this attempt's set-up of the listener */
	GDBusConnection *setup; /* listener connection until it is served */
	guint reg_id, filter_id, closed_id;
	bool registered, ready, failed;
	char conn_error[160]; /* our end failed before RegisterListener answered */
};

struct hfe_qemu_dbus {
	char name[64];
	char qmp_path[108];
	uint32_t max_w, max_h;
	unsigned retry_ms;
	struct hfe_stream_params sp; /* the owner's notify */
	struct console *cons;
	unsigned n_cons;

	pthread_t thread;
	bool thread_started;
	GMainContext *ctx;
	GMainLoop *loop;
	GDBusNodeInfo *node;

	/* control thread only */
	GCancellable *attempt;
	GDBusConnection *display;
	guint display_closed_id;
	GSource *retry_src, *timeout_src;
	bool attached, stopping;
	unsigned attaches, pending_ops;
	char last_wait[256];
	atomic_int filters_alive;
};

/* ---- pixels (GDBus's I/O thread, console lock held) ---- */

static bool format_ok(uint32_t fmt)
{
	return fmt == PIXMAN_X8R8G8B8 || fmt == PIXMAN_A8R8G8B8 || fmt == PIXMAN_X8B8G8R8 ||
	       fmt == PIXMAN_A8B8G8R8;
}

/* A rectangle of QEMU's pixels into the shadow (as B,G,R,x). */
static void copy_in(struct console *c, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
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

/* The visible cursor's rectangle, clipped to the surface. */
static bool cursor_box(const struct console *c, struct hfe_rect *r)
{
	if (!c->cursor_on || !c->cursor || !c->surface)
		return false;
	int64_t x0 = c->cx > 0 ? c->cx : 0, y0 = c->cy > 0 ? c->cy : 0;
	int64_t x1 = (int64_t)c->cx + c->cw, y1 = (int64_t)c->cy + c->ch;

	if (x1 > c->w)
		x1 = c->w;
	if (y1 > c->h)
		y1 = c->h;
	if (x0 >= x1 || y0 >= y1)
		return false;
	*r = (struct hfe_rect){ (uint32_t)x0, (uint32_t)y0, (uint32_t)(x1 - x0),
				(uint32_t)(y1 - y0) };
	return true;
}

static bool overlap(const struct hfe_rect *a, const struct hfe_rect *b)
{
	return a->x < b->x + b->w && b->x < a->x + a->w && a->y < b->y + b->h &&
	       b->y < a->y + a->h;
}

/* Draw the cursor into the shadow over box b, saving what it covers. */
static void cursor_draw(struct console *c, const struct hfe_rect *b)
{
	for (uint32_t y = 0; y < b->h; y++) {
		uint8_t *d = c->shadow + (size_t)(b->y + y) * c->stride + (size_t)b->x * 4;
		const uint8_t *s = c->cursor + ((size_t)(b->y + y - c->cy) * c->cw +
						(size_t)(b->x - c->cx)) * 4;

		memcpy(c->under + (size_t)y * b->w * 4, d, (size_t)b->w * 4);
		for (uint32_t i = 0; i < b->w; i++) {
			unsigned a = s[4 * i + 3];

			for (int k = 0; k < 3; k++)
				d[4 * i + k] = (uint8_t)((s[4 * i + k] * a +
							   d[4 * i + k] * (255 - a) + 127) / 255);
		}
	}
}

static void cursor_erase(struct console *c, const struct hfe_rect *b)
{
	for (uint32_t y = 0; y < b->h; y++)
		memcpy(c->shadow + (size_t)(b->y + y) * c->stride + (size_t)b->x * 4,
		       c->under + (size_t)y * b->w * 4, (size_t)b->w * 4);
}

/* Rectangles of the shadow into the stream, cursor included, in one
 * update (an encode never sees half of it). */
static void push(struct console *c, const struct hfe_rect *r, unsigned n)
{
	struct hfe_rect cb;
	bool draw = false;
	uint64_t px = 0;

	if (cursor_box(c, &cb))
		for (unsigned i = 0; i < n; i++)
			draw |= overlap(&r[i], &cb);
	if (draw)
		cursor_draw(c, &cb);
	/* Counted first: a patch frame can be out before the update returns. */
	for (unsigned i = 0; i < n; i++)
		px += (uint64_t)r[i].w * r[i].h;
	atomic_fetch_add(&c->damage_px, px);
	hfe_stream_update_rects(c->stream, r, n, c->shadow, c->stride, HFE_FMT_XRGB8888);
	if (draw)
		cursor_erase(c, &cb);
}

static void surface_off(struct console *c)
{
	c->surface = false;
	hfe_stream_disable(c->stream);
}

/* Each handler returns NULL, or the text of an error reply. */
static const char *on_scanout(struct console *c, GVariant *body)
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
	if (w < HFE_MIN_DIMENSION || h < HFE_MIN_DIMENSION || w > c->q->max_w ||
	    h > c->q->max_h) {
		if (!c->warned_size)
			hfe_warn("%s: surface %ux%u is outside %ux%u..%ux%u; scanout disabled",
				 c->tag, w, h, HFE_MIN_DIMENSION, HFE_MIN_DIMENSION, c->q->max_w,
				 c->q->max_h);
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
		struct hfe_err err;
		uint8_t *shadow = malloc((size_t)w * 4 * h);

		if (!shadow || hfe_stream_resize(c->stream, w, h, &err) < 0) {
			hfe_error("%s: cannot take a %ux%u surface: %s", c->tag, w, h,
				  shadow ? err.msg : "out of memory");
			free(shadow);
			surface_off(c);
			why = "cannot take the surface";
			goto out;
		}
		free(c->shadow);
		c->shadow = shadow;
		if (w != c->w || h != c->h)
			hfe_info("%s: surface %ux%u", c->tag, w, h);
		c->w = w;
		c->h = h;
		c->stride = w * 4;
		c->surface = true;
		c->warned_size = c->warned_format = false;
	}
	copy_in(c, 0, 0, w, h, px, stride, fmt);
	push(c, &(struct hfe_rect){ 0, 0, w, h }, 1);
out:
	g_variant_unref(v);
	return why;
}

static const char *on_update(struct console *c, GVariant *body)
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
	push(c, &(struct hfe_rect){ (uint32_t)x, (uint32_t)y, cw, ch }, 1);
out:
	g_variant_unref(v);
	return why;
}

/* The cursor moved, appeared, vanished or changed: repaint old and new. */
static void cursor_changed(struct console *c, bool had, const struct hfe_rect *old)
{
	struct hfe_rect r[2];
	unsigned n = 0;

	if (had)
		r[n++] = *old;
	if (cursor_box(c, &r[n]))
		n++;
	if (n && c->surface)
		push(c, r, n);
}

static const char *on_mouse_set(struct console *c, GVariant *body)
{
	int32_t x, y, on;
	struct hfe_rect old;
	bool had = cursor_box(c, &old);

	g_variant_get(body, "(iii)", &x, &y, &on);
	c->cx = x;
	c->cy = y;
	c->cursor_on = on != 0;
	cursor_changed(c, had, &old);
	return NULL;
}

static const char *on_cursor_define(struct console *c, GVariant *body)
{
	int32_t w, h, hot_x, hot_y;
	GVariant *v;
	gsize len;
	const char *why = NULL;
	struct hfe_rect old;
	bool had = cursor_box(c, &old);

	g_variant_get(body, "(iiii@ay)", &w, &h, &hot_x, &hot_y, &v);
	const uint8_t *px = g_variant_get_fixed_array(v, &len, 1);

	if (w <= 0 || h <= 0 || w > CURSOR_MAX || h > CURSOR_MAX ||
	    len < (uint64_t)w * (uint64_t)h * 4) {
		why = "bad cursor image";
		goto out;
	}
	uint8_t *img = malloc((size_t)w * h * 4), *under = malloc((size_t)w * h * 4);

	if (!img || !under) {
		free(img);
		free(under);
		why = "out of memory";
		goto out;
	}
	/* QEMUCursor pixels are native-endian ARGB words: B,G,R,A bytes here. */
	memcpy(img, px, (size_t)w * h * 4);
	free(c->cursor);
	free(c->under);
	c->cursor = img;
	c->under = under;
	c->cw = w;
	c->ch = h;
	cursor_changed(c, had, &old);
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
	const char *(*fn)(struct console *c, GVariant *body);
};

static const char *on_disable(struct console *c, GVariant *body)
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
	struct console *c = data;
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
	struct console *c = opaque;
	struct hfe_stream_stats st;
	uint64_t px = atomic_exchange(&c->damage_px, 0);

	hfe_stream_get_stats(c->stream, &st);
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
	if (c->q->sp.notify)
		c->q->sp.notify(c->q->sp.opaque);
}

/* ---- QMP (control thread, blocking with timeouts) ---- */

struct qmp {
	int fd;
	char buf[16384];
	size_t len;  /* bytes in buf */
	size_t used; /* of which the last line returned */
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		uint64_t now = now_ms();
		struct pollfd p = { .fd = fd, .events = events };

		if (now >= deadline)
			return 0;
		int r = poll(&p, 1, (int)(deadline - now));

		if (r < 0 && errno == EINTR)
			continue;
		return r < 0 ? -1 : r;
	}
}

/* Next line from QEMU (without its "\r\n"). 1, or 0 with why. */
static int qmp_line(struct qmp *m, char **line, uint64_t deadline, char *why, size_t len)
{
	memmove(m->buf, m->buf + m->used, m->len - m->used);
	m->len -= m->used;
	m->used = 0;
	for (;;) {
		char *nl = memchr(m->buf, '\n', m->len);

		if (nl) {
			*nl = '\0';
			m->used = (size_t)(nl - m->buf) + 1;
			*line = m->buf;
			return 1;
		}
		if (m->len == sizeof(m->buf) - 1) {
			snprintf(why, len, "QMP line longer than %zu bytes", sizeof(m->buf));
			return 0;
		}
		int r = wait_fd(m->fd, POLLIN, deadline);

		if (r < 0) {
			snprintf(why, len, "QMP: %s", strerror(errno));
			return 0;
		}
		if (r == 0) {
			snprintf(why, len, "QMP: no answer within %d ms", QMP_TIMEOUT_MS);
			return 0;
		}
		ssize_t n = read(m->fd, m->buf + m->len, sizeof(m->buf) - 1 - m->len);

		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			snprintf(why, len, "QMP: %s", n ? strerror(errno) : "connection closed");
			return 0;
		}
		m->len += (size_t)n;
	}
}

/* The "desc" of a QMP error reply, for logs. */
static void qmp_error_desc(const char *line, char *why, size_t len)
{
	const char *d = strstr(line, "\"desc\"");
	size_t o = 0;

	if (d)
		d = strchr(d + 6, '"');
	if (!d) {
		snprintf(why, len, "QMP error: %.200s", line);
		return;
	}
	o = (size_t)snprintf(why, len, "QMP error: ");
	for (d++; *d && *d != '"' && o + 1 < len; d++) {
		if (*d == '\\' && d[1])
			d++;
		why[o++] = *d;
	}
	why[o < len ? o : len - 1] = '\0';
}

/* Send one command (with a descriptor when fd >= 0) and wait for its
 * answer, skipping events. 0 on "return", -1 with why. */
static int qmp_cmd(struct qmp *m, const char *cmd, int fd, char *why, size_t len)
{
	uint64_t deadline = now_ms() + QMP_TIMEOUT_MS;
	size_t off = 0, total = strlen(cmd);

	while (off < total) {
		struct iovec iov = { (void *)(cmd + off), total - off };
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} u;
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

		if (fd >= 0 && off == 0) {
			memset(&u, 0, sizeof(u));
			mh.msg_control = u.buf;
			mh.msg_controllen = sizeof(u.buf);
			struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cm), &fd, sizeof(int));
		}
		ssize_t n = sendmsg(m->fd, &mh, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (wait_fd(m->fd, POLLOUT, deadline) <= 0) {
				snprintf(why, len, "QMP: cannot send");
				return -1;
			}
			continue;
		}
		if (n < 0) {
			snprintf(why, len, "QMP: %s", strerror(errno));
			return -1;
		}
		off += (size_t)n;
	}
	for (;;) {
		char *line;

		if (!qmp_line(m, &line, deadline, why, len))
			return -1;
		while (*line == ' ' || *line == '\t')
			line++;
		if (!strncmp(line, "{\"return\"", 9))
			return 0;
		if (!strncmp(line, "{\"error\"", 8)) {
			qmp_error_desc(line, why, len);
			return -1;
		}
		/* an event: skip it */
	}
}

/*
 * Ask QEMU for a D-Bus display connection: returns our end of it, or -1 with
 * why. Only short blocking steps (a local socket, 3 s per reply at most).
 */
static int qmp_add_client(const char *path, unsigned serial, char *why, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct qmp *m = calloc(1, sizeof(*m));
	int sv[2] = { -1, -1 }, out = -1;
	char cmd[256], *line;

	if (!m) {
		snprintf(why, len, "out of memory");
		return -1;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	m->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (m->fd < 0 || connect(m->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		/* ENOENT: not started yet; ECONNREFUSED: gone (stale socket file);
		 * EAGAIN: its backlog is full (another QMP client is connected). */
		snprintf(why, len, "%s", strerror(errno));
		goto out;
	}
	/* The greeting, then capabilities negotiation. */
	if (!qmp_line(m, &line, now_ms() + QMP_TIMEOUT_MS, why, len))
		goto out;
	if (!strstr(line, "\"QMP\"")) {
		snprintf(why, len, "not a QMP socket (greeting: %.80s)", line);
		goto out;
	}
	if (qmp_cmd(m, "{\"execute\":\"qmp_capabilities\"}\n", -1, why, len) < 0)
		goto out;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(why, len, "socketpair: %s", strerror(errno));
		goto out;
	}
	snprintf(cmd, sizeof(cmd),
		 "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"hfe-dbus-%ld-%u\"}}\n",
		 (long)getpid(), serial);
	if (qmp_cmd(m, cmd, sv[1], why, len) < 0)
		goto out;
	snprintf(cmd, sizeof(cmd),
		 "{\"execute\":\"add_client\",\"arguments\":{\"protocol\":\"@dbus-display\","
		 "\"fdname\":\"hfe-dbus-%ld-%u\"}}\n",
		 (long)getpid(), serial);
	if (qmp_cmd(m, cmd, -1, why, len) < 0) {
		size_t l = strlen(why);

		snprintf(why + l, len - l, " (is QEMU started with -display dbus,p2p=yes?)");
		goto out;
	}
	out = sv[0];
	sv[0] = -1;
out:
	for (int i = 0; i < 2; i++)
		if (sv[i] >= 0)
			close(sv[i]);
	if (m->fd >= 0)
		close(m->fd);
	free(m);
	return out;
}

/* ---- attach / detach (control thread) ---- */

static gboolean try_attach(gpointer data);
static void detach(struct hfe_qemu_dbus *q, const char *reason);

static GSource *add_timeout(struct hfe_qemu_dbus *q, unsigned ms, GSourceFunc fn)
{
	GSource *s = g_timeout_source_new(ms);

	g_source_set_callback(s, fn, q, NULL);
	g_source_attach(s, q->ctx);
	return s;
}

static void drop_source(GSource **s)
{
	if (*s) {
		g_source_destroy(*s);
		g_source_unref(*s);
		*s = NULL;
	}
}

static void schedule_retry_in(struct hfe_qemu_dbus *q, unsigned ms)
{
	if (!q->stopping && !q->retry_src)
		q->retry_src = add_timeout(q, ms, try_attach);
}

static void schedule_retry(struct hfe_qemu_dbus *q)
{
	schedule_retry_in(q, q->retry_ms);
}

static void filter_gone(gpointer data)
{
	struct console *c = data;

	atomic_fetch_sub(&c->q->filters_alive, 1);
}

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

static void on_closed(GDBusConnection *conn, gboolean vanished, GError *error, gpointer data)
{
	struct hfe_qemu_dbus *q = data;

	(void)conn, (void)vanished;
	if (q->stopping)
		return;
	hfe_info("%s: QEMU closed the display connection%s%s", q->name, error ? ": " : "",
		 error ? error->message : "");
	detach(q, "QEMU went away");
	schedule_retry(q);
}

/* Every console either serves or failed: the attempt is over. */
static void check_settled(struct hfe_qemu_dbus *q)
{
	unsigned up = 0;

	if (q->attached || !q->display)
		return;
	for (unsigned i = 0; i < q->n_cons; i++) {
		struct console *c = &q->cons[i];

		if (!c->failed && !(c->registered && c->ready))
			return;
		up += !c->failed;
	}
	drop_source(&q->timeout_src);
	if (!up) {
		hfe_error("%s: no console could be attached; retrying", q->name);
		detach(q, NULL);
		schedule_retry(q);
		return;
	}
	q->attached = true;
	q->attaches++;
	hfe_info("%s: attached to QEMU at %s (%u of %u consoles)", q->name, q->qmp_path, up,
		 q->n_cons);
}

static bool was_cancelled(const GError *e)
{
	return e && g_error_matches(e, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

static void on_listener_ready(GObject *src, GAsyncResult *res, gpointer data)
{
	struct console *c = data;
	struct hfe_qemu_dbus *q = c->q;
	GError *e = NULL;
	GDBusConnection *conn = g_dbus_connection_new_finish(res, &e);

	(void)src;
	q->pending_ops--;
	if (!conn) {
		/* If RegisterListener fails, QEMU drops our end: that error says it. */
		if (!was_cancelled(e) && !c->failed && c->registered) {
			hfe_warn("%s: listener connection failed: %s", c->tag, e->message);
			c->failed = true;
			check_settled(q);
		} else if (!was_cancelled(e)) {
			snprintf(c->conn_error, sizeof(c->conn_error), "%s", e->message);
		}
		g_error_free(e);
		return;
	}
	if (q->stopping || g_cancellable_is_cancelled(c->cancel) || c->failed) {
		g_dbus_connection_close(conn, NULL, NULL, NULL);
		g_object_unref(conn);
		return;
	}
	/* Serve it before QEMU's first message is processed: the connection was
	 * made with DELAY_MESSAGE_PROCESSING. */
	pthread_mutex_lock(&c->lock);
	c->conn = conn;
	c->surface = false;
	pthread_mutex_unlock(&c->lock);
	c->setup = conn;
	atomic_fetch_add(&q->filters_alive, 1);
	c->filter_id = g_dbus_connection_add_filter(conn, listener_filter, c, filter_gone);
	c->reg_id = g_dbus_connection_register_object(conn, LISTENER_PATH, q->node->interfaces[0],
						      &listener_vtable, c, NULL, &e);
	if (!c->reg_id) {
		hfe_warn("%s: cannot export the listener: %s", c->tag, e->message);
		g_clear_error(&e);
	}
	c->closed_id = g_signal_connect(conn, "closed", G_CALLBACK(on_closed), q);
	g_dbus_connection_start_message_processing(conn);
	c->ready = true;
	check_settled(q);
}

static void on_registered(GObject *src, GAsyncResult *res, gpointer data)
{
	struct console *c = data;
	struct hfe_qemu_dbus *q = c->q;
	GError *e = NULL;
	GVariant *r = g_dbus_connection_call_with_unix_fd_list_finish(G_DBUS_CONNECTION(src), NULL,
								       res, &e);

	q->pending_ops--;
	if (r) {
		g_variant_unref(r);
		c->registered = true;
		if (c->conn_error[0]) {
			hfe_warn("%s: listener connection failed: %s", c->tag, c->conn_error);
			c->failed = true;
		}
		check_settled(q);
		return;
	}
	if (!was_cancelled(e)) {
		hfe_error("%s: RegisterListener failed: %s", c->tag, e->message);
		c->failed = true;
		g_cancellable_cancel(c->cancel); /* QEMU will not authenticate our end */
		check_settled(q);
	}
	g_error_free(e);
}

static void start_console(struct hfe_qemu_dbus *q, struct console *c)
{
	GError *e = NULL;
	int sv[2];
	char path[64];

	c->registered = c->ready = c->failed = false;
	c->conn_error[0] = '\0';
	c->cancel = g_cancellable_new();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		hfe_error("%s: socketpair: %s", c->tag, strerror(errno));
		c->failed = true;
		return;
	}
	GUnixFDList *fds = g_unix_fd_list_new();
	int idx = g_unix_fd_list_append(fds, sv[1], &e); /* duplicates it */

	close(sv[1]);
	GSocket *sock = idx >= 0 ? g_socket_new_from_fd(sv[0], &e) : NULL;

	if (!sock) {
		hfe_error("%s: %s", c->tag, e->message);
		g_error_free(e);
		g_object_unref(fds);
		close(sv[0]);
		c->failed = true;
		return;
	}
	snprintf(path, sizeof(path), "/org/qemu/Display1/Console_%u", c->index);
	q->pending_ops++;
	g_dbus_connection_call_with_unix_fd_list(q->display, NULL, path, CONSOLE_IFACE,
						 "RegisterListener", g_variant_new("(h)", idx),
						 G_VARIANT_TYPE_UNIT, G_DBUS_CALL_FLAGS_NONE,
						 CALL_TIMEOUT_MS, fds, c->cancel, on_registered, c);
	g_object_unref(fds);

	/* Our end at once: QEMU authenticates it right after answering. */
	GSocketConnection *sc = g_socket_connection_factory_create_connection(sock);

	q->pending_ops++;
	g_dbus_connection_new(G_IO_STREAM(sc), NULL,
			      G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
				      G_DBUS_CONNECTION_FLAGS_DELAY_MESSAGE_PROCESSING,
			      NULL, c->cancel, on_listener_ready, c);
	g_object_unref(sc);
	g_object_unref(sock);
}

static void on_display_ready(GObject *src, GAsyncResult *res, gpointer data)
{
	struct hfe_qemu_dbus *q = data;
	GError *e = NULL;
	GDBusConnection *conn = g_dbus_connection_new_finish(res, &e);

	(void)src;
	q->pending_ops--;
	if (!conn) {
		if (!was_cancelled(e)) {
			hfe_warn("%s: D-Bus connection to QEMU failed: %s", q->name, e->message);
			detach(q, NULL);
			schedule_retry(q);
		}
		g_error_free(e);
		return;
	}
	if (q->stopping || !q->attempt || g_cancellable_is_cancelled(q->attempt)) {
		g_dbus_connection_close(conn, NULL, NULL, NULL);
		g_object_unref(conn);
		return;
	}
	q->display = conn;
	q->display_closed_id = g_signal_connect(conn, "closed", G_CALLBACK(on_closed), q);
	for (unsigned i = 0; i < q->n_cons; i++)
		start_console(q, &q->cons[i]);
	check_settled(q);
}

static gboolean on_attach_timeout(gpointer data)
{
	struct hfe_qemu_dbus *q = data;

	g_source_unref(q->timeout_src);
	q->timeout_src = NULL;
	hfe_warn("%s: QEMU did not complete the D-Bus set-up within %d ms; retrying", q->name,
		 ATTACH_TIMEOUT_MS);
	detach(q, NULL);
	schedule_retry(q);
	return G_SOURCE_REMOVE;
}

static gboolean try_attach(gpointer data)
{
	struct hfe_qemu_dbus *q = data;
	char why[256];
	GError *e = NULL;

	g_source_unref(q->retry_src);
	q->retry_src = NULL;
	int fd = qmp_add_client(q->qmp_path, q->attaches, why, sizeof(why));

	if (fd < 0) {
		/* Log each new reason once, not every retry. */
		if (strcmp(why, q->last_wait))
			hfe_info("%s: waiting for QEMU at %s: %s", q->name, q->qmp_path, why);
		snprintf(q->last_wait, sizeof(q->last_wait), "%s", why);
		/* A QEMU that answers but refuses (no -display dbus) is asked
		 * less often: its QMP socket takes one client at a time. */
		schedule_retry_in(q, strncmp(why, "QMP error", 9) ? q->retry_ms : REFUSED_RETRY_MS);
		return G_SOURCE_REMOVE;
	}
	q->last_wait[0] = '\0';
	GSocket *sock = g_socket_new_from_fd(fd, &e);

	if (!sock) {
		hfe_error("%s: %s", q->name, e->message);
		g_error_free(e);
		close(fd);
		schedule_retry(q);
		return G_SOURCE_REMOVE;
	}
	GSocketConnection *sc = g_socket_connection_factory_create_connection(sock);

	q->attempt = g_cancellable_new();
	q->timeout_src = add_timeout(q, ATTACH_TIMEOUT_MS, on_attach_timeout);
	q->pending_ops++;
	g_dbus_connection_new(G_IO_STREAM(sc), NULL, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT,
			      NULL, q->attempt, on_display_ready, q);
	g_object_unref(sc);
	g_object_unref(sock);
	return G_SOURCE_REMOVE;
}

static void log_console_stats(struct console *c, const char *reason)
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
		 "%llu updates, %llu frames (%llu coalesced), %llu IDR, %llu patch frames "
		 "(%.0f us each; encoder %.0f us each), %llu bytes out, max %u us",
		 c->tag, reason, (unsigned long long)msgs, bytes / 1048576.0,
		 msgs ? (double)busy / (double)msgs : 0.0,
		 (unsigned long long)st.updates, (unsigned long long)st.frames_encoded,
		 (unsigned long long)st.updates_coalesced, (unsigned long long)st.keyframes,
		 (unsigned long long)st.frames_patched,
		 st.frames_patched ? (double)st.patch_us_total / (double)st.frames_patched : 0.0,
		 st.frames_encoded > st.frames_patched
			 ? (double)st.encoder_us_total /
				   (double)(st.frames_encoded - st.frames_patched)
			 : 0.0,
		 (unsigned long long)st.bytes_out, st.encode_us_max);
}

/* Tear down every connection of this attempt (QEMU gone, a failure, stop).
 * The streams stay, disabled, for the next attach. reason: log the
 * consoles' counters with it (NULL: silently). */
static void detach(struct hfe_qemu_dbus *q, const char *reason)
{
	bool was_attached = q->attached;

	drop_source(&q->timeout_src);
	if (q->attempt) {
		g_cancellable_cancel(q->attempt);
		g_clear_object(&q->attempt);
	}
	for (unsigned i = 0; i < q->n_cons; i++) {
		struct console *c = &q->cons[i];

		if (c->cancel) {
			g_cancellable_cancel(c->cancel);
			g_clear_object(&c->cancel);
		}
		pthread_mutex_lock(&c->lock);
		c->conn = NULL; /* the filter now refuses this connection's messages */
		c->surface = false;
		c->cursor_on = false;
		pthread_mutex_unlock(&c->lock);
		hfe_stream_disable(c->stream);
		if (was_attached && reason && c->setup)
			log_console_stats(c, reason);
		if (c->setup) {
			g_signal_handler_disconnect(c->setup, c->closed_id);
			g_dbus_connection_remove_filter(c->setup, c->filter_id);
			if (c->reg_id)
				g_dbus_connection_unregister_object(c->setup, c->reg_id);
			g_dbus_connection_close(c->setup, NULL, NULL, NULL);
			g_clear_object(&c->setup);
			c->reg_id = c->filter_id = c->closed_id = 0;
		}
		c->registered = c->ready = c->failed = false;
	}
	if (q->display) {
		g_signal_handler_disconnect(q->display, q->display_closed_id);
		g_dbus_connection_close(q->display, NULL, NULL, NULL);
		g_clear_object(&q->display);
	}
	q->attached = false;
}

/* ---- thread and lifetime ---- */

static gboolean stop_cb(gpointer data)
{
	struct hfe_qemu_dbus *q = data;

	q->stopping = true;
	g_main_loop_quit(q->loop);
	return G_SOURCE_REMOVE;
}

static void *thread_main(void *arg)
{
	struct hfe_qemu_dbus *q = arg;

	g_main_context_push_thread_default(q->ctx);
	q->retry_src = add_timeout(q, 0, try_attach);
	g_main_loop_run(q->loop);

	drop_source(&q->retry_src);
	detach(q, "daemon stopping");
	/* Let cancelled operations finish and GDBus drop our filters (it calls
	 * filter_gone here once a filter can no longer run). */
	uint64_t deadline = now_ms() + STOP_DRAIN_MS;

	while ((q->pending_ops || atomic_load(&q->filters_alive)) && now_ms() < deadline) {
		while (g_main_context_iteration(q->ctx, FALSE))
			;
		if (q->pending_ops || atomic_load(&q->filters_alive))
			g_usleep(2000);
	}
	if (q->pending_ops || atomic_load(&q->filters_alive))
		hfe_warn("%s: D-Bus clean-up incomplete at exit (%u operations, %d filters)",
			 q->name, q->pending_ops, atomic_load(&q->filters_alive));
	g_main_context_pop_thread_default(q->ctx);
	return NULL;
}

struct hfe_stream *hfe_qemu_dbus_stream(struct hfe_qemu_dbus *q, unsigned i)
{
	return i < q->n_cons ? q->cons[i].stream : NULL;
}

static void free_all(struct hfe_qemu_dbus *q)
{
	for (unsigned i = 0; q->cons && i < q->n_cons; i++) {
		struct console *c = &q->cons[i];

		hfe_stream_free(c->stream); /* joins its worker: no more on_encoded */
		free(c->shadow);
		free(c->cursor);
		free(c->under);
		pthread_mutex_destroy(&c->lock);
	}
	free(q->cons);
	if (q->node)
		g_dbus_node_info_unref(q->node);
	if (q->loop)
		g_main_loop_unref(q->loop);
	if (q->ctx)
		g_main_context_unref(q->ctx);
	free(q);
}

struct hfe_qemu_dbus *hfe_qemu_dbus_start(const struct hfe_qemu_dbus_config *cfg,
					  struct hfe_err *err)
{
	struct sockaddr_un sa;
	GError *e = NULL;

	if (!cfg->n_consoles || cfg->n_consoles > HFE_MAX_SCANOUTS) {
		hfe_err_set(err, HFE_ERR_INTERNAL, "1..%u consoles per VM", HFE_MAX_SCANOUTS);
		return NULL;
	}
	if (!cfg->qmp_path || !*cfg->qmp_path || strlen(cfg->qmp_path) >= sizeof(sa.sun_path)) {
		hfe_err_set(err, HFE_ERR_INTERNAL, "QMP socket path empty or longer than %zu bytes",
			    sizeof(sa.sun_path) - 1);
		return NULL;
	}
	struct hfe_qemu_dbus *q = calloc(1, sizeof(*q));

	if (!q || !(q->cons = calloc(cfg->n_consoles, sizeof(*q->cons)))) {
		free(q);
		hfe_err_set(err, HFE_ERR_INTERNAL, "out of memory");
		return NULL;
	}
	snprintf(q->name, sizeof(q->name), "%s", cfg->name ? cfg->name : "qemu");
	snprintf(q->qmp_path, sizeof(q->qmp_path), "%s", cfg->qmp_path);
	q->max_w = cfg->max_width ? cfg->max_width : HFE_MAX_DIMENSION;
	q->max_h = cfg->max_height ? cfg->max_height : HFE_MAX_DIMENSION;
	q->retry_ms = cfg->retry_ms ? cfg->retry_ms : DEFAULT_RETRY_MS;
	q->sp = cfg->stream;
	atomic_init(&q->filters_alive, 0);
	for (unsigned i = 0; i < cfg->n_consoles; i++) {
		struct console *c = &q->cons[i];
		struct hfe_stream_params sp = cfg->stream;

		c->q = q;
		c->index = cfg->consoles[i];
		snprintf(c->tag, sizeof(c->tag), "%s console %u", q->name, c->index);
		pthread_mutex_init(&c->lock, NULL);
		atomic_init(&c->damage_px, 0);
		q->n_cons = i + 1;
		sp.notify = on_encoded;
		sp.opaque = c;
		c->stream = hfe_stream_new(&sp, err);
		if (!c->stream)
			goto fail;
	}
	q->node = g_dbus_node_info_new_for_xml(listener_xml, &e);
	if (!q->node) {
		hfe_err_set(err, HFE_ERR_INTERNAL, "listener interface: %s", e->message);
		g_error_free(e);
		goto fail;
	}
	q->ctx = g_main_context_new();
	q->loop = g_main_loop_new(q->ctx, FALSE);
	if (pthread_create(&q->thread, NULL, thread_main, q) != 0) {
		hfe_err_set(err, HFE_ERR_INTERNAL, "cannot start the D-Bus thread");
		goto fail;
	}
	q->thread_started = true;
	return q;
fail:
	free_all(q);
	return NULL;
}

void hfe_qemu_dbus_stop(struct hfe_qemu_dbus *q)
{
	if (!q)
		return;
	if (q->thread_started) {
		g_main_context_invoke(q->ctx, stop_cb, q);
		pthread_join(q->thread, NULL);
	}
	free_all(q);
}
