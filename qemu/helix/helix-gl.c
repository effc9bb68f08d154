/*
 * helix-frame-export: OpenGL consoles read back by the module itself
 *
 * -display helix[,rendernode=PATH] owns the OpenGL context of the VM's
 * consoles the way egl-headless does (a render node, or Mesa's llvmpipe
 * where rendernode names a file that is not one), but hands the GL frames
 * to the helix-frame-export object's listener instead of a 2D surface.
 * egl-headless reads the whole frame back with glReadPixels, on the main
 * loop, at every flush of every console, watched or not. Here:
 *  - only what changed: the guest's damage rectangles, merged for a
 *    millisecond and while a read-back is queued;
 *  - only while somebody watches the console (a new subscriber gets one
 *    full read-back);
 *  - off the main loop: the main loop only puts a fence behind the guest's
 *    rendering and queues the rectangle; the feeder thread, with a GL
 *    context of its own that shares the consoles' textures, waits for the
 *    fence, reads the rectangle into the scanout's surface and copies it
 *    into the stream. The main loop never waits for the GPU, nor does the
 *    CPU work of a software renderer (llvmpipe reads back on the CPU)
 *    happen on it.
 *  - what was flushed, not what the guest drew after: once the scanout
 *    shows another texture the guest may draw into the old one again, so
 *    while a read-back is queued a change of texture holds the GPU's
 *    command queue (QEMU's gl_block, as SPICE holds it until its client has
 *    drawn a frame) until the feeder is done. The guest waits only when it
 *    flips faster than we read.
 * Where a GPU and a hardware encoder exist, the next step is no read-back
 * at all: export the scanout texture as a dmabuf and import it into the
 * encoder's surface (qemu/README.md says what that takes).
 *
 * Copyright (c) 2025 helix-frame-export contributors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/log.h"
#include "qemu/main-loop.h"
#include "qemu/module.h"
#include "qemu/timer.h"
#include "sysemu/sysemu.h"
#include "ui/console.h"
#include "ui/egl-context.h"
#include "ui/egl-helpers.h"
#include "helix.h"
#include "trace.h"

/* Damage waits this long before its read-back starts: the next ms merges. */
#define HELIX_GL_MERGE_MS 1
/* The feeder waits this long for the guest's rendering before it skips a
 * read-back (the next update repairs the picture). */
#define HELIX_GL_FENCE_WAIT_NS (1000 * 1000 * 1000ULL)

/* A rectangle as corners; empty when x1 <= x0 or y1 <= y0. */
typedef struct HelixBox {
    int x0, y0, x1, y1;
} HelixBox;

/* A GL scanout of a watched console (main loop). */
struct HelixGl {
    GLuint tex;               /* the scanout's texture, 0: none */
    bool y_0_top;             /* texture row 0 is the picture's last row */
    int tex_h;                /* the texture's height */
    int sx, sy, sw, sh;       /* the scanout's rectangle in the texture */
    DisplaySurface *surface;  /* sw x sh: what the stream is fed from */
    HelixBox dirty;           /* damage not read back yet */
    int queued;               /* read-backs the feeder has not done (atomic) */
    QEMUTimer *timer;         /* the merge delay, then the max-fps slot */
    bool waiting;             /* for the feeder or the stream: a wake-up
                               * (helix_gl_wake) looks again, no timer */
    int64_t next_ms;          /* no read-back starts before (max-fps) */
    bool held;                /* the GPU's commands wait for our read-back */
    int64_t held_since_us;
};

/* What one read-back reads: made on the main loop, used by the feeder. */
typedef struct HelixGlRead {
    HelixGl *g;               /* for its queued count */
    GLsync fence;             /* behind the guest's rendering */
    GLuint tex;
    bool y_0_top;
    int tex_h, sx, sy;
    bool show;                /* then copy this rectangle into the stream */
    int cx, cy, cw, ch;
} HelixGlRead;

/* The feeder thread's GL context, sharing the consoles' textures. */
typedef struct HelixGlReader {
    EGLContext ctx;
    bool current;             /* made current on the feeder thread */
    bool failed;              /* could not be: reported once */
    GLuint fbo;               /* the feeder's own (FBOs are not shared) */
    uint8_t *flip;            /* rows read bottom-up, before they are flipped */
    size_t flip_len;
} HelixGlReader;

static DisplayGLCtx helix_gl_ctx;
static bool helix_gl_ready;    /* -display helix has set up its GL context */
static EGLContext helix_gl_spare_ctx; /* for the first object's feeder */

/* ---- the display: GL context for the consoles ---- */

static bool helix_gl_is_compatible_dcl(DisplayGLCtx *dgc,
                                       DisplayChangeListener *dcl)
{
    /* Only the object's GL listener: nobody else would read the frames. */
    return dcl->ops == &helix_gl_dcl_ops;
}

static QEMUGLContext helix_gl_create_context(DisplayGLCtx *dgc,
                                             QEMUGLParams *params)
{
    eglMakeCurrent(qemu_egl_display, EGL_NO_SURFACE, EGL_NO_SURFACE,
                   qemu_egl_rn_ctx);
    return qemu_egl_create_context(dgc, params);
}

static const DisplayGLCtxOps helix_gl_ctx_ops = {
    .dpy_gl_ctx_is_compatible_dcl = helix_gl_is_compatible_dcl,
    .dpy_gl_ctx_create = helix_gl_create_context,
    .dpy_gl_ctx_destroy = qemu_egl_destroy_context,
    .dpy_gl_ctx_make_current = qemu_egl_make_context_current,
};

/* A context for a feeder thread, sharing the consoles' textures. */
static EGLContext helix_gl_reader_context(void)
{
    /* Enough for framebuffer objects and glReadPixels. */
    QEMUGLParams p = {
        .major_ver = 3,
        .minor_ver = qemu_egl_mode == DISPLAYGL_MODE_ES ? 0 : 2,
    };
    EGLContext ctx = helix_gl_create_context(&helix_gl_ctx, &p);

    if (!ctx) {
        error_report("helix: no OpenGL context for the read-back thread "
                     "(EGL error 0x%x): GL consoles are not exported",
                     eglGetError());
    }
    return ctx;
}

static void helix_display_early_init(DisplayOptions *opts)
{
    display_opengl = 1;
}

static void helix_display_init(DisplayState *ds, DisplayOptions *opts)
{
    DisplayGLMode mode = opts->has_gl ? opts->gl : DISPLAYGL_MODE_ON;
    const char *renderer;
    QemuConsole *con;

    if (egl_rendernode_init(opts->u.helix.rendernode, mode) < 0) {
        error_report("helix: cannot set up OpenGL on render node %s",
                     opts->u.helix.rendernode ?: "(the first one)");
        exit(1);
    }
    helix_gl_ctx.ops = &helix_gl_ctx_ops;
    eglMakeCurrent(qemu_egl_display, EGL_NO_SURFACE, EGL_NO_SURFACE,
                   qemu_egl_rn_ctx);
    renderer = (const char *)glGetString(GL_RENDERER);
    info_report("helix: OpenGL renderer %s; damage read back off the main "
                "loop", renderer ?: "?");
    for (int i = 0; (con = qemu_console_lookup_by_index(i)); i++) {
        if (qemu_console_is_graphic(con)) {
            qemu_console_set_display_gl_ctx(con, &helix_gl_ctx);
        }
    }
    helix_gl_spare_ctx = helix_gl_reader_context();
    helix_gl_ready = true;
}

static QemuDisplay helix_display = {
    .type = DISPLAY_TYPE_HELIX,
    .early_init = helix_display_early_init,
    .init = helix_display_init,
};

static void helix_display_register(void)
{
    qemu_display_register(&helix_display);
}
type_init(helix_display_register);

bool helix_gl_console(QemuConsole *con)
{
    return helix_gl_ready && qemu_console_is_graphic(con);
}

/* ---- the object's listener on such a console (main loop) ---- */

static void helix_gl_current(void)
{
    eglMakeCurrent(qemu_egl_display, EGL_NO_SURFACE, EGL_NO_SURFACE,
                   qemu_egl_rn_ctx);
}

static void helix_gl_timer(void *opaque);

static HelixGl *helix_gl_of(HelixScanout *so)
{
    if (!so->gl) {
        so->gl = g_new0(HelixGl, 1);
        so->gl->timer = timer_new_ms(QEMU_CLOCK_REALTIME, helix_gl_timer, so);
    }
    return so->gl;
}

/*
 * Forget the damage; read-backs already queued finish on their own. A wait
 * stays: its wake-up comes all the same (virtio-gpu-gl sets the scanout's
 * texture again at every guest frame: no timer each time).
 */
static void helix_gl_cancel(HelixGl *g)
{
    timer_del(g->timer);
    g->dirty = (HelixBox){ 0 };
}

/*
 * The scanout stops showing g->tex: from now on the guest may draw into it
 * again. A read-back of it still queued would read that drawing (a later
 * frame, or half of one), so the device takes no more commands until the
 * feeder is done (helix_gl_release, from the wake-up it sends then).
 */
static void helix_gl_hold(HelixScanout *so)
{
    HelixGl *g = so->gl;

    if (g->held || !g->tex || !qatomic_read(&g->queued)) {
        return;
    }
    g->held = true;
    g->held_since_us = qemu_clock_get_us(QEMU_CLOCK_REALTIME);
    so->gl_holds++;
    trace_helix_gl_hold(so->id);
    graphic_hw_gl_block(so->dcl.con, true);
}

/* Unblocking runs the device's waiting commands at once (virgl's rendering
 * too): in a main-loop turn of their own, not inside the module's callback. */
static void helix_gl_unblock_bh(void *opaque)
{
    graphic_hw_gl_block(opaque, false);
}

/* Let the device go on once no read-back of ours is queued (or when FORCE:
 * the object goes away; its read-backs were dropped). */
static void helix_gl_release(HelixScanout *so, bool force)
{
    HelixGl *g = so->gl;
    int64_t us;

    if (!g || !g->held || (!force && qatomic_read(&g->queued))) {
        return;
    }
    g->held = false;
    us = qemu_clock_get_us(QEMU_CLOCK_REALTIME) - g->held_since_us;
    so->gl_hold_us += us;
    trace_helix_gl_release(so->id, us);
    aio_bh_schedule_oneshot(qemu_get_aio_context(), helix_gl_unblock_bh,
                            so->dcl.con);
}

/* The scanout shows tex now (0: no GL texture): the damage is forgotten, and
 * the guest holds while a read-back of the texture it left is queued. */
static void helix_gl_set_tex(HelixScanout *so, GLuint tex)
{
    HelixGl *g = so->gl;

    helix_gl_cancel(g);
    if (tex != g->tex) {
        helix_gl_hold(so);
    }
    g->tex = tex;
}

static bool helix_box_empty(const HelixBox *b)
{
    return b->x1 <= b->x0 || b->y1 <= b->y0;
}

/* The feeder's GL context; NULL if there is none. */
static HelixGlReader *helix_gl_reader(HelixFrameExport *s)
{
    if (!s->gl_reader) {
        HelixGlReader *r = g_new0(HelixGlReader, 1);

        /* Made at start for the first object: it takes milliseconds. */
        r->ctx = helix_gl_spare_ctx ?: helix_gl_reader_context();
        helix_gl_spare_ctx = NULL;
        r->failed = !r->ctx;
        s->gl_reader = r;
    }
    return qatomic_read(&s->gl_reader->failed) ? NULL : s->gl_reader;
}

/*
 * Queue the read-back of g->dirty: a fence behind what the guest rendered
 * so far, then the feeder reads the rectangle into our surface and copies
 * it into the stream (all of the surface after a resize, queued before).
 * The read-back counts as queued until that copy is done.
 */
static void helix_gl_readback_start(HelixScanout *so)
{
    HelixGl *g = so->gl;
    HelixBox r = g->dirty;
    int w = r.x1 - r.x0, h = r.y1 - r.y0;
    HelixGlRead *rd;

    if (!helix_gl_reader(so->hfe)) {
        return;
    }
    g->dirty = (HelixBox){ 0 };
    rd = g_new(HelixGlRead, 1);
    *rd = (HelixGlRead){ .g = g, .tex = g->tex, .y_0_top = g->y_0_top,
                         .tex_h = g->tex_h, .sx = g->sx, .sy = g->sy,
                         .show = so->surface == g->surface,
                         .cx = r.x0, .cy = r.y0, .cw = w, .ch = h };
    if (rd->show && helix_scanout_fit(so)) {
        rd->cx = rd->cy = 0;
        rd->cw = g->sw;
        rd->ch = g->sh;
    }
    if (rd->show) {
        so->hfe->updates++;
        so->hfe->update_bytes += (uint64_t)rd->cw * rd->ch * 4;
    }
    trace_helix_gl_readback(so->id, r.x0, r.y0, w, h);
    helix_gl_current();
    rd->fence = glFenceSync(GL_SYNC_GPU_COMMANDS_COMPLETE, 0);
    glFlush();
    qatomic_inc(&g->queued);
    helix_feed_gl_read(so->hfe, so, g->surface->image, r.x0, r.y0, w, h, rd);
}

/* Add a rectangle (scanout coordinates) to what is to be read back. */
static void helix_gl_damage(HelixScanout *so, int x, int y, int w, int h)
{
    HelixGl *g = so->gl;
    HelixBox r = { MAX(x, 0), MAX(y, 0), MIN(x + w, g->sw), MIN(y + h, g->sh) };

    if (helix_box_empty(&r)) {
        return;
    }
    if (helix_box_empty(&g->dirty)) {
        g->dirty = r;
    } else {
        g->dirty.x0 = MIN(g->dirty.x0, r.x0);
        g->dirty.y0 = MIN(g->dirty.y0, r.y0);
        g->dirty.x1 = MAX(g->dirty.x1, r.x1);
        g->dirty.y1 = MAX(g->dirty.y1, r.y1);
    }
    /*
     * Queued from the timer: the callbacks that report damage stay cheap.
     * While waiting, the wake-up that ends the wait queues it.
     */
    if (!g->waiting && !timer_pending(g->timer)) {
        timer_mod(g->timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) +
                  HELIX_GL_MERGE_MS);
    }
}

/*
 * Start the read-back of the damage if it may start now. One at a time per
 * scanout, and only once the stream has taken the last picture for an
 * encode (a guest may flush far faster than the encoder runs: a picture
 * read back earlier would be overwritten unseen); damage merges meanwhile.
 * Neither is polled: the feeder when it has done a read-back and the
 * stream when it takes a picture (picture_taken) set the object's wake
 * notifier, whose handler calls helix_gl_wake. Then no more often than
 * max-fps: a timer at the next slot.
 */
static void helix_gl_try(HelixScanout *so)
{
    HelixGl *g = so->gl;
    int64_t now;

    g->waiting = false;
    if (helix_box_empty(&g->dirty) || !so->watched || !g->tex) {
        return;
    }
    if (qatomic_read(&g->queued) || hfe_stream_picture_pending(so->stream)) {
        /*
         * No lost wake-up: both set the notifier after the change this
         * reads (the feeder after its queued count, the stream after it
         * took the picture), so one that happens after this look wakes
         * the main loop again.
         */
        g->waiting = true;
        return;
    }
    now = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    if (now < g->next_ms) {
        timer_mod(g->timer, g->next_ms);
        return;
    }
    g->next_ms = now + 1000 / so->hfe->max_fps;
    helix_gl_readback_start(so);
}

static void helix_gl_timer(void *opaque)
{
    HelixScanout *so = opaque;
    HelixTime t0 = helix_enter();

    helix_gl_try(so);
    helix_leave(so->hfe, HELIX_CB_GL_READBACK, t0);
}

void helix_gl_wake(HelixFrameExport *s)
{
    for (unsigned i = 0; i < s->n_scanouts; i++) {
        HelixScanout *so = s->scanouts[i];

        helix_gl_release(so, false);
        if (so->gl && so->gl->waiting) {
            helix_gl_try(so);
        }
    }
}

static void helix_gl_scanout_disable(DisplayChangeListener *dcl)
{
    HelixScanout *so = container_of(dcl, HelixScanout, dcl);
    HelixGl *g = helix_gl_of(so);

    helix_gl_set_tex(so, 0);
    if (so->surface == g->surface) {
        helix_gfx_switch(dcl, NULL); /* the output is off */
    }
}

static void helix_gl_scanout_texture(DisplayChangeListener *dcl,
                                     uint32_t backing_id, bool y_0_top,
                                     uint32_t backing_width,
                                     uint32_t backing_height,
                                     uint32_t x, uint32_t y,
                                     uint32_t w, uint32_t h)
{
    HelixScanout *so = container_of(dcl, HelixScanout, dcl);
    HelixGl *g = helix_gl_of(so);
    HelixTime t0 = helix_enter();

    helix_gl_set_tex(so, backing_id);
    g->y_0_top = y_0_top;
    g->tex_h = backing_height;
    g->sx = x;
    g->sy = y;
    if (!g->surface || g->sw != (int)w || g->sh != (int)h) {
        if (g->surface) {
            qemu_free_displaysurface(g->surface); /* queued reads hold its image */
        }
        g->surface = qemu_create_displaysurface(w, h);
        g->sw = w;
        g->sh = h;
        trace_helix_gl_scanout(so->id, w, h, backing_width, backing_height,
                               y_0_top);
    }
    /*
     * The stream shows our surface once its first read-back is in: until
     * then it keeps the last picture rather than a blank one.
     */
    so->surface = g->surface;
    so->fed = so->fed && so->fed_w == w && so->fed_h == h;
    if (so->watched) {
        helix_gl_damage(so, 0, 0, w, h);
    }
    helix_leave(so->hfe, HELIX_CB_GFX_SWITCH, t0);
}

static void helix_gl_update(DisplayChangeListener *dcl,
                            uint32_t x, uint32_t y, uint32_t w, uint32_t h)
{
    HelixScanout *so = container_of(dcl, HelixScanout, dcl);
    HelixTime t0 = helix_enter();

    /* Unwatched: nothing to do; a new subscriber gets a full read-back. */
    if (so->gl && so->gl->tex && so->watched &&
        so->surface == so->gl->surface) {
        helix_gl_damage(so, x, y, w, h);
    }
    helix_leave(so->hfe, HELIX_CB_GL_UPDATE, t0);
}

/*
 * A 2D surface on such a console. virtio-gpu-gl switches to a blank one of
 * the new size just before each GL scanout of another size: shown only
 * once it is drawn to (a 2D update), so that no blank picture is encoded.
 */
static void helix_gl_gfx_switch(DisplayChangeListener *dcl,
                                DisplaySurface *surf)
{
    HelixScanout *so = container_of(dcl, HelixScanout, dcl);

    if (so->gl) {
        helix_gl_set_tex(so, 0);
    }
    if (!surf || is_placeholder(surf)) {
        helix_gfx_switch(dcl, surf);
    } else {
        so->surface = surf;
    }
}

static void helix_gl_gfx_update(DisplayChangeListener *dcl,
                                int x, int y, int w, int h)
{
    HelixScanout *so = container_of(dcl, HelixScanout, dcl);
    HelixTime t0 = helix_enter();

    if (so->watched && so->surface &&
        (!so->gl || so->surface != so->gl->surface)) {
        helix_scanout_show(so, x, y, w, h);
    }
    helix_leave(so->hfe, HELIX_CB_GFX_UPDATE, t0);
}

bool helix_gl_refresh(HelixScanout *so)
{
    HelixGl *g = so->gl;

    if (!g || !g->tex || so->surface != g->surface) {
        return false;
    }
    /*
     * A wait for a stream that had no consumers since may never be woken
     * (the picture stopped being pending without being taken): look again.
     */
    g->waiting = false;
    helix_gl_damage(so, 0, 0, g->sw, g->sh);
    return true;
}

/* After helix_feeder_stop: no read-back refers to it any more. */
void helix_gl_free(HelixScanout *so)
{
    HelixGl *g = so->gl;

    if (!g) {
        return;
    }
    helix_gl_cancel(g);
    helix_gl_release(so, true);
    timer_free(g->timer);
    if (g->surface) {
        qemu_free_displaysurface(g->surface);
    }
    g_free(g);
    so->gl = NULL;
}

const DisplayChangeListenerOps helix_gl_dcl_ops = {
    .dpy_name = "helix-frame-export",
    .dpy_refresh = helix_refresh,
    .dpy_gfx_update = helix_gl_gfx_update,
    .dpy_gfx_switch = helix_gl_gfx_switch,
    .dpy_gfx_check_format = helix_gfx_check_format,
    .dpy_gl_scanout_disable = helix_gl_scanout_disable,
    .dpy_gl_scanout_texture = helix_gl_scanout_texture,
    .dpy_gl_update = helix_gl_update,
    .dpy_mouse_set = helix_mouse_set,
    .dpy_cursor_define = helix_cursor_define,
};

/* ---- the read-back itself, on the feeder thread ---- */

bool helix_gl_read(HelixFrameExport *s, HelixOp *op)
{
    HelixGlReader *r = s->gl_reader;
    HelixGlRead *rd = op->gl;
    int stride = pixman_image_get_stride(op->img);
    uint8_t *dst = (uint8_t *)pixman_image_get_data(op->img) +
                   (size_t)op->y * stride + (size_t)op->x * 4;
    /* Texture rows run the other way when its row 0 is the picture's last. */
    int ty = rd->y_0_top ? rd->tex_h - (rd->sy + op->y + op->h)
                         : rd->sy + op->y;
    bool ok = false;
    GLenum st;

    if (!r->current) {
        if (!eglMakeCurrent(qemu_egl_display, EGL_NO_SURFACE, EGL_NO_SURFACE,
                            r->ctx)) {
            /* The fence stays: nothing can delete it without a context. */
            qemu_log_mask(LOG_UNIMP, "helix-frame-export: the read-back "
                          "thread cannot use its OpenGL context (EGL error "
                          "0x%x): GL consoles are not exported\n",
                          eglGetError());
            qatomic_set(&r->failed, true);
            goto out;
        }
        r->current = true;
        glGenFramebuffers(1, &r->fbo);
    }
    st = glClientWaitSync(rd->fence, GL_SYNC_FLUSH_COMMANDS_BIT,
                          HELIX_GL_FENCE_WAIT_NS);
    glDeleteSync(rd->fence);
    if (st != GL_ALREADY_SIGNALED && st != GL_CONDITION_SATISFIED) {
        goto out;
    }
    glBindFramebuffer(GL_READ_FRAMEBUFFER, r->fbo);
    glFramebufferTexture2D(GL_READ_FRAMEBUFFER, GL_COLOR_ATTACHMENT0,
                           GL_TEXTURE_2D, rd->tex, 0);
    /* Incomplete when the guest has freed the texture meanwhile. */
    if (glCheckFramebufferStatus(GL_READ_FRAMEBUFFER) ==
        GL_FRAMEBUFFER_COMPLETE) {
        glPixelStorei(GL_PACK_ALIGNMENT, 4);
        if (!rd->y_0_top) {
            glPixelStorei(GL_PACK_ROW_LENGTH, stride / 4);
            glReadPixels(rd->sx + op->x, ty, op->w, op->h, GL_BGRA,
                         GL_UNSIGNED_BYTE, dst);
        } else {
            size_t row = (size_t)op->w * 4, len = row * op->h;

            if (r->flip_len < len) {
                r->flip = g_realloc(r->flip, len);
                r->flip_len = len;
            }
            glPixelStorei(GL_PACK_ROW_LENGTH, 0);
            glReadPixels(rd->sx + op->x, ty, op->w, op->h, GL_BGRA,
                         GL_UNSIGNED_BYTE, r->flip);
            for (int i = 0; i < op->h; i++) {
                memcpy(dst + (size_t)i * stride,
                       r->flip + (size_t)(op->h - 1 - i) * row, row);
            }
        }
        ok = glGetError() == GL_NO_ERROR;
    }
    /* Hold no reference: the guest may free the texture. */
    glFramebufferTexture2D(GL_READ_FRAMEBUFFER, GL_COLOR_ATTACHMENT0,
                           GL_TEXTURE_2D, 0, 0);
    glBindFramebuffer(GL_READ_FRAMEBUFFER, 0);
out:
    if (rd->show) {
        /* Even if the read failed: a resized stream needs its pixels. */
        op->x = rd->cx;
        op->y = rd->cy;
        op->w = rd->cw;
        op->h = rd->ch;
        helix_feeder_copy(s, op);
    }
    if (ok) {
        qemu_mutex_lock(&s->feed_lock);
        op->so->readbacks++;
        qemu_mutex_unlock(&s->feed_lock);
    }
    qatomic_dec(&rd->g->queued);
    helix_notify(s); /* a waiting scanout may read back again */
    g_free(rd);
    op->gl = NULL;
    return ok;
}

void helix_gl_reader_release(HelixFrameExport *s)
{
    HelixGlReader *r = s->gl_reader;

    if (r && r->current) {
        glDeleteFramebuffers(1, &r->fbo);
        eglMakeCurrent(qemu_egl_display, EGL_NO_SURFACE, EGL_NO_SURFACE,
                       EGL_NO_CONTEXT);
        eglReleaseThread();
        r->current = false;
    }
}

void helix_gl_read_drop(HelixOp *op)
{
    HelixGlRead *rd = op->gl;

    helix_gl_current();
    glDeleteSync(rd->fence);
    qatomic_dec(&rd->g->queued);
    g_free(rd);
    op->gl = NULL;
}

void helix_gl_reader_free(HelixFrameExport *s)
{
    HelixGlReader *r = s->gl_reader;

    if (!r) {
        return;
    }
    if (r->ctx) {
        qemu_egl_destroy_context(&helix_gl_ctx, r->ctx);
    }
    g_free(r->flip);
    g_free(r);
    s->gl_reader = NULL;
}
