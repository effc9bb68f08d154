/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A scanout stream (push mode). A frame source (the QEMU module's display
 * listener, the daemon's D-Bus listener, the test pattern source) reports
 * surface changes and damaged rectangles; the stream keeps the latest picture
 * in a host-owned frame, and its worker thread encodes at its own pace:
 * damage accumulates, the newest picture wins, at most max_fps, nothing when
 * nothing changed. Encoded access units are collected by the owner's event
 * loop (hfe_stream_poll) and fanned out to subscribers there.
 *
 * Thread safety: every function may be called from any thread. Source calls
 * copy the damaged pixels under a short lock and never wait for the encoder.
 */
#ifndef HFE_STREAM_H
#define HFE_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "hfe/encoder.h"
#include "hfe/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

struct hfe_stream_params {
	struct hfe_encoder_params enc;     /* width/height come from the source */
	const struct hfe_encoder_ops *ops; /* NULL = libavcodec tuned for desktops */
	uint32_t max_fps;                  /* pacing cap, 1..240 */
	void (*notify)(void *opaque);      /* an access unit is ready (worker thread) */
	void *opaque;
	/* Optional, worker thread, same opaque: hfe_stream_picture_pending may
	 * have turned false (the worker took the source's pixels for an
	 * encode, or the stream stopped). A source that makes each picture
	 * only once the last one is taken waits for this instead of polling. */
	void (*picture_taken)(void *opaque);
	/* Small changes are normally sent as patch frames (see h264 splicing
	 * in docs/architecture.md): no encoder run. true = always encode. */
	bool no_patch_frames;
};

/* An encoded access unit, shared by every subscriber it is sent to. */
struct hfe_stream_au {
	int64_t pts_ns; /* CLOCK_MONOTONIC time of the oldest damage it contains
			 * (what update -> bitstream latency is measured from) */
	uint32_t width, height;
	bool keyframe;
	const uint8_t *data;
	size_t size;
	uint64_t seq; /* 0, 1, 2... per stream */
};

struct hfe_stream_stats {
	uint64_t updates;       /* damage reports from the source */
	uint64_t frames_encoded;
	uint64_t updates_coalesced; /* reports merged into a later encode (newest wins) */
	uint64_t updates_unchanged; /* reports whose pixels were already there: no encode */
	uint64_t keyframes;
	uint64_t frames_dropped; /* encoded but not collected in time (owner too slow) */
	uint64_t bytes_out;
	uint32_t encode_us_last, encode_us_max; /* encoder runs and patch frames */
	uint64_t frames_patched; /* of frames_encoded: patch frames, no encoder run */
	uint64_t patch_us_total, encoder_us_total; /* time spent building each kind */
};

struct hfe_stream;

struct hfe_stream *hfe_stream_new(const struct hfe_stream_params *p, struct hfe_err *err);
void hfe_stream_free(struct hfe_stream *s);

/* ---- frame source side ---- */

/* A new surface size (also the first call). The next access unit is an IDR
 * with new parameter sets, encoded once the source's first update after the
 * resize has brought pixels (no black frame in between). */
int hfe_stream_resize(struct hfe_stream *s, uint32_t width, uint32_t height,
		      struct hfe_err *err);
/* Copy a damaged rectangle. `pixels` points at the rectangle's top-left
 * pixel, rows `stride` bytes apart, `format` one of the 32-bit RGB formats.
 * The rectangle is clipped to the surface. */
void hfe_stream_update(struct hfe_stream *s, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
		       const uint8_t *pixels, uint32_t stride, uint32_t format);
/* Several rectangles of one flush, applied atomically so that one encode
 * sees all of them. `surface` is the surface's top-left pixel; rectangle
 * coordinates index into it. */
struct hfe_rect {
	uint32_t x, y, w, h;
};
void hfe_stream_update_rects(struct hfe_stream *s, const struct hfe_rect *rects, unsigned n,
			     const uint8_t *surface, uint32_t stride, uint32_t format);
/* The source went away (display disabled): stop encoding until resized. */
void hfe_stream_disable(struct hfe_stream *s);

/* ---- the hardware cursor ----
 * The VM's cursor reaches subscribers two ways: drawn into the encoded
 * picture (onto the stream's copy, never the source's pixels), or as its own
 * channel (CURSOR_SHAPE / CURSOR_POSITION, hub side). The hub says which the
 * picture needs (hfe_stream_set_cursor_composite). */

/* A new image, width x height B,G,R,A pixels (rows of width x 4 bytes),
 * straight alpha. Copied. -1 with err for a size outside 1..HFE_CURSOR_MAX;
 * a hot spot outside the image is moved to its edge. */
int hfe_stream_cursor_define(struct hfe_stream *s, const struct hfe_cursor_shape *shape,
			     const uint8_t *pixels, struct hfe_err *err);
/* The image's top-left corner in the surface's pixels, and whether shown. */
void hfe_stream_cursor_move(struct hfe_stream *s, int32_t x, int32_t y, bool visible);
/* Draw the cursor into the encoded picture (default: yes). */
void hfe_stream_set_cursor_composite(struct hfe_stream *s, bool on);

struct hfe_stream_cursor {
	uint64_t shape_serial; /* 0: no image defined yet; +1 per define */
	uint64_t pos_serial;   /* +1 per move */
	struct hfe_cursor_shape shape;
	struct hfe_cursor_position pos;
};
/* The cursor as it is now; with `image` (room for HFE_CURSOR_MAX squared
 * x 4 bytes) the image too. While the stream has consumers, cursor changes
 * call params.notify like access units do, at most HFE_CURSOR_RATE times a
 * second (the latest wins). */
void hfe_stream_get_cursor(struct hfe_stream *s, struct hfe_stream_cursor *out, uint8_t *image);
#define HFE_CURSOR_RATE 240u

/* ---- control ---- */

/* Target bitrate in bit/s; 0 = the one the stream was created with. Applied
 * before the next encode, in place where the encoder can (x264: no IDR),
 * else by reopening it (the next access unit is an IDR). */
void hfe_stream_set_bitrate(struct hfe_stream *s, uint32_t bitrate);
/* What the stream encodes now, as a CONFIG_RESP would say it (width and
 * height 0 before the source's first surface). */
void hfe_stream_get_config(struct hfe_stream *s, struct hfe_config_resp *out);

/* ---- consumer side ---- */

/* How many consumers (subscribers) the stream has. With none, damage keeps
 * accumulating but nothing is encoded: an unwatched display costs no encoder
 * time. The hub keeps this up to date. */
void hfe_stream_set_consumers(struct hfe_stream *s, unsigned n);
/* Make the next access unit an IDR, encoding the current picture even if
 * nothing changed (a new subscriber, KEYFRAME_REQ, a resync after drops). */
void hfe_stream_request_keyframe(struct hfe_stream *s);
/* Take the next access unit: 1 got one, 0 none. Release it with
 * hfe_stream_au_unref once every subscriber's copy has been sent. */
int hfe_stream_poll(struct hfe_stream *s, struct hfe_stream_au **au);
struct hfe_stream_au *hfe_stream_au_ref(struct hfe_stream_au *au);
void hfe_stream_au_unref(struct hfe_stream_au *au);
/* For hfe_conn_send_owned: free_fn = hfe_stream_au_release, opaque = au. */
void hfe_stream_au_release(void *au);

bool hfe_stream_active(struct hfe_stream *s);
/* Whether pixels the source copied in still wait for the worker to take
 * them for an encode (it takes the newest at its next slot, or once the
 * encode in progress is done). A source that pays for each picture (a GL
 * read-back) makes the next one only once this is false: a picture made
 * earlier would be overwritten before anything encodes it. False while
 * nothing would take them (disabled, no consumers). */
bool hfe_stream_picture_pending(struct hfe_stream *s);
void hfe_stream_get_stats(struct hfe_stream *s, struct hfe_stream_stats *st);

#ifdef __cplusplus
}
#endif
#endif
