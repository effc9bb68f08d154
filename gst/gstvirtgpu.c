/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dmabuf -> virtio-gpu resource id (see gstvirtgpu.h). Plain ioctls: only the
 * kernel's uapi headers are needed (shipped by libdrm or linux-libc-dev). */
#include "gstvirtgpu.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#if defined(HAVE_LIBDRM)
#include <drm.h>
#include <virtgpu_drm.h>
#define HAVE_DRM_UAPI 1
#elif defined(__linux__) && defined(__has_include)
#if __has_include(<drm/virtgpu_drm.h>)
#include <drm/drm.h>
#include <drm/virtgpu_drm.h>
#define HAVE_DRM_UAPI 1
#endif
#endif

#ifdef HAVE_DRM_UAPI
#include <sys/ioctl.h>

struct _GstHfeVirtGpu {
	int fd;
};

static int xioctl(int fd, unsigned long req, void *arg)
{
	int r;
	do
		r = ioctl(fd, req, arg);
	while (r < 0 && (errno == EINTR || errno == EAGAIN));
	return r;
}

static gboolean is_virtio_gpu(int fd)
{
	char name[64] = "";
	struct drm_version v;

	memset(&v, 0, sizeof(v));
	v.name = name;
	v.name_len = sizeof(name) - 1;
	if (xioctl(fd, DRM_IOCTL_VERSION, &v) < 0)
		return FALSE;
	name[sizeof(name) - 1] = '\0';
	return strcmp(name, "virtio_gpu") == 0;
}

GstHfeVirtGpu *gst_hfe_virtgpu_open_path(const gchar *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	if (!is_virtio_gpu(fd)) {
		close(fd);
		return NULL;
	}
	GstHfeVirtGpu *gpu = g_new0(GstHfeVirtGpu, 1);
	gpu->fd = fd;
	return gpu;
}

static gint node_order(gconstpointer a, gconstpointer b)
{
	const gchar *x = a, *y = b;
	gboolean rx = g_str_has_prefix(x, "renderD"), ry = g_str_has_prefix(y, "renderD");
	if (rx != ry)
		return rx ? -1 : 1;
	/* card2 before card10 */
	if (strlen(x) != strlen(y))
		return strlen(x) < strlen(y) ? -1 : 1;
	return strcmp(x, y);
}

GstHfeVirtGpu *gst_hfe_virtgpu_open(void)
{
	GDir *dir = g_dir_open("/dev/dri", 0, NULL);
	GList *names = NULL;
	GstHfeVirtGpu *gpu = NULL;
	const gchar *name;

	if (!dir)
		return NULL;
	while ((name = g_dir_read_name(dir)))
		if (g_str_has_prefix(name, "renderD") || g_str_has_prefix(name, "card"))
			names = g_list_insert_sorted(names, g_strdup(name), node_order);
	g_dir_close(dir);

	for (GList *l = names; l && !gpu; l = l->next) {
		gchar *path = g_build_filename("/dev/dri", (const gchar *)l->data, NULL);
		gpu = gst_hfe_virtgpu_open_path(path);
		g_free(path);
	}
	g_list_free_full(names, g_free);
	return gpu;
}

void gst_hfe_virtgpu_close(GstHfeVirtGpu *gpu)
{
	if (!gpu)
		return;
	close(gpu->fd);
	g_free(gpu);
}

guint32 gst_hfe_virtgpu_resource_id(GstHfeVirtGpu *gpu, int dmabuf_fd)
{
	struct drm_prime_handle ph;
	struct drm_virtgpu_resource_info info;
	struct drm_gem_close gc;
	int r;

	if (!gpu || dmabuf_fd < 0)
		return 0;
	memset(&ph, 0, sizeof(ph));
	ph.fd = dmabuf_fd;
	if (xioctl(gpu->fd, DRM_IOCTL_PRIME_FD_TO_HANDLE, &ph) < 0)
		return 0;

	memset(&info, 0, sizeof(info));
	info.bo_handle = ph.handle;
	r = xioctl(gpu->fd, DRM_IOCTL_VIRTGPU_RESOURCE_INFO, &info);

	/* The handle belongs to our private DRM file: nobody else holds it. */
	memset(&gc, 0, sizeof(gc));
	gc.handle = ph.handle;
	xioctl(gpu->fd, DRM_IOCTL_GEM_CLOSE, &gc);

	return r < 0 ? 0 : info.res_handle;
}

#else /* !HAVE_DRM_UAPI */

GstHfeVirtGpu *gst_hfe_virtgpu_open(void)
{
	return NULL;
}

GstHfeVirtGpu *gst_hfe_virtgpu_open_path(const gchar *path)
{
	(void)path;
	return NULL;
}

void gst_hfe_virtgpu_close(GstHfeVirtGpu *gpu)
{
	(void)gpu;
}

guint32 gst_hfe_virtgpu_resource_id(GstHfeVirtGpu *gpu, int dmabuf_fd)
{
	(void)gpu;
	(void)dmabuf_fd;
	return 0;
}

#endif
