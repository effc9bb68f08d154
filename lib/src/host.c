/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Host-side protocol handling per peer, without I/O (see hfe/host.h).
 *
 * A peer owns an hfe_conn (bytes <-> validated messages), a pull session
 * created on its first frame or CONFIG_REQ, and scanout subscriptions in
 * the host's hub. Everything a misbehaving peer can cost is bounded: the
 * session's in-flight count, the outbound queue (reading pauses beyond
 * max_queue), and the stall timer.
 */
#include "hfe/host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hfe/conn.h"
#include "hfe/input.h"
#include "hfe/log.h"
#include "hfe/session.h"

#define LINGER_MS 1000 /* after a final ERROR, how long we wait for the peer to close */

struct hfe_host {
	struct hfe_host_config cfg;
	struct hfe_hub *hub;
	bool stopping;
	unsigned next_id;
};

struct hfe_peer {
	struct hfe_host *host;
	unsigned id;
	char name[128];
	struct hfe_conn *conn;
	struct hfe_session *session;
	bool keyframe_pending; /* KEYFRAME_REQ seen: next pull frame is an IDR */
	bool rx_eof;           /* peer closed its sending side */
	bool closing;          /* final reply queued: flush, then close */
	bool shut_wr;          /* our side half-closed; discarding input */
	bool logged_failure;
	bool control;      /* came through a control listener: may inject input */
	bool denied_noted; /* input for an unwatched scanout logged once */
	struct hfe_input *input; /* from its first input message */
	uint64_t last_rx_ms;
	uint64_t close_deadline_ms;
	uint64_t frames_out;
};

uint64_t hfe_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void hfe_host_config_default(struct hfe_host_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	hfe_limits_default(&cfg->limits);
	cfg->max_inflight = 4;
	cfg->max_queue = 16u << 20;
	cfg->stall_timeout_ms = 10000;
	cfg->sources = HFE_SOURCE_PIXELS;
	hfe_encoder_params_default(&cfg->enc);
}

struct hfe_host *hfe_host_new(const struct hfe_host_config *cfg)
{
	struct hfe_host *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->cfg = *cfg;
	h->hub = hfe_hub_new(cfg->max_queue);
	if (!h->hub) {
		free(h);
		return NULL;
	}
	return h;
}

void hfe_host_free(struct hfe_host *h)
{
	if (!h)
		return;
	hfe_hub_free(h->hub);
	free(h);
	/* Closed peers' encoders may still be finishing a frame; their release
	 * callbacks belong to our owner, who is about to go. */
	hfe_session_wait_detached();
}

struct hfe_hub *hfe_host_hub(struct hfe_host *h) { return h->hub; }
void hfe_host_dispatch(struct hfe_host *h) { hfe_hub_dispatch(h->hub); }
void hfe_host_stop(struct hfe_host *h) { h->stopping = true; }

/* ---- peer lifecycle ---- */

struct hfe_peer *hfe_peer_new(struct hfe_host *h, const char *name, uint64_t now_ms)
{
	struct hfe_peer *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->conn = hfe_conn_new(HFE_ROLE_HOST, &h->cfg.limits);
	if (!p->conn) {
		free(p);
		return NULL;
	}
	hfe_conn_defer_errors(p->conn); /* replies owed come before the ERROR */
	p->host = h;
	p->id = ++h->next_id;
	p->last_rx_ms = now_ms;
	snprintf(p->name, sizeof(p->name), "client %u (%s)", p->id, name);
	return p;
}

void hfe_peer_free(struct hfe_peer *p, const char *reason)
{
	if (!p)
		return;
	hfe_hub_drop_conn(p->host->hub, p->conn);
	hfe_input_free(p->input); /* releases what it still holds in the VM */
	/* The conn holds no pixels of the session's jobs (payloads are taken),
	 * so the worker may finish its current encode after we are gone. */
	hfe_session_detach(p->session);
	hfe_info("%s closed: %s; %llu frames replied, %llu bytes in, %llu out", p->name,
		 reason ? reason : "closed", (unsigned long long)p->frames_out,
		 (unsigned long long)hfe_conn_bytes_received(p->conn),
		 (unsigned long long)hfe_conn_bytes_sent(p->conn));
	hfe_conn_free(p->conn);
	free(p);
}

const char *hfe_peer_name(const struct hfe_peer *p) { return p->name; }
void hfe_peer_set_control(struct hfe_peer *p, bool control) { p->control = control; }

/* Input is accepted from control peers of a host that has an input sink. */
static bool peer_may_inject(const struct hfe_peer *p)
{
	return p->control && p->host->cfg.input.key;
}

/* The final reply is queued: flush, then close. Scanout access units stop
 * here, so nothing follows the ERROR or is queued after our half-close. */
static void peer_closing(struct hfe_peer *p, uint64_t now)
{
	p->closing = true;
	p->close_deadline_ms = now + LINGER_MS;
	hfe_hub_drop_conn(p->host->hub, p->conn);
	if (p->input)
		hfe_input_release(p->input); /* nothing it sends is read any more */
}

/* Queue a final reply, then flush and close. */
static void peer_finish(struct hfe_peer *p, int32_t code, const char *msg, uint64_t now)
{
	if (p->closing)
		return;
	if (code != HFE_OK)
		hfe_conn_send_error(p->conn, 0, code, "%s", msg);
	peer_closing(p, now);
}

void hfe_peer_refuse_busy(struct hfe_peer *p, unsigned max_clients)
{
	hfe_warn("%s refused: %u clients already connected", p->name, max_clients);
	char msg[96];
	snprintf(msg, sizeof(msg), "too many clients (%u); try again later", max_clients);
	peer_finish(p, HFE_ERR_BUSY, msg, hfe_now_ms());
}

/* ---- pull sessions ---- */

static int peer_session(struct hfe_peer *p)
{
	if (p->session)
		return 0;
	const struct hfe_host_config *cfg = &p->host->cfg;
	struct hfe_session_params sp = {
		.enc = cfg->enc,
		.max_inflight = cfg->max_inflight,
		.notify = cfg->notify,
		.opaque = cfg->notify_opaque,
	};
	struct hfe_err err;
	p->session = hfe_session_new(&sp, &err);
	if (!p->session) {
		hfe_conn_fail(p->conn, HFE_ERR_INTERNAL, "%s", err.msg);
		return -1;
	}
	return 0;
}

static void release_payload(void *opaque) { free(opaque); }

static void peer_frame(struct hfe_peer *p, const struct hfe_msg *m)
{
	const struct hfe_host_config *cfg = &p->host->cfg;
	uint16_t sid = m->hdr.session_id;

	if (peer_session(p) < 0)
		return;
	bool force = p->keyframe_pending;
	p->keyframe_pending = false;

	if (m->hdr.flags & HFE_FLAG_PIXEL_DATA) {
		hfe_session_submit_frame(p->session, sid, &m->u.frame_req, m->data,
					 release_payload, hfe_conn_take_payload(p->conn), force);
		return;
	}

	/* Resource mode: the frame lives in the VM's GPU resource. Errors are
	 * answered in order with the frames before it. */
	struct hfe_resource_frame rf;
	struct hfe_err err = { 0 };
	if (!cfg->resolve_resource) {
		hfe_session_submit_error(p->session, sid, HFE_ERR_RESOURCE_NOT_FOUND,
					 "virtio-gpu resource frames need the QEMU module; "
					 "this host takes pixels (PIXEL_DATA) only");
		return;
	}
	if (cfg->resolve_resource(cfg->resource_opaque, &m->u.frame_req, &rf, &err) < 0) {
		hfe_session_submit_error(p->session, sid,
					 err.code ? err.code : HFE_ERR_RESOURCE_NOT_FOUND, err.msg);
		return;
	}
	struct hfe_frame_request fr = m->u.frame_req;
	fr.format = rf.format;
	fr.width = rf.width;
	fr.height = rf.height;
	fr.stride = rf.stride;
	hfe_session_submit_frame(p->session, sid, &fr, rf.pixels, rf.release, rf.opaque, force);
}

static void packet_free(void *opaque)
{
	struct hfe_packet *pkt = opaque;
	hfe_packet_release(pkt);
	free(pkt);
}

/* Move finished session results into the outbound queue, in order. */
static void peer_collect(struct hfe_peer *p)
{
	struct hfe_session_result r;
	while (p->session && hfe_session_poll(p->session, &r) == 1) {
		struct hfe_msg msg = { .hdr = { .session_id = r.session_id } };
		switch (r.kind) {
		case HFE_RESULT_FRAME: {
			msg.hdr.type = HFE_MSG_FRAME_RESPONSE;
			msg.u.frame_resp = r.frame;
			struct hfe_packet *pkt = malloc(sizeof(*pkt));
			if (!pkt) {
				hfe_session_result_release(&r);
				hfe_conn_fail(p->conn, HFE_ERR_INTERNAL, "out of memory");
				return;
			}
			*pkt = r.packet;
			hfe_conn_send_owned(p->conn, &msg, pkt->data, pkt->size, packet_free, pkt);
			p->frames_out++;
			break;
		}
		case HFE_RESULT_CONFIG:
			msg.hdr.type = HFE_MSG_CONFIG_RESP;
			msg.u.config_resp = r.config;
			hfe_conn_send(p->conn, &msg, NULL, 0);
			break;
		case HFE_RESULT_ERROR:
			hfe_conn_send_error(p->conn, r.session_id, r.error.code, "%s",
					    r.error.message);
			break;
		}
	}
}

/* ---- other requests ---- */

static void send_hello_resp(struct hfe_peer *p, const struct hfe_msg *in)
{
	const struct hfe_host_config *cfg = &p->host->cfg;
	static const uint32_t formats[] = { HFE_FMT_XRGB8888, HFE_FMT_ARGB8888, HFE_FMT_XBGR8888,
					    HFE_FMT_ABGR8888, HFE_FMT_NV12, HFE_FMT_I420 };
	struct hfe_msg out = { .hdr = { .type = HFE_MSG_HELLO_RESP,
					.session_id = in->hdr.session_id } };
	struct hfe_hello_resp *h = &out.u.hello_resp;
	h->version = (uint16_t)hfe_conn_version(p->conn);
	h->features = (uint16_t)((peer_may_inject(p) ? HFE_FEATURE_INPUT : 0) | HFE_FEATURE_CURSOR);
	h->codecs = hfe_encoder_codec(cfg->enc.name[0] ? cfg->enc.name : HFE_DEFAULT_ENCODER);
	h->sources = cfg->sources | HFE_SOURCE_PIXELS |
		     (cfg->resolve_resource ? HFE_SOURCE_RESOURCE : 0);
	h->max_width = cfg->limits.max_width;
	h->max_height = cfg->limits.max_height;
	h->max_payload = cfg->limits.max_payload;
	h->max_inflight = cfg->max_inflight;
	h->format_count = sizeof(formats) / sizeof(formats[0]);
	memcpy(h->formats, formats, sizeof(formats));
	snprintf(h->server_name, sizeof(h->server_name), "helix-frame-export %s", HFE_VERSION);
	hfe_conn_send(p->conn, &out, NULL, 0);
	hfe_info("%s: HELLO from '%s', protocol v%u", p->name, in->u.hello.client_name,
		 h->version);
}

static void send_stats(struct hfe_peer *p, const struct hfe_msg *in)
{
	struct hfe_msg out = { .hdr = { .type = HFE_MSG_STATS_RESP,
					.session_id = in->hdr.session_id } };
	if (p->session)
		hfe_session_stats(p->session, &out.u.stats);
	out.u.stats.bytes_received = hfe_conn_bytes_received(p->conn);
	out.u.stats.bytes_sent = hfe_conn_bytes_sent(p->conn);
	hfe_conn_send(p->conn, &out, NULL, 0);
}

/* INPUT_KEY / INPUT_POINTER. Every one costs a token of the peer's bucket,
 * refused ones too, so that refusals are bounded like the rest. */
static void peer_input(struct hfe_peer *p, const struct hfe_msg *m, uint64_t now)
{
	uint32_t scanout = m->hdr.session_id;

	if (!peer_may_inject(p)) {
		hfe_conn_fail(p->conn, HFE_ERR_DENIED,
			      "%s: input is not accepted here (not a control listener)",
			      hfe_msg_type_name(m->hdr.type));
		return;
	}
	if (!p->input && !(p->input = hfe_input_new(&p->host->cfg.input, now))) {
		hfe_conn_fail(p->conn, HFE_ERR_INTERNAL, "out of memory");
		return;
	}
	hfe_input_take(p->input, now);
	if (!hfe_hub_subscribed(p->host->hub, p->conn, scanout)) {
		if (!p->denied_noted)
			hfe_peer_fault("%s: input for scanout %u, which it does not watch: refused",
				       p->name, scanout);
		p->denied_noted = true;
		hfe_conn_send_error(p->conn, m->hdr.session_id, HFE_ERR_DENIED,
				    "%s for scanout %u, which this connection does not watch "
				    "(SUBSCRIBE to it first)",
				    hfe_msg_type_name(m->hdr.type), scanout);
		return;
	}
	hfe_input_handle(p->input, m);
}

/* One validated message from the peer. */
static void peer_handle(struct hfe_peer *p, const struct hfe_msg *m, uint64_t now)
{
	struct hfe_msg out = { .hdr = { .session_id = m->hdr.session_id } };

	switch (m->hdr.type) {
	case HFE_MSG_FRAME_REQUEST:
		peer_frame(p, m);
		return;
	case HFE_MSG_KEYFRAME_REQ:
		/* For the pull session's next frame and any scanout watched. */
		p->keyframe_pending = true;
		hfe_hub_keyframe(p->host->hub, p->conn);
		return;
	case HFE_MSG_CONFIG_REQ:
		/* A scanout subscriber's bitrate goes to that scanout's stream. */
		if (hfe_hub_config(p->host->hub, p->conn, m))
			return;
		if (peer_session(p) < 0)
			return;
		hfe_session_submit_config(p->session, m->hdr.session_id, &m->u.config_req,
					  hfe_conn_version(p->conn) >= HFE_PROTO_V2);
		return;
	case HFE_MSG_PING:
		out.hdr.type = HFE_MSG_PONG;
		hfe_conn_send(p->conn, &out, NULL, 0);
		return;
	case HFE_MSG_ENABLE_SCANOUT:
	case HFE_MSG_DISABLE_SCANOUT:
	case HFE_MSG_SUBSCRIBE:
		/* Every request gets a reply; success = 0 for unknown scanouts. */
		hfe_hub_handle(p->host->hub, p->conn, m);
		return;
	case HFE_MSG_HELLO:
		send_hello_resp(p, m);
		return;
	case HFE_MSG_STATS_REQ:
		send_stats(p, m);
		return;
	case HFE_MSG_INPUT_KEY:
	case HFE_MSG_INPUT_POINTER:
		peer_input(p, m, now);
		return;
	default:
		/* wire.c lets only client -> host types through */
		hfe_conn_fail(p->conn, HFE_ERR_INTERNAL, "unhandled message type 0x%02x",
			      m->hdr.type);
		return;
	}
}

/* ---- bytes ---- */

bool hfe_peer_wants_read(struct hfe_peer *p)
{
	if (p->closing || p->rx_eof || p->host->stopping || hfe_conn_failed(p->conn))
		return false;
	if (hfe_conn_tx_pending(p->conn) >= p->host->cfg.max_queue)
		return false;
	if (p->input && hfe_input_starved(p->input))
		return false; /* over its input rate: wait for the bucket */
	return !p->session || hfe_session_can_submit(p->session);
}

bool hfe_peer_discarding(const struct hfe_peer *p) { return p->shut_wr; }

uint8_t *hfe_peer_rx_buf(struct hfe_peer *p, size_t *len)
{
	*len = 0;
	if (!hfe_peer_wants_read(p))
		return NULL;
	return hfe_conn_rx_buf(p->conn, len);
}

/* A protocol failure: log it once; once the frames read before the bad
 * message have been answered, queue the ERROR and start closing. */
static void note_failure(struct hfe_peer *p, uint64_t now)
{
	if (!hfe_conn_failed(p->conn))
		return;
	if (!p->logged_failure) {
		const struct hfe_err *e = hfe_conn_error(p->conn);
		/* INTERNAL is ours (allocation, a session we could not start). */
		hfe_log(e->code == HFE_ERR_INTERNAL ? HFE_LOG_ERROR : HFE_LOG_PEER,
			"%s: %s: %s; closing", p->name, hfe_error_name(e->code), e->msg);
		p->logged_failure = true;
	}
	if (p->closing || (p->session && hfe_session_inflight(p->session) > 0))
		return;
	hfe_conn_send_failure(p->conn);
	peer_closing(p, now);
}

void hfe_peer_rx_commit(struct hfe_peer *p, size_t n, uint64_t now_ms)
{
	p->last_rx_ms = now_ms;
	hfe_conn_rx_commit(p->conn, n);
	struct hfe_msg msg;
	while (hfe_conn_next(p->conn, &msg) == 1)
		peer_handle(p, &msg, now_ms);
	note_failure(p, now_ms);
}

void hfe_peer_rx_eof(struct hfe_peer *p)
{
	if (hfe_conn_rx_partial(p->conn))
		hfe_peer_fault("%s: closed in the middle of a message", p->name);
	p->rx_eof = true;
	if (p->input)
		hfe_input_release(p->input);
	/* It asks for nothing more: its subscriptions end here, so it closes once
	 * what is queued is written, not only when a running stream happens to
	 * leave its queue empty (a slow reader's never is). */
	hfe_hub_drop_conn(p->host->hub, p->conn);
}

int hfe_peer_tx_iov(struct hfe_peer *p, struct iovec *iov, int max)
{
	return hfe_conn_tx_iov(p->conn, iov, max);
}

void hfe_peer_tx_consume(struct hfe_peer *p, size_t n) { hfe_conn_tx_consume(p->conn, n); }
size_t hfe_peer_tx_pending(const struct hfe_peer *p) { return hfe_conn_tx_pending(p->conn); }
void hfe_peer_shutdown_done(struct hfe_peer *p) { p->shut_wr = true; }

/* ---- housekeeping ---- */

static void lower(uint64_t *deadline, uint64_t t)
{
	if (t < *deadline)
		*deadline = t;
}

enum hfe_peer_action hfe_peer_service(struct hfe_peer *p, uint64_t now, uint64_t *deadline_ms,
				      const char **reason)
{
	const struct hfe_host_config *cfg = &p->host->cfg;
	bool was_closing = p->closing;

	peer_collect(p);
	note_failure(p, now);
	if (p->input) {
		/* Motion merged during this turn goes to the VM now; a starved
		 * bucket wakes us when it has a token again. */
		hfe_input_flush(p->input);
		hfe_input_ready(p->input, now, deadline_ms);
	}
	unsigned inflight = p->session ? hfe_session_inflight(p->session) : 0;

	if (!p->closing && !hfe_conn_failed(p->conn)) {
		/* The stall clock measures the peer's silence while we want its
		 * bytes; it does not run while we hold the peer back. */
		if (!hfe_peer_wants_read(p))
			p->last_rx_ms = now;
		if (hfe_conn_rx_partial(p->conn) && !p->rx_eof) {
			uint64_t due = p->last_rx_ms + (uint64_t)cfg->stall_timeout_ms;
			if (due > now) {
				lower(deadline_ms, due);
			} else if (inflight == 0) { /* else the replies owed go first */
				hfe_peer_fault("%s: stalled in the middle of a message for %d ms",
					       p->name, cfg->stall_timeout_ms);
				peer_finish(p, HFE_ERR_TIMEOUT,
					    "stalled in the middle of a message; closing", now);
			}
		} else if (p->rx_eof && inflight == 0 && !hfe_conn_tx_pending(p->conn)) {
			*reason = "peer closed the connection";
			return HFE_PEER_CLOSE;
		} else if (p->host->stopping && inflight == 0) {
			peer_finish(p, HFE_ERR_SHUTDOWN, "host is shutting down", now);
		}
	}
	if (p->closing) {
		if (!hfe_conn_tx_pending(p->conn)) {
			if (p->rx_eof) {
				*reason = hfe_conn_failed(p->conn) ? "protocol error" : "finished";
				return HFE_PEER_CLOSE;
			}
			if (!p->shut_wr)
				return HFE_PEER_SHUTDOWN_WR; /* so the ERROR arrives before a reset */
		}
		if (now >= p->close_deadline_ms) {
			*reason = hfe_conn_failed(p->conn) ? "protocol error" : "closed by host";
			return HFE_PEER_CLOSE;
		}
		/* A final reply queued by this call is written after it, and no I/O
		 * event follows that write: ask for the call that half-closes. */
		lower(deadline_ms, was_closing ? p->close_deadline_ms : now);
	}
	return HFE_PEER_OK;
}
