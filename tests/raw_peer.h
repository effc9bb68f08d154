/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A raw HXFR peer and a little harness for the tests that talk to the real
 * daemon over sockets (test_daemon, test_malformed).
 *
 * Messages are written and read here with a small little-endian writer and
 * reader made from the tables in docs/protocol.md, on purpose independently
 * of lib/src/wire.c: these tests check the daemon against the spec, not
 * against our own builder and parser, so a layout bug in the library cannot
 * hide behind the same bug in the test. Only the numbers are taken from
 * hfe/wire.h (magic, type codes, flags, payload sizes, error codes).
 *
 * The harness: $HFE_DAEMON, a temporary directory, child processes that
 * never outlive the test (even after a REQUIRE), the daemon's start and log,
 * and a clock for timed section headings.
 */
#ifndef HFE_RAW_PEER_H
#define HFE_RAW_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- harness ---------------------------------------------------------- */

extern const char *daemon_bin; /* $HFE_DAEMON */
extern char *tmpdir;           /* this run's directory; HFE_TEST_KEEP=1 keeps it */

/* main()'s first step: line-buffered stdout, the clock section() counts
 * from, $HFE_DAEMON, SIGPIPE ignored, tmpdir made (prefix tmp_prefix) and
 * removed at exit along with every child. Returns 0, or 77 (skip) when
 * $HFE_DAEMON is not set. */
int harness_setup(const char *tmp_prefix);
/* main()'s last step: children killed, tmpdir removed, "done"; returns
 * tu_finish()'s exit code. */
int harness_finish(const char *test_name);

/* Monotonic milliseconds; what is left of a deadline (0 when past). */
int64_t ms_now(void);
int ms_left(int64_t deadline);
/* A test's heading, with the time since the start (the suite must stay fast). */
void section(const char *title);

/* tu_spawn, remembering the child so that it is killed at exit. */
pid_t spawn(const char *const argv[], const char *log);
/* tu_wait, forgetting the child once reaped. */
int reap(pid_t pid, int timeout_ms, int *status);
/* tu_kill_wait, forgetting the child. */
int kill_wait(pid_t pid, int sig, int timeout_ms);
/* SIGKILL every child still running, remove tmpdir (unless HFE_TEST_KEEP). */
void kill_children(void);

/* ---- the daemon ------------------------------------------------------- */

struct daemon {
	pid_t pid;
	char sock[200];
	char log[200];
	int port;
	char listen_unix[210], listen_tcp[32]; /* --listen values for sock and port */
};

/* d for a daemon listening on tmpdir/sock_name and a free TCP port, logging
 * to tmpdir/daemon.log (not started). */
void daemon_init(struct daemon *d, const char *sock_name);

/* The daemon's last log lines (without libx264's statistics), to stderr. */
void show_log(const char *path);
/* Start $HFE_DAEMON with args (NULL-ended), output to log; wait until it
 * accepts on probe_unix (or, if NULL, on TCP probe_port). Returns the pid,
 * or -1 if it exited or did not come up within 20 s. */
pid_t start_daemon(const char *const *args, const char *log, const char *probe_unix,
		   int probe_port);

/* ---- little-endian bytes ---------------------------------------------- */

void put16(uint8_t *p, uint16_t v);
void put32(uint8_t *p, uint32_t v);
void put64(uint8_t *p, uint64_t v);
uint16_t get16(const uint8_t *p);
uint32_t get32(const uint8_t *p);
uint64_t get64(const uint8_t *p);

/* ---- raw connections -------------------------------------------------- */

struct tconn {
	int fd;
	uint64_t sent, rcvd; /* bytes, for STATS checks */
};

/* One message as received. */
struct rmsg {
	uint8_t type, flags;
	uint16_t sid;
	uint32_t size;
	uint8_t *p; /* payload (size bytes, + 1 so a 0-size payload is non-NULL) */
};

/* Connected non-blocking sockets (TCP to 127.0.0.1, TCP_NODELAY), or -1. */
int connect_unix(const char *path);
int connect_tcp(int port);
/* A loopback port nobody listens on right now, or -1. */
int free_tcp_port(void);

/* 0 sent, -1 timeout or error (errno says which; ETIMEDOUT for a timeout). */
int io_send(struct tconn *c, const void *buf, size_t len, int timeout_ms);
/* 1 all read, 0 EOF before the first byte, -1 timeout, error or EOF midway. */
int io_recv(struct tconn *c, void *buf, size_t len, int timeout_ms);

/* recv_msg takes a header announcing a larger payload as garbage (default 256 MiB). */
extern uint32_t recv_max_payload;
/* 1 message (rmsg_free it), 0 clean EOF, -1 timeout / error / garbage. */
int recv_msg(struct tconn *c, struct rmsg *m, int timeout_ms);
void rmsg_free(struct rmsg *m);
void conn_close(struct tconn *c);

/* ---- message bodies, from the tables in docs/protocol.md -------------- */

/* The 12-byte header (any magic, so that bad ones can be sent too). */
void put_hdr(uint8_t *b, uint32_t magic, uint8_t type, uint8_t flags, uint16_t sid,
	     uint32_t size);

struct frame_fields {
	uint32_t resource, w, h, fmt, stride;
	int64_t pts, duration;
	uint8_t force_kf;
};

struct config_fields {
	uint32_t w, h, bitrate, fps_num, fps_den;
	uint8_t profile, level, realtime;
};

/* Whole bodies (HFE_FRAME_REQUEST_SIZE, HFE_CONFIG_REQ_SIZE, HFE_HELLO_SIZE,
 * HFE_ENABLE_SCANOUT_SIZE bytes), reserved bytes zero. put_hello copies up to
 * 32 bytes of name: a 32-character name has no NUL. */
void put_frame_req(uint8_t *b, const struct frame_fields *f);
void put_config_req(uint8_t *b, const struct config_fields *c);
void put_hello(uint8_t *b, uint16_t vmin, uint16_t vmax, uint32_t flags, const char *name);
void put_enable_scanout(uint8_t *b, uint32_t scanout, uint32_t w, uint32_t h, uint32_t refresh);

/* A FRAME_RESPONSE payload, read as the spec lays it out. */
struct frame_resp {
	int64_t pts, dts;
	uint8_t is_keyframe;
	uint8_t reserved[3];
	uint32_t nal_count;
	uint32_t au_len;   /* the first unit's size prefix */
	const uint8_t *au; /* the first unit (points into the message) */
};

/* Decode m's payload, which the caller has checked to hold at least
 * HFE_FRAME_RESPONSE_SIZE + 4 bytes. */
void get_frame_resp(const struct rmsg *m, struct frame_resp *r);

/* ---- checking replies ------------------------------------------------- */

/* A frame sent: pattern frame `no` at w x h, and the pts its reply must carry. */
struct expect {
	uint32_t no, w, h;
	int64_t pts;
};

/* Frames whose access unit went to the decoder and whose picture has not
 * come out yet, oldest first. */
#define EXPECT_QUEUE 64
struct expect_queue {
	struct expect q[EXPECT_QUEUE];
	unsigned head, n;
};

void eq_push(struct expect_queue *eq, const struct expect *e); /* REQUIREs room */
bool eq_pop(struct expect_queue *eq, struct expect *e);        /* false if empty */

struct tu_yuv;
/* The reference picture of pattern frame no (tu_pattern_rgb through the
 * independent BT.601 reference conversion); tu_yuv_free it. */
void ref_yuv(uint32_t w, uint32_t h, uint32_t no, struct tu_yuv *out);

#endif
