/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Scanout push mode through the QEMU module (qemu/, issue 4), measured in
 * the TCG test guest: the guest draws full-screen pattern frames into
 * /dev/fb0 on a fixed schedule while subscribed to scanout 0 over
 * virtio-serial; every access unit comes back to it and is forwarded to the
 * host with the guest's receive time. Per screen size:
 *
 *   drawn fps     frames the guest managed to draw per second (TCG is slow)
 *   AU fps        access units per second while drawing
 *   shown         drawn frames that appear intact in the stream (PSNR >= 30 dB;
 *                 the rest were coalesced: newest picture wins)
 *   latency       guest clock: frame k copied into the framebuffer -> the first
 *                 AU showing it received by the guest's subscriber (fbdev flush,
 *                 virtio-gpu transfer, the module's copy, encode, virtio-serial)
 *   stall         the module's longest main-loop callback (wall clock and CPU
 *                 time of the main thread), from qom-get over QMP
 *
 * usage: qemu-scanout [--sizes 1280x800,1920x1080] [--frames N] [--fps F]
 *                     [--fbio write|mmap] [--max-fps N]
 * Environment as for the e2e tests (HFE_QEMU_BUILD, HFE_BUILD_ROOT,
 * HFE_E2E_BUILD_GUEST, HFE_E2E_GUEST_TOOL; HFE_E2E_QEMU_DIR to skip build.sh).
 *
 * Then, per size, the guest encoding itself: the guest mounts the host's root
 * over 9p, chroots and runs the host's gst-launch-1.0 on the same
 * videotestsrc content twice, once with vsockenc (pull mode: raw frames over
 * virtio-serial to the module, H.264 back) and once with x264enc (ultrafast,
 * zerolatency, no B-frames: the settings the host uses), and the frame rates
 * are compared: the problem this project removes. (The scanout runs draw the
 * e2e pattern, the GStreamer runs videotestsrc; both are full-screen motion.)
 * HFE_GST_PLUGIN must be the project's libgsthfe.so (the guest tool's gst mode
 * loads it); --no-gst skips these runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "e2e_harness.h"
#include "e2e_pattern.h"
#include "e2e_qemu.h"
#include "test_util.h"

#define MATCH_PSNR 30.0
#define CANDIDATES 4 /* drawn frames an AU is compared with (the newest ones) */

struct opts {
	char sizes[128];
	int frames, fps, max_fps, gst_frames;
	const char *fbio;
	bool gst;
};

/* One GStreamer run in the guest; returns its fps, or -1. */
static double run_gst(const struct e2e_guest *g, const struct e2e_qemu *q, const char *workdir,
		      const struct opts *op, uint32_t w, uint32_t h, const char *encoder)
{
	const char *plugin = getenv("HFE_GST_PLUGIN");
	char tag[64], append[3 * PATH_MAX + 256];
	char err[1024], line[512] = "", rt[PATH_MAX] = "", preload[PATH_MAX + 32] = "";
	struct e2e_records recs;
	double fps = -1;

	if (!plugin || !*plugin) {
		fprintf(stderr, "qemu-scanout: HFE_GST_PLUGIN is not set\n");
		return -1;
	}
	if (e2e_qemu_preload(rt, sizeof(rt)) == 0)
		snprintf(preload, sizeof(preload), " hfe.gst_preload=%s", rt);
	snprintf(tag, sizeof(tag), "gst-%s-%ux%u", encoder, w, h);
	const char *const extra[] = {
		"-virtfs",
		"local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
		NULL,
	};
	snprintf(append, sizeof(append),
		 "hfe.mode=gst hfe.extra=1 hfe.frames=%d hfe.size=%ux%u hfe.gst_plugin=%s "
		 "hfe.gst_libpath=%s hfe.gst_encoder=%s%s", op->gst_frames, w, h, plugin, q->libdir,
		 encoder, preload);
	struct e2e_vm_config cfg = {
		.append = append, .mem_mb = 2048, .extra_args = extra, .timeout_ms = 1800000,
		.qmp = true,
	};
	struct e2e_vm *vm = e2e_qemu_vm_start(q, g, workdir, tag, NULL, &cfg, NULL, 0, err,
					      sizeof(err));
	if (!vm) {
		fprintf(stderr, "qemu-scanout: %s: cannot start QEMU: %s\n", tag, err);
		return -1;
	}
	if (e2e_vm_wait_line(vm, "gst frames=", line, sizeof(line), 1700000) == 1) {
		char stats[4096] = "";
		fps = e2e_kv_num(line, "fps", -1);
		printf("%-10s guest %s: %s\n", "", encoder, line);
		/* Pull mode's frames cross the main loop (client reads): its stalls too. */
		if (!strcmp(encoder, "vsockenc") &&
		    e2e_qemu_qom_get(e2e_vm_qmp_path(vm), "/objects/hfe0", "stats", stats,
				     sizeof(stats), err, sizeof(err)) == 0)
			printf("%-10s module (pull): longest main-loop callback %.0f us wall, %.0f us "
			       "CPU; blocked %.0f, preempted %.0f; stats %s\n", "",
			       e2e_qemu_json_num(stats, "max-stall-us", -1),
			       e2e_qemu_json_num(stats, "max-stall-cpu-us", -1),
			       e2e_qemu_json_num(stats, "blocked", -1),
			       e2e_qemu_json_num(stats, "preempted", -1), stats);
	} else {
		fprintf(stderr, "qemu-scanout: %s: no result\n", tag);
		e2e_vm_dump_console(vm, 20);
	}
	e2e_vm_wait_line(vm, "result=", line, sizeof(line), 60000);
	/* Up to END: then the guest has its acknowledgement and powers off. */
	e2e_records_collect(vm, &recs, 10000);
	e2e_records_free(&recs);
	e2e_vm_wait_exit(vm, 30000);
	e2e_vm_free(vm);
	return fps;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	if (n <= 0)
		return -1;
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	int i = (int)(p * (n - 1) + 0.5);

	return v[i];
}

static double min3(const double v[3])
{
	double m = v[0] < v[1] ? v[0] : v[1];

	return m < v[2] ? m : v[2];
}

/* One scanout run; returns the AU rate while drawing, or -1. */
static double run_size(const struct e2e_guest *g, const struct e2e_qemu *q, const char *workdir,
		       const struct opts *op, uint32_t w, uint32_t h)
{
	char tag[32], object_opts[32], append[256], err[1024];
	char line[512] = "", stats[4096] = "";
	struct e2e_records recs;
	int n = op->frames, n_aus, shown = 0, n_lat = 0, errors = 0;
	int64_t *draw_t = calloc((size_t)n, sizeof(int64_t));
	int64_t first_draw = -1, last_draw = -1, t_first_au = -1, t_last_au = -1;
	double *lat = calloc((size_t)n, sizeof(double));
	bool *seen = calloc((size_t)n, sizeof(bool));
	struct tu_yuv *want = calloc((size_t)n, sizeof(*want));
	bool *have_want = calloc((size_t)n, sizeof(bool));
	uint8_t *rgb = malloc((size_t)w * h * 3);
	struct tu_decoder *dec = tu_decoder_new();
	const struct e2e_rec **aus;
	int last_drawn_before;

	REQUIRE(draw_t && lat && seen && want && have_want && rgb && dec);
	snprintf(tag, sizeof(tag), "%ux%u", w, h);
	snprintf(object_opts, sizeof(object_opts), "max-fps=%d", op->max_fps);
	snprintf(append, sizeof(append),
		 "hfe.mode=draw+subscribe hfe.scanout=0 hfe.frames=%d hfe.fps=%d hfe.hold=2000 "
		 "hfe.fbio=%s", n, op->fps, op->fbio);
	struct e2e_vm_config cfg = {
		.append = append, .fb_width = w, .fb_height = h, .qmp = true, .mem_mb = 1024,
		.timeout_ms = 600000,
	};
	struct e2e_vm *vm = e2e_qemu_vm_start(q, g, workdir, tag, object_opts, &cfg, NULL, 0, err,
					      sizeof(err));
	if (!vm) {
		fprintf(stderr, "qemu-scanout: %s: cannot start QEMU: %s\n", tag, err);
		return -1;
	}
	if (e2e_vm_wait_line(vm, "draw done", line, sizeof(line), 500000) != 1) {
		fprintf(stderr, "qemu-scanout: %s: no 'draw done'\n", tag);
		e2e_vm_dump_console(vm, 30);
		e2e_vm_free(vm);
		return -1;
	}
	usleep(1000000);
	e2e_qemu_qom_get(e2e_vm_qmp_path(vm), "/objects/hfe0", "stats", stats, sizeof(stats), err,
			 sizeof(err));
	e2e_vm_wait_line(vm, "result=", line, sizeof(line), 60000);
	e2e_records_collect(vm, &recs, 30000);
	for (int i = 0; i < recs.n_draws; i++) {
		const struct e2e_rec *rec = recs.draws[i];

		if (rec->h.value < 0 || rec->h.value >= n)
			continue;
		draw_t[rec->h.value] = rec->h.t_ns;
		if (first_draw < 0)
			first_draw = rec->h.t_ns;
		last_draw = rec->h.t_ns;
	}
	aus = recs.aus;
	n_aus = recs.n_aus;

	/* Match each AU with the newest drawn frames before it. */
	for (int i = 0; i < n_aus; i++) {
		struct tu_yuv pic;
		int r = tu_decoder_decode(dec, aus[i]->data, aus[i]->h.len, &pic, NULL);
		int64_t t = aus[i]->h.t_ns;

		if (r < 0)
			errors++;
		if (r != 1)
			continue;
		last_drawn_before = -1;
		for (int k = 0; k < n; k++)
			if (draw_t[k] && draw_t[k] <= t)
				last_drawn_before = k;
		if (last_drawn_before >= 0 && t <= last_draw + 1000000000LL) {
			if (t_first_au < 0)
				t_first_au = t;
			t_last_au = t;
		}
		for (int k = last_drawn_before; k >= 0 && k > last_drawn_before - CANDIDATES; k--) {
			double v[3];

			if (!have_want[k]) {
				e2e_draw_rgb(rgb, w, h, (uint32_t)k, (uint32_t)n);
				tu_ref_rgb_to_yuv(rgb, w, h, &want[k]);
				have_want[k] = true;
			}
			if (tu_psnr_yuv(&pic, &want[k], v) == 0 && min3(v) >= MATCH_PSNR) {
				if (!seen[k]) {
					seen[k] = true;
					shown++;
					lat[n_lat++] = (double)(t - draw_t[k]) / 1e6;
				}
				break;
			}
		}
		tu_yuv_free(&pic);
	}

	double draw_s = (double)(last_draw - first_draw) / 1e9;
	double au_s = (double)(t_last_au - t_first_au) / 1e9;
	int aus_in_draw = 0;

	for (int i = 0; i < n_aus; i++)
		if (aus[i]->h.t_ns >= t_first_au && aus[i]->h.t_ns <= t_last_au)
			aus_in_draw++;
	double p50 = pct(lat, n_lat, 0.5), p99 = pct(lat, n_lat, 0.99);

	printf("%-10s drawn %d frames at %.1f fps (asked %d), %d AUs (%.1f AU/s while drawing), "
	       "shown intact %d/%d, latency draw->AU p50 %.1f ms p99 %.1f ms, decode errors %d\n",
	       tag, n, draw_s > 0 ? (n - 1) / draw_s : 0, op->fps, n_aus,
	       au_s > 0 ? (aus_in_draw - 1) / au_s : 0, shown, n, p50, p99, errors);
	printf("%-10s module: longest main-loop callback %.0f us wall, %.0f us CPU; stats %s\n",
	       tag, e2e_qemu_json_num(stats, "max-stall-us", -1),
	       e2e_qemu_json_num(stats, "max-stall-cpu-us", -1), stats);
	e2e_vm_wait_exit(vm, 30000);
	e2e_vm_free(vm);
	for (int k = 0; k < n; k++)
		if (have_want[k])
			tu_yuv_free(&want[k]);
	e2e_records_free(&recs);
	free(draw_t);
	free(lat);
	free(seen);
	free(want);
	free(have_want);
	free(rgb);
	tu_decoder_free(dec);
	return au_s > 0 ? (aus_in_draw - 1) / au_s : 0;
}

int main(int argc, char **argv)
{
	struct opts op = { .sizes = "1280x800,1920x1080", .frames = 40, .fps = 10, .max_fps = 60,
			   .gst_frames = 20, .fbio = "write", .gst = true };
	char *workdir, err[1024], *save = NULL;
	struct e2e_guest g;
	struct e2e_qemu q;
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--no-gst")) {
			op.gst = false;
			continue;
		}
		if (!strcmp(a, "--sizes") && v)
			snprintf(op.sizes, sizeof(op.sizes), "%s", v);
		else if (!strcmp(a, "--frames") && v)
			op.frames = atoi(v);
		else if (!strcmp(a, "--fps") && v)
			op.fps = atoi(v);
		else if (!strcmp(a, "--max-fps") && v)
			op.max_fps = atoi(v);
		else if (!strcmp(a, "--fbio") && v)
			op.fbio = v;
		else if (!strcmp(a, "--gst-frames") && v)
			op.gst_frames = atoi(v);
		else {
			fprintf(stderr, "usage: qemu-scanout [--sizes WxH,...] [--frames N] "
				"[--fps F] [--fbio write|mmap] [--max-fps N] [--gst-frames N] "
				"[--no-gst]\n");
			return 2;
		}
		i++;
	}
	if (op.frames < 2 || op.fps < 1) {
		fprintf(stderr, "qemu-scanout: --frames >= 2, --fps >= 1\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	workdir = tu_mkdtemp("hfe-bench-qemu");
	REQUIRE(workdir);
	if (e2e_qemu_prepare(&q, &g, workdir, err, sizeof(err)) < 0) {
		fprintf(stderr, "qemu-scanout: %s\n", err);
		return 1;
	}
	printf("qemu-scanout: %d full-screen frames at %d fps per size, fbio=%s, module max-fps "
	       "%d, TCG guest; GStreamer runs %s (%d frames); QEMU %s\n", op.frames, op.fps,
	       op.fbio, op.max_fps, op.gst ? "on" : "off", op.gst_frames, q.bin);
	for (char *s = strtok_r(op.sizes, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
		unsigned w, h;

		if (sscanf(s, "%ux%u", &w, &h) != 2 || w < 64 || h < 64) {
			fprintf(stderr, "qemu-scanout: bad size %s\n", s);
			rc = 2;
			continue;
		}
		double scan_fps = run_size(&g, &q, workdir, &op, w, h);

		if (scan_fps < 0)
			rc = 1;
		if (op.gst) {
			double v = run_gst(&g, &q, workdir, &op, w, h, "vsockenc");
			double x = run_gst(&g, &q, workdir, &op, w, h, "x264enc");

			if (v < 0 || x < 0)
				rc = 1;
			else
				printf("%-10s %ux%u: guest x264enc %.2f fps; through the module: "
				       "vsockenc (pull) %.2f fps = %.1fx, "
				       "scanout %.2f AU/s = %.1fx\n",
				       "", w, h, x, v, x > 0 ? v / x : 0, scan_fps,
				       x > 0 ? scan_fps / x : 0);
		}
	}
	if (rc || getenv("HFE_E2E_KEEP"))
		printf("qemu-scanout: kept %s\n", workdir);
	else
		tu_rm_rf(workdir);
	free(workdir);
	return rc;
}
