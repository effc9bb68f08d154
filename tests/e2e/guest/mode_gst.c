/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfe-guest mode `gst`: pull mode from a GStreamer pipeline of the host's own
 * system (test_e2e_qemu_gst, the qemu-scanout benchmark).
 *
 * Mount the host's root (9p, mount tag "hostroot", read only; /init loads 9p
 * with hfe.extra=1), chroot into it and run
 *   gst-launch-1.0 videotestsrc ! vsockenc address=serial:PORT ! multifilesink
 * then forward every access unit it wrote as an AU record (value = its index).
 * Parameters: frames and size (the video), port, and the gst_* ones:
 * gst_plugin = the host path of libgsthfe.so (the project's plugin, used in
 * place); gst_libpath = LD_LIBRARY_PATH for it (the project build's lib/);
 * gst_preload = a sanitizer runtime to preload (sanitized builds);
 * gst_pattern = videotestsrc pattern (moving: horizontal-speed=4);
 * gst_encoder = vsockenc, or x264enc (the guest encodes itself, for
 * comparison).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../e2e_out.h"
#include "hfe-guest.h"

#define GST_ROOT "/mnt/host"
#define GST_RUN GST_ROOT "/run" /* a guest tmpfs: the only writable place */

static int mount_or_why(const char *src, const char *dst, const char *type, unsigned long flags,
			const char *data, char *why, size_t whylen)
{
	mkdir(dst, 0755);
	if (mount(src, dst, type, flags, data) == 0)
		return 0;
	snprintf(why, whylen, "gst: mount %s on %s (%s): %s", src, dst, type ? type : "bind",
		 strerror(errno));
	return -1;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Forward the files the pipeline wrote (one access unit each), in order.
 * *span_ns: from the first file's write to the last one's (steady-state
 * rate, without the pipeline's start-up). */
static int forward_files(struct out *o, const char *dir, uint32_t *count, uint64_t *bytes,
			 int64_t *span_ns, char *why, size_t whylen)
{
	int64_t first = INT64_MAX, last = 0;
	struct stat st;

	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL, path[512];
	size_t n = 0;
	int rc = 0;

	if (!d) {
		snprintf(why, whylen, "gst: %s: %s", dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			char **nn = realloc(names, (n + 1) * sizeof(*nn));

			if (!nn)
				break;
			names = nn;
			names[n++] = strdup(e->d_name);
		}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n && rc == 0; i++) {
		FILE *f;
		uint8_t *buf;
		long len;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (stat(path, &st) == 0) {
			int64_t t = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;

			first = t < first ? t : first;
			last = t > last ? t : last;
		}
		f = fopen(path, "rb");
		if (!f || fseek(f, 0, SEEK_END) < 0 || (len = ftell(f)) < 0 ||
		    fseek(f, 0, SEEK_SET) < 0 || !(buf = malloc((size_t)len + 1)) ||
		    fread(buf, 1, (size_t)len, f) != (size_t)len) {
			snprintf(why, whylen, "gst: cannot read %.200s", path);
			rc = -1;
		} else {
			rc = out_rec(o, E2E_REC_AU, 0, (int64_t)i, buf, (size_t)len, NULL, 0);
			*bytes += (uint64_t)len;
			(*count)++;
			free(buf);
		}
		if (f)
			fclose(f);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	*span_ns = last > first ? last - first : 0;
	return rc;
}

int run_gst(const struct opts *op, struct out *o, char *why, size_t whylen)
{
	static const char *const plugins[] = { "libgstcoreelements.so", "libgstvideotestsrc.so",
					       "libgstmultifile.so", "libgstx264.so",
					       "libgstvideoconvertscale.so" };
	const char *libdir = "/usr/lib/x86_64-linux-gnu/gstreamer-1.0";
	char caps[160], src[160], enc[400], sink[96], link[512], target[512];
	uint32_t count = 0;
	uint64_t bytes = 0;
	int64_t t0, el, span = 0;
	int st = 0;
	pid_t pid;

	mkdir("/mnt", 0755);
	if (mount_or_why("hostroot", GST_ROOT, "9p", MS_RDONLY,
			 "trans=virtio,version=9p2000.L,msize=262144", why, whylen) < 0 ||
	    mount_or_why("run", GST_RUN, "tmpfs", 0, "size=256m", why, whylen) < 0 ||
	    mount_or_why("/dev", GST_ROOT "/dev", NULL, MS_BIND | MS_REC, NULL, why, whylen) < 0 ||
	    mount_or_why("proc", GST_ROOT "/proc", "proc", 0, NULL, why, whylen) < 0 ||
	    mount_or_why("sys", GST_ROOT "/sys", "sysfs", 0, NULL, why, whylen) < 0)
		return -1;
	/* Only the plugins the pipeline needs: scanning all of them under TCG
	 * would take minutes. Links are resolved inside the chroot. */
	mkdir(GST_RUN "/plugins", 0755);
	mkdir(GST_RUN "/au", 0755);
	for (size_t i = 0; i < sizeof(plugins) / sizeof(plugins[0]); i++) {
		snprintf(link, sizeof(link), GST_RUN "/plugins/%s", plugins[i]);
		snprintf(target, sizeof(target), "%s/%s", libdir, plugins[i]);
		if (symlink(target, link) < 0) {
			snprintf(why, whylen, "gst: symlink %.200s: %s", link, strerror(errno));
			return -1;
		}
	}
	if (op->gst_plugin[0] && symlink(op->gst_plugin, GST_RUN "/plugins/libgsthfe.so") < 0) {
		snprintf(why, whylen, "gst: symlink the plugin: %s", strerror(errno));
		return -1;
	}

	snprintf(src, sizeof(src), "videotestsrc num-buffers=%u pattern=%s horizontal-speed=4",
		 op->frames, op->gst_pattern);
	snprintf(sink, sizeof(sink), "multifilesink location=/run/au/%%05d.h264");
	if (!strcmp(op->gst_encoder, "x264enc")) {
		snprintf(caps, sizeof(caps), "video/x-raw,format=I420,width=%u,height=%u,"
			 "framerate=30/1", op->w, op->h);
		snprintf(enc, sizeof(enc), "x264enc speed-preset=ultrafast tune=zerolatency "
			 "bitrate=16000 key-int-max=120 bframes=0 ! "
			 "video/x-h264,stream-format=byte-stream,alignment=au,"
			 "profile=constrained-baseline");
	} else {
		snprintf(caps, sizeof(caps), "video/x-raw,format=BGRx,width=%u,height=%u,"
			 "framerate=30/1", op->w, op->h);
		snprintf(enc, sizeof(enc), "vsockenc address=serial:%s bitrate=16000", op->port);
	}
	say("gst start %s ! %s ! %s ! %s", src, caps, enc, sink);
	out_text(o, E2E_REC_TEXT, "gst pipeline %s ! %s ! %s ! %s", src, caps, enc, sink);

	t0 = now_ns();
	pid = fork();
	if (pid == 0) {
		char cmd[1200];
		int log = open(GST_RUN "/gst.log", O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (log >= 0) {
			dup2(log, 1);
			dup2(log, 2);
		}
		if (chroot(GST_ROOT) < 0 || chdir("/run") < 0)
			_exit(126);
		setenv("HOME", "/run", 1);
		setenv("PATH", "/usr/bin:/bin", 1);
		setenv("GST_REGISTRY_1_0", "/run/registry.bin", 1);
		setenv("GST_REGISTRY_FORK", "no", 1);
		setenv("GST_PLUGIN_SYSTEM_PATH_1_0", "/run/plugins", 1);
		setenv("GST_PLUGIN_PATH_1_0", "", 1);
		setenv("HFE_LOG", "warn", 1);
		if (op->gst_libpath[0])
			setenv("LD_LIBRARY_PATH", op->gst_libpath, 1);
		if (op->gst_preload[0]) {
			/* A sanitized plugin: its runtime first, no leak report at exit. */
			setenv("LD_PRELOAD", op->gst_preload, 1);
			setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
		}
		snprintf(cmd, sizeof(cmd), "%s ! %s ! %s ! %s", src, caps, enc, sink);
		execl("/bin/sh", "sh", "-c",
		      "exec gst-launch-1.0 -e $0", cmd, (char *)NULL);
		_exit(127);
	}
	if (pid < 0) {
		snprintf(why, whylen, "gst: fork: %s", strerror(errno));
		return -1;
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	el = now_ns() - t0;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char line[256] = "";
		FILE *f = fopen(GST_RUN "/gst.log", "r");

		/* The pipeline's last words, on the console. */
		while (f && fgets(line, sizeof(line), f))
			say("gst: %s", strtok(line, "\n") ? line : "");
		if (f)
			fclose(f);
		snprintf(why, whylen, "gst: gst-launch-1.0 failed (status 0x%x)", st);
		return -1;
	}
	if (forward_files(o, GST_RUN "/au", &count, &bytes, &span, why, whylen) < 0)
		return -1;
	/* fps: steady state, first to last access unit; overall: with start-up. */
	say("gst frames=%u au_bytes=%llu elapsed_ms=%.1f fps=%.2f overall_fps=%.2f encoder=%s",
	    count, (unsigned long long)bytes, ms_of(el),
	    span > 0 && count > 1 ? (count - 1) / (ms_of(span) / 1000) : 0,
	    el > 0 ? count / (ms_of(el) / 1000) : 0, op->gst_encoder);
	out_text(o, E2E_REC_TEXT, "gst frames=%u elapsed_ms=%.1f encoder=%s", count, ms_of(el),
		 op->gst_encoder);
	return 0;
}
