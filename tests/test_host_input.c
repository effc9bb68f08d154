/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * lib/src/host.c and input.c: who may inject input (control peers only,
 * only into scanouts they watch), what reaches the VM's side (the input
 * sink, recorded here), motion merged per turn, everything held released
 * when the peer goes, and the rate bound. No sockets (host_harness.h); one
 * behaviour per test (`test_host_input NAME`, `--list`).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_harness.h"
#include "unit_check.h"

#define SCANOUT 0u
#define OTHER 1u

/* ---- the recording sink ---- */

enum ev_kind { EV_KEY, EV_MOVE, EV_BUTTON, EV_SYNC };

struct ev {
	enum ev_kind kind;
	uint32_t scanout, a, b; /* key: code, down; move: x, y; button: id, down */
};

static struct ev evs[4096];
static unsigned n_evs;

static void add(enum ev_kind k, uint32_t scanout, uint32_t a, uint32_t b)
{
	if (n_evs < sizeof(evs) / sizeof(evs[0]))
		evs[n_evs] = (struct ev){ k, scanout, a, b };
	n_evs++;
}

static void on_key(void *o, uint32_t s, uint32_t code, bool down)
{
	(void)o;
	add(EV_KEY, s, code, down);
}
static void on_move(void *o, uint32_t s, uint32_t x, uint32_t y)
{
	(void)o;
	add(EV_MOVE, s, x, y);
}
static void on_button(void *o, uint32_t s, enum hfe_button_id b, bool down)
{
	(void)o;
	add(EV_BUTTON, s, b, down);
}
static void on_sync(void *o, uint32_t s)
{
	(void)o;
	add(EV_SYNC, s, 0, 0);
}

static bool ev_is(unsigned i, enum ev_kind k, uint32_t scanout, uint32_t a, uint32_t b)
{
	return i < n_evs && evs[i].kind == k && evs[i].scanout == scanout && evs[i].a == a &&
	       evs[i].b == b;
}

/* A host with the recording sink; the peer is a v2 control peer watching
 * SCANOUT unless told otherwise. */
static void start(struct hh *h, bool control, bool sink)
{
	struct hfe_host_config cfg;

	n_evs = 0;
	hh_config(&cfg);
	if (sink)
		cfg.input = (struct hfe_input_sink){ on_key, on_move, on_button, on_sync, NULL };
	hh_start(h, &cfg);
	hfe_peer_set_control(h->peer, control);
	hh_add_scanout(h, SCANOUT, 160, 96);
	hh_add_scanout(h, OTHER, 160, 96);
	struct hfe_msg m = hh_mk_hello(1, 2);
	hh_push_msg(h, &m, NULL, 0);
	hh_step(h);
}

static void subscribe(struct hh *h, uint32_t id)
{
	struct hfe_msg m = hh_mk(HFE_MSG_SUBSCRIBE, (uint16_t)id);
	m.u.scanout_id = id;
	hh_push_msg(h, &m, NULL, 0);
	hh_step(h);
}

static size_t key(struct hh *h, uint32_t scanout, uint32_t code, bool down)
{
	struct hfe_msg m = hh_mk(HFE_MSG_INPUT_KEY, (uint16_t)scanout);
	m.u.key = (struct hfe_input_key){ code, down };
	return hh_push_msg(h, &m, NULL, 0);
}

static size_t pointer(struct hh *h, uint32_t scanout, uint32_t x, uint32_t y, uint32_t buttons,
		      int16_t wy, int16_t wx)
{
	struct hfe_msg m = hh_mk(HFE_MSG_INPUT_POINTER, (uint16_t)scanout);
	m.u.pointer = (struct hfe_input_pointer){ x, y, buttons, wy, wx };
	return hh_push_msg(h, &m, NULL, 0);
}

/* ---- who may inject ---- */

static void hello_says_input_on_control_listener(void)
{
	struct hh h;

	start(&h, true, true);
	CHECK(h.n_got == 1 && (h.got[0].u.hello_resp.features & HFE_FEATURE_INPUT));
	hh_stop(&h);
	start(&h, false, true);
	CHECK(h.n_got == 1 && !(h.got[0].u.hello_resp.features & HFE_FEATURE_INPUT));
	hh_stop(&h);
	start(&h, true, false); /* a host without a sink takes no input */
	CHECK(h.n_got == 1 && !(h.got[0].u.hello_resp.features & HFE_FEATURE_INPUT));
	hh_stop(&h);
}

/* Input on a listener without control: ERROR DENIED, the peer is closed and
 * nothing reaches the VM. */
static void input_without_control_denied_and_closed(void)
{
	struct hh h;

	start(&h, false, true);
	subscribe(&h, SCANOUT);
	key(&h, SCANOUT, 30, true);
	hh_step(&h);
	int e = hh_find(&h, HFE_MSG_ERROR, 0);
	CHECK(e >= 0 && h.got[e].u.error.code == HFE_ERR_DENIED);
	CHECK(h.shutdown_wr == 1 || h.closed);
	CHECK(n_evs == 0);
	hh_stop(&h);
}

static void input_to_host_without_sink_denied(void)
{
	struct hh h;

	start(&h, true, false);
	subscribe(&h, SCANOUT);
	pointer(&h, SCANOUT, 1, 2, 0, 0, 0);
	hh_step(&h);
	int e = hh_find(&h, HFE_MSG_ERROR, 0);
	CHECK(e >= 0 && h.got[e].u.error.code == HFE_ERR_DENIED);
	hh_stop(&h);
}

/* A scanout the peer does not watch: ERROR DENIED on that scanout's id,
 * nothing injected, and the connection stays (PING still answered). */
static void input_for_unwatched_scanout_refused_peer_kept(void)
{
	struct hh h;

	start(&h, true, true);
	subscribe(&h, SCANOUT);
	key(&h, OTHER, 30, true);
	pointer(&h, 7, 5, 5, 1, 0, 0); /* a scanout this host does not have at all */
	struct hfe_msg ping = hh_mk(HFE_MSG_PING, 3);
	hh_push_msg(&h, &ping, NULL, 0);
	hh_step(&h);
	int e = hh_find(&h, HFE_MSG_ERROR, 0);
	if (CHECK(e >= 0)) {
		CHECK(h.got[e].u.error.code == HFE_ERR_DENIED && h.got[e].hdr.session_id == OTHER);
		int e2 = hh_find(&h, HFE_MSG_ERROR, (unsigned)e + 1);
		CHECK(e2 > e && h.got[e2].hdr.session_id == 7);
	}
	CHECK(hh_find(&h, HFE_MSG_PONG, 0) >= 0);
	CHECK(!h.closed && h.shutdown_wr == 0);
	CHECK(n_evs == 0);
	hh_stop(&h);
}

/* v1 peers cannot send input (v2 messages): PROTOCOL. */
static void v1_peer_input_is_protocol_error(void)
{
	struct hh h;
	struct hfe_host_config cfg;

	n_evs = 0;
	hh_config(&cfg);
	cfg.input = (struct hfe_input_sink){ on_key, on_move, on_button, on_sync, NULL };
	hh_start(&h, &cfg);
	hfe_peer_set_control(h.peer, true);
	key(&h, SCANOUT, 30, true);
	hh_step(&h);
	CHECK(h.n_got == 1 && h.got[0].u.error.code == HFE_ERR_PROTOCOL);
	CHECK(n_evs == 0);
	hh_stop(&h);
}

/* ---- what reaches the VM ---- */

/* Keys in order; a release of a key never pressed is dropped; the keys
 * still held are released when the peer goes. */
static void keys_in_order_held_ones_released_at_close(void)
{
	struct hh h;

	start(&h, true, true);
	subscribe(&h, SCANOUT);
	key(&h, SCANOUT, 42, true);  /* shift */
	key(&h, SCANOUT, 30, true);  /* a */
	key(&h, SCANOUT, 30, false);
	key(&h, SCANOUT, 48, false); /* b: never pressed */
	key(&h, SCANOUT, 29, true);  /* ctrl */
	hh_step(&h);
	CHECK(n_evs == 4);
	CHECK(ev_is(0, EV_KEY, SCANOUT, 42, 1) && ev_is(1, EV_KEY, SCANOUT, 30, 1) &&
	      ev_is(2, EV_KEY, SCANOUT, 30, 0) && ev_is(3, EV_KEY, SCANOUT, 29, 1));
	hfe_peer_free(h.peer, "test");
	h.peer = NULL;
	CHECK(n_evs == 6);
	CHECK(ev_is(4, EV_KEY, SCANOUT, 29, 0) && ev_is(5, EV_KEY, SCANOUT, 42, 0));
	hh_stop(&h);
}

/* The peer closing its side releases at once, buttons too. */
static void eof_releases_keys_and_buttons(void)
{
	struct hh h;

	start(&h, true, true);
	subscribe(&h, SCANOUT);
	key(&h, SCANOUT, 56, true);
	pointer(&h, SCANOUT, 10, 20, HFE_BUTTON_LEFT | HFE_BUTTON_RIGHT, 0, 0);
	hh_step(&h);
	unsigned before = n_evs;
	hh_eof(&h);
	CHECK(n_evs > before);
	bool key_up = false, left_up = false, right_up = false;
	for (unsigned i = before; i < n_evs; i++) {
		key_up |= ev_is(i, EV_KEY, SCANOUT, 56, 0);
		left_up |= ev_is(i, EV_BUTTON, SCANOUT, HFE_BTN_LEFT, 0);
		right_up |= ev_is(i, EV_BUTTON, SCANOUT, HFE_BTN_RIGHT, 0);
	}
	CHECK(key_up && left_up && right_up);
	CHECK(evs[n_evs - 1].kind == EV_SYNC);
	hh_stop(&h);
}

/* Moves read in one turn become one move (the last position) at service;
 * a button change moves first, then presses, then syncs. */
static void motion_merged_buttons_in_order(void)
{
	struct hh h;

	start(&h, true, true);
	subscribe(&h, SCANOUT);
	for (uint32_t i = 0; i < 15; i++) /* within the bucket's burst */
		pointer(&h, SCANOUT, i, 2 * i, 0, 0, 0);
	CHECK(n_evs == 0); /* nothing until the turn ends */
	hh_step(&h);
	CHECK(n_evs == 2 && ev_is(0, EV_MOVE, SCANOUT, 14, 28) && ev_is(1, EV_SYNC, SCANOUT, 0, 0));
	n_evs = 0;
	pointer(&h, SCANOUT, 100, 50, 0, 0, 0);
	pointer(&h, SCANOUT, 101, 51, HFE_BUTTON_MIDDLE, 0, 0);
	pointer(&h, SCANOUT, 101, 51, 0, 0, 0);
	CHECK(n_evs == 6);
	CHECK(ev_is(0, EV_MOVE, SCANOUT, 101, 51) && ev_is(1, EV_SYNC, SCANOUT, 0, 0) &&
	      ev_is(2, EV_BUTTON, SCANOUT, HFE_BTN_MIDDLE, 1) && ev_is(3, EV_SYNC, SCANOUT, 0, 0) &&
	      ev_is(4, EV_BUTTON, SCANOUT, HFE_BTN_MIDDLE, 0) && ev_is(5, EV_SYNC, SCANOUT, 0, 0));
	hh_step(&h);
	CHECK(n_evs == 6); /* no motion left over */
	hh_stop(&h);
}

/* Wheel notches: a press and a release each, by direction. */
static void wheel_notches_are_button_clicks(void)
{
	struct hh h;

	start(&h, true, true);
	subscribe(&h, SCANOUT);
	pointer(&h, SCANOUT, 5, 5, 0, 0, 0);
	hh_step(&h);
	n_evs = 0;
	pointer(&h, SCANOUT, 5, 5, 0, 2, -1);
	CHECK(n_evs == 12);
	CHECK(ev_is(0, EV_BUTTON, SCANOUT, HFE_BTN_WHEEL_DOWN, 1) &&
	      ev_is(2, EV_BUTTON, SCANOUT, HFE_BTN_WHEEL_DOWN, 0) &&
	      ev_is(4, EV_BUTTON, SCANOUT, HFE_BTN_WHEEL_DOWN, 1) &&
	      ev_is(8, EV_BUTTON, SCANOUT, HFE_BTN_WHEEL_LEFT, 1) &&
	      ev_is(10, EV_BUTTON, SCANOUT, HFE_BTN_WHEEL_LEFT, 0));
	hh_stop(&h);
}

/* Input for another watched scanout first releases what is held on the
 * first one. */
static void switching_scanout_releases_first(void)
{
	struct hh h;

	start(&h, true, true);
	subscribe(&h, SCANOUT);
	subscribe(&h, OTHER);
	key(&h, SCANOUT, 30, true);
	key(&h, OTHER, 31, true);
	CHECK(n_evs == 3 && ev_is(0, EV_KEY, SCANOUT, 30, 1) && ev_is(1, EV_KEY, SCANOUT, 30, 0) &&
	      ev_is(2, EV_KEY, OTHER, 31, 1));
	hh_stop(&h);
}

/* ---- the rate bound ---- */

/* A flood: HFE_INPUT_BURST messages are read at once, then reading stops
 * (the client's writes would block), service asks to be called when a token
 * is back, and the rate is HFE_INPUT_RATE a second from then on. */
static void flood_is_bounded_by_the_bucket(void)
{
	struct hh h;
	static uint8_t flood[20000 * 20];
	size_t one = 0, len = 0;

	start(&h, true, true);
	subscribe(&h, SCANOUT);
	for (unsigned i = 0; i < 20000; i++) {
		struct hfe_msg m = hh_mk(HFE_MSG_INPUT_KEY, SCANOUT);
		m.u.key = (struct hfe_input_key){ 30, i % 2 == 0 };
		one = hfe_msg_build(&m, 0, flood + len, sizeof(flood) - len);
		len += one;
	}
	size_t took = hh_push(&h, flood, len);
	CHECK(took == HFE_INPUT_BURST * one);
	CHECK(!hfe_peer_wants_read(h.peer));
	hh_service(&h);
	CHECK(h.deadline == h.now + 1000 / HFE_INPUT_RATE); /* when the next token is in */
	h.now += 100;
	hh_service(&h);
	CHECK(hfe_peer_wants_read(h.peer));
	size_t more = hh_push(&h, flood + took, len - took);
	CHECK(more == 100 * HFE_INPUT_RATE / 1000 * one);
	h.now += 100000; /* a long pause refills only the burst */
	hh_service(&h);
	more = hh_push(&h, flood + took + more, len - took - more);
	CHECK(more == HFE_INPUT_BURST * one);
	CHECK(n_evs == 2 * HFE_INPUT_BURST + 100 * HFE_INPUT_RATE / 1000);
	CHECK(!h.closed);
	hh_stop(&h);
}

int main(int argc, char **argv)
{
	static const struct unit_test tests[] = {
		{ "hello_says_input_on_control_listener", hello_says_input_on_control_listener },
		{ "input_without_control_denied_and_closed",
		  input_without_control_denied_and_closed },
		{ "input_to_host_without_sink_denied", input_to_host_without_sink_denied },
		{ "input_for_unwatched_scanout_refused_peer_kept",
		  input_for_unwatched_scanout_refused_peer_kept },
		{ "v1_peer_input_is_protocol_error", v1_peer_input_is_protocol_error },
		{ "keys_in_order_held_ones_released_at_close",
		  keys_in_order_held_ones_released_at_close },
		{ "eof_releases_keys_and_buttons", eof_releases_keys_and_buttons },
		{ "motion_merged_buttons_in_order", motion_merged_buttons_in_order },
		{ "wheel_notches_are_button_clicks", wheel_notches_are_button_clicks },
		{ "switching_scanout_releases_first", switching_scanout_releases_first },
		{ "flood_is_bounded_by_the_bucket", flood_is_bounded_by_the_bucket },
	};
	return unit_run("test_host_input", tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
