#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Runner of the browser tests (meson test --suite browser): makes sure Chromium and
# playwright-core are there, then runs viewer.test.mjs (or the test named by the first
# argument, with the other arguments).
#
# playwright-core is installed with `npm ci` from package-lock.json into a cache
# directory keyed by the lock file's hash ($HFE_NPM_CACHE, default /var/cache/hfe/npm,
# or ~/.cache/hfe/npm when that is not writable); once there, the test runs offline.
# Environment: HFE_DAEMON, HFE_VIEWER (set by meson), HFE_CHROMIUM (default
# /usr/bin/chromium), HFE_BROWSER_OUT (screenshots and logs are kept there).
# Anything missing is a failure with the reason, not a skip.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fail() {
	echo "browser test: FAIL: $*" >&2
	exit 1
}

for var in HFE_DAEMON HFE_VIEWER; do
	[[ -n "${!var:-}" && -x "${!var}" ]] ||
		fail "$var is not an executable (run through meson test)"
done

export HFE_CHROMIUM=${HFE_CHROMIUM:-/usr/bin/chromium}
if [[ ! -x "$HFE_CHROMIUM" ]]; then
	# deps.sh installs it as root, else says which command to run.
	"$here/../../scripts/deps.sh" test >&2 || fail "Chromium missing ($HFE_CHROMIUM)"
	[[ -x "$HFE_CHROMIUM" ]] || fail "Chromium missing ($HFE_CHROMIUM)"
fi
command -v node >/dev/null || fail "node missing (scripts/deps.sh test installs it)"
if ! command -v npm >/dev/null; then
	# Debian's nodejs comes without npm (NodeSource's includes it, and conflicts with
	# Debian's npm package, so deps.sh cannot list it).
	if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
		echo "browser test: installing npm" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends npm >&2 ||
			fail "cannot install npm"
	fi
	command -v npm >/dev/null || fail "npm missing (as root: apt-get install npm)"
fi

cache=${HFE_NPM_CACHE:-/var/cache/hfe/npm}
if ! mkdir -p "$cache" 2>/dev/null || [[ ! -w "$cache" ]]; then
	cache=${XDG_CACHE_HOME:-$HOME/.cache}/hfe/npm
	mkdir -p "$cache"
fi
key=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -c1-16)
dir="$cache/browser-test-$key"

if [[ ! -f "$dir/node_modules/playwright-core/package.json" ]]; then
	# One installer at a time; install beside, then move into place.
	exec 9>"$cache/.lock"
	flock 9
	if [[ ! -f "$dir/node_modules/playwright-core/package.json" ]]; then
		echo "browser test: installing playwright-core into $dir" >&2
		tmp=$(mktemp -d "$cache/.install-XXXXXX")
		chmod 755 "$tmp"
		cp "$here/package.json" "$here/package-lock.json" "$tmp/"
		if ! (cd "$tmp" && npm ci --no-audit --no-fund --prefer-offline \
			--cache "$cache/_cacache" >&2); then
			rm -rf "$tmp"
			fail "npm ci failed (offline and not cached yet? cache: $cache)"
		fi
		rm -rf "$dir"
		mv "$tmp" "$dir"
	fi
	exec 9>&-
fi

export HFE_NPM_DIR="$dir"
exec node "$here/${1:-viewer.test.mjs}" "${@:2}"
