/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What hfe-guest's modes share: the parameters, the out port, the console
 * and the connection to the host (all in hfe-guest.c), and the entry points
 * of the modes that live in their own files (mode_*.c). See docs/e2e.md.
 */
#ifndef HFE_GUEST_H
#define HFE_GUEST_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hfe/client.h"

#include "../e2e_out.h"

#define IO_TIMEOUT_MS 30000

/* Parameters: hfe.KEY=VALUE on the kernel command line, KEY=VALUE in argv. */
struct opts {
	unsigned modes; /* MODE_* bits of hfe-guest.c */
	uint32_t frames, w, h, format, inflight, scanout, count, fps, small;
	uint32_t duration_ms, hold_ms, bitrate;
	bool hello, fb_write;
	bool echo; /* input: each event on the console too */
	char port[256], out[256];
	/* gst mode */
	char gst_plugin[256];  /* host path of libgsthfe.so */
	char gst_libpath[256]; /* LD_LIBRARY_PATH for it */
	char gst_preload[256]; /* a sanitizer runtime to preload */
	char gst_pattern[32];  /* videotestsrc pattern */
	char gst_encoder[32];  /* vsockenc or x264enc */
	/* outputs mode */
	uint32_t outputs, first_output, resize_w, resize_h;
	char sizes[128]; /* WxH,WxH,... */
};

/* The out port: e2e_out.h records, written whole from any thread. */
struct out {
	int fd;
	pthread_mutex_t lock;
	uint32_t seq[E2E_REC_END + 1]; /* per kind */
	uint64_t bytes;
	bool failed;
};

int64_t now_ns(void);
double ms_of(int64_t ns);

/* One console line "HFE-GUEST: ...", the prefix the host looks for. */
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ioctl, again while interrupted (EINTR, EAGAIN). */
int xioctl(int fd, unsigned long req, void *arg);

/* Wait for a device node to appear (0), or -1 after timeout_ms. */
int wait_path(const char *path, int timeout_ms);

/* One record: header + up to two payload pieces. 0, or -1 once the port failed. */
int out_rec(struct out *o, uint16_t kind, uint16_t flags, int64_t value, const void *a,
	    size_t alen, const void *b, size_t blen);
int out_text(struct out *o, uint16_t kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* One FRAME_RESPONSE as an AU record; adds its payload size to *au_bytes. */
int forward_au(struct out *o, const struct hfe_msg *m, uint64_t *au_bytes);

/* Connect to the host over op->port (and HELLO if op->hello). NULL with why. */
struct hfe_client *open_host(const struct opts *op, const char *who, char *why,
			     size_t whylen);

/* The modes in their own files: 0, or -1 with a reason in why. */
int run_resource(const struct opts *op, struct out *o, char *why, size_t whylen);
int run_gst(const struct opts *op, struct out *o, char *why, size_t whylen);
int run_outputs(const struct opts *op, struct out *o, char *why, size_t whylen);
int run_input(const struct opts *op, struct out *o, char *why, size_t whylen);
int run_cursor(const struct opts *op, struct out *o, char *why, size_t whylen);

#endif
