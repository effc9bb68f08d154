/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared helpers for the media and integration tests.
 *
 *  - CHECK / CHECKF / REQUIRE and tu_finish(): assertions that print
 *    file:line and the failed expression, and the test's exit code.
 *  - A moving RGB test pattern (gradients, a soft-edged moving box, text-like
 *    strokes) written into any HFE_FMT_* frame laid out as on the wire.
 *  - An independent reference RGB -> YUV 4:2:0 (BT.601 limited range, plain
 *    floating-point formula, 2x2 chroma average), so tests never check libyuv
 *    against itself.
 *  - Plain I420 pictures (struct tu_yuv) and PSNR over them.
 *  - An H.264 decoder over libavcodec taking Annex-B access units, and a tiny
 *    NAL scanner (types per access unit, SPS profile bytes).
 *  - Processes (spawn, wait, kill), temporary directories, a clock.
 *
 * Nothing here uses libyuv or libhfe's converter.
 */
#ifndef HFE_TEST_UTIL_H
#define HFE_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

#include "hfe/image.h"

/* ---- assertions ------------------------------------------------------- */

/* Number of failed CHECKs so far. */
extern int tu_failures;

/* Record a failure and go on. */
#define CHECK(expr)                                                                                \
	do {                                                                                       \
		if (!(expr)) {                                                                     \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr);   \
			tu_failures++;                                                             \
		}                                                                                  \
	} while (0)

/* The same with a printf-style explanation (values seen, ...). */
#define CHECKF(expr, ...)                                                                          \
	do {                                                                                       \
		if (!(expr)) {                                                                     \
			fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #expr);   \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			tu_failures++;                                                             \
		}                                                                                  \
	} while (0)

/* A failure the test cannot go on after: print and exit(1). */
#define REQUIRE(expr)                                                                              \
	do {                                                                                       \
		if (!(expr)) {                                                                     \
			fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #expr); \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

/* Print a summary line; returns the exit code for main (0 = all passed). */
int tu_finish(const char *test_name);

/* ---- frames in wire layout -------------------------------------------- */

/* Bytes per pixel of plane 0 (4 for RGB formats, 1 for NV12/I420), 0 if unknown. */
uint32_t tu_bpp(uint32_t format);
/* Bytes of a frame in wire layout (see hfe_frame_size), computed here
 * independently of wire.c. */
size_t tu_frame_size(uint32_t format, uint32_t w, uint32_t h, uint32_t stride);
/* "AR24" etc. (static string). */
const char *tu_fmt_name(uint32_t format);

/* ---- plain I420 pictures ---------------------------------------------- */

/* Tightly packed I420: y is w x h, u and v are cw x ch, cw = (w+1)/2, ch = (h+1)/2. */
struct tu_yuv {
	uint32_t w, h, cw, ch;
	uint8_t *y, *u, *v;
};
void tu_yuv_alloc(struct tu_yuv *p, uint32_t w, uint32_t h); /* aborts on ENOMEM */
void tu_yuv_free(struct tu_yuv *p);
/* Copy an I420 or NV12 hfe_image (any strides) into p (allocated here). Plain C. */
int tu_yuv_from_image(struct tu_yuv *p, const struct hfe_image *img);

/* ---- test pattern ----------------------------------------------------- */

/* Pattern as packed R,G,B bytes (w*h*3). Strongly coloured (R and B follow
 * different gradients), moving with frame_no, smooth enough to compress
 * well, with some sharp text-like detail. Deterministic. */
void tu_pattern_rgb(uint8_t *rgb, uint32_t w, uint32_t h, uint32_t frame_no);

/* Write packed RGB into a frame of any HFE_FMT_* in wire layout (buf holds
 * tu_frame_size bytes). YUV formats go through tu_ref_rgb_to_yuv. Stride
 * padding bytes are filled with 0xA5 so that stride bugs show. */
void tu_write_frame(uint32_t format, uint32_t w, uint32_t h, uint32_t stride, const uint8_t *rgb,
		    uint8_t *buf);

/* tu_pattern_rgb + tu_write_frame. Returns a malloc'ed buffer of
 * tu_frame_size bytes (free() it). */
uint8_t *tu_pattern_frame(uint32_t format, uint32_t w, uint32_t h, uint32_t stride,
			  uint32_t frame_no);

/* Write a tu_yuv into an NV12 or I420 frame in wire layout (padding 0xA5). */
void tu_write_yuv_frame(uint32_t format, uint32_t stride, const struct tu_yuv *src, uint8_t *buf);

/* ---- reference colour conversion -------------------------------------- */

/* BT.601 limited range: Y 16..235, U/V 16..240; chroma from the average of
 * each 2x2 block of RGB (edge blocks use the pixels that exist). out is
 * allocated here. */
void tu_ref_rgb_to_yuv(const uint8_t *rgb, uint32_t w, uint32_t h, struct tu_yuv *out);
/* One pixel, rounded and clamped (for solid-colour checks). */
void tu_ref_pixel(uint8_t r, uint8_t g, uint8_t b, uint8_t *y, uint8_t *u, uint8_t *v);

/* ---- PSNR ------------------------------------------------------------- */

/* PSNR in dB of one plane (8 bit); 100.0 for identical planes. */
double tu_psnr_plane(const uint8_t *a, size_t a_stride, const uint8_t *b, size_t b_stride,
		     uint32_t w, uint32_t h);
/* Y, U, V PSNR of two pictures of the same size (out[0..2]); -1 if sizes differ. */
int tu_psnr_yuv(const struct tu_yuv *a, const struct tu_yuv *b, double out[3]);

/* ---- NAL units -------------------------------------------------------- */

#define TU_MAX_NALS 256

enum {
	TU_NAL_SLICE = 1,
	TU_NAL_IDR = 5,
	TU_NAL_SEI = 6,
	TU_NAL_SPS = 7,
	TU_NAL_PPS = 8,
	TU_NAL_AUD = 9,
};

/* NAL units of one Annex-B access unit, in order. */
struct tu_nals {
	int count;
	uint8_t type[TU_MAX_NALS];        /* nal_unit_type (5 bits) */
	const uint8_t *data[TU_MAX_NALS]; /* first byte after the start code (the header) */
	size_t len[TU_MAX_NALS];          /* bytes, header included */
	bool has_sps, has_pps, has_idr, has_slice; /* slice = non-IDR slice (type 1) */
	/* From the first SPS (-1 without): profile_idc, the constraint_set
	 * byte (set0 = 0x80, set1 = 0x40, ...), level_idc. */
	int sps_profile, sps_constraints, sps_level;
};

/* Scan start codes (3 or 4 bytes). Returns the NAL count, or -1 if the data
 * does not start with a start code or has more than TU_MAX_NALS units. */
int tu_nal_parse(const uint8_t *au, size_t len, struct tu_nals *out);
/* Index of the first NAL of that type, -1 if none. */
int tu_nal_find(const struct tu_nals *n, int type);

/* ---- H.264 decoder ---------------------------------------------------- */

struct tu_decoder;
/* libavcodec's h264 decoder, one thread, low delay, errors are fatal
 * (no concealment). NULL on failure. */
struct tu_decoder *tu_decoder_new(void);
void tu_decoder_free(struct tu_decoder *d);
/* Decode one access unit. nals (optional) gets the AU's NAL scan. Returns 1
 * with a picture in *out (allocated here, tu_yuv_free it), 0 if the decoder
 * gave no picture yet, -1 on a decoding error. At most one picture per call. */
int tu_decoder_decode(struct tu_decoder *d, const uint8_t *au, size_t len, struct tu_yuv *out,
		      struct tu_nals *nals);
/* After the last AU: returns 1 per remaining picture, then 0. */
int tu_decoder_flush(struct tu_decoder *d, struct tu_yuv *out);

/* ---- processes, files, time ------------------------------------------- */

/* fork + execvp(argv[0], argv). stdout and stderr go to log_path
 * (appended) if not NULL. Returns the pid, or -1. */
pid_t tu_spawn(const char *const argv[], const char *log_path);
/* Wait up to timeout_ms for the process to exit. Returns 0 with *status
 * (as from waitpid) set, or -1 on timeout (still running) or error. */
int tu_wait(pid_t pid, int timeout_ms, int *status);
/* Send sig, wait up to timeout_ms, then SIGKILL and reap. Returns the
 * waitpid status, or -1 if the pid could not be reaped. */
int tu_kill_wait(pid_t pid, int sig, int timeout_ms);

/* mkdtemp under $TMPDIR or /tmp; malloc'ed path, NULL on error. */
char *tu_mkdtemp(const char *prefix);
/* rm -rf path (does not follow symlinks). 0 on success. */
int tu_rm_rf(const char *path);

/* Monotonic clock in nanoseconds. */
uint64_t tu_now_ns(void);

/* How much slower than native this run is allowed to be: $HFE_TEST_TIME_SCALE (a number
 * from 1 to 100; the arm64 job sets 8 for qemu-user), 1 when unset. Limits on time and on
 * work done in a fixed time are scaled by it; natively nothing changes. */
double tu_time_scale(void);

/* A "Key:" line of /proc/PID/status in kB (e.g. "VmRSS"); -1 if the process
 * or the key is missing. */
long tu_proc_status_kb(pid_t pid, const char *key);
/* Open descriptors of pid (-1: not running); without its eventfds if
 * no_eventfds. */
long tu_proc_fds(pid_t pid, bool no_eventfds);

/* In an ASan build, children started from now on get a small quarantine
 * (ASAN_OPTIONS quarantine_size_mb=4 added): a daemon built with ASan keeps
 * freed memory there (256 MB by default), which would count as RSS growth.
 * Nothing in other builds. */
void tu_asan_small_quarantine(void);
/* In an ASan build, children started from now on allocate GLib's slices
 * with malloc (G_SLICE=always-malloc): GLib 2.74's slice allocator keeps its
 * blocks in slabs it still points to, so that a GVariant, GError or signal
 * closure leaked in them is reachable to LeakSanitizer and never reported.
 * Nothing in other builds (GLib's slabs are part of what is measured). */
void tu_asan_glib_malloc(void);
/* CPU time (utime + stime) in ms of process pid (tid 0: all its threads,
 * exited ones included) or of its thread tid; NAN if unreadable. */
double tu_proc_cpu_ms(pid_t pid, pid_t tid);

#endif
