/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Input from one peer into the VM, without I/O: what the peer holds (keys,
 * buttons), pointer motion merged until the loop's next turn, and a token
 * bucket that bounds how many input messages the peer may send. host.c owns
 * one per peer that injects; the host's owner supplies the sink that reaches
 * the VM (the QEMU module: QEMU's input API; the daemon: the D-Bus console's
 * Keyboard and Mouse). Who may inject at all is host.c's business.
 */
#ifndef HFE_INPUT_H
#define HFE_INPUT_H

#include <stdbool.h>
#include <stdint.h>

#include "hfe/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Buttons as the sink sees them: QEMU's InputButton numbering, which is
 * also what org.qemu.Display1.Mouse.Press takes. */
enum hfe_button_id {
	HFE_BTN_LEFT,
	HFE_BTN_MIDDLE,
	HFE_BTN_RIGHT,
	HFE_BTN_WHEEL_UP,
	HFE_BTN_WHEEL_DOWN,
	HFE_BTN_SIDE,
	HFE_BTN_EXTRA,
	HFE_BTN_WHEEL_LEFT,
	HFE_BTN_WHEEL_RIGHT,
};

/* Called on the host's loop thread; must not block. `scanout` is the
 * scanout (console) the event is for. */
struct hfe_input_sink {
	void (*key)(void *opaque, uint32_t scanout, uint32_t evdev_code, bool down);
	/* Absolute position in the scanout's pixels (the sink clamps it to the
	 * console's current size: the peer may have seen an older one). */
	void (*move)(void *opaque, uint32_t scanout, uint32_t x, uint32_t y);
	void (*button)(void *opaque, uint32_t scanout, enum hfe_button_id b, bool down);
	/* Ends one pointer event (QEMU: qemu_input_event_sync). NULL when each
	 * call above is a whole event already (D-Bus methods are). */
	void (*sync)(void *opaque, uint32_t scanout);
	void *opaque;
};

/* Input messages a peer may send: HFE_INPUT_RATE a second, HFE_INPUT_BURST
 * at once. Past that the host stops reading the peer until the bucket
 * refills (its writes block; nothing is dropped here). Why so few: a key is
 * two events (the key, a sync) in QEMU's virtio-input queue of 64, and QEMU
 * drops what does not fit; a TCG guest empties it slowly. A person types
 * ~10 keys (20 messages) a second, and motion is merged. */
#define HFE_INPUT_RATE 200u
#define HFE_INPUT_BURST 20u

struct hfe_input;

struct hfe_input *hfe_input_new(const struct hfe_input_sink *sink, uint64_t now_ms);
/* Releases whatever the peer still holds, then frees. NULL is ignored. */
void hfe_input_free(struct hfe_input *in);

/* Take one message's token. False when the bucket is empty. */
bool hfe_input_take(struct hfe_input *in, uint64_t now_ms);
/* Refill: true when a message's token is there; else *deadline_ms is
 * lowered to when it will be. */
bool hfe_input_ready(struct hfe_input *in, uint64_t now_ms, uint64_t *deadline_ms);
/* No token left as of the last refill: do not read the peer. */
bool hfe_input_starved(const struct hfe_input *in);

/* A validated INPUT_KEY or INPUT_POINTER (session_id = scanout), allowed
 * by the caller. Keys, buttons and wheel go to the sink at once, in order;
 * a pure motion (same buttons, no wheel) waits for hfe_input_flush and is
 * replaced by the next one. */
void hfe_input_handle(struct hfe_input *in, const struct hfe_msg *m);
/* The motion waiting, if any, to the sink. */
void hfe_input_flush(struct hfe_input *in);
/* Release every key and button held (the peer is going away). */
void hfe_input_release(struct hfe_input *in);

/* Statistics: messages handled, motions merged away. */
uint64_t hfe_input_handled(const struct hfe_input *in);
uint64_t hfe_input_merged(const struct hfe_input *in);

#ifdef __cplusplus
}
#endif
#endif
