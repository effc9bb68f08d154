#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The systemd units (systemd/*.service.in, as configured in the build tree)
# score 2.0 or lower ("OK") in `systemd-analyze security --offline=true`, and
# the per-VM template's sandbox is the daemon unit's, line for line.
# Usage: test_systemd_units.sh UNIT...   (exit 77: skipped, no systemd >= 250)
set -u
MAX=2.0

if ! command -v systemd-analyze >/dev/null; then
	echo "SKIP: no systemd-analyze (Debian package systemd)"
	exit 77
fi
ver=$(systemd-analyze --version | awk 'NR == 1 { print $2 }')
if [[ ! "$ver" =~ ^[0-9]+$ ]] || ((ver < 250)); then
	echo "SKIP: systemd $ver has no 'security --offline' (needs 250)"
	exit 77
fi

fail=0
for unit in "$@"; do
	out=$(cd "$(dirname "$unit")" && systemd-analyze security --offline=true --no-pager \
		"$(basename "$unit")" 2>&1)
	score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
	if [[ -z "$score" ]]; then
		printf '%s\n' "$out"
		echo "FAIL: $unit: no exposure score"
		fail=1
	elif awk -v s="$score" -v m="$MAX" 'BEGIN { exit !(s > m) }'; then
		printf '%s\n' "$out" | grep '✗'
		echo "FAIL: $unit: exposure $score > $MAX"
		fail=1
	else
		echo "ok: $unit: exposure $score"
	fi
done

# The sandbox block: from "# What the daemon does" up to [Install].
sandbox() { sed -n '/^# What the daemon does/,/^\[Install\]/p' "$1"; }
if (($# >= 2)); then
	if ! diff <(sandbox "$1") <(sandbox "$2"); then
		echo "FAIL: the sandboxes of $1 and $2 differ"
		fail=1
	elif [[ -z "$(sandbox "$1")" ]]; then
		echo "FAIL: no sandbox block in $1"
		fail=1
	else
		echo "ok: same sandbox in both units"
	fi
fi
exit $fail
