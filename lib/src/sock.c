/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Non-blocking close-on-exec sockets: one call on Linux (no window in which a
 * fork+exec elsewhere in the process inherits the fd), socket + fcntl
 * elsewhere. See sock.h.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* accept4 */
#endif

#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#if defined(__linux__)
#define HFE_SOCK_ATOMIC_FLAGS 1
#endif

#ifndef HFE_SOCK_ATOMIC_FLAGS
/* POSIX: set the flags after the fact; SO_NOSIGPIPE where send has no MSG_NOSIGNAL. */
static int set_flags(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	int fdfl = fcntl(fd, F_GETFD);

	if (fl < 0 || fdfl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
#if !defined(MSG_NOSIGNAL) && defined(SO_NOSIGPIPE)
	{
		int one = 1;

		/* Best effort: without it a vanished peer raises SIGPIPE, as with write(). */
		(void)setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one));
	}
#endif
	return fd;
}
#endif

int hfe_sock_open(int domain, int type, int protocol)
{
#ifdef HFE_SOCK_ATOMIC_FLAGS
	return socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
#else
	int fd = socket(domain, type, protocol);

	return fd < 0 ? -1 : set_flags(fd);
#endif
}

int hfe_sock_accept(int listen_fd)
{
#ifdef HFE_SOCK_ATOMIC_FLAGS
	return accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
	int fd = accept(listen_fd, NULL, NULL);

	return fd < 0 ? -1 : set_flags(fd);
#endif
}
