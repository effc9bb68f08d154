/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * lib/src/host.c, how a peer's connection ends, on a fake clock: the stall
 * timer (fires exactly at the limit, restarts with each read, ignores silence
 * between messages, pauses while we hold the peer back), errors (queued after
 * the replies owed, flushed before our half-close, then a linger until the
 * peer closes or the linger runs out) and the peer's half-close (EOF while
 * output or frames are pending, EOF in the middle of a message). No sockets
 * (host_harness.h); one behaviour per test, `test_host_close NAME` runs one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_harness.h"
#include "unit_check.h"

#define STALL_MS 5000u /* hh_config's stall_timeout_ms */

/* The first `n` bytes of a PING: a message begun, not finished. */
static void push_partial_ping(struct hh *h, size_t n)
{
	uint8_t wire[HFE_HEADER_SIZE];
	struct hfe_msg m = hh_mk(HFE_MSG_PING, 1);

	if (hfe_msg_build(&m, 0, wire, sizeof(wire)) != HFE_HEADER_SIZE || n >= sizeof(wire))
		abort();
	CHECK(hh_push(h, wire, n) == n);
}

static const uint8_t bad_header[HFE_HEADER_SIZE] = { 'H', 'X', 'F', 'R', 0x77 };

/* ---- stall timer ---- */

/* Silent in the middle of a message: not one ms before the limit, exactly
 * at it: ERROR TIMEOUT, then the half-close. */
static void stall_fires_exactly_at_limit(void)
{
	struct hh h;

	hh_start_default(&h);
	h.now += 100;
	uint64_t t = h.now;
	push_partial_ping(&h, 5);
	h.now = t + STALL_MS - 1;
	CHECK(hh_service(&h) == HFE_PEER_OK);
	CHECK(h.deadline == t + STALL_MS); /* the loop is told when to come back */
	CHECK(hfe_peer_tx_pending(h.peer) == 0);
	h.now = t + STALL_MS;
	hh_step(&h);
	CHECK(h.n_got == 1 && h.got[0].hdr.type == HFE_MSG_ERROR &&
	      h.got[0].u.error.code == HFE_ERR_TIMEOUT);
	CHECK(h.shutdown_wr == 1);
	hh_stop(&h);
}

/* A final reply queued by hfe_peer_service is written after the call, with no
 * I/O event to follow: the deadline asks for the call that half-closes. */
static void final_reply_from_service_asks_for_next_call(void)
{
	struct hh h;

	hh_start_default(&h);
	push_partial_ping(&h, 5);
	h.now += STALL_MS;
	CHECK(hh_service(&h) == HFE_PEER_OK && hfe_peer_tx_pending(h.peer) > 0);
	CHECK(h.deadline == h.now);
	hh_drain(&h, SIZE_MAX);
	CHECK(hh_service(&h) == HFE_PEER_SHUTDOWN_WR);
	hfe_peer_shutdown_done(h.peer);
	CHECK(hh_service(&h) == HFE_PEER_OK && h.deadline > h.now); /* now the linger */
	hh_stop(&h);
}

/* Each read restarts the stall clock. */
static void stall_timer_restarts_on_each_read(void)
{
	struct hh h;

	hh_start_default(&h);
	uint64_t t = h.now;
	push_partial_ping(&h, 3);
	h.now = t + 4000;
	CHECK(hh_push(&h, "\0\0\0", 3) == 3); /* still 6 bytes short */
	h.now = t + STALL_MS;
	CHECK(hh_service(&h) == HFE_PEER_OK);
	CHECK(h.deadline == t + 4000 + STALL_MS);
	h.now = t + 4000 + STALL_MS - 1;
	hh_step(&h);
	CHECK(h.n_got == 0);
	h.now = t + 4000 + STALL_MS;
	hh_step(&h);
	CHECK(h.n_got == 1 && h.got[0].u.error.code == HFE_ERR_TIMEOUT);
	hh_stop(&h);
}

/* A peer quiet between messages is idle, not stalled: no timer at all. */
static void silence_between_messages_is_not_a_stall(void)
{
	struct hh h;

	hh_start_default(&h);
	struct hfe_msg m = hh_mk(HFE_MSG_PING, 1);
	hh_push_msg(&h, &m, NULL, 0);
	hh_step(&h);
	h.now += 3600u * 1000u;
	CHECK(hh_step(&h) == HFE_PEER_OK);
	CHECK(h.deadline == UINT64_MAX);
	CHECK(h.n_got == 1 && h.got[0].hdr.type == HFE_MSG_PONG);
	CHECK(hfe_peer_wants_read(h.peer));
	hh_stop(&h);
}

/* While our output queue holds the peer back, its silence is ours: the stall
 * clock starts again only when we read again. */
static void stall_clock_paused_while_held_back(void)
{
	struct hfe_host_config cfg;
	struct hh h;

	hh_config(&cfg);
	cfg.max_queue = 64; /* one FRAME_RESPONSE fills it */
	hh_start(&h, &cfg);
	hh_push_frame(&h, 1, 1);
	push_partial_ping(&h, 5);
	CHECK(hh_wait_queued(&h, 64)); /* the reply is queued, not written */
	CHECK(!hfe_peer_wants_read(h.peer));
	size_t queued = hfe_peer_tx_pending(h.peer);
	h.now += 2 * STALL_MS;
	CHECK(hh_service(&h) == HFE_PEER_OK);
	CHECK(hfe_peer_tx_pending(h.peer) == queued); /* no ERROR added */
	uint64_t resumed = h.now;
	hh_drain(&h, SIZE_MAX);
	CHECK(hfe_peer_wants_read(h.peer));
	h.now = resumed + STALL_MS - 1;
	CHECK(hh_service(&h) == HFE_PEER_OK && hfe_peer_tx_pending(h.peer) == 0);
	h.now = resumed + STALL_MS;
	hh_step(&h);
	CHECK(h.n_got == 2 && h.got[0].hdr.type == HFE_MSG_FRAME_RESPONSE &&
	      h.got[1].u.error.code == HFE_ERR_TIMEOUT);
	hh_stop(&h);
}

/* A stall noticed while frames are still encoding: their replies are owed
 * first, the ERROR TIMEOUT follows them (found by fuzz_peer). */
static void stall_error_waits_for_owed_frame_replies(void)
{
	struct hh h;

	hh_start_default(&h);
	hh_push_frame(&h, 1, 1);
	push_partial_ping(&h, 5);
	h.now += STALL_MS; /* before the frame's encode is done */
	CHECK(hh_wait_msgs(&h, 2));
	CHECK(h.n_got == 2);
	CHECK(h.got[0].hdr.type == HFE_MSG_FRAME_RESPONSE);
	CHECK(h.got[1].hdr.type == HFE_MSG_ERROR && h.got[1].u.error.code == HFE_ERR_TIMEOUT);
	hh_stop(&h);
}

/* ---- errors and linger ---- */

/* A bad message after a frame: the frame's reply comes first, then ERROR. */
static void error_waits_for_owed_frame_replies(void)
{
	struct hh h;

	hh_start_default(&h);
	hh_push_frame(&h, 3, 1);
	CHECK(hh_push(&h, bad_header, sizeof(bad_header)) == sizeof(bad_header));
	CHECK(!hfe_peer_wants_read(h.peer));
	CHECK(hh_wait_msgs(&h, 2));
	CHECK(h.n_got == 2);
	CHECK(h.got[0].hdr.type == HFE_MSG_FRAME_RESPONSE && h.got[0].hdr.session_id == 3);
	CHECK(h.got[1].hdr.type == HFE_MSG_ERROR && h.got[1].u.error.code == HFE_ERR_INVALID_MSG);
	CHECK(h.shutdown_wr == 1);
	hh_stop(&h);
}

/* Our half-close waits until the ERROR has been written, to the last byte. */
static void error_flushed_before_half_close(void)
{
	struct hh h;

	hh_start_default(&h);
	hh_push(&h, bad_header, sizeof(bad_header));
	CHECK(hh_service(&h) == HFE_PEER_OK);
	size_t pending = hfe_peer_tx_pending(h.peer);
	CHECK(pending > HFE_HEADER_SIZE);
	hh_drain(&h, pending - 1);
	CHECK(hh_service(&h) == HFE_PEER_OK);
	hh_drain(&h, 1);
	CHECK(hh_service(&h) == HFE_PEER_SHUTDOWN_WR);
	CHECK(h.n_got == 1 && h.got[0].hdr.type == HFE_MSG_ERROR);
	hh_stop(&h);
}

/* SHUTDOWN_WR is asked for once; then input is discarded. */
static void half_close_asked_once_then_discarding(void)
{
	struct hh h;

	hh_start_default(&h);
	hh_push(&h, bad_header, sizeof(bad_header));
	hh_drain(&h, SIZE_MAX);
	CHECK(!hfe_peer_discarding(h.peer));
	CHECK(hh_service(&h) == HFE_PEER_SHUTDOWN_WR);
	hfe_peer_shutdown_done(h.peer);
	CHECK(hfe_peer_discarding(h.peer));
	CHECK(hh_service(&h) == HFE_PEER_OK);
	size_t len = 1;
	CHECK(hfe_peer_rx_buf(h.peer, &len) == NULL && len == 0);
	hh_stop(&h);
}

/* After our half-close we linger for the peer's close: not one ms past the
 * deadline the loop was given. */
static void linger_ends_at_deadline(void)
{
	struct hh h;

	hh_start_default(&h);
	hh_push(&h, bad_header, sizeof(bad_header));
	hh_step(&h); /* ERROR written, SHUTDOWN_WR done */
	CHECK(h.shutdown_wr == 1 && h.peer && hfe_peer_discarding(h.peer));
	uint64_t deadline = h.deadline;
	CHECK(deadline > h.now && deadline <= h.now + 10000);
	h.now = deadline - 1;
	CHECK(hh_service(&h) == HFE_PEER_OK && h.deadline == deadline);
	h.now = deadline;
	CHECK(hh_service(&h) == HFE_PEER_CLOSE);
	CHECK(h.reason && strcmp(h.reason, "protocol error") == 0);
	hh_stop(&h);
}

/* The peer closing during the linger ends it at once. */
static void linger_ends_early_on_peer_close(void)
{
	struct hh h;

	hh_start_default(&h);
	hh_push(&h, bad_header, sizeof(bad_header));
	hh_step(&h);
	CHECK(h.shutdown_wr == 1);
	h.now += 1;
	hh_eof(&h);
	CHECK(hh_service(&h) == HFE_PEER_CLOSE);
	CHECK(h.reason && strcmp(h.reason, "protocol error") == 0);
	hh_stop(&h);
}

/* ---- the peer's half-close ---- */

/* EOF stops reading at once. */
static void eof_stops_reading(void)
{
	struct hh h;
	size_t len = 1;

	hh_start_default(&h);
	CHECK(hfe_peer_wants_read(h.peer));
	hh_eof(&h);
	CHECK(!hfe_peer_wants_read(h.peer));
	CHECK(hfe_peer_rx_buf(h.peer, &len) == NULL && len == 0);
	hh_stop(&h);
}

/* EOF with replies not yet written: close only once they are. */
static void eof_waits_for_pending_output(void)
{
	struct hh h;

	hh_start_default(&h);
	struct hfe_msg m = hh_mk(HFE_MSG_PING, 2);
	hh_push_msg(&h, &m, NULL, 0);
	hh_eof(&h);
	CHECK(hh_service(&h) == HFE_PEER_OK);
	hh_drain(&h, HFE_HEADER_SIZE - 1);
	CHECK(hh_service(&h) == HFE_PEER_OK);
	hh_drain(&h, SIZE_MAX);
	CHECK(h.n_got == 1 && h.got[0].hdr.type == HFE_MSG_PONG);
	CHECK(hh_service(&h) == HFE_PEER_CLOSE);
	CHECK(h.reason && strcmp(h.reason, "peer closed the connection") == 0);
	CHECK(h.shutdown_wr == 0);
	hh_stop(&h);
}

/* EOF right after a frame request: the frame is still answered. */
static void eof_waits_for_frames_in_flight(void)
{
	struct hh h;

	hh_start_default(&h);
	hh_push_frame(&h, 1, 5);
	hh_eof(&h);
	CHECK(hh_wait_msgs(&h, 1));
	CHECK(h.n_got == 1 && h.got[0].hdr.type == HFE_MSG_FRAME_RESPONSE);
	if (h.peer)
		hh_step(&h);
	CHECK(h.closed && h.reason && strcmp(h.reason, "peer closed the connection") == 0);
	hh_stop(&h);
}

/* EOF in the middle of a message is a close, not a stall to time out. */
static void eof_mid_message_closes_without_error(void)
{
	struct hh h;

	hh_start_default(&h);
	push_partial_ping(&h, 5);
	hh_eof(&h);
	CHECK(hh_step(&h) == HFE_PEER_CLOSE);
	CHECK(h.n_got == 0);
	CHECK(h.reason && strcmp(h.reason, "peer closed the connection") == 0);
	hh_stop(&h);
}

int main(int argc, char **argv)
{
	static const struct unit_test tests[] = {
		{ "stall_fires_exactly_at_limit", stall_fires_exactly_at_limit },
		{ "final_reply_from_service_asks_for_next_call",
		  final_reply_from_service_asks_for_next_call },
		{ "stall_timer_restarts_on_each_read", stall_timer_restarts_on_each_read },
		{ "silence_between_messages_is_not_a_stall", silence_between_messages_is_not_a_stall },
		{ "stall_clock_paused_while_held_back", stall_clock_paused_while_held_back },
		{ "stall_error_waits_for_owed_frame_replies",
		  stall_error_waits_for_owed_frame_replies },
		{ "error_waits_for_owed_frame_replies", error_waits_for_owed_frame_replies },
		{ "error_flushed_before_half_close", error_flushed_before_half_close },
		{ "half_close_asked_once_then_discarding", half_close_asked_once_then_discarding },
		{ "linger_ends_at_deadline", linger_ends_at_deadline },
		{ "linger_ends_early_on_peer_close", linger_ends_early_on_peer_close },
		{ "eof_stops_reading", eof_stops_reading },
		{ "eof_waits_for_pending_output", eof_waits_for_pending_output },
		{ "eof_waits_for_frames_in_flight", eof_waits_for_frames_in_flight },
		{ "eof_mid_message_closes_without_error", eof_mid_message_closes_without_error },
	};
	return unit_run("test_host_close", tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
