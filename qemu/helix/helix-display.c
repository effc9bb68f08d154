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
 * Hot-pluggable outputs (ENABLE/DISABLE_SCANOUT, through libhfe's hub): the
 * consoles of a virtio-gpu are its outputs (heads). Enabling one is what a
 * display's UI-info request does in QEMU 7.2: dpy_set_ui_info() stores the
 * wanted mode and arms the console's timer, whose virtio_gpu_ui_info() marks
 * the output enabled (0x0: disabled) and raises the display-change event;
 * the guest then sees the connector (Virtual-<head+1>) with that mode first
 * in its EDID. Nothing here waits: it runs on the main loop from a client's
 * read handler. The guest's modeset comes back as a surface switch, which
 * restarts the stream with an IDR at the new size.
 *
 * Copyright (c) 2025 helix-frame-export contributors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/error-report.h"
#include "qemu/log.h"
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

/* The next access unit is an IDR when the size changed. */
bool helix_scanout_fit(HelixScanout *so)
{
    uint32_t w = surface_width(so->surface), h = surface_height(so->surface);

    if (so->fed && w == so->fed_w && h == so->fed_h) {
        return false;
    }
    helix_feed_op(so->hfe, HELIX_OP_RESIZE, so, NULL, 0, 0, w, h);
    so->fed = true;
    so->fed_w = w;
    so->fed_h = h;
    trace_helix_scanout_resize(so->id, w, h);
    return true;
}

void helix_scanout_show(HelixScanout *so, int x, int y, int w, int h)
{
    if (helix_scanout_fit(so)) {
        helix_scanout_copy(so, 0, 0, so->fed_w, so->fed_h);
    } else {
        helix_scanout_copy(so, x, y, w, h);
    }
}

/*
 * Give the stream the whole current surface (a new subscriber, a new
 * surface); a size change makes the next access unit an IDR.
 */
static void helix_scanout_feed(HelixScanout *so)
{
    DisplaySurface *surf = so->surface;

    if (!surf || is_placeholder(surf)) {
        helix_feed_op(so->hfe, HELIX_OP_DISABLE, so, NULL, 0, 0, 0, 0);
        so->fed = false;
        return;
    }
#ifdef HELIX_HAVE_GL
    if (helix_gl_refresh(so)) {
        return; /* shown once it is read back */
    }
#endif
    helix_scanout_fit(so);
    helix_scanout_copy(so, 0, 0, surface_width(surf), surface_height(surf));
}

/* ---- hot-pluggable outputs (libhfe's hub calls these on the main loop) ---- */

/* Physical size for the output's EDID at 96 dpi, as the daemon's SetUIInfo
 * gives it (QEMU's EDID would otherwise say 100 dpi). */
#define HELIX_OUTPUT_DPI 96

static uint16_t helix_px_to_mm(uint32_t px)
{
    uint64_t mm = (uint64_t)px * 254 / 10 / HELIX_OUTPUT_DPI;

    return mm > UINT16_MAX ? UINT16_MAX : (uint16_t)mm;
}

static HelixScanout *helix_scanout_by_id(HelixFrameExport *s, uint32_t id)
{
    for (unsigned i = 0; i < s->n_scanouts; i++) {
        if (s->scanouts[i]->id == id) {
            return s->scanouts[i];
        }
    }
    return NULL;
}

/* w x h at refresh Hz as output id's preferred mode; 0 x 0 unplugs it. */
static int helix_output_set(HelixFrameExport *s, uint32_t id, uint32_t w,
                            uint32_t h, uint32_t refresh, struct hfe_err *err)
{
    HelixScanout *so = helix_scanout_by_id(s, id);
    QemuUIInfo info = {
        .width_mm = w ? helix_px_to_mm(w) : 0,
        .height_mm = h ? helix_px_to_mm(h) : 0,
        .width = w,
        .height = h,
        .refresh_rate = refresh * 1000, /* mHz */
    };

    if (!so) {
        hfe_err_set(err, HFE_ERR_RESOURCE_NOT_FOUND,
                    "console %u is not exported by this helix-frame-export",
                    id);
        return -1;
    }
    /* A NULL console would be QEMU's active one: never pass it. */
    if (!so->output || !so->dcl.con) {
        hfe_err_set(err, HFE_ERR_RESOURCE_NOT_FOUND,
                    "console %u is not a virtio-gpu output", id);
        return -1;
    }
    if (dpy_set_ui_info(so->dcl.con, &info, false) < 0) {
        hfe_err_set(err, HFE_ERR_RESOURCE_NOT_FOUND,
                    "console %u does not take a mode (no UI info)", id);
        return -1;
    }
    trace_helix_output(id, so->head, w, h, refresh);
    return 0;
}

static int helix_output_enable(void *opaque, uint32_t id, uint32_t w,
                               uint32_t h, uint32_t refresh,
                               struct hfe_err *err)
{
    return helix_output_set(opaque, id, w, h, refresh, err);
}

static int helix_output_disable(void *opaque, uint32_t id,
                                struct hfe_err *err)
{
    return helix_output_set(opaque, id, 0, 0, 0, err);
}

/*
 * Tell the hub which ids are outputs: every id below max_outputs is asked
 * for (one past the highest output's console index; with -vga none and one
 * virtio-gpu that is its max_outputs), the callbacks refuse the consoles in
 * that range that are not outputs. Before the consoles are attached there
 * are none.
 */
void helix_outputs_publish(HelixFrameExport *s)
{
    struct hfe_hub_outputs o = {
        .max_width = HFE_MAX_DIMENSION,
        .max_height = HFE_MAX_DIMENSION,
        .enable = helix_output_enable,
        .disable = helix_output_disable,
        .opaque = s,
    };
    uint32_t n = 0;

    for (unsigned i = 0; i < s->n_scanouts; i++) {
        if (s->scanouts[i]->output) {
            o.max_outputs = MAX(o.max_outputs, s->scanouts[i]->id + 1);
            n++;
        }
    }
    hfe_hub_set_outputs(hfe_host_hub(s->host), &o);
    trace_helix_outputs(n, o.max_outputs);
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

void helix_gfx_update(DisplayChangeListener *dcl, int x, int y, int w, int h)
{
    HelixScanout *so = container_of(dcl, HelixScanout, dcl);
    HelixTime t0 = helix_enter();

    if (so->watched && so->fed && so->surface) {
        helix_scanout_copy(so, x, y, w, h);
    }
    helix_leave(so->hfe, HELIX_CB_GFX_UPDATE, t0);
}

void helix_gfx_switch(DisplayChangeListener *dcl, DisplaySurface *surf)
{
    HelixScanout *so = container_of(dcl, HelixScanout, dcl);
    HelixTime t0 = helix_enter();

    so->surface = surf;
    if (so->watched) {
        helix_scanout_feed(so);
    }
    helix_leave(so->hfe, HELIX_CB_GFX_SWITCH, t0);
}

bool helix_gfx_check_format(DisplayChangeListener *dcl,
                            pixman_format_code_t f)
{
    /* Devices that can choose (std VGA) share only what we copy directly. */
    return helix_hfe_format(f) != 0;
}

void helix_refresh(DisplayChangeListener *dcl)
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

/*
 * The hardware cursor goes to the stream, which draws it into its own copy
 * of the picture for subscribers without the cursor channel and hands it to
 * the hub for those with it (never into the guest's framebuffer). Both calls
 * copy at most a 256x256 image and return.
 */
void helix_mouse_set(DisplayChangeListener *dcl, int x, int y, int on)
{
    HelixScanout *so = container_of(dcl, HelixScanout, dcl);
    HelixTime t0 = helix_enter();

    hfe_stream_cursor_move(so->stream, x, y, on != 0);
    helix_leave(so->hfe, HELIX_CB_CURSOR, t0);
}

void helix_cursor_define(DisplayChangeListener *dcl, QEMUCursor *c)
{
    HelixScanout *so = container_of(dcl, HelixScanout, dcl);
    HelixTime t0 = helix_enter();
    struct hfe_err err;

    /* QEMUCursor: native-endian ARGB words, B,G,R,A bytes on this host */
    struct hfe_cursor_shape shape = {
        c->width, c->height, MAX(c->hot_x, 0), MAX(c->hot_y, 0),
    };
    trace_helix_cursor_define(so->id, c->width, c->height, c->hot_x, c->hot_y);
    if (c->width <= 0 || c->height <= 0 ||
        hfe_stream_cursor_define(so->stream, &shape, (const uint8_t *)c->data,
                                 &err) < 0) {
        qemu_log_mask(LOG_GUEST_ERROR, "helix-frame-export: scanout %u: "
                      "cursor %dx%d refused (at most %ux%u)\n", so->id,
                      c->width, c->height, HFE_CURSOR_MAX, HFE_CURSOR_MAX);
    }
    helix_leave(so->hfe, HELIX_CB_CURSOR, t0);
}

static const DisplayChangeListenerOps helix_dcl_ops = {
    .dpy_name = "helix-frame-export",
    .dpy_refresh = helix_refresh,
    .dpy_gfx_update = helix_gfx_update,
    .dpy_gfx_switch = helix_gfx_switch,
    .dpy_gfx_check_format = helix_gfx_check_format,
    .dpy_mouse_set = helix_mouse_set,
    .dpy_cursor_define = helix_cursor_define,
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
    /*
     * virtio-gpu-pci and virtio-vga point their consoles at the PCI proxy;
     * the GPU itself is the proxy's "virtio-backend" child.
     */
    Object *gpu = dev && !object_dynamic_cast(dev, TYPE_VIRTIO_GPU_BASE) ?
                  object_resolve_path_component(dev, "virtio-backend") : dev;
    g_autofree char *label = qemu_console_get_label(con);
    char connector[HFE_CONNECTOR_LEN];
    HelixScanout *so;

    const DisplayChangeListenerOps *ops = &helix_dcl_ops;
    DisplayChangeListener probe = { .con = con };
    Error *refused = NULL;

#ifdef HELIX_HAVE_GL
    /* -display helix: its GL frames come to our GL listener (helix-gl.c). */
    if (helix_gl_console(con)) {
        ops = &helix_gl_dcl_ops;
    }
#endif
    /*
     * An OpenGL console (virtio-gpu-gl) takes a 2D listener only where its
     * display says so: egl-headless reads each GL frame back into the
     * console's surface for 2D listeners, SDL and GTK with gl=on take none.
     * Registering a refused listener would end QEMU: ask first.
     */
    probe.ops = ops;
    if (!qemu_console_accepts_listener(con, &probe, &refused)) {
        error_setg(errp, "console %u (%s) cannot be exported: %s (an OpenGL "
                   "console can be exported under -display helix or "
                   "egl-headless)", index, label, error_get_pretty(refused));
        error_free(refused);
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
#ifdef HELIX_HAVE_GL
    /* A GL read-back waits for the stream to take the last picture. */
    if (ops == &helix_gl_dcl_ops) {
        sp.picture_taken = helix_notify;
    }
#endif

    so = g_new0(HelixScanout, 1);
    so->hfe = s;
    so->id = index;
    so->stream = hfe_stream_new(&sp, &err);
    if (!so->stream) {
        error_setg(errp, "console %u: %s", index, err.msg);
        g_free(so);
        return false;
    }
    /*
     * A virtio-gpu's consoles are its heads: hot-pluggable through UI info
     * (virtio-vga's first one too), and the guest's DRM driver names head N
     * "Virtual-<N+1>". Other consoles are named by their label.
     */
    so->output = gpu && object_dynamic_cast(gpu, TYPE_VIRTIO_GPU_BASE) &&
                 dpy_ui_info_supported(con);
    so->head = qemu_console_get_head(con);
    if (so->output) {
        snprintf(connector, sizeof(connector), "Virtual-%u", so->head + 1);
    } else {
        snprintf(connector, sizeof(connector), "%s", label);
    }
    if (hfe_hub_add_scanout(hfe_host_hub(s->host), index, so->stream,
                            connector) < 0) {
        error_setg(errp, "console %u: cannot add it as a scanout", index);
        hfe_stream_free(so->stream);
        g_free(so);
        return false;
    }
    s->scanouts[s->n_scanouts++] = so;
    so->dcl.ops = ops;
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
                helix_outputs_publish(s); /* those attached so far */
                return false;
            }
            /* Exporting "every console": skip what cannot be exported. */
            warn_report_err(local_err);
        }
    }
    helix_outputs_publish(s);
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
#ifdef HELIX_HAVE_GL
        helix_gl_free(so);
#endif
        if (so->scratch) {
            pixman_image_unref(so->scratch);
        }
        g_free(so);
    }
}
