/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * lib/src/client.c in isolation, against a tiny host written here on top of
 * hfe_conn (role HOST) over a real unix socket. Each case runs the host's
 * script on its own thread for one connection:
 *   - HELLO round trip and capabilities, PING/PONG
 *   - a 1920x1080 XR24 frame sent while the host streams 20 MiB of
 *     FRAME_RESPONSEs without reading (no deadlock), then large responses
 *     received with nothing stashed (direct path)
 *   - recv timeout returns 0, also in the middle of a message, and resumes
 *   - EOF and a half message then EOF: errors naming the address
 *   - ERROR in answer to HELLO: -1 with the host's code and text
 *   - ERROR + close while a frame is being written: the host's reason
 *   - send timeout honoured; the connection is unusable afterwards
 *   - more than the stash cap (64 MiB) of replies during a send: an error
 *   - bad addresses
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hfe/addr.h"
#include "hfe/client.h"
#include "hfe/conn.h"

static atomic_int n_pass, n_fail;

#define CHECK(expr) check_(!!(expr), #expr, __FILE__, __LINE__, NULL)
#define CHECKM(expr, ctx) check_(!!(expr), #expr, __FILE__, __LINE__, (ctx))

static bool check_(bool ok, const char *expr, const char *file, int line, const char *ctx)
{
	if (ok) {
		atomic_fetch_add(&n_pass, 1);
		return true;
	}
	atomic_fetch_add(&n_fail, 1);
	fprintf(stderr, "%s:%d: FAILED: %s%s%s%s\n", file, line, expr, ctx ? "  [" : "",
		ctx ? ctx : "", ctx ? "]" : "");
	return false;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the tiny host ---- */

struct host {
	int lfd;
	int fd;
	struct hfe_conn *conn;
	void (*script)(struct host *h);
	pthread_t thread;
	atomic_bool client_done; /* set by the client side when a script may end */
	uint64_t frame_sum;      /* what the host saw, for the client to check */
	size_t frame_len;
};

static char sock_dir[64];
static char sock_addr[128];

static int h_recv(struct host *h, struct hfe_msg *m, int timeout_ms)
{
	for (;;) {
		int r = hfe_conn_next(h->conn, m);
		if (r)
			return r;
		size_t want;
		uint8_t *b = hfe_conn_rx_buf(h->conn, &want);
		if (!b)
			return -1;
		ssize_t n = hfe_io_read(h->fd, b, want);
		if (n > 0) {
			hfe_conn_rx_commit(h->conn, (size_t)n);
			continue;
		}
		if (n == 0 || n != -EAGAIN)
			return -1;
		if (hfe_io_wait(h->fd, POLLIN, timeout_ms) <= 0)
			return 0;
	}
}

/* Blocking write of everything queued (10 s per wait). */
static int h_flush(struct host *h)
{
	while (hfe_conn_tx_pending(h->conn)) {
		struct iovec iov[16];
		int cnt = hfe_conn_tx_iov(h->conn, iov, 16);
		ssize_t w = hfe_io_writev(h->fd, iov, cnt);
		if (w > 0) {
			hfe_conn_tx_consume(h->conn, (size_t)w);
			continue;
		}
		if (w != -EAGAIN)
			return -1;
		if (hfe_io_wait(h->fd, POLLOUT, 10000) <= 0)
			return -1;
	}
	return 0;
}

static int h_write_raw(struct host *h, const void *p, size_t len)
{
	const uint8_t *b = p;
	while (len) {
		struct iovec iov = { .iov_base = (void *)b, .iov_len = len };
		ssize_t w = hfe_io_writev(h->fd, &iov, 1);
		if (w > 0) {
			b += w;
			len -= (size_t)w;
			continue;
		}
		if (w != -EAGAIN || hfe_io_wait(h->fd, POLLOUT, 10000) <= 0)
			return -1;
	}
	return 0;
}

static void wait_client_done(struct host *h)
{
	for (int i = 0; i < 2000 && !atomic_load(&h->client_done); i++)
		usleep(5000);
}

/* Queue a FRAME_RESPONSE whose access unit is `au` (borrowed). */
static void h_queue_frame(struct host *h, int64_t pts, const uint8_t *au, size_t len)
{
	struct hfe_msg m = { .hdr = { .type = HFE_MSG_FRAME_RESPONSE, .session_id = 1 } };
	m.u.frame_resp.pts = pts;
	m.u.frame_resp.dts = pts;
	m.u.frame_resp.is_keyframe = pts == 0;
	m.u.frame_resp.nal_count = 1;
	CHECK(hfe_conn_send_owned(h->conn, &m, au, len, NULL, NULL) == 0);
}

static void *host_main(void *arg)
{
	struct host *h = arg;
	CHECK(hfe_io_wait(h->lfd, POLLIN, 10000) == 1);
	h->fd = hfe_accept(h->lfd);
	CHECK(h->fd >= 0);
	if (h->fd >= 0) {
		h->conn = hfe_conn_new(HFE_ROLE_HOST, NULL);
		h->script(h);
		hfe_conn_free(h->conn);
		close(h->fd);
	}
	return NULL;
}

static void host_start(struct host *h, int lfd, void (*script)(struct host *h))
{
	memset(h, 0, sizeof(*h));
	h->lfd = lfd;
	h->fd = -1;
	h->script = script;
	if (pthread_create(&h->thread, NULL, host_main, h) != 0) {
		fprintf(stderr, "pthread_create failed\n");
		exit(1);
	}
}

static void host_join(struct host *h)
{
	atomic_store(&h->client_done, true);
	pthread_join(h->thread, NULL);
}

static struct hfe_client *connect_or_die(void)
{
	struct hfe_err err = { 0 };
	struct hfe_client *c = hfe_client_connect(sock_addr, 2000, &err);
	if (!c) {
		fprintf(stderr, "connect %s: %s\n", sock_addr, err.msg);
		exit(1);
	}
	return c;
}

/*
 * The library asks for big unix socket buffers; where net.core.wmem_max
 * allows, a whole 8 MiB frame could then fit in the kernel and a send would
 * never wait. Small buffers make the cases below exercise waiting sends.
 */
static void small_buffers(struct hfe_client *c)
{
	int v = 64 * 1024;
	CHECK(setsockopt(hfe_client_fd(c), SOL_SOCKET, SO_SNDBUF, &v, sizeof(v)) == 0);
	CHECK(setsockopt(hfe_client_fd(c), SOL_SOCKET, SO_RCVBUF, &v, sizeof(v)) == 0);
}

/* ---- pattern helpers ---- */

static uint8_t au_byte(int64_t pts, size_t i)
{
	return (uint8_t)(pts * 31 + (int64_t)(i % 251) + (int64_t)(i >> 13));
}

static uint8_t *make_au(int64_t pts, size_t len)
{
	uint8_t *b = malloc(len);
	if (!b)
		exit(1);
	for (size_t i = 0; i < len; i++)
		b[i] = au_byte(pts, i);
	return b;
}

static bool au_ok(const struct hfe_msg *m, int64_t pts, size_t len)
{
	size_t pos = 0;
	const uint8_t *nal;
	uint32_t n;
	if (m->hdr.type != HFE_MSG_FRAME_RESPONSE || m->u.frame_resp.pts != pts ||
	    m->u.frame_resp.nal_count != 1 || !hfe_nal_next(m, &pos, &nal, &n) || n != len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (nal[i] != au_byte(pts, i))
			return false;
	return true;
}

static uint64_t sum_bytes(const uint8_t *p, size_t len)
{
	uint64_t s = 0;
	for (size_t i = 0; i < len; i++)
		s = s * 1099511628211ull + p[i];
	return s;
}

#define W 1920
#define H 1080
#define FRAME_LEN ((size_t)W * H * 4)

static uint8_t *make_frame(void)
{
	uint8_t *f = malloc(FRAME_LEN);
	if (!f)
		exit(1);
	for (size_t i = 0; i < FRAME_LEN; i++)
		f[i] = (uint8_t)(i * 7 + (i >> 12));
	return f;
}

static struct hfe_frame_request frame_req(int64_t pts)
{
	struct hfe_frame_request fr = {
		.width = W, .height = H, .format = HFE_FMT_XRGB8888, .stride = W * 4,
		.pts = pts, .duration = 33333333,
	};
	return fr;
}

/* ---- case 1: HELLO, PING ---- */

static void script_hello(struct host *h)
{
	struct hfe_msg m;
	CHECK(h_recv(h, &m, 5000) == 1);
	CHECK(m.hdr.type == HFE_MSG_HELLO);
	CHECK(m.u.hello.version_min == 1 && m.u.hello.version_max == 2);
	CHECK(strcmp(m.u.hello.client_name, "test-client") == 0);

	struct hfe_msg r = { .hdr = { .type = HFE_MSG_HELLO_RESP } };
	r.u.hello_resp.version = 2;
	r.u.hello_resp.codecs = HFE_CODEC_H264;
	r.u.hello_resp.sources = HFE_SOURCE_PIXELS;
	r.u.hello_resp.max_width = 4096;
	r.u.hello_resp.max_height = 2160;
	r.u.hello_resp.max_payload = 1u << 26;
	r.u.hello_resp.max_inflight = 4;
	r.u.hello_resp.format_count = 2;
	r.u.hello_resp.formats[0] = HFE_FMT_XRGB8888;
	r.u.hello_resp.formats[1] = HFE_FMT_NV12;
	snprintf(r.u.hello_resp.server_name, HFE_NAME_LEN, "fake-host 9.9");
	CHECK(hfe_conn_send(h->conn, &r, NULL, 0) == 0);
	CHECK(h_flush(h) == 0);

	CHECK(h_recv(h, &m, 5000) == 1);
	CHECK(m.hdr.type == HFE_MSG_PING && m.hdr.session_id == 7);
	struct hfe_msg pong = { .hdr = { .type = HFE_MSG_PONG, .session_id = 7 } };
	CHECK(hfe_conn_send(h->conn, &pong, NULL, 0) == 0);
	CHECK(h_flush(h) == 0);
	wait_client_done(h);
}

static void test_hello(int lfd)
{
	struct host h;
	struct hfe_err err = { 0 };
	struct hfe_hello_resp caps;
	struct hfe_msg m;

	printf("hello round trip, ping\n");
	host_start(&h, lfd, script_hello);
	struct hfe_client *c = connect_or_die();
	CHECK(hfe_client_fd(c) >= 0);
	CHECK(hfe_client_version(c) == 1);
	CHECKM(hfe_client_hello(c, "test-client", &caps, 5000, &err) == 0, err.msg);
	CHECK(hfe_client_version(c) == 2);
	CHECK(caps.version == 2 && caps.codecs == HFE_CODEC_H264);
	CHECK(caps.max_width == 4096 && caps.max_height == 2160 && caps.max_inflight == 4);
	CHECK(caps.format_count == 2 && caps.formats[1] == HFE_FMT_NV12);
	CHECK(strcmp(caps.server_name, "fake-host 9.9") == 0);

	struct hfe_msg ping = { .hdr = { .type = HFE_MSG_PING, .session_id = 7 } };
	CHECKM(hfe_client_send_msg(c, &ping, 2000, &err) == 0, err.msg);
	CHECKM(hfe_client_recv(c, &m, 5000, &err) == 1, err.msg);
	CHECK(m.hdr.type == HFE_MSG_PONG && m.hdr.session_id == 7);
	host_join(&h);
	hfe_client_close(c);
}

/* ---- case 2: big frame out while 20 MiB come in ---- */

#define FLOOD_N 20
#define FLOOD_LEN (1u << 20)
#define TAIL_N 3
#define TAIL_LEN (2u << 20)

static void script_flood(struct host *h)
{
	uint8_t *aus[FLOOD_N], *tail[TAIL_N];
	struct hfe_msg m;

	/* Write everything before reading anything: a client that only writes
	 * while sending would block us and itself forever. */
	for (int i = 0; i < FLOOD_N; i++) {
		aus[i] = make_au(i, FLOOD_LEN);
		h_queue_frame(h, i, aus[i], FLOOD_LEN);
	}
	CHECKM(h_flush(h) == 0, "host could not write 20 MiB: client not reading while sending?");

	CHECK(h_recv(h, &m, 10000) == 1);
	CHECK(m.hdr.type == HFE_MSG_FRAME_REQUEST);
	CHECK(m.hdr.flags == HFE_FLAG_PIXEL_DATA && m.hdr.session_id == 1);
	CHECK(m.u.frame_req.width == W && m.u.frame_req.height == H);
	CHECK(m.u.frame_req.format == HFE_FMT_XRGB8888 && m.u.frame_req.pts == 1234);
	h->frame_len = m.data_len;
	h->frame_sum = sum_bytes(m.data, m.data_len);

	/* Then big replies while nothing is stashed on the client. */
	for (int i = 0; i < TAIL_N; i++) {
		tail[i] = make_au(100 + i, TAIL_LEN);
		h_queue_frame(h, 100 + i, tail[i], TAIL_LEN);
	}
	struct hfe_msg pong = { .hdr = { .type = HFE_MSG_PONG, .session_id = 3 } };
	CHECK(hfe_conn_send(h->conn, &pong, NULL, 0) == 0);
	CHECK(h_flush(h) == 0);
	wait_client_done(h);
	for (int i = 0; i < FLOOD_N; i++)
		free(aus[i]);
	for (int i = 0; i < TAIL_N; i++)
		free(tail[i]);
}

static void test_no_deadlock(int lfd)
{
	struct host h;
	struct hfe_err err = { 0 };
	struct hfe_msg m;
	uint8_t *frame = make_frame();

	printf("1080p XR24 frame sent while the host streams 20 MiB without reading\n");
	host_start(&h, lfd, script_flood);
	struct hfe_client *c = connect_or_die();
	small_buffers(c);
	struct hfe_frame_request fr = frame_req(1234);
	int64_t t0 = now_ms();
	CHECKM(hfe_client_send_frame(c, 1, &fr, frame, FRAME_LEN, 8000, &err) == 0, err.msg);
	printf("  send took %lld ms\n", (long long)(now_ms() - t0));

	int got = 0;
	for (int i = 0; i < FLOOD_N; i++) {
		int r = hfe_client_recv(c, &m, 5000, &err);
		CHECKM(r == 1, err.msg);
		if (r != 1)
			break;
		got += au_ok(&m, i, FLOOD_LEN);
	}
	CHECK(got == FLOOD_N);
	got = 0;
	for (int i = 0; i < TAIL_N; i++) {
		int r = hfe_client_recv(c, &m, 5000, &err);
		CHECKM(r == 1, err.msg);
		if (r != 1)
			break;
		got += au_ok(&m, 100 + i, TAIL_LEN);
	}
	CHECK(got == TAIL_N);
	CHECKM(hfe_client_recv(c, &m, 5000, &err) == 1, err.msg);
	CHECK(m.hdr.type == HFE_MSG_PONG && m.hdr.session_id == 3);
	host_join(&h);
	CHECK(h.frame_len == FRAME_LEN);
	CHECK(h.frame_sum == sum_bytes(frame, FRAME_LEN));
	hfe_client_close(c);
	free(frame);
}

/* ---- case 3: receive timeouts ---- */

static void script_slow(struct host *h)
{
	struct hfe_msg pong = { .hdr = { .type = HFE_MSG_PONG, .session_id = 9 } };
	uint8_t buf[HFE_MSG_MAX_PREFIX];
	size_t n = hfe_msg_build(&pong, 0, buf, sizeof(buf));
	CHECK(n == HFE_HEADER_SIZE);

	usleep(300 * 1000); /* client's first recv times out with nothing */
	CHECK(h_write_raw(h, buf, 5) == 0);
	usleep(300 * 1000); /* second one times out in the middle of a header */
	CHECK(h_write_raw(h, buf + 5, n - 5) == 0);
	wait_client_done(h);
}

static void test_recv_timeout(int lfd)
{
	struct host h;
	struct hfe_err err = { 0 };
	struct hfe_msg m;

	printf("recv timeouts\n");
	host_start(&h, lfd, script_slow);
	struct hfe_client *c = connect_or_die();
	CHECK(hfe_client_recv(c, &m, 0, &err) == 0);
	int64_t t0 = now_ms();
	CHECK(hfe_client_recv(c, &m, 100, &err) == 0);
	int64_t dt = now_ms() - t0;
	CHECK(dt >= 90 && dt < 1500);
	usleep(250 * 1000); /* now 5 bytes are there */
	CHECK(hfe_client_recv(c, &m, 50, &err) == 0);
	CHECKM(hfe_client_recv(c, &m, 5000, &err) == 1, err.msg);
	CHECK(m.hdr.type == HFE_MSG_PONG && m.hdr.session_id == 9);
	host_join(&h);
	hfe_client_close(c);
}

/* ---- case 4: EOF ---- */

static void script_close(struct host *h)
{
	(void)h;
}

static void script_half_close(struct host *h)
{
	static const uint8_t half[6] = { 'H', 'X', 'F', 'R', HFE_MSG_PONG, 0 };
	CHECK(h_write_raw(h, half, sizeof(half)) == 0);
}

static void test_eof(int lfd)
{
	struct host h;
	struct hfe_err err = { 0 };
	struct hfe_msg m;

	printf("EOF names the address\n");
	host_start(&h, lfd, script_close);
	struct hfe_client *c = connect_or_die();
	host_join(&h);
	CHECK(hfe_client_recv(c, &m, 5000, &err) == -1);
	CHECKM(strstr(err.msg, sock_addr) != NULL, err.msg);
	CHECKM(strstr(err.msg, "closed the connection") != NULL, err.msg);
	/* Still an error (not a hang) when asked again, and on send. */
	CHECK(hfe_client_recv(c, &m, 5000, &err) == -1);
	struct hfe_msg ping = { .hdr = { .type = HFE_MSG_PING } };
	memset(&err, 0, sizeof(err));
	CHECK(hfe_client_send_msg(c, &ping, 1000, &err) == -1);
	CHECKM(strstr(err.msg, sock_addr) != NULL, err.msg);
	hfe_client_close(c);

	host_start(&h, lfd, script_half_close);
	c = connect_or_die();
	host_join(&h);
	CHECK(hfe_client_recv(c, &m, 5000, &err) == -1);
	CHECKM(strstr(err.msg, sock_addr) != NULL, err.msg);
	CHECKM(strstr(err.msg, "middle of a message") != NULL, err.msg);
	hfe_client_close(c);
}

/* ---- case 5: ERROR in answer to HELLO ---- */

static void script_refuse(struct host *h)
{
	struct hfe_msg m;
	CHECK(h_recv(h, &m, 5000) == 1 && m.hdr.type == HFE_MSG_HELLO);
	CHECK(hfe_conn_send_error(h->conn, 0, HFE_ERR_VERSION, "no common version (test %d)",
				  42) == 0);
	CHECK(h_flush(h) == 0);
}

static void script_bad_reply(struct host *h)
{
	struct hfe_msg m;
	CHECK(h_recv(h, &m, 5000) == 1 && m.hdr.type == HFE_MSG_HELLO);
	struct hfe_msg pong = { .hdr = { .type = HFE_MSG_PONG } };
	CHECK(hfe_conn_send(h->conn, &pong, NULL, 0) == 0);
	CHECK(h_flush(h) == 0);
	wait_client_done(h);
}

static void script_silent(struct host *h)
{
	wait_client_done(h);
}

static void test_hello_errors(int lfd)
{
	struct host h;
	struct hfe_err err = { 0 };
	struct hfe_hello_resp caps;

	printf("ERROR, wrong reply and silence in answer to HELLO\n");
	host_start(&h, lfd, script_refuse);
	struct hfe_client *c = connect_or_die();
	CHECK(hfe_client_hello(c, "x", &caps, 5000, &err) == -1);
	CHECK(err.code == HFE_ERR_VERSION);
	CHECKM(strstr(err.msg, "no common version (test 42)") != NULL, err.msg);
	CHECK(hfe_client_version(c) == 1);
	host_join(&h);
	hfe_client_close(c);

	host_start(&h, lfd, script_bad_reply);
	c = connect_or_die();
	CHECK(hfe_client_hello(c, "x", &caps, 5000, &err) == -1);
	CHECKM(strstr(err.msg, "PONG") != NULL, err.msg);
	host_join(&h);
	hfe_client_close(c);

	host_start(&h, lfd, script_silent);
	c = connect_or_die();
	int64_t t0 = now_ms();
	CHECK(hfe_client_hello(c, "x", &caps, 200, &err) == -1);
	CHECK(err.code == HFE_ERR_TIMEOUT);
	CHECK(now_ms() - t0 < 2000);
	host_join(&h);
	hfe_client_close(c);
}

/* ---- case 6: host gives up in the middle of our frame ---- */

static void script_reject_frame(struct host *h)
{
	static uint8_t sink[256 * 1024];
	size_t got = 0;
	/* Take some of the frame, then refuse it the way a host would. */
	while (got < sizeof(sink)) {
		ssize_t n = hfe_io_read(h->fd, sink + got, sizeof(sink) - got);
		if (n > 0)
			got += (size_t)n;
		else if (n == -EAGAIN)
			hfe_io_wait(h->fd, POLLIN, 5000);
		else
			break;
	}
	CHECK(hfe_conn_send_error(h->conn, 1, HFE_ERR_TOO_LARGE, "frame too large (test)") == 0);
	CHECK(h_flush(h) == 0);
}

static void test_error_during_send(int lfd)
{
	struct host h;
	struct hfe_err err = { 0 };
	uint8_t *frame = make_frame();

	printf("host ERROR + close while a frame is being written\n");
	host_start(&h, lfd, script_reject_frame);
	struct hfe_client *c = connect_or_die();
	small_buffers(c);
	struct hfe_frame_request fr = frame_req(0);
	CHECK(hfe_client_send_frame(c, 1, &fr, frame, FRAME_LEN, 5000, &err) == -1);
	CHECKM(strstr(err.msg, sock_addr) != NULL, err.msg);
	CHECKM(strstr(err.msg, "frame too large (test)") != NULL, err.msg);
	CHECK(err.code == HFE_ERR_TOO_LARGE);
	host_join(&h);
	/* The ERROR is still delivered as a message. */
	struct hfe_msg m;
	int r = hfe_client_recv(c, &m, 2000, &err);
	CHECKM(r == 1, err.msg);
	CHECK(r == 1 && m.hdr.type == HFE_MSG_ERROR && m.u.error.code == HFE_ERR_TOO_LARGE);
	CHECK(hfe_client_recv(c, &m, 2000, &err) == -1);
	hfe_client_close(c);
	free(frame);
}

/* ---- case 7: send timeout ---- */

static void test_send_timeout(int lfd)
{
	struct host h;
	struct hfe_err err = { 0 };
	uint8_t *frame = make_frame();

	printf("send timeout honoured\n");
	host_start(&h, lfd, script_silent);
	struct hfe_client *c = connect_or_die();
	small_buffers(c);
	struct hfe_frame_request fr = frame_req(0);
	int64_t t0 = now_ms();
	CHECK(hfe_client_send_frame(c, 1, &fr, frame, FRAME_LEN, 200, &err) == -1);
	int64_t dt = now_ms() - t0;
	CHECK(err.code == HFE_ERR_TIMEOUT);
	CHECKM(strstr(err.msg, "timed out") && strstr(err.msg, sock_addr), err.msg);
	CHECK(dt >= 180 && dt < 2000);
	/* Part of a message went out: nothing more may be sent. */
	struct hfe_msg ping = { .hdr = { .type = HFE_MSG_PING } };
	CHECK(hfe_client_send_msg(c, &ping, 1000, &err) == -1);
	CHECKM(strstr(err.msg, "unusable") != NULL, err.msg);
	host_join(&h);
	hfe_client_close(c);
	free(frame);
}

/* ---- case 8: stash cap ---- */

#define OVER_N 9
#define OVER_LEN (8u << 20)

static void script_overflow(struct host *h)
{
	uint8_t *au = calloc(1, OVER_LEN);
	for (int i = 0; i < OVER_N; i++)
		h_queue_frame(h, i, au, OVER_LEN);
	h_flush(h); /* fails once the client gives up: fine */
	wait_client_done(h);
	hfe_conn_free(h->conn); /* drop the borrowed chunks before au goes */
	h->conn = NULL;
	free(au);
}

static void test_stash_cap(int lfd)
{
	struct host h;
	struct hfe_err err = { 0 };
	uint8_t *frame = make_frame();

	printf("more than 64 MiB of replies during one send is an error, not unbounded memory\n");
	host_start(&h, lfd, script_overflow);
	struct hfe_client *c = connect_or_die();
	small_buffers(c);
	struct hfe_frame_request fr = frame_req(0);
	CHECK(hfe_client_send_frame(c, 1, &fr, frame, FRAME_LEN, 10000, &err) == -1);
	CHECKM(strstr(err.msg, "MiB") && strstr(err.msg, sock_addr), err.msg);
	hfe_client_close(c);
	host_join(&h);
	free(frame);
}

/* ---- case 9: addresses ---- */

static void test_bad_addresses(void)
{
	struct hfe_err err = { 0 };
	char addr[200];

	printf("bad addresses\n");
	CHECK(hfe_client_connect("nonsense", 500, &err) == NULL);
	CHECKM(strstr(err.msg, "nonsense") != NULL, err.msg);
	snprintf(addr, sizeof(addr), "unix:%s/nobody-here", sock_dir);
	CHECK(hfe_client_connect(addr, 500, &err) == NULL);
	CHECKM(strstr(err.msg, addr) != NULL, err.msg);
}

int main(void)
{
	char err[256];
	struct hfe_addr a;

	signal(SIGPIPE, SIG_IGN);
	snprintf(sock_dir, sizeof(sock_dir), "/tmp/hfe-test-client-XXXXXX");
	if (!mkdtemp(sock_dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(sock_addr, sizeof(sock_addr), "unix:%s/host.sock", sock_dir);
	if (hfe_addr_parse(sock_addr, &a, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	int lfd = hfe_listen(&a, err, sizeof(err), NULL, 0);
	if (lfd < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}

	test_hello(lfd);
	test_no_deadlock(lfd);
	test_recv_timeout(lfd);
	test_eof(lfd);
	test_hello_errors(lfd);
	test_error_during_send(lfd);
	test_send_timeout(lfd);
	test_stash_cap(lfd);
	test_bad_addresses();

	close(lfd);
	hfe_addr_cleanup(&a);
	rmdir(sock_dir);
	printf("test_client: %d passed, %d failed\n", atomic_load(&n_pass), atomic_load(&n_fail));
	return atomic_load(&n_fail) ? 1 : 0;
}
