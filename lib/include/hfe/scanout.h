/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Scanout push mode, protocol side: a hub of scanout streams and their
 * subscribers. It answers ENABLE_SCANOUT / DISABLE_SCANOUT / SUBSCRIBE for a
 * connection and fans each encoded access unit out to the subscribed
 * connections' outbound queues. The daemon and the QEMU module both use it;
 * it is called only from the thread that owns the connections (their event
 * loop), while the streams encode on their own threads.
 *
 * Slow subscribers: a connection whose outbound queue is above max_queue
 * skips access units and resumes only at the next IDR (which is requested
 * for it), so it never receives a P-frame whose reference it missed and never
 * slows the others.
 */
#ifndef HFE_SCANOUT_H
#define HFE_SCANOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hfe/conn.h"
#include "hfe/stream.h"
#include "hfe/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

struct hfe_hub;

struct hfe_hub *hfe_hub_new(size_t max_queue);
/* Frees the hub, not the streams. */
void hfe_hub_free(struct hfe_hub *hub);

/* Offer a stream as scanout `id` (connector name for SCANOUT_RESP). */
int hfe_hub_add_scanout(struct hfe_hub *hub, uint32_t id, struct hfe_stream *stream,
			const char *connector);
struct hfe_stream *hfe_hub_scanout(struct hfe_hub *hub, uint32_t id);

/*
 * Hot-pluggable outputs (virtio-gpu's): how ENABLE_SCANOUT / DISABLE_SCANOUT
 * reach the display device. Without them (test scanouts), ENABLE succeeds for
 * an existing scanout and changes nothing.
 *
 * Who may do what (all peers of a hub belong to the same VM): ENABLE makes
 * the peer the output's controller; an output controlled by another live
 * peer is refused. DISABLE always ends the peer's own subscription, and
 * unplugs the output only when that peer controls it, or when it was plugged
 * through ENABLE by a peer that has gone since (a restarted manager can clean
 * up). A peer leaving unplugs nothing: the desktops on it keep running.
 */
struct hfe_hub_outputs {
	uint32_t max_outputs;          /* output ids 0 .. max_outputs - 1 */
	uint32_t max_width, max_height; /* largest preferred mode accepted */
	/* Make output id connected with w x h as its preferred mode (also when
	 * it is connected already: a new mode). 0, or -1 with err. Called on
	 * the hub's thread; must not block. */
	int (*enable)(void *opaque, uint32_t id, uint32_t w, uint32_t h, uint32_t refresh,
		      struct hfe_err *err);
	/* Disconnect it. */
	int (*disable)(void *opaque, uint32_t id, struct hfe_err *err);
	void *opaque;
};
#define HFE_MAX_REFRESH 240u

void hfe_hub_set_outputs(struct hfe_hub *hub, const struct hfe_hub_outputs *outputs);

/* Handle ENABLE_SCANOUT, DISABLE_SCANOUT or SUBSCRIBE from conn: the reply is
 * queued on conn (a refusal is SCANOUT_RESP success = 0, and for v2 peers an
 * ERROR saying why before it). Returns 1 if the message was one of those,
 * else 0. */
int hfe_hub_handle(struct hfe_hub *hub, struct hfe_conn *conn, const struct hfe_msg *msg);
/*
 * CONFIG_REQ: when conn subscribes to scanout msg->hdr.session_id (as the
 * deployed bridge does: SUBSCRIBE, then CONFIG_REQ with session_id = scanout),
 * its bitrate applies to that scanout's stream and 1 is returned; v1 peers get
 * no reply, v2 peers a CONFIG_RESP. A stream encodes at the highest bitrate
 * its current subscribers asked for (the host's default when none asked);
 * width, height and frame rate follow the output, not the request.
 * Returns 0 (nothing done) for any other connection.
 */
int hfe_hub_config(struct hfe_hub *hub, struct hfe_conn *conn, const struct hfe_msg *msg);
/* KEYFRAME_REQ from a subscriber: an IDR on its scanouts. Returns the number
 * of scanouts it is subscribed to. */
unsigned hfe_hub_keyframe(struct hfe_hub *hub, struct hfe_conn *conn);
/* A connection is going away. */
void hfe_hub_drop_conn(struct hfe_hub *hub, struct hfe_conn *conn);
/* Move every ready access unit to its subscribers. Returns how many access
 * units were dispatched. */
unsigned hfe_hub_dispatch(struct hfe_hub *hub);
/* Does conn watch scanout id? (Input goes only to what the peer sees.) */
bool hfe_hub_subscribed(struct hfe_hub *hub, struct hfe_conn *conn, uint32_t id);
/* Subscribers of scanout id (for tests and stats). */
unsigned hfe_hub_subscribers(struct hfe_hub *hub, uint32_t id);

#ifdef __cplusplus
}
#endif
#endif
