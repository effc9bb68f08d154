/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for lib/src/host.c: one peer of a host, with its pull
 * session and (optionally) a scanout stream in the host's hub behind it,
 * driven by the tests' host harness (no sockets, a fake clock).
 *
 * Input: byte 0 picks the configuration (bits 0-1 max_queue 64/512/4K/1M,
 * bits 2-3 max_inflight 1..4, bit 4 a scanout in the hub, bit 5 a resource
 * resolver, bit 6 libavcodec's rawvideo encoder instead of libx264, bit 7 a
 * control peer of a host with an input sink). Then
 * operations, one byte each, low two bits the kind, the upper six an
 * argument a:
 *   0 push: the next 1 + a*a input bytes go into the "socket"; the peer
 *     reads what it wants of it (the rest waits), or drops it while discarding
 *   1 time: the clock advances a*a*4 ms, then the loop services the peer
 *   2 drain: up to a*8 bytes of output are written (a = 0: all)
 *   3 events, bits of a: 1 EOF, 2 host stop, 4 the scanout draws a new
 *     picture, 8 wait (up to 2 ms, 4 times per input) for a worker,
 *     16 a whole loop turn
 * At the end the client closes and the loop runs until the peer is closed.
 *
 * Invariants, abort() on violation:
 *  - the peer's output always parses as host -> client messages;
 *  - nothing follows a fatal ERROR (the connection's own, not a frame's);
 *  - SHUTDOWN_WR only with the queue empty, and nothing queued after it;
 *  - hfe_peer_rx_buf offers a buffer exactly when hfe_peer_wants_read;
 *  - after the client's EOF the peer closes within bounded (fake) time;
 *  - every resource frame the resolver lent is given back once, by the end;
 *  - input reaches the sink only for a watched scanout (the hub's id 1),
 *    positions inside the limits; every key and button it pressed is
 *    released by the time the peer is gone.
 *
 * Speed (fuzz/README.md): encoders run one thread each, and the rawvideo
 * option makes an encoder cost almost nothing (host.c never looks inside a
 * packet); real-time waits are short and few, as they dominate otherwise.
 *
 * Linked with fuzz_replay.c it replays fuzz/corpus/fuzz_peer as a test.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "host_harness.h"

#define FAIL(...) FUZZ_FAIL("fuzz_peer", __VA_ARGS__)

#define SOCKET_MAX (64u << 10)
#define MAX_WAITS 4 /* real-time waits per input: executions stay fast */
#define WAIT_MS 2
#define RES_MAX 64 /* resources are up to RES_MAX x RES_MAX */

struct run {
	struct hh h;
	uint8_t sock[SOCKET_MAX]; /* bytes sent by the client, not yet read */
	size_t sock_len;
	bool half_closed; /* we did SHUTDOWN_WR */
	bool eof;
	bool fatal_seen; /* the last message checked was a fatal ERROR */
	unsigned waits;
	uint64_t tick;
};

/* Resource mode, as the QEMU module lends a virtio-gpu resource: an id's low
 * six bits give its size in steps of 8 px, id 0 and ids past 0xffff do not
 * exist. The release comes from the encoder's thread. */
static uint8_t res_pixels[RES_MAX * RES_MAX * 4];
static atomic_uint res_lent, res_released;

static void res_release(void *opaque)
{
	(void)opaque;
	atomic_fetch_add(&res_released, 1);
}

static int resolve(void *opaque, const struct hfe_frame_request *fr,
		   struct hfe_resource_frame *out, struct hfe_err *err)
{
	uint32_t id = fr->resource_id, w = 8 * (1 + (id & 7)), h = 8 * (1 + ((id >> 3) & 7));

	(void)opaque;
	if (id == 0 || id > 0xffff) {
		hfe_err_set(err, HFE_ERR_RESOURCE_NOT_FOUND, "no resource %u", id);
		return -1;
	}
	*out = (struct hfe_resource_frame){ res_pixels, HFE_FMT_XRGB8888, w, h, w * 4,
					    res_release, NULL };
	atomic_fetch_add(&res_lent, 1);
	return 0;
}

/* The VM's side of input: what is held, by evdev code and button. */
static uint8_t keys_held[HFE_KEY_MAX + 1];
static unsigned buttons_held;

static void in_key(void *o, uint32_t s, uint32_t code, bool down)
{
	(void)o;
	if (s != 1 || code < 1 || code > HFE_KEY_MAX)
		FAIL("key %u for scanout %u", code, s);
	keys_held[code] = down;
}

static void in_move(void *o, uint32_t s, uint32_t x, uint32_t y)
{
	(void)o;
	if (s != 1 || x >= 64 || y >= 64)
		FAIL("move to %u,%u on scanout %u", x, y, s);
}

static void in_button(void *o, uint32_t s, enum hfe_button_id b, bool down)
{
	(void)o;
	if (s != 1 || b > HFE_BTN_WHEEL_RIGHT)
		FAIL("button %d on scanout %u", (int)b, s);
	buttons_held = down ? buttons_held | 1u << b : buttons_held & ~(1u << b);
}

static void in_sync(void *o, uint32_t s)
{
	(void)o;
	if (s != 1)
		FAIL("sync on scanout %u", s);
}

/* ERROR codes only the connection itself sends (then closes). */
static bool fatal_code(int32_t code)
{
	switch (code) {
	case HFE_ERR_INVALID_MSG:
	case HFE_ERR_TOO_LARGE:
	case HFE_ERR_PROTOCOL:
	case HFE_ERR_BUSY:
	case HFE_ERR_TIMEOUT:
	case HFE_ERR_VERSION:
	case HFE_ERR_SHUTDOWN:
		return true;
	case HFE_ERR_DENIED: /* fatal only without control; kept for unwatched ids */
		return false;
	default:
		return false;
	}
}

static void check(struct run *r)
{
	struct hh *h = &r->h;

	if (h->client_failed)
		FAIL("the peer's output does not parse");
	for (unsigned i = 0; i < h->n_got; i++) {
		if (r->fatal_seen)
			FAIL("message 0x%02x after a fatal ERROR", h->got[i].hdr.type);
		r->fatal_seen = h->got[i].hdr.type == HFE_MSG_ERROR &&
				fatal_code(h->got[i].u.error.code);
	}
	if (r->fatal_seen && h->n_lost)
		FAIL("messages after a fatal ERROR");
	h->n_got = h->n_lost = 0; /* checked: make room */
	if (!h->peer)
		return;
	if (r->half_closed && hfe_peer_tx_pending(h->peer))
		FAIL("%zu bytes queued after our half-close", hfe_peer_tx_pending(h->peer));
	size_t len = 0;
	uint8_t *buf = hfe_peer_rx_buf(h->peer, &len);
	if ((buf != NULL) != hfe_peer_wants_read(h->peer) || (buf && len == 0))
		FAIL("rx_buf %p (%zu) while wants_read %d", (void *)buf, len,
		     hfe_peer_wants_read(h->peer));
}

/* One service call as the loop makes it. */
static void service(struct run *r)
{
	struct hh *h = &r->h;

	hfe_host_dispatch(h->host);
	for (int i = 0; i < 4 && h->peer; i++) {
		bool pending = hfe_peer_tx_pending(h->peer) > 0;
		enum hfe_peer_action a = hh_service(h);
		if (a != HFE_PEER_SHUTDOWN_WR)
			break;
		if (pending || r->half_closed)
			FAIL(pending ? "SHUTDOWN_WR with output pending" : "SHUTDOWN_WR twice");
		hfe_peer_shutdown_done(h->peer);
		r->half_closed = true;
	}
}

/* The client's bytes: what the peer takes now, or dropped while it discards. */
static void feed(struct run *r)
{
	struct hh *h = &r->h;
	size_t used;

	if (!h->peer || !r->sock_len)
		return;
	used = hfe_peer_discarding(h->peer) ? r->sock_len : hh_push(h, r->sock, r->sock_len);
	memmove(r->sock, r->sock + used, r->sock_len - used);
	r->sock_len -= used;
}

static void turn(struct run *r)
{
	feed(r);
	service(r);
	hh_drain(&r->h, SIZE_MAX);
	service(r);
}

static void event(struct run *r, unsigned a)
{
	struct hh *h = &r->h;

	if ((a & 1) && h->peer && !r->eof) {
		feed(r);
		hh_eof(h);
		r->eof = true;
	}
	if (a & 2)
		hfe_host_stop(h->host);
	if ((a & 4) && h->n_streams)
		hh_draw(h, ++r->tick);
	if ((a & 8) && r->waits < MAX_WAITS) {
		r->waits++;
		hh_wait_notify(h, hh_notifies(h), WAIT_MS);
	}
	if (a & 16)
		turn(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t queues[4] = { 64, 512, 4096, 1u << 20 };
	static struct run r;
	struct hfe_host_config cfg;
	struct hh *h = &r.h;
	size_t pos = 1;

	if (size < 1)
		return 0;
	r.sock_len = 0;
	r.half_closed = r.eof = r.fatal_seen = false;
	r.tick = 0;
	r.waits = 0;
	hh_config(&cfg);
	cfg.limits.max_width = 64;
	cfg.limits.max_height = 64;
	cfg.limits.max_payload = 64 * 64 * 4 + 256;
	cfg.max_queue = queues[data[0] & 3];
	cfg.max_inflight = 1 + ((data[0] >> 2) & 3);
	cfg.stall_timeout_ms = 1000;
	cfg.enc.threads = 1; /* x264's slice threads: per-input thread churn, no host logic */
	if (data[0] & 0x20)
		cfg.resolve_resource = resolve;
	if (data[0] & 0x40)
		snprintf(cfg.enc.name, sizeof(cfg.enc.name), "rawvideo");
	if (data[0] & 0x80)
		cfg.input = (struct hfe_input_sink){ in_key, in_move, in_button, in_sync, NULL };
	memset(keys_held, 0, sizeof(keys_held));
	buttons_held = 0;
	atomic_store(&res_lent, 0);
	atomic_store(&res_released, 0);
	hh_start(h, &cfg);
	hfe_peer_set_control(h->peer, data[0] & 0x80);
	if (data[0] & 0x10) {
		hh_add_scanout(h, 1, 48, 32); /* small: drawing it is per-pixel work */
		hh_draw(h, 0);
	}

	while (pos < size && h->peer) {
		unsigned op = data[pos++], a = op >> 2;
		switch (op & 3) {
		case 0: {
			size_t n = 1 + (size_t)a * a;
			if (n > size - pos)
				n = size - pos;
			if (n > SOCKET_MAX - r.sock_len)
				n = SOCKET_MAX - r.sock_len;
			memcpy(r.sock + r.sock_len, data + pos, n);
			r.sock_len += n;
			pos += n;
			feed(&r);
			break;
		}
		case 1:
			h->now += (uint64_t)a * a * 4;
			service(&r);
			break;
		case 2:
			hh_drain(h, a ? (size_t)a * 8 : SIZE_MAX);
			break;
		case 3:
			event(&r, a);
			break;
		}
		check(&r);
	}

	/* The client closes; the loop runs until the peer is gone. */
	event(&r, 1);
	for (int i = 0; i < 400 && h->peer; i++) {
		unsigned seen = hh_notifies(h);
		turn(&r);
		check(&r);
		if (!h->peer)
			break;
		h->now += 100;
		hh_wait_notify(h, seen, 5);
	}
	if (h->peer)
		FAIL("peer still open 40 s (fake) after the client's EOF");
	for (unsigned k = 0; k <= HFE_KEY_MAX; k++)
		if (keys_held[k])
			FAIL("key %u still held after the peer closed", k);
	if (buttons_held)
		FAIL("buttons 0x%x still held after the peer closed", buttons_held);
	hh_stop(h); /* waits for detached sessions: every release has run */
	if (atomic_load(&res_released) != atomic_load(&res_lent))
		FAIL("%u resource frames lent, %u given back", atomic_load(&res_lent),
		     atomic_load(&res_released));
	return 0;
}
