#!/usr/bin/env bash
# lab.sh: a hellopics appliance on "separate hosts" on one Linux machine.
#
# Each host is a network namespace joined to a bridge by a veth pair:
#
#   host (root namespace) 198.18.0.1 on the bridge ${LAB_PREFIX}-br0
#   ${LAB_PREFIX}-mgmt-a  .11  hellopics mgmt (id mgmt-a, priority 200)
#   ${LAB_PREFIX}-mgmt-b  .12  hellopics mgmt (id mgmt-b, priority 100)
#   ${LAB_PREFIX}-ctrl    .21  hellopics ctrl
#   ${LAB_PREFIX}-data    .31  hellopics data with the MEDS relay
#   ${LAB_PREFIX}-agent   .41  hellopics agent (SNMP agent simulator)
#   ${LAB_PREFIX}-tpce    .51  nothing runs; for TPCE clients (lab.sh exec tpce ...)
#
# With LAB_ELECTION=etcd (docs/ha.md, "Election on etcd"), also:
#
#   ${LAB_PREFIX}-mgmt-c  .13  hellopics mgmt (id mgmt-c, priority 100)
#   ${LAB_PREFIX}-etcd-1  .61  etcd (Debian's etcd-server), one member of three
#   ${LAB_PREFIX}-etcd-2  .62  etcd
#   ${LAB_PREFIX}-etcd-3  .63  etcd
#
# and the three mgmt run -election etcd against them.
#
# Usage: lab.sh up|down|failover|logs|status|exec HOST CMD...
#
# Environment:
#   HELLOPICS           the binary (default bin/hellopics)
#   LAB_PREFIX          prefix of every namespace, link and cgroup (default hp)
#   LAB_NET             the lab's /24 as three octets, inside 198.18.0.0/15
#                       (default 198.18.0)
#   LAB_RUN             run folder: logs, pid files, mgmt state (default ./run/lab)
#   LAB_HELLO_INTERVAL  mgmt -hello-interval (default 1s)
#   LAB_DEAD_TIMEOUT    -dead-timeout of ctrl and data (default 3s)
#   LAB_DEAD_MISSES     mgmt -dead-misses: heartbeats missed before a peer
#                       is dead (default 3; more on a loaded machine)
#   LAB_EVENT_INTERVAL  agent -event-interval (default 500ms)
#   LAB_STATUS_INTERVAL agent -status-interval (default 1s)
#   LAB_MEM_MAX         cgroup v2 memory.max per host (default 256M)
#   LAB_CPU_MAX         cgroup v2 cpu.max per host (default "50000 100000": half a CPU)
#   LAB_KILL_AFTER      failover: seconds between the link cut and the kill (default 5)
#   LAB_LOG_LEVEL       -log-level of every daemon (default: theirs, info)
#   LAB_LOG_JSON        set to 1: every daemon logs JSON lines (-log-json),
#                       for programs that read the logs (lab-chaos); 'logs'
#                       then sorts them on their "@timestamp"
#   LAB_CGROUP2_ROOT    where cgroup v2 is mounted (default: from /proc/mounts)
#   LAB_ELECTION        builtin (default: two mgmt) or etcd (three mgmt and a
#                       three-member etcd, each on its own host)
#   LAB_ETCD            the etcd binary (default etcd)
set -euo pipefail

PROG=lab.sh
P=${LAB_PREFIX:-hp}
NET=${LAB_NET:-198.18.0}
RUN=${LAB_RUN:-./run/lab}
BIN=${HELLOPICS:-bin/hellopics}
HELLO_INTERVAL=${LAB_HELLO_INTERVAL:-1s}
DEAD_TIMEOUT=${LAB_DEAD_TIMEOUT:-3s}
DEAD_MISSES=${LAB_DEAD_MISSES:-3}
EVENT_INTERVAL=${LAB_EVENT_INTERVAL:-500ms}
STATUS_INTERVAL=${LAB_STATUS_INTERVAL:-1s}
MEM_MAX=${LAB_MEM_MAX:-256M}
CPU_MAX=${LAB_CPU_MAX:-50000 100000}
KILL_AFTER=${LAB_KILL_AFTER:-5}

ELECTION=${LAB_ELECTION:-builtin}
ETCD=${LAB_ETCD:-etcd}

MGMTS=(mgmt-a mgmt-b)
HOSTS=(mgmt-a mgmt-b ctrl data agent tpce)
DAEMONS=(mgmt-a mgmt-b agent data ctrl) # start order; none depends on it
ETCDS=(etcd-1 etcd-2 etcd-3)
if [[ $ELECTION == etcd ]]; then
	MGMTS+=(mgmt-c)
	HOSTS+=(mgmt-c "${ETCDS[@]}")
	DAEMONS=("${ETCDS[@]}" mgmt-a mgmt-b mgmt-c agent data ctrl)
fi
# Every host and daemon either variant may have left: 'down' removes them all.
ALL_HOSTS=(mgmt-a mgmt-b ctrl data agent tpce mgmt-c "${ETCDS[@]}")
ALL_DAEMONS=("${ETCDS[@]}" mgmt-a mgmt-b mgmt-c agent data ctrl)
CG_PARENT=hellopics-lab

say() { printf '%s %s: %s\n' "$(date +%H:%M:%S.%3N)" "$PROG" "$*"; }
die() {
	printf '%s: %s\n' "$PROG" "$*" >&2
	exit 1
}

usage() {
	cat >&2 <<EOF
usage: $PROG up|down|failover|logs|status|exec HOST CMD...
  up        build the bridge and the namespaces, start the components (idempotent)
  down      stop the components, remove namespaces, links and cgroups (idempotent)
  failover  cut the master mgmt's link, then ${KILL_AFTER}s later kill its process;
            'up' brings it back (as backup)
  logs      every host's log, time-ordered, with a host prefix
  status    namespaces, processes and 'hellopics ctl status'
  exec      run CMD in the namespace of HOST (${HOSTS[*]})
EOF
	exit 2
}

host_ip() {
	case $1 in
	mgmt-a) echo "$NET.11" ;;
	mgmt-b) echo "$NET.12" ;;
	mgmt-c) echo "$NET.13" ;;
	ctrl) echo "$NET.21" ;;
	data) echo "$NET.31" ;;
	agent) echo "$NET.41" ;;
	tpce) echo "$NET.51" ;;
	etcd-1) echo "$NET.61" ;;
	etcd-2) echo "$NET.62" ;;
	etcd-3) echo "$NET.63" ;;
	*) die "unknown host $1 (want one of ${HOSTS[*]})" ;;
	esac
}

ns() { echo "$P-$1"; }   # the namespace of a host
veth() { echo "$P-$1"; } # the host-side end of its veth pair (the other end is eth0)
BR="$P-br0"

check_env() {
	[[ $P =~ ^[a-z][a-z0-9]{0,7}$ ]] || die "LAB_PREFIX '$P' must be 1 to 8 of [a-z0-9], starting with a letter (link names are at most 15 octets)"
	if ! [[ $NET =~ ^198\.1[89]\.([0-9]{1,3})$ ]] || ((BASH_REMATCH[1] > 255)); then
		die "LAB_NET '$NET' must be three octets inside 198.18.0.0/15, such as 198.18.0"
	fi
	[[ $ELECTION == builtin || $ELECTION == etcd ]] || die "LAB_ELECTION '$ELECTION' must be builtin or etcd"
}

need_etcd() {
	[[ $ELECTION == etcd ]] || return 0
	command -v "$ETCD" >/dev/null || die "LAB_ELECTION=etcd needs '$ETCD': install etcd-server (or set LAB_ETCD)"
	ETCD=$(command -v "$ETCD")
}

need_root() {
	[[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces, links and cgroups)"
	command -v ip >/dev/null || die "'ip' not found: install iproute2"
}

need_bin() {
	[[ -x $BIN ]] || die "$BIN is not an executable: run 'make build' or set HELLOPICS"
	BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
}

run_dir() {
	mkdir -p "$RUN"
	RUN=$(cd "$RUN" && pwd)
}

has_ns() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }
has_link() { ip link show dev "$1" >/dev/null 2>&1; }

# gone PID: true if the process no longer runs. A zombie counts as gone:
# an exited daemon is reaped by whoever adopted it, maybe late.
gone() {
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 0
	[[ -z $st || ${st:0:1} == Z ]]
}

# alive HOST: the pid recorded for HOST if that process still runs in the
# host's namespace (so a recycled pid is never taken for ours).
alive() {
	local f="$RUN/$1.pid" pid
	[[ -f $f ]] || return 1
	pid=$(<"$f")
	[[ $pid =~ ^[0-9]+$ ]] && ! gone "$pid" || return 1
	[[ $(ip netns identify "$pid" 2>/dev/null) == "$(ns "$1")" ]] || return 1
	echo "$pid"
}

# join_port PORT HOST...: the hosts' addresses at PORT, comma-separated.
join_port() {
	local port=$1 h out=""
	shift
	for h in "$@"; do out+="${out:+,}$(host_ip "$h"):$port"; done
	echo "$out"
}
mgmt_addrs() { join_port 7300 "${MGMTS[@]}"; }
operator_addrs() { join_port 7400 "${MGMTS[@]}"; }
etcd_endpoints() { join_port 2379 "${ETCDS[@]}"; }
etcd_cluster() {
	local h out=""
	for h in "${ETCDS[@]}"; do out+="${out:+,}$h=http://$(host_ip "$h"):2380"; done
	echo "$out"
}

# pki_dir: the lab's PKI (a CA and every certificate, made once by
# 'hellopics pki deployment'); prints its path.
pki_dir() {
	local d="$RUN/pki"
	if [[ ! -s $d/data-pic0.crt ]]; then
		"$BIN" pki deployment -dir "$d" -mgmt mgmt-a,mgmt-b,mgmt-c -pairs pic0 -operators admin:lab >/dev/null ||
			die "cannot make the lab's PKI in $d"
	fi
	[[ $ELECTION != etcd || -s $d/mgmt-mgmt-c.crt ]] ||
		die "the lab's PKI in $d predates mgmt-c (LAB_ELECTION=etcd): remove $d and run 'up' again"

	echo "$d"
}

# tls_flags HOST: the mutual-TLS flags of the component on HOST (every
# link of the lab runs mutual TLS).
tls_flags() {
	local d base
	d=$(pki_dir)
	case $1 in
	mgmt-*) base=mgmt-$1 ;;
	ctrl) base=ctrl-pic0 ;;
	data) base=data-pic0 ;;
	esac
	echo -tls-cert "$d/$base.crt" -tls-key "$d/$base.key" -tls-ca "$d/ca.crt"
}

# ctl_tls: the flags of 'hellopics ctl' with the lab's operator
# certificate (an admin).
ctl_tls() {
	local d
	d=$(pki_dir)
	echo -tls-cert "$d/operator-lab.crt" -tls-key "$d/operator-lab.key" -tls-ca "$d/ca.crt"
}

# snmp_flags: SNMPv3 authPriv for the relay and the agent, with random
# passphrases made once in files of mode 0600 (never on the command line).
snmp_flags() {
	local f
	for f in auth priv; do
		if [[ ! -s $RUN/snmp-$f ]]; then
			(umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$RUN/snmp-$f")
		fi
	done
	echo -snmp-version 3 -v3-user lab -v3-auth-pass-file "$RUN/snmp-auth" -v3-priv-pass-file "$RUN/snmp-priv"
}

# args HOST: the command line of the component on HOST.
args() {
	local ip
	ip=$(host_ip "$1")
	case $1 in
	mgmt-a | mgmt-b | mgmt-c)
		local prio=100 peers="" o election=""
		[[ $1 == mgmt-a ]] && prio=200
		for o in "${MGMTS[@]}"; do
			[[ $o == "$1" ]] || peers+="${peers:+,}$o=$(host_ip "$o"):7310"
		done
		[[ $ELECTION != etcd ]] || election="-election etcd -etcd-endpoints $(etcd_endpoints)"
		echo mgmt -id "$1" -priority "$prio" -nopreempt \
			-listen "$ip:7300" -ha-listen "$ip:7310" -operator "$ip:7400" \
			-peers "$peers" "$election" \
			-state-dir "$RUN/state/$1" -hello-interval "$HELLO_INTERVAL" \
			-dead-misses "$DEAD_MISSES" "$(tls_flags "$1")"
		;;
	etcd-*)
		# Plaintext client and peer URLs: the lab's etcd is for the
		# election only (mgmt's etcd client has no TLS yet).
		echo --name "$1" --data-dir "$RUN/state/$1" \
			--listen-client-urls "http://$ip:2379" --advertise-client-urls "http://$ip:2379" \
			--listen-peer-urls "http://$ip:2380" --initial-advertise-peer-urls "http://$ip:2380" \
			--initial-cluster "$(etcd_cluster)" --initial-cluster-state new --initial-cluster-token "$P-lab" \
			--logger zap
		;;
	ctrl)
		echo ctrl -mgmt "$(mgmt_addrs)" -listen "$ip:7301" -pair pic0 -dead-timeout "$DEAD_TIMEOUT" "$(tls_flags ctrl)"
		;;
	data)
		echo data -mgmt "$(mgmt_addrs)" -pair pic0 -dead-timeout "$DEAD_TIMEOUT" -report-interval 1s \
			-agent "$(host_ip agent):161" -notify "$ip:162" "$(snmp_flags)" \
			-commands "$ip:7001" -events "$ip:7002" -status "$ip:7003" "$(tls_flags data)"
		;;
	agent)
		echo agent -listen "$ip:161" -notify "$(host_ip data):162" "$(snmp_flags)" -sys-name "$P-agent" \
			-event-interval "$EVENT_INTERVAL" -status-interval "$STATUS_INTERVAL"
		;;
	esac
}

# cgroup v2 limits: CG is the lab's parent cgroup, or empty when limits
# cannot be applied on this machine.
CG=
# cg2_root: where cgroup v2 is mounted (LAB_CGROUP2_ROOT overrides it, for
# tests of this script).
cg2_root() {
	if [[ -n ${LAB_CGROUP2_ROOT:-} ]]; then
		echo "$LAB_CGROUP2_ROOT"
	else
		awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts
	fi
}

cg_setup() {
	local root ctrls c
	root=$(cg2_root)
	if [[ -z $root ]]; then
		say "cgroup v2 is not mounted: memory and CPU limits NOT applied"
		return 0
	fi
	ctrls=$(<"$root/cgroup.controllers")
	for c in memory cpu; do
		if ! grep -qw "$c" <<<"$ctrls"; then
			say "cgroup v2 at $root has no $c controller (available: ${ctrls:-none}; cgroup v1 hybrid?): memory and CPU limits NOT applied"
			return 0
		fi
	done
	mkdir -p "$root/$CG_PARENT"
	for c in memory cpu; do
		if ! { echo "+$c" >"$root/cgroup.subtree_control" && echo "+$c" >"$root/$CG_PARENT/cgroup.subtree_control"; } 2>/dev/null; then
			say "cannot enable the $c controller under $root/$CG_PARENT: memory and CPU limits NOT applied"
			rmdir "$root/$CG_PARENT" 2>/dev/null || true
			return 0
		fi
	done
	CG=$root/$CG_PARENT
}

# cg_host HOST: creates the host's cgroup with its limits; prints its path.
cg_host() {
	[[ -n $CG ]] || return 0
	local d="$CG/$P-$1"
	mkdir -p "$d"
	echo "$MEM_MAX" >"$d/memory.max"
	echo "$CPU_MAX" >"$d/cpu.max"
	echo "$d" >>"$RUN/cgroups"
	echo "$d"
}

net_up() {
	if ! has_link "$BR"; then
		ip link add "$BR" type bridge
		say "bridge $BR created"
	fi
	ip addr replace "$NET.1/24" dev "$BR"
	ip link set "$BR" up
	local h n v
	for h in "${HOSTS[@]}"; do
		n=$(ns "$h")
		v=$(veth "$h")
		if ! has_ns "$n"; then
			ip netns add "$n"
			say "namespace $n created"
		fi
		if ! has_link "$v"; then
			ip link add "$v" type veth peer name eth0 netns "$n"
			say "veth $v <-> $n/eth0 created"
		elif ! ip -o link show dev "$v" | grep -q '[<,]UP[,>]'; then
			say "link $v set up again: $n reconnected"
		fi
		ip link set "$v" master "$BR"
		ip link set "$v" up
		ip -n "$n" link set lo up
		ip -n "$n" addr replace "$(host_ip "$h")/24" dev eth0
		ip -n "$n" link set eth0 up
	done
	# The kernel applies a carrier change late (linkwatch, up to a second):
	# until then the namespace drops what it sends. Start nothing before
	# every link is really up, so that a restarted mgmt hears its peers.
	local i
	for h in "${HOSTS[@]}"; do
		for ((i = 0; i < 50; i++)); do
			ip -n "$(ns "$h")" -o link show dev eth0 | grep -q 'state UP' && break
			sleep 0.1
		done
		((i < 50)) || die "$(ns "$h")/eth0 is not up after 5s"
	done
}

start() {
	local h=$1 pid d log
	if pid=$(alive "$h"); then
		say "$h already running (pid $pid)"
		return 0
	fi
	log="$RUN/$h.log"
	d=$(cg_host "$h")
	[[ $h == mgmt-* || $h == etcd-* ]] && mkdir -p "$RUN/state/$h"
	local -a cmd
	read -r -a cmd <<<"$(args "$h")"
	local bin=$BIN
	if [[ $h == etcd-* ]]; then
		bin=$ETCD
	else
		[[ -z ${LAB_LOG_LEVEL:-} ]] || cmd+=(-log-level "$LAB_LOG_LEVEL")
		[[ ${LAB_LOG_JSON:-} != 1 ]] || cmd+=(-log-json)
	fi
	{
		# Local time, like hclog's: `logs` sorts on it.
		echo "# $(date +%FT%T.%3N) $PROG: ip netns exec $(ns "$h") $bin ${cmd[*]}"
	} >>"$log"
	# The shell moves itself into the cgroup, then becomes (exec) ip, which
	# enters the namespace and becomes (exec) hellopics: $! is its pid.
	# shellcheck disable=SC2016 # expanded by the inner shell
	CGDIR=$d setsid bash -c '[[ -z $CGDIR ]] || echo $$ >"$CGDIR/cgroup.procs"; exec "$@"' _ \
		ip netns exec "$(ns "$h")" "$bin" "${cmd[@]}" </dev/null >>"$log" 2>&1 &
	pid=$!
	echo "$pid" >"$RUN/$h.pid"
	say "$h started in $(ns "$h") ($(host_ip "$h")), pid $pid${d:+, cgroup $d}, log $log"
}

cmd_up() {
	need_root
	need_bin
	need_etcd
	run_dir
	net_up
	cg_setup
	[[ -z $CG ]] || say "limits per host: memory.max $MEM_MAX, cpu.max '$CPU_MAX' under $CG"
	local h
	for h in "${DAEMONS[@]}"; do
		start "$h"
	done
	# Fail now, not later, if something died at birth (bad flag, port taken).
	sleep 0.5
	for h in "${DAEMONS[@]}"; do
		alive "$h" >/dev/null || die "$h exited at once; see $RUN/$h.log:
$(tail -n 5 "$RUN/$h.log")"
	done
	say "lab up: hellopics ctl -addr $(operator_addrs) $(ctl_tls) status"
	say "TPCE:    $0 exec tpce $BIN tpce -commands $(host_ip data):7001 \"show version\""
}

# stop_pids PID...: SIGTERM to all, then SIGKILL to those still running
# after 5 s.
stop_pids() {
	local pid i left
	[[ $# -gt 0 ]] || return 0
	kill -TERM "$@" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		left=()
		for pid in "$@"; do
			gone "$pid" || left+=("$pid")
		done
		[[ ${#left[@]} -gt 0 ]] || return 0
		sleep 0.1
	done
	say "still running after SIGTERM and 5s, SIGKILL: ${left[*]}"
	kill -KILL "${left[@]}" 2>/dev/null || true
}

cmd_down() {
	need_root
	local h n pid d
	# Processes first: the ones recorded, then anything else still in one
	# of our namespaces (TPCE clients): the namespaces are ours.
	local -a pids=() what=()
	if [[ -d $RUN ]]; then
		RUN=$(cd "$RUN" && pwd)
		for h in "${ALL_DAEMONS[@]}"; do
			if pid=$(alive "$h"); then
				pids+=("$pid")
				what+=("$h=$pid")
			fi
		done
	fi
	for h in "${ALL_HOSTS[@]}"; do
		n=$(ns "$h")
		has_ns "$n" || continue
		for pid in $(ip netns pids "$n" 2>/dev/null); do
			[[ " ${pids[*]} " == *" $pid "* ]] && continue
			pids+=("$pid")
			what+=("$n:$pid")
		done
	done
	if [[ ${#pids[@]} -gt 0 ]]; then
		stop_pids "${pids[@]}"
		say "stopped: ${what[*]}"
	fi
	if [[ -d $RUN ]]; then
		for h in "${ALL_DAEMONS[@]}"; do rm -f "$RUN/$h.pid"; done
	fi
	for h in "${ALL_HOSTS[@]}"; do
		n=$(ns "$h")
		if has_link "$(veth "$h")"; then
			ip link del "$(veth "$h")"
			say "veth $(veth "$h") removed"
		fi
		if has_ns "$n"; then
			ip netns del "$n"
			say "namespace $n removed"
		fi
	done
	if has_link "$BR"; then
		ip link del "$BR"
		say "bridge $BR removed"
	fi
	# The cgroups recorded in the run folder, and the lab's names under the
	# cgroup2 mount (a run folder may be gone).
	local root
	local -a cgs=()
	[[ -f $RUN/cgroups ]] && mapfile -t cgs <"$RUN/cgroups"
	root=$(cg2_root)
	if [[ -n $root ]]; then
		for h in "${ALL_HOSTS[@]}"; do cgs+=("$root/$CG_PARENT/$P-$h"); done
	fi
	for d in $(printf '%s\n' "${cgs[@]}" | sort -u); do
		[[ -d $d ]] || continue
		# A cgroup can go only once empty; its processes are stopped.
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			rmdir "$d" 2>/dev/null && break
			sleep 0.2
		done
		if [[ -d $d ]]; then
			say "cgroup $d NOT removed: $(tr '\n' ' ' <"$d/cgroup.procs")"
		else
			say "cgroup $d removed"
		fi
	done
	[[ -z $root ]] || rmdir "$root/$CG_PARENT" 2>/dev/null || true # other labs may share it
	rm -f "$RUN/cgroups"
	say "lab down${RUN:+ (logs kept in $RUN)}"
}

# master: the host of the mgmt instance that says it is master.
master() {
	local h
	for h in "${MGMTS[@]}"; do
		# shellcheck disable=SC2046 # the flags split on purpose
		if "$BIN" ctl -addr "$(host_ip "$h"):7400" $(ctl_tls) -timeout 2s status -o json 2>/dev/null |
			grep -q '"role": *"MGMT_ROLE_MASTER"'; then
			echo "$h"
			return 0
		fi
	done
	return 1
}

cmd_failover() {
	need_root
	need_bin
	[[ -d $RUN ]] || die "no lab in $RUN: run '$PROG up' first"
	RUN=$(cd "$RUN" && pwd)
	local m pid
	m=$(master) || die "no mgmt instance answers as master at $(operator_addrs)"
	pid=$(alive "$m") || die "the master $m has no live process recorded in $RUN/$m.pid"
	ip link set "$(veth "$m")" down
	say "failover: master is $m (pid $pid): link $(veth "$m") set down: $(ns "$m") is cut off"
	say "failover: killing $m in ${KILL_AFTER}s"
	sleep "$KILL_AFTER"
	kill -KILL "$pid" 2>/dev/null || true
	say "failover: $m killed (SIGKILL, pid $pid); its link stays down"
	local now
	now=$(master || echo none)
	say "failover: master now: $now; '$PROG up' restores $m's link and restarts it (as backup: -nopreempt)"
}

cmd_logs() {
	[[ -d $RUN ]] || die "no lab in $RUN"
	local f h
	for f in "$RUN"/*.log; do
		[[ -e $f ]] || continue
		h=$(basename "$f" .log)
		# hclog lines start with HH:MM:SS.mmm (local time, no date: a lab
		# running across midnight sorts wrongly); other lines (our own "#"
		# headers, panics) take the time of the line before.
		awk -v h="$h" '
			/^#/ { if (match($0, /T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9]+/)) t = substr($0, RSTART + 1, RLENGTH - 1) }
			/^[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9]+ / { t = $1 }
			/^\{/ { if (match($0, /"@timestamp":"[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9]+"/)) t = substr($0, RSTART + 14, RLENGTH - 15) }
			{ printf "%s\t%06d\t%-7s %s\n", (t == "" ? "00:00:00.000" : t), NR, h, $0 }' "$f"
	done | sort -s -t $'\t' -k1,1 | cut -f3-
}

cmd_status() {
	need_root
	local h n pid
	printf '%-8s %-12s %-17s %-6s %s\n' HOST NAMESPACE ADDRESS LINK PROCESS
	for h in "${HOSTS[@]}"; do
		n=$(ns "$h")
		has_ns "$n" || {
			printf '%-8s %-12s %s\n' "$h" "$n" absent
			continue
		}
		local state=absent
		has_link "$(veth "$h")" && state=$(ip -o link show dev "$(veth "$h")" | grep -q 'state UP' && echo up || echo DOWN)
		pid=-
		if [[ -d $RUN ]]; then
			RUN=$(cd "$RUN" && pwd)
			pid=$(alive "$h" || true)
			[[ -n $pid ]] || { [[ -f $RUN/$h.pid ]] && pid="dead (was $(<"$RUN/$h.pid"))" || pid=-; }
		fi
		printf '%-8s %-12s %-17s %-6s %s\n' "$h" "$n" "$(host_ip "$h")/24" "$state" "$pid"
	done
	if has_ns "$(ns mgmt-a)" && [[ -x $BIN ]]; then
		echo
		# shellcheck disable=SC2046 # the flags split on purpose
		"$BIN" ctl -addr "$(operator_addrs)" $(ctl_tls) -timeout 2s status || true
	fi
}

cmd_exec() {
	need_root
	[[ $# -ge 2 ]] || usage
	local h=$1
	shift
	host_ip "$h" >/dev/null
	exec ip netns exec "$(ns "$h")" "$@"
}

# main COMMAND [ARGS]: in a function, called and followed by exit on the
# last line, so that bash has read the whole script before it runs
# (editing a running script is then harmless).
main() {
	[[ $# -ge 1 ]] || usage
	check_env
	local c=$1
	shift
	case $c in
	up) cmd_up ;;
	down) cmd_down ;;
	failover) cmd_failover ;;
	logs) cmd_logs ;;
	status) cmd_status ;;
	exec) cmd_exec "$@" ;;
	-h | --help | help) usage ;;
	*)
		printf '%s: unknown command %q\n' "$PROG" "$c" >&2
		usage
		;;
	esac
}

main "$@"; exit
