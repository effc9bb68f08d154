/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the vsockenc check suites (test_vsockenc*.c) share: test-pattern
 * frames in any GstVideoInfo layout with their reference pictures, vsockenc
 * under GstHarness on its own bus, decoding every output buffer with a PSNR
 * check, bus message helpers, and the per-test fixture (a temporary
 * directory and the real daemon).
 */
#include "vsocktest.h"

#include <signal.h>
#include <stdarg.h>
#include <string.h>

#include <gst/video/video.h>

#include "check_asserts.h"
#include "hfe/wire.h"

char *vt_dir;
struct gsttest_daemon vt_daemon;

static void setup_dir(void)
{
	vt_dir = tu_mkdtemp("test_vsockenc");
	REQUIRE(vt_dir);
	memset(&vt_daemon, 0, sizeof(vt_daemon));
	vt_daemon.pid = -1;
}

void vt_setup_dir(void)
{
	setup_dir();
}

void vt_setup(void)
{
	setup_dir();
	gsttest_daemon_init(&vt_daemon, vt_dir, "main");
	vt_daemon.extra[0] = "--max-width";
	vt_daemon.extra[1] = "1920";
	vt_daemon.extra[2] = "--max-height";
	vt_daemon.extra[3] = "1088";
	REQUIRE(gsttest_daemon_start(&vt_daemon));
}

void vt_teardown(void)
{
	/* Only reached when the test passed: a failed one keeps its logs. */
	gsttest_daemon_stop(&vt_daemon, SIGTERM);
	tu_rm_rf(vt_dir);
	free(vt_dir);
	vt_dir = NULL;
}

/* ---- frames ---- */

static guint32 fourcc_of(GstVideoFormat f)
{
	switch (f) {
	case GST_VIDEO_FORMAT_BGRx:
		return HFE_FMT_XRGB8888;
	case GST_VIDEO_FORMAT_BGRA:
		return HFE_FMT_ARGB8888;
	case GST_VIDEO_FORMAT_RGBx:
		return HFE_FMT_XBGR8888;
	case GST_VIDEO_FORMAT_RGBA:
		return HFE_FMT_ABGR8888;
	case GST_VIDEO_FORMAT_NV12:
		return HFE_FMT_NV12;
	case GST_VIDEO_FORMAT_I420:
		return HFE_FMT_I420;
	default:
		return 0;
	}
}

/* Copy a tightly packed wire-layout frame into a mapped GstVideoFrame. */
static void wire_to_frame(guint32 fourcc, guint w, guint h, const uint8_t *wire, GstVideoFrame *vf)
{
	guint bpp = tu_bpp(fourcc);
	const uint8_t *src = wire;
	guint nplanes = fourcc == HFE_FMT_I420 ? 3 : fourcc == HFE_FMT_NV12 ? 2 : 1;

	for (guint p = 0; p < nplanes; p++) {
		guint row = p == 0 ? w * bpp : fourcc == HFE_FMT_NV12 ? w : w / 2;
		guint rows = p == 0 ? h : h / 2;
		uint8_t *dst = GST_VIDEO_FRAME_PLANE_DATA(vf, p);
		gint stride = GST_VIDEO_FRAME_PLANE_STRIDE(vf, p);
		for (guint y = 0; y < rows; y++)
			memcpy(dst + (gsize)y * stride, src + (gsize)y * row, row);
		src += (gsize)row * rows;
	}
}

/* Frame n of the test pattern in the layout `info` describes; `meta` adds a
 * GstVideoMeta (needed when info is not the default layout). ref (optional)
 * gets the reference I420 picture. */
GstBuffer *make_frame(const GstVideoInfo *info, gboolean meta, guint n, struct tu_yuv *ref)
{
	guint w = GST_VIDEO_INFO_WIDTH(info), h = GST_VIDEO_INFO_HEIGHT(info);
	guint32 fourcc = fourcc_of(GST_VIDEO_INFO_FORMAT(info));
	uint8_t *rgb = g_malloc((gsize)w * h * 3);
	GstVideoFrame vf;

	tu_pattern_rgb(rgb, w, h, n);
	uint32_t stride = w * tu_bpp(fourcc);
	uint8_t *wire = g_malloc(tu_frame_size(fourcc, w, h, stride));
	tu_write_frame(fourcc, w, h, stride, rgb, wire);

	GstBuffer *buf = gst_buffer_new_allocate(NULL, GST_VIDEO_INFO_SIZE(info), NULL);
	REQUIRE(buf);
	if (meta)
		gst_buffer_add_video_meta_full(buf, GST_VIDEO_FRAME_FLAG_NONE,
					       GST_VIDEO_INFO_FORMAT(info), w, h,
					       GST_VIDEO_INFO_N_PLANES(info), (gsize *)info->offset,
					       (gint *)info->stride);
	REQUIRE(gst_video_frame_map(&vf, info, buf, GST_MAP_WRITE));
	wire_to_frame(fourcc, w, h, wire, &vf);
	gst_video_frame_unmap(&vf);

	GST_BUFFER_PTS(buf) = n * FRAME_NS;
	GST_BUFFER_DURATION(buf) = FRAME_NS;
	if (ref)
		tu_ref_rgb_to_yuv(rgb, w, h, ref);
	g_free(rgb);
	g_free(wire);
	return buf;
}

void info_for(GstVideoInfo *info, GstVideoFormat f, guint w, guint h)
{
	gst_video_info_init(info);
	REQUIRE(gst_video_info_set_format(info, f, w, h));
	GST_VIDEO_INFO_FPS_N(info) = 30;
	GST_VIDEO_INFO_FPS_D(info) = 1;
}

/* ---- harness ---- */

static GstStaticPadTemplate h_src = GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS,
							    GST_STATIC_CAPS("video/x-raw"));
static GstStaticPadTemplate h_sink = GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
							     GST_STATIC_CAPS("video/x-h264"));

/* vsockenc with address and "name", "value" property pairs (NULL-ended),
 * on its own bus, started (PLAYING). */
GstHarness *enc_new(const char *addr, GstBus **bus, ...)
{
	GstElement *e = gst_element_factory_make("vsockenc", NULL);
	va_list ap;
	const char *name;

	REQUIRE(e);
	gst_object_ref_sink(e);
	g_object_set(e, "address", addr, NULL);
	va_start(ap, bus);
	while ((name = va_arg(ap, const char *))) {
		const char *value = va_arg(ap, const char *);
		gst_util_set_object_arg(G_OBJECT(e), name, value);
	}
	va_end(ap);
	*bus = gst_bus_new();
	gst_element_set_bus(e, *bus);
	GstHarness *h = gst_harness_new_full(e, &h_src, "sink", &h_sink, "src");
	gst_object_unref(e);
	return h;
}

void enc_free(GstHarness *h, GstBus *bus)
{
	gst_harness_teardown(h);
	gst_object_unref(bus);
}

void set_caps(GstHarness *h, GstVideoFormat f, guint w, guint hh)
{
	gst_harness_set_src_caps(h, gst_caps_new_simple("video/x-raw", "format", G_TYPE_STRING,
							gst_video_format_to_string(f), "width",
							G_TYPE_INT, (gint)w, "height", G_TYPE_INT,
							(gint)hh, "framerate", GST_TYPE_FRACTION,
							30, 1, NULL));
}

/* Announce f at w x hh on the harness and describe frames of it in info. */
void set_format(GstHarness *h, GstVideoInfo *info, GstVideoFormat f, guint w, guint hh)
{
	set_caps(h, f, w, hh);
	info_for(info, f, w, hh);
}

/* Every output buffer still queued in the harness, appended to out. */
void pull_all(GstHarness *h, GPtrArray *out)
{
	GstBuffer *b;
	while ((b = gst_harness_try_pull(h)))
		g_ptr_array_add(out, b);
}

/* Wait until at least n buffers have come out (up to timeout_ms). */
bool wait_out(GstHarness *h, guint n, int timeout_ms)
{
	uint64_t end = tu_now_ns() + (uint64_t)timeout_ms * 1000000u;
	while (gst_harness_buffers_in_queue(h) < n) {
		if (tu_now_ns() > end)
			return false;
		g_usleep(2000);
	}
	return true;
}

bool buf_nals(GstBuffer *b, struct tu_nals *nals)
{
	GstMapInfo m;
	if (!gst_buffer_map(b, &m, GST_MAP_READ))
		return false;
	int r = tu_nal_parse(m.data, m.size, nals);
	gst_buffer_unmap(b, &m);
	/* nals point into the buffer, which the caller keeps */
	return r > 0;
}

bool is_key(GstBuffer *b)
{
	return !GST_BUFFER_FLAG_IS_SET(b, GST_BUFFER_FLAG_DELTA_UNIT);
}

/*
 * Decode bufs in order with one decoder. refs[i] is the reference of the
 * frame with PTS i * FRAME_NS (NULL: skip the PSNR check). Returns the
 * number of pictures; checks decoding errors and PSNR.
 */
int decode_all(GPtrArray *bufs, struct tu_yuv *refs, guint nrefs, const char *what,
		      uint32_t *last_w, uint32_t *last_h)
{
	struct tu_decoder *d = tu_decoder_new();
	int pictures = 0;
	double worst = 100;

	REQUIRE(d);
	for (guint i = 0; i < bufs->len; i++) {
		GstBuffer *b = g_ptr_array_index(bufs, i);
		GstMapInfo m;
		struct tu_yuv pic;
		REQUIRE(gst_buffer_map(b, &m, GST_MAP_READ));
		int r = tu_decoder_decode(d, m.data, m.size, &pic, NULL);
		gst_buffer_unmap(b, &m);
		CHECKF(r >= 0, "%s: buffer %u does not decode", what, i);
		if (r != 1) {
			CHECKF(r == 1, "%s: buffer %u gave no picture (low-delay decoder)", what,
			       i);
			continue;
		}
		pictures++;
		guint idx = (guint)(GST_BUFFER_PTS(b) / FRAME_NS);
		if (refs && idx < nrefs && refs[idx].y) {
			double psnr[3];
			CHECKF(tu_psnr_yuv(&refs[idx], &pic, psnr) == 0,
			       "%s: frame %u is %ux%u, expected %ux%u", what, idx, pic.w, pic.h,
			       refs[idx].w, refs[idx].h);
			for (int c = 0; c < 3; c++)
				worst = psnr[c] < worst ? psnr[c] : worst;
		}
		if (last_w) {
			*last_w = pic.w;
			*last_h = pic.h;
		}
		tu_yuv_free(&pic);
	}
	tu_decoder_free(d);
	if (refs) {
		CHECKF(worst >= MIN_PSNR, "%s: worst plane PSNR %.2f dB < %.1f", what, worst,
		       MIN_PSNR);
		printf("  %s: %d pictures, worst PSNR %.2f dB\n", what, pictures, worst);
	} else {
		printf("  %s: %d pictures\n", what, pictures);
	}
	return pictures;
}

void free_bufs(GPtrArray *bufs)
{
	g_ptr_array_free(bufs, TRUE);
}

GPtrArray *new_bufs(void)
{
	return g_ptr_array_new_with_free_func((GDestroyNotify)gst_buffer_unref);
}

void free_refs(struct tu_yuv *refs, guint n)
{
	for (guint i = 0; i < n; i++)
		if (refs[i].y)
			tu_yuv_free(&refs[i]);
	g_free(refs);
}

/* The first ERROR or WARNING message (types) on bus within timeout_ms. */
GstMessage *bus_wait(GstBus *bus, GstMessageType types, int timeout_ms)
{
	return gst_bus_timed_pop_filtered(bus, (GstClockTime)timeout_ms * GST_MSECOND, types);
}

/* Text of an error/warning message (message and debug), g_free it. */
char *msg_text(GstMessage *m, GQuark *domain, gint *code)
{
	GError *e = NULL;
	gchar *dbg = NULL;

	if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR)
		gst_message_parse_error(m, &e, &dbg);
	else if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_WARNING)
		gst_message_parse_warning(m, &e, &dbg);
	else if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_INFO)
		gst_message_parse_info(m, &e, &dbg);
	char *s = g_strdup_printf("%s | %s", e ? e->message : "", dbg ? dbg : "");
	if (domain)
		*domain = e ? e->domain : 0;
	if (code)
		*code = e ? e->code : 0;
	g_clear_error(&e);
	g_free(dbg);
	return s;
}

/* msg_text of the first message of `types` on bus within timeout_ms, or NULL. */
char *bus_wait_text(GstBus *bus, GstMessageType types, int timeout_ms, GQuark *domain,
			   gint *code)
{
	GstMessage *m = bus_wait(bus, types, timeout_ms);
	char *text = NULL;

	if (m) {
		text = msg_text(m, domain, code);
		gst_message_unref(m);
	}
	return text;
}

/* Push n frames (pts from first) of info; refs (optional) get references. */
GstFlowReturn push_frames(GstHarness *h, const GstVideoInfo *info, guint first, guint n,
				 struct tu_yuv *refs)
{
	for (guint i = first; i < first + n; i++) {
		GstFlowReturn r =
			gst_harness_push(h, make_frame(info, FALSE, i, refs ? &refs[i] : NULL));
		if (r != GST_FLOW_OK)
			return r;
	}
	return GST_FLOW_OK;
}

bool push_eos(GstHarness *h)
{
	return gst_harness_push_event(h, gst_event_new_eos());
}

void keyframes_of(GPtrArray *bufs, GString *out)
{
	for (guint i = 0; i < bufs->len; i++) {
		GstBuffer *b = g_ptr_array_index(bufs, i);
		struct tu_nals nals;
		REQUIRE(buf_nals(b, &nals));
		CHECKF(is_key(b) == nals.has_idr, "buffer %u: keyframe flag vs IDR", i);
		CHECKF(!nals.has_idr || (nals.has_sps && nals.has_pps),
		       "buffer %u: IDR without SPS", i);
		if (is_key(b))
			g_string_append_printf(out, "%s%u", out->len ? "," : "",
					       (guint)(GST_BUFFER_PTS(b) / FRAME_NS));
	}
}

double avg_size(GPtrArray *bufs, guint from, guint to)
{
	gsize sum = 0;
	for (guint i = from; i < to && i < bufs->len; i++)
		sum += gst_buffer_get_size(g_ptr_array_index(bufs, i));
	return to > from ? (double)sum / (to - from) : 0;
}

