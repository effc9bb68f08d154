/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A host socket waited on together with wake-ups and flushing; see gsthfewait.h. */
#include "gsthfewait.h"

#include <errno.h>

struct _GstHfeWait {
	GstPoll *poll;
	GstPollFD fd; /* the socket now in the set; fd.fd = -1: none */
	gint flushing; /* atomic; a timer GstPoll has no flushing state of its own */
};

GstHfeWait *gst_hfe_wait_new(void)
{
	/* Timer mode: gst_poll_write_control() makes gst_poll_wait() return
	 * (a controllable poll would swallow it and restart, and timer polls
	 * refuse gst_poll_set_flushing(): flushing is kept here). */
	GstPoll *poll = gst_poll_new_timer();
	if (!poll)
		return NULL;
	GstHfeWait *w = g_new0(GstHfeWait, 1);
	w->poll = poll;
	gst_poll_fd_init(&w->fd);
	return w;
}

void gst_hfe_wait_free(GstHfeWait *w)
{
	if (!w)
		return;
	gst_poll_free(w->poll);
	g_free(w);
}

static void watch(GstHfeWait *w, int fd)
{
	if (w->fd.fd == fd)
		return;
	if (w->fd.fd >= 0)
		gst_poll_remove_fd(w->poll, &w->fd);
	gst_poll_fd_init(&w->fd);
	if (fd >= 0) {
		w->fd.fd = fd;
		gst_poll_add_fd(w->poll, &w->fd);
		gst_poll_fd_ctl_read(w->poll, &w->fd, TRUE);
	}
}

GstHfeWaitResult gst_hfe_wait_fd(GstHfeWait *w, int fd, gint timeout_ms)
{
	GstClockTime t = timeout_ms < 0 ? GST_CLOCK_TIME_NONE : (GstClockTime)timeout_ms * GST_MSECOND;
	GstHfeWaitResult res;

	watch(w, fd);
	/* set_flushing(TRUE) after this check still ends the wait: its wake-up
	 * stays pending until read. */
	int n = g_atomic_int_get(&w->flushing) ? -1 : gst_poll_wait(w->poll, t);
	int saved = errno;
	if (g_atomic_int_get(&w->flushing))
		res = GST_HFE_WAIT_FLUSHING;
	else if (n < 0)
		res = saved == EINTR || saved == EAGAIN ? GST_HFE_WAIT_WOKEN : GST_HFE_WAIT_ERROR;
	else if (n == 0)
		res = GST_HFE_WAIT_TIMEOUT;
	else if (fd >= 0 && (gst_poll_fd_can_read(w->poll, &w->fd) ||
			     gst_poll_fd_has_closed(w->poll, &w->fd) ||
			     gst_poll_fd_has_error(w->poll, &w->fd)))
		res = GST_HFE_WAIT_READY;
	else
		res = GST_HFE_WAIT_WOKEN;
	/* Consume every wake-up (set_flushing(TRUE)'s too): the caller looks at
	 * its state next, which covers them all. */
	while (gst_poll_read_control(w->poll))
		;
	errno = saved;
	return res;
}

void gst_hfe_wait_wake(GstHfeWait *w)
{
	if (w && !gst_poll_write_control(w->poll))
		GST_WARNING("could not wake a waiting thread: %s", g_strerror(errno));
}

void gst_hfe_wait_set_flushing(GstHfeWait *w, gboolean flushing)
{
	if (!w)
		return;
	g_atomic_int_set(&w->flushing, flushing ? 1 : 0);
	if (flushing)
		gst_hfe_wait_wake(w);
}
