#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Build (or find in the cache) the Linux guest of the end-to-end tests: Debian 12's own
# kernel and a busybox-static initramfs holding /init (tests/e2e/guest/init), the static
# test program hfe-guest and the kernel modules the guest needs. See docs/e2e.md.
#
#   build-guest.sh --tool PATH/hfe-guest [--cache DIR]
#
# Prints the guest's directory on stdout (vmlinuz, vmlinux when the kernel has a PVH entry,
# initrd.img, info); progress on stderr.
# Cache (default /var/cache/hfe, or $HFE_E2E_CACHE):
#   kernel-PKG_VERSION-M/ the kernel and the needed modules (M: hash of the module lists),
#                        from `apt-get download` of the package linux-image-amd64 depends on
#   guest-HASH/          the initramfs; HASH covers the kernel package and version, this
#                        script, guest/init and the (stripped) hfe-guest binary
# Missing host packages (busybox-static, kmod, cpio, xz-utils, qemu-system-x86) are installed
# with apt-get when run as root. Exits non-zero with a reason when the guest cannot be built
# (e.g. no network to the apt sources and nothing cached).

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
INIT="$HERE/guest/init"
CACHE=${HFE_E2E_CACHE:-/var/cache/hfe}
TOOL=
KEEP_GUESTS=6
# Loaded by /init in this order (their dependencies first); built-in ones are skipped. The
# extra ones (9p host file systems, overlay, vsock) only with hfe.extra=1: they cost boot time.
MODULES=(virtio_pci virtio_console virtio_gpu virtio_input evdev)
MODULES_EXTRA=(9pnet_virtio 9p overlay vmw_vsock_virtio_transport virtio_net)
# Also qemu-system-x86: the tests boot the guest with it, and a self-built QEMU needs its firmware.
HOST_PKGS=(busybox-static kmod cpio xz-utils qemu-system-x86)

log() { printf 'build-guest: %s\n' "$*" >&2; }
die() {
	printf 'build-guest: ERROR: %s\n' "$*" >&2
	exit 1
}

while [[ $# -gt 0 ]]; do
	case "$1" in
	--tool) TOOL=${2:?--tool needs a path}; shift 2 ;;
	--cache) CACHE=${2:?--cache needs a directory}; shift 2 ;;
	-h | --help) sed -n '4,20s/^# \{0,1\}//p' "$SELF"; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done
[[ -n "$TOOL" ]] || die "--tool PATH/hfe-guest is required"
[[ -x "$TOOL" ]] || die "guest tool '$TOOL' is missing or not executable (build it first)"
[[ -f "$INIT" ]] || die "missing $INIT"

# ---- host packages --------------------------------------------------------------------

installed() {
	local st
	st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null) || return 1
	[[ "$st" == ii* ]]
}

apt_updated=0
apt_update() {
	[[ $apt_updated -eq 0 ]] || return 0
	apt_updated=1
	log "apt-get update"
	apt-get update -q >&2 || log "apt-get update failed"
}

missing=()
for p in "${HOST_PKGS[@]}"; do
	installed "$p" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
	[[ $(id -u) -eq 0 ]] ||
		die "missing packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})"
	log "installing packages: ${missing[*]}"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		"${missing[@]}" >&2; then
		apt_update
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			"${missing[@]}" >&2 || die "cannot install ${missing[*]} (no network to apt?)"
	fi
fi

BUSYBOX=$(dpkg -L busybox-static | grep -E '/s?bin/busybox$' | head -n1)
[[ -x "$BUSYBOX" ]] || die "busybox-static is installed but its busybox binary was not found"
if readelf -l "$BUSYBOX" 2>/dev/null | grep -q 'Requesting program interpreter'; then
	die "$BUSYBOX is dynamically linked; the guest needs busybox-static's"
fi
if readelf -l "$TOOL" 2>/dev/null | grep -q 'Requesting program interpreter'; then
	die "$TOOL is dynamically linked; the guest has no libc: link it with -static"
fi

mkdir -p "$CACHE"
# One builder at a time (tests may run concurrently); the lock is released on exit.
exec 9>"$CACHE/.lock"
flock -w 600 9 || die "cannot lock $CACHE/.lock"

# ---- kernel ---------------------------------------------------------------------------

kernel_pkg() {
	apt-cache depends --important linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }'
}

KPKG=${HFE_E2E_KERNEL_PKG:-$(kernel_pkg)}
if [[ -z "$KPKG" ]]; then
	[[ $(id -u) -eq 0 ]] && apt_update
	KPKG=$(kernel_pkg)
fi
if [[ -z "$KPKG" ]]; then
	# Offline and without apt lists: use the newest cached kernel, if any.
	kdir=$(ls -dt "$CACHE"/kernel-*/ 2>/dev/null | head -n1 || true)
	[[ -n "$kdir" ]] ||
		die "cannot resolve linux-image-amd64 (no apt lists, apt-get update failed) and no kernel is cached in $CACHE"
	KDIR=${kdir%/}
	KPKG=$(cat "$KDIR/package")
	KVER=$(cat "$KDIR/version")
	log "apt cannot resolve linux-image-amd64: using cached $KPKG $KVER"
else
	KVER=$(apt-cache show --no-all-versions "$KPKG" 2>/dev/null |
		awk '/^Version:/ { print $2; exit }' || true)
	[[ -n "$KVER" ]] || die "apt knows no version of $KPKG"
	# The module lists are part of the key: changing them refetches the kernel.
	mods=$(printf '%s\n' "${MODULES[@]}" -- "${MODULES_EXTRA[@]}" | sha256sum | cut -c1-8)
	KDIR="$CACHE/kernel-${KPKG}_${KVER//:/_}-$mods"
fi

if [[ ! -f "$KDIR/complete" ]]; then
	log "fetching kernel $KPKG $KVER"
	tmp=$(mktemp -d "$CACHE/.kernel.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	if ! (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$KPKG=$KVER" >&2); then
		[[ $(id -u) -eq 0 ]] && apt_update
		(cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$KPKG=$KVER" >&2) ||
			die "cannot download $KPKG=$KVER (no network to the apt sources?)"
	fi
	log "unpacking $(basename "$tmp"/*.deb)"
	dpkg -x "$tmp"/*.deb "$tmp/root"
	rel=$(ls "$tmp/root/lib/modules")
	[[ -n "$rel" && -f "$tmp/root/boot/vmlinuz-$rel" ]] || die "$KPKG: no kernel or modules inside"
	depmod -b "$tmp/root" "$rel"
	mkdir -p "$tmp/out/modules"
	declare -A seen=()
	# add_modules LIST_FILE MODULE...: the modules' .ko files and their dependencies, in
	# load order, each once over both lists.
	add_modules() {
		local list=$1 m deps kind path b
		shift
		: >"$list"
		for m in "$@"; do
			deps=$(modprobe -d "$tmp/root" -S "$rel" --show-depends "$m") ||
				die "module $m not found in $KPKG"
			while read -r kind path; do
				[[ "$kind" == insmod ]] || continue # "builtin NAME": nothing to load
				b=$(basename "$path")
				[[ -z "${seen[$b]:-}" ]] || continue
				seen[$b]=1
				cp "$path" "$tmp/out/modules/$b"
				printf '%s\n' "$b" >>"$list"
			done <<<"$deps"
		done
	}
	add_modules "$tmp/out/modules.load" "${MODULES[@]}"
	add_modules "$tmp/out/modules-extra.load" "${MODULES_EXTRA[@]}"
	cp "$tmp/root/boot/vmlinuz-$rel" "$tmp/out/vmlinuz"
	# The bzImage decompresses itself in real mode, ~10 s under TCG. The ELF inside (PVH
	# entry point, CONFIG_PVH) boots directly with QEMU's -kernel: keep it when found.
	off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$tmp/out/vmlinuz" | head -n1 | cut -d: -f1 || true)
	notes=
	if [[ -n "$off" ]] && tail -c +$((off + 1)) "$tmp/out/vmlinuz" >"$tmp/vmlinux.xz" &&
		xz -dqc --single-stream "$tmp/vmlinux.xz" >"$tmp/out/vmlinux" 2>/dev/null; then
		notes=$(readelf -n "$tmp/out/vmlinux" 2>/dev/null || true)
	fi
	# Xen ELF note 0x12 = XEN_ELFNOTE_PHYS32_ENTRY, the PVH entry point.
	if grep -q 'Unknown note type: (0x00000012)' <<<"$notes"; then
		log "extracted the PVH-bootable vmlinux"
	else
		rm -f "$tmp/out/vmlinux"
		log "no PVH vmlinux in the bzImage: the guest boots the bzImage (slower under TCG)"
	fi
	cp "$tmp/root/boot/config-$rel" "$tmp/out/config"
	printf '%s\n' "$rel" >"$tmp/out/release"
	printf '%s\n' "$KPKG" >"$tmp/out/package"
	printf '%s\n' "$KVER" >"$tmp/out/version"
	touch "$tmp/out/complete"
	rm -rf "$KDIR"
	mv "$tmp/out" "$KDIR"
	rm -rf "$tmp"
	trap - EXIT
	log "kernel $rel cached in $KDIR ($(cat "$KDIR"/modules*.load | wc -l) modules)"
fi

# ---- initramfs ------------------------------------------------------------------------

work=$(mktemp -d "$CACHE/.guest.XXXXXX")
trap 'rm -rf "$work"' EXIT
strip -o "$work/hfe-guest" "$TOOL"
HASH=$({
	printf 'kernel %s=%s\n' "$KPKG" "$KVER"
	sha256sum <"$SELF"
	sha256sum <"$INIT"
	sha256sum <"$work/hfe-guest"
} | sha256sum | cut -c1-16)
GDIR="$CACHE/guest-$HASH"

if [[ -f "$GDIR/complete" ]]; then
	touch "$GDIR"
	printf '%s\n' "$GDIR"
	exit 0
fi

log "building initramfs guest-$HASH"
r="$work/root"
mkdir -p "$r"/{bin,dev,proc,sys,tmp,run,etc,lib/modules}
cp "$BUSYBOX" "$r/bin/busybox"
for a in $("$BUSYBOX" --list); do
	[[ "$a" == busybox || -e "$r/bin/$a" ]] || ln -s busybox "$r/bin/$a"
done
install -m 0755 "$INIT" "$r/init"
install -m 0755 "$work/hfe-guest" "$r/bin/hfe-guest"
cp "$KDIR"/modules/*.ko "$r/lib/modules/"
cp "$KDIR/modules.load" "$r/etc/hfe-modules"
cp "$KDIR/modules-extra.load" "$r/etc/hfe-modules-extra"
# The kernel opens /dev/console before /init runs; without the node /init starts with no
# stdout until it mounts devtmpfs (it copes, but the early messages would be lost).
if [[ $(id -u) -eq 0 ]]; then
	mknod -m 600 "$r/dev/console" c 5 1
fi
(cd "$r" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) \
	>"$work/initrd.img"

mkdir -p "$work/out"
mv "$work/initrd.img" "$work/out/initrd.img"
cp "$KDIR/vmlinuz" "$work/out/vmlinuz"
if [[ -f "$KDIR/vmlinux" ]]; then
	ln "$KDIR/vmlinux" "$work/out/vmlinux" 2>/dev/null || cp "$KDIR/vmlinux" "$work/out/vmlinux"
fi
{
	printf 'hash=%s\n' "$HASH"
	printf 'kernel_package=%s\nkernel_version=%s\nkernel_release=%s\n' \
		"$KPKG" "$KVER" "$(cat "$KDIR/release")"
	printf 'modules=%s\n' "$(tr '\n' ' ' <"$KDIR/modules.load")"
	printf 'modules_extra=%s\n' "$(tr '\n' ' ' <"$KDIR/modules-extra.load")"
	printf 'pvh=%s\n' "$([[ -f "$KDIR/vmlinux" ]] && echo yes || echo no)"
	printf 'tool_sha256=%s\n' "$(sha256sum <"$work/hfe-guest" | cut -d' ' -f1)"
	printf 'busybox=%s\n' "$("$BUSYBOX" | head -n1)"
	printf 'built=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$work/out/info"
touch "$work/out/complete"
rm -rf "$GDIR"
mv "$work/out" "$GDIR"
log "guest ready: $GDIR (initrd $(du -k "$GDIR/initrd.img" | cut -f1) KiB)"

# Keep the newest few guests only.
ls -dt "$CACHE"/guest-*/ 2>/dev/null | tail -n +$((KEEP_GUESTS + 1)) | while read -r old; do
	rm -rf "$old"
done
printf '%s\n' "$GDIR"
