/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfe-viewer: the output's size (--size).
 *
 *   page   the pages' size becomes the output's preferred mode: a page sends
 *          "size W H" (its picture area in CSS pixels, on load and, debounced,
 *          on resize; docs/viewer.md) and it goes upstream as ENABLE_SCANOUT
 *          on the viewer's own scanout, the same UI-info request a display
 *          manager makes. The guest's compositor re-modesets; the stream
 *          follows with an IDR at the new size. The last page to ask wins.
 *          Only with --control: resizing the VM's screen is controlling it.
 *   WxH    that mode, asked once per upstream connection.
 *   guest  never asked: the guest's own mode (the default without --control).
 * With --replug a new size is asked as ENABLE (w x h), DISABLE, and after
 * REPLUG_GAP_MS ENABLE (w x h) again and SUBSCRIBE: the output is unplugged
 * and plugged back with its new preferred mode. For compositors that take the
 * preferred mode only when an output connects (weston 10 logs "Detected a
 * monitor change ... not bothering to do anything about it" for a new mode on
 * a connected output). The first ENABLE makes this connection the output's
 * controller, which DISABLE needs to unplug it; the gap lets the guest see the
 * output gone before it comes back. A busy guest may still read the display
 * only after both and see just a new mode (seen under ASan on a loaded host),
 * so REPLUG_CHECK_MS later the stream's size (from its last IDR's SPS) is
 * compared with the one asked for, and the replug is repeated, REPLUG_TRIES
 * times in all.
 * Sizes are clamped to SIZE_MIN and the host's limits (HELLO_RESP) and rounded
 * down to a multiple of SIZE_ALIGN. At most one ENABLE per SIZE_GAP_MS: a
 * page dragged wider costs the guest one modeset per gap, not one per event.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hfe/h264.h"
#include "viewer.h"

#define SIZE_MIN_W 320
#define SIZE_MIN_H 200
#define SIZE_ALIGN 8
#define SIZE_GAP_MS 500
#define REPLUG_GAP_MS 1500
#define REPLUG_CHECK_MS 8000
#define REPLUG_TRIES 3
#define SEND_TIMEOUT_MS 200

bool size_parse(struct viewer *v, const char *arg)
{
	char *end;
	unsigned long w, h;

	if (!strcmp(arg, "page")) {
		v->size_mode = SIZE_PAGE;
		return true;
	}
	if (!strcmp(arg, "guest")) {
		v->size_mode = SIZE_GUEST;
		return true;
	}
	if (!g_ascii_isdigit(*arg))
		return false;
	errno = 0;
	w = strtoul(arg, &end, 10);
	if (errno || (*end != 'x' && *end != 'X') || !g_ascii_isdigit(end[1]))
		return false;
	h = strtoul(end + 1, &end, 10);
	if (errno || *end || w < SIZE_MIN_W || h < SIZE_MIN_H ||
	    w > HFE_MAX_DIMENSION || h > HFE_MAX_DIMENSION)
		return false;
	v->size_mode = SIZE_FIXED;
	v->size_w = (uint32_t)w;
	v->size_h = (uint32_t)h;
	return true;
}

const char *size_mode_name(const struct viewer *v)
{
	return v->size_mode == SIZE_PAGE ? "page" : v->size_mode == SIZE_FIXED ? "fixed" : "guest";
}

static uint32_t clamp_dim(uint32_t x, uint32_t lo, uint32_t hi)
{
	hi -= hi % SIZE_ALIGN;
	x -= x % SIZE_ALIGN;
	return x < lo ? lo : x > hi ? hi : x;
}

/* One message upstream about our scanout; false if the connection is lost. */
static bool send_up(struct viewer *v, enum hfe_msg_type type, uint32_t w, uint32_t h)
{
	struct hfe_err err = { 0 };
	struct hfe_msg m = { .hdr = { .type = type, .session_id = (uint16_t)v->scanout } };

	if (type == HFE_MSG_ENABLE_SCANOUT)
		m.u.enable_scanout = (struct hfe_enable_scanout){ v->scanout, w, h, 0 };
	else
		m.u.scanout_id = v->scanout;
	/* Watching again after a replug: with the cursor channel as before (else
	 * the host draws the cursor into the picture and sends no cursor). */
	if (type == HFE_MSG_SUBSCRIBE && v->up_cursor)
		m.hdr.flags = HFE_FLAG_CURSOR;
	if (hfe_client_send_msg(v->up, &m, SEND_TIMEOUT_MS, &err) < 0) {
		upstream_lost(v, err.msg);
		return false;
	}
	return true;
}

static gboolean on_replug_check(gpointer data);

/* --replug, after the gap: plug the output back in, watch it again. */
static gboolean on_replug(gpointer data)
{
	struct viewer *v = data;
	v->replug_timer = 0;
	if (v->up && send_up(v, HFE_MSG_ENABLE_SCANOUT, v->size_asked_w, v->size_asked_h) &&
	    send_up(v, HFE_MSG_SUBSCRIBE, 0, 0)) {
		upstream_schedule_drain(v);
		v->replug_timer = g_timeout_add(REPLUG_CHECK_MS, on_replug_check, v);
	}
	return G_SOURCE_REMOVE;
}

/* The guest did not take the mode: unplug and plug again. */
static gboolean on_replug_check(gpointer data)
{
	struct viewer *v = data;
	v->replug_timer = 0;
	if (!v->up || (v->stream_w == v->size_asked_w && v->stream_h == v->size_asked_h) ||
	    ++v->replug_tries >= REPLUG_TRIES)
		return G_SOURCE_REMOVE;
	say("the stream is %ux%u, not %ux%u: unplugging scanout %u again", v->stream_w,
	    v->stream_h, v->size_asked_w, v->size_asked_h, v->scanout);
	if (send_up(v, HFE_MSG_DISABLE_SCANOUT, 0, 0))
		v->replug_timer = g_timeout_add(REPLUG_GAP_MS, on_replug, v);
	return G_SOURCE_REMOVE;
}

void size_keyframe(struct viewer *v, const uint8_t *annexb, size_t len)
{
	struct hfe_h264_sps sps;
	struct hfe_h264_nal nal;
	size_t pos = 0;

	while (hfe_h264_next_nal(annexb, len, &pos, &nal)) {
		if (nal.type == 7 && hfe_h264_parse_sps_nal(&nal, &sps)) {
			v->stream_w = sps.width;
			v->stream_h = sps.height;
			return;
		}
	}
}

/* ENABLE_SCANOUT with the wanted size, if it differs from the last one sent
 * on this connection. */
static void size_send(struct viewer *v)
{
	if (!v->up || !v->size_want_w || v->replug_timer ||
	    (v->size_want_w == v->size_sent_w && v->size_want_h == v->size_sent_h))
		return;
	uint32_t w = clamp_dim(v->size_want_w, SIZE_MIN_W, v->up_max_w);
	uint32_t h = clamp_dim(v->size_want_h, SIZE_MIN_H, v->up_max_h);
	if (!send_up(v, HFE_MSG_ENABLE_SCANOUT, w, h))
		return;
	if (v->replug) {
		if (!send_up(v, HFE_MSG_DISABLE_SCANOUT, 0, 0))
			return;
		v->replug_timer = g_timeout_add(REPLUG_GAP_MS, on_replug, v);
		v->replug_tries = 0;
	}
	v->size_sent_w = v->size_want_w;
	v->size_sent_h = v->size_want_h;
	v->size_requests++;
	v->size_asked_w = w;
	v->size_asked_h = h;
	say("asked the host for %ux%u on scanout %u", w, h, v->scanout);
	upstream_schedule_drain(v); /* the send may have read replies */
}

/* Between two requests: a replug must be over before the next begins. */
static guint size_gap_ms(const struct viewer *v)
{
	return v->replug ? REPLUG_GAP_MS + SIZE_GAP_MS : SIZE_GAP_MS;
}

static gboolean on_size_gap(gpointer data)
{
	struct viewer *v = data;
	v->size_timer = 0;
	if (v->size_want_w != v->size_sent_w || v->size_want_h != v->size_sent_h) {
		size_send(v);
		v->size_timer = g_timeout_add(size_gap_ms(v), on_size_gap, v);
	}
	return G_SOURCE_REMOVE;
}

static void size_want(struct viewer *v, uint32_t w, uint32_t h)
{
	v->size_want_w = w;
	v->size_want_h = h;
	if (v->size_timer)
		return; /* sent when the gap ends */
	size_send(v);
	v->size_timer = g_timeout_add(size_gap_ms(v), on_size_gap, v);
}

void size_page(struct page *p, const char *text)
{
	struct viewer *v = p->v;
	char *end;
	unsigned long w, h;

	if (v->size_mode != SIZE_PAGE || !input_enabled(v))
		return;
	/* Decimal digits only (strtoul alone takes blanks, signs). */
	if (!g_ascii_isdigit(text[5]))
		goto bad;
	errno = 0;
	w = strtoul(text + 5, &end, 10);
	if (errno || *end != ' ' || !g_ascii_isdigit(end[1]) || w > HFE_MAX_DIMENSION)
		goto bad;
	h = strtoul(end + 1, &end, 10);
	if (errno || *end || h > HFE_MAX_DIMENSION)
		goto bad;
	size_want(v, (uint32_t)w, (uint32_t)h);
	return;
bad:
	v->input_bad++;
}

void size_upstream_ready(struct viewer *v)
{
	/* A new connection: the host forgot nothing, but ask again so that
	 * this connection controls the output (a restarted host forgot all). */
	v->size_sent_w = v->size_sent_h = 0;
	if (v->replug_timer)
		g_source_remove(v->replug_timer);
	v->replug_timer = 0;
	if (v->size_mode == SIZE_FIXED)
		size_want(v, v->size_w, v->size_h);
	else if (v->size_mode == SIZE_PAGE && v->size_want_w && input_enabled(v))
		size_want(v, v->size_want_w, v->size_want_h);
}

void size_answer(struct viewer *v, const struct hfe_msg *m)
{
	const struct hfe_scanout_resp *r = &m->u.scanout_resp;

	if (r->scanout_id != v->scanout)
		return;
	if (r->success) {
		v->size_granted++;
		return;
	}
	v->size_refused++;
	say("the host refused %ux%u on scanout %u (its ERROR above says why)", v->size_asked_w,
	    v->size_asked_h, v->scanout);
}

void size_stop(struct viewer *v)
{
	if (v->size_timer)
		g_source_remove(v->size_timer);
	if (v->replug_timer)
		g_source_remove(v->replug_timer);
	v->size_timer = v->replug_timer = 0;
}
