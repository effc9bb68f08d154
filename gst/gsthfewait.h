/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The one way the hfe elements wait for their host socket while another
 * thread may have to end the wait: a GstPoll holding the socket and its
 * control fd (timer mode, so that a wake-up makes the wait return instead of
 * restarting it), and a flushing flag.
 *
 *  - gst_hfe_wait_wake(): end the current (or next) wait once; the waiter
 *    re-checks its state (a keyframe request, a frame just sent...).
 *  - gst_hfe_wait_set_flushing(TRUE): every wait returns FLUSHING at once
 *    until set_flushing(FALSE) (basesrc unlock/unlock_stop, an element
 *    stopping).
 *
 * One thread waits at a time; wake and set_flushing may be called from any
 * thread. A waker changes the state the waiter looks at first (under the
 * element's lock), then wakes it; a wait consumes every pending wake-up
 * before it returns, so the waiter must look at that state after each wait.
 */
#ifndef GST_HFE_WAIT_H
#define GST_HFE_WAIT_H

#include <gst/gst.h>

G_BEGIN_DECLS

typedef struct _GstHfeWait GstHfeWait;

typedef enum {
	GST_HFE_WAIT_READY,    /* the fd is readable, closed or in error: read it */
	GST_HFE_WAIT_WOKEN,    /* gst_hfe_wait_wake(), or a signal interrupted the wait */
	GST_HFE_WAIT_TIMEOUT,  /* timeout_ms passed without either */
	GST_HFE_WAIT_FLUSHING, /* set_flushing(TRUE) is in force */
	GST_HFE_WAIT_ERROR,    /* the poll failed: errno */
} GstHfeWaitResult;

/* NULL if no file descriptor is left for the control fd. */
GstHfeWait *gst_hfe_wait_new(void);
void gst_hfe_wait_free(GstHfeWait *w);

/* Wait until fd (-1: none) is readable, a wake-up, flushing, or timeout_ms
 * (< 0: no limit). */
GstHfeWaitResult gst_hfe_wait_fd(GstHfeWait *w, int fd, gint timeout_ms);
/* NULL-safe, so a waker need not know whether the element got its GstHfeWait. */
void gst_hfe_wait_wake(GstHfeWait *w);
void gst_hfe_wait_set_flushing(GstHfeWait *w, gboolean flushing);

G_END_DECLS

#endif
