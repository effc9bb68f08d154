/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The raw HXFR peer and harness of raw_peer.h. Nothing here calls wire.c:
 * bytes are laid out from docs/protocol.md.
 */
#include "raw_peer.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include "hfe/wire.h"
#include "test_util.h"

const char *daemon_bin;
char *tmpdir;
static int64_t t_start;

/* ---- harness ---- */

int64_t ms_now(void)
{
	return (int64_t)(tu_now_ns() / 1000000u);
}

int ms_left(int64_t deadline)
{
	int64_t l = deadline - ms_now();
	return l < 0 ? 0 : (int)l;
}

void section(const char *title)
{
	printf("[%6.2f s] %s\n", (double)(ms_now() - t_start) / 1000.0, title);
}

#define MAX_CHILDREN 16
static pid_t children[MAX_CHILDREN];

static void child_forget(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] == pid)
			children[i] = 0;
}

void kill_children(void)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] > 0)
			tu_kill_wait(children[i], SIGKILL, 1000);
	memset(children, 0, sizeof(children));
	if (tmpdir && !getenv("HFE_TEST_KEEP")) /* HFE_TEST_KEEP=1 keeps logs */
		tu_rm_rf(tmpdir);
}

pid_t spawn(const char *const argv[], const char *log)
{
	pid_t pid = tu_spawn(argv, log);
	for (int i = 0; pid > 0 && i < MAX_CHILDREN; i++) {
		if (children[i] == 0) {
			children[i] = pid;
			return pid;
		}
	}
	REQUIRE(pid <= 0); /* more children than MAX_CHILDREN: a test bug */
	return pid;
}

int reap(pid_t pid, int timeout_ms, int *status)
{
	int r = tu_wait(pid, timeout_ms, status);
	if (r == 0)
		child_forget(pid);
	return r;
}

int kill_wait(pid_t pid, int sig, int timeout_ms)
{
	int st = tu_kill_wait(pid, sig, timeout_ms);
	child_forget(pid);
	return st;
}

int harness_setup(const char *tmp_prefix)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	t_start = ms_now();
	daemon_bin = getenv("HFE_DAEMON");
	if (!daemon_bin || !daemon_bin[0]) {
		fprintf(stderr, "HFE_DAEMON is not set (run through meson test)\n");
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	tmpdir = tu_mkdtemp(tmp_prefix);
	REQUIRE(tmpdir);
	atexit(kill_children);
	return 0;
}

int harness_finish(const char *test_name)
{
	kill_children();
	free(tmpdir);
	tmpdir = NULL;
	section("done");
	return tu_finish(test_name);
}

/* ---- the daemon ---- */

void show_log(const char *path)
{
	enum { KEEP = 60 };
	static char ring[KEEP][256];
	FILE *f = fopen(path, "r");
	char line[256];
	unsigned n = 0;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "[libx264 @", 10) != 0)
			memcpy(ring[n++ % KEEP], line, sizeof(line));
	fclose(f);
	fprintf(stderr, "  ---- %s (last lines) ----\n", path);
	for (unsigned i = n > KEEP ? n - KEEP : 0; i < n; i++)
		fprintf(stderr, "  | %s", ring[i % KEEP]);
}

void daemon_init(struct daemon *d, const char *sock_name)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->sock, sizeof(d->sock), "%s/%s", tmpdir, sock_name);
	snprintf(d->log, sizeof(d->log), "%s/daemon.log", tmpdir);
	d->port = free_tcp_port();
	REQUIRE(d->port > 0);
	snprintf(d->listen_unix, sizeof(d->listen_unix), "unix:%s", d->sock);
	snprintf(d->listen_tcp, sizeof(d->listen_tcp), "tcp:127.0.0.1:%d", d->port);
}

pid_t start_daemon(const char *const *args, const char *log, const char *probe_unix,
		   int probe_port)
{
	const char *argv[40];
	int n = 0;
	pid_t pid;

	argv[n++] = daemon_bin;
	for (; *args; args++) {
		REQUIRE(n < 38);
		argv[n++] = *args;
	}
	argv[n] = NULL;
	pid = spawn(argv, log);
	if (pid < 0)
		return -1;
	int64_t deadline = ms_now() + 20000;
	while (ms_now() < deadline) {
		int st;
		if (reap(pid, 0, &st) == 0) {
			fprintf(stderr, "  daemon exited early (status 0x%x)\n", st);
			show_log(log);
			return -1;
		}
		int fd = probe_unix ? connect_unix(probe_unix) : connect_tcp(probe_port);
		if (fd >= 0) {
			close(fd);
			return pid;
		}
		usleep(20000);
	}
	fprintf(stderr, "  daemon did not accept within 20 s\n");
	show_log(log);
	kill_wait(pid, SIGKILL, 1000);
	return -1;
}

/* ---- little-endian bytes ---- */

void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32);
}

/* ---- raw connections ---- */

static int set_nonblock(int fd)
{
	return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

int connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || strlen(path) >= sizeof(sa.sun_path))
		goto fail;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto fail;
	set_nonblock(fd);
	return fd;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

int connect_tcp(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd < 0)
		return -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	set_nonblock(fd);
	return fd;
}

int free_tcp_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int port = -1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

int io_send(struct tconn *c, const void *buf, size_t len, int timeout_ms)
{
	const uint8_t *p = buf;
	int64_t deadline = ms_now() + timeout_ms;

	while (len) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			c->sent += (uint64_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		struct pollfd pf = { .fd = c->fd, .events = POLLOUT };
		int left = ms_left(deadline);
		if (left == 0 || poll(&pf, 1, left) == 0) {
			fprintf(stderr, "  send timed out with %zu bytes left\n", len);
			errno = ETIMEDOUT;
			return -1;
		}
	}
	return 0;
}

int io_recv(struct tconn *c, void *buf, size_t len, int timeout_ms)
{
	uint8_t *p = buf;
	size_t got = 0;
	int64_t deadline = ms_now() + timeout_ms;

	while (got < len) {
		ssize_t n = recv(c->fd, p + got, len - got, 0);
		if (n > 0) {
			got += (size_t)n;
			c->rcvd += (uint64_t)n;
			continue;
		}
		if (n == 0)
			return got ? -1 : 0;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		struct pollfd pf = { .fd = c->fd, .events = POLLIN };
		int left = ms_left(deadline);
		if (left == 0 || poll(&pf, 1, left) == 0)
			return -1;
	}
	return 1;
}

uint32_t recv_max_payload = 256u << 20;

void rmsg_free(struct rmsg *m)
{
	free(m->p);
	m->p = NULL;
}

int recv_msg(struct tconn *c, struct rmsg *m, int timeout_ms)
{
	uint8_t h[HFE_HEADER_SIZE];
	int64_t deadline = ms_now() + timeout_ms;
	int r = io_recv(c, h, sizeof(h), timeout_ms);

	memset(m, 0, sizeof(*m));
	if (r <= 0)
		return r;
	if (get32(h) != HFE_MAGIC) {
		fprintf(stderr, "  reply with bad magic 0x%08x\n", get32(h));
		return -1;
	}
	if (get32(h + 8) > recv_max_payload)
		return -1;
	m->type = h[4];
	m->flags = h[5];
	m->sid = get16(h + 6);
	m->size = get32(h + 8);
	m->p = malloc((size_t)m->size + 1);
	REQUIRE(m->p);
	if (m->size && io_recv(c, m->p, m->size, ms_left(deadline)) != 1) {
		rmsg_free(m);
		return -1;
	}
	return 1;
}

void conn_close(struct tconn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* ---- message bodies ---- */

void put_hdr(uint8_t *b, uint32_t magic, uint8_t type, uint8_t flags, uint16_t sid,
	     uint32_t size)
{
	put32(b, magic);
	b[4] = type;
	b[5] = flags;
	put16(b + 6, sid);
	put32(b + 8, size);
}

void put_frame_req(uint8_t *b, const struct frame_fields *f)
{
	memset(b, 0, HFE_FRAME_REQUEST_SIZE);
	put32(b, f->resource);
	put32(b + 4, f->w);
	put32(b + 8, f->h);
	put32(b + 12, f->fmt);
	put32(b + 16, f->stride);
	put64(b + 20, (uint64_t)f->pts);
	put64(b + 28, (uint64_t)f->duration);
	b[36] = f->force_kf;
}

void put_config_req(uint8_t *b, const struct config_fields *c)
{
	memset(b, 0, HFE_CONFIG_REQ_SIZE);
	put32(b, c->w);
	put32(b + 4, c->h);
	put32(b + 8, c->bitrate);
	put32(b + 12, c->fps_num);
	put32(b + 16, c->fps_den);
	b[20] = c->profile;
	b[21] = c->level;
	b[22] = c->realtime;
}

void put_hello(uint8_t *b, uint16_t vmin, uint16_t vmax, uint32_t flags, const char *name)
{
	memset(b, 0, HFE_HELLO_SIZE);
	put16(b, vmin);
	put16(b + 2, vmax);
	put32(b + 4, flags);
	memcpy(b + 8, name, strnlen(name, 32));
}

void put_enable_scanout(uint8_t *b, uint32_t scanout, uint32_t w, uint32_t h, uint32_t refresh)
{
	memset(b, 0, HFE_ENABLE_SCANOUT_SIZE);
	put32(b, scanout);
	put32(b + 4, w);
	put32(b + 8, h);
	put32(b + 12, refresh);
}

void get_frame_resp(const struct rmsg *m, struct frame_resp *r)
{
	const uint8_t *p = m->p;

	r->pts = (int64_t)get64(p);
	r->dts = (int64_t)get64(p + 8);
	r->is_keyframe = p[16];
	memcpy(r->reserved, p + 17, 3);
	r->nal_count = get32(p + 20);
	r->au_len = get32(p + 24);
	r->au = p + 28;
}

/* ---- checking replies ---- */

void eq_push(struct expect_queue *eq, const struct expect *e)
{
	REQUIRE(eq->n < EXPECT_QUEUE);
	eq->q[(eq->head + eq->n) % EXPECT_QUEUE] = *e;
	eq->n++;
}

bool eq_pop(struct expect_queue *eq, struct expect *e)
{
	if (eq->n == 0)
		return false;
	*e = eq->q[eq->head];
	eq->head = (eq->head + 1) % EXPECT_QUEUE;
	eq->n--;
	return true;
}

void ref_yuv(uint32_t w, uint32_t h, uint32_t no, struct tu_yuv *out)
{
	uint8_t *rgb = malloc((size_t)w * h * 3);

	REQUIRE(rgb);
	tu_pattern_rgb(rgb, w, h, no);
	tu_ref_rgb_to_yuv(rgb, w, h, out);
	free(rgb);
}
