/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * lib/src/host.c, flow control and what lies behind a peer: reading pauses
 * at the outbound queue bound and at the session's in-flight bound and
 * resumes when they drain; host shutdown (stop reading, finish frames in
 * flight, ERROR SHUTDOWN); scanout subscriptions through the host's hub with
 * a real stream fed the test source's picture (access units from an IDR,
 * KEYFRAME_REQ, a subscriber's CONFIG_REQ, leaving the hub on close or error). No sockets (host_harness.h);
 * one behaviour per test, `test_host_flow NAME` runs one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hfe/scanout.h"
#include "host_harness.h"
#include "unit_check.h"

static size_t push_ping(struct hh *h, uint16_t sid)
{
	struct hfe_msg m = hh_mk(HFE_MSG_PING, sid);
	return hh_push_msg(h, &m, NULL, 0);
}

/* ---- backpressure ---- */

/* Reading pauses when the queue reaches max_queue, resumes below it. */
static void queue_bound_pauses_and_resumes_reading(void)
{
	struct hfe_host_config cfg;
	struct hh h;

	hh_config(&cfg);
	cfg.max_queue = 3 * HFE_HEADER_SIZE; /* three PONGs */
	hh_start(&h, &cfg);
	CHECK(push_ping(&h, 1) == HFE_HEADER_SIZE);
	CHECK(push_ping(&h, 2) == HFE_HEADER_SIZE);
	CHECK(hfe_peer_wants_read(h.peer));
	CHECK(push_ping(&h, 3) == HFE_HEADER_SIZE);
	CHECK(hfe_peer_tx_pending(h.peer) == cfg.max_queue);
	CHECK(!hfe_peer_wants_read(h.peer));
	CHECK(push_ping(&h, 4) == 0);
	CHECK(hh_service(&h) == HFE_PEER_OK && h.deadline == UINT64_MAX);
	hh_drain(&h, 1);
	CHECK(hfe_peer_wants_read(h.peer));
	CHECK(push_ping(&h, 4) == HFE_HEADER_SIZE);
	hh_drain(&h, SIZE_MAX);
	CHECK(h.n_got == 4 && h.got[3].hdr.session_id == 4);
	hh_stop(&h);
}

/* While paused, rx_buf offers no buffer (the loop must not read). */
static void paused_peer_offers_no_rx_buffer(void)
{
	struct hfe_host_config cfg;
	struct hh h;
	size_t len = 1;

	hh_config(&cfg);
	cfg.max_queue = HFE_HEADER_SIZE;
	hh_start(&h, &cfg);
	push_ping(&h, 1);
	CHECK(hfe_peer_rx_buf(h.peer, &len) == NULL && len == 0);
	CHECK(!hfe_peer_discarding(h.peer));
	hh_drain(&h, SIZE_MAX);
	CHECK(hfe_peer_rx_buf(h.peer, &len) != NULL && len > 0);
	hh_stop(&h);
}

/* max_inflight frames read ahead of their replies, then reading pauses. */
static void inflight_bound_pauses_reading(void)
{
	struct hfe_host_config cfg;
	struct hh h;

	hh_config(&cfg);
	cfg.max_inflight = 2;
	hh_start(&h, &cfg);
	hh_push_frame(&h, 1, 1);
	CHECK(hfe_peer_wants_read(h.peer));
	hh_push_frame(&h, 1, 2);
	CHECK(!hfe_peer_wants_read(h.peer));
	CHECK(hh_push_frame(&h, 1, 3) == 0);
	CHECK(hh_wait_msgs(&h, 2));
	CHECK(hfe_peer_wants_read(h.peer));
	hh_push_frame(&h, 1, 3);
	CHECK(hh_wait_msgs(&h, 3));
	CHECK(h.n_got == 3 && h.got[2].u.frame_resp.pts == 3);
	hh_stop(&h);
}

/* ---- shutdown ---- */

/* Stopping the host stops reading at once. */
static void shutdown_stops_reading(void)
{
	struct hh h;
	size_t len = 1;

	hh_start_default(&h);
	hfe_host_stop(h.host);
	CHECK(!hfe_peer_wants_read(h.peer));
	CHECK(hfe_peer_rx_buf(h.peer, &len) == NULL);
	hh_stop(&h);
}

/* An idle peer gets ERROR SHUTDOWN, our half-close, and closes when it
 * closes its side. */
static void shutdown_idle_peer_gets_error_shutdown(void)
{
	struct hh h;

	hh_start_default(&h);
	struct hfe_msg m = hh_mk_hello(1, 2);
	hh_push_msg(&h, &m, NULL, 0);
	hh_step(&h);
	hfe_host_stop(h.host);
	hh_step(&h);
	CHECK(h.n_got == 2 && h.got[1].hdr.type == HFE_MSG_ERROR &&
	      h.got[1].u.error.code == HFE_ERR_SHUTDOWN);
	CHECK(h.shutdown_wr == 1);
	hh_eof(&h);
	CHECK(hh_step(&h) == HFE_PEER_CLOSE);
	CHECK(h.reason && strcmp(h.reason, "finished") == 0);
	hh_stop(&h);
}

/* Frames read before the stop are answered before ERROR SHUTDOWN. */
static void shutdown_finishes_frames_in_flight_first(void)
{
	struct hh h;

	hh_start_default(&h);
	hh_push_frame(&h, 2, 1);
	hh_push_frame(&h, 2, 2);
	hfe_host_stop(h.host);
	CHECK(hh_wait_msgs(&h, 3));
	CHECK(h.n_got == 3);
	CHECK(h.got[0].hdr.type == HFE_MSG_FRAME_RESPONSE);
	CHECK(h.got[1].hdr.type == HFE_MSG_FRAME_RESPONSE);
	CHECK(h.got[2].hdr.type == HFE_MSG_ERROR && h.got[2].u.error.code == HFE_ERR_SHUTDOWN);
	hh_stop(&h);
}

/* ---- scanouts behind the peer ---- */

#define SCANOUT 1u

/* Subscribe to scanout SCANOUT and wait for its first access unit; returns
 * its index or -1. */
static int subscribe(struct hh *h)
{
	hh_add_scanout(h, SCANOUT, 160, 96); /* testsrc draws a 64 px box: more than 64 wide */
	hh_draw(h, 0);
	struct hfe_msg m = hh_mk(HFE_MSG_SUBSCRIBE, 0);
	m.u.scanout_id = SCANOUT;
	hh_push_msg(h, &m, NULL, 0);
	if (!CHECK(hh_wait_msgs(h, 2)))
		return -1;
	CHECK(h->got[0].hdr.type == HFE_MSG_SUBSCRIBE_RESP &&
	      h->got[0].u.subscribe_resp.success == 1);
	return hh_find(h, HFE_MSG_FRAME_RESPONSE, 1);
}

/* A subscriber gets SUBSCRIBE_RESP, then the scanout's access units on the
 * scanout's id, starting with an IDR. */
static void subscriber_receives_scanout_from_idr(void)
{
	struct hh h;

	hh_start_default(&h);
	int f = subscribe(&h);
	if (CHECK(f == 1)) {
		CHECK(h.got[1].hdr.session_id == SCANOUT);
		CHECK(h.got[1].u.frame_resp.is_keyframe);
		CHECK(h.got[1].data_len > 0);
	}
	CHECK(hfe_hub_subscribers(hfe_host_hub(h.host), SCANOUT) == 1);
	hh_stop(&h);
}

/* KEYFRAME_REQ reaches the scanouts a peer watches. */
static void keyframe_req_reaches_watched_scanout(void)
{
	struct hh h;

	hh_start_default(&h);
	if (subscribe(&h) < 0) {
		hh_stop(&h);
		return;
	}
	unsigned n = h.n_got;
	hh_draw(&h, 1);
	CHECK(hh_wait_msgs(&h, n + 1));
	CHECK(h.n_got == n + 1 && !h.got[n].u.frame_resp.is_keyframe);
	struct hfe_msg k = hh_mk(HFE_MSG_KEYFRAME_REQ, SCANOUT);
	hh_push_msg(&h, &k, NULL, 0);
	CHECK(hh_wait_msgs(&h, n + 2));
	CHECK(h.n_got == n + 2 && h.got[n + 1].hdr.session_id == SCANOUT &&
	      h.got[n + 1].u.frame_resp.is_keyframe);
	hh_stop(&h);
}

/* A peer that goes away leaves the hub: the stream loses its consumer. */
static void freed_peer_leaves_hub(void)
{
	struct hh h;

	hh_start_default(&h);
	subscribe(&h);
	CHECK(hfe_hub_subscribers(hfe_host_hub(h.host), SCANOUT) == 1);
	hfe_peer_free(h.peer, "test");
	h.peer = NULL;
	CHECK(hfe_hub_subscribers(hfe_host_hub(h.host), SCANOUT) == 0);
	hh_draw(&h, 2);
	hfe_host_dispatch(h.host); /* must not touch the freed connection */
	hh_stop(&h);
}

/* A subscriber's CONFIG_REQ on the scanout's id goes to that scanout (the
 * hub answers at once with the stream's settings), not to a pull session. */
static void subscriber_config_req_goes_to_scanout(void)
{
	struct hh h;

	hh_start_default(&h);
	hh_add_scanout(&h, SCANOUT, 160, 96);
	hh_draw(&h, 0);
	struct hfe_msg m = hh_mk_hello(1, 2);
	hh_push_msg(&h, &m, NULL, 0);
	m = hh_mk(HFE_MSG_SUBSCRIBE, 0);
	m.u.scanout_id = SCANOUT;
	hh_push_msg(&h, &m, NULL, 0);
	hh_step(&h);
	unsigned n = h.n_got;
	m = hh_mk(HFE_MSG_CONFIG_REQ, SCANOUT);
	m.u.config_req = (struct hfe_config_req){ .bitrate = 300000, .fps_num = 30, .fps_den = 1 };
	hh_push_msg(&h, &m, NULL, 0);
	hh_step(&h); /* no waiting: no worker is involved */
	int c = hh_find(&h, HFE_MSG_CONFIG_RESP, n);
	if (CHECK(c >= 0)) {
		CHECK(h.got[c].hdr.session_id == SCANOUT);
		CHECK(h.got[c].u.config_resp.width == 160 && h.got[c].u.config_resp.height == 96);
		CHECK(h.got[c].u.config_resp.bitrate == 300000);
	}
	hh_stop(&h);
}

/* A second peer on the same host, subscribed to SCANOUT, its output dropped. */
static struct hfe_peer *other_subscriber(struct hh *h)
{
	struct hfe_peer *p = hfe_peer_new(h->host, "other", h->now);
	struct hfe_msg m = hh_mk(HFE_MSG_SUBSCRIBE, 0);
	uint8_t wire[HFE_MSG_MAX_PREFIX];
	size_t n, len, used = 0;

	m.u.scanout_id = SCANOUT;
	n = hfe_msg_build(&m, 0, wire, sizeof(wire));
	while (p && used < n) {
		uint8_t *buf = hfe_peer_rx_buf(p, &len);
		if (!buf)
			break;
		len = len < n - used ? len : n - used;
		memcpy(buf, wire + used, len);
		hfe_peer_rx_commit(p, len, h->now);
		used += len;
	}
	if (p)
		hfe_peer_tx_consume(p, hfe_peer_tx_pending(p)); /* SUBSCRIBE_RESP */
	return p;
}

/* After its final ERROR a subscriber gets no more access units: nothing may
 * follow the ERROR, nor be written after our half-close (found by fuzz_peer). */
static void failed_subscriber_gets_nothing_after_error(void)
{
	static const uint8_t bad[HFE_HEADER_SIZE] = { 'H', 'X', 'F', 'R', 0x77 };
	struct hh h;

	hh_start_default(&h);
	if (subscribe(&h) < 0) {
		hh_stop(&h);
		return;
	}
	struct hfe_peer *other = other_subscriber(&h);
	CHECK(other != NULL);
	hh_push(&h, bad, sizeof(bad));
	hh_step(&h);
	unsigned n = h.n_got;
	CHECK(n >= 3 && h.got[n - 1].hdr.type == HFE_MSG_ERROR);
	CHECK(h.shutdown_wr == 1);
	/* the stream goes on for the other subscriber */
	hh_draw(&h, 1);
	while (other && !hfe_peer_tx_pending(other)) {
		unsigned seen = hh_notifies(&h);
		hfe_host_dispatch(h.host);
		if (hfe_peer_tx_pending(other) || !CHECK(hh_wait_notify(&h, seen, 10000)))
			break;
	}
	CHECK(h.peer && hfe_peer_tx_pending(h.peer) == 0);
	hh_step(&h);
	CHECK(h.n_got == n);
	hfe_peer_free(other, "test over");
	hh_stop(&h);
}

/* A subscriber that half-closed asks for nothing more: no access unit follows
 * its EOF, and the peer closes once what was queued before is written, even
 * while the screen keeps changing and the client reads slowly (found by
 * bench/chaos: under load such a peer was kept as long as its queue never
 * emptied, i.e. as long as the stream ran). */
static void half_closed_subscriber_closes_while_stream_runs(void)
{
	struct hh h;

	hh_start_default(&h);
	unsigned n = subscribe(&h) < 0 ? 0 : h.n_got;
	hh_eof(&h);
	for (uint64_t tick = 1; n && tick <= 10 && !h.closed; tick++) {
		unsigned seen = hh_notifies(&h);
		hh_draw(&h, tick);
		hh_wait_notify(&h, seen, 2000); /* an encode, if anyone still watches */
		hfe_host_dispatch(h.host);
		hh_drain(&h, 64); /* a slow reader */
		hh_service(&h);
	}
	CHECK(n && h.closed);
	CHECK(hh_find(&h, HFE_MSG_FRAME_RESPONSE, n) < 0);
	hh_stop(&h);
}

int main(int argc, char **argv)
{
	static const struct unit_test tests[] = {
		{ "queue_bound_pauses_and_resumes_reading", queue_bound_pauses_and_resumes_reading },
		{ "paused_peer_offers_no_rx_buffer", paused_peer_offers_no_rx_buffer },
		{ "inflight_bound_pauses_reading", inflight_bound_pauses_reading },
		{ "shutdown_stops_reading", shutdown_stops_reading },
		{ "shutdown_idle_peer_gets_error_shutdown", shutdown_idle_peer_gets_error_shutdown },
		{ "shutdown_finishes_frames_in_flight_first",
		  shutdown_finishes_frames_in_flight_first },
		{ "subscriber_receives_scanout_from_idr", subscriber_receives_scanout_from_idr },
		{ "keyframe_req_reaches_watched_scanout", keyframe_req_reaches_watched_scanout },
		{ "freed_peer_leaves_hub", freed_peer_leaves_hub },
		{ "subscriber_config_req_goes_to_scanout", subscriber_config_req_goes_to_scanout },
		{ "failed_subscriber_gets_nothing_after_error",
		  failed_subscriber_gets_nothing_after_error },
		{ "half_closed_subscriber_closes_while_stream_runs",
		  half_closed_subscriber_closes_while_stream_runs },
	};
	return unit_run("test_host_flow", tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
