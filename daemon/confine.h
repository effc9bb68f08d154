/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's self-confinement, applied once its listeners are open and its
 * VMs' attach machinery is running: switch to an unprivileged user, set
 * no_new_privs, and install a seccomp allow-list of the system calls it uses.
 */
#ifndef HFE_CONFINE_H
#define HFE_CONFINE_H

#include <stdbool.h>
#include <sys/types.h>

enum hfe_seccomp_mode {
	HFE_SECCOMP_ON,  /* calls outside the list fail with EPERM */
	HFE_SECCOMP_LOG, /* allowed, but logged by the kernel (finding missing calls) */
	HFE_SECCOMP_OFF,
};

struct hfe_confine_config {
	const char *user; /* switch to this user (and its groups); NULL = stay */
	uid_t uid;        /* resolved by hfe_confine_resolve_user() */
	gid_t gid;
	enum hfe_seccomp_mode seccomp;
};

/* Look up cfg->user (before anything starts, so errors come early): 0, or -1
 * with a reason in err. */
int hfe_confine_resolve_user(struct hfe_confine_config *cfg, char *err, size_t errlen);

/* Drop privileges as configured. Applies to every thread of the process.
 * Returns 0, or -1 with a reason in err (the caller stops: a daemon that was
 * asked to confine itself must not run unconfined). */
int hfe_confine(const struct hfe_confine_config *cfg, char *err, size_t errlen);

/* Whether this build has seccomp support (libseccomp found at build time). */
bool hfe_confine_have_seccomp(void);

#endif
