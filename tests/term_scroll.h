/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A terminal scrolled through a real scanout stream (hfe_stream: damage,
 * patch frames, libx264), every access unit decoded by libavcodec with
 * errors fatal and compared with the source: the bytes and time a scroll
 * step costs. Shared by bench/desktop-scroll.c and tests/test_scroll_bytes.c.
 */
#ifndef TERM_SCROLL_H
#define TERM_SCROLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "term_text.h"

struct ts_setup {
	uint32_t w, h;    /* the desktop */
	uint32_t ww, wh;  /* the terminal window, 0 = maximised */
	enum tt_text text;
	bool pointer;     /* tt_term's */
	uint32_t bitrate; /* 0 = the library's default */
	uint32_t lines;   /* text lines per scroll step */
	int steps;
	int threads;   /* x264's; 1 = deterministic bytes */
	bool no_patch; /* every change through the encoder */
	bool new_text_only; /* the floor of any scroll: the text does not move, only the
			     * band where a scroll's new lines appear (the bottom lines *
			     * TT_CELL_H px of the text area) shows them, as if a perfect
			     * motion search had found all that moved; all through the
			     * encoder (a scroll changes the whole window, never a patch
			     * frame's few macroblocks) */
	const char *preset; /* NULL or "" = the library's default */
};

struct ts_result {
	double bytes_mean, bytes_p50, bytes_max; /* per step (all its access units) */
	double aus_per_step, idr_steps, patches;
	double enc_ms; /* per encoder run (the stream's own timing) */
	double cpu_ms; /* process CPU per step, from the update to its access unit */
	double psnr_min, psnr_mean; /* Y over the text area, after each step */
	size_t idr_bytes;           /* the first picture */
	int errors;                 /* undecodable access units, steps without one */
};

/* Draw, resize, first picture, then u->steps steps. -1 if the stream could
 * not be set up or gave no first picture. */
int ts_run(const struct ts_setup *u, struct ts_result *out);

#endif
