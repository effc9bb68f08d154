/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The guest tool's draw and subscribe modes, end to end, with what exists
 * today (stock QEMU, the daemon's built-in test scanout), so that the
 * scanout tests built on them (QEMU module, -display dbus) start from a
 * guest known to work:
 *  1. draw+subscribe: the guest subscribes to the daemon's --test-scanout 0
 *     over virtio-serial and forwards its bitstream while a second thread
 *     draws the known schedule into /dev/fb0 (mmap). The host checks the AUs
 *     (IDR with SPS/PPS first, all decode to the scanout's size), the DRAW
 *     records (every frame, in order), and, during the static hold, that
 *     QEMU's screen (QMP screendump) is exactly the last drawn frame.
 *  2. draw with hfe.fbio=write: the same screen check through write(2).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "e2e_harness.h"
#include "e2e_pattern.h"
#include "test_util.h"

#define FB_W 320
#define FB_H 240
#define N_FULL 4
#define N_SMALL 3
#define SCANOUT_W 320
#define SCANOUT_H 192

/* Read a binary PPM (P6, maxval 255) into packed RGB; NULL on error. */
static uint8_t *read_ppm(const char *path, uint32_t *w, uint32_t *h)
{
	FILE *f = fopen(path, "rb");
	unsigned pw, ph, maxval;
	uint8_t *rgb = NULL;

	if (!f)
		return NULL;
	if (fscanf(f, "P6 %u %u %u", &pw, &ph, &maxval) == 3 && maxval == 255 && fgetc(f) != EOF &&
	    pw && ph && pw <= 8192 && ph <= 8192) {
		rgb = malloc((size_t)pw * ph * 3);
		if (rgb && fread(rgb, 1, (size_t)pw * ph * 3, f) != (size_t)pw * ph * 3) {
			free(rgb);
			rgb = NULL;
		}
		*w = pw;
		*h = ph;
	}
	fclose(f);
	return rgb;
}

/* QMP screendump now; compare with draw frame k of the schedule. */
static void check_screen(const char *tag, struct e2e_vm *vm, const char *workdir, uint32_t k)
{
	char path[PATH_MAX], cmd[PATH_MAX + 96], err[512];
	uint8_t *want = malloc((size_t)FB_W * FB_H * 3), *got;
	uint32_t w = 0, h = 0;
	size_t diff = 0;

	REQUIRE(want);
	snprintf(path, sizeof(path), "%s/%s-screen.ppm", workdir, tag);
	snprintf(cmd, sizeof(cmd),
		 "{\"execute\":\"screendump\",\"arguments\":{\"filename\":\"%s\"}}", path);
	CHECKF(e2e_qmp(e2e_vm_qmp_path(vm), cmd, NULL, 0, 15000, err, sizeof(err)) == 0,
	       "%s: screendump: %s", tag, err);
	got = read_ppm(path, &w, &h);
	CHECKF(got != NULL, "%s: cannot read %s", tag, path);
	if (got) {
		CHECKF(w == FB_W && h == FB_H, "%s: screen is %ux%u, want %ux%u", tag, w, h, FB_W,
		       FB_H);
		e2e_draw_rgb(want, FB_W, FB_H, k, N_FULL);
		if (w == FB_W && h == FB_H)
			for (size_t i = 0; i < (size_t)FB_W * FB_H; i++)
				diff += memcmp(got + 3 * i, want + 3 * i, 3) != 0;
		CHECKF(diff == 0, "%s: %zu of %u screen pixels differ from draw frame %u", tag, diff,
		       FB_W * FB_H, k);
		printf("%s: screen %ux%u equals draw frame %u: %s\n", tag, w, h, k,
		       diff ? "no" : "yes");
	}
	free(got);
	free(want);
}

static void check_aus(const char *tag, const struct e2e_rec **aus, int n)
{
	struct tu_decoder *dec = tu_decoder_new();
	struct tu_nals nals;
	int pics = 0, errors = 0, bad_size = 0;

	REQUIRE(dec);
	CHECKF(n >= 20, "%s: only %d access units from the test scanout", tag, n);
	if (n > 0) {
		CHECKF(tu_nal_parse(aus[0]->data, aus[0]->h.len, &nals) > 0 && nals.has_sps &&
			       nals.has_pps && nals.has_idr,
		       "%s: the first AU after SUBSCRIBE is not an IDR with SPS/PPS", tag);
	}
	for (int i = 0; i <= n; i++) {
		struct tu_yuv pic;
		int r = i < n ? tu_decoder_decode(dec, aus[i]->data, aus[i]->h.len, &pic, NULL) :
				tu_decoder_flush(dec, &pic);

		if (r < 0)
			errors++;
		while (r == 1) {
			bad_size += pic.w != SCANOUT_W || pic.h != SCANOUT_H;
			tu_yuv_free(&pic);
			pics++;
			r = i < n ? 0 : tu_decoder_flush(dec, &pic);
		}
	}
	CHECKF(errors == 0, "%s: %d AUs failed to decode", tag, errors);
	CHECKF(pics == n, "%s: %d pictures from %d AUs", tag, pics, n);
	CHECKF(bad_size == 0, "%s: %d pictures not %ux%u", tag, bad_size, SCANOUT_W, SCANOUT_H);
	printf("%s: %d AUs from scanout 0, %d pictures %ux%u decoded\n", tag, n, pics, SCANOUT_W,
	       SCANOUT_H);
	tu_decoder_free(dec);
}

static void run(const struct e2e_guest *g, const char *workdir, const struct e2e_daemon *d,
		const char *tag, const char *append)
{
	const bool subscribe = strstr(append, "subscribe") != NULL;
	struct e2e_vm_config cfg = {
		.hfe_sock = d->sock, .fb_width = FB_W, .fb_height = FB_H, .qmp = true,
		.append = append, .timeout_ms = 180000,
	};
	const struct e2e_rec *rec, *end = NULL, **aus = NULL;
	char err[512], line[512] = "";
	int n_aus = 0, n_draw = 0, draw_in_order = 1, failures = tu_failures, st;
	struct e2e_vm_times t;
	struct e2e_vm *vm = e2e_vm_start(g, workdir, tag, &cfg, err, sizeof(err));

	CHECKF(vm != NULL, "%s: cannot start QEMU: %s", tag, err);
	if (!vm)
		return;
	CHECKF(e2e_vm_wait_line(vm, "draw done", line, sizeof(line), 150000) == 1,
	       "%s: no 'draw done' from the guest", tag);
	/* fbdev flushes mmap writes ~50 ms later (deferred I/O); the hold is 4 s. */
	usleep(800000);
	check_screen(tag, vm, workdir, N_FULL + N_SMALL - 1);
	CHECKF(e2e_vm_wait_line(vm, "result=", line, sizeof(line), 60000) == 1,
	       "%s: no result line", tag);
	CHECKF(!strcmp(line, "result=ok"), "%s: guest says: %s", tag, line);

	for (size_t i = 0; e2e_vm_record(vm, i, &rec, 30000) == 1; i++) {
		if (rec->h.kind == E2E_REC_AU) {
			const struct e2e_rec **a = realloc(aus, (n_aus + 1) * sizeof(*a));

			REQUIRE(a);
			aus = a;
			aus[n_aus++] = rec;
		} else if (rec->h.kind == E2E_REC_DRAW) {
			draw_in_order &= rec->h.value == n_draw;
			n_draw++;
		} else if (rec->h.kind == E2E_REC_END) {
			end = rec;
			break;
		}
	}
	CHECKF(end && !strncmp((const char *)end->data, "result=ok", 9), "%s: END: %s", tag,
	       end ? (const char *)end->data : "(none)");
	CHECKF(n_draw == N_FULL + N_SMALL && draw_in_order, "%s: %d DRAW records (in order: %d)",
	       tag, n_draw, draw_in_order);
	if (subscribe)
		check_aus(tag, aus, n_aus);
	else
		CHECKF(n_aus == 0, "%s: %d AUs without subscribing", tag, n_aus);
	st = e2e_vm_wait_exit(vm, 30000);
	CHECKF(st == 0, "%s: QEMU did not power off cleanly (status %d)", tag, st);
	e2e_vm_times(vm, &t);
	printf("%s: boot %.0f ms to the guest tool, QEMU ran %.0f ms; guest: %s\n", tag,
	       t.tool_start_ms, t.exit_ms, line);
	if (tu_failures != failures)
		e2e_vm_dump_console(vm, 40);
	free(aus);
	e2e_vm_free(vm);
}

int main(void)
{
	static const char *const daemon_args[] = { "--test-scanout", "0:320x192@30", NULL };
	uint64_t t0 = e2e_now_ns();
	char *workdir = tu_mkdtemp("hfe-e2e-modes");
	char err[1024], log[PATH_MAX + 32], append[256];
	struct e2e_guest g;
	struct e2e_daemon d;
	int st;

	REQUIRE(workdir);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("test_e2e_modes: work directory %s\n", workdir);
	snprintf(log, sizeof(log), "%s/build-guest.log", workdir);
	if (e2e_guest_get(&g, log, err, sizeof(err)) < 0) {
		fprintf(stderr, "test_e2e_modes: FAIL: cannot get the test guest: %s\n", err);
		return 1;
	}
	if (e2e_daemon_start(&d, workdir, "daemon", daemon_args, err, sizeof(err)) < 0) {
		fprintf(stderr, "test_e2e_modes: FAIL: %s\n", err);
		return 1;
	}
	snprintf(append, sizeof(append),
		 "hfe.mode=draw+subscribe hfe.scanout=0 hfe.frames=%d hfe.small=%d hfe.fps=5 "
		 "hfe.hold=4000", N_FULL, N_SMALL);
	run(&g, workdir, &d, "draw_subscribe", append);
	snprintf(append, sizeof(append),
		 "hfe.mode=draw hfe.fbio=write hfe.frames=%d hfe.small=%d hfe.fps=5 hfe.hold=2000",
		 N_FULL, N_SMALL);
	run(&g, workdir, &d, "draw_write", append);

	st = e2e_daemon_stop(&d);
	CHECKF(st == 0, "daemon exit status 0x%x (see %s)", st, d.log);
	return e2e_test_finish("test_e2e_modes", workdir, t0);
}
