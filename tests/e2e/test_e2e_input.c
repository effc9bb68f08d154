/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Input into the VM (HXFR v2 INPUT_KEY / INPUT_POINTER), end to end, on both
 * hosts: stock QEMU's -display dbus with the daemon (D-Bus Keyboard and
 * Mouse), and the patched QEMU with its module (QEMU's input API). The VM
 * has virtio-keyboard-pci and virtio-tablet-pci; the guest runs hfe-guest
 * mode=input, which reports every evdev event its kernel gets.
 * Checked, with host-side clients:
 *  - on a control listener (HELLO_RESP says INPUT), a subscriber's keys
 *    reach the guest as the same evdev codes, every key of the daemon's
 *    keymap pressed and released in order (through the token bucket: more
 *    keys than its burst);
 *  - the pointer: absolute positions scaled to the tablet's range (one past
 *    the size is clamped), each button, the wheel;
 *  - a key and a button held when the client closes are released;
 *  - refused: input on the guest's own channel (not control: DENIED, closed),
 *    for a scanout the client does not watch (DENIED, connection kept), and
 *    nothing of either reaches the guest; D-Bus: another VM's control
 *    channel reaches only that VM;
 *  - a flood of pointer messages is paced by the bucket and QEMU's main loop
 *    stays responsive (QMP round trips; the module's longest read callback).
 *
 *   test_e2e_input [dbus|module]   (default: both)
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "e2e_harness.h"
#include "e2e_qemu.h"
#include "hfe/client.h"
#include "hfe/input.h"
#include "test_util.h"

#define FB_W 640
#define FB_H 480
#define ABS_MAX 0x7fff /* QEMU's tablet range */
#define RUN_MS 300000
#define FLOOD 1000

/* The evdev codes with a QEMU key number (daemon/keymap.c): 1..83, 86..88,
 * and these. */
static const uint16_t more_keys[] = {
	89,  91,  92,  93,  94,  96,  97,  98,  99,  100, 101, 102, 103, 104, 105, 106,
	107, 108, 109, 110, 111, 113, 114, 115, 116, 117, 119, 121, 122, 123, 124, 125,
	126, 127, 128, 129, 130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 140, 142,
	143, 155, 156, 157, 158, 159, 163, 164, 165, 166, 172, 173, 226,
};

static unsigned all_keys(uint16_t *out)
{
	unsigned n = 0;

	for (uint16_t k = 1; k <= 88; k++)
		if (k != 84 && k != 85)
			out[n++] = k;
	for (size_t i = 0; i < sizeof(more_keys) / sizeof(more_keys[0]); i++)
		out[n++] = more_keys[i];
	return n;
}

/* CHECKF that is an expression: true when cond holds. */
static bool expect(bool cond, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool expect(bool cond, int line, const char *fmt, ...)
{
	va_list ap;

	if (cond)
		return true;
	fprintf(stderr, "%s:%d: CHECK failed: ", __FILE__, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	tu_failures++;
	return false;
}
#define EXPECT(cond, ...) expect((cond), __LINE__, __VA_ARGS__)

/* ---- a host-side client ---- */

static struct hfe_client *open_client(const char *addr, uint16_t *features)
{
	struct hfe_err err = { 0 };
	struct hfe_hello_resp caps;
	struct hfe_client *c = hfe_client_connect(addr, 10000, &err);

	EXPECT(c != NULL, "connect %s: %s", addr, err.msg);
	if (!c)
		return NULL;
	if (!EXPECT(hfe_client_hello(c, "e2e-input", &caps, 10000, &err) == 0, "HELLO: %s",
		    err.msg)) {
		hfe_client_close(c);
		return NULL;
	}
	*features = caps.features;
	return c;
}

static bool send_msg(struct hfe_client *c, const struct hfe_msg *m)
{
	struct hfe_err err = { 0 };

	return EXPECT(hfe_client_send_msg(c, m, 10000, &err) == 0, "send %s: %s",
		      hfe_msg_type_name(m->hdr.type), err.msg);
}

/* Next message of `type` (others skipped: the scanout's AUs). */
static bool wait_msg(struct hfe_client *c, uint8_t type, struct hfe_msg *m, int timeout_ms)
{
	struct hfe_err err = { 0 };
	uint64_t end = e2e_now_ns() + (uint64_t)timeout_ms * 1000000;

	while (e2e_now_ns() < end) {
		if (hfe_client_recv(c, m, 1000, &err) < 0)
			return false;
		if (m->hdr.type == type || m->hdr.type == HFE_MSG_ERROR)
			return m->hdr.type == type;
	}
	return false;
}

static bool subscribe(struct hfe_client *c, uint32_t id)
{
	struct hfe_msg m = { .hdr = { .type = HFE_MSG_SUBSCRIBE, .session_id = (uint16_t)id } };

	m.u.scanout_id = id;
	return send_msg(c, &m) && EXPECT(wait_msg(c, HFE_MSG_SUBSCRIBE_RESP, &m, 10000) &&
						 m.u.subscribe_resp.success == 1,
					 "SUBSCRIBE %u refused", id);
}

static bool key(struct hfe_client *c, uint32_t scanout, uint32_t code, bool down)
{
	struct hfe_msg m = { .hdr = { .type = HFE_MSG_INPUT_KEY, .session_id = (uint16_t)scanout } };

	m.u.key = (struct hfe_input_key){ code, down };
	return send_msg(c, &m);
}

static bool pointer(struct hfe_client *c, uint32_t x, uint32_t y, uint32_t buttons, int16_t wy)
{
	struct hfe_msg m = { .hdr = { .type = HFE_MSG_INPUT_POINTER } };

	m.u.pointer = (struct hfe_input_pointer){ x, y, buttons, wy, 0 };
	return send_msg(c, &m);
}

/* ---- what the guest saw ---- */

struct seen {
	size_t next; /* record index to read next */
	char ev[8192][32];
	unsigned n;
};

/* Read guest records until `want` (a whole event text) has come; false on
 * timeout. Every event text is kept in s->ev. */
static bool until(struct e2e_vm *vm, struct seen *s, const char *want, int timeout_ms)
{
	const struct e2e_rec *rec;
	uint64_t end = e2e_now_ns() + (uint64_t)timeout_ms * 1000000;

	while (e2e_now_ns() < end) {
		int r = e2e_vm_record(vm, s->next, &rec, 1000);
		if (r < 0)
			return false;
		if (r == 0)
			continue;
		s->next++;
		if (rec->h.kind != E2E_REC_TEXT)
			continue;
		if (s->n < sizeof(s->ev) / sizeof(s->ev[0]))
			snprintf(s->ev[s->n++], sizeof(s->ev[0]), "%s", (const char *)rec->data);
		if (!strcmp((const char *)rec->data, want))
			return true;
	}
	return false;
}

static unsigned count(const struct seen *s, unsigned from, const char *prefix)
{
	unsigned n = 0;

	for (unsigned i = from; i < s->n; i++)
		n += !strncmp(s->ev[i], prefix, strlen(prefix));
	return n;
}

static int find(const struct seen *s, unsigned from, const char *ev)
{
	for (unsigned i = from; i < s->n; i++)
		if (!strcmp(s->ev[i], ev))
			return (int)i;
	return -1;
}

/* ---- the checks, the same on both hosts ---- */

/* The guest's own channel is not a control listener: DENIED, closed. */
static void check_not_control(const char *guest_addr)
{
	uint16_t features = 0xffff;
	struct hfe_client *c = open_client(guest_addr, &features);
	struct hfe_msg m;

	if (!c)
		return;
	EXPECT(!(features & HFE_FEATURE_INPUT), "the guest's channel offers input (features 0x%x)",
	       features);
	if (subscribe(c, 0) && key(c, 0, 16, true)) {
		EXPECT(!wait_msg(c, HFE_MSG_PONG, &m, 10000) && m.hdr.type == HFE_MSG_ERROR &&
			       m.u.error.code == HFE_ERR_DENIED,
		       "input on a listener without control was not DENIED");
		printf("guest channel: input refused: %s\n", m.u.error.message);
	}
	hfe_client_close(c);
}

/* A control client that does not watch scanout 0: DENIED, connection kept. */
static void check_unwatched(const char *ctl_addr)
{
	uint16_t features = 0;
	struct hfe_client *c = open_client(ctl_addr, &features);
	struct hfe_msg m;

	if (!c)
		return;
	EXPECT(features & HFE_FEATURE_INPUT, "the control listener does not offer input");
	key(c, 0, 16, true);
	EXPECT(!wait_msg(c, HFE_MSG_PONG, &m, 10000) && m.hdr.type == HFE_MSG_ERROR &&
		       m.u.error.code == HFE_ERR_DENIED && m.hdr.session_id == 0,
	       "input for an unwatched scanout was not DENIED");
	m = (struct hfe_msg){ .hdr = { .type = HFE_MSG_PING, .session_id = 5 } };
	send_msg(c, &m);
	EXPECT(wait_msg(c, HFE_MSG_PONG, &m, 10000), "no PONG after DENIED: connection dropped");
	hfe_client_close(c);
}

/* Every key, the pointer, buttons and wheel; then a key and a button held
 * at close. */
static void check_injection(struct e2e_vm *vm, struct seen *s, const char *ctl_addr)
{
	uint16_t keys[160], features = 0;
	unsigned nk = all_keys(keys), first = s->n;
	struct hfe_client *c = open_client(ctl_addr, &features);
	char ev[32];

	if (!c || !subscribe(c, 0))
		return;
	uint64_t t0 = e2e_now_ns();
	for (unsigned i = 0; i < nk; i++) {
		key(c, 0, keys[i], true);
		key(c, 0, keys[i], false);
	}
	double sent_ms = (e2e_now_ns() - t0) / 1e6;
	snprintf(ev, sizeof(ev), "key %u 0", keys[nk - 1]);
	EXPECT(until(vm, s, ev, 60000), "the guest did not get the last key (%s)", ev);
	unsigned wrong = 0, missing = 0, at = first;
	for (unsigned i = 0; i < nk; i++) {
		char d[32], u[32];
		snprintf(d, sizeof(d), "key %u 1", keys[i]);
		snprintf(u, sizeof(u), "key %u 0", keys[i]);
		int a = find(s, at, d), b = a >= 0 ? find(s, (unsigned)a, u) : -1;
		if (a < 0 || b < 0) {
			if (missing++ < 5)
				fprintf(stderr, "  key %u: %s\n", keys[i], a < 0 ? "no press" : "no release");
			continue;
		}
		at = (unsigned)b;
	}
	wrong = count(s, first, "key ") - 2 * (nk - missing);
	EXPECT(missing == 0, "%u of %u keys did not arrive in order", missing, nk);
	EXPECT(wrong == 0, "%u unexpected key events", wrong);
	sent_ms = (e2e_now_ns() - t0) / 1e6;
	printf("keys: %u keys pressed and released (%u messages) reached the guest in %.0f ms "
	       "(bucket: %u at once, %u/s), all in order\n",
	       nk, 2 * nk, sent_ms, HFE_INPUT_BURST, HFE_INPUT_RATE);

	/* the pointer */
	/* (evdev drops a position equal to the last: not 0,0 first) */
	static const uint32_t pos[][2] = { { 10, 10 }, { 0, 0 }, { 320, 240 },
					   { FB_W - 1, FB_H - 1 }, { 100, 50 } };
	for (size_t i = 0; i < 5; i++) {
		pointer(c, pos[i][0], pos[i][1], 0, 0);
		snprintf(ev, sizeof(ev), "abs %u %u", pos[i][0] * ABS_MAX / FB_W,
			 pos[i][1] * ABS_MAX / FB_H);
		EXPECT(until(vm, s, ev, 20000), "pointer %u,%u: no '%s' in the guest", pos[i][0],
		       pos[i][1], ev);
	}
	pointer(c, FB_W + 100, 10, 0, 0); /* past the console: clamped (limits allow it) */
	snprintf(ev, sizeof(ev), "abs %u %u", (FB_W - 1) * ABS_MAX / FB_W, 10 * ABS_MAX / FB_H);
	EXPECT(until(vm, s, ev, 20000), "pointer past the width: no '%s' in the guest", ev);
	static const struct {
		uint32_t bit;
		unsigned btn;
	} buttons[] = { { HFE_BUTTON_LEFT, 0x110 },   { HFE_BUTTON_RIGHT, 0x111 },
			{ HFE_BUTTON_MIDDLE, 0x112 }, { HFE_BUTTON_BACK, 0x113 },
			{ HFE_BUTTON_FORWARD, 0x114 } };
	for (size_t i = 0; i < 5; i++) {
		pointer(c, 200, 100, buttons[i].bit, 0);
		pointer(c, 200, 100, 0, 0);
		snprintf(ev, sizeof(ev), "key %u 0", buttons[i].btn);
		EXPECT(until(vm, s, ev, 20000), "button 0x%x: no '%s' in the guest", buttons[i].bit,
		       ev);
	}
	unsigned w0 = s->n;
	pointer(c, 200, 100, 0, 2);  /* two notches down */
	pointer(c, 200, 100, 0, -1); /* one up */
	EXPECT(until(vm, s, "wheel 1", 20000), "wheel up did not arrive");
	EXPECT(count(s, w0, "wheel -1") == 2 && count(s, w0, "wheel 1") == 1,
	       "wheel: %u down, %u up notches (want 2, 1)", count(s, w0, "wheel -1"),
	       count(s, w0, "wheel 1"));
	printf("pointer: positions scaled to 0..%u (clamped past the edge), 5 buttons, wheel\n",
	       ABS_MAX);

	/* held at close: released by the host */
	unsigned h0 = s->n;
	key(c, 0, 42, true);
	pointer(c, 200, 100, HFE_BUTTON_LEFT, 0);
	EXPECT(until(vm, s, "key 272 1", 20000), "the held button did not arrive");
	hfe_client_close(c);
	/* keys first, then buttons (input.c's release order) */
	EXPECT(until(vm, s, "key 42 0", 20000) && until(vm, s, "key 272 0", 20000) &&
		       find(s, h0, "key 42 0") >= 0,
	       "a key and a button held at close were not released");
	printf("close: the held shift and left button were released\n");
}

/* A flood of pointer messages: paced by the bucket; QEMU answers QMP. */
static void check_flood(struct e2e_vm *vm, struct seen *s, const char *ctl_addr, bool module)
{
	uint16_t features = 0;
	struct hfe_client *c = open_client(ctl_addr, &features);
	char err[256], reply[4096];
	double worst_qmp = 0;

	if (!c || !subscribe(c, 0))
		return;
	if (module)
		EXPECT(e2e_qmp(e2e_vm_qmp_path(vm),
			       "{\"execute\":\"qom-set\",\"arguments\":{\"path\":\"/objects/hfe0\","
			       "\"property\":\"max-stall-us\",\"value\":0}}",
			       NULL, 0, 10000, err, sizeof(err)) == 0,
		       "resetting the module's stats: %s", err);
	unsigned a0 = s->n;
	uint64_t t0 = e2e_now_ns();
	for (unsigned i = 0; i < FLOOD; i++) {
		pointer(c, i % FB_W, (i / FB_W) % FB_H, 0, 0);
		if (i % 500 == 0) {
			uint64_t q0 = e2e_now_ns();
			EXPECT(e2e_qmp(e2e_vm_qmp_path(vm), "{\"execute\":\"query-status\"}", NULL, 0,
				       10000, err, sizeof(err)) == 0,
			       "QMP during the flood: %s", err);
			double ms = (e2e_now_ns() - q0) / 1e6;
			worst_qmp = ms > worst_qmp ? ms : worst_qmp;
		}
	}
	key(c, 0, 30, true); /* a marker after the flood */
	key(c, 0, 30, false);
	EXPECT(until(vm, s, "key 30 0", 60000), "the marker after the flood did not arrive");
	double ms = (e2e_now_ns() - t0) / 1e6; /* until the guest had the marker */
	unsigned moves = count(s, a0, "abs ");
	/* a burst at once, then the rate: at least this long */
	double paced_ms = (FLOOD - HFE_INPUT_BURST) * 1000.0 / HFE_INPUT_RATE;
	EXPECT(ms >= paced_ms * 0.9, "%u messages reached the guest in %.0f ms: not paced "
	       "(want >= %.0f ms)", FLOOD, ms, paced_ms);
	EXPECT(moves <= FLOOD, "%u moves in the guest for %u messages", moves, FLOOD);
	EXPECT(worst_qmp < 2000, "QMP took %.0f ms during the flood", worst_qmp);
	printf("flood: %u pointer messages (+ a marker key) reached the guest in %.0f ms "
	       "(paced: >= %.0f ms), %u moves arrived, QMP worst %.1f ms\n",
	       FLOOD, ms, paced_ms, moves, worst_qmp);
	if (module) {
		EXPECT(e2e_qemu_qom_get(e2e_vm_qmp_path(vm), "/objects/hfe0", "stats", reply,
					sizeof(reply), err, sizeof(err)) == 0,
		       "stats: %s", err);
		/* CPU time: wall clock also counts the kernel's preemption on a busy host */
		double max_us = e2e_qemu_json_num(reply, "max-stall-us", -1);
		double cpu_us = e2e_qemu_json_num(reply, "max-stall-cpu-us", -1);
		EXPECT(cpu_us >= 0 && cpu_us < 10000,
		       "the module's longest callback took %.0f us of CPU during the flood", cpu_us);
		printf("module during the flood: longest main-loop callback %.0f us (%.0f us CPU)\n",
		       max_us, cpu_us);
	}
	hfe_client_close(c);
}

static const char *guest_args(void)
{
	return "hfe.mode=input hfe.duration=240000";
}

/* No PS/2 (i8042=off): QEMU gives keys to the keyboard it activated last, at
 * times q35's PS/2 one (seen in the browser test), which this guest does not
 * read. */
static const char *const input_devices[] = { "-machine", "i8042=off", "-device",
					     "virtio-keyboard-pci", "-device",
					     "virtio-tablet-pci", NULL };

static void run_dbus(const struct e2e_guest *g, const char *workdir)
{
	char qmp1[PATH_MAX], qmp2[PATH_MAX], l1[PATH_MAX + 8], c1[PATH_MAX + 8], c2[PATH_MAX + 8],
		l2[PATH_MAX + 8], line[256], err[512];
	struct e2e_daemon d;
	static struct seen s;

	printf("== stock QEMU, -display dbus, the daemon\n");
	snprintf(qmp1, sizeof(qmp1), "qmp:unix:%s/input-qmp.sock", workdir);
	snprintf(qmp2, sizeof(qmp2), "qmp:unix:%s/other-qmp.sock", workdir);
	snprintf(l1, sizeof(l1), "unix:%s/input.sock", workdir);
	snprintf(c1, sizeof(c1), "unix:%s/input-ctl.sock", workdir);
	snprintf(l2, sizeof(l2), "unix:%s/other.sock", workdir);
	snprintf(c2, sizeof(c2), "unix:%s/other-ctl.sock", workdir);
	const char *args[] = { "--qemu", qmp1, "--console", "0", "--listen", l1, "--control-listen",
			       c1, "--qemu", qmp2, "--console", "0", "--listen", l2,
			       "--control-listen", c2, NULL };
	REQUIRE(e2e_daemon_start(&d, workdir, "daemon", args, err, sizeof(err)) == 0);

	struct e2e_vm_config cfg = { .append = guest_args(), .hfe_sock = l1 + 5,
				     .display = "dbus,p2p=yes", .qmp = true, .fb_width = FB_W,
				     .fb_height = FB_H, .extra_args = input_devices,
				     .timeout_ms = RUN_MS };
	struct e2e_vm *vm = e2e_vm_start(g, workdir, "input", &cfg, err, sizeof(err));
	REQUIRE(vm);
	if (EXPECT(e2e_vm_wait_line(vm, "input ready", line, sizeof(line), 120000) == 1,
		   "the guest's input devices did not appear")) {
		memset(&s, 0, sizeof(s));
		check_not_control(l1);
		check_unwatched(c1);
		/* another VM's control channel: its own VM only (not running here) */
		uint16_t f = 0;
		struct hfe_client *o = open_client(c2, &f);
		if (o && subscribe(o, 0)) {
			key(o, 0, 16, true);
			key(o, 0, 16, false);
		}
		hfe_client_close(o);
		check_injection(vm, &s, c1);
		/* nothing of the refused ones: key 16 once pressed, once released */
		EXPECT(count(&s, 0, "key 16 ") == 2, "key 16 seen %u times (want 2: refused input "
		       "or another VM's reached the guest)", count(&s, 0, "key 16 "));
		check_flood(vm, &s, c1, false);
	}
	if (tu_failures)
		e2e_vm_dump_console(vm, 40);
	e2e_vm_free(vm);
	EXPECT(e2e_daemon_stop(&d) == 0, "the daemon did not exit cleanly");
}

static void run_module(const struct e2e_guest *g, const char *workdir)
{
	struct e2e_qemu q;
	struct e2e_guest gg = *g;
	char sock[PATH_MAX], ctl[PATH_MAX + 32], opts[PATH_MAX + 64], guest_addr[PATH_MAX + 8],
		line[256], err[512];
	static struct seen s;

	printf("== the QEMU module\n");
	if (e2e_qemu_prepare(&q, &gg, workdir, err, sizeof(err)) < 0) {
		EXPECT(0, "%s", err);
		return;
	}
	snprintf(ctl, sizeof(ctl), "unix:%s/module-ctl.sock", workdir);
	snprintf(opts, sizeof(opts), "control-listen=%s", ctl);
	struct e2e_vm_config cfg = { .append = guest_args(), .qmp = true, .fb_width = FB_W,
				     .fb_height = FB_H, .extra_args = input_devices,
				     .timeout_ms = RUN_MS };
	struct e2e_vm *vm = e2e_qemu_vm_start(&q, &gg, workdir, "module", opts, &cfg, sock,
					      sizeof(sock), err, sizeof(err));
	EXPECT(vm != NULL, "%s", err);
	if (!vm)
		return;
	snprintf(guest_addr, sizeof(guest_addr), "unix:%s", sock);
	if (EXPECT(e2e_vm_wait_line(vm, "input ready", line, sizeof(line), 120000) == 1,
		   "the guest's input devices did not appear")) {
		memset(&s, 0, sizeof(s));
		check_not_control(guest_addr);
		check_unwatched(ctl);
		check_injection(vm, &s, ctl);
		EXPECT(count(&s, 0, "key 16 ") == 2, "key 16 seen %u times (want 2)",
		       count(&s, 0, "key 16 "));
		check_flood(vm, &s, ctl, true);
	}
	if (tu_failures)
		e2e_vm_dump_console(vm, 40);
	e2e_vm_free(vm);
}

int main(int argc, char **argv)
{
	return e2e_both_hosts_main(argc, argv, "test_e2e_input", run_dbus, run_module);
}
