/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Guest side of resource mode: the virtio-gpu resource id behind a dmabuf.
 *
 * A dmabuf exported by the virtio-gpu DRM driver is imported into our own
 * DRM file (DRM_IOCTL_PRIME_FD_TO_HANDLE gives a GEM handle, which is local
 * to that file and means nothing to the host), then
 * DRM_IOCTL_VIRTGPU_RESOURCE_INFO turns the handle into the resource id the
 * host knows (res_handle). The GEM handle is closed again at once.
 */
#ifndef GST_HFE_VIRTGPU_H
#define GST_HFE_VIRTGPU_H

#include <glib.h>

G_BEGIN_DECLS

typedef struct _GstHfeVirtGpu GstHfeVirtGpu;

/* The first DRM node under /dev/dri (render nodes before card nodes) whose
 * driver is virtio_gpu; NULL if there is none, or if the plugin was built
 * without the DRM headers. */
GstHfeVirtGpu *gst_hfe_virtgpu_open(void);

/* A given DRM node; NULL if it cannot be opened or is not virtio-gpu. */
GstHfeVirtGpu *gst_hfe_virtgpu_open_path(const gchar *path);

void gst_hfe_virtgpu_close(GstHfeVirtGpu *gpu);

/* Resource id of the buffer behind dmabuf_fd, or 0 if gpu is NULL, the fd is
 * not a dmabuf of this device, or an ioctl fails. Safe to call from several
 * threads on the same gpu. */
guint32 gst_hfe_virtgpu_resource_id(GstHfeVirtGpu *gpu, int dmabuf_fd);

G_END_DECLS

#endif
