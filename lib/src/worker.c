/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "worker.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hfe/host.h"
#include "hfe/log.h"

static atomic_bool background;
static pthread_mutex_t creator_lock = PTHREAD_MUTEX_INITIALIZER;
static hfe_thread_create_fn creator; /* under creator_lock */
static void *creator_opaque;

void hfe_set_background_workers(bool on) { atomic_store(&background, on); }

void hfe_set_thread_creator(hfe_thread_create_fn create, void *opaque)
{
	pthread_mutex_lock(&creator_lock);
	creator = create;
	creator_opaque = opaque;
	pthread_mutex_unlock(&creator_lock);
}

struct start {
	void *(*fn)(void *);
	void *arg;
	char name[16]; /* Linux's limit for a thread's name, NUL included */
};

bool hfe_thread_set_background(void)
{
	struct sched_param sp = { .sched_priority = 0 };
	id_t tid = (id_t)syscall(SYS_gettid);

	errno = 0;
	int nice = getpriority(PRIO_PROCESS, tid);
	bool batch = sched_getscheduler(0) == SCHED_BATCH;
	bool niced = errno == 0 && nice >= 10;
	/* Each on its own: the policy alone already helps. Never towards a
	 * higher priority (a nice value above 10 stays). */
	int rc = batch ? 0 : pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
	if (!niced && setpriority(PRIO_PROCESS, tid, 10) < 0)
		return false;
	errno = rc;
	return rc == 0;
}

/* Where a seccomp filter refuses the calls (QEMU's -sandbox
 * resourcecontrol=deny) and the thread did not inherit the priority from its
 * creator, it stays at normal priority: one info line says so, and the
 * threads' names let whoever starts QEMU set it from outside. */
static void background_priority(void)
{
	static atomic_flag noted = ATOMIC_FLAG_INIT;

	if (!atomic_load(&background) || hfe_thread_set_background())
		return;
	if (!atomic_flag_test_and_set(&noted))
		hfe_info("background threads run at normal priority: SCHED_BATCH and nice 10 "
			 "were refused (%s; QEMU's -sandbox resourcecontrol=deny does that): "
			 "set them from outside on the threads named \"hfe *\"",
			 strerror(errno));
}

/* Threads inherit a Linux thread's policy and nice value, so the encoder's
 * own threads (x264's slice threads, created when it opens) follow. */
static void *start_thread(void *opaque)
{
	struct start st = *(struct start *)opaque;
	free(opaque);
	/* Named in top, perf and /proc: a host can tell the export's CPU from the
	 * VM's (x264's threads inherit the name too). */
	pthread_setname_np(pthread_self(), st.name);
	background_priority();
	return st.fn(st.arg);
}

uint64_t hfe_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int hfe_worker_start(struct hfe_worker *w, void *(*fn)(void *), void *arg, const char *what,
		     struct hfe_err *err)
{
	pthread_condattr_t ca;

	w->stop = false;
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &ca);
	pthread_condattr_destroy(&ca);
	struct start *st = malloc(sizeof(*st));
	int rc = ENOMEM;
	if (st) {
		*st = (struct start){ fn, arg, "" };
		snprintf(st->name, sizeof(st->name), "hfe %s", what);
		pthread_mutex_lock(&creator_lock);
		hfe_thread_create_fn create = creator;
		void *opaque = creator_opaque;
		pthread_mutex_unlock(&creator_lock);
		rc = create ? create(&w->thread, start_thread, st, opaque)
			    : pthread_create(&w->thread, NULL, start_thread, st);
		if (rc != 0)
			free(st);
	}
	if (rc != 0) {
		hfe_err_set(err, HFE_ERR_INTERNAL, "cannot start the %s thread: %s", what,
			    strerror(rc));
		pthread_cond_destroy(&w->cond);
		pthread_mutex_destroy(&w->lock);
		return -1;
	}
	return 0;
}

void hfe_worker_signal_stop(struct hfe_worker *w)
{
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

void hfe_worker_destroy(struct hfe_worker *w)
{
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
}

void hfe_worker_stop(struct hfe_worker *w)
{
	hfe_worker_signal_stop(w);
	pthread_join(w->thread, NULL);
	hfe_worker_destroy(w);
}

bool hfe_worker_wait_until(struct hfe_worker *w, uint64_t deadline_ns)
{
	struct timespec ts = { .tv_sec = (time_t)(deadline_ns / 1000000000u),
			       .tv_nsec = (long)(deadline_ns % 1000000000u) };
	return pthread_cond_timedwait(&w->cond, &w->lock, &ts) == ETIMEDOUT;
}
