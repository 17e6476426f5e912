#!/usr/bin/env bash
# failover-bench.sh: time from a fault of the master mgmt to the first
# hello returned under the new master, measured from outside against
# real processes, each "host" in its own network namespace on a bridge.
#
#   fb-mgmt-a .11 (priority 200)  fb-mgmt-b .12  fb-ctrl .21  fb-data .31
#
# Faults: kill (SIGKILL of mgmt-a), hostloss (mgmt-a's link set down:
# nothing, not even a reset, reaches anyone). Settings: default (the
# defaults, hello every 10 ms), tight (-heartbeat 10ms; ctrl and data
# -mgmt-dead-timeout 30ms -retry 10ms), md<D> (the defaults, ctrl and
# data -mgmt-dead-timeout D: md150 is 150ms, md1s 1s), etcd<T> (the
# election on etcd, docs/ha.md "Election on etcd": a third mgmt, fb-mgmt-c
# .13, and a three-member etcd cluster in fb-etcd .41, every mgmt with
# -election etcd -etcd-lease-ttl T: etcd1s, etcd2s; etcd runs with a
# 50 ms heartbeat and a 500 ms election timeout, so that a 1 s lease is
# allowed); a setting with -builtin or -app after its name
# (default-builtin, tight-app) runs mgmt with that -hello-cycle (the
# cycle in the registry's machine, or as an application: mgmt's
# default). Every trial starts the daemons (and etcd) afresh, waits for
# the cycle under mgmt-a, injects the fault at a random phase and reads
# the other mgmt's JSON logs for the first hello_returned.
#
# Usage (root): failover-bench.sh [TRIALS]
# Environment: HELLOPICS (bin/hellopics), FB_NET (198.18.40), FB_RUN
# (./run/failover-bench), FB_FAULTS ("kill hostloss"), FB_SETTINGS
# ("default tight"; add etcd1s etcd2s for the etcd election), FB_ETCD
# (etcd, the binary of Debian's etcd-server), FB_PREFIX (fb, the
# namespaces' and links' prefix), FB_KEEPALIVED (set to the keepalived anchor's
# folder, e.g. ../shared/anchors/keepalived, to run its settings b and
# c, VRRP adverts every 0.1 s and 0.01 s, in the same run: a copy of it
# runs under $FB_RUN).
#
# FB_SOAK=SECONDS runs no faults: for each setting it keeps the
# appliance running that long with FB_BUSY (default 4) busy loops at the
# daemons' own priority beside it, and counts mastership changes
# (became_master after the first), missed hellos and late election
# ticks: a false failover is any mastership change.
set -euo pipefail

BIN=${HELLOPICS:-bin/hellopics}
NET=${FB_NET:-198.18.40}
RUN=${FB_RUN:-./run/failover-bench}
TRIALS=${1:-10}
FAULTS=${FB_FAULTS:-kill hostloss}
SETTINGS=${FB_SETTINGS:-default tight}
P=${FB_PREFIX:-fb}
ETCD=${FB_ETCD:-etcd}
HOSTS=(mgmt-a mgmt-b mgmt-c ctrl data etcd)

die() {
	echo "failover-bench: $*" >&2
	exit 1
}
[[ $(id -u) == 0 ]] || die "needs root (network namespaces)"
[[ -x $BIN ]] || die "no $BIN: run make build"
command -v python3 >/dev/null || die "needs python3 to read the logs"
if [[ " $SETTINGS " == *" etcd"* ]]; then
	command -v "$ETCD" >/dev/null || die "etcd settings need $ETCD (apt-get install etcd-server)"
fi

ip_of() {
	case $1 in
	mgmt-a) echo "$NET.11" ;;
	mgmt-b) echo "$NET.12" ;;
	mgmt-c) echo "$NET.13" ;;
	etcd) echo "$NET.41" ;;
	ctrl) echo "$NET.21" ;;
	data) echo "$NET.31" ;;
	esac
}

down() {
	local h
	for h in "${HOSTS[@]}"; do
		ip netns pids "$P-$h" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
		ip netns del "$P-$h" 2>/dev/null || true
		ip link del "$P-$h" 2>/dev/null || true
	done
	ip link del "$P-br0" 2>/dev/null || true
}

up() {
	ip link add "$P-br0" type bridge
	ip addr add "$NET.1/24" dev "$P-br0"
	ip link set "$P-br0" up
	local h
	for h in "${HOSTS[@]}"; do
		ip netns add "$P-$h"
		ip link add "$P-$h" type veth peer name eth0 netns "$P-$h"
		ip link set "$P-$h" master "$P-br0" up
		ip -n "$P-$h" link set lo up
		ip -n "$P-$h" addr add "$(ip_of "$h")/24" dev eth0
		ip -n "$P-$h" link set eth0 up
	done
}

tls() { echo -tls-cert "$RUN/pki/$1.crt" -tls-key "$RUN/pki/$1.key" -tls-ca "$RUN/pki/ca.crt"; }

# start HOST SETTING: the daemon of HOST in its namespace, JSON logs at
# debug in $RUN/HOST.log.
start() {
	local h=$1 set=${2%-app} args=()
	set=${set%-builtin}
	local mgmts
	mgmts="$(ip_of mgmt-a):7300,$(ip_of mgmt-b):7300"
	[[ $set == etcd* ]] && mgmts+=",$(ip_of mgmt-c):7300"
	case $h in
	mgmt-a | mgmt-b | mgmt-c)
		local peers="" prio=100 o
		[[ $h == mgmt-a ]] && prio=200
		for o in mgmt-a mgmt-b mgmt-c; do
			[[ $o == mgmt-c && $set != etcd* ]] && continue
			[[ $o != "$h" ]] && peers+="${peers:+,}$o=$(ip_of "$o"):7310"
		done
		args=(mgmt -id "$h" -priority "$prio" -listen "$(ip_of "$h"):7300" -ha-listen "$(ip_of "$h"):7310"
			-operator "$(ip_of "$h"):7400" -peers "$peers" -state-dir "$RUN/state/$h"
			-hello-interval 10ms)
		[[ $set == tight ]] && args+=(-heartbeat 10ms)
		[[ $2 == *-app ]] && args+=(-hello-cycle app)
		[[ $2 == *-builtin ]] && args+=(-hello-cycle builtin)
		if [[ $set == etcd* ]]; then
			local e
			e=$(ip_of etcd)
			args+=(-election etcd -etcd-endpoints "$e:2379,$e:2381,$e:2383" -etcd-lease-ttl "${set#etcd}")
		fi
		;;
	ctrl) args=(ctrl -mgmt "$mgmts" -listen "$(ip_of ctrl):7301") ;;
	data) args=(data -mgmt "$mgmts") ;;
	esac
	if [[ $h == ctrl || $h == data ]] && [[ $set == tight ]]; then
		args+=(-mgmt-dead-timeout 30ms -retry 10ms)
	fi
	if [[ $h == ctrl || $h == data ]] && [[ $set == md* ]]; then
		# The defaults but this: md150 is 150ms, md1s 1s.
		local md=${set#md}
		[[ $md =~ ^[0-9]+$ ]] && md=${md}ms
		args+=(-mgmt-dead-timeout "$md")
	fi
	local cert=mgmt-$h
	[[ $h == ctrl || $h == data ]] && cert=$h-pic0
	# shellcheck disable=SC2046 # tls prints separate words
	ip netns exec "$P-$h" "$BIN" "${args[@]}" $(tls "$cert") -log-json -log-level debug >"$RUN/$h.log" 2>&1 &
	echo $! >"$RUN/$h.pid"
}

# wait_for FILE PATTERN SECONDS
wait_for() {
	local i
	for ((i = 0; i < $3 * 20; i++)); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# start_etcd: a fresh three-member etcd cluster in the etcd namespace,
# ready for writes.
start_etcd() {
	local e i cluster=""
	e=$(ip_of etcd)
	rm -rf "$RUN/etcd"
	mkdir -p "$RUN/etcd"
	for i in 0 1 2; do
		cluster+="${cluster:+,}e$i=http://$e:$((2380 + 2 * i))"
	done
	for i in 0 1 2; do
		ip netns exec "$P-etcd" "$ETCD" --name "e$i" --data-dir "$RUN/etcd/e$i" \
			--listen-client-urls "http://$e:$((2379 + 2 * i))" --advertise-client-urls "http://$e:$((2379 + 2 * i))" \
			--listen-peer-urls "http://$e:$((2380 + 2 * i))" --initial-advertise-peer-urls "http://$e:$((2380 + 2 * i))" \
			--initial-cluster "$cluster" --initial-cluster-state new --heartbeat-interval 50 --election-timeout 500 \
			--logger zap >"$RUN/etcd/e$i.log" 2>&1 &
		echo $! >"$RUN/etcd$i.pid"
	done
	for ((i = 0; i < 200; i++)); do
		# Each member serves clients once it has joined the cluster under a leader.
		if grep -q 'serving client traffic' "$RUN/etcd/e0.log" 2>/dev/null &&
			grep -q 'serving client traffic' "$RUN/etcd/e1.log" 2>/dev/null &&
			grep -q 'serving client traffic' "$RUN/etcd/e2.log" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	die "etcd did not start: $RUN/etcd"
}

stop_all() {
	local h
	for h in "${HOSTS[@]}" etcd0 etcd1 etcd2; do
		if [[ -s $RUN/$h.pid ]]; then
			kill -9 "$(cat "$RUN/$h.pid")" 2>/dev/null || true
			rm -f "$RUN/$h.pid"
		fi
	done
	wait 2>/dev/null || true
	ip link set "$P-mgmt-a" up 2>/dev/null || true
}

trap 'stop_all; down' EXIT
down
rm -rf "$RUN"
mkdir -p "$RUN/state"
"$BIN" pki deployment -dir "$RUN/pki" -mgmt mgmt-a,mgmt-b,mgmt-c -pairs pic0 >/dev/null
up
# Let the links come up (linkwatch) before anything starts.
sleep 1

# soak SETTING: the appliance under CPU load, no fault.
soak() {
	local set=$1 busy=() i
	rm -rf "$RUN/state"
	mkdir -p "$RUN/state"
	start mgmt-a "$set"
	sleep 0.3
	start mgmt-b "$set"
	start ctrl "$set"
	start data "$set"
	wait_for "$RUN/mgmt-a.log" '"step":"hello_returned"' 20 || die "$set: the cycle did not start"
	for ((i = 0; i < ${FB_BUSY:-4}; i++)); do
		(while :; do :; done) &
		busy+=($!)
	done
	sleep "$FB_SOAK"
	kill "${busy[@]}"
	stop_all
	local changes missed late
	changes=$(cat "$RUN"/mgmt-*.log | grep -c '"step":"became_master"' || true)
	missed=$(grep -c '"step":"hello_missed"' "$RUN/mgmt-a.log" || true)
	late=$(cat "$RUN"/mgmt-*.log | grep -c 'election tick late' || true)
	lost=$(cat "$RUN"/ctrl.log "$RUN"/data.log | grep -c '"@message":"mgmt lost' || true)
	printf '%-8s %4ss %4s busy  mastership changes %d  hellos missed %d  late election ticks %d  mgmt sessions lost %d\n' \
		"$set" "$FB_SOAK" "${FB_BUSY:-4}" "$((changes - 1))" "$missed" "$late" "$lost"
	mkdir -p "$RUN/soak-$set"
	cp "$RUN"/*.log "$RUN/soak-$set/"
}
if [[ -n ${FB_SOAK:-} ]]; then
	for set in $SETTINGS; do
		soak "$set"
	done
	exit 0
fi

results=$RUN/results.csv
echo "fault,setting,trial,ms,ok" >"$results"
for set in $SETTINGS; do
	for fault in $FAULTS; do
		for ((t = 1; t <= TRIALS; t++)); do
			rm -rf "$RUN/state"
			mkdir -p "$RUN/state"
			others=(mgmt-b)
			if [[ $set == etcd* ]]; then
				others=(mgmt-b mgmt-c)
				start_etcd
			fi
			start mgmt-a "$set"
			if [[ $set == etcd* ]]; then
				# mgmt-a campaigns first: its key leads.
				wait_for "$RUN/mgmt-a.log" '"step":"became_master"' 20 || true
			else
				sleep 0.3
			fi
			for h in "${others[@]}"; do
				start "$h" "$set"
			done
			start ctrl "$set"
			start data "$set"
			if ! wait_for "$RUN/mgmt-a.log" '"step":"hello_returned"' 20; then
				echo "$fault,$set,$t,,setup" >>"$results"
				stop_all
				continue
			fi
			# A random phase against the heartbeats and hellos.
			sleep "0.$((RANDOM % 900 + 100))"
			t0=$(date +%s.%N)
			case $fault in
			kill) kill -9 "$(cat "$RUN/mgmt-a.pid")" ;;
			hostloss) ip link set "$P-mgmt-a" down ;;
			esac
			logs=()
			for h in "${others[@]}"; do
				logs+=("$RUN/$h.log")
			done
			for ((i = 0; i < 200; i++)); do
				grep -q '"step":"hello_returned"' "${logs[@]}" 2>/dev/null && break
				sleep 0.05
			done
			stop_all
			python3 - "$t0" "$fault" "$set" "$t" "${logs[@]}" >>"$results" <<'EOF'
import json, sys, datetime
t0, fault, setting, trial, logs = float(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
day = datetime.datetime.fromtimestamp(t0).date()
best = None
for log in logs:
    for line in open(log):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("step") != "hello_returned":
            continue
        ts = datetime.datetime.combine(day, datetime.time.fromisoformat(r["@timestamp"])).timestamp()
        if ts >= t0 - 0.0005:
            if best is None or ts < best:
                best = ts
            break
ms = "%.0f" % ((best - t0) * 1000) if best is not None else ""
print(f"{fault},{setting},{trial},{ms},{'yes' if ms else 'no'}")
EOF
			# Each trial's logs, to look into an outlier.
			mkdir -p "$RUN/trials/$fault-$set-$t"
			cp "$RUN"/mgmt-*.log "$RUN"/ctrl.log "$RUN"/data.log "$RUN/trials/$fault-$set-$t/"
			if [[ $set == etcd* ]]; then
				cp -r "$RUN/etcd" "$RUN/trials/$fault-$set-$t/"
			fi
		done
	done
done

python3 - "$results" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
groups = {}
for r in rows:
    groups.setdefault((r["fault"], r["setting"]), []).append(r)
print("%-9s %-8s %6s %6s %6s %6s %s" % ("fault", "setting", "trials", "p50", "p99", "max", "failed"))
for (f, s), rs in groups.items():
    ms = sorted(float(r["ms"]) for r in rs if r["ms"])
    failed = sum(1 for r in rs if not r["ms"])
    if not ms:
        print("%-9s %-8s %6d %6s %6s %6s %d" % (f, s, len(rs), "-", "-", "-", failed))
        continue
    p = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]
    print("%-9s %-8s %6d %6.0f %6.0f %6.0f %d" % (f, s, len(rs), p(0.5), p(0.99), ms[-1], failed))
EOF
echo "raw results: $results"

if [[ -n ${FB_KEEPALIVED:-} ]]; then
	command -v keepalived >/dev/null || die "FB_KEEPALIVED given but keepalived is not installed (apt-get install keepalived)"
	[[ -x $FB_KEEPALIVED/run.sh ]] || die "no keepalived anchor at $FB_KEEPALIVED"
	rm -rf "$RUN/keepalived"
	cp -r "$FB_KEEPALIVED" "$RUN/keepalived"
	rm -f "$RUN/keepalived/results/"*.json
	echo "keepalived, the same run (SIGKILL of the VRRP master; takeover = kill -> first reply from the backup):"
	"$RUN/keepalived/run.sh" "$TRIALS" b c >"$RUN/keepalived.log" 2>&1 || die "keepalived anchor failed: $RUN/keepalived.log"
	python3 "$RUN/keepalived/summarize.py"
fi
