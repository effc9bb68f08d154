/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Many desktops per VM (issue 12's benchmark): N hot-plugged 1920x1080
 * virtio-gpu outputs in one TCG VM, all drawing at once, N subscribers on
 * the host, each a deployed bridge (bridge_watch.c: raw bytes, SUBSCRIBE +
 * CONFIG_REQ at 4 Mbit/s). The guest runs hfe-guest mode=outputs with its
 * bench workload (guest/mode_outputs.c): it ENABLEs outputs FIRST..FIRST+N-1, draws each
 * once, holds still (the idle phase), then for duration/2 types an 8x16
 * character on every output each tick ("small"), then for duration/2 flips
 * every output between two full pictures each tick ("full"), and DISABLEs
 * them. The phases are the guest's out-port TEXT records.
 *
 * Per host (stock QEMU -display dbus + the daemon, or the patched QEMU with
 * its module) and per N, per phase:
 *   AU/s        access units received by all subscribers per second
 *   ticks/s     the guest's workload ticks per second (asked: --fps); under
 *               TCG the guest may not keep up, which bounds the AU rate
 *   lat         receive time - FRAME_RESPONSE pts (the host CLOCK_MONOTONIC
 *               time of the damage): p50/p99 of all AUs of the phase, and the
 *               worst desktop's p99
 *   CPU %       per-thread schedstat (100 = one core): QEMU in all, QEMU's
 *               vCPU threads (the guest's own emulated drawing: TCG), and the
 *               display path = QEMU's other threads + the daemon
 *   AU/s/core   AU/s / (CPU % / 100), once with all CPU counted and once with
 *               the display path only; the deployed system: 3 desktops at
 *               1080p, 10.1 AU/s at 460 % CPU = 2.2 AU/s per core
 *   RSS         VmRSS of QEMU and of the daemon at the end of the idle phase
 *               (every desktop up, nothing queued; QEMU's includes the guest
 *               RAM the guest touched: its dumb buffers, 16 MB per output),
 *               per added desktop against the smallest N of the run; and at
 *               the end of the full phase (with whatever queued meanwhile)
 *   stall       module only: max-stall-cpu-us / max-stall-us of the phase
 *               (reset by qom-set before it) from the `stats` QAPI struct
 *
 * usage: outputs [--host dbus|module|both] [--n 1,4,8,16] [--duration MS]
 *                [--fps N] [--idle MS] [--size WxH] [--first ID]
 * Environment as for the e2e tests (HFE_DAEMON, HFE_E2E_BUILD_GUEST,
 * HFE_E2E_GUEST_TOOL, HFE_QEMU_BUILD, HFE_BUILD_ROOT, HFE_E2E_QEMU_DIR).
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge_watch.h"
#include "e2e_harness.h"
#include "e2e_qemu.h"
#include "test_util.h"

#define MAX_N 16
#define SETTLE_MS 2500 /* after the last bring-up, before the idle window */
/* The baseline loop runs for a workload phase (half of --duration) minus a
 * margin, so that it has ended (its line is read) by the time the phase has. */
#define BASELINE_S(op) ((op)->duration_ms / 2000.0 - 0.5)
#define DEPLOYED_AU_PER_CORE (10.1 / 4.6)
/* The subscribers' CONFIG_REQ: the hosts' default rate (libhfe's 4 Mbit/s). */
#define BENCH_BITRATE 4000000u

enum { PH_IDLE, PH_SMALL, PH_FULL, N_PH };
static const char *const ph_name[N_PH] = { "idle", "small", "full" };

struct opts {
	char host[16], ns[64], gl[16]; /* gl: the GL display, "" = 2D virtio-gpu-pci */
	int duration_ms, fps, idle_ms, first;
	unsigned w, h;
};

/* ---- processes: CPU per thread, RSS ---- */

/* QEMU's pid: the process other than not (the daemon, which names the same
 * socket in its --qemu) with an argument naming its (unique) QMP socket. */
static pid_t pid_with_arg(const char *needle, pid_t not)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = -1;

	while (d && (e = readdir(d)) && found < 0) {
		char path[300], buf[8192];
		size_t n;
		FILE *f;

		if (e->d_name[0] < '1' || e->d_name[0] > '9' || atoi(e->d_name) == (int)not ||
		    atoi(e->d_name) == (int)getpid())
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
			if (strstr(buf + i, needle))
				found = atoi(e->d_name);
	}
	if (d)
		closedir(d);
	return found;
}

/* ---- one run ---- */

struct phase {
	uint64_t t0, t1;        /* host ns */
	struct e2e_cpu q0, q1;      /* QEMU */
	double d0, d1;          /* daemon, all threads */
	unsigned ticks;
	double stall_us, stall_cpu_us;
	char hist_cpu[64], stall_in[64];
	FILE *baseline;         /* bench-loop-jitter running through the phase */
	double base_cpu_us;     /* its longest callback, CPU time */
	char base_hist_cpu[64];
};

struct result {
	int n;
	bool ok;
	struct phase ph[N_PH];
	long rss_qemu, rss_daemon;           /* end of the idle phase: the steady state */
	long rss_qemu_full, rss_daemon_full; /* end of the full phase (queues included) */
	double aus[N_PH], p50[N_PH], p99[N_PH], worst_p99[N_PH], key_p50[N_PH];
	int keys[N_PH];
};

static void snap(struct phase *p, bool end, pid_t qpid, pid_t dpid)
{
	struct e2e_cpu c = e2e_proc_cpu(qpid), d = e2e_proc_cpu(dpid);

	if (end) {
		p->t1 = e2e_now_ns();
		p->q1 = c;
		p->d1 = d.all_ms;
	} else {
		p->t0 = e2e_now_ns();
		p->q0 = c;
		p->d0 = d.all_ms;
	}
}

static const char STALL_RESET[] =
	"{\"execute\":\"qom-set\",\"arguments\":{\"path\":\"/objects/hfe0\","
	"\"property\":\"max-stall-us\",\"value\":0}}";

static void stall_reset(const char *qmp)
{
	char reply[512], err[256];

	if (qmp)
		e2e_qmp(qmp, STALL_RESET, reply, sizeof(reply), 5000, err, sizeof(err));
}

static void stall_read(const char *qmp, struct phase *p)
{
	static char stats[1 << 17];
	char err[256];

	p->stall_us = p->stall_cpu_us = NAN;
	if (!qmp || e2e_qemu_qom_get(qmp, "/objects/hfe0", "stats", stats, sizeof(stats), err,
				     sizeof(err)) < 0)
		return;
	p->stall_us = e2e_qemu_json_num(stats, "max-stall-us", NAN);
	p->stall_cpu_us = e2e_qemu_json_num(stats, "max-stall-cpu-us", NAN);
	/* Which callback took the longest CPU time. */
	const char *in = strstr(stats, "\"max-stall-cpu-in\"");
	const char *q1 = in ? strchr(in + 18, '"') : NULL, *q2 = q1 ? strchr(q1 + 1, '"') : NULL;

	if (q1 && q2 && q2 - q1 < (long)sizeof(p->stall_in))
		snprintf(p->stall_in, sizeof(p->stall_in), "%.*s", (int)(q2 - q1 - 1), q1 + 1);
	/* Callbacks per CPU-time bucket (bounds 100/250/500/1000/2000/5000 µs),
	 * since the reset before the phase. */
	const char *h = strstr(stats, "\"hist-cpu-us\"");
	const char *b = h ? strchr(h, '[') : NULL, *e = b ? strchr(b, ']') : NULL;

	if (b && e && e - b < (long)sizeof(p->hist_cpu))
		snprintf(p->hist_cpu, sizeof(p->hist_cpu), "%.*s", (int)(e - b + 1), b);
}

/*
 * The baseline, side by side: bench-loop-jitter --wake, a loop of callbacks
 * that compute ~20 us and send 16 KB to a thread blocked reading them (what
 * a module callback that writes to a client does in the kernel), runs
 * through a phase on the same machine. Its longest callback in CPU time is
 * what the kernel charges any thread here for such a callback (interrupts,
 * softirqs and, on a paravirtualised VM, the hypervisor's time at interrupt
 * re-enable are accounted to whoever runs), the floor under the module's
 * figure.
 */
static void baseline_start(struct phase *p, double seconds)
{
	p->base_cpu_us = NAN;
	p->baseline = e2e_baseline_start(seconds);
}

static void baseline_end(struct phase *p)
{
	char line[512] = "";
	const char *h;

	if (!p->baseline)
		return;
	e2e_baseline_end(p->baseline, line, sizeof(line));
	p->baseline = NULL;
	p->base_cpu_us = e2e_kv_num(line, "ctl_max_cpu_us", NAN);
	h = strstr(line, "ctl_hist_cpu_us=");
	if (h)
		snprintf(p->base_hist_cpu, sizeof(p->base_hist_cpu), "%.*s",
			 (int)strcspn(h + 16, " \n"), h + 16);
}

/* Follow the guest's TEXT records, snapshotting CPU at each phase boundary. */
static bool follow(struct e2e_vm *vm, struct result *r, pid_t qpid, pid_t dpid, const char *qmp,
		   const struct opts *op)
{
	const struct e2e_rec *rec;
	int seen = 0;

	for (size_t i = 0; e2e_vm_record(vm, i, &rec, 600000) == 1; i++) {
		const char *t = (const char *)rec->data;

		if (rec->h.kind == E2E_REC_END)
			return seen == 5 && strstr(t, "result=ok");
		if (rec->h.kind != E2E_REC_TEXT || strncmp(t, "outputs ", 8))
			continue;
		if (!strncmp(t, "outputs drawn", 13)) {
			usleep(SETTLE_MS * 1000);
			stall_reset(qmp);
			snap(&r->ph[PH_IDLE], false, qpid, dpid);
			seen++;
		} else if (!strcmp(t, "outputs workload small start")) {
			snap(&r->ph[PH_IDLE], true, qpid, dpid);
			stall_read(qmp, &r->ph[PH_IDLE]);
			r->rss_qemu = tu_proc_status_kb(qpid, "VmRSS");
			r->rss_daemon = tu_proc_status_kb(dpid, "VmRSS");
			stall_reset(qmp);
			snap(&r->ph[PH_SMALL], false, qpid, dpid);
			baseline_start(&r->ph[PH_SMALL], BASELINE_S(op));
			seen++;
		} else if (!strncmp(t, "outputs workload small end", 26)) {
			snap(&r->ph[PH_SMALL], true, qpid, dpid);
			r->ph[PH_SMALL].ticks = (unsigned)e2e_kv_num(t, "ticks", 0);
			stall_read(qmp, &r->ph[PH_SMALL]);
			baseline_end(&r->ph[PH_SMALL]);
			seen++;
		} else if (!strcmp(t, "outputs workload full start")) {
			stall_reset(qmp);
			snap(&r->ph[PH_FULL], false, qpid, dpid);
			baseline_start(&r->ph[PH_FULL], BASELINE_S(op));
			seen++;
		} else if (!strncmp(t, "outputs workload full end", 25)) {
			snap(&r->ph[PH_FULL], true, qpid, dpid);
			r->ph[PH_FULL].ticks = (unsigned)e2e_kv_num(t, "ticks", 0);
			stall_read(qmp, &r->ph[PH_FULL]);
			baseline_end(&r->ph[PH_FULL]);
			r->rss_qemu_full = tu_proc_status_kb(qpid, "VmRSS");
			r->rss_daemon_full = tu_proc_status_kb(dpid, "VmRSS");
			seen++;
		} else if (!strncmp(t, "outputs enabled", 15))
			printf("  %s\n", t);
	}
	(void)op;
	return false;
}

/* AU counts and latencies of each phase window, from every subscriber. */
static void tally(struct result *r, struct bridge_watch *ws, int n)
{
	for (int p = 0; p < N_PH; p++) {
		const struct phase *ph = &r->ph[p];
		size_t cap = 0, cnt = 0, nk = 0;
		double *all = NULL, worst = NAN, klat[4096];

		for (int k = 0; k < n; k++) {
			struct bridge_watch *w = &ws[k];
			double *mine = malloc((w->n + 1) * sizeof(double));
			size_t m = 0;

			REQUIRE(mine);
			for (size_t i = 0; i < w->n; i++) {
				if (w->aus[i].t_ns < ph->t0 || w->aus[i].t_ns > ph->t1)
					continue;
				mine[m] = ((double)w->aus[i].t_ns - (double)w->aus[i].pts) / 1e6;
				if (w->aus[i].key && nk < sizeof(klat) / sizeof(klat[0]))
					klat[nk++] = mine[m];
				m++;
			}
			if (cnt + m > cap) {
				cap = (cnt + m) * 2;
				all = realloc(all, cap * sizeof(double));
				REQUIRE(all);
			}
			memcpy(all + cnt, mine, m * sizeof(double));
			cnt += m;
			double p99 = e2e_pctl(mine, m, 0.99);
			if (m && (isnan(worst) || p99 > worst))
				worst = p99;
			free(mine);
		}
		double secs = (double)(ph->t1 - ph->t0) / 1e9;

		r->aus[p] = secs > 0 ? (double)cnt / secs : NAN;
		r->p50[p] = e2e_pctl(all, cnt, 0.5);
		r->p99[p] = e2e_pctl(all, cnt, 0.99);
		r->worst_p99[p] = worst;
		r->keys[p] = (int)nk;
		r->key_p50[p] = e2e_pctl(klat, nk, 0.5);
		free(all);
	}
}

static double secs_of(const struct phase *p)
{
	return (double)(p->t1 - p->t0) / 1e9;
}

static double pct_of(double ms, const struct phase *p)
{
	double s = secs_of(p);

	return s > 0 ? ms / 10.0 / s : NAN;
}

static void print_result(const char *host, const struct result *r, const struct opts *op)
{
	printf("%s N=%d:%s\n", host, r->n, r->ok ? "" : " (incomplete run)");
	for (int p = 0; p < N_PH; p++) {
		const struct phase *ph = &r->ph[p];
		double q = pct_of(ph->q1.all_ms - ph->q0.all_ms, ph);
		double v = pct_of(ph->q1.vcpu_ms - ph->q0.vcpu_ms, ph);
		double d = pct_of(ph->d1 - ph->d0, ph);
		double disp = q - v + d, all = q + d;

		printf("  %-5s %5.1f s  AU/s %7.2f", ph_name[p], secs_of(ph), r->aus[p]);
		if (p != PH_IDLE)
			printf("  ticks/s %5.2f (asked %d)", ph->ticks / secs_of(ph), op->fps);
		printf("  lat p50 %6.1f p99 %6.1f worst-desktop p99 %6.1f ms; %d IDR (lat p50 %.1f "
		       "ms)\n", r->p50[p], r->p99[p], r->worst_p99[p], r->keys[p], r->key_p50[p]);
		printf("        CPU %%: QEMU %5.1f (vCPU %5.1f, other %5.1f) daemon %5.1f -> "
		       "all %5.1f display %5.1f;  AU/s per core: all %5.2f display %5.2f\n", q, v,
		       q - v, d, all, disp, all > 0 ? r->aus[p] / (all / 100) : NAN,
		       disp > 0 ? r->aus[p] / (disp / 100) : NAN);
		if (!isnan(ph->stall_cpu_us))
			printf("        module main loop: longest callback %.0f us CPU (in %s), %.0f us "
			       "wall; hist-cpu-us %s\n", ph->stall_cpu_us, ph->stall_in,
			       ph->stall_us, ph->hist_cpu);
		if (!isnan(ph->base_cpu_us))
			printf("        baseline loop (do-nothing callbacks): longest %.0f us CPU; "
			       "hist-cpu-us %s\n", ph->base_cpu_us, ph->base_hist_cpu);
	}
	printf("  RSS after idle: QEMU %.1f MiB, daemon %.1f MiB; after full: QEMU %.1f MiB, "
	       "daemon %.1f MiB\n", r->rss_qemu / 1024.0,
	       r->rss_daemon > 0 ? r->rss_daemon / 1024.0 : 0.0, r->rss_qemu_full / 1024.0,
	       r->rss_daemon_full > 0 ? r->rss_daemon_full / 1024.0 : 0.0);
}

static bool run_one(const struct e2e_guest *g, const struct e2e_qemu *q, const char *workdir,
		    const struct opts *op, bool module, int n, struct result *r)
{
	char tag[32], append[512], err[1024], sock[PATH_MAX + 16] = "", qmparg[PATH_MAX + 16],
		listen[PATH_MAX + 16];
	struct e2e_daemon d = { .pid = 0 };
	struct bridge_watch ws[MAX_N];
	int max_outputs = op->first + n > MAX_N ? MAX_N : op->first + n;
	struct e2e_vm *vm;

	memset(r, 0, sizeof(*r));
	r->n = n;
	for (int p = 0; p < N_PH; p++)
		r->ph[p].stall_us = r->ph[p].stall_cpu_us = r->ph[p].base_cpu_us = NAN;
	snprintf(tag, sizeof(tag), "%s-n%d", module ? "module" : "dbus", n);
	snprintf(append, sizeof(append),
		 "hfe.mode=outputs hfe.outputs=%d hfe.first=%d hfe.sizes=%ux%u hfe.frames=1 "
		 "hfe.small=0 hfe.hold=%d hfe.duration=%d hfe.fps=%d", n, op->first, op->w, op->h,
		 SETTLE_MS + op->idle_ms, op->duration_ms, op->fps);
	/* Named threads: the vCPU ones ("CPU 0/TCG") are told apart by name. */
	static const char *const extra[] = { "-name", "debug-threads=on", NULL };
	struct e2e_vm_config cfg = { .append = append, .max_outputs = (unsigned)max_outputs,
				     .mem_mb = 512 + 16 * (unsigned)n, .qmp = true,
				     .extra_args = extra, .timeout_ms = 1800000 };
	char display[64];

	if (op->gl[0]) {
		e2e_gl_display(op->gl, display, sizeof(display));
		cfg.gpu = "virtio-gpu-gl-pci";
		cfg.display = display;
	}
	if (module) {
		vm = e2e_qemu_vm_start(q, g, workdir, tag, NULL, &cfg, sock,
				       sizeof(sock), err, sizeof(err));
	} else {
		snprintf(qmparg, sizeof(qmparg), "qmp:unix:%s/%s-qmp.sock", workdir, tag);
		snprintf(listen, sizeof(listen), "unix:%s/%s-vm.sock", workdir, tag);
		snprintf(sock, sizeof(sock), "%s", listen + 5);
		const char *args[] = { "--qemu", qmparg, "--listen", listen, NULL };

		/* The daemon's own --listen is WORKDIR/TAG.sock; the VM's is listen. */
		if (e2e_daemon_start(&d, workdir, tag, args, err, sizeof(err)) < 0) {
			fprintf(stderr, "outputs: %s: daemon: %s\n", tag, err);
			return false;
		}
		cfg.hfe_sock = sock;
		cfg.display = "dbus,p2p=yes";
		vm = e2e_vm_start(g, workdir, tag, &cfg, err, sizeof(err));
	}
	if (!vm) {
		fprintf(stderr, "outputs: %s: cannot start QEMU: %s\n", tag, err);
		if (d.pid)
			e2e_daemon_stop(&d);
		return false;
	}
	const char *qmp = e2e_vm_qmp_path(vm);
	pid_t qpid = -1;

	/* QEMU may not have exec'd yet when e2e_vm_start returns. */
	for (int t = 0; t < 100 && (qpid = pid_with_arg(qmp, d.pid)) <= 0; t++)
		usleep(50000);
	if (qpid <= 0)
		fprintf(stderr, "outputs: %s: cannot find QEMU's pid\n", tag);
	int started = 0;
	char addr[PATH_MAX + 24];

	snprintf(addr, sizeof(addr), "unix:%s", sock);
	for (; started < n; started++)
		if (!bridge_watch_start(&ws[started], addr, (uint32_t)(op->first + started),
					BENCH_BITRATE, false))
			break;
	if (started == n)
		r->ok = follow(vm, r, qpid, d.pid, module ? qmp : NULL, op);
	else
		fprintf(stderr, "outputs: %s: subscribing to scanout %d failed\n", tag,
			op->first + started);
	usleep(300000);
	for (int k = 0; k < started; k++)
		bridge_watch_stop(&ws[k]);
	tally(r, ws, started);
	for (int k = 0; k < started; k++)
		bridge_watch_free(&ws[k]);
	if (!r->ok)
		e2e_vm_dump_console(vm, 30);
	e2e_vm_wait_exit(vm, 60000);
	e2e_vm_free(vm);
	if (d.pid)
		e2e_daemon_stop(&d);
	return r->ok;
}

static void summary(const char *host, const struct result *rs, int nr)
{
	const struct result *base = NULL;

	for (int i = 0; i < nr; i++)
		if (rs[i].ok && (!base || rs[i].n < base->n))
			base = &rs[i];
	printf("\n%s: summary (CPU %% = QEMU + daemon, all threads; display = without QEMU's "
	       "vCPU threads)\n", host);
	printf("  N | AU/s small | AU/s full | lat p50/p99 small ms | lat p50/p99 full ms | "
	       "CPU%% small (display) | AU/s/core small all (display) | idle AU/s, CPU%% | "
	       "RSS after idle QEMU / daemon MiB | RSS/added desktop QEMU / daemon MiB | "
	       "stall CPU us max (baseline)\n");
	for (int i = 0; i < nr; i++) {
		const struct result *r = &rs[i];
		const struct phase *s = &r->ph[PH_SMALL], *id = &r->ph[PH_IDLE];
		double q = pct_of(s->q1.all_ms - s->q0.all_ms, s);
		double v = pct_of(s->q1.vcpu_ms - s->q0.vcpu_ms, s);
		double dm = pct_of(s->d1 - s->d0, s);
		double iq = pct_of(id->q1.all_ms - id->q0.all_ms, id) + pct_of(id->d1 - id->d0, id);
		double stall = NAN, floor_us = NAN, perq = NAN, perd = NAN;

		for (int p = 0; p < N_PH; p++) {
			if (!isnan(r->ph[p].stall_cpu_us) && (isnan(stall) || r->ph[p].stall_cpu_us > stall))
				stall = r->ph[p].stall_cpu_us;
			if (!isnan(r->ph[p].base_cpu_us) &&
			    (isnan(floor_us) || r->ph[p].base_cpu_us > floor_us))
				floor_us = r->ph[p].base_cpu_us;
		}
		if (base && r->ok && r->n > base->n) {
			perq = (double)(r->rss_qemu - base->rss_qemu) / 1024.0 / (r->n - base->n);
			if (r->rss_daemon > 0) /* no daemon on the module host */
				perd = (double)(r->rss_daemon - base->rss_daemon) / 1024.0 /
				       (r->n - base->n);
		}
		printf("%3d | %10.2f | %9.2f | %8.1f / %-8.1f | %8.1f / %-8.1f | %6.1f (%5.1f) | "
		       "%7.2f (%6.2f) | %5.2f, %5.1f | %7.1f / %-6.1f | %5.1f / %-5.1f | %s%.0f (%.0f)\n", r->n,
		       r->aus[PH_SMALL], r->aus[PH_FULL], r->p50[PH_SMALL], r->p99[PH_SMALL],
		       r->p50[PH_FULL], r->p99[PH_FULL], q + dm, q - v + dm,
		       r->aus[PH_SMALL] / ((q + dm) / 100), r->aus[PH_SMALL] / ((q - v + dm) / 100),
		       r->aus[PH_IDLE], iq, r->rss_qemu / 1024.0,
		       r->rss_daemon > 0 ? r->rss_daemon / 1024.0 : 0.0, perq, perd,
		       r->ok ? "" : "(incomplete) ", stall, floor_us);
	}
	printf("  deployed system: 3 desktops at 1080p, 10.1 AU/s at 460 %% CPU = %.2f AU/s per "
	       "core; goal >= 10x = %.1f AU/s per core on the typing workload\n",
	       DEPLOYED_AU_PER_CORE, 10 * DEPLOYED_AU_PER_CORE);
}

static void usage(void)
{
	fprintf(stderr, "usage: outputs [--host dbus|module|both] [--n 1,4,8,16] [--duration MS] "
			"[--fps N] [--idle MS] [--size WxH] [--first ID] "
			"[--gl egl-headless|helix]\n"
			"  --gl: the module with virtio-gpu-gl-pci (virgl) under that display\n");
}

int main(int argc, char **argv)
{
	struct opts op = { .host = "both", .ns = "1,4,8,16", .duration_ms = 20000, .fps = 10,
			   .idle_ms = 5000, .first = 0, .w = 1920, .h = 1080 };
	char *workdir, err[1024];
	struct e2e_guest g;
	struct e2e_qemu q;
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v) {
			usage();
			return 2;
		}
		if (!strcmp(a, "--host"))
			snprintf(op.host, sizeof(op.host), "%s", v);
		else if (!strcmp(a, "--n"))
			snprintf(op.ns, sizeof(op.ns), "%s", v);
		else if (!strcmp(a, "--duration"))
			op.duration_ms = atoi(v);
		else if (!strcmp(a, "--fps"))
			op.fps = atoi(v);
		else if (!strcmp(a, "--idle"))
			op.idle_ms = atoi(v);
		else if (!strcmp(a, "--first"))
			op.first = atoi(v);
		else if (!strcmp(a, "--gl"))
			snprintf(op.gl, sizeof(op.gl), "%s", v);
		else if (!strcmp(a, "--size")) {
			if (sscanf(v, "%ux%u", &op.w, &op.h) != 2) {
				usage();
				return 2;
			}
		} else {
			usage();
			return 2;
		}
		i++;
	}
	if (strcmp(op.host, "dbus") && strcmp(op.host, "module") && strcmp(op.host, "both")) {
		usage();
		return 2;
	}
	if (op.gl[0] && (strcmp(op.host, "module") ||
			 (strcmp(op.gl, "egl-headless") && strcmp(op.gl, "helix")))) {
		fprintf(stderr, "outputs: --gl egl-headless|helix goes with --host module\n");
		return 2;
	}
	if (op.duration_ms < 2000 || op.fps < 1 || op.fps > 240 || op.first < 0 ||
	    op.first >= MAX_N || op.idle_ms < 500) {
		fprintf(stderr, "outputs: --duration >= 2000, --fps 1..240, --idle >= 500, "
				"--first 0..15\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	workdir = tu_mkdtemp("hfe-bench-outputs");
	REQUIRE(workdir);
	if (e2e_guest_get(&g, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "outputs: guest: %s\n", err);
		return 1;
	}
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	double load[3] = { 0, 0, 0 };

	if (getloadavg(load, 3) < 0)
		load[0] = NAN;
	printf("outputs: N desktops at %ux%u, outputs %d..%d, idle %d ms, then %d ms typing 8x16 "
	       "per desktop per tick, %d ms full-screen page flips, %d ticks/s; %ld cores, "
	       "accel %s, load %.2f\n", op.w, op.h, op.first, op.first + MAX_N - 1, op.idle_ms,
	       op.duration_ms / 2, op.duration_ms / 2, op.fps, ncpu, e2e_accel(&g), load[0]);
	if (op.gl[0])
		printf("GPU: virtio-gpu-gl-pci (virgl) under -display %s\n", op.gl);

	for (int m = 0; m < 2; m++) {
		const char *host = m ? "module" : "dbus";
		struct result rs[MAX_N];
		char ns[64], *save = NULL;
		int nr = 0;

		if (strcmp(op.host, "both") && strcmp(op.host, host))
			continue;
		if (m) {
			struct e2e_guest gg = g;

			if (e2e_qemu_prepare(&q, &gg, workdir, err, sizeof(err)) < 0) {
				fprintf(stderr, "outputs: module: %s\n", err);
				rc = 1;
				continue;
			}
		}
		snprintf(ns, sizeof(ns), "%s", op.ns);
		for (char *s = strtok_r(ns, ",", &save); s && nr < MAX_N;
		     s = strtok_r(NULL, ",", &save)) {
			int n = atoi(s);

			if (n < 1 || op.first + n > MAX_N) {
				fprintf(stderr, "outputs: N=%s: outputs %d..%d do not fit 16\n", s,
					op.first, op.first + n - 1);
				rc = 2;
				continue;
			}
			uint64_t t0 = e2e_now_ns();
			bool ok = run_one(&g, &q, workdir, &op, m, n, &rs[nr]);

			print_result(host, &rs[nr], &op);
			printf("  (run took %.0f s)\n", (double)(e2e_now_ns() - t0) / 1e9);
			if (!ok)
				rc = 1;
			nr++;
		}
		summary(host, rs, nr);
	}
	if (rc || getenv("HFE_E2E_KEEP"))
		printf("outputs: kept %s\n", workdir);
	else
		tu_rm_rf(workdir);
	free(workdir);
	return rc;
}
