/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The -display dbus attach/detach cycle, many times (issue 14: the daemon's
 * RSS in the chaos soak). One daemon (--qemu on a QMP socket, a subscriber
 * on the VM's channel throughout) and CYCLES runs of Debian's QEMU on that
 * socket, without a guest (-S: QEMU's own 640x480 placeholder surface is
 * what it sends), each killed (SIGKILL and SIGTERM in turn) once the
 * subscriber has the new surface's IDR. Per cycle: QMP, the display
 * connection, the console's properties, RegisterListener and its
 * connection, a Scanout, the stream restarted at that size and encoded,
 * then everything torn down when QEMU goes.
 *
 * Checked: every cycle attaches (an AU reaches the subscriber) and detaches
 * (the daemon's descriptors back to what they were after the first
 * detach); the daemon's VmRSS after the last cycles within RSS_BOUND_KB of
 * where it was after WARM cycles (medians of MEDIAN_OF cycles each, the
 * allocator's threshold fixed as in bench/chaos so that freed blocks go
 * back); the daemon exits 0 on SIGTERM (in the ASan build LeakSanitizer
 * runs at that exit and fails it on any leak).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e_harness.h"
#include "hfe/client.h"
#include "test_util.h"

#define CYCLES 50
#define WARM 10
#define MEDIAN_OF 5
/* A listener connection kept by mistake holds its 1.2 MB read buffer: 40
 * cycles of that are ~48 MB. Measured without one: +0.1 MB over 200. */
#ifdef __SANITIZE_ADDRESS__
/* ASan's allocator holds freed blocks (its quarantine, 4 MB for the daemon:
 * tu_asan_small_quarantine) and size-class caches: +3 MB in 40 cycles
 * measured. Leaks are LeakSanitizer's to find there. */
#define RSS_BOUND_KB 8192
#else
#define RSS_BOUND_KB 3072
#endif
#define STEP_MS 30000 /* attach, or detach, under load */

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

static long median(const long *v, int n)
{
	long s[MEDIAN_OF];

	memcpy(s, v, (size_t)n * sizeof(*s));
	qsort(s, (size_t)n, sizeof(*s), cmp_long);
	return s[n / 2];
}

/* One QEMU on qmp, until the subscriber sub has an AU from it; then
 * stopped with sig. false (with a failure) if none came. */
static bool one_cycle(const char *qmp, const char *log, struct hfe_client *sub, int *aus, int sig)
{
	const char *qemu = getenv("HFE_E2E_QEMU") ? getenv("HFE_E2E_QEMU") : "qemu-system-x86_64";
	char qmp_arg[PATH_MAX + 64];

	snprintf(qmp_arg, sizeof(qmp_arg), "unix:%s,server=on,wait=off", qmp);
	const char *argv[] = { qemu, "-machine", "pc", "-accel", "tcg", "-nodefaults", "-m", "32",
			       "-S", "-vga", "std", "-display", "dbus,p2p=yes", "-qmp", qmp_arg,
			       NULL };
	pid_t pid = tu_spawn(argv, log);
	int got = 0;

	CHECKF(pid > 0, "cannot start %s", qemu);
	if (pid <= 0)
		return false;
	uint64_t t0 = tu_now_ns();

	while (got == 0 && tu_now_ns() - t0 < STEP_MS * 1000000ull)
		got = e2e_drain_aus(sub, 50);
	CHECKF(got > 0, "no AU from QEMU's surface within %d ms (%s; see %s)", STEP_MS,
	       got < 0 ? "the subscriber lost its connection" : "none came", log);
	*aus += got > 0 ? got : 0;
	tu_kill_wait(pid, sig, 10000);
	unlink(qmp); /* a SIGKILLed QEMU leaves it */
	return got > 0;
}

int main(void)
{
	char *workdir = tu_mkdtemp("hfe-e2e-reattach");
	char qmp[PATH_MAX + 16], qemu_arg[PATH_MAX + 32], vm_sock[PATH_MAX + 16],
		vm_listen[PATH_MAX + 32], qlog[PATH_MAX + 16], err[512];
	struct e2e_daemon d;
	struct hfe_client *sub = NULL;
	long rss[CYCLES], fds0 = -1;
	int done = 0, aus = 0;

	REQUIRE(workdir);
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(qmp, sizeof(qmp), "%s/qmp.sock", workdir);
	snprintf(qemu_arg, sizeof(qemu_arg), "qmp:unix:%s", qmp);
	snprintf(vm_sock, sizeof(vm_sock), "%s/vm.sock", workdir);
	snprintf(vm_listen, sizeof(vm_listen), "unix:%s", vm_sock);
	snprintf(qlog, sizeof(qlog), "%s/qemu.log", workdir);
	/* As bench/chaos: large blocks go back to the kernel when freed, so
	 * that RSS follows what is allocated. */
	setenv("MALLOC_MMAP_THRESHOLD_", "131072", 1);
	tu_asan_small_quarantine();
	tu_asan_glib_malloc();
	const char *args[] = { "--qemu", qemu_arg, "--console", "0", "--listen", vm_listen,
			       "--threads", "1", NULL };

	if (e2e_daemon_start(&d, workdir, "daemon", args, err, sizeof(err)) < 0) {
		CHECKF(0, "daemon: %s", err);
		return tu_finish("test_e2e_dbus_reattach");
	}
	CHECKF(e2e_subscribe(vm_listen, 0, &sub) == 1, "SUBSCRIBE on the VM's channel refused");

	uint64_t t0 = tu_now_ns();

	for (int i = 0; sub && i < CYCLES && !tu_failures; i++) {
		if (!one_cycle(qmp, qlog, sub, &aus, i % 2 ? SIGTERM : SIGKILL))
			break;
		/* Detached once the display and listener connections are closed. */
		long n = -1;
		uint64_t t1 = tu_now_ns();

		do {
			usleep(20000);
			n = tu_proc_fds(d.pid, false);
		} while (fds0 >= 0 && n != fds0 && tu_now_ns() - t1 < STEP_MS * 1000000ull);
		if (fds0 < 0)
			fds0 = n; /* GLib keeps 2 eventfds from its first D-Bus connection on */
		CHECKF(n == fds0, "cycle %d: %ld descriptors after the detach, %ld after the first",
		       i + 1, n, fds0);
		rss[done++] = tu_proc_status_kb(d.pid, "VmRSS");
	}
	double secs = (tu_now_ns() - t0) / 1e9;

	CHECKF(done == CYCLES, "%d of %d cycles", done, CYCLES);
	if (done == CYCLES) {
		long warm = median(rss + WARM - MEDIAN_OF, MEDIAN_OF);
		long end = median(rss + CYCLES - MEDIAN_OF, MEDIAN_OF);

		printf("reattach: %d cycles in %.1f s (%d AUs); daemon VmRSS after cycle 1 %ld kB, "
		       "after %d %ld kB, at the end %ld kB (%+ld kB, bound %d); fds %ld\n",
		       CYCLES, secs, aus, rss[0], WARM, warm, end, end - warm,
		       RSS_BOUND_KB, fds0);
		printf("reattach: VmRSS per cycle (kB):");
		for (int i = 0; i < CYCLES; i++)
			printf(" %ld", rss[i]);
		printf("\n");
		CHECKF(end - warm <= RSS_BOUND_KB, "the daemon's VmRSS grew %ld kB in %d cycles",
		       end - warm, CYCLES - WARM);
	}
	hfe_client_close(sub);
	int st = e2e_daemon_stop(&d);

	CHECKF(st == 0, "daemon exit status 0x%x (see %s)", st, d.log);
	if (!tu_failures)
		tu_rm_rf(workdir);
	free(workdir);
	return tu_finish("test_e2e_dbus_reattach");
}
