/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vsockenc check suite, part 1: finding and reaching the host, and what is
 * negotiated with it. Each test starts what it needs (the real daemon,
 * $HFE_DAEMON, on a unix socket in its own temporary directory).
 *   - address: the default address lookup, the address property
 *   - virtgpu: the virtio-gpu helper's fallbacks
 *   - unreachable: an error naming the address, quickly
 *   - caps: sink caps within the host's limits, src caps fields, the profile
 *     property and a downstream profile (checked in the SPS), odd sizes
 *     refused with a message
 * Stream output is in test_vsockenc_stream.c, host failures and blocked
 * calls in test_vsockenc_host.c. One test alone: GST_CHECKS=test_name.
 */
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "vsocktest.h"

#include "check_asserts.h"
#include "gsthfeaddr.h"
#include "gstvirtgpu.h"

/* ---- address ---- */

GST_START_TEST(test_default_address_from_ports)
{
	char *dir = g_build_filename(vt_dir, "ports", NULL);
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
	g_free(dir);
}
GST_END_TEST;

GST_START_TEST(test_address_property)
{
	/* Explicit addresses win; empty means default. */
	gchar *a = gst_hfe_resolve_address("tcp:10.0.2.2:15937");
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
}
GST_END_TEST;

GST_START_TEST(test_virtgpu_fallbacks)
{
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
GST_END_TEST;

/* ---- unreachable hosts ---- */

/* Going to PAUSED fails within max_ms with a RESOURCE/OPEN_READ_WRITE
 * error naming addr. */
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
	CHECKF(domain == GST_RESOURCE_ERROR && code == GST_RESOURCE_ERROR_OPEN_READ_WRITE,
	       "%s: error %s/%d", addr, g_quark_to_string(domain), code);
	CHECKF(strstr(text, addr) != NULL, "error does not name %s: %s", addr, text);
	printf("  %s -> %s (%d ms)\n", addr, text, ms);
	g_free(text);
	gst_element_set_state(e, GST_STATE_NULL);
	gst_object_unref(e);
	gst_object_unref(bus);
}

GST_START_TEST(test_unreachable_unix_socket)
{
	char addr[256];
	snprintf(addr, sizeof(addr), "unix:%s/nobody-here.sock", vt_dir);
	check_unreachable(addr, 2000, 1500);
}
GST_END_TEST;

GST_START_TEST(test_unreachable_refused)
{
	/* A port bound but not listening: refused, and nobody else can take it
	 * while we hold it (a fixed port may be in use on a shared machine). */
	char addr[256];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(sin);
	REQUIRE(fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
		getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
	snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%u", ntohs(sin.sin_port));
	check_unreachable(addr, 2000, 1500);
	close(fd);
}
GST_END_TEST;

GST_START_TEST(test_unreachable_black_hole)
{
	/* No answer at all (TEST-NET-1): the timeout bounds the wait. */
	check_unreachable("tcp:192.0.2.1:5000", 300, 2500);
}
GST_END_TEST;

/* ---- caps ---- */

/* Before any caps the sink pad offers our formats within the host's limits
 * (the fixture's daemon runs with --max-width 1920 --max-height 1088). */
GST_START_TEST(test_sink_caps_host_limits)
{
	GstBus *bus;
	GstHarness *h = enc_new(vt_daemon.addr, &bus, NULL);

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
	enc_free(h, bus);
}
GST_END_TEST;

/* Src caps: byte-stream, au, the input size and rate, constrained-baseline by
 * default, and an SPS that says so. */
GST_START_TEST(test_src_caps)
{
	GstBus *bus;
	GstVideoInfo info;
	GstHarness *h = enc_new(vt_daemon.addr, &bus, NULL);

	set_format(h, &info, GST_VIDEO_FORMAT_I420, 320, 240);
	CHECK(push_frames(h, &info, 0, 3, NULL) == GST_FLOW_OK);
	CHECK(push_eos(h));
	CHECK(gst_harness_buffers_in_queue(h) == 3);

	GstCaps *out = gst_pad_get_current_caps(h->sinkpad);
	REQUIRE(out);
	GstStructure *s = gst_caps_get_structure(out, 0);
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
}
GST_END_TEST;

/* The profile property, and a profile asked for by downstream (one loop
 * test per row: __i__). */
static const struct {
	const char *prop;
	const char *downstream;
	const char *caps_profile;
	int idc;
} profile_cases[] = {
	{ "high", NULL, "high", 100 },
	{ "main", NULL, "main", 77 },
	{ "auto", "video/x-h264,profile=high", "high", 100 },
	{ "auto", "video/x-h264,profile=main", "main", 77 },
	{ "auto", "video/x-h264,profile=baseline", "baseline", 66 },
};

GST_START_TEST(test_profile)
{
	GstBus *bus;
	GstVideoInfo info;
	struct tu_nals nals;
	const char *prop = profile_cases[__i__].prop, *down = profile_cases[__i__].downstream;

	GstHarness *h = enc_new(vt_daemon.addr, &bus, "profile", prop, NULL);
	if (down)
		gst_harness_set_sink_caps_str(h, down);
	set_format(h, &info, GST_VIDEO_FORMAT_NV12, 320, 240);
	CHECK(push_frames(h, &info, 0, 2, NULL) == GST_FLOW_OK);
	CHECK(push_eos(h));
	GstCaps *out = gst_pad_get_current_caps(h->sinkpad);
	REQUIRE(out);
	const char *p = gst_structure_get_string(gst_caps_get_structure(out, 0), "profile");
	CHECKF(!g_strcmp0(p, profile_cases[__i__].caps_profile),
	       "profile=%s downstream %s: caps %s", prop, down, p);
	gst_caps_unref(out);
	GstBuffer *b = gst_harness_pull(h);
	REQUIRE(b && buf_nals(b, &nals));
	CHECKF(nals.sps_profile == profile_cases[__i__].idc, "profile=%s downstream %s: SPS %d",
	       prop, down, nals.sps_profile);
	gst_buffer_unref(b);
	enc_free(h, bus);
}
GST_END_TEST;

/* An odd size is refused, with a message saying why. */
GST_START_TEST(test_odd_size_refused)
{
	GstBus *bus;
	GstHarness *h = enc_new(vt_daemon.addr, &bus, NULL);

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
	CHECKF(strstr(text, "321x240") != NULL, "odd size error: %s", text);
	g_free(text);
	enc_free(h, bus);
}
GST_END_TEST;

static Suite *vsockenc_suite(void)
{
	Suite *s = suite_create("vsockenc");

	if (!gsttest_suite_init("vsockenc"))
		exit(1);

	TCase *tc = gsttest_tcase(s, "address", vt_setup_dir, vt_teardown, 20);
	tcase_add_test(tc, test_default_address_from_ports);
	tcase_add_test(tc, test_address_property);
	tcase_add_test(tc, test_virtgpu_fallbacks);

	tc = gsttest_tcase(s, "unreachable", vt_setup_dir, vt_teardown, 30);
	tcase_add_test(tc, test_unreachable_unix_socket);
	tcase_add_test(tc, test_unreachable_refused);
	tcase_add_test(tc, test_unreachable_black_hole);

	tc = gsttest_tcase(s, "caps", vt_setup, vt_teardown, 60);
	tcase_add_test(tc, test_sink_caps_host_limits);
	tcase_add_test(tc, test_src_caps);
	tcase_add_loop_test(tc, test_profile, 0, G_N_ELEMENTS(profile_cases));
	tcase_add_test(tc, test_odd_size_refused);
	return s;
}

GST_CHECK_MAIN(vsockenc);
