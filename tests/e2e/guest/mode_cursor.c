/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfe-guest mode `cursor`: a hardware cursor on the virtio-gpu card, as a
 * compositor sets one (test_e2e_cursor). The e2e cursor image (e2e_pattern.h)
 * goes into a 64x64 dumb buffer, DRM_IOCTL_MODE_CURSOR2 puts it on the first
 * active CRTC with its hot spot, then DRM_IOCTL_MODE_CURSOR moves it to each
 * position of e2e_cursor_at, `hold` ms each, and last hides it. Each step is a
 * console line ("cursor at X Y", "cursor hidden") the host test waits for.
 * The program opens the card first, so it is the DRM master (fbcon is not).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <libdrm/drm.h>
#include <libdrm/drm_mode.h>

#include "../e2e_pattern.h"
#include "hfe-guest.h"

/* The first CRTC with a mode set (fbcon's). */
static uint32_t active_crtc(int fd)
{
	uint32_t ids[8];
	struct drm_mode_card_res res = { 0 };

	if (xioctl(fd, DRM_IOCTL_MODE_GETRESOURCES, &res) < 0)
		return 0;
	if (res.count_crtcs > 8)
		res.count_crtcs = 8;
	res.crtc_id_ptr = (uint64_t)(uintptr_t)ids;
	res.count_fbs = res.count_connectors = res.count_encoders = 0;
	if (xioctl(fd, DRM_IOCTL_MODE_GETRESOURCES, &res) < 0)
		return 0;
	for (uint32_t i = 0; i < res.count_crtcs; i++) {
		struct drm_mode_crtc c = { .crtc_id = ids[i] };
		if (xioctl(fd, DRM_IOCTL_MODE_GETCRTC, &c) == 0 && c.mode_valid)
			return ids[i];
	}
	return 0;
}

static void sleep_ms(uint32_t ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int run_cursor(const struct opts *op, struct out *o, char *why, size_t whylen)
{
	(void)o;
	if (wait_path("/dev/dri/card0", 10000) < 0) {
		snprintf(why, whylen, "cursor: no /dev/dri/card0");
		return -1;
	}
	int fd = open("/dev/dri/card0", O_RDWR | O_CLOEXEC);
	uint32_t crtc = fd >= 0 ? active_crtc(fd) : 0;
	if (!crtc) {
		snprintf(why, whylen, "cursor: no active CRTC (%s)", strerror(errno));
		return -1;
	}
	struct drm_mode_create_dumb cd = { .width = E2E_CURSOR_SIZE, .height = E2E_CURSOR_SIZE,
					   .bpp = 32 };
	struct drm_mode_map_dumb md = { 0 };
	if (xioctl(fd, DRM_IOCTL_MODE_CREATE_DUMB, &cd) < 0 ||
	    (md.handle = cd.handle, xioctl(fd, DRM_IOCTL_MODE_MAP_DUMB, &md) < 0)) {
		snprintf(why, whylen, "cursor: dumb buffer: %s", strerror(errno));
		return -1;
	}
	uint8_t *map = mmap(NULL, cd.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)md.offset);
	if (map == MAP_FAILED) {
		snprintf(why, whylen, "cursor: mmap: %s", strerror(errno));
		return -1;
	}
	for (uint32_t y = 0; y < E2E_CURSOR_SIZE; y++)
		for (uint32_t x = 0; x < E2E_CURSOR_SIZE; x++)
			e2e_cursor_px(x, y, map + (size_t)y * cd.pitch + (size_t)x * 4);

	for (uint32_t i = 0; i < E2E_CURSOR_MOVES; i++) {
		uint32_t x, y;
		e2e_cursor_at(i, &x, &y);
		struct drm_mode_cursor2 c = { .flags = DRM_MODE_CURSOR_MOVE, .crtc_id = crtc,
					      .x = (int32_t)x, .y = (int32_t)y };
		unsigned long req = DRM_IOCTL_MODE_CURSOR;
		if (i == 0) { /* the image, its hot spot and the first position at once */
			c.flags |= DRM_MODE_CURSOR_BO;
			c.width = c.height = E2E_CURSOR_SIZE;
			c.handle = cd.handle;
			c.hot_x = E2E_CURSOR_HOT_X;
			c.hot_y = E2E_CURSOR_HOT_Y;
			req = DRM_IOCTL_MODE_CURSOR2;
		}
		if (xioctl(fd, req, &c) < 0) {
			snprintf(why, whylen, "cursor: DRM_IOCTL_MODE_CURSOR%s at %u,%u: %s",
				 i ? "" : "2", x, y, strerror(errno));
			return -1;
		}
		say("cursor at %u %u", x, y);
		sleep_ms(op->hold_ms);
	}
	struct drm_mode_cursor hide = { .flags = DRM_MODE_CURSOR_BO, .crtc_id = crtc };
	if (xioctl(fd, DRM_IOCTL_MODE_CURSOR, &hide) < 0) {
		snprintf(why, whylen, "cursor: hiding: %s", strerror(errno));
		return -1;
	}
	say("cursor hidden");
	sleep_ms(op->hold_ms);
	munmap(map, cd.size);
	close(fd);
	return 0;
}
