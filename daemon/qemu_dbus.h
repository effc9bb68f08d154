/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Frame source for stock QEMU (>= 7.0) started with `-display dbus,p2p=yes
 * -qmp unix:PATH,server=on,wait=off`: the daemon attaches over QMP
 * (getfd + add_client @dbus-display), registers a display listener on each
 * wanted console and feeds what QEMU sends (Scanout, Update, Disable, the
 * cursor) into one scanout stream per console. It reattaches whenever QEMU
 * comes back (a restart, a late start). See docs/architecture.md, "Frame
 * source: QEMU -display dbus".
 *
 * Threads: a control thread per VM with its own GMainContext (QMP, D-Bus set-up,
 * reattach timer); the pixel messages are handled as they are read, on GDBus's
 * I/O thread, so nothing queues between QEMU's socket and the stream.
 */
#ifndef HFE_QEMU_DBUS_H
#define HFE_QEMU_DBUS_H

#include <stdint.h>

#include "hfe/input.h"
#include "hfe/scanout.h"
#include "hfe/stream.h"
#include "hfe/wire.h"

struct hfe_qemu_dbus_config {
	const char *name;          /* for logs, e.g. "vm1" */
	const char *qmp_path;      /* QEMU's -qmp unix socket */
	const uint32_t *consoles;  /* /org/qemu/Display1/Console_N to capture */
	unsigned n_consoles;       /* 1..HFE_MAX_SCANOUTS */
	uint32_t max_width, max_height; /* larger surfaces are refused (stream disabled) */
	unsigned retry_ms;         /* attach attempts while QEMU is away; 0: 500 */
	/* Template of every console's stream; `notify` is called after each
	 * encoded access unit, as with any stream. */
	struct hfe_stream_params stream;
};

struct hfe_qemu_dbus;

/* Creates the streams and starts the control thread, which attaches as
 * soon as QEMU's QMP socket answers. NULL with err on failure. */
struct hfe_qemu_dbus *hfe_qemu_dbus_start(const struct hfe_qemu_dbus_config *cfg,
					  struct hfe_err *err);
/* Stream of consoles[i] (owned by the source; valid until _stop). */
struct hfe_stream *hfe_qemu_dbus_stream(struct hfe_qemu_dbus *q, unsigned i);
/*
 * The VM's hot-pluggable outputs for its hub (hfe_hub_set_outputs): ENABLE
 * and DISABLE become SetUIInfo on the output's console (w x h, or 0 x 0 to
 * disconnect), sent from the control thread without blocking the caller.
 * Refused while QEMU is not attached, and for a console that is not an
 * output of the VM's virtio-gpu (head = console index). max_outputs is
 * HFE_MAX_SCANOUTS: the real count is only known once attached, and the
 * callbacks refuse what QEMU does not have.
 */
void hfe_qemu_dbus_outputs(struct hfe_qemu_dbus *q, uint32_t max_w, uint32_t max_h,
			   struct hfe_hub_outputs *out);
/*
 * The VM's input sink for its host (hfe_host_config.input): keys become
 * org.qemu.Display1.Keyboard Press/Release of the key's QEMU number
 * (keymap.h), the pointer .Mouse SetAbsPosition and Press/Release, each sent
 * from the control thread without blocking the caller; nothing while QEMU
 * is not attached. Keys QEMU has no number for are dropped (logged once).
 */
struct hfe_input_sink hfe_qemu_dbus_input(struct hfe_qemu_dbus *q);
/* Detach from QEMU, stop the thread, free the streams. NULL is ignored. */
void hfe_qemu_dbus_stop(struct hfe_qemu_dbus *q);

#endif
