#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Build (or find in the cache) the Linux guest of the end-to-end tests: Debian 12's own
# kernel and a busybox-static initramfs holding /init (tests/e2e/guest/init), the static
# test program hfe-guest and the kernel modules the guest needs. See docs/e2e.md.
#
#   build-guest.sh --tool PATH/hfe-guest [--arch x86_64|aarch64] [--cache DIR]
#
# --arch aarch64 makes the arm64 guest (QEMU's -M virt): Debian's arm64 kernel and
# busybox-static:arm64 (dpkg --add-architecture arm64, apt-get download, dpkg-deb -x);
# --tool must then be the aarch64 build of hfe-guest.
#
# Prints the guest's directory on stdout (vmlinuz, vmlinux when the kernel has a PVH entry,
# initrd.img, info); progress on stderr.
# Cache (default /var/cache/hfe, or $HFE_E2E_CACHE):
#   kernel-PKG_VERSION-M/ the kernel and the needed modules (M: hash of the module lists),
#                        from `apt-get download` of the package linux-image-amd64 (arm64:
#                        linux-image-arm64) depends on
#   busybox-arm64_VERSION/ busybox-static:arm64's binary (the arm64 guest only)
#   guest-HASH/          the initramfs; HASH covers the architecture, the kernel package
#                        and version, busybox's, this script, guest/init and the (stripped)
#                        hfe-guest binary
# Missing host packages (busybox-static, kmod, cpio, xz-utils, binutils-aarch64-linux-gnu,
# and the QEMU that boots the guest: qemu-system-x86 or qemu-system-arm) are installed
# with apt-get when run as root. Exits non-zero with a reason when the guest cannot be built
# (e.g. no network to the apt sources and nothing cached).

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
INIT="$HERE/guest/init"
CACHE=${HFE_E2E_CACHE:-/var/cache/hfe}
TOOL=
ARCH=x86_64
KEEP_GUESTS=6
# Loaded by /init in this order (their dependencies first); built-in ones are skipped. The
# extra ones (9p host file systems, overlay, vsock) only with hfe.extra=1: they cost boot time.
MODULES=(virtio_pci virtio_console virtio_gpu virtio_input evdev)
MODULES_EXTRA=(9pnet_virtio 9p overlay vmw_vsock_virtio_transport virtio_net)
# busybox-static: the guest's busybox (x86_64), the list of its applets (both: arm64's
# binary cannot run here, and the same Debian version has the same applets). Also the
# QEMU the tests boot the guest with (qemu-system-x86 also has a self-built QEMU's firmware).
HOST_PKGS=(busybox-static kmod cpio xz-utils)

log() { printf 'build-guest: %s\n' "$*" >&2; }
die() {
	printf 'build-guest: ERROR: %s\n' "$*" >&2
	exit 1
}

while [[ $# -gt 0 ]]; do
	case "$1" in
	--tool) TOOL=${2:?--tool needs a path}; shift 2 ;;
	--cache) CACHE=${2:?--cache needs a directory}; shift 2 ;;
	--arch) ARCH=${2:?--arch needs x86_64 or aarch64}; shift 2 ;;
	-h | --help) sed -n '4,29s/^# \{0,1\}//p' "$SELF"; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done
[[ -n "$TOOL" ]] || die "--tool PATH/hfe-guest is required"
[[ -x "$TOOL" ]] || die "guest tool '$TOOL' is missing or not executable (build it first)"
[[ -f "$INIT" ]] || die "missing $INIT"
# DEBARCH: Debian's name; MACHINE: readelf -h's, for checking the tool.
case "$ARCH" in
x86_64) DEBARCH=amd64 MACHINE='Advanced Micro Devices X86-64' HOST_PKGS+=(qemu-system-x86) ;;
aarch64) DEBARCH=arm64 MACHINE=AArch64 HOST_PKGS+=(qemu-system-arm binutils-aarch64-linux-gnu) ;;
*) die "unknown --arch '$ARCH' (x86_64 or aarch64)" ;;
esac

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
readelf -h "$TOOL" 2>/dev/null | grep -q "Machine: *$MACHINE\$" ||
	die "$TOOL is not an $ARCH program (readelf -h: $(readelf -h "$TOOL" 2>&1 |
		sed -n 's/^ *Machine: *//p'))"

# The arm64 packages come from the same apt sources once dpkg knows the architecture.
if [[ $DEBARCH != "$(dpkg --print-architecture)" ]] &&
	! dpkg --print-foreign-architectures | grep -qx "$DEBARCH"; then
	[[ $(id -u) -eq 0 ]] ||
		die "dpkg does not know $DEBARCH (run: sudo dpkg --add-architecture $DEBARCH && sudo apt-get update)"
	log "dpkg --add-architecture $DEBARCH"
	dpkg --add-architecture "$DEBARCH"
	apt_update
fi

mkdir -p "$CACHE"
# One builder at a time (tests may run concurrently); the lock is released on exit.
exec 9>"$CACHE/.lock"
flock -w 600 9 || die "cannot lock $CACHE/.lock"

# apt-get download PKG=VERSION into DIR (once more after apt-get update if that fails).
download() {
	(cd "$2" && apt-get download -q -o APT::Sandbox::User=root "$1" >&2) && return 0
	[[ $(id -u) -eq 0 ]] && apt_update
	(cd "$2" && apt-get download -q -o APT::Sandbox::User=root "$1" >&2) ||
		die "cannot download $1 (no network to the apt sources?)"
}

# ---- kernel ---------------------------------------------------------------------------

# The package linux-image-DEBARCH depends on, without apt's ":arm64" suffix.
kernel_pkg() {
	apt-cache depends --important "linux-image-$DEBARCH:$DEBARCH" 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { sub(/:.*/, "", $2); print $2; exit }'
}

KPKG=${HFE_E2E_KERNEL_PKG:-$(kernel_pkg)}
if [[ -z "$KPKG" ]]; then
	[[ $(id -u) -eq 0 ]] && apt_update
	KPKG=$(kernel_pkg)
fi
if [[ -z "$KPKG" ]]; then
	# Offline and without apt lists: use the newest cached kernel, if any.
	kdir=$(ls -dt "$CACHE"/kernel-linux-image-*-"$DEBARCH"_*/ 2>/dev/null | head -n1 || true)
	[[ -n "$kdir" ]] ||
		die "cannot resolve linux-image-$DEBARCH (no apt lists, apt-get update failed) and no kernel is cached in $CACHE"
	KDIR=${kdir%/}
	KPKG=$(cat "$KDIR/package")
	KVER=$(cat "$KDIR/version")
	log "apt cannot resolve linux-image-$DEBARCH: using cached $KPKG $KVER"
else
	KVER=$(apt-cache show --no-all-versions "$KPKG:$DEBARCH" 2>/dev/null |
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
	download "$KPKG:$DEBARCH=$KVER" "$tmp"
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
	# (arm64's vmlinuz is a gzipped Image that QEMU unpacks itself: nothing to find.)
	off=
	[[ $ARCH != x86_64 ]] || off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$tmp/out/vmlinuz" | head -n1 | cut -d: -f1 || true)
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
		[[ $ARCH != x86_64 ]] ||
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

# ---- busybox --------------------------------------------------------------------------

# x86_64: the host's busybox-static. arm64: busybox-static:arm64's binary, cached.
if [[ $ARCH == x86_64 ]]; then
	GBUSYBOX=$BUSYBOX
	BBVER=$(dpkg-query -W -f='${Version}' busybox-static)
else
	BBVER=$(apt-cache show --no-all-versions "busybox-static:$DEBARCH" 2>/dev/null |
		awk '/^Version:/ { print $2; exit }' || true)
	if [[ -n "$BBVER" ]]; then
		BBDIR="$CACHE/busybox-${DEBARCH}_${BBVER//:/_}"
	else
		bdir=$(ls -dt "$CACHE"/busybox-"$DEBARCH"_*/ 2>/dev/null | head -n1 || true)
		[[ -n "$bdir" ]] ||
			die "apt knows no busybox-static:$DEBARCH and none is cached in $CACHE"
		BBDIR=${bdir%/}
		BBVER=$(cat "$BBDIR/version")
		log "apt cannot resolve busybox-static:$DEBARCH: using cached $BBVER"
	fi
	if [[ ! -f "$BBDIR/complete" ]]; then
		log "fetching busybox-static:$DEBARCH $BBVER"
		tmp=$(mktemp -d "$CACHE/.busybox.XXXXXX")
		trap 'rm -rf "$tmp"' EXIT
		download "busybox-static:$DEBARCH=$BBVER" "$tmp"
		dpkg-deb -x "$tmp"/*.deb "$tmp/root"
		mkdir -p "$tmp/out"
		cp "$tmp/root/bin/busybox" "$tmp/out/busybox" ||
			die "busybox-static:$DEBARCH has no /bin/busybox"
		printf '%s\n' "$BBVER" >"$tmp/out/version"
		touch "$tmp/out/complete"
		rm -rf "$BBDIR"
		mv "$tmp/out" "$BBDIR"
		rm -rf "$tmp"
		trap - EXIT
	fi
	GBUSYBOX="$BBDIR/busybox"
	readelf -h "$GBUSYBOX" | grep -q "Machine: *$MACHINE\$" ||
		die "$GBUSYBOX is not an $ARCH program"
fi

# ---- initramfs ------------------------------------------------------------------------

work=$(mktemp -d "$CACHE/.guest.XXXXXX")
trap 'rm -rf "$work"' EXIT
if [[ $ARCH == aarch64 ]]; then
	aarch64-linux-gnu-strip -o "$work/hfe-guest" "$TOOL"
else
	strip -o "$work/hfe-guest" "$TOOL"
fi
HASH=$({
	printf 'arch %s busybox %s\n' "$ARCH" "$BBVER"
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
cp "$GBUSYBOX" "$r/bin/busybox"
# The host's busybox names the applets (an arm64 one cannot run here).
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
	printf 'hash=%s\narch=%s\n' "$HASH" "$ARCH"
	printf 'kernel_package=%s\nkernel_version=%s\nkernel_release=%s\n' \
		"$KPKG" "$KVER" "$(cat "$KDIR/release")"
	printf 'modules=%s\n' "$(tr '\n' ' ' <"$KDIR/modules.load")"
	printf 'modules_extra=%s\n' "$(tr '\n' ' ' <"$KDIR/modules-extra.load")"
	printf 'pvh=%s\n' "$([[ -f "$KDIR/vmlinux" ]] && echo yes || echo no)"
	printf 'tool_sha256=%s\n' "$(sha256sum <"$work/hfe-guest" | cut -d' ' -f1)"
	printf 'busybox=busybox-static %s (%s)\n' "$BBVER" "$DEBARCH"
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
