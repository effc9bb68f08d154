/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The QEMU module's VM of the chaos soak (--module): the e2e tests' guest
 * under the patched QEMU (qemu/build.sh), in QEMU's sandbox as libvirt
 * starts it, with -object helix-frame-export listening on a unix socket and
 * a virtio-gpu with two outputs. The guest draws full-screen changes into
 * /dev/fb0 (hfe-guest mode draw, 640x480, 10 fps). Every 4..12 s this actor
 * does one of, at random:
 *   - reboot the guest (QMP system_reset): the console goes through the
 *     firmware's and the kernel's modes and back to the fbcon's;
 *   - ENABLE_SCANOUT on output 1 with a random size (hot-plug, or a new
 *     preferred mode), or one the host must refuse (too small, shorter than
 *     200 lines, too big, refresh above 240), over its control connection, checking the
 *     SCANOUT_RESP;
 *   - DISABLE_SCANOUT of output 1 (unplug).
 * Subscribers of kind 2 (subscriber.c) watch output 0 through all of it:
 * their streams must keep decoding, and each reboot is timed to their next
 * IDR (module_generation). QEMU itself must live to the end of the run; its
 * VmRSS and descriptors are sampled by the monitor (module_qemu_pid) and its
 * main-loop statistics read at the end (module_finish).
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "chaos.h"
#include "e2e_harness.h"
#include "e2e_qemu.h"
#include "hfe/client.h"
#include "raw_peer.h"
#include "test_util.h"

#define OUT_W 640
#define OUT_H 480
/* The module's main-loop rule: no callback takes 1 ms of the main thread's
 * CPU time (wall time also counts preemption by the other processes of this
 * loaded machine). On a virtual machine the thread's CPU clock also runs
 * while the hypervisor has taken the vCPU away, so a callback that does
 * almost nothing sometimes "takes" milliseconds: bench-loop-jitter, run
 * meanwhile as a baseline, sees the same, though more rarely (its callbacks
 * make one system call, the module's several). The module's share of
 * callbacks over 1 ms may not exceed STEAL_FACTOR times the baseline's plus
 * 1 in STEAL_SLACK (a callback that really spends 1 ms, on every frame or
 * every message, would be tens of percent). */
#define STALL_CPU_LIMIT_US 1000
#define STEAL_FACTOR 3
#define STEAL_SLACK 1000
#define STEAL_MIN 3.0 /* ... and never fewer than 3 (a short run has few callbacks) */
/* hist-cpu-us buckets: <100, <250, <500, <1000, <2000, <5000, >=5000 us */
#define N_BUCKETS 7
#define TB_SIZE_MB 32
#define BUCKET_1MS 4

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct e2e_guest guest;
static struct e2e_qemu qemu;
static struct e2e_vm *vm;
static atomic_int qemu_pid;
static unsigned generation;
static double t_reboot; /* chaos_ms() of the last system_reset */
static char jitter_line[512]; /* bench-loop-jitter's result */

unsigned module_generation(double *since_ms)
{
	pthread_mutex_lock(&lock);
	unsigned g = generation;
	*since_ms = t_reboot;
	pthread_mutex_unlock(&lock);
	return g;
}

pid_t module_qemu_pid(void)
{
	return atomic_load(&qemu_pid);
}

int module_prepare(void)
{
	char err[1024];

	if (e2e_qemu_prepare(&qemu, &guest, tmpdir, err, sizeof(err)) < 0) {
		chaos_fail("module", "%s", err);
		return -1;
	}
	return 0;
}

int module_start(void)
{
	static const char append[] =
		"no_timer_check hfe.mode=draw hfe.frames=1000000 hfe.small=0 hfe.fps=10 hfe.hold=0 "
		"hfe.fbio=write";
	/* Guest RAM allocated up front: QEMU's RSS then shows QEMU's own memory,
	 * not the pages the guest touches for the first time after a reboot. */
	static const char *const extra[] = {
		"-object", "memory-backend-ram,id=hfe-ram,size=512M,prealloc=on",
		"-machine", "memory-backend=hfe-ram", NULL,
	};
	char err[1024], sock[4096], accel[64];
	struct e2e_vm_config cfg = {
		.fb_width = OUT_W, .fb_height = OUT_H, .max_outputs = 2, .qmp = true,
		.append = append, .extra_args = extra, .mem_mb = 512, .accel = accel,
		.timeout_ms = 24 * 3600 * 1000,
	};

	/* TCG's translation buffer (1 GiB by default) fills page by page as the
	 * guest runs new code, reboots included: tens of MB of RSS a minute that
	 * are the guest's, not the module's. A small buffer reaches its flush
	 * point within the warm-up. */
	snprintf(accel, sizeof(accel), "%s", e2e_accel(&guest));
	if (!strcmp(accel, "tcg"))
		snprintf(accel, sizeof(accel), "tcg,tb-size=%d", TB_SIZE_MB);

	vm = e2e_qemu_vm_start(&qemu, &guest, tmpdir, "module", "max-fps=30", &cfg, sock,
			       sizeof(sock), err, sizeof(err));
	if (!vm) {
		chaos_fail("module", "the patched QEMU did not start: %s", err);
		return -1;
	}
	snprintf(chaos_cfg.module_addr, sizeof(chaos_cfg.module_addr), "unix:%s", sock);
	atomic_store(&qemu_pid, e2e_vm_pid(vm));
	ev_add(EV_MOD_START, 1);
	double t0 = chaos_ms();
	char line[256];
	if (e2e_vm_wait_line(vm, "draw start", line, sizeof(line), 180000) != 1) {
		chaos_fail("module", "the guest did not start drawing");
		e2e_vm_dump_console(vm, 20);
		return -1;
	}
	sample_add(S_MOD_BOOT, chaos_ms() - t0);
	/* The harness starts QEMU with -no-reboot (a guest that dies ends the
	 * test); this VM is rebooted on purpose. */
	if (e2e_qmp(e2e_vm_qmp_path(vm),
		    "{\"execute\":\"set-action\",\"arguments\":{\"reboot\":\"reset\"}}", NULL, 0,
		    10000, err, sizeof(err)) < 0) {
		chaos_fail("module", "set-action reboot=reset: %s", err);
		return -1;
	}
	return 0;
}

static void reboot(void)
{
	char err[512];

	pthread_mutex_lock(&lock);
	generation++;
	t_reboot = chaos_ms();
	pthread_mutex_unlock(&lock);
	if (e2e_qmp(e2e_vm_qmp_path(vm), "{\"execute\":\"system_reset\"}", NULL, 0, 10000, err,
		    sizeof(err)) < 0) {
		chaos_fail("module", "system_reset: %s", err);
		return;
	}
	ev_add(EV_MOD_REBOOT, 1);
}

/* One ENABLE_SCANOUT or DISABLE_SCANOUT of output 1 on the control
 * connection, and its SCANOUT_RESP: success exactly when the request was
 * one the host can do. */
static void output_request(struct hfe_client **ctl, struct rng *r)
{
	struct hfe_err err = { 0 };
	struct hfe_msg m = { .hdr = { .session_id = 1 } };
	bool valid = true;

	if (!*ctl && !(*ctl = hfe_client_connect(chaos_cfg.module_addr, 5000, &err))) {
		chaos_fail("module", "control connection: %s", err.msg);
		return;
	}
	if (rng_pct(r, 25)) {
		m.hdr.type = HFE_MSG_DISABLE_SCANOUT;
		m.u.scanout_id = 1;
		ev_add(EV_MOD_UNPLUG, 1);
	} else {
		m.hdr.type = HFE_MSG_ENABLE_SCANOUT;
		m.u.enable_scanout = (struct hfe_enable_scanout){
			.scanout_id = 1, .width = rng_range(r, 160, 1280) & ~7u,
			.height = rng_range(r, 200, 800) & ~7u, .refresh_rate = 60,
		};
		switch (rng_range(r, 0, 7)) {
		case 0:
			/* Too small; or too short for a preferred mode in QEMU's
			 * EDID, which made the guest take 5120x2160 (lib/src/scanout.c). */
			if (rng_pct(r, 50))
				m.u.enable_scanout.width = 8;
			else
				m.u.enable_scanout.height = rng_range(r, 16, 199);
			valid = false;
			break;
		case 1:
			m.u.enable_scanout.height = HFE_MAX_DIMENSION + 1;
			valid = false;
			break;
		case 2:
			m.u.enable_scanout.refresh_rate = 300;
			valid = false;
			break;
		}
		ev_add(valid ? EV_MOD_RESIZE : EV_MOD_RESIZE_BAD, 1);
	}
	if (hfe_client_send_msg(*ctl, &m, 5000, &err) < 0) {
		chaos_fail("module", "ENABLE/DISABLE_SCANOUT: %s", err.msg);
		goto drop;
	}
	for (;;) {
		int rc = hfe_client_recv(*ctl, &m, 5000, &err);
		if (rc != 1) {
			chaos_fail("module", "no SCANOUT_RESP: %s", rc < 0 ? err.msg : "timeout");
			goto drop;
		}
		if (m.hdr.type == HFE_MSG_SCANOUT_RESP)
			break;
		/* v1 control connection: nothing else may come. */
		chaos_fail("module", "message 0x%x instead of SCANOUT_RESP", m.hdr.type);
		goto drop;
	}
	if (m.u.scanout_resp.scanout_id != 1 || m.u.scanout_resp.success != valid)
		chaos_fail("module", "SCANOUT_RESP for output %u: success %u, want %u",
			   m.u.scanout_resp.scanout_id, m.u.scanout_resp.success, valid);
	return;
drop:
	hfe_client_close(*ctl);
	*ctl = NULL;
}

void *module_main(void *arg)
{
	struct actor *a = arg;
	struct hfe_client *ctl = NULL;

	while (chaos_running()) {
		chaos_sleep((int)rng_range(&a->rng, 4000, 12000));
		if (!chaos_running())
			break;
		siginfo_t si = { 0 }; /* WNOWAIT: e2e_vm_* reaps it */
		if (waitid(P_PID, (id_t)module_qemu_pid(), &si, WEXITED | WNOHANG | WNOWAIT) < 0 ||
		    si.si_pid != 0) {
			chaos_fail("module", "QEMU died");
			e2e_vm_dump_console(vm, 30);
			atomic_store(&qemu_pid, 0);
			break;
		}
		if (rng_pct(&a->rng, 30))
			reboot();
		else
			output_request(&ctl, &a->rng);
	}
	if (ctl)
		hfe_client_close(ctl);
	return NULL;
}

/* The baseline for the run (e2e_baseline_start: HFE_BUILD_ROOT's). */
void *jitter_main(void *arg)
{
	char line[512];

	(void)arg;
	if (e2e_baseline_end(e2e_baseline_start(chaos_cfg.duration_s), line, sizeof(line)) < 0)
		chaos_fail("jitter", "no result from bench-loop-jitter (HFE_BUILD_ROOT: %s)",
			   getenv("HFE_BUILD_ROOT") ? getenv("HFE_BUILD_ROOT") : "not set");
	pthread_mutex_lock(&lock);
	snprintf(jitter_line, sizeof(jitter_line), "%s", line);
	pthread_mutex_unlock(&lock);
	return NULL;
}

/* Up to n counts separated by sep ("1/2/3", "1, 2, 3") from text; how many. */
static int parse_counts(const char *text, char sep, unsigned long long *v, int n)
{
	int i = 0;

	while (text && i < n) {
		char *end;
		v[i++] = strtoull(text, &end, 10);
		if (*end != sep)
			break;
		text = end + 1;
	}
	return i;
}

/* What follows key in text (NULL if key is not there). */
static const char *after(const char *text, const char *key)
{
	const char *p = strstr(text, key);
	return p ? p + strlen(key) : NULL;
}

static void stall_check(const char *stats)
{
	unsigned long long mod[N_BUCKETS] = { 0 }, ctl[N_BUCKETS] = { 0 };
	unsigned long long mod_n = 0, mod_over = 0, ctl_n = 0, ctl_over = 0;
	double cpu = e2e_qemu_json_num(stats, "max-stall-cpu-us", -1);
	double wall = e2e_qemu_json_num(stats, "max-stall-us", -1);
	char line[512];

	pthread_mutex_lock(&lock);
	snprintf(line, sizeof(line), "%s", jitter_line);
	pthread_mutex_unlock(&lock);
	if (parse_counts(after(stats, "\"hist-cpu-us\": ["), ',', mod, N_BUCKETS) != N_BUCKETS ||
	    parse_counts(after(line, "ctl_hist_cpu_us="), '/', ctl, N_BUCKETS) != N_BUCKETS) {
		chaos_fail("module", "cannot read the CPU histograms (module: %s; baseline: %s)",
			   stats, line);
		return;
	}
	for (int b = 0; b < N_BUCKETS; b++) {
		mod_n += mod[b];
		ctl_n += ctl[b];
		mod_over += b >= BUCKET_1MS ? mod[b] : 0;
		ctl_over += b >= BUCKET_1MS ? ctl[b] : 0;
	}
	printf("\nQEMU module's main loop: %llu callbacks, longest %.0f us of CPU (%s), %.0f us "
	       "wall; %llu took >= 1 ms of CPU\n", mod_n, cpu,
	       strstr(stats, "max-stall-cpu-in") ? "see stats" : "-", wall, mod_over);
	printf("baseline (bench-loop-jitter, ~20 us callbacks meanwhile): %llu callbacks, %llu "
	       "took >= 1 ms of CPU\n  %s", ctl_n, ctl_over, line);
	if (!mod_n || !ctl_n) {
		chaos_fail("module", "no callbacks counted (module %llu, baseline %llu)", mod_n,
			   ctl_n);
		return;
	}
	double mod_share = (double)mod_over / (double)mod_n;
	double slack = (double)mod_n / STEAL_SLACK < STEAL_MIN ? STEAL_MIN / (double)mod_n
							       : 1.0 / STEAL_SLACK;
	double allowed = STEAL_FACTOR * (double)ctl_over / (double)ctl_n + slack;
	if (mod_share > allowed)
		chaos_fail("module", "%llu of %llu main-loop callbacks took >= %d us of CPU (%.3f %%; "
			   "allowed %.3f %% from the baseline's %llu of %llu)", mod_over, mod_n,
			   STALL_CPU_LIMIT_US, 100 * mod_share, 100 * allowed, ctl_over, ctl_n);
}

void module_finish(void)
{
	char stats[4096] = "", err[512];

	if (!vm)
		return;
	if (module_qemu_pid() <= 0) {
		e2e_vm_free(vm);
		return;
	}
	if (e2e_qemu_qom_get(e2e_vm_qmp_path(vm), "/objects/hfe0", "stats", stats, sizeof(stats),
			     err, sizeof(err)) < 0) {
		chaos_fail("module", "cannot read the module's stats: %s", err);
	} else {
		printf("\nQEMU module's stats: %s\n", stats);
		stall_check(stats);
	}
	/* QEMU quits on SIGTERM (e2e_vm_free); it must exit 0. */
	kill(module_qemu_pid(), SIGTERM);
	int st = e2e_vm_wait_exit(vm, 20000);
	if (st != 0)
		chaos_fail("module", "QEMU's exit status 0x%x", st);
	e2e_vm_free(vm);
	vm = NULL;
	atomic_store(&qemu_pid, 0);
}
