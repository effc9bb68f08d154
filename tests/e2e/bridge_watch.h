/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A subscriber that behaves exactly like the deployed desktop bridge, in raw
 * bytes (tests/raw_peer.c, written from docs/protocol.md, not from libhfe's
 * wire code): no HELLO; SUBSCRIBE with the scanout id in the body and in
 * session_id; SUBSCRIBE_RESP; CONFIG_REQ (session_id = scanout, 0x0, the
 * bitrate, 60/1 fps, profile 66, level 40, realtime) with no reply expected;
 * then, on its own thread, FRAME_RESPONSEs only. That client treats any
 * other message as a fatal read error, so anything else is counted.
 * Shared by test_e2e_outputs and bench/outputs.
 */
#ifndef HFE_E2E_BRIDGE_WATCH_H
#define HFE_E2E_BRIDGE_WATCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raw_peer.h"

struct bridge_au {
	uint8_t *data;  /* the access unit (Annex-B); NULL unless keep_data */
	size_t len;
	bool key;
	int64_t pts;    /* as the host sent it */
	uint64_t t_ns;  /* arrival, e2e_now_ns() */
};

struct bridge_watch {
	uint32_t scanout;
	bool keep_data;
	struct tconn c;
	pthread_t thread;
	bool running;
	atomic_bool stop;
	pthread_mutex_t lock; /* guards aus and n while the thread runs */
	struct bridge_au *aus;
	size_t n, cap;
	unsigned others; /* messages a deployed bridge would drop the stream at */
	bool failed;     /* the connection broke, or sent what is not HXFR */
};

/*
 * Connect to addr ("unix:PATH" or "tcp:127.0.0.1:PORT", retried for up to
 * 15 s while the host starts), subscribe as the bridge does and start the
 * reading thread. keep_data: keep each AU's bytes (a test decodes them; the
 * bench keeps times only). false (with a reason on stderr) if the host
 * refused or did not answer.
 */
bool bridge_watch_start(struct bridge_watch *w, const char *addr, uint32_t scanout,
			uint32_t bitrate, bool keep_data);
/* Stop the thread and close; what was received stays until _free. */
void bridge_watch_stop(struct bridge_watch *w);
void bridge_watch_free(struct bridge_watch *w);

#endif
