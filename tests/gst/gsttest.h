/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers shared by the GStreamer element tests (tests/gst/). */
#ifndef HFE_GSTTEST_H
#define HFE_GSTTEST_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <gst/gst.h>

/*
 * Make sure an element of the hfe plugin (e.g. "vsockenc") is available.
 * Normally the registry found the plugin through GST_PLUGIN_PATH. A
 * sanitizer build of the plugin cannot be loaded by the system's
 * gst-plugin-scanner (a separate, uninstrumented process), which then
 * blacklists it: in that case $GST_PLUGIN_PATH/libgsthfe.so is loaded
 * in-process here. Call after gst_init().
 */
static inline bool gsttest_have_feature(const char *feature)
{
	GstPluginFeature *f = gst_registry_lookup_feature(gst_registry_get(), feature);
	const char *dir = getenv("GST_PLUGIN_PATH");

	if (!f && dir) {
		gchar *path = g_build_filename(dir, "libgsthfe.so", NULL);
		GError *err = NULL;
		GstPlugin *p = gst_plugin_load_file(path, &err);
		if (p)
			gst_object_unref(p);
		else
			fprintf(stderr, "loading %s: %s\n", path, err ? err->message : "?");
		g_clear_error(&err);
		g_free(path);
		f = gst_registry_lookup_feature(gst_registry_get(), feature);
	}
	if (!f) {
		fprintf(stderr, "%s not found (GST_PLUGIN_PATH=%s)\n", feature, dir ? dir : "");
		return false;
	}
	gst_object_unref(f);
	return true;
}

#endif
