/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The demo guest's screen and round-trip report (scripts/demo.sh; started by
 * tests/e2e/guest/demo.sh inside the VM). Static, libc only.
 *
 *   hfe-demo RECORDS_FIFO
 *
 * Top of the screen (fbcon text on /dev/tty1): a title, a clock, the
 * subscriber's statistics and a scrolling region of text lines, one a second.
 * Bottom of the screen: a moving pattern written straight into /dev/fb0 at
 * 10 fps, below the text rows, so fbcon never draws over it.
 * RECORDS_FIFO is where `hfe-guest mode=subscribe out=…` writes the access
 * units it receives from the host (e2e_out.h records): each second the fps,
 * bytes and totals go to the screen and, as "HFE-DEMO: …", to stdout (the
 * serial console).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "../e2e_out.h"

#define FONT_H 16 /* fbcon's default VGA 8x16 font */
#define PATTERN_FPS 10

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void tty_printf(int fd, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 1)
		n = (int)sizeof(buf) - 1;
	if (fd >= 0 && n > 0 && write(fd, buf, (size_t)n) < 0)
		return;
}

/* Record stream parser: counts AU records, skips everything else. */
struct rx {
	uint8_t hdr[E2E_REC_HDR_SIZE];
	size_t have;       /* header bytes collected */
	uint64_t skip;     /* payload bytes still to skip */
	bool in_au;
	uint64_t aus, keys, bytes; /* totals */
};

static void rx_feed(struct rx *r, const uint8_t *p, size_t n)
{
	while (n) {
		if (r->skip) {
			size_t k = r->skip < n ? (size_t)r->skip : n;

			if (r->in_au)
				r->bytes += k;
			r->skip -= k;
			p += k;
			n -= k;
			continue;
		}
		size_t k = E2E_REC_HDR_SIZE - r->have;

		if (k > n)
			k = n;
		memcpy(r->hdr + r->have, p, k);
		r->have += k;
		p += k;
		n -= k;
		if (r->have < E2E_REC_HDR_SIZE)
			continue;
		struct e2e_rec_hdr h;

		r->have = 0;
		if (e2e_rec_hdr_read(r->hdr, &h) < 0)
			continue; /* out of step: cannot happen on a FIFO, resync anyway */
		r->in_au = h.kind == E2E_REC_AU;
		if (r->in_au) {
			r->aus++;
			r->keys += h.flags & E2E_REC_FLAG_KEYFRAME ? 1 : 0;
		}
		r->skip = h.len;
	}
}

/* Frame k of the pattern: colour bars sliding left, a white box bouncing. */
static void pattern(uint32_t *px, uint32_t w, uint32_t h, uint32_t k)
{
	static const uint32_t bars[8] = { 0xc0c0c0, 0xc0c000, 0x00c0c0, 0x00c000,
					  0xc000c0, 0xc00000, 0x0000c0, 0x101010 };
	uint32_t bw = w / 8 ? w / 8 : 1, box = h / 3;
	uint32_t bx = (k * 12) % (2 * (w - box)), by = (k * 7) % (2 * (h - box));

	if (bx >= w - box)
		bx = 2 * (w - box) - bx;
	if (by >= h - box)
		by = 2 * (h - box) - by;
	for (uint32_t y = 0; y < h; y++) {
		uint32_t *row = px + (size_t)y * w;
		uint32_t shade = y * 64 / h;

		for (uint32_t x = 0; x < w; x++) {
			uint32_t c = bars[((x + k * 8) / bw) % 8];

			row[x] = c + (shade << 16 | shade << 8 | shade) * (c != 0x101010);
		}
		if (y >= by && y < by + box)
			for (uint32_t x = bx; x < bx + box; x++)
				row[x] = 0xffffff;
	}
}

static const char *const lines[] = {
	"the guest draws into virtio-gpu; QEMU hands each update to the host over -display dbus",
	"helix-frame-export on the host encodes the damaged screen with libx264",
	"the access units come back to this guest over virtio-serial (hfe-guest subscribe)",
	"and go to hfe-viewer on the host, which serves them to a browser over a WebSocket",
	"the browser decodes them with WebCodecs and draws them on a canvas",
	"hfe-viewer also writes the same stream to demo-out/demo.mp4",
	"the quick brown fox jumps over the lazy dog 0123456789",
};

int main(int argc, char **argv)
{
	struct fb_var_screeninfo var;
	struct fb_fix_screeninfo fix;
	struct winsize ws = { 0 };
	struct rx rx = { 0 };
	uint64_t last_aus = 0, last_bytes = 0;
	uint32_t *band = NULL, k = 0, nline = 0;
	int fb, tty, in;
	int64_t t0, next_frame, next_sec;

	if (argc != 2) {
		fprintf(stderr, "usage: hfe-demo RECORDS_FIFO\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* O_RDWR: no EOF while the subscriber restarts. */
	in = open(argv[1], O_RDWR | O_NONBLOCK | O_CLOEXEC);
	tty = open("/dev/tty1", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	fb = open("/dev/fb0", O_RDWR | O_CLOEXEC);
	if (in < 0 || tty < 0 || fb < 0 || ioctl(fb, FBIOGET_VSCREENINFO, &var) < 0 ||
	    ioctl(fb, FBIOGET_FSCREENINFO, &fix) < 0 || var.bits_per_pixel != 32) {
		printf("HFE-DEMO: cannot open %s, /dev/tty1 or a 32 bpp /dev/fb0: %s\n", argv[1],
		       strerror(errno));
		return 1;
	}
	if (ioctl(tty, TIOCGWINSZ, &ws) < 0 || ws.ws_row < 12)
		ws.ws_row = (unsigned short)(var.yres / FONT_H);
	/* Text rows 1..text_rows; the pattern fills the pixels below them. */
	uint32_t text_rows = ws.ws_row / 2, w = var.xres;
	uint32_t y0 = (text_rows + 1) * FONT_H, h = var.yres - y0;

	band = malloc((size_t)w * h * 4);
	if (!band || var.yres <= y0 + 16 || fix.line_length != w * 4) {
		printf("HFE-DEMO: unexpected framebuffer %ux%u stride %u\n", var.xres, var.yres,
		       fix.line_length);
		return 1;
	}
	/* Clear, hide the cursor, scroll only rows 5..text_rows. */
	tty_printf(tty, "\033[0m\033[H\033[2J\033[?25l\033[5;%ur", text_rows);
	printf("HFE-DEMO: screen %ux%u, text rows 1-%u, pattern at y=%u..%u\n", var.xres,
	       var.yres, text_rows, y0, var.yres - 1);
	t0 = now_ns();
	next_frame = t0;
	next_sec = t0;
	for (;;) {
		int64_t now = now_ns(), wait = next_frame < next_sec ? next_frame : next_sec;
		struct pollfd p = { .fd = in, .events = POLLIN };
		uint8_t buf[65536];

		if (wait > now && poll(&p, 1, (int)((wait - now) / 1000000) + 1) > 0) {
			ssize_t n = read(in, buf, sizeof(buf));

			if (n > 0)
				rx_feed(&rx, buf, (size_t)n);
			else if (n == 0)
				usleep(20000); /* no writer yet (or it restarted) */
			continue;
		}
		now = now_ns();
		if (now >= next_frame) {
			pattern(band, w, h, k++);
			/* One write per frame: fbdev flushes the whole damaged band at once. */
			if (pwrite(fb, band, (size_t)w * h * 4, (off_t)y0 * fix.line_length) < 0)
				printf("HFE-DEMO: fb write: %s\n", strerror(errno));
			next_frame += 1000000000 / PATTERN_FPS;
			if (next_frame < now)
				next_frame = now;
		}
		if (now >= next_sec) {
			time_t t = time(NULL);
			struct tm tm;
			double up = (double)(now - t0) / 1e9;
			uint64_t fps = rx.aus - last_aus, bps = rx.bytes - last_bytes;

			gmtime_r(&t, &tm);
			tty_printf(tty, "\0337\033[1;1H\033[1;37;44m helix-frame-export demo: this screen "
				   "is encoded on the host \033[0m\033[K");
			tty_printf(tty, "\033[2;1H\033[1;33m %02d:%02d:%02d UTC\033[0m   running %.0f s,"
				   " pattern frame %u\033[K", tm.tm_hour, tm.tm_min, tm.tm_sec,
				   up, k);
			tty_printf(tty, "\033[3;1H\033[1;32m subscriber (H.264 back from the host): "
				   "%" PRIu64 " fps, %" PRIu64 " kB/s, %" PRIu64 " AUs, %" PRIu64
				   " keyframes, %" PRIu64 " kB\033[0m\033[K", fps, bps / 1000,
				   rx.aus, rx.keys, rx.bytes / 1000);
			tty_printf(tty, "\033[%u;1H\n %5.0f  %s\033[K", text_rows, up,
				   lines[nline++ % (sizeof(lines) / sizeof(lines[0]))]);
			printf("HFE-DEMO: subscriber fps=%" PRIu64 " bytes_per_s=%" PRIu64
			       " aus=%" PRIu64 " keyframes=%" PRIu64 " bytes=%" PRIu64 "\n", fps, bps,
			       rx.aus, rx.keys, rx.bytes);
			last_aus = rx.aus;
			last_bytes = rx.bytes;
			next_sec += 1000000000;
			if (next_sec < now)
				next_sec = now + 1000000000;
		}
	}
}
