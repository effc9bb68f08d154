/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon's event loop: listeners, client connections, scanout sources. */
#ifndef HFE_SERVER_H
#define HFE_SERVER_H

#include <stdint.h>

#include "hfe/addr.h"
#include "hfe/host.h"
#include "confine.h"

#define HFE_SERVER_MAX_LISTEN 16
#define HFE_SERVER_MAX_VMS 16

/* A scanout served from the built-in test source (no VM needed). */
struct hfe_test_scanout {
	uint32_t id;
	uint32_t width, height, fps;
};

/* A VM whose screen comes from stock QEMU's -display dbus (qemu_dbus.h). It
 * has its own host (hub, sessions): only its own listeners reach it. */
struct hfe_server_vm {
	char name[64];      /* for logs */
	char qmp_path[108]; /* QEMU's -qmp unix socket */
	uint32_t consoles[HFE_MAX_SCANOUTS]; /* served as scanout id = console index */
	unsigned n_consoles;
};

struct hfe_server_config {
	struct hfe_addr listen[HFE_SERVER_MAX_LISTEN];
	/* 0: listen[i] serves the default host (pull mode, test scanouts);
	 * k > 0: it serves vms[k - 1] only. */
	unsigned listen_vm[HFE_SERVER_MAX_LISTEN];
	/* listen[i] is a control listener: its clients may inject input into
	 * the VM's consoles they watch (--control-listen) */
	bool listen_control[HFE_SERVER_MAX_LISTEN];
	unsigned n_listen;
	struct hfe_server_vm vms[HFE_SERVER_MAX_VMS];
	unsigned n_vms;
	unsigned max_clients;    /* connections at once; more get ERROR BUSY */
	int shutdown_timeout_ms; /* SIGTERM: time given to frames in flight */
	struct hfe_host_config host; /* limits, queues, timeouts, encoder */
	struct hfe_test_scanout test_scanouts[HFE_MAX_SCANOUTS];
	unsigned n_test_scanouts;
	uint32_t max_fps; /* scanout streams: encode at most this often */
	bool no_patch_frames; /* scanout streams: every change through the encoder */
	struct hfe_unix_perm unix_perm;  /* unix listeners' mode and owner */
	struct hfe_confine_config confine; /* applied once listening (confine.h) */
};

void hfe_server_config_default(struct hfe_server_config *cfg);

/* Run until SIGINT/SIGTERM (installed here). Returns 0 on a clean shutdown,
 * non-zero if a listener could not be set up. */
int hfe_server_run(const struct hfe_server_config *cfg);

#endif
