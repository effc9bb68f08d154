/*
 * helix-frame-export: virtio-gpu resources lent to the encoder
 *
 * Resource mode. A FRAME_REQUEST without pixels names a virtio-gpu resource
 * id (what the guest's kernel calls res_handle). libhfe's host asks us to
 * resolve it: we find the resource in the VM's virtio-gpu devices, check
 * that it has a 2D image whose size, stride and byte layout match the
 * request, and lend the image's pixels to the encoder without a copy. The
 * devices are looked up once, at the first request, and kept (with a
 * reference) for the object's lifetime: a resource-mode frame costs a walk
 * of the device's resource list, not of the whole QOM tree. On
 * virtio-gpu-gl the resources are virglrenderer's: helix-virgl.c.
 *
 * Copyright (c) 2025 helix-frame-export contributors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/log.h"
#include "qemu/main-loop.h"
#include "hw/qdev-core.h"
#include "hw/virtio/virtio-gpu.h"
#include "helix.h"
#include "trace.h"

static int helix_collect_gpu(Object *obj, void *opaque)
{
    GPtrArray *gpus = opaque;

    if (object_dynamic_cast(obj, TYPE_VIRTIO_GPU)) {
        g_ptr_array_add(gpus, object_ref(obj));
    }
    return 0;
}

/* The VM's virtio-gpu devices, found at the first call. */
GPtrArray *helix_gpus(HelixFrameExport *s)
{
    if (!s->gpus) {
        s->gpus = g_ptr_array_new_with_free_func((GDestroyNotify)object_unref);
        object_child_foreach_recursive(object_get_root(), helix_collect_gpu,
                                       s->gpus);
        trace_helix_gpus(s->gpus->len);
    }
    return s->gpus;
}

static struct virtio_gpu_simple_resource *
helix_find_resource(HelixFrameExport *s, uint32_t id)
{
    GPtrArray *gpus = helix_gpus(s);

    for (guint i = 0; i < gpus->len; i++) {
        VirtIOGPU *g = VIRTIO_GPU(g_ptr_array_index(gpus, i));
        struct virtio_gpu_simple_resource *res;

        if (!DEVICE(g)->realized) {
            continue; /* unplugged since */
        }
        QTAILQ_FOREACH(res, &g->reslist, next) {
            if (res->resource_id == id) {
                return res;
            }
        }
    }
    return NULL;
}

void helix_resource_cleanup(HelixFrameExport *s)
{
    if (s->gpus) {
        g_ptr_array_free(s->gpus, true);
        s->gpus = NULL;
    }
}

static void helix_res_unref_bh(void *opaque)
{
    pixman_image_unref(opaque);
}

/*
 * From the encoder's thread: pixman refcounts are not atomic, so the unref
 * happens on the main loop.
 */
static void helix_res_release(void *opaque)
{
    aio_bh_schedule_oneshot(qemu_get_aio_context(), helix_res_unref_bh, opaque);
}

/* Formats with the same bytes in memory (alpha is ignored). */
bool helix_same_layout(uint32_t a, uint32_t b)
{
    bool bgr_a = a == HFE_FMT_XRGB8888 || a == HFE_FMT_ARGB8888;
    bool bgr_b = b == HFE_FMT_XRGB8888 || b == HFE_FMT_ARGB8888;
    bool rgb_a = a == HFE_FMT_XBGR8888 || a == HFE_FMT_ABGR8888;
    bool rgb_b = b == HFE_FMT_XBGR8888 || b == HFE_FMT_ABGR8888;

    return (bgr_a && bgr_b) || (rgb_a && rgb_b);
}

/* libhfe's resolve_resource callback (main loop). */
int helix_resolve_resource(void *opaque, const struct hfe_frame_request *fr,
                           struct hfe_resource_frame *out,
                           struct hfe_err *err)
{
    HelixFrameExport *s = opaque;
    struct virtio_gpu_simple_resource *res;
    pixman_image_t *img;
    uint32_t fmt, stride;

    res = helix_find_resource(s, fr->resource_id);
    if (!res) {
        /* virtio-gpu-gl: the resource may be virglrenderer's. */
        int r = helix_virgl_resource(s, fr, out, err);

        if (r == 0) {
            return 0;
        }
        if (r > 0) {
            hfe_err_set(err, HFE_ERR_RESOURCE_NOT_FOUND,
                        "virtio-gpu resource %u does not exist in this VM",
                        fr->resource_id);
        }
        goto fail;
    }
    img = res->image;
    if (!img) {
        hfe_err_set(err, HFE_ERR_RESOURCE_NOT_FOUND,
                    "virtio-gpu resource %u has no host image "
                    "(blob or 3D resource)",
                    fr->resource_id);
        goto fail;
    }
    fmt = helix_hfe_format(pixman_image_get_format(img));
    stride = pixman_image_get_stride(img);
    if (!fmt) {
        hfe_err_set(err, HFE_ERR_INVALID_MSG,
                    "virtio-gpu resource %u has format %u, not 32-bit RGB",
                    fr->resource_id, res->format);
        goto fail;
    }
    if (fr->width != res->width || fr->height != res->height) {
        hfe_err_set(err, HFE_ERR_INVALID_MSG,
                    "virtio-gpu resource %u is %ux%u, the request says %ux%u",
                    fr->resource_id, res->width, res->height,
                    fr->width, fr->height);
        goto fail;
    }
    if (!helix_same_layout(fr->format, fmt)) {
        char want[5], have[5];

        hfe_err_set(err, HFE_ERR_INVALID_MSG,
                    "virtio-gpu resource %u holds '%s' pixels, "
                    "the request says '%s'",
                    fr->resource_id, hfe_fourcc_str(fmt, have),
                    hfe_fourcc_str(fr->format, want));
        goto fail;
    }
    if (fr->stride != stride) {
        hfe_err_set(err, HFE_ERR_INVALID_MSG,
                    "virtio-gpu resource %u has stride %u, the request says %u",
                    fr->resource_id, stride, fr->stride);
        goto fail;
    }
    out->pixels = (const uint8_t *)pixman_image_get_data(img);
    out->format = fmt;
    out->width = res->width;
    out->height = res->height;
    out->stride = stride;
    out->release = helix_res_release;
    out->opaque = pixman_image_ref(img);
    s->resources++;
    trace_helix_resource(fr->resource_id, out->width, out->height, fmt);
    return 0;

fail:
    qemu_log_mask(LOG_GUEST_ERROR, "helix-frame-export: %s\n", err->msg);
    return -1;
}
