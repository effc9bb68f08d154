/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Host side of the end-to-end tests: get the cached test guest, pick KVM or
 * TCG, start the real daemon, boot the guest under QEMU with its
 * virtio-serial ports, follow its console and collect what it writes to its
 * out port. Every wait has a timeout; QEMU and the daemon die with the test
 * process (PR_SET_PDEATHSIG), and every run keeps its console log and raw
 * out-port stream in the work directory. See docs/e2e.md.
 *
 * Environment (set by tests/e2e/meson.build, all overridable by hand):
 *   HFE_E2E_BUILD_GUEST  tests/e2e/build-guest.sh
 *   HFE_E2E_BUILD_DESKTOP tests/e2e/build-desktop-image.sh (the desktop guest)
 *   HFE_E2E_GUEST_TOOL   the static hfe-guest binary to put into the guest
 *   HFE_E2E_GUEST_TOOL_AARCH64 the same for the arm64 guest (cross-built)
 *   HFE_E2E_ARCH         x86_64 | aarch64: the guest's architecture when the test's
 *                        command line has no --arch (default x86_64)
 *   HFE_E2E_GUEST_DIR    use this prebuilt guest directory instead
 *   HFE_E2E_ACCEL        kvm | tcg (skip the KVM probe)
 *   HFE_E2E_QEMU         QEMU binary (default qemu-system-x86_64, -aarch64 for arm64)
 *   HFE_E2E_VERBOSE      1: full kernel log on the console (no "quiet")
 *   HFE_E2E_KEEP         1: keep work directories even when a test passes
 *   HFE_DAEMON           the helix-frame-export binary
 */
#ifndef HFE_E2E_HARNESS_H
#define HFE_E2E_HARNESS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "e2e_out.h"

/* Names of the guest's virtio-serial ports. */
#define E2E_PORT_HFE "org.helix.hfe.0"
#define E2E_PORT_OUT "org.helix.out.0"

/* ---- the guest's architecture ---- */

/*
 * The architecture of the guests this test process boots: "x86_64" (q35) or
 * "aarch64" (arm64 under QEMU's virt machine, -cpu cortex-a72, console
 * ttyAMA0; docs/e2e.md, "arm64 guests"). e2e_arch_args takes "--arch ARCH"
 * out of argv (the meson test entries of the aarch64 variants pass it);
 * $HFE_E2E_ARCH is the default. -1 with a message on stderr for an unknown
 * architecture.
 */
int e2e_arch_args(int *argc, char **argv);
const char *e2e_arch(void);

/* ---- the guest image ---- */

struct e2e_guest {
	char dir[PATH_MAX];
	char arch[16];              /* "x86_64" or "aarch64" */
	char kernel[PATH_MAX + 16]; /* vmlinux (PVH entry, fast under TCG) or vmlinuz */
	char initrd[PATH_MAX + 16];
	char rootfs[PATH_MAX + 16]; /* the desktop guest's root image, attached read-only as
				     * a virtio disk; "" for the busybox guest */
	double build_ms;            /* time spent in the build script (cache hit: ~2 s) */
};

/* Run `bash script args...` (args NULL-terminated, or NULL): its last stdout
 * line names a directory (copied to dir), its stderr goes to log_path. -1 with
 * err (naming the log's last ERROR line) if it fails, or if it has not
 * finished after timeout_s (> 0; its process group is killed then). Used for
 * the guest builders and qemu/build.sh. */
int e2e_run_dir_script(const char *script, const char *const *args, const char *log_path,
		       int timeout_s, char *dir, size_t dirlen, char *err, size_t errlen);

/* Build the guest of e2e_arch() or find it in the cache (runs
 * $HFE_E2E_BUILD_GUEST --tool TOOL --arch ARCH, its output goes to log_path
 * when not NULL). 0, or -1 with a reason in err. */
int e2e_guest_get(struct e2e_guest *g, const char *log_path, char *err, size_t errlen);

/* The desktop guest (docs/e2e.md, "The desktop guest"): a small Debian system
 * with Mesa/virgl, kmscube and weston. Runs $HFE_E2E_BUILD_DESKTOP (a cache
 * hit: ~0.5 s; a cold build ~10 min, needs root and the Debian mirror), its
 * progress to log_path; a build still running after timeout_s is killed and
 * is a failure saying so. Boot it with e2e_vm_start like the test guest: the
 * harness attaches g->rootfs; give it mem_mb >= 1024. Its console lines start
 * with "HFE-DESKTOP: " (e2e_vm_wait_line matches them like the test guest's). */
int e2e_desktop_get(struct e2e_guest *g, const char *log_path, int timeout_s, char *err,
		    size_t errlen);

/* "kvm" or "tcg": $HFE_E2E_ACCEL; else KVM only when /dev/kvm opens and a
 * probe boot of g under KVM reaches the guest tool (a nested KVM may accept
 * the VM and then never run it). The verdict is cached per host boot next
 * to the guest. */
const char *e2e_accel(const struct e2e_guest *g);

/* ---- the daemon ---- */

struct e2e_daemon {
	pid_t pid;
	char sock[PATH_MAX];       /* unix socket it listens on */
	char log[PATH_MAX];
};

/* Start $HFE_DAEMON --listen unix:WORKDIR/NAME.sock [extra_args...] and wait
 * until it accepts connections. 0, or -1 with err. */
int e2e_daemon_start(struct e2e_daemon *d, const char *workdir, const char *name,
		     const char *const *extra_args, char *err, size_t errlen);
/* SIGTERM and wait (10 s, then SIGKILL). Returns the waitpid status, -1 if
 * it could not be reaped; 0 if it was not running. */
int e2e_daemon_stop(struct e2e_daemon *d);
/* Connect to addr and SUBSCRIBE to scanout id: 1 accepted, 0 refused, -1
 * error (on stderr). *out: the connection (NULL if none; the caller closes
 * it, also after a refusal). */
struct hfe_client;
int e2e_subscribe(const char *addr, uint32_t id, struct hfe_client **out);
/* Read until nothing comes for timeout_ms: how many FRAME_RESPONSEs (access
 * units) came, -1 if the connection failed. */
int e2e_drain_aus(struct hfe_client *c, int timeout_ms);

/* ---- a VM run ---- */

struct e2e_vm_config {
	const char *qemu;           /* NULL: $HFE_E2E_QEMU or qemu-system-ARCH */
	const char *accel;          /* NULL: e2e_accel() */
	const char *append;         /* hfe.* parameters (added to the kernel command line) */
	const char *hfe_sock;       /* chardev socket behind org.helix.hfe.0 (QEMU connects
				     * with reconnect=1); NULL: no such port */
	const char *gpu;            /* the GPU device; NULL: virtio-gpu-pci */
	unsigned fb_width;          /* virtio-gpu xres/yres; 0: the device's default */
	unsigned fb_height;
	unsigned max_outputs;       /* virtio-gpu outputs; 0: the device's default (1) */
	const char *nic;            /* -nic value, e.g. "user,model=virtio-net-pci" (the guest
				     * then wants hfe.net=1); NULL: none */
	const char *display;        /* -display value; NULL: none */
	bool qmp;                   /* add -qmp unix:WORKDIR/NAME-qmp.sock,server=on,wait=off */
	const char *const *extra_args; /* appended to QEMU's command line as they are */
	unsigned mem_mb;            /* 0: 512 */
	int timeout_ms;             /* the whole run; QEMU is killed after it; 0: 180000 */
};

/* One out-port record as received. */
struct e2e_rec {
	struct e2e_rec_hdr h;
	uint8_t *data;    /* h.len bytes, NUL-terminated for convenience */
	uint64_t host_ns; /* host monotonic clock when the record was complete */
};

/* Times of a run, in ms since QEMU was started (-1: not seen). */
struct e2e_vm_times {
	double tool_start_ms;   /* console line "HFE-GUEST: start" */
	double guest_uptime_ms; /* the guest kernel's uptime at that moment */
	double exit_ms;         /* QEMU exited */
};

struct e2e_vm;

/* Boot the guest. Files in workdir: NAME-console.log, NAME-out.bin,
 * NAME-out.sock, NAME-qmp.sock. NULL with err on failure. */
struct e2e_vm *e2e_vm_start(const struct e2e_guest *g, const char *workdir, const char *name,
			    const struct e2e_vm_config *cfg, char *err, size_t errlen);

/* Wait for the console line "HFE-GUEST: <what>..." (or "HFE-DESKTOP: <what>"
 * from the desktop guest; prefix match; lines seen earlier count). Copies the
 * text after the tag to line. Returns 1,
 * 0 on timeout, -1 if QEMU's console closed without it. */
int e2e_vm_wait_line(struct e2e_vm *vm, const char *what, char *line, size_t len,
		     int timeout_ms);

/* Out-port record number i (0, 1, ... in arrival order). Returns 1 with *rec
 * (valid until e2e_vm_free), 0 on timeout, -1 when no record i will come
 * (the stream ended, failed to parse, or QEMU is gone). */
int e2e_vm_record(struct e2e_vm *vm, size_t i, const struct e2e_rec **rec, int timeout_ms);
/* Bytes received on the out port so far. */
uint64_t e2e_vm_out_bytes(struct e2e_vm *vm);

/* Wait for QEMU to exit; kill it after timeout_ms. Returns its waitpid
 * status, or -1 if it had to be killed. */
int e2e_vm_wait_exit(struct e2e_vm *vm, int timeout_ms);
void e2e_vm_times(struct e2e_vm *vm, struct e2e_vm_times *t);
const char *e2e_vm_console_path(const struct e2e_vm *vm);
const char *e2e_vm_qmp_path(const struct e2e_vm *vm);
/* QEMU's process id (for /proc). */
pid_t e2e_vm_pid(const struct e2e_vm *vm);
/* Print the console's last lines to stderr (for a failure report). */
void e2e_vm_dump_console(const struct e2e_vm *vm, int lines);
/* Kill QEMU if it still runs, join the threads, free. */
void e2e_vm_free(struct e2e_vm *vm);

/* ---- QMP ---- */

/* Connect to a QMP socket, negotiate, run one command (a JSON object text)
 * and copy the reply line to reply. 0 if the reply is a "return", -1
 * otherwise (err says why). */
int e2e_qmp(const char *sock, const char *command, char *reply, size_t len, int timeout_ms,
	    char *err, size_t errlen);

/* ---- misc ---- */

uint64_t e2e_now_ns(void);
/* End of a test's main: print its total time since t0_ns, keep the work
 * directory (failures, HFE_E2E_KEEP=1) or remove it, free it, and return
 * tu_finish(name). */
int e2e_test_finish(const char *name, char *workdir, uint64_t t0_ns);
/* Reference picture i of a run, drawn as packed RGB (w x h). */
typedef void (*e2e_reference_fn)(uint8_t *rgb, uint32_t w, uint32_t h, int i, void *ctx);

/*
 * Decode a run's access units with errors fatal and compare picture i with
 * reference i: exactly `want` AUs, the first an IDR with SPS/PPS, one w x h
 * picture per AU, each at >= min_psnr dB (the lowest of Y, U and V). Every
 * miss is a failed CHECK; prints one summary line headed `what`.
 */
void e2e_check_pictures(const char *what, const struct e2e_rec *const *aus, int n, int want,
			uint32_t w, uint32_t h, double min_psnr, e2e_reference_fn reference,
			void *ctx);
/* The nearest-rank percentile p (0..1) of n values (sorted in place); NAN
 * if n is 0. */
double e2e_pctl(double *v, size_t n, double p);
/* "key=value" lookups in a text line: the number after "key=", or def. */
double e2e_kv_num(const char *text, const char *key, double def);

#endif
