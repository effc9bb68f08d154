/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One poll() loop owns every socket. Each client has a sans-I/O hfe_conn and,
 * once it sends frames, a pull session whose worker thread encodes; workers
 * wake the loop through a pipe. Nothing here blocks: a slow or hostile client
 * only ever stops its own reading (bounded session and outbound queue) or
 * gets cut (protocol error, stall timeout).
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include "hfe/conn.h"
#include "hfe/log.h"
#include "hfe/scanout.h"
#include "hfe/session.h"
#include "hfe/testsrc.h"

#define READ_BUDGET (8u << 20) /* bytes read from one client per loop turn */
#define LINGER_MS 1000         /* after a final ERROR, how long we wait for EOF */

struct client {
	int fd;
	unsigned id;
	char peer[128];
	struct hfe_conn *conn;
	struct hfe_session *session;
	bool keyframe_pending; /* KEYFRAME_REQ seen: next frame is an IDR */
	bool rx_eof;           /* peer closed its sending side */
	bool closing;          /* final reply queued: flush, then close */
	bool shut_wr;          /* our side half-closed; discarding input */
	uint64_t last_rx_ms;
	uint64_t close_deadline_ms;
	uint64_t frames_out;
};

struct server {
	const struct hfe_server_config *cfg;
	int listen_fd[HFE_SERVER_MAX_LISTEN];
	unsigned n_listen;
	struct client **clients;
	unsigned n_clients;
	unsigned next_id;
	int wake[2]; /* workers -> loop */
	struct hfe_hub *hub; /* scanouts and their subscribers */
	struct hfe_stream *streams[HFE_MAX_SCANOUTS];
	struct hfe_testsrc *testsrcs[HFE_MAX_SCANOUTS];
	unsigned n_streams;
	bool stopping;
	uint64_t stop_deadline_ms;
};

static int signal_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
	int saved = errno;
	unsigned char b = (unsigned char)sig;
	if (write(signal_pipe[1], &b, 1) < 0) {
		/* pipe full: a stop is already pending */
	}
	errno = saved;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void hfe_server_config_default(struct hfe_server_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	hfe_limits_default(&cfg->limits);
	cfg->max_clients = 64;
	cfg->max_inflight = 4;
	cfg->max_queue = 16u << 20;
	cfg->stall_timeout_ms = 10000;
	cfg->shutdown_timeout_ms = 5000;
	cfg->max_fps = 60;
	hfe_encoder_params_default(&cfg->enc);
}

static int make_pipe(int fds[2])
{
	if (pipe(fds) < 0)
		return -1;
	for (int i = 0; i < 2; i++) {
		fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
		fcntl(fds[i], F_SETFD, FD_CLOEXEC);
	}
	return 0;
}

static void drain_fd(int fd)
{
	char buf[256];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

/* Called on a worker thread: just poke the loop. */
static void wake_loop(void *opaque)
{
	struct server *srv = opaque;
	char b = 1;
	if (write(srv->wake[1], &b, 1) < 0) {
		/* full pipe: the loop is already due to wake */
	}
}

static void describe_peer(int fd, const char *listener, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char ip[INET6_ADDRSTRLEN] = "";
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
			snprintf(buf, len, "tcp:%s:%u", ip, ntohs(sin->sin_port));
			return;
		}
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
			snprintf(buf, len, "tcp:[%s]:%u", ip, ntohs(sin6->sin6_port));
			return;
		}
	}
	snprintf(buf, len, "%s fd %d", listener, fd);
}

/* ---- client lifecycle ---- */

static void client_free(struct client *c)
{
	hfe_session_free(c->session); /* joins the worker before the conn goes */
	hfe_conn_free(c->conn);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

static void client_remove(struct server *srv, unsigned i, const char *why)
{
	struct client *c = srv->clients[i];
	hfe_hub_drop_conn(srv->hub, c->conn);
	hfe_info("client %u (%s) closed: %s; %llu frames replied, %llu bytes in, %llu out", c->id,
		 c->peer, why, (unsigned long long)c->frames_out,
		 (unsigned long long)hfe_conn_bytes_received(c->conn),
		 (unsigned long long)hfe_conn_bytes_sent(c->conn));
	client_free(c);
	srv->clients[i] = srv->clients[--srv->n_clients];
}

/* Queue a final reply, then flush and close. */
static void client_finish(struct client *c, int32_t code, const char *msg)
{
	if (c->closing)
		return;
	c->closing = true;
	c->close_deadline_ms = now_ms() + LINGER_MS;
	if (code != HFE_OK)
		hfe_conn_send_error(c->conn, 0, code, "%s", msg);
}

static bool client_wants_read(struct client *c, const struct server *srv)
{
	if (c->shut_wr)
		return true; /* discard input until the peer sees our error and closes */
	if (c->closing || c->rx_eof || srv->stopping || hfe_conn_failed(c->conn))
		return false;
	if (hfe_conn_tx_pending(c->conn) >= srv->cfg->max_queue)
		return false;
	return !c->session || hfe_session_can_submit(c->session);
}

/* Write as much as the socket takes. Returns -1 if the peer is gone. */
static int client_flush(struct client *c)
{
	struct iovec iov[64];
	while (hfe_conn_tx_pending(c->conn)) {
		int n = hfe_conn_tx_iov(c->conn, iov, 64);
		ssize_t w = hfe_io_writev(c->fd, iov, n);
		if (w == -EAGAIN)
			return 0;
		if (w < 0) {
			hfe_debug("client %u: write: %s", c->id, strerror((int)-w));
			return -1;
		}
		hfe_conn_tx_consume(c->conn, (size_t)w);
	}
	return 0;
}

static void packet_free(void *opaque)
{
	struct hfe_packet *pkt = opaque;
	hfe_packet_release(pkt);
	free(pkt);
}

/* Move finished session results into the outbound queue, in order. */
static void client_collect(struct client *c)
{
	struct hfe_session_result r;
	while (c->session && hfe_session_poll(c->session, &r) == 1) {
		struct hfe_msg msg = { .hdr = { .session_id = r.session_id } };
		switch (r.kind) {
		case HFE_RESULT_FRAME: {
			msg.hdr.type = HFE_MSG_FRAME_RESPONSE;
			msg.u.frame_resp = r.frame;
			struct hfe_packet *pkt = malloc(sizeof(*pkt));
			if (!pkt) {
				hfe_session_result_release(&r);
				hfe_conn_fail(c->conn, HFE_ERR_INTERNAL, "out of memory");
				return;
			}
			*pkt = r.packet;
			hfe_conn_send_owned(c->conn, &msg, pkt->data, pkt->size, packet_free, pkt);
			c->frames_out++;
			break;
		}
		case HFE_RESULT_CONFIG:
			msg.hdr.type = HFE_MSG_CONFIG_RESP;
			msg.u.config_resp = r.config;
			hfe_conn_send(c->conn, &msg, NULL, 0);
			break;
		case HFE_RESULT_ERROR:
			hfe_conn_send_error(c->conn, r.session_id, r.error.code, "%s",
					    r.error.message);
			break;
		}
	}
}

static int client_session(struct server *srv, struct client *c)
{
	if (c->session)
		return 0;
	struct hfe_session_params p = {
		.enc = srv->cfg->enc,
		.max_inflight = srv->cfg->max_inflight,
		.notify = wake_loop,
		.opaque = srv,
	};
	struct hfe_err err;
	c->session = hfe_session_new(&p, &err);
	if (!c->session) {
		hfe_conn_fail(c->conn, HFE_ERR_INTERNAL, "%s", err.msg);
		return -1;
	}
	return 0;
}

static void send_hello_resp(struct server *srv, struct client *c, const struct hfe_msg *in)
{
	const struct hfe_server_config *cfg = srv->cfg;
	static const uint32_t formats[] = { HFE_FMT_XRGB8888, HFE_FMT_ARGB8888, HFE_FMT_XBGR8888,
					    HFE_FMT_ABGR8888, HFE_FMT_NV12, HFE_FMT_I420 };
	struct hfe_msg out = { .hdr = { .type = HFE_MSG_HELLO_RESP,
					.session_id = in->hdr.session_id } };
	struct hfe_hello_resp *h = &out.u.hello_resp;
	h->version = (uint16_t)hfe_conn_version(c->conn);
	h->codecs = hfe_encoder_codec(cfg->enc.name);
	h->sources = HFE_SOURCE_PIXELS | (srv->n_streams ? HFE_SOURCE_SCANOUT : 0);
	h->max_width = cfg->limits.max_width;
	h->max_height = cfg->limits.max_height;
	h->max_payload = cfg->limits.max_payload;
	h->max_inflight = cfg->max_inflight;
	h->format_count = sizeof(formats) / sizeof(formats[0]);
	memcpy(h->formats, formats, sizeof(formats));
	snprintf(h->server_name, sizeof(h->server_name), "helix-frame-export %s", HFE_VERSION);
	hfe_conn_send(c->conn, &out, NULL, 0);
	hfe_info("client %u (%s): HELLO from '%s', protocol v%u", c->id, c->peer,
		 in->u.hello.client_name, h->version);
}

static void send_stats(struct client *c, const struct hfe_msg *in)
{
	struct hfe_msg out = { .hdr = { .type = HFE_MSG_STATS_RESP,
					.session_id = in->hdr.session_id } };
	if (c->session)
		hfe_session_stats(c->session, &out.u.stats);
	out.u.stats.bytes_received = hfe_conn_bytes_received(c->conn);
	out.u.stats.bytes_sent = hfe_conn_bytes_sent(c->conn);
	hfe_conn_send(c->conn, &out, NULL, 0);
}

/* One validated message from a client. */
static void client_handle(struct server *srv, struct client *c, const struct hfe_msg *m)
{
	uint16_t sid = m->hdr.session_id;
	struct hfe_msg out = { .hdr = { .session_id = sid } };

	switch (m->hdr.type) {
	case HFE_MSG_FRAME_REQUEST:
		if (client_session(srv, c) < 0)
			return;
		if (!(m->hdr.flags & HFE_FLAG_PIXEL_DATA)) {
			/* Answer in order with the frames before it. */
			hfe_session_submit_error(c->session, sid, HFE_ERR_RESOURCE_NOT_FOUND,
						 "virtio-gpu resource frames need the QEMU module; "
						 "this host takes pixels (PIXEL_DATA) only");
			return;
		}
		hfe_session_submit_frame(c->session, sid, &m->u.frame_req,
					 hfe_conn_take_payload(c->conn), m->data,
					 c->keyframe_pending);
		c->keyframe_pending = false;
		return;
	case HFE_MSG_KEYFRAME_REQ:
		/* Applies to the pull session's next frame and to any scanout
		 * this connection watches. */
		c->keyframe_pending = true;
		hfe_hub_keyframe(srv->hub, c->conn);
		return;
	case HFE_MSG_CONFIG_REQ:
		if (client_session(srv, c) < 0)
			return;
		hfe_session_submit_config(c->session, sid, &m->u.config_req,
					  hfe_conn_version(c->conn) >= HFE_PROTO_V2);
		return;
	case HFE_MSG_PING:
		out.hdr.type = HFE_MSG_PONG;
		hfe_conn_send(c->conn, &out, NULL, 0);
		return;
	case HFE_MSG_ENABLE_SCANOUT:
	case HFE_MSG_DISABLE_SCANOUT:
	case HFE_MSG_SUBSCRIBE:
		/* Every request gets a reply, success = 0 for unknown scanouts. */
		hfe_hub_handle(srv->hub, c->conn, m);
		return;
	case HFE_MSG_HELLO:
		send_hello_resp(srv, c, m);
		return;
	case HFE_MSG_STATS_REQ:
		send_stats(c, m);
		return;
	default:
		/* wire.c only lets client->host types through */
		hfe_conn_fail(c->conn, HFE_ERR_INTERNAL, "unhandled message type 0x%02x",
			      m->hdr.type);
		return;
	}
}

/* Read and dispatch; returns -1 when the connection is to be dropped now. */
static int client_read(struct server *srv, struct client *c)
{
	size_t budget = READ_BUDGET;

	if (c->shut_wr) {
		char junk[4096];
		ssize_t n = hfe_io_read(c->fd, junk, sizeof(junk));
		return (n == 0 || (n < 0 && n != -EAGAIN)) ? -1 : 0;
	}
	while (budget && client_wants_read(c, srv)) {
		size_t want;
		uint8_t *buf = hfe_conn_rx_buf(c->conn, &want);
		if (!buf)
			break;
		if (want > budget)
			want = budget;
		ssize_t n = hfe_io_read(c->fd, buf, want);
		if (n == -EAGAIN)
			break;
		if (n < 0) {
			hfe_debug("client %u: read: %s", c->id, strerror((int)-n));
			return -1;
		}
		if (n == 0) {
			if (hfe_conn_rx_partial(c->conn))
				hfe_warn("client %u (%s): closed in the middle of a message", c->id,
					 c->peer);
			c->rx_eof = true;
			break;
		}
		c->last_rx_ms = now_ms();
		budget -= (size_t)n;
		hfe_conn_rx_commit(c->conn, (size_t)n);

		struct hfe_msg msg;
		int rc;
		while ((rc = hfe_conn_next(c->conn, &msg)) == 1)
			client_handle(srv, c, &msg);
		if (rc < 0 || hfe_conn_failed(c->conn))
			break;
	}
	if (hfe_conn_failed(c->conn) && !c->closing) {
		const struct hfe_err *e = hfe_conn_error(c->conn);
		hfe_warn("client %u (%s): %s: %s; closing", c->id, c->peer, hfe_error_name(e->code),
			 e->msg);
		/* conn queued the ERROR already */
		c->closing = true;
		c->close_deadline_ms = now_ms() + LINGER_MS;
	}
	return 0;
}

/* Decide whether a client is done; returns a reason to close it, or NULL. */
static const char *client_check_done(struct server *srv, struct client *c, uint64_t now)
{
	unsigned inflight = c->session ? hfe_session_inflight(c->session) : 0;

	if (!c->closing && !hfe_conn_failed(c->conn)) {
		/* The stall clock measures the peer's silence while we want its
		 * bytes; it does not run while we hold the client back. */
		if (!client_wants_read(c, srv))
			c->last_rx_ms = now;
		if (hfe_conn_rx_partial(c->conn) && !c->rx_eof &&
		    c->last_rx_ms + (uint64_t)srv->cfg->stall_timeout_ms <= now) {
			hfe_warn("client %u (%s): stalled in the middle of a message for %d ms",
				 c->id, c->peer, srv->cfg->stall_timeout_ms);
			client_finish(c, HFE_ERR_TIMEOUT,
				      "stalled in the middle of a message; closing");
		} else if (c->rx_eof && inflight == 0 && !hfe_conn_tx_pending(c->conn)) {
			return "peer closed the connection";
		} else if (srv->stopping && inflight == 0) {
			client_finish(c, HFE_ERR_SHUTDOWN, "host is shutting down");
		}
	}
	if (c->closing || hfe_conn_failed(c->conn)) {
		if (!hfe_conn_tx_pending(c->conn)) {
			if (c->rx_eof)
				return hfe_conn_failed(c->conn) ? "protocol error" : "finished";
			if (!c->shut_wr) {
				/* Half-close so the ERROR arrives before any reset. */
				shutdown(c->fd, SHUT_WR);
				c->shut_wr = true;
			}
		}
		if (now >= c->close_deadline_ms)
			return hfe_conn_failed(c->conn) ? "protocol error" : "closed by host";
	}
	return NULL;
}

static void accept_clients(struct server *srv, int lfd, const char *lname)
{
	for (;;) {
		int fd = hfe_accept(lfd);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				hfe_warn("accept on %s: %s", lname, strerror(errno));
			return;
		}
		struct client *c = calloc(1, sizeof(*c));
		struct hfe_conn *conn = c ? hfe_conn_new(HFE_ROLE_HOST, &srv->cfg->limits) : NULL;
		if (!conn) {
			free(c);
			close(fd);
			hfe_error("out of memory accepting a client");
			return;
		}
		c->fd = fd;
		c->conn = conn;
		c->id = ++srv->next_id;
		c->last_rx_ms = now_ms();
		describe_peer(fd, lname, c->peer, sizeof(c->peer));

		if (srv->n_clients >= srv->cfg->max_clients) {
			hfe_warn("client %u (%s) refused: %u clients already connected", c->id,
				 c->peer, srv->n_clients);
			hfe_conn_send_error(conn, 0, HFE_ERR_BUSY,
					    "too many clients (%u); try again later",
					    srv->cfg->max_clients);
			client_flush(c);
			client_free(c);
			continue;
		}
		srv->clients[srv->n_clients++] = c;
		hfe_info("client %u connected from %s", c->id, c->peer);
	}
}

static int setup_listeners(struct server *srv)
{
	char err[256], note[256], name[400];
	for (unsigned i = 0; i < srv->cfg->n_listen; i++) {
		const struct hfe_addr *a = &srv->cfg->listen[i];
		note[0] = '\0';
		int fd = hfe_listen(a, err, sizeof(err), note, sizeof(note));
		if (fd < 0) {
			hfe_error("cannot listen on %s: %s", hfe_addr_str(a, name, sizeof(name)), err);
			return -1;
		}
		if (note[0])
			hfe_warn("%s", note);
		srv->listen_fd[srv->n_listen++] = fd;
		hfe_info("listening on %s", hfe_addr_str(a, name, sizeof(name)));
	}
	return 0;
}

static int setup_test_scanouts(struct server *srv)
{
	const struct hfe_server_config *cfg = srv->cfg;
	struct hfe_err err;
	for (unsigned i = 0; i < cfg->n_test_scanouts; i++) {
		const struct hfe_test_scanout *t = &cfg->test_scanouts[i];
		struct hfe_stream_params sp = { .enc = cfg->enc, .max_fps = cfg->max_fps,
						.notify = wake_loop, .opaque = srv };
		struct hfe_stream *st = hfe_stream_new(&sp, &err);
		if (!st) {
			hfe_error("test scanout %u: %s", t->id, err.msg);
			return -1;
		}
		srv->streams[srv->n_streams] = st;
		char name[HFE_CONNECTOR_LEN];
		snprintf(name, sizeof(name), "TEST-%u", t->id);
		if (hfe_hub_add_scanout(srv->hub, t->id, st, name) < 0) {
			hfe_error("test scanout %u: duplicate scanout id", t->id);
			hfe_stream_free(st);
			return -1;
		}
		srv->testsrcs[srv->n_streams] = hfe_testsrc_start(st, t->width, t->height, t->fps,
								  &err);
		srv->n_streams++;
		if (!srv->testsrcs[srv->n_streams - 1]) {
			hfe_error("test scanout %u: %s", t->id, err.msg);
			return -1;
		}
		hfe_info("scanout %u: test source %ux%u at %u fps", t->id, t->width, t->height,
			 t->fps);
	}
	return 0;
}

static void close_listeners(struct server *srv)
{
	for (unsigned i = 0; i < srv->n_listen; i++) {
		close(srv->listen_fd[i]);
		hfe_addr_cleanup(&srv->cfg->listen[i]);
	}
	srv->n_listen = 0;
}

static int poll_timeout(struct server *srv, uint64_t now)
{
	uint64_t next = UINT64_MAX;
	for (unsigned i = 0; i < srv->n_clients; i++) {
		struct client *c = srv->clients[i];
		if (c->closing || hfe_conn_failed(c->conn))
			next = c->close_deadline_ms < next ? c->close_deadline_ms : next;
		else if (hfe_conn_rx_partial(c->conn) && !c->rx_eof) {
			uint64_t t = c->last_rx_ms + (uint64_t)srv->cfg->stall_timeout_ms;
			next = t < next ? t : next;
		}
	}
	if (srv->stopping && srv->stop_deadline_ms < next)
		next = srv->stop_deadline_ms;
	if (next == UINT64_MAX)
		return -1;
	return next <= now ? 0 : (int)(next - now > 60000 ? 60000 : next - now);
}

int hfe_server_run(const struct hfe_server_config *cfg)
{
	struct server srv = { .cfg = cfg, .wake = { -1, -1 } };
	int rc = 1;

	srv.clients = calloc(cfg->max_clients + 1, sizeof(*srv.clients));
	struct pollfd *pfd = calloc(2 + HFE_SERVER_MAX_LISTEN + cfg->max_clients, sizeof(*pfd));
	if (!srv.clients || !pfd || make_pipe(srv.wake) < 0 || make_pipe(signal_pipe) < 0) {
		hfe_error("cannot set up the event loop: %s", strerror(errno));
		goto out;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	srv.hub = hfe_hub_new(cfg->max_queue);
	if (!srv.hub || setup_test_scanouts(&srv) < 0 || setup_listeners(&srv) < 0)
		goto out;

	char lname[HFE_SERVER_MAX_LISTEN][128];
	for (unsigned i = 0; i < cfg->n_listen; i++)
		hfe_addr_str(&cfg->listen[i], lname[i], sizeof(lname[i]));

	for (;;) {
		uint64_t now = now_ms();
		if (srv.stopping && (srv.n_clients == 0 || now >= srv.stop_deadline_ms))
			break;

		nfds_t n = 0;
		pfd[n++] = (struct pollfd){ .fd = signal_pipe[0], .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = srv.wake[0], .events = POLLIN };
		for (unsigned i = 0; i < srv.n_listen; i++)
			pfd[n++] = (struct pollfd){ .fd = srv.listen_fd[i], .events = POLLIN };
		nfds_t first_client = n;
		for (unsigned i = 0; i < srv.n_clients; i++) {
			struct client *c = srv.clients[i];
			short ev = 0;
			if (client_wants_read(c, &srv))
				ev |= POLLIN;
			if (hfe_conn_tx_pending(c->conn))
				ev |= POLLOUT;
			pfd[n++] = (struct pollfd){ .fd = c->fd, .events = ev };
		}

		int pr = poll(pfd, n, poll_timeout(&srv, now));
		if (pr < 0 && errno != EINTR) {
			hfe_error("poll: %s", strerror(errno));
			goto out;
		}
		now = now_ms();

		if (pr > 0 && (pfd[0].revents & POLLIN)) {
			drain_fd(signal_pipe[0]);
			if (!srv.stopping) {
				hfe_info("shutting down: finishing frames in flight (up to %d ms)",
					 cfg->shutdown_timeout_ms);
				srv.stopping = true;
				srv.stop_deadline_ms = now + (uint64_t)cfg->shutdown_timeout_ms;
				close_listeners(&srv);
			}
		}
		if (pr > 0 && (pfd[1].revents & POLLIN)) {
			drain_fd(srv.wake[0]);
			hfe_hub_dispatch(srv.hub); /* scanout AUs into subscriber queues */
		}
		for (unsigned i = 0; i < srv.n_listen && pr > 0; i++)
			if (pfd[2 + i].revents & POLLIN)
				accept_clients(&srv, srv.listen_fd[i], lname[i]);

		/* Clients: pollfd order matches clients[] as it was before accepting. */
		unsigned polled = (unsigned)(n - first_client);
		for (unsigned i = 0; i < srv.n_clients;) {
			struct client *c = srv.clients[i];
			short rev = i < polled && pfd[first_client + i].fd == c->fd
					    ? pfd[first_client + i].revents
					    : 0;
			const char *why = NULL;

			if ((rev & (POLLIN | POLLHUP | POLLERR)) && client_read(&srv, c) < 0)
				why = "connection lost";
			/* Both directions gone: no reply can be delivered any more. */
			if (!why && (rev & (POLLHUP | POLLERR)))
				why = "peer hung up";
			if (!why) {
				client_collect(c);
				if (client_flush(c) < 0)
					why = "connection lost";
			}
			if (!why)
				why = client_check_done(&srv, c, now);
			if (why) {
				/* The remove swaps the last client in; keep pollfds paired. */
				if (srv.n_clients - 1 < polled)
					pfd[first_client + i] = pfd[first_client + srv.n_clients - 1];
				else
					pfd[first_client + i].fd = -1; /* swapped in unpolled */
				client_remove(&srv, i, why);
				continue;
			}
			i++;
		}
	}
	rc = 0;
out:
	while (srv.n_clients)
		client_remove(&srv, srv.n_clients - 1, srv.stopping ? "host shut down" : "host error");
	close_listeners(&srv);
	for (unsigned i = 0; i < srv.n_streams; i++) {
		hfe_testsrc_stop(srv.testsrcs[i]);
		hfe_stream_free(srv.streams[i]);
	}
	hfe_hub_free(srv.hub);
	for (int i = 0; i < 2; i++) {
		if (srv.wake[i] >= 0)
			close(srv.wake[i]);
		if (signal_pipe[i] >= 0)
			close(signal_pipe[i]);
		signal_pipe[i] = -1;
	}
	free(pfd);
	free(srv.clients);
	if (rc == 0)
		hfe_info("stopped");
	return rc;
}
