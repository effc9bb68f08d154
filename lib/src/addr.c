/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Transports behind one address syntax: parsing/formatting, listen/accept/
 * connect for unix, tcp, vsock and serial, and small EINTR-safe I/O helpers.
 */
#include "hfe/addr.h"
#include "hfe/log.h"
#include "sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#if defined(__linux__) && defined(AF_VSOCK)
#include <linux/vm_sockets.h>
#define HFE_HAVE_VSOCK 1
#endif

/* Not in POSIX (though every system with getnameinfo has them): glibc's sizes. */
#ifndef NI_MAXHOST
#define NI_MAXHOST 1025
#endif
#ifndef NI_MAXSERV
#define NI_MAXSERV 32
#endif

#define HFE_VSOCK_CID_ANY 0xFFFFFFFFu
#define HFE_VSOCK_PORT_MAX 0xFFFFFFFEu /* 0xFFFFFFFF is the kernel's "any port" */
#define HFE_LISTEN_BACKLOG 64
/* Big frames (8 MiB of 4K BGRx) move in fewer wakeups with a big send buffer. */
#define HFE_SOCK_BUF (4 * 1024 * 1024)
/* Enough for "tcp:[<255 chars>]:65535" and any path. */
#define HFE_ADDR_STRMAX 300

#define KIND_HELP "expected unix:PATH, tcp:HOST:PORT, vsock:CID:PORT or serial:PATH"

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until deadline (-1 = no deadline), for poll(). */
static int remaining_ms(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - now_ms();
	if (left <= 0)
		return 0;
	return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

/* ---- parsing and formatting ---- */

/* Decimal digits only (no sign, no blanks), value in [min, max]. */
static int parse_u32(const char *p, uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;

	if (!*p)
		return -1;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > max)
			return -1;
	}
	if (v < min)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int parse_path(const char *kind, const char *s, const char *rest, char *dst, size_t dstsize,
		      char *err, size_t errlen)
{
	size_t len = strlen(rest);

	if (!len) {
		set_err(err, errlen, "%s address needs a path, got '%s'", kind, s);
		return -1;
	}
	if (len >= dstsize) {
		set_err(err, errlen, "%s path is too long (%zu bytes, at most %zu): '%s'", kind,
			len, dstsize - 1, rest);
		return -1;
	}
	memcpy(dst, rest, len + 1);
	return 0;
}

static bool is_host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_';
}

/* Bracketed IPv6 literal, optionally with a %zone (fe80::1%eth0). */
static int check_ipv6(const char *host, size_t hlen, const char *s, char *err, size_t errlen)
{
	char tmp[INET6_ADDRSTRLEN + 1];
	struct in6_addr in6;
	const char *pct = memchr(host, '%', hlen);
	size_t alen = pct ? (size_t)(pct - host) : hlen;

	if (!hlen) {
		set_err(err, errlen, "tcp address has an empty IPv6 host '[]' in '%s'", s);
		return -1;
	}
	if (pct) {
		const char *z;

		if (pct + 1 == host + hlen)
			goto bad;
		for (z = pct + 1; z < host + hlen; z++)
			if (!is_host_char(*z))
				goto bad;
	}
	if (alen >= sizeof(tmp))
		goto bad;
	memcpy(tmp, host, alen);
	tmp[alen] = '\0';
	if (inet_pton(AF_INET6, tmp, &in6) != 1)
		goto bad;
	return 0;
bad:
	set_err(err, errlen, "tcp host '[%.*s]' is not a valid IPv6 address in '%s'", (int)hlen,
		host, s);
	return -1;
}

static int parse_tcp(const char *s, const char *rest, struct hfe_addr *a, char *err,
		     size_t errlen)
{
	const char *host, *port;
	size_t hlen, i;

	if (rest[0] == '[') {
		const char *close = strchr(rest, ']');

		if (!close) {
			set_err(err, errlen, "tcp address has '[' without ']' in '%s'", s);
			return -1;
		}
		if (close[1] != ':') {
			set_err(err, errlen, "tcp address needs [IPv6]:PORT, got '%s'", s);
			return -1;
		}
		host = rest + 1;
		hlen = (size_t)(close - host);
		port = close + 2;
		if (check_ipv6(host, hlen, s, err, errlen) < 0)
			return -1;
	} else {
		const char *colon = strrchr(rest, ':');

		if (!colon) {
			set_err(err, errlen, "tcp address needs HOST:PORT, got '%s'", s);
			return -1;
		}
		host = rest;
		hlen = (size_t)(colon - rest);
		port = colon + 1;
		if (!hlen) {
			set_err(err, errlen, "tcp address needs a HOST before the port, got '%s'",
				s);
			return -1;
		}
		if (memchr(host, ':', hlen)) {
			set_err(err, errlen,
				"tcp address '%s': an IPv6 host must be in brackets, "
				"e.g. tcp:[::1]:PORT", s);
			return -1;
		}
		for (i = 0; i < hlen; i++) {
			if (!is_host_char(host[i])) {
				set_err(err, errlen,
					"tcp host '%.*s' has an invalid character (0x%02x) in '%s'",
					(int)hlen, host, (unsigned char)host[i], s);
				return -1;
			}
		}
	}
	if (hlen >= sizeof(a->host)) {
		set_err(err, errlen, "tcp host is too long (%zu bytes, at most %zu) in '%s'", hlen,
			sizeof(a->host) - 1, s);
		return -1;
	}
	if (parse_u32(port, 1, 65535, &a->port) < 0) {
		set_err(err, errlen, "tcp port must be a number from 1 to 65535, got '%s' in '%s'",
			port, s);
		return -1;
	}
	memcpy(a->host, host, hlen);
	a->host[hlen] = '\0';
	return 0;
}

static int parse_vsock(const char *s, const char *rest, struct hfe_addr *a, char *err,
		       size_t errlen)
{
	const char *colon = strchr(rest, ':');
	char cid[16];
	size_t clen;

	if (!colon) {
		set_err(err, errlen, "vsock address needs CID:PORT, got '%s'", s);
		return -1;
	}
	clen = (size_t)(colon - rest);
	if (clen == 0 || clen >= sizeof(cid))
		goto bad_cid;
	memcpy(cid, rest, clen);
	cid[clen] = '\0';
	if (!strcmp(cid, "any"))
		a->cid = HFE_VSOCK_CID_ANY;
	else if (parse_u32(cid, 0, HFE_VSOCK_CID_ANY - 1, &a->cid) < 0)
		goto bad_cid;
	if (parse_u32(colon + 1, 1, HFE_VSOCK_PORT_MAX, &a->port) < 0) {
		set_err(err, errlen, "vsock port must be a number from 1 to %u, got '%s' in '%s'",
			HFE_VSOCK_PORT_MAX, colon + 1, s);
		return -1;
	}
	return 0;
bad_cid:
	set_err(err, errlen, "vsock CID must be a number or 'any', got '%.*s' in '%s'", (int)clen,
		rest, s);
	return -1;
}

int hfe_addr_parse(const char *s, struct hfe_addr *a, char *err, size_t errlen)
{
	struct hfe_addr t;
	const char *colon, *rest;
	size_t klen;
	int r;

	if (err && errlen)
		err[0] = '\0';
	if (!s || !*s) {
		set_err(err, errlen, "empty address (%s)", KIND_HELP);
		return -1;
	}
	memset(&t, 0, sizeof(t));
	colon = strchr(s, ':');
	if (!colon) {
		set_err(err, errlen, "address '%s' has no kind prefix (%s)", s, KIND_HELP);
		return -1;
	}
	klen = (size_t)(colon - s);
	rest = colon + 1;
	if (klen == 4 && !memcmp(s, "unix", 4)) {
		t.kind = HFE_ADDR_UNIX;
		r = parse_path("unix", s, rest, t.path, sizeof(t.path), err, errlen);
	} else if (klen == 3 && !memcmp(s, "tcp", 3)) {
		t.kind = HFE_ADDR_TCP;
		r = parse_tcp(s, rest, &t, err, errlen);
	} else if (klen == 5 && !memcmp(s, "vsock", 5)) {
		t.kind = HFE_ADDR_VSOCK;
		r = parse_vsock(s, rest, &t, err, errlen);
	} else if (klen == 6 && !memcmp(s, "serial", 6)) {
		t.kind = HFE_ADDR_SERIAL;
		r = parse_path("serial", s, rest, t.path, sizeof(t.path), err, errlen);
	} else {
		set_err(err, errlen, "unknown address kind '%.*s' in '%s' (%s)", (int)klen, s, s,
			KIND_HELP);
		return -1;
	}
	if (r < 0)
		return -1;
	*a = t;
	return 0;
}

const char *hfe_addr_str(const struct hfe_addr *a, char *buf, size_t len)
{
	if (!buf || !len)
		return buf;
	switch (a->kind) {
	case HFE_ADDR_UNIX:
		snprintf(buf, len, "unix:%.*s", (int)sizeof(a->path), a->path);
		break;
	case HFE_ADDR_SERIAL:
		snprintf(buf, len, "serial:%.*s", (int)sizeof(a->path), a->path);
		break;
	case HFE_ADDR_TCP:
		if (memchr(a->host, ':', strnlen(a->host, sizeof(a->host))))
			snprintf(buf, len, "tcp:[%.*s]:%u", (int)sizeof(a->host), a->host, a->port);
		else
			snprintf(buf, len, "tcp:%.*s:%u", (int)sizeof(a->host), a->host, a->port);
		break;
	case HFE_ADDR_VSOCK:
		if (a->cid == HFE_VSOCK_CID_ANY)
			snprintf(buf, len, "vsock:any:%u", a->port);
		else
			snprintf(buf, len, "vsock:%u:%u", a->cid, a->port);
		break;
	default:
		snprintf(buf, len, "(invalid address kind %d)", (int)a->kind);
		break;
	}
	return buf;
}

/* ---- socket helpers ---- */

static int socket_family(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return AF_UNSPEC;
	return ss.ss_family;
}

/*
 * Unix sockets: a bigger send buffer (the sender's is what bounds a unix
 * stream) lets large frames go in fewer wakeups; the kernel clamps it to
 * net.core.wmem_max. TCP: explicit buffer sizes would switch off the kernel's
 * autotuning (which grows past wmem_max), so only TCP_NODELAY is set.
 */
static void tune_socket(int fd, int family)
{
	int v;

	if (family == AF_UNIX) {
		v = HFE_SOCK_BUF;
		if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v)) < 0)
			hfe_debug("setsockopt(SO_SNDBUF): %s", strerror(errno));
		v = HFE_SOCK_BUF;
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v)) < 0)
			hfe_debug("setsockopt(SO_RCVBUF): %s", strerror(errno));
	} else if (family == AF_INET || family == AF_INET6) {
		v = 1;
		if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof(v)) < 0)
			hfe_debug("setsockopt(TCP_NODELAY): %s", strerror(errno));
	}
}

static const char *gai_msg(int rc)
{
	return rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc);
}

/* Numeric "ip port N" text of a sockaddr, for messages. */
static void sa_str(const struct sockaddr *sa, socklen_t len, char *buf, size_t buflen)
{
	char h[NI_MAXHOST], p[NI_MAXSERV];

	if (getnameinfo(sa, len, h, sizeof(h), p, sizeof(p), NI_NUMERICHOST | NI_NUMERICSERV))
		snprintf(buf, buflen, "?");
	else
		snprintf(buf, buflen, "%s port %s", h, p);
}

static int fill_sun(struct sockaddr_un *sun, const struct hfe_addr *a, const char *name,
		    char *err, size_t errlen)
{
	size_t plen = strnlen(a->path, sizeof(a->path));

	if (!plen) {
		set_err(err, errlen, "%s: empty socket path", name);
		return -1;
	}
	if (plen >= sizeof(sun->sun_path)) {
		set_err(err, errlen,
			"%s: socket path is too long (%zu bytes; a unix socket path holds "
			"at most %zu)", name, plen, sizeof(sun->sun_path) - 1);
		return -1;
	}
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, a->path, plen);
	return 0;
}

/*
 * Connect to sa, waiting until deadline (-1 = forever). Returns 0 or -errno
 * (-ETIMEDOUT when the deadline passed).
 */
static int connect_wait(int fd, const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
	int soerr, r;
	socklen_t sl = sizeof(soerr);

	for (;;) {
		if (connect(fd, sa, len) == 0)
			return 0;
		/* An interrupted connect goes on in the background: wait for it. */
		if (errno == EINPROGRESS || errno == EINTR)
			break;
		/* A unix listener with a full backlog says EAGAIN: retry until the deadline. */
		if (errno == EAGAIN && sa->sa_family == AF_UNIX) {
			int left = remaining_ms(deadline);

			if (left == 0)
				return -ETIMEDOUT;
			poll(NULL, 0, left < 0 || left > 10 ? 10 : left);
			continue;
		}
		return -errno;
	}
	r = hfe_io_wait(fd, POLLOUT, remaining_ms(deadline));
	if (r == 0)
		return -ETIMEDOUT;
	if (r < 0)
		return r;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		return -errno;
	return soerr ? -soerr : 0;
}

/* ---- listen ---- */

/*
 * An existing file at a unix listener's path: a live server there is an
 * error, a stale socket file (nobody answers) is removed, anything that is
 * not a socket is left alone and is an error.
 */
static int unix_clear_stale(const struct sockaddr_un *sun, const char *name, char *err,
			    size_t errlen, char *note, size_t notelen)
{
	struct stat st;
	int probe, r, e;

	if (lstat(sun->sun_path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		set_err(err, errlen, "cannot listen on %s: stat: %s", name, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		set_err(err, errlen,
			"cannot listen on %s: '%s' exists and is not a socket (left untouched)",
			name, sun->sun_path);
		return -1;
	}
	probe = hfe_sock_open(AF_UNIX, SOCK_STREAM, 0);
	if (probe < 0) {
		set_err(err, errlen, "cannot listen on %s: socket: %s", name, strerror(errno));
		return -1;
	}
	do
		r = connect(probe, (const struct sockaddr *)sun, sizeof(*sun));
	while (r < 0 && errno == EINTR);
	e = r < 0 ? errno : 0;
	close(probe);
	/* EAGAIN: a live listener whose backlog is full. */
	if (r == 0 || e == EAGAIN || e == EINPROGRESS) {
		set_err(err, errlen,
			"cannot listen on %s: the socket is already in use by a running server",
			name);
		return -1;
	}
	if (e != ECONNREFUSED) {
		set_err(err, errlen, "cannot listen on %s: probing the existing socket file: %s",
			name, strerror(e));
		return -1;
	}
	if (unlink(sun->sun_path) < 0 && errno != ENOENT) {
		set_err(err, errlen, "cannot listen on %s: removing stale socket file: %s", name,
			strerror(errno));
		return -1;
	}
	if (note && notelen)
		snprintf(note, notelen, "removed stale socket file %s", sun->sun_path);
	return 0;
}

static int listen_unix(const struct hfe_addr *a, const struct hfe_unix_perm *perm,
		       const char *name, char *err, size_t errlen, char *note, size_t notelen)
{
	unsigned mode = perm && perm->mode ? perm->mode & 0777 : HFE_UNIX_MODE_DEFAULT;
	uid_t uid = perm ? perm->uid : (uid_t)-1;
	gid_t gid = perm ? perm->gid : (gid_t)-1;
	struct sockaddr_un sun;
	mode_t old_mask;
	int fd, r, e;

	if (fill_sun(&sun, a, name, err, errlen) < 0)
		return -1;
	if (unix_clear_stale(&sun, name, err, errlen, note, notelen) < 0)
		return -1;
	fd = hfe_sock_open(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0) {
		set_err(err, errlen, "cannot listen on %s: socket: %s", name, strerror(errno));
		return -1;
	}
	tune_socket(fd, AF_UNIX);
	/* bind() creates the file with 0777 & ~umask: the mode is right from the
	 * start. (umask is per process; nothing else here creates files now.) */
	old_mask = umask(~(mode_t)mode & 0777);
	r = bind(fd, (const struct sockaddr *)&sun, sizeof(sun));
	e = errno;
	umask(old_mask);
	if (r < 0) {
		set_err(err, errlen, "cannot listen on %s: bind: %s", name, strerror(e));
		close(fd);
		return -1;
	}
	/* Nobody can connect before listen(): the owner changes first. Not
	 * following a symlink someone swapped in for the socket file. */
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) &&
	    fchownat(AT_FDCWD, sun.sun_path, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
		set_err(err, errlen, "cannot listen on %s: setting owner %d:%d: %s", name,
			(int)uid, (int)gid, strerror(errno));
		close(fd);
		unlink(sun.sun_path);
		return -1;
	}
	if (listen(fd, HFE_LISTEN_BACKLOG) < 0) {
		set_err(err, errlen, "cannot listen on %s: listen: %s", name, strerror(errno));
		close(fd);
		unlink(sun.sun_path);
		return -1;
	}
	return fd;
}

static int listen_tcp(const struct hfe_addr *a, const char *name, char *err, size_t errlen)
{
	struct addrinfo hints, *res, *ai;
	char port[16];
	const char *step = "bind";
	int rc, fd = -1, e = 0, one = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", a->port);
	rc = getaddrinfo(a->host, port, &hints, &res);
	if (rc) {
		set_err(err, errlen, "cannot listen on %s: cannot resolve '%s': %s", name, a->host,
			gai_msg(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = hfe_sock_open(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0) {
			step = "socket";
			e = errno;
			continue;
		}
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
			step = "setsockopt(SO_REUSEADDR)";
		} else if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			step = "bind";
		} else if (listen(fd, HFE_LISTEN_BACKLOG) < 0) {
			step = "listen";
		} else {
			tune_socket(fd, ai->ai_family);
			break;
		}
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		set_err(err, errlen, "cannot listen on %s: %s: %s", name, step, strerror(e));
	return fd;
}

#ifdef HFE_HAVE_VSOCK
static int vsock_socket(const char *what, const char *name, char *err, size_t errlen)
{
	int fd = hfe_sock_open(AF_VSOCK, SOCK_STREAM, 0);

	if (fd < 0) {
		int e = errno;

		if (e == EAFNOSUPPORT || e == EPROTONOSUPPORT)
			set_err(err, errlen,
				"cannot %s %s: vsock is not available on this system (%s); a host "
				"needs the vhost_vsock module, a guest a vsock transport",
				what, name, strerror(e));
		else
			set_err(err, errlen, "cannot %s %s: socket: %s", what, name, strerror(e));
	}
	return fd;
}

static void fill_svm(struct sockaddr_vm *svm, const struct hfe_addr *a)
{
	memset(svm, 0, sizeof(*svm));
	svm->svm_family = AF_VSOCK;
	svm->svm_cid = a->cid;
	svm->svm_port = a->port;
}

static int listen_vsock(const struct hfe_addr *a, const char *name, char *err, size_t errlen)
{
	struct sockaddr_vm svm;
	int fd = vsock_socket("listen on", name, err, errlen);

	if (fd < 0)
		return -1;
	fill_svm(&svm, a);
	if (bind(fd, (const struct sockaddr *)&svm, sizeof(svm)) < 0) {
		set_err(err, errlen, "cannot listen on %s: bind: %s", name, strerror(errno));
		close(fd);
		return -1;
	}
	if (listen(fd, HFE_LISTEN_BACKLOG) < 0) {
		set_err(err, errlen, "cannot listen on %s: listen: %s", name, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}
#endif

int hfe_listen(const struct hfe_addr *a, char *err, size_t errlen, char *note, size_t notelen)
{
	return hfe_listen_perm(a, NULL, err, errlen, note, notelen);
}

int hfe_listen_perm(const struct hfe_addr *a, const struct hfe_unix_perm *perm, char *err,
		    size_t errlen, char *note, size_t notelen)
{
	char name[HFE_ADDR_STRMAX];

	if (err && errlen)
		err[0] = '\0';
	if (note && notelen)
		note[0] = '\0';
	hfe_addr_str(a, name, sizeof(name));
	switch (a->kind) {
	case HFE_ADDR_UNIX:
		return listen_unix(a, perm, name, err, errlen, note, notelen);
	case HFE_ADDR_TCP:
		return listen_tcp(a, name, err, errlen);
	case HFE_ADDR_VSOCK:
#ifdef HFE_HAVE_VSOCK
		return listen_vsock(a, name, err, errlen);
#else
		set_err(err, errlen, "cannot listen on %s: vsock is not supported on this platform",
			name);
		return -1;
#endif
	case HFE_ADDR_SERIAL:
		set_err(err, errlen,
			"cannot listen on %s: serial devices can only be connected to "
			"(on the host, listen on the chardev's unix: socket instead)", name);
		return -1;
	}
	set_err(err, errlen, "cannot listen on %s: invalid address kind", name);
	return -1;
}

int hfe_accept(int listen_fd)
{
	int fd;

	do
		fd = hfe_sock_accept(listen_fd);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return -1;
	tune_socket(fd, socket_family(fd));
	return fd;
}

/* ---- connect ---- */

static void connect_err(char *err, size_t errlen, const char *name, const char *via, int e,
			int timeout_ms)
{
	if (e == ETIMEDOUT && timeout_ms >= 0)
		set_err(err, errlen, "connecting to %s%s%s%s timed out after %d ms", name,
			via ? " (" : "", via ? via : "", via ? ")" : "", timeout_ms);
	else
		set_err(err, errlen, "cannot connect to %s%s%s%s: %s", name, via ? " (" : "",
			via ? via : "", via ? ")" : "", strerror(e));
}

static int connect_unix(const struct hfe_addr *a, const char *name, int64_t deadline,
			int timeout_ms, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	int fd, r;

	if (fill_sun(&sun, a, name, err, errlen) < 0)
		return -1;
	fd = hfe_sock_open(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0) {
		set_err(err, errlen, "cannot connect to %s: socket: %s", name, strerror(errno));
		return -1;
	}
	tune_socket(fd, AF_UNIX);
	r = connect_wait(fd, (const struct sockaddr *)&sun, sizeof(sun), deadline);
	if (r < 0) {
		connect_err(err, errlen, name, NULL, -r, timeout_ms);
		close(fd);
		return -1;
	}
	return fd;
}

static int connect_tcp(const struct hfe_addr *a, const char *name, int64_t deadline,
		       int timeout_ms, char *err, size_t errlen)
{
	struct addrinfo hints, *res, *ai;
	char port[16], via[NI_MAXHOST + NI_MAXSERV + 8] = "";
	int rc, fd = -1, e = EHOSTUNREACH;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", a->port);
	rc = getaddrinfo(a->host, port, &hints, &res);
	if (rc) {
		set_err(err, errlen, "cannot connect to %s: cannot resolve '%s': %s", name, a->host,
			gai_msg(rc));
		return -1;
	}
	/* Try each resolved address in turn; the deadline covers all of them. */
	for (ai = res; ai; ai = ai->ai_next) {
		sa_str(ai->ai_addr, ai->ai_addrlen, via, sizeof(via));
		fd = hfe_sock_open(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		tune_socket(fd, ai->ai_family);
		rc = connect_wait(fd, ai->ai_addr, ai->ai_addrlen, deadline);
		if (rc == 0)
			break;
		e = -rc;
		close(fd);
		fd = -1;
		if (e == ETIMEDOUT && remaining_ms(deadline) == 0)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0)
		connect_err(err, errlen, name, via[0] ? via : NULL, e, timeout_ms);
	return fd;
}

#ifdef HFE_HAVE_VSOCK
static int connect_vsock(const struct hfe_addr *a, const char *name, int64_t deadline,
			 int timeout_ms, char *err, size_t errlen)
{
	struct sockaddr_vm svm;
	int fd = vsock_socket("connect to", name, err, errlen), r;

	if (fd < 0)
		return -1;
	fill_svm(&svm, a);
	r = connect_wait(fd, (const struct sockaddr *)&svm, sizeof(svm), deadline);
	if (r < 0) {
		connect_err(err, errlen, name, NULL, -r, timeout_ms);
		close(fd);
		return -1;
	}
	return fd;
}
#endif

/* Raw mode with POSIX flags only (what cfmakeraw, not in POSIX, sets): no input
 * translation or flow control, no output processing, no echo, signals or line
 * editing, 8-bit characters, reads that return as soon as a byte is there. */
static void tty_raw(struct termios *t)
{
	t->c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
	t->c_oflag &= ~(tcflag_t)OPOST;
	t->c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	t->c_cflag &= ~(tcflag_t)(CSIZE | PARENB);
	t->c_cflag |= CS8;
	t->c_cc[VMIN] = 1;
	t->c_cc[VTIME] = 0;
}

static int open_serial(const struct hfe_addr *a, const char *name, char *err, size_t errlen)
{
	struct termios tio;
	int fd;

	if (!a->path[0] || strnlen(a->path, sizeof(a->path)) == sizeof(a->path)) {
		set_err(err, errlen, "cannot open %s: bad device path", name);
		return -1;
	}
	do
		fd = open(a->path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		set_err(err, errlen, "cannot open %s: %s", name, strerror(errno));
		return -1;
	}
	/* A real tty would otherwise cook the binary protocol (echo, CR/LF, ^C). */
	if (isatty(fd)) {
		if (tcgetattr(fd, &tio) < 0) {
			set_err(err, errlen, "cannot open %s: tcgetattr: %s", name,
				strerror(errno));
			close(fd);
			return -1;
		}
		tty_raw(&tio);
		if (tcsetattr(fd, TCSANOW, &tio) < 0) {
			set_err(err, errlen, "cannot open %s: tcsetattr: %s", name,
				strerror(errno));
			close(fd);
			return -1;
		}
	}
	return fd;
}

int hfe_connect(const struct hfe_addr *a, int timeout_ms, char *err, size_t errlen)
{
	char name[HFE_ADDR_STRMAX];
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;

	if (err && errlen)
		err[0] = '\0';
	hfe_addr_str(a, name, sizeof(name));
	switch (a->kind) {
	case HFE_ADDR_UNIX:
		return connect_unix(a, name, deadline, timeout_ms, err, errlen);
	case HFE_ADDR_TCP:
		return connect_tcp(a, name, deadline, timeout_ms, err, errlen);
	case HFE_ADDR_VSOCK:
#ifdef HFE_HAVE_VSOCK
		return connect_vsock(a, name, deadline, timeout_ms, err, errlen);
#else
		set_err(err, errlen,
			"cannot connect to %s: vsock is not supported on this platform", name);
		return -1;
#endif
	case HFE_ADDR_SERIAL:
		return open_serial(a, name, err, errlen);
	}
	set_err(err, errlen, "cannot connect to %s: invalid address kind", name);
	return -1;
}

void hfe_addr_cleanup(const struct hfe_addr *a)
{
	struct stat st;

	if (a->kind != HFE_ADDR_UNIX || !a->path[0] ||
	    strnlen(a->path, sizeof(a->path)) == sizeof(a->path))
		return;
	/* Only ever remove a socket: the path may have been replaced meanwhile. */
	if (lstat(a->path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return;
	if (unlink(a->path) < 0 && errno != ENOENT)
		hfe_warn("cannot remove socket file %s: %s", a->path, strerror(errno));
}

/* ---- I/O ---- */

ssize_t hfe_io_read(int fd, void *buf, size_t len)
{
	ssize_t n;

	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return n;
}

/*
 * writev on a non-socket (tty, pipe) with SIGPIPE held back: a pipe without
 * reader must give EPIPE, not kill a host process such as QEMU.
 */
static ssize_t writev_nosigpipe(int fd, const struct iovec *iov, int iovcnt)
{
	sigset_t pipe_set, old, pending;
	bool was_pending;
	ssize_t n;
	int e, rc;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	rc = pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	if (rc)
		return -rc;
	was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
	do
		n = writev(fd, iov, iovcnt);
	while (n < 0 && errno == EINTR);
	e = n < 0 ? errno : 0;
	/* Take back the SIGPIPE this write raised. sigwait (not sigtimedwait, which
	 * macOS lacks) only once it is pending, so that it cannot block. */
	if (e == EPIPE && !was_pending && sigpending(&pending) == 0 &&
	    sigismember(&pending, SIGPIPE) == 1) {
		int sig;

		sigwait(&pipe_set, &sig);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (n < 0)
		return e == EWOULDBLOCK ? -EAGAIN : -e;
	return n;
}

ssize_t hfe_io_writev(int fd, const struct iovec *iov, int iovcnt)
{
	struct msghdr msg;
	ssize_t n;

	if (iovcnt < 0)
		return -EINVAL;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = (struct iovec *)iov; /* sendmsg only reads it */
	msg.msg_iovlen = (size_t)iovcnt;
	do
		n = sendmsg(fd, &msg, HFE_SOCK_SEND_FLAGS);
	while (n < 0 && errno == EINTR);
	if (n >= 0)
		return n;
	if (errno == ENOTSOCK)
		return writev_nosigpipe(fd, iov, iovcnt);
	return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

int hfe_io_wait(int fd, short events, int timeout_ms)
{
	struct pollfd p;
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	int r;

	for (;;) {
		p.fd = fd;
		p.events = events;
		p.revents = 0;
		r = poll(&p, 1, remaining_ms(deadline));
		if (r > 0)
			return (p.revents & POLLNVAL) ? -EBADF : 1;
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}
