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

/* Handle ENABLE_SCANOUT, DISABLE_SCANOUT or SUBSCRIBE from conn: the reply is
 * queued on conn. Returns 1 if the message was one of those, else 0. */
int hfe_hub_handle(struct hfe_hub *hub, struct hfe_conn *conn, const struct hfe_msg *msg);
/* KEYFRAME_REQ from a subscriber: an IDR on its scanouts. Returns the number
 * of scanouts it is subscribed to. */
unsigned hfe_hub_keyframe(struct hfe_hub *hub, struct hfe_conn *conn);
/* A connection is going away. */
void hfe_hub_drop_conn(struct hfe_hub *hub, struct hfe_conn *conn);
/* Move every ready access unit to its subscribers. Returns how many access
 * units were dispatched. */
unsigned hfe_hub_dispatch(struct hfe_hub *hub);
/* Subscribers of scanout id (for tests and stats). */
unsigned hfe_hub_subscribers(struct hfe_hub *hub, uint32_t id);

#ifdef __cplusplus
}
#endif
#endif
