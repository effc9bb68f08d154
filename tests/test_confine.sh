#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The daemon ($HFE_DAEMON) confines itself once it listens (daemon/confine.c):
# no_new_privs and the seccomp filter are on, a forbidden call (execve) is
# refused while the daemon keeps serving ($HFE_CLIENT stats), --no-seccomp
# turns the filter off, unix sockets get --socket-mode / --socket-group (0660
# by default), and, as root, --user switches user and a non-member of the
# socket's group cannot connect.
set -u
: "${HFE_DAEMON:?}" "${HFE_CLIENT:?}"
dir=$(mktemp -d "${TMPDIR:-/tmp}/hfe-confine.XXXXXX")
chmod 0755 "$dir" # other users must reach the sockets for the group checks
pid=
fails=0
cleanup() {
	[[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

# start NAME ARGS...: the daemon on unix:$dir/NAME.sock, log in $dir/NAME.log.
start() {
	local name=$1
	shift
	HFE_LOG=info HFE_TEST_FORBIDDEN_SYSCALL=1 HFE_SECCOMP= "$HFE_DAEMON" \
		--listen "unix:$dir/$name.sock" "$@" >"$dir/$name.log" 2>&1 &
	pid=$!
	# Confinement is the last step before the loop: wait for its log line.
	for _ in $(seq 100); do
		grep -q "forbidden-syscall test" "$dir/$name.log" && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	cat "$dir/$name.log"
	fail "$name: daemon did not start"
	stop
	return 1
}
stop() {
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	pid=
}
status() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$pid/status"; }

# 1. Defaults: filter on, execve refused, still serving, socket 0660.
if start default; then
	[[ "$(status Seccomp)" == 2 ]] && ok "seccomp filter mode" || fail "Seccomp: $(status Seccomp)"
	[[ "$(status NoNewPrivs)" == 1 ]] && ok "no_new_privs" || fail "NoNewPrivs: $(status NoNewPrivs)"
	grep -q "execve: Operation not permitted (refused by the filter)" "$dir/default.log" &&
		ok "execve refused" || fail "execve not refused: $(grep forbidden "$dir/default.log")"
	"$HFE_CLIENT" stats --connect "unix:$dir/default.sock" >"$dir/stats.out" 2>&1 &&
		ok "serves after confinement" || fail "stats: $(cat "$dir/stats.out")"
	kill -0 "$pid" 2>/dev/null && ok "alive" || fail "daemon died"
	mode=$(stat -c %a "$dir/default.sock")
	[[ "$mode" == 660 ]] && ok "default socket mode 660" || fail "default socket mode $mode"
	stop
fi

# 2. --no-seccomp: the same execve reaches the kernel (ENOENT).
if start off --no-seccomp; then
	[[ "$(status Seccomp)" == 0 ]] && ok "--no-seccomp: no filter" || fail "--no-seccomp: Seccomp $(status Seccomp)"
	# libseccomp sets no_new_privs itself when it loads a filter: here only
	# the daemon's own prctl does.
	[[ "$(status NoNewPrivs)" == 1 ]] && ok "--no-seccomp: no_new_privs still" ||
		fail "--no-seccomp: NoNewPrivs $(status NoNewPrivs)"
	grep -q "execve: No such file or directory (NOT refused" "$dir/off.log" &&
		ok "--no-seccomp: execve not refused" || fail "--no-seccomp: $(grep forbidden "$dir/off.log")"
	stop
fi

# 3. --socket-mode and --socket-group.
if start mode --socket-mode 0600 --socket-group nogroup; then
	got=$(stat -c '%a %G' "$dir/mode.sock")
	[[ "$got" == "600 nogroup" ]] && ok "--socket-mode 0600 --socket-group nogroup" || fail "socket is '$got'"
	stop
fi
for bad in 0666x 1777 0400 -1; do
	"$HFE_DAEMON" --socket-mode "$bad" --listen "unix:$dir/bad.sock" >/dev/null 2>&1
	[[ $? == 2 ]] && ok "--socket-mode $bad refused" || fail "--socket-mode $bad accepted"
done

# 4. As root: --user, and who may connect.
if [[ $(id -u) != 0 ]] || ! getent passwd nobody >/dev/null || ! getent group nogroup >/dev/null ||
	! command -v setpriv >/dev/null; then
	echo "skipping the root-only checks (need root, user nobody, group nogroup, setpriv)"
else
	as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
	if start user --user nobody --socket-group nogroup; then
		[[ "$(status Uid | cut -f1)" == "$(id -u nobody)" ]] && ok "--user nobody" ||
			fail "Uid: $(status Uid)"
		got=$(stat -c '%a %U %G' "$dir/user.sock")
		[[ "$got" == "660 nobody nogroup" ]] && ok "socket of --user: $got" || fail "socket is '$got'"
		as_nobody "$HFE_CLIENT" stats --connect "unix:$dir/user.sock" >"$dir/u.out" 2>&1 &&
			ok "group member connects" || fail "member: $(cat "$dir/u.out")"
		stop
	fi
	# Default group (root's): nobody is not a member.
	if start root; then
		if as_nobody "$HFE_CLIENT" stats --connect "unix:$dir/root.sock" >"$dir/r.out" 2>&1; then
			fail "non-member connected"
		elif grep -q "Permission denied" "$dir/r.out"; then
			ok "non-member refused"
		else
			fail "non-member: $(cat "$dir/r.out")"
		fi
		stop
	fi
fi
echo "$fails failure(s)"
exit $((fails ? 1 : 0))
