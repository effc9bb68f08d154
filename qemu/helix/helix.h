/*
 * helix-frame-export: the object's state, shared by its files
 *
 * The object (helix.c) holds listeners and clients (helix-host.c), one
 * display listener and libhfe stream per exported console (helix-display.c),
 * the feeder thread that copies pixels into the streams (helix-feeder.c),
 * the virtio-gpu devices that resource mode looks in (helix-resource.c),
 * control clients' input (helix-input.c) and
 * the main-loop measurements (helix-stats.c). This header is private to
 * those files.
 *
 * Copyright (c) 2025 helix-frame-export contributors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef UI_HELIX_H
#define UI_HELIX_H

#include "qapi/qapi-builtin-types.h"
#include "qemu/event_notifier.h"
#include "qemu/notify.h"
#include "qemu/queue.h"
#include "qemu/thread.h"
#include "qemu/timer.h"
#include "qom/object.h"
#include "ui/console.h"

#include <hfe/addr.h>
#include <hfe/host.h>
#include <hfe/log.h>
#include <hfe/scanout.h>
#include <hfe/stream.h>

#define TYPE_HELIX_FRAME_EXPORT "helix-frame-export"
OBJECT_DECLARE_SIMPLE_TYPE(HelixFrameExport, HELIX_FRAME_EXPORT)

/* Main-loop callbacks of the object, timed one by one (helix-stats.c). */
typedef enum HelixCb {
    HELIX_CB_ACCEPT,
    HELIX_CB_READ,
    HELIX_CB_WRITE,
    HELIX_CB_WAKE,
    HELIX_CB_TIMER,
    HELIX_CB_GFX_UPDATE,
    HELIX_CB_GFX_SWITCH,
    HELIX_CB_GL_UPDATE,     /* -display helix: a GL console's damage */
    HELIX_CB_GL_READBACK,   /* -display helix: a read-back queued */
    HELIX_CB_CURSOR,        /* the guest defined or moved its cursor */
    HELIX_CB__MAX
} HelixCb;

/* Buckets of the callback histograms: the bounds (us) and one open bucket. */
#define HELIX_HIST_BOUNDS 6
#define HELIX_HIST_N (HELIX_HIST_BOUNDS + 1)

typedef struct HelixCbStats {
    uint64_t count, total_us, max_us, max_cpu_us;
} HelixCbStats;

/* Where a callback started: wall clock, CPU time, context switches. */
typedef struct HelixTime {
    int64_t wall, cpu;
    long nvcsw, nivcsw;
} HelixTime;

typedef struct HelixListener {
    HelixFrameExport *hfe;
    int fd;
    bool control;           /* its clients may inject input */
    struct hfe_addr addr;
    char name[160];
    unsigned accepted;
} HelixListener;

typedef struct HelixClient {
    HelixFrameExport *hfe;
    int fd;
    struct hfe_peer *peer;
    bool rd, wr; /* handlers installed */
    QTAILQ_ENTRY(HelixClient) next;
} HelixClient;

/* -display helix: a GL console's texture and its readback (helix-gl.c). */
typedef struct HelixGl HelixGl;

typedef struct HelixScanout {
    DisplayChangeListener dcl;
    HelixFrameExport *hfe;
    uint32_t id;            /* = console index */
    bool output;            /* an output (head) of a virtio-gpu: hot-pluggable */
    uint32_t head;          /* output: the GPU's head (guest: Virtual-<head+1>) */
    struct hfe_stream *stream;
    DisplaySurface *surface; /* the console's current surface */
    bool watched;           /* somebody subscribes: feed the stream */
    bool fed;               /* the stream has this surface's size */
    uint32_t fed_w, fed_h;
    pixman_image_t *scratch; /* feeder: conversion of other formats */
    bool converting_noted;
    HelixGl *gl;            /* under -display helix, once it scans out GL */
    uint64_t readbacks;     /* GL read-backs done (feeder, under feed_lock) */
    uint64_t gl_holds;      /* times the GPU's commands waited for one */
    uint64_t gl_hold_us;    /* for how long in all */
} HelixScanout;

/* Work for the feeder thread (helix-feeder.c). */
typedef enum HelixScanoutOpKind {
    HELIX_OP_RESIZE,
    HELIX_OP_COPY,
    HELIX_OP_DISABLE,
    HELIX_OP_GL_READ,
} HelixScanoutOpKind;

typedef struct HelixOp {
    HelixScanoutOpKind kind;
    HelixScanout *so;
    pixman_image_t *img; /* COPY, GL_READ: a reference, dropped on the main
                          * loop */
    int x, y, w, h;      /* COPY, GL_READ: the rectangle; RESIZE: w, h */
    struct HelixGlRead *gl; /* GL_READ: where from (helix-gl.c) */
    QSIMPLEQ_ENTRY(HelixOp) next;
} HelixOp;

struct HelixFrameExport {
    Object parent_obj;

    /* properties */
    strList *listen;
    strList *control_listen; /* clients may inject input */
    uint32List *console;
    uint32_t max_fps;
    char *encoder;
    uint32_t bitrate;
    uint32_t max_clients;

    bool complete;
    struct hfe_host *host;
    EventNotifier wake;
    bool wake_ok;
    QEMUTimer *timer;
    uint64_t timer_deadline_ms; /* UINT64_MAX: not armed */
    Notifier machine_done;
    bool machine_done_added;

    HelixListener *listeners;
    unsigned n_listeners;
    QTAILQ_HEAD(, HelixClient) clients;
    unsigned n_clients;
    HelixScanout *scanouts[HFE_MAX_SCANOUTS];
    unsigned n_scanouts;

    /* the feeder thread and its queue */
    QemuThread feeder;
    bool feeder_started;
    QemuMutex feed_lock;
    QemuCond feed_cond;
    QSIMPLEQ_HEAD(, HelixOp) feed_q;
    unsigned feed_len;
    bool feed_stop;
    bool feeder_idle; /* waiting on feed_cond */
    struct HelixGlReader *gl_reader; /* the feeder's GL context, if any */

    /* resource mode: the VM's virtio-gpu devices, looked up once */
    GPtrArray *gpus;

    /* main-loop accounting: wall clock, and CPU time of the main thread */
    uint64_t max_stall_us;
    const char *max_stall_where;
    uint64_t max_stall_cpu_us;
    const char *max_stall_cpu_where;
    /* callbacks that waited (a voluntary context switch: a lock, I/O) */
    uint64_t blocked, max_blocked_us;
    const char *max_blocked_where;
    uint64_t preempted; /* callbacks the kernel switched away from */
    /* all callbacks by wall time and by the main thread's CPU time in them */
    uint64_t hist[HELIX_HIST_N], hist_cpu[HELIX_HIST_N];
    HelixCbStats cb[HELIX_CB__MAX];
    uint64_t updates, update_bytes; /* damage queued by the main loop */
    /* feeder thread, under feed_lock: in hfe_stream_update (lock + copy) */
    uint64_t copy_ns, copy_bytes, copy_max_us;
    uint64_t resources;
};

/* helix-stats.c: time a main-loop callback; the stats property */
HelixTime helix_enter(void);
void helix_leave(HelixFrameExport *s, HelixCb cb, HelixTime t0);
void helix_stats_reset(HelixFrameExport *s);
void helix_get_stats(Object *obj, Visitor *v, const char *name, void *opaque,
                     Error **errp);

/* helix-log.c: libhfe's messages into QEMU's */
void helix_log_sink(enum hfe_log_level level, const char *msg, void *opaque);

/* helix-host.c: listeners and clients on the main loop, driving libhfe */
bool helix_host_start(HelixFrameExport *s, Error **errp);
bool helix_listen_all(HelixFrameExport *s, Error **errp);
void helix_close_clients(HelixFrameExport *s);
void helix_host_stop(HelixFrameExport *s);
void helix_notify(void *opaque);

/* helix-input.c: control clients' input into the VM (QEMU's input API) */
struct hfe_input_sink helix_input_sink(HelixFrameExport *s);

/* helix-display.c: display listeners feeding the streams */
bool helix_attach_consoles(HelixFrameExport *s, Error **errp);
void helix_detach_consoles(HelixFrameExport *s);
void helix_free_scanouts(HelixFrameExport *s);
void helix_watch_update(HelixFrameExport *s);
void helix_outputs_publish(HelixFrameExport *s);
uint32_t helix_hfe_format(pixman_format_code_t f);
/* The 2D listener's callbacks, which the GL listener shares. */
void helix_refresh(DisplayChangeListener *dcl);
void helix_gfx_update(DisplayChangeListener *dcl, int x, int y, int w, int h);
void helix_mouse_set(DisplayChangeListener *dcl, int x, int y, int on);
void helix_cursor_define(DisplayChangeListener *dcl, QEMUCursor *c);
void helix_gfx_switch(DisplayChangeListener *dcl, DisplaySurface *surf);
bool helix_gfx_check_format(DisplayChangeListener *dcl,
                            pixman_format_code_t f);
/* Give the stream a rectangle of the scanout's surface (all of it, with a
 * resize, when the stream has another size). */
void helix_scanout_show(HelixScanout *so, int x, int y, int w, int h);
/* Give the stream the surface's size; true if it had another one (the
 * stream then needs all of the surface). */
bool helix_scanout_fit(HelixScanout *so);

/* helix-gl.c: -display helix (OpenGL consoles read back by the module) */
#if defined(CONFIG_OPENGL) && defined(CONFIG_GBM)
#define HELIX_HAVE_GL 1
extern const DisplayChangeListenerOps helix_gl_dcl_ops;
/* The console's GL context is -display helix's. */
bool helix_gl_console(QemuConsole *con);
/* A watched GL scanout: read it all back, shown when in; false if the
 * console shows no GL scanout. */
bool helix_gl_refresh(HelixScanout *so);
/* Main loop, after the wake notifier: scanouts that wait for the feeder or
 * their stream look again whether a read-back may start. */
void helix_gl_wake(HelixFrameExport *s);
void helix_gl_free(HelixScanout *so);
/* Feeder thread: read a GL_READ op's rectangle into its image; false if
 * there was nothing to read. */
bool helix_gl_read(HelixFrameExport *s, HelixOp *op);
/* Feeder thread, when it ends: let go of its GL context. */
void helix_gl_reader_release(HelixFrameExport *s);
/* Main loop, after the feeder: a GL_READ op that never ran; the context. */
void helix_gl_read_drop(HelixOp *op);
void helix_gl_reader_free(HelixFrameExport *s);
#endif

/* helix-feeder.c: the thread that copies pixels into the streams */
void helix_feeder_start(HelixFrameExport *s);
void helix_feeder_stop(HelixFrameExport *s);
/* Feeder thread: copy (or convert) op's rectangle of op->img into the
 * stream. */
void helix_feeder_copy(HelixFrameExport *s, HelixOp *op);
void helix_feed_op(HelixFrameExport *s, HelixScanoutOpKind kind,
                   HelixScanout *so, pixman_image_t *img,
                   int x, int y, int w, int h);
void helix_feed_gl_read(HelixFrameExport *s, HelixScanout *so,
                        pixman_image_t *img, int x, int y, int w, int h,
                        struct HelixGlRead *rd);

/* helix-threads.c: the export's threads, created at background priority
 * (by a thread that set it before QEMU's sandbox, when there is one) */
void helix_threads_run(void (*fn)(void *), void *arg);
int helix_thread_create(pthread_t *thread, void *(*fn)(void *), void *arg,
                        void *opaque);

/* helix-resource.c: virtio-gpu resources lent to the encoder */
GPtrArray *helix_gpus(HelixFrameExport *s);
/* Formats with the same bytes in memory (alpha is ignored). */
bool helix_same_layout(uint32_t a, uint32_t b);
/* helix-virgl.c: a virgl resource of this VM read out for the encoder;
 * 0, -1 with err (found but refused), 1: no such virgl resource. */
int helix_virgl_resource(HelixFrameExport *s, const struct hfe_frame_request *fr,
                         struct hfe_resource_frame *out, struct hfe_err *err);
int helix_resolve_resource(void *opaque, const struct hfe_frame_request *fr,
                           struct hfe_resource_frame *out,
                           struct hfe_err *err);
void helix_resource_cleanup(HelixFrameExport *s);

#endif
