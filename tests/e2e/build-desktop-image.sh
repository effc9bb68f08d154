#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Build (or find in the cache) the desktop guest: a small real Debian 12 system made with
# mmdebstrap (kernel, udev, Mesa with the virgl driver, kmscube, weston with its desktop
# shell and weston-terminal) that boots straight into weston on the DRM backend, as root.
# For tests that need a guest really using the GPU (virtio-gpu-gl-pci) or a real desktop.
# See docs/e2e.md, "The desktop guest".
#
#   build-desktop-image.sh [--cache DIR] [--mirror URL] [--offline]
#
# Prints the image's directory on stdout: vmlinuz, vmlinux (the PVH ELF, faster under
# TCG), initrd.img (busybox: mounts the root image read-only under a tmpfs overlay),
# rootfs.img (raw ext4, attach read-only), packages (name version), info; progress on stderr.
# Cache (default /var/cache/hfe, or $HFE_E2E_CACHE): desktop-HASH/, HASH covering this
# script (its package list and the guest's scripts are inside it) and the Debian release
# (Suite and Version of the mirror's bookworm InRelease, i.e. the point release). The
# newest 3 images are kept. --offline (or a mirror that cannot be reached) uses the newest
# image this script built. Needs root (mmdebstrap, apt-get for missing host packages).

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
CACHE=${HFE_E2E_CACHE:-/var/cache/hfe}
MIRROR=${HFE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
OFFLINE=0
KEEP_IMAGES=3
HOST_PKGS=(mmdebstrap busybox-static e2fsprogs kmod cpio xz-utils binutils python3)
# What the guest has beyond minbase (no Recommends).
PKGS=(linux-image-amd64 udev kmod procps weston kmscube libgl1-mesa-dri libegl1
	libegl-mesa0 libgles2 libgbm1 fonts-dejavu-core dmz-cursor-theme)
# Removed after installation with what only they need (dpkg --force-depends): weston's
# RDP backend pulls FreeRDP and FFmpeg (~130 MB); the guest never uses that backend.
CUT_PKGS=(libfreerdp2-2 libfreerdp-server2-2 libwinpr2-2)
# Kernel modules kept (with their dependencies): what a QEMU guest can use. The rest of
# the ~400 MB module tree is removed.
KMODS=(virtio_pci virtio_mmio virtio_blk virtio_scsi sd_mod sr_mod virtio_net virtio_console
	virtio_rng virtio_balloon virtio_input virtio_gpu bochs evdev uinput hid_generic usbhid
	xhci_pci qemu_fw_cfg ext4 overlay isofs vfat nls_cp437 nls_ascii nls_utf8 fuse
	9p 9pnet_virtio vmw_vsock_virtio_transport loop)
# Loaded by the initramfs, in this order with their dependencies, to reach the root disk.
INITRD_KMODS=(virtio_pci virtio_blk ext4 overlay)

log() { printf 'build-desktop-image: %s\n' "$*" >&2; }
die() {
	printf 'build-desktop-image: ERROR: %s\n' "$*" >&2
	exit 1
}

while [[ $# -gt 0 ]]; do
	case "$1" in
	--cache) CACHE=${2:?--cache needs a directory}; shift 2 ;;
	--mirror) MIRROR=${2:?--mirror needs a URL}; shift 2 ;;
	--offline) OFFLINE=1; shift ;;
	-h | --help) sed -n '4,22s/^# \{0,1\}//p' "$SELF"; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done

SCRIPT_SHA=$(sha256sum <"$SELF" | cut -c1-64)

# The newest complete image this script built, for offline use.
newest_cached() {
	local d
	while read -r d; do
		[[ -f "$d/complete" ]] && grep -qx "script_sha256=$SCRIPT_SHA" "$d/info" &&
			{ printf '%s\n' "${d%/}"; return 0; }
	done < <(ls -dt "$CACHE"/desktop-*/ 2>/dev/null)
	return 1
}

# ---- the release: part of the key ------------------------------------------------------

RELEASE=
if [[ $OFFLINE -eq 0 ]]; then
	rel_tmp=$(mktemp)
	if /usr/lib/apt/apt-helper download-file "$MIRROR/dists/$SUITE/InRelease" "$rel_tmp" \
		>/dev/null 2>&1; then
		RELEASE=$(awk '/^Suite:/ { s = $2 } /^Version:/ { v = $2 } /^Date:/ { sub(/^Date: /, ""); d = $0 }
			/^-----BEGIN PGP SIGNATURE/ { exit } END { if (s != "" && v != "") print s " " v "|" d }' \
			"$rel_tmp")
	fi
	rm -f "$rel_tmp"
	[[ -n "$RELEASE" ]] || log "cannot read $MIRROR/dists/$SUITE/InRelease: trying the cache"
fi
if [[ -z "$RELEASE" ]]; then
	d=$(newest_cached) || die "no network to $MIRROR and no desktop image built by this script in $CACHE"
	log "offline: using $d"
	printf '%s\n' "$d"
	exit 0
fi
RELEASE_ID=${RELEASE%%|*}
RELEASE_DATE=${RELEASE#*|}
HASH=$(printf 'script %s\nrelease %s\nmirror-suite %s\n' "$SCRIPT_SHA" "$RELEASE_ID" "$SUITE" |
	sha256sum | cut -c1-16)
DDIR="$CACHE/desktop-$HASH"
if [[ -f "$DDIR/complete" ]]; then
	touch "$DDIR" 2>/dev/null || true # the newest are kept; a user without write access may read
	printf '%s\n' "$DDIR"
	exit 0
fi

# ---- host packages ---------------------------------------------------------------------

[[ $(id -u) -eq 0 ]] || die "building the desktop image needs root (mmdebstrap in root mode): run as root"
installed() {
	local st
	st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null) || return 1
	[[ "$st" == ii* ]]
}
missing=()
for p in "${HOST_PKGS[@]}"; do
	installed "$p" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
	log "installing host packages: ${missing[*]}"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		"${missing[@]}" >&2; then
		apt-get update -q >&2 || true
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			"${missing[@]}" >&2 || die "cannot install ${missing[*]}"
	fi
fi
BUSYBOX=$(dpkg -L busybox-static | grep -E '/s?bin/busybox$' | head -n1)
[[ -x "$BUSYBOX" ]] || die "busybox-static's binary not found"

mkdir -p "$CACHE"
# One build at a time; a second caller waits and then finds the result.
exec 9>"$CACHE/.desktop.lock"
flock -w 1800 9 || die "cannot lock $CACHE/.desktop.lock"
if [[ -f "$DDIR/complete" ]]; then
	touch "$DDIR" 2>/dev/null || true # the newest are kept; a user without write access may read
	printf '%s\n' "$DDIR"
	exit 0
fi

work=$(mktemp -d "$CACHE/.desktop.XXXXXX")
# --one-file-system: never into what an interrupted mmdebstrap left mounted in the tree.
trap 'rm -rf --one-file-system "$work"' EXIT
t_start=$(date +%s)

# ---- the root tree ----------------------------------------------------------------------

tree="$work/tree"
log "mmdebstrap $SUITE ($RELEASE_ID) from $MIRROR: ${PKGS[*]}"
# The .debs of the last build are kept in DEBS and offered to the next one (a rebuild
# downloads only what changed).
DEBS="$CACHE/debs-desktop" # not desktop-*: that is the images' pattern
mkdir -p "$DEBS"
# mmdebstrap's merged-usr hooks make the /usr symlinks themselves: without them it installs
# usrmerge, which pulls perl (~50 MB). The kernel's postinst builds an initramfs we do not use
# (ours is below): MODULES=list keeps it small.
MERGED_USR=/usr/share/mmdebstrap/hooks/merged-usr
[[ -d "$MERGED_USR" ]] || die "$MERGED_USR is missing (mmdebstrap too old?)"
mmdebstrap --mode=root --variant=minbase --format=directory --hook-dir="$MERGED_USR" \
	--aptopt='APT::Install-Recommends "false"' \
	--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
	--setup-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" && echo MODULES=list >"$1/etc/initramfs-tools/conf.d/hfe.conf"' \
	--skip=download/empty --skip=essential/unlink \
	--setup-hook='mkdir -p "$1/var/cache/apt/archives"' \
	--setup-hook="sync-in '$DEBS' /var/cache/apt/archives/" \
	--customize-hook="find '$DEBS' -name '*.deb' -delete" \
	--customize-hook="sync-out /var/cache/apt/archives '$DEBS'" \
	--include="$(IFS=,; echo "${PKGS[*]}")" \
	"$SUITE" "$tree" "$MIRROR" >&2 || die "mmdebstrap failed (see above)"

# CUT_PKGS and what nothing else needs: walk Depends/Pre-Depends from the manually installed
# and essential packages without entering CUT_PKGS; whatever is not reached goes.
manual=$(chroot "$tree" apt-mark showmanual | tr '\n' ' ')
cut=$(python3 - "$tree/var/lib/dpkg/status" "$manual" "${CUT_PKGS[@]}" <<'EOF_PY'
import re, sys
pkgs, prov = {}, {}
for block in open(sys.argv[1]).read().split('\n\n'):
    f = dict(re.findall(r'^([\w-]+): ?(.*)$', block, re.M))
    if 'Package' not in f or not f.get('Status', '').endswith(' installed'):
        continue
    pkgs[f['Package']] = f
    for p in filter(None, (x.strip().split(' ')[0] for x in f.get('Provides', '').split(','))):
        prov.setdefault(p, []).append(f['Package'])
cut = set(sys.argv[3:])
todo = [n for n, f in pkgs.items() if f.get('Essential') == 'yes'] + sys.argv[2].split()
seen = set()
while todo:
    n = todo.pop().split(':')[0]
    if n in seen or n in cut or n not in pkgs:
        continue
    seen.add(n)
    deps = pkgs[n].get('Pre-Depends', '') + ',' + pkgs[n].get('Depends', '')
    for alt in filter(None, (a.strip() for a in deps.split(','))):
        names = [a.strip().split(' ')[0].split(':')[0] for a in alt.split('|')]
        inst = [m for x in names for m in ([x] if x in pkgs else prov.get(x, []))]
        todo.extend(inst[:1])
print(' '.join(sorted(set(pkgs) - seen)))
EOF_PY
) || die "cannot compute the packages to remove"
if [[ -n "$cut" ]]; then
	log "removing $(wc -w <<<"$cut") packages only the RDP backend needs: $cut"
	# shellcheck disable=SC2086
	chroot "$tree" dpkg --purge --force-depends $cut >"$work/purge.log" 2>&1 ||
		{ cat "$work/purge.log" >&2; die "dpkg --purge failed"; }
fi

krel=$(ls "$tree/lib/modules")
[[ -n "$krel" && -f "$tree/boot/vmlinuz-$krel" ]] || die "no kernel in the tree"
chroot "$tree" dpkg-query -W -f='${Package} ${Version}\n' >"$work/packages"

# Keep only the modules of KMODS and their dependencies.
log "pruning kernel modules of $krel"
declare -A keep=()
for m in "${KMODS[@]}"; do
	deps=$(modprobe -d "$tree" -S "$krel" --show-depends "$m") || die "module $m not in $krel"
	while read -r kind path _; do
		[[ "$kind" == insmod ]] && keep[$path]=1
	done <<<"$deps"
done
find "$tree/lib/modules/$krel/kernel" -name '*.ko*' | grep -vxFf <(printf '%s\n' "${!keep[@]}") |
	xargs -r rm -f
find "$tree/lib/modules/$krel/kernel" -type d -empty -delete
depmod -b "$tree" "$krel"

# ---- the guest's own files ----------------------------------------------------------------

cat >"$tree/sbin/hfe-init" <<'EOF_INIT'
#!/bin/bash
# PID 1 of the desktop guest (written by tests/e2e/build-desktop-image.sh): mounts, udev,
# the session (weston on the DRM backend, as root), then the boot command. Its
# parameters are hfe.* words on the kernel command line (see docs/e2e.md); its progress
# lines on the console start with "HFE-DESKTOP: ".
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=linux SHELL=/bin/bash
exec </dev/console >/dev/console 2>&1
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sys /sys
mountpoint -q /dev || mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
mount -t devpts -o gid=5,mode=620 devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t tmpfs -o mode=755 run /run
mount -t tmpfs -o mode=1777 tmp /tmp
hostname hfe-desktop

up() { cut -d' ' -f1 /proc/uptime; }
say() { printf 'HFE-DESKTOP: %s\n' "$*"; }
poweroff_now() {
	say "poweroff"
	sync
	echo o >/proc/sysrq-trigger
	sleep 10
}
# hfe.KEY=VALUE words; xargs honours the kernel's double quotes: hfe.run="a b c".
declare -A P=([session]=weston [renderer]=auto [terminal]=1 [shell]=0 [poweroff]=0 [run]=)
while IFS= read -r a; do
	case "$a" in
	hfe.*=*) k=${a%%=*}; P[${k#hfe.}]=${a#*=} ;;
	esac
done < <(xargs -n1 printf '%s\n' </proc/cmdline 2>/dev/null)
say "init uptime=$(up)"

/lib/systemd/systemd-udevd --daemon --resolve-names=never
# Only what the session needs (all of them costs seconds under TCG): the virtio bus and PCI
# (module autoloading), input (libinput wants udev's ID_INPUT tags), drm, virtio ports, block.
for s in virtio pci input drm virtio-ports block graphics tty; do m+=(--subsystem-match=$s); done
udevadm trigger --type=subsystems --action=add
udevadm trigger --type=devices --action=add "${m[@]}"
udevadm settle --timeout=30 || say "udev settle timed out"
modprobe -q qemu_fw_cfg 2>/dev/null
say "udev done uptime=$(up) drm=$(ls /dev/dri 2>/dev/null | tr '\n' ' ')"
say "gpu $(dmesg | grep -o 'features: [+-].*' | head -n1)"

if [ "${P[shell]}" = 1 ]; then
	(while :; do setsid -c -w bash -l <>/dev/ttyS0 >&0 2>&0; sleep 1; done) &
fi

export XDG_RUNTIME_DIR=/run/user/0
mkdir -p -m 0700 "$XDG_RUNTIME_DIR"
case "${P[session]}" in
weston)
	renderer=${P[renderer]}
	if [ "$renderer" = auto ]; then
		renderer=pixman
		dmesg | grep -q '+virgl' && renderer=gl
	fi
	# Debian's weston 10 has no libseat: without logind it takes the direct launcher (root, on a VT).
	args=(--backend=drm-backend.so --tty=1 --socket=wayland-0 --idle-time=0 --log=/run/weston.log)
	[ "$renderer" = pixman ] && args+=(--use-pixman)
	say "weston start renderer=$renderer uptime=$(up)"
	: >/run/weston.log
	tail -n +1 -F /run/weston.log 2>/dev/null | sed -u 's/^/weston: /' &
	weston "${args[@]}" &
	wpid=$!
	for _ in $(seq 1200); do
		[ -S "$XDG_RUNTIME_DIR/wayland-0" ] && grep -q 'desktop-shell' /run/weston.log && break
		kill -0 $wpid 2>/dev/null || break
		sleep 0.1
	done
	if [ -S "$XDG_RUNTIME_DIR/wayland-0" ] && kill -0 $wpid 2>/dev/null; then
		export WAYLAND_DISPLAY=wayland-0
		say "weston ready uptime=$(up)"
		[ "${P[terminal]}" = 1 ] && weston-terminal &
		# Weston 10 quits when weston-desktop-shell dies in weston's first 30 s
		# ("apparently cannot run at all"), e.g. killed by "invalid global
		# wl_output" for binding an output a replug (hfe-viewer --replug)
		# just removed: start it again (the output's preferred mode is then
		# the one asked for), a few times at most. Weston removes its socket
		# when it quits: the new one means the new weston listens.
		(
			for n in 1 2 3; do
				while kill -0 $wpid 2>/dev/null; do sleep 1; done
				say "weston exited, starting it again ($n) uptime=$(up)"
				weston "${args[@]}" &
				wpid=$!
				[ "${P[terminal]}" = 1 ] || continue
				for _ in $(seq 600); do
					[ -S "$XDG_RUNTIME_DIR/wayland-0" ] && break
					sleep 0.1
				done
				weston-terminal &
			done
		) &
	else
		say "weston failed uptime=$(up)"
	fi
	;;
none) ;;
*) say "unknown session '${P[session]}'" ;;
esac

# The boot command: fw_cfg opt/hfe/run (a script), else hfe.run=...
cmd=/sys/firmware/qemu_fw_cfg/by_name/opt/hfe/run/raw
if [ -r "$cmd" ]; then
	cp "$cmd" /run/hfe-run
elif [ -n "${P[run]}" ]; then
	printf '%s\n' "${P[run]}" >/run/hfe-run
fi
if [ -f /run/hfe-run ]; then
	say "run start uptime=$(up)"
	# Its stdin never becomes readable (kmscube quits as soon as its stdin is).
	mkfifo -m 600 /run/hfe-stdin
	bash /run/hfe-run <>/run/hfe-stdin &
	wait $!
	say "run exit=$? uptime=$(up)"
	[ "${P[poweroff]}" = 1 ] && poweroff_now
fi
# PID 1 stays, reaping orphans.
while :; do
	wait
	sleep 1
done
EOF_INIT
chmod 0755 "$tree/sbin/hfe-init"

mkdir -p "$tree/etc/xdg/weston"
cat >"$tree/etc/xdg/weston/weston.ini" <<'EOF_INI'
# The desktop guest's weston (tests/e2e/build-desktop-image.sh): no input required (a VM
# may have no pointer), no idle blanking, no animations (they cost frames under TCG).
[core]
require-input=false
idle-time=0

[shell]
background-color=0xff1f3b57
panel-position=top
locking=false
animation=none
close-animation=none
startup-animation=none
focus-animation=none
cursor-theme=DMZ-White
cursor-size=24

[keyboard]
keymap_layout=us
EOF_INI

echo hfe-desktop >"$tree/etc/hostname"
chroot "$tree" passwd -dq root >/dev/null 2>&1 || chroot "$tree" passwd -d root >/dev/null
rm -f "$tree"/boot/initrd.img* "$tree/initrd.img" "$tree/initrd.img.old"
rm -rf "$tree"/var/lib/apt/lists/* "$tree"/var/cache/apt/* "$tree"/var/log/*.log \
	"$tree"/var/cache/debconf/*-old

# ---- the initramfs: reach the root disk, overlay it, switch ---------------------------------

r="$work/initrd"
mkdir -p "$r"/{bin,dev,proc,sys,lower,rw,newroot,lib/modules}
cp "$BUSYBOX" "$r/bin/busybox"
for a in $("$BUSYBOX" --list); do
	[[ "$a" == busybox || -e "$r/bin/$a" ]] || ln -s busybox "$r/bin/$a"
done
: >"$r/modules.load"
declare -A seen=()
for m in "${INITRD_KMODS[@]}"; do
	deps=$(modprobe -d "$tree" -S "$krel" --show-depends "$m") || die "module $m not in $krel"
	while read -r kind path _; do
		[[ "$kind" == insmod ]] || continue
		b=$(basename "$path")
		[[ -z "${seen[$b]:-}" ]] || continue
		seen[$b]=1
		cp "$path" "$r/lib/modules/$b"
		printf '%s\n' "$b" >>"$r/modules.load"
	done <<<"$deps"
done
cat >"$r/init" <<'EOF_RD'
#!/bin/sh
# Initramfs /init of the desktop guest (tests/e2e/build-desktop-image.sh): load what the
# root disk needs, mount it read-only (hfe.root=, default /dev/vda) under a tmpfs overlay
# (the image stays untouched; hfe.overlay=0 mounts it read-write instead) and switch to
# init= (default /sbin/hfe-init).
export PATH=/bin
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys
root=/dev/vda overlay=1 init=/sbin/hfe-init
for a in $(cat /proc/cmdline); do
	case "$a" in
	hfe.root=*) root=${a#hfe.root=} ;;
	hfe.overlay=*) overlay=${a#hfe.overlay=} ;;
	init=*) init=${a#init=} ;;
	esac
done
while read -r m; do
	# crc32c-intel refuses CPUs without SSE4.2 (TCG's default): ext4 then uses the generic one.
	insmod "/lib/modules/$m" 2>/dev/null || case "$m" in crc32c-intel.ko) ;; *) echo "HFE-DESKTOP: initrd: insmod $m failed" ;; esac
done </modules.load
i=0
while [ ! -b "$root" ] && [ $i -lt 500 ]; do usleep 20000; i=$((i + 1)); done
fail() {
	echo "HFE-DESKTOP: initrd: $*"
	sleep 2
	poweroff -f
}
if [ "$overlay" = 1 ]; then
	mount -t ext4 -o ro,noload "$root" /lower || fail "cannot mount $root"
	mount -t tmpfs -o mode=755 rw /rw
	mkdir -p /rw/upper /rw/work
	mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work root /newroot ||
		fail "cannot mount the overlay"
else
	mount -t ext4 -o rw "$root" /newroot || fail "cannot mount $root read-write"
fi
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot "$init"
EOF_RD
chmod 0755 "$r/init"
mkdir -p "$work/out"
(cd "$r" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$work/out/initrd.img"

# ---- kernel: the bzImage and, when it has one, its PVH-bootable ELF -----------------------

cp "$tree/boot/vmlinuz-$krel" "$work/out/vmlinuz"
# The bzImage decompresses itself in real mode (~10 s under TCG); QEMU boots the ELF inside
# directly when it carries a PVH entry (Xen ELF note 0x12), as build-guest.sh does.
off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$work/out/vmlinuz" | head -n1 | cut -d: -f1 || true)
pvh=no
if [[ -n "$off" ]] && tail -c +$((off + 1)) "$work/out/vmlinuz" >"$work/vmlinux.xz" &&
	xz -dqc --single-stream "$work/vmlinux.xz" >"$work/out/vmlinux" 2>/dev/null &&
	readelf -n "$work/out/vmlinux" 2>/dev/null | grep -q 'Unknown note type: (0x00000012)'; then
	pvh=yes
else
	rm -f "$work/out/vmlinux"
fi

# ---- the root image --------------------------------------------------------------------------

tree_kib=$(du -sk "$tree" | cut -f1)
img_mib=$(((tree_kib * 115 / 100) / 1024 + 64))
log "making rootfs.img (${img_mib} MiB ext4, tree $((tree_kib / 1024)) MiB)"
# No journal: the guest mounts it read-only (under an overlay).
mke2fs -q -t ext4 -O ^has_journal -L hfe-root -d "$tree" "$work/out/rootfs.img" "${img_mib}M" ||
	die "mke2fs failed"

cp "$work/packages" "$work/out/packages"
{
	printf 'hash=%s\n' "$HASH"
	printf 'script_sha256=%s\n' "$SCRIPT_SHA"
	printf 'release=%s\nrelease_date=%s\nmirror=%s\n' "$RELEASE_ID" "$RELEASE_DATE" "$MIRROR"
	printf 'kernel_release=%s\npvh=%s\n' "$krel" "$pvh"
	printf 'packages=%s\n' "$(wc -l <"$work/packages")"
	printf 'tree_mib=%s\nrootfs_mib=%s\nrootfs_used_mib=%s\n' "$((tree_kib / 1024))" "$img_mib" \
		"$(($(du -k "$work/out/rootfs.img" | cut -f1) / 1024))"
	printf 'initrd_kib=%s\n' "$(($(stat -c %s "$work/out/initrd.img") / 1024))"
	printf 'weston=%s\nmesa=%s\n' "$(awk '$1 == "weston" { print $2 }' "$work/packages")" \
		"$(awk '$1 == "libgl1-mesa-dri" { print $2 }' "$work/packages")"
	printf 'build_seconds=%s\n' "$(($(date +%s) - t_start))"
	printf 'built=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$work/out/info"
touch "$work/out/complete"
rm -rf "$DDIR"
mv "$work/out" "$DDIR"
log "desktop image ready: $DDIR ($(grep -E '^(rootfs_mib|build_seconds)=' "$DDIR/info" | tr '\n' ' '))"

ls -dt "$CACHE"/desktop-*/ 2>/dev/null | tail -n +$((KEEP_IMAGES + 1)) | while read -r old; do
	rm -rf "$old"
done
printf '%s\n' "$DDIR"
