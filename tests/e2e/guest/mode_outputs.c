/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfe-guest mode `outputs`: what the deployed display manager does with
 * hot-plugged virtio-gpu outputs (test_e2e_outputs, bench/outputs).
 *
 * For each of `outputs` outputs (ids first_output, first_output + 1, ...,
 * sizes cycled from `sizes`):
 *   1. ENABLE_SCANOUT {id, w, h, 60} over the host channel; SCANOUT_RESP
 *      names the connector (Virtual-N);
 *   2. wait for /sys/class/drm/card0-<connector> to say "connected" with
 *      w x h first in its mode list (the preferred mode);
 *   3. modeset it with its own dumb buffers and draw: `frames` full
 *      pictures by page flip, then small changes in place (DIRTYFB), then
 *      the output's final picture, held for `hold` ms.
 * Pictures are e2e_pattern_rgb(t) with t = E2E_OUTPUT_T(id, k), distinct per
 * output; the final one is k = E2E_OUTPUT_FINAL. With `resize=WxH` the first
 * output is then ENABLEd again at that size, remodeset and redrawn (final
 * picture at the new size). Bad requests (an id past the GPU's outputs, a
 * tiny mode, refresh 500) must be refused. Last, every output is DISABLEd
 * and must show "disconnected". With duration=MS, a bench workload runs
 * after the drawing (see workload()). Each step is an out-port TEXT record
 * ("outputs ..."), which the host test reads.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <libdrm/drm.h>
#include <libdrm/drm_mode.h>

#include "hfe/client.h"
#include "hfe/wire.h"

#include "../e2e_out.h"
#include "../e2e_pattern.h"
#include "hfe-guest.h"

#define MAX_OUT 16
#define CONNECT_TIMEOUT_MS 20000

struct fb {
	uint32_t handle, pitch, fb_id;
	uint64_t size;
	uint8_t *map;
};

struct output {
	uint32_t id, w, h;
	char connector[HFE_CONNECTOR_LEN];
	uint32_t conn_id, crtc_id;
	struct drm_mode_modeinfo mode;
	struct fb fb[2];
	unsigned front;
};

struct ctx {
	const struct opts *op;
	struct out *o;
	struct hfe_client *c;
	int fd;
	uint8_t *rgb;
	char *why;
	size_t whylen;
};

static int fail(struct ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct ctx *x, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(x->why, x->whylen, fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- the host channel ---- */

/* Send ENABLE (w != 0) or DISABLE and return SCANOUT_RESP's success (ERRORs
 * a v2 host sends before it are skipped, and so is anything else). */
static int scanout_request(struct ctx *x, uint32_t id, uint32_t w, uint32_t h, uint32_t hz,
			   char connector[HFE_CONNECTOR_LEN])
{
	struct hfe_msg m = { .hdr = { .session_id = (uint16_t)id } };
	struct hfe_err err = { 0 };

	if (w) {
		m.hdr.type = HFE_MSG_ENABLE_SCANOUT;
		m.u.enable_scanout = (struct hfe_enable_scanout){ id, w, h, hz };
	} else {
		m.hdr.type = HFE_MSG_DISABLE_SCANOUT;
		m.u.scanout_id = id;
	}
	if (hfe_client_send_msg(x->c, &m, IO_TIMEOUT_MS, &err) < 0)
		return fail(x, "outputs: send: %s", err.msg);
	for (;;) {
		int r = hfe_client_recv(x->c, &m, IO_TIMEOUT_MS, &err);

		if (r <= 0)
			return fail(x, "outputs: no SCANOUT_RESP for %u: %s", id,
				    r == 0 ? "timeout" : err.msg);
		if (m.hdr.type != HFE_MSG_SCANOUT_RESP)
			continue;
		if (m.u.scanout_resp.scanout_id != id)
			return fail(x, "outputs: SCANOUT_RESP for %u, asked %u",
				    m.u.scanout_resp.scanout_id, id);
		if (connector)
			snprintf(connector, HFE_CONNECTOR_LEN, "%s", m.u.scanout_resp.connector);
		return m.u.scanout_resp.success ? 1 : 0;
	}
}

/* ---- sysfs: what the guest's DRM driver says about a connector ---- */

static int read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	if (!fgets(buf, (int)len, f))
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/* Wait until the connector is connected with w x h first in its modes (w 0:
 * until it is disconnected). */
static int wait_connector(struct ctx *x, const char *connector, uint32_t w, uint32_t h)
{
	char path[160], status[32] = "", mode[32] = "", want[32];
	int64_t end = now_ns() + (int64_t)CONNECT_TIMEOUT_MS * 1000000;

	snprintf(want, sizeof(want), "%ux%u", w, h);
	for (;;) {
		snprintf(path, sizeof(path), "/sys/class/drm/card0-%s/status", connector);
		/* Probe, as a compositor does on the hotplug uevent: virtio-gpu
		 * learns the new display info after its hotplug event, and the
		 * status file shows the last probe's answer (fbdev, which would
		 * probe, waits while we are DRM master). */
		FILE *probe = fopen(path, "w");

		if (probe) {
			fputs("detect", probe);
			fclose(probe);
		}
		if (read_line(path, status, sizeof(status)) == 0) {
			snprintf(path, sizeof(path), "/sys/class/drm/card0-%s/modes", connector);
			if (read_line(path, mode, sizeof(mode)) < 0)
				mode[0] = '\0';
			if (w ? !strcmp(status, "connected") && !strcmp(mode, want)
			      : !strcmp(status, "disconnected"))
				return 0;
		}
		if (now_ns() > end)
			return fail(x, "outputs: %s: status '%s' mode '%s', want %s", connector,
				    status, mode, w ? want : "disconnected");
		usleep(50000);
	}
}

/* ---- KMS ---- */

/* The connector named Virtual-N (type id N), its preferred mode and a CRTC. */
static int find_connector(struct ctx *x, struct output *out)
{
	uint32_t conns[32], encs[32], crtcs[32];
	struct drm_mode_card_res res = { 0 };
	unsigned type_id;

	if (sscanf(out->connector, "Virtual-%u", &type_id) != 1)
		return fail(x, "outputs: connector '%s' is not Virtual-N", out->connector);
	if (xioctl(x->fd, DRM_IOCTL_MODE_GETRESOURCES, &res) < 0 || res.count_connectors > 32 ||
	    res.count_crtcs > 32 || res.count_encoders > 32)
		return fail(x, "outputs: GETRESOURCES: %s", strerror(errno));
	res.connector_id_ptr = (uintptr_t)conns;
	res.encoder_id_ptr = (uintptr_t)encs;
	res.crtc_id_ptr = (uintptr_t)crtcs;
	res.count_fbs = 0;
	if (xioctl(x->fd, DRM_IOCTL_MODE_GETRESOURCES, &res) < 0)
		return fail(x, "outputs: GETRESOURCES: %s", strerror(errno));
	for (unsigned i = 0; i < res.count_connectors; i++) {
		struct drm_mode_modeinfo modes[64];
		uint32_t enc_ids[8];
		struct drm_mode_get_connector gc = { .connector_id = conns[i] };

		if (xioctl(x->fd, DRM_IOCTL_MODE_GETCONNECTOR, &gc) < 0)
			continue;
		if (gc.connector_type != DRM_MODE_CONNECTOR_VIRTUAL ||
		    gc.connector_type_id != type_id)
			continue;
		if (gc.count_modes == 0 || gc.count_modes > 64 || gc.count_encoders == 0 ||
		    gc.count_encoders > 8)
			return fail(x, "outputs: %s has %u modes, %u encoders", out->connector,
				    gc.count_modes, gc.count_encoders);
		gc.modes_ptr = (uintptr_t)modes;
		gc.encoders_ptr = (uintptr_t)enc_ids;
		gc.count_props = 0;
		if (xioctl(x->fd, DRM_IOCTL_MODE_GETCONNECTOR, &gc) < 0)
			return fail(x, "outputs: GETCONNECTOR: %s", strerror(errno));
		out->conn_id = conns[i];
		out->mode = modes[0];
		for (unsigned m = 0; m < gc.count_modes; m++)
			if (modes[m].type & DRM_MODE_TYPE_PREFERRED) {
				out->mode = modes[m];
				break;
			}
		struct drm_mode_get_encoder ge = { .encoder_id = enc_ids[0] };
		if (xioctl(x->fd, DRM_IOCTL_MODE_GETENCODER, &ge) < 0)
			return fail(x, "outputs: GETENCODER: %s", strerror(errno));
		for (unsigned c = 0; c < res.count_crtcs; c++)
			if (ge.possible_crtcs & (1u << c)) {
				out->crtc_id = crtcs[c];
				return 0;
			}
		return fail(x, "outputs: %s: no CRTC", out->connector);
	}
	return fail(x, "outputs: no DRM connector %s", out->connector);
}

static void fb_free(struct ctx *x, struct fb *fb)
{
	if (fb->map && fb->map != MAP_FAILED)
		munmap(fb->map, fb->size);
	if (fb->fb_id)
		xioctl(x->fd, DRM_IOCTL_MODE_RMFB, &fb->fb_id);
	if (fb->handle) {
		struct drm_mode_destroy_dumb dd = { .handle = fb->handle };
		xioctl(x->fd, DRM_IOCTL_MODE_DESTROY_DUMB, &dd);
	}
	memset(fb, 0, sizeof(*fb));
}

static int fb_alloc(struct ctx *x, struct fb *fb, uint32_t w, uint32_t h)
{
	struct drm_mode_create_dumb cd = { .width = w, .height = h, .bpp = 32 };
	struct drm_mode_map_dumb md = { 0 };
	struct drm_mode_fb_cmd fc = { .width = w, .height = h, .bpp = 32, .depth = 24 };

	if (xioctl(x->fd, DRM_IOCTL_MODE_CREATE_DUMB, &cd) < 0)
		return fail(x, "outputs: dumb buffer %ux%u: %s", w, h, strerror(errno));
	fb->handle = cd.handle;
	fb->pitch = cd.pitch;
	fb->size = cd.size;
	fc.pitch = cd.pitch;
	fc.handle = cd.handle;
	md.handle = cd.handle;
	if (xioctl(x->fd, DRM_IOCTL_MODE_ADDFB, &fc) < 0 ||
	    xioctl(x->fd, DRM_IOCTL_MODE_MAP_DUMB, &md) < 0)
		return fail(x, "outputs: ADDFB/MAP_DUMB: %s", strerror(errno));
	fb->fb_id = fc.fb_id;
	fb->map = mmap(NULL, cd.size, PROT_READ | PROT_WRITE, MAP_SHARED, x->fd, (off_t)md.offset);
	if (fb->map == MAP_FAILED)
		return fail(x, "outputs: mmap: %s", strerror(errno));
	return 0;
}

/* Tell virtio-gpu which part of the front buffer changed (dumb buffers are
 * copied to the host on DIRTYFB, page flips and SETCRTC). */
static int dirty(struct ctx *x, struct output *out, uint32_t x0, uint32_t y0, uint32_t w,
		 uint32_t h)
{
	struct drm_clip_rect clip = { (uint16_t)x0, (uint16_t)y0, (uint16_t)(x0 + w),
				      (uint16_t)(y0 + h) };
	struct drm_mode_fb_dirty_cmd dc = { .fb_id = out->fb[out->front].fb_id, .num_clips = 1,
					    .clips_ptr = (uintptr_t)&clip };

	if (xioctl(x->fd, DRM_IOCTL_MODE_DIRTYFB, &dc) < 0 && errno != ENOSYS)
		return fail(x, "outputs: DIRTYFB: %s", strerror(errno));
	return 0;
}

static int show(struct ctx *x, struct output *out, unsigned which)
{
	struct drm_mode_crtc sc = { .crtc_id = out->crtc_id, .fb_id = out->fb[which].fb_id,
				    .set_connectors_ptr = (uintptr_t)&out->conn_id,
				    .count_connectors = 1, .mode = out->mode, .mode_valid = 1 };

	if (xioctl(x->fd, DRM_IOCTL_MODE_SETCRTC, &sc) < 0)
		return fail(x, "outputs: SETCRTC %s: %s", out->connector, strerror(errno));
	out->front = which;
	return 0;
}

/* Flip to the other buffer; waits for the flip's event (vblank-paced). */
static int flip(struct ctx *x, struct output *out)
{
	unsigned back = out->front ^ 1;
	struct drm_mode_crtc_page_flip pf = { .crtc_id = out->crtc_id,
					      .fb_id = out->fb[back].fb_id,
					      .flags = DRM_MODE_PAGE_FLIP_EVENT };
	char ev[1024];

	if (xioctl(x->fd, DRM_IOCTL_MODE_PAGE_FLIP, &pf) < 0)
		return show(x, out, back); /* no flips here: a modeset does it */
	if (read(x->fd, ev, sizeof(ev)) < 0)
		return fail(x, "outputs: flip event: %s", strerror(errno));
	out->front = back;
	return 0;
}

static void draw_picture(struct ctx *x, struct output *out, unsigned which, uint32_t t)
{
	e2e_pattern_rgb(x->rgb, out->w, out->h, t);
	e2e_rgb_to_xr24(x->rgb, out->w, out->h, out->fb[which].map, out->fb[which].pitch);
}

/* Modeset output at its size and draw its sequence. */
static int bring_up(struct ctx *x, struct output *out)
{
	if (find_connector(x, out) < 0)
		return -1;
	if (out->mode.hdisplay != out->w || out->mode.vdisplay != out->h)
		return fail(x, "outputs: %s preferred mode %ux%u, asked %ux%u", out->connector,
			    out->mode.hdisplay, out->mode.vdisplay, out->w, out->h);
	for (unsigned i = 0; i < 2; i++) {
		fb_free(x, &out->fb[i]);
		if (fb_alloc(x, &out->fb[i], out->w, out->h) < 0)
			return -1;
	}
	draw_picture(x, out, 0, E2E_OUTPUT_T(out->id, 0));
	if (show(x, out, 0) < 0)
		return -1;
	/* Full changes by page flip... */
	for (uint32_t k = 1; k < x->op->frames; k++) {
		draw_picture(x, out, out->front ^ 1, E2E_OUTPUT_T(out->id, k));
		if (flip(x, out) < 0)
			return -1;
	}
	/* ...small ones in place... */
	for (uint32_t i = 0; i < x->op->small; i++) {
		uint32_t bx, by;
		uint8_t *fbp = out->fb[out->front].map;

		e2e_small_box_pos(out->w, out->h, i, &bx, &by);
		for (uint32_t row = 0; row < E2E_SMALL_BOX; row++)
			memset(fbp + (size_t)(by + row) * out->fb[out->front].pitch + bx * 4,
			       (int)(i * 37 + out->id * 11) & 0xff, E2E_SMALL_BOX * 4);
		if (dirty(x, out, bx, by, E2E_SMALL_BOX, E2E_SMALL_BOX) < 0)
			return -1;
		usleep(20000);
	}
	/* ...then the picture the host checks, left on screen. */
	draw_picture(x, out, out->front ^ 1, E2E_OUTPUT_T(out->id, E2E_OUTPUT_FINAL));
	return flip(x, out);
}

/*
 * Bench workload (duration=MS, fps=N): for MS/2, every output types a
 * character (an 8x16 cell in place, DIRTYFB) each tick; for the other half
 * every output changes its whole screen (flips between its two buffers).
 * Records "outputs workload small|full start|end".
 */
static int workload(struct ctx *x, struct output *outs, unsigned n)
{
	int64_t period = 1000000000 / (x->op->fps ? x->op->fps : 10);
	int64_t half = (int64_t)x->op->duration_ms * 500000;
	uint32_t ticks = 0;

	for (int phase = 0; phase < 2; phase++) {
		const char *name = phase ? "full" : "small";
		int64_t t0 = now_ns(), next = t0;

		out_text(x->o, E2E_REC_TEXT, "outputs workload %s start", name);
		while (now_ns() - t0 < half) {
			for (unsigned i = 0; i < n; i++) {
				struct output *out = &outs[i];

				if (phase) {
					if (flip(x, out) < 0)
						return -1;
					continue;
				}
				uint32_t cols = out->w / 8, rows = out->h / 16;
				uint32_t cx = (ticks % cols) * 8, cy = (ticks / cols % rows) * 16;
				uint8_t *fbp = out->fb[out->front].map;

				for (uint32_t r = 0; r < 16; r++)
					memset(fbp + (size_t)(cy + r) * out->fb[out->front].pitch + cx * 4,
					       (int)(ticks * 53 + r * 7) & 0xff, 8 * 4);
				if (dirty(x, out, cx, cy, 8, 16) < 0)
					return -1;
			}
			ticks++;
			next += period;
			int64_t wait = next - now_ns();
			if (wait > 0)
				usleep((useconds_t)(wait / 1000));
		}
		out_text(x->o, E2E_REC_TEXT, "outputs workload %s end ticks=%u", name, ticks);
		ticks = 0;
	}
	return 0;
}

static int enable(struct ctx *x, struct output *out)
{
	int r = scanout_request(x, out->id, out->w, out->h, 60, out->connector);

	if (r < 0)
		return -1;
	if (r == 0)
		return fail(x, "outputs: ENABLE_SCANOUT %u %ux%u refused", out->id, out->w, out->h);
	if (wait_connector(x, out->connector, out->w, out->h) < 0)
		return -1;
	say("outputs enabled id=%u connector=%s mode=%ux%u", out->id, out->connector, out->w,
	    out->h);
	out_text(x->o, E2E_REC_TEXT, "outputs enabled id=%u connector=%s mode=%ux%u", out->id,
		 out->connector, out->w, out->h);
	return 0;
}

static int parse_sizes(struct ctx *x, uint32_t (*sizes)[2], unsigned *n)
{
	char buf[sizeof(x->op->sizes)], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", x->op->sizes);
	*n = 0;
	for (char *t = strtok_r(buf, ",", &save); t && *n < MAX_OUT;
	     t = strtok_r(NULL, ",", &save)) {
		if (sscanf(t, "%ux%u", &sizes[*n][0], &sizes[*n][1]) != 2)
			return fail(x, "outputs: bad size '%s'", t);
		(*n)++;
	}
	return *n ? 0 : fail(x, "outputs: no sizes");
}

/* Requests the host must refuse, leaving every output as it was. */
static int bad_requests(struct ctx *x)
{
	static const struct {
		uint32_t id, w, h, hz;
	} bad[] = { { 99, 1280, 720, 60 }, { 1, 8, 8, 60 }, { 1, 1280, 720, 500 } };
	char conn[HFE_CONNECTOR_LEN];

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = scanout_request(x, bad[i].id, bad[i].w, bad[i].h, bad[i].hz, conn);

		if (r < 0)
			return -1;
		if (r != 0)
			return fail(x, "outputs: ENABLE %u %ux%u@%u was accepted", bad[i].id,
				    bad[i].w, bad[i].h, bad[i].hz);
	}
	out_text(x->o, E2E_REC_TEXT, "outputs refused=%zu", sizeof(bad) / sizeof(bad[0]));
	return 0;
}

int run_outputs(const struct opts *op, struct out *o, char *why, size_t whylen)
{
	struct ctx x = { .op = op, .o = o, .fd = -1, .why = why, .whylen = whylen };
	struct output outs[MAX_OUT];
	uint32_t sizes[MAX_OUT][2], max_w = 0, max_h = 0;
	unsigned n_sizes, n = op->outputs;
	int rc = -1;

	memset(outs, 0, sizeof(outs));
	if (n == 0 || n > MAX_OUT)
		return fail(&x, "outputs: outputs=%u (1..%u)", n, MAX_OUT);
	if (parse_sizes(&x, sizes, &n_sizes) < 0)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		outs[i].id = op->first_output + i;
		outs[i].w = sizes[i % n_sizes][0];
		outs[i].h = sizes[i % n_sizes][1];
	}
	for (unsigned i = 0; i < n_sizes; i++) {
		max_w = sizes[i][0] > max_w ? sizes[i][0] : max_w;
		max_h = sizes[i][1] > max_h ? sizes[i][1] : max_h;
	}
	if (op->resize_w) {
		max_w = op->resize_w > max_w ? op->resize_w : max_w;
		max_h = op->resize_h > max_h ? op->resize_h : max_h;
	}
	x.rgb = malloc((size_t)max_w * max_h * 3);
	if (!x.rgb)
		return fail(&x, "outputs: out of memory");
	if (wait_path("/dev/dri/card0", 10000) < 0) {
		fail(&x, "outputs: no /dev/dri/card0");
		goto out;
	}
	x.fd = open("/dev/dri/card0", O_RDWR | O_CLOEXEC);
	if (x.fd < 0) {
		fail(&x, "outputs: /dev/dri/card0: %s", strerror(errno));
		goto out;
	}
	x.c = open_host(op, "outputs", why, whylen);
	if (!x.c)
		goto out;

	for (unsigned i = 0; i < n; i++)
		if (enable(&x, &outs[i]) < 0 || bring_up(&x, &outs[i]) < 0)
			goto out;
	out_text(o, E2E_REC_TEXT, "outputs drawn n=%u", n);
	usleep(op->hold_ms * 1000);
	if (op->duration_ms && workload(&x, outs, n) < 0)
		goto out;

	if (op->resize_w) {
		struct output *r = &outs[0];

		r->w = op->resize_w;
		r->h = op->resize_h;
		out_text(o, E2E_REC_TEXT, "outputs resizing id=%u mode=%ux%u", r->id, r->w, r->h);
		if (enable(&x, r) < 0 || bring_up(&x, r) < 0)
			goto out;
		out_text(o, E2E_REC_TEXT, "outputs resized id=%u mode=%ux%u", r->id, r->w, r->h);
		usleep(op->hold_ms * 1000);
	}
	if (bad_requests(&x) < 0)
		goto out;

	for (unsigned i = 0; i < n; i++) {
		int r = scanout_request(&x, outs[i].id, 0, 0, 0, NULL);

		if (r <= 0) {
			if (r == 0)
				fail(&x, "outputs: DISABLE_SCANOUT %u refused", outs[i].id);
			goto out;
		}
		if (wait_connector(&x, outs[i].connector, 0, 0) < 0)
			goto out;
		out_text(o, E2E_REC_TEXT, "outputs disabled id=%u connector=%s", outs[i].id,
			 outs[i].connector);
	}
	say("outputs n=%u done", n);
	rc = 0;
out:
	for (unsigned i = 0; i < n; i++)
		for (unsigned b = 0; b < 2; b++)
			fb_free(&x, &outs[i].fb[b]);
	hfe_client_close(x.c);
	if (x.fd >= 0)
		close(x.fd);
	free(x.rgb);
	return rc;
}
