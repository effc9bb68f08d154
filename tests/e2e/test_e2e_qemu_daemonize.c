/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * QEMU with -daemonize in its sandbox starts with the module.
 *
 * With -sandbox, the module's threads are created by a thread that lowered
 * its priority before the sandbox applied (qemu/helix/helix-threads.c).
 * -daemonize forks after that, and a forked child has only the forking
 * thread: the module must then create its threads itself (the first version
 * waited for the missing thread, and QEMU hung in the object's creation
 * with its parent waiting for it). Checked, without a guest (-machine
 * none):
 *  - the parent exits with status 0 once the daemon is up;
 *  - the daemon runs in the sandbox (Seccomp: 2) and the module accepts a
 *    connection on its socket.
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e_harness.h"
#include "e2e_qemu.h"
#include "raw_peer.h"
#include "test_util.h"

#define NAME "test_e2e_qemu_daemonize"
#define START_MS 30000
/* libvirt's sandbox (E2E_QEMU_SANDBOX) also has spawn=deny, which refuses
 * -daemonize's own fork: the part that matters here is resourcecontrol. */
#define SANDBOX "on,resourcecontrol=deny"

static pid_t read_pid(const char *path)
{
	FILE *f = fopen(path, "r");
	int pid = 0;

	if (f) {
		if (fscanf(f, "%d", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	return (pid_t)pid;
}

int main(void)
{
	char *workdir, err[1024], log[PATH_MAX + 32], sock[PATH_MAX + 32], pidfile[PATH_MAX + 32];
	char object[PATH_MAX + 96];
	uint64_t t0 = e2e_now_ns();
	struct e2e_qemu q;
	int st = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	workdir = tu_mkdtemp("hfe-e2e-daemonize");
	REQUIRE(workdir);
	snprintf(log, sizeof(log), "%s/qemu-build.log", workdir);
	if (e2e_qemu_get(&q, log, err, sizeof(err)) < 0) {
		fprintf(stderr, NAME ": FAIL: cannot build the patched QEMU: %s\n", err);
		return 1;
	}
	snprintf(sock, sizeof(sock), "%s/hfe.sock", workdir);
	snprintf(pidfile, sizeof(pidfile), "%s/qemu.pid", workdir);
	snprintf(object, sizeof(object), "helix-frame-export,id=hfe0,listen=unix:%s", sock);
	snprintf(log, sizeof(log), "%s/qemu.log", workdir);
	const char *const argv[] = { q.bin, "-machine", "none", "-display", "none", "-nodefaults",
				     "-sandbox", SANDBOX, "-object", object,
				     "-daemonize", "-pidfile", pidfile, NULL };

	e2e_qemu_env_begin();
	pid_t parent = tu_spawn(argv, log);
	e2e_qemu_env_end();
	REQUIRE(parent > 0);
	if (tu_wait(parent, START_MS, &st) < 0) {
		CHECKF(0, "QEMU -daemonize did not come up in %d ms (the object's creation "
		       "hangs)", START_MS);
		tu_kill_wait(parent, SIGKILL, 5000);
	} else {
		CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		       "QEMU's parent process ended with status 0x%x (log %s)", st, log);
	}

	pid_t daemon = read_pid(pidfile);
	CHECKF(daemon > 0 && kill(daemon, 0) == 0, "no daemon running (pid file %s)", pidfile);
	if (daemon > 0 && kill(daemon, 0) == 0) {
		int fd = connect_unix(sock);

		CHECKF(tu_proc_status_kb(daemon, "Seccomp") == 2, "the daemon is not in its "
		       "seccomp sandbox");
		CHECKF(fd >= 0, "the module does not accept on %s", sock);
		if (fd >= 0) {
			printf("daemon %d up, the module accepts on its socket\n", (int)daemon);
			close(fd);
		}
		kill(daemon, SIGTERM);
		for (int i = 0; i < 100 && kill(daemon, 0) == 0; i++)
			usleep(50000);
		if (kill(daemon, 0) == 0)
			kill(daemon, SIGKILL);
	}
	if (tu_failures)
		show_log(log);
	return e2e_test_finish(NAME, workdir, t0);
}
