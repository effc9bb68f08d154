/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* helix-frame-export: the host daemon's command line. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hfe/log.h"
#include "server.h"

#define DEFAULT_LISTEN "tcp:127.0.0.1:15937"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: helix-frame-export [OPTION]...\n"
		"Host-side encoder service: guests send raw frames over HXFR, get H.264 back.\n"
		"\n"
		"Listening (repeatable; default " DEFAULT_LISTEN " when there is no --qemu):\n"
		"  -l, --listen ADDR         unix:PATH | tcp:HOST:PORT | vsock:CID:PORT\n"
		"\n"
		"Stock QEMU >= 7.0 with -display dbus (one group per VM, repeatable):\n"
		"      --qemu qmp:unix:PATH  take the screen of the QEMU whose QMP socket is PATH\n"
		"                            (started with -display dbus,p2p=yes\n"
		"                            -qmp unix:PATH,server=on,wait=off); attaches when it\n"
		"                            appears and again whenever that QEMU restarts\n"
		"      --console N           capture its console N as scanout N (repeatable,\n"
		"                            0..15; default: every graphic console it has;\n"
		"                            virtio-gpu's outputs hot-plug on ENABLE_SCANOUT)\n"
		"  -l, --listen ADDR         a channel of that VM only, typically the unix socket\n"
		"                            of its virtserialport chardev: a client there reaches\n"
		"                            this VM's consoles and nothing else\n"
		"      --control-listen ADDR as --listen, and its clients may also inject\n"
		"                            keyboard and pointer input into the consoles they\n"
		"                            watch (HXFR v2 INPUT_*; no listener does by default)\n"
		"  --console and --listen belong to the nearest --qemu before them; a --listen\n"
		"  before any --qemu serves the default host (pull mode, --test-scanout).\n"
		"\n"
		"Encoding defaults (a client's CONFIG_REQ may override rate, fps, profile):\n"
		"  -e, --encoder NAME        libavcodec encoder (default libx264; e.g. h264_nvenc,\n"
		"                            h264_vaapi, h264_videotoolbox, libx265, hevc_nvenc)\n"
		"  -b, --bitrate RATE        bit/s, k/M suffixes allowed (default 4M); for\n"
		"                            scanouts a cap: x264 codes at constant quality\n"
		"                            (CRF 23) below it, for pull sessions the target\n"
		"      --fps N[/D]           frame rate for rate control (default 30)\n"
		"  -g, --gop N               frames between IDRs, 0 = on request only (default 120)\n"
		"      --profile P           baseline (constrained) | main | high (default baseline)\n"
		"      --preset NAME         x264 preset (default ultrafast)\n"
		"      --tune NAME           x264 tune (default zerolatency)\n"
		"      --threads N           encoder threads per session, 0 = auto (default 0)\n"
		"\n"
		"Scanouts (push mode):\n"
		"      --test-scanout ID:WxH[@FPS]  serve scanout ID from the built-in moving test\n"
		"                            source (repeatable; default 30 fps; 0 = static);\n"
		"                            a --control-listen's pointer moves its cursor\n"
		"      --max-fps N           encode each scanout at most N times a second (60)\n"
		"      --no-patch-frames     run the encoder for every change (default: small\n"
		"                            changes go out as patch frames of raw macroblocks)\n"
		"\n"
		"Limits:\n"
		"      --max-clients N       connections at once (default 64)\n"
		"      --max-width N         largest frame width (default 8192)\n"
		"      --max-height N        largest frame height (default 8192)\n"
		"      --max-payload BYTES   largest message payload, k/M/G suffixes (default 256M)\n"
		"      --max-inflight N      frames read ahead of replies per client, 1..64 (default 4)\n"
		"      --max-queue BYTES     outbound bytes per client before reading pauses (16M)\n"
		"      --stall-timeout MS    drop a client stuck mid-message (default 10000)\n"
		"      --shutdown-timeout MS time for frames in flight at SIGTERM (default 5000)\n"
		"\n"
		"Least privilege (applied once the listeners are open and the VMs attach):\n"
		"      --user USER           switch to USER and its groups (from root)\n"
		"      --socket-mode MODE    unix listeners' file mode, octal (default 0660:\n"
		"                            owner and group may connect, others not)\n"
		"      --socket-group GROUP  unix listeners' group (default: the daemon's)\n"
		"      --seccomp on|log|off  system call allow-list (default on: others fail\n"
		"                            with EPERM; log: allow them but have the kernel\n"
		"                            log each, see dmesg, to find a missing call)\n"
		"      --no-seccomp          same as --seccomp off\n"
		"                            (HFE_SECCOMP=on|log|off sets the default, e.g.\n"
		"                            for a whole test suite)\n"
		"  no_new_privs is always set.\n"
		"\n"
		"  -v, --verbose             debug logging (or HFE_LOG=debug|info|warn|error)\n"
		"  -V, --version             print the version and exit\n"
		"  -h, --help                this help\n"
		"\n"
		"Examples:\n"
		"  helix-frame-export --listen unix:/run/hfe.sock --listen vsock:any:5000\n"
		"  helix-frame-export --qemu qmp:unix:/run/vm1.qmp --listen unix:/run/vm1-hfe.sock \\\n"
		"      --qemu qmp:unix:/run/vm2.qmp --console 0 --console 1 \\\n"
		"      --listen unix:/run/vm2-hfe.sock\n");
}

/* "4M", "500k", "1G", "1234" -> value; -1 on junk. */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	uint64_t mul = 1;
	switch (*end) {
	case 'k': case 'K': mul = 1000; end++; break;
	case 'm': case 'M': mul = 1000 * 1000; end++; break;
	case 'g': case 'G': mul = 1000 * 1000 * 1000; end++; break;
	default: break;
	}
	if (*end || (v && mul > UINT64_MAX / v))
		return -1;
	*out = v * mul;
	return 0;
}

/* Same, but binary multiples for byte sizes. */
static int parse_bytes(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	unsigned shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: break;
	}
	if (*end || v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

enum {
	OPT_FPS = 256, OPT_PROFILE, OPT_PRESET, OPT_TUNE, OPT_THREADS, OPT_MAX_CLIENTS,
	OPT_MAX_WIDTH, OPT_MAX_HEIGHT, OPT_MAX_PAYLOAD, OPT_MAX_INFLIGHT, OPT_MAX_QUEUE,
	OPT_STALL, OPT_SHUTDOWN, OPT_TEST_SCANOUT, OPT_MAX_FPS, OPT_NO_PATCH, OPT_QEMU, OPT_CONSOLE,
	OPT_USER, OPT_SOCKET_MODE, OPT_SOCKET_GROUP, OPT_SECCOMP, OPT_NO_SECCOMP, OPT_CONTROL_LISTEN,
};

static int parse_seccomp(const char *s, enum hfe_seccomp_mode *out)
{
	if (!strcmp(s, "on"))
		*out = HFE_SECCOMP_ON;
	else if (!strcmp(s, "log"))
		*out = HFE_SECCOMP_LOG;
	else if (!strcmp(s, "off"))
		*out = HFE_SECCOMP_OFF;
	else
		return -1;
	return 0;
}

static int bad(const char *opt, const char *val, const char *want)
{
	fprintf(stderr, "helix-frame-export: invalid value '%s' for %s (%s)\n", val, opt, want);
	fprintf(stderr, "Try 'helix-frame-export --help'.\n");
	return 2;
}

/* --qemu qmp:unix:PATH: a new VM group; its name (for logs) is the socket's
 * file name without extension, unless another VM has it already. */
static int add_vm(struct hfe_server_config *cfg, const char *arg)
{
	const char *path = arg + strlen("qmp:unix:");
	struct hfe_server_vm *vm;

#ifndef HFE_HAVE_QEMU_DBUS
	return bad("--qemu", arg, "this build has no -display dbus support (GIO was missing)");
#endif
	if (strncmp(arg, "qmp:unix:", strlen("qmp:unix:")) || !*path)
		return bad("--qemu", arg, "qmp:unix:PATH");
	if (strlen(path) >= sizeof(vm->qmp_path))
		return bad("--qemu", arg, "socket path too long");
	if (cfg->n_vms == HFE_SERVER_MAX_VMS)
		return bad("--qemu", arg, "too many VMs");
	for (unsigned i = 0; i < cfg->n_vms; i++)
		if (!strcmp(cfg->vms[i].qmp_path, path))
			return bad("--qemu", arg, "given twice");
	vm = &cfg->vms[cfg->n_vms++];
	snprintf(vm->qmp_path, sizeof(vm->qmp_path), "%s", path);
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	size_t n = strcspn(base, ".");

	snprintf(vm->name, sizeof(vm->name), "%.*s", (int)(n ? n : strlen(base)), base);
	for (unsigned i = 0; i + 1 < cfg->n_vms; i++)
		if (!strcmp(cfg->vms[i].name, vm->name))
			snprintf(vm->name, sizeof(vm->name), "vm%u", cfg->n_vms);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "control-listen", required_argument, NULL, OPT_CONTROL_LISTEN },
		{ "encoder", required_argument, NULL, 'e' },
		{ "bitrate", required_argument, NULL, 'b' },
		{ "fps", required_argument, NULL, OPT_FPS },
		{ "gop", required_argument, NULL, 'g' },
		{ "profile", required_argument, NULL, OPT_PROFILE },
		{ "preset", required_argument, NULL, OPT_PRESET },
		{ "tune", required_argument, NULL, OPT_TUNE },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "max-clients", required_argument, NULL, OPT_MAX_CLIENTS },
		{ "max-width", required_argument, NULL, OPT_MAX_WIDTH },
		{ "max-height", required_argument, NULL, OPT_MAX_HEIGHT },
		{ "max-payload", required_argument, NULL, OPT_MAX_PAYLOAD },
		{ "max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT },
		{ "max-queue", required_argument, NULL, OPT_MAX_QUEUE },
		{ "stall-timeout", required_argument, NULL, OPT_STALL },
		{ "shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN },
		{ "test-scanout", required_argument, NULL, OPT_TEST_SCANOUT },
		{ "max-fps", required_argument, NULL, OPT_MAX_FPS },
		{ "no-patch-frames", no_argument, NULL, OPT_NO_PATCH },
		{ "qemu", required_argument, NULL, OPT_QEMU },
		{ "console", required_argument, NULL, OPT_CONSOLE },
		{ "user", required_argument, NULL, OPT_USER },
		{ "socket-mode", required_argument, NULL, OPT_SOCKET_MODE },
		{ "socket-group", required_argument, NULL, OPT_SOCKET_GROUP },
		{ "seccomp", required_argument, NULL, OPT_SECCOMP },
		{ "no-seccomp", no_argument, NULL, OPT_NO_SECCOMP },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct hfe_server_config cfg;
	hfe_server_config_default(&cfg);
	uint64_t v;
	char err[256];
	int opt;
	const char *env_seccomp = getenv("HFE_SECCOMP");

	if (env_seccomp && *env_seccomp && parse_seccomp(env_seccomp, &cfg.confine.seccomp) < 0)
		return bad("HFE_SECCOMP", env_seccomp, "on, log or off");
	while ((opt = getopt_long(argc, argv, "l:e:b:g:vVh", opts, NULL)) != -1) {
		switch (opt) {
		case 'l':
		case OPT_CONTROL_LISTEN:
			if (cfg.n_listen == HFE_SERVER_MAX_LISTEN) {
				fprintf(stderr, "helix-frame-export: at most %d --listen addresses\n",
					HFE_SERVER_MAX_LISTEN);
				return 2;
			}
			if (hfe_addr_parse(optarg, &cfg.listen[cfg.n_listen], err, sizeof(err)) < 0)
				return bad("--listen", optarg, err);
			if (cfg.listen[cfg.n_listen].kind == HFE_ADDR_SERIAL)
				return bad("--listen", optarg,
					   "serial ports are the guest's side; on the host listen on "
					   "the unix socket of the virtserialport's chardev");
			cfg.listen_control[cfg.n_listen] = opt == OPT_CONTROL_LISTEN;
			cfg.listen_vm[cfg.n_listen++] = cfg.n_vms; /* the current --qemu group */
			break;
		case 'e':
			if (strlen(optarg) >= sizeof(cfg.host.enc.name))
				return bad("--encoder", optarg, "name too long");
			snprintf(cfg.host.enc.name, sizeof(cfg.host.enc.name), "%s", optarg);
			break;
		case 'b':
			if (parse_size(optarg, &v) < 0 || v < 10000 || v > 1000000000)
				return bad("--bitrate", optarg, "10k..1G bit/s");
			cfg.host.enc.bitrate = (uint32_t)v;
			break;
		case OPT_FPS: {
			unsigned num, den = 1;
			char tail;
			int n = sscanf(optarg, "%u/%u%c", &num, &den, &tail);
			if (n < 1 || n > 2 || num == 0 || den == 0 || num > 240u * den)
				return bad("--fps", optarg, "N or N/D, up to 240 fps");
			cfg.host.enc.fps_num = num;
			cfg.host.enc.fps_den = den;
			break;
		}
		case 'g':
			if (parse_uint(optarg, 0, 100000, &v) < 0)
				return bad("--gop", optarg, "0..100000");
			cfg.host.enc.gop = (uint32_t)v;
			break;
		case OPT_PROFILE:
			if (!strcmp(optarg, "baseline"))
				cfg.host.enc.profile = 66;
			else if (!strcmp(optarg, "main"))
				cfg.host.enc.profile = 77;
			else if (!strcmp(optarg, "high"))
				cfg.host.enc.profile = 100;
			else
				return bad("--profile", optarg, "baseline, main or high");
			break;
		case OPT_PRESET:
			snprintf(cfg.host.enc.preset, sizeof(cfg.host.enc.preset), "%s", optarg);
			break;
		case OPT_TUNE:
			snprintf(cfg.host.enc.tune, sizeof(cfg.host.enc.tune), "%s", optarg);
			break;
		case OPT_THREADS:
			if (parse_uint(optarg, 0, 64, &v) < 0)
				return bad("--threads", optarg, "0..64");
			cfg.host.enc.threads = (int)v;
			break;
		case OPT_MAX_CLIENTS:
			if (parse_uint(optarg, 1, 4096, &v) < 0)
				return bad("--max-clients", optarg, "1..4096");
			cfg.max_clients = (unsigned)v;
			break;
		case OPT_MAX_WIDTH:
		case OPT_MAX_HEIGHT:
			if (parse_uint(optarg, HFE_MIN_DIMENSION, HFE_MAX_DIMENSION, &v) < 0)
				return bad(opt == OPT_MAX_WIDTH ? "--max-width" : "--max-height", optarg,
					   "16..16384");
			if (opt == OPT_MAX_WIDTH)
				cfg.host.limits.max_width = (uint32_t)v;
			else
				cfg.host.limits.max_height = (uint32_t)v;
			break;
		case OPT_MAX_PAYLOAD:
			if (parse_bytes(optarg, &v) < 0 || v < 4096 || v > UINT32_MAX)
				return bad("--max-payload", optarg, "4k..4G-1 bytes");
			cfg.host.limits.max_payload = (uint32_t)v;
			break;
		case OPT_MAX_INFLIGHT:
			if (parse_uint(optarg, 1, 64, &v) < 0)
				return bad("--max-inflight", optarg, "1..64");
			cfg.host.max_inflight = (unsigned)v;
			break;
		case OPT_MAX_QUEUE:
			if (parse_bytes(optarg, &v) < 0 || v < 65536 || v > (1ull << 32))
				return bad("--max-queue", optarg, "64k..4G bytes");
			cfg.host.max_queue = (size_t)v;
			break;
		case OPT_STALL:
		case OPT_SHUTDOWN:
			if (parse_uint(optarg, 10, 3600000, &v) < 0)
				return bad(opt == OPT_STALL ? "--stall-timeout" : "--shutdown-timeout",
					   optarg, "10..3600000 ms");
			if (opt == OPT_STALL)
				cfg.host.stall_timeout_ms = (int)v;
			else
				cfg.shutdown_timeout_ms = (int)v;
			break;
		case OPT_TEST_SCANOUT: {
			struct hfe_test_scanout t = { .fps = 30 };
			char tail;
			int n = sscanf(optarg, "%u:%ux%u@%u%c", &t.id, &t.width, &t.height, &t.fps,
				       &tail);
			if (n < 3 || n > 4 || t.id >= HFE_MAX_SCANOUTS || t.width < 128 ||
			    t.height < 128 || t.width > cfg.host.limits.max_width ||
			    t.height > cfg.host.limits.max_height || t.fps > 240)
				return bad("--test-scanout", optarg,
					   "ID:WxH[@FPS], ID 0..15, at least 128x128, fps 0..240");
			if (cfg.n_test_scanouts == HFE_MAX_SCANOUTS)
				return bad("--test-scanout", optarg, "too many scanouts");
			cfg.test_scanouts[cfg.n_test_scanouts++] = t;
			break;
		}
		case OPT_QEMU: {
			int rc = add_vm(&cfg, optarg);

			if (rc)
				return rc;
			break;
		}
		case OPT_CONSOLE: {
			struct hfe_server_vm *vm = cfg.n_vms ? &cfg.vms[cfg.n_vms - 1] : NULL;

			if (!vm)
				return bad("--console", optarg, "give it after its --qemu");
			if (parse_uint(optarg, 0, HFE_MAX_SCANOUTS - 1, &v) < 0)
				return bad("--console", optarg, "0..15");
			for (unsigned i = 0; i < vm->n_consoles; i++)
				if (vm->consoles[i] == v)
					return bad("--console", optarg, "given twice for this VM");
			vm->consoles[vm->n_consoles++] = (uint32_t)v;
			break;
		}
		case OPT_MAX_FPS:
			if (parse_uint(optarg, 1, 240, &v) < 0)
				return bad("--max-fps", optarg, "1..240");
			cfg.max_fps = (uint32_t)v;
			break;
		case OPT_NO_PATCH:
			cfg.no_patch_frames = true;
			break;
		case OPT_USER:
			cfg.confine.user = optarg;
			if (hfe_confine_resolve_user(&cfg.confine, err, sizeof(err)) < 0)
				return bad("--user", optarg, err);
			break;
		case OPT_SOCKET_MODE: {
			char *end;
			unsigned long m = strtoul(optarg, &end, 8);

			/* Connecting needs write permission: a mode without it for the
			 * owner would lock everyone out. */
			if (end == optarg || *end || *optarg == '-' || m > 0777 || !(m & 0200))
				return bad("--socket-mode", optarg,
					   "octal permission bits 0200..0777 with the owner's write bit");
			if (m & 0002)
				fprintf(stderr, "helix-frame-export: warning: --socket-mode %s lets "
						"every local user connect\n", optarg);
			cfg.unix_perm.mode = (unsigned)m;
			break;
		}
		case OPT_SOCKET_GROUP: {
			struct group *gr = getgrnam(optarg);

			if (!gr)
				return bad("--socket-group", optarg, "no such group");
			cfg.unix_perm.gid = gr->gr_gid;
			break;
		}
		case OPT_SECCOMP:
			if (parse_seccomp(optarg, &cfg.confine.seccomp) < 0)
				return bad("--seccomp", optarg, "on, log or off");
			break;
		case OPT_NO_SECCOMP:
			cfg.confine.seccomp = HFE_SECCOMP_OFF;
			break;
		case 'v':
			hfe_log_set_level(HFE_LOG_DEBUG);
			break;
		case 'V':
			printf("%s\n", hfe_version_string());
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "Try 'helix-frame-export --help'.\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "helix-frame-export: unexpected argument '%s'\n", argv[optind]);
		fprintf(stderr, "Try 'helix-frame-export --help'.\n");
		return 2;
	}
	for (unsigned k = 0; k < cfg.n_vms; k++) {
		struct hfe_server_vm *vm = &cfg.vms[k];
		bool reachable = false;

		/* Every console QEMU has (found at attach); absent ones cost an
		 * idle stream each. */
		if (!vm->n_consoles)
			for (uint32_t i = 0; i < HFE_MAX_SCANOUTS; i++)
				vm->consoles[vm->n_consoles++] = i;
		for (unsigned i = 0; i < cfg.n_listen; i++)
			reachable |= cfg.listen_vm[i] == k + 1;
		if (!reachable) {
			fprintf(stderr,
				"helix-frame-export: --qemu qmp:unix:%s has no --listen after it "
				"(nobody could reach its screen)\n",
				vm->qmp_path);
			return 2;
		}
	}
	if (cfg.n_listen == 0)
		hfe_addr_parse(DEFAULT_LISTEN, &cfg.listen[cfg.n_listen++], err, sizeof(err));
	/* The daemon's user owns its sockets (it removes them at exit). */
	if (cfg.confine.user)
		cfg.unix_perm.uid = cfg.confine.uid;

	const char *enc = cfg.host.enc.name[0] ? cfg.host.enc.name : HFE_DEFAULT_ENCODER;
	if (!hfe_encoder_available(enc)) {
		fprintf(stderr,
			"helix-frame-export: encoder '%s' is not available in this FFmpeg build "
			"(see 'ffmpeg -encoders')\n",
			enc);
		return 1;
	}

	hfe_info("%s starting", hfe_version_string());
	hfe_info("encoder %s: %u bit/s, %u/%u fps, gop %u, profile %u, preset %s, tune %s, "
		 "threads %d",
		 enc, cfg.host.enc.bitrate, cfg.host.enc.fps_num, cfg.host.enc.fps_den, cfg.host.enc.gop,
		 cfg.host.enc.profile, cfg.host.enc.preset, cfg.host.enc.tune, cfg.host.enc.threads);
	hfe_info("limits: %u clients, %ux%u, payload %u bytes, %u in flight, queue %zu bytes, "
		 "stall %d ms",
		 cfg.max_clients, cfg.host.limits.max_width, cfg.host.limits.max_height,
		 cfg.host.limits.max_payload, cfg.host.max_inflight, cfg.host.max_queue, cfg.host.stall_timeout_ms);
	return hfe_server_run(&cfg);
}
