/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Client API (guest side, tools, tests): connect to a host over any
 * transport, negotiate, configure, submit frames, receive bitstream,
 * subscribe to scanouts. Blocking calls with timeouts over a non-blocking
 * descriptor; while a call waits to write it keeps reading, so a host that is
 * sending replies never deadlocks against a client that is sending frames.
 */
#ifndef HFE_CLIENT_H
#define HFE_CLIENT_H

#include <stdint.h>

#include "hfe/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

struct hfe_client;

/* address: see hfe/addr.h. Returns NULL with err filled. */
struct hfe_client *hfe_client_connect(const char *address, int timeout_ms, struct hfe_err *err);
void hfe_client_close(struct hfe_client *c);
int hfe_client_fd(const struct hfe_client *c);

/* v2 negotiation: send HELLO, wait for HELLO_RESP (or ERROR). 0 or -1. */
int hfe_client_hello(struct hfe_client *c, const char *client_name,
		     struct hfe_hello_resp *caps, int timeout_ms, struct hfe_err *err);
/* Protocol version in use (1 until hello succeeded). */
unsigned hfe_client_version(const struct hfe_client *c);

/* Send messages. Each returns 0, or -1 with err filled (timeout, peer gone). */
int hfe_client_send_config(struct hfe_client *c, uint16_t session_id,
			   const struct hfe_config_req *cfg, int timeout_ms, struct hfe_err *err);
/* pixels may be NULL (resource mode: no PIXEL_DATA flag). */
int hfe_client_send_frame(struct hfe_client *c, uint16_t session_id,
			  const struct hfe_frame_request *fr, const void *pixels, size_t len,
			  int timeout_ms, struct hfe_err *err);
/* Body-less or small requests: KEYFRAME_REQ, PING, STATS_REQ, SUBSCRIBE,
 * DISABLE_SCANOUT... (msg->hdr.type and the matching union member set). */
int hfe_client_send_msg(struct hfe_client *c, const struct hfe_msg *msg, int timeout_ms,
			struct hfe_err *err);

/* Next message from the host: 1 with *msg (data valid until the next call on
 * c), 0 on timeout, -1 on error or EOF (err says which). */
int hfe_client_recv(struct hfe_client *c, struct hfe_msg *msg, int timeout_ms,
		    struct hfe_err *err);

#ifdef __cplusplus
}
#endif
#endif
