/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Resource mode of the QEMU module (qemu/, issue 4) from inside a real
 * guest: zero-copy frames named by their virtio-gpu resource id.
 *
 * The patched QEMU boots the test guest with -vga none -device
 * virtio-gpu-pci and -object helix-frame-export on the unix socket its
 * virtserialport chardev connects to. In the guest, hfe-guest (mode
 * resource) creates a DRM dumb buffer, gets its resource id with
 * DRM_IOCTL_VIRTGPU_RESOURCE_INFO, and for each pattern frame draws into
 * the buffer, transfers it to the host's resource and sends a FRAME_REQUEST
 * naming the resource without pixels; it forwards the access units. Here:
 * one AU per frame, in order (pts), the first an IDR with SPS/PPS, each
 * decoding to the buffer's size with PSNR >= 35 dB against its pattern frame
 * (the pattern code is shared with the guest); an unknown id got
 * RESOURCE_NOT_FOUND and a wrong size INVALID_MSG without losing the
 * connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e_harness.h"
#include "e2e_pattern.h"
#include "e2e_qemu.h"
#include "test_util.h"

#define W 640
#define H 480
#define FRAMES 12
#define MIN_PSNR 35.0
#define FRAME_NS (1000000000 / 30) /* the guest's pts step */

static void pattern_rgb(uint8_t *rgb, uint32_t w, uint32_t h, int i, void *ctx)
{
	(void)ctx;
	e2e_pattern_rgb(rgb, w, h, (uint32_t)i);
}

/* The guest stamps resource frame i with pts i * FRAME_NS: the host keeps it. */
static void check_pts(const struct e2e_rec *const *aus, int n)
{
	for (int i = 0; i < n; i++)
		CHECKF(aus[i]->h.value == (int64_t)i * FRAME_NS, "AU %d has pts %lld, want %lld", i,
		       (long long)aus[i]->h.value, (long long)i * FRAME_NS);
}

int main(int argc, char **argv)
{
	uint64_t t0 = e2e_now_ns();
	char *workdir = tu_mkdtemp("hfe-e2e-qemu-res");
	char err[1024], append[256], line[512] = "", stats[4096] = "", resline[512] = "";
	struct e2e_records recs;
	struct e2e_guest g;
	struct e2e_qemu q;
	int st;

	REQUIRE(workdir);
	if (e2e_arch_args(&argc, argv) < 0)
		return 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("test_e2e_qemu_resource: work directory %s\n", workdir);
	if (e2e_qemu_prepare(&q, &g, workdir, err, sizeof(err)) < 0) {
		fprintf(stderr, "test_e2e_qemu_resource: FAIL: %s\n", err);
		free(workdir);
		return 1;
	}

	snprintf(append, sizeof(append), "hfe.mode=resource hfe.frames=%d hfe.size=%dx%d", FRAMES,
		 W, H);
	struct e2e_vm_config cfg = { .append = append, .qmp = true, .timeout_ms = 240000 };
	struct e2e_vm *vm = e2e_qemu_vm_start(&q, &g, workdir, "resource", NULL, &cfg, NULL, 0,
					      err, sizeof(err));
	if (!vm) {
		fprintf(stderr, "test_e2e_qemu_resource: FAIL: cannot start QEMU: %s\n", err);
		free(workdir);
		return 1;
	}
	if (e2e_vm_wait_line(vm, "resource frames=", resline, sizeof(resline), 180000) == 1) {
		e2e_qemu_qom_get(e2e_vm_qmp_path(vm), "/objects/hfe0", "stats", stats,
				 sizeof(stats), err, sizeof(err));
		printf("guest: %s\nmodule stats: %s\n", resline, stats);
	}
	CHECKF(strstr(resline, "unknown=RESOURCE_NOT_FOUND") != NULL,
	       "an unknown resource id did not get RESOURCE_NOT_FOUND: %s", resline);
	CHECKF(strstr(resline, "wrong_size=INVALID_MSG") != NULL,
	       "a wrong size did not get INVALID_MSG: %s", resline);
	CHECKF(e2e_qemu_json_num(stats, "resources", -1) == FRAMES,
	       "module stats: %.0f resource frames lent, want %d",
	       e2e_qemu_json_num(stats, "resources", -1), FRAMES);
	CHECKF(e2e_vm_wait_line(vm, "result=", line, sizeof(line), 60000) == 1,
	       "no result line from the guest");
	CHECKF(!strcmp(line, "result=ok"), "guest says: %s", line);
	e2e_records_collect(vm, &recs, 30000);
	e2e_records_check_end(&recs);
	check_pts(recs.aus, recs.n_aus);
	e2e_check_pictures("resource frames", recs.aus, recs.n_aus, FRAMES, W, H, MIN_PSNR,
			   pattern_rgb, NULL);
	st = e2e_vm_wait_exit(vm, 30000);
	CHECKF(st == 0, "QEMU did not exit cleanly (status 0x%x)", st);
	if (tu_failures)
		e2e_vm_dump_console(vm, 40);
	e2e_records_free(&recs);
	e2e_vm_free(vm);
	return e2e_test_finish("test_e2e_qemu_resource", workdir, t0);
}
