/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfescanoutsrc check suite, against the real daemon serving test scanouts
 * (libhfe's moving test source); every test starts its own daemon (fixture):
 * scanout 0 is 640x480 at 30 fps, scanout 1 a static 250x130, and --gop 0
 * makes IDRs only on request.
 *   - stream: through h264parse ! avdec_h264 ! appsink: caps, first buffer an
 *     IDR with SPS/PPS, keyframe flags agree with the bitstream, timestamps
 *     increase, >= 30 decoded frames whose background matches
 *     hfe_testsrc_render's (PSNR on corner patches)
 *   - keyframes: force-key-unit upstream (from the sink) and downstream (sent
 *     to the source) each bring an IDR soon, decoding goes on
 *   - states: pause and resume drop the backlog and resume with an IDR
 *   - waiting (scanout 1, nothing comes after its IDR): caps from an SPS with
 *     cropping; a keyframe request, a flush and set_state(NULL) each end the
 *     wait for data at once (the element's GstHfeWait)
 *   - failures: scanout 7 (absent) is a bus error naming it; a hostile host
 *     sending truncated and corrupted SPS gets a clean error or the right caps;
 *     a quiet host is pinged, a hung one (SIGSTOP) is an error; the daemon
 *     killed mid-stream is an error naming the address
 * One test alone: GST_CHECKS=test_name.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <gst/video/video.h>

#include "hfe/addr.h"
#include "hfe/client.h"
#include "hfe/testsrc.h"
#include "gsttest.h"
#include "test_util.h"

#include "check_asserts.h"

#define W 640
#define H 480
#define STATIC_W 250 /* not a multiple of 16: the SPS carries a crop window */
#define STATIC_H 130
#define MIN_FRAMES 30
#define PATCH 48

/* ---- fixture: a temporary directory, the daemon, the reference ---- */

static char *tmp_dir;
static struct gsttest_daemon dm;
static const char *sock_addr; /* dm.addr */

/* SPS and PPS of the real stream (first IDR seen by a probe), for the hostile host. */
static guint8 real_sps[256], real_pps[64];
static gsize real_sps_len, real_pps_len;

static void make_reference(void);
static struct tu_yuv reference;

static void setup(void)
{
	static char s0[64], s1[64];
	tmp_dir = tu_mkdtemp("test_hfescanoutsrc");
	REQUIRE(tmp_dir);
	gsttest_daemon_init(&dm, tmp_dir, "hfe");
	snprintf(s0, sizeof(s0), "0:%ux%u@30", W, H);
	snprintf(s1, sizeof(s1), "1:%ux%u@0", STATIC_W, STATIC_H);
	const char *extra[] = { "--test-scanout", s0, "--test-scanout", s1, "--gop", "0" };
	for (guint i = 0; i < G_N_ELEMENTS(extra); i++)
		dm.extra[i] = extra[i];
	REQUIRE(gsttest_daemon_start(&dm));
	sock_addr = dm.addr;
	make_reference();
}

static void teardown(void)
{
	/* Only reached when the test passed: a failed one keeps the daemon log. */
	gsttest_daemon_stop(&dm, SIGTERM);
	tu_yuv_free(&reference);
	tu_rm_rf(tmp_dir);
	free(tmp_dir);
}

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

/* ---- decoded frames, keyframes ---- */

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

/* ---- stream ---- */

/* "hfescanoutsrc name=src address=... `props` ! fakesink", PLAYING, with
 * at least n buffers out. */
static GstElement *playing_pipeline(struct seen *s, const char *props, guint n)
{
	GstElement *p = launch(s, "hfescanoutsrc name=src address=%s %s ! fakesink sync=false",
			       sock_addr, props);
	CHECK(gst_element_set_state(p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
	CHECK(wait_buffers(s, n, 5000));
	return p;
}

/* The decoding pipeline on scanout 0, PLAYING, with its appsink in *sink. */
static GstElement *decoding_pipeline(struct seen *s, GstElement **sink)
{
	GstElement *p = launch(s,
		"hfescanoutsrc name=src address=%s scanout=0 bitrate=3000 ! h264parse ! "
		"avdec_h264 ! video/x-raw,format=I420 ! appsink name=sink sync=false "
		"max-buffers=5 drop=true",
		sock_addr);
	*sink = gst_bin_get_by_name(GST_BIN(p), "sink");
	REQUIRE(*sink);
	CHECK(gst_element_set_state(p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
	return p;
}

GST_START_TEST(test_factory_metadata)
{
	GstElementFactory *f = gst_element_factory_find("hfescanoutsrc");
	REQUIRE(f);
	CHECK(strcmp(gst_element_factory_get_metadata(f, GST_ELEMENT_METADATA_KLASS),
		     "Source/Video") == 0);
	gst_object_unref(f);
}
GST_END_TEST;

GST_START_TEST(test_decode_stream)
{
	struct seen s;
	GstElement *sink, *p = decoding_pipeline(&s, &sink);
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
	/* --gop 0: only the start IDR, so later IDRs answer requests */
	CHECKF(s.keyframes == 1, "%u keyframes without any request", s.keyframes);
	g_mutex_unlock(&s.lock);
	gst_object_unref(sink);
	stop_pipeline(p);
}
GST_END_TEST;

/* ---- keyframes ---- */

/* After 10 decoded frames, send() asks for a key unit: an IDR within 10
 * buffers, then decoding goes on (10 more frames, background PSNR). Returns
 * the number of downstream force-key-unit events the source pushed. */
static guint check_force_key_unit(void (*send)(GstElement *p, GstElement *sink))
{
	struct seen s;
	GstElement *sink, *p = decoding_pipeline(&s, &sink);
	guint got, pts_bad, size_bad;
	double psnr, mean_y;

	pull_frames(sink, 10, &got, &psnr, &mean_y, &pts_bad, &size_bad, NULL);
	CHECKF(got == 10, "%u frames before the request", got);
	g_mutex_lock(&s.lock);
	guint before = s.buffers, keys = s.keyframes;
	g_mutex_unlock(&s.lock);

	/* The buffers already on their way when the request leaves: more of them where
	 * everything runs slower (HFE_TEST_TIME_SCALE, qemu-user); 10 natively. */
	double scale = tu_time_scale();
	guint64 t0 = tu_now_ns();
	send(p, sink);
	int k = keyframe_after(&s, before, (guint)(2000 * scale));
	printf("  keyframe at buffer %d (request at %u), %.0f ms\n", k, before,
	       (double)(tu_now_ns() - t0) / 1e6);
	CHECKF(k >= 0 && k <= (int)before + (int)(10 * scale),
	       "keyframe index %d after request at %u", k, before);
	g_mutex_lock(&s.lock);
	CHECKF(s.keyframes == keys + 1, "%u keyframes after one request (%u before)",
	       s.keyframes, keys);
	guint fku = s.fku_events;
	CHECK(fku == 0 || s.fku_event_index == s.last_key_index);
	g_mutex_unlock(&s.lock);

	/* Decoding goes on across the IDR. */
	CHECK(wait_buffers(&s, seen_buffers(&s) + 10, 3000));
	pull_frames(sink, 10, &got, &psnr, &mean_y, &pts_bad, &size_bad, "after the IDR");
	CHECKF(got == 10 && size_bad == 0 && psnr >= 35.0,
	       "after the IDR: %u frames, %u bad, PSNR %.1f", got, size_bad, psnr);
	gst_object_unref(sink);
	stop_pipeline(p);
	return fku;
}

/* As a muxer or a WebRTC sender would, from downstream (through avdec_h264
 * and h264parse). */
static void send_upstream_fku(GstElement *p, GstElement *sink)
{
	(void)p;
	CHECK(gst_element_send_event(sink, gst_video_event_new_upstream_force_key_unit(
						   GST_CLOCK_TIME_NONE, TRUE, 1)));
}

/* By the application, to the source. */
static void send_downstream_fku(GstElement *p, GstElement *sink)
{
	(void)sink;
	GstElement *src = gst_bin_get_by_name(GST_BIN(p), "src");
	CHECK(gst_element_send_event(src, gst_video_event_new_downstream_force_key_unit(
						  GST_CLOCK_TIME_NONE, GST_CLOCK_TIME_NONE,
						  GST_CLOCK_TIME_NONE, TRUE, 2)));
	gst_object_unref(src);
}

GST_START_TEST(test_force_key_unit_upstream)
{
	/* The source also tells downstream the key unit it asked for is here. */
	guint fku = check_force_key_unit(send_upstream_fku);
	CHECKF(fku >= 1, "no downstream force-key-unit event before the IDR (%u)", fku);
}
GST_END_TEST;

GST_START_TEST(test_force_key_unit_downstream)
{
	check_force_key_unit(send_downstream_fku);
}
GST_END_TEST;

/* ---- states ---- */

/* PLAYING -> PAUSED -> PLAYING: what queued while paused is dropped and the
 * stream resumes with an IDR (only requests make IDRs with --gop 0). */
GST_START_TEST(test_pause_resume)
{
	struct seen s;
	GstElement *p = playing_pipeline(&s, "scanout=0", 10);
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
GST_END_TEST;

/* ---- waiting for data that does not come (scanout 1) ---- */

/* Scanout 1 with a 20 s timeout, PLAYING, its one IDR out, and create()
 * waiting for the next access unit (that never comes unless asked). */
static GstElement *waiting_pipeline(struct seen *s)
{
	/* A static screen still gives its current picture as an IDR at start. */
	GstElement *p = playing_pipeline(s, "scanout=1 timeout=20000", 1);
	g_usleep(300000); /* now waiting for updates that never come */
	CHECKF(seen_buffers(s) == 1, "%u buffers from a static screen, want its one IDR",
	       seen_buffers(s));
	return p;
}

GST_START_TEST(test_static_cropped_caps)
{
	struct seen s;
	GstElement *p = waiting_pipeline(&s);
	g_mutex_lock(&s.lock);
	printf("  %u buffer(s), caps %ux%u\n", s.buffers, s.width, s.height);
	CHECK(s.first_ok);
	CHECK(s.width == STATIC_W && s.height == STATIC_H);
	g_mutex_unlock(&s.lock);
	stop_pipeline(p);
}
GST_END_TEST;

/* unlock() ends the wait: set_state(NULL) returns at once. */
GST_START_TEST(test_stop_while_waiting)
{
	struct seen s;
	GstElement *p = waiting_pipeline(&s);
	guint64 t0 = tu_now_ns();
	GstStateChangeReturn r = gst_element_set_state(p, GST_STATE_NULL);
	double ms = (double)(tu_now_ns() - t0) / 1e6;
	printf("  set_state(NULL) while waiting took %.1f ms\n", ms);
	CHECK(r == GST_STATE_CHANGE_SUCCESS);
	CHECKF(ms < 500, "stopping took %.1f ms", ms);
	gst_object_unref(p);
}
GST_END_TEST;

/* CPU time this process used so far (all threads), ms. */
static double cpu_ms(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/* A flush sent to the source: unlock() ends the wait (FLUSH_STOP takes the
 * stream lock, so it returns only once create() did), and unlock_stop()
 * resynchronises: a fresh IDR follows, and the source waits again, without
 * spinning. */
GST_START_TEST(test_flush_while_waiting)
{
	struct seen s;
	GstElement *p = waiting_pipeline(&s);
	GstElement *src = gst_bin_get_by_name(GST_BIN(p), "src");

	guint64 t0 = tu_now_ns();
	CHECK(gst_element_send_event(src, gst_event_new_flush_start()));
	CHECK(gst_element_send_event(src, gst_event_new_flush_stop(FALSE)));
	double ms = (double)(tu_now_ns() - t0) / 1e6;
	CHECK(wait_buffers(&s, 2, 3000));
	printf("  flush took %.1f ms; %u buffers, %u keyframes\n", ms, seen_buffers(&s),
	       s.keyframes);
	CHECKF(ms < 500, "flushing took %.1f ms", ms);
	g_mutex_lock(&s.lock);
	CHECK(s.keyframes == 2 && s.last_key_index == 1);
	g_mutex_unlock(&s.lock);
	double cpu0 = cpu_ms();
	g_usleep(500000);
	double cpu = cpu_ms() - cpu0;
	printf("  %.1f ms CPU in 500 ms of waiting after the flush\n", cpu);
	CHECKF(cpu < 50, "%.1f ms CPU in 500 ms of waiting: spinning?", cpu);
	gst_object_unref(src);
	stop_pipeline(p);
}
GST_END_TEST;

/* A keyframe request wakes the waiting create(), which asks the host: the
 * IDR comes long before the 20 s wait would have ended. */
GST_START_TEST(test_keyframe_request_while_waiting)
{
	struct seen s;
	GstElement *p = waiting_pipeline(&s);

	guint64 t0 = tu_now_ns();
	send_downstream_fku(p, NULL);
	CHECK(wait_buffers(&s, 2, 3000));
	double ms = (double)(tu_now_ns() - t0) / 1e6;
	printf("  IDR %.1f ms after the request\n", ms);
	CHECKF(ms < 1000, "IDR after %.1f ms", ms);
	g_mutex_lock(&s.lock);
	CHECK(s.keyframes == 2);
	g_mutex_unlock(&s.lock);
	stop_pipeline(p);
}
GST_END_TEST;

/* ---- failures ---- */

GST_START_TEST(test_absent_scanout)
{
	GstElement *p = launch(NULL, "hfescanoutsrc address=%s scanout=7 ! fakesink", sock_addr);
	guint64 t0 = tu_now_ns();
	GstStateChangeReturn r = gst_element_set_state(p, GST_STATE_PLAYING);
	gchar *err = wait_error(p, 5000);
	double ms = (double)(tu_now_ns() - t0) / 1e6;
	printf("  state change %s, error after %.0f ms: %s\n",
	       gst_element_state_change_return_get_name(r), ms, err ? err : "(none)");
	CHECK(r == GST_STATE_CHANGE_FAILURE);
	CHECK(err && strstr(err, "scanout 7"));
	CHECKF(ms < 3000, "%.0f ms", ms);
	g_free(err);
	stop_pipeline(p);
}
GST_END_TEST;

/* The real SPS and PPS, from the fixture's daemon, and a listening socket
 * for the hostile host in *addr. */
static int hostile_setup(char *addr, gsize addr_size)
{
	struct seen s;
	stop_pipeline(playing_pipeline(&s, "scanout=0", 1));
	REQUIRE(real_sps_len >= 4 && real_pps_len);

	char why[200];
	struct hfe_addr a;
	snprintf(addr, addr_size, "unix:%s/hostile.sock", tmp_dir);
	REQUIRE(hfe_addr_parse(addr, &a, why, sizeof(why)) == 0);
	int lfd = hfe_listen(&a, why, sizeof(why), NULL, 0);
	REQUIRE(lfd >= 0);
	return lfd;
}

/* Every truncation: either an error naming the SPS, or (cut after the fields
 * that matter) the right size. The full SPS through the same host works. */
GST_START_TEST(test_hostile_sps_truncated)
{
	char addr[320];
	int lfd = hostile_setup(addr, sizeof(addr));
	guint w = 0, h = 0, errors = 0, good = 0, wrong = 0, other = 0;

	CHECK(hostile_once(addr, lfd, real_sps, real_sps_len, &w, &h) == 1 && w == W && h == H);
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
	close(lfd);
}
GST_END_TEST;

/* Random corruption (fixed seed): any clean outcome, no crash, no hang;
 * all-zero and all-one bytes stress the exp-Golomb reader. */
GST_START_TEST(test_hostile_sps_corrupted)
{
	char addr[320];
	int lfd = hostile_setup(addr, sizeof(addr));
	GRand *rnd = g_rand_new_with_seed(1234);
	guint8 bad[256];
	guint clean = 0, runs = 24, w, h;

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
}
GST_END_TEST;

/* Scanout 1 with a 150 ms keep-alive, its IDR out. */
static GstElement *keepalive_pipeline(void)
{
	struct seen s;
	return playing_pipeline(&s, "scanout=1 timeout=150", 1);
}

/* A quiet host (static screen) is pinged, not dropped. */
GST_START_TEST(test_keepalive_quiet_host)
{
	GstElement *p = keepalive_pipeline();
	gchar *err = wait_error(p, 800); /* several idle timeouts, each a PING */
	CHECKF(err == NULL, "quiet host: %s", err);
	stop_pipeline(p);
}
GST_END_TEST;

/* A hung host (SIGSTOP) is an error naming the address after about two timeouts. */
GST_START_TEST(test_keepalive_hung_host)
{
	GstElement *p = keepalive_pipeline();
	kill(dm.pid, SIGSTOP);
	guint64 t0 = tu_now_ns();
	gchar *err = wait_error(p, 3000);
	double ms = (double)(tu_now_ns() - t0) / 1e6;
	kill(dm.pid, SIGCONT);
	printf("  hung host: error after %.0f ms: %s\n", ms, err ? err : "(none)");
	CHECK(err && strstr(err, "stopped answering") && strstr(err, sock_addr));
	CHECKF(ms < 1000, "%.0f ms", ms);
	g_free(err);
	stop_pipeline(p);
}
GST_END_TEST;

GST_START_TEST(test_host_killed)
{
	struct seen s;
	GstElement *p = playing_pipeline(&s, "scanout=0", 5);
	gsttest_daemon_stop(&dm, SIGKILL);
	guint64 t0 = tu_now_ns();
	gchar *err = wait_error(p, 5000);
	double ms = (double)(tu_now_ns() - t0) / 1e6;
	printf("  error after %.0f ms: %s\n", ms, err ? err : "(none)");
	CHECK(err && strstr(err, sock_addr));
	CHECKF(ms < 3000, "%.0f ms", ms);
	g_free(err);
	stop_pipeline(p);
}
GST_END_TEST;

/* A test case with the per-test daemon fixture. */
static TCase *tcase(Suite *s, const char *name, int timeout_s)
{
	return gsttest_tcase(s, name, setup, teardown, timeout_s);
}

static Suite *hfescanoutsrc_suite(void)
{
	Suite *s = suite_create("hfescanoutsrc");

	if (!gsttest_suite_init("hfescanoutsrc"))
		exit(1);

	TCase *tc = tcase(s, "stream", 60);
	tcase_add_test(tc, test_factory_metadata);
	tcase_add_test(tc, test_decode_stream);

	tc = tcase(s, "keyframes", 60);
	tcase_add_test(tc, test_force_key_unit_upstream);
	tcase_add_test(tc, test_force_key_unit_downstream);

	tc = tcase(s, "states", 60);
	tcase_add_test(tc, test_pause_resume);

	tc = tcase(s, "waiting", 60);
	tcase_add_test(tc, test_static_cropped_caps);
	tcase_add_test(tc, test_stop_while_waiting);
	tcase_add_test(tc, test_flush_while_waiting);
	tcase_add_test(tc, test_keyframe_request_while_waiting);

	tc = tcase(s, "failures", 120);
	tcase_add_test(tc, test_absent_scanout);
	tcase_add_test(tc, test_hostile_sps_truncated);
	tcase_add_test(tc, test_hostile_sps_corrupted);
	tcase_add_test(tc, test_keepalive_quiet_host);
	tcase_add_test(tc, test_keepalive_hung_host);
	tcase_add_test(tc, test_host_killed);
	return s;
}

GST_CHECK_MAIN(hfescanoutsrc);
