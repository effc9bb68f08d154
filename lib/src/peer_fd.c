/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The one piece of I/O every host loop does the same way: move bytes between
 * a peer (host.c, sans-I/O) and its non-blocking socket. The daemon's poll
 * loop and the QEMU module's fd handlers both call these; they differ only in
 * how much one turn may read. See hfe/host.h.
 */
#include <errno.h>

#include "hfe/addr.h"
#include "hfe/host.h"

int hfe_peer_write_fd(struct hfe_peer *p, int fd, size_t budget)
{
	struct iovec iov[64];

	while (budget && hfe_peer_tx_pending(p)) {
		int n = hfe_peer_tx_iov(p, iov, 64);
		ssize_t w = hfe_io_writev(fd, iov, n);
		if (w == -EAGAIN)
			return 0;
		if (w < 0)
			return -1;
		hfe_peer_tx_consume(p, (size_t)w);
		budget -= (size_t)w < budget ? (size_t)w : budget;
	}
	return 0;
}

int hfe_peer_read_fd(struct hfe_peer *p, int fd, size_t budget)
{
	if (hfe_peer_discarding(p)) {
		char junk[4096];
		ssize_t n = hfe_io_read(fd, junk, sizeof(junk));
		if (n == 0)
			hfe_peer_rx_eof(p);
		return (n < 0 && n != -EAGAIN) ? -1 : 0;
	}
	while (budget) {
		size_t want;
		uint8_t *buf = hfe_peer_rx_buf(p, &want);
		if (!buf)
			break;
		if (want > budget)
			want = budget;
		ssize_t n = hfe_io_read(fd, buf, want);
		if (n == -EAGAIN)
			break;
		if (n < 0)
			return -1;
		if (n == 0) {
			hfe_peer_rx_eof(p);
			break;
		}
		budget -= (size_t)n;
		hfe_peer_rx_commit(p, (size_t)n, hfe_now_ms());
	}
	return 0;
}
