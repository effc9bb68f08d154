/*
 * helix-frame-export: virgl resources in resource mode
 *
 * On virtio-gpu-gl the guest's resources live in virglrenderer (a texture
 * each, or a buffer), not in virtio-gpu's 2D list, and have no host image to
 * lend. A FRAME_REQUEST naming one is checked as a 2D one is (it exists in
 * this VM's renderer, its size and byte layout are the request's, the
 * request's stride is the packed one) and its pixels are read out of the
 * renderer (virgl_renderer_transfer_read_iov, on the main loop where
 * virglrenderer lives) into a buffer that the encoder owns until it is done.
 * One QEMU process runs one VM, and virglrenderer one renderer per process:
 * every resource it knows belongs to this VM.
 *
 * Copyright (c) 2025 helix-frame-export contributors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "hw/virtio/virtio-gpu.h"
#include <virglrenderer.h>
#include "helix.h"
#include "trace.h"

/* libhfe's name for a 32-bit RGB virgl/virtio-gpu format, or 0. */
static uint32_t helix_virgl_hfe_format(uint32_t f)
{
    switch (f) {
    case VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM:
        return HFE_FMT_XRGB8888;
    case VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM:
        return HFE_FMT_ARGB8888;
    case VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM:
        return HFE_FMT_XBGR8888;
    case VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM:
        return HFE_FMT_ABGR8888;
    default:
        return 0;
    }
}

/* The VM's virglrenderer runs (a virtio-gpu-gl whose renderer started). */
static bool helix_virgl_running(HelixFrameExport *s)
{
    GPtrArray *gpus = helix_gpus(s);

    for (guint i = 0; i < gpus->len; i++) {
        Object *o = g_ptr_array_index(gpus, i);

        if (object_dynamic_cast(o, TYPE_VIRTIO_GPU_GL) &&
            DEVICE(o)->realized && VIRTIO_GPU_GL(o)->renderer_inited) {
            return true;
        }
    }
    return false;
}

/* From the encoder's thread: the buffer is ours alone. */
static void helix_virgl_release(void *opaque)
{
    g_free(opaque);
}

int helix_virgl_resource(HelixFrameExport *s, const struct hfe_frame_request *fr,
                         struct hfe_resource_frame *out, struct hfe_err *err)
{
    struct virgl_renderer_resource_info info;
    struct virtio_gpu_box box = { .w = fr->width, .h = fr->height, .d = 1 };
    uint32_t fmt, stride;
    struct iovec iov;
    uint8_t *px;

    if (!helix_virgl_running(s) ||
        virgl_renderer_resource_get_info(fr->resource_id, &info) != 0) {
        return 1; /* not a virgl resource of this VM */
    }
    fmt = helix_virgl_hfe_format(info.virgl_format);
    if (!fmt || info.depth > 1) {
        hfe_err_set(err, HFE_ERR_INVALID_MSG,
                    "virgl resource %u has format %u%s, not 32-bit RGB 2D",
                    fr->resource_id, info.virgl_format,
                    info.depth > 1 ? " and depth" : "");
        return -1;
    }
    if (fr->width != info.width || fr->height != info.height) {
        hfe_err_set(err, HFE_ERR_INVALID_MSG,
                    "virgl resource %u is %ux%u, the request says %ux%u",
                    fr->resource_id, info.width, info.height, fr->width,
                    fr->height);
        return -1;
    }
    if (!helix_same_layout(fr->format, fmt)) {
        char want[5], have[5];

        hfe_err_set(err, HFE_ERR_INVALID_MSG,
                    "virgl resource %u holds '%s' pixels, the request says '%s'",
                    fr->resource_id, hfe_fourcc_str(fmt, have),
                    hfe_fourcc_str(fr->format, want));
        return -1;
    }
    /* The pixels are read out packed, whatever the renderer's own layout. */
    stride = info.width * 4;
    if (fr->stride != stride) {
        hfe_err_set(err, HFE_ERR_INVALID_MSG,
                    "virgl resource %u is read out with stride %u, the "
                    "request says %u", fr->resource_id, stride, fr->stride);
        return -1;
    }
    px = g_try_malloc((size_t)stride * info.height);
    if (!px) {
        hfe_err_set(err, HFE_ERR_INTERNAL, "out of memory for resource %u",
                    fr->resource_id);
        return -1;
    }
    iov.iov_base = px;
    iov.iov_len = (size_t)stride * info.height;
    if (virgl_renderer_transfer_read_iov(fr->resource_id, 0, 0, stride, 0,
                                         (struct virgl_box *)&box, 0, &iov,
                                         1) != 0) {
        g_free(px);
        hfe_err_set(err, HFE_ERR_RESOURCE_NOT_FOUND,
                    "virgl resource %u cannot be read", fr->resource_id);
        return -1;
    }
    out->pixels = px;
    out->format = fmt;
    out->width = info.width;
    out->height = info.height;
    out->stride = stride;
    out->release = helix_virgl_release;
    out->opaque = px;
    s->resources++;
    trace_helix_resource(fr->resource_id, out->width, out->height, fmt);
    return 0;
}
