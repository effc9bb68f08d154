/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfe-viewer: the VM's cursor as its own channel. The upstream subscription
 * asks for it (SUBSCRIBE's CURSOR flag) when the host offers it and nothing
 * is recorded (an MP4 needs the cursor in its pictures); CURSOR_SHAPE and
 * CURSOR_POSITION then become "cursor" text messages to the pages, which
 * draw the cursor themselves (docs/viewer.md), so a moving cursor costs no
 * encode. The latest of each is kept for pages that join later.
 */
#include <stdio.h>

#include "viewer.h"

bool cursor_wanted(const struct viewer *v, uint16_t host_features)
{
	return !v->recording && (host_features & HFE_FEATURE_CURSOR);
}

static void keep_and_send(struct viewer *v, char **slot, char *json)
{
	g_free(*slot);
	*slot = json;
	broadcast_text(v, json);
}

void cursor_shape(struct viewer *v, const struct hfe_msg *m)
{
	const struct hfe_cursor_shape *s = &m->u.cursor_shape;
	/* wire.c checked the size: exactly width x height B,G,R,A pixels */
	gchar *b64 = g_base64_encode(m->data, m->data_len);
	char *json = g_strdup_printf("{\"type\":\"cursor\",\"shape\":{\"width\":%u,\"height\":%u,"
				     "\"hot_x\":%u,\"hot_y\":%u,\"bgra\":\"%s\"}}",
				     s->width, s->height, s->hot_x, s->hot_y, b64);
	g_free(b64);
	v->cursor_shapes++;
	keep_and_send(v, &v->cursor_shape_json, json);
}

void cursor_position(struct viewer *v, const struct hfe_msg *m)
{
	const struct hfe_cursor_position *p = &m->u.cursor_pos;
	char *json = g_strdup_printf("{\"type\":\"cursor\",\"x\":%d,\"y\":%d,\"visible\":%s}",
				     p->x, p->y, p->visible ? "true" : "false");
	v->cursor_moves++;
	keep_and_send(v, &v->cursor_pos_json, json);
}

void cursor_page_joined(struct page *p)
{
	if (p->v->cursor_shape_json)
		page_send_text(p, p->v->cursor_shape_json);
	if (p->v->cursor_pos_json)
		page_send_text(p, p->v->cursor_pos_json);
}

void cursor_forget(struct viewer *v)
{
	g_free(v->cursor_shape_json);
	g_free(v->cursor_pos_json);
	v->cursor_shape_json = v->cursor_pos_json = NULL;
	broadcast_text(v, "{\"type\":\"cursor\",\"x\":0,\"y\":0,\"visible\":false}");
}
