/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Transports behind one address syntax:
 *   unix:PATH          AF_UNIX stream socket (also a QEMU chardev socket)
 *   tcp:HOST:PORT      TCP; HOST may be a name, IPv4 or [IPv6]
 *   vsock:CID:PORT     AF_VSOCK (Linux)
 *   serial:PATH        a character device, e.g. /dev/virtio-ports/NAME
 *                      (guest side; connect only)
 * All descriptors returned are non-blocking and close-on-exec.
 */
#ifndef HFE_ADDR_H
#define HFE_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

enum hfe_addr_kind { HFE_ADDR_UNIX, HFE_ADDR_TCP, HFE_ADDR_VSOCK, HFE_ADDR_SERIAL };

struct hfe_addr {
	enum hfe_addr_kind kind;
	char path[108]; /* unix, serial */
	char host[256]; /* tcp */
	uint32_t port;  /* tcp, vsock */
	uint32_t cid;   /* vsock */
};

/* Parse "kind:..." into a. Returns 0, or -1 with a reason in err. */
int hfe_addr_parse(const char *s, struct hfe_addr *a, char *err, size_t errlen);
/* Canonical text form of a (for logs). Returns buf. */
const char *hfe_addr_str(const struct hfe_addr *a, char *buf, size_t len);

/*
 * Listening socket. For unix addresses an existing socket file is probed:
 * if a server answers there, it is an error ("in use"); if nobody does, the
 * stale file is removed and *note says so (note may be NULL). A path that
 * exists but is not a socket is never removed. Returns fd or -1 with err.
 */
int hfe_listen(const struct hfe_addr *a, char *err, size_t errlen, char *note, size_t notelen);

/*
 * Who may connect to a unix listener: the socket file gets this mode and
 * owner as it is created (a umask around bind(), then lchown, then listen():
 * it is never more open than mode, not even for an instant). Connecting needs
 * write permission, so 0660 lets the owner and the group in, 0600 the owner.
 * hfe_listen() uses HFE_UNIX_MODE_DEFAULT and the creator's user and group.
 */
#define HFE_UNIX_MODE_DEFAULT 0660
struct hfe_unix_perm {
	unsigned mode; /* permission bits (no setuid/sticky); 0 = the default */
	uid_t uid;     /* owner; (uid_t)-1 = the creator */
	gid_t gid;     /* group; (gid_t)-1 = the creator's */
};
/* hfe_listen() with perm (NULL = defaults); perm is ignored for tcp and vsock. */
int hfe_listen_perm(const struct hfe_addr *a, const struct hfe_unix_perm *perm, char *err,
		    size_t errlen, char *note, size_t notelen);
/* Accept one connection: fd, or -1 with errno (EAGAIN when none pending). */
int hfe_accept(int listen_fd);

/* Connect (waits up to timeout_ms, -1 = forever). Returns a non-blocking fd
 * or -1 with a reason in err naming the address. */
int hfe_connect(const struct hfe_addr *a, int timeout_ms, char *err, size_t errlen);

/* Remove a unix listener's socket file (on shutdown). */
void hfe_addr_cleanup(const struct hfe_addr *a);

/* Read/write that retry on EINTR. Return bytes, 0 on EOF (read), or -errno
 * (-EAGAIN when the descriptor would block). Writes never raise SIGPIPE. */
ssize_t hfe_io_read(int fd, void *buf, size_t len);
ssize_t hfe_io_writev(int fd, const struct iovec *iov, int iovcnt);

/* Wait until fd is readable/writable; returns 1 ready, 0 timeout, -errno. */
int hfe_io_wait(int fd, short events, int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
