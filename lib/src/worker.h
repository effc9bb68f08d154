/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A background thread with its lock, condition variable and stop flag: the
 * shape shared by pull sessions, scanout streams and the test source. */
#ifndef HFE_WORKER_H
#define HFE_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "hfe/wire.h"

struct hfe_worker {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* waits measure CLOCK_MONOTONIC */
	bool stop;           /* under lock: the thread must return */
};

/* Initialise and start fn(arg). `what` names the thread in errors, and the
 * thread itself ("hfe WHAT", cut to 15 characters). */
int hfe_worker_start(struct hfe_worker *w, void *(*fn)(void *), void *arg, const char *what,
		     struct hfe_err *err);
/* Set stop and wake the thread (it returns after its current work). */
void hfe_worker_signal_stop(struct hfe_worker *w);
/* Release the lock and condition variable (the thread is gone). */
void hfe_worker_destroy(struct hfe_worker *w);
/* Signal stop, join the thread, destroy. */
void hfe_worker_stop(struct hfe_worker *w);
/* With the lock held: wait until signalled or CLOCK_MONOTONIC reaches
 * deadline_ns. Returns true if the deadline passed. */
bool hfe_worker_wait_until(struct hfe_worker *w, uint64_t deadline_ns);
/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t hfe_mono_ns(void);

#endif
