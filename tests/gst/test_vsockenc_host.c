/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vsockenc check suite, part 3: the host as the element sees it over time,
 * each test with daemons of its own:
 *   - pipelining against a slow host: max-inflight frames sent before any
 *     reply; the latency reported follows the measured round trip
 *   - the host killed mid-stream: an error naming the address; with
 *     reconnect=true the stream resumes with an IDR on a restarted daemon
 *     (every frame decoded, PSNR checked)
 *   - a streaming thread blocked waiting for a slot (the host stopped with
 *     SIGSTOP, so no answer comes) is released at once by a flush and by a
 *     state change to NULL
 * One test alone: GST_CHECKS=test_name.
 */
#include <signal.h>
#include <string.h>

#include "vsocktest.h"

#include "check_asserts.h"

/* Frames are pipelined: with a slow host, pushing max-inflight frames
 * returns long before the first of them is encoded. The reported latency
 * follows the measured round trip. */
GST_START_TEST(test_pipelining_slow_host)
{
	struct gsttest_daemon d;
	GstBus *bus;
	GstVideoInfo info;

	gsttest_daemon_init(&d, vt_dir, "slow");
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
	CHECK(gst_pad_peer_query(h->sinkpad, q));
	GstClockTime min, max;
	gboolean live;
	gst_query_parse_latency(q, &live, &min, &max);
	printf("  latency now min %" GST_TIME_FORMAT " max %" GST_TIME_FORMAT "\n",
	       GST_TIME_ARGS(min), GST_TIME_ARGS(max));
	CHECKF(min > 2 * FRAME_NS, "latency %" GST_TIME_FORMAT " ignores the slow host",
	       GST_TIME_ARGS(min));
	CHECK(max >= min);
	gst_query_unref(q);
	free_bufs(bufs);
	enc_free(h, bus);
	gsttest_daemon_stop(&d, SIGTERM);
}
GST_END_TEST;

GST_START_TEST(test_host_killed_is_error)
{
	struct gsttest_daemon d;
	GstBus *bus;
	GstVideoInfo info;
	GstFlowReturn r = GST_FLOW_OK;

	gsttest_daemon_init(&d, vt_dir, "killed");
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
	CHECKF(domain == GST_RESOURCE_ERROR, "domain %s", g_quark_to_string(domain));
	CHECKF(strstr(text, d.addr) != NULL, "error does not name %s: %s", d.addr, text);
	printf("  %s\n", text);
	g_free(text);
	enc_free(h, bus);
}
GST_END_TEST;

GST_START_TEST(test_reconnect_resumes_with_idr)
{
	struct gsttest_daemon d;
	GstBus *bus;
	GstVideoInfo info;
	const guint n = 400;
	struct tu_yuv *refs = g_new0(struct tu_yuv, n);

	gsttest_daemon_init(&d, vt_dir, "restarted");
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
	printf("  %u frames in, %u out; %u before the restart\n", i, bufs->len, before_restart);
	CHECKF(bufs->len > before_restart, "no output after the restart (%u frames pushed)", i);
	GstBuffer *first = g_ptr_array_index(bufs, before_restart);
	struct tu_nals nals;
	REQUIRE(buf_nals(first, &nals));
	CHECKF(is_key(first) && nals.has_sps && nals.has_idr,
	       "first frame after reconnecting is not an IDR with SPS");
	/* PTS strictly increasing (dropped frames leave gaps, nothing repeats). */
	for (guint k = 1; k < bufs->len; k++)
		CHECK(GST_BUFFER_PTS(g_ptr_array_index(bufs, k)) >
		      GST_BUFFER_PTS(g_ptr_array_index(bufs, k - 1)));
	CHECK(decode_all(bufs, refs, n, "across a reconnect", NULL, NULL) == (int)bufs->len);

	/* Bus: a warning naming the address, then the reconnection, no error. */
	char *text = bus_wait_text(bus, GST_MESSAGE_WARNING, 1000, NULL, NULL);
	CHECK(text != NULL);
	CHECKF(strstr(text, d.addr) && strstr(text, "reconnecting"), "warning: %s", text);
	g_free(text);
	GstMessage *m = bus_wait(bus, GST_MESSAGE_INFO, 1000);
	CHECK(m != NULL);
	gst_message_unref(m);
	m = bus_wait(bus, GST_MESSAGE_ERROR, 0);
	CHECKF(m == NULL, "%" GST_PTR_FORMAT, m);

	free_bufs(bufs);
	free_refs(refs, n);
	enc_free(h, bus);
	gsttest_daemon_stop(&d, SIGTERM);
}
GST_END_TEST;

/* ---- blocked calls ---- */

struct blocked_push {
	GstHarness *h;
	GstBuffer *frame;
	GstFlowReturn ret;
	gint done;      /* atomic: the push returned */
	gint64 done_us; /* when (monotonic), read after the join */
};

static gpointer push_thread(gpointer data)
{
	struct blocked_push *bp = data;
	bp->ret = gst_harness_push(bp->h, bp->frame);
	bp->done_us = g_get_monotonic_time();
	g_atomic_int_set(&bp->done, 1);
	return NULL;
}

/*
 * A streaming thread stuck in the encoder: max-inflight 1, the host stopped
 * (SIGSTOP: connected, never answering) after the first frame went out, so
 * the second push waits for a slot. The element's own timeout is 30 s, so
 * only `release` can end the wait: the push must return FLUSHING within a
 * second of it.
 */
static void check_release_blocked_push(void (*release)(GstHarness *h))
{
	struct gsttest_daemon d;
	GstBus *bus;
	GstVideoInfo info;
	struct blocked_push bp = { 0 };

	gsttest_daemon_init(&d, vt_dir, "stopped");
	REQUIRE(gsttest_daemon_start(&d));
	GstHarness *h = enc_new(d.addr, &bus, "max-inflight", "1", "timeout", "30000", NULL);
	set_format(h, &info, GST_VIDEO_FORMAT_I420, 64, 64);
	CHECK(push_frames(h, &info, 0, 1, NULL) == GST_FLOW_OK);
	CHECK(wait_out(h, 1, 5000)); /* the host answered frame 0 */
	REQUIRE(kill(d.pid, SIGSTOP) == 0);
	CHECK(push_frames(h, &info, 1, 1, NULL) == GST_FLOW_OK); /* in flight, unanswered */

	bp.h = h;
	bp.frame = make_frame(&info, FALSE, 2, NULL);
	GThread *t = g_thread_new("push", push_thread, &bp);
	g_usleep(300000);
	CHECKF(!g_atomic_int_get(&bp.done),
	       "push returned %s without a free slot", gst_flow_get_name(bp.ret));

	gint64 t0 = g_get_monotonic_time();
	release(h);
	g_thread_join(t);
	int ms = (int)((bp.done_us - t0) / 1000);
	printf("  blocked push returned %s %d ms after the release\n", gst_flow_get_name(bp.ret),
	       ms);
	CHECKF(bp.ret == GST_FLOW_FLUSHING, "push returned %s", gst_flow_get_name(bp.ret));
	CHECKF(ms < 1000, "released after %d ms", ms);
	kill(d.pid, SIGCONT);
	enc_free(h, bus);
	gsttest_daemon_stop(&d, SIGTERM);
}

static void flush_start(GstHarness *h)
{
	CHECK(gst_pad_push_event(h->srcpad, gst_event_new_flush_start()));
}

static void to_null(GstHarness *h)
{
	CHECK(gst_element_set_state(h->element, GST_STATE_NULL) == GST_STATE_CHANGE_SUCCESS);
}

GST_START_TEST(test_flush_while_blocked)
{
	check_release_blocked_push(flush_start);
}
GST_END_TEST;

GST_START_TEST(test_stop_while_blocked)
{
	check_release_blocked_push(to_null);
}
GST_END_TEST;

static Suite *vsockenc_host_suite(void)
{
	Suite *s = suite_create("vsockenc_host");

	if (!gsttest_suite_init("vsockenc"))
		exit(1);

	TCase *tc = gsttest_tcase(s, "host", vt_setup_dir, vt_teardown, 180);
	tcase_add_test(tc, test_pipelining_slow_host);
	tcase_add_test(tc, test_host_killed_is_error);
	tcase_add_test(tc, test_reconnect_resumes_with_idr);

	tc = gsttest_tcase(s, "blocked", vt_setup_dir, vt_teardown, 60);
	tcase_add_test(tc, test_flush_while_blocked);
	tcase_add_test(tc, test_stop_while_blocked);
	return s;
}

GST_CHECK_MAIN(vsockenc_host);
