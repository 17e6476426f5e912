#!/usr/bin/env bash
# verify.sh: `systemd-analyze verify` on the hellopics units, offline.
#
# The units name /usr/local/bin/hellopics; verify wants an executable
# there, so the units are checked from a temporary copy whose ExecStart
# names HELLOPICS (default: bin/hellopics at the top of the repository,
# built by `make build`). Nothing is installed or started.
#
# Needs systemd-analyze: Debian/Ubuntu package "systemd".
set -euo pipefail

PROG=verify.sh
here=$(cd "$(dirname "$0")" && pwd)
bin=${HELLOPICS:-$here/../../bin/hellopics}

command -v systemd-analyze >/dev/null ||
	{ echo "$PROG: systemd-analyze not found: apt-get install systemd" >&2; exit 1; }
[[ -x $bin ]] || { echo "$PROG: $bin is not an executable: run 'make build' or set HELLOPICS" >&2; exit 1; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
units=()
for u in "$here"/hellopics-*.service; do
	sed "s|/usr/local/bin/hellopics|$bin|g" "$u" >"$tmp/$(basename "$u")"
	units+=("$tmp/$(basename "$u")")
done
[[ ${#units[@]} -gt 0 ]] || { echo "$PROG: no unit in $here" >&2; exit 1; }

# verify prints its findings on stderr and may exit 0 with warnings:
# any output is a failure.
out=$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "${units[@]}" 2>&1) || {
	printf '%s: systemd-analyze verify failed:\n%s\n' "$PROG" "$out" >&2
	exit 1
}
if [[ -n $out ]]; then
	printf '%s: systemd-analyze verify warns:\n%s\n' "$PROG" "$out" >&2
	exit 1
fi
echo "$PROG: ${#units[@]} units verified ($(systemd-analyze --version | head -n 1))"
