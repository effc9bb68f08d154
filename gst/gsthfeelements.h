/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The elements of the "hfe" GStreamer plugin, registered by plugin.c. */
#ifndef GST_HFE_ELEMENTS_H
#define GST_HFE_ELEMENTS_H

#include <gst/gst.h>

G_BEGIN_DECLS

GST_ELEMENT_REGISTER_DECLARE(vsockenc);
GST_ELEMENT_REGISTER_DECLARE(hfescanoutsrc);

G_END_DECLS

#endif
