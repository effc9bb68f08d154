/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Default host address of the hfe elements: see gsthfeaddr.h. */
#include "gsthfeaddr.h"

#include <string.h>

gchar *gst_hfe_default_address_in(const gchar *ports_dir)
{
	GDir *dir = g_dir_open(ports_dir, 0, NULL);
	gchar *best = NULL;

	if (dir) {
		const gchar *name;
		/* readdir order is arbitrary: pick the smallest name so the choice is stable */
		while ((name = g_dir_read_name(dir))) {
			if (!g_str_has_prefix(name, GST_HFE_PORT_PREFIX))
				continue;
			if (!best || strcmp(name, best) < 0) {
				g_free(best);
				best = g_strdup(name);
			}
		}
		g_dir_close(dir);
	}
	if (best) {
		gchar *path = g_build_filename(ports_dir, best, NULL);
		gchar *addr = g_strconcat("serial:", path, NULL);
		g_free(path);
		g_free(best);
		return addr;
	}
	return g_strdup(GST_HFE_DEFAULT_VSOCK_ADDRESS);
}

gchar *gst_hfe_default_address(void)
{
	return gst_hfe_default_address_in(GST_HFE_VIRTIO_PORTS_DIR);
}

gchar *gst_hfe_resolve_address(const gchar *prop)
{
	if (prop && *prop)
		return g_strdup(prop);
	return gst_hfe_default_address();
}
