/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A desktop with a terminal full of text, procedurally drawn (no fonts, no
 * copied glyphs): what scrolling a terminal looks like to the encoder. The
 * glyphs are made of anti-aliased strokes in a 9x17 cell (weston-terminal's
 * default monospace cell is about that); the text's lines are a function of
 * their number only, so "scrolled by N lines" is exactly the picture before
 * moved up by N cells with N new lines at the bottom. Deterministic.
 */
#ifndef TERM_TEXT_H
#define TERM_TEXT_H

#include <stdbool.h>
#include <stdint.h>

#include "hfe/stream.h"

#define TT_CELL_W 9
#define TT_CELL_H 17

/* The terminal window (what a compositor reports as damaged when the terminal
 * redraws): ww x wh pixels centred below the panel of a w x h desktop, or,
 * with ww = 0, nearly all of it (a maximised terminal). */
void tt_window(uint32_t w, uint32_t h, uint32_t ww, uint32_t wh, struct hfe_rect *r);
/* Where the text is inside that window (below its title bar, in its border). */
void tt_text_area(const struct hfe_rect *win, struct hfe_rect *r);
enum tt_text {
	TT_MIXED, /* a shell session: numbers, words, long listing lines, empty lines */
	TT_SEQ,   /* `seq 1 N`: line n is the number n + 1 */
};
struct tt_term {
	struct hfe_rect win; /* tt_window */
	enum tt_text text;
	bool pointer; /* a mouse pointer drawn over the middle of the text (as
		       * a compositor without a cursor plane does; it stays while
		       * the text scrolls under it) */
};
/* Draw the w x h desktop as B,G,R,X bytes (stride w * 4) with the terminal
 * showing its text lines first_line, first_line + 1, ... */
void tt_draw(uint8_t *bgrx, uint32_t w, uint32_t h, const struct tt_term *t,
	     uint32_t first_line);
/* The same picture as packed R,G,B (for tu_ref_rgb_to_yuv). */
void tt_bgrx_to_rgb(const uint8_t *bgrx, uint32_t w, uint32_t h, uint8_t *rgb);

#endif
