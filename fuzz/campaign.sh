#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A fuzzing campaign (fuzz/README.md): each TARGET runs for SECONDS on one
# core, from a scratch copy of its committed corpus; then what grew is
# minimised with -merge=1. Prints executions, cov/ft and corpus sizes per
# target and the total executions.
#
#   fuzz/campaign.sh [-b BUILD] [-o OUT] [-u] SECONDS TARGET...
#
#   -b BUILD  a -Dfuzzing=true build dir (default build-fuzzcamp)
#   -o OUT    work dir: corpus/, merged/, logs/, artifacts/ (default OUT=BUILD/campaign)
#   -u        replace the committed corpus's grown (hash-named) inputs with the
#             minimised ones; named seeds (make_corpus, regress_*) are kept
#
# Runs each target as one process under nice -n 19 (no -jobs/-fork), so the
# campaign takes one core; HFE_FUZZ_CPU pins it to that CPU with taskset.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD=build-fuzzcamp
OUT=
UPDATE=0
while getopts "b:o:u" opt; do
	case $opt in
	b) BUILD=$OPTARG ;;
	o) OUT=$OPTARG ;;
	u) UPDATE=1 ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
if [[ $# -lt 2 || ! $1 =~ ^[0-9]+$ ]]; then
	echo "usage: $0 [-b BUILD] [-o OUT] [-u] SECONDS TARGET..." >&2
	exit 2
fi
SECONDS_EACH=$1
shift
OUT=${OUT:-$BUILD/campaign}
PIN=()
[[ -n ${HFE_FUZZ_CPU:-} ]] && PIN=(taskset -c "$HFE_FUZZ_CPU")
export HFE_LOG=${HFE_LOG:-error} # the targets' peers log every close otherwise

# The committed corpus of a target, as scripts/test.sh seeds it.
seeds_of() {
	if [[ -d fuzz/corpus/$1 ]]; then echo "fuzz/corpus/$1"; else echo fuzz/corpus; fi
}
# Grown inputs are named by libFuzzer after their SHA-1; everything else is a seed.
is_grown() { [[ $(basename "$1") =~ ^[0-9a-f]{40}$ ]]; }
files_in() { find "$1" -maxdepth 1 -type f | wc -l; }
kb_in() { du -sk --apparent-size "$1" | cut -f1; }
stat_of() { grep -Eo "^stat::$1: *[0-9]+" "$2" | grep -Eo '[0-9]+$' || echo 0; }

total=0
summary=()
for target in "$@"; do
	exe=$BUILD/fuzz/$target
	[[ -x $exe ]] || { echo "$exe: not built (-Dfuzzing=true, CC=clang)" >&2; exit 1; }
	seeds=$(seeds_of "$target")
	work=$OUT/corpus/$target merged=$OUT/merged/$target art=$OUT/artifacts/$target
	log=$OUT/logs/$target.log
	rm -rf "$work" "$merged"
	mkdir -p "$work" "$merged" "$art" "$OUT/logs"
	find "$seeds" -maxdepth 1 -type f -exec cp -t "$work" {} +
	before_n=$(files_in "$work") before_kb=$(kb_in "$work")

	echo "== $target: ${SECONDS_EACH}s from $seeds ($before_n inputs), log $log"
	rc=0
	"${PIN[@]}" nice -n 19 "$exe" -max_total_time="$SECONDS_EACH" -timeout=10 \
		-print_final_stats=1 -artifact_prefix="$art/" "$work" >"$log" 2>&1 || rc=$?
	execs=$(stat_of number_of_executed_units "$log")
	done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
	cov=$(grep -Eo 'cov: [0-9]+' <<<"$done_line" || true)
	ft=$(grep -Eo 'ft: [0-9]+' <<<"$done_line" || true)
	grown_n=$(files_in "$work") grown_kb=$(kb_in "$work")
	if [[ $rc -ne 0 ]]; then
		tail -n 40 "$log"
		echo "== $target FAILED (exit $rc): artifacts in $art" >&2
		exit 1
	fi

	# Minimise: the named seeds stay; grown inputs are added only for new coverage.
	for f in "$seeds"/*; do
		if [[ -f $f ]] && ! is_grown "$f"; then cp "$f" "$merged/"; fi
	done
	"${PIN[@]}" nice -n 19 "$exe" -merge=1 -timeout=10 "$merged" "$work" \
		>"$OUT/logs/$target.merge.log" 2>&1
	merged_n=$(files_in "$merged") merged_kb=$(kb_in "$merged")

	line="$target: $execs execs in ${SECONDS_EACH}s, ${cov:-cov: ?} ${ft:-ft: ?};"
	line+=" corpus $before_n inputs/${before_kb} KB -> grown $grown_n/${grown_kb} KB"
	line+=" -> minimised $merged_n/${merged_kb} KB"
	summary+=("$line")
	echo "$line"
	total=$((total + execs))

	if [[ $UPDATE -eq 1 ]]; then
		for f in "$seeds"/*; do
			if [[ -f $f ]] && is_grown "$f"; then rm -f "$f"; fi
		done
		for f in "$merged"/*; do
			if is_grown "$f"; then cp "$f" "$seeds/"; fi
		done
		echo "$target: $seeds now holds $(files_in "$seeds") inputs"
	fi
done

echo "== campaign"
printf '%s\n' "${summary[@]}"
echo "total: $total executions, 0 crashes"
