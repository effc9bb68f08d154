/*
 * helix-frame-export: the feeder thread, which copies pixels into the streams
 *
 * Everything that touches a stream's pixels happens here, not on the main
 * loop. The display listeners (helix-display.c) only queue what happened
 * (resize, a damaged rectangle with a reference to the surface's image,
 * disable); the feeder copies (or converts) the pixels into the stream, so a
 * full-screen 1080p update costs the main loop a few microseconds instead
 * of an 8 MB copy (~1.5 ms). The feeder reads the surface while the guest
 * may already be writing the next frame into it: such a picture can tear,
 * and the next update (which that write causes) repairs it. Images are
 * referenced and released on the main loop (pixman's reference counts are
 * not atomic).
 *
 * Copyright (c) 2025 helix-frame-export contributors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "block/aio.h"
#include "qemu/log.h"
#include "qemu/main-loop.h"
#include "qemu/timer.h"
#include "helix.h"

/* Queued operations before rectangles are merged whatever their sizes. */
#define HELIX_FEED_MAX 64

/* Bytes B,G,R,x in memory whatever the host's byte order. */
#if HOST_BIG_ENDIAN
#define HELIX_PIXMAN_BGRX PIXMAN_b8g8r8x8
#else
#define HELIX_PIXMAN_BGRX PIXMAN_x8r8g8b8
#endif

static void helix_image_unref_bh(void *opaque)
{
    pixman_image_unref(opaque);
}

static void helix_feed_push(HelixFrameExport *s, HelixOp *op)
{
    HelixOp *tail;
    bool idle;

    qemu_mutex_lock(&s->feed_lock);
    tail = QSIMPLEQ_LAST(&s->feed_q, HelixOp, next);
    if (op->kind == HELIX_OP_COPY && tail && tail->kind == HELIX_OP_COPY &&
        tail->so == op->so && tail->img == op->img) {
        int x0 = MIN(tail->x, op->x), y0 = MIN(tail->y, op->y);
        int x1 = MAX(tail->x + tail->w, op->x + op->w);
        int y1 = MAX(tail->y + tail->h, op->y + op->h);
        int64_t both = (int64_t)tail->w * tail->h + (int64_t)op->w * op->h;

        /*
         * Behind already: one bounding box (newest picture wins anyway),
         * unless that would copy much more than the two rectangles.
         */
        if ((int64_t)(x1 - x0) * (y1 - y0) <= 2 * both ||
            s->feed_len >= HELIX_FEED_MAX) {
            tail->x = x0;
            tail->y = y0;
            tail->w = x1 - x0;
            tail->h = y1 - y0;
            qemu_mutex_unlock(&s->feed_lock);
            pixman_image_unref(op->img);
            g_free(op);
            return;
        }
    }
    QSIMPLEQ_INSERT_TAIL(&s->feed_q, op, next);
    s->feed_len++;
    idle = s->feeder_idle;
    qemu_mutex_unlock(&s->feed_lock);
    /* A busy feeder finds the new work itself: no wake-up, no syscall. */
    if (idle) {
        qemu_cond_signal(&s->feed_cond);
    }
}

static HelixOp *helix_op_new(HelixScanoutOpKind kind, HelixScanout *so,
                             pixman_image_t *img, int x, int y, int w, int h)
{
    HelixOp *op = g_new0(HelixOp, 1);

    op->kind = kind;
    op->so = so;
    op->img = img ? pixman_image_ref(img) : NULL;
    op->x = x;
    op->y = y;
    op->w = w;
    op->h = h;
    return op;
}

/* Main loop: queue an operation on a scanout's stream. */
void helix_feed_op(HelixFrameExport *s, HelixScanoutOpKind kind,
                   HelixScanout *so, pixman_image_t *img,
                   int x, int y, int w, int h)
{
    helix_feed_push(s, helix_op_new(kind, so, img, x, y, w, h));
}

/* Main loop: queue reading a GL scanout's rectangle into img. */
void helix_feed_gl_read(HelixFrameExport *s, HelixScanout *so,
                        pixman_image_t *img, int x, int y, int w, int h,
                        struct HelixGlRead *rd)
{
    HelixOp *op = helix_op_new(HELIX_OP_GL_READ, so, img, x, y, w, h);

    op->gl = rd;
    helix_feed_push(s, op);
}

/* Copy (or convert) a rectangle of img into the stream. */
void helix_feeder_copy(HelixFrameExport *s, HelixOp *op)
{
    HelixScanout *so = op->so;
    pixman_image_t *img = op->img;
    pixman_format_code_t pf = pixman_image_get_format(img);
    int stride = pixman_image_get_stride(img);
    uint32_t fmt = helix_hfe_format(pf);
    int64_t c0 = get_clock();
    uint64_t ns;

    if (fmt) {
        const uint8_t *p = (const uint8_t *)pixman_image_get_data(img) +
                           (size_t)op->y * stride + (size_t)op->x * 4;

        hfe_stream_update(so->stream, op->x, op->y, op->w, op->h, p, stride,
                          fmt);
    } else {
        /*
         * Another depth (std VGA at 16 bpp, exotic virtio-gpu formats):
         * convert the rectangle with pixman into a scratch image first.
         */
        if (!so->scratch ||
            pixman_image_get_width(so->scratch) < op->w ||
            pixman_image_get_height(so->scratch) < op->h) {
            if (so->scratch) {
                pixman_image_unref(so->scratch);
            }
            so->scratch = pixman_image_create_bits(HELIX_PIXMAN_BGRX,
                                                   pixman_image_get_width(img),
                                                   pixman_image_get_height(img),
                                                   NULL, 0);
            if (!so->scratch) {
                qemu_log_mask(LOG_UNIMP, "helix-frame-export: scanout %u: no "
                              "memory to convert pixman format 0x%x\n",
                              so->id, pf);
                return;
            }
        }
        if (!so->converting_noted) {
            so->converting_noted = true;
            qemu_log_mask(LOG_UNIMP, "helix-frame-export: scanout %u: pixman "
                          "format 0x%x is converted (slower than 32-bit "
                          "RGB)\n", so->id, pf);
        }
        pixman_image_composite(PIXMAN_OP_SRC, img, NULL, so->scratch,
                               op->x, op->y, 0, 0, 0, 0, op->w, op->h);
        hfe_stream_update(so->stream, op->x, op->y, op->w, op->h,
                          (const uint8_t *)pixman_image_get_data(so->scratch),
                          pixman_image_get_stride(so->scratch),
                          HFE_FMT_XRGB8888);
    }
    ns = get_clock() - c0;
    qemu_mutex_lock(&s->feed_lock);
    s->copy_ns += ns;
    s->copy_bytes += (uint64_t)op->w * op->h * 4;
    s->copy_max_us = MAX(s->copy_max_us, ns / 1000);
    qemu_mutex_unlock(&s->feed_lock);
}

static void *helix_feeder(void *opaque)
{
    HelixFrameExport *s = opaque;

    /*
     * A background thread, as libhfe's: waking the feeder must not preempt
     * the main loop that woke it (on a busy host the copy would then run in
     * the main loop's time slice after all). Under QEMU's sandbox it has
     * that priority from the thread that created it (helix-threads.c).
     */
    hfe_thread_set_background();
    qemu_mutex_lock(&s->feed_lock);
    for (;;) {
        HelixOp *op;
        struct hfe_err err;

        while (!s->feed_stop && QSIMPLEQ_EMPTY(&s->feed_q)) {
            s->feeder_idle = true;
            qemu_cond_wait(&s->feed_cond, &s->feed_lock);
            s->feeder_idle = false;
        }
        if (s->feed_stop) {
            break;
        }
        op = QSIMPLEQ_FIRST(&s->feed_q);
        QSIMPLEQ_REMOVE_HEAD(&s->feed_q, next);
        s->feed_len--;
        qemu_mutex_unlock(&s->feed_lock);

        switch (op->kind) {
        case HELIX_OP_RESIZE:
            if (hfe_stream_resize(op->so->stream, op->w, op->h, &err) < 0) {
                qemu_log_mask(LOG_UNIMP, "helix-frame-export: scanout %u: "
                              "%s\n", op->so->id, err.msg);
                hfe_stream_disable(op->so->stream);
            }
            break;
        case HELIX_OP_COPY:
            helix_feeder_copy(s, op);
            break;
        case HELIX_OP_DISABLE:
            hfe_stream_disable(op->so->stream);
            break;
        case HELIX_OP_GL_READ:
#ifdef HELIX_HAVE_GL
            helix_gl_read(s, op);
#endif
            break;
        }
        if (op->img) {
            aio_bh_schedule_oneshot(qemu_get_aio_context(),
                                    helix_image_unref_bh, op->img);
        }
        g_free(op);
        qemu_mutex_lock(&s->feed_lock);
    }
    qemu_mutex_unlock(&s->feed_lock);
#ifdef HELIX_HAVE_GL
    helix_gl_reader_release(s);
#endif
    return NULL;
}

static void helix_feeder_create(void *opaque)
{
    HelixFrameExport *s = opaque;

    qemu_thread_create(&s->feeder, "helix-feeder", helix_feeder, s,
                       QEMU_THREAD_JOINABLE);
}

void helix_feeder_start(HelixFrameExport *s)
{
    helix_threads_run(helix_feeder_create, s);
    s->feeder_started = true;
}

/* Join the thread and drop what it did not do (the listeners are gone). */
void helix_feeder_stop(HelixFrameExport *s)
{
    if (s->feeder_started) {
        qemu_mutex_lock(&s->feed_lock);
        s->feed_stop = true;
        qemu_cond_signal(&s->feed_cond);
        qemu_mutex_unlock(&s->feed_lock);
        qemu_thread_join(&s->feeder);
    }
    while (!QSIMPLEQ_EMPTY(&s->feed_q)) {
        HelixOp *op = QSIMPLEQ_FIRST(&s->feed_q);

        QSIMPLEQ_REMOVE_HEAD(&s->feed_q, next);
#ifdef HELIX_HAVE_GL
        if (op->gl) {
            helix_gl_read_drop(op);
        }
#endif
        if (op->img) {
            pixman_image_unref(op->img);
        }
        g_free(op);
    }
#ifdef HELIX_HAVE_GL
    helix_gl_reader_free(s);
#endif
}
