/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Library logging: one sink, replaceable (the daemon prints, the QEMU module
 * files messages into QEMU's log), and for each fault whose it is. */
#ifndef HFE_LOG_H
#define HFE_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Most severe first. ERROR and WARN are the host's own faults (allocation,
 * encoder, socket, configuration): its operator has something to fix.
 * PEER is a fault of the peer's: what a client sent or failed to send (a
 * malformed message, a stall inside one). It has WARN's severity (shown
 * and filtered like WARN) but is told apart so that an embedder can file it
 * as the other side's doing: the QEMU module sends it to
 * qemu_log_mask(LOG_GUEST_ERROR), where a guest cannot flood the host's log.
 */
enum hfe_log_level { HFE_LOG_ERROR, HFE_LOG_WARN, HFE_LOG_INFO, HFE_LOG_DEBUG, HFE_LOG_PEER };

typedef void (*hfe_log_fn)(enum hfe_log_level level, const char *msg, void *opaque);

/* Default sink: stderr with a timestamp, level from $HFE_LOG (error, warn,
 * info, debug; default info). */
void hfe_log_set_sink(hfe_log_fn fn, void *opaque);
void hfe_log_set_level(enum hfe_log_level level);
void hfe_log(enum hfe_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define hfe_error(...) hfe_log(HFE_LOG_ERROR, __VA_ARGS__)
#define hfe_warn(...) hfe_log(HFE_LOG_WARN, __VA_ARGS__)
#define hfe_peer_fault(...) hfe_log(HFE_LOG_PEER, __VA_ARGS__)
#define hfe_info(...) hfe_log(HFE_LOG_INFO, __VA_ARGS__)
#define hfe_debug(...) hfe_log(HFE_LOG_DEBUG, __VA_ARGS__)

/* "helix-frame-export 0.1.0 (git abcdef)" */
const char *hfe_version_string(void);

#ifdef __cplusplus
}
#endif
#endif
