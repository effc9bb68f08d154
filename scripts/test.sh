#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Run the whole test suite, as CI does (.ci/run) and as the README says.
#   1. gcc build in build/, `meson test`
#   2. gcc ASan+UBSan build in build-asan/, `meson test` with leak detection
#   3. the arm64 host job (scripts/arm64-host.sh): cross build in build-arm64/, the unit and
#      integration suites under qemu-user; in the background while 4 runs (its output,
#      kept in build-arm64.log, is printed after 4's)
#   4. clang libFuzzer build in build-fuzz/, every fuzz target for HFE_FUZZ_SECONDS (default 30)
#      over a scratch copy of fuzz/corpus (the repo's corpus is never written)
# Ends with a line "N passed, N failed" (every meson test of every variant counts once, so does
# every fuzz target, and a variant that fails to build counts as one failure) and exits non-zero
# if anything failed.
#
# Options: --quick (gcc build only, without the 60 s chaos soak: suite 'soak', and the
# desktop guest in the browser: suite 'desktop'), --no-asan, --no-arm64, --no-fuzz.
# Environment: HFE_FUZZ_SECONDS; HFE_BUILD_ROOT puts the build directories somewhere other than
# the repository root.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BUILD_ROOT=${HFE_BUILD_ROOT:-$ROOT}
FUZZ_SECONDS=${HFE_FUZZ_SECONDS:-30}
DO_ASAN=1
DO_FUZZ=1
DO_ARM64=1
QUICK_ARGS=()

# GCC 12's sanitizer runtime (Debian 12) takes a dynamic TLS block that malloc happened to
# place 16 bytes into a page for a pre-2.25 glibc block with a header, reads a start and a
# size from the bytes before it, and LeakSanitizer's tracer then faults scanning that range at
# exit ("Tracer caught signal 11 ... LeakSanitizer has encountered a fatal error"): random
# test failures with nothing wrong. Not intercepting __tls_get_addr avoids it; the blocks are
# heap chunks reached from the thread's dtv, so leak checking still sees through them. (Seen
# here with a thread alive at exit that holds a dlopen()ed library's __thread block: the tracer
# faults every time; with the option, LSan reports a real leak and not the block's pointer.)
ASAN_TLS_WORKAROUND=intercept_tls_get_addr=0

PASSED=0
FAILED=0
SKIPPED=0
FAILURES=()
REPORT=()

usage() {
	sed -n '4,18s/^# \{0,1\}//p' "$0"
}

log() {
	printf '\n=== %s\n' "$*"
}

fail() {
	FAILED=$((FAILED + 1))
	FAILURES+=("$1")
}

has_option() {
	grep -Eq "option\([[:space:]]*'$1'" meson_options.txt 2>/dev/null
}

# setup_dir DIR CC MESON_OPTIONS...: configure DIR, reusing it when it was set up with the same
# compiler and options, wiping it when they changed. Every option is passed explicitly because
# `meson setup --wipe` keeps options from the previous command line.
setup_dir() {
	local dir=$1 cc=$2
	shift 2
	local stamp="$dir/.hfe-setup"
	local want="CC=$cc $*"

	if [[ -f "$dir/meson-private/coredata.dat" ]]; then
		if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
			# Reconfigure anyway: meson.build files pick sources with fs.exists(), which
			# ninja cannot know to re-check when a new file appears.
			local out
			if ! out=$(meson setup --reconfigure "$dir" 2>&1); then
				printf '%s\n' "$out"
				return 1
			fi
			return 0
		fi
		echo "options changed: wiping $dir"
		rm -f "$stamp"
		CC=$cc meson setup --wipe "$dir" "$@" || return
	else
		# A missing or half-made directory: start from nothing.
		rm -rf -- "$dir"
		CC=$cc meson setup "$dir" "$@" || return
	fi
	printf '%s' "$want" >"$stamp"
}

# parse_testlog TESTLOG: read the results of one `meson test` run (meson's testlog.json).
# Prints "pass fail skip" then one line per failed test: its name, its result and the first
# lines of its output that say why (so that the summary, the end of CI's log, names the cause).
parse_testlog() {
	local log=$1
	if command -v python3 >/dev/null; then
		python3 - "$log" <<-'EOF'
			import json, re, sys
			why_re = re.compile(r"FAIL|Sanitizer|Tracer caught|runtime error|Assertion|"
			                    r"timed out|Timeout|not ok")
			ok = bad = skip = 0
			names = []
			with open(sys.argv[1]) as f:
			    for line in f:
			        line = line.strip()
			        if not line:
			            continue
			        t = json.loads(line)
			        r = t.get("result", "")
			        if r in ("OK", "EXPECTEDFAIL"):
			            ok += 1
			        elif r == "SKIP":
			            skip += 1
			        else:
			            bad += 1
			            why = [l.strip() for l in (t.get("stdout") or "").splitlines()
			                   if why_re.search(l)][:3]
			            line = "%s (%s)" % (t.get("name", "?"), r)
			            if why:
			                line += ": " + " | ".join(why)
			            names.append(line[:600])
			print(ok, bad, skip)
			for n in names:
			    print(n)
		EOF
	else
		local ok skip all
		ok=$(grep -Eo '"result": *"(OK|EXPECTEDFAIL)"' "$log" | wc -l)
		skip=$(grep -Eo '"result": *"SKIP"' "$log" | wc -l)
		all=$(grep -Eo '"result": *"[A-Z]+"' "$log" | wc -l)
		echo "$ok $((all - ok - skip)) $skip"
		grep -v -E '"result": *"(OK|EXPECTEDFAIL|SKIP)"' "$log" |
			sed -n 's/.*"name": *"\([^"]*\)".*/\1/p' || true
	fi
}

# run_variant NAME DIR CC MESON_TEST_ARGS -- MESON_SETUP_OPTIONS...
run_variant() {
	local name=$1 dir=$2 cc=$3
	shift 3
	local -a test_args=()
	while [[ $# -gt 0 && "$1" != "--" ]]; do
		test_args+=("$1")
		shift
	done
	shift

	log "$name: build ($dir, CC=$cc)"
	if ! setup_dir "$dir" "$cc" "$@" || ! meson compile -C "$dir"; then
		fail "$name: build"
		REPORT+=("$name: BUILD FAILED")
		return 0
	fi

	log "$name: meson test"
	local testlog="$dir/meson-logs/testlog.json" rc=0
	rm -f "$testlog"
	meson test -C "$dir" --print-errorlogs "${test_args[@]}" || rc=$?
	count_testlog "$name" "$testlog" "$rc"
}

# count_testlog NAME TESTLOG RC: add one `meson test` run's results (RC its exit status) to
# the totals and the report.
count_testlog() {
	local name=$1 testlog=$2 rc=$3
	local ok=0 bad=0 skip=0 out
	local -a failed=()
	if [[ -s "$testlog" ]]; then
		out=$(parse_testlog "$testlog")
		read -r ok bad skip <<<"$(head -n1 <<<"$out")"
		mapfile -t failed < <(tail -n +2 <<<"$out")
	fi
	PASSED=$((PASSED + ok))
	SKIPPED=$((SKIPPED + skip))
	local f
	for f in "${failed[@]}"; do
		fail "$name: $f"
	done
	# meson failed but no test result says so (harness error): still a failure.
	if [[ $rc -ne 0 && $bad -eq 0 ]]; then
		bad=1
		fail "$name: meson test exited $rc"
	fi
	REPORT+=("$name: $ok passed, $bad failed, $skip skipped")
}

# The arm64 host job: cross build, unit and integration tests under qemu-user. It runs
# meanwhile the fuzzers (a fixed time each, one core): start_arm64 starts it in the
# background, its output kept in a log; finish_arm64 waits, prints the log and counts.
start_arm64() {
	local dir="$BUILD_ROOT/build-arm64"
	log "arm64: cross build + unit and integration tests under qemu-user (scripts/arm64-host.sh)"
	ARM64_PID=
	if [[ -n "${ARM64_SETUP_PID:-}" ]] && ! wait "$ARM64_SETUP_PID"; then
		cat "$BUILD_ROOT/build-arm64-setup.log"
		fail "arm64: the root (scripts/arm64-host.sh --setup-only)"
		REPORT+=("arm64: ROOT FAILED")
		return 0
	fi
	rm -f "$dir/meson-logs/testlog.json"
	echo "(in the background; its output follows the fuzzers'; log: $BUILD_ROOT/build-arm64.log)"
	"$ROOT/scripts/arm64-host.sh" --build-dir "$dir" >"$BUILD_ROOT/build-arm64.log" 2>&1 &
	ARM64_PID=$!
}

finish_arm64() {
	local dir="$BUILD_ROOT/build-arm64" rc=0
	[[ -n "${ARM64_PID:-}" ]] || return 0
	wait "$ARM64_PID" || rc=$?
	log "arm64: the job's output (scripts/arm64-host.sh, exit $rc)"
	cat "$BUILD_ROOT/build-arm64.log"
	if [[ ! -s "$dir/meson-logs/testlog.json" ]]; then
		fail "arm64: setup or build (exit $rc)"
		REPORT+=("arm64: SETUP OR BUILD FAILED")
		return 0
	fi
	count_testlog arm64 "$dir/meson-logs/testlog.json" "$rc"
}

# Run one libFuzzer binary for FUZZ_SECONDS over a scratch corpus seeded from fuzz/corpus.
run_fuzz_target() {
	local exe=$1 dir=$2
	local target seeds work art logf rc=0
	target=$(basename "$exe")
	work="$dir/fuzz-corpus/$target"
	art="$dir/fuzz-artifacts/$target"
	logf="$dir/fuzz-logs/$target.log"
	mkdir -p "$work" "$art" "$(dirname "$logf")"

	# Seeds: fuzz/corpus/<target>/ when it exists, else the files directly in fuzz/corpus/.
	seeds="fuzz/corpus/$target"
	[[ -d "$seeds" ]] || seeds="fuzz/corpus"
	if [[ -d "$seeds" ]]; then
		find "$seeds" -maxdepth 1 -type f -exec cp -f -t "$work" {} +
	fi

	echo "fuzz: $target for ${FUZZ_SECONDS}s (seeds: $seeds, log: $logf)"
	"$exe" -max_total_time="$FUZZ_SECONDS" -timeout=10 -print_final_stats=1 \
		-artifact_prefix="$art/" "$work" >"$logf" 2>&1 || rc=$?
	if [[ $rc -eq 0 ]]; then
		PASSED=$((PASSED + 1))
		REPORT+=("fuzz: $target passed ($(grep -Eo 'stat::number_of_executed_units: *[0-9]+' \
			"$logf" | grep -Eo '[0-9]+$' || echo '?') execs)")
	else
		tail -n 60 "$logf"
		fail "fuzz: $target (exit $rc, artifacts in $art)"
		REPORT+=("fuzz: $target FAILED (exit $rc)")
	fi
}

run_fuzz() {
	local dir="$BUILD_ROOT/build-fuzz"
	local -a opts=(-Dfuzzing=true '-Db_sanitize=address,undefined' -Db_lundef=false)

	if ! has_option fuzzing; then
		REPORT+=("fuzz: skipped (no 'fuzzing' option in meson_options.txt)")
		return 0
	fi
	if has_option tests; then
		opts+=(-Dtests=false)
	fi

	log "fuzz: build ($dir, CC=clang)"
	if ! setup_dir "$dir" clang "${opts[@]}" || ! meson compile -C "$dir"; then
		fail "fuzz: build"
		REPORT+=("fuzz: BUILD FAILED")
		return 0
	fi

	log "fuzz: run targets"
	local -a targets=()
	if [[ -d "$dir/fuzz" ]]; then
		mapfile -t targets < <(find "$dir/fuzz" -maxdepth 1 -type f -name 'fuzz_*' \
			-perm -u+x | sort)
	fi
	if [[ ${#targets[@]} -eq 0 ]]; then
		echo "fuzz: no targets built yet"
		REPORT+=("fuzz: no targets")
		return 0
	fi
	local t
	for t in "${targets[@]}"; do
		run_fuzz_target "$t" "$dir"
	done
}

main() {
	local arg
	for arg in "$@"; do
		case "$arg" in
		--quick) DO_ASAN=0 DO_FUZZ=0 DO_ARM64=0 QUICK_ARGS=(--no-suite soak --no-suite desktop) ;;
		--no-asan) DO_ASAN=0 ;;
		--no-arm64) DO_ARM64=0 ;;
		--no-fuzz) DO_FUZZ=0 ;;
		-h | --help)
			usage
			exit 0
			;;
		*)
			echo "test.sh: unknown option '$arg'" >&2
			usage >&2
			exit 2
			;;
		esac
	done
	if ! [[ "$FUZZ_SECONDS" =~ ^[0-9]+$ && "$FUZZ_SECONDS" -gt 0 ]]; then
		echo "test.sh: HFE_FUZZ_SECONDS must be a positive integer" >&2
		exit 2
	fi

	# shellcheck source=scripts/deps.sh
	. "$ROOT/scripts/deps.sh"
	if [[ $DO_FUZZ -eq 1 || $DO_ASAN -eq 1 ]]; then
		hfe_deps test
	else
		hfe_deps build
	fi
	# The arm64 root (a cold mmdebstrap: minutes of download and unpacking, little CPU) is
	# made meanwhile, while the x86_64 builds and tests run; run_arm64 waits for it. Its
	# host packages are installed here first, so that no two apt-get run at once.
	if [[ $DO_ARM64 -eq 1 ]]; then
		hfe_deps arm64
		mkdir -p "$BUILD_ROOT"
		"$ROOT/scripts/arm64-host.sh" --setup-only >"$BUILD_ROOT/build-arm64-setup.log" 2>&1 &
		ARM64_SETUP_PID=$!
	fi

	local -a common=(-Dfuzzing=false)
	has_option tests && common+=(-Dtests=true)

	run_variant gcc "$BUILD_ROOT/build" gcc "${QUICK_ARGS[@]}" -- \
		"${common[@]}" -Db_sanitize=none -Db_lundef=true

	if [[ $DO_ASAN -eq 1 ]]; then
		# Sanitized code is slower: give every test three times its timeout. The desktop
		# guest in Chromium (suite desktop: minutes of TCG per test) runs in the plain build
		# only; the host code it drives runs sanitized in the e2e and browser suites.
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:$ASAN_TLS_WORKAROUND \
			UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
			run_variant asan "$BUILD_ROOT/build-asan" gcc --timeout-multiplier 3 \
			--no-suite desktop -- \
			"${common[@]}" -Db_sanitize=address,undefined -Db_lundef=false
	fi

	[[ $DO_ARM64 -eq 0 ]] || start_arm64

	if [[ $DO_FUZZ -eq 1 ]]; then
		ASAN_OPTIONS=abort_on_error=1:$ASAN_TLS_WORKAROUND \
			UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 run_fuzz
	fi

	[[ $DO_ARM64 -eq 0 ]] || finish_arm64

	log "summary"
	local line
	for line in "${REPORT[@]}"; do
		echo "  $line"
	done
	for line in "${FAILURES[@]}"; do
		echo "  FAILED: $line"
	done
	[[ $SKIPPED -eq 0 ]] || echo "  ($SKIPPED skipped)"
	echo "$PASSED passed, $FAILED failed"
	[[ $FAILED -eq 0 ]]
}

main "$@"
