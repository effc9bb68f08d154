/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfe-viewer: options, start and shutdown (viewer.h says what the program
 * does and how it is split). The main loop also runs a tick that re-asks for
 * keyframes pages still wait for; SIGINT/SIGTERM stop it, after which the
 * pages get a Going Away and the MP4 is finished.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib-unix.h>
#include <libavutil/log.h>

#include "hfe/addr.h"
#include "hfe/log.h"
#include "viewer.h"

#define TICK_MS 250 /* keyframe re-requests, stalled pages */

int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void say(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static gboolean on_tick(gpointer data)
{
	struct viewer *v = data;
	maybe_request_keyframe(v);
	return G_SOURCE_CONTINUE;
}

static gboolean on_signal(gpointer data)
{
	struct viewer *v = data;
	g_main_loop_quit(v->loop);
	return G_SOURCE_CONTINUE;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " --connect ADDR --scanout N [--http IP:PORT] [--record FILE.mp4]\n"
		"       [--token-file FILE] [--tls-cert FILE --tls-key FILE] [--control]\n"
		"       [--size page|WxH|guest] [--replug]\n"
		"Watch a scanout live in a browser: subscribe to it on a helix-frame-export host\n"
		"and serve a page that decodes the H.264 with WebCodecs.\n"
		"\n"
		"  -c, --connect ADDR   host address (unix:PATH, tcp:HOST:PORT, vsock:CID:PORT)\n"
		"  -s, --scanout N      scanout id (0..%u)\n"
		"      --http IP:PORT   where to serve the page (default 127.0.0.1:8080;\n"
		"                       port 0 picks a free one; the URL is printed)\n"
		"  -r, --record FILE    also write the stream to an MP4 (finished at exit)\n"
		"      --token-file FILE\n"
		"                       the URL's secret token (else $HFE_VIEWER_TOKEN, else\n"
		"                       a random one); every request must carry it\n"
		"      --tls-cert FILE  serve HTTPS with this PEM certificate (chain) ...\n"
		"      --tls-key FILE   ... and this PEM private key\n"
		"      --control        forward the pages' keyboard and pointer to the VM (the\n"
		"                       host must take input: its control listener)\n"
		"      --size page      the output's mode follows the page's size (on load and\n"
		"                       on resize): the default with --control, and only with it\n"
		"      --size WxH       ask the host for this mode instead (e.g. 1280x800)\n"
		"      --size guest     never ask: the guest's own mode (default without --control)\n"
		"      --replug         a new size unplugs the output and plugs it back (for\n"
		"                       compositors that read the preferred mode only when an\n"
		"                       output connects, e.g. weston 10); the picture pauses ~2 s\n"
		"  -h, --help           this help\n"
		"  -V, --version        print the version\n"
		"\n"
		"WebCodecs needs a secure context: http://127.0.0.1, http://localhost, or\n"
		"HTTPS (--tls-cert) from another machine. Ctrl-C stops.\n",
		HFE_MAX_SCANOUTS - 1);
}

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die_usage(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see '" PROG " --help')\n");
	exit(EXIT_USAGE);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "connect", required_argument, NULL, 'c' },
		{ "scanout", required_argument, NULL, 's' },
		{ "http", required_argument, NULL, 'H' },
		{ "record", required_argument, NULL, 'r' },
		{ "token-file", required_argument, NULL, 'T' },
		{ "tls-cert", required_argument, NULL, 'C' },
		{ "tls-key", required_argument, NULL, 'K' },
		{ "control", no_argument, NULL, 'X' },
		{ "size", required_argument, NULL, 'S' },
		{ "replug", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	struct viewer v = { .scanout = UINT32_MAX, .http = "127.0.0.1:8080", .cursor_cur = -1 };
	const char *record = NULL, *token_file = NULL, *size = NULL;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:s:r:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			v.addr = optarg;
			break;
		case 's': {
			char *end;
			errno = 0;
			unsigned long n = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || *optarg == '-' ||
			    n >= HFE_MAX_SCANOUTS)
				die_usage("--scanout: expected a number 0..%u, got '%s'",
					  HFE_MAX_SCANOUTS - 1, optarg);
			v.scanout = (uint32_t)n;
			break;
		}
		case 'H':
			v.http = optarg;
			break;
		case 'r':
			record = optarg;
			break;
		case 'T':
			token_file = optarg;
			break;
		case 'C':
			v.tls_cert = optarg;
			break;
		case 'K':
			v.tls_key = optarg;
			break;
		case 'X':
			v.control = true;
			break;
		case 'S':
			size = optarg;
			break;
		case 'P':
			v.replug = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("%s (" PROG ")\n", hfe_version_string());
			return 0;
		case ':':
			die_usage("option '%s' needs a value", argv[optind - 1]);
		default:
			die_usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		die_usage("unexpected argument '%s'", argv[optind]);
	if (!v.addr)
		die_usage("--connect ADDR is required");
	struct hfe_addr a;
	char why[256];
	if (hfe_addr_parse(v.addr, &a, why, sizeof(why)) < 0)
		die_usage("--connect: %s", why);
	if (v.scanout == UINT32_MAX)
		die_usage("--scanout N is required");
	if (record && !*record)
		die_usage("--record: empty file name");
	if (!v.tls_cert != !v.tls_key)
		die_usage("--tls-cert and --tls-key go together");
	v.size_mode = v.control ? SIZE_PAGE : SIZE_GUEST;
	if (size && !size_parse(&v, size))
		die_usage("--size: expected page, guest or WxH (at least 320x200), got '%s'", size);
	if (v.size_mode == SIZE_PAGE && !v.control)
		die_usage("--size page needs --control (resizing the VM's screen controls it)");
	if (v.replug && v.size_mode == SIZE_GUEST)
		die_usage("--replug goes with --size page or --size WxH");

	signal(SIGPIPE, SIG_IGN);
	av_log_set_level(AV_LOG_WARNING);
	say("%s", hfe_version_string());

	v.loop = g_main_loop_new(NULL, FALSE);
	v.pages = g_ptr_array_new();
	v.exit_code = EXIT_FAILURE;
	if (record) {
		v.rec.path = g_canonicalize_filename(record, NULL);
		v.recording = true;
		say("will record to %s (from the first keyframe)", v.rec.path);
	}
	if (!access_init(&v, token_file) || !start_http(&v))
		goto out;

	if (!upstream_connect(&v))
		v.retry_timer = g_timeout_add(RETRY_MS, on_retry, &v);
	v.tick_timer = g_timeout_add(TICK_MS, on_tick, &v);
	g_unix_signal_add(SIGINT, on_signal, &v);
	g_unix_signal_add(SIGTERM, on_signal, &v);

	printf("%s: open %s in a browser\n", PROG, v.url);
	fflush(stdout);
	g_main_loop_run(v.loop);

	say("stopping: %" PRIu64 " frames received (%" PRIu64 " keyframes, %" PRIu64
	    " requested), %.1f MB",
	    v.frames_in, v.keyframes_in, v.key_requests, (double)v.bytes_in / 1e6);
	v.exit_code = 0;
out:
	close_pages(&v);
	if (v.server) {
		soup_server_disconnect(v.server);
		g_object_unref(v.server);
	}
	upstream_close(&v);
	size_stop(&v);
	input_stop(&v);
	if (v.retry_timer)
		g_source_remove(v.retry_timer);
	if (v.tick_timer)
		g_source_remove(v.tick_timer);
	if (v.reaper)
		g_source_remove(v.reaper);
	recorder_close(&v.rec);
	if (v.rec.failed && v.exit_code == 0)
		v.exit_code = EXIT_FAILURE;
	g_ptr_array_free(v.pages, TRUE);
	g_main_loop_unref(v.loop);
	g_free(v.url);
	g_free(v.token);
	cursor_free(&v);
	g_clear_object(&v.tls);
	return v.exit_code;
}
