/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A scanout's hardware cursor: its image and position as the VM last set
 * them, with serial numbers so that the hub sends each change once to the
 * subscribers that take the cursor as its own channel, and the blend that
 * draws it into a copy of the picture for those that do not. The stream
 * (stream.c) owns one; every call may come from any thread.
 */
#ifndef HFE_CURSOR_H
#define HFE_CURSOR_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "hfe/stream.h"
#include "hfe/wire.h"

struct hfe_cursor {
	pthread_mutex_t lock; /* held for field updates, one image copy or one blend */
	uint8_t *image;       /* shape.width x shape.height, B,G,R,A; NULL: none defined */
	struct hfe_stream_cursor st;
};

void hfe_cursor_init(struct hfe_cursor *c);
void hfe_cursor_destroy(struct hfe_cursor *c);

/* A new image (1..HFE_CURSOR_MAX each side, else -1 with err; a hot spot
 * outside it is moved to its edge); -1 too when out of memory. *old (may be NULL) is set to
 * the area the cursor covered and true returned in *had when it was shown. */
int hfe_cursor_define(struct hfe_cursor *c, const struct hfe_cursor_shape *shape,
		      const uint8_t *pixels, struct hfe_rect *old, bool *had, struct hfe_err *err);
/* A new position / visibility; *old as above. */
void hfe_cursor_move(struct hfe_cursor *c, int32_t x, int32_t y, bool visible,
		     struct hfe_rect *old, bool *had);
/* The area the shown cursor covers within w x h (false: none). */
bool hfe_cursor_area(struct hfe_cursor *c, uint32_t w, uint32_t h, struct hfe_rect *r);
/* Copy of the state; the image too when `image` is non-NULL (room for
 * 4 x HFE_CURSOR_MAX x HFE_CURSOR_MAX bytes) and one is defined. */
void hfe_cursor_get(struct hfe_cursor *c, struct hfe_stream_cursor *out, uint8_t *image);

/* Draw the shown cursor over a B,G,R,x picture of which `pic` holds the
 * area r (rows `stride` bytes apart): straight alpha over the pixels. */
void hfe_cursor_blend(struct hfe_cursor *c, uint8_t *pic, uint32_t stride,
		      const struct hfe_rect *r);

#endif
