/*
 * helix-frame-export: input from control clients into the VM
 *
 * libhfe's input sink (hfe/input.h) over QEMU's input API, on the main
 * loop: keys by evdev code through QEMU's own Linux keymap, the pointer
 * absolute on the scanout's console, buttons and wheel as QEMU's buttons.
 * Who may inject, the rate bound and releasing what a client holds are
 * libhfe's (host.c, input.c); each call here is a few queued events.
 *
 * Copyright (c) 2025 helix-frame-export contributors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "ui/input.h"
#include "helix.h"
#include "trace.h"

static QemuConsole *helix_input_console(HelixFrameExport *s, uint32_t id)
{
    for (unsigned i = 0; i < s->n_scanouts; i++) {
        if (s->scanouts[i]->id == id) {
            return s->scanouts[i]->dcl.con;
        }
    }
    return NULL;
}

static void helix_input_key(void *opaque, uint32_t scanout, uint32_t code,
                            bool down)
{
    HelixFrameExport *s = opaque;
    QemuConsole *con = helix_input_console(s, scanout);
    int qcode = qemu_input_linux_to_qcode(code);

    if (!con) {
        return;
    }
    if (qcode == Q_KEY_CODE_UNMAPPED) {
        trace_helix_input_unmapped(code);
        return;
    }
    trace_helix_input_key(scanout, code, down);
    qemu_input_event_send_key_qcode(con, qcode, down);
}

/* One axis, clamped to the console's size now (the client may have seen an
 * older one), on QEMU's scale of 0 .. size. */
static void helix_input_axis(QemuConsole *con, InputAxis axis, uint32_t v,
                             int size)
{
    if (size < 1) {
        return;
    }
    if (v >= (uint32_t)size) {
        v = size - 1;
    }
    qemu_input_queue_abs(con, axis, v, 0, size);
}

static void helix_input_move(void *opaque, uint32_t scanout, uint32_t x,
                             uint32_t y)
{
    HelixFrameExport *s = opaque;
    QemuConsole *con = helix_input_console(s, scanout);

    if (!con) {
        return;
    }
    trace_helix_input_move(scanout, x, y);
    helix_input_axis(con, INPUT_AXIS_X, x, qemu_console_get_width(con, 0));
    helix_input_axis(con, INPUT_AXIS_Y, y, qemu_console_get_height(con, 0));
}

static void helix_input_button(void *opaque, uint32_t scanout,
                               enum hfe_button_id b, bool down)
{
    HelixFrameExport *s = opaque;
    QemuConsole *con = helix_input_console(s, scanout);

    /* libhfe's numbering is QEMU's InputButton's */
    QEMU_BUILD_BUG_ON(HFE_BTN_WHEEL_RIGHT != INPUT_BUTTON_WHEEL_RIGHT ||
                      HFE_BTN_SIDE != INPUT_BUTTON_SIDE);
    if (con) {
        qemu_input_queue_btn(con, (InputButton)b, down);
    }
}

static void helix_input_sync(void *opaque, uint32_t scanout)
{
    qemu_input_event_sync();
}

struct hfe_input_sink helix_input_sink(HelixFrameExport *s)
{
    return (struct hfe_input_sink){
        .key = helix_input_key,
        .move = helix_input_move,
        .button = helix_input_button,
        .sync = helix_input_sync,
        .opaque = s,
    };
}
