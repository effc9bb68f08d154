/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * OpenGL consoles through the QEMU module (issue 11's benchmark): kmscube in
 * the desktop guest (tests/e2e/build-desktop-image.sh; hfe.session=none, no
 * weston) spinning for --duration seconds on its output's preferred mode
 * (the GPU's xres/yres), under three configurations side by side:
 *
 *   2d            -device virtio-gpu-pci: kmscube renders in the guest with
 *                 Mesa's software rasterizer, the module gets 2D updates
 *   egl-headless  -device virtio-gpu-gl-pci -display egl-headless: virgl on
 *                 the host's GL; QEMU's display reads every frame back
 *   helix         -device virtio-gpu-gl-pci -display helix: the module's own
 *                 GL display reads back the damage, only while watched
 *
 * each once without a subscriber and once with the deployed desktop bridge
 * subscribed over TCP (bridge_watch.c: SUBSCRIBE + CONFIG_REQ at 4 Mbit/s).
 * The window is kmscube's steady state: from its first report line with
 * frames to its last (it reports every ~2 s, counted from its second frame).
 * Per run, in that window:
 *
 *   kmscube fps     kmscube's own frame rate (frames and seconds between the
 *                   two report lines): the guest's view
 *   AU/s            access units the bridge received per second
 *   lat p50/p99     AU arrival - its pts (the host time the damage reached
 *                   the module's stream): copy, encode, send; the GL
 *                   read-back happens before and is not in it
 *   QEMU CPU %      all threads (100 = one core), vCPU threads apart
 *   main ms/flush   QEMU's main-thread CPU per kmscube frame (each frame is
 *                   one page flip = one flush): virgl's command processing,
 *                   the display's read-back (egl-headless's, unmeasured by
 *                   the module) and the module's callbacks
 *   module us/flush the module's main-loop callbacks (stats: calls x mean of
 *                   each, wall clock, reset at the window's start) per kmscube
 *                   frame, the callback with the largest share, and the
 *                   longest callback in CPU time
 *
 * usage: gl-consoles [--sizes 1280x800,1920x1080] [--configs 2d,egl-headless,helix]
 *                    [--duration S] [--rounds R] [--no-idle] [--toggle S] [--hog PCT]
 *                    [--hog-mem]
 *                    [--max-fps N]   (the object's max-fps, default 60)
 * With --rounds R every run is repeated R times (the configurations
 * interleaved: the machine's load drifts) and the summary shows medians.
 * With --toggle S each configuration boots once and the bridge subscribes
 * and leaves every S seconds (unwatched first): watched and unwatched rates
 * come from the same boot, minutes apart at most, which is what measures the
 * cost on a shared machine whose load moves separate boots by up to 2x. It
 * also splits QEMU's CPU per phase by thread: vCPUs, main loop, llvmpipe's
 * rasterizer threads, the export's threads (libhfe's "hfe *" with x264's,
 * and helix-feeder), and counts the main thread's wake-ups (voluntary
 * context switches: each time its main loop slept).
 * With --toggle S --hog PCT nobody subscribes: the "watched" phases run a
 * CPU hog instead, PCT % of one core in two processes at the export's
 * priority (SCHED_BATCH, nice 10), busy in 20 ms periods: what the same CPU
 * taken at the same priority costs the guest without any export (the
 * control for the cost; its AU and module columns are then empty).
 * --hog-mem makes the hog copy through 32 MB (1 MB memcpy at a time) instead of
 * spinning: the same CPU with the memory traffic of a 1080p read-back and its
 * conversion, to tell CPU taken from caches and memory bandwidth taken.
 * Environment as for the e2e tests (HFE_QEMU_BUILD, HFE_BUILD_ROOT,
 * HFE_E2E_BUILD_DESKTOP; HFE_E2E_QEMU_DIR to skip build.sh).
 */
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bridge_watch.h"
#include "e2e_harness.h"
#include "e2e_qemu.h"
#include "test_util.h"

#define BITRATE 4000000u
#define DESKTOP_BUILD_TIMEOUT_S 1500
#define MAX_RUNS 256

struct opts {
	char sizes[128], configs[128];
	int duration_s, rounds;
	int toggle_s; /* > 0: one boot, the subscriber comes and goes every toggle_s */
	int hog_pct;  /* --toggle: a CPU hog instead of the subscriber */
	bool hog_mem; /* the hog copies memory instead of spinning */
	int max_fps;  /* the object's max-fps */
	bool idle;
};

struct result {
	char config[16];
	unsigned w, h;
	bool sub, ok;
	double fps, fps_all;    /* window; kmscube's whole run (its last line) */
	unsigned frames;        /* kmscube frames in the window */
	double secs;            /* window length (kmscube's clock) */
	double aus, p50, p99;   /* AU/s, latency ms */
	double cpu, vcpu, main_ms_flush;
	double module_us_flush, module_max_cpu_us, top_us_flush;
	char module_max_in[32], top[32]; /* top: the callback with the most time */
	char callbacks[512];    /* --toggle: each callback's calls x mean per watched frame */
	unsigned enc_w, enc_h;  /* the stream's size: the mode kmscube set */
	double updates_per_au;  /* the module's updates (GL: read-backs) per encoded frame */
	/* --toggle: [0] unwatched phases, [1] watched ones, in the same boot */
	struct phase {
		unsigned frames;   /* kmscube frames in report intervals inside the phase */
		double secs;       /* those intervals' length (kmscube's clock) */
		double wall_s;     /* host time in the phases */
		struct e2e_cpu cpu; /* summed over the phases */
		int n;             /* phases */
	} ph[2];
};

static const char STALL_RESET[] =
	"{\"execute\":\"qom-set\",\"arguments\":{\"path\":\"/objects/hfe0\","
	"\"property\":\"max-stall-us\",\"value\":0}}";

static void json_str(const char *json, const char *key, char *out, size_t len)
{
	char name[64];
	const char *p, *q;

	snprintf(name, sizeof(name), "\"%s\": \"", key);
	p = strstr(json, name);
	out[0] = '\0';
	if (!p)
		return;
	p += strlen(name);
	q = strchr(p, '"');
	if (q)
		snprintf(out, len, "%.*s", (int)(q - p), p);
}

/* The module's main-loop time in its stats: the sum of calls x mean-us over
 * the "callbacks" list (member order is not fixed: each object is read on
 * its own). With per_frame (the frames to divide by), each callback's calls
 * and time per frame go into list. */
static double module_us(const char *stats, char *top, size_t toplen, double *top_us,
			double per_frame, char *list, size_t listlen)
{
	const char *p = strstr(stats, "\"callbacks\"");
	const char *end = p ? strchr(p, ']') : NULL;
	double total = 0;

	*top_us = 0;
	top[0] = '\0';

	while (p && end && (p = strchr(p, '{')) && p < end) {
		const char *q = strchr(p, '}');
		char obj[512];

		if (!q || q - p >= (long)sizeof(obj))
			break;
		snprintf(obj, sizeof(obj), "%.*s", (int)(q - p + 1), p);
		double us = e2e_qemu_json_num(obj, "calls", 0) * e2e_qemu_json_num(obj, "mean-us", 0);

		total += us;
		if (per_frame > 0 && us > 0) {
			char name[32];
			size_t at = strlen(list);

			json_str(obj, "name", name, sizeof(name));
			snprintf(list + at, listlen - at, " %s %.2f x %.1f us,", name,
				 e2e_qemu_json_num(obj, "calls", 0) / per_frame,
				 e2e_qemu_json_num(obj, "mean-us", 0));
		}
		if (us > *top_us) { /* the callback that takes most of it */
			*top_us = us;
			json_str(obj, "name", top, toplen);
		}
		p = q;
	}
	return total;
}

/* Boot the guest with kmscube spinning for op->duration_s under r's config and
 * size; addr: the object's address. NULL (said on stderr) if QEMU did not start. */
static struct e2e_vm *kmscube_boot(const struct e2e_qemu *q, const struct e2e_guest *d,
				   const char *workdir, const struct opts *op,
				   const struct result *r, const char *name, char *addr,
				   size_t addrlen)
{
	char append[256], err[1024], object_opts[32];

	/* kmscube stops at SIGTERM without a last line: its reports are enough. */
	snprintf(append, sizeof(append),
		 "hfe.session=none hfe.run=\"timeout %d kmscube\" hfe.poweroff=1",
		 op->duration_s + 6);
	snprintf(object_opts, sizeof(object_opts), "max-fps=%d", op->max_fps);
	struct e2e_desktop_run run = {
		.display = strcmp(r->config, "2d") ? r->config : NULL, .width = r->w,
		.height = r->h, .append = append, .object_opts = object_opts,
		.timeout_ms = (op->duration_s + 240) * 1000,
	};
	struct e2e_vm *vm = e2e_desktop_vm_start(q, d, workdir, name, &run, addr, addrlen, err,
						 sizeof(err));

	if (!vm)
		fprintf(stderr, "gl-consoles: %s: cannot start QEMU: %s\n", name, err);
	return vm;
}

/* Wait for the guest to start kmscube; false (with its console) if it did not. */
static bool kmscube_started(struct e2e_vm *vm, const char *name)
{
	char line[256];

	if (e2e_vm_wait_line(vm, "run start", line, sizeof(line), 180000) == 1)
		return true;
	fprintf(stderr, "gl-consoles: %s: kmscube did not start\n", name);
	e2e_vm_dump_console(vm, 30);
	return false;
}

/* One boot: kmscube for op->duration_s seconds under cfg at w x h. */
/* One configuration at one size, watched (sub) or not: what a run fills in. */
static struct result *new_result(struct result *r, const char *config, unsigned w, unsigned h,
				 bool sub)
{
	snprintf(r->config, sizeof(r->config), "%s", config);
	r->w = w;
	r->h = h;
	r->sub = sub;
	return r;
}

static void run_one(const struct e2e_qemu *q, const struct e2e_guest *d, const char *workdir,
		    const struct opts *op, struct result *r)
{
	char name[64], addr[64], err[1024], line[256], reply[256];
	static char stats[1 << 16];
	struct bridge_watch w;
	bool watching = false;
	unsigned fr, fr_a = 0, fr_b = 0;
	double s, fps, s_a = 0, s_b = 0;
	uint64_t t_a = 0, t_b = 0;
	struct e2e_cpu c_a = { 0 }, c_b = { 0 };
	int seen = 0, n;

	snprintf(name, sizeof(name), "%s-%ux%u-%s", r->config, r->w, r->h, r->sub ? "sub" : "idle");
	r->aus = r->p50 = r->p99 = NAN; /* no subscriber: nothing to count */
	struct e2e_vm *vm = kmscube_boot(q, d, workdir, op, r, name, addr, sizeof(addr));

	if (!vm)
		return;
	if (r->sub) {
		watching = bridge_watch_start(&w, addr, 0, BITRATE, false);
		if (!watching)
			fprintf(stderr, "gl-consoles: %s: the bridge could not subscribe\n", name);
	}
	if (!kmscube_started(vm, name))
		goto out;
	/* Follow kmscube's report lines; the window runs from the first with
	 * frames to the last. */
	while (e2e_vm_wait_line(vm, "run exit", line, sizeof(line), 100) == 0) {
		n = e2e_kmscube_fps(vm, &fr, &s, &fps);
		if (n <= seen || fr == 0)
			continue;
		seen = n;
		if (!t_a) {
			t_a = e2e_now_ns();
			c_a = e2e_proc_cpu(e2e_vm_pid(vm));
			e2e_qmp(e2e_vm_qmp_path(vm), STALL_RESET, reply, sizeof(reply), 5000, err,
				sizeof(err));
			fr_a = fr;
			s_a = s;
			continue;
		}
		t_b = e2e_now_ns();
		c_b = e2e_proc_cpu(e2e_vm_pid(vm));
		if (e2e_qemu_qom_get(e2e_vm_qmp_path(vm), "/objects/hfe0", "stats", stats,
				     sizeof(stats), err, sizeof(err)) < 0)
			stats[0] = '\0';
		fr_b = fr;
		s_b = s;
		r->fps_all = fps;
	}
	if (!t_b || fr_b <= fr_a) {
		fprintf(stderr, "gl-consoles: %s: fewer than two kmscube reports with frames\n", name);
		e2e_vm_dump_console(vm, 30);
		goto out;
	}
	r->frames = fr_b - fr_a;
	r->secs = s_b - s_a;
	r->fps = r->frames / r->secs;
	double wall_s = (double)(t_b - t_a) / 1e9;

	r->cpu = (c_b.all_ms - c_a.all_ms) / 10.0 / wall_s;
	r->vcpu = (c_b.vcpu_ms - c_a.vcpu_ms) / 10.0 / wall_s;
	r->main_ms_flush = (c_b.main_ms - c_a.main_ms) / r->frames;
	r->module_us_flush = module_us(stats, r->top, sizeof(r->top), &r->top_us_flush, 0, NULL, 0) /
			     r->frames;
	r->top_us_flush /= r->frames;
	r->module_max_cpu_us = e2e_qemu_json_num(stats, "max-stall-cpu-us", NAN);
	json_str(stats, "max-stall-cpu-in", r->module_max_in, sizeof(r->module_max_in));
	r->enc_w = (unsigned)e2e_qemu_json_num(stats, "width", 0);
	r->enc_h = (unsigned)e2e_qemu_json_num(stats, "height", 0);
	r->ok = true;
	if (watching) {
		double *lat;
		size_t k = 0;

		bridge_watch_stop(&w);
		lat = malloc((w.n + 1) * sizeof(*lat));
		REQUIRE(lat);
		for (size_t i = 0; i < w.n; i++)
			if (w.aus[i].t_ns >= t_a && w.aus[i].t_ns <= t_b)
				lat[k++] = ((double)w.aus[i].t_ns - (double)w.aus[i].pts) / 1e6;
		r->aus = k / wall_s;
		r->p50 = e2e_pctl(lat, k, 0.5);
		r->p99 = e2e_pctl(lat, k, 0.99);
		free(lat);
		if (w.failed || w.others)
			fprintf(stderr, "gl-consoles: %s: the bridge's stream broke (failed %d, %u "
				"other messages)\n", name, w.failed, w.others);
	}
out:
	if (watching)
		bridge_watch_free(&w);
	e2e_vm_wait_exit(vm, 60000);
	e2e_vm_free(vm);
}

/* b - a, field by field. */
static void cpu_add_delta(struct e2e_cpu *sum, const struct e2e_cpu *a, const struct e2e_cpu *b)
{
	struct e2e_cpu d = e2e_cpu_delta(a, b);

	sum->all_ms += d.all_ms;
	sum->vcpu_ms += d.vcpu_ms;
	sum->main_ms += d.main_ms;
	sum->export_ms += d.export_ms;
	sum->gl_ms += d.gl_ms;
	sum->main_wakes += d.main_wakes;
}

/* --hog: two processes busy pct/2 % of each 20 ms at background priority,
 * spinning or (mem) copying 1 MB at a time through 32 MB. */
static void hog_start(pid_t kids[2], int pct, bool mem)
{
	enum { HOG_BUF = 32 << 20, HOG_CHUNK = 1 << 20 };
	for (int i = 0; i < 2; i++) {
		kids[i] = fork();
		REQUIRE(kids[i] >= 0);
		if (kids[i])
			continue;
		struct sched_param sp = { 0 };
		uint64_t busy_ns = (uint64_t)pct * 100000u; /* pct/2 % of 20 ms */

		uint8_t *buf = mem ? malloc(HOG_BUF) : NULL;
		size_t at = 0;

		REQUIRE(!mem || buf);
		if (buf)
			memset(buf, 1, HOG_BUF);
		sched_setscheduler(0, SCHED_BATCH, &sp);
		setpriority(PRIO_PROCESS, 0, 10);
		for (;;) {
			uint64_t t0 = e2e_now_ns();

			while (e2e_now_ns() - t0 < busy_ns) {
				if (!buf)
					continue;
				memcpy(buf + (at + HOG_BUF / 2) % HOG_BUF, buf + at, HOG_CHUNK);
				at = (at + HOG_CHUNK) % HOG_BUF;
			}
			usleep((useconds_t)((20000000u - busy_ns) / 1000u));
		}
	}
}

static void hog_stop(pid_t kids[2])
{
	for (int i = 0; i < 2; i++) {
		kill(kids[i], SIGKILL);
		waitpid(kids[i], NULL, 0);
	}
}

/*
 * --toggle: one boot, kmscube spinning for --duration s, the bridge subscribed
 * for every other toggle_s s (unwatched first). Each of kmscube's report
 * intervals that lies inside one phase counts for that phase's rate (those
 * across a switch count for neither). The load of the other sessions on this
 * machine drifts on the scale of tens of seconds, separate boots differ by
 * up to 2x: alternating within one boot compares like with like.
 */
static void run_toggle(const struct e2e_qemu *q, const struct e2e_guest *d, const char *workdir,
		       const struct opts *op, struct result *r)
{
	char name[64], addr[64], err[1024], line[256], reply[256];
	static char stats[1 << 16];
	struct bridge_watch w = { 0 };
	pid_t hog[2];
	bool on = false, started = false, have_stats = false;
	unsigned fr, prev_fr = 0;
	double s, fps, prev_s = 0, *lat = NULL;
	size_t n_lat = 0, cap_lat = 0, n_aus = 0;
	uint64_t t_switch = 0, t_prev = 0;
	struct e2e_cpu c_switch = { 0 };
	int seen = 0, n;

	snprintf(name, sizeof(name), "%s-%ux%u-toggle", r->config, r->w, r->h);
	struct e2e_vm *vm = kmscube_boot(q, d, workdir, op, r, name, addr, sizeof(addr));

	if (!vm)
		return;
	if (!kmscube_started(vm, name))
		goto out;
	while (e2e_vm_wait_line(vm, "run exit", line, sizeof(line), 100) == 0) {
		uint64_t now = e2e_now_ns();

		if (started && now - t_switch >= (uint64_t)op->toggle_s * 1000000000u) {
			struct e2e_cpu c = e2e_proc_cpu(e2e_vm_pid(vm));

			/* Before the subscriber leaves: its threads' time is still there. */
			cpu_add_delta(&r->ph[on].cpu, &c_switch, &c);
			r->ph[on].wall_s += (double)(now - t_switch) / 1e9;
			r->ph[on].n++;
			/* The guest may power off before the read at the end: the
			 * last phase's unwatched callbacks are then missing. */
			if (on && e2e_qemu_qom_get(e2e_vm_qmp_path(vm), "/objects/hfe0", "stats",
						   stats, sizeof(stats), err, sizeof(err)) == 0)
				have_stats = true;
			if (on && op->hog_pct) {
				hog_stop(hog);
				on = false;
			} else if (!on && op->hog_pct) {
				hog_start(hog, op->hog_pct, op->hog_mem);
				on = true;
			} else if (on) {
				bridge_watch_stop(&w);
				for (size_t i = 0; i < w.n; i++) {
					if (n_lat == cap_lat) {
						cap_lat = cap_lat ? 2 * cap_lat : 256;
						lat = realloc(lat, cap_lat * sizeof(*lat));
						REQUIRE(lat);
					}
					lat[n_lat++] = ((double)w.aus[i].t_ns - (double)w.aus[i].pts) / 1e6;
				}
				n_aus += w.n;
				if (w.failed || w.others)
					fprintf(stderr, "gl-consoles: %s: the bridge's stream broke "
						"(failed %d, %u other messages)\n", name, w.failed,
						w.others);
				bridge_watch_free(&w);
				on = false;
			} else if (bridge_watch_start(&w, addr, 0, BITRATE, false)) {
				on = true;
			} else {
				fprintf(stderr, "gl-consoles: %s: the bridge could not subscribe\n", name);
			}
			t_switch = e2e_now_ns();
			c_switch = e2e_proc_cpu(e2e_vm_pid(vm));
		}
		n = e2e_kmscube_fps(vm, &fr, &s, &fps);
		if (n <= seen || fr == 0)
			continue;
		seen = n;
		if (!started) {
			started = true;
			t_switch = now;
			c_switch = e2e_proc_cpu(e2e_vm_pid(vm));
			e2e_qmp(e2e_vm_qmp_path(vm), STALL_RESET, reply, sizeof(reply), 5000, err,
				sizeof(err));
		} else if (t_prev >= t_switch) {
			r->ph[on].frames += fr - prev_fr;
			r->ph[on].secs += s - prev_s;
		}
		prev_fr = fr;
		prev_s = s;
		t_prev = now;
	}
	if (on && op->hog_pct) {
		hog_stop(hog);
	} else if (on) { /* kmscube ended inside a watched phase: its time is not counted */
		bridge_watch_stop(&w);
		bridge_watch_free(&w);
	}
	if (!r->ph[0].frames || !r->ph[1].frames || !r->ph[0].wall_s || !r->ph[1].wall_s) {
		fprintf(stderr, "gl-consoles: %s: no whole report interval in %s phases (longer "
			"--duration or --toggle)\n", name, r->ph[0].frames ? "watched" : "unwatched");
		goto out;
	}
	if (e2e_qemu_qom_get(e2e_vm_qmp_path(vm), "/objects/hfe0", "stats", stats, sizeof(stats),
			     err, sizeof(err)) < 0 && !have_stats)
		stats[0] = '\0';
	r->fps = r->ph[1].frames / r->ph[1].secs;
	r->fps_all = r->ph[0].frames / r->ph[0].secs; /* the unwatched rate */
	r->frames = r->ph[0].frames + r->ph[1].frames;
	r->aus = n_aus / r->ph[1].wall_s;
	r->p50 = e2e_pctl(lat, n_lat, 0.5);
	r->p99 = e2e_pctl(lat, n_lat, 0.99);
	r->cpu = r->ph[1].cpu.all_ms / 10.0 / r->ph[1].wall_s;
	r->vcpu = r->ph[1].cpu.vcpu_ms / 10.0 / r->ph[1].wall_s;
	/* Per kmscube frame of each phase: frames per host second x wall. */
	r->main_ms_flush = r->ph[1].cpu.main_ms / (r->fps * r->ph[1].wall_s);
	r->callbacks[0] = '\0';
	r->module_us_flush = module_us(stats, r->top, sizeof(r->top), &r->top_us_flush,
				       r->fps * r->ph[1].wall_s, r->callbacks, sizeof(r->callbacks)) /
			     (r->fps * r->ph[1].wall_s);
	r->top_us_flush /= r->fps * r->ph[1].wall_s;
	r->module_max_cpu_us = e2e_qemu_json_num(stats, "max-stall-cpu-us", NAN);
	json_str(stats, "max-stall-cpu-in", r->module_max_in, sizeof(r->module_max_in));
	r->enc_w = (unsigned)e2e_qemu_json_num(stats, "width", 0);
	r->enc_h = (unsigned)e2e_qemu_json_num(stats, "height", 0);
	/* Whole boot: updates (read-backs under helix) and frames happen only watched. */
	r->updates_per_au = e2e_qemu_json_num(stats, "updates", NAN) /
			    e2e_qemu_json_num(stats, "frames", NAN);
	r->ok = true;
out:
	free(lat);
	e2e_vm_wait_exit(vm, 60000);
	e2e_vm_free(vm);
}

/* One phase's CPU, % of one core: vCPUs, main loop, llvmpipe, the export, the rest. */
static void print_phase(const char *what, const struct result *r, int i)
{
	const struct phase *p = &r->ph[i];
	double k = 10.0 * p->wall_s;

	printf("  %-9s %2d phases: kmscube %6.1f fps | QEMU CPU %5.1f %% = vCPU %5.1f + main "
	       "%5.1f + llvmpipe %5.1f + export %5.1f + other %5.1f | main %5.2f ms/frame, "
	       "woken %4.0f /s\n",
	       what, p->n, p->frames / p->secs, p->cpu.all_ms / k, p->cpu.vcpu_ms / k,
	       p->cpu.main_ms / k, p->cpu.gl_ms / k, p->cpu.export_ms / k,
	       (p->cpu.all_ms - p->cpu.vcpu_ms - p->cpu.main_ms - p->cpu.gl_ms -
		p->cpu.export_ms) / k,
	       p->cpu.main_ms / (p->frames / p->secs * p->wall_s), p->cpu.main_wakes / p->wall_s);
}

static void print_toggle(const struct result *r)
{
	printf("%-9s %-12s toggle kmscube %6.1f fps unwatched, %6.1f watched: cost %5.1f %% | "
	       "AU/s %5.1f (%.2f updates per AU) | lat p50 %6.1f p99 %6.1f ms | module %6.1f "
	       "us/flush (%s %.1f), longest %5.0f us CPU (%s) | stream %ux%u\n",
	       "", r->config, r->fps_all, r->fps, 100.0 * (1.0 - r->fps / r->fps_all), r->aus,
	       r->updates_per_au, r->p50, r->p99, r->module_us_flush, r->top, r->top_us_flush, r->module_max_cpu_us,
	       r->module_max_in, r->enc_w, r->enc_h);
	print_phase("unwatched", r, 0);
	print_phase("watched", r, 1);
	printf("  module callbacks per watched kmscube frame (whole boot):%s\n", r->callbacks);
}

static void print_run(const struct result *r)
{
	printf("%-9s %-12s %-5s kmscube %6.1f fps (whole run %6.1f) | AU/s %5.1f | lat p50 %6.1f "
	       "p99 %6.1f ms | QEMU CPU %5.1f %% (vCPU %5.1f, other %5.1f) | main %6.2f ms/flush | "
	       "module %6.1f us/flush (%s %.1f), longest %5.0f us CPU (%s) | stream %ux%u\n",
	       "", r->config, r->sub ? "sub" : "idle", r->fps, r->fps_all, r->aus,
	       r->p50, r->p99, r->cpu, r->vcpu, r->cpu - r->vcpu, r->main_ms_flush,
	       r->module_us_flush, r->top, r->top_us_flush, r->module_max_cpu_us, r->module_max_in,
	       r->enc_w, r->enc_h);
}

/* The median of one figure over the rounds of (config, w, sub); NAN if none. */
static double med(const struct result *rs, int n, const char *config, unsigned w, bool sub,
		  size_t off)
{
	double v[MAX_RUNS];
	size_t k = 0;

	for (int i = 0; i < n; i++)
		if (rs[i].ok && rs[i].w == w && rs[i].sub == sub && !strcmp(rs[i].config, config))
			v[k++] = *(const double *)((const char *)&rs[i] + off);
	return e2e_pctl(v, k, 0.5);
}

#define MED(config, w, sub, field) med(rs, n, config, w, sub, offsetof(struct result, field))

static void summary(const struct result *rs, int n, const struct opts *op)
{
	printf("\nsummary, medians of %d round(s) (goals: exporting costs kmscube < 10 %% of its "
	       "frame rate; the module's GL path < 1 ms of main loop per flush at 1080p)\n",
	       op->rounds);
	printf("size       config       | fps idle | fps sub | cost   | AU/s  | lat p50/p99 ms  | "
	       "CPU %% sub (idle) | main ms/flush sub (idle) | module us/flush | longest cb us "
	       "CPU\n");
	for (int i = 0; i < n; i++) {
		const struct result *s = &rs[i];
		bool first = true;

		/* Once per (size, config): at its first subscribed run. */
		for (int j = 0; j < i; j++)
			if (rs[j].sub && rs[j].w == s->w && !strcmp(rs[j].config, s->config))
				first = false;
		if (!s->sub || !first)
			continue;
		double idle = MED(s->config, s->w, false, fps), sub = MED(s->config, s->w, true, fps);
		double longest = 0;

		for (int j = 0; j < n; j++)
			if (rs[j].ok && rs[j].sub && rs[j].w == s->w &&
			    !strcmp(rs[j].config, s->config) && rs[j].module_max_cpu_us > longest)
				longest = rs[j].module_max_cpu_us;
		printf("%4ux%-5u %-12s | %8.1f | %7.1f | %5.1f%% | %5.1f | %6.1f / %-6.1f | "
		       "%6.1f (%6.1f)   | %6.2f (%6.2f)          | %8.1f        | %5.0f\n",
		       s->w, s->h, s->config, idle, sub, 100.0 * (1.0 - sub / idle),
		       MED(s->config, s->w, true, aus), MED(s->config, s->w, true, p50),
		       MED(s->config, s->w, true, p99), MED(s->config, s->w, true, cpu),
		       MED(s->config, s->w, false, cpu), MED(s->config, s->w, true, main_ms_flush),
		       MED(s->config, s->w, false, main_ms_flush),
		       MED(s->config, s->w, true, module_us_flush), longest);
	}
}

/* The median of a phase's figure over the rounds of (config, w); % of a core
 * unless it is fps. */
enum phase_fig { PH_FPS, PH_VCPU, PH_MAIN, PH_GL, PH_EXPORT, PH_MAIN_MS };

static double ph_fig(const struct phase *p, enum phase_fig f)
{
	double k = 10.0 * p->wall_s, fps = p->frames / p->secs;

	switch (f) {
	case PH_FPS: return fps;
	case PH_VCPU: return p->cpu.vcpu_ms / k;
	case PH_MAIN: return p->cpu.main_ms / k;
	case PH_GL: return p->cpu.gl_ms / k;
	case PH_EXPORT: return p->cpu.export_ms / k;
	case PH_MAIN_MS: return p->cpu.main_ms / (fps * p->wall_s);
	}
	return NAN;
}

static double ph_med(const struct result *rs, int n, const char *config, unsigned w, int i,
		     enum phase_fig f)
{
	double v[MAX_RUNS];
	size_t k = 0;

	for (int j = 0; j < n; j++)
		if (rs[j].ok && rs[j].w == w && !strcmp(rs[j].config, config))
			v[k++] = f == PH_FPS && i < 0 ? 100.0 * (1.0 - ph_fig(&rs[j].ph[1], f) /
								   ph_fig(&rs[j].ph[0], f))
						      : ph_fig(&rs[j].ph[i], f);
	return e2e_pctl(v, k, 0.5);
}

static void summary_toggle(const struct result *rs, int n, const struct opts *op)
{
	printf("\nsummary (--toggle %d), medians of %d round(s); cost = the median of each "
	       "boot's 1 - watched/unwatched (goal < 10 %%); CPU in %% of one core, "
	       "unwatched -> watched\n", op->toggle_s, op->rounds);
	printf("size       config       | fps unw | fps w  | cost   | AU/s  | lat p50/p99 ms  | "
	       "vCPU          | main        | llvmpipe    | export      | main ms/frame\n");
	for (int i = 0; i < n; i++) {
		const struct result *r = &rs[i];
		bool first = true;

		for (int j = 0; j < i; j++)
			if (rs[j].w == r->w && !strcmp(rs[j].config, r->config))
				first = false;
		if (!first)
			continue;
#define PM(ph, f) ph_med(rs, n, r->config, r->w, ph, f)
		printf("%4ux%-5u %-12s | %7.1f | %6.1f | %5.1f%% | %5.1f | %6.1f / %-6.1f | "
		       "%5.1f -> %5.1f | %4.1f -> %4.1f | %4.1f -> %4.1f | %4.1f -> %4.1f | "
		       "%4.2f -> %4.2f\n",
		       r->w, r->h, r->config, PM(0, PH_FPS), PM(1, PH_FPS), PM(-1, PH_FPS),
		       MED(r->config, r->w, true, aus), MED(r->config, r->w, true, p50),
		       MED(r->config, r->w, true, p99), PM(0, PH_VCPU), PM(1, PH_VCPU),
		       PM(0, PH_MAIN), PM(1, PH_MAIN), PM(0, PH_GL), PM(1, PH_GL),
		       PM(0, PH_EXPORT), PM(1, PH_EXPORT), PM(0, PH_MAIN_MS), PM(1, PH_MAIN_MS));
#undef PM
	}
}

int main(int argc, char **argv)
{
	struct opts op = { .sizes = "1280x800,1920x1080", .configs = "2d,egl-headless,helix",
			   .duration_s = 12, .rounds = 1, .idle = true, .max_fps = 60 };
	struct result *rs = calloc(MAX_RUNS, sizeof(*rs));
	char *workdir, err[1024], log[PATH_MAX + 32], sizes[128], *ss = NULL;
	struct e2e_guest d;
	struct e2e_qemu q;
	int n = 0, rc = 0;

	REQUIRE(rs);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--no-idle")) {
			op.idle = false;
			continue;
		}
		if (!strcmp(a, "--hog-mem")) {
			op.hog_mem = true;
			continue;
		}
		if (!strcmp(a, "--sizes") && v)
			snprintf(op.sizes, sizeof(op.sizes), "%s", v);
		else if (!strcmp(a, "--configs") && v)
			snprintf(op.configs, sizeof(op.configs), "%s", v);
		else if (!strcmp(a, "--duration") && v)
			op.duration_s = atoi(v);
		else if (!strcmp(a, "--rounds") && v)
			op.rounds = atoi(v);
		else if (!strcmp(a, "--toggle") && v)
			op.toggle_s = atoi(v);
		else if (!strcmp(a, "--hog") && v)
			op.hog_pct = atoi(v);
		else if (!strcmp(a, "--max-fps") && v)
			op.max_fps = atoi(v);
		else {
			fprintf(stderr, "usage: gl-consoles [--sizes WxH,...] [--configs "
				"2d,egl-headless,helix] [--duration S] [--rounds R] [--no-idle] "
				"[--toggle S] [--hog PCT [--hog-mem]] [--max-fps N]\n");
			return 2;
		}
		i++;
	}
	if (op.duration_s < 5 || op.rounds < 1 || op.toggle_s < 0 ||
	    (op.toggle_s && op.duration_s < 4 * op.toggle_s) || op.hog_pct < 0 ||
	    op.hog_pct > 200 || (op.hog_pct && !op.toggle_s) || (op.hog_mem && !op.hog_pct) ||
	    op.max_fps < 1 || op.max_fps > 240) {
		fprintf(stderr, "gl-consoles: --duration >= 5, --rounds >= 1, --duration >= 4 x "
			"--toggle, --hog 0..200 with --toggle, --hog-mem with --hog, "
			"--max-fps 1..240\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	workdir = tu_mkdtemp("hfe-bench-gl");
	REQUIRE(workdir);
	snprintf(log, sizeof(log), "%s/qemu-build.log", workdir);
	if (e2e_qemu_get(&q, log, err, sizeof(err)) < 0) {
		fprintf(stderr, "gl-consoles: patched QEMU: %s\n", err);
		return 1;
	}
	snprintf(log, sizeof(log), "%s/build-desktop.log", workdir);
	if (e2e_desktop_get(&d, log, DESKTOP_BUILD_TIMEOUT_S, err, sizeof(err)) < 0) {
		fprintf(stderr, "gl-consoles: desktop guest: %s\n", err);
		return 1;
	}
	double load[3] = { NAN, NAN, NAN };

	getloadavg(load, 3);
	printf("gl-consoles: kmscube %d s per run on the desktop guest %s, TCG, -smp 2, %ld host "
	       "cores, load %.2f; QEMU %s\n", op.duration_s, d.dir,
	       sysconf(_SC_NPROCESSORS_ONLN), load[0], q.bin);
	snprintf(sizes, sizeof(sizes), "%s", op.sizes);
	for (char *sz = strtok_r(sizes, ",", &ss); sz; sz = strtok_r(NULL, ",", &ss)) {
		unsigned w, h;

		if (sscanf(sz, "%ux%u", &w, &h) != 2 || w < 64 || h < 64) {
			fprintf(stderr, "gl-consoles: bad size %s\n", sz);
			rc = 2;
			continue;
		}
		/* Rounds interleave the configurations: the machine's load drifts. */
		for (int round = 0; round < op.rounds; round++) {
			char configs[128], *cs = NULL;

			printf("%ux%u, round %d:\n", w, h, round + 1);
			snprintf(configs, sizeof(configs), "%s", op.configs);
			for (char *c = strtok_r(configs, ",", &cs); c; c = strtok_r(NULL, ",", &cs)) {
				if (strcmp(c, "2d") && strcmp(c, "egl-headless") && strcmp(c, "helix")) {
					fprintf(stderr, "gl-consoles: unknown config %s\n", c);
					rc = 2;
					continue;
				}
				if (op.toggle_s && n < MAX_RUNS) {
					struct result *r = new_result(&rs[n++], c, w, h, true);
					run_toggle(&q, &d, workdir, &op, r);
					if (r->ok)
						print_toggle(r);
					else
						rc = 1;
					continue;
				}
				for (int sub = op.idle ? 0 : 1; sub <= 1 && n < MAX_RUNS; sub++) {
					struct result *r = new_result(&rs[n++], c, w, h, sub);
					run_one(&q, &d, workdir, &op, r);
					if (r->ok)
						print_run(r);
					else
						rc = 1;
				}
			}
		}
	}
	if (op.toggle_s)
		summary_toggle(rs, n, &op);
	else
		summary(rs, n, &op);
	if (rc || getenv("HFE_E2E_KEEP"))
		printf("gl-consoles: kept %s\n", workdir);
	else
		tu_rm_rf(workdir);
	free(workdir);
	free(rs);
	return rc;
}
