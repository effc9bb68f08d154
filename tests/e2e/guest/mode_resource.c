/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfe-guest mode `resource`: zero-copy frames named by their virtio-gpu
 * resource id (the QEMU module's resource mode, test_e2e_qemu_resource).
 *
 * Create a DRM dumb buffer of `size` on virtio-gpu (/dev/dri/card0), learn
 * its virtio-gpu resource id (DRM_IOCTL_VIRTGPU_RESOURCE_INFO: res_handle; a
 * GEM handle is not a resource id), then for each of `frames` pattern frames:
 * draw it into the mapped buffer, copy it to the host's resource
 * (DRM_IOCTL_VIRTGPU_TRANSFER_TO_HOST) and send a FRAME_REQUEST naming the
 * resource, without pixels; forward every FRAME_RESPONSE as an AU record.
 * Then an unknown id must get RESOURCE_NOT_FOUND and a wrong size
 * INVALID_MSG, and the connection must still answer a PING.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hfe/client.h"
#include "hfe/wire.h"

#include "../e2e_out.h"
#include "../e2e_pattern.h"
#include "hfe-guest.h"

/* The few DRM/virtgpu ioctls used (Linux uapi, drm/drm_mode.h and
 * drm/virtgpu_drm.h; declared here so that no libdrm headers are needed). */
struct hg_create_dumb {
	uint32_t height, width, bpp, flags;
	uint32_t handle, pitch; /* out */
	uint64_t size;          /* out */
};
struct hg_map_dumb {
	uint32_t handle, pad;
	uint64_t offset; /* out */
};
struct hg_resource_info {
	uint32_t bo_handle;
	uint32_t res_handle; /* out */
	uint32_t size;       /* out */
	uint32_t blob_mem;   /* out */
};
struct hg_box {
	uint32_t x, y, z, w, h, d;
};
struct hg_transfer {
	uint32_t bo_handle;
	struct hg_box box;
	uint32_t level, offset, stride, layer_stride;
};
struct hg_wait {
	uint32_t handle, flags;
};

#define HG_DRM_BASE 'd'
#define HG_DRM_CMD 0x40
#define HG_IOCTL_CREATE_DUMB _IOWR(HG_DRM_BASE, 0xB2, struct hg_create_dumb)
#define HG_IOCTL_MAP_DUMB _IOWR(HG_DRM_BASE, 0xB3, struct hg_map_dumb)
#define HG_IOCTL_RESOURCE_INFO _IOWR(HG_DRM_BASE, HG_DRM_CMD + 0x05, struct hg_resource_info)
#define HG_IOCTL_TRANSFER_TO_HOST _IOWR(HG_DRM_BASE, HG_DRM_CMD + 0x07, struct hg_transfer)
#define HG_IOCTL_WAIT _IOWR(HG_DRM_BASE, HG_DRM_CMD + 0x08, struct hg_wait)

/* Send one FRAME_REQUEST without pixels and wait for its reply (a
 * FRAME_RESPONSE or an ERROR; anything else is skipped). */
static int request_resource(struct hfe_client *c, const struct hfe_frame_request *fr,
			    struct hfe_msg *m, char *why, size_t whylen)
{
	struct hfe_err err = { 0 };
	int r;

	if (hfe_client_send_frame(c, 1, fr, NULL, 0, IO_TIMEOUT_MS, &err) < 0) {
		snprintf(why, whylen, "resource: send: %s", err.msg);
		return -1;
	}
	for (;;) {
		r = hfe_client_recv(c, m, IO_TIMEOUT_MS, &err);
		if (r <= 0) {
			snprintf(why, whylen, "resource: no reply: %s",
				 r == 0 ? "timeout" : err.msg);
			return -1;
		}
		if (m->hdr.type == HFE_MSG_FRAME_RESPONSE || m->hdr.type == HFE_MSG_ERROR)
			return 0;
	}
}

int run_resource(const struct opts *op, struct out *o, char *why, size_t whylen)
{
	const int64_t dur = 1000000000 / 30;
	struct hg_create_dumb cd = { .width = op->w, .height = op->h, .bpp = 32 };
	struct hg_resource_info ri = { 0 };
	struct hg_map_dumb md = { 0 };
	struct hfe_client *c = NULL;
	struct hfe_msg m;
	struct hfe_err err = { 0 };
	uint8_t *rgb = malloc((size_t)op->w * op->h * 3), *map = MAP_FAILED;
	uint64_t au_bytes = 0;
	int64_t t0, t_xfer = 0;
	int fd = -1, rc = -1;
	uint32_t got = 0;

	if (!rgb) {
		snprintf(why, whylen, "resource: out of memory");
		goto out;
	}
	if (wait_path("/dev/dri/card0", 10000) < 0) {
		snprintf(why, whylen, "resource: no /dev/dri/card0");
		goto out;
	}
	fd = open("/dev/dri/card0", O_RDWR | O_CLOEXEC);
	if (fd < 0 || xioctl(fd, HG_IOCTL_CREATE_DUMB, &cd) < 0) {
		snprintf(why, whylen, "resource: dumb buffer %ux%u: %s", op->w, op->h,
			 strerror(errno));
		goto out;
	}
	ri.bo_handle = cd.handle;
	md.handle = cd.handle;
	if (xioctl(fd, HG_IOCTL_RESOURCE_INFO, &ri) < 0 || xioctl(fd, HG_IOCTL_MAP_DUMB, &md) < 0) {
		snprintf(why, whylen, "resource: RESOURCE_INFO/MAP_DUMB: %s", strerror(errno));
		goto out;
	}
	map = mmap(NULL, cd.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)md.offset);
	if (map == MAP_FAILED) {
		snprintf(why, whylen, "resource: mmap: %s", strerror(errno));
		goto out;
	}
	say("resource buffer gem=%u res_id=%u pitch=%u size=%llu", cd.handle, ri.res_handle,
	    cd.pitch, (unsigned long long)cd.size);
	out_text(o, E2E_REC_TEXT, "resource res_id=%u pitch=%u", ri.res_handle, cd.pitch);

	c = open_host(op, "resource", why, whylen);
	if (!c)
		goto out;

	struct hfe_frame_request fr = {
		.resource_id = ri.res_handle, .width = op->w, .height = op->h,
		.format = E2E_FMT_XR24, .stride = cd.pitch, .duration = dur,
	};

	t0 = now_ns();
	for (uint32_t i = 0; i < op->frames; i++) {
		struct hg_transfer tr = {
			.bo_handle = cd.handle, .box = { 0, 0, 0, op->w, op->h, 1 },
			.stride = cd.pitch,
		};
		struct hg_wait wt = { .handle = cd.handle };
		int64_t x0;

		e2e_pattern_rgb(rgb, op->w, op->h, i);
		e2e_rgb_to_xr24(rgb, op->w, op->h, map, cd.pitch);
		/* The host's copy of the resource is what gets encoded. */
		x0 = now_ns();
		if (xioctl(fd, HG_IOCTL_TRANSFER_TO_HOST, &tr) < 0 ||
		    xioctl(fd, HG_IOCTL_WAIT, &wt) < 0) {
			snprintf(why, whylen, "resource: TRANSFER_TO_HOST: %s", strerror(errno));
			goto out;
		}
		t_xfer += now_ns() - x0;
		fr.pts = (int64_t)i * dur;
		if (request_resource(c, &fr, &m, why, whylen) < 0)
			goto out;
		if (m.hdr.type == HFE_MSG_ERROR) {
			snprintf(why, whylen, "resource: frame %u: host error %s: %s", i,
				 hfe_error_name(m.u.error.code), m.u.error.message);
			goto out;
		}
		if (forward_au(o, &m, &au_bytes) < 0) {
			snprintf(why, whylen, "resource: out port write failed");
			goto out;
		}
		got++;
	}
	double el = ms_of(now_ns() - t0);

	/* Wrong requests: per-frame errors, the connection stays usable. */
	const char *unknown, *wrong_size;

	fr.resource_id = ri.res_handle + 1000;
	if (request_resource(c, &fr, &m, why, whylen) < 0)
		goto out;
	unknown = m.hdr.type == HFE_MSG_ERROR ? hfe_error_name(m.u.error.code) : "FRAME_RESPONSE";
	fr.resource_id = ri.res_handle;
	fr.width = op->w / 2;
	if (request_resource(c, &fr, &m, why, whylen) < 0)
		goto out;
	wrong_size = m.hdr.type == HFE_MSG_ERROR ? hfe_error_name(m.u.error.code) :
						   "FRAME_RESPONSE";
	memset(&m, 0, sizeof(m));
	m.hdr.type = HFE_MSG_PING;
	m.hdr.session_id = 5;
	if (hfe_client_send_msg(c, &m, IO_TIMEOUT_MS, &err) < 0 ||
	    hfe_client_recv(c, &m, IO_TIMEOUT_MS, &err) != 1 || m.hdr.type != HFE_MSG_PONG) {
		snprintf(why, whylen, "resource: no PONG after the wrong requests");
		goto out;
	}
	say("resource frames=%u au_bytes=%llu elapsed_ms=%.1f transfer_ms=%.1f unknown=%s "
	    "wrong_size=%s",
	    got, (unsigned long long)au_bytes, el, ms_of(t_xfer), unknown, wrong_size);
	out_text(o, E2E_REC_TEXT, "resource frames=%u unknown=%s wrong_size=%s", got, unknown,
		 wrong_size);
	rc = 0;
out:
	hfe_client_close(c);
	if (map != MAP_FAILED)
		munmap(map, cd.size);
	if (fd >= 0)
		close(fd);
	free(rgb);
	return rc;
}
