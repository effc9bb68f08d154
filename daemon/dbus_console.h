/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One QEMU console seen through -display dbus: the org.qemu.Display1.Listener
 * that QEMU calls with the pixels (Scanout, Update, Disable) and the cursor
 * (CursorDefine, MouseSet), and the scanout stream they feed. The attach
 * (qemu_attach.c) makes the listener connection and hands it over with
 * _serve; from then on its Listener calls are handled on GDBus's I/O thread
 * as they are read, until _unserve.
 */
#ifndef HFE_DBUS_CONSOLE_H
#define HFE_DBUS_CONSOLE_H

#include <stdbool.h>
#include <stdint.h>

#include <gio/gio.h>

#include "hfe/stream.h"
#include "hfe/wire.h"

struct hfe_dbus_console;

/* Console Console_<index> of VM vm (for logs); surfaces larger than
 * max_w x max_h are refused (the stream is disabled). The stream is made
 * from sp; its notify is called after each encoded access unit. */
struct hfe_dbus_console *hfe_dbus_console_new(const char *vm, uint32_t index, uint32_t max_w,
					      uint32_t max_h, const struct hfe_stream_params *sp,
					      struct hfe_err *err);
/* Frees the stream (joining its worker). Not while served. NULL is ignored. */
void hfe_dbus_console_free(struct hfe_dbus_console *c);

struct hfe_stream *hfe_dbus_console_stream(struct hfe_dbus_console *c);
uint32_t hfe_dbus_console_index(const struct hfe_dbus_console *c);
/* Any thread: the surface's size now; false while there is none. */
bool hfe_dbus_console_size(struct hfe_dbus_console *c, uint32_t *w, uint32_t *h);
/* "vm1 console 0", for logs. */
const char *hfe_dbus_console_tag(const struct hfe_dbus_console *c);

/*
 * Control thread. _serve: answer QEMU's Listener calls arriving on conn (a
 * peer connection made with DELAY_MESSAGE_PROCESSING; the caller starts
 * message processing afterwards, and keeps conn alive until _unserve).
 * _unserve: refuse them from now on and disable the stream (also when not
 * served); reason: log the console's counters with it (NULL: silently).
 */
void hfe_dbus_console_serve(struct hfe_dbus_console *c, GDBusConnection *conn);
void hfe_dbus_console_unserve(struct hfe_dbus_console *c, const char *reason);
/*
 * Any thread. An unplugged output (virtio-gpu head > 0 not enabled through
 * SetUIInfo) shows QEMU's placeholder ("Display output is not active"),
 * which D-Bus does not tell from a picture: _hide keeps such a console's
 * pictures out of its stream (disabled) until _show, which streams the
 * current picture at once only when it already has the mode w x h asked
 * for (then it is the output's own: a re-ENABLE, a restarted daemon).
 */
void hfe_dbus_console_hide(struct hfe_dbus_console *c);
void hfe_dbus_console_show(struct hfe_dbus_console *c, uint32_t w, uint32_t h);
/* 1 while GDBus still holds the message filter of an earlier _serve (it lets
 * go in the control thread's context, some time after _unserve). */
int hfe_dbus_console_filter_alive(const struct hfe_dbus_console *c);

#endif
