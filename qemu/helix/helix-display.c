/*
 * helix-frame-export: display listeners on the VM's consoles, one stream each
 *
 * Scanout push mode. One DisplayChangeListener per exported graphic console
 * (scanout id = console index) and one libhfe scanout stream behind it,
 * which encodes on its own thread: damage accumulates, the newest picture
 * wins, at most max-fps, nothing when nothing changed, an IDR for every new
 * subscriber. A surface switch resizes the stream (a NULL or placeholder
 * surface disables it; a same-size switch, e.g. a page flip, is a full
 * update without an IDR), a damaged rectangle is queued for the feeder
 * thread (helix-feeder.c) with a reference to the surface's image. A console
 * nobody subscribes to costs nothing: its stream is fed only while watched,
 * and the first subscriber gets the whole current surface.
 *
 * Copyright (c) 2025 helix-frame-export contributors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/error-report.h"
#include "hw/virtio/virtio-gpu.h"
#include "helix.h"
#include "trace.h"

/* libhfe's name for a 32-bit RGB pixman format, or 0. */
uint32_t helix_hfe_format(pixman_format_code_t f)
{
#if HOST_BIG_ENDIAN
    switch (f) {
    case PIXMAN_b8g8r8x8:
        return HFE_FMT_XRGB8888;
    case PIXMAN_b8g8r8a8:
        return HFE_FMT_ARGB8888;
    case PIXMAN_r8g8b8x8:
        return HFE_FMT_XBGR8888;
    case PIXMAN_r8g8b8a8:
        return HFE_FMT_ABGR8888;
    default:
        return 0;
    }
#else
    switch (f) {
    case PIXMAN_x8r8g8b8:
        return HFE_FMT_XRGB8888;
    case PIXMAN_a8r8g8b8:
        return HFE_FMT_ARGB8888;
    case PIXMAN_x8b8g8r8:
        return HFE_FMT_XBGR8888;
    case PIXMAN_a8b8g8r8:
        return HFE_FMT_ABGR8888;
    default:
        return 0;
    }
#endif
}

/* Queue a damaged rectangle of the current surface (clipped to it). */
static void helix_scanout_copy(HelixScanout *so, int x, int y, int w, int h)
{
    DisplaySurface *surf = so->surface;
    int sw = surface_width(surf), sh = surface_height(surf);

    if (x < 0) {
        w += x;
        x = 0;
    }
    if (y < 0) {
        h += y;
        y = 0;
    }
    w = MIN(w, sw - x);
    h = MIN(h, sh - y);
    if (w <= 0 || h <= 0) {
        return;
    }
    so->hfe->updates++;
    so->hfe->update_bytes += (uint64_t)w * h * 4;
    helix_feed_op(so->hfe, HELIX_OP_COPY, so, surf->image, x, y, w, h);
}

/*
 * Give the stream the whole current surface (a new subscriber, a new
 * surface); a size change makes the next access unit an IDR.
 */
static void helix_scanout_feed(HelixScanout *so)
{
    DisplaySurface *surf = so->surface;
    uint32_t w, h;

    if (!surf || is_placeholder(surf)) {
        helix_feed_op(so->hfe, HELIX_OP_DISABLE, so, NULL, 0, 0, 0, 0);
        so->fed = false;
        return;
    }
    w = surface_width(surf);
    h = surface_height(surf);
    if (!so->fed || w != so->fed_w || h != so->fed_h) {
        helix_feed_op(so->hfe, HELIX_OP_RESIZE, so, NULL, 0, 0, w, h);
        so->fed = true;
        so->fed_w = w;
        so->fed_h = h;
        trace_helix_scanout_resize(so->id, w, h);
    }
    helix_scanout_copy(so, 0, 0, w, h);
}

/* Feed only watched scanouts: an unwatched display costs no encoding. */
void helix_watch_update(HelixFrameExport *s)
{
    struct hfe_hub *hub = hfe_host_hub(s->host);

    for (unsigned i = 0; i < s->n_scanouts; i++) {
        HelixScanout *so = s->scanouts[i];
        bool w = hfe_hub_subscribers(hub, so->id) > 0;

        if (w == so->watched) {
            continue;
        }
        so->watched = w;
        trace_helix_scanout_watch(so->id, w);
        if (w) {
            helix_scanout_feed(so);
        } else {
            helix_feed_op(s, HELIX_OP_DISABLE, so, NULL, 0, 0, 0, 0);
            so->fed = false;
        }
    }
}

static void helix_gfx_update(DisplayChangeListener *dcl,
                             int x, int y, int w, int h)
{
    HelixScanout *so = container_of(dcl, HelixScanout, dcl);
    HelixTime t0 = helix_enter();

    if (so->watched && so->fed && so->surface) {
        helix_scanout_copy(so, x, y, w, h);
    }
    helix_leave(so->hfe, HELIX_CB_GFX_UPDATE, t0);
}

static void helix_gfx_switch(DisplayChangeListener *dcl, DisplaySurface *surf)
{
    HelixScanout *so = container_of(dcl, HelixScanout, dcl);
    HelixTime t0 = helix_enter();

    so->surface = surf;
    if (so->watched) {
        helix_scanout_feed(so);
    }
    helix_leave(so->hfe, HELIX_CB_GFX_SWITCH, t0);
}

static bool helix_gfx_check_format(DisplayChangeListener *dcl,
                                   pixman_format_code_t f)
{
    /* Devices that can choose (std VGA) share only what we copy directly. */
    return helix_hfe_format(f) != 0;
}

static void helix_refresh(DisplayChangeListener *dcl)
{
    HelixScanout *so = container_of(dcl, HelixScanout, dcl);

    /*
     * Devices that scan for changes (VGA) do it here; their updates come
     * back through helix_gfx_update, which is measured on its own.
     */
    if (so->watched) {
        graphic_hw_update(dcl->con);
    }
}

static const DisplayChangeListenerOps helix_dcl_ops = {
    .dpy_name = "helix-frame-export",
    .dpy_refresh = helix_refresh,
    .dpy_gfx_update = helix_gfx_update,
    .dpy_gfx_switch = helix_gfx_switch,
    .dpy_gfx_check_format = helix_gfx_check_format,
};

static bool helix_console_wanted(HelixFrameExport *s, uint32_t index)
{
    if (!s->console) {
        return true;
    }
    for (uint32List *l = s->console; l; l = l->next) {
        if (l->value == index) {
            return true;
        }
    }
    return false;
}

static bool helix_attach_console(HelixFrameExport *s, QemuConsole *con,
                                 uint32_t index, Error **errp)
{
    struct hfe_stream_params sp = { 0 };
    struct hfe_err err;
    Object *dev = object_property_get_link(OBJECT(con), "device", NULL);
    g_autofree char *label = qemu_console_get_label(con);
    char connector[HFE_CONNECTOR_LEN];
    HelixScanout *so;

    /*
     * GL consoles hand out textures, not surfaces: not supported yet (and a
     * listener without GL on them would be refused at registration).
     */
    if (dev && (object_dynamic_cast(dev, TYPE_VIRTIO_GPU_GL) ||
                object_dynamic_cast(dev, TYPE_VHOST_USER_GPU))) {
        error_setg(errp, "console %u (%s) is an OpenGL console; only 2D "
                   "consoles can be exported", index, label);
        return false;
    }
    if (s->n_scanouts == HFE_MAX_SCANOUTS) {
        error_setg(errp, "console %u: at most %u consoles can be exported",
                   index, HFE_MAX_SCANOUTS);
        return false;
    }
    hfe_encoder_params_default(&sp.enc);
    if (s->encoder) {
        g_strlcpy(sp.enc.name, s->encoder, sizeof(sp.enc.name));
    }
    if (s->bitrate) {
        sp.enc.bitrate = s->bitrate;
    }
    sp.max_fps = s->max_fps;
    sp.notify = helix_notify;
    sp.opaque = s;

    so = g_new0(HelixScanout, 1);
    so->hfe = s;
    so->id = index;
    so->stream = hfe_stream_new(&sp, &err);
    if (!so->stream) {
        error_setg(errp, "console %u: %s", index, err.msg);
        g_free(so);
        return false;
    }
    snprintf(connector, sizeof(connector), "%s", label);
    if (hfe_hub_add_scanout(hfe_host_hub(s->host), index, so->stream,
                            connector) < 0) {
        error_setg(errp, "console %u: cannot add it as a scanout", index);
        hfe_stream_free(so->stream);
        g_free(so);
        return false;
    }
    s->scanouts[s->n_scanouts++] = so;
    so->dcl.ops = &helix_dcl_ops;
    so->dcl.con = con;
    /* Devices that are polled (VGA) are polled at the frame rate. */
    so->dcl.update_interval = MAX(1000 / s->max_fps, 10);
    register_displaychangelistener(&so->dcl);
    trace_helix_scanout_attach(index, connector);
    return true;
}

bool helix_attach_consoles(HelixFrameExport *s, Error **errp)
{
    QemuConsole *con;
    uint32_t i;

    for (uint32List *l = s->console; l; l = l->next) {
        con = qemu_console_lookup_by_index(l->value);
        if (!con || !qemu_console_is_graphic(con)) {
            error_setg(errp, "console %u is not a graphic console of this VM",
                       l->value);
            return false;
        }
    }
    for (i = 0; (con = qemu_console_lookup_by_index(i)) != NULL; i++) {
        Error *local_err = NULL;

        if (!qemu_console_is_graphic(con) || !helix_console_wanted(s, i)) {
            continue;
        }
        if (!helix_attach_console(s, con, i, &local_err)) {
            if (s->console) {
                error_propagate(errp, local_err);
                return false;
            }
            /* Exporting "every console": skip what cannot be exported. */
            warn_report_err(local_err);
        }
    }
    return true;
}

void helix_detach_consoles(HelixFrameExport *s)
{
    for (unsigned i = 0; i < s->n_scanouts; i++) {
        unregister_displaychangelistener(&s->scanouts[i]->dcl);
    }
}

/* After helix_feeder_stop: nothing uses the streams any more. */
void helix_free_scanouts(HelixFrameExport *s)
{
    for (unsigned i = 0; i < s->n_scanouts; i++) {
        HelixScanout *so = s->scanouts[i];

        hfe_stream_free(so->stream);
        if (so->scratch) {
            pixman_image_unref(so->scratch);
        }
        g_free(so);
    }
}
