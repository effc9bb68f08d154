/*
 * helix-frame-export: libhfe's messages filed the QEMU way
 *
 * libhfe says whose fault a message reports (hfe/log.h): the peer's (what a
 * client sent or failed to send; for the guest's port that is guest input)
 * goes to qemu_log_mask(LOG_GUEST_ERROR), shown with -d guest_errors, so a
 * misbehaving guest cannot flood the host's log; the host's own errors and
 * warnings (allocation, encoder, socket) go to error_report/warn_report;
 * information and debug lines become the helix_log trace event.
 *
 * Copyright (c) 2025 helix-frame-export contributors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/log.h"
#include "helix.h"
#include "trace.h"

void helix_log_sink(enum hfe_log_level level, const char *msg, void *opaque)
{
    switch (level) {
    case HFE_LOG_PEER:
        qemu_log_mask(LOG_GUEST_ERROR, "helix-frame-export: %s\n", msg);
        break;
    case HFE_LOG_ERROR:
        error_report("helix-frame-export: %s", msg);
        break;
    case HFE_LOG_WARN:
        warn_report("helix-frame-export: %s", msg);
        break;
    default:
        trace_helix_log((int)level, msg);
        break;
    }
}
