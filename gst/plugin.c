/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The "hfe" plugin: H.264 encoding done by a helix-frame-export host.
 *   vsockenc       raw video in, H.264 out; the host encodes
 *   hfescanoutsrc  H.264 of a host scanout; no raw frames in the guest
 */
#include <gst/gst.h>

#include "gsthfeelements.h"

static gboolean plugin_init(GstPlugin *plugin)
{
	gboolean ok = FALSE;

	ok |= GST_ELEMENT_REGISTER(vsockenc, plugin);
	ok |= GST_ELEMENT_REGISTER(hfescanoutsrc, plugin);
	return ok;
}

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, hfe,
		  "Video encoding on a helix-frame-export host (guest side)", plugin_init,
		  PACKAGE_VERSION, "LGPL", GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)
