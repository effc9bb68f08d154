/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared by the vsockenc check suites; see vsocktest.c. */
#ifndef HFE_VSOCKTEST_H
#define HFE_VSOCKTEST_H

#include <stdbool.h>

#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gst/video/video.h>

#include "gsttest.h"
#include "test_util.h"

#define FRAME_NS (GST_SECOND / 30)
#define MIN_PSNR 35.0

/* ---- fixture (tcase_add_checked_fixture: runs in each test's process) ---- */

extern char *vt_dir;                    /* this test's temporary directory */
extern struct gsttest_daemon vt_daemon; /* the main daemon (vt_setup only) */
/* vt_dir and the main daemon (limits 1920x1088), started. */
void vt_setup(void);
/* vt_dir only, for tests that start daemons of their own. */
void vt_setup_dir(void);
/* Stops the main daemon and removes vt_dir (only after a passing test). */
void vt_teardown(void);

/* ---- frames ---- */

/* Frame n of the test pattern in the layout `info` describes, PTS n frames;
 * `meta` adds a GstVideoMeta (needed when info is not the default layout).
 * ref (optional) gets the reference I420 picture. */
GstBuffer *make_frame(const GstVideoInfo *info, gboolean meta, guint n, struct tu_yuv *ref);
/* Default layout of f at w x h, 30 fps. */
void info_for(GstVideoInfo *info, GstVideoFormat f, guint w, guint h);

/* ---- the harness ---- */

/* vsockenc with address and "name", "value" property pairs (NULL-ended),
 * on its own bus, started (PLAYING). */
GstHarness *enc_new(const char *addr, GstBus **bus, ...) G_GNUC_NULL_TERMINATED;
void enc_free(GstHarness *h, GstBus *bus);
/* Announce f at w x hh on the harness (set_format: and describe it in info). */
void set_caps(GstHarness *h, GstVideoFormat f, guint w, guint hh);
void set_format(GstHarness *h, GstVideoInfo *info, GstVideoFormat f, guint w, guint hh);
/* Push frames first..first+n-1 of info; refs (optional, indexed by frame)
 * get the references. Stops at the first flow that is not OK. */
GstFlowReturn push_frames(GstHarness *h, const GstVideoInfo *info, guint first, guint n,
			  struct tu_yuv *refs);
bool push_eos(GstHarness *h);
/* Every output buffer still queued in the harness, appended to out. */
void pull_all(GstHarness *h, GPtrArray *out);
/* Wait until at least n buffers have come out (up to timeout_ms). */
bool wait_out(GstHarness *h, guint n, int timeout_ms);

/* ---- output buffers ---- */

/* NAL scan of a buffer (nals point into it: keep the buffer). */
bool buf_nals(GstBuffer *b, struct tu_nals *nals);
bool is_key(GstBuffer *b);
/* Decode bufs in order with one decoder: every buffer must give a picture;
 * refs[i] is the reference of the frame with PTS i * FRAME_NS (refs NULL or
 * refs[i].y NULL: no PSNR check), worst plane PSNR >= MIN_PSNR. Returns the
 * number of pictures; last_w/last_h (optional) get the last picture's size. */
int decode_all(GPtrArray *bufs, struct tu_yuv *refs, guint nrefs, const char *what,
	       uint32_t *last_w, uint32_t *last_h);
/* The PTS (in frames) of the keyframes, "0,10,20"; checks flags vs NALs. */
void keyframes_of(GPtrArray *bufs, GString *out);
/* Average size of buffers from..to-1. */
double avg_size(GPtrArray *bufs, guint from, guint to);
GPtrArray *new_bufs(void);
void free_bufs(GPtrArray *bufs);
void free_refs(struct tu_yuv *refs, guint n);

/* ---- bus ---- */

/* The first message of `types` on bus within timeout_ms, or NULL. */
GstMessage *bus_wait(GstBus *bus, GstMessageType types, int timeout_ms);
/* "message | debug" of an error/warning/info message (g_free it). */
char *msg_text(GstMessage *m, GQuark *domain, gint *code);
/* msg_text of the first message of `types` within timeout_ms, or NULL. */
char *bus_wait_text(GstBus *bus, GstMessageType types, int timeout_ms, GQuark *domain,
		    gint *code);

#endif
