/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Scrolling a terminal costs what the change needs, not the bit budget
 * (issue 13: scrolling with at most 1/5 of noVNC's bytes). A desktop with a
 * terminal (tests/term_text.c) scrolled by three text lines per step through
 * a real scanout stream and libx264 with one thread (deterministic bytes),
 * every access unit decoded by libavcodec with errors fatal:
 *  - `seq` output in a weston-terminal-sized window at the default 4 Mbit/s:
 *    each step is one access unit, at most 800 B on average (362 B when
 *    written), the text still as sharp as the source (>= 45 dB);
 *  - a window of mixed text with a cap of 40 Mbit/s: at most 10 kB a step
 *    (5.5 kB when written), >= 35 dB.
 * Each of the old settings alone fails it (checked when it was written):
 * ABR at the stream's bitrate (HFE_X264_PARAMS=bitrate=4000: 1.4 kB;
 * =bitrate=40000: 23 kB), ultrafast's search
 * (=me=dia:merange=16:subme=0:partitions=none: 3.6 kB and 32 kB), the old
 * patch frame limit in lib/src/stream.c (11 kB a step of patches).
 */
#include <stdio.h>

#include "term_scroll.h"
#include "test_util.h"

static void check_scroll(const char *what, const struct ts_setup *u, double max_bytes,
			 double min_db)
{
	struct ts_result r;
	REQUIRE(ts_run(u, &r) == 0);
	printf("%s: %.0f B/step (p50 %.0f, max %.0f), %.2f AU/step, %.0f patches, "
	       "%.1f..%.1f dB, encode %.1f ms\n",
	       what, r.bytes_mean, r.bytes_p50, r.bytes_max, r.aus_per_step, r.patches,
	       r.psnr_min, r.psnr_mean, r.enc_ms);
	CHECKF(r.errors == 0, "%s: %d access units missing or undecodable", what, r.errors);
	CHECKF(r.aus_per_step == 1.0 && r.idr_steps == 0, "%s: %.2f AUs and %.0f IDRs per step",
	       what, r.aus_per_step, r.idr_steps);
	CHECKF(r.bytes_mean <= max_bytes, "%s: %.0f bytes per step (want <= %.0f)", what,
	       r.bytes_mean, max_bytes);
	CHECKF(r.psnr_min >= min_db, "%s: %.1f dB after a step (want >= %.1f)", what, r.psnr_min,
	       min_db);
}

int main(void)
{
	struct ts_setup seq = { .w = 1280, .h = 800, .ww = 728, .wh = 391, .text = TT_SEQ,
				.lines = 3, .steps = 16, .threads = 1 };
	check_scroll("seq in a terminal window, 4 Mbit/s", &seq, 800, 45.0);

	struct ts_setup mixed = seq;
	mixed.text = TT_MIXED;
	mixed.bitrate = 40000000;
	check_scroll("mixed text, capped at 40 Mbit/s", &mixed, 10000, 35.0);
	return tu_finish("test_scroll_bytes");
}
