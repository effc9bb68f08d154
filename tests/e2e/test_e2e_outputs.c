/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Hot-plugged outputs (ENABLE_SCANOUT / DISABLE_SCANOUT), end to end, on both
 * hosts: stock QEMU through -display dbus with the daemon, and the patched
 * QEMU with its module. The VM has virtio-gpu-pci,max_outputs=5; the guest
 * runs hfe-guest mode=outputs (the deployed display manager's part, see
 * guest/mode_outputs.c) on outputs 1..4 at four sizes, while four host
 * subscribers watch scanouts 1..4.
 * Checked:
 *  - each ENABLE gives the connector Virtual-(id+1), which the guest sees
 *    connected with the requested size as its preferred mode;
 *  - each subscriber gets only its own output's picture: every AU decodes
 *    (errors fatal), at that output's size, and the last picture before the
 *    resize is that output's final picture (>= 40 dB);
 *  - re-ENABLE of output 1 at another size: its stream restarts with an IDR
 *    at the new size and the new final picture (>= 40 dB); the other
 *    streams keep their sizes;
 *  - an id past the GPU's outputs, a tiny mode and refresh 500 are refused;
 *  - DISABLE disconnects each connector;
 *  - D-Bus: another VM's channel cannot enable this VM's outputs nor see its
 *    pictures (the module is per QEMU process: isolation by construction);
 *  - every subscriber follows the deployed bridge's sequence in raw bytes
 *    (bridge_watch.c: no HELLO, SUBSCRIBE, CONFIG_REQ) and receives nothing
 *    but FRAME_RESPONSEs of its scanout with nal_count 1.
 * Channels: the D-Bus run's guest talks over virtio-serial; the module run's
 * guest over TCP through QEMU user networking (10.0.2.2, as deployed), and
 * one of its host subscribers over the module's TCP listener.
 *
 *   test_e2e_outputs [dbus|module]   (default: both)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridge_watch.h"
#include "e2e_harness.h"
#include "e2e_pattern.h"
#include "e2e_qemu.h"
#include "hfe/client.h"
#include "test_util.h"

#define N_OUT 4
#define FIRST 1
#define MAX_OUTPUTS 5
#define SIZES "1280x720,1024x768,800x600,640x480"
#define RESIZE_W 960
#define RESIZE_H 540
#define PSNR_MIN 40.0
#define WATCH_BITRATE 16000000u
#define RUN_MS 600000

static const uint32_t out_w[N_OUT] = { 1280, 1024, 800, 640 };
static const uint32_t out_h[N_OUT] = { 720, 768, 600, 480 };

/* ---- the guest's steps, from its out-port TEXT records ---- */

struct steps {
	char enabled[N_OUT][160];
	uint64_t t_drawn, t_resizing, t_resized, t_disabled;
	int refused, disabled;
	const struct e2e_rec *end;
};

static void read_steps(struct e2e_vm *vm, struct steps *s)
{
	const struct e2e_rec *rec;

	memset(s, 0, sizeof(*s));
	for (size_t i = 0; e2e_vm_record(vm, i, &rec, 240000) == 1; i++) {
		const char *t = (const char *)rec->data;
		unsigned id;

		if (rec->h.kind == E2E_REC_END) {
			s->end = rec;
			break;
		}
		if (rec->h.kind != E2E_REC_TEXT || strncmp(t, "outputs ", 8))
			continue;
		if (sscanf(t, "outputs enabled id=%u", &id) == 1 && id >= FIRST &&
		    id < FIRST + N_OUT && !s->enabled[id - FIRST][0])
			snprintf(s->enabled[id - FIRST], sizeof(s->enabled[0]), "%s", t);
		else if (!strncmp(t, "outputs drawn", 13))
			s->t_drawn = rec->host_ns;
		else if (!strncmp(t, "outputs resizing", 16))
			s->t_resizing = rec->host_ns;
		else if (!strncmp(t, "outputs resized", 15))
			s->t_resized = rec->host_ns;
		else if (!strncmp(t, "outputs refused=", 16))
			s->refused = atoi(t + 16);
		else if (!strncmp(t, "outputs disabled", 16)) {
			s->disabled++;
			s->t_disabled = rec->host_ns;
		}
	}
}

/* ---- checks ---- */

static double final_psnr(const struct tu_yuv *pic, uint32_t id)
{
	uint8_t *rgb = malloc((size_t)pic->w * pic->h * 3);
	struct tu_yuv ref;
	double p[3];

	REQUIRE(rgb);
	e2e_pattern_rgb(rgb, pic->w, pic->h, E2E_OUTPUT_T(id, E2E_OUTPUT_FINAL));
	tu_ref_rgb_to_yuv(rgb, pic->w, pic->h, &ref);
	free(rgb);
	if (tu_psnr_yuv(pic, &ref, p) < 0)
		p[0] = p[1] = p[2] = -1;
	tu_yuv_free(&ref);
	return p[0] < p[1] ? (p[0] < p[2] ? p[0] : p[2]) : (p[1] < p[2] ? p[1] : p[2]);
}

/* Decode w's AUs from its first IDR on (errors fatal), checking sizes: up to
 * t_split at (w0, h0), after it at (w1, h1). psnr0, psnr1: the last picture
 * of each part against the output's final picture. */
static void check_stream(struct bridge_watch *w, uint64_t t_split, uint32_t w0, uint32_t h0,
			 uint32_t w1, uint32_t h1, double *psnr0, double *psnr1, int *idr1)
{
	struct tu_decoder *dec = tu_decoder_new();
	struct tu_yuv last0 = { 0 }, last1 = { 0 };
	size_t first = 0;
	int errors = 0, bad_size = 0, pics = 0;

	REQUIRE(dec);
	*psnr0 = *psnr1 = -1;
	*idr1 = 0;
	pthread_mutex_lock(&w->lock);
	while (first < w->n && !w->aus[first].key)
		first++;
	for (size_t i = first; i < w->n; i++) {
		struct bridge_au *a = &w->aus[i];
		bool after = t_split && a->t_ns > t_split;
		struct tu_yuv pic;
		int r = tu_decoder_decode(dec, a->data, a->len, &pic, NULL);

		if (r < 0) {
			errors++;
			continue;
		}
		if (after && a->key)
			(*idr1)++;
		if (r == 0)
			continue;
		pics++;
		uint32_t ew = after ? w1 : w0, eh = after ? h1 : h0;
		if (pic.w != ew || pic.h != eh) {
			bad_size++;
			tu_yuv_free(&pic);
			continue;
		}
		struct tu_yuv *keep = after ? &last1 : &last0;
		tu_yuv_free(keep);
		*keep = pic;
	}
	size_t n = w->n;
	pthread_mutex_unlock(&w->lock);
	if (last0.w)
		*psnr0 = final_psnr(&last0, w->scanout);
	if (last1.w)
		*psnr1 = final_psnr(&last1, w->scanout);
	CHECKF(first < n, "scanout %u: no IDR among %zu AUs", w->scanout, n);
	CHECKF(errors == 0, "scanout %u: %d AUs failed to decode", w->scanout, errors);
	CHECKF(bad_size == 0, "scanout %u: %d pictures of the wrong size", w->scanout, bad_size);
	printf("scanout %u: %zu AUs, %d pictures, last %ux%u at %.1f dB", w->scanout, n, pics,
	       w0, h0, *psnr0);
	if (t_split && w1 != w0)
		printf(", after the resize %ux%u at %.1f dB (%d IDR)", w1, h1, *psnr1, *idr1);
	printf("\n");
	tu_yuv_free(&last0);
	tu_yuv_free(&last1);
	tu_decoder_free(dec);
}

static void check_run(struct bridge_watch *ws, const struct steps *s)
{
	for (int i = 0; i < N_OUT; i++) {
		char want[96];
		uint32_t id = FIRST + (uint32_t)i;

		snprintf(want, sizeof(want), "outputs enabled id=%u connector=Virtual-%u mode=%ux%u",
			 id, id + 1, out_w[i], out_h[i]);
		CHECKF(!strcmp(s->enabled[i], want), "guest: '%s', want '%s'", s->enabled[i], want);
	}
	CHECKF(s->t_drawn && s->t_resizing && s->t_resized,
	       "the guest did not draw and resize (drawn %d resized %d)", s->t_drawn != 0,
	       s->t_resized != 0);
	CHECKF(s->refused == 3, "%d of 3 bad requests refused", s->refused);
	CHECKF(s->disabled == N_OUT, "%d of %d outputs disconnected after DISABLE", s->disabled,
	       N_OUT);
	CHECKF(s->end && strstr((const char *)s->end->data, "result=ok"), "guest: %s",
	       s->end ? (const char *)s->end->data : "no END record");

	for (int i = 0; i < N_OUT; i++) {
		bool resized = i == 0;
		double p0, p1;
		int idr1;

		check_stream(&ws[i], s->t_resizing, out_w[i], out_h[i],
			     resized ? RESIZE_W : out_w[i], resized ? RESIZE_H : out_h[i], &p0, &p1,
			     &idr1);
		CHECKF(ws[i].others == 0,
		       "scanout %u: %u messages other than its FRAME_RESPONSEs (a deployed bridge "
		       "drops the stream at the first)", ws[i].scanout, ws[i].others);
		/* Before the resize: only the output's own final picture. */
		CHECKF(p0 >= PSNR_MIN, "scanout %u: last picture %.1f dB against its own (want "
		       ">= %.0f)", ws[i].scanout, p0, PSNR_MIN);
		if (resized) {
			CHECKF(idr1 >= 1, "scanout %u: no IDR after the resize", ws[i].scanout);
			CHECKF(p1 >= PSNR_MIN, "scanout %u: after the resize %.1f dB", ws[i].scanout,
			       p1);
		}
	}
}

/* ---- one host ---- */

/* extra: more hfe.* parameters (the channel), or "". */
static const char *guest_args(const char *extra)
{
	static char a[640];

	snprintf(a, sizeof(a),
		 "hfe.mode=outputs hfe.outputs=%d hfe.first=%d hfe.sizes=%s hfe.frames=3 "
		 "hfe.small=4 hfe.hold=2500 hfe.resize=%ux%u %s",
		 N_OUT, FIRST, SIZES, RESIZE_W, RESIZE_H, extra);
	return a;
}

/* Every watcher over addr, but scanout tcp_scanout over tcp_addr (if set). */
static void watch_all(struct bridge_watch *ws, const char *addr, uint32_t tcp_scanout,
		      const char *tcp_addr)
{
	for (int i = 0; i < N_OUT; i++)
		CHECKF(bridge_watch_start(&ws[i],
					  tcp_addr && FIRST + (uint32_t)i == tcp_scanout ? tcp_addr
											 : addr,
					  FIRST + (uint32_t)i, WATCH_BITRATE, true),
		       "subscribing to scanout %d failed", FIRST + i);
}

static void finish_run(struct e2e_vm *vm, struct bridge_watch *ws)
{
	struct steps s;

	read_steps(vm, &s);
	usleep(500000); /* the last AUs in flight */
	for (int i = 0; i < N_OUT; i++)
		bridge_watch_stop(&ws[i]);
	check_run(ws, &s);
	if (tu_failures)
		e2e_vm_dump_console(vm, 40);
	for (int i = 0; i < N_OUT; i++)
		bridge_watch_free(&ws[i]);
}

/* Another VM's channel: its hub has outputs of its own VM only. */
static void check_foreign(const char *sock)
{
	char addr[PATH_MAX + 8];
	struct hfe_err err = { 0 };
	struct hfe_client *c;
	struct hfe_msg m = { .hdr = { .type = HFE_MSG_ENABLE_SCANOUT, .session_id = 1 } };

	snprintf(addr, sizeof(addr), "unix:%s", sock);
	c = hfe_client_connect(addr, 5000, &err);
	CHECKF(c != NULL, "the other VM's listener: %s", err.msg);
	if (!c)
		return;
	m.u.enable_scanout = (struct hfe_enable_scanout){ 1, 800, 600, 60 };
	REQUIRE(hfe_client_send_msg(c, &m, 5000, &err) == 0);
	int r;
	while ((r = hfe_client_recv(c, &m, 5000, &err)) == 1 && m.hdr.type != HFE_MSG_SCANOUT_RESP)
		;
	CHECKF(r == 1 && m.u.scanout_resp.success == 0,
	       "ENABLE_SCANOUT from another VM's channel: %s",
	       r == 1 ? "accepted" : "no reply");
	hfe_client_close(c);
}

static void run_dbus(const struct e2e_guest *g, const char *workdir)
{
	char qmp1[PATH_MAX], qmp2[PATH_MAX], l1[PATH_MAX + 8], l2[PATH_MAX + 8],
		sock2[PATH_MAX], err[512];
	struct e2e_daemon d;
	struct bridge_watch ws[N_OUT], foreign;

	printf("== stock QEMU, -display dbus, the daemon\n");
	snprintf(qmp1, sizeof(qmp1), "qmp:unix:%s/outputs-qmp.sock", workdir);
	snprintf(qmp2, sizeof(qmp2), "qmp:unix:%s/other-qmp.sock", workdir);
	snprintf(sock2, sizeof(sock2), "%s/other.sock", workdir);
	snprintf(l2, sizeof(l2), "unix:%s", sock2);
	snprintf(l1, sizeof(l1), "unix:%s/outputs.sock", workdir);
	const char *args[] = { "--qemu", qmp1, "--listen", l1, "--qemu", qmp2, "--listen", l2,
			       NULL };
	/* The daemon's own --listen (default host) is d.sock; the VM's is l1. */
	REQUIRE(e2e_daemon_start(&d, workdir, "daemon", args, err, sizeof(err)) == 0);

	struct e2e_vm_config cfg = { .append = guest_args(""), .hfe_sock = l1 + 5,
				     .display = "dbus,p2p=yes", .qmp = true,
				     .max_outputs = MAX_OUTPUTS, .mem_mb = 768,
				     .timeout_ms = RUN_MS };
	struct e2e_vm *vm = e2e_vm_start(g, workdir, "outputs", &cfg, err, sizeof(err));
	REQUIRE(vm);
	watch_all(ws, l1, 0, NULL);
	CHECK(bridge_watch_start(&foreign, l2, FIRST, WATCH_BITRATE, true));
	check_foreign(sock2);
	finish_run(vm, ws);
	bridge_watch_stop(&foreign);
	CHECKF(foreign.n == 0, "another VM's subscriber got %zu AUs of this VM", foreign.n);
	bridge_watch_free(&foreign);
	e2e_vm_wait_exit(vm, 30000);
	e2e_vm_free(vm);
	CHECKF(e2e_daemon_stop(&d) == 0, "the daemon did not exit cleanly");
}

static void run_module(const struct e2e_guest *g, const char *workdir)
{
	struct e2e_qemu q;
	struct e2e_guest gg = *g;
	char sock[PATH_MAX], err[512];
	struct bridge_watch ws[N_OUT];

	printf("== the QEMU module\n");
	if (e2e_qemu_prepare(&q, &gg, workdir, err, sizeof(err)) < 0) {
		CHECKF(0, "%s", err);
		return;
	}
	/* As deployed: the module's TCP port, reached by the guest through user
	 * networking at 10.0.2.2, and by one host subscriber (a bridge) too. */
	int port = free_tcp_port();
	char listen_tcp[64], guest_port[64], tcp_addr[64], unix_addr[PATH_MAX + 8];
	REQUIRE(port > 0);
	snprintf(listen_tcp, sizeof(listen_tcp), "listen=tcp:127.0.0.1:%d", port);
	snprintf(guest_port, sizeof(guest_port), "hfe.net=1 hfe.port=tcp:10.0.2.2:%d", port);
	snprintf(tcp_addr, sizeof(tcp_addr), "tcp:127.0.0.1:%d", port);
	struct e2e_vm_config cfg = { .append = guest_args(guest_port),
				     .max_outputs = MAX_OUTPUTS,
				     .nic = "user,model=virtio-net-pci",
				     .mem_mb = 768, .timeout_ms = RUN_MS };
	struct e2e_vm *vm = e2e_qemu_vm_start(&q, &gg, workdir, "module", listen_tcp, &cfg, sock,
					      sizeof(sock), err, sizeof(err));
	CHECKF(vm != NULL, "%s", err);
	if (!vm)
		return;
	/* QEMU creates the module's socket while it starts: wait for it. */
	for (int i = 0; i < 1000 && access(sock, F_OK) < 0; i++)
		usleep(10000);
	snprintf(unix_addr, sizeof(unix_addr), "unix:%s", sock);
	watch_all(ws, unix_addr, FIRST + 1, tcp_addr);
	finish_run(vm, ws);
	e2e_vm_wait_exit(vm, 30000);
	e2e_vm_free(vm);
}

int main(int argc, char **argv)
{
	return e2e_both_hosts_main(argc, argv, "test_e2e_outputs", run_dbus, run_module);
}
