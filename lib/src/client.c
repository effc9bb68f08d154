/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Client side: blocking calls with timeouts over a non-blocking descriptor.
 *
 * Sending: header + body are built into a small stack buffer and written with
 * writev together with the caller's pixels (no copy). While a write waits,
 * whatever the host sends is read into a raw receive buffer (capped), so a
 * host that is busy writing replies and not reading never deadlocks against
 * us.
 *
 * Receiving: bytes stashed during sends are parsed first (hfe_conn_feed);
 * then the socket is read, large payloads straight into the message buffer
 * of the hfe_conn (hfe_conn_rx_buf), small ones in bulk via the stash.
 */
#include "hfe/client.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "hfe/addr.h"
#include "hfe/conn.h"

#define STASH_CAP (64u << 20) /* replies buffered while one send waits */
#define STASH_CHUNK (64u << 10)
#define DIRECT_MIN (64u << 10) /* payload reads this large skip the stash */
#define NAME_MAX_LEN 300

struct hfe_client {
	int fd;
	char name[NAME_MAX_LEN]; /* canonical address, for messages */
	struct hfe_conn *conn;
	unsigned version;

	/* Raw bytes read but not yet fed to conn: [off, len) of buf. */
	uint8_t *buf;
	size_t off, len, cap;

	bool eof;     /* the host closed its side */
	int rd_errno; /* a read failed (e.g. ECONNRESET) */
	bool broken;  /* a send stopped in the middle of a message */
	struct hfe_err broken_err;
};

/* ---- time ---- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

/* Milliseconds left (poll's convention: -1 = forever). */
static int remaining_ms(int64_t deadline)
{
	if (deadline < 0)
		return -1;
	int64_t left = deadline - now_ms();
	if (left <= 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

/* ---- connection ---- */

struct hfe_client *hfe_client_connect(const char *address, int timeout_ms, struct hfe_err *err)
{
	struct hfe_addr a;
	char why[HFE_ERROR_MSG_LEN];

	if (hfe_addr_parse(address, &a, why, sizeof(why)) < 0) {
		hfe_err_set(err, HFE_ERR_INTERNAL, "%s", why);
		return NULL;
	}
	struct hfe_client *c = calloc(1, sizeof(*c));
	if (!c) {
		hfe_err_set(err, HFE_ERR_INTERNAL, "out of memory");
		return NULL;
	}
	c->fd = -1;
	c->version = HFE_PROTO_V1;
	hfe_addr_str(&a, c->name, sizeof(c->name));
	c->conn = hfe_conn_new(HFE_ROLE_CLIENT, NULL);
	if (!c->conn) {
		hfe_err_set(err, HFE_ERR_INTERNAL, "out of memory");
		free(c);
		return NULL;
	}
	c->fd = hfe_connect(&a, timeout_ms, why, sizeof(why));
	if (c->fd < 0) {
		hfe_err_set(err, HFE_ERR_INTERNAL, "%s", why);
		hfe_client_close(c);
		return NULL;
	}
	return c;
}

void hfe_client_close(struct hfe_client *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	hfe_conn_free(c->conn);
	free(c->buf);
	free(c);
}

int hfe_client_fd(const struct hfe_client *c)
{
	return c->fd;
}

unsigned hfe_client_version(const struct hfe_client *c)
{
	return c->version;
}

/* ---- raw receive buffer ---- */

/* Make room for at least one more byte (STASH_CHUNK when possible).
 * Returns free bytes after buf + len, 0 when the cap is reached. */
static size_t stash_room(struct hfe_client *c)
{
	if (c->off == c->len)
		c->off = c->len = 0;
	if (c->cap - c->len >= STASH_CHUNK)
		return c->cap - c->len;
	if (c->off) {
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
		if (c->cap - c->len >= STASH_CHUNK)
			return c->cap - c->len;
	}
	if (c->cap < STASH_CAP) {
		size_t ncap = c->cap ? c->cap * 2 : 4 * STASH_CHUNK;
		if (ncap > STASH_CAP)
			ncap = STASH_CAP;
		uint8_t *nbuf = realloc(c->buf, ncap);
		if (nbuf) {
			c->buf = nbuf;
			c->cap = ncap;
		}
	}
	return c->cap - c->len;
}

/* One read into the stash. Returns 1 read something, 0 nothing available,
 * -1 out of room (err filled). EOF and read errors are recorded in c. */
static int stash_read(struct hfe_client *c, struct hfe_err *err)
{
	size_t room = stash_room(c);
	if (!room) {
		hfe_err_set(err, HFE_ERR_INTERNAL,
			    "host at %s sent more than %u MiB of replies while a send was waiting; "
			    "receive replies sooner",
			    c->name, STASH_CAP >> 20);
		return -1;
	}
	ssize_t n = hfe_io_read(c->fd, c->buf + c->len, room);
	if (n > 0) {
		c->len += (size_t)n;
		return 1;
	}
	if (n == 0)
		c->eof = true;
	else if (n != -EAGAIN)
		c->rd_errno = (int)-n;
	return 0;
}

/*
 * If the stash holds a whole ERROR message, the host most likely explained
 * why it closed: find it without consuming anything. Only possible when conn
 * is at a message boundary, so that the stash starts with a header.
 */
static bool stashed_error(const struct hfe_client *c, struct hfe_error_msg *out)
{
	if (hfe_conn_rx_partial(c->conn))
		return false;
	struct hfe_limits lim;
	hfe_limits_default(&lim);
	const uint8_t *p = c->buf + c->off;
	size_t left = c->len - c->off;
	while (left >= HFE_HEADER_SIZE) {
		struct hfe_header h;
		struct hfe_err e;
		if (hfe_header_parse(p, HFE_ROLE_CLIENT, &lim, &h, &e) < 0 ||
		    left - HFE_HEADER_SIZE < h.payload_size)
			return false;
		if (h.type == HFE_MSG_ERROR) {
			struct hfe_msg m;
			if (hfe_msg_parse(&h, p + HFE_HEADER_SIZE, HFE_ROLE_CLIENT, &lim, &m, &e) < 0)
				return false;
			*out = m.u.error;
			return true;
		}
		p += HFE_HEADER_SIZE + h.payload_size;
		left -= HFE_HEADER_SIZE + h.payload_size;
	}
	return false;
}

/* The host is gone (EOF or a reset/broken pipe): say so, with its reason
 * if it sent one that we have not delivered yet. */
static void closed_err(struct hfe_client *c, int e, struct hfe_err *err)
{
	struct hfe_error_msg em;
	const char *how = hfe_conn_rx_partial(c->conn) ? " in the middle of a message" : "";
	char why[64] = "";

	if (e && e != EPIPE)
		snprintf(why, sizeof(why), " (%s)", strerror(e));
	if (stashed_error(c, &em))
		hfe_err_set(err, em.code, "host at %s closed the connection%s: %s (%d): %s", c->name,
			    why, hfe_error_name(em.code), em.code, em.message);
	else
		hfe_err_set(err, HFE_ERR_INTERNAL, "host at %s closed the connection%s%s", c->name,
			    how, why);
}

/* ---- sending ---- */

static bool is_disconnect(int e)
{
	return e == EPIPE || e == ECONNRESET || e == ENOTCONN || e == ESHUTDOWN;
}

/* Gone while writing: read what is left so a final ERROR can be reported. */
static void drain_after_close(struct hfe_client *c)
{
	struct hfe_err ignored;
	while (!c->eof && !c->rd_errno && stash_read(c, &ignored) > 0)
		;
}

static int send_failed(struct hfe_client *c, size_t sent, struct hfe_err *err)
{
	if (sent) {
		/* The peer saw part of a message: the stream cannot be resumed. */
		c->broken = true;
		c->broken_err = *err;
	}
	return -1;
}

static int send_iov(struct hfe_client *c, struct iovec *iov, int iovcnt, int timeout_ms,
		    struct hfe_err *err)
{
	int64_t deadline = deadline_of(timeout_ms);
	size_t total = 0, sent = 0;

	if (c->broken) {
		hfe_err_set(err, c->broken_err.code,
			    "connection to host at %s unusable after an incomplete send: %s", c->name,
			    c->broken_err.msg);
		return -1;
	}
	if (c->eof) {
		closed_err(c, 0, err);
		return -1;
	}
	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;

	while (iovcnt > 0) {
		ssize_t n = hfe_io_writev(c->fd, iov, iovcnt);
		if (n > 0) {
			sent += (size_t)n;
			size_t k = (size_t)n;
			while (iovcnt > 0 && k >= iov[0].iov_len) {
				k -= iov[0].iov_len;
				iov++;
				iovcnt--;
			}
			if (iovcnt > 0) {
				iov[0].iov_base = (uint8_t *)iov[0].iov_base + k;
				iov[0].iov_len -= k;
			}
			continue;
		}
		if (n < 0 && n != -EAGAIN) {
			if (is_disconnect((int)-n)) {
				drain_after_close(c);
				closed_err(c, (int)-n, err);
			} else {
				hfe_err_set(err, HFE_ERR_INTERNAL, "sending to host at %s: %s",
					    c->name, strerror((int)-n));
			}
			return send_failed(c, sent, err);
		}

		int ms = remaining_ms(deadline);
		if (ms == 0) {
			hfe_err_set(err, HFE_ERR_TIMEOUT,
				    "sending to host at %s timed out after %d ms (%zu of %zu bytes "
				    "written)",
				    c->name, timeout_ms, sent, total);
			return send_failed(c, sent, err);
		}
		struct pollfd p = { .fd = c->fd, .events = POLLOUT | POLLIN };
		int r = poll(&p, 1, ms);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			hfe_err_set(err, HFE_ERR_INTERNAL, "waiting for host at %s: %s", c->name,
				    strerror(errno));
			return send_failed(c, sent, err);
		}
		if (r == 0)
			continue;
		if (p.revents & POLLNVAL) {
			hfe_err_set(err, HFE_ERR_INTERNAL, "connection to host at %s: bad descriptor",
				    c->name);
			return send_failed(c, sent, err);
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			/* Keep the host's replies flowing while we wait to write. */
			if (stash_read(c, err) < 0)
				return send_failed(c, sent, err);
			if (c->eof || c->rd_errno) {
				drain_after_close(c);
				closed_err(c, c->rd_errno, err);
				return send_failed(c, sent, err);
			}
		}
	}
	return 0;
}

int hfe_client_send_msg(struct hfe_client *c, const struct hfe_msg *msg, int timeout_ms,
			struct hfe_err *err)
{
	uint8_t prefix[HFE_MSG_MAX_PREFIX];
	size_t n = hfe_msg_build(msg, 0, prefix, sizeof(prefix));
	if (!n) {
		const char *name = hfe_msg_type_name(msg->hdr.type);
		hfe_err_set(err, HFE_ERR_INTERNAL, "cannot build a %s message (type 0x%02x)",
			    name ? name : "unknown", msg->hdr.type);
		return -1;
	}
	struct iovec iov = { .iov_base = prefix, .iov_len = n };
	return send_iov(c, &iov, 1, timeout_ms, err);
}

int hfe_client_send_config(struct hfe_client *c, uint16_t session_id,
			   const struct hfe_config_req *cfg, int timeout_ms, struct hfe_err *err)
{
	struct hfe_msg msg = { .hdr = { .type = HFE_MSG_CONFIG_REQ, .session_id = session_id } };
	msg.u.config_req = *cfg;
	return hfe_client_send_msg(c, &msg, timeout_ms, err);
}

int hfe_client_send_frame(struct hfe_client *c, uint16_t session_id,
			  const struct hfe_frame_request *fr, const void *pixels, size_t len,
			  int timeout_ms, struct hfe_err *err)
{
	struct hfe_msg msg = { .hdr = { .type = HFE_MSG_FRAME_REQUEST, .session_id = session_id } };
	uint8_t prefix[HFE_MSG_MAX_PREFIX];
	size_t extra = pixels ? len : 0;

	msg.u.frame_req = *fr;
	size_t n = hfe_msg_build(&msg, extra, prefix, sizeof(prefix));
	if (!n) {
		hfe_err_set(err, HFE_ERR_TOO_LARGE,
			    "cannot build a FRAME_REQUEST with %zu bytes of pixels", extra);
		return -1;
	}
	struct iovec iov[2] = {
		{ .iov_base = prefix, .iov_len = n },
		{ .iov_base = (void *)pixels, .iov_len = extra },
	};
	return send_iov(c, iov, extra ? 2 : 1, timeout_ms, err);
}

/* ---- receiving ---- */

int hfe_client_recv(struct hfe_client *c, struct hfe_msg *msg, int timeout_ms,
		    struct hfe_err *err)
{
	int64_t deadline = deadline_of(timeout_ms);

	for (;;) {
		int r = hfe_conn_next(c->conn, msg);
		if (r > 0)
			return 1;
		if (r < 0) {
			const struct hfe_err *ce = hfe_conn_error(c->conn);
			hfe_err_set(err, ce->code, "host at %s sent an invalid message: %s", c->name,
				    ce->msg);
			return -1;
		}
		/* Bytes stashed by an earlier send come first. feed() only stops
		 * short at a complete message or a failure, which next() reports. */
		if (c->off < c->len) {
			c->off += hfe_conn_feed(c->conn, c->buf + c->off, c->len - c->off);
			continue;
		}
		if (c->eof || c->rd_errno) {
			closed_err(c, c->rd_errno, err);
			return -1;
		}

		size_t want;
		uint8_t *dst = hfe_conn_rx_buf(c->conn, &want);
		ssize_t n;
		if (!dst)
			continue; /* next() has something to say */
		if (want >= DIRECT_MIN) {
			/* Big access unit: straight into the message buffer. */
			n = hfe_io_read(c->fd, dst, want);
			if (n > 0)
				hfe_conn_rx_commit(c->conn, (size_t)n);
		} else {
			size_t room = stash_room(c);
			if (!room) {
				hfe_err_set(err, HFE_ERR_INTERNAL, "out of memory");
				return -1;
			}
			n = hfe_io_read(c->fd, c->buf + c->len, room);
			if (n > 0)
				c->len += (size_t)n;
		}
		if (n > 0)
			continue;
		if (n == 0) {
			c->eof = true;
			continue;
		}
		if (n != -EAGAIN) {
			c->rd_errno = (int)-n;
			continue;
		}

		int ms = remaining_ms(deadline);
		if (ms == 0)
			return 0;
		r = hfe_io_wait(c->fd, POLLIN, ms);
		if (r < 0) {
			hfe_err_set(err, HFE_ERR_INTERNAL, "waiting for host at %s: %s", c->name,
				    strerror(-r));
			return -1;
		}
		if (r == 0 && remaining_ms(deadline) == 0)
			return 0;
	}
}

/* ---- negotiation ---- */

int hfe_client_hello(struct hfe_client *c, const char *client_name,
		     struct hfe_hello_resp *caps, int timeout_ms, struct hfe_err *err)
{
	int64_t deadline = deadline_of(timeout_ms);
	struct hfe_msg msg = { .hdr = { .type = HFE_MSG_HELLO } };

	msg.u.hello.version_min = HFE_PROTO_V1;
	msg.u.hello.version_max = HFE_PROTO_V2;
	snprintf(msg.u.hello.client_name, sizeof(msg.u.hello.client_name), "%s",
		 client_name ? client_name : "");
	if (hfe_client_send_msg(c, &msg, timeout_ms, err) < 0)
		return -1;

	int r = hfe_client_recv(c, &msg, remaining_ms(deadline), err);
	if (r < 0)
		return -1;
	if (r == 0) {
		hfe_err_set(err, HFE_ERR_TIMEOUT,
			    "host at %s did not answer HELLO within %d ms (a v1-only host?)", c->name,
			    timeout_ms);
		return -1;
	}
	if (msg.hdr.type == HFE_MSG_ERROR) {
		hfe_err_set(err, msg.u.error.code, "host at %s refused HELLO: %s (%d): %s", c->name,
			    hfe_error_name(msg.u.error.code), msg.u.error.code, msg.u.error.message);
		return -1;
	}
	if (msg.hdr.type != HFE_MSG_HELLO_RESP) {
		const char *name = hfe_msg_type_name(msg.hdr.type);
		hfe_err_set(err, HFE_ERR_PROTOCOL, "host at %s answered HELLO with %s", c->name,
			    name ? name : "an unknown message");
		return -1;
	}
	if (msg.u.hello_resp.version > HFE_PROTO_V2) {
		hfe_err_set(err, HFE_ERR_VERSION,
			    "host at %s chose protocol version %u; this client speaks 1..%u",
			    c->name, msg.u.hello_resp.version, HFE_PROTO_V2);
		return -1;
	}
	c->version = msg.u.hello_resp.version;
	if (caps)
		*caps = msg.u.hello_resp;
	return 0;
}
