/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfe-viewer: the VM's cursor as its own channel. The upstream subscription
 * asks for it (SUBSCRIBE's CURSOR flag) when the host offers it and nothing
 * is recorded (an MP4 needs the cursor in its pictures); CURSOR_SHAPE and
 * CURSOR_POSITION then become "cursor" text messages to the pages, which
 * draw the cursor themselves (docs/viewer.md), so a moving cursor costs no
 * encode. The latest position is kept for pages that join later.
 *
 * Shapes are sent to each page once: a guest redefines the same few shapes
 * again and again (weston on every surface the pointer enters; a 64x64 one
 * is 22 kB of JSON), so the recent distinct shapes are cached here, each
 * with an id, and a page that already has a shape is sent only its id. A
 * slot reused for another shape gets a new id, so a stale id never matches;
 * ids alive at once differ modulo CURSOR_SLOTS, the page's own bound.
 */
#include <stdio.h>
#include <string.h>

#include "viewer.h"

bool cursor_wanted(const struct viewer *v, uint16_t host_features)
{
	return !v->recording && (host_features & HFE_FEATURE_CURSOR);
}

/* FNV-1a: only to skip most memcmps. */
static uint32_t hash_bytes(uint32_t h, const void *data, size_t len)
{
	const uint8_t *b = data;
	for (size_t i = 0; i < len; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

static uint32_t shape_hash(const struct hfe_cursor_shape *s, const uint8_t *bgra, size_t len)
{
	const uint32_t geo[4] = { s->width, s->height, s->hot_x, s->hot_y };
	return hash_bytes(hash_bytes(2166136261u, geo, sizeof(geo)), bgra, len);
}

/* The cached slot holding this shape, or a slot made to hold it: an empty
 * one, else the one current longest ago, with a new id. */
static int cache_shape(struct viewer *v, const struct hfe_cursor_shape *s, const uint8_t *bgra,
		       size_t len)
{
	uint32_t h = shape_hash(s, bgra, len);
	int victim = 0;
	for (int i = 0; i < CURSOR_SLOTS; i++) {
		struct cursor_cached *c = &v->cursor_cache[i];
		if (c->id && c->hash == h && c->len == len && c->shape.width == s->width &&
		    c->shape.height == s->height && c->shape.hot_x == s->hot_x &&
		    c->shape.hot_y == s->hot_y && memcmp(c->bgra, bgra, len) == 0)
			return i;
		struct cursor_cached *old = &v->cursor_cache[victim];
		if (old->id && (!c->id || c->used < old->used))
			victim = i;
	}
	struct cursor_cached *c = &v->cursor_cache[victim];
	c->id = c->id ? c->id + CURSOR_SLOTS : (uint32_t)victim + 1;
	c->hash = h;
	c->shape = *s;
	g_free(c->bgra);
	c->bgra = g_memdup2(bgra, len);
	c->len = len;
	return victim;
}

static char *full_json(const struct cursor_cached *c)
{
	gchar *b64 = g_base64_encode(c->bgra, c->len);
	char *json = g_strdup_printf("{\"type\":\"cursor\",\"shape\":{\"id\":%u,\"width\":%u,"
				     "\"height\":%u,\"hot_x\":%u,\"hot_y\":%u,\"bgra\":\"%s\"}}",
				     c->id, c->shape.width, c->shape.height, c->shape.hot_x,
				     c->shape.hot_y, b64);
	g_free(b64);
	return json;
}

/* The current shape to one page: its id if the page has it, else in full
 * (FULL: built once per shape message, on demand). */
static void send_shape(struct page *p, char **full, const char *ref)
{
	struct viewer *v = p->v;
	const struct cursor_cached *c = &v->cursor_cache[v->cursor_cur];
	uint32_t *held = &p->cursor_held[v->cursor_cur];
	if (*held == c->id) {
		if (page_send_text(p, ref))
			v->cursor_sent_ref++;
		return;
	}
	if (!*full)
		*full = full_json(c);
	if (page_send_text(p, *full)) {
		*held = c->id;
		v->cursor_sent_full++;
	}
}

static void send_current_shape(struct viewer *v, struct page *only)
{
	char *full = NULL;
	char ref[64];
	snprintf(ref, sizeof(ref), "{\"type\":\"cursor\",\"shape_id\":%u}",
		 v->cursor_cache[v->cursor_cur].id);
	if (only)
		send_shape(only, &full, ref);
	for (guint i = 0; !only && i < v->pages->len; i++)
		send_shape(g_ptr_array_index(v->pages, i), &full, ref);
	g_free(full);
}

void cursor_shape(struct viewer *v, const struct hfe_msg *m)
{
	/* wire.c checked the size: exactly width x height B,G,R,A pixels */
	v->cursor_shapes++;
	v->cursor_cur = cache_shape(v, &m->u.cursor_shape, m->data, m->data_len);
	v->cursor_cache[v->cursor_cur].used = v->cursor_shapes;
	send_current_shape(v, NULL);
}

void cursor_position(struct viewer *v, const struct hfe_msg *m)
{
	const struct hfe_cursor_position *p = &m->u.cursor_pos;
	char *json = g_strdup_printf("{\"type\":\"cursor\",\"x\":%d,\"y\":%d,\"visible\":%s}",
				     p->x, p->y, p->visible ? "true" : "false");
	v->cursor_moves++;
	g_free(v->cursor_pos_json);
	v->cursor_pos_json = json;
	broadcast_text(v, json);
}

void cursor_page_joined(struct page *p)
{
	if (p->v->cursor_cur >= 0)
		send_current_shape(p->v, p);
	if (p->v->cursor_pos_json)
		page_send_text(p, p->v->cursor_pos_json);
}

void cursor_forget(struct viewer *v)
{
	/* The cache stays: a shape is its pixels, whichever host sends it. */
	v->cursor_cur = -1;
	g_free(v->cursor_pos_json);
	v->cursor_pos_json = NULL;
	broadcast_text(v, "{\"type\":\"cursor\",\"x\":0,\"y\":0,\"visible\":false}");
}

void cursor_free(struct viewer *v)
{
	g_free(v->cursor_pos_json);
	v->cursor_pos_json = NULL;
	for (int i = 0; i < CURSOR_SLOTS; i++)
		g_free(v->cursor_cache[i].bgra);
}
