/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-dbus-scanout: the measuring subscriber of bench/dbus-scanout.sh.
 *
 * Subscribes to a scanout over any HXFR address, receives its access units
 * for a while and prints one line of key=value results:
 *   aus, fps, kbps          what reached the subscriber in the window
 *   lat_p50_ms/p99/max      AU received - its pts (the CLOCK_MONOTONIC time at
 *                           which the frame source got the first damage of
 *                           that encode): frame source -> bitstream
 *   upd_per_s               with --qemu-trace: QEMU's display updates per second
 *   qlat_p50_ms/p99/max     with --qemu-trace: AU received - the last QEMU
 *                           `dbus_update` trace event (QEMU's display update)
 *                           at or before that damage: QEMU update ->
 *                           bitstream, D-Bus transfer included (approximate
 *                           when updates are coalesced)
 *   cpu_NAME_pct            CPU of each --pid over the window (100 = 1 core)
 *   rss_NAME_kb, hwm_NAME_kb  largest VmRSS sampled in the window, VmHWM
 * It is not tied to D-Bus: pointed at the QEMU module's socket it measures
 * the module the same way (the side-by-side hook of the script).
 */
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hfe/client.h"
#include "hfe/wire.h"

#define MAX_PIDS 4
#define MAX_AUS 200000

struct proc {
	const char *name;
	int pid;
	double cpu0;
	long rss_max;
};

static double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* utime + stime of the whole process (threads that exited included), ms */
static double proc_cpu_ms(int pid)
{
	char path[64], buf[2048];
	unsigned long ut, st;
	FILE *f;
	size_t n;
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return NAN;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
			 &st) != 2)
		return NAN;
	return (double)(ut + st) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

static long proc_kb(int pid, const char *key)
{
	char path[64], line[256];
	size_t kl = strlen(key);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':')
			v = strtol(line + kl + 1, NULL, 10);
	fclose(f);
	return v;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
	if (!n)
		return NAN;
	size_t i = (size_t)ceil(p * (double)n) - 1;

	return v[i < n ? i : n - 1];
}

/* QEMU's trace log (-trace dbus_update -msg timestamp=on): lines
 * "TID@SEC.USEC:dbus_update ...", wall clock. Returns the event times in
 * CLOCK_MONOTONIC ms, sorted. */
static double *read_trace(const char *path, size_t *n)
{
	struct timespec rt, mt;
	FILE *f = fopen(path, "r");
	double *t = NULL, off;
	size_t cap = 0;
	char line[512];

	*n = 0;
	if (!f)
		return NULL;
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mt);
	off = ((double)rt.tv_sec * 1e3 + (double)rt.tv_nsec / 1e6) -
	      ((double)mt.tv_sec * 1e3 + (double)mt.tv_nsec / 1e6);
	while (fgets(line, sizeof(line), f)) {
		unsigned long long sec, usec;
		char *at = strchr(line, '@');

		if (!at || !strstr(line, ":dbus_update") ||
		    sscanf(at + 1, "%llu.%llu:", &sec, &usec) != 2)
			continue;
		if (*n == cap) {
			double *nt = realloc(t, (cap = cap ? cap * 2 : 4096) * sizeof(*t));

			if (!nt)
				break;
			t = nt;
		}
		t[(*n)++] = (double)sec * 1e3 + (double)usec / 1e3 - off;
	}
	fclose(f);
	qsort(t, *n, sizeof(*t), cmp_double);
	return t;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: bench-dbus-scanout --connect ADDR [--scanout N] [--warmup S] "
		   "[--duration S]\n"
		   "       [--pid NAME=PID]... [--qemu-trace FILE]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "connect", required_argument, NULL, 'c' },
		{ "scanout", required_argument, NULL, 's' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "duration", required_argument, NULL, 'd' },
		{ "pid", required_argument, NULL, 'p' },
		{ "qemu-trace", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *addr = NULL, *trace = NULL;
	double warmup = 1, duration = 10;
	unsigned scanout = 0;
	struct proc procs[MAX_PIDS];
	unsigned n_procs = 0;
	int opt;

	while ((opt = getopt_long(argc, argv, "c:s:w:d:p:t:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			addr = optarg;
			break;
		case 's':
			scanout = (unsigned)atoi(optarg);
			break;
		case 'w':
			warmup = atof(optarg);
			break;
		case 'd':
			duration = atof(optarg);
			break;
		case 'p': {
			char *eq = strchr(optarg, '=');

			if (!eq || n_procs == MAX_PIDS || atoi(eq + 1) <= 0) {
				usage(stderr);
				return 2;
			}
			*eq = '\0';
			procs[n_procs++] = (struct proc){ .name = optarg, .pid = atoi(eq + 1) };
			break;
		}
		case 't':
			trace = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!addr || duration <= 0 || scanout >= HFE_MAX_SCANOUTS) {
		usage(stderr);
		return 2;
	}

	struct hfe_err err = { 0 };
	struct hfe_msg m = { .hdr = { .type = HFE_MSG_SUBSCRIBE, .session_id = (uint16_t)scanout } };
	struct hfe_client *c = hfe_client_connect(addr, 10000, &err);

	if (!c) {
		fprintf(stderr, "bench-dbus-scanout: %s: %s\n", addr, err.msg);
		return 1;
	}
	m.u.scanout_id = scanout;
	if (hfe_client_send_msg(c, &m, 5000, &err) < 0) {
		fprintf(stderr, "bench-dbus-scanout: SUBSCRIBE: %s\n", err.msg);
		return 1;
	}

	double *lat = malloc(MAX_AUS * sizeof(*lat)), *pts = malloc(MAX_AUS * sizeof(*pts));
	double *rcv = malloc(MAX_AUS * sizeof(*rcv));
	double t_start = mono_ms(), t_win = t_start + warmup * 1e3, t_end = t_win + duration * 1e3;
	double next_sample = t_win;
	size_t n = 0;
	uint64_t bytes = 0;
	bool subscribed = false, in_window = false;

	if (!lat || !pts || !rcv)
		return 1;
	for (;;) {
		double now = mono_ms();

		if (now >= t_end)
			break;
		if (!in_window && now >= t_win) {
			in_window = true;
			for (unsigned i = 0; i < n_procs; i++)
				procs[i].cpu0 = proc_cpu_ms(procs[i].pid);
		}
		if (in_window && now >= next_sample) {
			for (unsigned i = 0; i < n_procs; i++) {
				long r = proc_kb(procs[i].pid, "VmRSS");

				procs[i].rss_max = r > procs[i].rss_max ? r : procs[i].rss_max;
			}
			next_sample = now + 100;
		}
		int r = hfe_client_recv(c, &m, 50, &err);

		if (r < 0) {
			fprintf(stderr, "bench-dbus-scanout: %s\n", err.msg);
			return 1;
		}
		if (r == 0)
			continue;
		if (m.hdr.type == HFE_MSG_SUBSCRIBE_RESP) {
			if (!m.u.subscribe_resp.success) {
				fprintf(stderr, "bench-dbus-scanout: scanout %u refused\n", scanout);
				return 1;
			}
			subscribed = true;
			continue;
		}
		if (m.hdr.type != HFE_MSG_FRAME_RESPONSE || !in_window || n == MAX_AUS)
			continue;
		now = mono_ms();
		pts[n] = (double)m.u.frame_resp.pts / 1e6;
		rcv[n] = now;
		lat[n] = now - pts[n];
		bytes += m.data_len; /* the NAL area (4-byte sizes included) */
		n++;
	}
	double win_s = (mono_ms() - t_win) / 1e3;

	printf("subscribed=%d aus=%zu fps=%.1f kbps=%.0f", subscribed, n, (double)n / win_s,
	       (double)bytes * 8 / 1e3 / win_s);
	qsort(lat, n, sizeof(*lat), cmp_double);
	printf(" lat_p50_ms=%.1f lat_p99_ms=%.1f lat_max_ms=%.1f", pct(lat, n, 0.5),
	       pct(lat, n, 0.99), n ? lat[n - 1] : NAN);
	if (trace) {
		size_t ne, nq = 0;
		double *ev = read_trace(trace, &ne), *q = malloc((n ? n : 1) * sizeof(*q));

		for (size_t i = 0; q && ev && i < n; i++) {
			/* last event at or before this AU's first damage */
			size_t lo = 0, hi = ne;

			while (lo < hi) {
				size_t mid = (lo + hi) / 2;

				if (ev[mid] <= pts[i])
					lo = mid + 1;
				else
					hi = mid;
			}
			if (lo > 0)
				q[nq++] = rcv[i] - ev[lo - 1];
		}
		size_t in_win = 0;

		for (size_t i = 0; ev && i < ne; i++)
			in_win += ev[i] >= t_win && ev[i] <= t_win + win_s * 1e3;
		if (q)
			qsort(q, nq, sizeof(*q), cmp_double);
		printf(" upd_per_s=%.1f qlat_p50_ms=%.1f qlat_p99_ms=%.1f qlat_max_ms=%.1f", (double)in_win / win_s,
		       q ? pct(q, nq, 0.5) : NAN, q ? pct(q, nq, 0.99) : NAN,
		       q && nq ? q[nq - 1] : NAN);
		free(ev);
		free(q);
	}
	for (unsigned i = 0; i < n_procs; i++)
		printf(" cpu_%s_pct=%.1f rss_%s_kb=%ld hwm_%s_kb=%ld", procs[i].name,
		       (proc_cpu_ms(procs[i].pid) - procs[i].cpu0) / 10 / win_s, procs[i].name,
		       procs[i].rss_max, procs[i].name, proc_kb(procs[i].pid, "VmHWM"));
	printf("\n");
	free(lat);
	free(pts);
	free(rcv);
	hfe_client_close(c);
	return 0;
}
