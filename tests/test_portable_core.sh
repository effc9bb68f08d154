#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The portable core calls nothing outside tests/portable_core.symbols (issue 15).
#   test_portable_core.sh NM ARCHIVE SYMBOLS SOURCE...
# ARCHIVE is lib/libhfe-core-posix.a: the core compiled without __linux__ and _GNU_SOURCE
# (lib/meson.build). Its undefined symbols, less those its own objects define, must all be
# in SYMBOLS. Prints the ones that are not, with the objects that call them.
# Flags are not symbols, and glibc defines its Linux-only ones whatever the feature macros:
# the core's SOURCEs must not name them (sock.c, which has them and their POSIX forms,
# is left out).
set -eu
nm=$1 archive=$2 list=$3
shift 3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# libgcc's helpers for atomics on aarch64 (-moutline-atomics) are the compiler's, not calls.
"$nm" -u "$archive" | awk '$1 == "U" { print $2 }' |
	grep -vE '^__aarch64_(cas|swp|ldadd|ldclr|ldeor|ldset)[0-9]+_' | sort -u >"$tmp/undef"
"$nm" --defined-only "$archive" | awk 'NF == 3 { print $3 }' | sort -u >"$tmp/def"
grep -v -e '^#' -e '^$' "$list" | sort -u >"$tmp/allowed"
comm -23 "$tmp/undef" "$tmp/def" >"$tmp/called"
comm -23 "$tmp/called" "$tmp/allowed" >"$tmp/bad"

echo "the core calls $(wc -l <"$tmp/called") outside symbols, all checked against $list"
[ -s "$tmp/called" ] || { echo "FAIL: no undefined symbol found: is $archive the core?"; exit 1; }
if [ -s "$tmp/bad" ]; then
	echo "FAIL: the portable core calls what POSIX (or macOS) does not have:"
	while read -r sym; do
		printf '  %s (in:' "$sym"
		"$nm" -A -u "$archive" | awk -v s="$sym" '$NF == s { sub(/:.*/, "", $1); sub(/.*\[/, "", $1); printf " %s", $1 }'
		echo ")"
	done <"$tmp/bad"
	exit 1
fi
flags='SOCK_CLOEXEC|SOCK_NONBLOCK|MSG_NOSIGNAL|MSG_CMSG_CLOEXEC|O_PATH|O_TMPFILE|SO_PEERCRED|EPOLL[A-Z_]*|EFD_[A-Z_]*|TFD_[A-Z_]*|PR_SET_[A-Z_]*|GRND_[A-Z_]*'
bad_flags=0
for src in "$@"; do
	case "$src" in */sock.c) continue ;; esac
	if grep -nwE "$flags" "$src" | sed "s|^|  $src:|" | grep .; then
		bad_flags=1
	fi
done
if [ $bad_flags -ne 0 ]; then
	echo "FAIL: the portable core names Linux-only flags (above): use lib/src/sock.h"
	exit 1
fi
echo "OK: $# sources name no Linux-only flag"
