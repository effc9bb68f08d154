/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon drops what it no longer needs once it is listening and its VMs'
 * attach machinery runs: another user (--user), no_new_privs, and a seccomp
 * allow-list (libseccomp) of the calls its loop, the encoder's threads, GLib's
 * D-Bus threads and glibc make. Calls outside the list fail with EPERM rather
 * than killing the process: a forbidden call is refused just the same, and a
 * call nobody foresaw (a rare glibc or FFmpeg path) becomes an error the code
 * handles, not the loss of every VM's stream. --seccomp=log finds such calls
 * (the kernel logs them as "audit: type=1326 ... syscall=N"; dmesg).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "confine.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hfe/log.h"

#ifdef HFE_HAVE_SECCOMP
#include <seccomp.h>
#endif

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

bool hfe_confine_have_seccomp(void)
{
#ifdef HFE_HAVE_SECCOMP
	return true;
#else
	return false;
#endif
}

int hfe_confine_resolve_user(struct hfe_confine_config *cfg, char *err, size_t errlen)
{
	struct passwd *pw;

	if (!cfg->user)
		return 0;
	errno = 0;
	pw = getpwnam(cfg->user);
	if (!pw) {
		set_err(err, errlen, "no such user '%s'%s%s", cfg->user, errno ? ": " : "",
			errno ? strerror(errno) : "");
		return -1;
	}
	cfg->uid = pw->pw_uid;
	cfg->gid = pw->pw_gid;
	return 0;
}

/* setgid/initgroups/setuid; glibc applies each to every thread. */
static int switch_user(const struct hfe_confine_config *cfg, char *err, size_t errlen)
{
	if (!cfg->user) {
		if (geteuid() == 0)
			hfe_warn("running as root: consider --user (the unix sockets, the QMP "
				 "sockets and vsock need no root once they are open)");
		return 0;
	}
	if (initgroups(cfg->user, cfg->gid) < 0 || setgid(cfg->gid) < 0 ||
	    setuid(cfg->uid) < 0) {
		set_err(err, errlen, "cannot switch to user '%s': %s", cfg->user, strerror(errno));
		return -1;
	}
	/* Must not be able to go back. */
	if (cfg->uid != 0 && setuid(0) == 0) {
		set_err(err, errlen, "switched to '%s' but could regain root", cfg->user);
		return -1;
	}
	hfe_info("running as user %s (uid %u, gid %u)", cfg->user, (unsigned)cfg->uid,
		 (unsigned)cfg->gid);
	return 0;
}

#ifdef HFE_HAVE_SECCOMP
/*
 * Found by running the integration and e2e suites under --seccomp=log. No
 * exec, no ptrace, no bind/listen (listeners are open already), no mount,
 * no setuid, no module or keyring calls.
 */
static const char *const allowed[] = {
	/* memory */
	"brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "membarrier",
	/* threads and time */
	"clone", "exit", "exit_group", "futex", "futex_waitv", "set_robust_list",
	"get_robust_list", "rseq", "set_tid_address", "gettid", "getpid", "sched_yield",
	"sched_getaffinity", "sched_setscheduler", "sched_getscheduler", "sched_getparam",
	"sched_getattr", "sched_setattr", /* GLib's new threads copy their creator's */
	"setpriority", "getpriority", "nanosleep", "clock_nanosleep", "clock_gettime",
	"clock_getres", "gettimeofday", "time", "getrandom", "restart_syscall",
	/* signals */
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "rt_sigpending",
	"sigaltstack",
	/* descriptors, files (GLib and FFmpeg read /proc and /sys, encoders open nothing) */
	"read", "write", "readv", "writev", "pread64", "pwrite64", "close", "close_range",
	"openat", "open", "fstat", "newfstatat", "stat", "lstat", "statx", "lseek", "fcntl",
	"dup", "dup2", "dup3", "pipe", "pipe2", "eventfd2", "poll", "ppoll", "select",
	"pselect6", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "ioctl",
	"readlink", "readlinkat", "getdents64", "access", "faccessat", "faccessat2",
	"unlink", "getcwd", "uname", "sysinfo", "prlimit64", "getrlimit", "getrusage",
	"getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
	/* sockets: accept clients, reach QEMU's QMP socket, pass D-Bus fds */
	"accept", "accept4", "connect", "socketpair", "getsockname", "getpeername",
	"getsockopt", "setsockopt", "sendmsg", "recvmsg", "sendto", "recvfrom", "sendmmsg",
	"recvmmsg", "shutdown",
#ifdef __SANITIZE_ADDRESS__
	/* LeakSanitizer's check at exit stops the threads from a ptrace'ing
	 * child and lists /proc/self/task: test builds only. */
	"ptrace", "wait4", "getppid", "getdents",
#endif
};

/* 1 added, 0 not a call of this architecture (e.g. open on arm64), -errno. */
static int add_rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n,
		    struct scmp_arg_cmp *cmp)
{
	int nr = seccomp_syscall_resolve_name(name);
	int rc;

	if (nr == __NR_SCMP_ERROR)
		return 0;
	rc = seccomp_rule_add_array(ctx, action, nr, n, cmp);
	return rc < 0 ? rc : 1;
}

static int install_seccomp(enum hfe_seccomp_mode mode, char *err, size_t errlen)
{
	uint32_t deny = mode == HFE_SECCOMP_LOG ? SCMP_ACT_LOG : SCMP_ACT_ERRNO(EPERM);
	const uint64_t ns_flags = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
				  CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET;
	scmp_filter_ctx ctx = seccomp_init(deny);
	const char *what = "seccomp_init";
	int rc = -ENOMEM;
	unsigned n_allowed = 5; /* clone, tgkill, kill, socket, prctl: below, arguments checked */

	if (!ctx)
		goto fail;
	/* Every thread, also GLib's and the encoders' that exist already. */
	what = "seccomp_attr_set(TSYNC)";
	if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) < 0)
		goto fail;
	what = "seccomp_rule_add";
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		struct scmp_arg_cmp none[1];

		if (!strcmp(allowed[i], "clone"))
			continue; /* below, with its flags checked */
		if ((rc = add_rule(ctx, SCMP_ACT_ALLOW, allowed[i], 0, none)) < 0)
			goto fail;
		n_allowed += (unsigned)rc;
	}
	/* Threads yes, namespaces no. clone3's flags sit behind a pointer seccomp
	 * cannot read: ENOSYS makes glibc fall back to clone. */
	struct scmp_arg_cmp no_ns[] = { SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags, 0) };
	if ((rc = add_rule(ctx, SCMP_ACT_ALLOW, "clone", 1, no_ns)) < 0 ||
	    (rc = add_rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, no_ns)) < 0)
		goto fail;
	/* Signals only to this process (pthread_kill, abort). */
	struct scmp_arg_cmp self[] = { SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()) };
	if ((rc = add_rule(ctx, SCMP_ACT_ALLOW, "tgkill", 1, self)) < 0 ||
	    (rc = add_rule(ctx, SCMP_ACT_ALLOW, "kill", 1, self)) < 0)
		goto fail;
#ifdef __SANITIZE_ADDRESS__
	/* LeakSanitizer's tracer is another process; it sets its death signal
	 * and the dumpable flag. */
	if ((rc = add_rule(ctx, SCMP_ACT_ALLOW, "kill", 0, self)) < 0 ||
	    (rc = add_rule(ctx, SCMP_ACT_ALLOW, "prctl", 0, self)) < 0)
		goto fail;
#endif
	/* New sockets: unix only (QMP, D-Bus socketpairs). */
	struct scmp_arg_cmp unix_only[] = { SCMP_A0(SCMP_CMP_EQ, AF_UNIX) };
	if ((rc = add_rule(ctx, SCMP_ACT_ALLOW, "socket", 1, unix_only)) < 0)
		goto fail;
	/* prctl: thread names only. */
	static const int prctl_ok[] = { PR_SET_NAME, PR_GET_NAME };
	for (size_t i = 0; i < sizeof(prctl_ok) / sizeof(prctl_ok[0]); i++) {
		struct scmp_arg_cmp op[] = { SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)prctl_ok[i]) };

		if ((rc = add_rule(ctx, SCMP_ACT_ALLOW, "prctl", 1, op)) < 0)
			goto fail;
	}
	what = "seccomp_load";
	if ((rc = seccomp_load(ctx)) < 0)
		goto fail;
	seccomp_release(ctx);
	hfe_info("seccomp filter on (%s): %u system calls allowed",
		 mode == HFE_SECCOMP_LOG ? "log mode: others allowed and logged to the kernel log"
					 : "others fail with EPERM",
		 n_allowed);
	return 0;
fail:
	if (ctx)
		seccomp_release(ctx);
	set_err(err, errlen, "seccomp: %s: %s", what, strerror(-rc));
	return -1;
}
#endif

/*
 * HFE_TEST_FORBIDDEN_SYSCALL=1 (tests only): try a call the filter forbids and
 * log what happened. execve of a path that does not exist changes nothing
 * either way: ENOENT means the call reached the kernel, EPERM that it did not.
 */
static void try_forbidden(void)
{
	const char *v = getenv("HFE_TEST_FORBIDDEN_SYSCALL");
	char *const argv[] = { "hfe-forbidden", NULL };

	if (!v || strcmp(v, "1"))
		return;
	execve("/nonexistent/hfe-forbidden-syscall-test", argv, argv + 1);
	hfe_warn("forbidden-syscall test: execve: %s (%s)", strerror(errno),
		 errno == EPERM ? "refused by the filter" : "NOT refused by the filter");
}

int hfe_confine(const struct hfe_confine_config *cfg, char *err, size_t errlen)
{
	int rc = 0;

	if (switch_user(cfg, err, errlen) < 0)
		return -1;
	/* execve can never grant privileges again (setuid binaries, file caps). */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		set_err(err, errlen, "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
		return -1;
	}
	if (cfg->seccomp == HFE_SECCOMP_OFF) {
		hfe_warn("seccomp filter off (--no-seccomp)");
	} else {
#ifdef HFE_HAVE_SECCOMP
		rc = install_seccomp(cfg->seccomp, err, errlen);
#else
		hfe_warn("seccomp filter not available: this build has no libseccomp "
			 "(install libseccomp-dev and rebuild)");
#endif
	}
	if (rc == 0)
		try_forbidden();
	return rc;
}
