/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfe-client: talk HXFR to a host from the command line.
 *
 *   send       raw frames (test patterns or a y4m file) in, H.264 out
 *   ping       round-trip times
 *   stats      host capabilities (HELLO_RESP) and connection statistics
 *   subscribe  receive a scanout's pushed bitstream
 *
 * Errors are one line on stderr; exit 2 for usage errors, 1 for runtime
 * errors (including any ERROR from the host).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "hfe/addr.h"
#include "hfe/client.h"
#include "hfe/image.h"
#include "hfe/log.h"
#include "hfe/wire.h"

#define PROG "hfe-client"
#define EXIT_USAGE 2
#define CONNECT_TIMEOUT_MS 5000
#define DEFAULT_TIMEOUT_MS 20000
#define SESSION_ID 1

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void install_sigint(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* ---- messages ---- */

static const char *cmd_name = PROG;

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die_usage(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", cmd_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see '%s --help')\n", cmd_name);
	exit(EXIT_USAGE);
}

static void die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", cmd_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_FAILURE);
}

static void die_host_error(const char *addr, const struct hfe_msg *m)
	__attribute__((noreturn));
static void die_host_error(const char *addr, const struct hfe_msg *m)
{
	die("host at %s: ERROR %s (%d): %s", addr, hfe_error_name(m->u.error.code),
	    m->u.error.code, m->u.error.message);
}

/* ---- option parsing ---- */

static uint32_t parse_u32(const char *opt, const char *s, uint32_t min, uint32_t max)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		die_usage("%s: expected a number %u..%u, got '%s'", opt, min, max, s);
	return (uint32_t)v;
}

static double parse_seconds(const char *opt, const char *s)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > 1e7)
		die_usage("%s: expected a positive number of seconds, got '%s'", opt, s);
	return v;
}

static void parse_size(const char *s, uint32_t *w, uint32_t *h)
{
	char *end;
	errno = 0;
	unsigned long a = strtoul(s, &end, 10);
	if (errno || end == s || (*end != 'x' && *end != 'X') || *s == '-')
		die_usage("--size: expected WIDTHxHEIGHT, got '%s'", s);
	const char *p = end + 1;
	unsigned long b = strtoul(p, &end, 10);
	if (errno || end == p || *end || *p == '-')
		die_usage("--size: expected WIDTHxHEIGHT, got '%s'", s);
	if (a < HFE_MIN_DIMENSION || b < HFE_MIN_DIMENSION || a > HFE_MAX_DIMENSION ||
	    b > HFE_MAX_DIMENSION || (a & 1) || (b & 1))
		die_usage("--size %s: width and height must be even, %u..%u", s, HFE_MIN_DIMENSION,
			  HFE_MAX_DIMENSION);
	*w = (uint32_t)a;
	*h = (uint32_t)b;
}

struct format_name {
	const char *name;
	uint32_t fourcc;
};

static const struct format_name formats[] = {
	{ "XR24", HFE_FMT_XRGB8888 }, { "AR24", HFE_FMT_ARGB8888 }, { "AB24", HFE_FMT_ABGR8888 },
	{ "XB24", HFE_FMT_XBGR8888 }, { "NV12", HFE_FMT_NV12 },     { "I420", HFE_FMT_I420 },
	{ "YU12", HFE_FMT_I420 },
};

static uint32_t parse_format(const char *s)
{
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (!strcasecmp(s, formats[i].name))
			return formats[i].fourcc;
	die_usage("--format: unknown format '%s' (XR24, AR24, AB24, XB24, NV12, I420)", s);
}

static const char *format_name(uint32_t fourcc)
{
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (formats[i].fourcc == fourcc)
			return formats[i].name;
	return "?";
}

/* getopt_long with our own one-line messages. */
static int next_opt(int argc, char **argv, const struct option *opts)
{
	int idx = 0;
	opterr = 0;
	int c = getopt_long(argc, argv, ":", opts, &idx);
	if (c == '?')
		die_usage("unknown option '%s'", argv[optind - 1]);
	if (c == ':')
		die_usage("option '%s' needs a value", argv[optind - 1]);
	return c;
}

static void no_extra_args(int argc, char **argv)
{
	if (optind < argc)
		die_usage("unexpected argument '%s'", argv[optind]);
}

/* A malformed address is a usage error; an unreachable one a runtime error. */
static void require_addr(const char *addr)
{
	struct hfe_addr a;
	char why[256];
	if (!addr)
		die_usage("--connect ADDR is required");
	if (hfe_addr_parse(addr, &a, why, sizeof(why)) < 0)
		die_usage("--connect: %s", why);
}

/* ---- clock and statistics ---- */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double percentile(const double *v, size_t n, double p)
{
	if (!n)
		return 0;
	size_t rank = (size_t)ceil(p / 100.0 * (double)n);
	if (rank < 1)
		rank = 1;
	return v[rank > n ? n - 1 : rank - 1];
}

/* A "N frames, F fps" line on stderr at most once a second. */
struct progress {
	double t;        /* when the last line was printed (or the start) */
	uint64_t frames; /* frames counted then */
};

static void progress_tick(struct progress *p, uint64_t frames, double t_now)
{
	if (t_now - p->t < 1.0)
		return;
	fprintf(stderr, "%s: %" PRIu64 " frames, %.1f fps\n", cmd_name, frames,
		(double)(frames - p->frames) / (t_now - p->t));
	p->t = t_now;
	p->frames = frames;
}

/* ---- connection helpers ---- */

static struct hfe_client *open_client(const char *addr)
{
	struct hfe_err err = { 0 };
	struct hfe_client *c = hfe_client_connect(addr, CONNECT_TIMEOUT_MS, &err);
	if (!c)
		die("%s", err.msg);
	return c;
}

static void do_hello(struct hfe_client *c, struct hfe_hello_resp *caps, int timeout_ms)
{
	struct hfe_err err = { 0 };
	if (hfe_client_hello(c, PROG, caps, timeout_ms, &err) < 0)
		die("%s", err.msg);
}

static void send_or_die(struct hfe_client *c, const struct hfe_msg *m, int timeout_ms)
{
	struct hfe_err err = { 0 };
	if (hfe_client_send_msg(c, m, timeout_ms, &err) < 0)
		die("%s", err.msg);
}

/* Wait for one message; dies on error, timeout and host ERRORs. */
static void recv_or_die(struct hfe_client *c, const char *addr, struct hfe_msg *m,
			int timeout_ms, const char *waiting_for)
{
	struct hfe_err err = { 0 };
	int r = hfe_client_recv(c, m, timeout_ms, &err);
	if (r < 0)
		die("%s", err.msg);
	if (r == 0)
		die("host at %s: no %s within %d ms", addr, waiting_for, timeout_ms);
	if (m->hdr.type == HFE_MSG_ERROR)
		die_host_error(addr, m);
}

static FILE *open_output(const char *path)
{
	if (!strcmp(path, "-"))
		return stdout;
	FILE *f = fopen(path, "wb");
	if (!f)
		die("cannot open output %s: %s", path, strerror(errno));
	return f;
}

static void close_output(FILE *f, const char *path)
{
	if (f == stdout) {
		if (fflush(f) != 0)
			die("writing output: %s", strerror(errno));
		return;
	}
	if (fclose(f) != 0)
		die("writing %s: %s", path, strerror(errno));
}

/* Write every unit of a FRAME_RESPONSE; returns bytes written. */
static size_t write_units(FILE *f, const char *path, const struct hfe_msg *m)
{
	size_t pos = 0, total = 0;
	const uint8_t *nal;
	uint32_t len;
	while (hfe_nal_next(m, &pos, &nal, &len)) {
		if (len && fwrite(nal, 1, len, f) != len)
			die("writing %s: %s", path, strerror(errno));
		total += len;
	}
	return total;
}

static void print_codecs(FILE *f, uint32_t codecs)
{
	fprintf(f, "%s%s%s", codecs & HFE_CODEC_H264 ? " H.264" : "",
		codecs & HFE_CODEC_HEVC ? " HEVC" : "", codecs ? "" : " none");
}

static void print_caps(FILE *f, const char *indent, const struct hfe_hello_resp *h)
{
	char fcc[5];
	fprintf(f, "%sserver: %s\n", indent, h->server_name);
	fprintf(f, "%sversion: %u\n", indent, h->version);
	fprintf(f, "%scodecs: 0x%x", indent, h->codecs);
	print_codecs(f, h->codecs);
	fprintf(f, "\n%ssources: 0x%x%s%s%s\n", indent, h->sources,
		h->sources & HFE_SOURCE_PIXELS ? " pixels" : "",
		h->sources & HFE_SOURCE_RESOURCE ? " resource" : "",
		h->sources & HFE_SOURCE_SCANOUT ? " scanout" : "");
	fprintf(f, "%smax_width: %u\n%smax_height: %u\n", indent, h->max_width, indent,
		h->max_height);
	fprintf(f, "%smax_payload: %u\n%smax_inflight: %u\n", indent, h->max_payload, indent,
		h->max_inflight);
	fprintf(f, "%sformats:", indent);
	for (uint32_t i = 0; i < h->format_count && i < HFE_HELLO_MAX_FORMATS; i++)
		fprintf(f, " %s", hfe_fourcc_str(h->formats[i], fcc));
	fputc('\n', f);
}

static void print_stats(FILE *f, const char *indent, const struct hfe_stats *s)
{
	fprintf(f, "%sframes_received: %" PRIu64 "\n", indent, s->frames_received);
	fprintf(f, "%sframes_encoded: %" PRIu64 "\n", indent, s->frames_encoded);
	fprintf(f, "%sframes_dropped: %" PRIu64 "\n", indent, s->frames_dropped);
	fprintf(f, "%skeyframes: %" PRIu64 "\n", indent, s->keyframes);
	fprintf(f, "%sbytes_received: %" PRIu64 "\n", indent, s->bytes_received);
	fprintf(f, "%sbytes_sent: %" PRIu64 "\n", indent, s->bytes_sent);
	fprintf(f, "%sencode_us_avg: %u\n", indent, s->encode_us_avg);
	fprintf(f, "%sencode_us_max: %u\n", indent, s->encode_us_max);
	fprintf(f, "%sinflight: %u\n", indent, s->inflight);
}

/* ---- test patterns (rendered as XR24: bytes B, G, R, x) ---- */

enum pattern { PAT_SMPTE, PAT_BALL, PAT_GRADIENT };

struct rgb {
	uint8_t r, g, b;
};

static inline void put_px(uint8_t *row, uint32_t x, struct rgb c)
{
	uint8_t *p = row + 4 * (size_t)x;
	p[0] = c.b;
	p[1] = c.g;
	p[2] = c.r;
	p[3] = 0xff;
}

static void fill_rect(uint8_t *buf, uint32_t stride, uint32_t w, uint32_t h, int64_t x0,
		      int64_t y0, int64_t x1, int64_t y1, struct rgb c)
{
	if (x0 < 0)
		x0 = 0;
	if (y0 < 0)
		y0 = 0;
	if (x1 > w)
		x1 = w;
	if (y1 > h)
		y1 = h;
	for (int64_t y = y0; y < y1; y++) {
		uint8_t *row = buf + (size_t)y * stride;
		for (int64_t x = x0; x < x1; x++)
			put_px(row, (uint32_t)x, c);
	}
}

/* Position bouncing between 0 and span at `speed` per frame. */
static int64_t bounce(uint64_t frame, uint32_t speed, int64_t span)
{
	if (span <= 0)
		return 0;
	int64_t t = (int64_t)((frame * speed) % (uint64_t)(2 * span));
	return t <= span ? t : 2 * span - t;
}

/* The frame number as a row of 16 binary blocks (white = 1). */
static void draw_counter(uint8_t *buf, uint32_t stride, uint32_t w, uint32_t h, uint64_t frame)
{
	uint32_t cell = h / 40 > 2 ? h / 40 : 2;
	int64_t y0 = (int64_t)h - 2 * cell, x0 = (int64_t)w - 17 * cell;
	for (int bit = 0; bit < 16; bit++) {
		struct rgb c = (frame >> (15 - bit)) & 1 ? (struct rgb){ 235, 235, 235 }
							 : (struct rgb){ 40, 40, 40 };
		fill_rect(buf, stride, w, h, x0 + bit * (int64_t)cell, y0,
			  x0 + (bit + 1) * (int64_t)cell, y0 + cell, c);
	}
}

static void render_smpte(uint8_t *buf, uint32_t stride, uint32_t w, uint32_t h, uint64_t frame)
{
	static const struct rgb bars[7] = {
		{ 191, 191, 191 }, { 191, 191, 0 }, { 0, 191, 191 }, { 0, 191, 0 },
		{ 191, 0, 191 },   { 191, 0, 0 },   { 0, 0, 191 },
	};
	static const struct rgb castellations[7] = {
		{ 0, 0, 191 },   { 19, 19, 19 }, { 191, 0, 191 },  { 19, 19, 19 },
		{ 0, 191, 191 }, { 19, 19, 19 }, { 191, 191, 191 },
	};
	static const struct rgb bottom[8] = {
		{ 0, 33, 76 }, { 255, 255, 255 }, { 50, 0, 106 }, { 19, 19, 19 },
		{ 9, 9, 9 },   { 19, 19, 19 },    { 29, 29, 29 }, { 19, 19, 19 },
	};
	/* Bottom row block edges in 28ths of the width (-I, white, +Q, black, pluge). */
	static const uint32_t bottom_edges[9] = { 0, 5, 10, 15, 20, 22, 24, 26, 28 };
	uint32_t top = h * 2 / 3, mid = h * 3 / 4;

	/* Three kinds of rows: render the first of each band, copy the rest. */
	for (uint32_t y = 0; y < h; y++) {
		uint8_t *row = buf + (size_t)y * stride;
		if (y != 0 && y != top && y != mid) {
			memcpy(row, row - stride, (size_t)w * 4);
			continue;
		}
		for (uint32_t x = 0; x < w; x++) {
			struct rgb c;
			if (y < top) {
				c = bars[(uint64_t)x * 7 / w];
			} else if (y < mid) {
				c = castellations[(uint64_t)x * 7 / w];
			} else {
				uint32_t k = (uint32_t)((uint64_t)x * 28 / w), i = 0;
				while (i < 7 && k >= bottom_edges[i + 1])
					i++;
				c = bottom[i];
			}
			put_px(row, x, c);
		}
	}
	/* A box sliding across the bars so every frame differs. */
	uint32_t box = h / 8 > 8 ? h / 8 : 8;
	int64_t bx = bounce(frame, w / 64 > 2 ? w / 64 : 2, (int64_t)w - box);
	int64_t by = (int64_t)(top - box) / 2;
	fill_rect(buf, stride, w, h, bx, by, bx + box, by + box, (struct rgb){ 16, 16, 16 });
	fill_rect(buf, stride, w, h, bx + box / 4, by + box / 4, bx + box * 3 / 4,
		  by + box * 3 / 4, (struct rgb){ 255, 255, 255 });
	draw_counter(buf, stride, w, h, frame);
}

static void render_ball(uint8_t *buf, uint32_t stride, uint32_t w, uint32_t h, uint64_t frame)
{
	for (uint32_t y = 0; y < h; y++) {
		uint8_t *row = buf + (size_t)y * stride;
		struct rgb c = { 10, (uint8_t)(20 + 40 * y / h), (uint8_t)(60 + 120 * y / h) };
		for (uint32_t x = 0; x < w; x++)
			put_px(row, x, c);
	}
	int64_t r = h / 10 > 4 ? h / 10 : 4;
	int64_t cx = r + bounce(frame, w / 100 > 3 ? w / 100 : 3, (int64_t)w - 2 * r);
	int64_t cy = r + bounce(frame, h / 90 > 2 ? h / 90 : 2, (int64_t)h - 2 * r);
	for (int64_t y = cy - r; y < cy + r; y++) {
		if (y < 0 || y >= h)
			continue;
		uint8_t *row = buf + (size_t)y * stride;
		for (int64_t x = cx - r; x < cx + r; x++) {
			int64_t dx = x - cx, dy = y - cy;
			if (x < 0 || x >= w || dx * dx + dy * dy > r * r)
				continue;
			/* Shaded towards the lower right. */
			int shade = (int)(20 * (dx + dy) / r); /* -40..40 */
			put_px(row, (uint32_t)x,
			       (struct rgb){ (uint8_t)(210 - shade), (uint8_t)(130 - shade), 30 });
		}
	}
	draw_counter(buf, stride, w, h, frame);
}

static void render_gradient(uint8_t *buf, uint32_t stride, uint32_t w, uint32_t h,
			    uint64_t frame)
{
	uint32_t shift = (uint32_t)(frame * 4 % w);
	uint8_t *red = malloc(w);
	if (!red)
		die("out of memory");
	for (uint32_t x = 0; x < w; x++)
		red[x] = (uint8_t)(255 * (uint64_t)((x + shift) % w) / w);
	for (uint32_t y = 0; y < h; y++) {
		uint8_t *row = buf + (size_t)y * stride;
		uint8_t g = (uint8_t)(255 * (uint64_t)y / h);
		for (uint32_t x = 0; x < w; x++) {
			uint8_t b = (uint8_t)((x / 2 + y / 2 + shift) & 0xff);
			put_px(row, x, (struct rgb){ red[x], g, b });
		}
	}
	free(red);
	draw_counter(buf, stride, w, h, frame);
}

/* A pattern frame in `format`, laid out as on the wire. */
struct pattern_gen {
	enum pattern kind;
	uint32_t w, h, format, stride;
	uint8_t *rgb;   /* XR24 canvas */
	uint8_t *frame; /* output (== rgb for XR24/AR24) */
	size_t frame_len;
};

static void pattern_init(struct pattern_gen *g, enum pattern kind, uint32_t w, uint32_t h,
			 uint32_t format)
{
	struct hfe_limits lim;
	struct hfe_err err;
	uint64_t size;

	memset(g, 0, sizeof(*g));
	g->kind = kind;
	g->w = w;
	g->h = h;
	g->format = format;
	g->stride = (format == HFE_FMT_NV12 || format == HFE_FMT_I420) ? w : w * 4;
	hfe_limits_default(&lim);
	lim.max_width = lim.max_height = HFE_MAX_DIMENSION;
	lim.max_payload = UINT32_MAX;
	if (hfe_frame_size(format, w, h, g->stride, &lim, &size, &err) < 0)
		die("frame %ux%u %s: %s", w, h, format_name(format), err.msg);
	g->frame_len = (size_t)size;
	g->rgb = malloc((size_t)w * h * 4);
	if (!g->rgb)
		die("out of memory");
	if (format == HFE_FMT_XRGB8888 || format == HFE_FMT_ARGB8888) {
		g->frame = g->rgb;
	} else {
		g->frame = malloc(g->frame_len);
		if (!g->frame)
			die("out of memory");
	}
}

static void pattern_free(struct pattern_gen *g)
{
	if (g->frame != g->rgb)
		free(g->frame);
	free(g->rgb);
}

static void pattern_render(struct pattern_gen *g, uint64_t frame_no)
{
	uint32_t rs = g->w * 4;
	switch (g->kind) {
	case PAT_SMPTE:
		render_smpte(g->rgb, rs, g->w, g->h, frame_no);
		break;
	case PAT_BALL:
		render_ball(g->rgb, rs, g->w, g->h, frame_no);
		break;
	case PAT_GRADIENT:
		render_gradient(g->rgb, rs, g->w, g->h, frame_no);
		break;
	}
	if (g->format == HFE_FMT_XBGR8888 || g->format == HFE_FMT_ABGR8888) {
		/* R, G, B, x byte order. */
		size_t n = (size_t)g->w * g->h;
		for (size_t i = 0; i < n; i++) {
			const uint8_t *s = g->rgb + 4 * i;
			uint8_t *d = g->frame + 4 * i;
			d[0] = s[2];
			d[1] = s[1];
			d[2] = s[0];
			d[3] = 0xff;
		}
	} else if (g->format == HFE_FMT_NV12 || g->format == HFE_FMT_I420) {
		struct hfe_image src, dst;
		hfe_image_wrap(&src, HFE_FMT_XRGB8888, g->w, g->h, rs, g->rgb);
		hfe_image_wrap(&dst, g->format, g->w, g->h, g->stride, g->frame);
		if (hfe_convert(&src, &dst) < 0)
			die("cannot convert the test pattern to %s", format_name(g->format));
	}
}

/* ---- y4m input ---- */

struct y4m {
	FILE *f;
	const char *path;
	uint32_t w, h;
	uint32_t fps_num, fps_den; /* 0 if the header has none */
	size_t frame_len;
	uint8_t *frame;
	uint64_t frames_read;
};

static bool y4m_colourspace_ok(const char *cs)
{
	static const char *const ok[] = { "420jpeg", "420paldv", "420mpeg2", "420" };
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (!strcmp(cs, ok[i]))
			return true;
	return false;
}

/* Read one line (without '\n') of at most cap - 1 bytes. -1 on EOF/too long. */
static int read_line(FILE *f, char *buf, size_t cap, bool *eof_at_start)
{
	size_t n = 0;
	int ch;
	*eof_at_start = false;
	while ((ch = fgetc(f)) != EOF && ch != '\n') {
		if (n + 1 >= cap)
			return -1;
		buf[n++] = (char)ch;
	}
	buf[n] = '\0';
	if (ch == EOF) {
		*eof_at_start = n == 0;
		return -1;
	}
	return 0;
}

static void y4m_open(struct y4m *y, const char *path)
{
	char line[4096];
	bool eof;

	memset(y, 0, sizeof(*y));
	y->path = path;
	y->f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	if (!y->f)
		die("cannot open %s: %s", path, strerror(errno));
	if (read_line(y->f, line, sizeof(line), &eof) < 0 || strncmp(line, "YUV4MPEG2", 9) ||
	    (line[9] != ' ' && line[9] != '\0'))
		die("%s: not a y4m file (no 'YUV4MPEG2' header line)", path);

	char cs[64] = "420jpeg";
	char *save = NULL;
	for (char *tok = strtok_r(line + 9, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		char *end;
		switch (tok[0]) {
		case 'W':
			y->w = (uint32_t)strtoul(tok + 1, &end, 10);
			if (*end || end == tok + 1)
				die("%s: bad width '%s' in the y4m header", path, tok);
			break;
		case 'H':
			y->h = (uint32_t)strtoul(tok + 1, &end, 10);
			if (*end || end == tok + 1)
				die("%s: bad height '%s' in the y4m header", path, tok);
			break;
		case 'F': {
			unsigned long n = strtoul(tok + 1, &end, 10), d;
			if (*end != ':' || end == tok + 1)
				die("%s: bad frame rate '%s' in the y4m header", path, tok);
			const char *p = end + 1;
			d = strtoul(p, &end, 10);
			if (*end || end == p || !n || !d || n > 1000000 || d > 1000000)
				die("%s: bad frame rate '%s' in the y4m header", path, tok);
			y->fps_num = (uint32_t)n;
			y->fps_den = (uint32_t)d;
			break;
		}
		case 'C':
			snprintf(cs, sizeof(cs), "%s", tok + 1);
			break;
		case 'I':
			if (strcmp(tok, "Ip") && strcmp(tok, "I?"))
				fprintf(stderr, "%s: warning: %s: interlaced y4m, sent as progressive\n",
					cmd_name, path);
			break;
		default: /* A (aspect), X (comments): not needed */
			break;
		}
	}
	if (!y4m_colourspace_ok(cs))
		die("%s: unsupported y4m colourspace C%s (only 8-bit 4:2:0: C420jpeg, C420paldv, "
		    "C420mpeg2, C420)",
		    path, cs);
	if (!y->w || !y->h)
		die("%s: y4m header has no W or H", path);
	if ((y->w & 1) || (y->h & 1) || y->w < HFE_MIN_DIMENSION || y->h < HFE_MIN_DIMENSION ||
	    y->w > HFE_MAX_DIMENSION || y->h > HFE_MAX_DIMENSION)
		die("%s: y4m size %ux%u: frames must have even width and height, %u..%u", path,
		    y->w, y->h, HFE_MIN_DIMENSION, HFE_MAX_DIMENSION);
	/* Planar 4:2:0 as in y4m is exactly the wire's I420 with stride = width. */
	y->frame_len = (size_t)y->w * y->h + 2 * ((size_t)(y->w / 2) * (y->h / 2));
	y->frame = malloc(y->frame_len);
	if (!y->frame)
		die("out of memory");
}

/* 1 frame read, 0 end of file. */
static int y4m_read(struct y4m *y)
{
	char line[1024];
	bool eof;
	if (read_line(y->f, line, sizeof(line), &eof) < 0) {
		if (eof)
			return 0;
		die("%s: bad frame header after frame %" PRIu64, y->path, y->frames_read);
	}
	if (strncmp(line, "FRAME", 5) || (line[5] != ' ' && line[5] != '\0'))
		die("%s: expected 'FRAME' after frame %" PRIu64, y->path, y->frames_read);
	size_t n = fread(y->frame, 1, y->frame_len, y->f);
	if (n != y->frame_len)
		die("%s: frame %" PRIu64 " truncated (%zu of %zu bytes)", y->path, y->frames_read,
		    n, y->frame_len);
	y->frames_read++;
	return 1;
}

static void y4m_close(struct y4m *y)
{
	if (y->f && y->f != stdin)
		fclose(y->f);
	free(y->frame);
}

/* ---- send ---- */

static void send_usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " send --connect ADDR --output FILE [OPTION]...\n"
		"Send raw frames to a host, write the H.264 it returns (Annex-B) to FILE.\n"
		"\n"
		"  -c, --connect ADDR        unix:PATH | tcp:HOST:PORT | vsock:CID:PORT | serial:PATH\n"
		"  -o, --output FILE         H.264 output ('-' = stdout)\n"
		"  -i, --input FILE          y4m file (8-bit 4:2:0), sent as I420 ('-' = stdin)\n"
		"  -p, --pattern NAME        smpte | ball | gradient (default smpte, if no --input)\n"
		"  -s, --size WxH            pattern size (default 1280x720)\n"
		"  -n, --frames N            frames to send (default 60; all of --input)\n"
		"  -f, --format FMT          pattern pixel format: XR24 AR24 AB24 XB24 NV12 I420\n"
		"                            (default XR24)\n"
		"      --fps N               frame rate for timestamps and rate control (default 30,\n"
		"                            or the y4m header's)\n"
		"  -b, --bitrate KBPS        target bitrate in kbit/s (default: the host's)\n"
		"      --inflight N          frames sent ahead of replies (default 2)\n"
		"      --keyframe-every N    ask for an IDR every N frames (default: never)\n"
		"      --v1                  act like a deployed v1 guest: no HELLO, no CONFIG_REQ\n"
		"      --timeout MS          wait at most this long for any reply (default %d)\n"
		"  -h, --help                this help\n"
		"\n"
		"Prints progress every second and a summary (fps, bitrate, latency, host stats)\n"
		"on stderr. Exits 1 on any ERROR from the host.\n",
		DEFAULT_TIMEOUT_MS);
}

/* What `send` was asked to do, checked for consistency. */
struct send_opts {
	const char *addr, *output, *input;
	uint32_t w, h, fps, bitrate_k, inflight, kf_every, format;
	uint64_t frames;
	bool have_frames, v1;
	int timeout;
	enum pattern pat;
};

static enum pattern parse_pattern(const char *s)
{
	if (!strcmp(s, "smpte"))
		return PAT_SMPTE;
	if (!strcmp(s, "ball"))
		return PAT_BALL;
	if (!strcmp(s, "gradient"))
		return PAT_GRADIENT;
	die_usage("--pattern: unknown pattern '%s' (smpte, ball, gradient)", s);
}

/* Fills o from argv; false when --help was printed instead. */
static bool send_parse_args(int argc, char **argv, struct send_opts *o)
{
	static const struct option opts[] = {
		{ "connect", required_argument, NULL, 'c' },
		{ "output", required_argument, NULL, 'o' },
		{ "input", required_argument, NULL, 'i' },
		{ "pattern", required_argument, NULL, 'p' },
		{ "size", required_argument, NULL, 's' },
		{ "frames", required_argument, NULL, 'n' },
		{ "format", required_argument, NULL, 'f' },
		{ "fps", required_argument, NULL, 'r' },
		{ "bitrate", required_argument, NULL, 'b' },
		{ "inflight", required_argument, NULL, 'q' },
		{ "keyframe-every", required_argument, NULL, 'k' },
		{ "v1", no_argument, NULL, '1' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *pattern_s = NULL;
	bool have_size = false, have_format = false;
	int c;

	*o = (struct send_opts){ .w = 1280, .h = 720, .inflight = 2,
				 .format = HFE_FMT_XRGB8888, .timeout = DEFAULT_TIMEOUT_MS,
				 .pat = PAT_SMPTE };
	while ((c = next_opt(argc, argv, opts)) != -1) {
		switch (c) {
		case 'c': o->addr = optarg; break;
		case 'o': o->output = optarg; break;
		case 'i': o->input = optarg; break;
		case 'p': pattern_s = optarg; break;
		case 's': parse_size(optarg, &o->w, &o->h); have_size = true; break;
		case 'n':
			o->frames = parse_u32("--frames", optarg, 1, UINT32_MAX);
			o->have_frames = true;
			break;
		case 'f': o->format = parse_format(optarg); have_format = true; break;
		case 'r': o->fps = parse_u32("--fps", optarg, 1, 240); break;
		case 'b': o->bitrate_k = parse_u32("--bitrate", optarg, 10, 1000000); break;
		case 'q': o->inflight = parse_u32("--inflight", optarg, 1, 64); break;
		case 'k': o->kf_every = parse_u32("--keyframe-every", optarg, 1, UINT32_MAX); break;
		case '1': o->v1 = true; break;
		case 't': o->timeout = (int)parse_u32("--timeout", optarg, 1, INT_MAX); break;
		case 'h': send_usage(stdout); return false;
		}
	}
	no_extra_args(argc, argv);
	require_addr(o->addr);
	if (!o->output)
		die_usage("--output FILE is required");
	if (o->input && pattern_s)
		die_usage("--input and --pattern exclude each other");
	if (o->input && have_size)
		die_usage("--size cannot be used with --input (the y4m header has the size)");
	if (o->input && have_format && o->format != HFE_FMT_I420)
		die_usage("--format %s: y4m input is sent as I420", format_name(o->format));
	if (o->v1 && o->bitrate_k)
		die_usage("--bitrate needs a CONFIG_REQ, which --v1 does not send");
	if (pattern_s)
		o->pat = parse_pattern(pattern_s);
	return true;
}

/* Frames to send: a y4m file or a test pattern, and what they look like. */
struct frame_source {
	bool y4m_input;
	struct y4m y4m;
	struct pattern_gen gen;
	uint32_t w, h, format, stride, fps_num, fps_den;
	size_t frame_len;
	uint64_t frames; /* to send; UINT64_MAX: until the file ends */
};

static void source_open(struct frame_source *src, const struct send_opts *o)
{
	memset(src, 0, sizeof(*src));
	src->fps_num = o->fps ? o->fps : 30;
	src->fps_den = 1;
	src->frames = o->frames;
	if (o->input) {
		src->y4m_input = true;
		y4m_open(&src->y4m, o->input);
		src->w = src->y4m.w;
		src->h = src->y4m.h;
		src->format = HFE_FMT_I420;
		src->stride = src->w;
		src->frame_len = src->y4m.frame_len;
		if (!o->fps && src->y4m.fps_num) {
			src->fps_num = src->y4m.fps_num;
			src->fps_den = src->y4m.fps_den;
		}
		if (!o->have_frames)
			src->frames = UINT64_MAX;
	} else {
		src->w = o->w;
		src->h = o->h;
		src->format = o->format;
		pattern_init(&src->gen, o->pat, src->w, src->h, src->format);
		src->stride = src->gen.stride;
		src->frame_len = src->gen.frame_len;
		if (!o->have_frames)
			src->frames = 60;
	}
	if ((double)src->fps_num / src->fps_den > 240)
		die("frame rate %u/%u is above 240 fps", src->fps_num, src->fps_den);
}

/* Pixels of frame n (frames are asked for in order), NULL at the end of the file. */
static const uint8_t *source_frame(struct frame_source *src, uint64_t n)
{
	if (src->y4m_input)
		return y4m_read(&src->y4m) ? src->y4m.frame : NULL;
	pattern_render(&src->gen, n);
	return src->gen.frame;
}

static void source_close(struct frame_source *src)
{
	if (src->y4m_input)
		y4m_close(&src->y4m);
	else
		pattern_free(&src->gen);
}

/* v2: HELLO (warn if the host does not list our format), then CONFIG_REQ. */
static void send_negotiate(struct hfe_client *cl, const struct send_opts *o,
			   const struct frame_source *src)
{
	struct hfe_err err = { 0 };
	struct hfe_hello_resp caps;
	bool offered = false;

	do_hello(cl, &caps, o->timeout);
	for (uint32_t i = 0; i < caps.format_count && i < HFE_HELLO_MAX_FORMATS; i++)
		offered |= caps.formats[i] == src->format;
	if (!offered)
		fprintf(stderr, "%s: warning: host at %s does not list format %s\n", cmd_name,
			o->addr, format_name(src->format));
	struct hfe_config_req cfg = {
		.width = src->w, .height = src->h, .bitrate = o->bitrate_k * 1000,
		.fps_num = src->fps_num, .fps_den = src->fps_den, .realtime = 1,
	};
	if (hfe_client_send_config(cl, SESSION_ID, &cfg, o->timeout, &err) < 0)
		die("%s", err.msg);
}

struct inflight_slot {
	int64_t pts;
	double t_send;
	bool forced;
};

/* One `send` run: the pipeline of outstanding frames and what came back. */
struct send_run {
	const struct send_opts *o;
	struct frame_source *src;
	struct hfe_client *cl;
	FILE *out;
	struct inflight_slot *slots; /* o->inflight, indexed by frame number */
	double *lat;                 /* round trips in ms, one per reply */
	size_t lat_n, lat_cap;
	uint64_t sent, received, keyframes, forced_missed, out_bytes;
	bool source_done;
};

/* Keep up to o->inflight frames outstanding. */
static void send_fill(struct send_run *r)
{
	const struct frame_source *src = r->src;
	struct hfe_err err = { 0 };

	while (!r->source_done && !interrupted && r->sent < src->frames &&
	       r->sent - r->received < r->o->inflight) {
		const uint8_t *pixels = source_frame(r->src, r->sent);
		if (!pixels) {
			r->source_done = true;
			break;
		}
		struct inflight_slot *s = &r->slots[r->sent % r->o->inflight];
		uint32_t kf_every = r->o->kf_every;
		struct hfe_frame_request fr = {
			.width = src->w, .height = src->h, .format = src->format,
			.stride = src->stride,
			.pts = (int64_t)(r->sent * 1000000000ull * src->fps_den / src->fps_num),
			.duration = (int64_t)(1000000000ull * src->fps_den / src->fps_num),
			.force_keyframe = kf_every && r->sent && r->sent % kf_every == 0,
		};
		s->pts = fr.pts;
		s->forced = fr.force_keyframe;
		s->t_send = now_s();
		if (hfe_client_send_frame(r->cl, SESSION_ID, &fr, pixels, src->frame_len,
					  r->o->timeout, &err) < 0)
			die("%s", err.msg);
		r->sent++;
	}
	if (r->sent >= src->frames)
		r->source_done = true;
}

/* A FRAME_RESPONSE: must answer the oldest outstanding frame. */
static void send_take_frame(struct send_run *r, const struct hfe_msg *m, double t_now)
{
	const char *addr = r->o->addr;
	struct inflight_slot *s = &r->slots[r->received % r->o->inflight];

	if (m->u.frame_resp.pts != s->pts)
		die("host at %s: reply %" PRIu64 " has pts %" PRId64 ", expected %" PRId64
		    " (out of order?)",
		    addr, r->received, m->u.frame_resp.pts, s->pts);
	if (m->hdr.session_id != SESSION_ID)
		die("host at %s: reply %" PRIu64 " has session_id %u, expected %u", addr,
		    r->received, m->hdr.session_id, SESSION_ID);
	if (m->u.frame_resp.is_keyframe)
		r->keyframes++;
	else if (s->forced)
		r->forced_missed++;
	r->out_bytes += write_units(r->out, r->o->output, m);
	if (r->lat_n == r->lat_cap) {
		r->lat_cap *= 2;
		r->lat = realloc(r->lat, r->lat_cap * sizeof(*r->lat));
		if (!r->lat)
			die("out of memory");
	}
	r->lat[r->lat_n++] = (t_now - s->t_send) * 1000.0;
	r->received++;
}

/* Wait for one reply and account for it; returns when it came. */
static double send_receive(struct send_run *r)
{
	const char *addr = r->o->addr;
	struct hfe_err err = { 0 };
	struct hfe_msg m;
	int rc = hfe_client_recv(r->cl, &m, r->o->timeout, &err);

	if (rc < 0)
		die("%s", err.msg);
	if (rc == 0)
		die("host at %s: no reply to frame %" PRIu64 " within %d ms", addr, r->received,
		    r->o->timeout);
	double t_now = now_s();
	switch (m.hdr.type) {
	case HFE_MSG_FRAME_RESPONSE:
		send_take_frame(r, &m, t_now);
		break;
	case HFE_MSG_CONFIG_RESP: {
		const struct hfe_config_resp *cr = &m.u.config_resp;
		fprintf(stderr,
			"%s: host config: %ux%u, %u bit/s, %u/%u fps, profile %u, level %u, "
			"encoder %s\n",
			cmd_name, cr->width, cr->height, cr->bitrate, cr->fps_num, cr->fps_den,
			cr->profile, cr->level, cr->encoder);
		break;
	}
	case HFE_MSG_ERROR:
		die_host_error(addr, &m);
	default: {
		const char *name = hfe_msg_type_name(m.hdr.type);
		fprintf(stderr, "%s: ignoring unexpected %s from host at %s\n", cmd_name,
			name ? name : "message", addr);
		break;
	}
	}
	return t_now;
}

/* Send and receive until every frame sent has come back (or Ctrl-C), with a
 * progress line every second. */
static void send_loop(struct send_run *r)
{
	struct progress progress = { now_s(), 0 };

	for (;;) {
		send_fill(r);
		if (r->received == r->sent && (r->source_done || interrupted))
			break;
		double t_now = send_receive(r);
		progress_tick(&progress, r->received, t_now);
	}
}

/* v2: the host's counters for this connection. */
static void fetch_stats(struct hfe_client *cl, const char *addr, int timeout,
			struct hfe_stats *stats)
{
	struct hfe_msg m = { .hdr = { .type = HFE_MSG_STATS_REQ, .session_id = SESSION_ID } };

	send_or_die(cl, &m, timeout);
	recv_or_die(cl, addr, &m, timeout, "STATS_RESP");
	if (m.hdr.type != HFE_MSG_STATS_RESP)
		die("host at %s answered STATS_REQ with %s", addr, hfe_msg_type_name(m.hdr.type));
	*stats = m.u.stats;
}

/* The summary on stderr; host_stats NULL when there are none (v1). */
static void send_report(struct send_run *r, double elapsed, const struct hfe_stats *host_stats)
{
	const struct frame_source *src = r->src;
	double video_s = (double)r->received * src->fps_den / src->fps_num;

	qsort(r->lat, r->lat_n, sizeof(*r->lat), cmp_double);
	fprintf(stderr, "%s: %" PRIu64 " frames %ux%u %s to %s (v%u) in %.2f s: %.1f fps\n",
		cmd_name, r->received, src->w, src->h, format_name(src->format), r->o->addr,
		hfe_client_version(r->cl), elapsed,
		elapsed > 0 ? (double)r->received / elapsed : 0.0);
	fprintf(stderr, "  output: %s, %" PRIu64 " bytes, %.1f kbit/s at %.2f fps, %" PRIu64
			" keyframes\n",
		r->o->output, r->out_bytes,
		video_s > 0 ? (double)r->out_bytes * 8 / video_s / 1000 : 0.0,
		(double)src->fps_num / src->fps_den, r->keyframes);
	fprintf(stderr, "  latency (send start -> response): p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
		percentile(r->lat, r->lat_n, 50), percentile(r->lat, r->lat_n, 99),
		r->lat_n ? r->lat[r->lat_n - 1] : 0.0);
	if (r->forced_missed)
		fprintf(stderr, "  warning: %" PRIu64 " requested keyframes came back as P-frames\n",
			r->forced_missed);
	if (host_stats) {
		fprintf(stderr, "  host stats (this connection):\n");
		print_stats(stderr, "    ", host_stats);
	}
	if (interrupted)
		fprintf(stderr, "%s: interrupted\n", cmd_name);
}

static int cmd_send(int argc, char **argv)
{
	struct send_opts o;
	struct frame_source src;
	struct hfe_stats host_stats;

	cmd_name = PROG " send";
	if (!send_parse_args(argc, argv, &o))
		return 0;
	source_open(&src, &o);

	install_sigint();
	struct send_run r = { .o = &o, .src = &src, .cl = open_client(o.addr), .lat_cap = 1024 };
	if (!o.v1)
		send_negotiate(r.cl, &o, &src);
	r.out = open_output(o.output);
	r.slots = calloc(o.inflight, sizeof(*r.slots));
	r.lat = malloc(r.lat_cap * sizeof(*r.lat));
	if (!r.slots || !r.lat)
		die("out of memory");

	double t_start = now_s();
	send_loop(&r);
	double elapsed = now_s() - t_start;
	close_output(r.out, o.output);
	if (!o.v1)
		fetch_stats(r.cl, o.addr, o.timeout, &host_stats);
	send_report(&r, elapsed, o.v1 ? NULL : &host_stats);

	hfe_client_close(r.cl);
	free(r.slots);
	free(r.lat);
	source_close(&src);
	return interrupted ? EXIT_FAILURE : 0;
}

/* ---- ping ---- */

static void ping_usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " ping --connect ADDR [--count N] [--interval MS]\n"
		"Send PINGs and print each PONG's round-trip time.\n"
		"\n"
		"  -c, --connect ADDR        host address\n"
		"  -n, --count N             pings to send (default 4)\n"
		"      --interval MS         pause between pings (default 1000)\n"
		"      --timeout MS          wait at most this long for a PONG (default 5000)\n"
		"  -h, --help                this help\n");
}

static int cmd_ping(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "connect", required_argument, NULL, 'c' },
		{ "count", required_argument, NULL, 'n' },
		{ "interval", required_argument, NULL, 'i' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *addr = NULL;
	uint32_t count = 4, interval = 1000;
	int timeout = 5000, c;

	cmd_name = PROG " ping";
	while ((c = next_opt(argc, argv, opts)) != -1) {
		switch (c) {
		case 'c': addr = optarg; break;
		case 'n': count = parse_u32("--count", optarg, 1, 1000000); break;
		case 'i': interval = parse_u32("--interval", optarg, 0, 3600000); break;
		case 't': timeout = (int)parse_u32("--timeout", optarg, 1, INT_MAX); break;
		case 'h': ping_usage(stdout); return 0;
		}
	}
	no_extra_args(argc, argv);
	require_addr(addr);

	install_sigint();
	struct hfe_client *cl = open_client(addr);
	double min = INFINITY, max = 0, sum = 0;
	uint32_t got = 0, i;
	for (i = 0; i < count && !interrupted; i++) {
		uint16_t seq = (uint16_t)(i + 1);
		struct hfe_msg m = { .hdr = { .type = HFE_MSG_PING, .session_id = seq } };
		double t0 = now_s();
		send_or_die(cl, &m, timeout);
		recv_or_die(cl, addr, &m, timeout, "PONG");
		double ms = (now_s() - t0) * 1000;
		if (m.hdr.type != HFE_MSG_PONG)
			die("host at %s answered PING with %s", addr, hfe_msg_type_name(m.hdr.type));
		if (m.hdr.session_id != seq)
			die("host at %s: PONG echoes session_id %u, expected %u", addr,
			    m.hdr.session_id, seq);
		printf("PONG from %s: seq=%u time=%.3f ms\n", addr, seq, ms);
		fflush(stdout);
		got++;
		sum += ms;
		min = ms < min ? ms : min;
		max = ms > max ? ms : max;
		if (i + 1 < count && interval) {
			struct timespec ts = { interval / 1000, (long)(interval % 1000) * 1000000 };
			nanosleep(&ts, NULL);
		}
	}
	printf("%u sent, %u received, rtt min/avg/max = %.3f/%.3f/%.3f ms\n", i, got,
	       got ? min : 0.0, got ? sum / got : 0.0, max);
	hfe_client_close(cl);
	return interrupted ? EXIT_FAILURE : 0;
}

/* ---- stats ---- */

static void stats_usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " stats --connect ADDR\n"
		"Negotiate v2 and print the host's capabilities (HELLO_RESP) and the statistics\n"
		"of this connection (STATS_RESP; counters are per connection, so a fresh one\n"
		"shows zeros).\n"
		"\n"
		"  -c, --connect ADDR        host address\n"
		"      --timeout MS          wait at most this long for replies (default 5000)\n"
		"  -h, --help                this help\n");
}

static int cmd_stats(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "connect", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *addr = NULL;
	int timeout = 5000, c;

	cmd_name = PROG " stats";
	while ((c = next_opt(argc, argv, opts)) != -1) {
		switch (c) {
		case 'c': addr = optarg; break;
		case 't': timeout = (int)parse_u32("--timeout", optarg, 1, INT_MAX); break;
		case 'h': stats_usage(stdout); return 0;
		}
	}
	no_extra_args(argc, argv);
	require_addr(addr);

	struct hfe_client *cl = open_client(addr);
	struct hfe_hello_resp caps;
	do_hello(cl, &caps, timeout);
	printf("host: %s\n", addr);
	print_caps(stdout, "", &caps);

	struct hfe_msg m = { .hdr = { .type = HFE_MSG_STATS_REQ } };
	send_or_die(cl, &m, timeout);
	recv_or_die(cl, addr, &m, timeout, "STATS_RESP");
	if (m.hdr.type != HFE_MSG_STATS_RESP)
		die("host at %s answered STATS_REQ with %s", addr, hfe_msg_type_name(m.hdr.type));
	printf("stats (this connection):\n");
	print_stats(stdout, "  ", &m.u.stats);
	hfe_client_close(cl);
	return 0;
}

/* ---- subscribe ---- */

static void subscribe_usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " subscribe --connect ADDR --scanout N --output FILE [OPTION]...\n"
		"Subscribe to a scanout and write the H.264 the host pushes to FILE.\n"
		"\n"
		"  -c, --connect ADDR        host address\n"
		"  -s, --scanout N           scanout id (0..%u)\n"
		"  -o, --output FILE         H.264 output ('-' = stdout)\n"
		"  -n, --frames N            stop after N frames\n"
		"  -d, --duration S          stop after S seconds\n"
		"      --v1                  no HELLO first\n"
		"      --timeout MS          wait at most this long for SUBSCRIBE_RESP (default 5000)\n"
		"  -h, --help                this help\n"
		"\n"
		"Without --frames or --duration it runs until interrupted.\n",
		HFE_MAX_SCANOUTS - 1);
}

/* HELLO unless v1, SUBSCRIBE, and its answer; dies unless it is a success. */
static void subscribe_start(struct hfe_client *cl, const char *addr, uint32_t scanout, bool v1,
			    int timeout)
{
	struct hfe_hello_resp caps;
	if (!v1) {
		do_hello(cl, &caps, timeout);
		if (!(caps.sources & HFE_SOURCE_SCANOUT))
			fprintf(stderr, "%s: warning: host at %s does not offer scanout capture\n",
				cmd_name, addr);
	}
	struct hfe_msg m = { .hdr = { .type = HFE_MSG_SUBSCRIBE, .session_id = (uint16_t)scanout } };
	m.u.scanout_id = scanout;
	send_or_die(cl, &m, timeout);
	/* Skip anything else until the answer (nothing else is expected). */
	for (;;) {
		recv_or_die(cl, addr, &m, timeout, "SUBSCRIBE_RESP");
		if (m.hdr.type == HFE_MSG_SUBSCRIBE_RESP)
			break;
	}
	if (!m.u.subscribe_resp.success)
		die("host at %s refused SUBSCRIBE to scanout %u (SUBSCRIBE_RESP success=0)", addr,
		    scanout);
	fprintf(stderr, "%s: subscribed to scanout %u at %s\n", cmd_name, scanout, addr);
}

struct subscribe_counts {
	uint64_t frames, keyframes, bytes;
};

/* Write the pushed frames of `scanout` to out until max_frames (0: no limit),
 * duration seconds (0: none) or ^C. */
static void subscribe_receive(struct hfe_client *cl, const char *addr, uint32_t scanout,
			      FILE *out, const char *output, uint64_t max_frames, double duration,
			      struct subscribe_counts *n)
{
	double t_start = now_s();
	struct progress progress = { t_start, 0 };
	struct hfe_err err = { 0 };
	struct hfe_msg m;

	while (!interrupted && (!max_frames || n->frames < max_frames)) {
		if (duration > 0 && now_s() - t_start >= duration)
			break;
		/* Short waits so --duration and ^C are noticed. */
		int r = hfe_client_recv(cl, &m, 200, &err);
		if (r < 0)
			die("%s", err.msg);
		if (r == 1 && m.hdr.type == HFE_MSG_ERROR)
			die_host_error(addr, &m);
		if (r == 1 && m.hdr.type == HFE_MSG_FRAME_RESPONSE) {
			if (m.hdr.session_id != scanout)
				fprintf(stderr, "%s: frame for scanout %u ignored\n", cmd_name,
					m.hdr.session_id);
			else {
				if (m.u.frame_resp.is_keyframe)
					n->keyframes++;
				if (n->frames == 0 && !m.u.frame_resp.is_keyframe)
					fprintf(stderr, "%s: warning: first frame is not a keyframe\n",
						cmd_name);
				n->bytes += write_units(out, output, &m);
				n->frames++;
			}
		}
		progress_tick(&progress, n->frames, now_s());
	}
}

static int cmd_subscribe(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "connect", required_argument, NULL, 'c' },
		{ "scanout", required_argument, NULL, 's' },
		{ "output", required_argument, NULL, 'o' },
		{ "frames", required_argument, NULL, 'n' },
		{ "duration", required_argument, NULL, 'd' },
		{ "v1", no_argument, NULL, '1' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *addr = NULL, *output = NULL;
	uint32_t scanout = UINT32_MAX;
	uint64_t max_frames = 0;
	double duration = 0;
	bool v1 = false;
	int timeout = 5000, c;

	cmd_name = PROG " subscribe";
	while ((c = next_opt(argc, argv, opts)) != -1) {
		switch (c) {
		case 'c': addr = optarg; break;
		case 's': scanout = parse_u32("--scanout", optarg, 0, HFE_MAX_SCANOUTS - 1); break;
		case 'o': output = optarg; break;
		case 'n': max_frames = parse_u32("--frames", optarg, 1, UINT32_MAX); break;
		case 'd': duration = parse_seconds("--duration", optarg); break;
		case '1': v1 = true; break;
		case 't': timeout = (int)parse_u32("--timeout", optarg, 1, INT_MAX); break;
		case 'h': subscribe_usage(stdout); return 0;
		}
	}
	no_extra_args(argc, argv);
	require_addr(addr);
	if (scanout == UINT32_MAX)
		die_usage("--scanout N is required");
	if (!output)
		die_usage("--output FILE is required");

	install_sigint();
	struct hfe_client *cl = open_client(addr);
	subscribe_start(cl, addr, scanout, v1, timeout);

	FILE *out = open_output(output);
	struct subscribe_counts n = { 0 };
	double t_start = now_s();
	subscribe_receive(cl, addr, scanout, out, output, max_frames, duration, &n);
	close_output(out, output);
	double elapsed = now_s() - t_start;
	fprintf(stderr,
		"%s: %" PRIu64 " frames in %.2f s (%.1f fps), %" PRIu64 " bytes (%.1f kbit/s), "
		"%" PRIu64 " keyframes\n",
		cmd_name, n.frames, elapsed, elapsed > 0 ? n.frames / elapsed : 0.0, n.bytes,
		elapsed > 0 ? n.bytes * 8 / elapsed / 1000 : 0.0, n.keyframes);
	hfe_client_close(cl);
	return 0;
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " COMMAND [OPTION]...\n"
		"Client for helix-frame-export hosts (HXFR protocol).\n"
		"\n"
		"Commands:\n"
		"  send        send raw frames (test pattern or y4m), write the H.264 returned\n"
		"  ping        measure round-trip times\n"
		"  stats       print the host's capabilities and connection statistics\n"
		"  subscribe   receive the H.264 a host pushes for a scanout\n"
		"\n"
		"  -h, --help      this help ('" PROG " COMMAND --help' for a command's options)\n"
		"  -V, --version   print the version\n"
		"\n"
		"Addresses: unix:PATH, tcp:HOST:PORT, vsock:CID:PORT, serial:PATH\n"
		"Example: " PROG " send --connect unix:/run/hfe.sock --pattern ball "
		"--output out.h264\n");
}

int main(int argc, char **argv)
{
	if (argc < 2)
		die_usage("missing command (send, ping, stats, subscribe)");
	const char *cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
		printf("%s\n", hfe_version_string());
		return 0;
	}
	/* Sub-command options start after the command name. */
	argc--;
	argv++;
	optind = 1;
	if (!strcmp(cmd, "send"))
		return cmd_send(argc, argv);
	if (!strcmp(cmd, "ping"))
		return cmd_ping(argc, argv);
	if (!strcmp(cmd, "stats"))
		return cmd_stats(argc, argv);
	if (!strcmp(cmd, "subscribe"))
		return cmd_subscribe(argc, argv);
	die_usage("unknown command '%s' (send, ping, stats, subscribe)", cmd);
}
