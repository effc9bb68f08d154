/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The libavcodec backend tuned for desktop content, for scanout streams
 * (stream.c): with libx264 the bitrate caps a quality-based rate instead of
 * being spent on every frame, and ultrafast's motion search is widened so
 * that scrolled text is found (encoder_lavc.c, configure_x264). Pull
 * sessions, which carry the guest's video, keep hfe_encoder_lavc. Not
 * public: the tuning is the library's choice, the interface stays the same.
 */
#ifndef HFE_ENCODER_DESKTOP_H
#define HFE_ENCODER_DESKTOP_H

#include "hfe/encoder.h"

extern const struct hfe_encoder_ops hfe_encoder_lavc_desktop;

#endif
