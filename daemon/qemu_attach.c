/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Attaching to QEMU's -display dbus (see qemu_attach.h), on the control
 * thread:
 *
 * 1. QMP (qmp.h): greeting, qmp_capabilities, getfd with one end of a
 *    socketpair (SCM_RIGHTS), add_client @dbus-display; the QMP connection is
 *    then closed (QEMU's QMP socket takes one client at a time).
 * 2. A GDBus peer connection on the other end (QEMU authenticates as the
 *    server).
 * 3. The VM's ConsoleIDs, then each wanted console's properties (Type, Head,
 *    Label): consoles QEMU does not have, and text consoles, are skipped;
 *    the graphic consoles of a virtio-gpu whose head is their index are the
 *    VM's hot-pluggable outputs (SetUIInfo, see hfe_qemu_attach_set_ui_info).
 * 4. Per graphic console: RegisterListener(h) with one end of another socketpair.
 *    QEMU answers, then blocks its main loop while it authenticates that
 *    connection and builds its proxy (a Properties.GetAll to us), so our end
 *    is set up at once and in parallel with the call: connection with
 *    DELAY_MESSAGE_PROCESSING, handed to the console (filter, object), then
 *    processing.
 * 5. Attached when every console serves, failed or is absent;
 *    ATTACH_TIMEOUT_MS for all of it, else start over.
 *
 * Any failure, and QEMU closing a connection, detaches everything and
 * schedules the next attempt; the consoles' streams stay, disabled.
 */
#include "qemu_attach.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gio/gunixfdlist.h>

#include "hfe/log.h"
#include "qmp.h"

#define CONSOLE_IFACE "org.qemu.Display1.Console"
#define KEYBOARD_IFACE "org.qemu.Display1.Keyboard"
#define MOUSE_IFACE "org.qemu.Display1.Mouse"
#define VM_IFACE "org.qemu.Display1.VM"
#define VM_PATH "/org/qemu/Display1/VM"
#define PROPS_IFACE "org.freedesktop.DBus.Properties"
#define MM_PER_INCH_X10 254 /* SetUIInfo's physical size at PREFERRED_DPI */
#define PREFERRED_DPI 96

#define QMP_TIMEOUT_MS 3000     /* each QMP reply */
#define ATTACH_TIMEOUT_MS 10000 /* add_client done -> every console's listener up */
#define CALL_TIMEOUT_MS 5000    /* RegisterListener, GetAll, SetUIInfo */
#define REFUSED_RETRY_MS 5000   /* QEMU answers but refuses */

/* A console's part in the current attempt. */
struct attach_console {
	struct hfe_qemu_attach *a;
	struct hfe_dbus_console *dc;
	GCancellable *cancel;   /* this attempt's set-up of the listener */
	GDBusConnection *setup; /* listener connection, from set-up until detach */
	guint closed_id;
	bool registered, ready, failed;
	bool absent; /* QEMU has no such console, or not a graphic one */
	bool output; /* an output of the VM's virtio-gpu (under the attach's lock) */
	uint32_t head;
	char conn_error[160]; /* our end failed before RegisterListener answered */
};

struct hfe_qemu_attach {
	char name[64];
	char qmp_path[108];
	unsigned retry_ms;
	GMainContext *ctx;
	struct attach_console *cons;
	unsigned n_cons;

	GCancellable *attempt;
	GDBusConnection *display;
	guint display_closed_id;
	GSource *retry_src, *timeout_src;
	bool attached, stopping;
	bool input_warned; /* a refused input call was logged in this attach */
	unsigned attaches, pending_ops;
	char last_wait[256];

	/* What the hub's thread may read (hfe_qemu_attach_output). */
	pthread_mutex_t lock;
	bool outputs_known; /* attached, consoles' outputs below valid */
};

static gboolean try_attach(gpointer data);
static void detach(struct hfe_qemu_attach *a, const char *reason);

/* ---- step 1: QMP ---- */

/*
 * Ask QEMU for a D-Bus display connection: returns our end of it, or -1 with
 * why (*refused: QEMU answered with an error). Only short blocking steps (a
 * local socket, QMP_TIMEOUT_MS per reply at most).
 */
static int qmp_add_client(const char *path, unsigned serial, bool *refused, char *why,
			  size_t len)
{
	struct hfe_qmp *m = hfe_qmp_connect(path, QMP_TIMEOUT_MS, why, len);
	enum hfe_qmp_result r = HFE_QMP_FAILED;
	int sv[2] = { -1, -1 }, out = -1;
	char fdname[64];
	JsonObject *args;

	if (!m || (r = hfe_qmp_handshake(m, why, len)) != HFE_QMP_OK)
		goto out;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(why, len, "socketpair: %s", strerror(errno));
		r = HFE_QMP_FAILED;
		goto out;
	}
	snprintf(fdname, sizeof(fdname), "hfe-dbus-%ld-%u", (long)getpid(), serial);
	args = json_object_new();
	json_object_set_string_member(args, "fdname", fdname);
	if ((r = hfe_qmp_execute(m, "getfd", args, sv[1], NULL, why, len)) != HFE_QMP_OK)
		goto out;
	args = json_object_new();
	json_object_set_string_member(args, "protocol", "@dbus-display");
	json_object_set_string_member(args, "fdname", fdname);
	if ((r = hfe_qmp_execute(m, "add_client", args, -1, NULL, why, len)) != HFE_QMP_OK) {
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
	hfe_qmp_close(m);
	*refused = r == HFE_QMP_REFUSED;
	return out;
}

/* ---- timers ---- */

static GSource *add_timeout(struct hfe_qemu_attach *a, unsigned ms, GSourceFunc fn)
{
	GSource *s = g_timeout_source_new(ms);

	g_source_set_callback(s, fn, a, NULL);
	g_source_attach(s, a->ctx);
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

static void schedule_retry_in(struct hfe_qemu_attach *a, unsigned ms)
{
	if (!a->stopping && !a->retry_src)
		a->retry_src = add_timeout(a, ms, try_attach);
}

static void schedule_retry(struct hfe_qemu_attach *a)
{
	schedule_retry_in(a, a->retry_ms);
}

/* ---- steps 2 to 4: D-Bus ---- */

static void on_closed(GDBusConnection *conn, gboolean vanished, GError *error, gpointer data)
{
	struct hfe_qemu_attach *a = data;

	(void)conn, (void)vanished;
	if (a->stopping)
		return;
	hfe_info("%s: QEMU closed the display connection%s%s", a->name, error ? ": " : "",
		 error ? error->message : "");
	detach(a, "QEMU went away");
	schedule_retry(a);
}

/* Every console either serves or failed: the attempt is over. */
static void check_settled(struct hfe_qemu_attach *a)
{
	unsigned up = 0;

	if (a->attached || !a->display)
		return;
	for (unsigned i = 0; i < a->n_cons; i++) {
		struct attach_console *c = &a->cons[i];

		if (!c->failed && !c->absent && !(c->registered && c->ready))
			return;
		up += !c->failed && !c->absent;
	}
	drop_source(&a->timeout_src);
	if (!up) {
		hfe_error("%s: no console could be attached; retrying", a->name);
		detach(a, NULL);
		schedule_retry(a);
		return;
	}
	a->attached = true;
	a->input_warned = false;
	a->attaches++;
	unsigned outputs = 0, absent = 0;

	pthread_mutex_lock(&a->lock);
	a->outputs_known = true;
	for (unsigned i = 0; i < a->n_cons; i++) {
		outputs += a->cons[i].output;
		absent += a->cons[i].absent;
	}
	pthread_mutex_unlock(&a->lock);
	hfe_info("%s: attached to QEMU at %s (%u of %u consoles, %u absent; %u hot-pluggable "
		 "outputs)", a->name, a->qmp_path, up, a->n_cons, absent, outputs);
}

static bool was_cancelled(const GError *e)
{
	return e && g_error_matches(e, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

static void on_listener_ready(GObject *src, GAsyncResult *res, gpointer data)
{
	struct attach_console *c = data;
	struct hfe_qemu_attach *a = c->a;
	GError *e = NULL;
	GDBusConnection *conn = g_dbus_connection_new_finish(res, &e);

	(void)src;
	a->pending_ops--;
	if (!conn) {
		/* If RegisterListener fails, QEMU drops our end: that error says it. */
		if (!was_cancelled(e) && !c->failed && c->registered) {
			hfe_warn("%s: listener connection failed: %s", hfe_dbus_console_tag(c->dc),
				 e->message);
			c->failed = true;
			check_settled(a);
		} else if (!was_cancelled(e)) {
			snprintf(c->conn_error, sizeof(c->conn_error), "%s", e->message);
		}
		g_error_free(e);
		return;
	}
	if (a->stopping || g_cancellable_is_cancelled(c->cancel) || c->failed) {
		g_dbus_connection_close(conn, NULL, NULL, NULL);
		g_object_unref(conn);
		return;
	}
	/* Served before QEMU's first message is processed: the connection was
	 * made with DELAY_MESSAGE_PROCESSING. */
	c->setup = conn;
	hfe_dbus_console_serve(c->dc, conn);
	c->closed_id = g_signal_connect(conn, "closed", G_CALLBACK(on_closed), a);
	g_dbus_connection_start_message_processing(conn);
	c->ready = true;
	check_settled(a);
}

static void on_registered(GObject *src, GAsyncResult *res, gpointer data)
{
	struct attach_console *c = data;
	struct hfe_qemu_attach *a = c->a;
	GError *e = NULL;
	GVariant *r = g_dbus_connection_call_with_unix_fd_list_finish(G_DBUS_CONNECTION(src), NULL,
								       res, &e);

	a->pending_ops--;
	if (r) {
		g_variant_unref(r);
		c->registered = true;
		if (c->conn_error[0]) {
			hfe_warn("%s: listener connection failed: %s", hfe_dbus_console_tag(c->dc),
				 c->conn_error);
			c->failed = true;
		}
		check_settled(a);
		return;
	}
	if (!was_cancelled(e)) {
		hfe_error("%s: RegisterListener failed: %s", hfe_dbus_console_tag(c->dc),
			  e->message);
		c->failed = true;
		g_cancellable_cancel(c->cancel); /* QEMU will not authenticate our end */
		check_settled(a);
	}
	g_error_free(e);
}

static void start_console(struct hfe_qemu_attach *a, struct attach_console *c)
{
	const char *tag = hfe_dbus_console_tag(c->dc);
	GError *e = NULL;
	int sv[2];
	char path[64];

	c->registered = c->ready = c->failed = false;
	c->conn_error[0] = '\0';
	c->cancel = g_cancellable_new();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		hfe_error("%s: socketpair: %s", tag, strerror(errno));
		c->failed = true;
		return;
	}
	GUnixFDList *fds = g_unix_fd_list_new();
	int idx = g_unix_fd_list_append(fds, sv[1], &e); /* duplicates it */

	close(sv[1]);
	GSocket *sock = idx >= 0 ? g_socket_new_from_fd(sv[0], &e) : NULL;

	if (!sock) {
		hfe_error("%s: %s", tag, e->message);
		g_error_free(e);
		g_object_unref(fds);
		close(sv[0]);
		c->failed = true;
		return;
	}
	snprintf(path, sizeof(path), "/org/qemu/Display1/Console_%u",
		 hfe_dbus_console_index(c->dc));
	a->pending_ops++;
	g_dbus_connection_call_with_unix_fd_list(a->display, NULL, path, CONSOLE_IFACE,
						 "RegisterListener", g_variant_new("(h)", idx),
						 G_VARIANT_TYPE_UNIT, G_DBUS_CALL_FLAGS_NONE,
						 CALL_TIMEOUT_MS, fds, c->cancel, on_registered, c);
	g_object_unref(fds);

	/* Our end at once: QEMU authenticates it right after answering. */
	GSocketConnection *sc = g_socket_connection_factory_create_connection(sock);

	a->pending_ops++;
	g_dbus_connection_new(G_IO_STREAM(sc), NULL,
			      G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
				      G_DBUS_CONNECTION_FLAGS_DELAY_MESSAGE_PROCESSING,
			      NULL, c->cancel, on_listener_ready, c);
	g_object_unref(sc);
	g_object_unref(sock);
}

/* Properties.GetAll of iface at path on the display connection, in this
 * attempt (cancelled with it). */
static void get_all(struct hfe_qemu_attach *a, const char *path, const char *iface,
		    GAsyncReadyCallback cb, void *data)
{
	a->pending_ops++;
	g_dbus_connection_call(a->display, NULL, path, PROPS_IFACE, "GetAll",
			       g_variant_new("(s)", iface), G_VARIANT_TYPE("(a{sv})"),
			       G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT_MS, a->attempt, cb, data);
}

/* A GetAll reply's dictionary (NULL: failed or cancelled, *e says which). */
static GVariant *get_all_finish(GObject *src, GAsyncResult *res, GError **e)
{
	GVariant *r = g_dbus_connection_call_finish(G_DBUS_CONNECTION(src), res, e);
	GVariant *dict = NULL;

	if (r) {
		dict = g_variant_get_child_value(r, 0);
		g_variant_unref(r);
	}
	return dict;
}

/*
 * Is a graphic console with this Label and Head one of virtio-gpu's outputs?
 * QEMU labels it with its device's id, else the device's type name, plus
 * ".<head>" when the device has several heads. Recognised: the virtio-gpu
 * family by type name (virtio-gpu-pci, virtio-vga, their -gl variants,
 * virtio-gpu-device, vhost-user-gpu/-vga: those raise a display-change event
 * on SetUIInfo), and any device with several heads (in QEMU 7.2 only
 * virtio-gpu's have that), so that a GPU given an id of its own is found
 * when it has max_outputs > 1.
 */
static bool is_gpu_output(const char *label, uint32_t head)
{
	static const char *const gpus[] = { "virtio-gpu", "virtio-vga", "vhost-user-gpu",
					    "vhost-user-vga" };
	char suffix[16];
	size_t n = strlen(label);
	int l = snprintf(suffix, sizeof(suffix), ".%u", head);

	for (size_t i = 0; i < sizeof(gpus) / sizeof(gpus[0]); i++)
		if (!strncmp(label, gpus[i], strlen(gpus[i])))
			return true;
	return l > 0 && n > (size_t)l && !strcmp(label + n - (size_t)l, suffix);
}

static void on_console_props(GObject *src, GAsyncResult *res, gpointer data)
{
	struct attach_console *c = data;
	struct hfe_qemu_attach *a = c->a;
	GError *e = NULL;
	GVariant *dict = get_all_finish(src, res, &e);
	const char *type = "", *label = "";
	uint32_t head = UINT32_MAX;

	a->pending_ops--;
	if (!dict) {
		if (!was_cancelled(e)) {
			hfe_warn("%s: its properties: %s", hfe_dbus_console_tag(c->dc), e->message);
			c->failed = true;
			check_settled(a);
		}
		g_error_free(e);
		return;
	}
	g_variant_lookup(dict, "Type", "&s", &type);
	g_variant_lookup(dict, "Label", "&s", &label);
	g_variant_lookup(dict, "Head", "u", &head);
	if (strcmp(type, "Graphic")) {
		hfe_info("%s: a %s console (%s), skipped", hfe_dbus_console_tag(c->dc), type, label);
		c->absent = true;
	} else {
		/* Our scanout id is the console index, the guest's connector is
		 * named after the head: only where they agree is it an output. */
		pthread_mutex_lock(&a->lock);
		c->head = head;
		c->output = is_gpu_output(label, head) && head == hfe_dbus_console_index(c->dc);
		pthread_mutex_unlock(&a->lock);
		hfe_debug("%s: %s head %u%s", hfe_dbus_console_tag(c->dc), label, head,
			  c->output ? ", hot-pluggable output" : "");
		/* Outputs but the boot one are unplugged until ENABLEd: QEMU
		 * sends them its placeholder picture meanwhile. */
		if (c->output && head != 0)
			hfe_dbus_console_hide(c->dc);
		else
			hfe_dbus_console_show(c->dc, 0, 0);
		start_console(a, c);
	}
	g_variant_unref(dict);
	check_settled(a);
}

static void on_vm_props(GObject *src, GAsyncResult *res, gpointer data)
{
	struct hfe_qemu_attach *a = data;
	GError *e = NULL;
	GVariant *dict = get_all_finish(src, res, &e);
	GVariant *ids = NULL;

	a->pending_ops--;
	if (!dict) {
		if (!was_cancelled(e)) {
			hfe_warn("%s: QEMU's display properties: %s", a->name, e->message);
			detach(a, NULL);
			schedule_retry(a);
		}
		g_error_free(e);
		return;
	}
	ids = g_variant_lookup_value(dict, "ConsoleIDs", G_VARIANT_TYPE("au"));
	gsize n_ids = 0;
	const uint32_t *id = ids ? g_variant_get_fixed_array(ids, &n_ids, sizeof(uint32_t)) : NULL;

	for (unsigned i = 0; i < a->n_cons; i++) {
		struct attach_console *c = &a->cons[i];
		bool present = false;

		for (gsize k = 0; k < n_ids && !present; k++)
			present = id[k] == hfe_dbus_console_index(c->dc);
		if (present) {
			char path[64];

			snprintf(path, sizeof(path), "/org/qemu/Display1/Console_%u",
				 hfe_dbus_console_index(c->dc));
			get_all(a, path, CONSOLE_IFACE, on_console_props, c);
		} else {
			c->absent = true;
		}
	}
	if (ids)
		g_variant_unref(ids);
	g_variant_unref(dict);
	check_settled(a);
}

static void on_display_ready(GObject *src, GAsyncResult *res, gpointer data)
{
	struct hfe_qemu_attach *a = data;
	GError *e = NULL;
	GDBusConnection *conn = g_dbus_connection_new_finish(res, &e);

	(void)src;
	a->pending_ops--;
	if (!conn) {
		if (!was_cancelled(e)) {
			hfe_warn("%s: D-Bus connection to QEMU failed: %s", a->name, e->message);
			detach(a, NULL);
			schedule_retry(a);
		}
		g_error_free(e);
		return;
	}
	if (a->stopping || !a->attempt || g_cancellable_is_cancelled(a->attempt)) {
		g_dbus_connection_close(conn, NULL, NULL, NULL);
		g_object_unref(conn);
		return;
	}
	a->display = conn;
	a->display_closed_id = g_signal_connect(conn, "closed", G_CALLBACK(on_closed), a);
	get_all(a, VM_PATH, VM_IFACE, on_vm_props, a);
}

static gboolean on_attach_timeout(gpointer data)
{
	struct hfe_qemu_attach *a = data;

	g_source_unref(a->timeout_src);
	a->timeout_src = NULL;
	hfe_warn("%s: QEMU did not complete the D-Bus set-up within %d ms; retrying", a->name,
		 ATTACH_TIMEOUT_MS);
	detach(a, NULL);
	schedule_retry(a);
	return G_SOURCE_REMOVE;
}

static gboolean try_attach(gpointer data)
{
	struct hfe_qemu_attach *a = data;
	char why[256];
	bool refused;
	GError *e = NULL;

	g_source_unref(a->retry_src);
	a->retry_src = NULL;
	int fd = qmp_add_client(a->qmp_path, a->attaches, &refused, why, sizeof(why));

	if (fd < 0) {
		/* Log each new reason once, not every retry. */
		if (strcmp(why, a->last_wait))
			hfe_info("%s: waiting for QEMU at %s: %s", a->name, a->qmp_path, why);
		snprintf(a->last_wait, sizeof(a->last_wait), "%s", why);
		/* A QEMU that answers but refuses (no -display dbus) is asked
		 * less often: its QMP socket takes one client at a time. */
		schedule_retry_in(a, refused ? REFUSED_RETRY_MS : a->retry_ms);
		return G_SOURCE_REMOVE;
	}
	a->last_wait[0] = '\0';
	GSocket *sock = g_socket_new_from_fd(fd, &e);

	if (!sock) {
		hfe_error("%s: %s", a->name, e->message);
		g_error_free(e);
		close(fd);
		schedule_retry(a);
		return G_SOURCE_REMOVE;
	}
	GSocketConnection *sc = g_socket_connection_factory_create_connection(sock);

	a->attempt = g_cancellable_new();
	a->timeout_src = add_timeout(a, ATTACH_TIMEOUT_MS, on_attach_timeout);
	a->pending_ops++;
	g_dbus_connection_new(G_IO_STREAM(sc), NULL, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT,
			      NULL, a->attempt, on_display_ready, a);
	g_object_unref(sc);
	g_object_unref(sock);
	return G_SOURCE_REMOVE;
}

/* Tear down every connection of this attempt (QEMU gone, a failure, stop).
 * The streams stay, disabled, for the next attach. reason: the consoles log
 * their counters with it if they were attached (NULL: silently). */
static void detach(struct hfe_qemu_attach *a, const char *reason)
{
	bool was_attached = a->attached;

	drop_source(&a->timeout_src);
	if (a->attempt) {
		g_cancellable_cancel(a->attempt);
		g_clear_object(&a->attempt);
	}
	for (unsigned i = 0; i < a->n_cons; i++) {
		struct attach_console *c = &a->cons[i];

		if (c->cancel) {
			g_cancellable_cancel(c->cancel);
			g_clear_object(&c->cancel);
		}
		hfe_dbus_console_unserve(c->dc, was_attached ? reason : NULL);
		if (c->setup) {
			g_signal_handler_disconnect(c->setup, c->closed_id);
			g_dbus_connection_close(c->setup, NULL, NULL, NULL);
			g_clear_object(&c->setup);
			c->closed_id = 0;
		}
		c->registered = c->ready = c->failed = c->absent = false;
	}
	pthread_mutex_lock(&a->lock);
	a->outputs_known = false;
	for (unsigned i = 0; i < a->n_cons; i++)
		a->cons[i].output = false;
	pthread_mutex_unlock(&a->lock);
	if (a->display) {
		g_signal_handler_disconnect(a->display, a->display_closed_id);
		g_dbus_connection_close(a->display, NULL, NULL, NULL);
		g_clear_object(&a->display);
	}
	a->attached = false;
}

/* ---- outputs ---- */

int hfe_qemu_attach_output(struct hfe_qemu_attach *a, uint32_t console, unsigned *n_outputs)
{
	int r = -1;

	*n_outputs = 0;
	pthread_mutex_lock(&a->lock);
	if (a->outputs_known) {
		r = 0;
		for (unsigned i = 0; i < a->n_cons; i++) {
			*n_outputs += a->cons[i].output;
			if (a->cons[i].output && hfe_dbus_console_index(a->cons[i].dc) == console)
				r = 1;
		}
	}
	pthread_mutex_unlock(&a->lock);
	return r;
}

struct ui_info_call {
	struct hfe_qemu_attach *a;
	uint32_t console, w, h;
};

static void on_ui_info(GObject *src, GAsyncResult *res, gpointer data)
{
	struct ui_info_call *u = data;
	GError *e = NULL;
	GVariant *r = g_dbus_connection_call_finish(G_DBUS_CONNECTION(src), res, &e);

	u->a->pending_ops--;
	if (r) {
		hfe_debug("%s: console %u: SetUIInfo %ux%u done", u->a->name, u->console, u->w,
			  u->h);
		g_variant_unref(r);
	} else {
		hfe_error("%s: console %u: SetUIInfo %ux%u failed: %s", u->a->name, u->console,
			  u->w, u->h, e->message);
		g_error_free(e);
	}
	free(u);
}

/* Physical size at PREFERRED_DPI: virtio-gpu puts it in the output's EDID
 * (QEMU's default without it would be 100 dpi). */
static uint16_t px_to_mm(uint32_t px)
{
	uint32_t mm = (uint32_t)((uint64_t)px * MM_PER_INCH_X10 / 10 / PREFERRED_DPI);

	return mm > UINT16_MAX ? UINT16_MAX : (uint16_t)mm;
}

void hfe_qemu_attach_set_ui_info(struct hfe_qemu_attach *a, uint32_t console, uint32_t w,
				 uint32_t h)
{
	char path[64];
	struct ui_info_call *u;

	if (!a->attached || !a->display) {
		hfe_warn("%s: console %u: QEMU went away before SetUIInfo %ux%u", a->name, console,
			 w, h);
		return;
	}
	if (!(u = malloc(sizeof(*u)))) {
		hfe_error("%s: console %u: SetUIInfo: out of memory", a->name, console);
		return;
	}
	*u = (struct ui_info_call){ a, console, w, h };
	/* Before QEMU acts: the placeholder of an unplugged output never
	 * reaches the stream, the guest's first picture on it does. */
	for (unsigned i = 0; i < a->n_cons; i++) {
		if (hfe_dbus_console_index(a->cons[i].dc) != console)
			continue;
		if (w && h)
			hfe_dbus_console_show(a->cons[i].dc, w, h);
		else
			hfe_dbus_console_hide(a->cons[i].dc);
	}
	snprintf(path, sizeof(path), "/org/qemu/Display1/Console_%u", console);
	a->pending_ops++;
	/* Not cancelled on detach: a call already sent is answered or fails
	 * with the connection, and the attach outlives both. */
	g_dbus_connection_call(a->display, NULL, path, CONSOLE_IFACE, "SetUIInfo",
			       g_variant_new("(qqiiuu)", w ? px_to_mm(w) : 0, h ? px_to_mm(h) : 0,
					     0, 0, w, h),
			       G_VARIANT_TYPE_UNIT, G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT_MS, NULL,
			       on_ui_info, u);
}

/* ---- input ---- */

static void on_input(GObject *src, GAsyncResult *res, gpointer data)
{
	struct hfe_qemu_attach *a = data;
	GError *e = NULL;
	GVariant *r = g_dbus_connection_call_finish(G_DBUS_CONNECTION(src), res, &e);

	a->pending_ops--;
	if (r) {
		g_variant_unref(r);
		return;
	}
	/* e.g. "Mouse is not absolute": a VM without a tablet */
	if (!a->input_warned)
		hfe_warn("%s: QEMU refused input: %s", a->name, e->message);
	a->input_warned = true;
	g_error_free(e);
}

static struct hfe_dbus_console *find_console(struct hfe_qemu_attach *a, uint32_t console)
{
	for (unsigned i = 0; i < a->n_cons; i++)
		if (hfe_dbus_console_index(a->cons[i].dc) == console)
			return a->cons[i].dc;
	return NULL;
}

void hfe_qemu_attach_input(struct hfe_qemu_attach *a, uint32_t console, enum hfe_qemu_input what,
			   uint32_t x, uint32_t y)
{
	struct hfe_dbus_console *dc = find_console(a, console);
	const char *iface = MOUSE_IFACE, *method;
	GVariant *args;
	uint32_t w, h;
	char path[64];

	if (!a->attached || !a->display || !dc)
		return;
	switch (what) {
	case HFE_QEMU_KEY_PRESS:
	case HFE_QEMU_KEY_RELEASE:
		iface = KEYBOARD_IFACE;
		method = what == HFE_QEMU_KEY_PRESS ? "Press" : "Release";
		args = g_variant_new("(u)", x);
		break;
	case HFE_QEMU_MOUSE_MOVE:
		if (!hfe_dbus_console_size(dc, &w, &h) || !w || !h)
			return;
		method = "SetAbsPosition";
		args = g_variant_new("(uu)", x < w ? x : w - 1, y < h ? y : h - 1);
		break;
	default:
		method = what == HFE_QEMU_BUTTON_PRESS ? "Press" : "Release";
		args = g_variant_new("(u)", x);
		break;
	}
	snprintf(path, sizeof(path), "/org/qemu/Display1/Console_%u", console);
	a->pending_ops++;
	/* In order on the one connection; QEMU answers each, we never wait. */
	g_dbus_connection_call(a->display, NULL, path, iface, method, args, G_VARIANT_TYPE_UNIT,
			       G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT_MS, NULL, on_input, a);
}

/* ---- lifetime ---- */

struct hfe_qemu_attach *hfe_qemu_attach_new(const char *name, const char *qmp_path,
					    unsigned retry_ms, GMainContext *ctx,
					    struct hfe_dbus_console *const *cons, unsigned n)
{
	struct hfe_qemu_attach *a = calloc(1, sizeof(*a));

	if (!a || !(a->cons = calloc(n, sizeof(*a->cons)))) {
		free(a);
		return NULL;
	}
	snprintf(a->name, sizeof(a->name), "%s", name);
	snprintf(a->qmp_path, sizeof(a->qmp_path), "%s", qmp_path);
	a->retry_ms = retry_ms;
	a->ctx = ctx;
	pthread_mutex_init(&a->lock, NULL);
	a->n_cons = n;
	for (unsigned i = 0; i < n; i++) {
		a->cons[i].a = a;
		a->cons[i].dc = cons[i];
	}
	return a;
}

void hfe_qemu_attach_begin(struct hfe_qemu_attach *a)
{
	a->retry_src = add_timeout(a, 0, try_attach);
}

void hfe_qemu_attach_end(struct hfe_qemu_attach *a, const char *reason)
{
	a->stopping = true;
	drop_source(&a->retry_src);
	detach(a, reason);
}

unsigned hfe_qemu_attach_pending(const struct hfe_qemu_attach *a)
{
	return a->pending_ops;
}

void hfe_qemu_attach_free(struct hfe_qemu_attach *a)
{
	if (!a)
		return;
	pthread_mutex_destroy(&a->lock);
	free(a->cons);
	free(a);
}
