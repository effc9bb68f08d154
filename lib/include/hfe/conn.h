/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One peer's protocol state, sans-I/O.
 *
 * Bytes in: the I/O loop asks where to put the next bytes (hfe_conn_rx_buf),
 * reads into that buffer itself, and commits what it read. Whole validated
 * messages come out of hfe_conn_next(). Large payloads (pixels, access units)
 * are read straight into their final buffer and can be taken over without a
 * copy (hfe_conn_take_payload).
 *
 * Bytes out: messages are queued as chunks (copied small headers, owned or
 * borrowed large buffers); the I/O loop drains them with
 * hfe_conn_tx_iov/hfe_conn_tx_consume. The queue's size is visible so the
 * owner can stop producing (backpressure) past its own cap.
 *
 * Version negotiation (v1 vs v2) and direction/state checks live here; what a
 * message *means* (encode, subscribe...) is the owner's business.
 */
#ifndef HFE_CONN_H
#define HFE_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "hfe/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

struct hfe_conn;

/* `role` is the side this endpoint plays: HFE_ROLE_HOST parses client ->
 * host messages. Limits are copied. Returns NULL on allocation failure. */
struct hfe_conn *hfe_conn_new(enum hfe_role role, const struct hfe_limits *lim);
void hfe_conn_free(struct hfe_conn *c);

/* ---- receiving ---- */

/* Where the next received bytes go, and how many are wanted at most (>= 1).
 * Returns NULL (and *len = 0) when no bytes can be taken now: the connection
 * has failed (stop reading), or a complete message waits for hfe_conn_next. */
uint8_t *hfe_conn_rx_buf(struct hfe_conn *c, size_t *len);
/* `n` bytes were written into the buffer from hfe_conn_rx_buf. */
void hfe_conn_rx_commit(struct hfe_conn *c, size_t n);
/* Copying convenience: feed bytes; returns how many were consumed (stops at a
 * complete message that has not been collected with hfe_conn_next yet, or at
 * an error). */
size_t hfe_conn_feed(struct hfe_conn *c, const uint8_t *data, size_t len);

/*
 * Next complete message. Returns 1 with *msg filled (msg->data valid until the
 * next call of hfe_conn_next / hfe_conn_rx_buf / hfe_conn_free unless taken),
 * 0 if more bytes are needed, -1 on a protocol error: hfe_conn_error() says
 * what, the connection is failed and accepts no more input.
 */
int hfe_conn_next(struct hfe_conn *c, struct hfe_msg *msg);

/* Take ownership of the payload buffer of the message last returned by
 * hfe_conn_next (free() it). msg->data points into it. */
uint8_t *hfe_conn_take_payload(struct hfe_conn *c);

/* True while part of a message has been received but not all of it. */
bool hfe_conn_rx_partial(const struct hfe_conn *c);

/* ---- state ---- */

/* Negotiated version: 0 = nothing received yet, HFE_PROTO_V1 or HFE_PROTO_V2. */
unsigned hfe_conn_version(const struct hfe_conn *c);
/* Client side: record that we sent HELLO and expect HELLO_RESP. */
void hfe_conn_set_version(struct hfe_conn *c, unsigned version);
bool hfe_conn_failed(const struct hfe_conn *c);
const struct hfe_err *hfe_conn_error(const struct hfe_conn *c);
/* Mark the connection failed from outside (e.g. a stall timeout); on a host
 * endpoint this queues an ERROR message to the peer. Only the first failure
 * is kept. */
void hfe_conn_fail(struct hfe_conn *c, int32_t code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Host role: on failure, do not queue the ERROR at once; the owner queues it
 * with hfe_conn_send_failure() after the replies to earlier requests, so a
 * peer sees every answer it is owed before the error. */
void hfe_conn_defer_errors(struct hfe_conn *c);
/* Queue the deferred ERROR of a failed connection (once). */
int hfe_conn_send_failure(struct hfe_conn *c);

/* ---- sending ---- */

/* Queue a message (header + body built with hfe_msg_build) followed by
 * `extra` bytes. copy: extra is copied now. owned: the queue frees it with
 * free_fn(opaque) once sent or on hfe_conn_free (free_fn may be NULL); on
 * failure, and at once when extra_len is 0, it is freed before returning.
 * Returns 0, or -1 on allocation failure or an unbuildable message. */
int hfe_conn_send(struct hfe_conn *c, const struct hfe_msg *msg, const void *extra,
		  size_t extra_len);
int hfe_conn_send_owned(struct hfe_conn *c, const struct hfe_msg *msg, const void *extra,
			size_t extra_len, void (*free_fn)(void *), void *opaque);
/* Queue an ERROR message (code + printf-style text). */
int hfe_conn_send_error(struct hfe_conn *c, uint16_t session_id, int32_t code,
			const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Fill up to `max` iovecs with queued bytes; returns how many. */
int hfe_conn_tx_iov(struct hfe_conn *c, struct iovec *iov, int max);
/* `n` bytes of the queue were written. */
void hfe_conn_tx_consume(struct hfe_conn *c, size_t n);
/* Bytes waiting to be written. */
size_t hfe_conn_tx_pending(const struct hfe_conn *c);

/* Counters for STATS. */
uint64_t hfe_conn_bytes_received(const struct hfe_conn *c);
uint64_t hfe_conn_bytes_sent(const struct hfe_conn *c);

#ifdef __cplusplus
}
#endif
#endif
