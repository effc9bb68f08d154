/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's poll() loop. It owns every descriptor — listeners, clients, a
 * wake pipe for encoder threads and a self-pipe for signals — and only moves
 * bytes: what a client's bytes mean is libhfe's host module (hfe/host.h),
 * shared with the QEMU module. Nothing here blocks.
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
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "hfe/log.h"
#include "hfe/testsrc.h"
#ifdef HFE_HAVE_QEMU_DBUS
#include "qemu_dbus.h"
#endif

#define READ_BUDGET (8u << 20) /* bytes read from one client per loop turn */

struct client {
	int fd;
	struct hfe_peer *peer;
};

struct server {
	const struct hfe_server_config *cfg;
	/* hosts[0]: the default host; hosts[1 + k]: cfg->vms[k], isolated */
	struct hfe_host *hosts[1 + HFE_SERVER_MAX_VMS];
	unsigned n_hosts;
	int listen_fd[HFE_SERVER_MAX_LISTEN];
	unsigned n_listen;
	struct client *clients;
	unsigned n_clients;
	int wake[2]; /* workers -> loop */
	struct hfe_stream *streams[HFE_MAX_SCANOUTS];
	struct hfe_testsrc *testsrcs[HFE_MAX_SCANOUTS];
	unsigned n_streams;
#ifdef HFE_HAVE_QEMU_DBUS
	struct hfe_qemu_dbus *vms[HFE_SERVER_MAX_VMS];
#endif
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

void hfe_server_config_default(struct hfe_server_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	hfe_host_config_default(&cfg->host);
	cfg->max_clients = 64;
	cfg->shutdown_timeout_ms = 5000;
	cfg->max_fps = 60;
	cfg->unix_perm = (struct hfe_unix_perm){ HFE_UNIX_MODE_DEFAULT, (uid_t)-1, (gid_t)-1 };
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

/* Called on encoder threads: just poke the loop. */
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

/* ---- clients ---- */

static void client_remove(struct server *srv, unsigned i, const char *why)
{
	struct client *c = &srv->clients[i];
	hfe_peer_free(c->peer, why);
	close(c->fd);
	srv->clients[i] = srv->clients[--srv->n_clients];
}

/* Write as much as the socket takes. Returns -1 if the peer is gone. */
static int client_flush(struct client *c) { return hfe_peer_write_fd(c->peer, c->fd, SIZE_MAX); }

/* Read what the peer lets us read; returns -1 when the connection is gone. */
static int client_read(struct client *c) { return hfe_peer_read_fd(c->peer, c->fd, READ_BUDGET); }

/* Collect, flush, apply timeouts; returns a reason to close, or NULL. */
static const char *client_service(struct client *c, uint64_t now, uint64_t *deadline)
{
	const char *why = NULL;
	for (;;) {
		if (client_flush(c) < 0)
			return "connection lost";
		switch (hfe_peer_service(c->peer, now, deadline, &why)) {
		case HFE_PEER_OK:
			/* service may have queued replies: write them now */
			return client_flush(c) < 0 ? "connection lost" : NULL;
		case HFE_PEER_SHUTDOWN_WR:
			shutdown(c->fd, SHUT_WR);
			hfe_peer_shutdown_done(c->peer);
			continue;
		case HFE_PEER_CLOSE:
			return why;
		}
	}
}

static void accept_clients(struct server *srv, int lfd, struct hfe_host *host, const char *lname,
			   bool control)
{
	for (;;) {
		int fd = hfe_accept(lfd);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				hfe_warn("accept on %s: %s", lname, strerror(errno));
			return;
		}
		char name[128];
		describe_peer(fd, lname, name, sizeof(name));
		struct hfe_peer *peer = hfe_peer_new(host, name, hfe_now_ms());
		if (!peer) {
			close(fd);
			hfe_error("out of memory accepting a client");
			return;
		}
		hfe_peer_set_control(peer, control);
		struct client c = { .fd = fd, .peer = peer };
		if (srv->n_clients >= srv->cfg->max_clients) {
			/* One best-effort write of the ERROR; no state kept. */
			hfe_peer_refuse_busy(peer, srv->cfg->max_clients);
			client_flush(&c);
			hfe_peer_free(peer, "refused (busy)");
			close(fd);
			continue;
		}
		srv->clients[srv->n_clients++] = c;
		hfe_info("%s connected", hfe_peer_name(peer));
	}
}

/* ---- set-up ---- */

static int setup_listeners(struct server *srv)
{
	char err[256], note[256], name[400];
	for (unsigned i = 0; i < srv->cfg->n_listen; i++) {
		const struct hfe_addr *a = &srv->cfg->listen[i];
		note[0] = '\0';
		int fd = hfe_listen_perm(a, &srv->cfg->unix_perm, err, sizeof(err), note,
					 sizeof(note));
		if (fd < 0) {
			hfe_error("cannot listen on %s: %s", hfe_addr_str(a, name, sizeof(name)), err);
			return -1;
		}
		if (note[0])
			hfe_warn("%s", note);
		srv->listen_fd[srv->n_listen++] = fd;
		const char *ctl = srv->cfg->listen_control[i] ? " (control: input accepted)" : "";
		if (srv->cfg->listen_vm[i])
			hfe_info("listening on %s for %s%s", hfe_addr_str(a, name, sizeof(name)),
				 srv->cfg->vms[srv->cfg->listen_vm[i] - 1].name, ctl);
		else
			hfe_info("listening on %s%s", hfe_addr_str(a, name, sizeof(name)), ctl);
	}
	return 0;
}

static int setup_test_scanouts(struct server *srv)
{
	const struct hfe_server_config *cfg = srv->cfg;
	struct hfe_err err;
	for (unsigned i = 0; i < cfg->n_test_scanouts; i++) {
		const struct hfe_test_scanout *t = &cfg->test_scanouts[i];
		struct hfe_stream_params sp = { .enc = cfg->host.enc, .max_fps = cfg->max_fps,
						.notify = wake_loop, .opaque = srv,
						.no_patch_frames = cfg->no_patch_frames };
		struct hfe_stream *st = hfe_stream_new(&sp, &err);
		if (!st) {
			hfe_error("test scanout %u: %s", t->id, err.msg);
			return -1;
		}
		char name[HFE_CONNECTOR_LEN];
		snprintf(name, sizeof(name), "TEST-%u", t->id);
		if (hfe_hub_add_scanout(hfe_host_hub(srv->hosts[0]), t->id, st, name) < 0) {
			hfe_error("test scanout %u: duplicate scanout id", t->id);
			hfe_stream_free(st);
			return -1;
		}
		srv->streams[srv->n_streams] = st;
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

/* Input to a test scanout: the pointer shows and moves the test source's
 * hardware cursor, as a VM's display would (so the cursor channel can be
 * tried without a VM); keys and buttons go nowhere. */
static void test_move(void *opaque, uint32_t scanout, uint32_t x, uint32_t y)
{
	struct server *srv = opaque;
	for (unsigned i = 0; i < srv->cfg->n_test_scanouts; i++)
		if (srv->cfg->test_scanouts[i].id == scanout && srv->testsrcs[i])
			hfe_testsrc_pointer(srv->testsrcs[i], x, y);
}

static void test_key(void *opaque, uint32_t scanout, uint32_t code, bool down)
{
	(void)opaque, (void)scanout, (void)code, (void)down;
}

static void test_button(void *opaque, uint32_t scanout, enum hfe_button_id b, bool down)
{
	(void)opaque, (void)scanout, (void)b, (void)down;
}

/* One host per VM, fed by its QEMU's -display dbus. */
static int setup_vms(struct server *srv)
{
	const struct hfe_server_config *cfg = srv->cfg;

	for (unsigned k = 0; k < cfg->n_vms; k++) {
		const struct hfe_server_vm *vm = &cfg->vms[k];
		struct hfe_host_config hc = cfg->host;

		hc.notify = wake_loop;
		hc.notify_opaque = srv;
		hc.sources |= HFE_SOURCE_SCANOUT;
#ifdef HFE_HAVE_QEMU_DBUS
		struct hfe_qemu_dbus_config dc = {
			.name = vm->name, .qmp_path = vm->qmp_path, .consoles = vm->consoles,
			.n_consoles = vm->n_consoles, .max_width = cfg->host.limits.max_width,
			.max_height = cfg->host.limits.max_height,
			.stream = { .enc = cfg->host.enc, .max_fps = cfg->max_fps,
				    .notify = wake_loop, .opaque = srv,
				    .no_patch_frames = cfg->no_patch_frames },
		};
		struct hfe_err err;

		hfe_info("%s: QEMU -display dbus at %s, %u console%s", vm->name, vm->qmp_path,
			 vm->n_consoles, vm->n_consoles == 1 ? "" : "s");
		srv->vms[k] = hfe_qemu_dbus_start(&dc, &err);
		if (!srv->vms[k]) {
			hfe_error("%s: %s", vm->name, err.msg);
			return -1;
		}
		hc.input = hfe_qemu_dbus_input(srv->vms[k]); /* control listeners' input */
#endif
		srv->hosts[1 + k] = hfe_host_new(&hc);
		if (!srv->hosts[1 + k]) {
			hfe_error("out of memory");
			return -1;
		}
		srv->n_hosts = 2 + k;
#ifdef HFE_HAVE_QEMU_DBUS
		for (unsigned i = 0; i < vm->n_consoles; i++) {
			char name[HFE_CONNECTOR_LEN];

			/* The guest's DRM name of virtio-gpu output (head) N. */
			snprintf(name, sizeof(name), "Virtual-%u", vm->consoles[i] + 1);
			if (hfe_hub_add_scanout(hfe_host_hub(srv->hosts[1 + k]), vm->consoles[i],
						hfe_qemu_dbus_stream(srv->vms[k], i), name) < 0) {
				hfe_error("%s: duplicate console %u", vm->name, vm->consoles[i]);
				return -1;
			}
		}
		struct hfe_hub_outputs outs;

		hfe_qemu_dbus_outputs(srv->vms[k], cfg->host.limits.max_width,
				      cfg->host.limits.max_height, &outs);
		hfe_hub_set_outputs(hfe_host_hub(srv->hosts[1 + k]), &outs);
#else
		hfe_error("%s: this build has no -display dbus support (GIO missing)", vm->name);
		return -1;
#endif
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

static void begin_shutdown(struct server *srv, uint64_t now)
{
	if (srv->stopping)
		return;
	hfe_info("shutting down: finishing frames in flight (up to %d ms)",
		 srv->cfg->shutdown_timeout_ms);
	srv->stopping = true;
	srv->stop_deadline_ms = now + (uint64_t)srv->cfg->shutdown_timeout_ms;
	for (unsigned i = 0; i < srv->n_hosts; i++)
		hfe_host_stop(srv->hosts[i]);
	close_listeners(srv);
}

/* ---- the loop ---- */

int hfe_server_run(const struct hfe_server_config *cfg)
{
	struct server srv = { .cfg = cfg, .wake = { -1, -1 } };
	struct pollfd *pfd = NULL;
	int rc = 1;

	srv.clients = calloc(cfg->max_clients, sizeof(*srv.clients));
	pfd = calloc(2 + HFE_SERVER_MAX_LISTEN + cfg->max_clients, sizeof(*pfd));
	if (!srv.clients || !pfd || make_pipe(srv.wake) < 0 || make_pipe(signal_pipe) < 0) {
		hfe_error("cannot set up the event loop: %s", strerror(errno));
		goto out;
	}
	struct hfe_host_config hc = cfg->host;
	hc.notify = wake_loop;
	hc.notify_opaque = &srv;
	if (cfg->n_test_scanouts) {
		hc.sources |= HFE_SOURCE_SCANOUT;
		/* control listeners' pointer moves the test source's cursor */
		hc.input = (struct hfe_input_sink){ .key = test_key, .move = test_move,
						    .button = test_button, .opaque = &srv };
	}
	srv.hosts[0] = hfe_host_new(&hc);
	srv.n_hosts = 1;
	if (!srv.hosts[0]) {
		hfe_error("out of memory");
		goto out;
	}

	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (setup_test_scanouts(&srv) < 0 || setup_vms(&srv) < 0 || setup_listeners(&srv) < 0)
		goto out;
	/* Everything that needs privileges is open now: drop them (confine.c). */
	char cerr[256];
	if (hfe_confine(&cfg->confine, cerr, sizeof(cerr)) < 0) {
		hfe_error("cannot confine the daemon: %s", cerr);
		goto out;
	}

	char lname[HFE_SERVER_MAX_LISTEN][128];
	for (unsigned i = 0; i < cfg->n_listen; i++)
		hfe_addr_str(&cfg->listen[i], lname[i], sizeof(lname[i]));

	uint64_t deadline = UINT64_MAX;
	for (;;) {
		uint64_t now = hfe_now_ms();
		if (srv.stopping && (srv.n_clients == 0 || now >= srv.stop_deadline_ms))
			break;

		nfds_t n = 0;
		pfd[n++] = (struct pollfd){ .fd = signal_pipe[0], .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = srv.wake[0], .events = POLLIN };
		for (unsigned i = 0; i < srv.n_listen; i++)
			pfd[n++] = (struct pollfd){ .fd = srv.listen_fd[i], .events = POLLIN };
		nfds_t first_client = n;
		for (unsigned i = 0; i < srv.n_clients; i++) {
			struct client *c = &srv.clients[i];
			short ev = 0;
			if (hfe_peer_wants_read(c->peer) || hfe_peer_discarding(c->peer))
				ev |= POLLIN;
			if (hfe_peer_tx_pending(c->peer))
				ev |= POLLOUT;
			pfd[n++] = (struct pollfd){ .fd = c->fd, .events = ev };
		}

		if (srv.stopping && srv.stop_deadline_ms < deadline)
			deadline = srv.stop_deadline_ms;
		int timeout = deadline == UINT64_MAX ? -1
			      : deadline <= now	     ? 0
						     : (int)(deadline - now > 60000 ? 60000
										    : deadline - now);
		int pr = poll(pfd, n, timeout);
		if (pr < 0 && errno != EINTR) {
			hfe_error("poll: %s", strerror(errno));
			goto out;
		}
		now = hfe_now_ms();

		if (pr > 0 && (pfd[0].revents & POLLIN)) {
			drain_fd(signal_pipe[0]);
			begin_shutdown(&srv, now);
		}
		if (pr > 0 && (pfd[1].revents & POLLIN)) {
			drain_fd(srv.wake[0]);
			/* scanout AUs into subscriber queues */
			for (unsigned i = 0; i < srv.n_hosts; i++)
				hfe_host_dispatch(srv.hosts[i]);
		}
		for (unsigned i = 0; i < srv.n_listen && pr > 0; i++)
			if (pfd[2 + i].revents & POLLIN)
				accept_clients(&srv, srv.listen_fd[i], srv.hosts[cfg->listen_vm[i]],
					       lname[i], cfg->listen_control[i]);

		/* Every client is serviced each turn: results may have arrived for
		 * any of them. pollfds pair with clients[] as it was before the
		 * accepts; removals swap the last client in. */
		unsigned polled = (unsigned)(n - first_client);
		deadline = UINT64_MAX;
		for (unsigned i = 0; i < srv.n_clients;) {
			struct client *c = &srv.clients[i];
			short rev = i < polled && pfd[first_client + i].fd == c->fd
					    ? pfd[first_client + i].revents
					    : 0;
			const char *why = NULL;

			if ((rev & (POLLIN | POLLHUP | POLLERR)) && client_read(c) < 0)
				why = "connection lost";
			if (!why)
				why = client_service(c, now, &deadline);
			/* Both directions gone: no reply can be delivered any more. */
			if (!why && (rev & (POLLHUP | POLLERR)))
				why = "peer hung up";
			if (why) {
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
#ifdef HFE_HAVE_QEMU_DBUS
	for (unsigned k = 0; k < cfg->n_vms; k++)
		hfe_qemu_dbus_stop(srv.vms[k]);
#endif
	for (unsigned i = 0; i < srv.n_hosts; i++)
		hfe_host_free(srv.hosts[i]);
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
