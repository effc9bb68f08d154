/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What does scrolling a terminal cost on the wire? (issue 13: scrolling with
 * at most 1/5 of noVNC's bytes.) No VM: a desktop with a big terminal full of
 * text (tests/term_text.c) is scrolled by --lines text lines per step through
 * the real path (tests/term_scroll.c: hfe_stream with its damage, patch
 * frames and libx264, every access unit decoded by libavcodec with errors
 * fatal and compared with the source). Each configuration runs in the same
 * process and run, the first being the baseline; "new text only" rows give
 * the floor (tests/term_scroll.h). See bench/README.md, "Scrolling: bytes per
 * step".
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "term_scroll.h"

struct config {
	const char *name;
	const char *x264; /* HFE_X264_PARAMS, "" = the library's defaults */
	const char *preset;
	bool new_text_only; /* the floor: ts_setup's new_text_only */
};

#define MAX_CONFIGS 32

/* The first is the baseline: the settings before CRF and umh (ABR at the
 * stream's bitrate, ultrafast's diamond search within 16 px, full-pixel,
 * 16x16 only); its bitrate is filled in by main. The third is the floor of
 * the defaults: the same new lines with nothing moved, what a scroll would
 * cost if its motion were found perfectly (compare at a fixed quantizer,
 * qp=N: CRF gives a frame where little changed a lower one). */
static char before[96];
static struct config configs[MAX_CONFIGS] = {
	{ "before (ABR, dia 16)", before, "", false },
	{ "default", "", "", false },
	{ "default, new text only", "", "", true },
};
static int n_configs = 3;

static void usage(void)
{
	fprintf(stderr,
		"usage: bench-desktop-scroll [--sizes WxH,...] [--window WxH] [--text mixed|seq]\n"
		"         [--lines N] [--steps N] [--bitrate BPS] [--threads N]\n"
		"         [--patch-frames on|off] [--config NAME=X264PARAMS[@PRESET]]...\n"
		"         [--floors on|off]\n"
		"  --window: the terminal window's size (default: maximised); --text: a\n"
		"  shell session's mix of lines (default) or `seq`'s numbers;\n"
		"  --config adds a candidate (x264's key=value:... syntax, through\n"
		"  HFE_X264_PARAMS); the built-in ones are \"before\" (ABR and\n"
		"  ultrafast's motion search, the old defaults) and \"default\" (this\n"
		"  build's settings), \"default, new text only\" (the floor: the\n"
		"  step's new lines with nothing moved); --floors on adds the floor of\n"
		"  each candidate after it.\n");
}

int main(int argc, char **argv)
{
	const char *sizes = "1280x800,1920x1080";
	bool floors = false;
	struct ts_setup u = { .lines = 3, .steps = 30, .threads = 1 };

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v) {
			usage();
			return 2;
		}
		i++;
		if (!strcmp(a, "--sizes"))
			sizes = v;
		else if (!strcmp(a, "--window") && sscanf(v, "%ux%u", &u.ww, &u.wh) == 2)
			;
		else if (!strcmp(a, "--text") && (!strcmp(v, "mixed") || !strcmp(v, "seq")))
			u.text = !strcmp(v, "seq") ? TT_SEQ : TT_MIXED;
		else if (!strcmp(a, "--patch-frames") && (!strcmp(v, "on") || !strcmp(v, "off")))
			u.no_patch = !strcmp(v, "off");
		else if (!strcmp(a, "--pointer") && (!strcmp(v, "on") || !strcmp(v, "off")))
			u.pointer = !strcmp(v, "on");
		else if (!strcmp(a, "--floors") && (!strcmp(v, "on") || !strcmp(v, "off")))
			floors = !strcmp(v, "on");
		else if (!strcmp(a, "--lines"))
			u.lines = (uint32_t)atoi(v);
		else if (!strcmp(a, "--steps"))
			u.steps = atoi(v);
		else if (!strcmp(a, "--bitrate"))
			u.bitrate = (uint32_t)atol(v);
		else if (!strcmp(a, "--threads"))
			u.threads = atoi(v);
		else if (!strcmp(a, "--config") && n_configs < MAX_CONFIGS && strchr(v, '=')) {
			char *d = strdup(v), *eq = strchr(d, '='), *at = strchr(eq, '@');
			*eq = '\0';
			if (at)
				*at = '\0';
			configs[n_configs++] = (struct config){ d, eq + 1, at ? at + 1 : "", false };
		} else {
			usage();
			return 2;
		}
	}
	if (u.steps < 1 || u.lines < 1 || (u.ww && (u.ww < 64 || u.wh < 64))) {
		usage();
		return 2;
	}

	if (floors) { /* each candidate's floor right after it */
		struct config all[MAX_CONFIGS];
		int n = 0;
		for (int i = 0; i < n_configs && n < MAX_CONFIGS; i++) {
			all[n++] = configs[i];
			if (i >= 3 && n < MAX_CONFIGS) {
				all[n] = configs[i];
				all[n++].new_text_only = true;
			}
		}
		memcpy(configs, all, sizeof(all));
		n_configs = n;
	}
	snprintf(before, sizeof(before), "bitrate=%u:me=dia:merange=16:subme=0:partitions=none",
		 (u.bitrate ? u.bitrate : 4000000u) / 1000u);
	printf("desktop-scroll: a %s terminal of %s scrolled by %u lines (%u px) per step, %d steps, "
	       "x264 threads %d, bitrate %u bit/s\n",
	       u.ww ? "windowed" : "maximised", u.text == TT_SEQ ? "numbers" : "text", u.lines,
	       u.lines * TT_CELL_H, u.steps, u.threads, u.bitrate ? u.bitrate : 4000000u);
	int failed = 0;
	for (const char *p = sizes; *p;) {
		if (sscanf(p, "%ux%u", &u.w, &u.h) != 2 || u.w < 320 || u.h < 240) {
			usage();
			return 2;
		}
		struct hfe_rect win;
		tt_window(u.w, u.h, u.ww, u.wh, &win);
		printf("\n%ux%u, terminal window %ux%u\n", u.w, u.h, win.w, win.h);
		printf("%-30s %9s %9s %9s %6s %5s %6s %8s %8s %7s %7s\n", "config", "B/step",
		       "p50", "max", "AU/st", "IDRs", "patch", "enc ms", "cpu ms", "dB min",
		       "dB mean");
		double base = 0;
		for (int i = 0; i < n_configs; i++) {
			struct ts_result r;
			u.preset = configs[i].preset;
			u.new_text_only = configs[i].new_text_only;
			if (configs[i].x264[0])
				setenv("HFE_X264_PARAMS", configs[i].x264, 1);
			else
				unsetenv("HFE_X264_PARAMS");
			if (ts_run(&u, &r) < 0) {
				failed = 1;
				continue;
			}
			if (i == 0)
				base = r.bytes_mean;
			char name[64];
			snprintf(name, sizeof(name), "%s%s", configs[i].name,
				 configs[i].new_text_only && i > 2 ? ", new text" : "");
			printf("%-30s %9.0f %9.0f %9.0f %6.2f %5.0f %6.0f %8.2f %8.2f %7.1f %7.1f"
			       "  (x%.2f, IDR %zu B)%s\n",
			       name, r.bytes_mean, r.bytes_p50, r.bytes_max,
			       r.aus_per_step, r.idr_steps, r.patches, r.enc_ms, r.cpu_ms,
			       r.psnr_min, r.psnr_mean, base > 0 ? r.bytes_mean / base : 0,
			       r.idr_bytes, r.errors ? "  DECODE ERRORS" : "");
			fflush(stdout);
			failed |= r.errors != 0;
		}
		const char *comma = strchr(p, ',');
		p = comma ? comma + 1 : p + strlen(p);
	}
	return failed;
}
