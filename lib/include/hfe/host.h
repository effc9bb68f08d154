/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The host side of HXFR, without I/O: what a host does with each connected
 * peer (pull sessions, scanout subscriptions, HELLO/STATS/PING, errors,
 * stall timeouts, shutdown). The daemon's poll loop and the QEMU module's fd
 * handlers both drive it; they only move bytes and wake it up.
 *
 * Threads: all calls on a host and its peers come from one thread (the event
 * loop). Encoder workers call config.notify from their own threads; the loop
 * then calls hfe_host_dispatch() and services its peers.
 */
#ifndef HFE_HOST_H
#define HFE_HOST_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "hfe/encoder.h"
#include "hfe/input.h"
#include "hfe/scanout.h"
#include "hfe/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Pixels of a virtio-gpu resource, lent for one frame. */
struct hfe_resource_frame {
	const uint8_t *pixels;
	uint32_t format; /* HFE_FMT_* */
	uint32_t width, height, stride;
	/* Called once the frame has been encoded, from the encoder's thread. */
	void (*release)(void *opaque);
	void *opaque;
};

struct hfe_host_config {
	struct hfe_limits limits;
	unsigned max_inflight;   /* pull frames read ahead of replies, per peer */
	size_t max_queue;        /* outbound bytes per peer before reading pauses */
	int stall_timeout_ms;    /* a peer silent in the middle of a message */
	struct hfe_encoder_params enc;
	uint32_t sources;        /* HFE_SOURCE_* offered in HELLO_RESP (pixels always) */
	/* Wake the event loop (called from worker threads). */
	void (*notify)(void *opaque);
	void *notify_opaque;
	/* Resource mode: resolve a FRAME_REQUEST without pixels. NULL: every id
	 * is RESOURCE_NOT_FOUND. Return 0 with *out filled, or -1 with err
	 * (RESOURCE_NOT_FOUND, INVALID_MSG...). Called on the loop's thread. */
	int (*resolve_resource)(void *opaque, const struct hfe_frame_request *fr,
				struct hfe_resource_frame *out, struct hfe_err *err);
	void *resource_opaque;
	/* Input into the VM (INPUT_KEY, INPUT_POINTER) from control peers
	 * (hfe_peer_set_control). No `key`: this host takes no input. */
	struct hfe_input_sink input;
};

void hfe_host_config_default(struct hfe_host_config *cfg);

struct hfe_host;
struct hfe_peer;

struct hfe_host *hfe_host_new(const struct hfe_host_config *cfg);
/* All peers must have been freed. Waits until the encoders of closed peers
 * have finished their last frame (hfe_peer_free does not wait). */
void hfe_host_free(struct hfe_host *h);
/* Scanouts this host serves (add streams to it). */
struct hfe_hub *hfe_host_hub(struct hfe_host *h);
/* After a notify: move scanout access units to their subscribers. */
void hfe_host_dispatch(struct hfe_host *h);
/* Shutdown: peers stop reading, finish what they have, get ERROR SHUTDOWN. */
void hfe_host_stop(struct hfe_host *h);

/* A new connection; `name` is for logs. NULL on allocation failure. */
struct hfe_peer *hfe_peer_new(struct hfe_host *h, const char *name, uint64_t now_ms);
/* Logs the reason with the peer's counters. Returns at once: an encode in
 * progress finishes on its worker thread, which then frees itself. */
void hfe_peer_free(struct hfe_peer *p, const char *reason);
const char *hfe_peer_name(const struct hfe_peer *p);
/* The peer came through a listener configured for control: it may inject
 * input into the scanouts it subscribes to (if the host has an input sink).
 * Call before its first bytes are handled. */
void hfe_peer_set_control(struct hfe_peer *p, bool control);
/* Refuse it at once (too many peers): queues ERROR BUSY; then close after
 * writing what is queued. */
void hfe_peer_refuse_busy(struct hfe_peer *p, unsigned max_clients);

/* ---- bytes in ---- */
/* Where to read into; NULL when the peer must not be read now (backpressure,
 * closing, a complete message not yet handled cannot happen here). When it
 * returns NULL with hfe_peer_discarding() true, read and drop the bytes. */
uint8_t *hfe_peer_rx_buf(struct hfe_peer *p, size_t *len);
/* n bytes were read into that buffer: handles any complete message. */
void hfe_peer_rx_commit(struct hfe_peer *p, size_t n, uint64_t now_ms);
/* The peer closed its sending side. */
void hfe_peer_rx_eof(struct hfe_peer *p);
bool hfe_peer_wants_read(struct hfe_peer *p);
/* After a fatal error and our half-close: input is read and dropped until
 * the peer closes, so our ERROR is not lost to a reset. */
bool hfe_peer_discarding(const struct hfe_peer *p);

/* ---- bytes out ---- */
int hfe_peer_tx_iov(struct hfe_peer *p, struct iovec *iov, int max);
void hfe_peer_tx_consume(struct hfe_peer *p, size_t n);
size_t hfe_peer_tx_pending(const struct hfe_peer *p);

/* ---- the socket (peer_fd.c): the I/O every host loop does alike ---- */
/* Write what the non-blocking fd takes, at most about budget bytes (the
 * last writev may pass it by less than one iovec). 0, or -1: the connection
 * is gone. */
int hfe_peer_write_fd(struct hfe_peer *p, int fd, size_t budget);
/* Read what the peer lets us read, at most budget bytes (then the loop's
 * other clients get their turn), or drop input while discarding. 0, or -1:
 * the connection is gone. */
int hfe_peer_read_fd(struct hfe_peer *p, int fd, size_t budget);

/* ---- housekeeping ---- */
enum hfe_peer_action {
	HFE_PEER_OK,          /* nothing to do */
	HFE_PEER_SHUTDOWN_WR, /* final reply flushed: shutdown(fd, SHUT_WR), then call again */
	HFE_PEER_CLOSE,       /* close it; *reason says why */
};
/*
 * Collect finished encodes into the outbound queue and apply timeouts and
 * shutdown. Call after every wake and I/O. *deadline_ms (in/out) is lowered
 * to the next time this peer needs a call even without I/O; to `now` when
 * this call queued the final reply (call again once it is written, for the
 * SHUTDOWN_WR).
 */
enum hfe_peer_action hfe_peer_service(struct hfe_peer *p, uint64_t now_ms,
				      uint64_t *deadline_ms, const char **reason);
/* The loop did the SHUTDOWN_WR. */
void hfe_peer_shutdown_done(struct hfe_peer *p);

/* Monotonic milliseconds, the clock hfe_peer_* expects. */
uint64_t hfe_now_ms(void);

/* For a host living inside another program's latency-critical event loop
 * (QEMU's main loop): threads libhfe starts from now on — pull session and
 * scanout stream workers, and the encoder threads they create — run as
 * SCHED_BATCH at nice 10, so that on a busy machine they do not take the
 * CPU from that loop. Off by default. */
void hfe_set_background_workers(bool on);

/* Make the calling thread a background one: SCHED_BATCH at nice 10 (what
 * hfe_set_background_workers gives libhfe's threads). true if it is one now
 * (already, e.g. inherited, or after the calls); false where the calls are
 * refused (a seccomp filter: QEMU's -sandbox resourcecontrol=deny), errno
 * says why. */
bool hfe_thread_set_background(void);

/* Where threads cannot lower their own priority once they run, the host can
 * create them from a thread that made itself a background one before the
 * filter applied: a Linux thread inherits its creator's policy and nice
 * value. create(thread, fn, arg, opaque) then starts every thread libhfe
 * starts from now on, as pthread_create(thread, NULL, fn, arg) would, and
 * returns what it returned. NULL: pthread_create on the calling thread. */
typedef int (*hfe_thread_create_fn)(pthread_t *thread, void *(*fn)(void *), void *arg,
				    void *opaque);
void hfe_set_thread_creator(hfe_thread_create_fn create, void *opaque);

#ifdef __cplusplus
}
#endif
#endif
