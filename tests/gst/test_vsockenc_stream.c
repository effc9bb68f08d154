/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vsockenc check suite, part 2: the stream it produces, under GstHarness
 * against the real daemon (one per test, started by the fixture). Every
 * output buffer is decoded; where the input is known its PSNR is checked.
 *   - output: SPS/PPS first, frames in = frames out, PTS kept and DTS = PTS,
 *     keyframe flags match the bitstream, PSNR >= 35 dB; EOS drains the
 *     frames in flight; latency reported; the host's encoder named
 *   - keyframes: force-key-unit downstream and upstream, key-int-max
 *   - changes while PLAYING: bitrate (smaller frames, no IDR), resolution
 *     (IDR, new SPS, new caps); flushing drops the frames in flight and
 *     restarts with an IDR
 *   - memory layouts: repacked I420/NV12, padded strides, dmabuf memory
 *   - the encoder hint: a warning when the host's encoder differs
 * One test alone: GST_CHECKS=test_name.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vsocktest.h"

#include "check_asserts.h"

#ifdef HAVE_GST_ALLOCATORS
#include <gst/allocators/allocators.h>
#endif

/* ---- output ---- */

/* n frames of I420 640x480 through max-inflight 4, pushed and drained by EOS;
 * refs get their references. */
static GstHarness *encode_640x480(GstBus **bus, guint n, struct tu_yuv *refs)
{
	GstVideoInfo info;
	GstHarness *h = enc_new(vt_daemon.addr, bus, "max-inflight", "4", NULL);
	set_format(h, &info, GST_VIDEO_FORMAT_I420, 640, 480);
	CHECK(push_frames(h, &info, 0, n, refs) == GST_FLOW_OK);
	CHECK(push_eos(h));
	return h;
}

/* SPS/PPS first, count, PTS/DTS, keyframe flags, every frame decoded. */
GST_START_TEST(test_stream_output)
{
	const guint n = 40;
	GstBus *bus;
	struct tu_yuv *refs = g_new0(struct tu_yuv, n);
	GstHarness *h = encode_640x480(&bus, n, refs);

	GPtrArray *bufs = new_bufs();
	pull_all(h, bufs);
	CHECKF(bufs->len == n, "%u frames in, %u out", n, bufs->len);
	for (guint i = 0; i < bufs->len; i++) {
		GstBuffer *b = g_ptr_array_index(bufs, i);
		struct tu_nals nals;
		REQUIRE(buf_nals(b, &nals));
		CHECKF(GST_BUFFER_PTS(b) == i * FRAME_NS, "buffer %u: pts %" GST_TIME_FORMAT, i,
		       GST_TIME_ARGS(GST_BUFFER_PTS(b)));
		CHECKF(GST_BUFFER_DTS(b) == GST_BUFFER_PTS(b), "buffer %u: dts %" GST_TIME_FORMAT,
		       i, GST_TIME_ARGS(GST_BUFFER_DTS(b)));
		CHECKF(is_key(b) == nals.has_idr, "buffer %u: keyframe flag %d, IDR %d", i,
		       is_key(b), nals.has_idr);
		if (i == 0) {
			CHECK(nals.has_sps && nals.has_pps && nals.has_idr);
			int sps = tu_nal_find(&nals, TU_NAL_SPS),
			    pps = tu_nal_find(&nals, TU_NAL_PPS);
			int idr = tu_nal_find(&nals, TU_NAL_IDR);
			CHECKF(sps >= 0 && sps < pps && pps < idr, "SPS %d PPS %d IDR %d", sps, pps,
			       idr);
		} else {
			CHECKF(!nals.has_idr, "buffer %u is an IDR (host gop 120)", i);
		}
	}
	CHECK(decode_all(bufs, refs, n, "I420 640x480", NULL, NULL) == (int)n);
	free_bufs(bufs);
	free_refs(refs, n);
	enc_free(h, bus);
}
GST_END_TEST;

/* EOS returns only after every frame in flight came out, and the EOS event
 * follows the data. */
GST_START_TEST(test_eos_drains_inflight)
{
	const guint n = 40;
	GstBus *bus;
	GstVideoInfo info;
	GstHarness *h = enc_new(vt_daemon.addr, &bus, "max-inflight", "4", NULL);

	set_format(h, &info, GST_VIDEO_FORMAT_I420, 640, 480);
	CHECK(push_frames(h, &info, 0, n, NULL) == GST_FLOW_OK);
	guint before_eos = gst_harness_buffers_in_queue(h);
	CHECK(push_eos(h));
	guint after_eos = gst_harness_buffers_in_queue(h);
	CHECKF(after_eos == n, "%u frames in, %u out at EOS (%u before EOS)", n, after_eos,
	       before_eos);

	GPtrArray *bufs = new_bufs();
	pull_all(h, bufs);
	gboolean eos = FALSE;
	GstEvent *ev;
	while ((ev = gst_harness_try_pull_event(h))) {
		eos = eos || GST_EVENT_TYPE(ev) == GST_EVENT_EOS;
		gst_event_unref(ev);
	}
	CHECK(eos);
	free_bufs(bufs);
	enc_free(h, bus);
}
GST_END_TEST;

/* Latency is reported (at least one frame); host-encoder names the host's. */
GST_START_TEST(test_latency_and_host_encoder)
{
	GstBus *bus;
	GstHarness *h = encode_640x480(&bus, 5, NULL);

	GstQuery *q = gst_query_new_latency();
	CHECK(gst_pad_peer_query(h->sinkpad, q));
	GstClockTime min, max;
	gboolean live;
	gst_query_parse_latency(q, &live, &min, &max);
	CHECKF(min >= FRAME_NS, "min latency %" GST_TIME_FORMAT, GST_TIME_ARGS(min));
	CHECKF(max == GST_CLOCK_TIME_NONE || max >= min, "max latency");
	gst_query_unref(q);

	gchar *host_encoder = NULL;
	g_object_get(h->element, "host-encoder", &host_encoder, NULL);
	CHECKF(!g_strcmp0(host_encoder, "libx264"), "host-encoder %s", host_encoder);
	g_free(host_encoder);
	enc_free(h, bus);
}
GST_END_TEST;

/* ---- keyframes ---- */

/* 20 frames of BGRx 320x240 with `event` sent before frame 10 (downstream:
 * pushed with the data; upstream: from the harness' sink); keyframes at 0
 * and 10 only, one force-key-unit event announced downstream, every frame
 * decoded with PSNR. */
static void check_force_key_unit(GstEvent *event, gboolean upstream)
{
	GstBus *bus;
	GstVideoInfo info;
	const guint n = 20;
	struct tu_yuv *refs = g_new0(struct tu_yuv, n);

	GstHarness *h = enc_new(vt_daemon.addr, &bus, NULL);
	set_format(h, &info, GST_VIDEO_FORMAT_BGRx, 320, 240);
	CHECK(push_frames(h, &info, 0, 10, refs) == GST_FLOW_OK);
	if (upstream)
		CHECK(gst_harness_push_upstream_event(h, event));
	else
		CHECK(gst_harness_push_event(h, event));
	CHECK(push_frames(h, &info, 10, 10, refs) == GST_FLOW_OK);
	CHECK(push_eos(h));

	GPtrArray *bufs = new_bufs();
	pull_all(h, bufs);
	CHECK(bufs->len == n);
	GString *keys = g_string_new(NULL);
	keyframes_of(bufs, keys);
	CHECKF(!strcmp(keys->str, "0,10"), "keyframes at %s, want 0,10", keys->str);
	CHECK(decode_all(bufs, refs, n, "BGRx 320x240 forced key", NULL, NULL) == (int)n);

	guint fku = 0;
	GstEvent *ev;
	while ((ev = gst_harness_try_pull_event(h))) {
		fku += gst_video_event_is_force_key_unit(ev);
		gst_event_unref(ev);
	}
	CHECKF(fku == 1, "%u force-key-unit events downstream", fku);
	g_string_free(keys, TRUE);
	free_bufs(bufs);
	free_refs(refs, n);
	enc_free(h, bus);
}

GST_START_TEST(test_force_key_unit_downstream)
{
	check_force_key_unit(gst_video_event_new_downstream_force_key_unit(
				     GST_CLOCK_TIME_NONE, GST_CLOCK_TIME_NONE, GST_CLOCK_TIME_NONE,
				     TRUE, 1),
			     FALSE);
}
GST_END_TEST;

GST_START_TEST(test_force_key_unit_upstream)
{
	check_force_key_unit(
		gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE, TRUE, 1), TRUE);
}
GST_END_TEST;

/* key-int-max: the element asks for them. */
GST_START_TEST(test_key_int_max)
{
	GstBus *bus;
	GstVideoInfo info;
	const guint n = 30;
	struct tu_yuv *refs = g_new0(struct tu_yuv, n);

	GstHarness *h = enc_new(vt_daemon.addr, &bus, "key-int-max", "7", NULL);
	set_format(h, &info, GST_VIDEO_FORMAT_BGRx, 320, 240);
	CHECK(push_frames(h, &info, 0, n, refs) == GST_FLOW_OK);
	CHECK(push_eos(h));
	GPtrArray *bufs = new_bufs();
	pull_all(h, bufs);
	CHECK(bufs->len == n);
	GString *keys = g_string_new(NULL);
	keyframes_of(bufs, keys);
	CHECKF(!strcmp(keys->str, "0,7,14,21,28"), "key-int-max=7: keyframes at %s", keys->str);
	CHECK(decode_all(bufs, refs, n, "BGRx 320x240 key-int-max=7", NULL, NULL) == (int)n);
	g_string_free(keys, TRUE);
	free_bufs(bufs);
	free_refs(refs, n);
	enc_free(h, bus);
}
GST_END_TEST;

/* ---- changes while PLAYING ---- */

GST_START_TEST(test_bitrate_change)
{
	GstBus *bus;
	GstVideoInfo info;
	const guint n = 90;

	GstHarness *h = enc_new(vt_daemon.addr, &bus, "bitrate", "6000", NULL);
	set_format(h, &info, GST_VIDEO_FORMAT_I420, 640, 480);
	CHECK(push_frames(h, &info, 0, 45, NULL) == GST_FLOW_OK);
	g_object_set(h->element, "bitrate", 300u, NULL);
	CHECK(push_frames(h, &info, 45, n - 45, NULL) == GST_FLOW_OK);
	CHECK(push_eos(h));

	GPtrArray *bufs = new_bufs();
	pull_all(h, bufs);
	CHECK(bufs->len == n);
	double hi = avg_size(bufs, 15, 45), lo = avg_size(bufs, 60, 90);
	printf("  6000 kbit/s: %.0f B/frame, 300 kbit/s: %.0f B/frame\n", hi, lo);
	CHECKF(lo < hi * 0.4, "frames did not shrink: %.0f -> %.0f bytes", hi, lo);
	/* Around 300 kbit/s at 30 fps = 1250 B/frame; rate control needs slack. */
	CHECKF(lo < 2500, "300 kbit/s gives %.0f B/frame", lo);
	/* A bitrate change is not a new stream. */
	GString *keys = g_string_new(NULL);
	keyframes_of(bufs, keys);
	CHECKF(!strcmp(keys->str, "0"), "keyframes at %s", keys->str);
	CHECK(decode_all(bufs, NULL, 0, "bitrate change", NULL, NULL) == (int)n);
	g_string_free(keys, TRUE);
	free_bufs(bufs);
	enc_free(h, bus);
}
GST_END_TEST;

GST_START_TEST(test_resolution_change)
{
	GstBus *bus;
	GstVideoInfo small, big;
	const guint n = 20;
	struct tu_yuv *refs = g_new0(struct tu_yuv, n);

	GstHarness *h = enc_new(vt_daemon.addr, &bus, "max-inflight", "3", NULL);
	set_format(h, &small, GST_VIDEO_FORMAT_NV12, 320, 240);
	info_for(&big, GST_VIDEO_FORMAT_NV12, 640, 360);
	CHECK(push_frames(h, &small, 0, 10, refs) == GST_FLOW_OK);
	set_caps(h, GST_VIDEO_FORMAT_NV12, 640, 360);
	CHECK(push_frames(h, &big, 10, 10, refs) == GST_FLOW_OK);
	CHECK(push_eos(h));

	GPtrArray *bufs = new_bufs();
	pull_all(h, bufs);
	REQUIRE(bufs->len == n);
	GString *keys = g_string_new(NULL);
	keyframes_of(bufs, keys);
	CHECKF(!strcmp(keys->str, "0,10"), "keyframes at %s, want 0,10", keys->str);
	struct tu_nals nals;
	REQUIRE(buf_nals(g_ptr_array_index(bufs, 10), &nals));
	CHECK(nals.has_sps && nals.has_pps && nals.has_idr);
	uint32_t w = 0, hh = 0;
	CHECK(decode_all(bufs, refs, n, "NV12 320x240 -> 640x360", &w, &hh) == (int)n);
	CHECKF(w == 640 && hh == 360, "last picture %ux%u", w, hh);

	guint caps_events = 0;
	gint last_w = 0;
	GstEvent *ev;
	while ((ev = gst_harness_try_pull_event(h))) {
		if (GST_EVENT_TYPE(ev) == GST_EVENT_CAPS) {
			GstCaps *c;
			gst_event_parse_caps(ev, &c);
			gst_structure_get_int(gst_caps_get_structure(c, 0), "width", &last_w);
			caps_events++;
		}
		gst_event_unref(ev);
	}
	CHECKF(caps_events == 2 && last_w == 640, "%u caps events, last width %d", caps_events,
	       last_w);
	g_string_free(keys, TRUE);
	free_bufs(bufs);
	free_refs(refs, n);
	enc_free(h, bus);
}
GST_END_TEST;

/* A flush drops the frames in flight (their late answers vanish) and the
 * stream restarts with an IDR. */
GST_START_TEST(test_flush_drops_inflight)
{
	GstBus *bus;
	GstVideoInfo info;
	const guint n = 8;

	GstHarness *h = enc_new(vt_daemon.addr, &bus, "max-inflight", "4", NULL);
	set_format(h, &info, GST_VIDEO_FORMAT_I420, 1280, 720);
	CHECK(push_frames(h, &info, 0, 4, NULL) == GST_FLOW_OK);
	CHECK(gst_harness_push_event(h, gst_event_new_flush_start()));
	CHECK(gst_harness_push_event(h, gst_event_new_flush_stop(TRUE)));
	GstSegment seg;
	gst_segment_init(&seg, GST_FORMAT_TIME);
	CHECK(gst_harness_push_event(h, gst_event_new_segment(&seg)));
	GPtrArray *before = new_bufs();
	pull_all(h, before);
	printf("  %u of 4 frames came out before the flush\n", before->len);

	/* Give answers to the flushed frames time to arrive: they must vanish. */
	g_usleep(200000);
	CHECK(push_frames(h, &info, 100, n, NULL) == GST_FLOW_OK);
	CHECK(push_eos(h));
	GPtrArray *after = new_bufs();
	pull_all(h, after);
	CHECKF(after->len == n, "%u frames after the flush, want %u", after->len, n);
	for (guint i = 0; i < after->len; i++) {
		GstBuffer *b = g_ptr_array_index(after, i);
		CHECKF(GST_BUFFER_PTS(b) == (100 + i) * FRAME_NS,
		       "after flush, buffer %u pts %" GST_TIME_FORMAT, i,
		       GST_TIME_ARGS(GST_BUFFER_PTS(b)));
	}
	CHECKF(is_key(g_ptr_array_index(after, 0)), "first frame after a flush is no IDR");
	CHECK(decode_all(after, NULL, 0, "after flush", NULL, NULL) == (int)n);
	free_bufs(before);
	free_bufs(after);
	enc_free(h, bus);
}
GST_END_TEST;

/* ---- memory layouts (one loop test per row) ---- */

static const struct {
	const char *what;
	GstVideoFormat format;
	guint w, h;
	gint strides[3]; /* 0: default layout */
	gboolean dmabuf;
} layouts[] = {
	/* GStreamer's I420 chroma stride for width 98 is 52, the wire's 50: repacked. */
	{ "I420 98x50 (repacked)", GST_VIDEO_FORMAT_I420, 98, 50, { 0 }, FALSE },
	{ "NV12 98x50", GST_VIDEO_FORMAT_NV12, 98, 50, { 0 }, FALSE },
	/* Wire-compatible padding goes as is; incompatible padding is repacked. */
	{ "BGRx 320x240 stride 1536", GST_VIDEO_FORMAT_BGRx, 320, 240, { 1536 }, FALSE },
	{ "NV12 320x240 stride 384", GST_VIDEO_FORMAT_NV12, 320, 240, { 384, 384 }, FALSE },
	{ "NV12 320x240 strides 384/448", GST_VIDEO_FORMAT_NV12, 320, 240, { 384, 448 }, FALSE },
	{ "I420 320x240 strides 512/256", GST_VIDEO_FORMAT_I420, 320, 240, { 512, 256, 256 },
	  FALSE },
	{ "I420 320x240 strides 512/192", GST_VIDEO_FORMAT_I420, 320, 240, { 512, 192, 192 },
	  FALSE },
#ifdef HAVE_GST_ALLOCATORS
	/* Resource mode needs a host that offers it; this one takes pixels. */
	{ "RGBA 320x240 dmabuf memory", GST_VIDEO_FORMAT_RGBA, 320, 240, { 0 }, TRUE },
#endif
};

#ifdef HAVE_GST_ALLOCATORS
/* The same pixels in a dmabuf-typed memory (a memfd). */
static GstBuffer *to_dmabuf(GstBuffer *b)
{
	gsize size = gst_buffer_get_size(b);
	int fd = memfd_create("frame", MFD_CLOEXEC);
	REQUIRE(fd >= 0 && ftruncate(fd, (off_t)size) == 0);
	GstMapInfo m;
	REQUIRE(gst_buffer_map(b, &m, GST_MAP_READ));
	REQUIRE(pwrite(fd, m.data, size, 0) == (ssize_t)size);
	gst_buffer_unmap(b, &m);
	GstAllocator *alloc = gst_dmabuf_allocator_new();
	GstBuffer *db = gst_buffer_new();
	gst_buffer_append_memory(db, gst_dmabuf_allocator_alloc(alloc, fd, size));
	CHECK(gst_is_dmabuf_memory(gst_buffer_peek_memory(db, 0)));
	gst_buffer_copy_into(db, b, GST_BUFFER_COPY_METADATA, 0, -1);
	gst_object_unref(alloc);
	gst_buffer_unref(b);
	return db;
}
#endif

GST_START_TEST(test_memory_layout)
{
	GstBus *bus;
	GstVideoInfo info;
	const guint n = 6;
	struct tu_yuv *refs = g_new0(struct tu_yuv, n);
	guint w = layouts[__i__].w, hh = layouts[__i__].h;
	const gint *strides = layouts[__i__].strides[0] ? layouts[__i__].strides : NULL;

	info_for(&info, layouts[__i__].format, w, hh);
	if (strides) {
		/* Padded strides, planes one after the other. */
		gsize off = 0;
		for (guint p = 0; p < GST_VIDEO_INFO_N_PLANES(&info); p++) {
			info.stride[p] = strides[p];
			info.offset[p] = off;
			off += (gsize)strides[p] * (p == 0 ? hh : hh / 2);
		}
		info.size = off;
	}
	GstHarness *h = enc_new(vt_daemon.addr, &bus, NULL);
	set_caps(h, layouts[__i__].format, w, hh);
	for (guint i = 0; i < n; i++) {
		GstBuffer *b = make_frame(&info, strides != NULL, i, &refs[i]);
#ifdef HAVE_GST_ALLOCATORS
		if (layouts[__i__].dmabuf)
			b = to_dmabuf(b);
#endif
		CHECK(gst_harness_push(h, b) == GST_FLOW_OK);
	}
	CHECK(push_eos(h));
	GPtrArray *bufs = new_bufs();
	pull_all(h, bufs);
	CHECKF(bufs->len == n, "%s: %u of %u frames", layouts[__i__].what, bufs->len, n);
	CHECK(decode_all(bufs, refs, n, layouts[__i__].what, NULL, NULL) == (int)n);
	free_bufs(bufs);
	free_refs(refs, n);
	enc_free(h, bus);
}
GST_END_TEST;

/* ---- the encoder hint ---- */

GST_START_TEST(test_encoder_hint_mismatch_warns)
{
	GstBus *bus;
	GstVideoInfo info;
	GstHarness *h = enc_new(vt_daemon.addr, &bus, "encoder", "h264_nvenc", NULL);

	set_format(h, &info, GST_VIDEO_FORMAT_I420, 320, 240);
	CHECK(push_frames(h, &info, 0, 3, NULL) == GST_FLOW_OK);
	CHECK(push_eos(h));
	char *text = bus_wait_text(bus, GST_MESSAGE_WARNING, 2000, NULL, NULL);
	CHECK(text != NULL);
	CHECKF(strstr(text, "libx264") && strstr(text, "h264_nvenc"), "warning: %s", text);
	g_free(text);
	CHECK(gst_harness_buffers_in_queue(h) == 3);
	enc_free(h, bus);
}
GST_END_TEST;

GST_START_TEST(test_encoder_hint_match_silent)
{
	GstBus *bus;
	GstVideoInfo info;
	GstHarness *h = enc_new(vt_daemon.addr, &bus, "encoder", "libx264", NULL);

	set_format(h, &info, GST_VIDEO_FORMAT_I420, 320, 240);
	CHECK(push_frames(h, &info, 0, 3, NULL) == GST_FLOW_OK);
	CHECK(push_eos(h));
	GstMessage *m = bus_wait(bus, GST_MESSAGE_WARNING | GST_MESSAGE_ERROR, 200);
	CHECKF(m == NULL, "%" GST_PTR_FORMAT, m);
	CHECK(gst_harness_buffers_in_queue(h) == 3);
	enc_free(h, bus);
}
GST_END_TEST;

static Suite *vsockenc_stream_suite(void)
{
	Suite *s = suite_create("vsockenc_stream");

	if (!gsttest_suite_init("vsockenc"))
		exit(1);

	TCase *tc = gsttest_tcase(s, "output", vt_setup, vt_teardown, 120);
	tcase_add_test(tc, test_stream_output);
	tcase_add_test(tc, test_eos_drains_inflight);
	tcase_add_test(tc, test_latency_and_host_encoder);

	tc = gsttest_tcase(s, "keyframes", vt_setup, vt_teardown, 120);
	tcase_add_test(tc, test_force_key_unit_downstream);
	tcase_add_test(tc, test_force_key_unit_upstream);
	tcase_add_test(tc, test_key_int_max);

	tc = gsttest_tcase(s, "changes", vt_setup, vt_teardown, 120);
	tcase_add_test(tc, test_bitrate_change);
	tcase_add_test(tc, test_resolution_change);
	tcase_add_test(tc, test_flush_drops_inflight);

	tc = gsttest_tcase(s, "layouts", vt_setup, vt_teardown, 60);
	tcase_add_loop_test(tc, test_memory_layout, 0, G_N_ELEMENTS(layouts));

	tc = gsttest_tcase(s, "encoder_hint", vt_setup, vt_teardown, 60);
	tcase_add_test(tc, test_encoder_hint_mismatch_warns);
	tcase_add_test(tc, test_encoder_hint_match_silent);
	return s;
}

GST_CHECK_MAIN(vsockenc_stream);
