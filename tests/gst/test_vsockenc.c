/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vsockenc under GstHarness against the real daemon ($HFE_DAEMON, started
 * here on unix sockets in a temporary directory):
 *   - caps: src caps fields, sink caps restricted to the host's limits, the
 *     profile property and a downstream profile (checked in the SPS), odd
 *     sizes refused with a message
 *   - pipelining: max-inflight frames sent before any reply; the latency
 *     reported follows the measured round trip
 *   - a stream: SPS/PPS first, frames in = frames out, PTS preserved and
 *     DTS = PTS, keyframe flags match the bitstream, every frame decodes
 *     with PSNR >= 35 dB, EOS drains all frames in flight
 *   - force-key-unit events downstream and upstream, key-int-max
 *   - bitrate changed while PLAYING (smaller frames, no IDR)
 *   - resolution change mid-stream (IDR, new SPS, new caps, decodes)
 *   - flushing drops the frames in flight and restarts with an IDR
 *   - memory layouts: repacked I420/NV12, padded strides sent as is, dmabuf
 *     memory (resource mode falls back to pixels on a host without it)
 *   - the encoder hint: a warning when the host's encoder differs
 *   - host killed mid-stream: an error naming the address; with
 *     reconnect=true the stream resumes with an IDR on a restarted daemon
 *   - unreachable hosts: an error naming the address, quickly
 *   - the default address lookup and the virtio-gpu helper's fallbacks
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#ifdef HAVE_GST_ALLOCATORS
#include <gst/allocators/allocators.h>
#endif

#include "gsthfeaddr.h"
#include "gstvirtgpu.h"
#include "hfe/wire.h"
#include "gsttest.h"
#include "test_util.h"

#define FRAME_NS (GST_SECOND / 30)
#define MIN_PSNR 35.0

static char *tmp_dir;

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
static GstBuffer *make_frame(const GstVideoInfo *info, gboolean meta, guint n, struct tu_yuv *ref)
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

static void info_for(GstVideoInfo *info, GstVideoFormat f, guint w, guint h)
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
static GstHarness *enc_new(const char *addr, GstBus **bus, ...)
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

static void enc_free(GstHarness *h, GstBus *bus)
{
	gst_harness_teardown(h);
	gst_object_unref(bus);
}

static void set_caps(GstHarness *h, GstVideoFormat f, guint w, guint hh)
{
	gst_harness_set_src_caps(h, gst_caps_new_simple("video/x-raw", "format", G_TYPE_STRING,
							gst_video_format_to_string(f), "width",
							G_TYPE_INT, (gint)w, "height", G_TYPE_INT,
							(gint)hh, "framerate", GST_TYPE_FRACTION,
							30, 1, NULL));
}

/* Announce f at w x hh on the harness and describe frames of it in info. */
static void set_format(GstHarness *h, GstVideoInfo *info, GstVideoFormat f, guint w, guint hh)
{
	set_caps(h, f, w, hh);
	info_for(info, f, w, hh);
}

/* Every output buffer still queued in the harness, appended to out. */
static void pull_all(GstHarness *h, GPtrArray *out)
{
	GstBuffer *b;
	while ((b = gst_harness_try_pull(h)))
		g_ptr_array_add(out, b);
}

/* Wait until at least n buffers have come out (up to timeout_ms). */
static bool wait_out(GstHarness *h, guint n, int timeout_ms)
{
	uint64_t end = tu_now_ns() + (uint64_t)timeout_ms * 1000000u;
	while (gst_harness_buffers_in_queue(h) < n) {
		if (tu_now_ns() > end)
			return false;
		g_usleep(2000);
	}
	return true;
}

static bool buf_nals(GstBuffer *b, struct tu_nals *nals)
{
	GstMapInfo m;
	if (!gst_buffer_map(b, &m, GST_MAP_READ))
		return false;
	int r = tu_nal_parse(m.data, m.size, nals);
	gst_buffer_unmap(b, &m);
	/* nals point into the buffer, which the caller keeps */
	return r > 0;
}

static bool is_key(GstBuffer *b)
{
	return !GST_BUFFER_FLAG_IS_SET(b, GST_BUFFER_FLAG_DELTA_UNIT);
}

/*
 * Decode bufs in order with one decoder. refs[i] is the reference of the
 * frame with PTS i * FRAME_NS (NULL: skip the PSNR check). Returns the
 * number of pictures; checks decoding errors and PSNR.
 */
static int decode_all(GPtrArray *bufs, struct tu_yuv *refs, guint nrefs, const char *what,
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

static void free_bufs(GPtrArray *bufs)
{
	g_ptr_array_free(bufs, TRUE);
}

static GPtrArray *new_bufs(void)
{
	return g_ptr_array_new_with_free_func((GDestroyNotify)gst_buffer_unref);
}

static void free_refs(struct tu_yuv *refs, guint n)
{
	for (guint i = 0; i < n; i++)
		if (refs[i].y)
			tu_yuv_free(&refs[i]);
	g_free(refs);
}

/* The first ERROR or WARNING message (types) on bus within timeout_ms. */
static GstMessage *bus_wait(GstBus *bus, GstMessageType types, int timeout_ms)
{
	return gst_bus_timed_pop_filtered(bus, (GstClockTime)timeout_ms * GST_MSECOND, types);
}

/* Text of an error/warning message (message and debug), g_free it. */
static char *msg_text(GstMessage *m, GQuark *domain, gint *code)
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
static char *bus_wait_text(GstBus *bus, GstMessageType types, int timeout_ms, GQuark *domain,
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

/* ---- tests ---- */

static void test_default_address(void)
{
	printf("default address lookup\n");
	char *dir = g_build_filename(tmp_dir, "ports", NULL);
	REQUIRE(g_mkdir_with_parents(dir, 0755) == 0);

	gchar *a = gst_hfe_default_address_in(dir);
	CHECKF(!strcmp(a, "vsock:2:5000"), "empty dir: %s", a);
	g_free(a);
	a = gst_hfe_default_address_in("/nonexistent/virtio-ports");
	CHECKF(!strcmp(a, "vsock:2:5000"), "missing dir: %s", a);
	g_free(a);

	const char *names[] = { "com.redhat.spice.0", "org.helix.hfe.1", "org.helix.hfe.0",
				"org.qemu.guest_agent.0" };
	for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
		gchar *p = g_build_filename(dir, names[i], NULL);
		REQUIRE(g_file_set_contents(p, "", 0, NULL));
		g_free(p);
	}
	gchar *want = g_strdup_printf("serial:%s/org.helix.hfe.0", dir);
	a = gst_hfe_default_address_in(dir);
	CHECKF(!strcmp(a, want), "got %s, want %s", a, want);
	g_free(a);
	g_free(want);

	/* Explicit addresses win; empty means default. */
	a = gst_hfe_resolve_address("tcp:10.0.2.2:15937");
	CHECK(!strcmp(a, "tcp:10.0.2.2:15937"));
	g_free(a);
	gchar *def = gst_hfe_default_address();
	a = gst_hfe_resolve_address("");
	CHECK(!strcmp(a, def));
	g_free(a);

	/* The element reports the address it would use. */
	GstElement *e = gst_element_factory_make("vsockenc", NULL);
	REQUIRE(e);
	gchar *prop = NULL;
	g_object_get(e, "address", &prop, NULL);
	CHECKF(prop && !strcmp(prop, def), "address property %s, default %s", prop, def);
	g_free(prop);
	gst_object_unref(e);
	g_free(def);
	tu_rm_rf(dir);
	g_free(dir);
}

static void test_virtgpu(void)
{
	printf("virtio-gpu helper fallbacks\n");
	/* Not a DRM device at all. */
	CHECK(gst_hfe_virtgpu_open_path("/dev/null") == NULL);
	CHECK(gst_hfe_virtgpu_open_path("/nonexistent/renderD128") == NULL);
	CHECK(gst_hfe_virtgpu_resource_id(NULL, 0) == 0);

	int fd = memfd_create("not-a-dmabuf", MFD_CLOEXEC);
	REQUIRE(fd >= 0);
	GstHfeVirtGpu *gpu = gst_hfe_virtgpu_open();
	if (gpu) {
		/* A virtio-gpu guest: a memfd is no buffer of that device. */
		CHECK(gst_hfe_virtgpu_resource_id(gpu, fd) == 0);
		gst_hfe_virtgpu_close(gpu);
	} else {
		printf("  (no virtio-gpu DRM device here)\n");
	}
	CHECK(gst_hfe_virtgpu_resource_id(NULL, fd) == 0);
	close(fd);
}

static void check_unreachable(const char *addr, int timeout_ms, int max_ms)
{
	GstElement *e = gst_element_factory_make("vsockenc", NULL);
	GstBus *bus = gst_bus_new();
	char tmo[16];

	REQUIRE(e);
	gst_object_ref_sink(e);
	snprintf(tmo, sizeof(tmo), "%d", timeout_ms);
	g_object_set(e, "address", addr, NULL);
	gst_util_set_object_arg(G_OBJECT(e), "timeout", tmo);
	gst_element_set_bus(e, bus);

	uint64_t t0 = tu_now_ns();
	GstStateChangeReturn r = gst_element_set_state(e, GST_STATE_PAUSED);
	int ms = (int)((tu_now_ns() - t0) / 1000000);
	CHECKF(r == GST_STATE_CHANGE_FAILURE, "%s: state change %d", addr, r);
	CHECKF(ms <= max_ms, "%s: took %d ms (timeout %d)", addr, ms, timeout_ms);

	GQuark domain;
	gint code;
	char *text = bus_wait_text(bus, GST_MESSAGE_ERROR, 1000, &domain, &code);
	CHECKF(text != NULL, "%s: no error on the bus", addr);
	if (text) {
		CHECKF(domain == GST_RESOURCE_ERROR && code == GST_RESOURCE_ERROR_OPEN_READ_WRITE,
		       "%s: error %s/%d", addr, g_quark_to_string(domain), code);
		CHECKF(strstr(text, addr) != NULL, "error does not name %s: %s", addr, text);
		printf("  %s -> %s (%d ms)\n", addr, text, ms);
		g_free(text);
	}
	gst_element_set_state(e, GST_STATE_NULL);
	gst_object_unref(e);
	gst_object_unref(bus);
}

static void test_unreachable(void)
{
	printf("unreachable hosts\n");
	char addr[256];
	snprintf(addr, sizeof(addr), "unix:%s/nobody-here.sock", tmp_dir);
	check_unreachable(addr, 2000, 1500);

	/* A port bound but not listening: refused, and nobody else can take it
	 * while we hold it (a fixed port may be in use on a shared machine). */
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(sin);
	REQUIRE(fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
		getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
	snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%u", ntohs(sin.sin_port));
	check_unreachable(addr, 2000, 1500);
	close(fd);
	/* A black hole: no answer at all; the timeout bounds the wait. */
	check_unreachable("tcp:192.0.2.1:5000", 300, 2500);
}

/* Push n frames (pts from first) of info; refs (optional) get references. */
static GstFlowReturn push_frames(GstHarness *h, const GstVideoInfo *info, guint first, guint n,
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

static bool push_eos(GstHarness *h)
{
	return gst_harness_push_event(h, gst_event_new_eos());
}

static void test_caps(struct gsttest_daemon *dm)
{
	GstBus *bus;
	GstVideoInfo info;

	printf("caps negotiation\n");
	GstHarness *h = enc_new(dm->addr, &bus, NULL);

	/* Before any caps: the sink pad offers our formats within the host's limits. */
	GstCaps *sinkcaps = gst_pad_query_caps(GST_PAD_PEER(h->srcpad), NULL);
	GstStructure *s = gst_caps_get_structure(sinkcaps, 0);
	const GValue *wv = gst_structure_get_value(s, "width");
	const GValue *hv = gst_structure_get_value(s, "height");
	CHECKF(wv && GST_VALUE_HOLDS_INT_RANGE(wv) && gst_value_get_int_range_max(wv) == 1920,
	       "sink caps %" GST_PTR_FORMAT, sinkcaps);
	CHECKF(hv && GST_VALUE_HOLDS_INT_RANGE(hv) && gst_value_get_int_range_max(hv) == 1088,
	       "sink caps %" GST_PTR_FORMAT, sinkcaps);
	const GValue *fv = gst_structure_get_value(s, "format");
	CHECKF(fv && GST_VALUE_HOLDS_LIST(fv) && gst_value_list_get_size(fv) == 6,
	       "sink formats %" GST_PTR_FORMAT, sinkcaps);
	gst_caps_unref(sinkcaps);

	set_format(h, &info, GST_VIDEO_FORMAT_I420, 320, 240);
	CHECK(push_frames(h, &info, 0, 3, NULL) == GST_FLOW_OK);
	CHECK(push_eos(h));
	CHECK(gst_harness_buffers_in_queue(h) == 3);

	GstCaps *out = gst_pad_get_current_caps(h->sinkpad);
	REQUIRE(out);
	s = gst_caps_get_structure(out, 0);
	gint w = 0, hh = 0, fn = 0, fd = 0;
	CHECKF(gst_structure_has_name(s, "video/x-h264"), "%" GST_PTR_FORMAT, out);
	CHECKF(!g_strcmp0(gst_structure_get_string(s, "stream-format"), "byte-stream"),
	       "%" GST_PTR_FORMAT, out);
	CHECKF(!g_strcmp0(gst_structure_get_string(s, "alignment"), "au"), "%" GST_PTR_FORMAT, out);
	CHECKF(!g_strcmp0(gst_structure_get_string(s, "profile"), "constrained-baseline"),
	       "%" GST_PTR_FORMAT, out);
	CHECK(gst_structure_get_int(s, "width", &w) && w == 320);
	CHECK(gst_structure_get_int(s, "height", &hh) && hh == 240);
	CHECK(gst_structure_get_fraction(s, "framerate", &fn, &fd) && fn == 30 && fd == 1);
	gst_caps_unref(out);

	GstBuffer *b = gst_harness_pull(h);
	struct tu_nals nals;
	REQUIRE(buf_nals(b, &nals));
	CHECKF(nals.sps_profile == 66 && (nals.sps_constraints & 0x40),
	       "baseline SPS: profile %d constraints 0x%x", nals.sps_profile, nals.sps_constraints);
	gst_buffer_unref(b);
	enc_free(h, bus);

	/* The profile property, and a profile asked for by downstream. */
	struct {
		const char *prop;
		const char *downstream;
		const char *caps_profile;
		int idc;
	} cases[] = {
		{ "high", NULL, "high", 100 },
		{ "main", NULL, "main", 77 },
		{ "auto", "video/x-h264,profile=high", "high", 100 },
		{ "auto", "video/x-h264,profile=main", "main", 77 },
		{ "auto", "video/x-h264,profile=baseline", "baseline", 66 },
	};
	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		h = enc_new(dm->addr, &bus, "profile", cases[i].prop, NULL);
		if (cases[i].downstream)
			gst_harness_set_sink_caps_str(h, cases[i].downstream);
		set_format(h, &info, GST_VIDEO_FORMAT_NV12, 320, 240);
		CHECK(push_frames(h, &info, 0, 2, NULL) == GST_FLOW_OK);
		CHECK(push_eos(h));
		out = gst_pad_get_current_caps(h->sinkpad);
		REQUIRE(out);
		const char *p = gst_structure_get_string(gst_caps_get_structure(out, 0), "profile");
		CHECKF(!g_strcmp0(p, cases[i].caps_profile), "profile=%s downstream %s: caps %s",
		       cases[i].prop, cases[i].downstream, p);
		gst_caps_unref(out);
		b = gst_harness_pull(h);
		REQUIRE(b && buf_nals(b, &nals));
		CHECKF(nals.sps_profile == cases[i].idc, "profile=%s downstream %s: SPS profile %d",
		       cases[i].prop, cases[i].downstream, nals.sps_profile);
		gst_buffer_unref(b);
		enc_free(h, bus);
	}

	/* An odd size is refused, with a message saying why. */
	h = enc_new(dm->addr, &bus, NULL);
	gst_harness_set_src_caps_str(h, "video/x-raw,format=I420,width=320,height=240,"
					"framerate=30/1");
	GstCaps *odd = gst_caps_from_string("video/x-raw,format=I420,width=321,height=240,"
					    "framerate=30/1");
	gst_pad_push_event(h->srcpad, gst_event_new_caps(odd)); /* stored even if refused */
	gst_caps_unref(odd);
	GstFlowReturn fr = gst_harness_push(h, gst_buffer_new_allocate(NULL, 321 * 240 * 2, NULL));
	CHECKF(fr == GST_FLOW_NOT_NEGOTIATED, "odd size: %s", gst_flow_get_name(fr));
	char *text = bus_wait_text(bus, GST_MESSAGE_ERROR, 1000, NULL, NULL);
	CHECK(text != NULL);
	if (text) {
		CHECKF(strstr(text, "321x240") != NULL, "odd size error: %s", text);
		g_free(text);
	}
	enc_free(h, bus);
}

/* A plain stream: everything about the output buffers. */
static void test_stream(struct gsttest_daemon *dm)
{
	const guint n = 40;
	GstBus *bus;
	GstVideoInfo info;
	struct tu_yuv *refs = g_new0(struct tu_yuv, n);

	printf("stream: SPS/PPS first, count, PTS/DTS, EOS drain, decode\n");
	GstHarness *h = enc_new(dm->addr, &bus, "max-inflight", "4", NULL);
	set_format(h, &info, GST_VIDEO_FORMAT_I420, 640, 480);
	CHECK(push_frames(h, &info, 0, n, refs) == GST_FLOW_OK);
	guint before_eos = gst_harness_buffers_in_queue(h);
	CHECK(push_eos(h));
	/* EOS returns only after every frame in flight came out. */
	guint after_eos = gst_harness_buffers_in_queue(h);
	CHECKF(after_eos == n, "%u frames in, %u out at EOS (%u before EOS)", n, after_eos,
	       before_eos);

	GPtrArray *bufs = new_bufs();
	pull_all(h, bufs);
	CHECK(bufs->len == n);
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
	decode_all(bufs, refs, n, "I420 640x480", NULL, NULL);

	/* The EOS event follows the data. */
	gboolean eos = FALSE;
	GstEvent *ev;
	while ((ev = gst_harness_try_pull_event(h))) {
		eos = eos || GST_EVENT_TYPE(ev) == GST_EVENT_EOS;
		gst_event_unref(ev);
	}
	CHECK(eos);

	/* Latency is reported: at least one frame. */
	GstQuery *q = gst_query_new_latency();
	if (gst_pad_peer_query(h->sinkpad, q)) {
		GstClockTime min, max;
		gboolean live;
		gst_query_parse_latency(q, &live, &min, &max);
		CHECKF(min >= FRAME_NS, "min latency %" GST_TIME_FORMAT, GST_TIME_ARGS(min));
		CHECKF(max == GST_CLOCK_TIME_NONE || max >= min, "max latency");
	} else {
		CHECK(!"latency query failed");
	}
	gst_query_unref(q);

	gchar *host_encoder = NULL;
	g_object_get(h->element, "host-encoder", &host_encoder, NULL);
	CHECKF(!g_strcmp0(host_encoder, "libx264"), "host-encoder %s", host_encoder);
	g_free(host_encoder);

	free_bufs(bufs);
	free_refs(refs, n);
	enc_free(h, bus);
}

static void keyframes_of(GPtrArray *bufs, GString *out)
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

static void test_force_key_unit(struct gsttest_daemon *dm)
{
	GstBus *bus;
	GstVideoInfo info;
	const guint n = 30;
	struct tu_yuv *refs = g_new0(struct tu_yuv, n);

	printf("force-key-unit events and key-int-max\n");
	GstHarness *h = enc_new(dm->addr, &bus, NULL);
	set_format(h, &info, GST_VIDEO_FORMAT_BGRx, 320, 240);
	CHECK(push_frames(h, &info, 0, 10, refs) == GST_FLOW_OK);
	CHECK(gst_harness_push_event(h, gst_video_event_new_downstream_force_key_unit(
						GST_CLOCK_TIME_NONE, GST_CLOCK_TIME_NONE,
						GST_CLOCK_TIME_NONE, TRUE, 1)));
	CHECK(push_frames(h, &info, 10, 10, refs) == GST_FLOW_OK);
	CHECK(gst_harness_push_upstream_event(
		h, gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE, TRUE, 2)));
	CHECK(push_frames(h, &info, 20, 10, refs) == GST_FLOW_OK);
	CHECK(push_eos(h));

	GPtrArray *bufs = new_bufs();
	pull_all(h, bufs);
	CHECK(bufs->len == n);
	GString *keys = g_string_new(NULL);
	keyframes_of(bufs, keys);
	CHECKF(!strcmp(keys->str, "0,10,20"), "keyframes at %s, want 0,10,20", keys->str);
	decode_all(bufs, refs, n, "BGRx 320x240 forced keys", NULL, NULL);

	/* The encoder announces the key units downstream. */
	guint fku = 0;
	GstEvent *ev;
	while ((ev = gst_harness_try_pull_event(h))) {
		fku += gst_video_event_is_force_key_unit(ev);
		gst_event_unref(ev);
	}
	CHECKF(fku == 2, "%u force-key-unit events downstream", fku);
	g_string_free(keys, TRUE);
	free_bufs(bufs);
	enc_free(h, bus);

	/* key-int-max: the element asks for them. */
	h = enc_new(dm->addr, &bus, "key-int-max", "7", NULL);
	set_caps(h, GST_VIDEO_FORMAT_BGRx, 320, 240);
	CHECK(push_frames(h, &info, 0, n, NULL) == GST_FLOW_OK);
	CHECK(push_eos(h));
	bufs = new_bufs();
	pull_all(h, bufs);
	keys = g_string_new(NULL);
	keyframes_of(bufs, keys);
	CHECKF(!strcmp(keys->str, "0,7,14,21,28"), "key-int-max=7: keyframes at %s", keys->str);
	decode_all(bufs, refs, n, "BGRx 320x240 key-int-max=7", NULL, NULL);
	g_string_free(keys, TRUE);
	free_bufs(bufs);
	free_refs(refs, n);
	enc_free(h, bus);
}

static double avg_size(GPtrArray *bufs, guint from, guint to)
{
	gsize sum = 0;
	for (guint i = from; i < to && i < bufs->len; i++)
		sum += gst_buffer_get_size(g_ptr_array_index(bufs, i));
	return to > from ? (double)sum / (to - from) : 0;
}

static void test_bitrate(struct gsttest_daemon *dm)
{
	GstBus *bus;
	GstVideoInfo info;
	const guint n = 90;

	printf("bitrate change while PLAYING\n");
	GstHarness *h = enc_new(dm->addr, &bus, "bitrate", "6000", NULL);
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
	decode_all(bufs, NULL, 0, "bitrate change", NULL, NULL);
	g_string_free(keys, TRUE);
	free_bufs(bufs);
	enc_free(h, bus);
}

static void test_resolution(struct gsttest_daemon *dm)
{
	GstBus *bus;
	GstVideoInfo small, big;
	const guint n = 20;
	struct tu_yuv *refs = g_new0(struct tu_yuv, n);

	printf("resolution change mid-stream\n");
	GstHarness *h = enc_new(dm->addr, &bus, "max-inflight", "3", NULL);
	set_format(h, &small, GST_VIDEO_FORMAT_NV12, 320, 240);
	info_for(&big, GST_VIDEO_FORMAT_NV12, 640, 360);
	CHECK(push_frames(h, &small, 0, 10, refs) == GST_FLOW_OK);
	set_caps(h, GST_VIDEO_FORMAT_NV12, 640, 360);
	CHECK(push_frames(h, &big, 10, 10, refs) == GST_FLOW_OK);
	CHECK(push_eos(h));

	/* Buffers and caps events in the order they were pushed. */
	GPtrArray *bufs = new_bufs();
	pull_all(h, bufs);
	CHECK(bufs->len == n);
	GString *keys = g_string_new(NULL);
	keyframes_of(bufs, keys);
	CHECKF(!strcmp(keys->str, "0,10"), "keyframes at %s, want 0,10", keys->str);
	if (bufs->len == n) {
		struct tu_nals nals;
		REQUIRE(buf_nals(g_ptr_array_index(bufs, 10), &nals));
		CHECK(nals.has_sps && nals.has_pps && nals.has_idr);
	}
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

static void test_flush(struct gsttest_daemon *dm)
{
	GstBus *bus;
	GstVideoInfo info;
	const guint n = 8;

	printf("flushing drops frames in flight\n");
	GstHarness *h = enc_new(dm->addr, &bus, "max-inflight", "4", NULL);
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
		CHECKF(GST_BUFFER_PTS(b) == (100 + i) * FRAME_NS, "after flush, buffer %u pts %"
		       GST_TIME_FORMAT, i, GST_TIME_ARGS(GST_BUFFER_PTS(b)));
	}
	if (after->len)
		CHECKF(is_key(g_ptr_array_index(after, 0)), "first frame after a flush is no IDR");
	decode_all(after, NULL, 0, "after flush", NULL, NULL);
	free_bufs(before);
	free_bufs(after);
	enc_free(h, bus);
}

/* Frames in other memory layouts than the default. */
static void run_layout(struct gsttest_daemon *dm, const char *what, GstVideoFormat f, guint w,
		       guint hh, const gint *strides, gboolean dmabuf)
{
	GstBus *bus;
	GstVideoInfo info;
	const guint n = 6;
	struct tu_yuv *refs = g_new0(struct tu_yuv, n);

	info_for(&info, f, w, hh);
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
	GstHarness *h = enc_new(dm->addr, &bus, NULL);
	set_caps(h, f, w, hh);
	for (guint i = 0; i < n; i++) {
		GstBuffer *b = make_frame(&info, strides != NULL, i, &refs[i]);
#ifdef HAVE_GST_ALLOCATORS
		if (dmabuf) {
			/* The same pixels in a dmabuf-typed memory (a memfd). */
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
			b = db;
		}
#else
		(void)dmabuf;
#endif
		CHECK(gst_harness_push(h, b) == GST_FLOW_OK);
	}
	CHECK(push_eos(h));
	GPtrArray *bufs = new_bufs();
	pull_all(h, bufs);
	CHECKF(bufs->len == n, "%s: %u of %u frames", what, bufs->len, n);
	decode_all(bufs, refs, n, what, NULL, NULL);
	free_bufs(bufs);
	free_refs(refs, n);
	enc_free(h, bus);
}

static void test_layouts(struct gsttest_daemon *dm)
{
	printf("memory layouts\n");
	/* GStreamer's I420 chroma stride for width 98 is 52, the wire's 50: repacked. */
	run_layout(dm, "I420 98x50 (repacked)", GST_VIDEO_FORMAT_I420, 98, 50, NULL, FALSE);
	run_layout(dm, "NV12 98x50", GST_VIDEO_FORMAT_NV12, 98, 50, NULL, FALSE);
	/* Wire-compatible padding goes as is; incompatible padding is repacked. */
	const gint bgrx_pad[] = { 1536 };
	run_layout(dm, "BGRx 320x240 stride 1536", GST_VIDEO_FORMAT_BGRx, 320, 240, bgrx_pad,
		   FALSE);
	const gint nv12_pad[] = { 384, 384 };
	run_layout(dm, "NV12 320x240 stride 384", GST_VIDEO_FORMAT_NV12, 320, 240, nv12_pad, FALSE);
	const gint nv12_odd[] = { 384, 448 };
	run_layout(dm, "NV12 320x240 strides 384/448", GST_VIDEO_FORMAT_NV12, 320, 240, nv12_odd,
		   FALSE);
	const gint i420_pad[] = { 512, 256, 256 };
	run_layout(dm, "I420 320x240 strides 512/256", GST_VIDEO_FORMAT_I420, 320, 240, i420_pad,
		   FALSE);
	const gint i420_odd[] = { 512, 192, 192 };
	run_layout(dm, "I420 320x240 strides 512/192", GST_VIDEO_FORMAT_I420, 320, 240, i420_odd,
		   FALSE);
#ifdef HAVE_GST_ALLOCATORS
	/* Resource mode needs a host that offers it; this one takes pixels. */
	run_layout(dm, "RGBA 320x240 dmabuf memory", GST_VIDEO_FORMAT_RGBA, 320, 240, NULL, TRUE);
#endif
}

static void test_encoder_hint(struct gsttest_daemon *dm)
{
	GstBus *bus;
	GstVideoInfo info;

	printf("encoder hint\n");
	GstHarness *h = enc_new(dm->addr, &bus, "encoder", "h264_nvenc", NULL);
	set_format(h, &info, GST_VIDEO_FORMAT_I420, 320, 240);
	CHECK(push_frames(h, &info, 0, 3, NULL) == GST_FLOW_OK);
	CHECK(push_eos(h));
	char *text = bus_wait_text(bus, GST_MESSAGE_WARNING, 2000, NULL, NULL);
	CHECK(text != NULL);
	if (text) {
		CHECKF(strstr(text, "libx264") && strstr(text, "h264_nvenc"), "warning: %s", text);
		g_free(text);
	}
	CHECK(gst_harness_buffers_in_queue(h) == 3);
	enc_free(h, bus);

	/* The right hint: no warning. */
	h = enc_new(dm->addr, &bus, "encoder", "libx264", NULL);
	set_caps(h, GST_VIDEO_FORMAT_I420, 320, 240);
	CHECK(push_frames(h, &info, 0, 3, NULL) == GST_FLOW_OK);
	CHECK(push_eos(h));
	GstMessage *m = bus_wait(bus, GST_MESSAGE_WARNING | GST_MESSAGE_ERROR, 200);
	CHECK(m == NULL);
	if (m)
		gst_message_unref(m);
	enc_free(h, bus);
}

/* Frames are pipelined: with a slow host, pushing max-inflight frames
 * returns long before the first of them is encoded. The reported latency
 * follows the measured round trip. */
static void test_pipelining(void)
{
	struct gsttest_daemon d;
	GstBus *bus;
	GstVideoInfo info;

	printf("pipelining against a slow host\n");
	gsttest_daemon_init(&d, tmp_dir, "slow");
	d.extra[0] = "--preset";
	d.extra[1] = "veryslow";
	d.extra[2] = "--threads";
	d.extra[3] = "1";
	REQUIRE(gsttest_daemon_start(&d));
	GstHarness *h = enc_new(d.addr, &bus, "max-inflight", "3", "timeout", "60000", NULL);
	set_format(h, &info, GST_VIDEO_FORMAT_I420, 1920, 1080);
	GstBuffer *frames[6];
	for (guint i = 0; i < 6; i++)
		frames[i] = make_frame(&info, FALSE, i, NULL);

	uint64_t t0 = tu_now_ns();
	for (guint i = 0; i < 3; i++)
		CHECK(gst_harness_push(h, frames[i]) == GST_FLOW_OK);
	uint64_t t_push = tu_now_ns() - t0;
	guint out_after_push = gst_harness_buffers_in_queue(h);
	CHECK(wait_out(h, 1, 60000));
	uint64_t t_first = tu_now_ns() - t0;
	printf("  3 pushes took %.1f ms, %u out then; first output after %.1f ms\n",
	       (double)t_push / 1e6, out_after_push, (double)t_first / 1e6);
	CHECKF(out_after_push == 0, "%u frames already out: sends waited for replies",
	       out_after_push);
	CHECKF(t_push * 2 < t_first, "pushes %.1f ms vs first reply %.1f ms", (double)t_push / 1e6,
	       (double)t_first / 1e6);

	/* The 4th frame waits for a slot; then everything comes out in order. */
	for (guint i = 3; i < 6; i++)
		CHECK(gst_harness_push(h, frames[i]) == GST_FLOW_OK);
	CHECK(push_eos(h));
	GPtrArray *bufs = new_bufs();
	pull_all(h, bufs);
	CHECK(bufs->len == 6);
	for (guint i = 0; i < bufs->len; i++)
		CHECK(GST_BUFFER_PTS(g_ptr_array_index(bufs, i)) == i * FRAME_NS);

	GstQuery *q = gst_query_new_latency();
	if (gst_pad_peer_query(h->sinkpad, q)) {
		GstClockTime min, max;
		gboolean live;
		gst_query_parse_latency(q, &live, &min, &max);
		printf("  latency now min %" GST_TIME_FORMAT " max %" GST_TIME_FORMAT "\n",
		       GST_TIME_ARGS(min), GST_TIME_ARGS(max));
		CHECKF(min > 2 * FRAME_NS, "latency %" GST_TIME_FORMAT " ignores the slow host",
		       GST_TIME_ARGS(min));
		CHECK(max >= min);
	} else {
		CHECK(!"latency query failed");
	}
	gst_query_unref(q);
	free_bufs(bufs);
	enc_free(h, bus);
	gsttest_daemon_stop(&d, SIGTERM);
}

static void test_host_killed(void)
{
	struct gsttest_daemon d;
	GstBus *bus;
	GstVideoInfo info;
	GstFlowReturn r = GST_FLOW_OK;

	printf("host killed mid-stream\n");
	gsttest_daemon_init(&d, tmp_dir, "killed");
	REQUIRE(gsttest_daemon_start(&d));
	GstHarness *h = enc_new(d.addr, &bus, "max-inflight", "3", NULL);
	set_format(h, &info, GST_VIDEO_FORMAT_I420, 320, 240);
	CHECK(push_frames(h, &info, 0, 10, NULL) == GST_FLOW_OK);
	CHECK(wait_out(h, 10, 5000));
	gsttest_daemon_stop(&d, SIGKILL);

	uint64_t t0 = tu_now_ns();
	guint i;
	for (i = 10; i < 200 && r == GST_FLOW_OK; i++) {
		r = gst_harness_push(h, make_frame(&info, FALSE, i, NULL));
		g_usleep(10000);
	}
	int ms = (int)((tu_now_ns() - t0) / 1000000);
	CHECKF(r == GST_FLOW_ERROR, "push after the host died: %s", gst_flow_get_name(r));
	printf("  flow error after %u more frames, %d ms\n", i - 10, ms);
	CHECKF(ms < 3000, "took %d ms to notice", ms);

	GQuark domain;
	char *text = bus_wait_text(bus, GST_MESSAGE_ERROR, 1000, &domain, NULL);
	CHECK(text != NULL);
	if (text) {
		CHECKF(domain == GST_RESOURCE_ERROR, "domain %s", g_quark_to_string(domain));
		CHECKF(strstr(text, d.addr) != NULL, "error does not name %s: %s", d.addr, text);
		printf("  %s\n", text);
		g_free(text);
	}
	enc_free(h, bus);
}

static void test_reconnect(void)
{
	struct gsttest_daemon d;
	GstBus *bus;
	GstVideoInfo info;
	const guint n = 400;
	struct tu_yuv *refs = g_new0(struct tu_yuv, n);

	printf("reconnect=true: host restarted mid-stream\n");
	gsttest_daemon_init(&d, tmp_dir, "restarted");
	REQUIRE(gsttest_daemon_start(&d));
	GstHarness *h = enc_new(d.addr, &bus, "reconnect", "true", NULL);
	set_format(h, &info, GST_VIDEO_FORMAT_I420, 320, 240);
	CHECK(push_frames(h, &info, 0, 10, refs) == GST_FLOW_OK);
	CHECK(wait_out(h, 10, 5000));
	GPtrArray *bufs = new_bufs();
	pull_all(h, bufs);
	CHECK(bufs->len == 10);

	gsttest_daemon_stop(&d, SIGKILL);
	/* Frames keep coming while the host is away: no errors, they are dropped. */
	guint i = 10;
	for (; i < 30; i++) {
		CHECK(gst_harness_push(h, make_frame(&info, FALSE, i, &refs[i])) == GST_FLOW_OK);
		g_usleep(20000);
	}
	pull_all(h, bufs);
	guint before_restart = bufs->len;
	REQUIRE(gsttest_daemon_start(&d));

	/* Until output resumes (backoff is at most 5 s). */
	uint64_t end = tu_now_ns() + 15 * (uint64_t)1000000000;
	guint resumed_at = 0;
	while (i < n && tu_now_ns() < end) {
		CHECK(gst_harness_push(h, make_frame(&info, FALSE, i, &refs[i])) == GST_FLOW_OK);
		i++;
		g_usleep(20000);
		pull_all(h, bufs);
		if (bufs->len > before_restart && !resumed_at)
			resumed_at = i;
		if (resumed_at && i >= resumed_at + 10)
			break;
	}
	CHECK(push_eos(h));
	pull_all(h, bufs);
	CHECKF(bufs->len > before_restart, "no output after the restart (%u frames pushed)", i);
	printf("  %u frames in, %u out; %u before the restart\n", i, bufs->len, before_restart);
	if (bufs->len > before_restart) {
		GstBuffer *first = g_ptr_array_index(bufs, before_restart);
		struct tu_nals nals;
		REQUIRE(buf_nals(first, &nals));
		CHECKF(is_key(first) && nals.has_sps && nals.has_idr,
		       "first frame after reconnecting is not an IDR with SPS");
	}
	/* PTS strictly increasing (dropped frames leave gaps, nothing repeats). */
	for (guint k = 1; k < bufs->len; k++)
		CHECK(GST_BUFFER_PTS(g_ptr_array_index(bufs, k)) >
		      GST_BUFFER_PTS(g_ptr_array_index(bufs, k - 1)));
	decode_all(bufs, refs, n, "across a reconnect", NULL, NULL);

	/* Bus: a warning naming the address, then the reconnection. */
	char *text = bus_wait_text(bus, GST_MESSAGE_WARNING, 1000, NULL, NULL);
	CHECK(text != NULL);
	if (text) {
		CHECKF(strstr(text, d.addr) && strstr(text, "reconnecting"), "warning: %s", text);
		g_free(text);
	}
	GstMessage *m = bus_wait(bus, GST_MESSAGE_INFO, 1000);
	CHECK(m != NULL);
	if (m)
		gst_message_unref(m);
	m = bus_wait(bus, GST_MESSAGE_ERROR, 0);
	CHECK(m == NULL);
	if (m)
		gst_message_unref(m);

	free_bufs(bufs);
	free_refs(refs, n);
	enc_free(h, bus);
	gsttest_daemon_stop(&d, SIGTERM);
}

int main(int argc, char **argv)
{
	struct gsttest_daemon dmain;

	if (!gsttest_init(&argc, &argv, "vsockenc"))
		return 1;
	tmp_dir = tu_mkdtemp("test_vsockenc");
	REQUIRE(tmp_dir);

	test_default_address();
	test_virtgpu();
	test_unreachable();

	gsttest_daemon_init(&dmain, tmp_dir, "main");
	dmain.extra[0] = "--max-width";
	dmain.extra[1] = "1920";
	dmain.extra[2] = "--max-height";
	dmain.extra[3] = "1088";
	REQUIRE(gsttest_daemon_start(&dmain));
	test_caps(&dmain);
	test_stream(&dmain);
	test_force_key_unit(&dmain);
	test_bitrate(&dmain);
	test_resolution(&dmain);
	test_flush(&dmain);
	test_layouts(&dmain);
	test_encoder_hint(&dmain);
	gsttest_daemon_stop(&dmain, SIGTERM);

	test_pipelining();
	test_host_killed();
	test_reconnect();

	if (!tu_failures)
		tu_rm_rf(tmp_dir);
	else
		fprintf(stderr, "daemon logs kept in %s\n", tmp_dir);
	free(tmp_dir);
	gst_deinit();
	return tu_finish("test_vsockenc");
}
