/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vsockenc in real pipelines, one per input format, against the real daemon:
 *
 *   videotestsrc pattern=ball num-buffers=N ! video/x-raw,format=F,width=W,height=H ! tee
 *     tee. ! queue ! videoconvert ! I420 ! appsink name=ref      (the source frames)
 *     tee. ! queue ! vsockenc ! h264parse ! avdec_h264 ! videoconvert ! I420 ! appsink name=out
 *
 * The ball is orange on blue so that a swapped channel or a misplaced
 * chroma plane shows in the PSNR.
 *
 * Every source frame must come out decoded, with the same PTS, and each
 * plane's PSNR against its source frame must be >= 35 dB. For RGB input the
 * reference is converted with BT.601 limited range, the matrix the host
 * uses; YUV input is compared as is.
 */
#include <signal.h>
#include <string.h>

#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <gst/video/video.h>

#include "gsttest.h"
#include "test_util.h"

#define MIN_PSNR 35.0

struct pic {
	GstClockTime pts;
	struct tu_yuv yuv;
};

/* All samples of an appsink (after EOS) as plain I420 pictures. */
static GArray *collect(GstElement *sink)
{
	GArray *out = g_array_new(FALSE, TRUE, sizeof(struct pic));
	GstSample *s;

	while ((s = gst_app_sink_try_pull_sample(GST_APP_SINK(sink), 0))) {
		GstVideoInfo info;
		GstVideoFrame vf;
		struct pic p = { 0 };

		REQUIRE(gst_video_info_from_caps(&info, gst_sample_get_caps(s)));
		REQUIRE(GST_VIDEO_INFO_FORMAT(&info) == GST_VIDEO_FORMAT_I420);
		REQUIRE(gst_video_frame_map(&vf, &info, gst_sample_get_buffer(s), GST_MAP_READ));
		p.pts = GST_BUFFER_PTS(gst_sample_get_buffer(s));
		tu_yuv_alloc(&p.yuv, (uint32_t)GST_VIDEO_INFO_WIDTH(&info),
			     (uint32_t)GST_VIDEO_INFO_HEIGHT(&info));
		uint8_t *dst[3] = { p.yuv.y, p.yuv.u, p.yuv.v };
		for (guint c = 0; c < 3; c++) {
			uint32_t w = c ? p.yuv.cw : p.yuv.w, h = c ? p.yuv.ch : p.yuv.h;
			const uint8_t *src = GST_VIDEO_FRAME_PLANE_DATA(&vf, c);
			gint stride = GST_VIDEO_FRAME_PLANE_STRIDE(&vf, c);
			for (uint32_t y = 0; y < h; y++)
				memcpy(dst[c] + (size_t)y * w, src + (size_t)y * stride, w);
		}
		gst_video_frame_unmap(&vf);
		gst_sample_unref(s);
		g_array_append_val(out, p);
	}
	return out;
}

static void free_pics(GArray *a)
{
	for (guint i = 0; i < a->len; i++)
		tu_yuv_free(&g_array_index(a, struct pic, i).yuv);
	g_array_free(a, TRUE);
}

static void run_case(const char *addr, const char *format, guint w, guint h, guint n)
{
	gboolean rgb = !strcmp(format, "BGRx") || !strcmp(format, "BGRA") ||
		       !strcmp(format, "RGBx") || !strcmp(format, "RGBA");
	gchar *desc = g_strdup_printf(
		"videotestsrc pattern=ball foreground-color=0xffff8020 "
		"background-color=0xff2040c0 num-buffers=%u ! "
		"video/x-raw,format=%s,width=%u,height=%u,framerate=30/1 ! tee name=t "
		"t. ! queue ! videoconvert ! video/x-raw,format=I420%s ! "
		"appsink name=ref sync=false wait-on-eos=false "
		"t. ! queue ! vsockenc address=%s ! h264parse ! avdec_h264 ! videoconvert ! "
		"video/x-raw,format=I420 ! appsink name=out sync=false wait-on-eos=false",
		n, format, w, h, rgb ? ",colorimetry=bt601" : "", addr);
	GError *err = NULL;
	char what[64];

	snprintf(what, sizeof(what), "%s %ux%u", format, w, h);
	GstElement *pipe = gst_parse_launch(desc, &err);
	g_free(desc);
	CHECKF(pipe && !err, "%s: %s", what, err ? err->message : "no pipeline");
	g_clear_error(&err);
	if (!pipe)
		return;

	GstBus *bus = gst_element_get_bus(pipe);
	uint64_t t0 = tu_now_ns();
	CHECK(gst_element_set_state(pipe, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
	GstMessage *m = gst_bus_timed_pop_filtered(bus, 120 * GST_SECOND,
						   GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
	double secs = (double)(tu_now_ns() - t0) / 1e9;
	CHECKF(m && GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS, "%s: no EOS", what);
	if (m && GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
		gchar *dbg = NULL;
		gst_message_parse_error(m, &err, &dbg);
		fprintf(stderr, "%s: error: %s (%s)\n", what, err->message, dbg);
		g_clear_error(&err);
		g_free(dbg);
	}
	if (m)
		gst_message_unref(m);

	GstElement *ref_sink = gst_bin_get_by_name(GST_BIN(pipe), "ref");
	GstElement *out_sink = gst_bin_get_by_name(GST_BIN(pipe), "out");
	GArray *ref = collect(ref_sink);
	GArray *out = collect(out_sink);
	gst_object_unref(ref_sink);
	gst_object_unref(out_sink);
	gst_element_set_state(pipe, GST_STATE_NULL);
	gst_object_unref(bus);
	gst_object_unref(pipe);

	CHECKF(ref->len == n, "%s: %u source frames, want %u", what, ref->len, n);
	CHECKF(out->len == n, "%s: %u decoded frames, want %u", what, out->len, n);
	double worst[3] = { 100, 100, 100 };
	guint compared = 0;
	for (guint i = 0; i < out->len && i < ref->len; i++) {
		struct pic *o = &g_array_index(out, struct pic, i);
		struct pic *r = &g_array_index(ref, struct pic, i);
		double psnr[3];
		CHECKF(o->pts == r->pts,
		       "%s: frame %u pts %" GST_TIME_FORMAT " vs %" GST_TIME_FORMAT, what, i,
		       GST_TIME_ARGS(o->pts), GST_TIME_ARGS(r->pts));
		if (tu_psnr_yuv(&r->yuv, &o->yuv, psnr) < 0) {
			CHECKF(0, "%s: frame %u is %ux%u, source %ux%u", what, i, o->yuv.w,
			       o->yuv.h, r->yuv.w, r->yuv.h);
			continue;
		}
		compared++;
		for (int c = 0; c < 3; c++) {
			if (psnr[c] < worst[c])
				worst[c] = psnr[c];
			CHECKF(psnr[c] >= MIN_PSNR, "%s: frame %u plane %d PSNR %.2f dB", what, i,
			       c, psnr[c]);
		}
	}
	CHECK(compared == n);
	printf("  %-16s %u frames in %.2f s, worst PSNR Y %.2f U %.2f V %.2f dB\n", what, compared,
	       secs, worst[0], worst[1], worst[2]);
	free_pics(ref);
	free_pics(out);
}

int main(int argc, char **argv)
{
	if (!gsttest_init(&argc, &argv, "vsockenc"))
		return 1;
	const char *needed[] = { "videotestsrc", "h264parse", "avdec_h264",
				 "videoconvert", "appsink", "tee", "queue" };
	for (guint i = 0; i < G_N_ELEMENTS(needed); i++) {
		GstElementFactory *f = gst_element_factory_find(needed[i]);
		if (!f) {
			fprintf(stderr, "element %s not found\n", needed[i]);
			return 1;
		}
		gst_object_unref(f);
	}

	char *dir = tu_mkdtemp("test_vsockenc_pipeline");
	REQUIRE(dir);
	struct gsttest_daemon d;
	gsttest_daemon_init(&d, dir, "daemon");
	REQUIRE(gsttest_daemon_start(&d));

	printf("every input format, decoded and compared\n");
	const char *formats[] = { "BGRx", "BGRA", "RGBx", "RGBA", "NV12", "I420" };
	for (guint i = 0; i < G_N_ELEMENTS(formats); i++)
		run_case(d.addr, formats[i], 320, 240, 30);
	/* Sizes whose GStreamer layout differs from the wire layout, and HD. */
	run_case(d.addr, "I420", 98, 50, 20);
	run_case(d.addr, "NV12", 98, 50, 20);
	run_case(d.addr, "BGRx", 1280, 720, 20);
	run_case(d.addr, "NV12", 1920, 1080, 10);

	gsttest_daemon_stop(&d, SIGTERM);
	if (!tu_failures)
		tu_rm_rf(dir);
	else
		fprintf(stderr, "daemon log kept in %s\n", d.log);
	free(dir);
	gst_deinit();
	return tu_finish("test_vsockenc_pipeline");
}
