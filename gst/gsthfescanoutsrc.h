/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hfescanoutsrc: a live source of the H.264 a host encodes from one of its
 * scanouts (push mode). No raw frames travel: the guest subscribes and gets
 * Annex-B access units.
 */
#ifndef GST_HFE_SCANOUT_SRC_H
#define GST_HFE_SCANOUT_SRC_H

#include <gst/base/gstpushsrc.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_HFE_SCANOUT_SRC (gst_hfe_scanout_src_get_type())
G_DECLARE_FINAL_TYPE(GstHfeScanoutSrc, gst_hfe_scanout_src, GST, HFE_SCANOUT_SRC, GstPushSrc)

GST_ELEMENT_REGISTER_DECLARE(hfescanoutsrc);

G_END_DECLS

#endif
