/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The real hfe-client binary ($HFE_CLIENT) against the real daemon
 * ($HFE_DAEMON) on a unix socket in a temporary directory:
 *   - send --pattern in every --format and with --v1: the output decodes with
 *     libavcodec to the right number of frames and size; every format's
 *     pictures match the XR24 run's (byte order / plane layout), and
 *     consecutive pictures differ (moving content); the summary is printed
 *   - send --input y4m (made by ffmpeg): 30 frames, matching the source (PSNR)
 *   - an unsupported y4m colourspace and an ERROR from the host: exit 1 with
 *     the reason
 *   - ping, stats, subscribe, --help, --version, usage errors (exit 2), bad
 *     and unreachable addresses named in the message
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

static const char *daemon_bin, *client_bin;
static char *dir;
static char sock_path[512], addr[600];

/* ---- files and processes ---- */

static char *path_in(const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	REQUIRE(p);
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t cap = 0, n = 0;

	*len = 0;
	if (!f)
		return NULL;
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 1 << 16;
			uint8_t *nb = realloc(buf, cap);
			REQUIRE(nb);
			buf = nb;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
	}
	fclose(f);
	*len = n;
	return buf;
}

/* Text of a captured output (NUL-terminated), "" if none. */
static char *read_text(const char *path)
{
	size_t len;
	uint8_t *b = read_file(path, &len);
	char *s = malloc(len + 1);
	REQUIRE(s);
	if (b)
		memcpy(s, b, len);
	s[len] = '\0';
	free(b);
	return s;
}

/*
 * Run argv (NULL-terminated) with stdout+stderr captured into *out (malloc'd).
 * Returns the exit code, or -1 if it did not exit normally within timeout.
 */
static int run(char **out, int timeout_ms, const char *const argv[])
{
	static int seq;
	char name[32];
	snprintf(name, sizeof(name), "run-%d.log", seq++);
	char *log = path_in(name);
	int st, rc = -1;

	unlink(log);
	pid_t pid = tu_spawn(argv, log);
	if (pid < 0) {
		fprintf(stderr, "  cannot start %s\n", argv[0]);
	} else if (tu_wait(pid, timeout_ms, &st) < 0) {
		fprintf(stderr, "  %s did not finish within %d ms\n", argv[0], timeout_ms);
		tu_kill_wait(pid, SIGKILL, 1000);
	} else if (WIFEXITED(st)) {
		rc = WEXITSTATUS(st);
	} else {
		fprintf(stderr, "  %s died with status 0x%x\n", argv[0], st);
	}
	*out = read_text(log);
	free(log);
	return rc;
}

#define CLIENT(out, ...) run((out), 120000, (const char *const[]){ client_bin, __VA_ARGS__, NULL })

static void show(const char *what, const char *text)
{
	fprintf(stderr, "  --- %s ---\n%s  ---\n", what, text);
}

static bool contains(const char *text, const char *needle)
{
	return strstr(text, needle) != NULL;
}

/* ---- daemon ---- */

static bool socket_accepts(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	size_t n = strlen(path);
	REQUIRE(n < sizeof(sun.sun_path));
	memcpy(sun.sun_path, path, n + 1);
	ok = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
	close(fd);
	return ok;
}

static pid_t start_daemon(const char *log)
{
	/* Scanout 1 comes from the daemon's test source; scanout 0 does not exist. */
	const char *argv[] = { daemon_bin, "--listen", addr, "--test-scanout", "1:320x240@30",
			       NULL };
	pid_t pid = tu_spawn(argv, log);
	REQUIRE(pid > 0);
	uint64_t deadline = tu_now_ns() + 20000000000ull;
	while (tu_now_ns() < deadline) {
		int st;
		if (tu_wait(pid, 0, &st) == 0) {
			char *t = read_text(log);
			show("daemon log", t);
			free(t);
			fprintf(stderr, "daemon exited early (status 0x%x)\n", st);
			exit(1);
		}
		struct stat sb;
		if (stat(sock_path, &sb) == 0 && S_ISSOCK(sb.st_mode) && socket_accepts(sock_path))
			return pid;
		usleep(20000);
	}
	fprintf(stderr, "daemon did not come up on %s within 20 s\n", addr);
	tu_kill_wait(pid, SIGKILL, 1000);
	exit(1);
}

/* ---- H.264 files ---- */

/* Split an Annex-B stream into access units: a new AU starts at a non-VCL
 * NAL (SEI, SPS, PPS, AUD) or at a slice with first_mb_in_slice == 0, when
 * the current AU already has a slice. Offsets include the start code. */
struct aus {
	size_t n, cap;
	size_t *off, *len;
};

static void aus_push(struct aus *a, size_t off, size_t end)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 64;
		a->off = realloc(a->off, a->cap * sizeof(size_t));
		a->len = realloc(a->len, a->cap * sizeof(size_t));
		REQUIRE(a->off && a->len);
	}
	a->off[a->n] = off;
	a->len[a->n] = end - off;
	a->n++;
}

static void split_aus(const uint8_t *d, size_t len, struct aus *a)
{
	size_t au_start = 0;
	bool have_au = false, au_has_slice = false;

	memset(a, 0, sizeof(*a));
	for (size_t i = 0; i + 3 < len; i++) {
		if (d[i] || d[i + 1] || d[i + 2] != 1)
			continue;
		size_t sc = i > 0 && d[i - 1] == 0 ? i - 1 : i; /* 4-byte start code */
		uint8_t type = d[i + 3] & 0x1f;
		bool vcl = type == 1 || type == 5;
		bool first_mb0 = vcl && i + 4 < len && (d[i + 4] & 0x80);
		bool starts_au = au_has_slice && ((vcl && first_mb0) || type == 6 || type == 7 ||
						  type == 8 || type == 9);
		if (!have_au) {
			au_start = sc;
			have_au = true;
		} else if (starts_au) {
			aus_push(a, au_start, sc);
			au_start = sc;
			au_has_slice = false;
		}
		if (vcl)
			au_has_slice = true;
		i += 2;
	}
	if (have_au)
		aus_push(a, au_start, len);
}

static void aus_free(struct aus *a)
{
	free(a->off);
	free(a->len);
}

/* Decode a whole file. Returns the number of pictures (-1 on a decoding
 * error); keeps up to max_keep pictures in pics (caller frees). */
struct decoded {
	int count;
	int idr_aus;
	uint32_t w, h;
	bool size_consistent;
	struct tu_yuv *pics;
	int kept;
};

static int decode_file(const char *path, struct decoded *dec, int max_keep)
{
	size_t len;
	uint8_t *data = read_file(path, &len);
	struct aus a;
	struct tu_decoder *d = tu_decoder_new();
	int rc = 0;

	memset(dec, 0, sizeof(*dec));
	dec->size_consistent = true;
	dec->pics = calloc((size_t)max_keep + 1, sizeof(*dec->pics));
	REQUIRE(d && dec->pics);
	if (!data || !len) {
		fprintf(stderr, "  %s is empty or missing\n", path);
		tu_decoder_free(d);
		free(data);
		return -1;
	}
	split_aus(data, len, &a);
	for (size_t i = 0; i <= a.n; i++) {
		struct tu_yuv pic;
		int r;
		if (i < a.n) {
			struct tu_nals nals;
			r = tu_decoder_decode(d, data + a.off[i], a.len[i], &pic, &nals);
			if (nals.has_idr)
				dec->idr_aus++;
		} else {
			r = tu_decoder_flush(d, &pic);
		}
		if (r < 0) {
			fprintf(stderr, "  %s: decoding error at access unit %zu\n", path, i);
			rc = -1;
			break;
		}
		while (r == 1) {
			if (dec->count == 0) {
				dec->w = pic.w;
				dec->h = pic.h;
			} else if (pic.w != dec->w || pic.h != dec->h) {
				dec->size_consistent = false;
			}
			dec->count++;
			if (dec->kept < max_keep)
				dec->pics[dec->kept++] = pic;
			else
				tu_yuv_free(&pic);
			/* Drain everything the decoder has once at the end. */
			r = i == a.n ? tu_decoder_flush(d, &pic) : 0;
		}
		if (r < 0) {
			rc = -1;
			break;
		}
	}
	aus_free(&a);
	tu_decoder_free(d);
	free(data);
	return rc < 0 ? -1 : dec->count;
}

static void decoded_free(struct decoded *dec)
{
	for (int i = 0; i < dec->kept; i++)
		tu_yuv_free(&dec->pics[i]);
	free(dec->pics);
}

/* The lowest plane PSNR of a[i] against b[i] over i < n; 0 if a pair differs
 * in size. */
static double worst_psnr(const struct tu_yuv *a, const struct tu_yuv *b, int n)
{
	double worst = 100;

	for (int i = 0; i < n; i++) {
		double p[3];
		if (tu_psnr_yuv(&a[i], &b[i], p) < 0)
			return 0;
		for (int c = 0; c < 3; c++)
			if (p[c] < worst)
				worst = p[c];
	}
	return worst;
}

/* ---- send with every format ---- */

#define PW 320
#define PH 240
#define PFRAMES 60

static void test_send_formats(void)
{
	static const char *const fmts[] = { "XR24", "AR24", "AB24", "XB24", "NV12", "I420" };
	struct decoded ref = { 0 };
	char *out;

	for (size_t k = 0; k < sizeof(fmts) / sizeof(fmts[0]); k++) {
		char name[64];
		snprintf(name, sizeof(name), "pattern-%s.h264", fmts[k]);
		char *file = path_in(name);
		printf("send --pattern smpte --format %s, %d frames %dx%d\n", fmts[k], PFRAMES, PW,
		       PH);
		int rc = CLIENT(&out, "send", "--connect", addr, "--pattern", "smpte", "--size",
				"320x240", "--frames", "60", "--format", fmts[k], "--inflight", "3",
				"--output", file);
		CHECKF(rc == 0, "exit %d", rc);
		if (rc != 0)
			show("hfe-client send", out);
		/* Summary: frames, fps, bitrate, latency, keyframes, host stats. */
		CHECKF(contains(out, " 60 frames 320x240 "), "%s", out);
		CHECKF(contains(out, "kbit/s") && contains(out, "keyframes"), "%s", out);
		CHECKF(contains(out, "p50") && contains(out, "p99") && contains(out, "max"), "%s",
		       out);
		CHECKF(contains(out, "frames_encoded: 60"), "%s", out);
		free(out);

		struct decoded dec;
		int n = decode_file(file, &dec, PFRAMES);
		CHECKF(n == PFRAMES, "%s: decoded %d pictures", fmts[k], n);
		CHECKF(dec.w == PW && dec.h == PH && dec.size_consistent, "%s: %ux%u", fmts[k],
		       dec.w, dec.h);
		CHECKF(dec.idr_aus >= 1, "%s: no IDR", fmts[k]);
		if (n == PFRAMES && dec.w == PW && dec.h == PH) {
			/* The moving box: no two neighbours alike. */
			int same = 0;
			for (int i = 1; i < dec.kept; i++) {
				double p[3];
				tu_psnr_yuv(&dec.pics[i - 1], &dec.pics[i], p);
				same += p[0] >= 99.0;
			}
			CHECKF(same == 0, "%s: %d pictures equal to the one before", fmts[k], same);
		}
		if (k == 0) {
			ref = dec;
		} else {
			/* Same picture whatever the format: catches swapped R/B or
			 * misplaced chroma planes. */
			double worst = worst_psnr(ref.pics, dec.pics,
						  dec.kept < ref.kept ? dec.kept : ref.kept);
			CHECKF(worst > 28.0, "%s vs XR24: worst plane PSNR %.1f dB", fmts[k], worst);
			decoded_free(&dec);
		}
		free(file);
	}
	decoded_free(&ref);
}

static void test_send_v1(void)
{
	char *out;
	char *file = path_in("v1.h264");

	printf("send --v1 (no HELLO, no CONFIG_REQ), 1280x720, keyframe every 20\n");
	int rc = CLIENT(&out, "send", "--connect", addr, "--v1", "--pattern", "ball", "--size",
			"1280x720", "--frames", "60", "--keyframe-every", "20", "--output", file);
	CHECKF(rc == 0, "exit %d", rc);
	CHECKF(contains(out, "(v1)"), "%s", out);
	CHECKF(!contains(out, "host stats"), "%s", out);
	CHECKF(contains(out, "3 keyframes"), "%s", out);
	if (rc != 0)
		show("hfe-client send --v1", out);
	free(out);

	struct decoded dec;
	int n = decode_file(file, &dec, 0);
	CHECKF(n == 60, "decoded %d pictures", n);
	CHECKF(dec.w == 1280 && dec.h == 720 && dec.size_consistent, "%ux%u", dec.w, dec.h);
	CHECKF(dec.idr_aus == 3, "%d IDR access units", dec.idr_aus);
	decoded_free(&dec);
	free(file);
}

/* ---- y4m ---- */

static bool make_y4m(const char *path, const char *pix_fmt, int frames)
{
	char nframes[16], *out;
	snprintf(nframes, sizeof(nframes), "%d", frames);
	int rc = run(&out, 60000,
		     (const char *const[]){ "ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi",
					    "-i", "testsrc=size=320x240:rate=30", "-frames:v",
					    nframes, "-pix_fmt", pix_fmt, path, NULL });
	if (rc != 0)
		show("ffmpeg", out);
	free(out);
	return rc == 0;
}

/* Frames of a 320x240 4:2:0 y4m written by ffmpeg. */
static int read_y4m(const char *path, struct tu_yuv *pics, int max)
{
	size_t len, pos;
	uint8_t *d = read_file(path, &len);
	int n = 0;
	const uint8_t *nl = d ? memchr(d, '\n', len) : NULL;
	if (!nl) {
		free(d);
		return -1;
	}
	pos = (size_t)(nl - d) + 1;
	while (n < max && pos + 6 <= len && !memcmp(d + pos, "FRAME", 5)) {
		nl = memchr(d + pos, '\n', len - pos);
		if (!nl)
			break;
		pos = (size_t)(nl - d) + 1;
		struct tu_yuv *p = &pics[n];
		tu_yuv_alloc(p, 320, 240);
		size_t ys = (size_t)p->w * p->h, cs = (size_t)p->cw * p->ch;
		if (pos + ys + 2 * cs > len) {
			tu_yuv_free(p);
			break;
		}
		memcpy(p->y, d + pos, ys);
		memcpy(p->u, d + pos + ys, cs);
		memcpy(p->v, d + pos + ys + cs, cs);
		pos += ys + 2 * cs;
		n++;
	}
	free(d);
	return n;
}

static void test_send_y4m(void)
{
	char *y4m = path_in("in.y4m"), *file = path_in("y4m.h264"), *out;
	struct tu_yuv src[30];

	printf("send --input y4m (ffmpeg testsrc, 30 frames)\n");
	REQUIRE(make_y4m(y4m, "yuv420p", 30));
	int nsrc = read_y4m(y4m, src, 30);
	CHECKF(nsrc == 30, "source has %d frames", nsrc);

	int rc = CLIENT(&out, "send", "--connect", addr, "--input", y4m, "--output", file);
	CHECKF(rc == 0, "exit %d", rc);
	CHECKF(contains(out, " 30 frames 320x240 I420 "), "%s", out);
	if (rc != 0)
		show("hfe-client send --input", out);
	free(out);

	struct decoded dec;
	int n = decode_file(file, &dec, 30);
	CHECKF(n == 30, "decoded %d pictures", n);
	CHECKF(dec.w == 320 && dec.h == 240, "%ux%u", dec.w, dec.h);
	double worst = worst_psnr(src, dec.pics, dec.kept < nsrc ? dec.kept : nsrc);
	CHECKF(worst > 30.0, "decoded vs y4m source: worst plane PSNR %.1f dB", worst);
	decoded_free(&dec);
	for (int i = 0; i < nsrc; i++)
		tu_yuv_free(&src[i]);

	/* --frames limits a file. */
	rc = CLIENT(&out, "send", "--connect", addr, "--input", y4m, "--frames", "10", "--output",
		    file);
	CHECKF(rc == 0 && contains(out, " 10 frames "), "exit %d: %s", rc, out);
	free(out);
	n = decode_file(file, &dec, 0);
	CHECKF(n == 10, "decoded %d pictures", n);
	decoded_free(&dec);

	/* 4:4:4 is refused before anything is sent. */
	char *y444 = path_in("in444.y4m");
	REQUIRE(make_y4m(y444, "yuv444p", 2));
	rc = CLIENT(&out, "send", "--connect", addr, "--input", y444, "--output", file);
	CHECKF(rc == 1, "exit %d", rc);
	CHECKF(contains(out, "C444") && contains(out, "unsupported"), "%s", out);
	free(out);

	free(y444);
	free(y4m);
	free(file);
}

/* ---- host ERROR ---- */

static void test_host_error(void)
{
	char *out, *file = path_in("err.h264");

	printf("an ERROR from the host is printed and exits 1\n");
	/* Wider than the daemon's default max_width (8192). */
	int rc = CLIENT(&out, "send", "--connect", addr, "--v1", "--size", "8200x16", "--frames",
			"2", "--output", file);
	CHECKF(rc == 1, "exit %d", rc);
	CHECKF(contains(out, "TOO_LARGE") && contains(out, addr), "%s", out);
	free(out);
	free(file);
}

/* ---- ping, stats, subscribe ---- */

static void test_ping_stats(void)
{
	char *out;

	printf("ping\n");
	int rc = CLIENT(&out, "ping", "--connect", addr, "--count", "3", "--interval", "10");
	CHECKF(rc == 0, "exit %d", rc);
	CHECKF(contains(out, "seq=1 ") && contains(out, "seq=3 ") && contains(out, " ms"), "%s",
	       out);
	CHECKF(contains(out, "3 sent, 3 received"), "%s", out);
	free(out);

	printf("stats\n");
	rc = CLIENT(&out, "stats", "--connect", addr);
	CHECKF(rc == 0, "exit %d", rc);
	static const char *const fields[] = {
		"server: helix-frame-export", "version: 2", "codecs: 0x1 H.264", "sources:",
		"max_width: ", "max_height: ", "max_payload: ", "max_inflight: ", "formats:",
		"XR24", "NV12", "frames_received: 0", "frames_encoded: 0", "frames_dropped: 0",
		"keyframes: 0", "bytes_received: ", "bytes_sent: ", "encode_us_avg: ",
		"encode_us_max: ", "inflight: 0",
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		CHECKF(contains(out, fields[i]), "stats output lacks '%s'", fields[i]);
	CHECKF(contains(out, "scanout"), "stats output lacks the scanout source: %s", out);
	free(out);

	printf("subscribe\n");
	char *file = path_in("sub.h264");
	/* An absent scanout: the refusal must be explicit. */
	rc = CLIENT(&out, "subscribe", "--connect", addr, "--scanout", "0", "--output", file,
		    "--frames", "1", "--timeout", "3000");
	CHECKF(rc == 1, "exit %d", rc);
	CHECKF(contains(out, "refused SUBSCRIBE to scanout 0") && contains(out, addr), "%s", out);
	free(out);

	/* The test source's scanout: 20 pushed frames that decode. */
	rc = CLIENT(&out, "subscribe", "--connect", addr, "--scanout", "1", "--output", file,
		    "--frames", "20", "--timeout", "5000");
	CHECKF(rc == 0, "exit %d: %s", rc, out);
	struct decoded dec;
	int n = decode_file(file, &dec, 0);
	CHECKF(n == 20, "subscribe: %d frames decoded, want 20", n);
	CHECKF(dec.w == 320 && dec.h == 240 && dec.idr_aus >= 1, "subscribe: decoded %ux%u, %d IDRs", dec.w, dec.h, dec.idr_aus);
	decoded_free(&dec);
	free(out);
	free(file);
}

/* ---- command line ---- */

static void test_usage(void)
{
	char *out;
	int rc;

	printf("--help, --version, usage errors, bad addresses\n");
	rc = CLIENT(&out, "--help");
	CHECKF(rc == 0 && contains(out, "Usage") && contains(out, "subscribe"), "%d: %s", rc, out);
	free(out);
	static const char *const cmds[] = { "send", "ping", "stats", "subscribe" };
	for (size_t i = 0; i < 4; i++) {
		rc = CLIENT(&out, cmds[i], "--help");
		CHECKF(rc == 0 && contains(out, "Usage") && contains(out, "--connect"),
		       "%s --help: %d: %s", cmds[i], rc, out);
		free(out);
	}
	rc = CLIENT(&out, "--version");
	CHECKF(rc == 0 && contains(out, "helix-frame-export"), "%d: %s", rc, out);
	free(out);

	rc = CLIENT(&out, "frobnicate");
	CHECKF(rc == 2 && contains(out, "frobnicate"), "%d: %s", rc, out);
	free(out);
	rc = CLIENT(&out, "send", "--connect", addr);
	CHECKF(rc == 2 && contains(out, "--output"), "%d: %s", rc, out);
	free(out);
	rc = CLIENT(&out, "send", "--connect", addr, "--output", "/dev/null", "--format", "RGB3");
	CHECKF(rc == 2 && contains(out, "RGB3"), "%d: %s", rc, out);
	free(out);
	rc = CLIENT(&out, "ping", "--connect", addr, "--count", "zero");
	CHECKF(rc == 2 && contains(out, "zero"), "%d: %s", rc, out);
	free(out);
	rc = CLIENT(&out, "ping", "--connect", addr, "--no-such-option");
	CHECKF(rc == 2 && contains(out, "--no-such-option"), "%d: %s", rc, out);
	free(out);

	/* Malformed address: usage error naming it. */
	rc = CLIENT(&out, "ping", "--connect", "tcp:nohostport");
	CHECKF(rc == 2 && contains(out, "tcp:nohostport"), "%d: %s", rc, out);
	free(out);
	/* Nobody there: runtime error naming it. */
	char *nobody = path_in("nobody.sock"), nobody_addr[600];
	snprintf(nobody_addr, sizeof(nobody_addr), "unix:%s", nobody);
	rc = CLIENT(&out, "ping", "--connect", nobody_addr);
	CHECKF(rc == 1 && contains(out, nobody_addr), "%d: %s", rc, out);
	free(out);
	rc = CLIENT(&out, "send", "--connect", nobody_addr, "--output", "/dev/null");
	CHECKF(rc == 1 && contains(out, nobody_addr), "%d: %s", rc, out);
	free(out);
	free(nobody);
}

int main(void)
{
	daemon_bin = getenv("HFE_DAEMON");
	client_bin = getenv("HFE_CLIENT");
	if (!daemon_bin || !client_bin) {
		fprintf(stderr, "HFE_DAEMON and HFE_CLIENT must be set (run through meson test)\n");
		return 1;
	}
	if (access(daemon_bin, X_OK) || access(client_bin, X_OK)) {
		fprintf(stderr, "%s or %s is not built\n", daemon_bin, client_bin);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	dir = tu_mkdtemp("hfe-test-cli");
	REQUIRE(dir);
	snprintf(sock_path, sizeof(sock_path), "%s/hfe.sock", dir);
	snprintf(addr, sizeof(addr), "unix:%s", sock_path);
	char *dlog = path_in("daemon.log");
	pid_t dpid = start_daemon(dlog);

	test_usage();
	test_ping_stats();
	test_send_formats();
	test_send_v1();
	test_send_y4m();
	test_host_error();

	int st = tu_kill_wait(dpid, SIGTERM, 10000);
	CHECKF(st >= 0 && WIFEXITED(st), "daemon status 0x%x after SIGTERM", st);
	if (tu_failures) {
		char *t = read_text(dlog);
		show("daemon log (tail)", strlen(t) > 4000 ? t + strlen(t) - 4000 : t);
		free(t);
		fprintf(stderr, "files kept in %s\n", dir);
	} else {
		tu_rm_rf(dir);
	}
	free(dlog);
	free(dir);
	return tu_finish("test_cli");
}
