/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Check suite of gst/gsthfewait.c, the wait both hfe elements use for their
 * host socket: a wait ends when the fd is readable or closed, on a wake-up
 * from another thread (once per wake-up, pending ones consumed), at once
 * while flushing, and at its timeout. Driven with a socketpair; a thread
 * plays the element's other threads.
 */
#include <sys/socket.h>
#include <unistd.h>

#include <gst/check/gstcheck.h>

#include "gsthfewait.h"

#define LONG_MS 3000 /* a wait the test must never sit out */

static GstHfeWait *w;
static int sp[2];

static void setup(void)
{
	w = gst_hfe_wait_new();
	fail_unless(w != NULL);
	fail_unless(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
}

static void teardown(void)
{
	gst_hfe_wait_free(w);
	close(sp[0]);
	if (sp[1] >= 0)
		close(sp[1]);
}

/* gst_hfe_wait_fd(w, sp[0], LONG_MS), returning its result and the time
 * it took in *ms. */
static GstHfeWaitResult timed_wait(gint64 *ms)
{
	gint64 t0 = g_get_monotonic_time();
	GstHfeWaitResult r = gst_hfe_wait_fd(w, sp[0], LONG_MS);
	*ms = (g_get_monotonic_time() - t0) / 1000;
	return r;
}

GST_START_TEST(test_wait_times_out)
{
	gint64 t0 = g_get_monotonic_time();
	fail_unless_equals_int(gst_hfe_wait_fd(w, sp[0], 50), GST_HFE_WAIT_TIMEOUT);
	fail_unless((g_get_monotonic_time() - t0) / 1000 >= 45);
}
GST_END_TEST;

GST_START_TEST(test_wait_fd_readable)
{
	gint64 ms;
	fail_unless(write(sp[1], "x", 1) == 1);
	fail_unless_equals_int(timed_wait(&ms), GST_HFE_WAIT_READY);
	fail_unless(ms < 1000);
}
GST_END_TEST;

GST_START_TEST(test_wait_fd_closed)
{
	gint64 ms;
	close(sp[1]);
	sp[1] = -1;
	fail_unless_equals_int(timed_wait(&ms), GST_HFE_WAIT_READY);
	fail_unless(ms < 1000);
}
GST_END_TEST;

/* The fd can change between waits (vsockenc reconnects) or be none. */
GST_START_TEST(test_wait_fd_changes)
{
	int other[2];
	fail_unless(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, other) == 0);
	fail_unless_equals_int(gst_hfe_wait_fd(w, sp[0], 10), GST_HFE_WAIT_TIMEOUT);
	fail_unless(write(other[1], "x", 1) == 1);
	fail_unless_equals_int(gst_hfe_wait_fd(w, other[0], LONG_MS), GST_HFE_WAIT_READY);
	/* No fd: the readable socket no longer counts. */
	fail_unless_equals_int(gst_hfe_wait_fd(w, -1, 10), GST_HFE_WAIT_TIMEOUT);
	close(other[0]);
	close(other[1]);
}
GST_END_TEST;

static gpointer wake_later(gpointer data)
{
	g_usleep(100000);
	if (data)
		gst_hfe_wait_set_flushing(w, TRUE);
	else
		gst_hfe_wait_wake(w);
	return NULL;
}

/* A keyframe request or a frame sent: the waiter returns to look. */
GST_START_TEST(test_wake_ends_wait)
{
	gint64 ms;
	GThread *t = g_thread_new("waker", wake_later, NULL);
	fail_unless_equals_int(timed_wait(&ms), GST_HFE_WAIT_WOKEN);
	g_thread_join(t);
	fail_unless(ms < 1500, "woken after %" G_GINT64_FORMAT " ms", ms);
}
GST_END_TEST;

/* Wake-ups before the wait end it once; the wait consumes all of them. */
GST_START_TEST(test_wakes_consumed)
{
	gst_hfe_wait_wake(w);
	gst_hfe_wait_wake(w);
	fail_unless_equals_int(gst_hfe_wait_fd(w, sp[0], LONG_MS), GST_HFE_WAIT_WOKEN);
	fail_unless_equals_int(gst_hfe_wait_fd(w, sp[0], 20), GST_HFE_WAIT_TIMEOUT);
}
GST_END_TEST;

/* unlock() / stop: a blocked wait returns FLUSHING, and so does every wait
 * until flushing ends; then waits block again. */
GST_START_TEST(test_flushing_ends_wait)
{
	gint64 ms;
	GThread *t = g_thread_new("unlock", wake_later, GINT_TO_POINTER(1));
	fail_unless_equals_int(timed_wait(&ms), GST_HFE_WAIT_FLUSHING);
	g_thread_join(t);
	fail_unless(ms < 1500, "released after %" G_GINT64_FORMAT " ms", ms);
	fail_unless_equals_int(gst_hfe_wait_fd(w, sp[0], LONG_MS), GST_HFE_WAIT_FLUSHING);

	gst_hfe_wait_set_flushing(w, FALSE);
	/* At most one spurious wake-up left by the flush, then a real wait. */
	GstHfeWaitResult r = gst_hfe_wait_fd(w, sp[0], 20);
	fail_unless(r == GST_HFE_WAIT_TIMEOUT || r == GST_HFE_WAIT_WOKEN);
	fail_unless_equals_int(gst_hfe_wait_fd(w, sp[0], 20), GST_HFE_WAIT_TIMEOUT);
}
GST_END_TEST;

/* Wakers need not check whether the element has a GstHfeWait. */
GST_START_TEST(test_null_safe)
{
	gst_hfe_wait_wake(NULL);
	gst_hfe_wait_set_flushing(NULL, TRUE);
	gst_hfe_wait_free(NULL);
}
GST_END_TEST;

static Suite *hfewait_suite(void)
{
	Suite *s = suite_create("hfewait");
	TCase *tc = tcase_create("wait");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_wait_times_out);
	tcase_add_test(tc, test_wait_fd_readable);
	tcase_add_test(tc, test_wait_fd_closed);
	tcase_add_test(tc, test_wait_fd_changes);
	tcase_add_test(tc, test_wake_ends_wait);
	tcase_add_test(tc, test_wakes_consumed);
	tcase_add_test(tc, test_flushing_ends_wait);
	tcase_add_test(tc, test_null_safe);
	suite_add_tcase(s, tc);
	return s;
}

GST_CHECK_MAIN(hfewait);
