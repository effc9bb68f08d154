/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The QEMU module (qemu/, issue 4) end to end with a real Linux guest.
 *
 * The patched QEMU (qemu/build.sh; a QEMU that cannot be built is a
 * FAILURE) boots the test guest with -vga none -device virtio-gpu-pci and
 * -object helix-frame-export listening on a unix socket; the guest's
 * virtserialport chardev connects to that socket, so the guest talks to the
 * module in its own QEMU. No daemon runs.
 *
 * Scanout push mode: hfe-guest subscribes to scanout 0 over virtio-serial,
 * then draws the known schedule into /dev/fb0 (full-screen changes, then a
 * small moving box) and holds a static screen; it forwards every access unit
 * to the out port. Here:
 *  - the first AU is an IDR with SPS/PPS, every AU decodes, all 640x480;
 *  - every drawn frame appears in the stream with PSNR >= 35 dB against the
 *    expected picture (the pattern code is shared with the guest), in order;
 *  - the frame count is sane (at least one AU per drawn frame, no flood);
 *  - the static screen produced no new frames;
 *  - the module copied only what changed: the small changes cost a fraction
 *    of a full frame (update-bytes in its stats, read over QMP).
 * During the static hold a second client connects from the host to the
 * same socket: HELLO offers scanout and resource sources; SUBSCRIBE to a
 * missing scanout is refused; SUBSCRIBE 0 gets an IDR at once showing the
 * last drawn frame; resource mode: a FRAME_REQUEST naming the guest's
 * framebuffer resource (a virtio-gpu resource id, no pixels) is encoded
 * from the VM's own resource, an unknown id is RESOURCE_NOT_FOUND and a wrong
 * size INVALID_MSG, and the connection stays usable.
 * The module's longest main-loop stall (qom-get max-stall-us) is reported.
 * QEMU runs in the sandbox libvirt uses by default (E2E_QEMU_SANDBOX).
 *
 * --gl: the same with the GPU configuration deployed guests run,
 * -device virtio-gpu-gl-pci (virglrenderer) under -display egl-headless
 * (with rendernode=/dev/null where the host has no render node: Mesa's
 * llvmpipe then renders). The guest's dumb buffers are virgl resources; the
 * module gets each frame through egl-headless's read-back into the
 * console's surface. --gl=helix: under -display helix, where the module
 * reads the GL frames back itself (damage only, asynchronously). Resource
 * mode there names virgl resources, which the module reads out of
 * virglrenderer.
 */
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "hfe/client.h"
#include "hfe/wire.h"

#include "e2e_harness.h"
#include "e2e_pattern.h"
#include "e2e_qemu.h"
#include "test_util.h"

#define FB_W 640
#define FB_H 480
#define N_FULL 6
#define N_SMALL 4
#define N_DRAW (N_FULL + N_SMALL)
#define DRAW_FPS 4
#define HOLD_MS 7000
#define MIN_PSNR 35.0
/* The static window: from this long after the last draw ... */
#define STATIC_FROM_MS 1500
/* ... until the host's own client connects (the host waits longer than this). */
#define STATIC_TO_MS 3300
#define HOST_CHECKS_AT_MS 3800

static const char *gl_display; /* --gl: egl-headless, --gl=helix: helix */
#define MAX_PROBE_ID 8

struct pic {
	struct tu_yuv yuv;
	int match;      /* best-matching draw frame, -1 if none reaches MIN_PSNR */
	double psnr[3]; /* against that frame */
	const struct e2e_rec *rec;
};

static struct tu_yuv expected[N_DRAW];

static void make_expected(void)
{
	uint8_t *rgb = malloc((size_t)FB_W * FB_H * 3);

	REQUIRE(rgb);
	for (int k = 0; k < N_DRAW; k++) {
		e2e_draw_rgb(rgb, FB_W, FB_H, (uint32_t)k, N_FULL);
		tu_ref_rgb_to_yuv(rgb, FB_W, FB_H, &expected[k]);
	}
	free(rgb);
}

static double min3(const double v[3])
{
	double m = v[0] < v[1] ? v[0] : v[1];

	return m < v[2] ? m : v[2];
}

/* Best draw frame for a picture (min of the Y, U, V PSNRs decides). */
static int best_match(const struct tu_yuv *p, double out[3])
{
	int best = -1;
	double best_min = -1;

	for (int k = 0; k < N_DRAW; k++) {
		double v[3];

		if (tu_psnr_yuv(p, &expected[k], v) < 0)
			continue;
		if (min3(v) > best_min) {
			best_min = min3(v);
			best = k;
			memcpy(out, v, sizeof(v));
		}
	}
	return best;
}

/* ---- the guest's stream ---- */

static void check_stream(const struct e2e_rec *const *aus, int n, int64_t last_draw_ns)
{
	struct tu_decoder *dec = tu_decoder_new();
	struct pic *pics = calloc((size_t)n + 1, sizeof(*pics));
	double best[N_DRAW], size_full = 0, size_small = 0;
	int n_pics = 0, errors = 0, wrong_size = 0, order_ok = 1, last_match = -1;
	int n_full = 0, n_small = 0, late = 0;
	struct tu_nals nals;

	REQUIRE(dec && pics);
	for (int k = 0; k < N_DRAW; k++)
		best[k] = 0;
	CHECKF(n >= 1, "no access units from scanout 0");
	if (n >= 1)
		CHECKF(tu_nal_parse(aus[0]->data, aus[0]->h.len, &nals) > 0 && nals.has_sps &&
			       nals.has_pps && nals.has_idr,
		       "the first AU after SUBSCRIBE is not an IDR with SPS/PPS");

	for (int i = 0; i < n; i++) {
		struct tu_yuv y;
		int r = tu_decoder_decode(dec, aus[i]->data, aus[i]->h.len, &y, NULL);

		if (r < 0) {
			errors++;
			continue;
		}
		if (r == 0)
			continue;
		pics[n_pics].yuv = y;
		pics[n_pics].rec = aus[i];
		if (y.w != FB_W || y.h != FB_H) {
			wrong_size++;
		} else {
			pics[n_pics].match = best_match(&y, pics[n_pics].psnr);
			if (min3(pics[n_pics].psnr) < MIN_PSNR)
				pics[n_pics].match = -1;
		}
		n_pics++;
	}
	CHECKF(errors == 0, "%d of %d AUs failed to decode", errors, n);
	CHECKF(n_pics == n, "%d pictures from %d AUs (low delay: one per AU)", n_pics, n);
	CHECKF(wrong_size == 0, "%d pictures are not %ux%u", wrong_size, FB_W, FB_H);

	for (int i = 0; i < n_pics; i++) {
		struct pic *p = &pics[i];
		int k = p->match;

		if (k < 0)
			continue;
		if (min3(p->psnr) > best[k])
			best[k] = min3(p->psnr);
		if (k < last_match)
			order_ok = 0;
		last_match = k;
		/* Size of what a change costs: P-frames only. */
		if (!(p->rec->h.flags & E2E_REC_FLAG_KEYFRAME) && i > 0 && pics[i - 1].match != k) {
			if (k < N_FULL) {
				size_full += p->rec->h.len;
				n_full++;
			} else {
				size_small += p->rec->h.len;
				n_small++;
			}
		}
	}
	printf("pictures: %d from %d AUs; best PSNR per drawn frame (dB, min of Y/U/V):",
	       n_pics, n);
	for (int k = 0; k < N_DRAW; k++)
		printf(" %d:%.1f", k, best[k]);
	printf("\n");
	for (int k = 0; k < N_DRAW; k++)
		CHECKF(best[k] >= MIN_PSNR, "drawn frame %d never appeared intact (best %.1f dB)",
		       k, best[k]);
	CHECKF(order_ok, "pictures matched drawn frames out of order");
	/* One AU per drawn frame at least (plus the subscribe IDR), and no flood:
	 * fbdev flushes each frame once or twice. */
	CHECKF(n >= N_DRAW + 1 && n <= 3 * (N_DRAW + 1), "%d AUs for %d drawn frames", n, N_DRAW);

	/* Static screen: nothing in the window after the last draw. */
	for (int i = 0; i < n; i++) {
		int64_t dt = aus[i]->h.t_ns - last_draw_ns;

		if (dt > (int64_t)STATIC_FROM_MS * 1000000 && dt <= (int64_t)STATIC_TO_MS * 1000000)
			late++;
	}
	CHECKF(last_draw_ns > 0, "no DRAW record for the last frame");
	CHECKF(late == 0, "%d AUs while the screen was static (%d..%d ms after the last draw)",
	       late, STATIC_FROM_MS, STATIC_TO_MS);
	printf("static screen %d..%d ms after the last draw: %d AUs\n", STATIC_FROM_MS,
	       STATIC_TO_MS, late);

	/* Informational: right after full-screen changes x264's rate control keeps
	 * refining the picture, so AU sizes say little about what a change costs;
	 * the module's copy volume does (checked from its stats). */
	if (n_full && n_small)
		printf("AU sizes: full-screen P-frames %.0f bytes, small-box P-frames %.0f bytes\n",
		       size_full / n_full, size_small / n_small);
	for (int i = 0; i < n_pics; i++)
		tu_yuv_free(&pics[i].yuv);
	free(pics);
	tu_decoder_free(dec);
}

/*
 * What the module copied from the surface: the initial picture at subscribe
 * (and maybe once more: fbdev's first flush), N_FULL full frames and N_SMALL
 * small changes, which fbdev reports as the rows around the box.
 */
static void check_copy_volume(const char *stats)
{
	const double frame = (double)FB_W * FB_H * 4;
	double bytes = e2e_qemu_json_num(stats, "update-bytes", -1);
	double limit = (N_FULL + 2) * frame + N_SMALL * frame / 4;

	CHECKF(bytes >= N_FULL * frame, "module stats: update-bytes %.0f < %d full frames", bytes,
	       N_FULL);
	CHECKF(bytes <= limit, "module copied %.0f bytes: more than %d full frames + %d small "
	       "changes (limit %.0f)", bytes, N_FULL, N_SMALL, limit);
	printf("module copied %.1f frames' worth of pixels for %d full + %d small changes\n",
	       bytes / frame, N_FULL, N_SMALL);
}

/* ---- a second client, from the host ---- */

/* Receive until a message of type `want` (or ERROR) arrives. */
static int recv_type(struct hfe_client *c, uint8_t want, struct hfe_msg *m, int timeout_ms)
{
	struct hfe_err err = { 0 };
	uint64_t end = tu_now_ns() + (uint64_t)timeout_ms * 1000000;

	for (;;) {
		int64_t left = (int64_t)(end - tu_now_ns()) / 1000000;
		int r;

		if (left <= 0)
			return 0;
		r = hfe_client_recv(c, m, (int)left, &err);
		if (r <= 0)
			return r;
		if (m->hdr.type == want || m->hdr.type == HFE_MSG_ERROR)
			return 1;
	}
}

/* The picture of one FRAME_RESPONSE, PSNR against drawn frame k. */
static double au_psnr(const struct hfe_msg *m, int k, uint32_t *w, uint32_t *h)
{
	struct tu_decoder *dec = tu_decoder_new();
	uint8_t *buf = malloc(m->data_len + 1);
	const uint8_t *nal;
	size_t pos = 0, total = 0;
	uint32_t len;
	struct tu_yuv y;
	double v[3] = { 0, 0, 0 };

	REQUIRE(dec && buf);
	while (hfe_nal_next(m, &pos, &nal, &len)) {
		memcpy(buf + total, nal, len);
		total += len;
	}
	*w = *h = 0;
	if (tu_decoder_decode(dec, buf, total, &y, NULL) == 1 ||
	    tu_decoder_flush(dec, &y) == 1) {
		*w = y.w;
		*h = y.h;
		if (tu_psnr_yuv(&y, &expected[k], v) < 0)
			v[0] = v[1] = v[2] = 0;
		tu_yuv_free(&y);
	}
	free(buf);
	tu_decoder_free(dec);
	return min3(v);
}

static void host_client_checks(const char *sock)
{
	char addr[PATH_MAX + 64];
	struct hfe_err err = { 0 };
	struct hfe_hello_resp caps;
	struct hfe_msg m;
	struct hfe_client *c;
	uint32_t w, h;
	double psnr;
	const int last = N_DRAW - 1;

	snprintf(addr, sizeof(addr), "unix:%s", sock);
	c = hfe_client_connect(addr, 5000, &err);
	CHECKF(c != NULL, "host client: connect %s: %s", addr, err.msg);
	if (!c)
		return;
	CHECKF(hfe_client_hello(c, "test_e2e_qemu_scanout", &caps, 5000, &err) == 0,
	       "host client: HELLO: %s", err.msg);
	CHECKF((caps.sources & (HFE_SOURCE_SCANOUT | HFE_SOURCE_RESOURCE)) ==
		       (HFE_SOURCE_SCANOUT | HFE_SOURCE_RESOURCE),
	       "HELLO_RESP sources 0x%x lack scanout/resource", caps.sources);
	printf("host client: HELLO_RESP from '%s', sources 0x%x\n", caps.server_name,
	       caps.sources);

	/* A scanout the VM does not have. */
	memset(&m, 0, sizeof(m));
	m.hdr.type = HFE_MSG_SUBSCRIBE;
	m.hdr.session_id = 9;
	m.u.scanout_id = 9;
	CHECK(hfe_client_send_msg(c, &m, 5000, &err) == 0);
	CHECKF(recv_type(c, HFE_MSG_SUBSCRIBE_RESP, &m, 5000) == 1 &&
		       m.hdr.type == HFE_MSG_SUBSCRIBE_RESP && !m.u.subscribe_resp.success,
	       "SUBSCRIBE 9 (no such console) was not refused");

	/* Scanout 0 while static: an IDR at once, showing the last drawn frame. */
	memset(&m, 0, sizeof(m));
	m.hdr.type = HFE_MSG_SUBSCRIBE;
	m.u.scanout_id = 0;
	CHECK(hfe_client_send_msg(c, &m, 5000, &err) == 0);
	CHECKF(recv_type(c, HFE_MSG_SUBSCRIBE_RESP, &m, 5000) == 1 &&
		       m.hdr.type == HFE_MSG_SUBSCRIBE_RESP && m.u.subscribe_resp.success,
	       "SUBSCRIBE 0 from the host was refused");
	if (recv_type(c, HFE_MSG_FRAME_RESPONSE, &m, 5000) == 1 &&
	    m.hdr.type == HFE_MSG_FRAME_RESPONSE) {
		psnr = au_psnr(&m, last, &w, &h);
		CHECKF(m.u.frame_resp.is_keyframe, "the first AU for a new subscriber is no IDR");
		CHECKF(w == FB_W && h == FB_H && psnr >= MIN_PSNR,
		       "new subscriber's IDR: %ux%u, %.1f dB against the last drawn frame", w, h,
		       psnr);
		printf("host subscriber: IDR %ux%u, %.1f dB against the screen\n", w, h, psnr);
	} else {
		CHECKF(0, "no AU for a new subscriber of a static scanout");
	}
	memset(&m, 0, sizeof(m));
	m.hdr.type = HFE_MSG_DISABLE_SCANOUT;
	m.u.scanout_id = 0;
	CHECK(hfe_client_send_msg(c, &m, 5000, &err) == 0);
	CHECKF(recv_type(c, HFE_MSG_SCANOUT_RESP, &m, 5000) == 1 &&
		       m.hdr.type == HFE_MSG_SCANOUT_RESP,
	       "no SCANOUT_RESP to DISABLE_SCANOUT");

	/* Resource mode: the guest's framebuffer, by its virtio-gpu resource id.
	 * Linux numbers resources from 2 (a virglrenderer workaround) and the
	 * fbdev buffer is among the first: probe the first few ids; exactly one
	 * must be a 640x480 XR24 resource, and it must show the screen. */
	struct hfe_frame_request fr = {
		.width = FB_W, .height = FB_H, .format = HFE_FMT_XRGB8888, .stride = FB_W * 4,
		.duration = 33000000,
	};
	uint32_t fb_res = 0;
	int resolved = 0;

	for (uint32_t id = 1; id <= MAX_PROBE_ID; id++) {
		fr.resource_id = id;
		fr.pts = 1000 + id;
		CHECK(hfe_client_send_frame(c, 1, &fr, NULL, 0, 5000, &err) == 0);
		if (recv_type(c, HFE_MSG_FRAME_RESPONSE, &m, 10000) != 1) {
			CHECKF(0, "resource %u: no reply", id);
			break;
		}
		if (m.hdr.type == HFE_MSG_ERROR) {
			CHECKF(m.u.error.code == HFE_ERR_RESOURCE_NOT_FOUND ||
				       m.u.error.code == HFE_ERR_INVALID_MSG,
			       "resource %u: unexpected %s: %s", id, hfe_error_name(m.u.error.code),
			       m.u.error.message);
			continue;
		}
		resolved++;
		fb_res = id;
		psnr = au_psnr(&m, last, &w, &h);
		CHECKF(w == FB_W && h == FB_H && psnr >= MIN_PSNR,
		       "resource %u: %ux%u, %.1f dB against the last drawn frame", id, w, h, psnr);
		CHECKF(m.u.frame_resp.pts == fr.pts, "resource frame pts %lld, sent %lld",
		       (long long)m.u.frame_resp.pts, (long long)fr.pts);
		printf("resource mode: resource %u (the framebuffer) encoded, %ux%u, %.1f dB "
		       "against the screen\n", id, w, h, psnr);
	}
	CHECKF(resolved == 1, "%d of resources 1..%d resolved as %ux%u XR24 (want the fbdev "
	       "buffer only)", resolved, MAX_PROBE_ID, FB_W, FB_H);
	fr.resource_id = 4242;
	CHECK(hfe_client_send_frame(c, 1, &fr, NULL, 0, 5000, &err) == 0);
	CHECKF(recv_type(c, HFE_MSG_FRAME_RESPONSE, &m, 10000) == 1 &&
		       m.hdr.type == HFE_MSG_ERROR &&
		       m.u.error.code == HFE_ERR_RESOURCE_NOT_FOUND,
	       "unknown resource 4242: not RESOURCE_NOT_FOUND");
	printf("resource 4242: %s (%s)\n",
	       m.hdr.type == HFE_MSG_ERROR ? hfe_error_name(m.u.error.code) : "?",
	       m.hdr.type == HFE_MSG_ERROR ? m.u.error.message : "");
	fr.resource_id = fb_res;
	fr.width = FB_W / 2;
	fr.height = FB_H / 2;
	fr.stride = FB_W * 2;
	CHECK(hfe_client_send_frame(c, 1, &fr, NULL, 0, 5000, &err) == 0);
	CHECKF(recv_type(c, HFE_MSG_FRAME_RESPONSE, &m, 10000) == 1 &&
		       m.hdr.type == HFE_MSG_ERROR && m.u.error.code == HFE_ERR_INVALID_MSG,
	       "resource %u with a wrong size: not INVALID_MSG", fb_res);
	printf("resource %u as %ux%u: %s (%s)\n", fb_res, fr.width, fr.height,
	       m.hdr.type == HFE_MSG_ERROR ? hfe_error_name(m.u.error.code) : "?",
	       m.hdr.type == HFE_MSG_ERROR ? m.u.error.message : "");
	/* Those were per-frame errors: the connection still works. */
	memset(&m, 0, sizeof(m));
	m.hdr.type = HFE_MSG_PING;
	m.hdr.session_id = 77;
	CHECK(hfe_client_send_msg(c, &m, 5000, &err) == 0);
	CHECKF(recv_type(c, HFE_MSG_PONG, &m, 5000) == 1 && m.hdr.type == HFE_MSG_PONG &&
		       m.hdr.session_id == 77,
	       "no PONG after the resource errors");
	hfe_client_close(c);
}

/*
 * Bad input: a client sending garbage gets an ERROR and a closed connection,
 * the module logs a guest error, and the VM goes on (the guest's own run
 * still has to end well; QMP still answers).
 */
static void bad_client_check(const char *sock, const char *guest_log)
{
	static const uint8_t garbage[16] = "GARBAGE-NOT-HXFR";
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint8_t buf[4096];
	size_t got = 0;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), closed = 0;
	char text[4096] = "";
	FILE *f;

	REQUIRE(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.*s", (int)sizeof(sa.sun_path) - 1, sock);
	CHECKF(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bad client: connect");
	CHECK(write(fd, garbage, sizeof(garbage)) == (ssize_t)sizeof(garbage));
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 5000) != 1)
			break;
		n = read(fd, buf + got, sizeof(buf) - got);
		if (n <= 0) {
			closed = n == 0;
			break;
		}
		got += (size_t)n;
		if (got == sizeof(buf))
			break;
	}
	close(fd);
	/* An HXFR header: magic "HXFR", type 0xFF (ERROR). */
	CHECKF(got >= 12 && !memcmp(buf, "HXFR", 4) && buf[4] == HFE_MSG_ERROR,
	       "bad client: no ERROR reply (%zu bytes)", got);
	CHECKF(closed, "bad client: the module did not close the connection");
	usleep(200000);
	f = fopen(guest_log, "r");
	if (f) {
		size_t n = fread(text, 1, sizeof(text) - 1, f);

		text[n] = '\0';
		fclose(f);
	}
	const char *bad = strstr(text, "bad magic");
	const char *eol = bad ? strchr(bad, '\n') : NULL;

	CHECKF(bad != NULL, "no guest error about the bad magic logged by the module "
	       "(-d guest_errors, %s)", guest_log);
	printf("bad client: ERROR %s, connection %s, guest error logged: %.*s\n",
	       got >= 12 ? "received" : "missing", closed ? "closed" : "open",
	       bad ? (int)(eol ? eol - bad : (ptrdiff_t)strlen(bad)) : 6, bad ? bad : "(none)");
}

/* ---- main ---- */

static unsigned long long qom_u64(struct e2e_vm *vm, const char *prop)
{
	char out[64] = "", err[256];

	if (e2e_qemu_qom_get(e2e_vm_qmp_path(vm), "/objects/hfe0", prop, out, sizeof(out), err,
			     sizeof(err)) < 0) {
		fprintf(stderr, "qom-get %s: %s\n", prop, err);
		return ~0ull;
	}
	return strtoull(out, NULL, 10);
}

int main(int argc, char **argv)
{
	uint64_t t0 = e2e_now_ns();
	char *workdir = tu_mkdtemp("hfe-e2e-qemu");
	char err[1024], sock[PATH_MAX + 32], append[256], line[512] = "", stats[4096] = "";
	char glog[PATH_MAX + 32];
	struct e2e_records recs;
	struct e2e_guest g;
	struct e2e_qemu q;
	struct e2e_vm_times t;
	int64_t last_draw_ns = 0;
	int st;
	unsigned long long stall_guest, stall_all;

	if (e2e_arch_args(&argc, argv) < 0)
		return 1;
	if (argc > 1 && !strncmp(argv[1], "--gl", 4))
		gl_display = argv[1][4] == '=' ? argv[1] + 5 : "egl-headless";
	REQUIRE(workdir);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("test_e2e_qemu_scanout: work directory %s\n", workdir);
	if (e2e_qemu_prepare(&q, &g, workdir, err, sizeof(err)) < 0) {
		fprintf(stderr, "test_e2e_qemu_scanout: FAIL: %s\n", err);
		free(workdir);
		return 1;
	}
	make_expected();

	snprintf(glog, sizeof(glog), "%s/guest-errors.log", workdir);
	const char *const extra[] = { "-d", "guest_errors", "-D", glog, NULL };
	snprintf(append, sizeof(append),
		 "hfe.mode=draw+subscribe hfe.scanout=0 hfe.frames=%d hfe.small=%d hfe.fps=%d "
		 "hfe.hold=%d", N_FULL, N_SMALL, DRAW_FPS, HOLD_MS);
	struct e2e_vm_config cfg = {
		.append = append, .fb_width = FB_W, .fb_height = FB_H, .qmp = true,
		.extra_args = extra, .timeout_ms = 240000,
	};
	char display[64];

	if (gl_display) {
		e2e_gl_display(gl_display, display, sizeof(display));
		cfg.gpu = "virtio-gpu-gl-pci";
		cfg.display = display;
		printf("GL: -device %s -display %s\n", cfg.gpu, cfg.display);
	}
	struct e2e_vm *vm = e2e_qemu_vm_start(&q, &g, workdir, "scanout", "max-fps=60", &cfg, sock,
					      sizeof(sock), err, sizeof(err));
	if (!vm) {
		fprintf(stderr, "test_e2e_qemu_scanout: FAIL: cannot start QEMU: %s\n", err);
		free(workdir);
		return 1;
	}

	/* QEMU's main thread (tid = pid) does the display work of the drawing:
	 * with a GL console, the display's read-back too (compare --gl runs). */
	CHECKF(e2e_vm_wait_line(vm, "start", line, sizeof(line), 180000) == 1,
	       "the guest tool did not start");
	double main_cpu0 = tu_proc_cpu_ms(e2e_vm_pid(vm), e2e_vm_pid(vm));
	CHECKF(e2e_vm_wait_line(vm, "draw done", line, sizeof(line), 180000) == 1,
	       "no 'draw done' from the guest");
	printf("QEMU main thread: %.0f ms of CPU from the guest tool's start to its draw done\n",
	       tu_proc_cpu_ms(e2e_vm_pid(vm), e2e_vm_pid(vm)) - main_cpu0);
	/* 2: QEMU runs under its seccomp filter (-sandbox on). */
	CHECKF(tu_proc_status_kb(e2e_vm_pid(vm), "Seccomp") == 2,
	       "QEMU is not sandboxed (/proc/PID/status Seccomp: %ld)",
	       tu_proc_status_kb(e2e_vm_pid(vm), "Seccomp"));
	/* The guest's own stream is checked for silence until STATIC_TO_MS. */
	usleep(HOST_CHECKS_AT_MS * 1000);
	stall_guest = qom_u64(vm, "max-stall-us");
	host_client_checks(sock);
	bad_client_check(sock, glog);
	stall_all = qom_u64(vm, "max-stall-us");
	e2e_qemu_qom_get(e2e_vm_qmp_path(vm), "/objects/hfe0", "stats", stats, sizeof(stats), err,
			 sizeof(err));
	printf("module stats: %s\n", stats);
	check_copy_volume(stats);

	CHECKF(e2e_vm_wait_line(vm, "result=", line, sizeof(line), 60000) == 1,
	       "no result line from the guest");
	CHECKF(!strcmp(line, "result=ok"), "guest says: %s", line);
	e2e_records_collect(vm, &recs, 30000);
	for (int i = 0; i < recs.n_draws; i++)
		CHECKF(recs.draws[i]->h.value == i, "DRAW record %d says frame %lld", i,
		       (long long)recs.draws[i]->h.value);
	if (recs.n_draws)
		last_draw_ns = recs.draws[recs.n_draws - 1]->h.t_ns;
	e2e_records_check_end(&recs);
	CHECKF(recs.n_draws == N_DRAW, "%d DRAW records, want %d", recs.n_draws, N_DRAW);
	check_stream(recs.aus, recs.n_aus, last_draw_ns);

	printf("main-loop stall (longest module callback): %llu us during the guest's run, %llu "
	       "us with the host client too (target < 1000 us)\n", stall_guest, stall_all);
	CHECKF(stall_guest != ~0ull && stall_all != ~0ull, "cannot read max-stall-us over QMP");

	st = e2e_vm_wait_exit(vm, 30000);
	CHECKF(st == 0, "QEMU did not exit cleanly (status 0x%x)", st);
	e2e_vm_times(vm, &t);
	printf("boot %.0f ms to the guest tool, QEMU ran %.0f ms\n", t.tool_start_ms, t.exit_ms);
	if (tu_failures)
		e2e_vm_dump_console(vm, 40);
	e2e_records_free(&recs);
	e2e_vm_free(vm);
	for (int k = 0; k < N_DRAW; k++)
		tu_yuv_free(&expected[k]);

	return e2e_test_finish("test_e2e_qemu_scanout", workdir, t0);
}
