/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "gsttest.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gst/gst.h>

#include "test_util.h"

bool gsttest_have_feature(const char *feature)
{
	GstPluginFeature *f = gst_registry_lookup_feature(gst_registry_get(), feature);
	const char *dir = getenv("GST_PLUGIN_PATH");

	if (!f && dir) {
		gchar *path = g_build_filename(dir, "libgsthfe.so", NULL);
		GError *err = NULL;
		GstPlugin *p = gst_plugin_load_file(path, &err);
		if (p)
			gst_object_unref(p);
		else
			fprintf(stderr, "loading %s: %s\n", path, err ? err->message : "?");
		g_clear_error(&err);
		g_free(path);
		f = gst_registry_lookup_feature(gst_registry_get(), feature);
	}
	if (!f) {
		fprintf(stderr, "%s not found (GST_PLUGIN_PATH=%s)\n", feature, dir ? dir : "");
		return false;
	}
	gst_object_unref(f);
	return true;
}

bool gsttest_init(int *argc, char ***argv, const char *feature)
{
	signal(SIGPIPE, SIG_IGN);
	gst_init(argc, argv);
	g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
	if (!getenv("HFE_DAEMON")) {
		fprintf(stderr, "HFE_DAEMON is not set (run through meson test)\n");
		return false;
	}
	return gsttest_have_feature(feature);
}

bool gsttest_suite_init(const char *feature)
{
	signal(SIGPIPE, SIG_IGN);
	if (!getenv("HFE_DAEMON")) {
		fprintf(stderr, "HFE_DAEMON is not set (run through meson test)\n");
		return false;
	}
	return gsttest_have_feature(feature);
}

TCase *gsttest_tcase(Suite *s, const char *name, void (*setup)(void), void (*teardown)(void),
		     int timeout_s)
{
	TCase *tc = tcase_create(name);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, timeout_s);
	suite_add_tcase(s, tc);
	return tc;
}

int gsttest_connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	return -1;
}

void gsttest_daemon_init(struct gsttest_daemon *d, const char *dir, const char *name)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->sock, sizeof(d->sock), "%s/%s.sock", dir, name);
	snprintf(d->addr, sizeof(d->addr), "unix:%s", d->sock);
	snprintf(d->log, sizeof(d->log), "%s/%s.log", dir, name);
}

bool gsttest_daemon_start(struct gsttest_daemon *d)
{
	const char *argv[16] = { getenv("HFE_DAEMON"), "--listen", d->addr };
	int n = 3;

	if (!argv[0])
		return false;
	for (int i = 0; d->extra[i] && n < 15; i++)
		argv[n++] = d->extra[i];
	argv[n] = NULL;
	d->pid = fork();
	if (d->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (d->pid < 0)
		return false;
	for (int i = 0; i < 400; i++) {
		int fd = gsttest_connect_unix(d->sock);
		if (fd >= 0) {
			close(fd);
			return true;
		}
		usleep(25000);
	}
	fprintf(stderr, "daemon on %s did not come up (log %s)\n", d->sock, d->log);
	return false;
}

void gsttest_daemon_stop(struct gsttest_daemon *d, int sig)
{
	if (d->pid > 0)
		tu_kill_wait(d->pid, sig, 5000);
	d->pid = -1;
}
