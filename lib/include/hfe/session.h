/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A pull session: frames arrive from one client, are converted and encoded in
 * order on the session's own worker thread, and come back as results in the
 * same order (FRAME_RESPONSE, CONFIG_RESP or ERROR).
 *
 * Bounded: at most max_inflight jobs are queued or finished-but-uncollected;
 * hfe_session_can_submit() turns false at the bound and the owner stops
 * reading from its client (transport backpressure). The worker calls
 * notify(opaque) after each result so the owner's event loop can collect it.
 * The session never touches a socket.
 */
#ifndef HFE_SESSION_H
#define HFE_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "hfe/encoder.h"
#include "hfe/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HFE_SESSION_MAX_INFLIGHT 64u

struct hfe_session_params {
	struct hfe_encoder_params enc; /* defaults; CONFIG_REQ overrides some */
	const struct hfe_encoder_ops *ops; /* NULL = hfe_encoder_lavc */
	uint32_t max_inflight;             /* 1..HFE_SESSION_MAX_INFLIGHT */
	void (*notify)(void *opaque);      /* called from the worker thread */
	void *opaque;
};

enum hfe_result_kind { HFE_RESULT_FRAME, HFE_RESULT_CONFIG, HFE_RESULT_ERROR };

struct hfe_session_result {
	enum hfe_result_kind kind;
	uint16_t session_id;
	struct hfe_frame_response frame; /* FRAME: pts, dts, keyframe, nal_count = 1 */
	struct hfe_packet packet;        /* FRAME: the access unit */
	struct hfe_config_resp config;   /* CONFIG */
	struct hfe_error_msg error;      /* ERROR */
};

struct hfe_session;

struct hfe_session *hfe_session_new(const struct hfe_session_params *p, struct hfe_err *err);
/* Stops the worker after its current job (waits for it); queued jobs and
 * results are freed. */
void hfe_session_free(struct hfe_session *s);
/* The same without waiting, for event loops that must not block (a QEMU main
 * loop; the worker may be in the middle of a 10 ms encode): the worker
 * finishes its current job, then frees the session itself. Release callbacks
 * of queued frames still run (on the worker thread); notify is never called
 * again once this returns. Every submitted frame must have a release callback
 * (pixels the caller frees right after this call would still be read). */
void hfe_session_detach(struct hfe_session *s);
/* Block until every detached session has freed itself (before exit, or
 * before unloading the code that owns the release callbacks). */
void hfe_session_wait_detached(void);

bool hfe_session_can_submit(struct hfe_session *s);
/* Jobs queued, being encoded, or finished and not yet collected. */
unsigned hfe_session_inflight(struct hfe_session *s);

/* Submit a validated frame: fr describes the pixels (format, size, stride)
 * at `pixels`. The session calls release(opaque) (from its worker thread)
 * once it no longer needs them, also when the submission fails; release may
 * be NULL when the caller keeps the pixels alive until the result. Returns 0,
 * or -1 when the session is full (caller bug: check can_submit). */
int hfe_session_submit_frame(struct hfe_session *s, uint16_t session_id,
			     const struct hfe_frame_request *fr, const uint8_t *pixels,
			     void (*release)(void *opaque), void *opaque, bool force_keyframe);
/* Apply a CONFIG_REQ in order with frames; reply_v2 = produce a CONFIG result. */
int hfe_session_submit_config(struct hfe_session *s, uint16_t session_id,
			      const struct hfe_config_req *cfg, bool reply_v2);
/* An error reply that must keep its place among frame replies. */
int hfe_session_submit_error(struct hfe_session *s, uint16_t session_id, int32_t code,
			     const char *msg);

/* Collect the next result in order: 1 got one, 0 none ready. */
int hfe_session_poll(struct hfe_session *s, struct hfe_session_result *r);
void hfe_session_result_release(struct hfe_session_result *r);

void hfe_session_stats(struct hfe_session *s, struct hfe_stats *st);

#ifdef __cplusplus
}
#endif
#endif
