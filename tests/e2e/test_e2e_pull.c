/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Pull mode end to end with a real Linux guest: Debian's stock QEMU boots
 * the test guest (tests/e2e/build-guest.sh) with a virtserialport whose
 * chardev is the real daemon's unix socket. Inside the guest, hfe-guest
 * sends FRAMES pattern frames over serial:/dev/virtio-ports/org.helix.hfe.0
 * (pipelined) and forwards every access unit to the out port. Here the AUs
 * are decoded with libavcodec and checked against the same pattern through
 * the independent reference conversion of test_util.c: count, pts, size,
 * SPS/PPS/IDR first, PSNR >= 35 dB. Once with XR24 over plain v1 (as the
 * deployed guest encoder speaks), once with NV12 after a v2 HELLO.
 * Reports the guest's boot time and the virtio-serial throughput it saw.
 *
 * A guest that cannot be built (e.g. no network to apt and nothing cached)
 * is a FAILURE, not a skip.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e_harness.h"
#include "e2e_pattern.h"
#include "test_util.h"

#define FRAMES 60
#define MIN_PSNR 35.0
#define FRAME_NS (1000000000 / 30) /* the guest's pts step */

struct pull_case {
	const char *format;
	uint32_t w, h;
	int hello;
};

static const struct pull_case cases[] = {
	{ "XR24", 640, 480, 0 },
	{ "NV12", 320, 240, 1 },
};

/* Decode the AUs and compare picture k with pattern frame k. */
static void check_pictures(const char *tag, uint32_t w, uint32_t h,
			   const struct e2e_rec *const *aus, int n)
{
	struct tu_decoder *dec = tu_decoder_new();
	uint8_t *rgb = malloc((size_t)w * h * 3);
	double min[3] = { 1e9, 1e9, 1e9 }, sum_y = 0, worst_next = 0;
	int pics = 0, errors = 0, wrong_size = 0;

	REQUIRE(dec && rgb);
	for (int i = 0; i <= n; i++) {
		struct tu_yuv pic;
		int r = i < n ? tu_decoder_decode(dec, aus[i]->data, aus[i]->h.len, &pic, NULL) :
				tu_decoder_flush(dec, &pic);

		if (r < 0) {
			errors++;
			continue;
		}
		while (r == 1) {
			if (pic.w != w || pic.h != h) {
				wrong_size++;
			} else {
				struct tu_yuv ref, next;
				double p[3], q[3];

				e2e_pattern_rgb(rgb, w, h, (uint32_t)pics);
				tu_ref_rgb_to_yuv(rgb, w, h, &ref);
				tu_psnr_yuv(&pic, &ref, p);
				for (int c = 0; c < 3; c++)
					min[c] = p[c] < min[c] ? p[c] : min[c];
				sum_y += p[0];
				/* The check must tell neighbours apart: compare with
				 * the next frame too. */
				e2e_pattern_rgb(rgb, w, h, (uint32_t)pics + 1);
				tu_ref_rgb_to_yuv(rgb, w, h, &next);
				tu_psnr_yuv(&pic, &next, q);
				worst_next = q[0] > worst_next ? q[0] : worst_next;
				tu_yuv_free(&ref);
				tu_yuv_free(&next);
			}
			tu_yuv_free(&pic);
			pics++;
			r = i < n ? 0 : tu_decoder_flush(dec, &pic);
		}
	}
	CHECKF(errors == 0, "%s: %d access units failed to decode", tag, errors);
	CHECKF(pics == FRAMES, "%s: decoded %d pictures, want %d", tag, pics, FRAMES);
	CHECKF(wrong_size == 0, "%s: %d pictures not %ux%u", tag, wrong_size, w, h);
	CHECKF(min[0] >= MIN_PSNR && min[1] >= MIN_PSNR && min[2] >= MIN_PSNR,
	       "%s: min PSNR Y %.2f U %.2f V %.2f dB, want >= %.0f", tag, min[0], min[1], min[2],
	       MIN_PSNR);
	CHECKF(worst_next < MIN_PSNR, "%s: PSNR against the next frame reaches %.2f dB: the "
	       "pattern does not move enough for the check to mean anything", tag, worst_next);
	printf("%s: %d pictures %ux%u, PSNR min Y %.2f U %.2f V %.2f dB, mean Y %.2f dB "
	       "(vs next frame at most %.2f dB)\n",
	       tag, pics, w, h, min[0], min[1], min[2], pics ? sum_y / pics : 0.0, worst_next);
	tu_decoder_free(dec);
	free(rgb);
}

static void check_first_au(const char *tag, const struct e2e_rec *au)
{
	struct tu_nals nals;
	int sps, pps, idr;

	CHECKF(tu_nal_parse(au->data, au->h.len, &nals) > 0, "%s: first AU is not Annex-B", tag);
	sps = tu_nal_find(&nals, TU_NAL_SPS);
	pps = tu_nal_find(&nals, TU_NAL_PPS);
	idr = tu_nal_find(&nals, TU_NAL_IDR);
	CHECKF(sps >= 0 && pps > sps && idr > pps,
	       "%s: first AU must carry SPS, PPS, IDR in that order (at %d, %d, %d)", tag, sps,
	       pps, idr);
	CHECKF(au->h.flags & E2E_REC_FLAG_KEYFRAME, "%s: first AU not flagged as keyframe", tag);
}

static void run_case(const struct e2e_guest *g, const char *workdir, const struct e2e_daemon *d,
		     const struct pull_case *pc)
{
	char tag[32], append[256], err[512], line[512] = "", pull[512] = "";
	const struct e2e_rec *aus[FRAMES + 8], *rec, *end = NULL;
	struct e2e_vm_config cfg = { .hfe_sock = d->sock, .timeout_ms = 180000 };
	struct e2e_vm_times t;
	struct e2e_vm *vm;
	int n = 0, failures = tu_failures, st;
	uint64_t first_ns = 0, last_ns = 0;

	snprintf(tag, sizeof(tag), "e2e_pull %s", pc->format);
	snprintf(append, sizeof(append),
		 "hfe.mode=pull hfe.frames=%d hfe.size=%ux%u hfe.format=%s hfe.hello=%d", FRAMES,
		 pc->w, pc->h, pc->format, pc->hello);
	cfg.append = append;
	vm = e2e_vm_start(g, workdir, pc->format, &cfg, err, sizeof(err));
	CHECKF(vm != NULL, "%s: cannot start QEMU: %s", tag, err);
	if (!vm)
		return;

	CHECKF(e2e_vm_wait_line(vm, "start", NULL, 0, 120000) == 1,
	       "%s: the guest tool did not start within 120 s", tag);
	CHECKF(e2e_vm_wait_line(vm, "result=", line, sizeof(line), 120000) == 1,
	       "%s: no result line from the guest", tag);
	CHECKF(!strcmp(line, "result=ok"), "%s: guest says: %s", tag, line);
	e2e_vm_wait_line(vm, "pull ", pull, sizeof(pull), 0);

	for (size_t i = 0; e2e_vm_record(vm, i, &rec, 30000) == 1; i++) {
		if (rec->h.kind == E2E_REC_AU) {
			if (!first_ns)
				first_ns = rec->host_ns;
			last_ns = rec->host_ns;
			if (n < (int)(sizeof(aus) / sizeof(aus[0])))
				aus[n] = rec;
			n++;
		} else if (rec->h.kind == E2E_REC_END) {
			end = rec;
			break;
		}
	}
	CHECKF(end != NULL, "%s: no END record on the out port", tag);
	if (end)
		CHECKF(!strncmp((const char *)end->data, "result=ok", 9), "%s: END says %s", tag,
		       (const char *)end->data);
	st = e2e_vm_wait_exit(vm, 30000);
	CHECKF(st == 0, "%s: QEMU did not power off cleanly (status %d)", tag, st);

	CHECKF(n == FRAMES, "%s: %d access units, want %d", tag, n, FRAMES);
	if (n > (int)(sizeof(aus) / sizeof(aus[0])))
		n = (int)(sizeof(aus) / sizeof(aus[0]));
	for (int i = 0; i < n; i++)
		CHECKF(aus[i]->h.value == (int64_t)i * FRAME_NS, "%s: AU %d has pts %lld, want %lld",
		       tag, i, (long long)aus[i]->h.value, (long long)i * FRAME_NS);
	if (n > 0) {
		check_first_au(tag, aus[0]);
		check_pictures(tag, pc->w, pc->h, aus, n);
	}

	e2e_vm_times(vm, &t);
	printf("%s: boot: QEMU start -> guest tool %.0f ms (guest kernel uptime %.0f ms), "
	       "QEMU ran %.0f ms, accel %s\n",
	       tag, t.tool_start_ms, t.guest_uptime_ms, t.exit_ms, e2e_accel(g));
	printf("%s: guest: %s\n", tag, pull);
	printf("%s: virtio-serial guest->host (frames) %.1f MiB/s while sending, %.1f MiB/s "
	       "overall; out port %llu bytes, AUs over %.0f ms\n",
	       tag, e2e_kv_num(pull, "send_MiBps", -1), e2e_kv_num(pull, "overall_MiBps", -1),
	       (unsigned long long)e2e_vm_out_bytes(vm), (last_ns - first_ns) / 1e6);
	if (tu_failures != failures)
		e2e_vm_dump_console(vm, 40);
	e2e_vm_free(vm);
}

int main(int argc, char **argv)
{
	uint64_t t0 = e2e_now_ns();
	char *workdir = tu_mkdtemp("hfe-e2e-pull");
	char err[1024], log[PATH_MAX + 32];
	struct e2e_guest g;
	struct e2e_daemon d;
	int st;

	REQUIRE(workdir);
	if (e2e_arch_args(&argc, argv) < 0)
		return 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("test_e2e_pull: work directory %s\n", workdir);

	snprintf(log, sizeof(log), "%s/build-guest.log", workdir);
	if (e2e_guest_get(&g, log, err, sizeof(err)) < 0) {
		char cmd[PATH_MAX + 64];

		fprintf(stderr, "test_e2e_pull: FAIL: cannot get the test guest: %s\n", err);
		snprintf(cmd, sizeof(cmd), "tail -n 25 '%s' >&2", log);
		if (system(cmd) != 0)
			fprintf(stderr, "(no build log)\n");
		return 1;
	}
	printf("test_e2e_pull: guest %s (ready in %.0f ms), kernel %s, accel %s\n", g.dir,
	       g.build_ms, strrchr(g.kernel, '/') + 1, e2e_accel(&g));

	if (e2e_daemon_start(&d, workdir, "daemon", NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "test_e2e_pull: FAIL: %s\n", err);
		return 1;
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&g, workdir, &d, &cases[i]);
	st = e2e_daemon_stop(&d);
	CHECKF(st == 0, "daemon exit status 0x%x, want a clean exit (see %s)", st, d.log);

	return e2e_test_finish("test_e2e_pull", workdir, t0);
}
