/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The deployed bridge's subscriber, in raw bytes: see bridge_watch.h. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hfe/wire.h"

#include "bridge_watch.h"
#include "e2e_harness.h"
#include "test_util.h"

#define IO_MS 5000

static int connect_addr(const char *addr)
{
	const char *port;

	if (!strncmp(addr, "unix:", 5))
		return connect_unix(addr + 5);
	if (!strncmp(addr, "tcp:127.0.0.1:", 14) && (port = addr + 14, *port))
		return connect_tcp(atoi(port));
	fprintf(stderr, "bridge: address %s: want unix:PATH or tcp:127.0.0.1:PORT\n", addr);
	errno = EINVAL;
	return -1;
}

static int send_msg(struct tconn *c, uint8_t type, uint16_t sid, const uint8_t *body,
		    uint32_t len)
{
	uint8_t b[HFE_HEADER_SIZE + HFE_CONFIG_REQ_SIZE];

	REQUIRE(len <= HFE_CONFIG_REQ_SIZE);
	put_hdr(b, HFE_MAGIC, type, 0, sid, len);
	memcpy(b + HFE_HEADER_SIZE, body, len);
	return io_send(c, b, HFE_HEADER_SIZE + len, IO_MS);
}

/* Keep one FRAME_RESPONSE of this scanout; anything else counts in others. */
static void take(struct bridge_watch *w, const struct rmsg *m)
{
	struct frame_resp fr;
	struct bridge_au a = { .t_ns = e2e_now_ns() };

	if (m->type != HFE_MSG_FRAME_RESPONSE || m->sid != w->scanout ||
	    m->size < HFE_FRAME_RESPONSE_SIZE + 4) {
		w->others++;
		return;
	}
	get_frame_resp(m, &fr);
	if (fr.nal_count != 1 || fr.au_len != m->size - HFE_FRAME_RESPONSE_SIZE - 4) {
		w->others++;
		return;
	}
	a.len = fr.au_len;
	a.key = fr.is_keyframe;
	a.pts = fr.pts;
	if (w->keep_data) {
		a.data = malloc(a.len ? a.len : 1);
		REQUIRE(a.data);
		memcpy(a.data, fr.au, a.len);
	}
	pthread_mutex_lock(&w->lock);
	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 256;
		w->aus = realloc(w->aus, w->cap * sizeof(*w->aus));
		REQUIRE(w->aus);
	}
	w->aus[w->n++] = a;
	pthread_mutex_unlock(&w->lock);
}

static void *watch_main(void *arg)
{
	struct bridge_watch *w = arg;

	while (!atomic_load(&w->stop)) {
		struct pollfd pfd = { .fd = w->c.fd, .events = POLLIN };
		struct rmsg m;
		int r = poll(&pfd, 1, 200);

		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			continue; /* re-check stop */
		/* A message has begun: the whole of it comes within IO_MS. */
		r = r > 0 ? recv_msg(&w->c, &m, IO_MS) : -1;
		if (r != 1) {
			w->failed = r < 0;
			break;
		}
		take(w, &m);
		rmsg_free(&m);
	}
	return NULL;
}

bool bridge_watch_start(struct bridge_watch *w, const char *addr, uint32_t scanout,
			uint32_t bitrate, bool keep_data)
{
	uint8_t body[HFE_CONFIG_REQ_SIZE];
	struct rmsg m;
	bool ok;

	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->lock, NULL);
	w->scanout = scanout;
	w->keep_data = keep_data;
	w->c.fd = -1;
	for (int t = 0; t < 150 && (w->c.fd = connect_addr(addr)) < 0 && errno != EINVAL; t++)
		usleep(100000);
	if (w->c.fd < 0) {
		fprintf(stderr, "bridge %u: cannot connect to %s: %s\n", scanout, addr,
			strerror(errno));
		return false;
	}
	put32(body, scanout);
	if (send_msg(&w->c, HFE_MSG_SUBSCRIBE, (uint16_t)scanout, body, 4) < 0 ||
	    recv_msg(&w->c, &m, IO_MS) != 1) {
		fprintf(stderr, "bridge %u: no SUBSCRIBE_RESP within %d ms\n", scanout, IO_MS);
		return false;
	}
	ok = m.type == HFE_MSG_SUBSCRIBE_RESP && m.size == HFE_SUBSCRIBE_RESP_SIZE &&
	     get32(m.p) == scanout && get32(m.p + 4) == 1;
	if (!ok)
		fprintf(stderr, "bridge %u: got type 0x%02x size %u, not SUBSCRIBE_RESP success\n",
			scanout, m.type, m.size);
	rmsg_free(&m);
	if (!ok)
		return false;
	struct config_fields cf = { .bitrate = bitrate, .fps_num = 60, .fps_den = 1,
				    .profile = 66, .level = 40, .realtime = 1 };
	put_config_req(body, &cf);
	if (send_msg(&w->c, HFE_MSG_CONFIG_REQ, (uint16_t)scanout, body, sizeof(body)) < 0)
		return false;
	w->running = pthread_create(&w->thread, NULL, watch_main, w) == 0;
	return w->running;
}

void bridge_watch_stop(struct bridge_watch *w)
{
	atomic_store(&w->stop, true);
	if (w->running)
		pthread_join(w->thread, NULL);
	w->running = false;
	conn_close(&w->c);
}

void bridge_watch_free(struct bridge_watch *w)
{
	bridge_watch_stop(w);
	for (size_t i = 0; i < w->n; i++)
		free(w->aus[i].data);
	free(w->aus);
	w->aus = NULL;
	w->n = w->cap = 0;
	pthread_mutex_destroy(&w->lock);
}
