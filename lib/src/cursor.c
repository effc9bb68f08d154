/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A scanout's hardware cursor. See cursor.h. */
#include "cursor.h"

#include <stdlib.h>
#include <string.h>

void hfe_cursor_init(struct hfe_cursor *c)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
}

void hfe_cursor_destroy(struct hfe_cursor *c)
{
	free(c->image);
	pthread_mutex_destroy(&c->lock);
}

/* The image's rectangle clipped to w x h (lock held). */
static bool area_locked(const struct hfe_cursor *c, uint32_t w, uint32_t h, struct hfe_rect *r)
{
	const struct hfe_stream_cursor *s = &c->st;
	if (!c->image || !s->pos.visible)
		return false;
	int64_t x0 = s->pos.x > 0 ? s->pos.x : 0, y0 = s->pos.y > 0 ? s->pos.y : 0;
	int64_t x1 = (int64_t)s->pos.x + s->shape.width, y1 = (int64_t)s->pos.y + s->shape.height;
	if (x1 > w)
		x1 = w;
	if (y1 > h)
		y1 = h;
	if (x0 >= x1 || y0 >= y1)
		return false;
	*r = (struct hfe_rect){ (uint32_t)x0, (uint32_t)y0, (uint32_t)(x1 - x0),
				(uint32_t)(y1 - y0) };
	return true;
}

/* Before a change: where the cursor was (the largest surface: the caller
 * clips to its own). */
static void old_area(const struct hfe_cursor *c, struct hfe_rect *old, bool *had)
{
	struct hfe_rect r;
	bool h = area_locked(c, HFE_MAX_DIMENSION, HFE_MAX_DIMENSION, &r);
	if (had)
		*had = h;
	if (old && h)
		*old = r;
}

int hfe_cursor_define(struct hfe_cursor *c, const struct hfe_cursor_shape *shape,
		      const uint8_t *pixels, struct hfe_rect *old, bool *had, struct hfe_err *err)
{
	if (shape->width < 1 || shape->height < 1 || shape->width > HFE_CURSOR_MAX ||
	    shape->height > HFE_CURSOR_MAX) {
		hfe_err_set(err, HFE_ERR_INVALID_MSG, "cursor %ux%u (1x1..%ux%u)", shape->width,
			    shape->height, HFE_CURSOR_MAX, HFE_CURSOR_MAX);
		return -1;
	}
	size_t size = (size_t)shape->width * shape->height * 4;
	uint8_t *img = malloc(size);
	if (!img) {
		hfe_err_set(err, HFE_ERR_INTERNAL, "out of memory");
		return -1;
	}
	memcpy(img, pixels, size);
	pthread_mutex_lock(&c->lock);
	old_area(c, old, had);
	uint8_t *prev = c->image;
	c->image = img;
	c->st.shape = *shape;
	/* the guest chose it: kept inside the image */
	if (c->st.shape.hot_x >= shape->width)
		c->st.shape.hot_x = shape->width - 1;
	if (c->st.shape.hot_y >= shape->height)
		c->st.shape.hot_y = shape->height - 1;
	c->st.shape_serial++;
	pthread_mutex_unlock(&c->lock);
	free(prev);
	return 0;
}

void hfe_cursor_move(struct hfe_cursor *c, int32_t x, int32_t y, bool visible,
		     struct hfe_rect *old, bool *had)
{
	pthread_mutex_lock(&c->lock);
	old_area(c, old, had);
	c->st.pos = (struct hfe_cursor_position){ x, y, visible };
	c->st.pos_serial++;
	pthread_mutex_unlock(&c->lock);
}

bool hfe_cursor_area(struct hfe_cursor *c, uint32_t w, uint32_t h, struct hfe_rect *r)
{
	pthread_mutex_lock(&c->lock);
	bool on = area_locked(c, w, h, r);
	pthread_mutex_unlock(&c->lock);
	return on;
}

void hfe_cursor_get(struct hfe_cursor *c, struct hfe_stream_cursor *out, uint8_t *image)
{
	pthread_mutex_lock(&c->lock);
	*out = c->st;
	if (image && c->image)
		memcpy(image, c->image, (size_t)c->st.shape.width * c->st.shape.height * 4);
	pthread_mutex_unlock(&c->lock);
}

void hfe_cursor_blend(struct hfe_cursor *c, uint8_t *pic, uint32_t stride,
		      const struct hfe_rect *r)
{
	struct hfe_rect a;

	pthread_mutex_lock(&c->lock);
	if (!area_locked(c, r->x + r->w, r->y + r->h, &a) || a.x + a.w <= r->x ||
	    a.y + a.h <= r->y) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	/* a: the cursor's part of r */
	uint32_t x0 = a.x > r->x ? a.x : r->x, y0 = a.y > r->y ? a.y : r->y;
	uint32_t x1 = a.x + a.w, y1 = a.y + a.h;
	uint32_t cw = c->st.shape.width;
	for (uint32_t y = y0; y < y1; y++) {
		uint8_t *d = pic + (size_t)(y - r->y) * stride + (size_t)(x0 - r->x) * 4;
		const uint8_t *s = c->image + ((size_t)((int64_t)y - c->st.pos.y) * cw +
					       (size_t)((int64_t)x0 - c->st.pos.x)) * 4;
		for (uint32_t i = 0; i < x1 - x0; i++, d += 4, s += 4) {
			unsigned al = s[3];
			for (int k = 0; k < 3; k++)
				d[k] = (uint8_t)((s[k] * al + d[k] * (255 - al) + 127) / 255);
		}
	}
	pthread_mutex_unlock(&c->lock);
}
