/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The patched QEMU for the end-to-end tests: see e2e_qemu.h. */
#include "e2e_qemu.h"
#include "raw_peer.h"
#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <signal.h>
#include <unistd.h>

static void set_err(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

/* Run build.sh; its last stdout line is the build directory. */
static int run_build(const char *script, const char *hfe_build, const char *log_path, char *dir,
		     size_t dirlen, char *err, size_t errlen)
{
	const char *const args[] = { "--hfe-build", hfe_build, NULL };

	return e2e_run_dir_script(script, args, log_path, 0, dir, dirlen, err, errlen);
}

int e2e_qemu_get(struct e2e_qemu *q, const char *log_path, char *err, size_t errlen)
{
	const char *prebuilt = getenv("HFE_E2E_QEMU_DIR");
	const char *script = getenv("HFE_QEMU_BUILD");
	const char *root = getenv("HFE_BUILD_ROOT");
	uint64_t t0 = e2e_now_ns();
	struct stat st;
	char so[PATH_MAX + 32];

	memset(q, 0, sizeof(*q));
	if (!root || !*root) {
		set_err(err, errlen, "HFE_BUILD_ROOT is not set (run through meson test, or see "
			"qemu/README.md)");
		return -1;
	}
	snprintf(q->libdir, sizeof(q->libdir), "%s/lib", root);
	snprintf(so, sizeof(so), "%s/libhfe.so", q->libdir);
	if (stat(so, &st) < 0) {
		set_err(err, errlen, "no %s: build the project first", so);
		return -1;
	}
	if (prebuilt && *prebuilt) {
		snprintf(q->dir, sizeof(q->dir), "%s", prebuilt);
	} else {
		if (!script || !*script) {
			set_err(err, errlen, "HFE_QEMU_BUILD is not set (run through meson test, "
				"or see qemu/README.md)");
			return -1;
		}
		if (run_build(script, root, log_path, q->dir, sizeof(q->dir), err, errlen) < 0)
			return -1;
	}
	q->build_ms = (double)(e2e_now_ns() - t0) / 1e6;
	snprintf(q->bin, sizeof(q->bin), "%s/bin/qemu-system-%s", q->dir, e2e_arch());
	if (access(q->bin, X_OK) < 0) {
		set_err(err, errlen, "%s is missing: %s", q->bin, strerror(errno));
		return -1;
	}
	/* Inherited by every QEMU started from now on. */
	setenv("LD_LIBRARY_PATH", q->libdir, 1);
	return 0;
}

int e2e_qemu_prepare(struct e2e_qemu *q, struct e2e_guest *g, const char *workdir, char *err,
		     size_t errlen)
{
	char log[PATH_MAX + 32], why[1024];

	snprintf(log, sizeof(log), "%s/qemu-build.log", workdir);
	if (e2e_qemu_get(q, log, why, sizeof(why)) < 0) {
		set_err(err, errlen, "cannot build the patched QEMU: %s", why);
		return -1;
	}
	printf("patched QEMU: %s (build.sh took %.1f s)\n", q->bin, q->build_ms / 1000);
	snprintf(log, sizeof(log), "%s/build-guest.log", workdir);
	if (e2e_guest_get(g, log, why, sizeof(why)) < 0) {
		set_err(err, errlen, "cannot get the test guest: %s", why);
		return -1;
	}
	return 0;
}

#define MAX_EXTRA_ARGS 64

struct e2e_vm *e2e_qemu_vm_start(const struct e2e_qemu *q, const struct e2e_guest *g,
				 const char *workdir, const char *name, const char *object_opts,
				 const struct e2e_vm_config *cfg, char *sock, size_t socklen,
				 char *err, size_t errlen)
{
	static const char *const firmware[] = { E2E_QEMU_FIRMWARE_ARGS };
	struct sockaddr_un sa;
	char path[PATH_MAX + 32], object[PATH_MAX + 512];
	const char *extra[MAX_EXTRA_ARGS + 1];
	struct e2e_vm_config c = *cfg;
	struct e2e_vm *vm;
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/%s-hfe.sock", workdir, name);
	if (strlen(path) >= sizeof(sa.sun_path)) {
		set_err(err, errlen, "socket path %s is too long for a unix socket", path);
		return NULL;
	}
	snprintf(object, sizeof(object), "helix-frame-export,id=hfe0,listen=unix:%s%s%s", path,
		 object_opts && *object_opts ? "," : "", object_opts ? object_opts : "");
	for (size_t i = 0; i < sizeof(firmware) / sizeof(firmware[0]); i++)
		extra[n++] = firmware[i];
	extra[n++] = "-object";
	extra[n++] = object;
	extra[n++] = "-sandbox";
	extra[n++] = E2E_QEMU_SANDBOX;
	for (size_t i = 0; cfg->extra_args && cfg->extra_args[i]; i++) {
		if (n >= MAX_EXTRA_ARGS) {
			set_err(err, errlen, "too many extra QEMU arguments");
			return NULL;
		}
		extra[n++] = cfg->extra_args[i];
	}
	extra[n] = NULL;
	c.qemu = q->bin;
	c.hfe_sock = path;
	c.extra_args = extra;
	e2e_qemu_env_begin();
	vm = e2e_vm_start(g, workdir, name, &c, err, errlen);
	e2e_qemu_env_end();
	if (vm && sock)
		snprintf(sock, socklen, "%s", path);
	return vm;
}

void e2e_gl_display(const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s", name,
		 access("/dev/dri/renderD128", R_OK | W_OK) == 0 ? "" : ",rendernode=/dev/null");
}

struct e2e_vm *e2e_desktop_vm_start(const struct e2e_qemu *q, const struct e2e_guest *d,
				    const char *workdir, const char *name,
				    const struct e2e_desktop_run *run, char *tcp_addr,
				    size_t addrlen, char *err, size_t errlen)
{
	static const char *const extra[] = { "-smp", "2", "-name", "debug-threads=on", NULL };
	char display[96], opts[256];
	int port = free_tcp_port();
	struct e2e_vm_config cfg = {
		.append = run->append, .fb_width = run->width, .fb_height = run->height,
		.mem_mb = 2048, .qmp = true, .extra_args = extra, .timeout_ms = run->timeout_ms,
	};

	if (port <= 0) {
		set_err(err, errlen, "no free TCP port");
		return NULL;
	}
	snprintf(opts, sizeof(opts), "listen=tcp:127.0.0.1:%d%s%s", port,
		 run->object_opts && *run->object_opts ? "," : "",
		 run->object_opts ? run->object_opts : "");
	if (run->display) {
		e2e_gl_display(run->display, display, sizeof(display));
		cfg.gpu = "virtio-gpu-gl-pci";
		cfg.display = display;
	}
	snprintf(tcp_addr, addrlen, "tcp:127.0.0.1:%d", port);
	return e2e_qemu_vm_start(q, d, workdir, name, opts, &cfg, NULL, 0, err, errlen);
}

int e2e_kmscube_fps(const struct e2e_vm *vm, unsigned *frames, double *secs, double *fps)
{
	FILE *f = fopen(e2e_vm_console_path(vm), "r");
	char line[4096];
	int n = 0;

	while (f && fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, "Rendered ");
		unsigned fr;
		double s, r;

		if (p && sscanf(p, "Rendered %u frames in %lf sec (%lf fps)", &fr, &s, &r) == 3) {
			*frames = fr;
			*secs = s;
			*fps = r;
			n++;
		}
	}
	if (f)
		fclose(f);
	return n;
}

/* fn(tid, comm, opaque) for each thread of pid. */
static void each_thread(pid_t pid, void (*fn)(pid_t tid, const char *comm, void *opaque),
			void *opaque)
{
	char path[64];
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	while (d && (e = readdir(d))) {
		char p[64 + 300], comm[64] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "/proc/%d/task/%.255s/comm", (int)pid, e->d_name);
		f = fopen(p, "r");
		if (f) {
			if (!fgets(comm, sizeof(comm), f))
				comm[0] = '\0';
			fclose(f);
		}
		comm[strcspn(comm, "\n")] = '\0';
		fn((pid_t)atoi(e->d_name), comm, opaque);
	}
	if (d)
		closedir(d);
}

static bool export_thread(const char *comm)
{
	return !strncmp(comm, "hfe ", 4) || !strncmp(comm, "helix-", 6);
}

struct cpu_walk {
	pid_t pid;
	struct e2e_cpu c;
};

/* A thread's time to its kind's total. */
static void add_kind(struct e2e_cpu *c, int kind, double ms)
{
	if (kind == E2E_THREAD_VCPU)
		c->vcpu_ms += ms;
	else if (kind == E2E_THREAD_EXPORT)
		c->export_ms += ms;
	else if (kind == E2E_THREAD_GL)
		c->gl_ms += ms;
}

/* Per thread: schedstat's run time (ns); its kind by name. */
static void add_thread_cpu(pid_t tid, const char *comm, void *opaque)
{
	struct cpu_walk *w = opaque;
	char p[96];
	unsigned long long run;
	FILE *f;
	struct e2e_thread_cpu th = { .tid = tid, .kind = E2E_THREAD_OTHER };

	snprintf(p, sizeof(p), "/proc/%d/task/%d/schedstat", (int)w->pid, (int)tid);
	f = fopen(p, "r");
	if (!f)
		return;
	if (fscanf(f, "%llu", &run) != 1)
		run = 0;
	fclose(f);
	th.ms = (double)run / 1e6;
	if (!strncmp(comm, "CPU ", 4))
		th.kind = E2E_THREAD_VCPU;
	else if (export_thread(comm))
		th.kind = E2E_THREAD_EXPORT;
	else if (!strncmp(comm, "llvmpipe-", 9))
		th.kind = E2E_THREAD_GL;
	add_kind(&w->c, th.kind, th.ms);
	if (w->c.n_threads < sizeof(w->c.threads) / sizeof(w->c.threads[0]))
		w->c.threads[w->c.n_threads++] = th;
	if (tid == w->pid) {
		w->c.main_ms = th.ms;
		/* The leader's own count: /proc/PID/status is its thread's. */
		w->c.main_wakes = (double)tu_proc_status_kb(w->pid, "voluntary_ctxt_switches");
	}
}

struct e2e_cpu e2e_proc_cpu(pid_t pid)
{
	struct cpu_walk w = { .pid = pid };

	if (pid <= 0)
		return w.c;
	each_thread(pid, add_thread_cpu, &w);
	/* All threads from /proc/PID/stat: it keeps the time of exited threads. */
	w.c.all_ms = tu_proc_cpu_ms(pid, 0);
	return w.c;
}

/* A thread's time in a, 0 if it did not exist then. */
static double thread_ms(const struct e2e_cpu *a, pid_t tid)
{
	for (unsigned i = 0; i < a->n_threads; i++)
		if (a->threads[i].tid == tid)
			return a->threads[i].ms;
	return 0;
}

struct e2e_cpu e2e_cpu_delta(const struct e2e_cpu *a, const struct e2e_cpu *b)
{
	struct e2e_cpu d = { .all_ms = b->all_ms - a->all_ms, .main_ms = b->main_ms - a->main_ms,
			     .main_wakes = b->main_wakes - a->main_wakes };

	for (unsigned i = 0; i < b->n_threads; i++) {
		const struct e2e_thread_cpu *th = &b->threads[i];

		add_kind(&d, th->kind, th->ms - thread_ms(a, th->tid));
	}
	return d;
}

struct prio_walk {
	unsigned n, background;
	char normal[64]; /* the first export thread that is not a background one */
};

static void count_background(pid_t tid, const char *comm, void *opaque)
{
	struct prio_walk *w = opaque;

	if (!export_thread(comm))
		return;
	w->n++;
	errno = 0;
	int nice = getpriority(PRIO_PROCESS, (id_t)tid);
	if (sched_getscheduler(tid) == SCHED_BATCH && nice >= 10 && !errno)
		w->background++;
	else if (!w->normal[0])
		snprintf(w->normal, sizeof(w->normal), "%s (%d)", comm, (int)tid);
}

unsigned e2e_export_threads(pid_t pid, unsigned *background, char *normal, size_t len)
{
	struct prio_walk w = { 0 };

	if (pid > 0)
		each_thread(pid, count_background, &w);
	*background = w.background;
	snprintf(normal, len, "%s", w.normal);
	return w.n;
}

/* Append to a growing array of record pointers. */
static int push_rec(const struct e2e_rec ***v, int *n, const struct e2e_rec *rec)
{
	const struct e2e_rec **grown;

	/* Doubling: capacity is the next power of two at or above n. */
	if ((*n & (*n - 1)) == 0) {
		grown = realloc(*v, (size_t)(*n ? 2 * *n : 1) * sizeof(**v));
		if (!grown)
			return -1;
		*v = grown;
	}
	(*v)[(*n)++] = rec;
	return 0;
}

int e2e_records_collect(struct e2e_vm *vm, struct e2e_records *r, int timeout_ms)
{
	const struct e2e_rec *rec;

	memset(r, 0, sizeof(*r));
	for (size_t i = 0; e2e_vm_record(vm, i, &rec, timeout_ms) == 1; i++) {
		int ok = 0;

		if (rec->h.kind == E2E_REC_AU)
			ok = push_rec(&r->aus, &r->n_aus, rec);
		else if (rec->h.kind == E2E_REC_DRAW)
			ok = push_rec(&r->draws, &r->n_draws, rec);
		else if (rec->h.kind == E2E_REC_END)
			r->end = rec;
		if (ok < 0) {
			fprintf(stderr, "e2e_records_collect: out of memory\n");
			abort();
		}
		if (r->end)
			break;
	}
	return r->end ? 0 : -1;
}

void e2e_records_free(struct e2e_records *r)
{
	free(r->aus);
	free(r->draws);
	memset(r, 0, sizeof(*r));
}

#if defined(__SANITIZE_ADDRESS__)
#define E2E_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define E2E_ASAN 1
#endif
#endif

#ifdef E2E_ASAN
/* The sanitizer runtime this process runs with, from its mappings. */
static int find_runtime(const char *name, char *path, size_t len)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[PATH_MAX + 128];
	int found = -1;

	if (!f)
		return -1;
	while (found < 0 && fgets(line, sizeof(line), f)) {
		char *p = strchr(line, '/');

		if (p && strstr(p, name)) {
			p[strcspn(p, "\n")] = '\0';
			snprintf(path, len, "%s", p);
			found = 0;
		}
	}
	fclose(f);
	return found;
}
#endif

void e2e_qemu_env_begin(void)
{
#ifdef E2E_ASAN
	char path[PATH_MAX];

	if (e2e_qemu_preload(path, sizeof(path)) == 0)
		setenv("LD_PRELOAD", path, 1);
	/* QEMU itself is not instrumented and does not free everything at exit. */
	setenv("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1", 1);
#endif
}

int e2e_qemu_preload(char *path, size_t len)
{
#ifdef E2E_ASAN
	if (find_runtime("libasan.so", path, len) == 0 ||
	    find_runtime("libclang_rt.asan", path, len) == 0)
		return 0;
#else
	(void)path;
	(void)len;
#endif
	return -1;
}

void e2e_qemu_env_end(void)
{
#ifdef E2E_ASAN
	unsetenv("LD_PRELOAD");
	unsetenv("ASAN_OPTIONS");
#endif
}

int e2e_qemu_qom_get(const char *qmp_sock, const char *path, const char *prop, char *out,
		     size_t len, char *err, size_t errlen)
{
	char cmd[512], reply[8192];
	const char *p, *end;

	snprintf(cmd, sizeof(cmd),
		 "{\"execute\":\"qom-get\",\"arguments\":{\"path\":\"%s\",\"property\":\"%s\"}}",
		 path, prop);
	if (e2e_qmp(qmp_sock, cmd, reply, sizeof(reply), 10000, err, errlen) < 0)
		return -1;
	p = strstr(reply, "\"return\":");
	if (!p) {
		set_err(err, errlen, "qom-get %s %s: unexpected reply %s", path, prop, reply);
		return -1;
	}
	p += strlen("\"return\":");
	while (*p == ' ')
		p++;
	/* The value runs to the reply's closing brace (a struct has its own). */
	end = strrchr(p, '}');
	if (!end) {
		set_err(err, errlen, "qom-get %s %s: unexpected reply %s", path, prop, reply);
		return -1;
	}
	while (end > p && end[-1] == ' ')
		end--;
	snprintf(out, len, "%.*s", (int)(end - p), p);
	return 0;
}

double e2e_qemu_json_num(const char *json, const char *key, double def)
{
	char name[128];
	const char *p;
	char *end;
	double v;

	snprintf(name, sizeof(name), "\"%s\":", key);
	p = strstr(json, name);
	if (!p)
		return def;
	v = strtod(p + strlen(name), &end);
	return end == p + strlen(name) ? def : v;
}

void e2e_records_check_end(const struct e2e_records *r)
{
	CHECKF(r->end && !strncmp((const char *)r->end->data, "result=ok", 9), "END: %s",
	       r->end ? (const char *)r->end->data : "(none)");
}

int e2e_both_hosts_main(int argc, char **argv, const char *name, e2e_host_run dbus,
			e2e_host_run module)
{
	if (e2e_arch_args(&argc, argv) < 0)
		return 1;
	const char *which = argc > 1 ? argv[1] : "both";
	uint64_t t0 = e2e_now_ns();
	char tmpl[128];
	struct e2e_guest g;
	char err[512];

	snprintf(tmpl, sizeof(tmpl), "hfe-e2e-%s", strncmp(name, "test_e2e_", 9) ? name : name + 9);
	char *workdir = tu_mkdtemp(tmpl);
	REQUIRE(workdir);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (e2e_guest_get(&g, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "guest: %s\n", err);
		return 1;
	}
	if (strcmp(which, "module"))
		dbus(&g, workdir);
	if (strcmp(which, "dbus"))
		module(&g, workdir);
	return e2e_test_finish(name, workdir, t0);
}

FILE *e2e_baseline_start(double seconds)
{
	char cmd[PATH_MAX + 64];
	const char *root = getenv("HFE_BUILD_ROOT");

	if (!root || seconds <= 0)
		return NULL;
	snprintf(cmd, sizeof(cmd), "exec '%s/bench/bench-loop-jitter' %.1f --wake", root, seconds);
	return popen(cmd, "r");
}

int e2e_baseline_end(FILE *baseline, char *line, size_t len)
{
	int rc = -1;

	line[0] = '\0';
	if (!baseline)
		return -1;
	if (fgets(line, (int)len, baseline))
		rc = 0;
	else
		line[0] = '\0';
	pclose(baseline);
	return rc;
}
