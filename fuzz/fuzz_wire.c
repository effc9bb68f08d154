/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for the HXFR parser and the sans-I/O connection.
 *
 * Input: one control byte, then the byte stream a peer sends. The stream goes
 * to a host-role and a client-role hfe_conn, each fed twice (all at once with
 * hfe_conn_feed, and in small reads through hfe_conn_rx_buf/rx_commit with
 * sizes picked by the control byte). Invariants, abort() on violation:
 *  - both ways of feeding yield the same messages and the same error;
 *  - every message is one the validator promised: dimensions, formats and
 *    pixel sizes within limits, NAL units exactly filling the payload;
 *  - rebuilding a message with hfe_msg_build and parsing it again gives the
 *    same fields, and hfe_conn_send queues exactly those bytes;
 *  - a failed host connection has queued one ERROR carrying its error code.
 *
 * Control byte: bits 0-2 pick the read sizes, bit 3 makes the client side
 * behave as if it had sent HELLO (v2), bit 4 makes the client take payloads.
 *
 * Linked with fuzz_replay.c instead of libFuzzer it runs the target over
 * files and directories given on the command line (corpus regression test).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "hfe/conn.h"
#include "hfe/wire.h"
#include "msg_compare.h"

#define MAX_MSGS 256

static const struct hfe_limits flim = { .max_width = 1024, .max_height = 1024,
					.max_payload = (4u << 20) + 64 };

#define FAIL(...) FUZZ_FAIL("fuzz_wire", __VA_ARGS__)

/* A message as received, reduced to what must agree between runs. */
struct seen {
	struct hfe_msg m; /* data pointer cleared */
	uint64_t data_hash;
};

struct run {
	struct seen msgs[MAX_MSGS];
	int n;
	bool failed;
	int32_t code;
	uint64_t rx_bytes;
};

static uint64_t hash(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h ^ n;
}

static bool terminated(const char *s, size_t n)
{
	return memchr(s, 0, n) != NULL;
}

/* What the validator promises about a message it let through. */
static void check_promises(const struct hfe_msg *m)
{
	if (m->data_len && !m->data)
		FAIL("data_len %zu without data", m->data_len);
	switch (m->hdr.type) {
	case HFE_MSG_FRAME_REQUEST: {
		const struct hfe_frame_request *f = &m->u.frame_req;
		struct hfe_err err;
		uint64_t need;

		if (!hfe_format_supported(f->format))
			FAIL("format 0x%08x let through", f->format);
		if (f->width < HFE_MIN_DIMENSION || f->height < HFE_MIN_DIMENSION ||
		    f->width > flim.max_width || f->height > flim.max_height ||
		    ((f->width | f->height) & 1))
			FAIL("frame %ux%u let through", f->width, f->height);
		if (f->stride > flim.max_width * 4u)
			FAIL("stride %u let through", f->stride);
		if (f->duration < 0 || f->force_keyframe > 1)
			FAIL("duration/force_keyframe let through");
		if (hfe_frame_size(f->format, f->width, f->height, f->stride, &flim, &need, &err))
			FAIL("frame accepted by parse, refused by hfe_frame_size: %s", err.msg);
		if (m->hdr.flags & HFE_FLAG_PIXEL_DATA) {
			if (need > m->data_len)
				FAIL("%zu pixel bytes for a frame of %" PRIu64, m->data_len, need);
			if (m->data_len + HFE_FRAME_REQUEST_SIZE != m->hdr.payload_size)
				FAIL("pixel data_len %zu vs payload %u", m->data_len,
				     m->hdr.payload_size);
		} else if (f->resource_id == 0 || m->data_len) {
			FAIL("resource frame with resource_id 0 or data");
		}
		break;
	}
	case HFE_MSG_FRAME_RESPONSE: {
		size_t pos = 0, sum = 0;
		const uint8_t *nal;
		uint32_t len, k = 0;

		if (m->u.frame_resp.nal_count > HFE_MAX_NAL_COUNT ||
		    m->u.frame_resp.is_keyframe > 1)
			FAIL("FRAME_RESPONSE header fields let through");
		while (hfe_nal_next(m, &pos, &nal, &len)) {
			if (nal < m->data || nal + len > m->data + m->data_len)
				FAIL("NAL outside the payload");
			sum += 4 + (size_t)len;
			if (++k > m->u.frame_resp.nal_count)
				break;
		}
		/* nal_count 0 with an empty area, or exactly nal_count units filling it */
		if (k != m->u.frame_resp.nal_count || sum != m->data_len ||
		    m->data_len + HFE_FRAME_RESPONSE_SIZE != m->hdr.payload_size)
			FAIL("NAL walk: %u units, %zu bytes; nal_count %u, data_len %zu", k, sum,
			     m->u.frame_resp.nal_count, m->data_len);
		break;
	}
	case HFE_MSG_CURSOR_SHAPE: {
		const struct hfe_cursor_shape *c = &m->u.cursor_shape;
		if (c->width < 1 || c->height < 1 || c->width > HFE_CURSOR_MAX ||
		    c->height > HFE_CURSOR_MAX || c->hot_x >= c->width || c->hot_y >= c->height ||
		    m->data_len != (size_t)c->width * c->height * 4 ||
		    m->data_len + HFE_CURSOR_SHAPE_SIZE != m->hdr.payload_size)
			FAIL("CURSOR_SHAPE %ux%u hot %u,%u with %zu bytes let through", c->width,
			     c->height, c->hot_x, c->hot_y, m->data_len);
		break;
	}
	case HFE_MSG_CURSOR_POSITION:
		if (m->u.cursor_pos.visible > 1)
			FAIL("CURSOR_POSITION visible %u let through", m->u.cursor_pos.visible);
		break;
	case HFE_MSG_HELLO:
		if (m->u.hello.version_min < 1 || m->u.hello.version_max < m->u.hello.version_min ||
		    m->u.hello.flags || !terminated(m->u.hello.client_name, HFE_NAME_LEN))
			FAIL("HELLO fields let through");
		break;
	case HFE_MSG_HELLO_RESP:
		if (m->u.hello_resp.format_count > HFE_HELLO_MAX_FORMATS ||
		    !terminated(m->u.hello_resp.server_name, HFE_NAME_LEN))
			FAIL("HELLO_RESP fields let through");
		break;
	case HFE_MSG_CONFIG_RESP:
		if (!terminated(m->u.config_resp.encoder, HFE_NAME_LEN))
			FAIL("CONFIG_RESP encoder unterminated");
		break;
	case HFE_MSG_SCANOUT_RESP:
		if (!terminated(m->u.scanout_resp.connector, HFE_CONNECTOR_LEN))
			FAIL("SCANOUT_RESP connector unterminated");
		break;
	case HFE_MSG_ERROR:
		if (!terminated(m->u.error.message, HFE_ERROR_MSG_LEN))
			FAIL("ERROR message unterminated");
		break;
	default:
		if (m->data_len)
			FAIL("type 0x%02x with data", m->hdr.type);
		break;
	}
}

/* The bytes hfe_conn_send queues for (msg, extra) must be prefix + extra. */
static void check_send(const struct hfe_msg *m, const uint8_t *prefix, size_t npre,
		       const uint8_t *extra, size_t extra_len)
{
	struct hfe_conn *c = hfe_conn_new(HFE_ROLE_HOST, &flim);
	struct iovec iov[4];
	size_t off = 0;
	int n;

	if (!c)
		return;
	if (hfe_conn_send(c, m, extra, extra_len) != 0)
		FAIL("hfe_conn_send refused a message hfe_msg_build accepted");
	if (hfe_conn_tx_pending(c) != npre + extra_len)
		FAIL("tx_pending %zu, want %zu", hfe_conn_tx_pending(c), npre + extra_len);
	while ((n = hfe_conn_tx_iov(c, iov, 4)) > 0) {
		size_t k = iov[0].iov_len;
		const uint8_t *want = off < npre ? prefix + off : extra + (off - npre);

		/* compare in pieces that never straddle prefix and extra */
		if (off < npre && k > npre - off)
			k = npre - off;
		if (k == 0 || off + k > npre + extra_len || memcmp(iov[0].iov_base, want, k) != 0)
			FAIL("queued bytes differ at offset %zu", off);
		hfe_conn_tx_consume(c, k);
		off += k;
	}
	if (off != npre + extra_len)
		FAIL("queue drained %zu bytes, want %zu", off, npre + extra_len);
	hfe_conn_free(c);
}

/* Rebuild a received message, parse it again, compare. */
static void check_roundtrip(const struct hfe_msg *m, enum hfe_role role)
{
	uint8_t prefix[HFE_MSG_MAX_PREFIX];
	const uint8_t *extra = NULL;
	size_t extra_len = 0, npre;
	struct hfe_header hdr;
	struct hfe_msg back;
	struct hfe_err err;
	uint8_t *wire;
	char why[160] = "?";

	if (m->hdr.type == HFE_MSG_FRAME_REQUEST || m->hdr.type == HFE_MSG_CURSOR_SHAPE) {
		extra = m->data;
		extra_len = m->data_len;
	} else if (m->hdr.type == HFE_MSG_FRAME_RESPONSE) {
		if (m->u.frame_resp.nal_count > 1)
			return; /* the builder makes one access unit per response only */
		if (m->u.frame_resp.nal_count == 1) {
			extra = m->data + 4;
			extra_len = m->data_len - 4;
		}
	}
	npre = hfe_msg_build(m, extra_len, prefix, sizeof(prefix));
	if (npre < HFE_HEADER_SIZE)
		FAIL("hfe_msg_build refused a parsed 0x%02x", m->hdr.type);
	wire = malloc(npre + extra_len + 1);
	if (!wire)
		return;
	memcpy(wire, prefix, npre);
	if (extra_len)
		memcpy(wire + npre, extra, extra_len);
	if (hfe_header_parse(wire, role, &flim, &hdr, &err) != 0)
		FAIL("rebuilt 0x%02x: header refused: %s", m->hdr.type, err.msg);
	if (hdr.payload_size != npre + extra_len - HFE_HEADER_SIZE)
		FAIL("rebuilt payload_size %u, wrote %zu", hdr.payload_size,
		     npre + extra_len - HFE_HEADER_SIZE);
	if (hfe_msg_parse(&hdr, wire + HFE_HEADER_SIZE, role, &flim, &back, &err) != 0)
		FAIL("rebuilt 0x%02x: body refused: %s", m->hdr.type, err.msg);
	if (!msg_fields_equal(m, &back, why, sizeof(why)))
		FAIL("round trip of 0x%02x changed %s", m->hdr.type, why);
	if (m->data_len && memcmp(m->data, back.data, m->data_len) != 0)
		FAIL("round trip of 0x%02x changed the data", m->hdr.type);
	check_send(m, prefix, npre, extra, extra_len);
	free(wire);
}

static void collect(struct hfe_conn *c, struct run *r, enum hfe_role role, bool take,
		    bool checks)
{
	struct hfe_msg m;
	int rc;

	while ((rc = hfe_conn_next(c, &m)) == 1) {
		uint64_t h = m.data_len ? hash(m.data, m.data_len) : 0;

		if (checks) {
			check_promises(&m);
			check_roundtrip(&m, role);
		}
		if (r->n < MAX_MSGS) {
			struct seen *s = &r->msgs[r->n++];

			s->m = m;
			s->m.data = NULL;
			s->data_hash = h;
		}
		if (take && m.data_len) {
			uint8_t *p = hfe_conn_take_payload(c);

			if (!p || m.data < p)
				FAIL("take_payload did not hand over the message's buffer");
			if (hash(m.data, m.data_len) != h)
				FAIL("taken payload changed");
			free(p);
		}
	}
	if (rc < 0) {
		r->failed = true;
		r->code = hfe_conn_error(c)->code;
		if (!hfe_conn_failed(c) || r->code >= 0 || !hfe_conn_error(c)->msg[0])
			FAIL("next() == -1 without a failed connection and a message");
	}
}

/* A failed host has queued exactly one ERROR with its code. */
static void check_error_sent(struct hfe_conn *host)
{
	struct hfe_conn *cl = hfe_conn_new(HFE_ROLE_CLIENT, &flim);
	struct iovec iov[8];
	struct hfe_msg m;
	int n;

	if (!cl)
		return;
	while ((n = hfe_conn_tx_iov(host, iov, 8)) > 0) {
		size_t tot = 0;

		for (int i = 0; i < n; i++) {
			if (hfe_conn_feed(cl, iov[i].iov_base, iov[i].iov_len) != iov[i].iov_len)
				FAIL("host's ERROR does not parse as one message");
			tot += iov[i].iov_len;
		}
		hfe_conn_tx_consume(host, tot);
	}
	if (hfe_conn_next(cl, &m) != 1 || m.hdr.type != HFE_MSG_ERROR)
		FAIL("failed host queued no ERROR");
	if (m.u.error.code != hfe_conn_error(host)->code)
		FAIL("ERROR code %d, connection error %d", m.u.error.code,
		     hfe_conn_error(host)->code);
	if (hfe_conn_next(cl, &m) != 0 || hfe_conn_rx_partial(cl))
		FAIL("more than one ERROR queued");
	hfe_conn_free(cl);
}

static const size_t read_sizes[8][4] = {
	{ 1, 1, 1, 1 },    { 3, 5, 7, 11 },       { 12, 1, 44, 2 },     { 4096, 4096, 4096, 4096 },
	{ 2, 64, 13, 1000 }, { 11, 13, 100, 65536 }, { 1, 12, 1, 44 }, { 7, 7, 7, 7 },
};

static void run_conn(const uint8_t *in, size_t n, enum hfe_role role, unsigned ctl, bool chunked,
		     struct run *r)
{
	struct hfe_conn *c = hfe_conn_new(role, &flim);
	bool client_v2 = role == HFE_ROLE_CLIENT && (ctl & 0x08);
	bool take = role == HFE_ROLE_CLIENT && (ctl & 0x10);
	size_t pos = 0;
	unsigned k = 0;

	memset(r, 0, sizeof(*r));
	if (!c)
		return;
	if (client_v2)
		hfe_conn_set_version(c, HFE_PROTO_V2);
	while (pos < n && !r->failed) {
		size_t got;

		if (chunked) {
			size_t len = 0, want = read_sizes[ctl & 7][k++ & 3];
			uint8_t *b = hfe_conn_rx_buf(c, &len);

			if (!b) {
				if (hfe_conn_failed(c))
					break;
				collect(c, r, role, take, !chunked);
				b = hfe_conn_rx_buf(c, &len);
				if (!b)
					FAIL("rx_buf NULL on a live connection, nothing pending");
			}
			if (len == 0)
				FAIL("rx_buf offered 0 bytes");
			got = n - pos < want ? n - pos : want;
			if (got > len)
				got = len;
			memcpy(b, in + pos, got);
			hfe_conn_rx_commit(c, got);
		} else {
			got = hfe_conn_feed(c, in + pos, n - pos);
		}
		pos += got;
		collect(c, r, role, take, !chunked);
		if (got == 0 && !r->failed && !hfe_conn_failed(c))
			FAIL("no progress at offset %zu", pos);
	}
	collect(c, r, role, take, !chunked);
	if (hfe_conn_failed(c) && !r->failed)
		FAIL("connection failed silently");
	r->rx_bytes = hfe_conn_bytes_received(c);
	if (r->failed) {
		size_t len;

		if (hfe_conn_rx_buf(c, &len) != NULL || hfe_conn_feed(c, in, n) != 0)
			FAIL("failed connection still takes input");
		if (role == HFE_ROLE_HOST)
			check_error_sent(c);
		else if (hfe_conn_tx_pending(c) != 0)
			FAIL("client role queued output on failure");
	} else if (r->rx_bytes != n) {
		FAIL("received %" PRIu64 " of %zu bytes", r->rx_bytes, n);
	}
	hfe_conn_free(c);
}

static void compare_runs(const struct run *a, const struct run *b)
{
	char why[160] = "?";

	if (a->n != b->n || a->failed != b->failed || a->code != b->code)
		FAIL("feeding strategies disagree: %d/%d messages, error %d/%d", a->n, b->n,
		     a->code, b->code);
	for (int i = 0; i < a->n; i++) {
		if (!msg_fields_equal(&a->msgs[i].m, &b->msgs[i].m, why, sizeof(why)) ||
		    a->msgs[i].data_hash != b->msgs[i].data_hash)
			FAIL("message %d differs between feeding strategies (%s)", i, why);
	}
	/* bytes counted up to the failure may differ (a read can overshoot the bad
	 * header only in the chunked run); without failure they must agree */
	if (!a->failed && a->rx_bytes != b->rx_bytes)
		FAIL("byte counters disagree");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct run a, b;
	unsigned ctl;

	if (size < 1)
		return 0;
	ctl = data[0];
	data++;
	size--;
	for (int role = 0; role < 2; role++) {
		enum hfe_role r = role ? HFE_ROLE_CLIENT : HFE_ROLE_HOST;

		run_conn(data, size, r, ctl, false, &a);
		run_conn(data, size, r, ctl, true, &b);
		compare_runs(&a, &b);
	}
	return 0;
}
