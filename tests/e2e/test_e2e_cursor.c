/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The VM's hardware cursor, end to end, on both hosts: stock QEMU's -display
 * dbus with the daemon (CursorDefine/MouseSet), and the patched QEMU with its
 * module (dpy_cursor_define/dpy_mouse_set). The guest runs hfe-guest
 * mode=cursor: a 64x64 cursor image (e2e_pattern.h) set on the virtio-gpu
 * card with DRM_IOCTL_MODE_CURSOR2, moved to three positions, then hidden.
 * Host-side subscribers of scanout 0:
 *  - a v2 subscriber with SUBSCRIBE's CURSOR flag, there before the guest
 *    boots, gets CURSOR_SHAPE with the guest's bytes and hot spot, a
 *    CURSOR_POSITION for each move and one hidden; while it watches alone,
 *    its decoded pictures have no cursor in them;
 *  - a v1 subscriber (the deployed bridge's kind), joining after the first
 *    move, gets nothing but SUBSCRIBE_RESP and FRAME_RESPONSEs, and its
 *    decoded pictures show the cursor's pixels where the cursor is
 *    (composited by the host; the scanout's one stream then has it for both,
 *    docs/protocol.md), not where it was, and not once hidden.
 *
 *   test_e2e_cursor [dbus|module]   (default: both)
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "e2e_harness.h"
#include "e2e_pattern.h"
#include "e2e_qemu.h"
#include "hfe/client.h"
#include "test_util.h"

#define FB_W 640
#define FB_H 480
#define RUN_MS 300000
#define HOLD_MS 5000 /* each cursor position, in the guest */
#define TOL 14       /* decoded YUV against the reference, per component */

/* One subscriber and what it saw. */
struct sub {
	const char *name;
	struct hfe_client *c;
	struct tu_decoder *dec;
	struct tu_yuv pic; /* the latest decoded picture */
	unsigned pictures, others, decode_errors;
	unsigned shapes, positions;
	struct hfe_cursor_shape shape;
	uint8_t image[4 * E2E_CURSOR_SIZE * E2E_CURSOR_SIZE];
	size_t image_len;
	struct hfe_cursor_position pos; /* the latest */
};

static bool sub_open(struct sub *s, const char *name, const char *addr, bool v2)
{
	struct hfe_err err = { 0 };
	struct hfe_hello_resp caps;
	memset(s, 0, sizeof(*s));
	s->name = name;
	s->dec = tu_decoder_new();
	s->c = hfe_client_connect(addr, 10000, &err);
	if (!s->c || !s->dec) {
		CHECKF(0, "%s: connect %s: %s", name, addr, err.msg);
		return false;
	}
	if (v2 && hfe_client_hello(s->c, "e2e-cursor", &caps, 10000, &err) < 0) {
		CHECKF(0, "%s: HELLO: %s", name, err.msg);
		return false;
	}
	CHECKF(!v2 || (caps.features & HFE_FEATURE_CURSOR), "%s: no CURSOR feature", name);
	struct hfe_msg m = { .hdr = { .type = HFE_MSG_SUBSCRIBE, .flags = v2 ? HFE_FLAG_CURSOR : 0 } };
	m.u.scanout_id = 0;
	if (hfe_client_send_msg(s->c, &m, 10000, &err) < 0) {
		CHECKF(0, "%s: SUBSCRIBE: %s", name, err.msg);
		return false;
	}
	return true;
}

static void sub_close(struct sub *s)
{
	if (s->c)
		hfe_client_close(s->c);
	if (s->dec)
		tu_decoder_free(s->dec);
	tu_yuv_free(&s->pic);
}

static void handle(struct sub *s, const struct hfe_msg *m)
{
	switch (m->hdr.type) {
	case HFE_MSG_SUBSCRIBE_RESP:
		CHECKF(m->u.subscribe_resp.success, "%s: SUBSCRIBE refused", s->name);
		return;
	case HFE_MSG_FRAME_RESPONSE: {
		size_t pos = 0;
		const uint8_t *nal;
		uint32_t len;
		while (hfe_nal_next(m, &pos, &nal, &len)) {
			struct tu_yuv p;
			int r = tu_decoder_decode(s->dec, nal, len, &p, NULL);
			if (r < 0)
				s->decode_errors++;
			if (r == 1) {
				tu_yuv_free(&s->pic);
				s->pic = p;
				s->pictures++;
			}
		}
		return;
	}
	case HFE_MSG_CURSOR_SHAPE:
		s->shapes++;
		s->shape = m->u.cursor_shape;
		s->image_len = m->data_len < sizeof(s->image) ? m->data_len : sizeof(s->image);
		memcpy(s->image, m->data, s->image_len);
		return;
	case HFE_MSG_CURSOR_POSITION:
		s->positions++;
		s->pos = m->u.cursor_pos;
		return;
	default:
		s->others++;
		fprintf(stderr, "%s: %s\n", s->name, hfe_msg_type_name(m->hdr.type));
		return;
	}
}

/* Take what both subscribers have, for ms milliseconds. */
static void pump(struct sub *a, struct sub *b, int ms)
{
	uint64_t end = e2e_now_ns() + (uint64_t)ms * 1000000;
	struct sub *subs[2] = { a, b };
	while (e2e_now_ns() < end) {
		for (int i = 0; i < 2; i++) {
			struct hfe_msg m;
			struct hfe_err err = { 0 };
			int r;
			while (subs[i]->c && (r = hfe_client_recv(subs[i]->c, &m, 20, &err)) == 1)
				handle(subs[i], &m);
		}
	}
}

/* Does the picture show cursor pixel (cx, cy) of the image at x + cx, y + cy? */
static bool shows_cursor(const struct tu_yuv *p, uint32_t x, uint32_t y, uint32_t cx, uint32_t cy)
{
	uint8_t bgra[4], ry, ru, rv;
	uint32_t px = x + cx, py = y + cy;
	if (!p->y || px >= p->w || py >= p->h)
		return false;
	e2e_cursor_px(cx, cy, bgra);
	tu_ref_pixel(bgra[2], bgra[1], bgra[0], &ry, &ru, &rv);
	int dy = p->y[(size_t)py * p->w + px] - ry;
	int du = p->u[(size_t)(py / 2) * p->cw + px / 2] - ru;
	int dv = p->v[(size_t)(py / 2) * p->cw + px / 2] - rv;
	return abs(dy) <= TOL && abs(du) <= TOL && abs(dv) <= TOL;
}

static void check_cursor(const char *vm_addr, struct e2e_vm *vm)
{
	struct sub v1, v2;
	char line[256];

	memset(&v1, 0, sizeof(v1));
	if (!sub_open(&v2, "cursor subscriber", vm_addr, true))
		goto out;
	/* the guest boots while they watch */
	uint64_t end = e2e_now_ns() + 180000ull * 1000000;
	while (v2.shapes == 0 && e2e_now_ns() < end)
		pump(&v1, &v2, 200);
	CHECKF(v2.shapes >= 1, "no CURSOR_SHAPE within 180 s");
	if (v2.shapes == 0) {
		if (e2e_vm_wait_line(vm, "cursor", line, sizeof(line), 1) == 1)
			fprintf(stderr, "the guest said: %s\n", line);
		goto out;
	}
	CHECKF(v2.shape.width == E2E_CURSOR_SIZE && v2.shape.height == E2E_CURSOR_SIZE,
	       "shape %ux%u", v2.shape.width, v2.shape.height);
	printf("cursor shape %ux%u, hot spot %u,%u\n", v2.shape.width, v2.shape.height,
	       v2.shape.hot_x, v2.shape.hot_y);
	CHECKF(v2.shape.hot_x == E2E_CURSOR_HOT_X && v2.shape.hot_y == E2E_CURSOR_HOT_Y,
	       "hot spot %u,%u, the guest set %u,%u", v2.shape.hot_x, v2.shape.hot_y,
	       E2E_CURSOR_HOT_X, E2E_CURSOR_HOT_Y);
	unsigned bad = 0;
	for (uint32_t y = 0; y < E2E_CURSOR_SIZE && v2.image_len == sizeof(v2.image); y++)
		for (uint32_t x = 0; x < E2E_CURSOR_SIZE; x++) {
			uint8_t want[4];
			e2e_cursor_px(x, y, want);
			bad += memcmp(v2.image + 4 * ((size_t)y * E2E_CURSOR_SIZE + x), want, 4) != 0;
		}
	CHECKF(v2.image_len == sizeof(v2.image) && bad == 0,
	       "shape bytes: %zu, %u pixels differ from the guest's", v2.image_len, bad);

	for (uint32_t i = 0; i < E2E_CURSOR_MOVES; i++) {
		uint32_t x, y;
		e2e_cursor_at(i, &x, &y);
		end = e2e_now_ns() + 20000ull * 1000000;
		while (!(v2.pos.visible && v2.pos.x == (int32_t)x && v2.pos.y == (int32_t)y) &&
		       e2e_now_ns() < end)
			pump(&v1, &v2, 100);
		printf("move %u: guest %u,%u; CURSOR_POSITION %d,%d visible %u\n", i, x, y,
		       v2.pos.x, v2.pos.y, v2.pos.visible);
		CHECKF(v2.pos.visible && v2.pos.x == (int32_t)x && v2.pos.y == (int32_t)y,
		       "move %u: position %d,%d visible %u, want %u,%u", i, v2.pos.x, v2.pos.y,
		       v2.pos.visible, x, y);
		if (i == 0) { /* the channel subscriber alone: no cursor in its pictures */
			pump(&v1, &v2, 1500);
			CHECKF(v2.pictures > 0, "no picture for the cursor subscriber");
			CHECKF(!shows_cursor(&v2.pic, x, y, 32, 32) &&
				       !shows_cursor(&v2.pic, x, y, 3, 60) &&
				       !shows_cursor(&v2.pic, x, y, 60, 3),
			       "move 0: the cursor subscriber's picture has the cursor in it");
			if (!sub_open(&v1, "v1 subscriber", vm_addr, false))
				goto out;
		}
		/* the composited picture catches up (patch frames, max-fps) */
		end = e2e_now_ns() + 4000ull * 1000000;
		while (!shows_cursor(&v1.pic, x, y, 32, 32) && e2e_now_ns() < end)
			pump(&v1, &v2, 100);
		pump(&v1, &v2, 300);
		bool in_v1 = shows_cursor(&v1.pic, x, y, 32, 32) &&
			     shows_cursor(&v1.pic, x, y, 3, 60) && shows_cursor(&v1.pic, x, y, 60, 3);
		CHECKF(in_v1, "move %u: the v1 subscriber's picture has no cursor at %u,%u", i, x, y);
		if (i > 0) {
			uint32_t ox, oy;
			e2e_cursor_at(i - 1, &ox, &oy);
			CHECKF(!shows_cursor(&v1.pic, ox, oy, 32, 32),
			       "move %u: the v1 picture still has the cursor where it was", i);
		}
	}
	end = e2e_now_ns() + 20000ull * 1000000;
	while (v2.pos.visible && e2e_now_ns() < end)
		pump(&v1, &v2, 100);
	CHECKF(!v2.pos.visible, "the cursor was hidden, no CURSOR_POSITION said so");
	uint32_t lx, ly;
	e2e_cursor_at(E2E_CURSOR_MOVES - 1, &lx, &ly);
	end = e2e_now_ns() + 4000ull * 1000000;
	while (shows_cursor(&v1.pic, lx, ly, 32, 32) && e2e_now_ns() < end)
		pump(&v1, &v2, 100);
	CHECKF(!shows_cursor(&v1.pic, lx, ly, 32, 32), "hidden: the v1 picture still has it");

	printf("v1: %u pictures, %u other messages; cursor subscriber: %u pictures, %u shapes, "
	       "%u positions\n", v1.pictures, v1.others, v2.pictures, v2.shapes, v2.positions);
	CHECKF(v1.others == 0 && v1.shapes == 0 && v1.positions == 0,
	       "the v1 subscriber got %u messages that are not SUBSCRIBE_RESP/FRAME_RESPONSE",
	       v1.others + v1.shapes + v1.positions);
	CHECKF(v2.others == 0, "the cursor subscriber got %u unexpected messages", v2.others);
	CHECKF(v1.decode_errors == 0 && v2.decode_errors == 0, "decode errors %u, %u",
	       v1.decode_errors, v2.decode_errors);
	CHECKF(v2.positions <= 2 * E2E_CURSOR_MOVES + 2, "%u positions for %u moves",
	       v2.positions, E2E_CURSOR_MOVES);
out:
	sub_close(&v1);
	sub_close(&v2);
}

static char guest_args[64];

static void run_dbus(const struct e2e_guest *g, const char *workdir)
{
	char qmp[PATH_MAX], l[PATH_MAX + 8], err[512];
	struct e2e_daemon d;

	printf("== stock QEMU, -display dbus, the daemon\n");
	snprintf(qmp, sizeof(qmp), "qmp:unix:%s/cursor-qmp.sock", workdir);
	snprintf(l, sizeof(l), "unix:%s/cursor.sock", workdir);
	const char *args[] = { "--qemu", qmp, "--console", "0", "--listen", l, NULL };
	REQUIRE(e2e_daemon_start(&d, workdir, "daemon", args, err, sizeof(err)) == 0);
	struct e2e_vm_config cfg = { .append = guest_args, .hfe_sock = l + 5,
				     .display = "dbus,p2p=yes", .qmp = true, .fb_width = FB_W,
				     .fb_height = FB_H, .timeout_ms = RUN_MS };
	struct e2e_vm *vm = e2e_vm_start(g, workdir, "cursor", &cfg, err, sizeof(err));
	REQUIRE(vm);
	check_cursor(l, vm);
	if (tu_failures)
		e2e_vm_dump_console(vm, 40);
	e2e_vm_free(vm);
	CHECKF(e2e_daemon_stop(&d) == 0, "the daemon did not exit cleanly");
}

static void run_module(const struct e2e_guest *g, const char *workdir)
{
	struct e2e_qemu q;
	struct e2e_guest gg = *g;
	char sock[PATH_MAX], addr[PATH_MAX + 8], err[512];

	printf("== the QEMU module\n");
	if (e2e_qemu_prepare(&q, &gg, workdir, err, sizeof(err)) < 0) {
		CHECKF(0, "%s", err);
		return;
	}
	struct e2e_vm_config cfg = { .append = guest_args, .qmp = true, .fb_width = FB_W,
				     .fb_height = FB_H, .timeout_ms = RUN_MS };
	struct e2e_vm *vm = e2e_qemu_vm_start(&q, &gg, workdir, "module", NULL, &cfg, sock,
					      sizeof(sock), err, sizeof(err));
	CHECKF(vm != NULL, "%s", err);
	if (!vm)
		return;
	snprintf(addr, sizeof(addr), "unix:%s", sock);
	/* The object's socket appears once QEMU has parsed its command line. */
	for (int i = 0; i < 300 && access(sock, F_OK) != 0; i++)
		usleep(100000);
	check_cursor(addr, vm);
	if (tu_failures)
		e2e_vm_dump_console(vm, 40);
	e2e_vm_free(vm);
}

int main(int argc, char **argv)
{
	snprintf(guest_args, sizeof(guest_args), "hfe.mode=cursor hfe.hold=%u", HOLD_MS);
	return e2e_both_hosts_main(argc, argv, "test_e2e_cursor", run_dbus, run_module);
}
