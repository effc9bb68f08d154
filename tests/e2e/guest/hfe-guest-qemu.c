/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfe-guest with two more modes, for the QEMU module's tests:
 *
 *   resource   create a DRM dumb buffer on virtio-gpu (/dev/dri/card0), learn
 *              its virtio-gpu resource id (DRM_IOCTL_VIRTGPU_RESOURCE_INFO:
 *              res_handle; a GEM handle is not a resource id), then for each
 *              of `frames` pattern frames: draw it into the mapped buffer,
 *              copy it to the host's resource (DRM_IOCTL_VIRTGPU_TRANSFER_TO_HOST)
 *              and send a FRAME_REQUEST naming the resource, without pixels;
 *              forward every FRAME_RESPONSE as an AU record. Then an unknown
 *              id must get RESOURCE_NOT_FOUND and a wrong size INVALID_MSG,
 *              and the connection must still answer a PING.
 *   gst        pull mode from a GStreamer pipeline of the host's own system:
 *              mount the host's root (9p, mount tag "hostroot", read only;
 *              /init loads 9p with hfe.extra=1), chroot into it and run
 *              gst-launch-1.0 videotestsrc ! vsockenc address=serial:PORT !
 *              multifilesink, then forward every access unit it wrote.
 *              hfe.gst_plugin = the host path of libgsthfe.so (the project's
 *              plugin, used in place); hfe.gst_libpath = LD_LIBRARY_PATH for it
 *              (the project build's lib/); hfe.gst_preload = a sanitizer runtime
 *              to preload (sanitized builds); hfe.gst_pattern = videotestsrc
 *              pattern (default smpte, moving: horizontal-speed=4);
 *              hfe.gst_encoder = vsockenc (default) or x264enc (the guest
 *              encodes itself, for comparison).
 *
 * Every other mode is hfe-guest's own: this file includes hfe-guest.c (its
 * helpers, and its main renamed), so nothing is duplicated and hfe-guest.c
 * is unchanged. Parameters: hfe.frames, hfe.size (the buffer / the video),
 * hfe.port, hfe.out, hfe.hello as for hfe-guest.
 */
int hfe_guest_main(int argc, char **argv);
#define main hfe_guest_main
#include "hfe-guest.c"
#undef main

#include <dirent.h>
#include <sys/mount.h>
#include <sys/wait.h>

/* Parameters of the gst mode (hfe-guest's parser does not know them). */
struct gst_opts {
	char plugin[256];
	char libpath[256];
	char preload[256];
	char pattern[32];
	char encoder[32];
};

/* The few DRM/virtgpu ioctls used (Linux uapi, drm/drm_mode.h and
 * drm/virtgpu_drm.h; declared here so that no libdrm headers are needed). */
struct hg_create_dumb {
	uint32_t height, width, bpp, flags;
	uint32_t handle, pitch; /* out */
	uint64_t size;          /* out */
};
struct hg_map_dumb {
	uint32_t handle, pad;
	uint64_t offset; /* out */
};
struct hg_resource_info {
	uint32_t bo_handle;
	uint32_t res_handle; /* out */
	uint32_t size;       /* out */
	uint32_t blob_mem;   /* out */
};
struct hg_box {
	uint32_t x, y, z, w, h, d;
};
struct hg_transfer {
	uint32_t bo_handle;
	struct hg_box box;
	uint32_t level, offset, stride, layer_stride;
};
struct hg_wait {
	uint32_t handle, flags;
};

#define HG_DRM_BASE 'd'
#define HG_DRM_CMD 0x40
#define HG_IOCTL_CREATE_DUMB _IOWR(HG_DRM_BASE, 0xB2, struct hg_create_dumb)
#define HG_IOCTL_MAP_DUMB _IOWR(HG_DRM_BASE, 0xB3, struct hg_map_dumb)
#define HG_IOCTL_RESOURCE_INFO _IOWR(HG_DRM_BASE, HG_DRM_CMD + 0x05, struct hg_resource_info)
#define HG_IOCTL_TRANSFER_TO_HOST _IOWR(HG_DRM_BASE, HG_DRM_CMD + 0x07, struct hg_transfer)
#define HG_IOCTL_WAIT _IOWR(HG_DRM_BASE, HG_DRM_CMD + 0x08, struct hg_wait)

static int xioctl(int fd, unsigned long req, void *arg)
{
	int r;

	do
		r = ioctl(fd, req, arg);
	while (r < 0 && (errno == EINTR || errno == EAGAIN));
	return r;
}

/* Send one FRAME_REQUEST without pixels and wait for its reply (a
 * FRAME_RESPONSE or an ERROR; anything else is skipped). */
static int request_resource(struct hfe_client *c, const struct hfe_frame_request *fr,
			    struct hfe_msg *m, char *why, size_t whylen)
{
	struct hfe_err err = { 0 };
	int r;

	if (hfe_client_send_frame(c, 1, fr, NULL, 0, IO_TIMEOUT_MS, &err) < 0) {
		snprintf(why, whylen, "resource: send: %s", err.msg);
		return -1;
	}
	for (;;) {
		r = hfe_client_recv(c, m, IO_TIMEOUT_MS, &err);
		if (r <= 0) {
			snprintf(why, whylen, "resource: no reply: %s",
				 r == 0 ? "timeout" : err.msg);
			return -1;
		}
		if (m->hdr.type == HFE_MSG_FRAME_RESPONSE || m->hdr.type == HFE_MSG_ERROR)
			return 0;
	}
}

static int run_resource(const struct opts *op, struct out *o, char *why, size_t whylen)
{
	const int64_t dur = 1000000000 / 30;
	struct hg_create_dumb cd = { .width = op->w, .height = op->h, .bpp = 32 };
	struct hg_resource_info ri = { 0 };
	struct hg_map_dumb md = { 0 };
	struct hfe_client *c = NULL;
	struct hfe_msg m;
	struct hfe_err err = { 0 };
	uint8_t *rgb = malloc((size_t)op->w * op->h * 3), *map = MAP_FAILED;
	uint64_t au_bytes = 0;
	int64_t t0, t_xfer = 0;
	int fd = -1, rc = -1;
	uint32_t got = 0;

	if (!rgb) {
		snprintf(why, whylen, "resource: out of memory");
		goto out;
	}
	if (wait_path("/dev/dri/card0", 10000) < 0) {
		snprintf(why, whylen, "resource: no /dev/dri/card0");
		goto out;
	}
	fd = open("/dev/dri/card0", O_RDWR | O_CLOEXEC);
	if (fd < 0 || xioctl(fd, HG_IOCTL_CREATE_DUMB, &cd) < 0) {
		snprintf(why, whylen, "resource: dumb buffer %ux%u: %s", op->w, op->h,
			 strerror(errno));
		goto out;
	}
	ri.bo_handle = cd.handle;
	md.handle = cd.handle;
	if (xioctl(fd, HG_IOCTL_RESOURCE_INFO, &ri) < 0 || xioctl(fd, HG_IOCTL_MAP_DUMB, &md) < 0) {
		snprintf(why, whylen, "resource: RESOURCE_INFO/MAP_DUMB: %s", strerror(errno));
		goto out;
	}
	map = mmap(NULL, cd.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)md.offset);
	if (map == MAP_FAILED) {
		snprintf(why, whylen, "resource: mmap: %s", strerror(errno));
		goto out;
	}
	say("resource buffer gem=%u res_id=%u pitch=%u size=%llu", cd.handle, ri.res_handle,
	    cd.pitch, (unsigned long long)cd.size);
	out_text(o, E2E_REC_TEXT, "resource res_id=%u pitch=%u", ri.res_handle, cd.pitch);

	c = open_host(op, "resource", why, whylen);
	if (!c)
		goto out;

	struct hfe_frame_request fr = {
		.resource_id = ri.res_handle, .width = op->w, .height = op->h,
		.format = E2E_FMT_XR24, .stride = cd.pitch, .duration = dur,
	};

	t0 = now_ns();
	for (uint32_t i = 0; i < op->frames; i++) {
		struct hg_transfer tr = {
			.bo_handle = cd.handle, .box = { 0, 0, 0, op->w, op->h, 1 },
			.stride = cd.pitch,
		};
		struct hg_wait wt = { .handle = cd.handle };
		int64_t x0;

		e2e_pattern_rgb(rgb, op->w, op->h, i);
		e2e_rgb_to_xr24(rgb, op->w, op->h, map, cd.pitch);
		/* The host's copy of the resource is what gets encoded. */
		x0 = now_ns();
		if (xioctl(fd, HG_IOCTL_TRANSFER_TO_HOST, &tr) < 0 ||
		    xioctl(fd, HG_IOCTL_WAIT, &wt) < 0) {
			snprintf(why, whylen, "resource: TRANSFER_TO_HOST: %s", strerror(errno));
			goto out;
		}
		t_xfer += now_ns() - x0;
		fr.pts = (int64_t)i * dur;
		if (request_resource(c, &fr, &m, why, whylen) < 0)
			goto out;
		if (m.hdr.type == HFE_MSG_ERROR) {
			snprintf(why, whylen, "resource: frame %u: host error %s: %s", i,
				 hfe_error_name(m.u.error.code), m.u.error.message);
			goto out;
		}
		if (forward_au(o, &m, &au_bytes) < 0) {
			snprintf(why, whylen, "resource: out port write failed");
			goto out;
		}
		got++;
	}
	double el = ms_of(now_ns() - t0);

	/* Wrong requests: per-frame errors, the connection stays usable. */
	const char *unknown, *wrong_size;

	fr.resource_id = ri.res_handle + 1000;
	if (request_resource(c, &fr, &m, why, whylen) < 0)
		goto out;
	unknown = m.hdr.type == HFE_MSG_ERROR ? hfe_error_name(m.u.error.code) : "FRAME_RESPONSE";
	fr.resource_id = ri.res_handle;
	fr.width = op->w / 2;
	if (request_resource(c, &fr, &m, why, whylen) < 0)
		goto out;
	wrong_size = m.hdr.type == HFE_MSG_ERROR ? hfe_error_name(m.u.error.code) :
						   "FRAME_RESPONSE";
	memset(&m, 0, sizeof(m));
	m.hdr.type = HFE_MSG_PING;
	m.hdr.session_id = 5;
	if (hfe_client_send_msg(c, &m, IO_TIMEOUT_MS, &err) < 0 ||
	    hfe_client_recv(c, &m, IO_TIMEOUT_MS, &err) != 1 || m.hdr.type != HFE_MSG_PONG) {
		snprintf(why, whylen, "resource: no PONG after the wrong requests");
		goto out;
	}
	say("resource frames=%u au_bytes=%llu elapsed_ms=%.1f transfer_ms=%.1f unknown=%s "
	    "wrong_size=%s",
	    got, (unsigned long long)au_bytes, el, ms_of(t_xfer), unknown, wrong_size);
	out_text(o, E2E_REC_TEXT, "resource frames=%u unknown=%s wrong_size=%s", got, unknown,
		 wrong_size);
	rc = 0;
out:
	hfe_client_close(c);
	if (map != MAP_FAILED)
		munmap(map, cd.size);
	if (fd >= 0)
		close(fd);
	free(rgb);
	return rc;
}

/* ---- gst: GStreamer from the host's root, in a chroot ---- */

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

static int run_gst(const struct opts *op, const struct gst_opts *go, struct out *o, char *why,
		   size_t whylen)
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
	if (go->plugin[0] && symlink(go->plugin, GST_RUN "/plugins/libgsthfe.so") < 0) {
		snprintf(why, whylen, "gst: symlink the plugin: %s", strerror(errno));
		return -1;
	}

	snprintf(src, sizeof(src), "videotestsrc num-buffers=%u pattern=%s horizontal-speed=4",
		 op->frames, go->pattern);
	snprintf(sink, sizeof(sink), "multifilesink location=/run/au/%%05d.h264");
	if (!strcmp(go->encoder, "x264enc")) {
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
		if (go->libpath[0])
			setenv("LD_LIBRARY_PATH", go->libpath, 1);
		if (go->preload[0]) {
			/* A sanitized plugin: its runtime first, no leak report at exit. */
			setenv("LD_PRELOAD", go->preload, 1);
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
	    el > 0 ? count / (ms_of(el) / 1000) : 0, go->encoder);
	out_text(o, E2E_REC_TEXT, "gst frames=%u elapsed_ms=%.1f encoder=%s", count, ms_of(el),
		 go->encoder);
	return 0;
}

enum { MODE_OTHER, MODE_RESOURCE, MODE_GST };

/* Is the mode one of ours? (Anything else is hfe-guest's.) */
static int our_mode(int argc, char **argv)
{
	char buf[4096] = "";
	FILE *f;

	if (argc > 1) {
		for (int i = 1; i < argc; i++) {
			if (!strcmp(argv[i], "mode=resource"))
				return MODE_RESOURCE;
			if (!strcmp(argv[i], "mode=gst"))
				return MODE_GST;
		}
		return MODE_OTHER;
	}
	f = fopen("/proc/cmdline", "r");
	if (f) {
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);

		buf[n] = '\0';
		fclose(f);
	}
	if (strstr(buf, "hfe.mode=resource"))
		return MODE_RESOURCE;
	if (strstr(buf, "hfe.mode=gst"))
		return MODE_GST;
	return MODE_OTHER;
}

/* Our own keys, then hfe-guest's parser for the rest (the mode skipped). */
static int parse_ours(struct opts *op, struct gst_opts *go, char *tok, bool cmdline, char *why,
		      size_t whylen)
{
	static const struct {
		const char *key;
		size_t off, len;
	} keys[] = {
		{ "gst_plugin=", offsetof(struct gst_opts, plugin), sizeof(go->plugin) },
		{ "gst_libpath=", offsetof(struct gst_opts, libpath), sizeof(go->libpath) },
		{ "gst_preload=", offsetof(struct gst_opts, preload), sizeof(go->preload) },
		{ "gst_pattern=", offsetof(struct gst_opts, pattern), sizeof(go->pattern) },
		{ "gst_encoder=", offsetof(struct gst_opts, encoder), sizeof(go->encoder) },
	};
	const char *k = tok;

	if (cmdline) {
		if (strncmp(k, "hfe.", 4))
			return 0;
		k += 4;
	}
	/* The mode is ours; extra= and shell= are /init's (hfe-guest.c rejects them). */
	if (!strncmp(k, "mode=", 5) || !strncmp(k, "extra=", 6) || !strncmp(k, "shell=", 6))
		return 0;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		size_t kl = strlen(keys[i].key);

		if (!strncmp(k, keys[i].key, kl)) {
			if (strlen(k + kl) >= keys[i].len || strchr(k + kl, '\'')) {
				snprintf(why, whylen, "bad parameter %s", k);
				return -1;
			}
			snprintf((char *)go + keys[i].off, keys[i].len, "%s", k + kl);
			return 0;
		}
	}
	return parse_token(op, tok, cmdline, why, whylen);
}

int main(int argc, char **argv)
{
	struct opts op = {
		.frames = 10, .w = 640, .h = 480, .format = E2E_FMT_XR24, .hello = true,
		.port = "/dev/virtio-ports/org.helix.hfe.0",
		.out = "/dev/virtio-ports/org.helix.out.0",
	};
	struct gst_opts go = { .pattern = "smpte", .encoder = "vsockenc" };
	struct out o = { .fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER };
	char why[300] = "", buf[4096], *save = NULL;
	int rc = -1, mode = our_mode(argc, argv);

	if (mode == MODE_OTHER)
		return hfe_guest_main(argc, argv);

	setvbuf(stdout, NULL, _IOLBF, 0);
	hfe_log_set_level(HFE_LOG_WARN);
	say("start uptime_ms=%.0f", uptime_ms());
	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			if (parse_ours(&op, &go, argv[i], false, why, sizeof(why)) < 0)
				goto done;
	} else {
		FILE *f = fopen("/proc/cmdline", "r");
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

		if (f)
			fclose(f);
		buf[n] = '\0';
		for (char *t = strtok_r(buf, " \t\n", &save); t; t = strtok_r(NULL, " \t\n", &save))
			if (parse_ours(&op, &go, t, true, why, sizeof(why)) < 0)
				goto done;
	}
	if (wait_path(op.out, 10000) < 0 || (o.fd = open(op.out, O_RDWR | O_CLOEXEC)) < 0) {
		snprintf(why, sizeof(why), "cannot open the out port %s: %s", op.out,
			 strerror(errno));
		goto done;
	}
	out_text(&o, E2E_REC_TEXT, "start uptime_ms=%.0f", uptime_ms());
	if (mode == MODE_RESOURCE)
		rc = run_resource(&op, &o, why, sizeof(why));
	else
		rc = run_gst(&op, &go, &o, why, sizeof(why));
	if (o.failed && rc == 0) {
		snprintf(why, sizeof(why), "out port write failed");
		rc = -1;
	}
done:
	if (o.fd >= 0) {
		out_text(&o, E2E_REC_END, "result=%s%s%s out_bytes=%" PRIu64, rc ? "fail" : "ok",
			 rc ? " reason=" : "", why, o.bytes);
		if (!out_wait_ack(&o, 10000))
			say("no ack from the host on the out port");
		close(o.fd);
	}
	if (rc)
		say("result=fail reason=%s", why);
	else
		say("result=ok");
	return rc ? 1 : 0;
}
