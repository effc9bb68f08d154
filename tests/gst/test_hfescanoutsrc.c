/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfescanoutsrc against the real daemon serving test scanouts (libhfe's
 * moving test source):
 *   - scanout 0 (640x480, 30 fps) through h264parse ! avdec_h264 ! appsink:
 *     caps, first buffer an IDR with SPS/PPS, keyframe flags agree with the
 *     bitstream, timestamps increase, >= 30 decoded frames, and the decoded
 *     background matches hfe_testsrc_render's (PSNR on corner patches);
 *   - force-key-unit upstream (from the sink) and downstream (sent to the
 *     source) each bring an IDR soon (the daemon runs with --gop 0, so only
 *     requests make IDRs);
 *   - pause and resume: the backlog is dropped, the stream resumes with an IDR;
 *   - scanout 1 (250x130, static): caps from an SPS with cropping, and
 *     set_state(NULL) while the element waits for data returns at once;
 *   - scanout 7 (absent): a bus error naming scanout 7, no hang;
 *   - a hostile host sending truncated and corrupted SPS: a clean error or
 *     the right caps, nothing out of bounds;
 *   - keep-alive: a quiet host is pinged, a hung one (SIGSTOP) is an error;
 *   - the daemon killed mid-stream: a bus error naming the address.
 *
 * Needs HFE_DAEMON (the daemon binary) and GST_PLUGIN_PATH (the plugin).
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <string.h>
#include <unistd.h>

#include <gst/check/gstcheck.h>
#include <gst/video/video.h>

#include "hfe/addr.h"
#include "hfe/client.h"
#include "gsttest.h"
#include "hfe/testsrc.h"
#include "test_util.h"

#define W 640
#define H 480
#define STATIC_W 250 /* not a multiple of 16: the SPS carries a crop window */
#define STATIC_H 130
#define MIN_FRAMES 30
#define PATCH 48

static char sock_addr[300];
static pid_t daemon_pid = -1;

/* SPS and PPS of the real stream (first IDR seen), for the hostile host. */
static guint8 real_sps[256], real_pps[64];
static gsize real_sps_len, real_pps_len;

/* ---- what the source pad saw ---- */

struct seen {
	GMutex lock;
	guint buffers;
	guint keyframes;
	guint flag_mismatch;  /* DELTA_UNIT flag disagreeing with the NAL types */
	guint pts_invalid, pts_not_increasing;
	GstClockTime last_pts;
	gboolean first_ok;    /* first buffer: keyframe with SPS, PPS and IDR */
	gboolean first_seen;
	guint last_key_index; /* index of the newest keyframe */
	guint fku_events;     /* downstream force-key-unit events pushed */
	guint fku_event_index; /* buffer count when the last one was pushed */
	guint width, height;  /* from the caps */
};

static void seen_init(struct seen *s)
{
	memset(s, 0, sizeof(*s));
	g_mutex_init(&s->lock);
	s->last_pts = GST_CLOCK_TIME_NONE;
}

static GstPadProbeReturn src_probe(GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
	struct seen *s = data;
	(void)pad;

	g_mutex_lock(&s->lock);
	if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
		GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
		GstMapInfo map;
		struct tu_nals nals;
		gboolean key = !GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_DELTA_UNIT);
		gboolean idr = FALSE, sps = FALSE, pps = FALSE;

		if (gst_buffer_map(buf, &map, GST_MAP_READ)) {
			if (tu_nal_parse(map.data, map.size, &nals) > 0) {
				idr = nals.has_idr;
				sps = nals.has_sps;
				pps = nals.has_pps;
				int i = tu_nal_find(&nals, TU_NAL_SPS), j = tu_nal_find(&nals, TU_NAL_PPS);
				if (!real_sps_len && i >= 0 && j >= 0 &&
				    nals.len[i] <= sizeof(real_sps) && nals.len[j] <= sizeof(real_pps)) {
					memcpy(real_sps, nals.data[i], nals.len[i]);
					real_sps_len = nals.len[i];
					memcpy(real_pps, nals.data[j], nals.len[j]);
					real_pps_len = nals.len[j];
				}
			}
			gst_buffer_unmap(buf, &map);
		}
		if (key != idr)
			s->flag_mismatch++;
		if (!s->first_seen) {
			s->first_seen = TRUE;
			s->first_ok = key && idr && sps && pps;
		}
		GstClockTime pts = GST_BUFFER_PTS(buf);
		if (!GST_CLOCK_TIME_IS_VALID(pts))
			s->pts_invalid++;
		else if (GST_CLOCK_TIME_IS_VALID(s->last_pts) && pts <= s->last_pts)
			s->pts_not_increasing++;
		s->last_pts = pts;
		if (key) {
			s->keyframes++;
			s->last_key_index = s->buffers;
		}
		s->buffers++;
	} else if (info->type & GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM) {
		GstEvent *ev = GST_PAD_PROBE_INFO_EVENT(info);
		if (gst_video_event_is_force_key_unit(ev)) {
			s->fku_events++;
			s->fku_event_index = s->buffers;
		} else if (GST_EVENT_TYPE(ev) == GST_EVENT_CAPS) {
			GstCaps *caps;
			gst_event_parse_caps(ev, &caps);
			GstStructure *st = gst_caps_get_structure(caps, 0);
			gint w = 0, h = 0;
			gst_structure_get_int(st, "width", &w);
			gst_structure_get_int(st, "height", &h);
			s->width = (guint)w;
			s->height = (guint)h;
		}
	}
	g_mutex_unlock(&s->lock);
	return GST_PAD_PROBE_OK;
}

static void watch_src(GstElement *pipeline, struct seen *s)
{
	GstElement *src = gst_bin_get_by_name(GST_BIN(pipeline), "src");
	REQUIRE(src);
	GstPad *pad = gst_element_get_static_pad(src, "src");
	gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM,
			  src_probe, s, NULL);
	gst_object_unref(pad);
	gst_object_unref(src);
}

static guint seen_buffers(struct seen *s)
{
	g_mutex_lock(&s->lock);
	guint n = s->buffers;
	g_mutex_unlock(&s->lock);
	return n;
}

/* Wait until the source pushed `n` buffers; FALSE on timeout. */
static gboolean wait_buffers(struct seen *s, guint n, guint timeout_ms)
{
	guint64 end = tu_now_ns() + (guint64)timeout_ms * 1000000;
	while (seen_buffers(s) < n) {
		if (tu_now_ns() > end)
			return FALSE;
		g_usleep(5000);
	}
	return TRUE;
}

/* The pipeline of the printf-style description (the test cannot go on
 * without it); s (optional) watches the pad of its element named "src". */
static GstElement *launch(struct seen *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static GstElement *launch(struct seen *s, const char *fmt, ...)
{
	va_list ap;
	GError *gerr = NULL;

	va_start(ap, fmt);
	gchar *desc = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	GstElement *p = gst_parse_launch(desc, &gerr);
	if (!p) {
		fprintf(stderr, "cannot build '%s': %s\n", desc, gerr ? gerr->message : "?");
		g_clear_error(&gerr);
	}
	g_free(desc);
	REQUIRE(p);
	if (s) {
		seen_init(s);
		watch_src(p, s);
	}
	return p;
}

/* The first ERROR on the bus within timeout_ms, as "message | debug" (g_free),
 * or NULL. */
static gchar *wait_error(GstElement *pipeline, guint timeout_ms)
{
	GstBus *bus = gst_element_get_bus(pipeline);
	GstMessage *m = gst_bus_timed_pop_filtered(bus, (GstClockTime)timeout_ms * GST_MSECOND,
						   GST_MESSAGE_ERROR);
	gchar *out = NULL;
	if (m) {
		GError *gerr = NULL;
		gchar *dbg = NULL;
		gst_message_parse_error(m, &gerr, &dbg);
		out = g_strdup_printf("%s | %s", gerr->message, dbg ? dbg : "");
		g_clear_error(&gerr);
		g_free(dbg);
		gst_message_unref(m);
	}
	gst_object_unref(bus);
	return out;
}

static void stop_pipeline(GstElement *p)
{
	gst_element_set_state(p, GST_STATE_NULL);
	gst_object_unref(p);
}

/* ---- reference picture ---- */

/* The test source's background as Y (BT.601 limited, independent formula). */
static struct tu_yuv reference;

static void make_reference(void)
{
	guint8 *bgrx = g_malloc((gsize)W * 4 * H), *rgb = g_malloc((gsize)W * 3 * H);
	hfe_testsrc_render(bgrx, W * 4, W, H, 0);
	for (gsize i = 0; i < (gsize)W * H; i++) {
		rgb[i * 3 + 0] = bgrx[i * 4 + 2];
		rgb[i * 3 + 1] = bgrx[i * 4 + 1];
		rgb[i * 3 + 2] = bgrx[i * 4 + 0];
	}
	tu_ref_rgb_to_yuv(rgb, W, H, &reference);
	g_free(bgrx);
	g_free(rgb);
}

/*
 * Compare three corner patches away from the counter (top left) with the
 * reference. The 64x64 box can cover at most one of them at a time, so the
 * second best of the three PSNRs is background for sure.
 */
static double background_psnr(const guint8 *y, gsize stride, double all[3])
{
	static const guint corner[3][2] = { { W - PATCH, 0 }, { 0, H - PATCH },
					    { W - PATCH, H - PATCH } };
	for (int i = 0; i < 3; i++) {
		gsize x = corner[i][0], yy = corner[i][1];
		all[i] = tu_psnr_plane(y + yy * stride + x, stride,
				       reference.y + yy * reference.w + x, reference.w, PATCH, PATCH);
	}
	double a = all[0], b = all[1], c = all[2];
	/* median */
	if ((a >= b && a <= c) || (a <= b && a >= c))
		return a;
	if ((b >= a && b <= c) || (b <= a && b >= c))
		return b;
	return c;
}

/* ---- daemon ---- */

static gboolean daemon_ready(void)
{
	for (int i = 0; i < 200; i++) {
		struct hfe_err err;
		struct hfe_client *c = hfe_client_connect(sock_addr, 100, &err);
		if (c) {
			hfe_client_close(c);
			return TRUE;
		}
		g_usleep(20000);
	}
	return FALSE;
}

static pid_t start_daemon(const char *dir)
{
	const char *exe = getenv("HFE_DAEMON");
	if (!exe) {
		fprintf(stderr, "HFE_DAEMON is not set (path of helix-frame-export)\n");
		return -1;
	}
	char listen[300], log[300];
	snprintf(sock_addr, sizeof(sock_addr), "unix:%s/hfe.sock", dir);
	snprintf(listen, sizeof(listen), "%s", sock_addr);
	snprintf(log, sizeof(log), "%s/daemon.log", dir);
	char s0[64], s1[64];
	snprintf(s0, sizeof(s0), "0:%ux%u@30", W, H);
	snprintf(s1, sizeof(s1), "1:%ux%u@0", STATIC_W, STATIC_H);
	const char *argv[] = { exe, "--listen", listen, "--test-scanout", s0, "--test-scanout", s1,
			       "--gop", "0", NULL };
	pid_t pid = fork();
	if (pid == 0) {
		/* Gone with the test, even when it crashes or exits early. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(exe, (char *const *)argv);
		_exit(127);
	}
	if (pid > 0 && !daemon_ready()) {
		tu_kill_wait(pid, SIGKILL, 1000);
		return -1;
	}
	return pid;
}

/* ---- tests ---- */

static void pull_frames(GstElement *sink, guint n, guint *got, double *worst_psnr,
			double *min_mean_y, guint *pts_bad, guint *size_bad, const char *label)
{
	GstClockTime last = GST_CLOCK_TIME_NONE;
	*got = 0;
	*worst_psnr = 1000;
	*min_mean_y = 255;
	*pts_bad = *size_bad = 0;
	for (guint i = 0; i < n; i++) {
		GstSample *sample = NULL;
		g_signal_emit_by_name(sink, "try-pull-sample", (guint64)(5 * GST_SECOND), &sample);
		if (!sample)
			break;
		GstVideoInfo vi;
		GstBuffer *buf = gst_sample_get_buffer(sample);
		GstVideoFrame f;
		if (!gst_video_info_from_caps(&vi, gst_sample_get_caps(sample)) ||
		    GST_VIDEO_INFO_WIDTH(&vi) != W || GST_VIDEO_INFO_HEIGHT(&vi) != H ||
		    GST_VIDEO_INFO_FORMAT(&vi) != GST_VIDEO_FORMAT_I420) {
			(*size_bad)++;
		} else if (gst_video_frame_map(&f, &vi, buf, GST_MAP_READ)) {
			const guint8 *y = GST_VIDEO_FRAME_PLANE_DATA(&f, 0);
			gsize stride = (gsize)GST_VIDEO_FRAME_PLANE_STRIDE(&f, 0);
			double all[3], p = background_psnr(y, stride, all);
			if (p < *worst_psnr)
				*worst_psnr = p;
			if (i == 0 && label)
				printf("  %s: corner PSNR %.1f / %.1f / %.1f dB\n", label, all[0],
				       all[1], all[2]);
			guint64 sum = 0;
			for (guint r = 0; r < H; r++)
				for (guint c = 0; c < W; c++)
					sum += y[r * stride + c];
			double mean = (double)sum / (W * H);
			if (mean < *min_mean_y)
				*min_mean_y = mean;
			gst_video_frame_unmap(&f);
		}
		GstClockTime pts = GST_BUFFER_PTS(buf);
		if (!GST_CLOCK_TIME_IS_VALID(pts) ||
		    (GST_CLOCK_TIME_IS_VALID(last) && pts <= last))
			(*pts_bad)++;
		last = pts;
		(*got)++;
		gst_sample_unref(sample);
	}
}

/* After a force-key-unit request made when `before` buffers had passed:
 * the index of the first keyframe after it, or -1 within timeout. */
static int keyframe_after(struct seen *s, guint before, guint timeout_ms)
{
	guint64 end = tu_now_ns() + (guint64)timeout_ms * 1000000;
	for (;;) {
		g_mutex_lock(&s->lock);
		gboolean got = s->keyframes > 0 && s->last_key_index >= before;
		int idx = (int)s->last_key_index;
		g_mutex_unlock(&s->lock);
		if (got)
			return idx;
		if (tu_now_ns() > end)
			return -1;
		g_usleep(5000);
	}
}

static void test_stream(void)
{
	printf("scanout 0: decode, keyframes, timestamps, background\n");
	struct seen s;
	GstElement *p = launch(&s,
		"hfescanoutsrc name=src address=%s scanout=0 bitrate=3000 ! h264parse ! "
		"avdec_h264 ! video/x-raw,format=I420 ! appsink name=sink sync=false "
		"max-buffers=5 drop=true",
		sock_addr);
	GstElement *sink = gst_bin_get_by_name(GST_BIN(p), "sink");
	REQUIRE(sink);

	CHECK(gst_element_set_state(p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
	guint got, pts_bad, size_bad;
	double psnr, mean_y;
	pull_frames(sink, MIN_FRAMES + 10, &got, &psnr, &mean_y, &pts_bad, &size_bad,
		    "first decoded frame");
	printf("  decoded %u frames, worst background PSNR %.1f dB, darkest mean Y %.1f\n", got,
	       psnr, mean_y);
	CHECKF(got >= MIN_FRAMES, "decoded %u frames, want >= %u", got, MIN_FRAMES);
	CHECKF(size_bad == 0, "%u frames not 640x480 I420", size_bad);
	CHECKF(pts_bad == 0, "%u decoded frames without increasing PTS", pts_bad);
	CHECKF(psnr >= 35.0, "background PSNR %.2f dB < 35", psnr);
	CHECKF(mean_y > 40.0, "picture too dark (mean Y %.1f): black?", mean_y);

	g_mutex_lock(&s.lock);
	printf("  source: %u buffers, %u keyframes, caps %ux%u\n", s.buffers, s.keyframes,
	       s.width, s.height);
	CHECK(s.first_seen && s.first_ok);
	CHECKF(s.flag_mismatch == 0, "%u buffers with a DELTA_UNIT flag contradicting the NALs",
	       s.flag_mismatch);
	CHECKF(s.pts_invalid == 0 && s.pts_not_increasing == 0,
	       "source PTS: %u invalid, %u not increasing", s.pts_invalid, s.pts_not_increasing);
	CHECK(s.width == W && s.height == H);
	/* --gop 0: only the start IDR so far, so later IDRs answer requests */
	CHECKF(s.keyframes == 1, "%u keyframes before any request", s.keyframes);
	guint before = s.buffers;
	g_mutex_unlock(&s.lock);

	/* Upstream force-key-unit, as a muxer or a WebRTC sender would send it
	 * from downstream (through avdec_h264 and h264parse). */
	guint64 t0 = tu_now_ns();
	CHECK(gst_element_send_event(sink, gst_video_event_new_upstream_force_key_unit(
						   GST_CLOCK_TIME_NONE, TRUE, 1)));
	int k = keyframe_after(&s, before, 2000);
	printf("  upstream force-key-unit: keyframe at buffer %d (request at %u), %.0f ms\n", k,
	       before, (double)(tu_now_ns() - t0) / 1e6);
	CHECKF(k >= 0 && k <= (int)before + 10, "keyframe index %d after request at %u", k,
	       before);
	g_mutex_lock(&s.lock);
	CHECKF(s.fku_events >= 1, "no downstream force-key-unit event before the IDR (%u)",
	       s.fku_events);
	CHECK(s.fku_events == 0 || s.fku_event_index == s.last_key_index);
	before = s.buffers;
	guint keys = s.keyframes;
	g_mutex_unlock(&s.lock);

	/* Downstream force-key-unit sent to the source by the application. */
	GstElement *src = gst_bin_get_by_name(GST_BIN(p), "src");
	t0 = tu_now_ns();
	CHECK(gst_element_send_event(src, gst_video_event_new_downstream_force_key_unit(
						  GST_CLOCK_TIME_NONE, GST_CLOCK_TIME_NONE,
						  GST_CLOCK_TIME_NONE, TRUE, 2)));
	k = keyframe_after(&s, before, 2000);
	printf("  downstream force-key-unit: keyframe at buffer %d (request at %u), %.0f ms\n", k,
	       before, (double)(tu_now_ns() - t0) / 1e6);
	CHECKF(k >= 0 && k <= (int)before + 10, "keyframe index %d after request at %u", k,
	       before);
	g_mutex_lock(&s.lock);
	CHECK(s.keyframes == keys + 1);
	g_mutex_unlock(&s.lock);

	/* Decoding goes on across both IDRs. */
	CHECK(wait_buffers(&s, seen_buffers(&s) + 10, 3000));
	pull_frames(sink, 10, &got, &psnr, &mean_y, &pts_bad, &size_bad, "after the IDRs");
	CHECKF(got == 10 && size_bad == 0 && psnr >= 35.0,
	       "after the IDRs: %u frames, %u bad, PSNR %.1f", got, size_bad, psnr);

	gst_object_unref(src);
	gst_object_unref(sink);
	stop_pipeline(p);
}

static void test_static_and_stop(void)
{
	printf("scanout 1 (static %ux%u): cropped SPS, stop while waiting\n", STATIC_W, STATIC_H);
	struct seen s;
	GstElement *p = launch(&s, "hfescanoutsrc name=src address=%s scanout=1 timeout=20000 "
				   "! fakesink sync=false", sock_addr);
	CHECK(gst_element_set_state(p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
	/* A static screen still gives its current picture as an IDR at start. */
	CHECK(wait_buffers(&s, 1, 5000));
	g_usleep(300000); /* now waiting for updates that never come */
	g_mutex_lock(&s.lock);
	printf("  %u buffer(s), caps %ux%u\n", s.buffers, s.width, s.height);
	CHECK(s.first_ok);
	CHECKF(s.buffers == 1, "%u buffers from a static screen, want its one IDR", s.buffers);
	CHECK(s.width == STATIC_W && s.height == STATIC_H);
	g_mutex_unlock(&s.lock);

	guint64 t0 = tu_now_ns();
	GstStateChangeReturn r = gst_element_set_state(p, GST_STATE_NULL);
	double ms = (double)(tu_now_ns() - t0) / 1e6;
	printf("  set_state(NULL) while waiting took %.1f ms\n", ms);
	CHECK(r == GST_STATE_CHANGE_SUCCESS);
	CHECKF(ms < 500, "stopping took %.1f ms", ms);
	gst_object_unref(p);
}

/* PLAYING -> PAUSED -> PLAYING: what queued while paused is dropped and the
 * stream resumes with an IDR (only requests make IDRs with --gop 0). */
static void test_pause_resume(void)
{
	printf("scanout 0: pause and resume\n");
	struct seen s;
	GstElement *p = launch(&s, "hfescanoutsrc name=src address=%s scanout=0 ! fakesink "
				   "sync=false", sock_addr);
	CHECK(gst_element_set_state(p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
	CHECK(wait_buffers(&s, 10, 5000));
	gst_element_set_state(p, GST_STATE_PAUSED);
	CHECK(gst_element_get_state(p, NULL, NULL, 5 * GST_SECOND) != GST_STATE_CHANGE_FAILURE);
	guint before = seen_buffers(&s);
	g_usleep(700000); /* the host goes on pushing at 30 fps */
	guint during = seen_buffers(&s) - before;
	g_mutex_lock(&s.lock);
	guint keys_before = s.keyframes;
	g_mutex_unlock(&s.lock);
	gst_element_set_state(p, GST_STATE_PLAYING);
	CHECK(wait_buffers(&s, before + 10, 5000));
	g_mutex_lock(&s.lock);
	printf("  %u buffers before pausing, %u while paused, %u keyframes after resuming, "
	       "first at %u\n", before, during, s.keyframes - keys_before, s.last_key_index);
	CHECKF(during == 0, "%u buffers pushed while paused", during);
	CHECK(s.keyframes == keys_before + 1 && s.last_key_index == before);
	CHECK(s.pts_invalid == 0 && s.pts_not_increasing == 0 && s.flag_mismatch == 0);
	g_mutex_unlock(&s.lock);
	stop_pipeline(p);
}

/*
 * A hostile host: the real daemon never sends a malformed SPS, so this one
 * speaks just enough HXFR (SUBSCRIBE_RESP, FRAME_RESPONSE on SUBSCRIBE and
 * KEYFRAME_REQ, PONG) to hand the element one IDR access unit whose SPS is
 * given. The element must fail cleanly or produce caps, never read out of
 * bounds (ASan) or hang.
 */
struct hostile {
	int listen_fd;
	const guint8 *sps;
	gsize sps_len;
};

static gboolean read_full(int fd, guint8 *buf, gsize len)
{
	while (len) {
		ssize_t n = read(fd, buf, len);
		if (n <= 0)
			return FALSE;
		buf += n;
		len -= (gsize)n;
	}
	return TRUE;
}

static gboolean send_msg(int fd, struct hfe_msg *m, const guint8 *extra, gsize extra_len)
{
	guint8 pre[HFE_MSG_MAX_PREFIX];
	size_t n = hfe_msg_build(m, extra_len, pre, sizeof(pre));
	return n && write(fd, pre, n) == (ssize_t)n &&
	       (!extra_len || write(fd, extra, extra_len) == (ssize_t)extra_len);
}

static gpointer hostile_thread(gpointer data)
{
	struct hostile *h = data;
	struct pollfd p = { .fd = h->listen_fd, .events = POLLIN };
	if (poll(&p, 1, 5000) != 1)
		return NULL;
	int fd = hfe_accept(h->listen_fd);
	if (fd < 0)
		return NULL;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);

	static const guint8 sc[4] = { 0, 0, 0, 1 };
	static const guint8 idr[] = { 0x65, 0x88, 0x84, 0x00, 0x33, 0xff, 0xfe, 0xf6, 0xf0, 0x80 };
	GByteArray *au = g_byte_array_new();
	g_byte_array_append(au, sc, 4);
	g_byte_array_append(au, h->sps, (guint)h->sps_len);
	g_byte_array_append(au, sc, 4);
	g_byte_array_append(au, real_pps, (guint)real_pps_len);
	g_byte_array_append(au, sc, 4);
	g_byte_array_append(au, idr, sizeof(idr));

	struct hfe_limits lim;
	hfe_limits_default(&lim);
	for (;;) {
		guint8 hb[HFE_HEADER_SIZE], body[64];
		struct hfe_header hdr;
		struct hfe_err err;
		if (!read_full(fd, hb, sizeof(hb)) ||
		    hfe_header_parse(hb, HFE_ROLE_HOST, &lim, &hdr, &err) < 0 ||
		    hdr.payload_size > sizeof(body) || !read_full(fd, body, hdr.payload_size))
			break;
		struct hfe_msg m = { .hdr = { .session_id = 0 } };
		if (hdr.type == HFE_MSG_SUBSCRIBE) {
			m.hdr.type = HFE_MSG_SUBSCRIBE_RESP;
			m.u.subscribe_resp.scanout_id = 0;
			m.u.subscribe_resp.success = 1;
			if (!send_msg(fd, &m, NULL, 0))
				break;
		} else if (hdr.type == HFE_MSG_PING) {
			m.hdr.type = HFE_MSG_PONG;
			if (!send_msg(fd, &m, NULL, 0))
				break;
			continue;
		} else if (hdr.type != HFE_MSG_KEYFRAME_REQ) {
			continue;
		}
		struct hfe_msg f = { .hdr = { .type = HFE_MSG_FRAME_RESPONSE, .session_id = 0 } };
		f.u.frame_resp.is_keyframe = 1;
		f.u.frame_resp.nal_count = 1;
		if (!send_msg(fd, &f, au->data, au->len))
			break;
	}
	g_byte_array_unref(au);
	close(fd);
	return NULL;
}

/* Run the element against the hostile host once: 1 caps (*w x *h), 0 a bus
 * error mentioning the SPS, -1 anything else (other error, timeout). */
static int hostile_once(const char *addr, int listen_fd, const guint8 *sps, gsize len, guint *w,
			guint *h)
{
	struct hostile host = { listen_fd, sps, len };
	GThread *t = g_thread_new("hostile", hostile_thread, &host);
	struct seen s;
	GstElement *p = launch(&s, "hfescanoutsrc name=src address=%s timeout=2000 ! fakesink",
			       addr);
	gst_element_set_state(p, GST_STATE_PLAYING);
	int result = -1;
	GstBus *bus = gst_element_get_bus(p);
	for (int i = 0; i < 300 && result < 0; i++) {
		GstMessage *m = gst_bus_timed_pop_filtered(bus, 10 * GST_MSECOND,
							   GST_MESSAGE_ERROR);
		if (m) {
			GError *gerr = NULL;
			gst_message_parse_error(m, &gerr, NULL);
			result = strstr(gerr->message, "SPS") ? 0 : -2;
			if (result == -2)
				fprintf(stderr, "  unexpected error: %s\n", gerr->message);
			g_clear_error(&gerr);
			gst_message_unref(m);
			break;
		}
		g_mutex_lock(&s.lock);
		if (s.width) {
			*w = s.width;
			*h = s.height;
			result = 1;
		}
		g_mutex_unlock(&s.lock);
	}
	gst_object_unref(bus);
	stop_pipeline(p);
	g_thread_join(t);
	return result < 0 ? -1 : result;
}

static void test_hostile_sps(const char *dir)
{
	printf("hostile host: truncated and corrupted SPS\n");
	REQUIRE(real_sps_len >= 4 && real_pps_len);
	char path[300], addr[320], why[200];
	struct hfe_addr a;
	snprintf(path, sizeof(path), "%s/hostile.sock", dir);
	snprintf(addr, sizeof(addr), "unix:%s", path);
	REQUIRE(hfe_addr_parse(addr, &a, why, sizeof(why)) == 0);
	int lfd = hfe_listen(&a, why, sizeof(why), NULL, 0);
	REQUIRE(lfd >= 0);

	guint w = 0, h = 0, errors = 0, good = 0, wrong = 0, other = 0;
	/* The real SPS through this host: the path itself works. */
	CHECK(hostile_once(addr, lfd, real_sps, real_sps_len, &w, &h) == 1 && w == W && h == H);
	/* Every truncation: either an error naming the SPS, or (cut after the
	 * fields that matter) the right size. */
	for (gsize len = 1; len < real_sps_len; len++) {
		int r = hostile_once(addr, lfd, real_sps, len, &w, &h);
		if (r == 0)
			errors++;
		else if (r == 1 && w == W && h == H)
			good++;
		else if (r == 1)
			wrong++;
		else
			other++;
	}
	printf("  %zu truncations: %u errors, %u right size, %u wrong size, %u other\n",
	       real_sps_len - 1, errors, good, wrong, other);
	CHECK(errors > 0 && wrong == 0 && other == 0);

	/* Random corruption (fixed seed): any clean outcome, no crash, no hang;
	 * all-zero and all-one bytes stress the exp-Golomb reader. */
	GRand *rnd = g_rand_new_with_seed(1234);
	guint8 bad[256];
	guint clean = 0, runs = 24;
	for (guint i = 0; i < runs; i++) {
		memcpy(bad, real_sps, real_sps_len);
		gsize len = real_sps_len;
		if (i == 0 || i == 1) {
			memset(bad + 1, i == 0 ? 0x00 : 0xff, len - 1);
		} else {
			for (int k = 0; k < 3; k++) {
				gsize at = 1 + (gsize)g_rand_int_range(rnd, 0, (gint32)len - 1);
				bad[at] ^= (guint8)(1u << g_rand_int_range(rnd, 0, 8));
			}
		}
		bad[0] = real_sps[0]; /* keep it an SPS */
		if (hostile_once(addr, lfd, bad, len, &w, &h) >= 0)
			clean++;
	}
	g_rand_free(rnd);
	printf("  %u corrupted SPS: %u handled cleanly\n", runs, clean);
	CHECK(clean == runs);
	close(lfd);
	unlink(path);
}

/* A quiet host (static screen) is pinged, not dropped; a hung one (SIGSTOP)
 * is an error naming the address after about two timeouts. */
static void test_keepalive(void)
{
	printf("keep-alive: quiet host is fine, hung host is an error\n");
	struct seen s;
	GstElement *p = launch(&s, "hfescanoutsrc name=src address=%s scanout=1 timeout=150 "
				   "! fakesink sync=false", sock_addr);
	CHECK(gst_element_set_state(p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
	CHECK(wait_buffers(&s, 1, 5000));
	gchar *err = wait_error(p, 800); /* several idle timeouts, each a PING */
	CHECKF(err == NULL, "quiet host: %s", err);
	g_free(err);

	kill(daemon_pid, SIGSTOP);
	guint64 t0 = tu_now_ns();
	err = wait_error(p, 3000);
	double ms = (double)(tu_now_ns() - t0) / 1e6;
	kill(daemon_pid, SIGCONT);
	printf("  hung host: error after %.0f ms: %s\n", ms, err ? err : "(none)");
	CHECK(err && strstr(err, "stopped answering") && strstr(err, sock_addr));
	CHECKF(ms < 1000, "%.0f ms", ms);
	g_free(err);
	stop_pipeline(p);
}

static void test_absent_scanout(void)
{
	printf("scanout 7 (absent): clean error\n");
	GstElement *p = launch(NULL, "hfescanoutsrc address=%s scanout=7 ! fakesink", sock_addr);
	guint64 t0 = tu_now_ns();
	GstStateChangeReturn r = gst_element_set_state(p, GST_STATE_PLAYING);
	gchar *err = wait_error(p, 5000);
	double ms = (double)(tu_now_ns() - t0) / 1e6;
	printf("  state change %s, error after %.0f ms: %s\n", gst_element_state_change_return_get_name(r),
	       ms, err ? err : "(none)");
	CHECK(r == GST_STATE_CHANGE_FAILURE);
	CHECK(err && strstr(err, "scanout 7"));
	CHECKF(ms < 3000, "%.0f ms", ms);
	g_free(err);
	stop_pipeline(p);
}

static void test_host_gone(void)
{
	printf("daemon killed mid-stream: error naming the address\n");
	struct seen s;
	GstElement *p = launch(&s, "hfescanoutsrc name=src address=%s scanout=0 ! fakesink "
				   "sync=false", sock_addr);
	CHECK(gst_element_set_state(p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
	CHECK(wait_buffers(&s, 5, 5000));
	tu_kill_wait(daemon_pid, SIGKILL, 2000);
	daemon_pid = -1;
	guint64 t0 = tu_now_ns();
	gchar *err = wait_error(p, 5000);
	double ms = (double)(tu_now_ns() - t0) / 1e6;
	printf("  error after %.0f ms: %s\n", ms, err ? err : "(none)");
	CHECK(err && strstr(err, sock_addr));
	CHECKF(ms < 3000, "%.0f ms", ms);
	g_free(err);
	stop_pipeline(p);
}

int main(int argc, char **argv)
{
	gst_check_init(&argc, &argv);
	signal(SIGPIPE, SIG_IGN);

	if (!gsttest_have_feature("hfescanoutsrc"))
		return 1;
	GstElementFactory *f = gst_element_factory_find("hfescanoutsrc");
	REQUIRE(f);
	CHECK(strcmp(gst_element_factory_get_metadata(f, GST_ELEMENT_METADATA_KLASS),
		     "Source/Video") == 0);
	gst_object_unref(f);

	char *dir = tu_mkdtemp("hfescanoutsrc");
	REQUIRE(dir);
	daemon_pid = start_daemon(dir);
	REQUIRE(daemon_pid > 0);
	make_reference();

	test_stream();
	test_pause_resume();
	test_static_and_stop();
	test_absent_scanout();
	test_hostile_sps(dir);
	test_keepalive();
	test_host_gone(); /* last: kills the daemon */

	if (daemon_pid > 0)
		tu_kill_wait(daemon_pid, SIGTERM, 5000);
	if (tu_failures) {
		char log[400];
		snprintf(log, sizeof(log), "%s/daemon.log", dir);
		fprintf(stderr, "daemon log: %s (kept)\n", log);
	} else {
		tu_rm_rf(dir);
	}
	free(dir);
	tu_yuv_free(&reference);
	return tu_finish("test_hfescanoutsrc");
}
