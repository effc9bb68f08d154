/*
 * helix-frame-export: no virgl resources in a QEMU built without
 * virglrenderer (helix-virgl.c has the real thing)
 *
 * Copyright (c) 2025 helix-frame-export contributors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "helix.h"

int helix_virgl_resource(HelixFrameExport *s, const struct hfe_frame_request *fr,
                         struct hfe_resource_frame *out, struct hfe_err *err)
{
    return 1;
}
