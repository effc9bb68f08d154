// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * An OpenGL console whose display takes no 2D listener is refused, and QEMU
 * lives on.
 *
 * -display dbus,gl=on sends its GL consoles' frames only as dmabufs to its
 * own listeners (QEMU's console_compatible_with() rejects any other
 * listener on them; registering one anyway ends QEMU). The module must ask
 * first (patch 0004) and turn that into an error naming the console:
 *
 *  1. the object on the command line (every console): the refusal is
 *     printed when the machine is ready, the VM runs on;
 *  2. object-add at run time naming that console: the QMP command fails
 *     with the same reason, the VM runs on;
 *  3. the guest, drawing on that console all along, finishes, and QEMU
 *     exits 0 (no abort, no error_fatal).
 *
 * The guest draws (so the GL console is live: virgl renders each flush)
 * and holds for a while, during which the QMP checks run.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "e2e_harness.h"
#include "e2e_qemu.h"
#include "test_util.h"

#define NAME "test_e2e_qemu_gl_refused"

/* The words the module's refusal carries (helix-display.c). */
#define REFUSAL "cannot be exported"

static int console_has(const struct e2e_vm *vm, const char *what)
{
	FILE *f = fopen(e2e_vm_console_path(vm), "r");
	char line[1024];
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, what) != NULL;
	fclose(f);
	return found;
}

static int vm_running(const struct e2e_vm *vm)
{
	char reply[512] = "", err[256];

	if (e2e_qmp(e2e_vm_qmp_path(vm), "{\"execute\":\"query-status\"}", reply, sizeof(reply),
		    10000, err, sizeof(err)) < 0)
		return 0;
	return strstr(reply, "\"running\"") != NULL;
}

int main(void)
{
	uint64_t t0 = e2e_now_ns();
	char *workdir = tu_mkdtemp("hfe-e2e-glref");
	char err[1024], sock[PATH_MAX + 32], line[512] = "", display[96];
	char cmd[PATH_MAX + 256], reply[2048] = "";
	struct e2e_guest g;
	struct e2e_qemu q;
	int st;

	REQUIRE(workdir);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf(NAME ": work directory %s\n", workdir);
	if (e2e_qemu_prepare(&q, &g, workdir, err, sizeof(err)) < 0) {
		fprintf(stderr, NAME ": FAIL: %s\n", err);
		free(workdir);
		return 1;
	}

	/* p2p=yes: no D-Bus bus needed; rendernode as for egl-headless. */
	e2e_gl_display("dbus", display, sizeof(display));
	strncat(display, ",gl=on,p2p=yes", sizeof(display) - strlen(display) - 1);
	struct e2e_vm_config cfg = {
		.append = "hfe.mode=draw hfe.scanout=0 hfe.frames=4 hfe.small=0 hfe.fps=10 "
			  "hfe.hold=15000",
		.gpu = "virtio-gpu-gl-pci", .display = display, .qmp = true, .timeout_ms = 240000,
	};
	printf("GL: -device %s -display %s\n", cfg.gpu, cfg.display);
	struct e2e_vm *vm = e2e_qemu_vm_start(&q, &g, workdir, "glref", NULL, &cfg, sock,
					      sizeof(sock), err, sizeof(err));
	if (!vm) {
		fprintf(stderr, NAME ": FAIL: cannot start QEMU: %s\n", err);
		free(workdir);
		return 1;
	}

	CHECKF(e2e_vm_wait_line(vm, "draw start", line, sizeof(line), 180000) == 1,
	       "the guest did not start drawing");
	CHECKF(e2e_vm_wait_line(vm, "draw done", line, sizeof(line), 120000) == 1,
	       "the guest did not finish drawing");

	/* 1: printed at machine-ready, naming console 0; QEMU runs on. */
	CHECKF(console_has(vm, "console 0") && console_has(vm, REFUSAL),
	       "no refusal of console 0 printed by the module");
	CHECKF(vm_running(vm), "QEMU is not running after the refusal at start");

	/* 2: object-add naming the console fails with the reason. */
	snprintf(cmd, sizeof(cmd),
		 "{\"execute\":\"object-add\",\"arguments\":{\"qom-type\":\"helix-frame-export\","
		 "\"id\":\"hfe1\",\"listen\":[\"unix:%s/glref-2.sock\"],\"console\":[0]}}",
		 workdir);
	int rc = e2e_qmp(e2e_vm_qmp_path(vm), cmd, reply, sizeof(reply), 10000, err, sizeof(err));
	printf("object-add: %s\n", reply[0] ? reply : err);
	CHECKF(rc < 0 && strstr(reply, "\"error\"") && strstr(reply, REFUSAL) &&
		       strstr(reply, "console 0"),
	       "object-add of a GL console under -display dbus,gl=on did not fail with the "
	       "reason: %s", reply[0] ? reply : err);
	CHECKF(vm_running(vm), "QEMU is not running after the refused object-add");
	/* The refused object is gone: its id is free again. */
	snprintf(cmd, sizeof(cmd),
		 "{\"execute\":\"qom-list\",\"arguments\":{\"path\":\"/objects/hfe1\"}}");
	CHECKF(e2e_qmp(e2e_vm_qmp_path(vm), cmd, NULL, 0, 10000, err, sizeof(err)) < 0,
	       "the refused object still exists");

	/* 3: the guest finishes on its own and QEMU exits cleanly. */
	CHECKF(e2e_vm_wait_line(vm, "result=", line, sizeof(line), 60000) == 1,
	       "no result line from the guest");
	CHECKF(!strcmp(line, "result=ok"), "guest says: %s", line);
	st = e2e_vm_wait_exit(vm, 30000);
	CHECKF(st == 0, "QEMU did not exit cleanly (status 0x%x)", st);
	if (tu_failures)
		e2e_vm_dump_console(vm, 40);
	e2e_vm_free(vm);
	return e2e_test_finish(NAME, workdir, t0);
}
