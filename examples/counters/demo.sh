#!/bin/sh
# The counters example on this machine: two mgmt instances, one
# ctrl/data pair, configuration set through the operator API, a SIGKILL
# of the master half way, and the totals at the end (make example-demo).
set -eu
bin=${BIN:-bin/counters}
dir=$(mktemp -d /tmp/counters-demo.XXXXXX)
pids=""
cleanup() {
	if [ -n "$pids" ]; then
		# shellcheck disable=SC2086
		kill $pids 2>/dev/null || true
	fi
	wait 2>/dev/null || true
	echo "logs: $dir"
}
trap cleanup EXIT INT TERM

run() { # name args...
	name=$1; shift
	"$bin" "$@" >"$dir/$name.log" 2>&1 &
	pids="$pids $!"
	eval "pid_$name=\$!"
}
ctl() { "$bin" ctl "$@"; }
until_ok() { # tries command...: retry a command for up to 20 s
	n=0
	until "$@" >/dev/null 2>&1; do
		n=$((n + 1)); [ "$n" -lt 200 ] || { echo "gave up waiting for: $*"; exit 1; }
		sleep 0.1
	done
}

echo "== two mgmt (a: 127.0.0.1:7300, b: 127.0.0.1:7302), ctrl and data (pair pic0)"
run mgmt_a mgmt -id a -listen 127.0.0.1:7300 -ha-listen 127.0.0.1:7310 -peers b=127.0.0.1:7311 -operator 127.0.0.1:7400 -state-dir "$dir/a" -nopreempt -priority 200
run mgmt_b mgmt -id b -listen 127.0.0.1:7302 -ha-listen 127.0.0.1:7311 -peers a=127.0.0.1:7310 -operator 127.0.0.1:7401 -state-dir "$dir/b" -nopreempt -priority 100
run ctrl ctrl -mgmt 127.0.0.1:7300,127.0.0.1:7302 -listen 127.0.0.1:7301
run data data -mgmt 127.0.0.1:7300,127.0.0.1:7302
until_ok ctl -addr 127.0.0.1:7400 set rate 2000
echo "== counters ctl set rate 2000; set limit 12000"
ctl -addr 127.0.0.1:7400 set limit 12000
sleep 2
echo "== totals on the master (a) and the backup (b)"
ctl -addr 127.0.0.1:7400 totals
ctl -addr 127.0.0.1:7401 totals
echo "== kill -9 mgmt a"
# shellcheck disable=SC2154
kill -9 "$pid_mgmt_a"
echo "== totals on b, the new master, once data has generated all 12000 units: none lost, none twice"
until_ok sh -c "'$bin' ctl -addr 127.0.0.1:7401 totals | grep -q '^all  *12000 *\$'"
ctl -addr 127.0.0.1:7401 totals
