/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Default host address shared by the hfe elements (vsockenc, hfescanoutsrc).
 *
 * When an element's "address" property is not set, the host is looked for in
 * this order:
 *   1. the first entry of /dev/virtio-ports (in name order) whose name starts
 *      with "org.helix.hfe" (a virtio-serial port the VM was given with
 *      -device virtserialport,name=org.helix.hfe...): "serial:/dev/virtio-ports/NAME";
 *   2. otherwise the host over vsock: "vsock:2:5000" (CID 2 is the host).
 * The lookup happens when the element starts, so a port that appears later is
 * found by the next start.
 */
#ifndef GST_HFE_ADDR_H
#define GST_HFE_ADDR_H

#include <glib.h>

G_BEGIN_DECLS

#define GST_HFE_VIRTIO_PORTS_DIR "/dev/virtio-ports"
#define GST_HFE_PORT_PREFIX "org.helix.hfe"
#define GST_HFE_DEFAULT_VSOCK_ADDRESS "vsock:2:5000"

/* Property blurb text both elements use for "address". */
#define GST_HFE_ADDRESS_BLURB                                                            \
	"Host encoder address: unix:PATH, tcp:HOST:PORT, vsock:CID:PORT or serial:PATH. " \
	"Unset (NULL): the first /dev/virtio-ports/org.helix.hfe* port if present, else "  \
	"vsock:2:5000; reading the property then returns the address that would be used"

/* The default address (see above), newly allocated. Never NULL. */
gchar *gst_hfe_default_address(void);

/* The same lookup in another directory instead of /dev/virtio-ports (tests). */
gchar *gst_hfe_default_address_in(const gchar *ports_dir);

/* prop if set and non-empty (copied), else the default. Never NULL. */
gchar *gst_hfe_resolve_address(const gchar *prop);

G_END_DECLS

#endif
