#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The main job: a Linux VM's screen, encoded on the host, live in a browser.
# Builds what it needs (cached), boots the test guest under QEMU (TCG unless KVM works) with
# -display dbus, attaches the daemon to it (--qemu), runs a subscriber inside the guest that
# shows the H.264 it gets back on the VM's screen, and serves the same scanout to a browser
# with hfe-viewer, which also records demo-out/demo.mp4. Ctrl-C stops everything.
# Installs missing Debian packages first (needs root for that).
#
# Usage: scripts/demo.sh [--headless] [--duration SECONDS] [--port N] [--module] [--desktop]
#                         [--arch A]
#        scripts/demo.sh --no-vm [--size WxH] [--frames N] [--format XR24|NV12|...] [--tcp]
#   --headless       for scripts: the guest's round-trip lines are not echoed
#   --duration S     stop by itself after S seconds of streaming (default: until Ctrl-C)
#   --port N         the viewer's HTTP port on 127.0.0.1 (default 8080; 0 picks a free one)
#   --module         the patched QEMU (qemu/build.sh) with its built-in helix-frame-export
#                    object instead of Debian's QEMU + the daemon
#   --desktop        a real desktop instead of the console: the desktop guest (Debian 12,
#                    weston, weston-terminal; built once, ~10 min) with a virtio keyboard
#                    and tablet; the page is interactive (hfe-viewer --control) and the
#                    VM's screen takes the page's size
#   --arch aarch64   boot the arm64 guest (QEMU's virt machine, TCG) instead of x86_64's
#                    (the console demo only)
#   --no-vm          the old demo: 300 frames of a moving pattern through the daemon
# Environment: HFE_BUILD (build directory, default build/), HFE_DEMO_OUT (default demo-out/),
# HFE_E2E_ACCEL (kvm|tcg).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build=${HFE_BUILD:-$root/build}
out=${HFE_DEMO_OUT:-$root/demo-out}

# ---- --no-vm: the pattern-only demo ------------------------------------------------------

run_no_vm() {
	# Globals, not locals: the EXIT trap runs after this function has returned.
	local size=1280x720 frames=300 format=XR24 transport=unix addr
	run="" daemon_pid=""
	while [ $# -gt 0 ]; do
		case "$1" in
		--size) size="$2"; shift 2 ;;
		--frames) frames="$2"; shift 2 ;;
		--format) format="$2"; shift 2 ;;
		--tcp) transport=tcp; shift ;;
		*) echo "demo.sh --no-vm: unknown option '$1' (try --help)" >&2; exit 2 ;;
		esac
	done
	"$root/scripts/deps.sh" demo
	echo "== building"
	[ -f "$build/build.ninja" ] || meson setup "$build" >/dev/null
	ninja -C "$build" >/dev/null
	mkdir -p "$out"
	run="$(mktemp -d /tmp/hfe-demo.XXXXXX)"
	# shellcheck disable=SC2317 # called by the trap
	cleanup_no_vm() {
		if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
			kill -TERM "$daemon_pid"
			wait "$daemon_pid" || true
		fi
		[ -z "$run" ] || rm -rf "$run"
	}
	trap cleanup_no_vm EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	if [ "$transport" = tcp ]; then addr="tcp:127.0.0.1:15937"; else addr="unix:$run/hfe.sock"; fi

	echo "== starting the daemon on $addr"
	HFE_LOG=info "$build/daemon/helix-frame-export" --listen "$addr" --bitrate 6M --fps 30 \
		2>"$out/daemon.log" &
	daemon_pid=$!
	for _ in $(seq 100); do
		grep -q "listening on" "$out/daemon.log" 2>/dev/null && break
		kill -0 "$daemon_pid" 2>/dev/null || { cat "$out/daemon.log" >&2; exit 1; }
		sleep 0.05
	done
	head -4 "$out/daemon.log" | sed 's/^/   daemon: /'

	echo "== streaming $frames frames of $size $format through the daemon"
	"$build/tools/hfe-client" send --connect "$addr" --pattern smpte --size "$size" \
		--frames "$frames" --format "$format" --fps 30 --output "$out/demo.h264"

	echo "== muxing to MP4"
	ffmpeg -hide_banner -loglevel error -y -framerate 30 -f h264 -i "$out/demo.h264" \
		-c copy "$out/demo.mp4"
	ffprobe -v error -count_frames -select_streams v:0 \
		-show_entries stream=codec_name,profile,width,height,nb_read_frames \
		-of default=noprint_wrappers=1 "$out/demo.mp4" | sed 's/^/   /'
	echo "== done: $out/demo.h264, $out/demo.mp4 (daemon log: $out/daemon.log)"
}

# ---- options ---------------------------------------------------------------------------

headless=0 duration=0 port=8080 module=0 desktop=0 arch=x86_64
case "${1:-}" in
--no-vm) shift; run_no_vm "$@"; exit 0 ;;
esac
while [ $# -gt 0 ]; do
	case "$1" in
	--headless) headless=1; shift ;;
	--duration) duration="$2"; shift 2 ;;
	--port) port="$2"; shift 2 ;;
	--module) module=1; shift ;;
	--desktop) desktop=1; shift ;;
	--no-vm) echo "demo.sh: --no-vm must come first" >&2; exit 2 ;;
	--arch) arch="$2"; shift 2 ;;
	-h|--help) sed -n '4,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "demo.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
	esac
done
[[ "$duration" =~ ^[0-9]+$ ]] || { echo "demo.sh: --duration wants seconds" >&2; exit 2; }
# What differs between the guests: the QEMU machine, the console, the guest tool, the compiler
# of the static screen painter.
case "$arch" in
x86_64) machine=q35 cpu=() console=ttyS0 tool=hfe-guest cc=gcc ;;
aarch64) machine=virt cpu=(-cpu cortex-a72) console=ttyAMA0 tool=hfe-guest-aarch64
	cc=aarch64-linux-gnu-gcc ;;
*) echo "demo.sh: --arch wants x86_64 or aarch64" >&2; exit 2 ;;
esac
[ "$desktop" = 0 ] || [ "$arch" = x86_64 ] ||
	{ echo "demo.sh: --desktop runs the x86_64 desktop image only" >&2; exit 2; }

say() { printf '== %s\n' "$*"; }
die() { printf 'demo.sh: ERROR: %s\n' "$*" >&2; exit 1; }
t_start=$(date +%s.%N)
elapsed() { awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# ---- build: the project, the guest, the demo overlay -----------------------------------

"$root/scripts/deps.sh" demo
[ "$arch" = x86_64 ] || "$root/scripts/deps.sh" arm64-guest

say "building ($build)"
[ -f "$build/build.ninja" ] || meson setup "$build" >/dev/null
# A build set up before the cross compiler was installed has no aarch64 guest tool yet.
[ "$arch" = x86_64 ] || grep -q hfe-guest-aarch64 "$build/build.ninja" ||
	meson setup --reconfigure "$build" >/dev/null
ninja -C "$build" >/dev/null
for f in daemon/helix-frame-export tools/hfe-viewer "tests/e2e/$tool"; do
	[ -x "$build/$f" ] || die "$build/$f was not built (scripts/deps.sh build lists what it needs)"
done

if [ "$desktop" = 1 ]; then
	say "guest: the desktop image (Debian 12, weston; cached in ${HFE_E2E_CACHE:-/var/cache/hfe}; ~10 min the first time)"
	dguest=$("$root/tests/e2e/build-desktop-image.sh" | tail -n1) ||
		die "cannot build the desktop image (see above)"
	kernel="$dguest/vmlinux"
	[ -f "$kernel" ] || kernel="$dguest/vmlinuz"
	guest=$dguest
else
	say "$arch guest: Debian's kernel + busybox initramfs (cached in ${HFE_E2E_CACHE:-/var/cache/hfe})"
	guest=$("$root/tests/e2e/build-guest.sh" --arch "$arch" --tool "$build/tests/e2e/$tool") ||
		die "cannot build the guest (see above)"

	# The demo's additions ride in a second cpio appended to the guest's initramfs (the kernel
	# unpacks both): /demo-init (booted with rdinit=) and the static screen painter.
	dg="$build/demo-guest"
	[ "$arch" = x86_64 ] || dg="$build/demo-guest-$arch"
	mkdir -p "$dg/root/bin"
	src="$root/tests/e2e/guest/hfe-demo.c"
	if [ ! -x "$dg/root/bin/hfe-demo" ] || [ "$src" -nt "$dg/root/bin/hfe-demo" ] ||
		[ "$root/tests/e2e/e2e_out.h" -nt "$dg/root/bin/hfe-demo" ]; then
		"$cc" -std=gnu11 -O2 -Wall -Wextra -static -s -o "$dg/root/bin/hfe-demo" "$src" ||
			die "cannot build $src with $cc (static libc: libc6-dev, libc6-dev-arm64-cross)"
	fi
	install -m 0755 "$root/tests/e2e/guest/demo.sh" "$dg/root/demo-init"
	(cd "$dg/root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) \
		>"$dg/overlay.cpio"
	cat "$guest/initrd.img" "$dg/overlay.cpio" >"$dg/initrd.img"
	kernel="$guest/vmlinux"
	[ -f "$kernel" ] || kernel="$guest/vmlinuz"
fi

# ---- KVM or TCG: the e2e harness's verdict for this host boot, else a probe of our own --

accel=${HFE_E2E_ACCEL:-}
if [ -z "$accel" ]; then
	verdict="${HFE_E2E_CACHE:-/var/cache/hfe}/accel-$(cat /proc/sys/kernel/random/boot_id)"
	accel=$(cat "$verdict" 2>/dev/null || true)
	if [ "$accel" != kvm ] && [ "$accel" != tcg ]; then
		accel=tcg
		if [ "$desktop" = 0 ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
			say "probing KVM (12 s at most)"
			if timeout 12 qemu-system-x86_64 -machine q35 -accel kvm -m 256 -display none \
				-serial stdio -monitor none -no-reboot -nic none -kernel "$kernel" \
				-initrd "$guest/initrd.img" -append "console=ttyS0 quiet panic=-1 hfe.mode=probe" \
				2>/dev/null | grep -q 'result=ok'; then
				accel=kvm
			fi
			echo "$accel" >"$verdict" 2>/dev/null || true
		fi
	fi
fi
[ "$arch" = x86_64 ] || accel=tcg # an x86_64 host's KVM runs no arm64 guest

# ---- QEMU binary ---------------------------------------------------------------------

qemu="qemu-system-$arch"
qemu_env=()
if [ "$module" = 1 ]; then
	[ -x "$root/qemu/build.sh" ] ||
		die "--module: the patched QEMU is not available yet (qemu/build.sh is missing)"
	say "patched QEMU: qemu/build.sh (cached; a cold build takes ~11 min)"
	qdir=$("$root/qemu/build.sh" --hfe-build "$build" | tail -n1) ||
		die "--module: qemu/build.sh failed (see above)"
	qemu="$qdir/bin/qemu-system-$arch"
	[ -x "$qemu" ] || die "--module: qemu/build.sh printed '$qdir', which has no bin/qemu-system-$arch"
	qemu_env=(env "LD_LIBRARY_PATH=$build/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
fi

# ---- run -------------------------------------------------------------------------------

mkdir -p "$out"
rm -f "$out/demo.mp4" "$out/console.log" "$out/daemon.log" "$out/viewer.log" "$out/qemu.log"
rm -f "$out"/demo-[0-9]*-*x*.mp4 # earlier picture sizes of a previous recording
run="$(mktemp -d /tmp/hfe-demo.XXXXXX)"
sock="$run/vm-hfe.sock" qmp="$run/vm.qmp"

# Each child runs in its own session/process group (setsid: a background job of this
# non-interactive shell is no group leader, so setsid execs without forking and $! is the
# group's id). Stopping = SIGTERM to the group, wait, SIGKILL what is left.
# shellcheck disable=SC2317 # called from the EXIT trap
stop_group() {
	local pid=$1 name=$2
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "demo.sh: $name did not stop in 10 s: SIGKILL" >&2
		kill -KILL -- "-$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	kill -KILL -- "-$pid" 2>/dev/null || true # anything it left in its group
}
stopping=0
# shellcheck disable=SC2317
cleanup() {
	local rc=$?
	[ "$stopping" = 0 ] || return 0
	stopping=1
	trap '' INT TERM
	echo
	say "stopping (viewer, VM, daemon)"
	[ -n "${viewer_pid:-}" ] && stop_group "$viewer_pid" hfe-viewer
	[ -n "${tail_pid:-}" ] && stop_group "$tail_pid" "console echo"
	[ -n "${qemu_pid:-}" ] && stop_group "$qemu_pid" QEMU
	[ -n "${daemon_pid:-}" ] && stop_group "$daemon_pid" helix-frame-export
	rm -rf "$run"
	if [ -s "$out/demo.mp4" ]; then
		local info
		info=$(ffprobe -v error -count_frames -select_streams v:0 \
			-show_entries stream=codec_name,width,height,nb_read_frames \
			-of csv=p=0 "$out/demo.mp4" 2>&1 || true)
		say "recording: $out/demo.mp4 (codec,width,height,frames: $info)"
	else
		say "no recording was written ($out/viewer.log)"
	fi
	say "logs: $out/{console,daemon,viewer,qemu}.log"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The desktop: the viewer connects to a control listener (its page types and points).
ctl="$run/vm-ctl.sock"
if [ "$desktop" = 1 ]; then
	listen_opt=--control-listen listen_sock=$ctl
else
	listen_opt=--listen listen_sock=$sock
fi
if [ "$module" = 0 ]; then
	say "starting helix-frame-export --qemu qmp:unix:$qmp $listen_opt unix:$listen_sock"
	HFE_LOG=info setsid "$build/daemon/helix-frame-export" --qemu "qmp:unix:$qmp" \
		"$listen_opt" "unix:$listen_sock" --bitrate 4M --fps 30 </dev/null 2>"$out/daemon.log" &
	daemon_pid=$!
	for _ in $(seq 100); do
		[ -S "$listen_sock" ] && break
		kill -0 "$daemon_pid" 2>/dev/null || { cat "$out/daemon.log" >&2; die "the daemon failed"; }
		sleep 0.05
	done
	display=(-display "dbus,p2p=yes")
	object=()
else
	display=(-display none -L /usr/share/qemu -L /usr/share/seabios -L /usr/lib/ipxe/qemu)
	object=(-object "helix-frame-export,id=hfe0,listen=unix:$sock,max-fps=30")
	if [ "$desktop" = 1 ]; then
		# virgl: the module's own GL display (no render node here: llvmpipe)
		gl=""
		[ -w /dev/dri/renderD128 ] || gl=",rendernode=/dev/null"
		display=(-display "helix$gl" -L /usr/share/qemu -L /usr/share/seabios -L /usr/lib/ipxe/qemu)
		object=(-object "helix-frame-export,id=hfe0,listen=unix:$sock,control-listen=unix:$ctl,max-fps=30")
	fi
fi
if [ "$desktop" = 1 ]; then
	gpu=virtio-gpu-pci
	[ "$module" = 1 ] && gpu=virtio-gpu-gl-pci
	# i8042=off: keys go to the virtio keyboard, not a PS/2 one the guest does not read
	vm=(-machine "q35,i8042=off" -m 2048 -smp 2 -kernel "$kernel" -initrd "$guest/initrd.img"
		-append "console=ttyS0 quiet panic=-1 mitigations=off no_timer_check"
		-drive "file=$guest/rootfs.img,format=raw,if=virtio,readonly=on"
		-vga none -device "$gpu,xres=1280,yres=800"
		-device virtio-keyboard-pci -device virtio-tablet-pci)
	viewer_sock=$ctl viewer_opts=(--control --replug)
else
	vm=(-machine "$machine" "${cpu[@]}" -m 512 -kernel "$kernel" -initrd "$dg/initrd.img"
		-append "console=$console quiet panic=-1 mitigations=off consoleblank=0 rdinit=/demo-init hfe.shell=1 hfe.out=/dev/virtio-ports/org.helix.hfe.0"
		-vga none -device "virtio-gpu-pci,xres=1024,yres=768" -device virtio-serial-pci
		-chardev "socket,id=hfe,path=$sock,reconnect=1"
		-device "virtserialport,chardev=hfe,name=org.helix.hfe.0")
	viewer_sock=$sock viewer_opts=()
fi

say "booting the VM ($accel; console: $out/console.log)"
t_boot=$(date +%s.%N)
setsid "${qemu_env[@]}" "$qemu" "${vm[@]}" -accel "$accel" "${display[@]}" "${object[@]}" \
	-qmp "unix:$qmp,server=on,wait=off" -monitor none -serial "file:$out/console.log" \
	-no-reboot -nic none </dev/null >"$out/qemu.log" 2>&1 &
qemu_pid=$!

say "starting hfe-viewer --connect unix:$viewer_sock --scanout 0 --http 127.0.0.1:$port ${viewer_opts[*]} --record $out/demo.mp4"
for _ in $(seq 100); do [ -S "$viewer_sock" ] && break; sleep 0.1; done
# The log gets the URL, and the URL's token is the key to the VM's screen: only for us.
(umask 077 && rm -f "$out/viewer.log" && : >"$out/viewer.log")
setsid "$build/tools/hfe-viewer" --connect "unix:$viewer_sock" --scanout 0 --http "127.0.0.1:$port" \
	"${viewer_opts[@]}" --record "$out/demo.mp4" </dev/null >"$out/viewer.log" 2>&1 &
viewer_pid=$!
url=
for _ in $(seq 100); do
	url=$(grep -o 'http://[^ ]*' "$out/viewer.log" 2>/dev/null | head -n1 || true)
	[ -n "$url" ] && break
	kill -0 "$viewer_pid" 2>/dev/null || { cat "$out/viewer.log" >&2; die "hfe-viewer failed"; }
	sleep 0.1
done
[ -n "$url" ] || die "hfe-viewer printed no URL ($out/viewer.log)"

echo
echo "   open $url in a browser (Chromium, Firefox: WebCodecs needs 127.0.0.1/localhost)"
if [ "$desktop" = 1 ]; then
	echo "   (the URL holds this run's secret token: whoever has it can watch and use the VM)"
	echo "   the page is the VM's desktop: click into it and type; its screen takes the page's size"
else
	echo "   (the URL holds this run's secret token: whoever has it can watch the VM's screen)"
fi
echo "   the stream is being recorded to $out/demo.mp4"
if [ "$duration" -gt 0 ]; then
	echo "   stopping after $duration s"
else
	echo "   Ctrl-C stops the VM, the daemon and the viewer"
fi
echo

# Boot and round-trip milestones from the guest's console.
wait_console() {
	local pattern=$1 secs=$2
	for _ in $(seq $((secs * 10))); do
		grep -q "$pattern" "$out/console.log" 2>/dev/null && return 0
		kill -0 "$qemu_pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
if [ "$desktop" = 1 ]; then
	if wait_console 'HFE-DESKTOP: weston ready' 300; then
		say "desktop up (weston and a terminal) $(since "$t_boot") s after QEMU started ($(elapsed) s since demo.sh started)"
	else
		tail -n 20 "$out/console.log" >&2 || true
		die "weston did not come up (console: $out/console.log)"
	fi
	headless=1 # no round-trip lines to echo
else
	if wait_console 'HFE-DEMO: guest up' 180; then
		say "guest up $(since "$t_boot") s after QEMU started ($(elapsed) s since demo.sh started)"
	else
		tail -n 20 "$out/console.log" >&2 || true
		die "the guest did not come up (console: $out/console.log)"
	fi
	if wait_console 'HFE-DEMO: subscriber fps=[1-9]' 120; then
		say "the guest receives its own screen as H.264: first access units $(since "$t_boot") s after QEMU started"
	else
		tail -n 20 "$out/console.log" >&2 || true
		die "the guest's subscriber received nothing (console: $out/console.log, daemon: $out/daemon.log)"
	fi
	echo "   $(grep 'HFE-DEMO: subscriber' "$out/console.log" | tail -n1 | sed 's/^HFE-DEMO: //')"
fi

# Interactive: echo the guest's round-trip line every 5 s.
if [ "$headless" = 0 ]; then
	setsid sh -c "tail -n0 -F '$out/console.log' 2>/dev/null |
		awk '/HFE-DEMO: subscriber/ && (n++ % 5 == 0) { sub(/^HFE-DEMO: /, \"   guest: \"); print; fflush() }'" &
	tail_pid=$!
fi

t_end=$(($(date +%s) + duration))
while :; do
	kill -0 "$qemu_pid" 2>/dev/null || die "QEMU exited (console: $out/console.log, $out/qemu.log)"
	[ -z "${daemon_pid:-}" ] || kill -0 "$daemon_pid" 2>/dev/null ||
		die "the daemon exited ($out/daemon.log)"
	kill -0 "$viewer_pid" 2>/dev/null || die "hfe-viewer exited ($out/viewer.log)"
	if [ "$duration" -gt 0 ] && [ "$(date +%s)" -ge "$t_end" ]; then
		break
	fi
	sleep 0.5
done
exit 0
