/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A host with one peer, driven without sockets: see host_harness.h. */
#include "host_harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hfe/scanout.h"
#include "hfe/testsrc.h"

#define HH_WAIT_S 10 /* real seconds a worker may take before we call it a hang */

static void die(const char *what)
{
	fprintf(stderr, "host harness: %s\n", what);
	abort();
}

static void on_notify(void *opaque)
{
	struct hh *h = opaque;
	pthread_mutex_lock(&h->lock);
	h->notifies++;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

void hh_config(struct hfe_host_config *cfg)
{
	hfe_host_config_default(cfg);
	cfg->limits.max_width = 640;
	cfg->limits.max_height = 480;
	cfg->limits.max_payload = 640 * 480 * 4 + 256;
	cfg->stall_timeout_ms = 5000;
	cfg->enc.bitrate = 500000;
}

void hh_start(struct hh *h, const struct hfe_host_config *cfg)
{
	struct hfe_host_config c = *cfg;

	memset(h, 0, sizeof(*h));
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	c.notify = on_notify;
	c.notify_opaque = h;
	h->now = HH_T0;
	h->deadline = UINT64_MAX;
	h->enc = c.enc;
	h->host = hfe_host_new(&c);
	if (!h->host)
		die("hfe_host_new");
	h->peer = hfe_peer_new(h->host, "harness", h->now);
	h->client = hfe_conn_new(HFE_ROLE_CLIENT, &c.limits);
	if (!h->peer || !h->client)
		die("out of memory");
}

void hh_start_default(struct hh *h)
{
	struct hfe_host_config cfg;

	hh_config(&cfg);
	hh_start(h, &cfg);
}

void hh_stop(struct hh *h)
{
	if (h->peer)
		hfe_peer_free(h->peer, "test over");
	h->peer = NULL;
	for (unsigned i = 0; i < h->n_streams; i++)
		hfe_stream_free(h->streams[i]);
	hfe_host_free(h->host);
	hfe_conn_free(h->client);
	free(h->picture);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
}

struct hfe_stream *hh_add_scanout(struct hh *h, uint32_t id, uint32_t w, uint32_t hgt)
{
	struct hfe_stream_params sp = { .enc = h->enc, .max_fps = 240, .notify = on_notify,
					.opaque = h };
	struct hfe_err err;
	struct hfe_stream *s;

	if (h->n_streams == HH_MAX_SCANOUTS)
		die("too many scanouts");
	s = hfe_stream_new(&sp, &err);
	if (!s)
		die(err.msg);
	if (hfe_hub_add_scanout(hfe_host_hub(h->host), id, s, "Virtual-1") < 0)
		die("hfe_hub_add_scanout");
	h->streams[h->n_streams++] = s;
	if (!h->picture) {
		h->pic_w = w;
		h->pic_h = hgt;
		h->picture = malloc((size_t)w * hgt * 4);
		if (!h->picture)
			die("out of memory");
	}
	return s;
}

void hh_draw(struct hh *h, uint64_t tick)
{
	struct hfe_err err;

	hfe_testsrc_render(h->picture, h->pic_w * 4, h->pic_w, h->pic_h, tick);
	for (unsigned i = 0; i < h->n_streams; i++) {
		if (tick == 0 && hfe_stream_resize(h->streams[i], h->pic_w, h->pic_h, &err) < 0)
			die(err.msg);
		hfe_stream_update(h->streams[i], 0, 0, h->pic_w, h->pic_h, h->picture,
				  h->pic_w * 4, HFE_FMT_XRGB8888);
	}
}

/* ---- bytes in ---- */

size_t hh_push(struct hh *h, const void *bytes, size_t n)
{
	const uint8_t *p = bytes;
	size_t used = 0;

	while (h->peer && used < n) {
		size_t len;
		uint8_t *buf = hfe_peer_rx_buf(h->peer, &len);
		if (!buf)
			break;
		if (len > n - used)
			len = n - used;
		memcpy(buf, p + used, len);
		hfe_peer_rx_commit(h->peer, len, h->now);
		used += len;
	}
	return used;
}

size_t hh_msg_size(const struct hfe_msg *m, size_t extra_len)
{
	uint8_t pre[HFE_MSG_MAX_PREFIX];
	size_t n = hfe_msg_build(m, extra_len, pre, sizeof(pre));
	if (!n)
		die("cannot build a message");
	return n + extra_len;
}

size_t hh_push_msg(struct hh *h, const struct hfe_msg *m, const void *extra, size_t len)
{
	size_t total = hh_msg_size(m, len);
	uint8_t *wire = malloc(total);
	size_t n, used;

	if (!wire)
		die("out of memory");
	n = hfe_msg_build(m, len, wire, total);
	if (len)
		memcpy(wire + n, extra, len);
	used = hh_push(h, wire, total);
	free(wire);
	return used;
}

void hh_eof(struct hh *h)
{
	if (h->peer)
		hfe_peer_rx_eof(h->peer);
}

/* ---- bytes out ---- */

static void collect(struct hh *h)
{
	struct hfe_msg m;
	int rc;

	while ((rc = hfe_conn_next(h->client, &m)) == 1) {
		if (h->on_data)
			h->on_data(h, &m);
		m.data = NULL;
		if (h->n_got < HH_MAX_MSGS)
			h->got[h->n_got++] = m;
		else
			h->n_lost++;
	}
	if (rc < 0)
		h->client_failed = true;
}

size_t hh_drain(struct hh *h, size_t max)
{
	size_t moved = 0;

	while (h->peer && moved < max && hfe_peer_tx_pending(h->peer)) {
		struct iovec iov[16];
		int n = hfe_peer_tx_iov(h->peer, iov, 16);
		size_t k = 0;

		for (int i = 0; i < n && moved + k < max; i++) {
			size_t len = iov[i].iov_len;
			if (len > max - moved - k)
				len = max - moved - k;
			/* A failed client conn takes nothing more: count, don't parse. */
			if (!h->client_failed)
				hfe_conn_feed(h->client, iov[i].iov_base, len);
			collect(h);
			k += len;
		}
		hfe_peer_tx_consume(h->peer, k);
		moved += k;
	}
	h->tx_total += moved;
	return moved;
}

enum hfe_peer_action hh_service(struct hh *h)
{
	enum hfe_peer_action a;
	const char *why = NULL;

	if (!h->peer)
		return HFE_PEER_CLOSE;
	h->deadline = UINT64_MAX;
	a = hfe_peer_service(h->peer, h->now, &h->deadline, &why);
	if (a == HFE_PEER_SHUTDOWN_WR)
		h->shutdown_wr++;
	if (a == HFE_PEER_CLOSE) {
		h->reason = why;
		h->closed = true;
		hfe_peer_free(h->peer, why);
		h->peer = NULL;
	}
	return a;
}

enum hfe_peer_action hh_step(struct hh *h)
{
	for (int guard = 0; guard < 100; guard++) {
		enum hfe_peer_action a;

		hfe_host_dispatch(h->host);
		hh_drain(h, SIZE_MAX);
		a = hh_service(h);
		if (a == HFE_PEER_SHUTDOWN_WR) {
			hfe_peer_shutdown_done(h->peer);
			continue;
		}
		if (a == HFE_PEER_CLOSE)
			return a;
		hh_drain(h, SIZE_MAX);
		/* as daemon/server.c: poll again at once if the deadline has come */
		if (h->deadline > h->now)
			return a;
	}
	die("hfe_peer_service keeps asking to be called at once");
	return HFE_PEER_CLOSE;
}

unsigned hh_notifies(struct hh *h)
{
	pthread_mutex_lock(&h->lock);
	unsigned n = h->notifies;
	pthread_mutex_unlock(&h->lock);
	return n;
}

bool hh_wait_notify(struct hh *h, unsigned seen, unsigned ms)
{
	struct timespec until;
	bool ok = true;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&h->lock);
	while (h->notifies == seen && ok)
		ok = pthread_cond_timedwait(&h->cond, &h->lock, &until) != ETIMEDOUT;
	pthread_mutex_unlock(&h->lock);
	return ok;
}

bool hh_wait_msgs(struct hh *h, unsigned n)
{
	for (;;) {
		unsigned seen = hh_notifies(h);
		hh_step(h);
		if (h->n_got >= n || !h->peer)
			return h->n_got >= n;
		if (!hh_wait_notify(h, seen, HH_WAIT_S * 1000))
			return false;
	}
}

bool hh_wait_queued(struct hh *h, size_t bytes)
{
	for (;;) {
		unsigned seen = hh_notifies(h);
		hfe_host_dispatch(h->host);
		hh_service(h);
		if (!h->peer)
			return false;
		if (hfe_peer_tx_pending(h->peer) >= bytes)
			return true;
		if (!hh_wait_notify(h, seen, HH_WAIT_S * 1000))
			return false;
	}
}

/* ---- messages ---- */

struct hfe_msg hh_mk(uint8_t type, uint16_t sid)
{
	struct hfe_msg m;

	memset(&m, 0, sizeof(m));
	m.hdr.type = type;
	m.hdr.session_id = sid;
	return m;
}

struct hfe_msg hh_mk_hello(uint16_t vmin, uint16_t vmax)
{
	struct hfe_msg m = hh_mk(HFE_MSG_HELLO, 0);

	m.u.hello.version_min = vmin;
	m.u.hello.version_max = vmax;
	snprintf(m.u.hello.client_name, sizeof(m.u.hello.client_name), "host harness");
	return m;
}

struct hfe_msg hh_mk_frame(uint16_t sid, int64_t pts)
{
	struct hfe_msg m = hh_mk(HFE_MSG_FRAME_REQUEST, sid);

	m.hdr.flags = HFE_FLAG_PIXEL_DATA;
	m.u.frame_req = (struct hfe_frame_request){ .width = HH_FRAME_W,
						    .height = HH_FRAME_H,
						    .format = HFE_FMT_XRGB8888,
						    .stride = HH_FRAME_W * 4,
						    .pts = pts,
						    .duration = 16666 };
	return m;
}

size_t hh_push_frame(struct hh *h, uint16_t sid, int64_t pts)
{
	static uint8_t pix[HH_FRAME_BYTES];
	struct hfe_msg m = hh_mk_frame(sid, pts);

	for (size_t i = 0; i < sizeof(pix); i++)
		pix[i] = (uint8_t)(i * 7u + (size_t)pts * 13u);
	return hh_push_msg(h, &m, pix, sizeof(pix));
}

int hh_find(const struct hh *h, uint8_t type, unsigned from)
{
	for (unsigned i = from; i < h->n_got; i++)
		if (h->got[i].hdr.type == type)
			return (int)i;
	return -1;
}
