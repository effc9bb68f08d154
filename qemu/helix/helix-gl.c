/*
 * helix-frame-export: OpenGL consoles read back by the module itself
 *
 * -display helix[,rendernode=PATH] owns the OpenGL context of the VM's
 * consoles the way egl-headless does (a render node, or Mesa's llvmpipe
 * where rendernode names a file that is not one), but hands the GL frames
 * to the helix-frame-export object's listener instead of a 2D surface.
 * egl-headless reads the whole frame back with glReadPixels, on the main
 * loop, at every flush of every console, watched or not. Here:
 *  - only what changed: the guest's damage rectangles, merged while a
 *    readback is in flight;
 *  - only while somebody watches the console (a new subscriber gets one
 *    full readback);
 *  - asynchronously: glReadPixels into a pixel-buffer object, then a fence;
 *    a 1 ms timer polls the fence without waiting, and only a finished
 *    readback is mapped and copied into the scanout's own surface, which
 *    the feeder thread encodes from as for a 2D console;
 *  - never inside the callbacks that report damage or subscribers: those
 *    only merge rectangles.
 * On a GPU the copy to the buffer runs on the GPU while the main loop goes
 * on. A software renderer (llvmpipe) has no such engine: the copy is CPU
 * work either way, and through a buffer object it costs a second copy at
 * map time; there the damage is read straight into memory, and the gain is
 * reading only the damage (see qemu/README.md for figures). Where a GPU and a hardware encoder
 * exist, the next step is no read-back at all: export the scanout texture
 * as a dmabuf (egl_get_fd_for_texture) and import it into the encoder's
 * surface (VAAPI/NVENC through libavcodec's hw frames); not written, as
 * nothing here could run it.
 *
 * Copyright (c) 2025 helix-frame-export contributors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/module.h"
#include "qemu/timer.h"
#include "sysemu/sysemu.h"
#include "ui/console.h"
#include "ui/egl-context.h"
#include "ui/egl-helpers.h"
#include "helix.h"
#include "trace.h"

/* How often a readback in flight is looked at (it is never waited for). */
#define HELIX_GL_POLL_MS 1

/* A rectangle as corners; empty when x1 <= x0 or y1 <= y0. */
typedef struct HelixBox {
    int x0, y0, x1, y1;
} HelixBox;

struct HelixGl {
    egl_fb guest_fb;          /* the scanout's texture, as a framebuffer */
    bool y_0_top;             /* texture row 0 is the picture's last row */
    int tex_h;                /* the texture's height */
    int sx, sy, sw, sh;       /* the scanout's rectangle in the texture */
    DisplaySurface *surface;  /* sw x sh: what the stream is fed from */
    GLuint pbo;               /* GPU: the readback's buffer object */
    uint8_t *cpu;             /* software renderer: read straight into it */
    GLsync fence;             /* a readback in flight */
    HelixBox busy;            /* its box, scanout coordinates */
    HelixBox dirty;           /* damage not read back yet */
    QEMUTimer *poll;
};

static DisplayGLCtx helix_gl_ctx;
static bool helix_gl_ready;    /* -display helix has set up its GL context */
static bool helix_gl_software; /* Mesa's llvmpipe/softpipe renders */

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
    helix_gl_software = renderer && (strstr(renderer, "llvmpipe") ||
                                     strstr(renderer, "softpipe"));
    info_report("helix: OpenGL renderer %s: %s read-back", renderer ?: "?",
                helix_gl_software ? "synchronous, damage only" :
                                    "asynchronous (buffer object + fence)");
    for (int i = 0; (con = qemu_console_lookup_by_index(i)); i++) {
        if (qemu_console_is_graphic(con)) {
            qemu_console_set_display_gl_ctx(con, &helix_gl_ctx);
        }
    }
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

/* ---- the object's listener on such a console ---- */

static void helix_gl_current(void)
{
    eglMakeCurrent(qemu_egl_display, EGL_NO_SURFACE, EGL_NO_SURFACE,
                   qemu_egl_rn_ctx);
}

static void helix_gl_poll(void *opaque);

static HelixGl *helix_gl_of(HelixScanout *so)
{
    if (!so->gl) {
        so->gl = g_new0(HelixGl, 1);
        so->gl->poll = timer_new_ms(QEMU_CLOCK_REALTIME, helix_gl_poll, so);
    }
    return so->gl;
}

static void helix_gl_cancel(HelixGl *g)
{
    if (g->fence) {
        helix_gl_current();
        glDeleteSync(g->fence);
        g->fence = NULL;
    }
    timer_del(g->poll);
    g->dirty = (HelixBox){ 0 };
}

/* The read-back box g->busy (rows as GL read them) into our surface, then
 * to the stream. */
static void helix_gl_store(HelixScanout *so, const uint8_t *src)
{
    HelixGl *g = so->gl;
    HelixBox r = g->busy;
    int w = r.x1 - r.x0, h = r.y1 - r.y0;
    size_t row = (size_t)w * 4;
    int stride = surface_stride(g->surface);
    uint8_t *dst = (uint8_t *)surface_data(g->surface) +
                   (size_t)r.y0 * stride + (size_t)r.x0 * 4;

    for (int i = 0; i < h; i++) {
        int from = g->y_0_top ? h - 1 - i : i;

        memcpy(dst + (size_t)i * stride, src + (size_t)from * row, row);
    }
    if (so->watched && so->surface == g->surface) {
        helix_scanout_show(so, r.x0, r.y0, w, h);
    }
}

/*
 * Start reading g->dirty back: into the buffer object, nothing waits (GPU);
 * or straight into memory (software renderer).
 */
static void helix_gl_readback_start(HelixScanout *so)
{
    HelixGl *g = so->gl;
    HelixBox r = g->dirty;
    int w = r.x1 - r.x0, h = r.y1 - r.y0;
    /* Texture rows run the other way when its row 0 is the top. */
    int ty = g->y_0_top ? g->tex_h - (g->sy + r.y1) : g->sy + r.y0;

    g->dirty = (HelixBox){ 0 };
    g->busy = r;
    trace_helix_gl_readback(so->id, r.x0, r.y0, w, h);
    helix_gl_current();
    glBindFramebuffer(GL_READ_FRAMEBUFFER, g->guest_fb.framebuffer);
    glPixelStorei(GL_PACK_ALIGNMENT, 4);
    glPixelStorei(GL_PACK_ROW_LENGTH, 0);
    if (g->cpu) {
        glReadPixels(g->sx + r.x0, ty, w, h, GL_BGRA, GL_UNSIGNED_BYTE, g->cpu);
        helix_gl_store(so, g->cpu);
        return;
    }
    glBindBuffer(GL_PIXEL_PACK_BUFFER, g->pbo);
    glReadPixels(g->sx + r.x0, ty, w, h, GL_BGRA, GL_UNSIGNED_BYTE, NULL);
    glBindBuffer(GL_PIXEL_PACK_BUFFER, 0);
    g->fence = glFenceSync(GL_SYNC_GPU_COMMANDS_COMPLETE, 0);
    glFlush();
    timer_mod(g->poll, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) +
              HELIX_GL_POLL_MS);
}

static bool helix_box_empty(const HelixBox *b)
{
    return b->x1 <= b->x0 || b->y1 <= b->y0;
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
    if (g->cpu) {
        /* Read on the timer: damage of the next ms merges, and the
         * callbacks that report damage stay cheap. */
        if (!timer_pending(g->poll)) {
            timer_mod(g->poll, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) +
                      HELIX_GL_POLL_MS);
        }
    } else if (!g->fence) {
        helix_gl_readback_start(so);
    }
}

/* The finished readback: map the buffer object, store it. */
static void helix_gl_readback_done(HelixScanout *so)
{
    HelixGl *g = so->gl;
    size_t len = (size_t)(g->busy.x1 - g->busy.x0) *
                 (g->busy.y1 - g->busy.y0) * 4;
    const uint8_t *src;

    glBindBuffer(GL_PIXEL_PACK_BUFFER, g->pbo);
    src = glMapBufferRange(GL_PIXEL_PACK_BUFFER, 0, len, GL_MAP_READ_BIT);
    if (src) {
        helix_gl_store(so, src);
        glUnmapBuffer(GL_PIXEL_PACK_BUFFER);
    }
    glBindBuffer(GL_PIXEL_PACK_BUFFER, 0);
}

static void helix_gl_poll(void *opaque)
{
    HelixScanout *so = opaque;
    HelixGl *g = so->gl;
    HelixTime t0 = helix_enter();
    GLenum st;

    if (g->cpu) {
        if (!helix_box_empty(&g->dirty) && so->watched) {
            helix_gl_readback_start(so);
        }
        goto out;
    }
    if (!g->fence) {
        goto out;
    }
    helix_gl_current();
    st = glClientWaitSync(g->fence, 0, 0); /* a look, no wait */
    if (st == GL_TIMEOUT_EXPIRED) {
        timer_mod(g->poll, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) +
                  HELIX_GL_POLL_MS);
        goto out;
    }
    glDeleteSync(g->fence);
    g->fence = NULL;
    if (st != GL_WAIT_FAILED) {
        helix_gl_readback_done(so);
    }
    if (!helix_box_empty(&g->dirty) && so->watched) {
        helix_gl_readback_start(so);
    }
out:
    helix_leave(so->hfe, HELIX_CB_GL_READBACK, t0);
}

static void helix_gl_scanout_disable(DisplayChangeListener *dcl)
{
    HelixScanout *so = container_of(dcl, HelixScanout, dcl);
    HelixGl *g = helix_gl_of(so);

    helix_gl_cancel(g);
    egl_fb_destroy(&g->guest_fb);
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

    helix_gl_cancel(g);
    helix_gl_current();
    egl_fb_setup_for_tex(&g->guest_fb, backing_width, backing_height,
                         backing_id, false);
    g->y_0_top = y_0_top;
    g->tex_h = backing_height;
    g->sx = x;
    g->sy = y;
    if (!g->surface || g->sw != (int)w || g->sh != (int)h) {
        if (g->surface) {
            qemu_free_displaysurface(g->surface);
        }
        g->surface = qemu_create_displaysurface(w, h);
        g->sw = w;
        g->sh = h;
        if (helix_gl_software) {
            g->cpu = g_realloc(g->cpu, (size_t)w * h * 4);
        } else {
            if (!g->pbo) {
                glGenBuffers(1, &g->pbo);
            }
            glBindBuffer(GL_PIXEL_PACK_BUFFER, g->pbo);
            glBufferData(GL_PIXEL_PACK_BUFFER, (size_t)w * h * 4, NULL,
                         GL_STREAM_READ);
            glBindBuffer(GL_PIXEL_PACK_BUFFER, 0);
        }
        trace_helix_gl_scanout(so->id, w, h, backing_width, backing_height,
                               y_0_top);
    }
    /*
     * The stream shows our surface once its first readback is in: until
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

    /* Unwatched: nothing to do; a new subscriber gets a full readback. */
    if (so->gl && so->gl->guest_fb.framebuffer && so->watched &&
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
        helix_gl_cancel(so->gl);
        egl_fb_destroy(&so->gl->guest_fb);
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

    if (!g || !g->guest_fb.framebuffer || so->surface != g->surface) {
        return false;
    }
    helix_gl_damage(so, 0, 0, g->sw, g->sh);
    return true;
}

void helix_gl_free(HelixScanout *so)
{
    HelixGl *g = so->gl;

    if (!g) {
        return;
    }
    helix_gl_cancel(g);
    timer_free(g->poll);
    egl_fb_destroy(&g->guest_fb);
    if (g->pbo) {
        glDeleteBuffers(1, &g->pbo);
    }
    g_free(g->cpu);
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
};
