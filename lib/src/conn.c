/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Per-connection protocol state (sans-I/O): header/payload reassembly,
 * validation through wire.c, v1/v2 negotiation, and the outbound chunk queue.
 */
#include "hfe/conn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One queued piece of output. Small pieces carry their bytes inline. */
struct chunk {
	struct chunk *next;
	const uint8_t *data;
	size_t len;
	size_t off; /* bytes of this chunk already written */
	void (*free_fn)(void *);
	void *opaque;
	uint8_t inline_data[];
};

struct hfe_conn {
	enum hfe_role role;
	struct hfe_limits lim;

	/* receive side */
	uint8_t hdr_buf[HFE_HEADER_SIZE];
	size_t hdr_got;
	struct hfe_header hdr; /* valid once hdr_got == HFE_HEADER_SIZE */
	uint8_t *payload;      /* payload being received */
	size_t payload_got;
	uint8_t *delivered; /* payload of the message last returned by next() */
	unsigned version;
	bool any_msg; /* a message has been accepted already */
	bool hello_resp_seen;
	bool failed;
	bool defer_errors;
	bool error_sent;
	uint16_t err_session_id;
	struct hfe_err err;

	/* send side */
	struct chunk *head, *tail;
	size_t tx_pending;

	uint64_t rx_bytes, tx_bytes;
};

struct hfe_conn *hfe_conn_new(enum hfe_role role, const struct hfe_limits *lim)
{
	struct hfe_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->role = role;
	if (lim)
		c->lim = *lim;
	else
		hfe_limits_default(&c->lim);
	return c;
}

static void chunk_free(struct chunk *ch)
{
	if (ch->free_fn)
		ch->free_fn(ch->opaque);
	free(ch);
}

void hfe_conn_free(struct hfe_conn *c)
{
	if (!c)
		return;
	free(c->payload);
	free(c->delivered);
	for (struct chunk *ch = c->head, *next; ch; ch = next) {
		next = ch->next;
		chunk_free(ch);
	}
	free(c);
}

/* ---- failure ---- */

static void fail_with(struct hfe_conn *c, const struct hfe_err *err)
{
	if (c->failed)
		return;
	c->failed = true;
	c->err = *err;
	free(c->payload);
	c->payload = NULL;
	/* A host tells the peer why before closing; a client just stops. */
	c->err_session_id = c->hdr_got == HFE_HEADER_SIZE ? c->hdr.session_id : 0;
	if (c->role == HFE_ROLE_HOST && !c->defer_errors)
		hfe_conn_send_failure(c);
}

void hfe_conn_defer_errors(struct hfe_conn *c) { c->defer_errors = true; }

int hfe_conn_send_failure(struct hfe_conn *c)
{
	if (!c->failed || c->error_sent)
		return 0;
	c->error_sent = true;
	return hfe_conn_send_error(c, c->err_session_id, c->err.code, "%s", c->err.msg);
}

void hfe_conn_fail(struct hfe_conn *c, int32_t code, const char *fmt, ...)
{
	struct hfe_err err = { .code = code };
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err.msg, sizeof(err.msg), fmt, ap);
	va_end(ap);
	fail_with(c, &err);
}

bool hfe_conn_failed(const struct hfe_conn *c) { return c->failed; }
const struct hfe_err *hfe_conn_error(const struct hfe_conn *c) { return &c->err; }
unsigned hfe_conn_version(const struct hfe_conn *c) { return c->version; }
void hfe_conn_set_version(struct hfe_conn *c, unsigned version) { c->version = version; }
uint64_t hfe_conn_bytes_received(const struct hfe_conn *c) { return c->rx_bytes; }
uint64_t hfe_conn_bytes_sent(const struct hfe_conn *c) { return c->tx_bytes; }

/* ---- receiving ---- */

static bool message_complete(const struct hfe_conn *c)
{
	return c->hdr_got == HFE_HEADER_SIZE && c->payload_got == c->hdr.payload_size;
}

bool hfe_conn_rx_partial(const struct hfe_conn *c)
{
	return c->hdr_got > 0 && !message_complete(c);
}

uint8_t *hfe_conn_rx_buf(struct hfe_conn *c, size_t *len)
{
	*len = 0;
	if (c->failed || message_complete(c))
		return NULL;
	free(c->delivered);
	c->delivered = NULL;
	if (c->hdr_got < HFE_HEADER_SIZE) {
		*len = HFE_HEADER_SIZE - c->hdr_got;
		return c->hdr_buf + c->hdr_got;
	}
	*len = c->hdr.payload_size - c->payload_got;
	return c->payload + c->payload_got;
}

void hfe_conn_rx_commit(struct hfe_conn *c, size_t n)
{
	if (c->failed || n == 0)
		return;
	c->rx_bytes += n;
	if (c->hdr_got < HFE_HEADER_SIZE) {
		c->hdr_got += n;
		if (c->hdr_got < HFE_HEADER_SIZE)
			return;
		struct hfe_err err;
		if (hfe_header_parse(c->hdr_buf, c->role, &c->lim, &c->hdr, &err) < 0) {
			fail_with(c, &err);
			return;
		}
		c->payload_got = 0;
		if (c->hdr.payload_size) {
			/* Bounded by lim.max_payload; pages are only touched as bytes
			 * arrive, so a peer that stalls costs little real memory. */
			c->payload = malloc(c->hdr.payload_size);
			if (!c->payload) {
				hfe_conn_fail(c, HFE_ERR_INTERNAL,
					      "out of memory for a %u-byte payload",
					      c->hdr.payload_size);
				return;
			}
		}
		return;
	}
	c->payload_got += n;
}

size_t hfe_conn_feed(struct hfe_conn *c, const uint8_t *data, size_t len)
{
	size_t used = 0;
	while (used < len) {
		size_t want;
		uint8_t *buf = hfe_conn_rx_buf(c, &want);
		if (!buf)
			break;
		size_t n = len - used < want ? len - used : want;
		memcpy(buf, data + used, n);
		hfe_conn_rx_commit(c, n);
		used += n;
	}
	return used;
}

/* Version and ordering rules; see the state machine in docs/protocol.md. */
static int check_state(struct hfe_conn *c, const struct hfe_msg *msg)
{
	struct hfe_err err;
	uint8_t type = msg->hdr.type;

	if (c->role == HFE_ROLE_CLIENT) {
		if (type == HFE_MSG_HELLO_RESP) {
			unsigned v = msg->u.hello_resp.version;
			if (c->hello_resp_seen) {
				hfe_err_set(&err, HFE_ERR_PROTOCOL, "a second HELLO_RESP");
				goto bad;
			}
			if (v < HFE_PROTO_V1 || v > HFE_PROTO_V2) {
				hfe_err_set(&err, HFE_ERR_VERSION,
					    "host chose protocol version %u, we speak 1..%u", v,
					    HFE_PROTO_V2);
				goto bad;
			}
			c->hello_resp_seen = true;
			c->version = v;
		} else if (c->version == 0) {
			c->version = HFE_PROTO_V1;
		}
		return 0;
	}

	if (type == HFE_MSG_HELLO) {
		if (c->any_msg) {
			hfe_err_set(&err, HFE_ERR_PROTOCOL, "HELLO must be the first message");
			goto bad;
		}
		unsigned chosen = msg->u.hello.version_max < HFE_PROTO_V2 ? msg->u.hello.version_max
									     : HFE_PROTO_V2;
		if (chosen < msg->u.hello.version_min) {
			hfe_err_set(&err, HFE_ERR_VERSION,
				    "no common protocol version: client wants %u..%u, host speaks 1..%u",
				    msg->u.hello.version_min, msg->u.hello.version_max, HFE_PROTO_V2);
			goto bad;
		}
		c->version = chosen;
		return 0;
	}
	if (c->version == 0)
		c->version = HFE_PROTO_V1;
	if (c->version < hfe_msg_min_version(type)) { /* STATS_REQ; HELLO was handled above */
		hfe_err_set(&err, HFE_ERR_PROTOCOL, "%s needs protocol v%u (send HELLO first)",
			    hfe_msg_type_name(type), hfe_msg_min_version(type));
		goto bad;
	}
	if ((msg->hdr.flags & HFE_FLAG_CURSOR) && c->version < HFE_PROTO_V2) {
		hfe_err_set(&err, HFE_ERR_PROTOCOL, "SUBSCRIBE with CURSOR needs protocol v2");
		goto bad;
	}
	return 0;
bad:
	fail_with(c, &err);
	return -1;
}

int hfe_conn_next(struct hfe_conn *c, struct hfe_msg *msg)
{
	free(c->delivered);
	c->delivered = NULL;
	if (c->failed)
		return -1;
	if (!message_complete(c))
		return 0;

	struct hfe_err err;
	int rc = hfe_msg_parse(&c->hdr, c->payload, c->role, &c->lim, msg, &err);
	if (rc < 0) {
		fail_with(c, &err);
		return -1;
	}
	if (check_state(c, msg) < 0)
		return -1;
	c->any_msg = true;

	/* Hand the payload out; reset for the next header. */
	c->delivered = c->payload;
	c->payload = NULL;
	c->payload_got = 0;
	c->hdr_got = 0;
	return 1;
}

uint8_t *hfe_conn_take_payload(struct hfe_conn *c)
{
	uint8_t *p = c->delivered;
	c->delivered = NULL;
	return p;
}

/* ---- sending ---- */

static void enqueue(struct hfe_conn *c, struct chunk *ch)
{
	ch->next = NULL;
	if (c->tail)
		c->tail->next = ch;
	else
		c->head = ch;
	c->tail = ch;
	c->tx_pending += ch->len;
}

static struct chunk *chunk_inline(size_t len)
{
	struct chunk *ch = malloc(sizeof(*ch) + len);
	if (!ch)
		return NULL;
	memset(ch, 0, sizeof(*ch));
	ch->data = ch->inline_data;
	ch->len = len;
	return ch;
}

/* Build header + body; returns the prefix length or 0. */
static size_t build_prefix(const struct hfe_msg *msg, size_t extra_len,
			   uint8_t buf[HFE_MSG_MAX_PREFIX])
{
	return hfe_msg_build(msg, extra_len, buf, HFE_MSG_MAX_PREFIX);
}

int hfe_conn_send(struct hfe_conn *c, const struct hfe_msg *msg, const void *extra,
		  size_t extra_len)
{
	uint8_t prefix[HFE_MSG_MAX_PREFIX];
	size_t n = build_prefix(msg, extra_len, prefix);
	if (!n || extra_len > SIZE_MAX - n)
		return -1;
	struct chunk *ch = chunk_inline(n + extra_len);
	if (!ch)
		return -1;
	memcpy(ch->inline_data, prefix, n);
	if (extra_len)
		memcpy(ch->inline_data + n, extra, extra_len);
	enqueue(c, ch);
	return 0;
}

int hfe_conn_send_owned(struct hfe_conn *c, const struct hfe_msg *msg, const void *extra,
			size_t extra_len, void (*free_fn)(void *), void *opaque)
{
	uint8_t prefix[HFE_MSG_MAX_PREFIX];
	size_t n = build_prefix(msg, extra_len, prefix);
	struct chunk *head = n ? chunk_inline(n) : NULL;
	struct chunk *body = NULL;
	if (head && extra_len) {
		body = malloc(sizeof(*body));
		if (body) {
			memset(body, 0, sizeof(*body));
			body->data = extra;
			body->len = extra_len;
			body->free_fn = free_fn;
			body->opaque = opaque;
		}
	}
	if (!head || (extra_len && !body)) {
		free(head);
		if (free_fn)
			free_fn(opaque); /* ownership was passed: honour it on failure too */
		return -1;
	}
	memcpy(head->inline_data, prefix, n);
	enqueue(c, head);
	if (body)
		enqueue(c, body);
	else if (free_fn)
		free_fn(opaque);
	return 0;
}

int hfe_conn_send_error(struct hfe_conn *c, uint16_t session_id, int32_t code, const char *fmt,
			...)
{
	struct hfe_msg msg = { .hdr = { .type = HFE_MSG_ERROR, .session_id = session_id } };
	msg.u.error.code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg.u.error.message, sizeof(msg.u.error.message), fmt, ap);
	va_end(ap);
	return hfe_conn_send(c, &msg, NULL, 0);
}

int hfe_conn_tx_iov(struct hfe_conn *c, struct iovec *iov, int max)
{
	int n = 0;
	for (struct chunk *ch = c->head; ch && n < max; ch = ch->next) {
		iov[n].iov_base = (void *)(ch->data + ch->off);
		iov[n].iov_len = ch->len - ch->off;
		n++;
	}
	return n;
}

void hfe_conn_tx_consume(struct hfe_conn *c, size_t n)
{
	if (n > c->tx_pending)
		n = c->tx_pending;
	c->tx_bytes += n;
	c->tx_pending -= n;
	while (n && c->head) {
		struct chunk *ch = c->head;
		size_t left = ch->len - ch->off;
		if (n < left) {
			ch->off += n;
			return;
		}
		n -= left;
		c->head = ch->next;
		if (!c->head)
			c->tail = NULL;
		chunk_free(ch);
	}
}

size_t hfe_conn_tx_pending(const struct hfe_conn *c) { return c->tx_pending; }
