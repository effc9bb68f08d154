/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The patched QEMU with the helix-frame-export module (qemu/), for the
 * end-to-end tests that boot the guest under it: build it or find it in the
 * cache (qemu/build.sh), and set up what it needs at run time (the project's
 * libhfe on LD_LIBRARY_PATH, Debian's firmware directories).
 *
 * Environment (set by tests/e2e/meson.build):
 *   HFE_QEMU_BUILD   qemu/build.sh
 *   HFE_BUILD_ROOT   the project's build directory (its libhfe is linked and loaded)
 *   HFE_E2E_QEMU_DIR use this build (DIR/bin/qemu-system-x86_64 and -aarch64) instead
 *                    of running build.sh
 */
#ifndef HFE_E2E_QEMU_H
#define HFE_E2E_QEMU_H

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "e2e_harness.h"

struct e2e_qemu {
	char dir[PATH_MAX];
	char bin[PATH_MAX + 32]; /* DIR/bin/qemu-system-ARCH (e2e_arch()) */
	char libdir[PATH_MAX];   /* the project build's lib/ (LD_LIBRARY_PATH) */
	double build_ms;         /* time spent in build.sh (cache hit: < 1 s) */
};

/*
 * The sandbox libvirt starts QEMU in by default; every module test runs
 * under it (the module must not need what it forbids: new processes,
 * privileges, scheduling changes).
 */
#define E2E_QEMU_SANDBOX "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

/* The firmware search path arguments the self-built binary needs. */
#define E2E_QEMU_FIRMWARE_ARGS "-L", "/usr/share/qemu", "-L", "/usr/share/seabios", "-L", \
			       "/usr/lib/ipxe/qemu"

/*
 * Build the patched QEMU or find it in the cache (build.sh's progress goes
 * to log_path), and point LD_LIBRARY_PATH at the project's libhfe for the
 * QEMU processes started afterwards. 0, or -1 with a reason in err: a QEMU
 * that cannot be built is a test failure.
 */
int e2e_qemu_get(struct e2e_qemu *q, const char *log_path, char *err, size_t errlen);

/*
 * What every module test needs first: the patched QEMU (e2e_qemu_get, log
 * WORKDIR/qemu-build.log) and the test guest (e2e_guest_get, log
 * WORKDIR/build-guest.log); prints which QEMU and how long build.sh took.
 * 0, or -1 with err saying which of the two failed and why.
 */
int e2e_qemu_prepare(struct e2e_qemu *q, struct e2e_guest *g, const char *workdir, char *err,
		     size_t errlen);

/*
 * Boot the guest under the patched QEMU with the module's object
 *   -object helix-frame-export,id=hfe0,listen=unix:WORKDIR/NAME-hfe.sock[,OBJECT_OPTS]
 * (QOM path /objects/hfe0), in QEMU's sandbox (-sandbox E2E_QEMU_SANDBOX),
 * and the guest's HXFR port connected to that
 * socket, so the guest talks to the module in its own QEMU; no daemon.
 * cfg as for e2e_vm_start, but its qemu and hfe_sock are set here and its
 * extra_args come after the firmware path and the object. The socket's
 * path goes to sock when not NULL (for clients from the host). The
 * sanitizer preload is handled (e2e_qemu_env_begin/end). NULL with err.
 */
struct e2e_vm *e2e_qemu_vm_start(const struct e2e_qemu *q, const struct e2e_guest *g,
				 const char *workdir, const char *name, const char *object_opts,
				 const struct e2e_vm_config *cfg, char *sock, size_t socklen,
				 char *err, size_t errlen);

/*
 * The GL display NAME ("egl-headless", "helix") as a -display value: with
 * ",rendernode=/dev/null" where the host has no DRM render node (QEMU opens
 * the named file anyway and Mesa's GBM falls back to llvmpipe; see
 * qemu/README.md, "OpenGL consoles").
 */
void e2e_gl_display(const char *name, char *buf, size_t len);

/* A desktop guest run (e2e_desktop_get's image) under the patched QEMU. */
struct e2e_desktop_run {
	const char *display;     /* "helix" or "egl-headless": virtio-gpu-gl-pci (virgl) under
				  * that display (e2e_gl_display); NULL: 2D virtio-gpu-pci, no
				  * display */
	unsigned width, height;  /* the output's preferred mode (xres, yres); 0: 1280x800 */
	const char *append;      /* hfe.* words for the guest's init, e.g. hfe.session=none
				  * hfe.run="kmscube -c 600" hfe.poweroff=1 */
	const char *object_opts; /* more -object helix-frame-export options, or NULL */
	int timeout_ms;          /* the whole run (0: 180 s) */
};

/*
 * Boot the desktop guest d under the patched QEMU (-m 2048 -smp 2, threads
 * named) with the module's object listening on its unix socket and on a
 * free TCP port of 127.0.0.1, whose address ("tcp:127.0.0.1:PORT") goes to
 * tcp_addr; QMP on. In the sandbox, as every module test. NULL with err.
 */
struct e2e_vm *e2e_desktop_vm_start(const struct e2e_qemu *q, const struct e2e_guest *d,
				    const char *workdir, const char *name,
				    const struct e2e_desktop_run *run, char *tcp_addr,
				    size_t addrlen, char *err, size_t errlen);

/* kmscube's own frame rate: its console lines "Rendered N frames in T sec
 * (F fps)" (every ~2 s, counted from its second frame; the last one covers
 * the whole run). The number of such lines in vm's console log so far, with
 * the last one's figures; 0 if there is none. */
int e2e_kmscube_fps(const struct e2e_vm *vm, unsigned *frames, double *secs, double *fps);

/* CPU time of a process (0 for pid <= 0): all threads (exited ones
 * included), its vCPU threads ("CPU n/TCG", named with -name
 * debug-threads=on), and its main thread (QEMU's main loop). ms. */
struct e2e_cpu {
	double all_ms, vcpu_ms, main_ms;
	double export_ms; /* the export's threads: "hfe *" (libhfe, x264's) and "helix-*" */
	double gl_ms;     /* Mesa's llvmpipe rasterizer threads ("llvmpipe-N") */
	double main_wakes; /* the main thread's voluntary context switches: each
			    * time its main loop slept and was woken */
	/* Each live thread's run time, for e2e_cpu_delta. */
	unsigned n_threads;
	struct e2e_thread_cpu {
		pid_t tid;
		enum { E2E_THREAD_OTHER, E2E_THREAD_VCPU, E2E_THREAD_EXPORT, E2E_THREAD_GL } kind;
		double ms;
	} threads[128];
};
struct e2e_cpu e2e_proc_cpu(pid_t pid);
/* What b (a later snapshot of the same process) adds to a, thread by thread:
 * a thread that exited between the two counts in all_ms only, its time
 * before a is not taken away from its kind (an encoder's threads end when
 * a subscriber comes or goes). */
struct e2e_cpu e2e_cpu_delta(const struct e2e_cpu *a, const struct e2e_cpu *b);
/* The export's threads of a QEMU process ("hfe *", "helix-*"): how many,
 * how many of them are background ones (SCHED_BATCH at nice 10 or lower),
 * and in `normal` the first that is not (empty if none). */
unsigned e2e_export_threads(pid_t pid, unsigned *background, char *normal, size_t len);

/* What a guest run wrote to its out port, up to END. The records stay
 * valid until e2e_vm_free. */
struct e2e_records {
	const struct e2e_rec **aus;   /* AU records, in arrival order */
	int n_aus;
	const struct e2e_rec **draws; /* DRAW records, in arrival order */
	int n_draws;
	const struct e2e_rec *end;    /* the END record; NULL if it never came */
};

/* Collect out-port records 0, 1, ... until END, waiting up to timeout_ms
 * for each. 0 once END came, -1 if the stream stopped or timed out first
 * (what came until then is kept). Free with e2e_records_free. */
int e2e_records_collect(struct e2e_vm *vm, struct e2e_records *r, int timeout_ms);
void e2e_records_free(struct e2e_records *r);
/* A test check: the run ended with an END record saying result=ok. */
void e2e_records_check_end(const struct e2e_records *r);

/*
 * Around e2e_vm_start of the patched QEMU in a sanitized test build: its
 * libhfe is instrumented, so the sanitizer runtime must be preloaded into
 * the uninstrumented QEMU. No-op in plain builds. e2e_qemu_env_end undoes it
 * (so that other children do not get the preload).
 */
void e2e_qemu_env_begin(void);
void e2e_qemu_env_end(void);
/* The sanitizer runtime a process loading this build's libhfe must preload
 * (sanitized builds): 0 with its path, -1 in plain builds. */
int e2e_qemu_preload(char *path, size_t len);

/* qom-get of an object property through QMP, as the reply's JSON value after
 * "return": (a number, a quoted string, or an object such as the module's
 * stats). 0, or -1 with err. */
int e2e_qemu_qom_get(const char *qmp_sock, const char *path, const char *prop, char *out,
		     size_t len, char *err, size_t errlen);
/* The number of member KEY in a JSON object's text (the first member of that
 * name at any depth: the module's stats name each top-level figure once), or
 * def if there is none. */
double e2e_qemu_json_num(const char *json, const char *key, double def);

/*
 * The main-loop baseline beside a module run: bench-loop-jitter SECONDS
 * --wake (HFE_BUILD_ROOT/bench/), a loop of ~20 us callbacks that each also
 * send 16 KB to a thread blocked reading them; its histogram of their CPU
 * times is what this machine charges such a callback (bench/README.md).
 * e2e_baseline_start runs it in the background (NULL: no HFE_BUILD_ROOT or
 * no process); e2e_baseline_end waits for it and copies its one result line
 * ("ctl_calls=N ... ctl_hist_cpu_us=a/b/..."), 0, or -1 with line empty.
 */
FILE *e2e_baseline_start(double seconds);
int e2e_baseline_end(FILE *baseline, char *line, size_t len);

/*
 * main() of a test that runs on both hosts: `NAME [dbus|module]` (default
 * both) calls dbus() and/or module() with the test guest and a work
 * directory, then returns e2e_test_finish's code.
 */
typedef void (*e2e_host_run)(const struct e2e_guest *g, const char *workdir);
int e2e_both_hosts_main(int argc, char **argv, const char *name, e2e_host_run dbus,
			e2e_host_run module);

#endif
