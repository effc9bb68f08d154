/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Transports: address parsing/formatting, unix/tcp/serial/vsock listen and
 * connect, stale socket files, partial non-blocking I/O, and the log sink.
 * Traffic stays on this machine: loopback TCP, unix sockets, a pty; vsock
 * connects only through the vsock_loopback transport, never to the hypervisor.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "hfe/addr.h"
#include "hfe/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static int n_pass, n_fail;

#define CHECK(cond)                                                                    \
	do {                                                                           \
		if (cond) {                                                            \
			n_pass++;                                                      \
		} else {                                                               \
			n_fail++;                                                      \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
				#cond);                                                \
		}                                                                      \
	} while (0)

/* Substring check that shows the actual text on failure. */
#define CHECK_HAS(hay, needle)                                                            \
	do {                                                                              \
		const char *h_ = (hay), *n_ = (needle);                                   \
		if (h_ && strstr(h_, n_)) {                                               \
			n_pass++;                                                         \
		} else {                                                                  \
			n_fail++;                                                         \
			fprintf(stderr, "%s:%d: CHECK failed: '%s' does not contain '%s'\n", \
				__FILE__, __LINE__, h_ ? h_ : "(null)", n_);              \
		}                                                                         \
	} while (0)

static char tmpdir[64];

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool fd_nonblock_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);

	return fl >= 0 && fdfl >= 0 && (fl & O_NONBLOCK) && (fdfl & FD_CLOEXEC);
}

static bool file_exists(const char *p)
{
	struct stat st;

	return lstat(p, &st) == 0;
}

static bool is_socket_file(const char *p)
{
	struct stat st;

	return lstat(p, &st) == 0 && S_ISSOCK(st.st_mode);
}

static int parse_ok(const char *s, struct hfe_addr *a)
{
	char err[256];
	int r = hfe_addr_parse(s, a, err, sizeof(err));

	if (r < 0)
		fprintf(stderr, "unexpected parse error for '%s': %s\n", s, err);
	return r;
}

/* ---------------------------------------------------------------- parsing */

static void test_parse_ok(void)
{
	static const struct {
		const char *in, *canon;
		enum hfe_addr_kind kind;
		const char *text; /* path or host */
		uint32_t cid, port;
	} t[] = {
		{ "unix:/run/hfe.sock", NULL, HFE_ADDR_UNIX, "/run/hfe.sock", 0, 0 },
		{ "unix:rel.sock", NULL, HFE_ADDR_UNIX, "rel.sock", 0, 0 },
		{ "unix:/a b/c:d", NULL, HFE_ADDR_UNIX, "/a b/c:d", 0, 0 },
		{ "serial:/dev/virtio-ports/org.helix.frames", NULL, HFE_ADDR_SERIAL,
		  "/dev/virtio-ports/org.helix.frames", 0, 0 },
		{ "tcp:localhost:15937", NULL, HFE_ADDR_TCP, "localhost", 0, 15937 },
		{ "tcp:127.0.0.1:1", NULL, HFE_ADDR_TCP, "127.0.0.1", 0, 1 },
		{ "tcp:10.0.2.2:41937", NULL, HFE_ADDR_TCP, "10.0.2.2", 0, 41937 },
		{ "tcp:my-host_1.example.com:65535", NULL, HFE_ADDR_TCP, "my-host_1.example.com", 0,
		  65535 },
		{ "tcp:[::1]:5000", NULL, HFE_ADDR_TCP, "::1", 0, 5000 },
		{ "tcp:[::]:5000", NULL, HFE_ADDR_TCP, "::", 0, 5000 },
		{ "tcp:[fe80::1%eth0]:80", NULL, HFE_ADDR_TCP, "fe80::1%eth0", 0, 80 },
		{ "tcp:[::ffff:127.0.0.1]:80", NULL, HFE_ADDR_TCP, "::ffff:127.0.0.1", 0, 80 },
		{ "tcp:host:0080", "tcp:host:80", HFE_ADDR_TCP, "host", 0, 80 },
		{ "vsock:2:5000", NULL, HFE_ADDR_VSOCK, NULL, 2, 5000 },
		{ "vsock:any:5000", NULL, HFE_ADDR_VSOCK, NULL, 0xFFFFFFFFu, 5000 },
		{ "vsock:0:1", NULL, HFE_ADDR_VSOCK, NULL, 0, 1 },
		{ "vsock:4294967294:4294967294", NULL, HFE_ADDR_VSOCK, NULL, 4294967294u,
		  4294967294u },
	};
	struct hfe_addr a, b;
	char buf[400], buf2[400], longpath[200];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(&a, 0x5a, sizeof(a));
		CHECK(parse_ok(t[i].in, &a) == 0);
		CHECK(a.kind == t[i].kind);
		if (t[i].kind == HFE_ADDR_UNIX || t[i].kind == HFE_ADDR_SERIAL)
			CHECK(!strcmp(a.path, t[i].text));
		if (t[i].kind == HFE_ADDR_TCP) {
			CHECK(!strcmp(a.host, t[i].text));
			CHECK(a.port == t[i].port);
		}
		if (t[i].kind == HFE_ADDR_VSOCK) {
			CHECK(a.cid == t[i].cid);
			CHECK(a.port == t[i].port);
		}
		/* Canonical text form, and parsing it again gives the same address. */
		hfe_addr_str(&a, buf, sizeof(buf));
		if (strcmp(buf, t[i].canon ? t[i].canon : t[i].in))
			fprintf(stderr, "format of '%s' gave '%s'\n", t[i].in, buf);
		CHECK(!strcmp(buf, t[i].canon ? t[i].canon : t[i].in));
		CHECK(parse_ok(buf, &b) == 0);
		CHECK(b.kind == a.kind && b.port == a.port && b.cid == a.cid);
		CHECK(!strcmp(b.path, a.path) && !strcmp(b.host, a.host));
		hfe_addr_str(&b, buf2, sizeof(buf2));
		CHECK(!strcmp(buf, buf2));
	}

	/* The longest path a sockaddr_un holds: 107 bytes. */
	memset(longpath, 0, sizeof(longpath));
	memcpy(longpath, "unix:", 5);
	memset(longpath + 5, 'p', 107);
	CHECK(parse_ok(longpath, &a) == 0);
	CHECK(strlen(a.path) == 107);

	/* Formatting into a short buffer truncates and terminates. */
	CHECK(parse_ok("unix:/run/hfe.sock", &a) == 0);
	memset(buf, 'X', sizeof(buf));
	CHECK(hfe_addr_str(&a, buf, 6) == buf);
	CHECK(!strcmp(buf, "unix:"));
	CHECK(buf[6] == 'X');
	printf("ok - %zu valid addresses parse, format canonically and round-trip\n",
	       sizeof(t) / sizeof(t[0]));
}

static void test_parse_errors(void)
{
	static char long_unix[200], long_host[300];
	static const struct {
		const char *in;
		const char *want[2];
	} t[] = {
		{ "", { "empty address", "unix:PATH" } },
		{ "foo", { "address 'foo' has no kind prefix", "tcp:HOST:PORT" } },
		{ "http://x", { "unknown address kind 'http'", "'http://x'" } },
		{ "UNIX:/x", { "unknown address kind 'UNIX'", NULL } },
		{ "unix:", { "unix address needs a path", "'unix:'" } },
		{ long_unix, { "unix path is too long (108 bytes, at most 107)", NULL } },
		{ "serial:", { "serial address needs a path", NULL } },
		{ "tcp:foo", { "tcp address needs HOST:PORT, got 'tcp:foo'", NULL } },
		{ "tcp:", { "tcp address needs HOST:PORT, got 'tcp:'", NULL } },
		{ "tcp::5000", { "needs a HOST before the port", "'tcp::5000'" } },
		{ "tcp:host:",
		  { "tcp port must be a number from 1 to 65535, got ''", "'tcp:host:'" } },
		{ "tcp:host:0", { "from 1 to 65535, got '0'", NULL } },
		{ "tcp:host:65536", { "from 1 to 65535, got '65536'", NULL } },
		{ "tcp:host:99999999999999999999", { "got '99999999999999999999'", NULL } },
		{ "tcp:host:-1", { "got '-1'", NULL } },
		{ "tcp:host:+80", { "got '+80'", NULL } },
		{ "tcp:host: 80", { "got ' 80'", NULL } },
		{ "tcp:host:80x", { "got '80x'", NULL } },
		{ "tcp:::1:5000", { "IPv6 host must be in brackets", "'tcp:::1:5000'" } },
		{ "tcp:[::1]5000", { "needs [IPv6]:PORT", "'tcp:[::1]5000'" } },
		{ "tcp:[::1:5000", { "'[' without ']'", NULL } },
		{ "tcp:[]:5000", { "empty IPv6 host", NULL } },
		{ "tcp:[zz::1]:5000", { "'[zz::1]' is not a valid IPv6 address", NULL } },
		{ "tcp:[1.2.3.4]:5000", { "'[1.2.3.4]' is not a valid IPv6", NULL } },
		{ "tcp:[1:2:3]:5000", { "'[1:2:3]' is not a valid IPv6", NULL } },
		{ "tcp:[fe80::1%]:5000", { "not a valid IPv6", NULL } },
		{ "tcp:[fe80::1%e/0]:5000", { "not a valid IPv6", NULL } },
		{ "tcp:[::1]:0", { "from 1 to 65535, got '0'", NULL } },
		{ "tcp:bad/host:80",
		  { "tcp host 'bad/host' has an invalid character (0x2f)", NULL } },
		{ "tcp:bad host:80", { "invalid character (0x20)", NULL } },
		{ long_host, { "tcp host is too long (256 bytes, at most 255)", NULL } },
		{ "vsock:5000", { "vsock address needs CID:PORT, got 'vsock:5000'", NULL } },
		{ "vsock:x:5000", { "vsock CID must be a number or 'any', got 'x'", NULL } },
		{ "vsock::5000", { "vsock CID must be a number or 'any', got ''", NULL } },
		{ "vsock:ANY:5000", { "got 'ANY'", NULL } },
		{ "vsock:-1:5000", { "got '-1'", NULL } },
		{ "vsock:4294967295:5000", { "got '4294967295'", NULL } },
		{ "vsock:2:",
		  { "vsock port must be a number from 1 to 4294967294, got ''", NULL } },
		{ "vsock:2:0", { "got '0'", NULL } },
		{ "vsock:2:4294967295", { "got '4294967295'", NULL } },
		{ "vsock:2:x", { "got 'x'", "'vsock:2:x'" } },
	};
	struct hfe_addr a, keep;
	char err[512];
	size_t i;

	memcpy(long_unix, "unix:", 5);
	memset(long_unix + 5, 'p', 108);
	memcpy(long_host, "tcp:", 4);
	memset(long_host + 4, 'h', 256);
	memcpy(long_host + 260, ":80", 4);

	memset(&keep, 0x5a, sizeof(keep));
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		a = keep;
		err[0] = '\0';
		CHECK(hfe_addr_parse(t[i].in, &a, err, sizeof(err)) == -1);
		CHECK_HAS(err, t[i].want[0]);
		if (t[i].want[1])
			CHECK_HAS(err, t[i].want[1]);
		/* A failed parse leaves the output alone. */
		CHECK(!memcmp(&a, &keep, sizeof(a)));
	}

	CHECK(hfe_addr_parse(NULL, &a, err, sizeof(err)) == -1);
	CHECK_HAS(err, "empty address");
	/* Short and absent error buffers are safe. */
	memset(err, 'X', sizeof(err));
	CHECK(hfe_addr_parse("tcp:foo", &a, err, 8) == -1);
	CHECK(strlen(err) == 7 && err[8] == 'X');
	CHECK(hfe_addr_parse("tcp:foo", &a, NULL, 0) == -1);
	CHECK(hfe_addr_parse("tcp:foo", &a, err, 0) == -1);
	printf("ok - %zu malformed addresses rejected with a reason naming the bad part\n",
	       sizeof(t) / sizeof(t[0]) + 1);
}

/* ---------------------------------------------------------------- I/O pump */

struct pump_stats {
	size_t writes, partial_writes, write_eagain;
	size_t reads, read_eagain;
};

/*
 * Move len bytes from wfd to rfd in one thread with non-blocking I/O: write
 * until the kernel pushes back, read until drained, wait when neither moves.
 * Each write sends a 12-byte "header" iovec plus the data, like a frame.
 */
static bool pump(int wfd, int rfd, const uint8_t *src, uint8_t *dst, size_t len,
		 size_t read_chunk, struct pump_stats *st)
{
	static const uint8_t hdr[12] = "HXFRhdr-0123";
	size_t total = len + sizeof(hdr), wr = 0, rd = 0;
	uint8_t *rbuf = malloc(total);
	int64_t deadline = mono_ms() + 20000;
	bool ok = false;

	memset(st, 0, sizeof(*st));
	if (!rbuf)
		return false;
	while (rd < total) {
		bool moved = false;

		while (wr < total) {
			struct iovec iov[2];
			int n_iov = 0;
			size_t want;
			ssize_t n;

			if (wr < sizeof(hdr)) {
				iov[n_iov].iov_base = (void *)(hdr + wr);
				iov[n_iov++].iov_len = sizeof(hdr) - wr;
				iov[n_iov].iov_base = (void *)src;
				iov[n_iov++].iov_len = len;
			} else {
				iov[n_iov].iov_base = (void *)(src + (wr - sizeof(hdr)));
				iov[n_iov++].iov_len = total - wr;
			}
			want = total - wr;
			n = hfe_io_writev(wfd, iov, n_iov);
			if (n == -EAGAIN) {
				st->write_eagain++;
				break;
			}
			if (n <= 0) {
				fprintf(stderr, "pump: write: %s\n", strerror((int)-n));
				goto out;
			}
			st->writes++;
			if ((size_t)n < want)
				st->partial_writes++;
			wr += (size_t)n;
			moved = true;
		}
		for (;;) {
			size_t want = total - rd < read_chunk ? total - rd : read_chunk;
			ssize_t n;

			if (!want)
				break;
			n = hfe_io_read(rfd, rbuf + rd, want);
			if (n == -EAGAIN) {
				st->read_eagain++;
				break;
			}
			if (n <= 0) {
				fprintf(stderr, "pump: read: %s\n", n ? strerror((int)-n) : "EOF");
				goto out;
			}
			st->reads++;
			rd += (size_t)n;
			moved = true;
		}
		if (!moved && hfe_io_wait(rfd, POLLIN, 1000) < 0)
			goto out;
		if (mono_ms() > deadline) {
			fprintf(stderr, "pump: stuck at %zu/%zu written, %zu read\n", wr, total,
				rd);
			goto out;
		}
	}
	ok = !memcmp(rbuf, hdr, sizeof(hdr));
	memcpy(dst, rbuf + sizeof(hdr), len);
out:
	free(rbuf);
	return ok;
}

static void fill_pattern(uint8_t *p, size_t len, uint32_t seed)
{
	uint32_t x = seed ? seed : 1;
	size_t i;

	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

/* Transfer len bytes wfd -> rfd and check them; returns the stats. */
static void check_transfer(int wfd, int rfd, size_t len, size_t read_chunk, const char *what,
			   bool expect_pushback)
{
	uint8_t *src = malloc(len), *dst = malloc(len);
	struct pump_stats st;

	CHECK(src && dst);
	if (!src || !dst)
		goto out;
	fill_pattern(src, len, (uint32_t)len ^ 0x9e3779b9u);
	memset(dst, 0, len);
	CHECK(pump(wfd, rfd, src, dst, len, read_chunk, &st));
	CHECK(!memcmp(src, dst, len));
	if (expect_pushback) {
		/* The kernel buffer filled up: writes were cut short and hit EAGAIN. */
		CHECK(st.write_eagain > 0);
		CHECK(st.partial_writes > 0);
	}
	CHECK(st.read_eagain > 0 || st.reads > 1);
	printf("ok - %s: %zu bytes intact (%zu writes, %zu partial, %zu EAGAIN; %zu reads)\n",
	       what, len, st.writes, st.partial_writes, st.write_eagain, st.reads);
out:
	free(src);
	free(dst);
}

/* ---------------------------------------------------------------- unix */

static void make_unix_addr(struct hfe_addr *a, const char *name)
{
	char s[200];

	snprintf(s, sizeof(s), "unix:%s/%s", tmpdir, name);
	if (parse_ok(s, a) < 0)
		abort();
}

static long read_long_file(const char *p)
{
	FILE *f = fopen(p, "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/* Connect to a listener and accept the other end. */
static bool connect_pair(const struct hfe_addr *a, int lfd, int *cfd, int *sfd)
{
	char err[512];

	*sfd = -1;
	*cfd = hfe_connect(a, 2000, err, sizeof(err));
	if (*cfd < 0) {
		fprintf(stderr, "connect: %s\n", err);
		return false;
	}
	if (hfe_io_wait(lfd, POLLIN, 2000) != 1)
		return false;
	*sfd = hfe_accept(lfd);
	return *sfd >= 0;
}

static void test_unix_basic(void)
{
	struct hfe_addr a;
	char err[512], note[512], name[300];
	int lfd, cfd, sfd, v;
	socklen_t sl = sizeof(v);
	uint8_t b[16];
	long wmax;
	int64_t t0;

	make_unix_addr(&a, "basic.sock");
	lfd = hfe_listen(&a, err, sizeof(err), note, sizeof(note));
	CHECK(lfd >= 0);
	if (lfd < 0) {
		fprintf(stderr, "listen: %s\n", err);
		return;
	}
	CHECK(note[0] == '\0');
	CHECK(fd_nonblock_cloexec(lfd));
	CHECK(is_socket_file(a.path));
	errno = 0;
	CHECK(hfe_accept(lfd) == -1 && (errno == EAGAIN || errno == EWOULDBLOCK));

	CHECK(connect_pair(&a, lfd, &cfd, &sfd));
	CHECK(fd_nonblock_cloexec(cfd));
	CHECK(fd_nonblock_cloexec(sfd));

	/* 4 MiB requested; the kernel caps at wmem_max and reports double. */
	wmax = read_long_file("/proc/sys/net/core/wmem_max");
	if (wmax > 0) {
		long want = 2 * (wmax < 4 * 1024 * 1024 ? wmax : 4 * 1024 * 1024);

		CHECK(getsockopt(sfd, SOL_SOCKET, SO_SNDBUF, &v, &sl) == 0 && v >= want);
		sl = sizeof(v);
		CHECK(getsockopt(cfd, SOL_SOCKET, SO_SNDBUF, &v, &sl) == 0 && v >= want);
	}

	/* Nothing to read yet: EAGAIN, and a wait times out. */
	CHECK(hfe_io_read(sfd, b, sizeof(b)) == -EAGAIN);
	t0 = mono_ms();
	CHECK(hfe_io_wait(sfd, POLLIN, 60) == 0);
	CHECK(mono_ms() - t0 >= 50);
	CHECK(hfe_io_wait(cfd, POLLOUT, 0) == 1);

	/* 8 MiB one way with partial writes and small reads, then a reply. */
	check_transfer(cfd, sfd, 8u << 20, 65521, "unix 8 MiB non-blocking transfer", true);
	check_transfer(sfd, cfd, 3000, 7, "unix reply in 7-byte reads", false);

	/* EOF after the peer closes. */
	close(cfd);
	CHECK(hfe_io_wait(sfd, POLLIN, 1000) == 1);
	CHECK(hfe_io_read(sfd, b, sizeof(b)) == 0);
	close(sfd);

	/* Writing to a closed peer: -EPIPE, no SIGPIPE (default action would kill us). */
	CHECK(connect_pair(&a, lfd, &cfd, &sfd));
	close(sfd);
	{
		struct iovec iov = { .iov_base = b, .iov_len = sizeof(b) };
		ssize_t n = hfe_io_writev(cfd, &iov, 1);

		CHECK(n == -EPIPE || n == -ECONNRESET);
	}
	close(cfd);

	close(lfd);
	hfe_addr_cleanup(&a);
	CHECK(!file_exists(a.path));
	hfe_addr_str(&a, name, sizeof(name));
	printf("ok - unix listen/connect/accept, EOF, EPIPE without SIGPIPE, cleanup (%s)\n", name);
}

static void test_unix_existing_files(void)
{
	struct hfe_addr a;
	struct sockaddr_un sun;
	char err[512], note[512], want[300], buf[32];
	int fd, lfd, lfd2, cfd, sfd, fill;
	uint8_t b[4];
	FILE *f;

	/* Stale: a socket file nobody listens on is replaced, with a note. */
	make_unix_addr(&a, "stale.sock");
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", a.path);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
	close(fd);
	CHECK(is_socket_file(a.path));
	lfd = hfe_listen(&a, err, sizeof(err), note, sizeof(note));
	CHECK(lfd >= 0);
	snprintf(want, sizeof(want), "removed stale socket file %s", a.path);
	CHECK_HAS(note, want);
	CHECK(lfd >= 0 && connect_pair(&a, lfd, &cfd, &sfd));
	close(cfd);
	close(sfd);

	/* Live: a second listener on the same path is refused, the first keeps working. */
	lfd2 = hfe_listen(&a, err, sizeof(err), note, sizeof(note));
	CHECK(lfd2 == -1);
	CHECK_HAS(err, "already in use by a running server");
	snprintf(want, sizeof(want), "unix:%s", a.path);
	CHECK_HAS(err, want);
	CHECK(note[0] == '\0');
	CHECK(is_socket_file(a.path));
	/* The probe's own connection is queued first; it shows up as an instant EOF. */
	CHECK(hfe_io_wait(lfd, POLLIN, 1000) == 1);
	sfd = hfe_accept(lfd);
	CHECK(sfd >= 0 && hfe_io_wait(sfd, POLLIN, 1000) == 1 && hfe_io_read(sfd, b, 4) == 0);
	close(sfd);
	CHECK(connect_pair(&a, lfd, &cfd, &sfd));
	close(cfd);
	close(sfd);
	close(lfd);
	hfe_addr_cleanup(&a);

	/* Live with a full backlog (connect says EAGAIN): still "in use". */
	make_unix_addr(&a, "full.sock");
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", a.path);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 && listen(fd, 0) == 0);
	fill = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(fill >= 0 && connect(fill, (struct sockaddr *)&sun, sizeof(sun)) == 0);
	lfd = hfe_listen(&a, err, sizeof(err), NULL, 0);
	CHECK(lfd == -1);
	CHECK_HAS(err, "in use");
	CHECK(is_socket_file(a.path));

	/* ... and connecting to it times out, naming the address. */
	{
		int64_t t0 = mono_ms();

		cfd = hfe_connect(&a, 150, err, sizeof(err));
		CHECK(cfd == -1);
		CHECK_HAS(err, "timed out after 150 ms");
		CHECK_HAS(err, a.path);
		CHECK(mono_ms() - t0 >= 140);
		if (cfd >= 0)
			close(cfd);
	}
	close(fill);
	close(fd);
	unlink(a.path);

	/* A regular file is refused and left alone. */
	make_unix_addr(&a, "regular.sock");
	f = fopen(a.path, "w");
	CHECK(f && fputs("keep me", f) >= 0);
	if (f)
		fclose(f);
	lfd = hfe_listen(&a, err, sizeof(err), note, sizeof(note));
	CHECK(lfd == -1);
	CHECK_HAS(err, "exists and is not a socket");
	CHECK_HAS(err, a.path);
	CHECK(note[0] == '\0');
	hfe_addr_cleanup(&a); /* must not delete it either */
	f = fopen(a.path, "r");
	CHECK(f && fgets(buf, sizeof(buf), f) && !strcmp(buf, "keep me"));
	if (f)
		fclose(f);
	unlink(a.path);

	/* A directory too. */
	make_unix_addr(&a, "dir.sock");
	CHECK(mkdir(a.path, 0700) == 0);
	CHECK(hfe_listen(&a, err, sizeof(err), NULL, 0) == -1);
	CHECK_HAS(err, "not a socket");
	CHECK(file_exists(a.path));
	rmdir(a.path);

	/* A missing directory: bind's error, with strerror. */
	make_unix_addr(&a, "no-such-dir/x.sock");
	CHECK(hfe_listen(&a, err, sizeof(err), NULL, 0) == -1);
	CHECK_HAS(err, "bind: No such file or directory");

	/* Connecting to nothing names the address and the reason. */
	make_unix_addr(&a, "nobody.sock");
	CHECK(hfe_connect(&a, 500, err, sizeof(err)) == -1);
	snprintf(want, sizeof(want), "cannot connect to unix:%s: No such file or directory",
		 a.path);
	CHECK_HAS(err, want);
	printf("ok - unix: stale file removed with a note; live server, full backlog, regular "
	       "file and directory refused; connect errors and timeout\n");
}

static void test_unix_path_limits(void)
{
	struct hfe_addr a;
	char s[200], err[512];
	size_t base;
	int lfd, cfd, sfd;

	/* Exactly 107 bytes works end to end. */
	base = (size_t)snprintf(s, sizeof(s), "unix:%s/", tmpdir);
	memset(s + base, 'L', 107 - (base - 5));
	s[5 + 107] = '\0';
	CHECK(parse_ok(s, &a) == 0 && strlen(a.path) == 107);
	lfd = hfe_listen(&a, err, sizeof(err), NULL, 0);
	CHECK(lfd >= 0);
	if (lfd >= 0) {
		CHECK(connect_pair(&a, lfd, &cfd, &sfd));
		close(cfd);
		close(sfd);
		close(lfd);
		hfe_addr_cleanup(&a);
		CHECK(!file_exists(a.path));
	} else {
		fprintf(stderr, "listen 107: %s\n", err);
	}

	/* A hand-made address without a terminator is refused, not overrun. */
	memset(&a, 0, sizeof(a));
	a.kind = HFE_ADDR_UNIX;
	memset(a.path, 'z', sizeof(a.path));
	CHECK(hfe_listen(&a, err, sizeof(err), NULL, 0) == -1);
	CHECK_HAS(err, "socket path is too long");
	CHECK(hfe_connect(&a, 100, err, sizeof(err)) == -1);
	CHECK_HAS(err, "socket path is too long");
	hfe_addr_cleanup(&a);
	printf("ok - unix path limit: 107 bytes work, an unterminated path is refused\n");
}

/* ---------------------------------------------------------------- tcp */

static uint16_t free_tcp_port(int family)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	uint16_t port = 0;
	int fd = socket(family, SOCK_STREAM, 0);

	memset(&ss, 0, sizeof(ss));
	if (fd < 0)
		return 0;
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_loopback;
		sl = sizeof(*in6);
	}
	if (bind(fd, (struct sockaddr *)&ss, sl) == 0 &&
	    getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					       : ((struct sockaddr_in6 *)&ss)->sin6_port);
	close(fd);
	return port;
}

static bool nodelay(int fd)
{
	int v = 0;
	socklen_t sl = sizeof(v);

	return getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &sl) == 0 && v == 1;
}

static void test_tcp(void)
{
	struct hfe_addr a;
	char s[128], err[512], want[320];
	int lfd, lfd2, cfd, sfd, i, fd, conns[8], nconns = 0;
	uint16_t port = free_tcp_port(AF_INET);
	int64_t t0;

	CHECK(port != 0);
	snprintf(s, sizeof(s), "tcp:127.0.0.1:%u", port);
	CHECK(parse_ok(s, &a) == 0);
	lfd = hfe_listen(&a, err, sizeof(err), NULL, 0);
	CHECK(lfd >= 0);
	if (lfd < 0) {
		fprintf(stderr, "tcp listen: %s\n", err);
		return;
	}
	CHECK(fd_nonblock_cloexec(lfd));
	CHECK(connect_pair(&a, lfd, &cfd, &sfd));
	CHECK(fd_nonblock_cloexec(cfd) && fd_nonblock_cloexec(sfd));
	CHECK(nodelay(cfd) && nodelay(sfd));
	check_transfer(cfd, sfd, 8u << 20, 100003, "tcp 8 MiB non-blocking transfer", true);
	check_transfer(sfd, cfd, 5000, 13, "tcp reply in 13-byte reads", false);
	close(cfd);
	close(sfd);

	/* The port is taken: the error names the address and the reason. */
	lfd2 = hfe_listen(&a, err, sizeof(err), NULL, 0);
	CHECK(lfd2 == -1);
	snprintf(want, sizeof(want), "cannot listen on %s: bind: Address already in use", s);
	CHECK_HAS(err, want);
	close(lfd);

	/* Refused. */
	port = free_tcp_port(AF_INET);
	snprintf(s, sizeof(s), "tcp:127.0.0.1:%u", port);
	CHECK(parse_ok(s, &a) == 0);
	CHECK(hfe_connect(&a, 1000, err, sizeof(err)) == -1);
	snprintf(want, sizeof(want), "cannot connect to %s (127.0.0.1 port %u): Connection refused",
		 s, port);
	CHECK_HAS(err, want);

	/*
	 * Timeout: a listener with backlog 0 that never accepts. Once its accept
	 * queue is full the kernel drops further SYNs, so a connect hangs.
	 */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	{
		struct sockaddr_in in;

		memset(&in, 0, sizeof(in));
		in.sin_family = AF_INET;
		in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&in, sizeof(in)) == 0);
		CHECK(listen(fd, 0) == 0);
		socklen_t sl = sizeof(in);
		CHECK(getsockname(fd, (struct sockaddr *)&in, &sl) == 0);
		port = ntohs(in.sin_port);
	}
	snprintf(s, sizeof(s), "tcp:127.0.0.1:%u", port);
	CHECK(parse_ok(s, &a) == 0);
	err[0] = '\0';
	for (i = 0; i < 8; i++) {
		t0 = mono_ms();
		cfd = hfe_connect(&a, 200, err, sizeof(err));
		if (cfd < 0)
			break;
		conns[nconns++] = cfd;
	}
	CHECK(cfd == -1);
	snprintf(want, sizeof(want), "connecting to %s (127.0.0.1 port %u) timed out after 200 ms",
		 s, port);
	CHECK_HAS(err, want);
	CHECK(mono_ms() - t0 >= 190);
	while (nconns)
		close(conns[--nconns]);
	close(fd);
	printf("ok - tcp 127.0.0.1: listen/connect/accept, TCP_NODELAY, port in use, refused, "
	       "timeout\n");

	/* IPv6 loopback, where the machine has it. */
	port = free_tcp_port(AF_INET6);
	if (!port) {
		printf("SKIP - tcp [::1]: no IPv6 loopback here\n");
		return;
	}
	snprintf(s, sizeof(s), "tcp:[::1]:%u", port);
	CHECK(parse_ok(s, &a) == 0);
	lfd = hfe_listen(&a, err, sizeof(err), NULL, 0);
	CHECK(lfd >= 0);
	if (lfd >= 0) {
		CHECK(connect_pair(&a, lfd, &cfd, &sfd));
		CHECK(nodelay(cfd) && nodelay(sfd));
		check_transfer(cfd, sfd, 100000, 4096, "tcp [::1] transfer", false);
		close(cfd);
		close(sfd);
		close(lfd);
	} else {
		fprintf(stderr, "tcp6 listen: %s\n", err);
	}
}

/* ---------------------------------------------------------------- serial */

static bool read_exact(int fd, uint8_t *p, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = hfe_io_read(fd, p + got, len - got);

		if (n == -EAGAIN) {
			if (hfe_io_wait(fd, POLLIN, 2000) != 1)
				return false;
			continue;
		}
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return true;
}

static void test_serial(void)
{
	/* Bytes a cooked tty would change: ^C, CR, NL, NUL, DEL, ^Z, ^D, ^S. */
	static const uint8_t msg[] = { 0x03, '\r', '\n', 0x00, 0x7f, 0x1a, 0x04, 0x13, 'H', 'X',
				       'F', 'R', 0xff, '\r' };
	struct hfe_addr a;
	struct termios tio;
	char s[160], err[512], pts[64];
	uint8_t got[sizeof(msg)];
	struct iovec iov[2];
	int master, fd, fl;

	master = posix_openpt(O_RDWR | O_NOCTTY);
	CHECK(master >= 0);
	if (master < 0) {
		printf("SKIP - serial: posix_openpt: %s\n", strerror(errno));
		return;
	}
	CHECK(grantpt(master) == 0 && unlockpt(master) == 0);
	CHECK(ptsname_r(master, pts, sizeof(pts)) == 0);
	fl = fcntl(master, F_GETFL);
	CHECK(fl >= 0 && fcntl(master, F_SETFL, fl | O_NONBLOCK) == 0);

	snprintf(s, sizeof(s), "serial:%s", pts);
	CHECK(parse_ok(s, &a) == 0);
	fd = hfe_connect(&a, 1000, err, sizeof(err));
	CHECK(fd >= 0);
	if (fd < 0) {
		fprintf(stderr, "serial: %s\n", err);
		close(master);
		return;
	}
	CHECK(fd_nonblock_cloexec(fd));
	CHECK(isatty(fd));
	CHECK(tcgetattr(fd, &tio) == 0);
	CHECK(!(tio.c_lflag & (ICANON | ECHO | ISIG | IEXTEN)));
	CHECK(!(tio.c_iflag & (ICRNL | INLCR | IGNCR | IXON | ISTRIP)));
	CHECK(!(tio.c_oflag & OPOST));

	/* Host -> guest: arrives byte for byte, nothing cooked, no echo. */
	CHECK(write(master, msg, sizeof(msg)) == (ssize_t)sizeof(msg));
	memset(got, 0, sizeof(got));
	CHECK(read_exact(fd, got, sizeof(got)));
	CHECK(!memcmp(got, msg, sizeof(msg)));
	CHECK(hfe_io_wait(master, POLLIN, 50) == 0); /* no echo came back */

	/* Guest -> host through the writev fallback for non-sockets. */
	iov[0].iov_base = (void *)msg;
	iov[0].iov_len = 5;
	iov[1].iov_base = (void *)(msg + 5);
	iov[1].iov_len = sizeof(msg) - 5;
	CHECK(hfe_io_writev(fd, iov, 2) == (ssize_t)sizeof(msg));
	memset(got, 0, sizeof(got));
	CHECK(read_exact(master, got, sizeof(got)));
	CHECK(!memcmp(got, msg, sizeof(msg)));

	/* A pty holds a few KiB: a bigger transfer needs partial writes. */
	check_transfer(fd, master, 512 * 1024, 3001, "serial (pty) non-blocking transfer", true);
	close(fd);
	close(master);

	/* Errors. */
	CHECK(parse_ok("serial:/dev/hfe-no-such-port", &a) == 0);
	CHECK(hfe_connect(&a, 100, err, sizeof(err)) == -1);
	CHECK_HAS(err, "cannot open serial:/dev/hfe-no-such-port: No such file or directory");
	CHECK(hfe_listen(&a, err, sizeof(err), NULL, 0) == -1);
	CHECK_HAS(err, "serial:/dev/hfe-no-such-port");
	CHECK_HAS(err, "can only be connected to");
	printf("ok - serial: pty opened raw, binary bytes both ways, errors named\n");
}

/* ---------------------------------------------------------------- vsock */

static void test_vsock(void)
{
	struct hfe_addr a, c;
	char s[64], err[512];
	uint32_t port = 40000u + (uint32_t)(getpid() % 20000);
	int lfd, cfd = -1, sfd;
	struct stat st;

	snprintf(s, sizeof(s), "vsock:any:%u", port);
	CHECK(parse_ok(s, &a) == 0);
	lfd = hfe_listen(&a, err, sizeof(err), NULL, 0);
	if (lfd < 0) {
		/* Missing support must be a clear message, not a crash. */
		CHECK_HAS(err, s);
		CHECK(strlen(err) > strlen(s) + 10);
		printf("SKIP - vsock listen: %s\n", err);
	} else {
		CHECK(fd_nonblock_cloexec(lfd));
		/* Binding a CID that is not ours fails locally, naming the address. */
		snprintf(s, sizeof(s), "vsock:3999999:%u", port);
		CHECK(parse_ok(s, &c) == 0);
		CHECK(hfe_listen(&c, err, sizeof(err), NULL, 0) == -1);
		CHECK_HAS(err, "cannot listen on vsock:3999999:");
		CHECK_HAS(err, "bind: ");
	}

	/*
	 * Connect only through the loopback transport: without it the kernel
	 * hands CID 1 to the guest->host transport, i.e. to the hypervisor.
	 */
	if (stat("/sys/module/vsock_loopback", &st) != 0 || lfd < 0) {
		printf("SKIP - vsock connect: no vsock_loopback transport on this machine\n");
		goto out;
	}
	snprintf(s, sizeof(s), "vsock:1:%u", port);
	CHECK(parse_ok(s, &c) == 0);
	cfd = hfe_connect(&c, 1000, err, sizeof(err));
	CHECK(cfd >= 0);
	if (cfd < 0) {
		fprintf(stderr, "vsock connect: %s\n", err);
		CHECK_HAS(err, s);
		goto out;
	}
	CHECK(fd_nonblock_cloexec(cfd));
	CHECK(hfe_io_wait(lfd, POLLIN, 2000) == 1);
	sfd = hfe_accept(lfd);
	CHECK(sfd >= 0);
	if (sfd >= 0) {
		check_transfer(cfd, sfd, 1u << 20, 65536, "vsock loopback transfer", false);
		close(sfd);
	}
	close(cfd);
out:
	if (lfd >= 0)
		close(lfd);
	printf("ok - vsock: listen works or fails with a clear error\n");
}

/* ---------------------------------------------------------------- misc I/O */

static void test_io_misc(void)
{
	int p[2];
	uint8_t b[8] = { 0 };
	struct iovec iov = { .iov_base = b, .iov_len = sizeof(b) };
	sigset_t pend;

	CHECK(hfe_io_read(-1, b, sizeof(b)) == -EBADF);
	CHECK(hfe_io_writev(-1, &iov, 1) == -EBADF);
	CHECK(hfe_io_writev(0, &iov, -1) == -EINVAL);
	CHECK(hfe_io_wait(1000, POLLIN, 10) == -EBADF);

	/* A pipe without a reader: -EPIPE, no SIGPIPE delivered or left pending. */
	CHECK(pipe2(p, O_CLOEXEC) == 0);
	close(p[0]);
	CHECK(hfe_io_writev(p[1], &iov, 1) == -EPIPE);
	CHECK(sigpending(&pend) == 0 && !sigismember(&pend, SIGPIPE));
	close(p[1]);

	/* Pipe data and EOF through the non-socket paths. */
	CHECK(pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
	CHECK(hfe_io_read(p[0], b, sizeof(b)) == -EAGAIN);
	CHECK(hfe_io_writev(p[1], &iov, 1) == (ssize_t)sizeof(b));
	CHECK(hfe_io_wait(p[0], POLLIN, 100) == 1);
	CHECK(hfe_io_read(p[0], b, sizeof(b)) == (ssize_t)sizeof(b));
	close(p[1]);
	CHECK(hfe_io_read(p[0], b, sizeof(b)) == 0);
	close(p[0]);
	printf("ok - io helpers: EBADF, EINVAL, EAGAIN, EOF, EPIPE on a pipe without SIGPIPE\n");
}

/* ---------------------------------------------------------------- logging */

struct capture {
	int n;
	enum hfe_log_level level[8];
	char msg[8][4096];
};

static void capture_sink(enum hfe_log_level level, const char *msg, void *opaque)
{
	struct capture *c = opaque;

	if (c->n < 8) {
		c->level[c->n] = level;
		snprintf(c->msg[c->n], sizeof(c->msg[0]), "%s", msg);
	}
	c->n++;
}

/* "2026-11-26T06:30:00.123Z helix-frame-export[PID] LEVEL: " prefix check. */
static bool line_prefix_ok(const char *l, const char *level, const char **rest)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ helix-frame-export[";
	char want[64];
	size_t i, n;

	for (i = 0; shape[i]; i++) {
		if (shape[i] == 'd' ? (l[i] < '0' || l[i] > '9') : l[i] != shape[i])
			return false;
	}
	n = (size_t)snprintf(want, sizeof(want), "%ld] %s: ", (long)getpid(), level);
	if (strncmp(l + i, want, n))
		return false;
	*rest = l + i + n;
	return true;
}

#define LOG_THREADS 4
#define LOG_LINES 250

static void *log_thread(void *arg)
{
	int t = (int)(intptr_t)arg, i;

	for (i = 0; i < LOG_LINES; i++)
		hfe_info("thread %d line %d %s", t, i, "padding-padding-padding-padding");
	return NULL;
}

static int run_log_child(const char *self, const char *env, char *out, size_t outlen)
{
	int p[2], st;
	ssize_t n;
	size_t got = 0;
	pid_t pid;

	if (pipe(p) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		setenv("HFE_LOG", env, 1);
		execl(self, self, "--log-child", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	while (got + 1 < outlen && (n = read(p[0], out + got, outlen - 1 - got)) > 0)
		got += (size_t)n;
	out[got] = '\0';
	close(p[0]);
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

static void test_log(const char *self)
{
	static struct capture cap;
	static char big[5000], out[4096];
	const char *v = hfe_version_string(), *rest;
	pthread_t th[LOG_THREADS];
	int counts[LOG_THREADS] = { 0 }, saved, i, lines = 0;
	char path[128], line[512];
	FILE *f;

	/* Version string. */
	CHECK(!strncmp(v, "helix-frame-export ", 19));
	CHECK_HAS(v, " (git ");
	CHECK(v[strlen(v) - 1] == ')');
	CHECK(!strstr(v, "@HFE_GIT@") && !strstr(v, "unknown"));

	/* $HFE_LOG sets the level (read at the first log call). */
	setenv("HFE_LOG", "error", 1);
	hfe_log_set_sink(capture_sink, &cap);
	hfe_warn("dropped %d", 1);
	hfe_error("kept %d %s\n", 2, "x");
	CHECK(cap.n == 1);
	CHECK(cap.level[0] == HFE_LOG_ERROR);
	CHECK(!strcmp(cap.msg[0], "kept 2 x")); /* trailing newline stripped */

	hfe_log_set_level(HFE_LOG_DEBUG);
	hfe_debug("debug %s", "now");
	CHECK(cap.n == 2 && cap.level[1] == HFE_LOG_DEBUG && !strcmp(cap.msg[1], "debug now"));
	hfe_log_set_level(HFE_LOG_INFO);
	hfe_debug("hidden");
	CHECK(cap.n == 2);

	/* Over-long messages are cut with a marker. */
	memset(big, 'b', sizeof(big) - 1);
	hfe_info("%s", big);
	CHECK(cap.n == 3 && strlen(cap.msg[2]) == 2047);
	CHECK(!strcmp(cap.msg[2] + 2044, "..."));

	/* A peer's fault reaches the sink as such, filtered like a warning. */
	hfe_log_set_level(HFE_LOG_ERROR);
	hfe_peer_fault("peer hidden");
	CHECK(cap.n == 3);
	hfe_log_set_level(HFE_LOG_WARN);
	hfe_peer_fault("peer %s", "bad");
	CHECK(cap.n == 4 && cap.level[3] == HFE_LOG_PEER && !strcmp(cap.msg[3], "peer bad"));
	hfe_log_set_level(HFE_LOG_PEER); /* the same as WARN */
	hfe_info("hidden");
	hfe_warn("host %s", "warn");
	CHECK(cap.n == 5 && cap.level[4] == HFE_LOG_WARN);
	hfe_log_set_level(HFE_LOG_INFO);

	/* Default sink: stderr, one whole line per message, from many threads. */
	hfe_log_set_sink(NULL, NULL);
	snprintf(path, sizeof(path), "%s/log.txt", tmpdir);
	fflush(stderr);
	saved = dup(2);
	f = fopen(path, "w+");
	CHECK(saved >= 0 && f);
	if (saved < 0 || !f)
		return;
	dup2(fileno(f), 2);
	hfe_warn("single %d", 42);
	for (i = 0; i < LOG_THREADS; i++)
		CHECK(pthread_create(&th[i], NULL, log_thread, (void *)(intptr_t)i) == 0);
	for (i = 0; i < LOG_THREADS; i++)
		pthread_join(th[i], NULL);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);

	rewind(f);
	CHECK(fgets(line, sizeof(line), f) != NULL);
	CHECK(line_prefix_ok(line, "WARN", &rest) && !strcmp(rest, "single 42\n"));
	if (!line_prefix_ok(line, "WARN", &rest))
		fprintf(stderr, "log line: %s", line);
	while (fgets(line, sizeof(line), f)) {
		int t, n;
		char tail[64];

		lines++;
		if (!line_prefix_ok(line, "INFO", &rest) ||
		    sscanf(rest, "thread %d line %d %63s", &t, &n, tail) != 3 || t < 0 ||
		    t >= LOG_THREADS || n != counts[t] ||
		    strcmp(tail, "padding-padding-padding-padding") ||
		    line[strlen(line) - 1] != '\n') {
			fprintf(stderr, "bad log line: %s", line);
			CHECK(0);
			break;
		}
		counts[t]++;
	}
	fclose(f);
	CHECK(lines == LOG_THREADS * LOG_LINES);
	for (i = 0; i < LOG_THREADS; i++)
		CHECK(counts[i] == LOG_LINES);

	/* Fresh processes: $HFE_LOG=debug shows debug; a bad value is reported. */
	CHECK(run_log_child(self, "debug", out, sizeof(out)) == 0);
	CHECK_HAS(out, "] DEBUG: child debug");
	CHECK_HAS(out, "] INFO: child info");
	CHECK(run_log_child(self, "warn", out, sizeof(out)) == 0);
	CHECK(!strstr(out, "child info") && !strstr(out, "child debug"));
	CHECK_HAS(out, "] WARN: child warn");
	CHECK_HAS(out, "] WARN (peer): child peer");
	CHECK(run_log_child(self, "bogus", out, sizeof(out)) == 0);
	CHECK_HAS(out, "] WARN: HFE_LOG='bogus' not understood");
	CHECK_HAS(out, "] INFO: child info");
	CHECK(!strstr(out, "child debug"));
	printf("ok - log: version string, levels, peer faults, $HFE_LOG, sink, truncation, %d "
	       "threaded lines whole\n", lines);
}

/* ---------------------------------------------------------------- main */

static void remove_tmpdir(void)
{
	char cmd[128];

	/* The directory only holds what this test made. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--log-child")) {
		hfe_debug("child debug");
		hfe_info("child info");
		hfe_warn("child warn");
		hfe_peer_fault("child peer");
		return 0;
	}
	/* Default SIGPIPE action: a write that raised it would kill the test. */
	signal(SIGPIPE, SIG_DFL);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/hfe-test-addr-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}

	test_log("/proc/self/exe");
	test_parse_ok();
	test_parse_errors();
	test_unix_basic();
	test_unix_existing_files();
	test_unix_path_limits();
	test_tcp();
	test_serial();
	test_vsock();
	test_io_misc();

	remove_tmpdir();
	printf("test_addr: %d passed, %d failed\n", n_pass, n_fail);
	return n_fail ? 1 : 0;
}
