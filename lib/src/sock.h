/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The three socket calls where Linux has a one-step form that POSIX lacks: a
 * non-blocking close-on-exec socket, the same for an accepted one, and a send
 * that cannot raise SIGPIPE. The portable core (wire, conn, addr, client, log)
 * reaches them only through here; sock.c keeps the Linux form and a POSIX one.
 */
#ifndef HFE_SOCK_H
#define HFE_SOCK_H

#include <sys/socket.h>

/* socket(2), non-blocking and close-on-exec; -1 with errno on failure. */
int hfe_sock_open(int domain, int type, int protocol);

/* accept(2) of the next connection, non-blocking and close-on-exec; -1 with
 * errno on failure (EINTR included: the caller retries). */
int hfe_sock_accept(int listen_fd);

/* Flags for send/sendmsg so that a peer gone never raises SIGPIPE. Where POSIX
 * has no MSG_NOSIGNAL (macOS), hfe_sock_open/_accept set SO_NOSIGPIPE instead. */
#ifdef MSG_NOSIGNAL
#define HFE_SOCK_SEND_FLAGS MSG_NOSIGNAL
#else
#define HFE_SOCK_SEND_FLAGS 0
#endif

#endif
