#!/usr/bin/env bash
# The main job, end to end on this machine: build, start the host daemon, stream
# a generated moving test pattern through it as raw frames, and write the H.264
# it returns to demo-out/demo.h264 and demo-out/demo.mp4, printing fps and
# latency. Installs missing Debian packages first (needs root for that).
#
# Usage: scripts/demo.sh [--size WxH] [--frames N] [--format XR24|NV12|...] [--tcp]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

size=1280x720 frames=300 format=XR24 transport=unix
while [ $# -gt 0 ]; do
	case "$1" in
	--size) size="$2"; shift 2 ;;
	--frames) frames="$2"; shift 2 ;;
	--format) format="$2"; shift 2 ;;
	--tcp) transport=tcp; shift ;;
	-h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "demo.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
	esac
done

"$root/scripts/deps.sh" demo

echo "== building"
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null

out="$root/demo-out"
mkdir -p "$out"
run="$(mktemp -d /tmp/hfe-demo.XXXXXX)"
daemon_pid=""
cleanup() {
	if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
		kill -TERM "$daemon_pid"
		wait "$daemon_pid" || true
	fi
	rm -rf "$run"
}
trap cleanup EXIT INT TERM

if [ "$transport" = tcp ]; then
	addr="tcp:127.0.0.1:15937"
else
	addr="unix:$run/hfe.sock"
fi

echo "== starting the daemon on $addr"
HFE_LOG=info build/daemon/helix-frame-export --listen "$addr" --bitrate 6M --fps 30 \
	2> "$out/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do
	grep -q "listening on" "$out/daemon.log" 2>/dev/null && break
	kill -0 "$daemon_pid" 2>/dev/null || { cat "$out/daemon.log" >&2; exit 1; }
	sleep 0.05
done
head -4 "$out/daemon.log" | sed 's/^/   daemon: /'

echo "== streaming $frames frames of $size $format through the daemon"
build/tools/hfe-client send --connect "$addr" --pattern smpte --size "$size" \
	--frames "$frames" --format "$format" --fps 30 --output "$out/demo.h264"

echo "== muxing to MP4"
ffmpeg -hide_banner -loglevel error -y -framerate 30 -f h264 -i "$out/demo.h264" \
	-c copy "$out/demo.mp4"
ffprobe -v error -count_frames -select_streams v:0 \
	-show_entries stream=codec_name,profile,width,height,nb_read_frames \
	-of default=noprint_wrappers=1 "$out/demo.mp4" | sed 's/^/   /'

echo "== done: $out/demo.h264, $out/demo.mp4 (daemon log: $out/daemon.log)"
