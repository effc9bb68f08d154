/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * kmscube rendered by virgl, streamed by the QEMU module (issue 11).
 *
 * The desktop guest (tests/e2e/build-desktop-image.sh: Debian 12 with Mesa's
 * virgl driver and kmscube) boots under the patched QEMU with
 * -device virtio-gpu-gl-pci under -display helix (the module's own GL
 * display; --display=egl-headless: QEMU's, whose read-back the module then
 * takes as 2D updates), in QEMU's sandbox, with the module listening on TCP.
 * No weston: hfe.session=none, and kmscube -c N is the boot command; the
 * guest powers off when it ends.
 *
 * On TCP a client behaves exactly as the deployed desktop bridge does
 * (bridge_watch.c, raw bytes: SUBSCRIBE with the scanout id in the body and
 * in session_id, a CONFIG_REQ with a bit rate that a v1 peer gets no reply
 * to, then FRAME_RESPONSEs only). Checked:
 *  - the guest kernel reports +virgl (kmscube renders on the host's GL);
 *  - the bridge's sequence works: subscribed, nothing but FRAME_RESPONSEs
 *    with nal_count 1, the connection never broke;
 *  - the first AU is an IDR with SPS/PPS and every AU decodes with
 *    libavcodec, errors fatal;
 *  - while kmscube runs the pictures are its mode's size and they change
 *    (the cube spins): consecutive decoded pictures differ, counted;
 *  - under -display helix, the module reads back about one picture per AU
 *    (its stats: readbacks <= frames + READBACK_SLACK), and what the guest
 *    flushed: kmscube flips far faster than a read-back ends, so the
 *    module holds the GPU's commands while a read-back of the texture the
 *    scanout just left is queued (gl-holds > 0); without that, kmscube draws
 *    its next frame into that texture and the read-back returns it (the same
 *    picture twice, no new AU), seen with a busy host: --hog spins a thread
 *    on one of the host's cores meanwhile (test_e2e_qemu_kmscube_hog);
 *  - the export's threads run as SCHED_BATCH at nice 10 in the sandbox;
 *  - QEMU runs in the sandbox (Seccomp: 2), survives, and exits with status
 *    0 when the guest powers off.
 * kmscube's own frame rate and the module's main-loop figures are printed.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bridge_watch.h"
#include "e2e_harness.h"
#include "e2e_qemu.h"
#include "test_util.h"

#define NAME "test_e2e_qemu_kmscube"
#define MODE_W 640
#define MODE_H 480
#define KMSCUBE_FRAMES 600
#define BITRATE 4000000u
/* A cold desktop build takes ~10 min here (apt downloads ~210 MB). */
#define DESKTOP_BUILD_TIMEOUT_S 1500
#define BOOT_MS 180000
/* Consecutive pictures differ when this share of their luma samples moved
 * by more than MOVED_LEVELS: at 640x480 the turning cube's edges move
 * 0.06-2 % of them by over 32 levels from one AU to the next (measured);
 * a re-encoded picture's refinement moves samples by a few levels, and
 * fbcon's blinking cursor (before kmscube draws) is 0.005 %. */
#define MOVED_LEVELS 16
#define MOVED_SHARE 0.0002
/* Consecutive differing pictures wanted, in all and in one unbroken run. */
#define MIN_CHANGES 30
/* GL read-backs beyond the AUs encoded (see check_stats). */
#define READBACK_SLACK 5

static bool pictures_differ(const struct tu_yuv *a, const struct tu_yuv *b)
{
	size_t n = (size_t)a->w * a->h, moved = 0;

	if (a->w != b->w || a->h != b->h)
		return true;
	for (size_t i = 0; i < n; i++)
		moved += abs((int)a->y[i] - (int)b->y[i]) > MOVED_LEVELS;
	return (double)moved >= MOVED_SHARE * (double)n;
}

/* Pictures decoded from the AUs; how many of those inside [t0, t1] (host
 * arrival time) are MODE_W x MODE_H and differ from the one before. */
static void check_stream(const struct bridge_watch *w, uint64_t t0, uint64_t t1)
{
	struct tu_decoder *dec = tu_decoder_new();
	struct tu_yuv prev = { 0 };
	struct tu_nals nals;
	int errors = 0, pics = 0, in_run = 0, wrong_size = 0, changed = 0, same = 0;
	int streak = 0, best_streak = 0;
	bool have_prev = false;

	REQUIRE(dec);
	CHECKF(w->n >= MIN_CHANGES, "%zu AUs over TCP (want >= %d)", w->n, MIN_CHANGES);
	if (w->n)
		CHECKF(tu_nal_parse(w->aus[0].data, w->aus[0].len, &nals) > 0 && nals.has_sps &&
			       nals.has_pps && nals.has_idr && w->aus[0].key,
		       "the first AU after SUBSCRIBE is not an IDR with SPS/PPS");
	for (size_t i = 0; i < w->n; i++) {
		const struct bridge_au *a = &w->aus[i];
		struct tu_yuv y;
		int r = tu_decoder_decode(dec, a->data, a->len, &y, NULL);

		if (r < 0) {
			errors++;
			continue;
		}
		if (r == 0)
			continue;
		pics++;
		if (a->t_ns < t0 || a->t_ns > t1) {
			tu_yuv_free(&y);
			continue;
		}
		in_run++;
		if (y.w != MODE_W || y.h != MODE_H) {
			wrong_size++;
			tu_yuv_free(&y);
			continue;
		}
		if (have_prev) {
			if (pictures_differ(&y, &prev)) {
				changed++;
				if (++streak > best_streak)
					best_streak = streak;
			} else {
				same++;
				streak = 0;
			}
			tu_yuv_free(&prev);
		}
		prev = y;
		have_prev = true;
	}
	if (have_prev)
		tu_yuv_free(&prev);
	tu_decoder_free(dec);
	printf("stream: %zu AUs, %d pictures (decode errors %d); from kmscube's start to its end: "
	       "%d pictures, %d differ from the one before (longest run %d), %d do not, %d not "
	       "%ux%u\n", w->n, pics, errors, in_run, changed, best_streak, same, wrong_size,
	       MODE_W, MODE_H);
	CHECKF(errors == 0, "%d of %zu AUs failed to decode (errors fatal)", errors, w->n);
	CHECKF(pics == (int)w->n, "%d pictures from %zu AUs (low delay: one per AU)", pics, w->n);
	CHECKF(wrong_size == 0, "%d pictures while kmscube ran are not %ux%u", wrong_size, MODE_W,
	       MODE_H);
	CHECKF(changed >= MIN_CHANGES, "only %d consecutive pictures differ (want >= %d): the "
	       "cube does not spin in the stream", changed, MIN_CHANGES);
	CHECKF(best_streak >= MIN_CHANGES, "the longest run of pictures that each differ from the "
	       "one before is %d (want >= %d)", best_streak, MIN_CHANGES);
}

/* The module's main-loop figures: its longest callback, and each callback's
 * count and mean (gl-readback is the helix display's read-back). Under
 * -display helix a GL read-back waits until the stream has taken the last
 * one: about one per access unit (the scanout's "frames"), never the
 * guest's every flush; READBACK_SLACK allows those in flight and the first
 * ones (the whole texture when kmscube sets its mode). */
static void check_stats(const char *qmp, const char *display)
{
	static char stats[1 << 16];
	char err[256];

	if (e2e_qemu_qom_get(qmp, "/objects/hfe0", "stats", stats, sizeof(stats), err,
			     sizeof(err)) < 0) {
		CHECKF(0, "qom-get stats: %s", err);
		return;
	}
	double readbacks = e2e_qemu_json_num(stats, "readbacks", -1);
	double frames = e2e_qemu_json_num(stats, "frames", -1);
	double holds = e2e_qemu_json_num(stats, "gl-holds", -1);

	printf("module: longest main-loop callback %.0f us wall, %.0f us CPU; updates %.0f; "
	       "%.0f GL read-backs for %.0f AUs; the GPU held %.0f times for them, %.1f ms in all; "
	       "stats %s\n",
	       e2e_qemu_json_num(stats, "max-stall-us", -1),
	       e2e_qemu_json_num(stats, "max-stall-cpu-us", -1),
	       e2e_qemu_json_num(stats, "updates", -1), readbacks, frames, holds,
	       e2e_qemu_json_num(stats, "gl-hold-us", -1) / 1000, stats);
	if (strcmp(display, "helix"))
		return;
	CHECKF(frames > 0 && readbacks > 0, "no GL read-backs (%.0f) or AUs (%.0f) while kmscube "
	       "runs", readbacks, frames);
	CHECKF(readbacks <= frames + READBACK_SLACK, "%.0f GL read-backs for %.0f AUs: pictures "
	       "were read back that no encode took", readbacks, frames);
	CHECKF(holds > 0, "the GPU's commands never waited for a read-back (gl-holds %.0f) while "
	       "kmscube flipped", holds);
}

/* --hog: a thread that spins on one of the host's cores, as a busy host's
 * other work would, so that read-backs end later than kmscube's flips. */
static atomic_bool hog_stop;

static void *hog_main(void *arg)
{
	volatile unsigned long n = 0;

	while (!atomic_load_explicit(&hog_stop, memory_order_relaxed))
		n++;
	return arg;
}

/* In the sandbox (resourcecontrol=deny, as libvirt starts QEMU) the export's
 * threads still run at background priority: a thread that set it before the
 * sandbox applied creates them (qemu/helix/helix-threads.c). */
static void check_priority(pid_t pid)
{
	char normal[64];
	unsigned background, n = e2e_export_threads(pid, &background, normal, sizeof(normal));

	printf("export threads: %u, %u of them SCHED_BATCH at nice >= 10\n", n, background);
	CHECKF(n >= 2 && background == n, "%u of the %u export threads run at background "
	       "priority in the sandbox (%s does not)", background, n, normal);
}

int main(int argc, char **argv)
{
	const char *display = "helix";
	bool hog = false;
	pthread_t hog_thread;
	char *workdir, err[1024], log[PATH_MAX + 32], line[512], addr[64], append[256];
	uint64_t t0 = e2e_now_ns(), run0 = 0, run1 = 0;
	struct bridge_watch w;
	struct e2e_guest d;
	struct e2e_qemu q;
	int st;

	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "--display=", 10)) {
			display = argv[i] + 10;
		} else if (!strcmp(argv[i], "--hog")) {
			hog = true;
		} else {
			display = "";
		}
	}
	if (strcmp(display, "helix") && strcmp(display, "egl-headless")) {
		fprintf(stderr, "usage: %s [--display=helix|egl-headless] [--hog]\n", NAME);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	workdir = tu_mkdtemp("hfe-e2e-kmscube");
	REQUIRE(workdir);
	snprintf(log, sizeof(log), "%s/qemu-build.log", workdir);
	if (e2e_qemu_get(&q, log, err, sizeof(err)) < 0) {
		fprintf(stderr, NAME ": FAIL: cannot build the patched QEMU: %s\n", err);
		return 1;
	}
	snprintf(log, sizeof(log), "%s/build-desktop.log", workdir);
	if (e2e_desktop_get(&d, log, DESKTOP_BUILD_TIMEOUT_S, err, sizeof(err)) < 0) {
		fprintf(stderr, NAME ": FAIL: cannot get the desktop guest: %s\n", err);
		return 1;
	}
	printf("patched QEMU %s (%.1f s), desktop guest %s (%.1f s); -device virtio-gpu-gl-pci "
	       "-display %s, kmscube at %ux%u\n", q.bin, q.build_ms / 1000, d.dir,
	       d.build_ms / 1000, display, MODE_W, MODE_H);

	snprintf(append, sizeof(append),
		 "hfe.session=none hfe.run=\"kmscube -c %d\" hfe.poweroff=1", KMSCUBE_FRAMES);
	struct e2e_desktop_run run = {
		.display = display, .width = MODE_W, .height = MODE_H, .append = append,
		.object_opts = "max-fps=60", .timeout_ms = 300000,
	};
	struct e2e_vm *vm = e2e_desktop_vm_start(&q, &d, workdir, "kmscube", &run, addr,
						 sizeof(addr), err, sizeof(err));
	if (!vm) {
		fprintf(stderr, NAME ": FAIL: cannot start QEMU: %s\n", err);
		return 1;
	}
	/* Subscribed before the guest draws anything: the whole run is seen. */
	CHECKF(bridge_watch_start(&w, addr, 0, BITRATE, true),
	       "the deployed bridge's SUBSCRIBE + CONFIG_REQ over %s failed", addr);
	printf("bridge subscribed to scanout 0 over %s\n", addr);
	CHECKF(tu_proc_status_kb(e2e_vm_pid(vm), "Seccomp") == 2,
	       "QEMU is not in its seccomp sandbox");

	if (e2e_vm_wait_line(vm, "gpu ", line, sizeof(line), BOOT_MS) == 1) {
		printf("guest: %s\n", line);
		CHECKF(strstr(line, "+virgl") != NULL, "the guest has no virgl: %s", line);
	} else {
		CHECKF(0, "the desktop guest did not report its GPU features");
	}
	if (e2e_vm_wait_line(vm, "run start", line, sizeof(line), BOOT_MS) == 1) {
		run0 = e2e_now_ns();
		if (hog) {
			REQUIRE(pthread_create(&hog_thread, NULL, hog_main, NULL) == 0);
			printf("a thread spins on one core until kmscube ends\n");
		}
		/* While it renders (its first report comes after ~2 s of it). */
		unsigned fr;
		double s, fps;

		for (int i = 0; i < 300 && e2e_kmscube_fps(vm, &fr, &s, &fps) == 0; i++)
			usleep(100000);
		check_stats(e2e_vm_qmp_path(vm), display);
		check_priority(e2e_vm_pid(vm));
		if (e2e_vm_wait_line(vm, "run exit=", line, sizeof(line), 240000) == 1) {
			run1 = e2e_now_ns();
			if (hog) {
				atomic_store(&hog_stop, true);
				pthread_join(hog_thread, NULL);
				hog = false;
			}
			CHECKF(e2e_kv_num(line, "exit", -1) == 0, "kmscube failed: %s", line);
		} else {
			CHECKF(0, "kmscube did not end");
		}
	} else {
		CHECKF(0, "the guest did not start kmscube");
	}
	if (hog && run0) {
		atomic_store(&hog_stop, true);
		pthread_join(hog_thread, NULL);
	}
	st = e2e_vm_wait_exit(vm, 60000);
	CHECKF(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	       "QEMU did not exit cleanly after the guest powered off (status 0x%x)", st);
	bridge_watch_stop(&w);
	CHECKF(!w.failed, "the bridge's connection broke");
	CHECKF(w.others == 0, "%u messages other than this scanout's FRAME_RESPONSE (nal_count 1) "
	       "reached the bridge: the deployed bridge drops the stream at the first", w.others);
	if (run1)
		check_stream(&w, run0, run1);

	unsigned frames = 0;
	double secs = 0, fps = 0;
	size_t aus_in_run = 0;

	for (size_t i = 0; i < w.n; i++)
		aus_in_run += w.aus[i].t_ns >= run0 && w.aus[i].t_ns <= run1;
	CHECKF(e2e_kmscube_fps(vm, &frames, &secs, &fps) > 0, "kmscube printed no frame rate");
	printf("kmscube: %u frames in %.2f s (%.1f fps) with a subscriber; %.1f AU/s reached it "
	       "while it ran\n", frames, secs, fps,
	       run1 > run0 ? (double)aus_in_run / ((double)(run1 - run0) / 1e9) : 0.0);
	if (tu_failures)
		e2e_vm_dump_console(vm, 40);
	bridge_watch_free(&w);
	e2e_vm_free(vm);
	return e2e_test_finish(NAME, workdir, t0);
}
