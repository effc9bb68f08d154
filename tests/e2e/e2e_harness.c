/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Host harness of the end-to-end tests; see e2e_harness.h. */
#include "e2e_harness.h"
#include "test_util.h"
#include "hfe/client.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGS 96

uint64_t e2e_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int e2e_test_finish(const char *name, char *workdir, uint64_t t0_ns)
{
	printf("%s: total %.1f s\n", name, (double)(e2e_now_ns() - t0_ns) / 1e9);
	if (tu_failures || getenv("HFE_E2E_KEEP"))
		printf("%s: kept %s\n", name, workdir);
	else
		tu_rm_rf(workdir);
	free(workdir);
	return tu_finish(name);
}

static double ms_since(uint64_t t0)
{
	return (e2e_now_ns() - t0) / 1e6;
}

static void set_err(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

void e2e_check_pictures(const char *what, const struct e2e_rec *const *aus, int n, int want,
			uint32_t w, uint32_t h, double min_psnr, e2e_reference_fn reference,
			void *ctx)
{
	struct tu_decoder *dec = tu_decoder_new();
	uint8_t *rgb = malloc((size_t)w * h * 3);
	double worst = INFINITY;
	int pics = 0, errors = 0, bad = 0;
	struct tu_nals nals;

	REQUIRE(dec && rgb);
	CHECKF(n == want, "%s: %d AUs for %d frames", what, n, want);
	if (n > 0)
		CHECKF(tu_nal_parse(aus[0]->data, aus[0]->h.len, &nals) > 0 && nals.has_sps &&
			       nals.has_pps && nals.has_idr,
		       "%s: the first AU is not an IDR with SPS/PPS", what);
	for (int i = 0; i < n && i < want; i++) {
		struct tu_yuv pic, ref;
		double v[3];
		int r = tu_decoder_decode(dec, aus[i]->data, aus[i]->h.len, &pic, NULL);

		if (r < 0)
			errors++;
		if (r <= 0)
			continue;
		pics++;
		reference(rgb, w, h, i, ctx);
		tu_ref_rgb_to_yuv(rgb, w, h, &ref);
		if (tu_psnr_yuv(&pic, &ref, v) < 0) {
			bad++;
		} else {
			double m = fmin(v[0], fmin(v[1], v[2]));

			worst = fmin(worst, m);
			CHECKF(m >= min_psnr, "%s: frame %d: PSNR Y %.1f U %.1f V %.1f dB", what,
			       i, v[0], v[1], v[2]);
		}
		tu_yuv_free(&ref);
		tu_yuv_free(&pic);
	}
	CHECKF(errors == 0, "%s: %d AUs failed to decode", what, errors);
	CHECKF(pics == n, "%s: %d pictures from %d AUs", what, pics, n);
	CHECKF(bad == 0, "%s: %d pictures are not %ux%u", what, bad, w, h);
	printf("%s: %d AUs, %d pictures %ux%u, worst PSNR %.1f dB (min of Y/U/V)\n", what, n,
	       pics, w, h, worst);
	free(rgb);
	tu_decoder_free(dec);
}

double e2e_pctl(double *v, size_t n, double p)
{
	if (!n)
		return NAN;
	qsort(v, n, sizeof(*v), cmp_double);
	size_t i = (size_t)ceil(p * (double)n);

	return v[i ? (i <= n ? i - 1 : n - 1) : 0];
}

double e2e_kv_num(const char *text, const char *key, double def)
{
	size_t kl = strlen(key);

	for (const char *p = text; (p = strstr(p, key)); p += kl) {
		if ((p == text || p[-1] == ' ') && p[kl] == '=') {
			char *end;
			double v = strtod(p + kl + 1, &end);

			return end == p + kl + 1 ? def : v;
		}
	}
	return def;
}

/* ---- processes ---- */

/*
 * fork + exec with stdin from /dev/null and stdout+stderr to out_fd (or
 * appended to log_path). The child dies with us (PR_SET_PDEATHSIG), so a
 * test killed by its timeout leaves no QEMU behind.
 */
static pid_t spawn(const char *const argv[], int out_fd, const char *log_path)
{
	pid_t parent = getpid(), pid = fork();

	if (pid != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	int in = open("/dev/null", O_RDONLY);
	int out = out_fd >= 0 ? out_fd :
		  log_path ? open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644) : -1;

	if (in >= 0)
		dup2(in, 0);
	if (out >= 0) {
		dup2(out, 1);
		dup2(out, 2);
	}
	execvp(argv[0], (char *const *)argv);
	fprintf(stderr, "e2e: cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* Wait up to timeout_ms for pid. 1 exited (*status set), 0 still running. */
static int wait_pid(pid_t pid, int timeout_ms, int *status)
{
	uint64_t end = e2e_now_ns() + (uint64_t)timeout_ms * 1000000;

	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid)
			return 1;
		if (r < 0 && errno != EINTR)
			return -1;
		if (e2e_now_ns() >= end)
			return 0;
		usleep(10000);
	}
}

static int kill_wait(pid_t pid, int sig, int timeout_ms)
{
	int st;

	kill(pid, sig);
	if (wait_pid(pid, timeout_ms, &st) == 1)
		return st;
	kill(pid, SIGKILL);
	return wait_pid(pid, 5000, &st) == 1 ? st : -1;
}

static void describe_status(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exit code %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "killed by signal %d", WTERMSIG(st));
	else
		snprintf(buf, len, "status 0x%x", st);
}

/* ---- build scripts ---- */

int e2e_run_dir_script(const char *script, const char *const *args, const char *log_path,
		       int timeout_s, char *dir, size_t dirlen, char *err, size_t errlen)
{
	const char *argv[16] = { "bash", script };
	size_t na = 2;
	uint64_t deadline = timeout_s > 0 ? e2e_now_ns() + (uint64_t)timeout_s * 1000000000u : 0;
	char buf[PATH_MAX + 64], last[PATH_MAX] = "";
	size_t n = 0;
	ssize_t r;
	int fds[2], status = 0;
	bool timed_out = false;

	for (size_t i = 0; args && args[i]; i++) {
		if (na >= sizeof(argv) / sizeof(argv[0]) - 1) {
			set_err(err, errlen, "too many arguments for %s", script);
			return -1;
		}
		argv[na++] = args[i];
	}
	if (pipe(fds) < 0) {
		set_err(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	/* stdout (the directory) through a pipe, stderr (progress) to the log. */
	pid_t pid = fork();
	if (pid == 0) {
		int lf = log_path ? open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644) : -1;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* Its own process group: a timeout kills what it started too. */
		if (timeout_s > 0)
			setpgid(0, 0);
		dup2(fds[1], 1);
		if (lf >= 0)
			dup2(lf, 2);
		close(fds[0]);
		execv("/bin/bash", (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	if (pid < 0) {
		close(fds[0]);
		set_err(err, errlen, "fork: %s", strerror(errno));
		return -1;
	}
	for (;;) {
		struct pollfd p = { fds[0], POLLIN, 0 };
		int left = -1;

		if (deadline) {
			int64_t ns = (int64_t)(deadline - e2e_now_ns());

			if (ns <= 0) {
				timed_out = true;
				break;
			}
			left = (int)(ns / 1000000) + 1;
		}
		int pr = poll(&p, 1, left);

		if (pr == 0 || (pr < 0 && errno == EINTR))
			continue;
		r = read(fds[0], buf + n, sizeof(buf) - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == sizeof(buf) - 1)
			n = 0; /* only the last line matters */
	}
	close(fds[0]);
	buf[n] = '\0';
	if (timed_out) {
		/* SIGTERM lets the script's EXIT trap clean up; then no mercy. */
		kill(-pid, SIGTERM);
		if (wait_pid(pid, 20000, &status) != 1) {
			kill(-pid, SIGKILL);
			wait_pid(pid, 5000, &status);
		}
		kill(-pid, SIGKILL);
		set_err(err, errlen, "%s did not finish within %d s: killed; its messages are in %s",
			script, timeout_s, log_path ? log_path : "stderr");
		return -1;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	/* The last non-empty line is the directory. */
	for (char *s = strtok(buf, "\n"); s; s = strtok(NULL, "\n"))
		snprintf(last, sizeof(last), "%s", s);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !last[0]) {
		char how[64], reason[600] = "";
		FILE *f = log_path ? fopen(log_path, "r") : NULL;

		/* The last ERROR line of the log says why. */
		if (f) {
			char line[600];

			while (fgets(line, sizeof(line), f))
				if (strstr(line, "ERROR"))
					snprintf(reason, sizeof(reason), "%s", line);
			fclose(f);
			reason[strcspn(reason, "\n")] = '\0';
		}
		describe_status(status, how, sizeof(how));
		set_err(err, errlen, "%s failed (%s): %s; its messages are in %s", script, how,
			reason[0] ? reason : "no reason printed", log_path ? log_path : "stderr");
		return -1;
	}
	snprintf(dir, dirlen, "%s", last);
	return 0;
}

/* ---- the guest's architecture ---- */

static const char *arch_name;

static const char *arch_known(const char *a)
{
	return !strcmp(a, "x86_64") ? "x86_64" : !strcmp(a, "aarch64") ? "aarch64" : NULL;
}

int e2e_arch_args(int *argc, char **argv)
{
	for (int i = 1; i < *argc; i++) {
		const char *v = NULL;
		int used = 0;

		if (!strcmp(argv[i], "--arch") && i + 1 < *argc)
			v = argv[i + 1], used = 2;
		else if (!strncmp(argv[i], "--arch=", 7))
			v = argv[i] + 7, used = 1;
		if (!used)
			continue;
		arch_name = arch_known(v);
		if (!arch_name) {
			fprintf(stderr, "unknown --arch '%s' (x86_64 or aarch64)\n", v);
			return -1;
		}
		memmove(&argv[i], &argv[i + used], (size_t)(*argc - i - used + 1) * sizeof(*argv));
		*argc -= used;
		i--;
	}
	return 0;
}

const char *e2e_arch(void)
{
	const char *env = getenv("HFE_E2E_ARCH");

	if (arch_name)
		return arch_name;
	return env && arch_known(env) ? arch_known(env) : "x86_64";
}

static bool arch_is_arm(const char *arch)
{
	return !strcmp(arch, "aarch64");
}

/* ---- guest ---- */

/* The files of a guest directory: the kernel (the PVH vmlinux, fast under
 * TCG, else vmlinuz), initrd.img and, for the desktop guest, rootfs.img. */
static int guest_files(struct e2e_guest *g, bool rootfs, char *err, size_t errlen)
{
	struct stat st;

	snprintf(g->kernel, sizeof(g->kernel), "%s/vmlinux", g->dir);
	if (stat(g->kernel, &st) < 0)
		snprintf(g->kernel, sizeof(g->kernel), "%s/vmlinuz", g->dir);
	snprintf(g->initrd, sizeof(g->initrd), "%s/initrd.img", g->dir);
	if (rootfs)
		snprintf(g->rootfs, sizeof(g->rootfs), "%s/rootfs.img", g->dir);
	if (stat(g->kernel, &st) < 0 || stat(g->initrd, &st) < 0 ||
	    (rootfs && stat(g->rootfs, &st) < 0)) {
		set_err(err, errlen, "guest directory %s has no kernel, initrd.img%s", g->dir,
			rootfs ? " or rootfs.img" : "");
		return -1;
	}
	return 0;
}

int e2e_guest_get(struct e2e_guest *g, const char *log_path, char *err, size_t errlen)
{
	const char *prebuilt = getenv("HFE_E2E_GUEST_DIR");
	const char *script = getenv("HFE_E2E_BUILD_GUEST");
	const char *arch = e2e_arch();
	const char *tool = getenv(arch_is_arm(arch) ? "HFE_E2E_GUEST_TOOL_AARCH64" :
						      "HFE_E2E_GUEST_TOOL");
	uint64_t t0 = e2e_now_ns();

	memset(g, 0, sizeof(*g));
	snprintf(g->arch, sizeof(g->arch), "%s", arch);
	if (prebuilt && *prebuilt) {
		snprintf(g->dir, sizeof(g->dir), "%s", prebuilt);
	} else {
		const char *const args[] = { "--tool", tool, "--arch", arch, NULL };

		if (!script || !tool || !*tool) {
			set_err(err, errlen, "HFE_E2E_BUILD_GUEST and HFE_E2E_GUEST_TOOL%s are not set "
				"(run through meson test, or see docs/e2e.md)%s",
				arch_is_arm(arch) ? "_AARCH64" : "",
				arch_is_arm(arch) ? "; the aarch64 tool needs aarch64-linux-gnu-gcc "
				"(gcc-aarch64-linux-gnu) when the build is set up" : "");
			return -1;
		}
		if (e2e_run_dir_script(script, args, log_path, 0, g->dir, sizeof(g->dir), err,
				       errlen) < 0)
			return -1;
	}
	g->build_ms = ms_since(t0);
	return guest_files(g, false, err, errlen);
}

int e2e_desktop_get(struct e2e_guest *g, const char *log_path, int timeout_s, char *err,
		    size_t errlen)
{
	const char *script = getenv("HFE_E2E_BUILD_DESKTOP");
	uint64_t t0 = e2e_now_ns();

	memset(g, 0, sizeof(*g));
	snprintf(g->arch, sizeof(g->arch), "x86_64"); /* the desktop guest is x86_64 only */
	if (!script || !*script) {
		set_err(err, errlen, "HFE_E2E_BUILD_DESKTOP is not set (run through meson test, or "
			"see docs/e2e.md)");
		return -1;
	}
	if (e2e_run_dir_script(script, NULL, log_path, timeout_s, g->dir, sizeof(g->dir), err,
			       errlen) < 0)
		return -1;
	g->build_ms = ms_since(t0);
	return guest_files(g, true, err, errlen);
}

static bool kvm_opens(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	bool ok = fd >= 0 && ioctl(fd, KVM_GET_API_VERSION, 0) == KVM_API_VERSION;

	if (fd >= 0)
		close(fd);
	return ok;
}

static bool kvm_boots(const struct e2e_guest *g)
{
	char tmpl[] = "/tmp/hfe-e2e-kvmprobe-XXXXXX", err[256], line[256];
	struct e2e_vm_config cfg = {
		.accel = "kvm", .append = "hfe.mode=probe", .timeout_ms = 20000,
	};
	struct e2e_vm *vm;
	bool ok = false;

	if (!mkdtemp(tmpl))
		return false;
	vm = e2e_vm_start(g, tmpl, "kvmprobe", &cfg, err, sizeof(err));
	if (vm) {
		/* A working KVM reaches the tool in ~1 s; TCG takes ~5-10 s. */
		ok = e2e_vm_wait_line(vm, "result=ok", line, sizeof(line), 12000) == 1;
		e2e_vm_free(vm);
	}
	for (int i = 0; i < 3; i++) {
		static const char *const files[] = { "console.log", "out.bin", "out.sock" };

		snprintf(line, sizeof(line), "%s/kvmprobe-%s", tmpl, files[i]);
		unlink(line);
	}
	rmdir(tmpl);
	return ok;
}

const char *e2e_accel(const struct e2e_guest *g)
{
	static char verdict[8];
	const char *env = getenv("HFE_E2E_ACCEL");
	char boot_id[64] = "unknown", path[PATH_MAX + 128], *slash;
	FILE *f;

	if (env && (!strcmp(env, "kvm") || !strcmp(env, "tcg")))
		return env;
	if (arch_is_arm(g->arch))
		return "tcg"; /* an x86_64 host's KVM runs no arm64 guest */
	if (verdict[0])
		return verdict;
	if (!kvm_opens()) {
		strcpy(verdict, "tcg");
		return verdict;
	}
	f = fopen("/proc/sys/kernel/random/boot_id", "r");
	if (f) {
		if (!fgets(boot_id, sizeof(boot_id), f))
			strcpy(boot_id, "unknown");
		boot_id[strcspn(boot_id, "\n")] = '\0';
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s", g->dir);
	slash = strrchr(path, '/');
	if (slash)
		*slash = '\0';
	snprintf(path + strlen(path), sizeof(path) - strlen(path), "/accel-%s", boot_id);
	f = fopen(path, "r");
	if (f) {
		if (fgets(verdict, sizeof(verdict), f))
			verdict[strcspn(verdict, "\n")] = '\0';
		fclose(f);
		if (!strcmp(verdict, "kvm") || !strcmp(verdict, "tcg"))
			return verdict;
	}
	strcpy(verdict, kvm_boots(g) ? "kvm" : "tcg");
	fprintf(stderr, "e2e: /dev/kvm opens; a KVM probe boot %s: using %s (cached in %s)\n",
		!strcmp(verdict, "kvm") ? "worked" : "did not reach the guest tool", verdict,
		path);
	f = fopen(path, "w");
	if (f) {
		fprintf(f, "%s\n", verdict);
		fclose(f);
	}
	return verdict;
}

/* ---- daemon ---- */

static int unix_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int e2e_daemon_start(struct e2e_daemon *d, const char *workdir, const char *name,
		     const char *const *extra_args, char *err, size_t errlen)
{
	const char *bin = getenv("HFE_DAEMON");
	const char *argv[MAX_ARGS];
	char listen[PATH_MAX + 8];
	int n = 0, st;

	memset(d, 0, sizeof(*d));
	if (!bin || !*bin) {
		set_err(err, errlen, "HFE_DAEMON is not set");
		return -1;
	}
	snprintf(d->sock, sizeof(d->sock), "%s/%s.sock", workdir, name);
	snprintf(d->log, sizeof(d->log), "%s/%s.log", workdir, name);
	snprintf(listen, sizeof(listen), "unix:%s", d->sock);
	argv[n++] = bin;
	argv[n++] = "--listen";
	argv[n++] = listen;
	for (int i = 0; extra_args && extra_args[i] && n < MAX_ARGS - 1; i++)
		argv[n++] = extra_args[i];
	argv[n] = NULL;
	d->pid = spawn(argv, -1, d->log);
	if (d->pid < 0) {
		set_err(err, errlen, "fork: %s", strerror(errno));
		return -1;
	}
	for (int i = 0; i < 1000; i++) {
		int fd = unix_connect(d->sock);

		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (wait_pid(d->pid, 10, &st) == 1) {
			char how[64];

			describe_status(st, how, sizeof(how));
			d->pid = 0;
			set_err(err, errlen, "%s exited at start (%s); see %s", bin, how, d->log);
			return -1;
		}
	}
	e2e_daemon_stop(d);
	set_err(err, errlen, "%s did not listen on %s within 10 s; see %s", bin, d->sock, d->log);
	return -1;
}

int e2e_daemon_stop(struct e2e_daemon *d)
{
	int st;

	if (d->pid <= 0)
		return 0;
	st = kill_wait(d->pid, SIGTERM, 10000);
	d->pid = 0;
	return st;
}

int e2e_subscribe(const char *addr, uint32_t id, struct hfe_client **out)
{
	struct hfe_err err = { 0 };
	struct hfe_msg m = { .hdr = { .type = HFE_MSG_SUBSCRIBE } };
	struct hfe_client *c = hfe_client_connect(addr, 5000, &err);

	*out = c;
	if (!c) {
		fprintf(stderr, "connect %s: %s\n", addr, err.msg);
		return -1;
	}
	m.u.scanout_id = id;
	if (hfe_client_send_msg(c, &m, 5000, &err) < 0)
		return -1;
	for (;;) {
		int r = hfe_client_recv(c, &m, 5000, &err);

		if (r <= 0)
			return -1;
		if (m.hdr.type == HFE_MSG_SUBSCRIBE_RESP)
			return m.u.subscribe_resp.success ? 1 : 0;
	}
}

int e2e_drain_aus(struct hfe_client *c, int timeout_ms)
{
	struct hfe_err err;
	struct hfe_msg m;
	int n = 0, r;

	while ((r = hfe_client_recv(c, &m, timeout_ms, &err)) == 1)
		n += m.hdr.type == HFE_MSG_FRAME_RESPONSE;
	return r < 0 ? -1 : n;
}

/* ---- VM ---- */

struct e2e_vm {
	pid_t pid;
	bool reaped;
	int status;
	uint64_t t0;
	char name[64];
	char console_path[PATH_MAX + 80];
	char out_path[PATH_MAX + 80];
	char out_sock[PATH_MAX + 80];
	char qmp_sock[PATH_MAX + 80];

	pthread_mutex_t lock;
	pthread_cond_t cond;

	/* watchdog: kills QEMU at cfg->timeout_ms unless it was reaped */
	pthread_t dog_thread;
	bool dog_started, dog_stop, killed_by_dog;
	int timeout_ms;

	/* console */
	int con_fd;
	pthread_t con_thread;
	bool con_thread_started, con_eof;
	char **lines;     /* text after "HFE-GUEST: " of each guest line */
	size_t n_lines, cap_lines;
	double tool_start_ms, guest_uptime_ms, exit_ms;

	/* out port */
	int listen_fd, stop_pipe[2];
	pthread_t out_thread;
	bool out_thread_started, out_done;
	struct e2e_rec *recs;
	size_t n_recs, cap_recs;
	uint64_t out_bytes;
	char out_error[160];
};

static void vm_add_line(struct e2e_vm *vm, const char *text)
{
	char *copy = strdup(text);

	if (!copy)
		return;
	pthread_mutex_lock(&vm->lock);
	if (vm->n_lines == vm->cap_lines) {
		size_t cap = vm->cap_lines ? 2 * vm->cap_lines : 64;
		char **l = realloc(vm->lines, cap * sizeof(*l));

		if (!l) {
			pthread_mutex_unlock(&vm->lock);
			free(copy);
			return;
		}
		vm->lines = l;
		vm->cap_lines = cap;
	}
	vm->lines[vm->n_lines++] = copy;
	if (vm->tool_start_ms < 0 && !strncmp(text, "start", 5)) {
		vm->tool_start_ms = ms_since(vm->t0);
		vm->guest_uptime_ms = e2e_kv_num(text, "uptime_ms", -1);
	}
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

static void *console_thread(void *arg)
{
	struct e2e_vm *vm = arg;
	FILE *log = fopen(vm->console_path, "a"); /* after the command line */
	char buf[4096], line[2048];
	size_t ll = 0;
	ssize_t r;

	for (;;) {
		r = read(vm->con_fd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (log) {
			fwrite(buf, 1, (size_t)r, log);
			fflush(log);
		}
		for (ssize_t i = 0; i < r; i++) {
			char c = buf[i];

			if (c == '\n' || ll == sizeof(line) - 1) {
				const char *tag;

				line[ll] = '\0';
				/* A kernel message may precede the tag on the same line. */
				tag = strstr(line, "HFE-GUEST: ");
				if (tag)
					tag += strlen("HFE-GUEST: ");
				else if ((tag = strstr(line, "HFE-DESKTOP: ")))
					tag += strlen("HFE-DESKTOP: ");
				if (tag) {
					char *cr = strchr(tag, '\r');

					if (cr)
						*cr = '\0';
					vm_add_line(vm, tag);
				}
				ll = 0;
			} else if (c != '\r') {
				line[ll++] = c;
			}
		}
	}
	if (log)
		fclose(log);
	pthread_mutex_lock(&vm->lock);
	vm->con_eof = true;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

static int vm_add_record(struct e2e_vm *vm, const struct e2e_rec_hdr *h, const uint8_t *data)
{
	struct e2e_rec *r;

	pthread_mutex_lock(&vm->lock);
	if (vm->n_recs == vm->cap_recs) {
		size_t cap = vm->cap_recs ? 2 * vm->cap_recs : 256;
		struct e2e_rec *n = realloc(vm->recs, cap * sizeof(*n));

		if (!n) {
			pthread_mutex_unlock(&vm->lock);
			return -1;
		}
		vm->recs = n;
		vm->cap_recs = cap;
	}
	r = &vm->recs[vm->n_recs];
	r->h = *h;
	r->host_ns = e2e_now_ns();
	r->data = malloc(h->len + 1u);
	if (!r->data) {
		pthread_mutex_unlock(&vm->lock);
		return -1;
	}
	memcpy(r->data, data, h->len);
	r->data[h->len] = '\0';
	vm->n_recs++;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

/* Accept QEMU's connection for the out port, read records until EOF. After
 * END, answer one byte: the guest waits for it before powering off. */
static void *out_thread(void *arg)
{
	struct e2e_vm *vm = arg;
	FILE *raw = fopen(vm->out_path, "w");
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	int fd = -1;
	const char *why = NULL;

	for (;;) {
		struct pollfd p[2] = { { vm->listen_fd, POLLIN, 0 }, { vm->stop_pipe[0], POLLIN, 0 } };

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			goto done;
		if (p[1].revents)
			goto done;
		if (p[0].revents) {
			fd = accept4(vm->listen_fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0)
				break;
		}
	}
	for (;;) {
		struct pollfd p[2] = { { fd, POLLIN, 0 }, { vm->stop_pipe[0], POLLIN, 0 } };
		ssize_t r;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents && !p[0].revents)
			break;
		if (cap - len < 65536) {
			uint8_t *n = realloc(buf, cap ? 2 * cap : 1 << 20);

			if (!n) {
				why = "out of memory";
				break;
			}
			buf = n;
			cap = cap ? 2 * cap : 1 << 20;
		}
		r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (raw)
			fwrite(buf + len, 1, (size_t)r, raw);
		len += (size_t)r;
		pthread_mutex_lock(&vm->lock);
		vm->out_bytes += (uint64_t)r;
		pthread_mutex_unlock(&vm->lock);

		/* Take every complete record from the front. */
		size_t off = 0;
		bool end = false;

		while (len - off >= E2E_REC_HDR_SIZE) {
			struct e2e_rec_hdr h;

			if (e2e_rec_hdr_read(buf + off, &h) < 0) {
				why = "bad record header (stream out of sync)";
				goto done;
			}
			if (len - off < E2E_REC_HDR_SIZE + h.len)
				break;
			if (vm_add_record(vm, &h, buf + off + E2E_REC_HDR_SIZE) < 0) {
				why = "out of memory";
				goto done;
			}
			off += E2E_REC_HDR_SIZE + h.len;
			end |= h.kind == E2E_REC_END;
		}
		memmove(buf, buf + off, len - off);
		len -= off;
		if (end && write(fd, "A", 1) != 1)
			why = "cannot acknowledge END";
	}
done:
	if (raw)
		fclose(raw);
	if (fd >= 0)
		close(fd);
	free(buf);
	pthread_mutex_lock(&vm->lock);
	vm->out_done = true;
	if (why)
		snprintf(vm->out_error, sizeof(vm->out_error), "%s", why);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

static struct timespec abs_deadline(int timeout_ms);

static void *watchdog_thread(void *arg)
{
	struct e2e_vm *vm = arg;
	struct timespec dl = abs_deadline(vm->timeout_ms);

	pthread_mutex_lock(&vm->lock);
	while (!vm->dog_stop && !vm->reaped) {
		if (pthread_cond_timedwait(&vm->cond, &vm->lock, &dl) == ETIMEDOUT) {
			/* reaped is set under the lock: the pid is still ours. */
			if (!vm->reaped) {
				fprintf(stderr, "e2e: %s: QEMU still running after %d ms: killed\n",
					vm->name, vm->timeout_ms);
				vm->killed_by_dog = true;
				kill(vm->pid, SIGKILL);
			}
			break;
		}
	}
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

static void vm_stop_watchdog(struct e2e_vm *vm)
{
	if (!vm->dog_started)
		return;
	pthread_mutex_lock(&vm->lock);
	vm->dog_stop = true;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	pthread_join(vm->dog_thread, NULL);
	vm->dog_started = false;
}

/* Wait up to timeout_ms for QEMU to exit and reap it. The exit is seen
 * without reaping (WNOWAIT) and reaped under the lock, so the watchdog never
 * signals a pid that could already belong to another process. 1 or 0. */
static int vm_reap(struct e2e_vm *vm, int timeout_ms)
{
	uint64_t end = e2e_now_ns() + (uint64_t)timeout_ms * 1000000;

	for (;;) {
		siginfo_t si;

		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)vm->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
		    si.si_pid == vm->pid) {
			int st = -1;

			pthread_mutex_lock(&vm->lock);
			while (waitpid(vm->pid, &st, 0) < 0 && errno == EINTR)
				;
			vm->reaped = true;
			vm->status = vm->killed_by_dog ? -1 : st;
			vm->exit_ms = ms_since(vm->t0);
			pthread_cond_broadcast(&vm->cond);
			pthread_mutex_unlock(&vm->lock);
			return 1;
		}
		if (e2e_now_ns() >= end)
			return 0;
		usleep(10000);
	}
}

/* Kill QEMU (SIGTERM, then SIGKILL) and reap it; the watchdog is stopped first. */
static void vm_kill(struct e2e_vm *vm)
{
	vm_stop_watchdog(vm);
	if (vm->pid <= 0 || vm->reaped)
		return;
	kill(vm->pid, SIGTERM);
	if (!vm_reap(vm, 2000)) {
		kill(vm->pid, SIGKILL);
		vm_reap(vm, 5000);
	}
	vm->status = -1;
}

static int unix_listen(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	unlink(path);
	strcpy(sa.sun_path, path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

struct e2e_vm *e2e_vm_start(const struct e2e_guest *g, const char *workdir, const char *name,
			    const struct e2e_vm_config *cfg, char *err, size_t errlen)
{
	struct e2e_vm *vm = calloc(1, sizeof(*vm));
	const char *argv[MAX_ARGS];
	char append[2048], mem[16], gpu[96], out_dev[PATH_MAX + 128], hfe_dev[PATH_MAX + 128];
	char qmp[PATH_MAX + 128], drive[PATH_MAX + 96];
	const char *verbose = getenv("HFE_E2E_VERBOSE");
	const char *qemu = cfg->qemu ? cfg->qemu : getenv("HFE_E2E_QEMU");
	bool arm = arch_is_arm(g->arch);
	int n = 0, con[2] = { -1, -1 };

	if (!vm) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	vm->listen_fd = vm->con_fd = -1;
	vm->stop_pipe[0] = vm->stop_pipe[1] = -1;
	vm->tool_start_ms = vm->guest_uptime_ms = vm->exit_ms = -1;
	pthread_condattr_t ca;

	pthread_mutex_init(&vm->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&vm->cond, &ca);
	pthread_condattr_destroy(&ca);
	snprintf(vm->name, sizeof(vm->name), "%s", name);
	snprintf(vm->console_path, sizeof(vm->console_path), "%s/%s-console.log", workdir, name);
	snprintf(vm->out_path, sizeof(vm->out_path), "%s/%s-out.bin", workdir, name);
	snprintf(vm->out_sock, sizeof(vm->out_sock), "%s/%s-out.sock", workdir, name);
	snprintf(vm->qmp_sock, sizeof(vm->qmp_sock), "%s/%s-qmp.sock", workdir, name);

	vm->listen_fd = unix_listen(vm->out_sock);
	if (vm->listen_fd < 0) {
		set_err(err, errlen, "cannot listen on %s: %s", vm->out_sock, strerror(errno));
		goto fail;
	}
	if (pipe2(vm->stop_pipe, O_CLOEXEC) < 0 || pipe2(con, O_CLOEXEC) < 0) {
		set_err(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}

	/* quiet: the UART is slow under TCG; errors and warnings still show. */
	snprintf(append, sizeof(append), "console=%s panic=-1 %smitigations=off %s",
		 arm ? "ttyAMA0" : "ttyS0", verbose && *verbose == '1' ? "" : "quiet ",
		 cfg->append ? cfg->append : "");
	snprintf(mem, sizeof(mem), "%u", cfg->mem_mb ? cfg->mem_mb : 512);
	snprintf(gpu, sizeof(gpu), "%s", cfg->gpu ? cfg->gpu : "virtio-gpu-pci");
	if (cfg->fb_width && cfg->fb_height)
		snprintf(gpu + strlen(gpu), sizeof(gpu) - strlen(gpu), ",xres=%u,yres=%u",
			 cfg->fb_width, cfg->fb_height);
	if (cfg->max_outputs)
		snprintf(gpu + strlen(gpu), sizeof(gpu) - strlen(gpu), ",max_outputs=%u",
			 cfg->max_outputs);
	snprintf(out_dev, sizeof(out_dev), "socket,id=hfeout,path=%s,reconnect=1", vm->out_sock);

	argv[n++] = qemu && *qemu ? qemu : arm ? "qemu-system-aarch64" : "qemu-system-x86_64";
	argv[n++] = "-machine";
	if (arm) {
		/* cortex-a72: -cpu max's pointer authentication triples the boot under TCG */
		argv[n++] = "virt";
		argv[n++] = "-cpu";
		argv[n++] = "cortex-a72";
	} else {
		argv[n++] = "q35";
	}
	argv[n++] = "-accel";
	argv[n++] = cfg->accel ? cfg->accel : e2e_accel(g);
	argv[n++] = "-m";
	argv[n++] = mem;
	/* -nographic's pieces, spelled out so that -display can be chosen. */
	argv[n++] = "-display";
	argv[n++] = cfg->display ? cfg->display : "none";
	argv[n++] = "-serial";
	argv[n++] = "stdio";
	argv[n++] = "-monitor";
	argv[n++] = "none";
	argv[n++] = "-no-reboot";
	argv[n++] = "-nic";
	argv[n++] = cfg->nic ? cfg->nic : "none";
	argv[n++] = "-kernel";
	argv[n++] = g->kernel;
	argv[n++] = "-initrd";
	argv[n++] = g->initrd;
	argv[n++] = "-append";
	argv[n++] = append;
	if (g->rootfs[0]) {
		/* Read-only: several VMs may share the cached image. */
		snprintf(drive, sizeof(drive), "file=%s,format=raw,if=virtio,readonly=on",
			 g->rootfs);
		argv[n++] = "-drive";
		argv[n++] = drive;
	}
	argv[n++] = "-vga";
	argv[n++] = "none";
	argv[n++] = "-device";
	argv[n++] = gpu;
	argv[n++] = "-device";
	argv[n++] = "virtio-serial-pci";
	if (cfg->hfe_sock) {
		snprintf(hfe_dev, sizeof(hfe_dev), "socket,id=hfe,path=%s,reconnect=1",
			 cfg->hfe_sock);
		argv[n++] = "-chardev";
		argv[n++] = hfe_dev;
		argv[n++] = "-device";
		argv[n++] = "virtserialport,chardev=hfe,name=" E2E_PORT_HFE;
	}
	argv[n++] = "-chardev";
	argv[n++] = out_dev;
	argv[n++] = "-device";
	argv[n++] = "virtserialport,chardev=hfeout,name=" E2E_PORT_OUT;
	if (cfg->qmp) {
		snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", vm->qmp_sock);
		argv[n++] = "-qmp";
		argv[n++] = qmp;
	}
	for (int i = 0; cfg->extra_args && cfg->extra_args[i]; i++) {
		if (n >= MAX_ARGS - 1) {
			set_err(err, errlen, "too many QEMU arguments");
			goto fail;
		}
		argv[n++] = cfg->extra_args[i];
	}
	argv[n] = NULL;

	/* The command line goes first into the console log, for diagnosis. */
	FILE *f = fopen(vm->console_path, "w");

	if (f) {
		for (int i = 0; i < n; i++)
			fprintf(f, "%s%s", i ? " " : "# ", argv[i]);
		fputc('\n', f);
		fclose(f);
	}

	vm->t0 = e2e_now_ns();
	vm->pid = spawn(argv, con[1], NULL);
	close(con[1]);
	con[1] = -1;
	if (vm->pid < 0) {
		set_err(err, errlen, "fork: %s", strerror(errno));
		goto fail;
	}
	vm->con_fd = con[0];
	con[0] = -1;
	if (pthread_create(&vm->con_thread, NULL, console_thread, vm) != 0) {
		set_err(err, errlen, "cannot start the console thread");
		goto fail;
	}
	vm->con_thread_started = true;
	if (pthread_create(&vm->out_thread, NULL, out_thread, vm) != 0) {
		set_err(err, errlen, "cannot start the out-port thread");
		goto fail;
	}
	vm->out_thread_started = true;
	vm->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 180000;
	if (pthread_create(&vm->dog_thread, NULL, watchdog_thread, vm) != 0) {
		set_err(err, errlen, "cannot start the watchdog thread");
		goto fail;
	}
	vm->dog_started = true;
	return vm;
fail:
	if (con[0] >= 0)
		close(con[0]);
	if (con[1] >= 0)
		close(con[1]);
	e2e_vm_free(vm);
	return NULL;
}

static struct timespec abs_deadline(int timeout_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

int e2e_vm_wait_line(struct e2e_vm *vm, const char *what, char *line, size_t len,
		     int timeout_ms)
{
	struct timespec dl = abs_deadline(timeout_ms);
	size_t wl = strlen(what), i = 0;
	int rc = 0;

	pthread_mutex_lock(&vm->lock);
	for (;;) {
		for (; i < vm->n_lines; i++) {
			if (!strncmp(vm->lines[i], what, wl)) {
				if (line)
					snprintf(line, len, "%s", vm->lines[i]);
				rc = 1;
				goto out;
			}
		}
		if (vm->con_eof) {
			rc = -1;
			break;
		}
		if (pthread_cond_timedwait(&vm->cond, &vm->lock, &dl) == ETIMEDOUT)
			break;
	}
out:
	pthread_mutex_unlock(&vm->lock);
	return rc;
}

int e2e_vm_record(struct e2e_vm *vm, size_t i, const struct e2e_rec **rec, int timeout_ms)
{
	struct timespec dl = abs_deadline(timeout_ms);
	int rc = 0;

	pthread_mutex_lock(&vm->lock);
	for (;;) {
		if (i < vm->n_recs) {
			*rec = &vm->recs[i];
			rc = 1;
			break;
		}
		if (vm->out_done || (vm->n_recs && vm->recs[vm->n_recs - 1].h.kind == E2E_REC_END)) {
			rc = -1;
			break;
		}
		if (pthread_cond_timedwait(&vm->cond, &vm->lock, &dl) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&vm->lock);
	if (rc < 0 && vm->out_error[0])
		fprintf(stderr, "e2e: %s: out port: %s\n", vm->name, vm->out_error);
	return rc;
}

uint64_t e2e_vm_out_bytes(struct e2e_vm *vm)
{
	uint64_t b;

	pthread_mutex_lock(&vm->lock);
	b = vm->out_bytes;
	pthread_mutex_unlock(&vm->lock);
	return b;
}

int e2e_vm_wait_exit(struct e2e_vm *vm, int timeout_ms)
{
	if (vm->pid <= 0)
		return -1;
	if (!vm->reaped && !vm_reap(vm, timeout_ms)) {
		fprintf(stderr, "e2e: %s: QEMU did not exit within %d ms: killed\n", vm->name,
			timeout_ms);
		vm_kill(vm);
	}
	return vm->status;
}

void e2e_vm_times(struct e2e_vm *vm, struct e2e_vm_times *t)
{
	pthread_mutex_lock(&vm->lock);
	t->tool_start_ms = vm->tool_start_ms;
	t->guest_uptime_ms = vm->guest_uptime_ms;
	t->exit_ms = vm->exit_ms;
	pthread_mutex_unlock(&vm->lock);
}

const char *e2e_vm_console_path(const struct e2e_vm *vm)
{
	return vm->console_path;
}

const char *e2e_vm_qmp_path(const struct e2e_vm *vm)
{
	return vm->qmp_sock;
}

pid_t e2e_vm_pid(const struct e2e_vm *vm)
{
	return vm->pid;
}

void e2e_vm_dump_console(const struct e2e_vm *vm, int lines)
{
	FILE *f = fopen(vm->console_path, "r");
	char **ring = calloc((size_t)lines, sizeof(*ring));
	char buf[1024];
	int n = 0;

	if (!f || !ring) {
		if (f)
			fclose(f);
		free(ring);
		return;
	}
	while (fgets(buf, sizeof(buf), f)) {
		free(ring[n % lines]);
		ring[n % lines] = strdup(buf);
		n++;
	}
	fclose(f);
	fprintf(stderr, "---- %s: last console lines (%s) ----\n", vm->name, vm->console_path);
	for (int i = n > lines ? n - lines : 0; i < n; i++)
		fputs(ring[i % lines] ? ring[i % lines] : "\n", stderr);
	fprintf(stderr, "---- end of console ----\n");
	for (int i = 0; i < lines; i++)
		free(ring[i]);
	free(ring);
}

void e2e_vm_free(struct e2e_vm *vm)
{
	if (!vm)
		return;
	vm_kill(vm);
	if (vm->stop_pipe[1] >= 0 && write(vm->stop_pipe[1], "x", 1) < 0)
		perror("e2e: stop pipe");
	if (vm->out_thread_started)
		pthread_join(vm->out_thread, NULL);
	if (vm->con_thread_started)
		pthread_join(vm->con_thread, NULL);
	if (vm->con_fd >= 0)
		close(vm->con_fd);
	if (vm->listen_fd >= 0)
		close(vm->listen_fd);
	for (int i = 0; i < 2; i++)
		if (vm->stop_pipe[i] >= 0)
			close(vm->stop_pipe[i]);
	unlink(vm->out_sock);
	for (size_t i = 0; i < vm->n_lines; i++)
		free(vm->lines[i]);
	free(vm->lines);
	for (size_t i = 0; i < vm->n_recs; i++)
		free(vm->recs[i].data);
	free(vm->recs);
	pthread_mutex_destroy(&vm->lock);
	pthread_cond_destroy(&vm->cond);
	free(vm);
}

/* ---- QMP ---- */

/* Read one line (a QMP message) into buf; skips asynchronous events. */
static int qmp_read_reply(int fd, char *buf, size_t len, uint64_t deadline, bool want_greeting)
{
	size_t n = 0;

	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		int64_t left = (int64_t)(deadline - e2e_now_ns()) / 1000000;
		char c;
		ssize_t r;

		if ((int64_t)(deadline - e2e_now_ns()) <= 0 || poll(&p, 1, (int)left + 1) <= 0)
			return -1;
		r = read(fd, &c, 1);
		if (r <= 0)
			return -1;
		if (c != '\n') {
			if (n < len - 1)
				buf[n++] = c;
			continue;
		}
		buf[n] = '\0';
		n = 0;
		if (want_greeting ? strstr(buf, "\"QMP\"") != NULL :
				    strstr(buf, "\"return\"") || strstr(buf, "\"error\""))
			return 0;
	}
}

int e2e_qmp(const char *sock, const char *command, char *reply, size_t len, int timeout_ms,
	    char *err, size_t errlen)
{
	uint64_t deadline = e2e_now_ns() + (uint64_t)timeout_ms * 1000000;
	static const char caps[] = "{\"execute\":\"qmp_capabilities\"}\n";
	char line[4096];
	int fd = -1, rc = -1;

	while ((fd = unix_connect(sock)) < 0) {
		if (e2e_now_ns() > deadline) {
			set_err(err, errlen, "cannot connect to QMP at %s: %s", sock, strerror(errno));
			return -1;
		}
		usleep(20000);
	}
	if (qmp_read_reply(fd, line, sizeof(line), deadline, true) < 0 ||
	    write(fd, caps, sizeof(caps) - 1) != (ssize_t)sizeof(caps) - 1 ||
	    qmp_read_reply(fd, line, sizeof(line), deadline, false) < 0 ||
	    !strstr(line, "\"return\"")) {
		set_err(err, errlen, "QMP negotiation on %s failed", sock);
		goto out;
	}
	if (write(fd, command, strlen(command)) != (ssize_t)strlen(command) ||
	    write(fd, "\n", 1) != 1 || qmp_read_reply(fd, line, sizeof(line), deadline, false) < 0) {
		set_err(err, errlen, "no QMP reply to %s", command);
		goto out;
	}
	if (reply)
		snprintf(reply, len, "%s", line);
	if (strstr(line, "\"error\"")) {
		set_err(err, errlen, "QMP error: %s", line);
		goto out;
	}
	rc = 0;
out:
	close(fd);
	return rc;
}
