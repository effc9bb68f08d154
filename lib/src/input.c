/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One peer's input into the VM (see hfe/input.h): a token bucket, the keys
 * and buttons it holds (so they can be released when it goes), and pointer
 * motion merged until the loop's next turn, so a flood of moves costs the
 * VM one move per turn.
 */
#include "hfe/input.h"

#include <stdlib.h>
#include <string.h>

#include "hfe/log.h"
#include "worker.h"

#define MILLI 1000u /* the bucket counts thousandths of a message */

struct hfe_input {
	struct hfe_input_sink sink;
	uint64_t tokens; /* in thousandths */
	uint64_t refilled_ms;

	/* What the peer holds, all on one scanout (`at`): an event for another
	 * scanout releases everything on this one first. */
	bool active;
	uint32_t at;
	uint8_t keys[(HFE_KEY_MAX + 8) / 8];
	uint32_t buttons; /* HFE_BUTTON_* */
	uint32_t x, y;
	bool placed; /* x, y sent at least once */
	bool motion; /* x, y differ from what the sink has: a move is due */

	uint64_t handled, merged;
};

struct hfe_input *hfe_input_new(const struct hfe_input_sink *sink, uint64_t now_ms)
{
	struct hfe_input *in = calloc(1, sizeof(*in));
	if (!in)
		return NULL;
	in->sink = *sink;
	in->tokens = (uint64_t)HFE_INPUT_BURST * MILLI;
	in->refilled_ms = now_ms;
	return in;
}

void hfe_input_free(struct hfe_input *in)
{
	if (!in)
		return;
	hfe_input_release(in);
	free(in);
}

/* ---- the bucket ---- */

static void refill(struct hfe_input *in, uint64_t now)
{
	if (now <= in->refilled_ms)
		return;
	uint64_t cap = (uint64_t)HFE_INPUT_BURST * MILLI;
	uint64_t add = (now - in->refilled_ms) * HFE_INPUT_RATE; /* thousandths per ms */
	in->tokens = in->tokens + add > cap ? cap : in->tokens + add;
	in->refilled_ms = now;
}

bool hfe_input_take(struct hfe_input *in, uint64_t now_ms)
{
	refill(in, now_ms);
	if (in->tokens < MILLI)
		return false;
	in->tokens -= MILLI;
	return true;
}

bool hfe_input_ready(struct hfe_input *in, uint64_t now_ms, uint64_t *deadline_ms)
{
	refill(in, now_ms);
	if (in->tokens >= MILLI)
		return true;
	uint64_t due = now_ms + (MILLI - in->tokens + HFE_INPUT_RATE - 1) / HFE_INPUT_RATE;
	if (due < *deadline_ms)
		*deadline_ms = due;
	return false;
}

bool hfe_input_starved(const struct hfe_input *in) { return in->tokens < MILLI; }

/* ---- events ---- */

static const struct {
	uint32_t bit;
	enum hfe_button_id id;
} button_map[] = {
	{ HFE_BUTTON_LEFT, HFE_BTN_LEFT },   { HFE_BUTTON_RIGHT, HFE_BTN_RIGHT },
	{ HFE_BUTTON_MIDDLE, HFE_BTN_MIDDLE }, { HFE_BUTTON_BACK, HFE_BTN_SIDE },
	{ HFE_BUTTON_FORWARD, HFE_BTN_EXTRA },
};

/* When an event went to the VM, on the machine's one monotonic clock: for
 * bench/desktop-vs-vnc's latency split (HFE_LOG=debug), beside hfe-viewer's
 * "viewer input ... in at" line. */
static void stamp(const char *what, uint32_t a, uint32_t b)
{
	hfe_debug("input %s %u %u to the VM at %.3f ms", what, a, b, (double)hfe_mono_ns() / 1e6);
}

static void sync(struct hfe_input *in)
{
	if (in->sink.sync)
		in->sink.sync(in->sink.opaque, in->at);
}

static bool key_held(const struct hfe_input *in, uint32_t code)
{
	return in->keys[code / 8] & (1u << (code % 8));
}

void hfe_input_flush(struct hfe_input *in)
{
	if (!in->motion)
		return;
	in->motion = false;
	in->sink.move(in->sink.opaque, in->at, in->x, in->y);
	sync(in);
	stamp("move", in->x, in->y);
}

void hfe_input_release(struct hfe_input *in)
{
	if (!in->active)
		return;
	hfe_input_flush(in);
	for (uint32_t code = 1; code <= HFE_KEY_MAX; code++)
		if (key_held(in, code))
			in->sink.key(in->sink.opaque, in->at, code, false);
	memset(in->keys, 0, sizeof(in->keys));
	if (in->buttons) {
		for (size_t i = 0; i < sizeof(button_map) / sizeof(button_map[0]); i++)
			if (in->buttons & button_map[i].bit)
				in->sink.button(in->sink.opaque, in->at, button_map[i].id, false);
		in->buttons = 0;
		sync(in);
	}
}

/* One wheel notch is a press and a release, each its own event (as QEMU's
 * own displays send it). */
static void wheel(struct hfe_input *in, int16_t n, enum hfe_button_id neg, enum hfe_button_id pos)
{
	enum hfe_button_id b = n < 0 ? neg : pos;
	for (int i = n < 0 ? -n : n; i > 0; i--) {
		in->sink.button(in->sink.opaque, in->at, b, true);
		sync(in);
		in->sink.button(in->sink.opaque, in->at, b, false);
		sync(in);
	}
	if (n)
		stamp("wheel", (uint32_t)b, (uint32_t)(n < 0 ? -n : n));
}

static void pointer(struct hfe_input *in, const struct hfe_input_pointer *p)
{
	bool moved = !in->placed || p->x != in->x || p->y != in->y;

	in->x = p->x;
	in->y = p->y;
	in->placed = true;
	if (p->buttons == in->buttons && !p->wheel_x && !p->wheel_y) {
		if (moved) {
			in->merged += in->motion; /* the move it replaces never reaches the VM */
			in->motion = true;
		}
		return;
	}
	/* Buttons and wheel act where the pointer is now: move first. */
	in->motion = in->motion || moved;
	hfe_input_flush(in);
	uint32_t changed = p->buttons ^ in->buttons;
	for (size_t i = 0; i < sizeof(button_map) / sizeof(button_map[0]); i++)
		if (changed & button_map[i].bit)
			in->sink.button(in->sink.opaque, in->at, button_map[i].id,
					p->buttons & button_map[i].bit);
	in->buttons = p->buttons;
	if (changed) {
		sync(in);
		stamp("buttons", p->buttons, 0);
	}
	wheel(in, p->wheel_y, HFE_BTN_WHEEL_UP, HFE_BTN_WHEEL_DOWN);
	wheel(in, p->wheel_x, HFE_BTN_WHEEL_LEFT, HFE_BTN_WHEEL_RIGHT);
}

void hfe_input_handle(struct hfe_input *in, const struct hfe_msg *m)
{
	uint32_t scanout = m->hdr.session_id;

	if (in->active && scanout != in->at) {
		hfe_input_release(in);
		in->placed = false;
	}
	in->active = true;
	in->at = scanout;
	in->handled++;

	if (m->hdr.type == HFE_MSG_INPUT_POINTER) {
		pointer(in, &m->u.pointer);
		return;
	}
	/* A key: after the motion before it; a release of a key not held
	 * (pressed before the peer came, or released already) is dropped. */
	uint32_t code = m->u.key.code;
	bool down = m->u.key.down;
	hfe_input_flush(in);
	if (!down && !key_held(in, code))
		return;
	if (down)
		in->keys[code / 8] |= (uint8_t)(1u << (code % 8));
	else
		in->keys[code / 8] &= (uint8_t) ~(1u << (code % 8));
	in->sink.key(in->sink.opaque, scanout, code, down);
	stamp("key", code, down);
}

uint64_t hfe_input_handled(const struct hfe_input *in) { return in->handled; }
uint64_t hfe_input_merged(const struct hfe_input *in) { return in->merged; }
