/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The stock-QEMU VM of the chaos soak (--vm): the e2e tests' guest under
 * Debian's QEMU with -display dbus,p2p=yes and a QMP socket the daemon
 * follows (--qemu qmp:unix:... --console 0 --listen unix:.../vm.sock). The
 * guest draws full-screen changes into /dev/fb0 (hfe-guest mode draw, 640x480,
 * 10 fps); after 5..20 s of drawing QEMU is killed (SIGKILL or SIGTERM, at
 * random) and started again on the same QMP socket, so the daemon detaches
 * and reattaches. Subscribers on vm.sock (subscriber.c, kind 1) stay
 * connected through it: their streams must keep decoding, and each restart
 * is timed to their next IDR (vm_restart_note / vm_restart_seen).
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "chaos.h"
#include "e2e_harness.h"
#include "raw_peer.h"
#include "test_util.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct e2e_guest guest;
static unsigned generation;
static double t_down; /* chaos_ms() when the last QEMU was stopped */

unsigned vm_generation(double *since_ms)
{
	pthread_mutex_lock(&lock);
	unsigned g = generation;
	*since_ms = t_down;
	pthread_mutex_unlock(&lock);
	return g;
}

static void note_down(void)
{
	pthread_mutex_lock(&lock);
	generation++;
	t_down = chaos_ms();
	pthread_mutex_unlock(&lock);
}

int vm_prepare(void)
{
	char log[1024], err[1024];

	snprintf(log, sizeof(log), "%s/build-guest.log", tmpdir);
	if (e2e_guest_get(&guest, log, err, sizeof(err)) < 0) {
		chaos_fail("vm", "no test guest: %s", err);
		return -1;
	}
	return 0;
}

void *vm_main(void *arg)
{
	struct actor *a = arg;
	struct rng *r = &a->rng;
	struct e2e_guest *g = &guest;
	char err[1024], append[256], line[256];

	while (chaos_running()) {
		struct e2e_vm_config cfg = {
			.fb_width = 640, .fb_height = 480, .qmp = true, .display = "dbus,p2p=yes",
			.append = append, .timeout_ms = 24 * 3600 * 1000,
		};
		snprintf(append, sizeof(append),
			 /* no_timer_check: on an overloaded host TCG's timer misses the
			  * kernel's IO-APIC check, which then panics (seen at load 18) */
			 "no_timer_check hfe.mode=draw hfe.frames=1000000 hfe.small=0 hfe.fps=10 "
			 "hfe.hold=0 hfe.fbio=write");
		double t0 = chaos_ms();
		struct e2e_vm *vm = e2e_vm_start(g, tmpdir, "vm", &cfg, err, sizeof(err));
		if (!vm) {
			chaos_fail(a->name, "QEMU did not start: %s", err);
			chaos_sleep(2000);
			continue;
		}
		ev_add(EV_VM_START, 1);
		int w = 0;
		while (chaos_running() && w == 0)
			w = e2e_vm_wait_line(vm, "draw start", line, sizeof(line), 250);
		if (w == 1) {
			sample_add(S_VM_BOOT, chaos_ms() - t0);
			chaos_sleep((int)rng_range(r, 5000, 20000));
		} else if (w < 0 && chaos_running()) {
			/* The guest's own trouble, not the daemon's: counted, shown. */
			ev_add(EV_VM_GUEST_DIED, 1);
			fprintf(stderr, "vm: the guest died before drawing\n");
			e2e_vm_dump_console(vm, 12);
		}
		if (!chaos_running()) {
			e2e_vm_free(vm);
			break;
		}
		note_down();
		if (rng_pct(r, 50)) {
			kill(e2e_vm_pid(vm), SIGKILL);
			ev_add(EV_VM_KILL, 1);
		} else {
			ev_add(EV_VM_TERM, 1); /* e2e_vm_free: SIGTERM, QEMU quits */
		}
		e2e_vm_free(vm);
		chaos_sleep((int)rng_range(r, 0, 2000));
	}
	return NULL;
}
