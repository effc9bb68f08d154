/*
 * helix-frame-export: how long the object holds the main loop, and its stats
 *
 * Every callback of the object on the main loop is timed: wall clock (what
 * the VM and the other users of the loop wait) and the thread's CPU time
 * (our own work). The thread's context switches tell the rest apart: a
 * voluntary one means the callback waited for something (a lock, I/O: our
 * fault), an involuntary one that the kernel ran another thread (a busy
 * host). The figures, with the feeder's copy rate and each scanout's
 * encoder counters, are the "stats" property: a QAPI struct
 * (HelixFrameExportStats), so qom-get returns JSON.
 *
 * Copyright (c) 2025 helix-frame-export contributors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-visit-qom.h"
#include "qapi/util.h"
#include "qapi/visitor.h"
#include "qemu/timer.h"
#include "helix.h"
#include "trace.h"

#include <sys/resource.h>

static const char *const helix_cb_name[HELIX_CB__MAX] = {
    [HELIX_CB_ACCEPT] = "accept",
    [HELIX_CB_READ] = "client-read",
    [HELIX_CB_WRITE] = "client-write",
    [HELIX_CB_WAKE] = "wake",
    [HELIX_CB_TIMER] = "timer",
    [HELIX_CB_GFX_UPDATE] = "gfx-update",
    [HELIX_CB_GFX_SWITCH] = "gfx-switch",
    [HELIX_CB_GL_UPDATE] = "gl-update",
    [HELIX_CB_GL_READBACK] = "gl-readback",
    [HELIX_CB_CURSOR] = "cursor",
};

/* Upper bounds (us) of the histogram buckets; the last bucket is open. */
static const unsigned helix_hist_us[HELIX_HIST_BOUNDS] = {
    100, 250, 500, 1000, 2000, 5000
};

static HelixTime helix_now(void)
{
    struct timespec ts;
    struct rusage ru;
    HelixTime t = { .wall = get_clock() };

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    t.cpu = ts.tv_sec * NANOSECONDS_PER_SECOND + ts.tv_nsec;
    if (getrusage(RUSAGE_THREAD, &ru) == 0) {
        t.nvcsw = ru.ru_nvcsw;
        t.nivcsw = ru.ru_nivcsw;
    }
    return t;
}

HelixTime helix_enter(void)
{
    return helix_now();
}

static unsigned helix_bucket(uint64_t us)
{
    unsigned i;

    for (i = 0; i < HELIX_HIST_BOUNDS && us >= helix_hist_us[i]; i++) {
    }
    return i;
}

void helix_leave(HelixFrameExport *s, HelixCb cb, HelixTime t0)
{
    HelixTime t1 = helix_now();
    uint64_t us = (uint64_t)(t1.wall - t0.wall) / 1000;
    uint64_t cpu_us = (uint64_t)(t1.cpu - t0.cpu) / 1000;
    HelixCbStats *st = &s->cb[cb];
    const char *where = helix_cb_name[cb];

    st->count++;
    st->total_us += us;
    st->max_us = MAX(st->max_us, us);
    st->max_cpu_us = MAX(st->max_cpu_us, cpu_us);
    if (us > s->max_stall_us || us >= 1000) {
        trace_helix_stall(where, us, cpu_us, s->max_stall_us);
    }
    if (us > s->max_stall_us) {
        s->max_stall_us = us;
        s->max_stall_where = where;
    }
    if (cpu_us > s->max_stall_cpu_us) {
        s->max_stall_cpu_us = cpu_us;
        s->max_stall_cpu_where = where;
    }
    if (t1.nvcsw != t0.nvcsw) {
        s->blocked++;
        if (us > s->max_blocked_us) {
            s->max_blocked_us = us;
            s->max_blocked_where = where;
        }
    }
    s->preempted += t1.nivcsw != t0.nivcsw;
    s->hist[helix_bucket(us)]++;
    s->hist_cpu[helix_bucket(cpu_us)]++;
}

/* Writing 0 to max-stall-us starts a new measurement. */
void helix_stats_reset(HelixFrameExport *s)
{
    s->max_stall_us = 0;
    s->max_stall_where = NULL;
    s->max_stall_cpu_us = 0;
    s->max_stall_cpu_where = NULL;
    s->blocked = s->max_blocked_us = s->preempted = 0;
    s->max_blocked_where = NULL;
    memset(s->hist, 0, sizeof(s->hist));
    memset(s->hist_cpu, 0, sizeof(s->hist_cpu));
    memset(s->cb, 0, sizeof(s->cb));
    qemu_mutex_lock(&s->feed_lock);
    s->copy_max_us = 0;
    qemu_mutex_unlock(&s->feed_lock);
}

static uint64List *helix_u64_list(const uint64_t *v, unsigned n)
{
    uint64List *head = NULL, **tail = &head;

    for (unsigned i = 0; i < n; i++) {
        QAPI_LIST_APPEND(tail, v[i]);
    }
    return head;
}

static HelixFrameExportStats *helix_stats_collect(HelixFrameExport *s)
{
    HelixFrameExportStats *st = g_new0(HelixFrameExportStats, 1);
    HelixFrameExportCallbackStatsList **cbt = &st->callbacks;
    HelixFrameExportScanoutStatsList **sot = &st->scanouts;
    uint64List **bt = &st->hist_bounds_us;
    uint64_t copy_ns, copy_bytes;

    qemu_mutex_lock(&s->feed_lock);
    copy_ns = s->copy_ns;
    copy_bytes = s->copy_bytes;
    st->copy_max_us = s->copy_max_us;
    st->feed_queue = s->feed_len;
    qemu_mutex_unlock(&s->feed_lock);

    st->max_stall_us = s->max_stall_us;
    st->has_max_stall_in = s->max_stall_where != NULL;
    st->max_stall_in = g_strdup(s->max_stall_where);
    st->max_stall_cpu_us = s->max_stall_cpu_us;
    st->has_max_stall_cpu_in = s->max_stall_cpu_where != NULL;
    st->max_stall_cpu_in = g_strdup(s->max_stall_cpu_where);
    st->blocked = s->blocked;
    st->max_blocked_us = s->max_blocked_us;
    st->has_max_blocked_in = s->max_blocked_where != NULL;
    st->max_blocked_in = g_strdup(s->max_blocked_where);
    st->preempted = s->preempted;
    st->clients = s->n_clients;
    st->updates = s->updates;
    st->update_bytes = s->update_bytes;
    st->copy_mbps = copy_ns ? copy_bytes * 1e3 / copy_ns : 0.0;
    st->resources = s->resources;
    for (unsigned i = 0; i < HELIX_HIST_BOUNDS; i++) {
        QAPI_LIST_APPEND(bt, helix_hist_us[i]);
    }
    st->hist_us = helix_u64_list(s->hist, HELIX_HIST_N);
    st->hist_cpu_us = helix_u64_list(s->hist_cpu, HELIX_HIST_N);
    for (unsigned i = 0; i < HELIX_CB__MAX; i++) {
        HelixFrameExportCallbackStats *c = g_new0(HelixFrameExportCallbackStats,
                                                  1);
        const HelixCbStats *cs = &s->cb[i];

        c->name = g_strdup(helix_cb_name[i]);
        c->calls = cs->count;
        c->max_us = cs->max_us;
        c->max_cpu_us = cs->max_cpu_us;
        c->mean_us = cs->count ? cs->total_us / cs->count : 0;
        QAPI_LIST_APPEND(cbt, c);
    }
    for (unsigned i = 0; i < s->n_scanouts; i++) {
        HelixScanout *so = s->scanouts[i];
        HelixFrameExportScanoutStats *o = g_new0(HelixFrameExportScanoutStats,
                                                 1);
        struct hfe_stream_stats ss;

        hfe_stream_get_stats(so->stream, &ss);
        o->id = so->id;
        o->width = so->fed_w;
        o->height = so->fed_h;
        o->watched = so->watched;
        o->frames = ss.frames_encoded;
        o->keyframes = ss.keyframes;
        o->bytes = ss.bytes_out;
        o->encode_us_max = ss.encode_us_max;
        qemu_mutex_lock(&s->feed_lock);
        o->readbacks = so->readbacks;
        qemu_mutex_unlock(&s->feed_lock);
        o->gl_holds = so->gl_holds;
        o->gl_hold_us = so->gl_hold_us;
        QAPI_LIST_APPEND(sot, o);
    }
    return st;
}

void helix_get_stats(Object *obj, Visitor *v, const char *name, void *opaque,
                     Error **errp)
{
    HelixFrameExportStats *st = helix_stats_collect(HELIX_FRAME_EXPORT(obj));

    visit_type_HelixFrameExportStats(v, name, &st, errp);
    qapi_free_HelixFrameExportStats(st);
}
