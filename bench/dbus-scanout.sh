#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Scanout push mode from stock QEMU through -display dbus (issue 5), measured at the
# subscriber: frames/s, latency, CPU of QEMU and of the daemon, RSS.
#
#   bench/dbus-scanout.sh [BUILD_DIR]          (default: ./build)
#
# For each size (HFE_BENCH_SIZES, default "1280x800 1920x1080") one VM boots the e2e test
# guest (tests/e2e) with a shell on its serial console, under Debian's qemu-system-x86_64
# with -display dbus,p2p=yes; one daemon (--qemu ... --listen ...) serves every size, and
# reattaches to each new QEMU. The script types the workloads into the guest's shell:
#   scroll   fbcon text flood on tty1 (full-screen updates as fast as the guest makes them)
#   static   one picture, then nothing (hfe-guest mode=draw frames=1 with a long hold)
#   draw     the e2e pattern, a new full frame as fast as the guest renders it (mode=draw)
# and bench-dbus-scanout (bench/dbus-scanout.c) subscribes on the host for
# HFE_BENCH_SECONDS (default 10) per workload, after a 2 s warm-up.
#
# Latency: `lat` = AU at the subscriber - its pts (when the daemon got the first damage of
# that encode); `qlat` = AU at the subscriber - QEMU's own `dbus_update` trace event for that
# damage (QEMU is run with -trace dbus_update), i.e. D-Bus transfer included.
# QEMU's CPU is mostly the guest's own emulated work (TCG here), not the display path.
#
# Side by side, in the same run, the same workloads go through the QEMU module (issue 4):
# the patched qemu-system-x86_64 from qemu/build.sh (cached; built on first use) with
# `-object helix-frame-export,...` and no daemon. After each module window the module's
# longest main-loop callback (qom-get max-stall-us) is read over QMP. HFE_BENCH_MODULE_QEMU
# = another patched binary, or "none" to skip the module half.
#
# Environment: HFE_BENCH_SIZES, HFE_BENCH_SECONDS, HFE_BENCH_VARIANTS (default "dbus module"),
# HFE_E2E_ACCEL (kvm|tcg; default tcg),
# HFE_BENCH_DAEMON_ARGS (extra daemon options, e.g. "--max-fps 30"), HFE_BENCH_KEEP=1.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
DAEMON=$BUILD/daemon/helix-frame-export
GUEST_TOOL=$BUILD/tests/e2e/hfe-guest
PROBE=$BUILD/bench/bench-dbus-scanout
JITTER=$BUILD/bench/bench-loop-jitter
SIZES=${HFE_BENCH_SIZES:-1280x800 1920x1080}
SECONDS_WIN=${HFE_BENCH_SECONDS:-10}
ACCEL=${HFE_E2E_ACCEL:-tcg}
QEMU=${HFE_E2E_QEMU:-qemu-system-x86_64}

WORK=$(mktemp -d /tmp/hfe-bench-dbus.XXXXXX)
DAEMON_PID=
QEMU_PID=

cleanup() {
	if [[ -n "$QEMU_PID" ]]; then kill "$QEMU_PID" 2>/dev/null || true; fi
	if [[ -n "$DAEMON_PID" ]]; then kill "$DAEMON_PID" 2>/dev/null || true; fi
	wait 2>/dev/null || true
	if [[ "${HFE_BENCH_KEEP:-0}" == 1 ]]; then
		echo "kept $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

die() {
	echo "dbus-scanout.sh: $*" >&2
	exit 1
}

[[ -x "$DAEMON" ]] || die "no daemon at $DAEMON (build first: ninja -C $BUILD)"
[[ -x "$GUEST_TOOL" ]] || die "no guest tool at $GUEST_TOOL"
[[ -x "$JITTER" ]] || die "no $JITTER (build first: ninja -C $BUILD)"
"$DAEMON" --help | grep -q -- '--qemu' || die "$DAEMON has no -display dbus support"
if [[ ! -x "$PROBE" ]]; then
	# Until bench/meson.build builds it: compile against the build's libhfe.
	PROBE=$WORK/bench-dbus-scanout
	cc -std=c11 -D_GNU_SOURCE -O2 -I"$SRC/lib/include" "$SRC/bench/dbus-scanout.c" -o "$PROBE" \
		-L"$BUILD/lib" -lhfe -lm -Wl,-rpath,"$BUILD/lib" || die "cannot build the probe"
fi
GUEST=$("$SRC/tests/e2e/build-guest.sh" --tool "$GUEST_TOOL") || die "cannot build the guest"
MODULE_QEMU=${HFE_BENCH_MODULE_QEMU:-}
if [[ -z "$MODULE_QEMU" ]]; then
	dir=$("$SRC/qemu/build.sh" --hfe-build "$BUILD" | tail -n 1) ||
		die "cannot build the patched QEMU (HFE_BENCH_MODULE_QEMU=none skips the module half)"
	MODULE_QEMU=$dir/bin/qemu-system-x86_64
fi
[[ "$MODULE_QEMU" == none || -x "$MODULE_QEMU" ]] || die "no QEMU at $MODULE_QEMU"

# qmp SOCKET COMMAND_JSON: run one QMP command, print what it returns.
qmp() {
	python3 - "$@" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
f.readline()
for cmd in ('{"execute": "qmp_capabilities"}', sys.argv[2]):
    f.write(cmd + "\n")
    f.flush()
    while True:
        r = json.loads(f.readline())
        if "return" in r or "error" in r:
            break
ret = r.get("return", r.get("error"))
if isinstance(ret, dict):
    # A struct (the module's stats) as key=value: numbers, lists of numbers as a/b/c.
    ret = " ".join(k.replace("-", "_") + "=" +
                   ("/".join(map(str, v)) if isinstance(v, list) else str(v))
                   for k, v in ret.items() if not (isinstance(v, list) and
                                                   v and isinstance(v[0], dict)))
print(ret)
PY
}
STATS_GET='{"execute":"qom-get","arguments":{"path":"/objects/hfe0","property":"stats"}}'
STALL_RESET='{"execute":"qom-set","arguments":{"path":"/objects/hfe0","property":"max-stall-us","value":0}}'

# wait_for FILE REGEX SECONDS [N]: until FILE has more than N (default 0) matching lines.
wait_for() {
	local i n
	for ((i = 0; i < $3 * 10; i++)); do
		n=$(grep -cE "$2" "$1" 2>/dev/null || true)
		((${n:-0} > ${4:-0})) && return 0
		sleep 0.1
	done
	return 1
}

# Type a line into the guest's shell (QEMU's serial stdin is fd 9).
type_line() {
	printf '%s\n' "$1" >&9
}

# boot_vm VARIANT W H: QEMU with the guest's shell on fd 9; sets QEMU_PID, CONSOLE, HFE_ADDR.
boot_vm() {
	local variant=$1 w=$2 h=$3 tag=$1-$2x$3
	local -a display
	local qemu=$QEMU
	CONSOLE=$WORK/$tag-console.log
	rm -f "$WORK/in.fifo"
	mkfifo "$WORK/in.fifo"
	case "$variant" in
	dbus)
		# shellcheck disable=SC2054 # (QEMU's own commas)
		display=(-display dbus,p2p=yes -qmp "unix:$WORK/vm.qmp,server=on,wait=off"
			-trace dbus_update -msg timestamp=on -D "$WORK/$tag-trace.log")
		HFE_ADDR=unix:$WORK/vm.sock
		;;
	module)
		# shellcheck disable=SC2054
		# The QEMU module serves the scanout itself (issue 4); no daemon involved.
		qemu=$MODULE_QEMU
		display=(-display none -L /usr/share/qemu -L /usr/share/seabios -L /usr/lib/ipxe/qemu
			-object "helix-frame-export,id=hfe0,listen=unix:$WORK/module.sock"
			-qmp "unix:$WORK/module.qmp,server=on,wait=off")
		HFE_ADDR=unix:$WORK/module.sock
		;;
	esac
	LD_LIBRARY_PATH=$BUILD/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$qemu" -machine q35 -accel "$ACCEL" -m 512 "${display[@]}" -serial stdio -monitor none \
		-no-reboot -nic none -kernel "$GUEST/vmlinux" -initrd "$GUEST/initrd.img" \
		-append "console=ttyS0 panic=-1 quiet mitigations=off hfe.shell=1" \
		-vga none -device "virtio-gpu-pci,xres=$w,yres=$h" -device virtio-serial-pci \
		-chardev null,id=out -device virtserialport,chardev=out,name=org.helix.out.0 \
		<"$WORK/in.fifo" >"$CONSOLE" 2>&1 &
	QEMU_PID=$!
	exec 9>"$WORK/in.fifo"
	wait_for "$CONSOLE" 'HFE-GUEST: shell' 180 || die "$tag: the guest did not boot (see $CONSOLE)"
	sleep 1
}

stop_vm() {
	exec 9>&-
	kill "$QEMU_PID" 2>/dev/null || true
	wait "$QEMU_PID" 2>/dev/null || true
	QEMU_PID=
}

# measure VARIANT SIZE WORKLOAD: one probe window; appends a result line.
measure() {
	local variant=$1 size=$2 load=$3
	local -a pids=(--pid "qemu=$QEMU_PID") trace=()
	if [[ "$variant" == dbus ]]; then
		pids+=(--pid "daemon=$DAEMON_PID")
		trace=(--qemu-trace "$WORK/$variant-$size-trace.log")
	fi
	local out stall= ctl=
	if [[ "$variant" == module ]]; then # the window's own worst
		qmp "$WORK/module.qmp" "$STALL_RESET" >/dev/null || true
		# the baseline: a do-nothing event loop on the same machine meanwhile
		"$JITTER" $((SECONDS_WIN + 2)) >"$WORK/jitter.txt" &
	fi
	out=$("$PROBE" --connect "$HFE_ADDR" --warmup 2 --duration "$SECONDS_WIN" "${pids[@]}" \
		"${trace[@]}") || die "$variant $size $load: probe failed"
	if [[ "$variant" == module ]]; then
		wait $! || true
		ctl=" $(cat "$WORK/jitter.txt")"
		# the main-loop fields of the module's stats (qemu/README.md)
		stall=" $(qmp "$WORK/module.qmp" "$STATS_GET" |
			grep -oE '(max_stall[a-z_]*|blocked|max_blocked_[a-z]*|preempted|hist_us|hist_cpu_us)=[^ ]*' |
			sed 's/^max_stall_us=/stall_us=/' | tr '\n' ' ')"
	fi
	echo "variant=$variant size=$size load=$load $out$stall$ctl" | tee -a "$WORK/results.txt"
}

run_size() {
	local variant=$1 size=$2 w=${2%x*} h=${2#*x}
	local attached
	attached=$(grep -c 'vm: attached' "$WORK/daemon.log" || true)
	boot_vm "$variant" "$w" "$h"
	if [[ "$variant" == dbus ]]; then
		wait_for "$WORK/daemon.log" 'vm: attached' 60 "$attached" ||
			die "the daemon did not attach (see $WORK/daemon.log)"
	fi
	# scroll: a text flood on the framebuffer console
	type_line '(while :; do cat /etc/hfe-modules /etc/hfe-modules-extra; done) >/dev/tty1 2>&1 &'
	measure "$variant" "$size" scroll
	type_line 'kill $!'
	sleep 1
	# static: one picture held (graphics mode: no blinking cursor either)
	type_line "hfe-guest mode=draw frames=1 hold=$(((SECONDS_WIN + 6) * 1000)) out=/dev/null &"
	wait_for "$CONSOLE" 'HFE-GUEST: draw done' 60 || die "static: no draw"
	measure "$variant" "$size" static
	wait_for "$CONSOLE" 'HFE-GUEST: draw hold done' 60 || true
	# draw: new full frames as fast as the guest renders them
	type_line 'hfe-guest mode=draw frames=1000000 fps=240 out=/dev/null &'
	measure "$variant" "$size" draw
	stop_vm
}

echo "bench: $(uname -m), $(nproc) cores, accel $ACCEL, $("$QEMU" --version | head -1)"
echo "bench: $("$DAEMON" --version), window ${SECONDS_WIN} s per workload, work dir $WORK"
# shellcheck disable=SC2086
"$DAEMON" --qemu "qmp:unix:$WORK/vm.qmp" --listen "unix:$WORK/vm.sock" \
	${HFE_BENCH_DAEMON_ARGS:-} >"$WORK/daemon.log" 2>&1 &
DAEMON_PID=$!
wait_for "$WORK/daemon.log" 'listening on' 10 || die "the daemon did not start (see $WORK/daemon.log)"
echo "daemon: $DAEMON --qemu qmp:unix:$WORK/vm.qmp --listen unix:$WORK/vm.sock ${HFE_BENCH_DAEMON_ARGS:-}"

for size in $SIZES; do
	for variant in ${HFE_BENCH_VARIANTS:-dbus module}; do
		[[ "$variant" == module && "$MODULE_QEMU" == none ]] && continue
		run_size "$variant" "$size"
	done
done

echo
printf '%-7s %-9s %-7s %7s %7s %15s %15s %9s %9s %11s %11s %11s %17s %17s\n' variant size \
	load fps upd/s "lat p50/p99" "qlat p50/p99" "qemu CPU" "hfe CPU" "qemu RSS" "hfe RSS" \
	"stall max" ">=1ms module" ">=1ms baseline"
awk '
function kv(k,   i, a) { for (i = 1; i <= NF; i++) { split($i, a, "="); if (a[1] == k) return a[2] } return "-" }
# callbacks of >= 1 ms in a hist_us (buckets <100/<250/<500/<1000/<2000/<5000/>=5000)
function over1ms(h,   b, n, i, all) {
	if (h == "-") return "-"
	n = split(h, b, "/"); all = 0
	for (i = 1; i <= n; i++) all += b[i]
	return sprintf("%.3f%%", all ? 100 * (b[5] + b[6] + b[7]) / all : 0)
}
{
	printf "%-7s %-9s %-7s %7s %7s %15s %15s %8s%% %8s%% %8s MB %8s MB %8s us %17s %17s\n",
		kv("variant"), kv("size"), kv("load"), kv("fps"), kv("upd_per_s"),
		kv("lat_p50_ms") "/" kv("lat_p99_ms") " ms", kv("qlat_p50_ms") "/" kv("qlat_p99_ms") " ms",
		kv("cpu_qemu_pct"), kv("cpu_daemon_pct"),
		(kv("hwm_qemu_kb") == "-" ? "-" : int(kv("hwm_qemu_kb") / 1024)),
		(kv("hwm_daemon_kb") == "-" ? "-" : int(kv("hwm_daemon_kb") / 1024)),
		kv("stall_us"), over1ms(kv("hist_us")) "/" over1ms(kv("hist_cpu_us")),
		over1ms(kv("ctl_hist_us")) "/" over1ms(kv("ctl_hist_cpu_us"))
}' "$WORK/results.txt"
echo "(RSS = peak VmHWM of the process so far; daemon one process for all runs;"
echo " stall max = the module's longest main-loop callback in that window (wall clock);"
echo " >=1ms = share of its callbacks that took 1 ms or more, wall clock / CPU time; and the"
echo " same for a do-nothing event loop (bench-loop-jitter) on the same machine meanwhile."
echo " Per window in $WORK/results.txt: where, CPU time, blocked (waited) and preempted counts)"
