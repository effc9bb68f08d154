#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Build (or find in the cache) QEMU from Debian's own source package with the
# helix-frame-export module: its sources (qemu/helix/, copied to ui/helix/) and the glue
# patches that hook them into QEMU (qemu/patches/*.patch). A minimal x86_64-softmmu and
# aarch64-softmmu (the arm64 guests of the e2e tests, `-M virt`) with TCG/KVM, slirp, virtfs, seccomp (-sandbox), OpenGL (virtio-gpu-gl-pci with virglrenderer,
# -display egl-headless; GBM is found by configure) and the helix-frame-export object,
# linked against the project's libhfe (shared, from a project build directory).
# See qemu/README.md.
#
#   qemu/build.sh [--hfe-build DIR] [--cache DIR] [--jobs N] [--keep-tree] [--force]
#   qemu/build.sh --source DIR
#
#   --hfe-build DIR  the project's meson build directory whose libhfe QEMU links
#                    (default: $HFE_BUILD_DIR, else ./build of the project)
#   --cache DIR      cache directory (default: $HFE_QEMU_CACHE, $HFE_E2E_CACHE, /var/cache/hfe)
#   --jobs N         parallel compile jobs (default: nproc)
#   --keep-tree      keep the patched source and build tree (CACHE/qemu-KEY.tree)
#   --force          rebuild even when the cache has this build
#   --source DIR     only unpack Debian's QEMU source into DIR (nothing copied, patched
#                    or built) and print the tree's path; qemu/export-patches.sh uses it
#
# Prints the build's directory on stdout (last line): DIR/bin/qemu-system-x86_64,
# DIR/bin/qemu-system-aarch64, DIR/info.
# Progress goes to stderr. Cache entry: CACHE/qemu-KEY, KEY = hash of the Debian source
# version, this script, the patches, the module's sources (qemu/helix/**) and
# lib/include/hfe/*.h (the ABI QEMU is compiled against); so only those changes rebuild.
# The newest 3 builds are kept.
#
# Run the binary with the project's libhfe on the library path and Debian's firmware:
#   LD_LIBRARY_PATH=BUILD/lib DIR/bin/qemu-system-x86_64 \
#     -L /usr/share/qemu -L /usr/share/seabios -L /usr/lib/ipxe/qemu ...
#
# As root it adds deb-src entries (derived from the machine's Debian apt sources) and
# installs the build dependencies with apt-get, printing what. Exits non-zero with the
# reason when QEMU cannot be built.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
PATCHES="$HERE/patches"
MODULE="$HERE/helix"  # copied to ui/helix/ in QEMU's tree
MODULE_DEST=ui/helix
CACHE=${HFE_QEMU_CACHE:-${HFE_E2E_CACHE:-/var/cache/hfe}}
HFE_BUILD=${HFE_BUILD_DIR:-$ROOT/build}
JOBS=$(nproc 2>/dev/null || echo 2)
KEEP_TREE=0
FORCE=0
SOURCE_ONLY=
KEEP_BUILDS=3
DEB_SRC_FILE=/etc/apt/sources.list.d/hfe-deb-src.sources
DEB_SRC_LIST=/etc/apt/sources.list.d/hfe-deb-src.list

# What a minimal build needs (OpenGL: epoxy, GBM and virglrenderer; -sandbox: libseccomp;
# -display dbus: gio and gdbus-codegen, from GLib's packages; -vnc with the JPEG and PNG
# encodings noVNC asks for, as Debian's QEMU has them), and what the binary runs
# with: firmware (-L flags) and Mesa (llvmpipe where no GPU is).
BUILD_PKGS=(dpkg-dev gcc make ninja-build meson pkg-config python3 patch patchelf
	libglib2.0-dev libpixman-1-dev zlib1g-dev libfdt-dev libslirp-dev libcap-ng-dev
	libattr1-dev libseccomp-dev libepoxy-dev libgbm-dev libdrm-dev libvirglrenderer-dev
	libjpeg62-turbo-dev libpng-dev)
FIRMWARE_PKGS=(qemu-system-x86 seabios ipxe-qemu libgl1-mesa-dri libegl-mesa0)

# Both targets in one tree: they share the target-independent half of the build (the
# module, ui/, block/, chardev/, ...), so the second one adds only its own objects.
TARGETS=(x86_64 aarch64)
BINS=("${TARGETS[@]/#/qemu-system-}")
CONFIGURE_FLAGS=(--target-list="$(IFS=,; echo "${TARGETS[*]/%/-softmmu}")" --without-default-features
	--enable-tcg --enable-kvm --enable-slirp --enable-virtfs --enable-attr --enable-cap-ng
	--enable-vhost-kernel --enable-vhost-net --enable-fdt=system --enable-seccomp
	--enable-opengl --enable-virglrenderer --enable-gio --enable-dbus-display --enable-helix
	--enable-vnc --enable-vnc-jpeg --enable-png
	--disable-docs --disable-debug-info --disable-werror)

log() { printf 'qemu/build.sh: %s\n' "$*" >&2; }
die() {
	printf 'qemu/build.sh: ERROR: %s\n' "$*" >&2
	exit 1
}

while [[ $# -gt 0 ]]; do
	case "$1" in
	--hfe-build) HFE_BUILD=${2:?--hfe-build needs a directory}; shift 2 ;;
	--cache) CACHE=${2:?--cache needs a directory}; shift 2 ;;
	--jobs) JOBS=${2:?--jobs needs a number}; shift 2 ;;
	--keep-tree) KEEP_TREE=1; shift ;;
	--force) FORCE=1; shift ;;
	--source) SOURCE_ONLY=${2:?--source needs a directory}; shift 2 ;;
	-h | --help) sed -n '4,38s/^# \{0,1\}//p' "$SELF"; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done

shopt -s nullglob
patches=("$PATCHES"/*.patch)
shopt -u nullglob
[[ ${#patches[@]} -gt 0 ]] || die "no patches in $PATCHES"
[[ -f "$MODULE/meson.build" ]] || die "no module sources in $MODULE"
IS_ROOT=0
[[ $(id -u) -eq 0 ]] && IS_ROOT=1

# ---- apt ------------------------------------------------------------------------------

apt_updated=0
apt_update() {
	[[ $apt_updated -eq 0 ]] || return 0
	apt_updated=1
	log "apt-get update"
	apt-get update -q >&2 || log "apt-get update failed"
}

installed() {
	local st
	st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null) || return 1
	[[ "$st" == ii* ]]
}

install_missing() {
	local missing=() p
	for p in "$@"; do
		installed "$p" || missing+=("$p")
	done
	[[ ${#missing[@]} -gt 0 ]] || return 0
	[[ $IS_ROOT -eq 1 ]] ||
		die "missing packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})"
	log "installing packages: ${missing[*]}"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		"${missing[@]}" >&2; then
		apt_update
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			"${missing[@]}" >&2 ||
			die "cannot install ${missing[*]} (no network to apt?)"
	fi
}

# The .dsc apt-get source would fetch: "qemu_VERSION.dsc" (no epoch), or nothing.
source_dsc() {
	apt-get source --print-uris qemu 2>/dev/null |
		awk '$2 ~ /^qemu_.*\.dsc$/ { print $2; exit }' || true
}

# deb-src entries for the machine's Debian sources, written next to them. deb822 files:
# each Debian stanza again with "Types: deb-src"; one-line lists: "deb " -> "deb-src ".
add_deb_src() {
	local f tmp
	tmp=$(mktemp)
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ "$f" == "$DEB_SRC_FILE" ]] && continue
		# Paragraph mode: stanzas with Types: deb on Debian's archive, enabled.
		awk 'BEGIN { RS = ""; ORS = "\n\n" }
		     /(^|\n)Types:[^\n]*(^|[ \t])deb([ \t]|\n|$)/ && /URIs:[^\n]*debian/ &&
		     !/(^|\n)Enabled:[ \t]*no/' "$f" |
			sed -e 's/^Types:.*/Types: deb-src/' >>"$tmp"
	done
	if [[ -s "$tmp" ]]; then
		log "adding deb-src entries: $DEB_SRC_FILE (from the Debian stanzas of $(
			echo /etc/apt/sources.list.d/*.sources | tr ' ' ','))"
		install -m 0644 "$tmp" "$DEB_SRC_FILE"
	else
		cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
			grep -E '^deb[[:space:]]' | grep -i debian |
			sed -e 's/^deb\([[:space:]]\)/deb-src\1/' >"$tmp" || true
		if [[ ! -s "$tmp" ]]; then
			rm -f "$tmp"
			die "no Debian apt sources to derive deb-src entries from"
		fi
		log "adding deb-src entries: $DEB_SRC_LIST (from sources.list)"
		install -m 0644 "$tmp" "$DEB_SRC_LIST"
	fi
	rm -f "$tmp"
}

# ---- what to build --------------------------------------------------------------------

mkdir -p "$CACHE"
DSC=$(source_dsc)
if [[ -z "$DSC" && $IS_ROOT -eq 1 ]]; then
	if [[ ! -f "$DEB_SRC_FILE" && ! -f "$DEB_SRC_LIST" ]]; then
		add_deb_src
	fi
	apt_update
	DSC=$(source_dsc)
fi
SRCVER=
if [[ -n "$DSC" ]]; then
	SRCVER=${DSC#qemu_}
	SRCVER=${SRCVER%.dsc}
fi

# apt-get source qemu into $1 (dpkg-source applies Debian's patches); prints the tree.
unpack_source() {
	local dir=$1 src
	log "qemu $SRCVER: apt-get source into $dir"
	(cd "$dir" && apt-get source -q -o APT::Sandbox::User=root "qemu" >&2 9>&-) ||
		die "apt-get source qemu failed (no network to the apt sources?)"
	src=$(find "$dir" -mindepth 1 -maxdepth 1 -type d -name 'qemu-*' | head -n1)
	[[ -n "$src" && -f "$src/configure" ]] || die "apt-get source qemu unpacked no source tree"
	[[ -f "$dir/$DSC" ]] || die "apt-get source fetched another version than $DSC"
	printf '%s\n' "$src"
}

if [[ -n "$SOURCE_ONLY" ]]; then
	[[ -n "$SRCVER" ]] || die "apt knows no qemu source package (no deb-src entries?)"
	mkdir -p "$SOURCE_ONLY"
	unpack_source "$(cd "$SOURCE_ONLY" && pwd)"
	exit 0
fi

# P: everything of ours that goes into the binary; KEY adds the Debian source version.
P=$({
	sha256sum <"$SELF"
	for p in "${patches[@]}"; do
		printf '%s ' "$(basename "$p")"
		sha256sum <"$p"
	done
	(cd "$MODULE" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
	for h in "$ROOT"/lib/include/hfe/*.h; do
		printf '%s ' "$(basename "$h")"
		sha256sum <"$h"
	done
} | sha256sum | cut -c1-16)

if [[ -z "$SRCVER" ]]; then
	# No deb-src (not root, or offline): a cached build of the same patches will do.
	for d in $(ls -dt "$CACHE"/qemu-*/ 2>/dev/null); do
		d=${d%/}
		if [[ -f "$d/complete" ]] && grep -qx "patches_key=$P" "$d/info"; then
			log "apt has no qemu source (no deb-src entries?);" \
				"using cached $(basename "$d")"
			printf '%s\n' "$d"
			exit 0
		fi
	done
	if [[ $IS_ROOT -eq 0 ]]; then
		die "apt knows no qemu source package and nothing is cached;" \
			"run as root once (adds deb-src entries: $DEB_SRC_FILE)"
	fi
	die "apt-get source qemu finds nothing even after adding deb-src entries" \
		"(no network to the apt sources?)"
fi

KEY=$(printf 'qemu %s\n%s\n' "$SRCVER" "$P" | sha256sum | cut -c1-16)
OUT="$CACHE/qemu-$KEY"

if [[ $FORCE -eq 0 && -f "$OUT/complete" ]]; then
	touch "$OUT"
	log "cached: $OUT (qemu $SRCVER, $(sed -n 's/^build_seconds=//p' "$OUT/info") s to build)"
	printf '%s\n' "$OUT"
	exit 0
fi

# ---- build ----------------------------------------------------------------------------

PC="$HFE_BUILD/meson-uninstalled/libhfe-uninstalled.pc"
[[ -f "$PC" ]] ||
	die "no $PC: build the project first (meson setup build && ninja -C build)," \
		"or pass --hfe-build DIR"
[[ -e "$HFE_BUILD/lib/libhfe.so" ]] ||
	die "no $HFE_BUILD/lib/libhfe.so: build the project first (ninja -C $HFE_BUILD)"
HFE_BUILD=$(cd "$HFE_BUILD" && pwd)

install_missing "${BUILD_PKGS[@]}" "${FIRMWARE_PKGS[@]}"

# One build at a time; a second caller waits, then finds the result in the cache.
exec 9>"$CACHE/.qemu-lock"
flock -w 3600 9 || die "cannot lock $CACHE/.qemu-lock"
if [[ $FORCE -eq 0 && -f "$OUT/complete" ]]; then
	printf '%s\n' "$OUT"
	exit 0
fi

t0=$(date +%s)
TREE="$CACHE/qemu-$KEY.tree"
rm -rf "$TREE"
mkdir -p "$TREE"
[[ $KEEP_TREE -eq 1 ]] || trap 'rm -rf "$TREE"' EXIT
trap 'exit 1' INT TERM # so that the EXIT trap runs
SRC=$(unpack_source "$TREE")

log "copying the module: qemu/helix -> $MODULE_DEST"
[[ ! -e "$SRC/$MODULE_DEST" ]] || die "qemu $SRCVER already has $MODULE_DEST"
cp -r "$MODULE" "$SRC/$MODULE_DEST"
for p in "${patches[@]}"; do
	log "applying $(basename "$p")"
	patch -d "$SRC" -p1 --batch --forward --no-backup-if-mismatch -s <"$p" >&2 ||
		die "$(basename "$p") does not apply to qemu $SRCVER"
done

log "configure ${CONFIGURE_FLAGS[*]}"
log "  libhfe from $HFE_BUILD (PKG_CONFIG_PATH=$HFE_BUILD/meson-uninstalled)"
mkdir -p "$SRC/build"
(cd "$SRC/build" &&
	PKG_CONFIG_PATH="$HFE_BUILD/meson-uninstalled${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" \
		../configure "${CONFIGURE_FLAGS[@]}" >"$TREE/configure.log" 2>&1 9>&-) || {
	tail -n 30 "$TREE/configure.log" >&2
	die "configure failed (log above; $TREE/configure.log with --keep-tree)"
}
t1=$(date +%s)
log "ninja -j$JOBS ${BINS[*]} (configured in $((t1 - t0)) s)"
# (9>&-: the lock is ours, not the compilers'; a killed build.sh must not leave it held)
ninja -C "$SRC/build" -j"$JOBS" "${BINS[@]}" >"$TREE/ninja.log" 2>&1 9>&- || {
	grep -E -B3 -A10 'error|Error' "$TREE/ninja.log" | tail -n 60 >&2
	die "the build failed (errors above)"
}
t2=$(date +%s)

mkdir -p "$TREE/out/bin"
for b in "${BINS[@]}"; do
	cp "$SRC/build/$b" "$TREE/out/bin/"
	# Meson leaves the libhfe build directory as RUNPATH; the cached binary must not
	# depend on which project build linked it: LD_LIBRARY_PATH names the libhfe to use.
	patchelf --remove-rpath "$TREE/out/bin/$b"
	LD_LIBRARY_PATH="$HFE_BUILD/lib" "$TREE/out/bin/$b" -object help 2>&1 |
		grep -q 'helix-frame-export' || die "the built $b has no helix-frame-export object"
	LD_LIBRARY_PATH="$HFE_BUILD/lib" "$TREE/out/bin/$b" -device help 2>&1 |
		grep -q '"virtio-gpu-gl-pci"' || die "the built $b has no virtio-gpu-gl-pci (OpenGL off?)"
	LD_LIBRARY_PATH="$HFE_BUILD/lib" "$TREE/out/bin/$b" -display help 2>&1 |
		grep -qx 'egl-headless' || die "the built $b has no egl-headless display"
done
{
	printf 'key=%s\n' "$KEY"
	printf 'patches_key=%s\n' "$P"
	printf 'qemu_source=%s\n' "$SRCVER"
	printf 'patches=%s\n' "$(for p in "${patches[@]}"; do basename "$p"; done | tr '\n' ' ')"
	printf 'module=%s\n' "$(cd "$MODULE" && find . -type f | LC_ALL=C sort | tr '\n' ' ')"
	printf 'configure=%s\n' "${CONFIGURE_FLAGS[*]}"
	printf 'hfe_build=%s\n' "$HFE_BUILD"
	printf 'build_seconds=%s\n' "$((t2 - t0))"
	printf 'compile_seconds=%s\n' "$((t2 - t1))"
	printf 'jobs=%s\n' "$JOBS"
	printf 'built=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$TREE/out/info"
touch "$TREE/out/complete"
rm -rf "$OUT"
mv "$TREE/out" "$OUT"
if [[ $KEEP_TREE -eq 1 ]]; then
	log "kept the tree: $SRC (rebuild: ninja -C $SRC/build ${BINS[*]})"
else
	rm -rf "$TREE"
fi

ls -dt "$CACHE"/qemu-*/ 2>/dev/null | grep -v '\.tree/$' | tail -n +$((KEEP_BUILDS + 1)) |
	while read -r old; do
		rm -rf "${old%/}" "${old%/}.tree"
	done
log "built qemu $SRCVER with the module and ${#patches[@]} glue patches in $((t2 - t0)) s" \
	"(configure $((t1 - t0)) s, compile $((t2 - t1)) s, $JOBS jobs): $OUT"
printf '%s\n' "$OUT"
