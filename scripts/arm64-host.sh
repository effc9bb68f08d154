#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The arm64 host job: build the whole project for arm64 (aarch64) and run its tests there,
# under qemu-user on this x86_64 machine. See README, "The arm64 host job".
#
#   arm64-host.sh [--build-dir DIR] [--cache DIR] [--suites LIST] [--setup-only]
#
# 1. An arm64 Debian 12 root (mmdebstrap, cached in $HFE_E2E_CACHE or /var/cache/hfe as
#    arm64-root-HASH, HASH covering its package list and the part of this script that makes
#    it; the newest 2 are kept) holds every arm64
#    library the project builds against: FFmpeg, libyuv, GLib, GStreamer with the plugins
#    base and its dev files (not multi-arch), libsoup 3 (no :arm64 multiarch package).
# 2. One Meson cross build (Debian's gcc-aarch64-linux-gnu, native speed) with that root as
#    its sysroot: libhfe, the daemon, hfe-client, hfe-guest (static), the GStreamer plugin,
#    hfe-viewer and the tests.
# 3. `meson test` of the suites in LIST (default: unit,integration) on the host; every test
#    program and each daemon it starts runs as an arm64 process: binfmt_misc hands it to
#    qemu-aarch64-static, whose library prefix (QEMU_LD_PREFIX) is that root. Left out:
#    test_confine only (qemu-user has no seccomp; the daemon runs with HFE_SECCOMP=off).
#    HFE_TEST_TIME_SCALE=8 lets the tests that time things wait up to 8x longer (they check
#    the same things); test_owner_calls counts only the threads that appear with its stream.
# Ends with meson's summary; exits non-zero if a test failed. Needs root (mmdebstrap,
# binfmt_misc, apt-get for missing host packages).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$ROOT/scripts/$(basename "${BASH_SOURCE[0]}")"
CACHE=${HFE_E2E_CACHE:-/var/cache/hfe}
MIRROR=${HFE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
BUILD=${HFE_BUILD_ROOT:-$ROOT}/build-arm64
SUITES=unit,integration
SETUP_ONLY=0
KEEP_ROOTS=2
# The arm64 root: what the build links against and what the tests load at run time
# (videotestsrc, videoconvert, appsink: base; h264parse: bad; avdec_h264: libav); libc-bin
# for ldconfig.
ROOT_PKGS=(libc6-dev libc-bin libavcodec-dev libavutil-dev libavformat-dev libyuv-dev
	libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libdrm-dev libglib2.0-dev
	libjson-glib-dev libseccomp-dev libsoup-3.0-dev
	gstreamer1.0-plugins-base gstreamer1.0-plugins-bad gstreamer1.0-libav)

log() { printf 'arm64-host: %s\n' "$*" >&2; }
die() {
	printf 'arm64-host: ERROR: %s\n' "$*" >&2
	exit 1
}

while [[ $# -gt 0 ]]; do
	case "$1" in
	--build-dir) BUILD=${2:?--build-dir needs a directory}; shift 2 ;;
	--cache) CACHE=${2:?--cache needs a directory}; shift 2 ;;
	--suites) SUITES=${2:?--suites needs a list}; shift 2 ;;
	--setup-only) SETUP_ONLY=1; shift ;;
	-h | --help) sed -n '4,25s/^# \{0,1\}//p' "$SELF"; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done

[[ $(id -u) -eq 0 ]] || die "needs root (mmdebstrap in root mode, binfmt_misc)"
t0=$(date +%s)

# ---- host packages ------------------------------------------------------------------------

# shellcheck source=scripts/deps.sh
. "$ROOT/scripts/deps.sh"
hfe_deps build arm64 >&2

# ---- binfmt_misc: arm64 programs run under qemu-aarch64-static ---------------------------

BINFMT=/proc/sys/fs/binfmt_misc
if [[ ! -e "$BINFMT/register" ]]; then
	mount -t binfmt_misc binfmt_misc "$BINFMT" || die "cannot mount binfmt_misc on $BINFMT"
fi
if [[ ! -e "$BINFMT/qemu-aarch64" ]]; then
	conf=/usr/lib/binfmt.d/qemu-aarch64.conf
	[[ -f "$conf" ]] || die "$conf is missing (qemu-user-static not installed?)"
	grep -v '^#' "$conf" >"$BINFMT/register" || die "cannot register qemu-aarch64 with binfmt_misc"
	log "registered qemu-aarch64 with binfmt_misc"
fi
[[ "$(head -n1 "$BINFMT/qemu-aarch64")" == enabled ]] || echo 1 >"$BINFMT/qemu-aarch64"

# ---- the arm64 root ------------------------------------------------------------------------

# The key: everything the root is made from, i.e. its package list and this section (not the
# build and test steps, whose edits need no new root).
HASH=$(sed -n -e '/^ROOT_PKGS=(/,/)$/p' -e '/^# ---- the arm64 root/,/^# ---- the cross build/p' \
	"$SELF" | sha256sum | cut -c1-16)
SYSROOT="$CACHE/arm64-root-$HASH"
if [[ ! -f "$SYSROOT/.complete" ]]; then
	mkdir -p "$CACHE"
	exec 9>"$CACHE/.arm64-root.lock"
	flock -w 1800 9 || die "cannot lock $CACHE/.arm64-root.lock"
fi
if [[ ! -f "$SYSROOT/.complete" ]]; then
	ts=$(date +%s)
	tmp=$(mktemp -d "$CACHE/.arm64-root.XXXXXX")
	# --one-file-system: never into what an interrupted mmdebstrap left mounted in the tree.
	trap 'rm -rf --one-file-system "$tmp"' EXIT
	# The .debs of the last build are offered to the next one (a rebuild downloads only
	# what changed); not arm64-root-*: that is the roots' pattern.
	DEBS="$CACHE/debs-arm64"
	mkdir -p "$DEBS"
	MERGED_USR=/usr/share/mmdebstrap/hooks/merged-usr
	[[ -d "$MERGED_USR" ]] || die "$MERGED_USR is missing (mmdebstrap too old?)"
	log "mmdebstrap arm64 bookworm: ${ROOT_PKGS[*]}"
	# extract: the packages (and what they depend on) unpacked, no maintainer script run
	# under emulation; a sysroot and a library prefix need no more than the files, and
	# ldconfig's cache (made below) for the libraries outside the default directories.
	# Debian's python3 for mmdebstrap's per-package tar filter: a python3 shim earlier in
	# PATH (pyenv: ~5 s a start here) would cost that for each of ~600 packages.
	PATH=/usr/sbin:/usr/bin:/sbin:/bin mmdebstrap --mode=root --variant=extract --architectures=arm64 --format=directory \
		--hook-dir="$MERGED_USR" \
		--aptopt='APT::Install-Recommends "false"' \
		--dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		--skip=download/empty \
		--setup-hook='mkdir -p "$1/var/cache/apt/archives"' \
		--setup-hook="sync-in '$DEBS' /var/cache/apt/archives/" \
		--customize-hook="find '$DEBS' -name '*.deb' -delete" \
		--customize-hook="sync-out /var/cache/apt/archives '$DEBS'" \
		--include="$(IFS=,; echo "${ROOT_PKGS[*]}")" \
		bookworm "$tmp/root" "$MIRROR" >&2 || die "mmdebstrap failed (see above)"
	rm -rf "$tmp/root/var/cache/apt/archives"/*.deb
	# The tree is a library prefix, never booted: its /dev must not shadow the host's
	# (qemu-user looks every path up in the prefix first; /dev/ptmx there is not a pty).
	rm -rf --one-file-system "$tmp/root/dev"
	# BLAS and LAPACK (libavfilter's, so avdec_h264's) are reached through links that
	# their maintainer scripts make with update-alternatives, which extract never runs:
	# make those links, or the libav plugin fails to load.
	multiarch="$tmp/root/usr/lib/aarch64-linux-gnu"
	for alt in blas lapack; do
		for lib in "$multiarch/$alt"/lib*.so.3; do
			[[ -e "$lib" ]] || die "no $alt library in the arm64 root"
			ln -sfn "$alt/${lib##*/}" "$multiarch/${lib##*/}"
		done
	done
	chroot "$tmp/root" /sbin/ldconfig || die "ldconfig in the arm64 root failed"
	touch "$tmp/root/.complete"
	mv "$tmp/root" "$SYSROOT"
	log "arm64 root made in $(($(date +%s) - ts)) s: $SYSROOT ($(du -sh "$SYSROOT" | cut -f1))"
	# Keep the newest KEEP_ROOTS.
	ls -dt "$CACHE"/arm64-root-*/ 2>/dev/null | tail -n +$((KEEP_ROOTS + 1)) |
		while read -r old; do rm -rf --one-file-system "$old"; done
else
	touch "$SYSROOT" 2>/dev/null || true
fi
[[ $SETUP_ONLY -eq 0 ]] || { printf '%s\n' "$SYSROOT"; exit 0; }

# ---- the cross build ------------------------------------------------------------------------

cross_ini=$(cat <<EOF
[binaries]
c = ['aarch64-linux-gnu-gcc', '--sysroot=$SYSROOT']
ar = 'aarch64-linux-gnu-ar'
strip = 'aarch64-linux-gnu-strip'
pkgconfig = 'pkg-config'

[properties]
sys_root = '$SYSROOT'
pkg_config_libdir = ['$SYSROOT/usr/lib/aarch64-linux-gnu/pkgconfig', '$SYSROOT/usr/share/pkgconfig']
# binfmt_misc runs the test programs directly (QEMU_LD_PREFIX below).
needs_exe_wrapper = false

[host_machine]
system = 'linux'
cpu_family = 'aarch64'
cpu = 'cortex-a72'
endian = 'little'
EOF
)
want="$(sha256sum <<<"$cross_ini")"
if [[ -f "$BUILD/meson-private/coredata.dat" && -f "$BUILD/cross.ini" &&
	"$(cat "$BUILD/.hfe-setup" 2>/dev/null)" == "$want" ]]; then
	meson setup --reconfigure "$BUILD" >/dev/null
else
	rm -rf -- "$BUILD"
	mkdir -p "$BUILD"
	printf '%s\n' "$cross_ini" >"$BUILD/cross.ini"
	meson setup "$BUILD" --cross-file "$BUILD/cross.ini" -Dtests=true -Dfuzzing=false \
		-Db_sanitize=none >&2
	printf '%s' "$want" >"$BUILD/.hfe-setup"
fi
tb=$(date +%s)
meson compile -C "$BUILD" >&2
log "built in $(($(date +%s) - tb)) s"
# What the job must have built: a missing one means a dependency was not found.
for exe in lib/libhfe.so daemon/helix-frame-export tools/hfe-client tools/hfe-viewer \
	tests/e2e/hfe-guest gst/libgsthfe.so; do
	[[ -f "$BUILD/$exe" ]] || die "$exe was not built (see meson's dependency lines above)"
	file -bL "$BUILD/$exe" | grep -q 'ARM aarch64' || die "$exe is not an arm64 program"
done

# ---- the tests under qemu-user ---------------------------------------------------------------

suite_args=()
IFS=, read -r -a suites <<<"$SUITES"
for s in "${suites[@]}"; do
	suite_args+=(--suite "$s")
done
# qemu-user (7.2) has no seccomp: prctl(PR_GET_SECCOMP / PR_SET_SECCOMP) fails with EINVAL
# ("the target could disable syscalls the emulator needs") and seccomp(2) with ENOSYS, and a
# filter would judge the emulator's own x86_64 calls anyway. The daemon runs unconfined
# (HFE_SECCOMP=off), and test_confine, which checks that confinement, runs natively only.
skip=(test_confine)
mapfile -t tests < <(meson test -C "$BUILD" --no-rebuild --list "${suite_args[@]}" 2>/dev/null |
	sed -n 's|^.* / ||p' | grep -vxF -f <(printf '%s\n' "${skip[@]}"))
log "under qemu-user: ${tests[*]} (left out: ${skip[*]})"
[[ ${#tests[@]} -gt 0 ]] || die "no test in the suites $SUITES"
tt=$(date +%s)
rc=0
QEMU_LD_PREFIX=$SYSROOT HFE_TEST_TIME_SCALE=8 HFE_SECCOMP=off \
	GST_REGISTRY="$BUILD/gst-registry.aarch64.bin" \
	meson test -C "$BUILD" --no-rebuild --print-errorlogs "${tests[@]}" \
	--num-processes 2 --timeout-multiplier 8 || rc=$?
log "tests ran in $(($(date +%s) - tt)) s; the job took $(($(date +%s) - t0)) s"
exit $rc
