/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The patched QEMU for the end-to-end tests: see e2e_qemu.h. */
#include "e2e_qemu.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include "e2e_harness.h"

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
	return e2e_run_dir_script(script, "--hfe-build", hfe_build, log_path, dir, dirlen, err,
				  errlen);
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
	snprintf(q->bin, sizeof(q->bin), "%s/bin/qemu-system-x86_64", q->dir);
	if (access(q->bin, X_OK) < 0) {
		set_err(err, errlen, "%s is missing: %s", q->bin, strerror(errno));
		return -1;
	}
	/* Inherited by every QEMU started from now on. */
	setenv("LD_LIBRARY_PATH", q->libdir, 1);
	return 0;
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
	const char *p;

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
	snprintf(out, len, "%s", p);
	out[strcspn(out, "}")] = '\0';
	return 0;
}
