/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Logging: one replaceable sink; the default writes timestamped lines to stderr. */
#include "hfe/log.h"
#include "version.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#ifndef HFE_VERSION
#define HFE_VERSION "unknown"
#endif
#ifndef HFE_GIT
#define HFE_GIT "unknown"
#endif

#define HFE_LOG_MSG_MAX 2048

static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static hfe_log_fn sink_fn; /* NULL: the default sink */
static void *sink_opaque;

static pthread_once_t level_once = PTHREAD_ONCE_INIT;
static atomic_int log_level = HFE_LOG_INFO;
/* A bad $HFE_LOG is reported by the first hfe_log call, outside the once-init. */
static atomic_bool bad_env_pending;
static char bad_env[64];

static const char *level_name(enum hfe_log_level level)
{
	switch (level) {
	case HFE_LOG_ERROR:
		return "ERROR";
	case HFE_LOG_WARN:
		return "WARN";
	case HFE_LOG_INFO:
		return "INFO";
	case HFE_LOG_DEBUG:
		return "DEBUG";
	case HFE_LOG_PEER:
		return "WARN (peer)";
	}
	return "?";
}

/* Where a level stands for filtering: a peer's fault counts as a warning. */
static int severity(enum hfe_log_level level)
{
	if (level == HFE_LOG_PEER)
		return HFE_LOG_WARN;
	if ((int)level < HFE_LOG_ERROR || (int)level > HFE_LOG_DEBUG)
		return HFE_LOG_DEBUG;
	return level;
}

static void init_level(void)
{
	const char *e = getenv("HFE_LOG");

	if (!e || !*e)
		return;
	if (!strcasecmp(e, "error"))
		atomic_store(&log_level, HFE_LOG_ERROR);
	else if (!strcasecmp(e, "warn") || !strcasecmp(e, "warning"))
		atomic_store(&log_level, HFE_LOG_WARN);
	else if (!strcasecmp(e, "info"))
		atomic_store(&log_level, HFE_LOG_INFO);
	else if (!strcasecmp(e, "debug"))
		atomic_store(&log_level, HFE_LOG_DEBUG);
	else {
		snprintf(bad_env, sizeof(bad_env), "%s", e);
		atomic_store(&bad_env_pending, true);
	}
}

static void default_sink(enum hfe_log_level level, const char *msg, void *opaque)
{
	char line[HFE_LOG_MSG_MAX + 128];
	struct timespec ts;
	struct tm tm;
	int n;

	(void)opaque;
	memset(&tm, 0, sizeof(tm));
	if (clock_gettime(CLOCK_REALTIME, &ts) < 0 || !gmtime_r(&ts.tv_sec, &tm))
		ts.tv_nsec = 0;
	n = snprintf(line, sizeof(line),
		     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ helix-frame-export[%ld] %s: %s\n",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		     tm.tm_sec, ts.tv_nsec / 1000000, (long)getpid(), level_name(level), msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = (int)sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	/* One call per line: stdio's stream lock keeps threads' lines whole. */
	fwrite(line, 1, (size_t)n, stderr);
}

void hfe_log_set_sink(hfe_log_fn fn, void *opaque)
{
	pthread_mutex_lock(&sink_lock);
	sink_fn = fn;
	sink_opaque = fn ? opaque : NULL;
	pthread_mutex_unlock(&sink_lock);
}

void hfe_log_set_level(enum hfe_log_level level)
{
	/* Run the $HFE_LOG init first so it cannot override this later. */
	pthread_once(&level_once, init_level);
	if ((int)level < HFE_LOG_ERROR)
		level = HFE_LOG_ERROR;
	atomic_store(&log_level, severity(level));
}

static void emit(enum hfe_log_level level, const char *msg)
{
	hfe_log_fn fn;
	void *opaque;

	pthread_mutex_lock(&sink_lock);
	fn = sink_fn;
	opaque = sink_opaque;
	pthread_mutex_unlock(&sink_lock);
	/* Called unlocked so that a sink may itself log or replace the sink. */
	if (fn)
		fn(level, msg, opaque);
	else
		default_sink(level, msg, NULL);
}

void hfe_log(enum hfe_log_level level, const char *fmt, ...)
{
	char msg[HFE_LOG_MSG_MAX];
	va_list ap;
	int n, saved_errno = errno;

	pthread_once(&level_once, init_level);
	if (atomic_exchange(&bad_env_pending, false)) {
		char w[sizeof(bad_env) + 96];

		snprintf(w, sizeof(w),
			 "HFE_LOG='%s' not understood (use error, warn, info or debug); using info",
			 bad_env);
		emit(HFE_LOG_WARN, w);
	}
	if (level != HFE_LOG_PEER && (int)level > HFE_LOG_DEBUG)
		level = HFE_LOG_DEBUG;
	if (severity(level) > atomic_load(&log_level))
		goto out;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0) {
		snprintf(msg, sizeof(msg), "(unformattable log message: %s)", fmt);
	} else if ((size_t)n >= sizeof(msg)) {
		memcpy(msg + sizeof(msg) - 4, "...", 4);
	}
	/* The sink adds the line end. */
	n = (int)strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	emit(level, msg);
out:
	/* Callers may log between a failure and their use of errno. */
	errno = saved_errno;
}

const char *hfe_version_string(void)
{
	return "helix-frame-export " HFE_VERSION " (git " HFE_GIT ")";
}
