/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Pull mode from inside the guest through GStreamer, served by the QEMU
 * module (qemu/, issue 4): the second guest run of the issue.
 *
 * The patched QEMU boots the test guest with the host's root shared
 * read-only over 9p (-virtfs local,path=/,mount_tag=hostroot,...) and the
 * module listening on the unix socket the guest's virtserialport connects
 * to. In the guest, hfe-guest (mode gst) mounts the host's root, chroots into it
 * and runs the host's own gst-launch-1.0 with the project's plugin:
 *   videotestsrc ! video/x-raw,format=BGRx,... ! vsockenc address=serial:... !
 *   multifilesink
 * and forwards every access unit. Here the host renders the same
 * videotestsrc frames itself (gst-launch-1.0 ... ! filesink) and checks:
 * one AU per frame, the first an IDR with SPS/PPS, each decoding to the
 * size with PSNR >= 35 dB against its frame (through the independent
 * reference conversion of test_util.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e_harness.h"
#include "e2e_qemu.h"
#include "test_util.h"

#define W 640
#define H 480
#define FRAMES 30
#define MIN_PSNR 35.0
#define PATTERN "smpte"

/* The reference: the same videotestsrc frames, rendered on the host. */
static uint8_t *render_reference(const char *workdir)
{
	char path[PATH_MAX + 32], loc[PATH_MAX + 64], num[32], caps[128], log[PATH_MAX + 32];
	size_t size = (size_t)W * H * 4 * FRAMES;
	uint8_t *buf = NULL;
	struct stat st;
	FILE *f;
	int status;

	snprintf(path, sizeof(path), "%s/reference.bgrx", workdir);
	snprintf(loc, sizeof(loc), "location=%s", path);
	snprintf(num, sizeof(num), "num-buffers=%d", FRAMES);
	snprintf(caps, sizeof(caps), "video/x-raw,format=BGRx,width=%d,height=%d,framerate=30/1",
		 W, H);
	snprintf(log, sizeof(log), "%s/reference.log", workdir);
	const char *const argv[] = { "gst-launch-1.0", "-q", "videotestsrc", num,
				     "pattern=" PATTERN, "horizontal-speed=4", "!", caps, "!",
				     "filesink", loc, NULL };
	pid_t pid = tu_spawn(argv, log);

	if (pid < 0 || tu_wait(pid, 60000, &status) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		fprintf(stderr, "cannot render the reference with the host's gst-launch-1.0 (see "
			"%s)\n", log);
		return NULL;
	}
	if (stat(path, &st) < 0 || (size_t)st.st_size != size) {
		fprintf(stderr, "reference %s: %lld bytes, want %zu\n", path,
			(long long)st.st_size, size);
		return NULL;
	}
	f = fopen(path, "rb");
	buf = malloc(size);
	if (!f || !buf || fread(buf, 1, size, f) != size) {
		free(buf);
		buf = NULL;
	}
	if (f)
		fclose(f);
	return buf;
}

/* Reference frame i: the BGRX frames render_reference() made, as RGB. */
static void reference_rgb(uint8_t *rgb, uint32_t w, uint32_t h, int i, void *ctx)
{
	const uint8_t *bgrx = (const uint8_t *)ctx + (size_t)i * w * h * 4;

	for (size_t p = 0; p < (size_t)w * h; p++) {
		rgb[3 * p] = bgrx[4 * p + 2];
		rgb[3 * p + 1] = bgrx[4 * p + 1];
		rgb[3 * p + 2] = bgrx[4 * p];
	}
}

int main(void)
{
	uint64_t t0 = e2e_now_ns();
	char *workdir = tu_mkdtemp("hfe-e2e-qemu-gst");
	char err[1024], append[3 * PATH_MAX + 256], line[512] = "", gstline[512] = "";
	const char *plugin = getenv("HFE_GST_PLUGIN");
	struct e2e_records recs;
	struct e2e_guest g;
	struct e2e_qemu q;
	uint8_t *ref;
	int st;

	REQUIRE(workdir);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("test_e2e_qemu_gst: work directory %s\n", workdir);
	if (!plugin || !*plugin || access(plugin, R_OK) < 0) {
		fprintf(stderr, "test_e2e_qemu_gst: FAIL: the GStreamer plugin is not built "
			"(HFE_GST_PLUGIN='%s'; needs libgstreamer-plugins-base1.0-dev)\n",
			plugin ? plugin : "");
		free(workdir);
		return 1;
	}
	ref = render_reference(workdir);
	if (!ref) {
		fprintf(stderr, "test_e2e_qemu_gst: FAIL: no reference frames\n");
		free(workdir);
		return 1;
	}
	if (e2e_qemu_prepare(&q, &g, workdir, err, sizeof(err)) < 0) {
		fprintf(stderr, "test_e2e_qemu_gst: FAIL: %s\n", err);
		free(ref);
		free(workdir);
		return 1;
	}

	/* The host's root, read only: the guest runs its gst-launch-1.0 in a chroot. */
	const char *const extra[] = {
		"-virtfs",
		"local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
		NULL,
	};
	/* A sanitized plugin needs its runtime preloaded into gst-launch too. */
	char rt[PATH_MAX] = "", preload[PATH_MAX + 32] = "";

	if (e2e_qemu_preload(rt, sizeof(rt)) == 0)
		snprintf(preload, sizeof(preload), " hfe.gst_preload=%s", rt);
	snprintf(append, sizeof(append),
		 "hfe.mode=gst hfe.extra=1 hfe.frames=%d hfe.size=%dx%d hfe.gst_plugin=%s "
		 "hfe.gst_libpath=%s hfe.gst_pattern=" PATTERN "%s", FRAMES, W, H, plugin, q.libdir,
		 preload);
	struct e2e_vm_config cfg = {
		.append = append, .qmp = true, .mem_mb = 1024, .extra_args = extra,
		.timeout_ms = 400000,
	};
	struct e2e_vm *vm = e2e_qemu_vm_start(&q, &g, workdir, "gst", NULL, &cfg, NULL, 0, err,
					      sizeof(err));
	if (!vm) {
		fprintf(stderr, "test_e2e_qemu_gst: FAIL: cannot start QEMU: %s\n", err);
		free(ref);
		free(workdir);
		return 1;
	}
	CHECKF(e2e_vm_wait_line(vm, "result=", line, sizeof(line), 360000) == 1,
	       "no result line from the guest");
	CHECKF(!strcmp(line, "result=ok"), "guest says: %s", line);
	if (e2e_vm_wait_line(vm, "gst frames=", gstline, sizeof(gstline), 1000) == 1)
		printf("guest: %s\n", gstline);
	e2e_records_collect(vm, &recs, 30000);
	e2e_records_check_end(&recs);
	e2e_check_pictures("vsockenc in the guest", recs.aus, recs.n_aus, FRAMES, W, H, MIN_PSNR,
			   reference_rgb, ref);
	st = e2e_vm_wait_exit(vm, 30000);
	CHECKF(st == 0, "QEMU did not exit cleanly (status 0x%x)", st);
	if (tu_failures)
		e2e_vm_dump_console(vm, 40);
	e2e_records_free(&recs);
	free(ref);
	e2e_vm_free(vm);
	return e2e_test_finish("test_e2e_qemu_gst", workdir, t0);
}
