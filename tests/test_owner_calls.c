/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The calls an event loop makes on scanout streams and pull sessions must not
 * wait for the encoder. In the QEMU module that loop is QEMU's main loop: a
 * wait there stalls the VM. Here the real libavcodec encoder sits behind a
 * gate: its open() and encode() block until the test opens the gate, and
 * while a worker is held inside them the owner-side calls must still return
 * (checked from a helper thread with a deadline, so a regression fails
 * instead of hanging). Last, hfe_set_background_workers: the threads libhfe
 * then starts, the encoder's own included, run at background priority and
 * are named "hfe WHAT", created by the host's thread creator when it set one.
 * Streams also say whether a picture waits for the worker to take it.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "hfe/host.h"
#include "hfe/session.h"
#include "hfe/stream.h"
#include "unit_check.h"

#define DEADLINE_MS 2000 /* an owner call that takes this long is blocked */

/* ---- the gated encoder ---- */

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open = true;
static unsigned inside; /* workers currently held at the gate */

static void gate_pass(void)
{
	pthread_mutex_lock(&gate_lock);
	inside++;
	pthread_cond_broadcast(&gate_cond);
	while (!gate_open)
		pthread_cond_wait(&gate_cond, &gate_lock);
	inside--;
	pthread_mutex_unlock(&gate_lock);
}

static void gate_set(bool open)
{
	pthread_mutex_lock(&gate_lock);
	gate_open = open;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

static struct timespec deadline_in(int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

/* Wait until a worker is held at the gate. */
static bool gate_wait_inside(void)
{
	struct timespec ts = deadline_in(10000);
	bool ok = true;
	pthread_mutex_lock(&gate_lock);
	while (!inside && ok)
		ok = pthread_cond_timedwait(&gate_cond, &gate_lock, &ts) == 0;
	ok = inside > 0;
	pthread_mutex_unlock(&gate_lock);
	return ok;
}

static int gated_open(struct hfe_encoder **out, const struct hfe_encoder_params *p,
		      uint32_t hint, struct hfe_err *err)
{
	gate_pass();
	return hfe_encoder_lavc.open(out, p, hint, err);
}

static int gated_encode(struct hfe_encoder *enc, const struct hfe_image *img, int64_t index,
			bool force_idr, struct hfe_err *err)
{
	gate_pass();
	return hfe_encoder_lavc.encode(enc, img, index, force_idr, err);
}

static struct hfe_encoder_ops gated_ops;

static void gated_ops_init(void)
{
	gated_ops = hfe_encoder_lavc;
	gated_ops.backend = "gated-lavc";
	gated_ops.open = gated_open;
	gated_ops.encode = gated_encode;
}

/* ---- running an owner call against a deadline ---- */

struct call {
	void (*fn)(void *arg);
	void *arg;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
};

static void *call_thread(void *opaque)
{
	struct call *c = opaque;
	c->fn(c->arg);
	pthread_mutex_lock(&c->lock);
	c->done = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* true if fn(arg) returned within DEADLINE_MS. If it did not, the gate is
 * opened so that it can finish (the test has failed by then). */
static bool returns_promptly(void (*fn)(void *), void *arg)
{
	struct call c = { .fn = fn, .arg = arg };
	pthread_mutex_init(&c.lock, NULL);
	pthread_cond_init(&c.cond, NULL);
	pthread_t t;
	if (pthread_create(&t, NULL, call_thread, &c) != 0)
		return false;
	struct timespec ts = deadline_in(DEADLINE_MS);
	pthread_mutex_lock(&c.lock);
	while (!c.done && pthread_cond_timedwait(&c.cond, &c.lock, &ts) == 0)
		;
	bool done = c.done;
	pthread_mutex_unlock(&c.lock);
	if (!done)
		gate_set(true);
	pthread_join(t, NULL);
	pthread_cond_destroy(&c.cond);
	pthread_mutex_destroy(&c.lock);
	return done;
}

/* ---- scanout stream ---- */

#define W 320
#define H 240

static uint8_t frame[W * H * 4];

static void fill(uint8_t v)
{
	for (size_t i = 0; i < sizeof(frame); i++)
		frame[i] = (uint8_t)(v + i * 7);
}

static void stream_owner_calls(void *arg)
{
	struct hfe_stream *s = arg;
	struct hfe_stream_au *au;
	struct hfe_stream_stats st;
	hfe_stream_request_keyframe(s);
	while (hfe_stream_poll(s, &au) == 1)
		hfe_stream_au_unref(au);
	hfe_stream_get_stats(s, &st);
	(void)hfe_stream_active(s);
	hfe_stream_set_consumers(s, 1);
}

static void stream_source_update(void *arg)
{
	fill(99);
	hfe_stream_update(arg, 10, 10, 64, 32, frame + (10 * W + 10) * 4, W * 4,
			  HFE_FMT_XRGB8888);
}

static bool wait_au(struct hfe_stream *s, bool *keyframe)
{
	for (int i = 0; i < 1000; i++) {
		struct hfe_stream_au *au;
		if (hfe_stream_poll(s, &au) == 1) {
			*keyframe = au->keyframe;
			hfe_stream_au_unref(au);
			return true;
		}
		nanosleep(&(struct timespec){ 0, 5000000 }, NULL);
	}
	return false;
}

static atomic_int taken_calls;

static void count_taken(void *opaque)
{
	(void)opaque;
	atomic_fetch_add(&taken_calls, 1);
}

/* Until the worker has taken the pending picture (it does at its next slot). */
static bool wait_taken(struct hfe_stream *s)
{
	for (int i = 0; i < 1000 && hfe_stream_picture_pending(s); i++)
		nanosleep(&(struct timespec){ 0, 5000000 }, NULL);
	return !hfe_stream_picture_pending(s);
}

static void test_stream(void)
{
	struct hfe_stream_params p = { .ops = &gated_ops, .max_fps = 240,
				       .picture_taken = count_taken };
	struct hfe_err err;
	hfe_encoder_params_default(&p.enc);
	struct hfe_stream *s = hfe_stream_new(&p, &err);
	if (!CHECK(s != NULL))
		return;

	/* Held while opening the encoder (x264: milliseconds; a hardware
	 * encoder: up to a second). */
	gate_set(false);
	CHECK(hfe_stream_resize(s, W, H, &err) == 0);
	hfe_stream_set_consumers(s, 1);
	fill(1);
	hfe_stream_update(s, 0, 0, W, H, frame, W * 4, HFE_FMT_XRGB8888);
	CHECKC(gate_wait_inside(), "the worker opens the encoder");
	CHECKC(returns_promptly(stream_owner_calls, s), "owner calls during encoder open");
	CHECKC(returns_promptly(stream_source_update, s), "source update during encoder open");
	gate_set(true);
	bool key = false;
	CHECKC(wait_au(s, &key), "an access unit after the open");
	CHECK(key);

	/* Held inside encode(). */
	gate_set(false);
	int taken0 = atomic_load(&taken_calls);
	fill(50);
	hfe_stream_update(s, 0, 0, W, H, frame, W * 4, HFE_FMT_XRGB8888);
	CHECKC(gate_wait_inside(), "the worker encodes");
	CHECKC(!hfe_stream_picture_pending(s), "the picture being encoded counts as taken");
	/* A source that waits for it (the module's GL read-back) starts the
	 * next picture while this one encodes. */
	CHECKC(atomic_load(&taken_calls) == taken0 + 1,
	       "picture_taken once the worker has taken the picture, before its encode ends");
	CHECKC(returns_promptly(stream_owner_calls, s), "owner calls during encode");
	CHECKC(returns_promptly(stream_source_update, s), "source update during encode");
	CHECKC(hfe_stream_picture_pending(s), "a picture the busy worker has not taken is pending");
	gate_set(true);
	CHECKC(wait_au(s, &key), "an access unit after the encode");
	CHECKC(wait_taken(s), "the pending picture is taken once the encode is done");
	CHECKC(atomic_load(&taken_calls) == taken0 + 2, "picture_taken for the second picture too");

	/* A resize while the worker is held: the stale picture is skipped and
	 * the stream goes on at the new size with an IDR. */
	gate_set(false);
	fill(70);
	hfe_stream_update(s, 0, 0, W, H, frame, W * 4, HFE_FMT_XRGB8888);
	CHECK(gate_wait_inside());
	CHECK(hfe_stream_resize(s, W / 2, H / 2, &err) == 0);
	hfe_stream_update(s, 0, 0, W / 2, H / 2, frame, W * 4, HFE_FMT_XRGB8888);
	gate_set(true);
	bool got_idr = false;
	for (int i = 0; i < 4 && !got_idr; i++) {
		struct hfe_stream_au *au = NULL;
		for (int k = 0; k < 400 && hfe_stream_poll(s, &au) != 1; k++)
			nanosleep(&(struct timespec){ 0, 5000000 }, NULL);
		if (!au)
			break;
		if (au->keyframe && au->width == W / 2 && au->height == H / 2)
			got_idr = true;
		hfe_stream_au_unref(au);
	}
	CHECKC(got_idr, "an IDR at the new size after a resize during encode");

	/* Nobody would take a picture without consumers: none is pending. */
	hfe_stream_set_consumers(s, 0);
	fill(80);
	hfe_stream_update(s, 0, 0, W / 2, H / 2, frame, W * 4, HFE_FMT_XRGB8888);
	CHECKC(!hfe_stream_picture_pending(s), "no picture is pending without consumers");
	hfe_stream_free(s);
}

/* ---- pull session ---- */

static atomic_int released, notified;
static atomic_bool detach_done;

static void count_release(void *opaque)
{
	(void)opaque;
	atomic_fetch_add(&released, 1);
}

static void count_notify(void *opaque)
{
	(void)opaque;
	/* Nothing may reach the owner once hfe_session_detach returned. */
	if (atomic_load(&detach_done))
		atomic_fetch_add(&notified, 1);
}

static void do_detach(void *arg)
{
	hfe_session_detach(arg);
	atomic_store(&detach_done, true);
}

static void test_session_detach(void)
{
	struct hfe_session_params p = { .ops = &gated_ops, .max_inflight = 4,
					.notify = count_notify };
	struct hfe_err err;
	hfe_encoder_params_default(&p.enc);
	struct hfe_session *s = hfe_session_new(&p, &err);
	if (!CHECK(s != NULL))
		return;
	struct hfe_frame_request fr = { .format = HFE_FMT_XRGB8888, .width = W, .height = H,
					.stride = W * 4 };
	uint8_t *px = malloc(sizeof(frame));
	fill(3);
	memcpy(px, frame, sizeof(frame));

	gate_set(false);
	for (int i = 0; i < 3; i++) {
		fr.pts = i;
		CHECK(hfe_session_submit_frame(s, 1, &fr, px, count_release, NULL, false) == 0);
	}
	CHECKC(gate_wait_inside(), "the worker opens the encoder for frame 0");
	CHECKC(returns_promptly(do_detach, s), "hfe_session_detach while the worker is busy");
	CHECKC(atomic_load(&released) == 0, "the busy job still holds its pixels");
	gate_set(true);
	hfe_session_wait_detached();
	CHECKC(atomic_load(&released) == 3, "every job's pixels released by the worker");
	CHECKC(atomic_load(&notified) == 0, "no notify after detach");
	free(px);
}

/* The process's thread ids, up to max; returns how many. */
static unsigned list_threads(pid_t *tids, unsigned max)
{
	unsigned n = 0;
	DIR *d = opendir("/proc/self/task");

	for (struct dirent *e; d && (e = readdir(d));) {
		pid_t tid = (pid_t)atoi(e->d_name);
		if (tid > 0 && n < max)
			tids[n++] = tid;
	}
	if (d)
		closedir(d);
	return n;
}

/* SCHED_BATCH at nice 10, or lower still (a suite run under nice). */
static bool is_background(pid_t tid)
{
	errno = 0;
	int nice = getpriority(PRIO_PROCESS, (id_t)tid);
	return sched_getscheduler(tid) == SCHED_BATCH && nice >= 10 && !errno;
}

/* A host's thread creator (hfe_set_thread_creator): counts the threads. */
static atomic_int created;

static int counting_create(pthread_t *t, void *(*fn)(void *), void *arg, void *opaque)
{
	atomic_fetch_add((atomic_int *)opaque, 1);
	return pthread_create(t, NULL, fn, arg);
}

static bool has_name(pid_t tid, const char *name)
{
	char path[64], comm[32] = "";
	snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)tid);
	FILE *f = fopen(path, "r");
	if (f) {
		if (!fgets(comm, sizeof(comm), f))
			comm[0] = '\0';
		fclose(f);
	}
	comm[strcspn(comm, "\n")] = '\0';
	return !strcmp(comm, name);
}

/* With background workers on, every thread libhfe starts — the stream's
 * worker and the encoder's own threads — is SCHED_BATCH at nice 10 and named
 * "hfe stream"; the calling (main) thread is left alone. Runs last: the
 * setting is global. Threads that were there before the stream (only this one natively; under
 * qemu-user also the emulator's own) are not libhfe's and are not counted. */
static void test_background_workers(void)
{
	pid_t before[64], now[64];
	unsigned nbefore = list_threads(before, 64);
	int own_nice = getpriority(PRIO_PROCESS, 0); /* 0, or what `nice` started us at */

	hfe_set_background_workers(true);
	hfe_set_thread_creator(counting_create, &created);
	struct hfe_stream_params p = { .max_fps = 60 };
	struct hfe_err err;
	hfe_encoder_params_default(&p.enc);
	p.enc.threads = 2; /* x264 slice threads, created by the worker */
	struct hfe_stream *s = hfe_stream_new(&p, &err);
	if (!CHECK(s != NULL))
		return;
	CHECK(hfe_stream_resize(s, W, H, &err) == 0);
	hfe_stream_set_consumers(s, 1);
	fill(5);
	hfe_stream_update(s, 0, 0, W, H, frame, W * 4, HFE_FMT_XRGB8888);
	bool key;
	CHECKC(wait_au(s, &key), "the background stream encodes");

	unsigned others = 0, background = 0, named = 0, nnow = list_threads(now, 64);
	for (unsigned i = 0; i < nnow; i++) {
		bool old = false;
		for (unsigned j = 0; j < nbefore; j++)
			old |= now[i] == before[j];
		if (old)
			continue;
		others++;
		background += is_background(now[i]);
		named += has_name(now[i], "hfe stream");
	}
	char ctx[96];
	snprintf(ctx, sizeof(ctx), "%u of %u threads are SCHED_BATCH, nice 10", background, others);
	CHECKC(others >= 2 && background == others, ctx);
	snprintf(ctx, sizeof(ctx), "%u of %u threads are named \"hfe stream\"", named, others);
	CHECKC(named == others, ctx);
	CHECKC(sched_getscheduler(0) == SCHED_OTHER && getpriority(PRIO_PROCESS, 0) == own_nice,
	       "the calling thread keeps its policy and nice value");
	snprintf(ctx, sizeof(ctx), "the host's creator started %d thread(s), want 1 (the "
		 "stream's worker)", atomic_load(&created));
	CHECKC(atomic_load(&created) == 1, ctx);
	hfe_set_thread_creator(NULL, NULL);
	hfe_stream_free(s);
}

int main(void)
{
	gated_ops_init();
	test_stream();
	test_session_detach();
	test_background_workers();
	return check_finish("test_owner_calls");
}
