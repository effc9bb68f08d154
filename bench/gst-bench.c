/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * GStreamer benchmark: frames/s and per-frame latency of
 *     videotestsrc ! vsockenc ! fakesink          (encoding in the daemon)
 * against
 *     videotestsrc ! x264enc ! fakesink           (encoding in-process)
 * with the same settings (ultrafast, zerolatency, no B-frames, same GOP,
 * bitrate, VBV of one frame and thread count), in one run, at 720p and 1080p,
 * from I420 and BGRx. x264enc takes no RGB, so its BGRx runs have a
 * videoconvert in front (counted in its time: the daemon converts too).
 *
 * Throughput: a non-live source, N frames as fast as they go; fps from the
 * first frame entering the encoder stage to the last access unit leaving it.
 * CPU per frame of this process and of the daemon are reported too (on a VM
 * the first is what the guest pays).
 * Latency: a live source at 30 fps; per frame, the time from the encoder
 * stage's sink pad to its src pad (pad probes, matched by PTS).
 *
 * Usage: gst-bench [--daemon PATH | --address ADDR] [--frames N]
 *                  [--latency-frames N] [--repeat N] [--threads N]
 *                  [--sizes 720p,1080p] [--formats I420,BGRx]
 * It starts the daemon itself (on a unix socket) unless --address is given;
 * the daemon binary is --daemon, $HFE_DAEMON or ../daemon/helix-frame-export
 * next to this program. The plugin is found through GST_PLUGIN_PATH or in
 * ../gst next to this program.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gst/gst.h>

#define FPS 30
#define GOP 120
#define BITRATE_KBPS 4000
#define MAX_REPEAT 15

struct opts {
	const char *daemon;
	const char *address;
	guint frames, latency_frames, repeat, threads;
	gboolean sizes[2];   /* 720p, 1080p */
	gboolean formats[2]; /* I420, BGRx */
};

static const struct {
	guint w, h;
	const char *name;
} sizes[2] = { { 1280, 720, "720p" }, { 1920, 1080, "1080p" } };
static const char *const formats[2] = { "I420", "BGRx" };

enum { ENC_X264, ENC_VSOCK };
static const char *const enc_names[2] = { "x264enc", "vsockenc" };

static char address[300];
static pid_t daemon_pid = -1;

static gint64 now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (gint64)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- CPU accounting ---- */

static double self_cpu_ms(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/* utime + stime of a process from /proc (Linux), -1 if unknown. */
static double proc_cpu_ms(pid_t pid)
{
	char path[64], buf[1024];
	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* Fields after the command name (which may hold spaces). */
	char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	unsigned long ut = 0, st = 0;
	/* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

/* ---- one pipeline run ---- */

/*
 * Encoders change timestamps (GstVideoEncoder shifts x264enc's output by
 * 1000 h), but both encoders here turn every frame into exactly one access
 * unit, in order (no B-frames, no drops): the k-th output belongs to the
 * k-th input.
 */
struct probe_data {
	GMutex lock;
	guint n;         /* frames expected */
	gint64 *t_in;    /* entry time of input k */
	guint inputs;
	double *lat_ms;  /* latency of output k */
	guint outputs;
	gint64 first_in, last_out;
};

struct result {
	gboolean ok;
	guint frames;
	double fps;
	double cpu_self, cpu_daemon; /* ms per frame; daemon -1 if unknown */
	double first, p50, p99, max; /* ms; percentiles without the first frame */
};

static GstPadProbeReturn in_probe(GstPad *pad, GstPadProbeInfo *info, gpointer user)
{
	struct probe_data *d = user;
	gint64 t = now_ns();
	(void)pad;
	(void)info;
	g_mutex_lock(&d->lock);
	if (!d->first_in)
		d->first_in = t;
	if (d->inputs < d->n)
		d->t_in[d->inputs++] = t;
	g_mutex_unlock(&d->lock);
	return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn out_probe(GstPad *pad, GstPadProbeInfo *info, gpointer user)
{
	struct probe_data *d = user;
	gint64 t = now_ns();
	(void)pad;
	(void)info;
	g_mutex_lock(&d->lock);
	d->last_out = t;
	if (d->outputs < d->inputs) {
		d->lat_ms[d->outputs] = (double)(t - d->t_in[d->outputs]) / 1e6;
		d->outputs++;
	}
	g_mutex_unlock(&d->lock);
	return GST_PAD_PROBE_OK;
}

static void add_probe(GstElement *pipeline, const char *elem, const char *pad,
		      GstPadProbeCallback cb, struct probe_data *d)
{
	GstElement *e = gst_bin_get_by_name(GST_BIN(pipeline), elem);
	GstPad *p = gst_element_get_static_pad(e, pad);
	gst_pad_add_probe(p, GST_PAD_PROBE_TYPE_BUFFER, cb, d, NULL);
	gst_object_unref(p);
	gst_object_unref(e);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double percentile(const double *sorted, guint n, double p)
{
	if (!n)
		return NAN;
	guint i = (guint)ceil(p / 100.0 * n);
	return sorted[i ? i - 1 : 0];
}

static gchar *pipeline_desc(int enc, guint size, guint fmt, gboolean live, guint n,
			    const struct opts *o)
{
	gchar *encoder;
	if (enc == ENC_X264)
		encoder = g_strdup_printf(
			"%sx264enc name=enc speed-preset=ultrafast tune=zerolatency bframes=0 "
			"key-int-max=%u bitrate=%u vbv-buf-capacity=%u threads=%u ! "
			"video/x-h264,profile=constrained-baseline",
			fmt == 1 ? "videoconvert name=in ! " : "", GOP, BITRATE_KBPS, 1000 / FPS,
			o->threads);
	else
		encoder = g_strdup_printf("vsockenc name=enc address=%s bitrate=%u key-int-max=%u",
					  address, BITRATE_KBPS, GOP);
	gchar *d = g_strdup_printf(
		"videotestsrc is-live=%s num-buffers=%u pattern=smpte horizontal-speed=8 ! "
		"video/x-raw,format=%s,width=%u,height=%u,framerate=%u/1 ! %s ! "
		"fakesink sync=false",
		live ? "true" : "false", n, formats[fmt], sizes[size].w, sizes[size].h, FPS,
		encoder);
	g_free(encoder);
	return d;
}

static struct result run(int enc, guint size, guint fmt, gboolean live, guint n,
			 const struct opts *o)
{
	struct result r = { 0 };
	struct probe_data d = { 0 };
	GError *gerr = NULL;
	gchar *desc = pipeline_desc(enc, size, fmt, live, n, o);
	GstElement *p = gst_parse_launch(desc, &gerr);

	if (!p) {
		fprintf(stderr, "cannot build '%s': %s\n", desc, gerr ? gerr->message : "?");
		g_clear_error(&gerr);
		g_free(desc);
		return r;
	}
	g_mutex_init(&d.lock);
	d.n = n;
	d.t_in = g_new0(gint64, n);
	d.lat_ms = g_new0(double, n);
	/* The encoder stage starts at videoconvert when there is one. */
	GstElement *in = gst_bin_get_by_name(GST_BIN(p), "in");
	add_probe(p, in ? "in" : "enc", "sink", in_probe, &d);
	if (in)
		gst_object_unref(in);
	add_probe(p, "enc", "src", out_probe, &d);

	double cpu0 = self_cpu_ms(), dcpu0 = proc_cpu_ms(daemon_pid);
	gst_element_set_state(p, GST_STATE_PLAYING);
	GstBus *bus = gst_element_get_bus(p);
	GstMessage *m = gst_bus_timed_pop_filtered(bus, 300 * GST_SECOND,
						   GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
	double cpu1 = self_cpu_ms(), dcpu1 = proc_cpu_ms(daemon_pid);
	if (!m) {
		fprintf(stderr, "%s: no EOS within 300 s\n", desc);
	} else if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
		gchar *dbg = NULL;
		gst_message_parse_error(m, &gerr, &dbg);
		fprintf(stderr, "%s: %s (%s)\n", desc, gerr->message, dbg ? dbg : "");
		g_clear_error(&gerr);
		g_free(dbg);
	} else {
		r.ok = TRUE;
	}
	if (m)
		gst_message_unref(m);
	gst_object_unref(bus);
	gst_element_set_state(p, GST_STATE_NULL);
	gst_object_unref(p);

	g_mutex_lock(&d.lock);
	r.frames = d.outputs;
	if (r.ok && d.outputs != n)
		fprintf(stderr, "%s: %u of %u frames came out\n", desc, d.outputs, n);
	if (d.outputs && d.last_out > d.first_in)
		r.fps = (double)d.outputs * 1e9 / (double)(d.last_out - d.first_in);
	if (d.outputs) {
		r.cpu_self = (cpu1 - cpu0) / d.outputs;
		r.cpu_daemon = dcpu0 >= 0 && dcpu1 >= 0 ? (dcpu1 - dcpu0) / d.outputs : -1;
		/* The first frame pays for the encoder's start on the host. */
		r.first = d.lat_ms[0];
		guint k = d.outputs - 1;
		qsort(d.lat_ms + 1, k, sizeof(double), cmp_double);
		r.p50 = percentile(d.lat_ms + 1, k, 50);
		r.p99 = percentile(d.lat_ms + 1, k, 99);
		r.max = k ? d.lat_ms[d.outputs - 1] : NAN;
	}
	g_mutex_unlock(&d.lock);
	g_free(d.t_in);
	g_free(d.lat_ms);
	g_mutex_clear(&d.lock);
	g_free(desc);
	return r;
}

/* ---- daemon ---- */

static gchar *exe_dir(void)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (n <= 0)
		return g_strdup(".");
	buf[n] = 0;
	return g_path_get_dirname(buf);
}

static gboolean start_daemon(const struct opts *o, const char *dir)
{
	gchar *exe = o->daemon ? g_strdup(o->daemon)
		     : getenv("HFE_DAEMON") ? g_strdup(getenv("HFE_DAEMON"))
					    : NULL;
	if (!exe) {
		gchar *d = exe_dir();
		exe = g_build_filename(d, "..", "daemon", "helix-frame-export", NULL);
		g_free(d);
	}
	gchar *sock = g_build_filename(dir, "bench.sock", NULL);
	gchar *log = g_build_filename(dir, "daemon.log", NULL);
	snprintf(address, sizeof(address), "unix:%s", sock);
	gchar *threads = g_strdup_printf("%u", o->threads);
	gchar *gop = g_strdup_printf("%u", GOP);
	gchar *rate = g_strdup_printf("%uk", BITRATE_KBPS);
	gchar *fps = g_strdup_printf("%u", FPS);
	const char *argv[] = { exe, "--listen", address, "--threads", threads, "--gop", gop,
			       "--bitrate", rate, "--fps", fps, "--preset", "ultrafast",
			       "--tune", "zerolatency", "--profile", "baseline", NULL };

	printf("daemon: %s (log %s)\n", exe, log);
	fflush(stdout); /* or the child flushes our buffer again */
	pid_t pid = fork();
	if (pid == 0) {
		FILE *f = freopen(log, "w", stdout);
		if (f)
			dup2(fileno(stdout), 2);
		execv(exe, (char *const *)argv);
		_exit(127);
	}
	daemon_pid = pid;
	gboolean up = FALSE;
	for (int i = 0; pid > 0 && i < 200 && !up; i++) {
		g_usleep(20000);
		up = g_file_test(sock, G_FILE_TEST_EXISTS);
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			daemon_pid = -1;
			break;
		}
	}
	if (!up)
		fprintf(stderr, "daemon %s did not start (see %s)\n", exe, log);
	g_free(exe);
	g_free(sock);
	g_free(log);
	g_free(threads);
	g_free(gop);
	g_free(rate);
	g_free(fps);
	return up;
}

static void stop_daemon(void)
{
	if (daemon_pid <= 0)
		return;
	kill(daemon_pid, SIGTERM);
	for (int i = 0; i < 100; i++) {
		if (waitpid(daemon_pid, NULL, WNOHANG) == daemon_pid) {
			daemon_pid = -1;
			return;
		}
		g_usleep(50000);
	}
	kill(daemon_pid, SIGKILL);
	waitpid(daemon_pid, NULL, 0);
	daemon_pid = -1;
}

/* ---- main ---- */

static int cmp_result_fps(const void *a, const void *b)
{
	const struct result *x = a, *y = b;
	return x->fps < y->fps ? -1 : x->fps > y->fps;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: gst-bench [--daemon PATH | --address ADDR] [--frames N] "
		   "[--latency-frames N]\n"
		   "                 [--repeat N] [--threads N] [--sizes 720p,1080p] "
		   "[--formats I420,BGRx]\n"
		   "Compares vsockenc (encoding in the helix-frame-export daemon) with x264enc "
		   "in-process.\n"
		   "  --threads N   encoder threads for both (daemon --threads, x264enc "
		   "threads; 0 = auto)\n"
		   "  --address A   use a running daemon (its settings must match; daemon "
		   "CPU is not reported)\n");
}

static gboolean parse_list(const char *s, const char *const *names, guint n, gboolean *on)
{
	gchar **parts = g_strsplit(s, ",", -1);
	gboolean ok = TRUE;
	for (guint i = 0; i < n; i++)
		on[i] = FALSE;
	for (gchar **p = parts; *p; p++) {
		guint i;
		for (i = 0; i < n; i++)
			if (g_ascii_strcasecmp(*p, names[i]) == 0)
				break;
		if (i == n)
			ok = FALSE;
		else
			on[i] = TRUE;
	}
	g_strfreev(parts);
	return ok;
}

static guint parse_uint(const char *s, guint min, guint max)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || end == s || v < min || v > max) {
		fprintf(stderr, "bad number '%s' (%u..%u)\n", s, min, max);
		exit(2);
	}
	return (guint)v;
}

int main(int argc, char **argv)
{
	struct opts o = { .frames = 300, .latency_frames = 150, .repeat = 3, .threads = 0,
			  .sizes = { TRUE, TRUE }, .formats = { TRUE, TRUE } };
	static const struct option lo[] = {
		{ "daemon", required_argument, NULL, 'd' },
		{ "address", required_argument, NULL, 'a' },
		{ "frames", required_argument, NULL, 'n' },
		{ "latency-frames", required_argument, NULL, 'l' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "threads", required_argument, NULL, 't' },
		{ "sizes", required_argument, NULL, 's' },
		{ "formats", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *size_names[2] = { sizes[0].name, sizes[1].name };
	int c;

	gst_init(&argc, &argv);
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'd': o.daemon = optarg; break;
		case 'a': o.address = optarg; break;
		case 'n': o.frames = parse_uint(optarg, 10, 100000); break;
		case 'l': o.latency_frames = parse_uint(optarg, 0, 100000); break;
		case 'r': o.repeat = parse_uint(optarg, 1, MAX_REPEAT); break;
		case 't': o.threads = parse_uint(optarg, 0, 64); break;
		case 's':
			if (!parse_list(optarg, size_names, 2, o.sizes)) {
				fprintf(stderr, "--sizes: 720p, 1080p\n");
				return 2;
			}
			break;
		case 'f':
			if (!parse_list(optarg, formats, 2, o.formats)) {
				fprintf(stderr, "--formats: I420, BGRx\n");
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}

	if (!gst_registry_check_feature_version(gst_registry_get(), "vsockenc", 1, 0, 0)) {
		gchar *d = exe_dir(), *gstdir = g_build_filename(d, "..", "gst", NULL);
		gst_registry_scan_path(gst_registry_get(), gstdir);
		g_free(d);
		g_free(gstdir);
	}
	for (int e = 0; e < 2; e++) {
		GstElementFactory *f = gst_element_factory_find(enc_names[e]);
		if (!f) {
			fprintf(stderr, "%s not found (GST_PLUGIN_PATH?)\n", enc_names[e]);
			return 1;
		}
		gst_object_unref(f);
	}

	gchar *dir = NULL;
	if (o.address) {
		snprintf(address, sizeof(address), "%s", o.address);
	} else {
		dir = g_dir_make_tmp("hfe-gst-bench-XXXXXX", NULL);
		if (!dir || !start_daemon(&o, dir)) {
			stop_daemon();
			return 1;
		}
	}

	printf("vsockenc (H.264 encoded by the helix-frame-export daemon at %s) against "
	       "x264enc in-process.\n", address);
	printf("Both: ultrafast, zerolatency, no B-frames, key-int-max %u, %u kbit/s, VBV one "
	       "frame, constrained baseline, encoder threads %u%s; x264enc's BGRx input goes "
	       "through videoconvert (1 thread).\n", GOP, BITRATE_KBPS, o.threads,
	       o.threads ? "" : " (auto)");
	printf("This machine: %ld cores, no guest: the daemon runs on the same cores, so this "
	       "compares host encoding through the daemon (plus the transport) with in-process "
	       "x264, not a guest with a host.\n", sysconf(_SC_NPROCESSORS_ONLN));
	printf("Throughput: non-live videotestsrc (smpte, moving), %u frames, median of %u; "
	       "latency: live 30 fps, %u frames, encoder-stage sink pad to src pad.\n\n",
	       o.frames, o.repeat, o.latency_frames);

	/* Warm up both (page cache, first connection, x264 init). */
	for (int e = 0; e < 2; e++)
		(void)run(e, 0, 0, FALSE, 30, &o);

	struct result tput[2][2][2][MAX_REPEAT], lat[2][2][2];
	memset(tput, 0, sizeof(tput));
	memset(lat, 0, sizeof(lat));
	gboolean failed = FALSE;
	for (guint rep = 0; rep < o.repeat; rep++)
		for (guint s = 0; s < 2; s++)
			for (guint f = 0; f < 2; f++) {
				if (!o.sizes[s] || !o.formats[f])
					continue;
				/* alternate the order so neither always runs first */
				for (int k = 0; k < 2; k++) {
					int e = (int)((rep + (guint)k) % 2);
					tput[s][f][e][rep] = run(e, s, f, FALSE, o.frames, &o);
					failed |= !tput[s][f][e][rep].ok;
				}
			}
	if (o.latency_frames)
		for (guint s = 0; s < 2; s++)
			for (guint f = 0; f < 2; f++)
				for (int e = 0; e < 2 && o.sizes[s] && o.formats[f]; e++) {
					lat[s][f][e] = run(e, s, f, TRUE, o.latency_frames, &o);
					failed |= !lat[s][f][e].ok;
				}

	printf("%-6s %-5s %-9s | %7s %6s %9s %8s | %7s %6s %6s %6s %6s\n", "", "", "",
	       "", "", "cpu ms/fr", "daemon", "latency", "", "", "", "ratio");
	printf("%-6s %-5s %-9s | %7s %6s %9s %8s | %7s %6s %6s %6s %6s\n", "size", "input",
	       "encoder", "fps", "ratio", "(here)", "ms/fr", "first", "p50", "p99", "max",
	       "p50");
	for (guint s = 0; s < 2; s++)
		for (guint f = 0; f < 2; f++) {
			if (!o.sizes[s] || !o.formats[f])
				continue;
			struct result med[2];
			for (int e = 0; e < 2; e++) {
				struct result tmp[MAX_REPEAT];
				memcpy(tmp, tput[s][f][e], sizeof(struct result) * o.repeat);
				qsort(tmp, o.repeat, sizeof(struct result), cmp_result_fps);
				med[e] = tmp[o.repeat / 2];
			}
			for (int e = 0; e < 2; e++) {
				char ratio[16] = "", lratio[16] = "", dcpu[16] = "-";
				if (e == ENC_VSOCK && med[0].fps > 0)
					snprintf(ratio, sizeof(ratio), "%.2fx", med[1].fps / med[0].fps);
				if (e == ENC_VSOCK && lat[s][f][0].p50 > 0)
					snprintf(lratio, sizeof(lratio), "%.2fx",
						 lat[s][f][1].p50 / lat[s][f][0].p50);
				if (med[e].cpu_daemon >= 0 && e == ENC_VSOCK)
					snprintf(dcpu, sizeof(dcpu), "%.2f", med[e].cpu_daemon);
				const struct result *l = &lat[s][f][e];
				printf("%-6s %-5s %-9s | %7.1f %6s %9.2f %8s | %7.1f %6.2f %6.2f "
				       "%6.2f %6s\n",
				       sizes[s].name, formats[f], enc_names[e], med[e].fps, ratio,
				       med[e].cpu_self, dcpu, l->first, l->p50, l->p99, l->max,
				       lratio);
			}
		}
	printf("\nratio: vsockenc / x264enc (fps: above 1 favours vsockenc; latency: below 1 "
	       "does). cpu ms/fr (here): CPU time of this process (source, encoder element, "
	       "sink) per frame; daemon: the daemon's CPU per frame. Latency in ms, encoder "
	       "stage in to out; first = the first frame (the host opens its encoder then), "
	       "p50/p99/max over the others.\n");

	stop_daemon();
	if (dir) {
		gchar *sock = g_build_filename(dir, "bench.sock", NULL);
		gchar *log = g_build_filename(dir, "daemon.log", NULL);
		if (!failed) {
			unlink(log);
			unlink(sock);
			rmdir(dir);
		} else {
			fprintf(stderr, "daemon log kept: %s\n", log);
		}
		g_free(sock);
		g_free(log);
		g_free(dir);
	}
	return failed ? 1 : 0;
}
