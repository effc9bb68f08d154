/*
 * helix-frame-export: the export's threads, at background priority even in
 * QEMU's sandbox
 *
 * The export's threads (the feeder, libhfe's stream workers and the encoder
 * threads these start) run as SCHED_BATCH at nice 10, so that on a busy
 * host they leave the CPU to the VM. A thread sets that for itself when it
 * starts, but -sandbox resourcecontrol=deny (libvirt's default) refuses
 * setpriority and sched_setscheduler to every thread once the sandbox is
 * on, and the object is created after that. A Linux thread inherits its
 * creator's policy and nice value, and QEMU creates thread-context objects
 * before the sandbox for the same reason (CPU affinity). So, with a
 * sandbox, helix_threads_pre_sandbox() (called by vl.c just before the
 * sandbox applies) starts a thread that makes itself a background one; the
 * export's threads are then created by it, on request. Without a sandbox
 * there is no such thread and every thread sets its own priority; nor
 * after -daemonize, whose fork comes after the sandbox and keeps only the
 * forking thread (the threads then run at normal priority, and libhfe
 * says so).
 *
 * Copyright (c) 2025 helix-frame-export contributors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/thread.h"
#include "ui/helix-sandbox.h"
#include "helix.h"

typedef struct HelixThreadsJob {
    void (*fn)(void *);
    void *arg;
    QemuSemaphore done;
} HelixThreadsJob;

static QemuThread helix_threads_creator;
static bool helix_threads_on;        /* the creator runs */
static QemuSemaphore helix_threads_ready;
static QemuMutex helix_threads_one;  /* one job at a time */
static QemuMutex helix_threads_lock;
static QemuCond helix_threads_cond;
static HelixThreadsJob *helix_threads_job; /* under helix_threads_lock */

/* In a forked child (-daemonize) the creator does not exist. */
static void helix_threads_forked(void)
{
    helix_threads_on = false;
}

static void *helix_threads_run_creator(void *opaque)
{
    if (!hfe_thread_set_background()) {
        warn_report("helix-frame-export: the export's threads run at normal "
                    "priority: SCHED_BATCH and nice 10 were refused (%s)",
                    strerror(errno));
    }
    qemu_sem_post(&helix_threads_ready);
    qemu_mutex_lock(&helix_threads_lock);
    for (;;) {
        HelixThreadsJob *job;

        while (!helix_threads_job) {
            qemu_cond_wait(&helix_threads_cond, &helix_threads_lock);
        }
        job = helix_threads_job;
        helix_threads_job = NULL;
        qemu_mutex_unlock(&helix_threads_lock);
        job->fn(job->arg);
        qemu_sem_post(&job->done);
        qemu_mutex_lock(&helix_threads_lock);
    }
    return NULL;
}

void helix_threads_pre_sandbox(void)
{
    qemu_sem_init(&helix_threads_ready, 0);
    qemu_mutex_init(&helix_threads_one);
    qemu_mutex_init(&helix_threads_lock);
    qemu_cond_init(&helix_threads_cond);
    qemu_thread_create(&helix_threads_creator, "helix-threads",
                       helix_threads_run_creator, NULL, QEMU_THREAD_DETACHED);
    /* Its priority is set before the sandbox denies it. */
    qemu_sem_wait(&helix_threads_ready);
    pthread_atfork(NULL, NULL, helix_threads_forked);
    helix_threads_on = true;
}

void helix_threads_run(void (*fn)(void *), void *arg)
{
    HelixThreadsJob job = { .fn = fn, .arg = arg };

    if (!helix_threads_on) {
        fn(arg);
        return;
    }
    qemu_sem_init(&job.done, 0);
    qemu_mutex_lock(&helix_threads_one);
    qemu_mutex_lock(&helix_threads_lock);
    helix_threads_job = &job;
    qemu_cond_signal(&helix_threads_cond);
    qemu_mutex_unlock(&helix_threads_lock);
    qemu_sem_wait(&job.done);
    qemu_mutex_unlock(&helix_threads_one);
    qemu_sem_destroy(&job.done);
}

typedef struct HelixThreadsStart {
    pthread_t *thread;
    void *(*fn)(void *);
    void *arg;
    int rc;
} HelixThreadsStart;

static void helix_threads_start(void *opaque)
{
    HelixThreadsStart *st = opaque;

    st->rc = pthread_create(st->thread, NULL, st->fn, st->arg);
}

int helix_thread_create(pthread_t *thread, void *(*fn)(void *), void *arg,
                        void *opaque)
{
    HelixThreadsStart st = { .thread = thread, .fn = fn, .arg = arg };

    helix_threads_run(helix_threads_start, &st);
    return st.rc;
}
