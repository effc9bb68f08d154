/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers shared by the GStreamer element tests (tests/gst/). */
#ifndef HFE_GSTTEST_H
#define HFE_GSTTEST_H

#include <stdbool.h>
#include <sys/types.h>

#include <gst/check/gstcheck.h>

/*
 * Make sure an element of the hfe plugin (e.g. "vsockenc") is available.
 * Normally the registry found the plugin through GST_PLUGIN_PATH. A
 * sanitizer build of the plugin cannot be loaded by the system's
 * gst-plugin-scanner (a separate, uninstrumented process), which then
 * blacklists it: in that case $GST_PLUGIN_PATH/libgsthfe.so is loaded
 * in-process here. Call after gst_init().
 */
bool gsttest_have_feature(const char *feature);

/*
 * The start of the vsockenc tests: SIGPIPE ignored, gst_init, GLib
 * criticals and warnings fatal, $HFE_DAEMON set, `feature` available.
 * False (with the reason on stderr) when the test cannot run.
 */
bool gsttest_init(int *argc, char ***argv, const char *feature);

/*
 * The start of a check suite (in its NAME_suite(), after gst_check_init):
 * SIGPIPE ignored, $HFE_DAEMON set, `feature` available. FALSE (with the
 * reason on stderr) when the suite cannot run.
 */
bool gsttest_suite_init(const char *feature);

/* A test case of s with a checked fixture (setup and teardown run in each
 * test's process) and a timeout; add its tests with tcase_add_test. */
TCase *gsttest_tcase(Suite *s, const char *name, void (*setup)(void), void (*teardown)(void),
		     int timeout_s);

/* A connected unix stream socket, or -1. */
int gsttest_connect_unix(const char *path);

/* The real daemon ($HFE_DAEMON) on a unix socket. */
struct gsttest_daemon {
	pid_t pid;
	char sock[200];
	char addr[220]; /* "unix:" sock */
	char log[220];
	const char *extra[8]; /* more arguments, NULL-ended */
};

/* dir/name.sock, logging to dir/name.log; extra empty; not started. */
void gsttest_daemon_init(struct gsttest_daemon *d, const char *dir, const char *name);
/* Start (or restart) the daemon; wait until it accepts (up to 10 s). The
 * daemon gets SIGKILL when the thread that started it ends, so a check test
 * that fails (its forked process exits) leaves no daemon behind. */
bool gsttest_daemon_start(struct gsttest_daemon *d);
/* Send sig, wait up to 5 s (then SIGKILL). */
void gsttest_daemon_stop(struct gsttest_daemon *d, int sig);

#endif
