/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A host with one peer, driven without sockets (test_host*.c, fuzz/fuzz_peer.c).
 *
 * The harness plays the event loop of daemon/server.c: it pushes scripted
 * bytes through hfe_peer_rx_buf/rx_commit, moves the peer's output into a
 * client-role hfe_conn that parses it, and calls hfe_peer_service with a fake
 * clock the test advances by hand. Sessions and scanout streams behind the
 * peer are the real ones (their workers encode on threads); waiting for their
 * results blocks on the host's notify callback, never on a sleep.
 *
 * Harness misuse (allocation failure, a message that cannot be built) aborts;
 * what the peer does is for the caller to check.
 */
#ifndef HFE_HOST_HARNESS_H
#define HFE_HOST_HARNESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hfe/host.h"
#include "hfe/conn.h"
#include "hfe/stream.h"
#include "hfe/wire.h"

#define HH_MAX_MSGS 256
#define HH_MAX_SCANOUTS 2
#define HH_T0 100000u /* the fake clock's start: far from 0, so nothing hides at 0 */

struct hh {
	struct hfe_host *host;
	struct hfe_peer *peer; /* NULL once closed */
	struct hfe_conn *client; /* parses what the peer sent */
	uint64_t now;            /* the fake clock, ms */
	uint64_t deadline;       /* from the last hh_service, UINT64_MAX if none */
	const char *reason;      /* why the peer was closed */
	bool closed;
	unsigned shutdown_wr; /* HFE_PEER_SHUTDOWN_WR seen (the loop then half-closes) */
	/* Every message the peer sent, data dropped (data_len kept). */
	struct hfe_msg got[HH_MAX_MSGS];
	unsigned n_got;
	unsigned n_lost; /* arrived after got[] was full */
	bool client_failed; /* the peer's output did not parse */
	uint64_t tx_total;  /* bytes taken from the peer */
	/* Worker wake-ups (notify). */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned notifies;
	struct hfe_stream *streams[HH_MAX_SCANOUTS];
	unsigned n_streams;
	struct hfe_encoder_params enc; /* the host's: scanouts encode alike */
	/* Called for each message the peer sent while its data is valid. */
	void (*on_data)(struct hh *h, const struct hfe_msg *m);
	uint8_t *picture; /* the test source's picture for hh_draw */
	uint32_t pic_w, pic_h;
};

/* Test defaults: hfe_host_config_default with small frames' limits. notify is
 * set by hh_start. */
void hh_config(struct hfe_host_config *cfg);
/* A host and one connected peer at time HH_T0. */
void hh_start(struct hh *h, const struct hfe_host_config *cfg);
/* The same with hh_config's defaults. */
void hh_start_default(struct hh *h);
/* Frees the peer (if open), streams and host. */
void hh_stop(struct hh *h);

/* Offer a scanout stream (real encoder, the host config's encoder params, test
 * picture w x h) as scanout id. */
struct hfe_stream *hh_add_scanout(struct hh *h, uint32_t id, uint32_t w, uint32_t hgt);
/* Draw test picture `tick` into every scanout (the first call sizes them). */
void hh_draw(struct hh *h, uint64_t tick);

/* Bytes from the client, read the way the daemon reads: only while the peer
 * wants them, never past what rx_buf offers. Returns how many were taken. */
size_t hh_push(struct hh *h, const void *bytes, size_t n);
/* Build a message (+ extra payload) and push it; returns bytes taken. */
size_t hh_push_msg(struct hh *h, const struct hfe_msg *m, const void *extra, size_t len);
/* The wire size of that message. */
size_t hh_msg_size(const struct hfe_msg *m, size_t extra_len);
/* The client closed its sending side. */
void hh_eof(struct hh *h);

/* One hfe_peer_service call at h->now (deadline reset first). CLOSE frees the
 * peer; SHUTDOWN_WR is only counted (the caller decides when it is done). */
enum hfe_peer_action hh_service(struct hh *h);
/* Take up to max bytes of the peer's output (SIZE_MAX: all) and parse them. */
size_t hh_drain(struct hh *h, size_t max);
/* What daemon/server.c does on each wake: dispatch scanouts, flush, service
 * (performing SHUTDOWN_WR), flush again; and another turn at once while the
 * deadline service gave is already due. */
enum hfe_peer_action hh_step(struct hh *h);
/* hh_step until `n` messages have arrived in total or the peer closed,
 * waiting for worker notifies in between (up to 10 s of real time, a hang).
 * Returns true if n were reached. */
bool hh_wait_msgs(struct hh *h, unsigned n);
/* Worker wake-ups so far; wait (up to ms of real time) for one after `seen`.
 * Returns false on timeout. */
unsigned hh_notifies(struct hh *h);
bool hh_wait_notify(struct hh *h, unsigned seen, unsigned ms);
/* Like hh_wait_msgs but without draining: service until the peer's queue
 * holds at least `bytes` (session results collected). */
bool hh_wait_queued(struct hh *h, size_t bytes);

/* Messages the client builds. */
struct hfe_msg hh_mk(uint8_t type, uint16_t sid);
struct hfe_msg hh_mk_hello(uint16_t vmin, uint16_t vmax);
/* A 64x64 XRGB8888 frame with pixels (HH_FRAME_BYTES of them). */
#define HH_FRAME_W 64u
#define HH_FRAME_H 64u
#define HH_FRAME_BYTES (HH_FRAME_W * HH_FRAME_H * 4u)
struct hfe_msg hh_mk_frame(uint16_t sid, int64_t pts);
/* Push one pixel frame (pattern varies with pts). */
size_t hh_push_frame(struct hh *h, uint16_t sid, int64_t pts);

/* Index of the first received message of `type` at or after `from`, or -1. */
int hh_find(const struct hh *h, uint8_t type, unsigned from);

#endif
