/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The -display dbus frame source (see qemu_dbus.h): its lifetime. One VM's
 * source is its consoles (dbus_console.c: pixels and cursor into a stream
 * each), the attach state machine (qemu_attach.c, which speaks QMP through
 * qmp.c) and the control thread that runs the attach in its own
 * GMainContext. The pixels never pass through that thread: GDBus's I/O
 * thread hands them to the consoles directly.
 *
 * Outputs (ENABLE/DISABLE_SCANOUT from the hub, on the daemon's poll loop):
 * checked against what the attach learnt, then handed to the control thread
 * as a SetUIInfo call that runs asynchronously there; the poll loop never
 * waits for QEMU.
 *
 * Input (the host's sink, on the poll loop): each event is queued on the
 * control thread as one asynchronous Keyboard or Mouse call, in order.
 *
 * Stop: the control thread ends the attach (detach, no more retries), then
 * iterates its context until GDBus has called back every cancelled
 * operation and dropped every console's filter (bounded by STOP_DRAIN_MS),
 * so that nothing can call into a freed console.
 */
#include "qemu_dbus.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <gio/gio.h>

#include "dbus_console.h"
#include "hfe/host.h" /* hfe_now_ms */
#include "hfe/log.h"
#include "keymap.h"
#include "qemu_attach.h"

#define DEFAULT_RETRY_MS 500
#define STOP_DRAIN_MS 5000 /* at stop: wait for GDBus callbacks this long */

struct hfe_qemu_dbus {
	char name[64];
	bool unmapped_noted; /* poll loop: a key without a QEMU number was logged */
	struct hfe_dbus_console *cons[HFE_MAX_SCANOUTS];
	unsigned n_cons;
	struct hfe_qemu_attach *attach;

	pthread_t thread;
	bool thread_started;
	GMainContext *ctx;
	GMainLoop *loop;
};

static gboolean stop_cb(gpointer data)
{
	struct hfe_qemu_dbus *q = data;

	hfe_qemu_attach_end(q->attach, "daemon stopping");
	g_main_loop_quit(q->loop);
	return G_SOURCE_REMOVE;
}

/* Consoles whose filter GDBus still holds. */
static int filters_alive(const struct hfe_qemu_dbus *q)
{
	int n = 0;

	for (unsigned i = 0; i < q->n_cons; i++)
		n += hfe_dbus_console_filter_alive(q->cons[i]);
	return n;
}

static void *thread_main(void *arg)
{
	struct hfe_qemu_dbus *q = arg;

	g_main_context_push_thread_default(q->ctx);
	hfe_qemu_attach_begin(q->attach);
	g_main_loop_run(q->loop);

	/* Let cancelled operations finish and GDBus drop the filters (it tells
	 * the consoles in this context once a filter can no longer run). */
	uint64_t deadline = hfe_now_ms() + STOP_DRAIN_MS;

	while ((hfe_qemu_attach_pending(q->attach) || filters_alive(q)) &&
	       hfe_now_ms() < deadline) {
		while (g_main_context_iteration(q->ctx, FALSE))
			;
		if (hfe_qemu_attach_pending(q->attach) || filters_alive(q))
			g_usleep(2000);
	}
	if (hfe_qemu_attach_pending(q->attach) || filters_alive(q))
		hfe_warn("%s: D-Bus clean-up incomplete at exit (%u operations, %d filters)",
			 q->name, hfe_qemu_attach_pending(q->attach), filters_alive(q));
	g_main_context_pop_thread_default(q->ctx);
	return NULL;
}

/* ---- hot-pluggable outputs (hub's thread -> control thread) ---- */

struct ui_info_job {
	struct hfe_qemu_dbus *q;
	uint32_t console, w, h;
};

static gboolean run_ui_info(gpointer data)
{
	struct ui_info_job *j = data;

	hfe_qemu_attach_set_ui_info(j->q->attach, j->console, j->w, j->h);
	return G_SOURCE_REMOVE;
}

static int request_ui_info(struct hfe_qemu_dbus *q, uint32_t id, uint32_t w, uint32_t h,
			   struct hfe_err *err)
{
	unsigned n;
	int r = hfe_qemu_attach_output(q->attach, id, &n);
	struct ui_info_job *j;

	if (r < 0) {
		hfe_err_set(err, HFE_ERR_RESOURCE_NOT_FOUND, "%s: QEMU not attached", q->name);
		return -1;
	}
	if (r == 0) {
		hfe_err_set(err, HFE_ERR_RESOURCE_NOT_FOUND,
			    "%s: console %u is not a virtio-gpu output (the VM has %u)", q->name,
			    id, n);
		return -1;
	}
	if (!(j = malloc(sizeof(*j)))) {
		hfe_err_set(err, HFE_ERR_INTERNAL, "out of memory");
		return -1;
	}
	*j = (struct ui_info_job){ q, id, w, h };
	/* Queued in order: an ENABLE and the DISABLE after it reach QEMU in
	 * that order. */
	g_main_context_invoke_full(q->ctx, G_PRIORITY_DEFAULT, run_ui_info, j, free);
	return 0;
}

static int output_enable(void *opaque, uint32_t id, uint32_t w, uint32_t h, uint32_t refresh,
			 struct hfe_err *err)
{
	(void)refresh; /* SetUIInfo has no refresh rate: QEMU's EDID says 75 Hz */
	return request_ui_info(opaque, id, w, h, err);
}

static int output_disable(void *opaque, uint32_t id, struct hfe_err *err)
{
	return request_ui_info(opaque, id, 0, 0, err);
}

void hfe_qemu_dbus_outputs(struct hfe_qemu_dbus *q, uint32_t max_w, uint32_t max_h,
			   struct hfe_hub_outputs *out)
{
	*out = (struct hfe_hub_outputs){ .max_outputs = HFE_MAX_SCANOUTS,
					 .max_width = max_w ? max_w : HFE_MAX_DIMENSION,
					 .max_height = max_h ? max_h : HFE_MAX_DIMENSION,
					 .enable = output_enable,
					 .disable = output_disable,
					 .opaque = q };
}

/* ---- input (hub's thread -> control thread) ---- */

struct input_job {
	struct hfe_qemu_dbus *q;
	uint32_t console;
	enum hfe_qemu_input what;
	uint32_t x, y;
};

static gboolean run_input(gpointer data)
{
	struct input_job *j = data;

	hfe_qemu_attach_input(j->q->attach, j->console, j->what, j->x, j->y);
	return G_SOURCE_REMOVE;
}

/* The host's rate bound (hfe/input.h) bounds these jobs too. */
static void queue_input(struct hfe_qemu_dbus *q, uint32_t console, enum hfe_qemu_input what,
			uint32_t x, uint32_t y)
{
	struct input_job *j = malloc(sizeof(*j));

	if (!j)
		return;
	*j = (struct input_job){ q, console, what, x, y };
	g_main_context_invoke_full(q->ctx, G_PRIORITY_DEFAULT, run_input, j, free);
}

static void input_key(void *opaque, uint32_t console, uint32_t code, bool down)
{
	struct hfe_qemu_dbus *q = opaque;
	uint32_t qnum = hfe_evdev_to_qnum(code);

	if (!qnum) {
		if (!q->unmapped_noted)
			hfe_warn("%s: evdev key %u has no QEMU key number: dropped", q->name, code);
		q->unmapped_noted = true;
		return;
	}
	queue_input(q, console, down ? HFE_QEMU_KEY_PRESS : HFE_QEMU_KEY_RELEASE, qnum, 0);
}

static void input_move(void *opaque, uint32_t console, uint32_t x, uint32_t y)
{
	queue_input(opaque, console, HFE_QEMU_MOUSE_MOVE, x, y);
}

static void input_button(void *opaque, uint32_t console, enum hfe_button_id b, bool down)
{
	/* hfe_button_id is QEMU's InputButton numbering, what Mouse.Press takes */
	queue_input(opaque, console, down ? HFE_QEMU_BUTTON_PRESS : HFE_QEMU_BUTTON_RELEASE,
		    (uint32_t)b, 0);
}

struct hfe_input_sink hfe_qemu_dbus_input(struct hfe_qemu_dbus *q)
{
	/* no sync: every D-Bus Mouse call is a whole event in QEMU */
	return (struct hfe_input_sink){ .key = input_key, .move = input_move,
					.button = input_button, .opaque = q };
}

struct hfe_stream *hfe_qemu_dbus_stream(struct hfe_qemu_dbus *q, unsigned i)
{
	return i < q->n_cons ? hfe_dbus_console_stream(q->cons[i]) : NULL;
}

static void free_all(struct hfe_qemu_dbus *q)
{
	hfe_qemu_attach_free(q->attach);
	for (unsigned i = 0; i < q->n_cons; i++)
		hfe_dbus_console_free(q->cons[i]);
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

	if (!q) {
		hfe_err_set(err, HFE_ERR_INTERNAL, "out of memory");
		return NULL;
	}
	snprintf(q->name, sizeof(q->name), "%s", cfg->name ? cfg->name : "qemu");
	for (unsigned i = 0; i < cfg->n_consoles; i++) {
		q->cons[i] = hfe_dbus_console_new(
			q->name, cfg->consoles[i],
			cfg->max_width ? cfg->max_width : HFE_MAX_DIMENSION,
			cfg->max_height ? cfg->max_height : HFE_MAX_DIMENSION, &cfg->stream, err);
		if (!q->cons[i])
			goto fail;
		q->n_cons = i + 1;
	}
	q->ctx = g_main_context_new();
	q->loop = g_main_loop_new(q->ctx, FALSE);
	q->attach = hfe_qemu_attach_new(q->name, cfg->qmp_path,
					cfg->retry_ms ? cfg->retry_ms : DEFAULT_RETRY_MS, q->ctx,
					q->cons, q->n_cons);
	if (!q->attach) {
		hfe_err_set(err, HFE_ERR_INTERNAL, "out of memory");
		goto fail;
	}
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
