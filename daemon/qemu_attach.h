/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The attach state machine of one VM's -display dbus source: ask QEMU over
 * QMP for a D-Bus display connection, register a listener on each console,
 * hand each listener connection to its console (dbus_console.h), and start
 * over whenever QEMU goes away or an attempt fails or times out. Runs on the
 * VM's control thread (qemu_dbus.c), every call and callback in ctx.
 */
#ifndef HFE_QEMU_ATTACH_H
#define HFE_QEMU_ATTACH_H

#include <stdint.h>

#include <glib.h>

#include "dbus_console.h"

struct hfe_qemu_attach;

/* For VM name (logs) at QEMU's QMP socket qmp_path; retries every retry_ms
 * while QEMU is away. cons (n of them) stay owned by the caller and must
 * outlive the attach. NULL: out of memory. Any thread. */
struct hfe_qemu_attach *hfe_qemu_attach_new(const char *name, const char *qmp_path,
					    unsigned retry_ms, GMainContext *ctx,
					    struct hfe_dbus_console *const *cons, unsigned n);
/* Control thread, with ctx its thread-default context. _begin: first
 * attempt at once. _end: detach (the consoles log their counters with
 * reason) and never retry. */
void hfe_qemu_attach_begin(struct hfe_qemu_attach *a);
void hfe_qemu_attach_end(struct hfe_qemu_attach *a, const char *reason);
/*
 * Hot-pluggable outputs: the consoles that are outputs of the VM's
 * virtio-gpu with head = console index (learnt at each attach).
 * _output (any thread): 1 if console is one, 0 if not, -1 while QEMU is not
 * attached; *n_outputs: how many there are.
 * _set_ui_info (control thread): SetUIInfo on that console, w x h as its
 * preferred mode at 96 dpi (w = h = 0: disconnected). Asynchronous: QEMU's
 * refusal is logged.
 */
int hfe_qemu_attach_output(struct hfe_qemu_attach *a, uint32_t console, unsigned *n_outputs);
void hfe_qemu_attach_set_ui_info(struct hfe_qemu_attach *a, uint32_t console, uint32_t w,
				 uint32_t h);
/*
 * Input (control thread): one call on console's org.qemu.Display1.Keyboard
 * or .Mouse, sent without waiting; dropped while QEMU is not attached. A
 * position is clamped to the console's surface (QEMU refuses one outside).
 * QEMU's refusals are logged, once per attach.
 */
enum hfe_qemu_input {
	HFE_QEMU_KEY_PRESS,      /* a: QEMU key number */
	HFE_QEMU_KEY_RELEASE,
	HFE_QEMU_MOUSE_MOVE,     /* a, b: x, y */
	HFE_QEMU_BUTTON_PRESS,   /* a: QEMU's InputButton */
	HFE_QEMU_BUTTON_RELEASE,
};
void hfe_qemu_attach_input(struct hfe_qemu_attach *a, uint32_t console, enum hfe_qemu_input what,
			   uint32_t x, uint32_t y);
/* GDBus operations started and not yet called back (they call back in ctx,
 * cancelled ones too): free only at 0. */
unsigned hfe_qemu_attach_pending(const struct hfe_qemu_attach *a);
void hfe_qemu_attach_free(struct hfe_qemu_attach *a);

#endif
