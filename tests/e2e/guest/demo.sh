#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The demo guest (scripts/demo.sh): the e2e guest's initramfs plus a second cpio with this
# script as /demo-init and /bin/hfe-demo, booted with rdinit=/demo-init hfe.shell=1.
# As PID 1 it starts itself again in the background and execs the normal /init (mounts,
# modules, /dev/virtio-ports links; hfe.shell=1 leaves it waiting on the serial console
# instead of powering off). The background copy waits for the screen and the HXFR port,
# then runs the screen painter (hfe-demo) and the subscriber (hfe-guest mode=subscribe,
# restarted if it ends) feeding it through a FIFO.

if [ "$$" = 1 ]; then
	# The background job's stdin is /dev/null: mount /dev first (/init mounts it again).
	/bin/busybox mount -t devtmpfs dev /dev
	/bin/busybox sh /demo-init bg &
	exec /init
fi

export PATH=/bin
port=/dev/virtio-ports/org.helix.hfe.0
i=0
while [ ! -e /dev/fb0 ] || [ ! -e /dev/tty1 ] || [ ! -e "$port" ]; do
	i=$((i + 1))
	[ $i -lt 300 ] || { echo "HFE-DEMO: no /dev/fb0 or $port after 30 s"; exit 1; }
	usleep 100000
done
exec >/dev/console 2>&1
echo "HFE-DEMO: guest up at $(cut -d' ' -f1 /proc/uptime) s"
mkfifo /run/aus
/bin/hfe-demo /run/aus &
while :; do
	# duration in ms: a day; it only ends early if the host goes away.
	/bin/hfe-guest mode=subscribe scanout=0 duration=86400000 out=/run/aus
	echo "HFE-DEMO: subscriber ended (status $?), again in 1 s"
	sleep 1
done
