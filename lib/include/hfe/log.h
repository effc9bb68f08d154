/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Library logging: one sink, replaceable (the daemon prints, QEMU would use
 * its own log). */
#ifndef HFE_LOG_H
#define HFE_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

enum hfe_log_level { HFE_LOG_ERROR, HFE_LOG_WARN, HFE_LOG_INFO, HFE_LOG_DEBUG };

typedef void (*hfe_log_fn)(enum hfe_log_level level, const char *msg, void *opaque);

/* Default sink: stderr with a timestamp, level from $HFE_LOG (error, warn,
 * info, debug; default info). */
void hfe_log_set_sink(hfe_log_fn fn, void *opaque);
void hfe_log_set_level(enum hfe_log_level level);
void hfe_log(enum hfe_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define hfe_error(...) hfe_log(HFE_LOG_ERROR, __VA_ARGS__)
#define hfe_warn(...) hfe_log(HFE_LOG_WARN, __VA_ARGS__)
#define hfe_info(...) hfe_log(HFE_LOG_INFO, __VA_ARGS__)
#define hfe_debug(...) hfe_log(HFE_LOG_DEBUG, __VA_ARGS__)

/* "helix-frame-export 0.1.0 (git abcdef)" */
const char *hfe_version_string(void);

#ifdef __cplusplus
}
#endif
#endif
