/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vsockenc: a GstVideoEncoder whose encoding happens on a helix-frame-export
 * host. Raw frames go to the host over any libhfe transport (vsock,
 * virtio-serial, TCP, unix); Annex-B H.264 access units come back.
 */
#ifndef GST_VSOCK_ENC_H
#define GST_VSOCK_ENC_H

#include <gst/gst.h>
#include <gst/video/video.h>

G_BEGIN_DECLS

#define GST_TYPE_VSOCK_ENC (gst_vsock_enc_get_type())
G_DECLARE_FINAL_TYPE(GstVsockEnc, gst_vsock_enc, GST, VSOCK_ENC, GstVideoEncoder)

/* Values of the "profile" property (H.264 profile_idc; 0 = from downstream). */
typedef enum {
	GST_VSOCK_ENC_PROFILE_AUTO = 0,
	GST_VSOCK_ENC_PROFILE_CONSTRAINED_BASELINE = 66,
	GST_VSOCK_ENC_PROFILE_MAIN = 77,
	GST_VSOCK_ENC_PROFILE_HIGH = 100,
} GstVsockEncProfile;

#define GST_TYPE_VSOCK_ENC_PROFILE (gst_vsock_enc_profile_get_type())
GType gst_vsock_enc_profile_get_type(void);

GST_ELEMENT_REGISTER_DECLARE(vsockenc);

G_END_DECLS

#endif
