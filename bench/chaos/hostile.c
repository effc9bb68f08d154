/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Hostile peers of the chaos soak.
 *
 * fuzz: each connection sends one input of fuzz/corpus (the files of
 * fuzz_wire: byte 0 is that target's control byte, the rest the bytes a peer
 * sends), as it is or mutated (bytes flipped, cut short, two inputs joined,
 * random garbage), in random pieces; then reads what the daemon answers for
 * up to 1.5 s and closes or resets. The daemon must survive all of it and
 * answer only with well-formed messages.
 *
 * loris: slow peers. A PING sent a byte at a time (each gap below the stall
 * timeout) must be answered; half a header, or a FRAME_REQUEST stopped in its
 * body or pixels, must be cut with ERROR TIMEOUT about one stall timeout
 * after the last byte; an idle connection (silent between messages) is kept
 * and answers a PING after it.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chaos.h"
#include "hfe/client.h"
#include "hfe/wire.h"
#include "test_util.h"

struct input {
	uint8_t *data;
	size_t len;
};

static struct input *inputs;
static size_t n_inputs;

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t fuzz_load_corpus(void)
{
	DIR *d = opendir(chaos_cfg.corpus);
	struct dirent *e;
	char *names[512];
	size_t n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) && n < 512)
		if (e->d_name[0] != '.')
			names[n++] = strdup(e->d_name);
	closedir(d);
	/* Sorted: the same seed picks the same inputs on every machine. */
	qsort(names, n, sizeof(char *), cmp_name);
	inputs = calloc(n ? n : 1, sizeof(*inputs));
	REQUIRE(inputs);
	for (size_t i = 0; i < n; i++) {
		char path[1600];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", chaos_cfg.corpus, names[i]);
		free(names[i]);
		FILE *f = fopen(path, "rb");
		if (!f)
			continue;
		if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 1 &&
		    st.st_size < (1 << 20)) {
			struct input *in = &inputs[n_inputs];
			in->len = (size_t)st.st_size - 1;
			in->data = malloc(in->len);
			REQUIRE(in->data);
			if (fseek(f, 1, SEEK_SET) == 0 && fread(in->data, 1, in->len, f) == in->len)
				n_inputs++;
			else
				free(in->data);
		}
		fclose(f);
	}
	return n_inputs;
}

/* Write all of buf to fd (non-blocking), waiting up to 2 s per piece.
 * 0, or -1 once the daemon closed or stopped reading. */
static int put(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		if (poll(&pfd, 1, 2000) <= 0)
			return -1;
	}
	return 0;
}

/* Read what the daemon sends for up to ms (or until it closes): well-formed
 * host -> client messages only. Returns the number of ERRORs, -1 when the
 * connection ended without one. *closed set when it ended. */
static int drain(struct actor *a, struct hfe_client *c, int ms, int *last_error, bool *closed)
{
	double end = chaos_ms() + ms;
	struct hfe_msg m;
	struct hfe_err err = { 0 };
	int errors = 0;

	*closed = false;
	for (;;) {
		int left = (int)(end - chaos_ms());
		if (left <= 0)
			return errors;
		int r = hfe_client_recv(c, &m, left, &err);
		if (r == 0)
			return errors;
		if (r < 0) {
			/* The client parser refusing the daemon's output is a daemon bug;
			 * a plain close is not. */
			if (strstr(err.msg, "invalid message"))
				chaos_fail(a->name, "the daemon's reply does not parse: %s", err.msg);
			*closed = true;
			return errors;
		}
		if (m.hdr.type == HFE_MSG_ERROR) {
			errors++;
			if (last_error)
				*last_error = m.u.error.code;
		}
	}
}

static void fuzz_one(struct actor *a, const char *addr)
{
	struct rng *r = &a->rng;
	const struct input *in = &inputs[rng_range(r, 0, (uint32_t)n_inputs - 1)];
	size_t cap = in->len * 2 + 256;
	uint8_t *buf = malloc(cap);
	size_t len = in->len;
	bool mutated = true;

	REQUIRE(buf);
	memcpy(buf, in->data, len);
	switch (rng_range(r, 0, 5)) {
	case 0:
		mutated = false;
		break;
	case 1: /* flip bytes */
		for (unsigned i = rng_range(r, 1, 8); i > 0 && len; i--)
			buf[rng_range(r, 0, (uint32_t)len - 1)] ^= (uint8_t)rng_range(r, 1, 255);
		break;
	case 2: /* cut short */
		len = rng_range(r, 0, (uint32_t)len);
		break;
	case 3: { /* two inputs joined */
		const struct input *b = &inputs[rng_range(r, 0, (uint32_t)n_inputs - 1)];
		size_t add = b->len < cap - len ? b->len : cap - len;
		memcpy(buf + len, b->data, add);
		len += add;
		break;
	}
	case 4: /* garbage after a valid start */
		for (unsigned i = rng_range(r, 1, 200); i > 0 && len < cap; i--)
			buf[len++] = (uint8_t)rng_next(r);
		break;
	default: /* a header's fields mangled: sizes and types */
		if (len >= HFE_HEADER_SIZE) {
			buf[4] = (uint8_t)rng_next(r);
			if (rng_pct(r, 50))
				memset(buf + 8, 0xff, 4);
		}
		break;
	}

	struct hfe_err err = { 0 };
	struct hfe_client *c = hfe_client_connect(addr, 5000, &err);
	if (!c) {
		chaos_fail(a->name, "connect: %s", err.msg);
		free(buf);
		chaos_sleep(500);
		return;
	}
	ev_add(EV_FUZZ_INPUT, 1);
	if (mutated)
		ev_add(EV_FUZZ_MUTATED, 1);
	int fd = hfe_client_fd(c);
	size_t off = 0;
	while (off < len && chaos_running()) {
		size_t piece = rng_pct(r, 50) ? len - off : rng_range(r, 1, (uint32_t)(len - off));
		if (put(fd, buf + off, piece) < 0)
			break;
		off += piece;
		if (rng_pct(r, 20))
			chaos_sleep((int)rng_range(r, 1, 30));
	}
	bool closed;
	if (drain(a, c, 1500, NULL, &closed) > 0)
		ev_add(EV_FUZZ_ERROR_REPLY, 1);
	if (rng_pct(r, 30)) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	hfe_client_close(c);
	free(buf);
}

void *fuzz_main(void *arg)
{
	struct actor *a = arg;
	const char *addr = a->id % 2 ? chaos_cfg.addr : chaos_cfg.tcp_addr;

	if (!n_inputs)
		return NULL;
	while (chaos_running()) {
		fuzz_one(a, addr);
		chaos_sleep((int)rng_range(&a->rng, 10, 300));
	}
	return NULL;
}

/* ---- slow loris ---- */

static int ping_pong(struct actor *a, struct hfe_client *c, const char *what)
{
	struct hfe_msg m;
	struct hfe_err err = { 0 };
	double end = chaos_ms() + 5000;

	while (chaos_running()) {
		int left = (int)(end - chaos_ms());
		int r = left > 0 ? hfe_client_recv(c, &m, left, &err) : 0;
		if (r == 1 && m.hdr.type == HFE_MSG_PONG)
			return 0;
		if (r == 1)
			continue;
		chaos_fail(a->name, "%s: no PONG: %s", what, r ? err.msg : "none within 5 s");
		return -1;
	}
	return -1;
}

static void loris_one(struct actor *a, const char *addr)
{
	struct rng *r = &a->rng;
	struct hfe_err err = { 0 };
	struct hfe_client *c = hfe_client_connect(addr, 5000, &err);
	uint8_t msg[HFE_MSG_MAX_PREFIX];
	int stall = chaos_cfg.stall_timeout_ms;

	if (!c) {
		chaos_fail(a->name, "connect: %s", err.msg);
		chaos_sleep(500);
		return;
	}
	int fd = hfe_client_fd(c);
	unsigned kind = rng_range(r, 0, 2);

	if (kind == 0) {
		/* PING a byte at a time, each gap well below the stall timeout. */
		struct hfe_msg ping = { .hdr = { .type = HFE_MSG_PING, .session_id = 7 } };
		size_t n = hfe_msg_build(&ping, 0, msg, sizeof(msg));
		int gap = stall / 8;
		for (size_t i = 0; i < n && chaos_running(); i++) {
			if (put(fd, msg + i, 1) < 0) {
				chaos_fail(a->name, "byte-wise PING: cut at byte %zu", i);
				break;
			}
			chaos_sleep((int)rng_range(r, gap / 4, gap));
		}
		if (chaos_running() && ping_pong(a, c, "byte-wise PING") == 0)
			ev_add(EV_LORIS_BYTEWISE, 1);
	} else if (kind == 1) {
		/* Stop in the middle of a message: in the header, in a
		 * FRAME_REQUEST's body, or in its pixels. */
		struct hfe_msg fr = { .hdr = { .type = HFE_MSG_FRAME_REQUEST,
					       .flags = HFE_FLAG_PIXEL_DATA, .session_id = 1 } };
		fr.u.frame_req = (struct hfe_frame_request){ .width = 640, .height = 480,
							     .format = HFE_FMT_XRGB8888,
							     .stride = 2560 };
		size_t n = hfe_msg_build(&fr, 640u * 480u * 4u, msg, sizeof(msg));
		size_t cut = rng_range(r, 1, (uint32_t)n + 1000);
		uint8_t *bytes = calloc(1, cut);
		REQUIRE(bytes);
		memcpy(bytes, msg, cut < n ? cut : n);
		int rc = put(fd, bytes, cut);
		free(bytes);
		double t = chaos_ms();
		int code = 0;
		bool closed = false;
		if (rc == 0)
			drain(a, c, stall + 3000, &code, &closed);
		if (!chaos_running()) {
			hfe_client_close(c);
			return;
		}
		if (!closed || code != HFE_ERR_TIMEOUT)
			chaos_fail(a->name, "stopped after %zu bytes: %s (ERROR %d)", cut,
				   closed ? "closed" : "still open after the stall timeout + 3 s",
				   code);
		else
			ev_add(EV_LORIS_STALL, 1);
		sample_add(S_LORIS_CUT, chaos_ms() - t);
	} else {
		/* Silent between messages: kept, and still answers. */
		chaos_sleep((int)rng_range(r, stall / 2, stall * 2));
		struct hfe_msg ping = { .hdr = { .type = HFE_MSG_PING } };
		if (chaos_running()) {
			if (hfe_client_send_msg(c, &ping, 5000, &err) < 0)
				chaos_fail(a->name, "idle peer: %s", err.msg);
			else if (ping_pong(a, c, "idle peer") == 0)
				ev_add(EV_LORIS_IDLE, 1);
		}
	}
	hfe_client_close(c);
}

void *loris_main(void *arg)
{
	struct actor *a = arg;
	const char *addr = a->id % 2 ? chaos_cfg.addr : chaos_cfg.tcp_addr;

	chaos_sleep((int)rng_range(&a->rng, 0, 1000));
	while (chaos_running()) {
		loris_one(a, addr);
		chaos_sleep((int)rng_range(&a->rng, 10, 500));
	}
	return NULL;
}
