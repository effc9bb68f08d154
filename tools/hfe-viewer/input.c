/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfe-viewer: a page's keyboard and pointer, forwarded to the host (--control).
 *
 * The page sends text commands on its WebSocket (docs/viewer.md):
 *   key CODE DOWN              an evdev key code 1..0x2ff, DOWN 0 or 1
 *   ptr X Y BUTTONS WY WX      the pointer in the scanout's pixels, the DOM's
 *                              MouseEvent.buttons, wheel notches -64..64
 * Each is checked here as the host checks it (a value the host would call
 * malformed would cost the whole upstream connection) and sent upstream as
 * INPUT_KEY / INPUT_POINTER on the subscribed scanout. Pure motion is thinned
 * to MOTION_GAP_NS (the page sends one per pointermove, about one per
 * animation frame; the host reads 200 input messages a second); the latest
 * thinned move is sent when the gap is over, so the pointer always ends where
 * the page's did. What a page holds is tracked, so a page that
 * goes away releases its keys and buttons; the host does the same for the
 * whole connection.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hfe/log.h"
#include "viewer.h"

#define SEND_TIMEOUT_MS 200
#define MOTION_GAP_NS (10LL * 1000000) /* at most 100 pure moves a second */

static bool key_held(const struct page *p, uint32_t code)
{
	return p->keys[code / 8] & (1u << (code % 8));
}

/* Whole decimal integers only, within lo..hi. */
static bool parse_num(char **s, long lo, long hi, long *out)
{
	char *end;

	errno = 0;
	long v = strtol(*s, &end, 10);
	if (errno || end == *s || v < lo || v > hi || (*end && *end != ' '))
		return false;
	*s = *end ? end + 1 : end;
	*out = v;
	return true;
}

static void forward(struct viewer *v, struct hfe_msg *m)
{
	struct hfe_err err = { 0 };

	if (m->hdr.type == HFE_MSG_INPUT_POINTER && v->motion_timer) {
		g_source_remove(v->motion_timer); /* this one is newer */
		v->motion_timer = 0;
	}
	m->hdr.session_id = (uint16_t)v->scanout;
	if (hfe_client_send_msg(v->up, m, SEND_TIMEOUT_MS, &err) < 0) {
		upstream_lost(v, err.msg);
		return;
	}
	v->input_sent++;
	upstream_schedule_drain(v); /* the send may have read replies */
}

static gboolean on_motion_due(gpointer data)
{
	struct viewer *v = data;
	struct hfe_msg m = { 0 };

	v->motion_timer = 0;
	if (!input_enabled(v))
		return G_SOURCE_REMOVE;
	v->motion_ns = mono_ns();
	m.hdr.type = HFE_MSG_INPUT_POINTER;
	m.u.pointer = v->motion_due;
	forward(v, &m);
	return G_SOURCE_REMOVE;
}

void input_stop(struct viewer *v)
{
	if (v->motion_timer)
		g_source_remove(v->motion_timer);
	v->motion_timer = 0;
}

bool input_enabled(const struct viewer *v)
{
	return v->control && v->up && v->up_input;
}

void page_input(struct page *p, char *text)
{
	struct viewer *v = p->v;
	struct hfe_msg m = { 0 };
	char *s = text + 4;
	long a, b, c, wy, wx;

	v->input_in++;
	/* for bench/desktop-vs-vnc's latency split (HFE_LOG=debug): one clock */
	hfe_debug("viewer input '%.24s' in at %.3f ms", text, (double)mono_ns() / 1e6);
	if (!input_enabled(v))
		return; /* not asked for (--control), or the host takes none */
	if (!strncmp(text, "key ", 4)) {
		if (!parse_num(&s, 1, HFE_KEY_MAX, &a) || !parse_num(&s, 0, 1, &b) || *s)
			goto bad;
		if (!b && !key_held(p, (uint32_t)a))
			return; /* a release of a key this page did not press */
		if (b)
			p->keys[a / 8] |= (uint8_t)(1u << (a % 8));
		else
			p->keys[a / 8] &= (uint8_t) ~(1u << (a % 8));
		m.hdr.type = HFE_MSG_INPUT_KEY;
		m.u.key = (struct hfe_input_key){ (uint32_t)a, (uint8_t)b };
		forward(v, &m);
		return;
	}
	if (!parse_num(&s, 0, (long)v->up_max_w - 1, &a) ||
	    !parse_num(&s, 0, (long)v->up_max_h - 1, &b) ||
	    !parse_num(&s, 0, HFE_BUTTONS_ALL, &c) || !parse_num(&s, -HFE_MAX_WHEEL, HFE_MAX_WHEEL, &wy) ||
	    !parse_num(&s, -HFE_MAX_WHEEL, HFE_MAX_WHEEL, &wx) || *s)
		goto bad;
	int64_t now = mono_ns();
	if ((uint32_t)c == p->buttons && !wy && !wx) {
		if (now - v->motion_ns < MOTION_GAP_NS) {
			v->input_thinned++;
			p->x = (uint32_t)a;
			p->y = (uint32_t)b;
			v->motion_due = (struct hfe_input_pointer){ p->x, p->y, p->buttons, 0, 0 };
			if (!v->motion_timer)
				v->motion_timer = g_timeout_add(
					(guint)((v->motion_ns + MOTION_GAP_NS - now) / 1000000 + 1),
					on_motion_due, v);
			return;
		}
		v->motion_ns = now;
	}
	p->buttons = (uint32_t)c;
	m.hdr.type = HFE_MSG_INPUT_POINTER;
	m.u.pointer = (struct hfe_input_pointer){ (uint32_t)a, (uint32_t)b, (uint32_t)c,
						  (int16_t)wy, (int16_t)wx };
	p->x = (uint32_t)a;
	p->y = (uint32_t)b;
	forward(v, &m);
	return;
bad:
	v->input_bad++;
	if (v->input_bad == 1)
		say("viewer %u: malformed input '%.40s' dropped (more are counted in /stats.json)",
		    p->id, text);
}

void page_input_release(struct page *p)
{
	struct viewer *v = p->v;
	struct hfe_msg m = { 0 };

	if (!input_enabled(v))
		return;
	for (uint32_t code = 1; code <= HFE_KEY_MAX && v->up; code++) {
		if (!key_held(p, code))
			continue;
		m.hdr.type = HFE_MSG_INPUT_KEY;
		m.u.key = (struct hfe_input_key){ code, 0 };
		forward(v, &m);
	}
	memset(p->keys, 0, sizeof(p->keys));
	if (p->buttons && v->up) {
		m.hdr.type = HFE_MSG_INPUT_POINTER;
		m.u.pointer = (struct hfe_input_pointer){ p->x, p->y, 0, 0, 0 };
		forward(v, &m);
	}
	p->buttons = 0;
}
