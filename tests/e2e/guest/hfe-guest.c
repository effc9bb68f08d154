/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfe-guest: the program the end-to-end tests run inside a Linux guest
 * (static; started by the initramfs's /init; see docs/e2e.md).
 *
 * Modes (hfe.mode=, several joined with '+' run together):
 *   pull       send `frames` pattern frames as FRAME_REQUESTs (pipelined,
 *              `inflight` at once) and forward every access unit
 *   draw       draw the known schedule into /dev/fb0 (full changes, then
 *              small ones), then hold a static screen for `hold` ms
 *   subscribe  SUBSCRIBE to `scanout` and forward every access unit until
 *              `count` AUs, `duration` ms, or (with draw) the end of draw
 *   probe      print the result line at once (boot test, KVM probe)
 *   resource   frames named by their virtio-gpu resource id (mode_resource.c)
 *   gst        pull mode from the host's GStreamer in a chroot (mode_gst.c)
 *   outputs    hot-plug outputs and draw on each, as the deployed display
 *              manager does (mode_outputs.c)
 *   input      report what the virtio keyboard and tablet deliver
 *              (mode_input.c)
 *   cursor     set and move a hardware cursor on the card (mode_cursor.c)
 * Access units and events go to the out port as e2e_out.h records; the
 * console only gets short "HFE-GUEST: ..." lines. Parameters come from the
 * kernel command line (hfe.KEY=VALUE) or from argv (KEY=VALUE). This file is
 * the program: parameters, the mode table, the helpers every mode uses
 * (hfe-guest.h) and the modes pull, draw, subscribe and probe.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fb.h>
#include <linux/kd.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "hfe/client.h"
#include "hfe/log.h"
#include "hfe/wire.h"

#include "../e2e_out.h"
#include "../e2e_pattern.h"
#include "hfe-guest.h"

#define MODE_PULL 0x1u
#define MODE_DRAW 0x2u
#define MODE_SUBSCRIBE 0x4u
#define MODE_PROBE 0x8u
#define MODE_RESOURCE 0x10u
#define MODE_GST 0x20u
#define MODE_OUTPUTS 0x40u
#define MODE_INPUT 0x80u
#define MODE_CURSOR 0x100u

static const struct {
	const char *name;
	unsigned bit;
} mode_names[] = {
	{ "pull", MODE_PULL },
	{ "draw", MODE_DRAW },
	{ "subscribe", MODE_SUBSCRIBE },
	{ "probe", MODE_PROBE },
	{ "resource", MODE_RESOURCE },
	{ "gst", MODE_GST },
	{ "outputs", MODE_OUTPUTS },
	{ "input", MODE_INPUT },
	{ "cursor", MODE_CURSOR },
};

#define PREGEN_MAX (192u << 20) /* pull: pre-generate all frames up to this many bytes */

/* ---- small helpers ---- */

int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_until(int64_t t_ns)
{
	struct timespec ts = { .tv_sec = t_ns / 1000000000, .tv_nsec = t_ns % 1000000000 };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

double ms_of(int64_t ns)
{
	return ns / 1e6;
}

void say(const char *fmt, ...)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&lock);
	printf("HFE-GUEST: %s\n", line);
	fflush(stdout);
	pthread_mutex_unlock(&lock);
}

static double uptime_ms(void)
{
	double up = 0;
	FILE *f = fopen("/proc/uptime", "r");

	if (f) {
		if (fscanf(f, "%lf", &up) != 1)
			up = 0;
		fclose(f);
	}
	return up * 1000;
}

int xioctl(int fd, unsigned long req, void *arg)
{
	int r;

	do
		r = ioctl(fd, req, arg);
	while (r < 0 && (errno == EINTR || errno == EAGAIN));
	return r;
}

/* Polled: the guest has no udev (/init makes the port links). */
int wait_path(const char *path, int timeout_ms)
{
	int64_t end = now_ns() + (int64_t)timeout_ms * 1000000;
	struct stat st;

	while (stat(path, &st) < 0) {
		if (now_ns() > end)
			return -1;
		usleep(20000);
	}
	return 0;
}

/* ---- the out port ---- */

static int write_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* Written whole under the lock: records of several threads never interleave. */
int out_rec(struct out *o, uint16_t kind, uint16_t flags, int64_t value, const void *a,
	    size_t alen, const void *b, size_t blen)
{
	struct e2e_rec_hdr h = {
		.magic = E2E_REC_MAGIC, .kind = kind, .flags = flags,
		.len = (uint32_t)(alen + blen), .value = value, .t_ns = now_ns(),
	};
	uint8_t hb[E2E_REC_HDR_SIZE];
	struct iovec iov[3] = {
		{ hb, sizeof(hb) }, { (void *)a, alen }, { (void *)b, blen },
	};
	int r;

	pthread_mutex_lock(&o->lock);
	h.seq = o->seq[kind <= E2E_REC_END ? kind : 0]++;
	e2e_rec_hdr_write(&h, hb);
	r = o->failed ? -1 : write_all(o->fd, iov, 3);
	if (r < 0 && !o->failed) {
		o->failed = true;
		say("out port write failed: %s", strerror(errno));
	}
	o->bytes += sizeof(hb) + alen + blen;
	pthread_mutex_unlock(&o->lock);
	return r;
}

int out_text(struct out *o, uint16_t kind, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return out_rec(o, kind, 0, 0, text, strlen(text), NULL, 0);
}

/* After END the host answers one byte: then everything we wrote has left
 * QEMU, and powering off cannot lose it. */
static bool out_wait_ack(struct out *o, int timeout_ms)
{
	struct pollfd p = { .fd = o->fd, .events = POLLIN };
	char c;

	if (poll(&p, 1, timeout_ms) != 1)
		return false;
	return read(o->fd, &c, 1) == 1;
}

/* All the response's NAL units, in order, in one record. */
int forward_au(struct out *o, const struct hfe_msg *m, uint64_t *au_bytes)
{
	const uint8_t *nal, *first = NULL;
	size_t pos = 0, total = 0;
	uint32_t len;
	bool contiguous = true;

	/* Units sit back to back with a u32 size between them: send the
	 * common single-unit case without a copy. */
	while (hfe_nal_next(m, &pos, &nal, &len)) {
		if (!first)
			first = nal;
		else
			contiguous = false;
		total += len;
	}
	*au_bytes += total;
	if (contiguous)
		return out_rec(o, E2E_REC_AU, m->u.frame_resp.is_keyframe ? E2E_REC_FLAG_KEYFRAME : 0,
			       m->u.frame_resp.pts, first, total, NULL, 0);

	uint8_t *buf = malloc(total);
	int r;

	if (!buf)
		return -1;
	pos = 0;
	total = 0;
	while (hfe_nal_next(m, &pos, &nal, &len)) {
		memcpy(buf + total, nal, len);
		total += len;
	}
	r = out_rec(o, E2E_REC_AU, m->u.frame_resp.is_keyframe ? E2E_REC_FLAG_KEYFRAME : 0,
		    m->u.frame_resp.pts, buf, total, NULL, 0);
	free(buf);
	return r;
}

struct hfe_client *open_host(const struct opts *op, const char *who, char *why,
			     size_t whylen)
{
	char addr[300];
	struct hfe_err err = { 0 };
	struct hfe_client *c;

	/* A virtio-serial port (a path), or tcp:HOST:PORT as deployed guests reach
	 * their host through QEMU user networking (tcp:10.0.2.2:15937). */
	if (!strncmp(op->port, "tcp:", 4)) {
		snprintf(addr, sizeof(addr), "%s", op->port);
	} else if (wait_path(op->port, 10000) < 0) {
		snprintf(why, whylen, "%s: no %s", who, op->port);
		return NULL;
	} else {
		snprintf(addr, sizeof(addr), "serial:%s", op->port);
	}
	c = hfe_client_connect(addr, 10000, &err);
	if (!c) {
		snprintf(why, whylen, "%s: connect: %s", who, err.msg);
		return NULL;
	}
	if (op->hello) {
		struct hfe_hello_resp caps;

		if (hfe_client_hello(c, "hfe-guest", &caps, IO_TIMEOUT_MS, &err) < 0) {
			snprintf(why, whylen, "%s: hello: %s", who, err.msg);
			hfe_client_close(c);
			return NULL;
		}
	}
	return c;
}

/* ---- pull ---- */

static void make_frame(const struct opts *op, uint8_t *rgb, uint32_t i, uint8_t *dst,
		       uint32_t stride)
{
	e2e_pattern_rgb(rgb, op->w, op->h, i);
	if (op->format == E2E_FMT_NV12)
		e2e_rgb_to_nv12(rgb, op->w, op->h, dst, stride);
	else
		e2e_rgb_to_xr24(rgb, op->w, op->h, dst, stride);
}

static int run_pull(const struct opts *op, struct out *o, char *why, size_t whylen)
{
	const int64_t dur = 1000000000 / 30;
	uint32_t stride = e2e_min_stride(op->format, op->w);
	size_t fsize = e2e_frame_size(op->format, op->h, stride);
	bool pregen = (uint64_t)fsize * op->frames <= PREGEN_MAX;
	uint8_t *rgb = malloc((size_t)op->w * op->h * 3);
	uint8_t *frames = malloc(pregen ? fsize * op->frames : fsize);
	uint64_t bytes_up = 0, au_bytes = 0;
	uint32_t sent = 0, got = 0, keys = 0;
	int64_t t_gen = 0, t_send = 0, t0, t_end;
	struct hfe_client *c = NULL;
	struct hfe_err err = { 0 };
	int rc = -1;

	if (!rgb || !frames) {
		snprintf(why, whylen, "pull: out of memory");
		goto out;
	}
	if (pregen) {
		int64_t g0 = now_ns();

		for (uint32_t i = 0; i < op->frames; i++)
			make_frame(op, rgb, i, frames + (size_t)i * fsize, stride);
		t_gen = now_ns() - g0;
	}
	c = open_host(op, "pull", why, whylen);
	if (!c)
		goto out;
	if (op->bitrate) {
		struct hfe_config_req cfg = {
			.width = op->w, .height = op->h, .bitrate = op->bitrate,
			.fps_num = 30, .fps_den = 1, .realtime = 1,
		};

		if (hfe_client_send_config(c, 1, &cfg, IO_TIMEOUT_MS, &err) < 0) {
			snprintf(why, whylen, "pull: config: %s", err.msg);
			goto out;
		}
	}

	t0 = now_ns();
	while (got < op->frames) {
		if (sent < op->frames && sent - got < op->inflight) {
			uint8_t *f = pregen ? frames + (size_t)sent * fsize : frames;
			struct hfe_frame_request fr = {
				.width = op->w, .height = op->h, .format = op->format,
				.stride = stride, .pts = sent * dur, .duration = dur,
			};
			int64_t s0;

			if (!pregen) {
				s0 = now_ns();
				make_frame(op, rgb, sent, f, stride);
				t_gen += now_ns() - s0;
			}
			s0 = now_ns();
			if (hfe_client_send_frame(c, 1, &fr, f, fsize, IO_TIMEOUT_MS, &err) < 0) {
				snprintf(why, whylen, "pull: send frame %u: %s", sent, err.msg);
				goto out;
			}
			t_send += now_ns() - s0;
			bytes_up += HFE_HEADER_SIZE + HFE_FRAME_REQUEST_SIZE + fsize;
			sent++;
			continue;
		}

		struct hfe_msg m;
		int r = hfe_client_recv(c, &m, IO_TIMEOUT_MS, &err);

		if (r <= 0) {
			snprintf(why, whylen, "pull: waiting for frame %u: %s", got,
				 r == 0 ? "timeout" : err.msg);
			goto out;
		}
		if (m.hdr.type == HFE_MSG_ERROR) {
			snprintf(why, whylen, "pull: host error %s: %s",
				 hfe_error_name(m.u.error.code), m.u.error.message);
			goto out;
		}
		if (m.hdr.type != HFE_MSG_FRAME_RESPONSE)
			continue;
		if (forward_au(o, &m, &au_bytes) < 0) {
			snprintf(why, whylen, "pull: out port write failed");
			goto out;
		}
		keys += m.u.frame_resp.is_keyframe ? 1 : 0;
		got++;
	}
	t_end = now_ns();

	double el = ms_of(t_end - t0), snd = ms_of(t_send);
	double wire = snd > 0 ? bytes_up / (1 << 20) / (snd / 1000) : 0;
	double all = el > 0 ? bytes_up / (1 << 20) / (el / 1000) : 0;

	say("pull frames=%u format=%s size=%ux%u bytes_up=%" PRIu64 " au_bytes=%" PRIu64
	    " keyframes=%u elapsed_ms=%.1f send_ms=%.1f gen_ms=%.1f send_MiBps=%.1f"
	    " overall_MiBps=%.1f fps=%.1f",
	    got, e2e_format_name(op->format), op->w, op->h, bytes_up, au_bytes, keys, el, snd,
	    ms_of(t_gen), wire, all, el > 0 ? got / (el / 1000) : 0);
	out_text(o, E2E_REC_TEXT,
		 "pull frames=%u bytes_up=%" PRIu64 " elapsed_ms=%.1f send_ms=%.1f gen_ms=%.1f",
		 got, bytes_up, el, snd, ms_of(t_gen));
	rc = 0;
out:
	hfe_client_close(c);
	free(rgb);
	free(frames);
	return rc;
}

/* ---- draw ---- */

struct draw_ctx {
	const struct opts *op;
	struct out *o;
	int rc;
	char why[256];
	pthread_t thread;
	bool started;
};

/*
 * write(2) path: whole rows y0..y0+rows in one call, so that each frame is one
 * damage rectangle and one flush. (Linux 6.1's fbdev emulation also computes
 * an empty damage rectangle for a write of exactly one full scanline, so
 * row-by-row writes would never reach the screen.)
 */
static int write_rows(int fd, const uint8_t *shadow, uint32_t stride, uint32_t y0, uint32_t rows)
{
	size_t off = (size_t)y0 * stride, left = (size_t)rows * stride;

	while (left) {
		ssize_t w = pwrite(fd, shadow + off, left, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		off += (size_t)w;
		left -= (size_t)w;
	}
	return 0;
}

static int run_draw(const struct opts *op, struct out *o, char *why, size_t whylen)
{
	struct fb_var_screeninfo var;
	struct fb_fix_screeninfo fix;
	uint8_t *rgb = NULL, *shadow = NULL, *map = MAP_FAILED;
	int fd = -1, tty = -1, rc = -1;
	int64_t late_max = 0;

	if (wait_path("/dev/fb0", 10000) < 0) {
		snprintf(why, whylen, "draw: no /dev/fb0");
		return -1;
	}
	fd = open("/dev/fb0", O_RDWR | O_CLOEXEC);
	if (fd < 0 || ioctl(fd, FBIOGET_VSCREENINFO, &var) < 0 ||
	    ioctl(fd, FBIOGET_FSCREENINFO, &fix) < 0) {
		snprintf(why, whylen, "draw: /dev/fb0: %s", strerror(errno));
		goto out;
	}
	if (var.bits_per_pixel != 32 || var.red.offset != 16 || var.blue.offset != 0) {
		snprintf(why, whylen, "draw: framebuffer is %u bpp r@%u b@%u, want XRGB8888",
			 var.bits_per_pixel, var.red.offset, var.blue.offset);
		goto out;
	}

	uint32_t w = var.xres, h = var.yres, stride = fix.line_length;
	size_t fbsize = (size_t)stride * h;

	/* Keep fbcon (cursor, kernel messages) off the screen we measure. */
	tty = open("/dev/tty0", O_RDWR | O_CLOEXEC);
	if (tty >= 0 && ioctl(tty, KDSETMODE, KD_GRAPHICS) < 0)
		say("draw: KDSETMODE failed: %s", strerror(errno));
	if (!op->fb_write) {
		map = mmap(NULL, fbsize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED) {
			snprintf(why, whylen, "draw: mmap /dev/fb0: %s", strerror(errno));
			goto out;
		}
	}
	rgb = malloc((size_t)w * h * 3);
	shadow = calloc(1, fbsize);
	if (!rgb || !shadow) {
		snprintf(why, whylen, "draw: out of memory");
		goto out;
	}
	say("draw start fb=%ux%u stride=%u full=%u small=%u fps=%u hold_ms=%u io=%s", w, h, stride,
	    op->frames, op->small, op->fps, op->hold_ms, op->fb_write ? "write" : "mmap");

	uint32_t total = op->frames + op->small;
	int64_t period = 1000000000 / (op->fps ? op->fps : 10), t0 = now_ns() + period;

	for (uint32_t k = 0; k < total; k++) {
		uint32_t y0 = 0, rows = h, x0 = 0, cols = w;

		/* Render ahead of the deadline, then copy only what changes. */
		e2e_draw_rgb(rgb, w, h, k, op->frames);
		e2e_rgb_to_xr24(rgb, w, h, shadow, stride);
		if (k >= op->frames && k > 0) {
			e2e_small_box_pos(w, h, k - op->frames, &x0, &y0);
			cols = E2E_SMALL_BOX < w ? E2E_SMALL_BOX : w;
			rows = E2E_SMALL_BOX < h ? E2E_SMALL_BOX : h;
			/* From the second small frame on, the previous box is erased
			 * too: copy the union of both areas. */
			if (k > op->frames) {
				uint32_t px, py, xb, yb;

				e2e_small_box_pos(w, h, k - op->frames - 1, &px, &py);
				xb = (px > x0 ? px : x0) + cols;
				yb = (py > y0 ? py : y0) + rows;
				x0 = px < x0 ? px : x0;
				y0 = py < y0 ? py : y0;
				cols = xb - x0;
				rows = yb - y0;
			}
		}
		int64_t due = t0 + (int64_t)k * period, late;

		sleep_until(due);
		late = now_ns() - due;
		if (late > late_max)
			late_max = late;
		if (map != MAP_FAILED) {
			for (uint32_t y = y0; y < y0 + rows; y++) {
				size_t off = (size_t)y * stride + (size_t)x0 * 4;

				memcpy(map + off, shadow + off, (size_t)cols * 4);
			}
		} else if (write_rows(fd, shadow, stride, y0, rows) < 0) {
			snprintf(why, whylen, "draw: write /dev/fb0: %s", strerror(errno));
			goto out;
		}
		out_rec(o, E2E_REC_DRAW, 0, k, NULL, 0, NULL, 0);
	}
	say("draw done frames=%u late_max_ms=%.1f", total, ms_of(late_max));
	out_text(o, E2E_REC_TEXT, "draw done frames=%u fb=%ux%u late_max_ms=%.1f", total, w, h,
		 ms_of(late_max));
	usleep(op->hold_ms * 1000);
	say("draw hold done");
	rc = 0;
out:
	if (tty >= 0) {
		ioctl(tty, KDSETMODE, KD_TEXT);
		close(tty);
	}
	if (map != MAP_FAILED)
		munmap(map, fbsize);
	if (fd >= 0)
		close(fd);
	free(rgb);
	free(shadow);
	return rc;
}

static void *draw_thread(void *arg)
{
	struct draw_ctx *d = arg;

	d->rc = run_draw(d->op, d->o, d->why, sizeof(d->why));
	return NULL;
}

/* ---- subscribe ---- */

static int run_subscribe(const struct opts *op, struct out *o, struct draw_ctx *draw, char *why,
			 size_t whylen)
{
	struct hfe_client *c = open_host(op, "subscribe", why, whylen);
	struct hfe_msg m = { .hdr = { .type = HFE_MSG_SUBSCRIBE, .session_id = (uint16_t)op->scanout } };
	struct hfe_err err = { 0 };
	uint64_t au_bytes = 0;
	uint32_t aus = 0, keys = 0;
	int64_t t0, end, first = 0;
	int rc = -1, r;

	if (!c)
		return -1;
	m.u.scanout_id = op->scanout;
	if (hfe_client_send_msg(c, &m, IO_TIMEOUT_MS, &err) < 0) {
		snprintf(why, whylen, "subscribe: send: %s", err.msg);
		goto out;
	}
	for (;;) {
		r = hfe_client_recv(c, &m, IO_TIMEOUT_MS, &err);
		if (r <= 0) {
			snprintf(why, whylen, "subscribe: no SUBSCRIBE_RESP: %s",
				 r == 0 ? "timeout" : err.msg);
			goto out;
		}
		if (m.hdr.type == HFE_MSG_ERROR) {
			snprintf(why, whylen, "subscribe: host error %s: %s",
				 hfe_error_name(m.u.error.code), m.u.error.message);
			goto out;
		}
		if (m.hdr.type == HFE_MSG_SUBSCRIBE_RESP)
			break;
	}
	if (!m.u.subscribe_resp.success) {
		snprintf(why, whylen, "subscribe: scanout %u refused", op->scanout);
		goto out;
	}
	t0 = now_ns();
	say("subscribed scanout=%u", op->scanout);
	out_text(o, E2E_REC_TEXT, "subscribed scanout=%u", op->scanout);

	/* Start drawing only now, so that the first drawn frame is seen. */
	if (draw) {
		if (pthread_create(&draw->thread, NULL, draw_thread, draw) != 0) {
			snprintf(why, whylen, "subscribe: cannot start the draw thread");
			goto out;
		}
		draw->started = true;
	}
	end = op->duration_ms ? t0 + (int64_t)op->duration_ms * 1000000 : INT64_MAX;
	if (!draw && !op->duration_ms && !op->count)
		end = t0 + 10000 * (int64_t)1000000;

	for (;;) {
		int64_t now = now_ns(), left = end - now;

		if ((op->count && aus >= op->count) || left <= 0)
			break;
		/* With draw: stop once the draw thread (and its hold) is over. */
		if (draw && pthread_tryjoin_np(draw->thread, NULL) == 0) {
			draw->started = false;
			break;
		}
		r = hfe_client_recv(c, &m, left < 100000000 ? (int)(left / 1000000) + 1 : 100, &err);
		if (r < 0) {
			snprintf(why, whylen, "subscribe: %s", err.msg);
			goto out;
		}
		if (r == 0)
			continue;
		if (m.hdr.type == HFE_MSG_ERROR) {
			snprintf(why, whylen, "subscribe: host error %s: %s",
				 hfe_error_name(m.u.error.code), m.u.error.message);
			goto out;
		}
		if (m.hdr.type != HFE_MSG_FRAME_RESPONSE)
			continue;
		if (!aus)
			first = now_ns() - t0;
		if (forward_au(o, &m, &au_bytes) < 0) {
			snprintf(why, whylen, "subscribe: out port write failed");
			goto out;
		}
		keys += m.u.frame_resp.is_keyframe ? 1 : 0;
		aus++;
	}
	say("subscribe scanout=%u aus=%u keyframes=%u au_bytes=%" PRIu64
	    " first_au_ms=%.1f elapsed_ms=%.1f",
	    op->scanout, aus, keys, au_bytes, ms_of(first), ms_of(now_ns() - t0));
	out_text(o, E2E_REC_TEXT, "subscribe aus=%u keyframes=%u au_bytes=%" PRIu64, aus, keys,
		 au_bytes);
	rc = 0;
out:
	hfe_client_close(c);
	return rc;
}

/* ---- parameters ---- */

static unsigned mode_bit(const char *name)
{
	for (size_t i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++)
		if (!strcmp(name, mode_names[i].name))
			return mode_names[i].bit;
	return 0;
}

/* The gst mode's text parameters: where each one goes. */
static char *gst_param(struct opts *op, const char *key, size_t *size)
{
	static const struct {
		const char *key;
		size_t off, size;
	} params[] = {
		{ "gst_plugin", offsetof(struct opts, gst_plugin), sizeof(op->gst_plugin) },
		{ "gst_libpath", offsetof(struct opts, gst_libpath), sizeof(op->gst_libpath) },
		{ "gst_preload", offsetof(struct opts, gst_preload), sizeof(op->gst_preload) },
		{ "gst_pattern", offsetof(struct opts, gst_pattern), sizeof(op->gst_pattern) },
		{ "gst_encoder", offsetof(struct opts, gst_encoder), sizeof(op->gst_encoder) },
	};

	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++)
		if (!strcmp(key, params[i].key)) {
			*size = params[i].size;
			return (char *)op + params[i].off;
		}
	return NULL;
}

static int set_opt(struct opts *op, const char *key, const char *val, char *why, size_t whylen)
{
	char *end, *text;
	unsigned long v = strtoul(val, &end, 10);
	bool num = *val && !*end;
	size_t size;

	if (!strcmp(key, "mode")) {
		char buf[64], *save = NULL;

		snprintf(buf, sizeof(buf), "%s", val);
		op->modes = 0;
		for (char *t = strtok_r(buf, "+", &save); t; t = strtok_r(NULL, "+", &save)) {
			unsigned bit = mode_bit(t);

			if (!bit)
				goto bad;
			op->modes |= bit;
		}
		return 0;
	}
	/* /init's parameters (tests/e2e/guest/init), not ours. */
	if (!strcmp(key, "extra") || !strcmp(key, "shell") || !strcmp(key, "net"))
		return 0;
	text = gst_param(op, key, &size);
	if (text) {
		/* They end up in a shell command line: no quotes. */
		if (strlen(val) >= size || strpbrk(val, "'\"") ||
		    (!strcmp(key, "gst_encoder") && strcmp(val, "vsockenc") &&
		     strcmp(val, "x264enc")))
			goto bad;
		snprintf(text, size, "%s", val);
		return 0;
	}
	if (!strcmp(key, "size") || !strcmp(key, "resize")) {
		unsigned w, h;
		char tail;

		if (sscanf(val, "%ux%u%c", &w, &h, &tail) != 2 || w < 16 || h < 16 || w > 8192 ||
		    h > 8192 || (w | h) & 1)
			goto bad;
		*(key[0] == 's' ? &op->w : &op->resize_w) = w;
		*(key[0] == 's' ? &op->h : &op->resize_h) = h;
		return 0;
	}
	if (!strcmp(key, "sizes")) { /* WxH,WxH,... checked by mode_outputs.c */
		if (strlen(val) >= sizeof(op->sizes) || strspn(val, "0123456789x,") != strlen(val))
			goto bad;
		snprintf(op->sizes, sizeof(op->sizes), "%s", val);
		return 0;
	}
	if (!strcmp(key, "format")) {
		op->format = e2e_format_parse(val);
		if (!op->format)
			goto bad;
		return 0;
	}
	if (!strcmp(key, "port") || !strcmp(key, "out")) {
		char *dst = key[0] == 'p' ? op->port : op->out;

		if (strlen(val) >= sizeof(op->port) ||
		    (val[0] != '/' && (key[0] != 'p' || strncmp(val, "tcp:", 4))))
			goto bad;
		snprintf(dst, sizeof(op->port), "%s", val);
		return 0;
	}
	if (!strcmp(key, "fbio")) {
		if (strcmp(val, "mmap") && strcmp(val, "write"))
			goto bad;
		op->fb_write = !strcmp(val, "write");
		return 0;
	}
	if (!num || v > 100000000)
		goto bad;
	if (!strcmp(key, "frames"))
		op->frames = (uint32_t)v;
	else if (!strcmp(key, "inflight") && v >= 1 && v <= 64)
		op->inflight = (uint32_t)v;
	else if (!strcmp(key, "scanout") && v < 16)
		op->scanout = (uint32_t)v;
	else if (!strcmp(key, "count"))
		op->count = (uint32_t)v;
	else if (!strcmp(key, "duration"))
		op->duration_ms = (uint32_t)v;
	else if (!strcmp(key, "fps") && v >= 1 && v <= 240)
		op->fps = (uint32_t)v;
	else if (!strcmp(key, "small"))
		op->small = (uint32_t)v;
	else if (!strcmp(key, "hold"))
		op->hold_ms = (uint32_t)v;
	else if (!strcmp(key, "hello") && v <= 1)
		op->hello = v;
	else if (!strcmp(key, "echo") && v <= 1)
		op->echo = v;
	else if (!strcmp(key, "bitrate"))
		op->bitrate = (uint32_t)v;
	else if (!strcmp(key, "outputs") && v <= 16)
		op->outputs = (uint32_t)v;
	else if (!strcmp(key, "first") && v < 16)
		op->first_output = (uint32_t)v;
	else
		goto bad;
	return 0;
bad:
	snprintf(why, whylen, "bad parameter %s=%s", key, val);
	return -1;
}

/* "key=value" or, from the kernel command line, "hfe.key=value". */
static int parse_token(struct opts *op, char *tok, bool cmdline, char *why, size_t whylen)
{
	char *eq;

	if (cmdline) {
		if (strncmp(tok, "hfe.", 4))
			return 0;
		tok += 4;
	}
	eq = strchr(tok, '=');
	if (!eq) {
		snprintf(why, whylen, "bad parameter %s (want KEY=VALUE)", tok);
		return -1;
	}
	*eq = '\0';
	return set_opt(op, tok, eq + 1, why, whylen);
}

static int parse_cmdline(struct opts *op, char *why, size_t whylen)
{
	char buf[4096], *save = NULL;
	FILE *f = fopen("/proc/cmdline", "r");
	size_t n;

	if (!f) {
		snprintf(why, whylen, "cannot read /proc/cmdline: %s", strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	for (char *t = strtok_r(buf, " \t\n", &save); t; t = strtok_r(NULL, " \t\n", &save))
		if (parse_token(op, t, true, why, whylen) < 0)
			return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct opts op = {
		.modes = 0, .frames = 60, .w = 320, .h = 240, .format = E2E_FMT_XR24,
		.inflight = 4, .fps = 10, .hold_ms = 3000, .hello = true,
		.port = "/dev/virtio-ports/org.helix.hfe.0",
		.out = "/dev/virtio-ports/org.helix.out.0",
		.gst_pattern = "smpte", .gst_encoder = "vsockenc",
		.sizes = "1280x720,1024x768,800x600,640x480", .first_output = 1,
	};
	struct out o = { .fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER };
	struct draw_ctx draw = { .op = &op, .o = &o };
	char why[300] = "";
	int rc = -1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	hfe_log_set_level(HFE_LOG_WARN);
	say("start uptime_ms=%.0f", uptime_ms());

	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			if (parse_token(&op, argv[i], false, why, sizeof(why)) < 0)
				goto done;
	} else if (parse_cmdline(&op, why, sizeof(why)) < 0) {
		goto done;
	}
	if (!op.modes) {
		snprintf(why, sizeof(why),
			 "no mode (hfe.mode=pull|draw|subscribe|probe|resource|gst|outputs|input|cursor)");
		goto done;
	}
	if (op.modes == MODE_PROBE) {
		rc = 0;
		goto done;
	}
	if (wait_path(op.out, 10000) < 0 || (o.fd = open(op.out, O_RDWR | O_CLOEXEC)) < 0) {
		snprintf(why, sizeof(why), "cannot open the out port %s: %s", op.out,
			 strerror(errno));
		goto done;
	}
	out_text(&o, E2E_REC_TEXT, "start uptime_ms=%.0f", uptime_ms());

	rc = 0;
	if (op.modes & MODE_PULL)
		rc = run_pull(&op, &o, why, sizeof(why));
	if (rc == 0 && (op.modes & MODE_SUBSCRIBE)) {
		rc = run_subscribe(&op, &o, op.modes & MODE_DRAW ? &draw : NULL, why, sizeof(why));
		if (draw.started) {
			pthread_join(draw.thread, NULL);
			draw.started = false;
		}
		if (rc == 0 && (op.modes & MODE_DRAW) && draw.rc < 0) {
			snprintf(why, sizeof(why), "%s", draw.why);
			rc = -1;
		}
	} else if (rc == 0 && (op.modes & MODE_DRAW)) {
		rc = run_draw(&op, &o, why, sizeof(why));
	}
	if (rc == 0 && (op.modes & MODE_RESOURCE))
		rc = run_resource(&op, &o, why, sizeof(why));
	if (rc == 0 && (op.modes & MODE_GST))
		rc = run_gst(&op, &o, why, sizeof(why));
	if (rc == 0 && (op.modes & MODE_OUTPUTS))
		rc = run_outputs(&op, &o, why, sizeof(why));
	if (rc == 0 && (op.modes & MODE_INPUT))
		rc = run_input(&op, &o, why, sizeof(why));
	if (rc == 0 && (op.modes & MODE_CURSOR))
		rc = run_cursor(&op, &o, why, sizeof(why));
	if (o.failed && rc == 0) {
		snprintf(why, sizeof(why), "out port write failed");
		rc = -1;
	}
done:
	if (o.fd >= 0) {
		out_text(&o, E2E_REC_END, "result=%s%s%s out_bytes=%" PRIu64, rc ? "fail" : "ok",
			 rc ? " reason=" : "", why, o.bytes);
		if (!out_wait_ack(&o, 10000))
			say("no ack from the host on the out port");
		close(o.fd);
	}
	if (rc)
		say("result=fail reason=%s", why);
	else
		say("result=ok");
	return rc ? 1 : 0;
}
