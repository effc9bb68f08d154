/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * lib/src/conn.c: the sans-I/O connection. Feeding strategies agree with each
 * other, large payloads land in their final buffer, v1/v2 negotiation and its
 * errors, failure handling (ERROR queued for the peer, input refused), and the
 * outbound queue (copy/owned chunks, partial writes across chunk boundaries).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hfe/conn.h"
#include "hfe/wire.h"
#include "msg_compare.h"
#include "unit_check.h"

#define XR24 HFE_FMT_XRGB8888
#define NV12 HFE_FMT_NV12

static const struct hfe_limits tlim = { .max_width = 320, .max_height = 240,
					.max_payload = 1u << 20 };

/* ---- byte streams ---- */

struct bytes {
	uint8_t *p;
	size_t n, cap;
};

static void bytes_add(struct bytes *b, const void *d, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
	if (n)
		memcpy(b->p + b->n, d, n);
	b->n += n;
}

static void bytes_msg(struct bytes *b, const struct hfe_msg *m, const void *extra, size_t len)
{
	uint8_t pre[HFE_MSG_MAX_PREFIX];
	size_t n = hfe_msg_build(m, len, pre, sizeof(pre));

	if (!n) {
		fprintf(stderr, "cannot build message type 0x%02x\n", m->hdr.type);
		abort();
	}
	bytes_add(b, pre, n);
	bytes_add(b, extra, len);
}

/* ---- messages ---- */

static struct hfe_msg mk(uint8_t type, uint16_t sid)
{
	struct hfe_msg m;

	memset(&m, 0, sizeof(m));
	m.hdr.type = type;
	m.hdr.session_id = sid;
	return m;
}

static struct hfe_msg mk_hello(uint16_t vmin, uint16_t vmax)
{
	struct hfe_msg m = mk(HFE_MSG_HELLO, 0);

	m.u.hello.version_min = vmin;
	m.u.hello.version_max = vmax;
	strcpy(m.u.hello.client_name, "conntest");
	return m;
}

static struct hfe_msg mk_frame(uint16_t sid, uint32_t w, uint32_t h, uint32_t fmt,
			       uint32_t stride, int64_t pts, uint32_t res)
{
	struct hfe_msg m = mk(HFE_MSG_FRAME_REQUEST, sid);

	m.u.frame_req = (struct hfe_frame_request){ res, w, h, fmt, stride, pts, 1000, 0 };
	return m;
}

static struct hfe_msg mk_fresp(uint16_t sid, int64_t pts)
{
	struct hfe_msg m = mk(HFE_MSG_FRAME_RESPONSE, sid);

	m.u.frame_resp = (struct hfe_frame_response){ pts, pts, 1, 1 };
	return m;
}

static uint8_t pat(size_t i)
{
	return (uint8_t)(i * 131u + (i >> 9) + 7u);
}

static void fill(uint8_t *p, size_t n, size_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pat(i + seed);
}

/* ---- collecting received messages ---- */

struct rec {
	struct hfe_msg m;
	uint8_t *data; /* copy of m.data */
};

struct result {
	struct rec r[64];
	int n;
	int32_t err; /* 0, or the connection's error code */
	uint64_t rx_bytes;
};

static void result_free(struct result *res)
{
	for (int i = 0; i < res->n; i++)
		free(res->r[i].data);
	res->n = 0;
}

/* Collect every complete message; returns true if at least one came out. */
static bool drain(struct hfe_conn *c, struct result *res)
{
	struct hfe_msg m;
	bool got = false;
	int rc;

	while ((rc = hfe_conn_next(c, &m)) == 1) {
		struct rec *r = &res->r[res->n < 63 ? res->n++ : 63];

		r->m = m;
		r->data = NULL;
		if (m.data_len) {
			r->data = malloc(m.data_len);
			if (!r->data)
				abort();
			memcpy(r->data, m.data, m.data_len);
		}
		got = true;
	}
	if (rc < 0) {
		res->err = hfe_conn_error(c)->code;
		if (res->err == 0)
			res->err = -1000; /* failed without a code: reported below */
	}
	return got;
}

enum feed_mode { FEED_ALL, FEED_BYTES, FEED_CHUNKS_7, FEED_RXBUF_7, FEED_RXBUF_4096 };

static const char *const feed_names[] = { "feed all", "feed 1 byte", "feed 7 bytes",
					  "rx_buf 7 bytes", "rx_buf 4096 bytes" };

static void run_stream(enum hfe_role role, unsigned version, const struct bytes *in,
		       enum feed_mode mode, struct result *res)
{
	struct hfe_conn *c = hfe_conn_new(role, &tlim);
	size_t pos = 0, step = mode == FEED_BYTES ? 1 : mode == FEED_ALL ? SIZE_MAX
				: mode == FEED_RXBUF_4096 ? 4096 : 7;
	int stuck = 0;

	memset(res, 0, sizeof(*res));
	if (!c)
		abort();
	if (version)
		hfe_conn_set_version(c, version);
	while (pos < in->n && !res->err && stuck < 3) {
		size_t want = in->n - pos < step ? in->n - pos : step, k;

		if (mode == FEED_RXBUF_7 || mode == FEED_RXBUF_4096) {
			size_t len = 0;
			uint8_t *b = hfe_conn_rx_buf(c, &len);

			if (!CHECK(b != NULL && len >= 1))
				break;
			k = len < want ? len : want;
			memcpy(b, in->p + pos, k);
			hfe_conn_rx_commit(c, k);
		} else {
			k = hfe_conn_feed(c, in->p + pos, want);
		}
		pos += k;
		if (!drain(c, res) && k == 0)
			stuck++;
	}
	CHECKC(stuck < 3, feed_names[mode]);
	if (!res->err)
		drain(c, res);
	res->rx_bytes = hfe_conn_bytes_received(c);
	hfe_conn_free(c);
}

/* ---- comparison ---- */

static void compare_results(const struct result *a, const struct result *b, const char *ctx)
{
	char why[160];

	CHECKC(a->n == b->n, ctx);
	CHECKC(a->err == b->err, ctx);
	CHECKC(a->rx_bytes == b->rx_bytes, ctx);
	for (int i = 0; i < a->n && i < b->n; i++) {
		why[0] = 0;
		if (!CHECKC(msg_fields_equal(&a->r[i].m, &b->r[i].m, why, sizeof(why)), ctx))
			fprintf(stderr, "  message %d: %s\n", i, why);
		if (a->r[i].m.data_len == b->r[i].m.data_len && a->r[i].m.data_len)
			CHECKC(memcmp(a->r[i].data, b->r[i].data, a->r[i].m.data_len) == 0, ctx);
	}
}

/* ---- feeding ---- */

/* Every client -> host message, some with payloads, parsed the same however fed. */
static void test_feed_equivalence(void)
{
	struct bytes in = { 0 };
	struct hfe_msg m, expect[16];
	uint8_t pix[64 * 16 * 4 + 100];
	int ne = 0;
	struct result ref, res;

	printf("feeding strategies agree (host role)\n");
	fill(pix, sizeof(pix), 0);
	m = mk_hello(1, 2);
	bytes_msg(&in, &m, NULL, 0);
	expect[ne++] = m;
	m = mk(HFE_MSG_CONFIG_REQ, 1);
	m.u.config_req = (struct hfe_config_req){ 64, 16, 500000, 30, 1, 66, 0, 1 };
	bytes_msg(&in, &m, NULL, 0);
	expect[ne++] = m;
	m = mk_frame(1, 64, 16, XR24, 256, 1, 0);
	bytes_msg(&in, &m, pix, sizeof(pix)); /* 100 bytes more than the frame needs */
	expect[ne++] = m;
	m = mk(HFE_MSG_KEYFRAME_REQ, 1);
	bytes_msg(&in, &m, NULL, 0);
	expect[ne++] = m;
	m = mk(HFE_MSG_PING, 77);
	bytes_msg(&in, &m, NULL, 0);
	expect[ne++] = m;
	m = mk(HFE_MSG_STATS_REQ, 0);
	bytes_msg(&in, &m, NULL, 0);
	expect[ne++] = m;
	m = mk_frame(1, 64, 16, XR24, 256, 2, 42);
	bytes_msg(&in, &m, NULL, 0);
	expect[ne++] = m;
	m = mk(HFE_MSG_ENABLE_SCANOUT, 0);
	m.u.enable_scanout = (struct hfe_enable_scanout){ 0, 0, 0, 60 };
	bytes_msg(&in, &m, NULL, 0);
	expect[ne++] = m;
	m = mk(HFE_MSG_SUBSCRIBE, 0);
	bytes_msg(&in, &m, NULL, 0);
	expect[ne++] = m;
	m = mk(HFE_MSG_DISABLE_SCANOUT, 0);
	bytes_msg(&in, &m, NULL, 0);
	expect[ne++] = m;
	m = mk_frame(3, 32, 16, NV12, 32, 3, 0);
	bytes_msg(&in, &m, pix, 32 * 24);
	expect[ne++] = m;

	run_stream(HFE_ROLE_HOST, 0, &in, FEED_ALL, &ref);
	CHECK(ref.err == 0);
	CHECK(ref.n == ne);
	CHECK(ref.rx_bytes == in.n);
	for (int i = 0; i < ref.n && i < ne; i++) {
		const struct hfe_msg *g = &ref.r[i].m;
		char ctx[64];

		snprintf(ctx, sizeof(ctx), "message %d type 0x%02x", i, expect[i].hdr.type);
		CHECKC(g->hdr.type == expect[i].hdr.type, ctx);
		CHECKC(g->hdr.session_id == expect[i].hdr.session_id, ctx);
		if (g->hdr.type == HFE_MSG_FRAME_REQUEST) {
			CHECKC(g->u.frame_req.pts == expect[i].u.frame_req.pts, ctx);
			CHECKC(g->u.frame_req.format == expect[i].u.frame_req.format, ctx);
			if (g->hdr.flags & HFE_FLAG_PIXEL_DATA)
				CHECKC(ref.r[i].data && memcmp(ref.r[i].data, pix,
							       g->data_len) == 0, ctx);
		}
	}
	CHECK(ref.n > 2 && ref.r[2].m.data_len == sizeof(pix));
	CHECK(ref.n > 4 && ref.r[4].m.hdr.session_id == 77);
	for (int mode = FEED_BYTES; mode <= FEED_RXBUF_4096; mode++) {
		run_stream(HFE_ROLE_HOST, 0, &in, (enum feed_mode)mode, &res);
		compare_results(&ref, &res, feed_names[mode]);
		result_free(&res);
	}
	result_free(&ref);
	free(in.p);
}

/* The host -> client direction, as a client that sent HELLO sees it. */
static void test_feed_equivalence_client(void)
{
	struct bytes in = { 0 };
	struct hfe_msg m;
	uint8_t au[300];
	struct result ref, res;
	static const uint8_t types[] = { HFE_MSG_HELLO_RESP,   HFE_MSG_CONFIG_RESP,
					 HFE_MSG_FRAME_RESPONSE, HFE_MSG_PONG,
					 HFE_MSG_SCANOUT_RESP, HFE_MSG_SUBSCRIBE_RESP,
					 HFE_MSG_STATS_RESP,   HFE_MSG_ERROR,
					 HFE_MSG_FRAME_RESPONSE };

	printf("feeding strategies agree (client role)\n");
	fill(au, sizeof(au), 5);
	m = mk(HFE_MSG_HELLO_RESP, 0);
	m.u.hello_resp.version = 2;
	m.u.hello_resp.codecs = HFE_CODEC_H264;
	m.u.hello_resp.max_payload = 1u << 20;
	m.u.hello_resp.format_count = 1;
	m.u.hello_resp.formats[0] = XR24;
	strcpy(m.u.hello_resp.server_name, "test host");
	bytes_msg(&in, &m, NULL, 0);
	m = mk(HFE_MSG_CONFIG_RESP, 1);
	m.u.config_resp = (struct hfe_config_resp){ 64, 16, 500000, 30, 1, 66, 0, 1, "libx264" };
	bytes_msg(&in, &m, NULL, 0);
	m = mk_fresp(1, 123);
	bytes_msg(&in, &m, au, sizeof(au));
	m = mk(HFE_MSG_PONG, 5);
	bytes_msg(&in, &m, NULL, 0);
	m = mk(HFE_MSG_SCANOUT_RESP, 0);
	m.u.scanout_resp.success = 1;
	strcpy(m.u.scanout_resp.connector, "Virtual-1");
	bytes_msg(&in, &m, NULL, 0);
	m = mk(HFE_MSG_SUBSCRIBE_RESP, 0);
	m.u.subscribe_resp.success = 1;
	bytes_msg(&in, &m, NULL, 0);
	m = mk(HFE_MSG_STATS_RESP, 0);
	m.u.stats.frames_received = 3;
	m.u.stats.bytes_sent = 999;
	bytes_msg(&in, &m, NULL, 0);
	m = mk(HFE_MSG_ERROR, 1);
	m.u.error.code = HFE_ERR_RESOURCE_NOT_FOUND; /* connection is kept */
	strcpy(m.u.error.message, "resource 42 unknown");
	bytes_msg(&in, &m, NULL, 0);
	m = mk_fresp(1, 124);
	bytes_msg(&in, &m, au, 17);

	run_stream(HFE_ROLE_CLIENT, HFE_PROTO_V2, &in, FEED_ALL, &ref);
	CHECK(ref.err == 0);
	CHECK(ref.n == (int)sizeof(types));
	for (int i = 0; i < ref.n && i < (int)sizeof(types); i++)
		CHECK(ref.r[i].m.hdr.type == types[i]);
	CHECK(ref.n > 2 && ref.r[2].m.data_len == 4 + sizeof(au) &&
	      memcmp(ref.r[2].data + 4, au, sizeof(au)) == 0);
	for (int mode = FEED_BYTES; mode <= FEED_RXBUF_4096; mode++) {
		run_stream(HFE_ROLE_CLIENT, HFE_PROTO_V2, &in, (enum feed_mode)mode, &res);
		compare_results(&ref, &res, feed_names[mode]);
		result_free(&res);
	}
	result_free(&ref);
	free(in.p);
}

static void test_two_in_one_buffer(void)
{
	struct bytes in = { 0 };
	struct hfe_msg m;
	struct hfe_conn *c = hfe_conn_new(HFE_ROLE_HOST, &tlim);
	size_t k;

	printf("two messages in one buffer, partial state\n");
	m = mk(HFE_MSG_PING, 1);
	bytes_msg(&in, &m, NULL, 0);
	m = mk(HFE_MSG_PING, 2);
	bytes_msg(&in, &m, NULL, 0);

	CHECK(!hfe_conn_rx_partial(c));
	CHECK(hfe_conn_version(c) == 0);
	k = hfe_conn_feed(c, in.p, in.n);
	CHECK(k == 12); /* stops at the complete, uncollected first message */
	CHECK(hfe_conn_next(c, &m) == 1 && m.hdr.type == HFE_MSG_PING && m.hdr.session_id == 1);
	CHECK(hfe_conn_next(c, &m) == 0);
	k += hfe_conn_feed(c, in.p + k, in.n - k);
	CHECK(k == 24);
	CHECK(hfe_conn_next(c, &m) == 1 && m.hdr.session_id == 2);
	CHECK(hfe_conn_next(c, &m) == 0);
	CHECK(!hfe_conn_rx_partial(c));
	CHECK(hfe_conn_version(c) == HFE_PROTO_V1);

	/* half a header, then the rest */
	CHECK(hfe_conn_feed(c, in.p, 5) == 5);
	CHECK(hfe_conn_rx_partial(c));
	CHECK(hfe_conn_next(c, &m) == 0);
	CHECK(hfe_conn_feed(c, in.p + 5, 7) == 7);
	CHECK(hfe_conn_next(c, &m) == 1 && m.hdr.session_id == 1);
	CHECK(!hfe_conn_rx_partial(c));

	/* a complete message not yet collected is not a failure */
	{
		size_t len = 0;
		uint8_t *b;

		CHECK(hfe_conn_feed(c, in.p, 12) == 12);
		b = hfe_conn_rx_buf(c, &len);
		CHECK(b == NULL || len >= 1);
		CHECK(!hfe_conn_failed(c));
		CHECK(hfe_conn_next(c, &m) == 1 && m.hdr.session_id == 1);
		b = hfe_conn_rx_buf(c, &len);
		CHECK(b != NULL && len >= 1);
	}
	CHECK(hfe_conn_bytes_received(c) == 48);
	CHECK(!hfe_conn_failed(c));
	hfe_conn_free(c);
	free(in.p);
}

/* A 1080p BGRx frame is read straight into the buffer that is handed over. */
static void test_zero_copy(void)
{
	struct hfe_limits lim;
	struct hfe_conn *c;
	struct hfe_msg m = mk_frame(1, 1920, 1080, XR24, 7680, 555, 0), got;
	uint8_t pre[HFE_MSG_MAX_PREFIX];
	const size_t npix = 7680u * 1080u, read_cap = 1u << 20;
	size_t npre, total, pos = 0, direct = 0, nseg = 0;
	struct {
		uint8_t *p;
		size_t n;
	} seg[64];
	uint8_t *payload;
	int rc = 0;
	bool contiguous = true;

	printf("zero-copy payload path\n");
	hfe_limits_default(&lim);
	c = hfe_conn_new(HFE_ROLE_HOST, &lim);
	npre = hfe_msg_build(&m, npix, pre, sizeof(pre));
	CHECK(npre == 56);
	total = npre + npix;
	while (pos < total && nseg < 64) {
		size_t len = 0, k;
		uint8_t *b = hfe_conn_rx_buf(c, &len);

		if (!CHECK(b != NULL && len >= 1))
			break;
		k = total - pos;
		if (k > len)
			k = len;
		if (k > read_cap)
			k = read_cap;
		for (size_t i = 0; i < k; i++) {
			size_t at = pos + i;

			b[i] = at < npre ? pre[at] : pat(at - npre);
		}
		if (nseg && seg[nseg - 1].p + seg[nseg - 1].n != b && pos > read_cap)
			contiguous = false;
		seg[nseg].p = b;
		seg[nseg].n = k;
		nseg++;
		hfe_conn_rx_commit(c, k);
		pos += k;
		if (pos < total) {
			rc = hfe_conn_next(c, &got);
			CHECK(rc == 0);
			CHECK(hfe_conn_rx_partial(c));
		}
	}
	CHECK(pos == total);
	rc = hfe_conn_next(c, &got);
	if (!CHECK(rc == 1)) {
		hfe_conn_free(c);
		return;
	}
	CHECK(got.hdr.type == HFE_MSG_FRAME_REQUEST && got.u.frame_req.pts == 555);
	CHECK(got.data_len == npix);
	{
		size_t bad = 0;

		for (size_t i = 0; i < npix; i++)
			bad += got.data[i] != pat(i);
		CHECK(bad == 0);
	}
	CHECK(contiguous);
	payload = hfe_conn_take_payload(c);
	CHECK(payload != NULL);
	if (payload) {
		const uint8_t *end = payload + HFE_FRAME_REQUEST_SIZE + npix;

		CHECK(got.data >= payload && got.data <= payload + HFE_FRAME_REQUEST_SIZE);
		for (size_t i = 0; i < nseg; i++)
			if (seg[i].p >= payload && seg[i].p < end)
				direct += seg[i].n;
		/* at most one read went through a staging buffer */
		printf("  %zu of %zu bytes read in place, %zu reads\n", direct, total, nseg);
		CHECK(direct + read_cap >= total);
	}
	/* the connection goes on, and the taken buffer stays ours */
	{
		struct hfe_msg ping = mk(HFE_MSG_PING, 9);
		uint8_t b[16];
		size_t n = hfe_msg_build(&ping, 0, b, sizeof(b));

		CHECK(hfe_conn_feed(c, b, n) == n);
		CHECK(hfe_conn_next(c, &ping) == 1 && ping.hdr.session_id == 9);
	}
	hfe_conn_free(c);
	if (payload) {
		CHECK(payload[HFE_FRAME_REQUEST_SIZE] == pat(0));
		CHECK(payload[HFE_FRAME_REQUEST_SIZE + npix - 1] == pat(npix - 1));
		free(payload);
	}
}

/* ---- version negotiation ---- */

struct vstep {
	struct hfe_msg m;
	int want;          /* hfe_conn_next result */
	unsigned version;  /* hfe_conn_version afterwards (when want == 1) */
	int32_t code;      /* error code (when want == -1) */
};

static void run_steps(const char *what, enum hfe_role role, unsigned preset,
		      const struct vstep *s, int n)
{
	struct hfe_conn *c = hfe_conn_new(role, &tlim);
	uint8_t b[HFE_MSG_MAX_PREFIX];
	struct hfe_msg got;
	char ctx[160];

	printf("version: %s\n", what);
	if (preset)
		hfe_conn_set_version(c, preset);
	for (int i = 0; i < n; i++) {
		size_t len = hfe_msg_build(&s[i].m, 0, b, sizeof(b));
		int rc;

		snprintf(ctx, sizeof(ctx), "%s, step %d (%s)", what, i,
			 hfe_msg_type_name(s[i].m.hdr.type));
		hfe_conn_feed(c, b, len);
		rc = hfe_conn_next(c, &got);
		if (!CHECKC(rc == s[i].want, ctx)) {
			fprintf(stderr, "  rc %d, error %d %s\n", rc,
				hfe_conn_failed(c) ? hfe_conn_error(c)->code : 0,
				hfe_conn_failed(c) ? hfe_conn_error(c)->msg : "");
			break;
		}
		if (rc == 1) {
			CHECKC(got.hdr.type == s[i].m.hdr.type, ctx);
			CHECKC(hfe_conn_version(c) == s[i].version, ctx);
			CHECKC(!hfe_conn_failed(c), ctx);
		} else if (rc == -1) {
			CHECKC(hfe_conn_failed(c), ctx);
			CHECKC(hfe_conn_error(c)->code == s[i].code, ctx);
			CHECKC(hfe_conn_error(c)->msg[0] != 0, ctx);
			if (role == HFE_ROLE_HOST)
				CHECKC(hfe_conn_tx_pending(c) == 12 + HFE_ERROR_SIZE, ctx);
			break;
		}
	}
	hfe_conn_free(c);
}

static void test_versions(void)
{
	const struct hfe_msg ping = mk(HFE_MSG_PING, 1), stats = mk(HFE_MSG_STATS_REQ, 0),
			     kf = mk(HFE_MSG_KEYFRAME_REQ, 1);
	struct hfe_msg cfg = mk(HFE_MSG_CONFIG_REQ, 1), hresp = mk(HFE_MSG_HELLO_RESP, 0),
		       sresp = mk(HFE_MSG_STATS_RESP, 0), pong = mk(HFE_MSG_PONG, 1);
	const int P = HFE_ERR_PROTOCOL;

	hresp.u.hello_resp.version = 2;
	strcpy(hresp.u.hello_resp.server_name, "h");
	{
		const struct vstep s[] = { { mk_hello(1, 2), 1, 2, 0 }, { stats, 1, 2, 0 },
					   { cfg, 1, 2, 0 },           { ping, 1, 2, 0 },
					   { stats, 1, 2, 0 } };
		run_steps("HELLO first -> v2", HFE_ROLE_HOST, 0, s, 5);
	}
	{
		const struct vstep s[] = { { mk_hello(2, 2), 1, 2, 0 } };
		run_steps("HELLO 2..2 -> v2", HFE_ROLE_HOST, 0, s, 1);
	}
	{
		const struct vstep s[] = { { mk_hello(1, 0xffff), 1, 2, 0 } };
		run_steps("HELLO 1..65535 -> v2", HFE_ROLE_HOST, 0, s, 1);
	}
	{
		const struct vstep s[] = { { mk_hello(1, 1), 1, 1, 0 }, { ping, 1, 1, 0 },
					   { stats, -1, 0, P } };
		run_steps("HELLO 1..1 -> v1, then STATS_REQ", HFE_ROLE_HOST, 0, s, 3);
	}
	{
		const struct vstep s[] = { { ping, 1, 1, 0 }, { mk_hello(1, 2), -1, 0, P } };
		run_steps("HELLO after PING", HFE_ROLE_HOST, 0, s, 2);
	}
	{
		const struct vstep s[] = { { kf, 1, 1, 0 }, { cfg, 1, 1, 0 },
					   { mk_hello(1, 2), -1, 0, P } };
		run_steps("HELLO after KEYFRAME_REQ, CONFIG_REQ", HFE_ROLE_HOST, 0, s, 3);
	}
	{
		const struct vstep s[] = { { mk_hello(1, 2), 1, 2, 0 },
					   { mk_hello(1, 2), -1, 0, P } };
		run_steps("second HELLO", HFE_ROLE_HOST, 0, s, 2);
	}
	{
		const struct vstep s[] = { { stats, -1, 0, P } };
		run_steps("STATS_REQ first", HFE_ROLE_HOST, 0, s, 1);
	}
	{
		const struct vstep s[] = { { ping, 1, 1, 0 }, { stats, -1, 0, P } };
		run_steps("STATS_REQ in v1", HFE_ROLE_HOST, 0, s, 2);
	}
	{
		struct hfe_msg key = mk(HFE_MSG_INPUT_KEY, 0), ptr = mk(HFE_MSG_INPUT_POINTER, 0);
		key.u.key = (struct hfe_input_key){ 30, 1 };
		const struct vstep v2[] = { { mk_hello(1, 2), 1, 2, 0 },
					    { key, 1, 2, 0 },
					    { ptr, 1, 2, 0 } };
		run_steps("input in v2", HFE_ROLE_HOST, 0, v2, 3);
		const struct vstep v1[] = { { ping, 1, 1, 0 }, { key, -1, 0, P } };
		run_steps("INPUT_KEY in v1", HFE_ROLE_HOST, 0, v1, 2);
		const struct vstep first[] = { { ptr, -1, 0, P } };
		run_steps("INPUT_POINTER first (v1)", HFE_ROLE_HOST, 0, first, 1);
	}
	{
		const struct vstep s[] = { { mk_hello(3, 4), -1, 0, HFE_ERR_VERSION } };
		run_steps("HELLO 3..4", HFE_ROLE_HOST, 0, s, 1);
	}
	{
		const struct vstep s[] = { { hresp, 1, 2, 0 }, { sresp, 1, 2, 0 },
					   { pong, 1, 2, 0 } };
		run_steps("client: HELLO sent, HELLO_RESP v2", HFE_ROLE_CLIENT, HFE_PROTO_V2, s, 3);
	}
	{
		const struct vstep s[] = { { pong, 1, 1, 0 }, { pong, 1, 1, 0 } };
		run_steps("client: v1", HFE_ROLE_CLIENT, HFE_PROTO_V1, s, 2);
	}
}

/* ---- failure ---- */

/* Drain a host's tx queue into a client-role conn and return the ERROR. */
static bool read_back_error(struct hfe_conn *host, struct hfe_msg *err_msg)
{
	struct hfe_conn *cl = hfe_conn_new(HFE_ROLE_CLIENT, &tlim);
	struct iovec iov[8];
	int n, rc;
	bool ok = false;

	while ((n = hfe_conn_tx_iov(host, iov, 8)) > 0) {
		size_t tot = 0;

		for (int i = 0; i < n; i++) {
			CHECK(hfe_conn_feed(cl, iov[i].iov_base, iov[i].iov_len) == iov[i].iov_len);
			tot += iov[i].iov_len;
		}
		hfe_conn_tx_consume(host, tot);
	}
	rc = hfe_conn_next(cl, err_msg);
	if (CHECK(rc == 1) && CHECK(err_msg->hdr.type == HFE_MSG_ERROR))
		ok = true;
	CHECK(hfe_conn_next(cl, err_msg) == 0 || !ok);
	hfe_conn_free(cl);
	return ok;
}

static void expect_failure(const char *what, const uint8_t *in, size_t n, int32_t code)
{
	struct hfe_conn *c = hfe_conn_new(HFE_ROLE_HOST, &tlim);
	struct hfe_msg m;
	size_t len = 99, k;
	int rc;

	printf("failure: %s\n", what);
	k = hfe_conn_feed(c, in, n);
	CHECKC(k <= n, what);
	rc = hfe_conn_next(c, &m);
	CHECKC(rc == -1, what);
	CHECKC(hfe_conn_failed(c), what);
	if (!CHECKC(hfe_conn_error(c)->code == code, what))
		fprintf(stderr, "  got %d: %s\n", hfe_conn_error(c)->code, hfe_conn_error(c)->msg);
	CHECKC(hfe_conn_error(c)->msg[0] != 0, what);
	CHECKC(hfe_conn_rx_buf(c, &len) == NULL, what);
	CHECKC(hfe_conn_feed(c, in, n) == 0, what);
	CHECKC(hfe_conn_next(c, &m) == -1, what);
	CHECKC(hfe_conn_tx_pending(c) == 12 + HFE_ERROR_SIZE, what);
	if (read_back_error(c, &m)) {
		CHECKC(m.u.error.code == code, what);
		CHECKC(strcmp(m.u.error.message, hfe_conn_error(c)->msg) == 0, what);
	}
	hfe_conn_free(c);
}

static void test_failures(void)
{
	uint8_t b[HFE_MSG_MAX_PREFIX + 64];
	struct hfe_msg m;
	size_t n;

	memcpy(b, "HXFS\x10\0\0\0\0\0\0\0", 12);
	expect_failure("bad magic", b, 12, HFE_ERR_INVALID_MSG);

	m = mk(HFE_MSG_PONG, 1);
	n = hfe_msg_build(&m, 0, b, sizeof(b));
	expect_failure("host receives PONG", b, n, HFE_ERR_INVALID_MSG);

	/* the limit is checked on the header alone, before any payload arrives */
	m = mk_frame(1, 64, 16, XR24, 256, 0, 0);
	n = hfe_msg_build(&m, tlim.max_payload, b, sizeof(b));
	expect_failure("payload over max_payload, header only", b, 12, HFE_ERR_TOO_LARGE);

	m = mk_frame(1, 63, 16, XR24, 256, 0, 9);
	n = hfe_msg_build(&m, 0, b, sizeof(b));
	expect_failure("odd width", b, n, HFE_ERR_INVALID_MSG);

	m = mk(HFE_MSG_PING, 1);
	n = hfe_msg_build(&m, 0, b, sizeof(b));
	b[5] = 0x01;
	expect_failure("PING with PIXEL_DATA", b, n, HFE_ERR_INVALID_MSG);

	/* failing from outside: stall timeout */
	{
		struct hfe_conn *c = hfe_conn_new(HFE_ROLE_HOST, &tlim);
		size_t len;

		printf("failure: hfe_conn_fail\n");
		CHECK(!hfe_conn_failed(c));
		hfe_conn_fail(c, HFE_ERR_TIMEOUT, "stalled for %d s in a message", 10);
		CHECK(hfe_conn_failed(c));
		CHECK(hfe_conn_error(c)->code == HFE_ERR_TIMEOUT);
		CHECK(strcmp(hfe_conn_error(c)->msg, "stalled for 10 s in a message") == 0);
		CHECK(hfe_conn_rx_buf(c, &len) == NULL);
		CHECK(hfe_conn_tx_pending(c) == 12 + HFE_ERROR_SIZE);
		/* only the first failure counts, and only one ERROR is sent */
		hfe_conn_fail(c, HFE_ERR_INTERNAL, "later");
		CHECK(hfe_conn_error(c)->code == HFE_ERR_TIMEOUT);
		CHECK(hfe_conn_tx_pending(c) == 12 + HFE_ERROR_SIZE);
		if (read_back_error(c, &m)) {
			CHECK(m.u.error.code == HFE_ERR_TIMEOUT);
			CHECK(strcmp(m.u.error.message, "stalled for 10 s in a message") == 0);
		}
		hfe_conn_free(c);
	}
	/* a client endpoint does not send ERROR to a host */
	{
		struct hfe_conn *c = hfe_conn_new(HFE_ROLE_CLIENT, &tlim);
		size_t len;

		printf("failure: client role\n");
		memcpy(b, "XXXX\x11\0\0\0\0\0\0\0", 12);
		hfe_conn_feed(c, b, 12);
		CHECK(hfe_conn_next(c, &m) == -1);
		CHECK(hfe_conn_failed(c) && hfe_conn_error(c)->code == HFE_ERR_INVALID_MSG);
		CHECK(hfe_conn_rx_buf(c, &len) == NULL);
		CHECK(hfe_conn_tx_pending(c) == 0);
		hfe_conn_free(c);

		c = hfe_conn_new(HFE_ROLE_CLIENT, &tlim);
		hfe_conn_fail(c, HFE_ERR_TIMEOUT, "host stalled");
		CHECK(hfe_conn_failed(c) && hfe_conn_tx_pending(c) == 0);
		hfe_conn_free(c);
	}
}

/* ---- sending ---- */

static int frees;
static void *freed_opaque;

static void count_free(void *opaque)
{
	frees++;
	freed_opaque = opaque;
	free(opaque);
}

/* Copy up to `want` queued bytes out through tx_iov (max `maxiov` vectors). */
static size_t peek_tx(struct hfe_conn *c, uint8_t *dst, size_t want, int maxiov)
{
	struct iovec iov[8];
	int n = hfe_conn_tx_iov(c, iov, maxiov);
	size_t got = 0, sum = 0;

	CHECK(n >= 0 && n <= maxiov);
	for (int i = 0; i < n; i++) {
		size_t k = iov[i].iov_len;

		CHECK(k > 0);
		sum += k;
		if (got < want) {
			if (k > want - got)
				k = want - got;
			memcpy(dst + got, iov[i].iov_base, k);
			got += k;
		}
	}
	CHECK(sum <= hfe_conn_tx_pending(c));
	return got;
}

static void test_tx_queue(void)
{
	struct hfe_conn *c = hfe_conn_new(HFE_ROLE_HOST, &tlim);
	struct bytes expect = { 0 };
	uint8_t au1[1000], *au2 = malloc(5000), out[8192];
	static const uint8_t tail[10] = "borrowed!";
	struct hfe_msg m, e;
	size_t owned_end, pos = 0, pending, step = 7;
	int maxiov = 1;
	struct iovec iov[4];

	printf("tx queue\n");
	CHECK(hfe_conn_tx_pending(c) == 0);
	CHECK(hfe_conn_tx_iov(c, iov, 4) == 0);

	m = mk(HFE_MSG_PONG, 3);
	CHECK(hfe_conn_send(c, &m, NULL, 0) == 0);
	bytes_msg(&expect, &m, NULL, 0);
	CHECK(hfe_conn_tx_pending(c) == 12);

	fill(au1, sizeof(au1), 1);
	m = mk_fresp(1, 10);
	CHECK(hfe_conn_send(c, &m, au1, sizeof(au1)) == 0);
	bytes_msg(&expect, &m, au1, sizeof(au1));
	memset(au1, 0, sizeof(au1)); /* copied: the queue must not see this */
	CHECK(hfe_conn_tx_pending(c) == expect.n);

	fill(au2, 5000, 2);
	m = mk_fresp(1, 11);
	bytes_msg(&expect, &m, au2, 5000);
	frees = 0;
	CHECK(hfe_conn_send_owned(c, &m, au2, 5000, count_free, au2) == 0);
	owned_end = expect.n;
	CHECK(hfe_conn_tx_pending(c) == expect.n);
	CHECK(frees == 0);

	CHECK(hfe_conn_send_error(c, 7, HFE_ERR_RESOURCE_NOT_FOUND, "resource %u unknown", 42u) ==
	      0);
	e = mk(HFE_MSG_ERROR, 7);
	e.u.error.code = HFE_ERR_RESOURCE_NOT_FOUND;
	strcpy(e.u.error.message, "resource 42 unknown");
	bytes_msg(&expect, &e, NULL, 0);

	m = mk_fresp(2, 12);
	CHECK(hfe_conn_send_owned(c, &m, tail, sizeof(tail), NULL, NULL) == 0);
	bytes_msg(&expect, &m, tail, sizeof(tail));
	CHECK(hfe_conn_tx_pending(c) == expect.n);
	CHECK(hfe_conn_bytes_sent(c) == 0);
	CHECK(hfe_conn_tx_iov(c, iov, 4) >= 2); /* gathers across messages */

	/* drain in odd steps through few iovecs: every boundary gets crossed mid-write */
	while (pos < expect.n) {
		size_t want = expect.n - pos < step ? expect.n - pos : step;
		size_t got = peek_tx(c, out, want, maxiov);

		/* fewer vectors than chunks may hold less than asked for, never nothing */
		if (!CHECK(got > 0 && got <= want))
			break;
		if (!CHECK(memcmp(out, expect.p + pos, got) == 0)) {
			fprintf(stderr, "  at offset %zu\n", pos);
			break;
		}
		hfe_conn_tx_consume(c, got);
		pos += got;
		CHECK(hfe_conn_tx_pending(c) == expect.n - pos);
		CHECK(hfe_conn_bytes_sent(c) == pos);
		if (pos < owned_end)
			CHECK(frees == 0);
		else
			CHECK(frees == 1);
		step = step == 7 ? 1000 : step == 1000 ? 13 : 7;
		maxiov = maxiov == 1 ? 2 : maxiov == 2 ? 3 : maxiov == 3 ? 8 : 1;
	}
	CHECK(pos == expect.n);
	CHECK(frees == 1 && freed_opaque == au2);
	CHECK(hfe_conn_tx_pending(c) == 0);
	CHECK(hfe_conn_tx_iov(c, iov, 4) == 0);
	pending = hfe_conn_tx_pending(c);
	CHECK(pending == 0);
	hfe_conn_free(c);
	CHECK(frees == 1);

	/* owned data still queued when the connection goes: freed exactly once */
	for (int partial = 0; partial < 3; partial++) {
		uint8_t *buf = malloc(3000);

		printf("tx queue: free with unsent owned data (%d)\n", partial);
		c = hfe_conn_new(HFE_ROLE_HOST, &tlim);
		m = mk(HFE_MSG_PONG, 1);
		hfe_conn_send(c, &m, NULL, 0);
		m = mk_fresp(1, 1);
		frees = 0;
		CHECK(hfe_conn_send_owned(c, &m, buf, 3000, count_free, buf) == 0);
		if (partial == 1)
			hfe_conn_tx_consume(c, 12 + 40 + 100); /* into the owned bytes */
		if (partial == 2)
			hfe_conn_tx_consume(c, 12 + 20); /* into its header */
		CHECK(frees == 0);
		hfe_conn_free(c);
		CHECK(frees == 1);
	}
	free(expect.p);
}

int main(void)
{
	test_feed_equivalence();
	test_feed_equivalence_client();
	test_two_in_one_buffer();
	test_zero_copy();
	test_versions();
	test_failures();
	test_tx_queue();

	return check_finish("test_conn");
}
