#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Install the Debian 12 packages a task needs: `scripts/deps.sh build|test|demo|arm64|arm64-guest|bench ...`.
# Can also be sourced (`. scripts/deps.sh; hfe_deps test`); sourcing changes no shell options.
# Silent when everything is present; installs what is missing when run as root, otherwise
# fails with the apt-get command to run.
#
# The package lists below are the single place to add what a new part needs.

# Needed to configure and compile the project.
HFE_DEPS_BUILD=(
	build-essential meson ninja-build pkg-config
	libavcodec-dev libavutil-dev libavformat-dev libyuv-dev
	libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libdrm-dev
	libglib2.0-dev libjson-glib-dev libseccomp-dev
	libsoup-3.0-dev
)
# Added for scripts/test.sh: ffprobe, clang with libFuzzer + sanitizer runtimes,
# systemd-analyze (test_systemd_units scores the units; it skips without it), and what
# tests/e2e/build-desktop-image.sh builds the desktop guest with (test_e2e_qemu_kmscube).
HFE_DEPS_TEST=(
	ffmpeg clang libclang-rt-14-dev
	gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
	gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
	busybox-static kmod cpio xz-utils qemu-system-x86
	mmdebstrap e2fsprogs binutils python3
	chromium nodejs openssl
	systemd
)
# Added for scripts/arm64-host.sh (the arm64 host job): the arm64 root, the cross compiler,
# qemu-user for the tests.
HFE_DEPS_ARM64=(
	mmdebstrap qemu-user-static gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu file
	libglib2.0-dev-bin
)
# Added for scripts/demo.sh: ffprobe, QEMU, and what tests/e2e/build-guest.sh packs the guest with.
HFE_DEPS_DEMO=(
	ffmpeg qemu-system-x86 busybox-static kmod cpio xz-utils
)
# Added for bench/desktop-vs-vnc (task bench, with test's): QEMU's own VNC server seen through
# noVNC, the remote desktop this project's page is measured against.
HFE_DEPS_BENCH=(
	novnc websockify
)
# The arm64 guest (build-guest.sh --arch aarch64: the *_aarch64 e2e tests, part of test;
# demo.sh --arch aarch64; task arm64-guest): its QEMU, and the cross compiler of its
# static programs.
HFE_DEPS_AARCH64=(
	qemu-system-arm gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu
)

# Print the packages a task needs, one per line (build is part of every task).
hfe_deps_list() {
	local task
	printf '%s\n' "${HFE_DEPS_BUILD[@]}"
	for task in "$@"; do
		case "$task" in
		build) ;;
		test) printf '%s\n' "${HFE_DEPS_TEST[@]}" "${HFE_DEPS_AARCH64[@]}" ;;
		demo) printf '%s\n' "${HFE_DEPS_DEMO[@]}" ;;
		arm64) printf '%s\n' "${HFE_DEPS_ARM64[@]}" ;;
		arm64-guest) printf '%s\n' "${HFE_DEPS_AARCH64[@]}" ;;
		bench) printf '%s\n' "${HFE_DEPS_TEST[@]}" "${HFE_DEPS_BENCH[@]}" ;;
		*)
			echo "deps.sh: unknown task '$task' (want build, test, demo, arm64, arm64-guest or bench)" >&2
			return 2
			;;
		esac
	done
}

hfe_deps_installed() {
	local status
	status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null) || return 1
	[[ "$status" == ii* ]]
}

# hfe_deps TASK...: make sure every package TASK needs is installed.
hfe_deps() {
	local list pkg
	local -a missing=()

	[[ $# -gt 0 ]] || set -- build
	list=$(hfe_deps_list "$@") || return
	for pkg in $(printf '%s\n' "$list" | sort -u); do
		hfe_deps_installed "$pkg" || missing+=("$pkg")
	done
	[[ ${#missing[@]} -eq 0 ]] && return 0

	if [[ $(id -u) -ne 0 ]]; then
		echo "deps.sh: missing Debian packages: ${missing[*]}" >&2
		echo "deps.sh: install them as root with:" >&2
		echo "    apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
		return 1
	fi

	echo "installing: ${missing[*]}"
	# Update the package lists only once per shell, and only when something is missing.
	if [[ -z "${HFE_DEPS_APT_UPDATED:-}" ]]; then
		apt-get update || return
		HFE_DEPS_APT_UPDATED=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	set -euo pipefail
	case "${1:-}" in
	-h | --help)
		echo "usage: $0 [build|test|demo|arm64|arm64-guest|bench]...   (default: build)"
		exit 0
		;;
	esac
	hfe_deps "$@"
fi
