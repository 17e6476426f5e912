// Package chaos injects random faults into the namespace lab
// (deploy/lab/lab.sh: mgmt-a, mgmt-b, ctrl, data, agent each in its own
// network namespace) while the Hello cycle runs and a TPCE client sends
// commands through the MEDS relay on data, then checks invariants over
// the whole run from the daemons' JSON logs and from the client's
// counts, and prints a summary (`make lab-chaos`, docs/ha.md "Chaos").
//
// Faults come one at a time, from a schedule drawn from a seed: the n-th
// fault of a seed is always the same kind, target and durations (the
// master and the backup are resolved when the fault is injected).
package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Config is one chaos run.
type Config struct {
	Seed     uint64
	Duration time.Duration // faults are injected until this much time has passed
	LabSh    string        // deploy/lab/lab.sh
	Bin      string        // the hellopics binary
	Run      string        // LAB_RUN: the lab's run folder (logs, pids)
	Prefix   string        // LAB_PREFIX; must start with "hpchaos"
	Net      string        // LAB_NET, three octets in 198.18.0.0/15
	Env      []string      // more environment for lab.sh (LAB_*), after the defaults
	// HealBound bounds the time from a fault's heal to the first hello
	// back (default 20 s): beyond, the invariant InvCycleBack is broken.
	HealBound time.Duration
	// RelayGrace (default 5 s: the relay's SNMP timeout 1 s times its
	// 1 + 3 tries, plus 1 s) widens a fault on data on both sides: a
	// command sent from RelayGrace before the fault to RelayGrace after
	// its heal may be lost or answered with a relay error.
	RelayGrace time.Duration
	// CommandInterval is the time between two TPCE commands (default 50 ms).
	CommandInterval time.Duration
	Out             io.Writer // progress lines (default os.Stdout)
}

// Fault is one fault of the schedule and what came of it.
type Fault struct {
	N    int
	Kind string        // kill, pause, linkdown, loss, throttle
	Role string        // master, backup (mgmt), ctrl, data
	Hold time.Duration // kill: time until the restart; other kinds: until the heal
	Pct  int           // loss: percent of packets dropped each way
	Kbit int           // throttle: tbf rate each way
	Gap  time.Duration // quiet time after the cycle is back, before the next fault

	Host      string // the lab host the role was on
	Note      string // what was done, in words
	Injected  time.Time
	Healed    time.Time
	Recovered time.Time     // first hello back at or after Healed (zero: not within HealBound)
	Outage    time.Duration // longest time without a hello back, from before Injected to Recovered
	OutFrom   time.Time
	OutTo     time.Time
}

// Kinds of fault, in the summary's order.
var Kinds = []string{"kill", "pause", "linkdown", "loss", "throttle"}

// Roles a fault targets.
var Roles = []string{"master", "backup", "ctrl", "data"}

// next draws the n-th fault from rng.
func next(rng *rand.Rand, n int) Fault {
	f := Fault{N: n}
	switch k := rng.IntN(100); {
	case k < 25:
		f.Kind = "kill"
	case k < 50:
		f.Kind = "pause"
	case k < 70:
		f.Kind = "linkdown"
	case k < 85:
		f.Kind = "loss"
	default:
		f.Kind = "throttle"
	}
	f.Role = Roles[rng.IntN(len(Roles))]
	ms := func(lo, hi int) time.Duration { return time.Duration(lo+rng.IntN(hi-lo+1)) * time.Millisecond }
	switch f.Kind {
	case "kill":
		f.Hold = ms(300, 4000)
	case "pause":
		f.Hold = ms(100, 4000)
	case "linkdown":
		f.Hold = ms(200, 4000)
	case "loss":
		f.Pct = 10 + rng.IntN(61)
		f.Hold = ms(1000, 6000)
	case "throttle":
		f.Kbit = []int{16, 32, 64, 128}[rng.IntN(4)]
		f.Hold = ms(1000, 6000)
	}
	f.Gap = ms(500, 3000)
	return f
}

// Summary is the outcome of a run.
type Summary struct {
	Cfg         Config
	Start       time.Time // the lab's start
	FaultsStart time.Time
	FaultsEnd   time.Time
	End         time.Time
	Faults      []Fault
	Logs        LogStats
	Relay       RelayStats
	Violations  []Violation
	Checked     map[string]string // invariant -> what was checked (for "ok" lines)
	Load        string            // /proc/loadavg at the start and at the end
}

// Run runs the chaos: lab up, faults until cfg.Duration, checks, lab
// down. The error is for a run that could not be made (the lab did not
// come up); broken invariants are in Summary.Violations.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	if !strings.HasPrefix(cfg.Prefix, "hpchaos") {
		return nil, fmt.Errorf("chaos: prefix %q: must start with hpchaos", cfg.Prefix)
	}
	if cfg.HealBound == 0 {
		cfg.HealBound = 20 * time.Second
	}
	if cfg.RelayGrace == 0 {
		cfg.RelayGrace = 5 * time.Second
	}
	if cfg.CommandInterval == 0 {
		cfg.CommandInterval = 50 * time.Millisecond
	}
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	var err error
	if cfg.Run, err = filepath.Abs(cfg.Run); err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	if cfg.Bin, err = filepath.Abs(cfg.Bin); err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	r := &runner{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
	return r.run(ctx)
}

type runner struct {
	cfg  Config
	rng  *rand.Rand
	tail *logTail
	s    *Summary
	heal func() // undoes the fault in force, if any
}

func (r *runner) logf(format string, a ...any) {
	fmt.Fprintf(r.cfg.Out, "%s chaos: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
}

func (r *runner) env() []string {
	env := []string{"LAB_HELLO_INTERVAL=100ms", "LAB_DEAD_TIMEOUT=2s", "LAB_DEAD_MISSES=10"}
	env = append(append(env, os.Environ()...), r.cfg.Env...)
	return append(env, "LAB_PREFIX="+r.cfg.Prefix, "LAB_NET="+r.cfg.Net, "LAB_RUN="+r.cfg.Run,
		"HELLOPICS="+r.cfg.Bin, "LAB_LOG_JSON=1", "LAB_LOG_LEVEL=debug")
}

func (r *runner) lab(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.cfg.LabSh, args...)
	cmd.Env = r.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("chaos: lab.sh %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (r *runner) ip(host string) string {
	return r.cfg.Net + "." + map[string]string{"mgmt-a": "11", "mgmt-b": "12", "ctrl": "21", "data": "31", "agent": "41"}[host]
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func (r *runner) run(ctx context.Context) (*Summary, error) {
	r.s = &Summary{Cfg: r.cfg, Start: time.Now(), Checked: map[string]string{}}
	r.s.Load = "load average at the start " + loadavg()
	if _, err := r.lab("down"); err != nil { // what a killed run left
		return nil, err
	}
	_ = os.RemoveAll(r.cfg.Run)
	defer func() {
		if r.heal != nil {
			r.heal()
		}
		if out, err := r.lab("down"); err != nil {
			r.logf("lab down failed: %v\n%s", err, out)
		}
	}()
	if out, err := r.lab("up"); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, out)
	}
	r.logf("lab %s up on %s.0/24, run folder %s, seed %d, faults for %v", r.cfg.Prefix, r.cfg.Net, r.cfg.Run, r.cfg.Seed, r.cfg.Duration)
	r.tail = newLogTail(r.cfg.Run, []string{"mgmt-a", "mgmt-b", "ctrl", "data"}, r.s.Start)
	if _, ok := r.waitHello(ctx, time.Now(), 60*time.Second, 3); !ok {
		return nil, fmt.Errorf("chaos: no hello came back within 60 s of lab up (logs in %s)", r.cfg.Run)
	}
	// The relay's traffic, from the root namespace across the bridge.
	rc := newRelayClient(r.ip("data")+":7001", r.cfg.CommandInterval)
	clientCtx, stopClient := context.WithCancel(context.Background())
	sendCtx, stopSend := context.WithCancel(clientCtx)
	clientDone := make(chan struct{})
	go func() {
		defer close(clientDone)
		rc.run(clientCtx, sendCtx)
	}()
	defer func() {
		stopSend()
		stopClient()
		<-clientDone
	}()
	if !r.waitCond(ctx, 30*time.Second, func() bool { st, _ := rc.check(func(time.Time) string { return "" }); return st.Answered >= 3 }) {
		return nil, fmt.Errorf("chaos: the relay answered no command within 30 s")
	}
	r.logf("hellos coming back, relay answering: faults begin")

	begin := time.Now()
	r.s.FaultsStart = begin
	for n := 1; ctx.Err() == nil && time.Since(begin) < r.cfg.Duration; n++ {
		f := next(r.rng, n)
		r.inject(ctx, &f)
		r.s.Faults = append(r.s.Faults, f)
		if ctx.Err() == nil {
			r.sleep(ctx, f.Gap)
		}
	}
	r.s.FaultsEnd = time.Now()
	// Every command answered, then the last lines of the logs.
	stopSend()
	r.waitCond(ctx, 30*time.Second, func() bool { return rc.owed() == 0 })
	stopClient()
	<-clientDone
	if _, err := r.tail.poll(); err != nil {
		return nil, err
	}
	r.check(rc)
	r.s.End = time.Now()
	r.s.Load += ", at the end " + loadavg()
	if ctx.Err() != nil {
		r.s.Violations = append(r.s.Violations, Violation{"run", "interrupted: " + ctx.Err().Error(), nil})
	}
	return r.s, nil
}

// sleep waits d or until ctx ends.
func (r *runner) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// waitCond polls cond every 50 ms for at most d.
func (r *runner) waitCond(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if ctx.Err() != nil || time.Now().After(deadline) {
			return false
		}
		r.sleep(ctx, 50*time.Millisecond)
	}
	return true
}

// waitHello waits at most d for n hellos back at or after t (log times
// have a millisecond resolution); it returns the first.
func (r *runner) waitHello(ctx context.Context, t time.Time, d time.Duration, n int) (time.Time, bool) {
	t = t.Truncate(time.Millisecond)
	var first time.Time
	ok := r.waitCond(ctx, d, func() bool {
		if _, err := r.tail.poll(); err != nil {
			return false
		}
		ts := r.tail.returned()
		f, ok := firstAfter(ts, t)
		if !ok {
			return false
		}
		first = f
		i := len(ts) - 1
		for i >= 0 && !ts[i].Before(t) {
			i--
		}
		return len(ts)-1-i >= n
	})
	return first, ok
}

// pid returns the live pid of host's daemon, as lab.sh recorded it.
func (r *runner) pid(host string) (int, error) {
	b, err := os.ReadFile(filepath.Join(r.cfg.Run, host+".pid"))
	if err != nil {
		return 0, fmt.Errorf("chaos: pid of %s: %w", host, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("chaos: pid of %s: %w", host, err)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		return 0, fmt.Errorf("chaos: %s (pid %d) is not running: %w", host, pid, err)
	}
	return pid, nil
}

// roles finds the master and the backup (ctl status of each mgmt).
func (r *runner) roles() (master, backup string) {
	type st struct {
		Role  string `json:"role"`
		Epoch string `json:"epoch"`
	}
	var best uint64
	for _, h := range []string{"mgmt-a", "mgmt-b"} {
		pki := filepath.Join(r.cfg.Run, "pki")
		out, err := exec.Command(r.cfg.Bin, "ctl", "-addr", r.ip(h)+":7400", "-timeout", "2s",
			"-tls-cert", filepath.Join(pki, "operator-lab.crt"), "-tls-key", filepath.Join(pki, "operator-lab.key"),
			"-tls-ca", filepath.Join(pki, "ca.crt"), "status", "-o", "json").Output()
		var s st
		if err != nil || json.Unmarshal(out, &s) != nil || s.Role != "MGMT_ROLE_MASTER" {
			continue
		}
		e, _ := strconv.ParseUint(s.Epoch, 10, 64)
		if master == "" || e > best {
			master, best = h, e
		}
	}
	if master == "" {
		return "", ""
	}
	return master, map[string]string{"mgmt-a": "mgmt-b", "mgmt-b": "mgmt-a"}[master]
}

func (r *runner) run1(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("chaos: %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (r *runner) nsRun(host string, args ...string) error {
	return r.run1("ip", append([]string{"netns", "exec", r.cfg.Prefix + "-" + host}, args...)...)
}

// inject applies f, holds it, heals it and waits for the cycle.
func (r *runner) inject(ctx context.Context, f *Fault) {
	f.Host = f.Role
	if f.Role == "master" || f.Role == "backup" {
		m, b := r.roles()
		if m == "" {
			// No master answers (yet): mgmt-a's role is whatever it is.
			m, b = "mgmt-a", "mgmt-b"
			f.Note = "no instance answered as master; "
		}
		f.Host = map[string]string{"master": m, "backup": b}[f.Role]
	}
	veth := r.cfg.Prefix + "-" + f.Host
	var err error
	f.Injected = time.Now()
	switch f.Kind {
	case "kill":
		var pid int
		if pid, err = r.pid(f.Host); err == nil {
			err = syscall.Kill(pid, syscall.SIGKILL)
			f.Note += fmt.Sprintf("SIGKILL pid %d, restart after %v", pid, f.Hold)
			r.heal = func() { _, _ = r.lab("up") }
		}
	case "pause":
		var pid int
		if pid, err = r.pid(f.Host); err == nil {
			err = syscall.Kill(pid, syscall.SIGSTOP)
			f.Note += fmt.Sprintf("SIGSTOP pid %d for %v", pid, f.Hold)
			r.heal = func() { _ = syscall.Kill(pid, syscall.SIGCONT) }
		}
	case "linkdown":
		err = r.run1("ip", "link", "set", veth, "down")
		f.Note += fmt.Sprintf("ip link set %s down for %v", veth, f.Hold)
		r.heal = func() { _ = r.run1("ip", "link", "set", veth, "up") }
	case "loss":
		r.heal = func() { _ = r.nsRun(f.Host, "nft", "delete", "table", "inet", "hpchaos") }
		rules := fmt.Sprintf(`add table inet hpchaos
add chain inet hpchaos in { type filter hook input priority 0 ; }
add chain inet hpchaos out { type filter hook output priority 0 ; }
add rule inet hpchaos in iifname "eth0" numgen random mod 100 < %d drop
add rule inet hpchaos out oifname "eth0" numgen random mod 100 < %d drop
`, f.Pct, f.Pct)
		cmd := exec.Command("ip", "netns", "exec", r.cfg.Prefix+"-"+f.Host, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(rules)
		if out, e := cmd.CombinedOutput(); e != nil {
			err = fmt.Errorf("chaos: nft in %s: %w: %s", f.Host, e, out)
		} else {
			err = nil
		}
		f.Note += fmt.Sprintf("nftables drop %d%% each way (numgen random) for %v", f.Pct, f.Hold)
	case "throttle":
		r.heal = func() {
			_ = r.run1("tc", "qdisc", "del", "dev", veth, "root")
			_ = r.nsRun(f.Host, "tc", "qdisc", "del", "dev", "eth0", "root")
		}
		tbf := []string{"root", "tbf", "rate", strconv.Itoa(f.Kbit) + "kbit", "burst", "1600", "latency", "2s"}
		err = r.run1("tc", append([]string{"qdisc", "replace", "dev", veth}, tbf...)...)
		if err == nil {
			err = r.nsRun(f.Host, append([]string{"tc", "qdisc", "replace", "dev", "eth0"}, tbf...)...)
		}
		f.Note += fmt.Sprintf("tbf %d kbit/s each way for %v", f.Kbit, f.Hold)
	}
	if err != nil {
		f.Note += "; FAILED: " + err.Error()
		r.s.Violations = append(r.s.Violations, Violation{"fault injection", fmt.Sprintf("fault #%d %s %s: %v", f.N, f.Kind, f.Host, err), nil})
	}
	r.logf("#%d %s %s (%s): %s", f.N, f.Kind, f.Role, f.Host, f.Note)
	r.sleep(ctx, f.Hold)
	if r.heal != nil {
		if f.Kind == "kill" {
			out, err := r.lab("up")
			if err != nil {
				r.s.Violations = append(r.s.Violations, Violation{"fault injection", fmt.Sprintf("fault #%d: restart: %v", f.N, err), nil})
			}
			r.restarted(f, out)
		} else {
			r.heal()
		}
		r.heal = nil
	}
	f.Healed = time.Now()
	if rec, ok := r.waitHello(ctx, f.Healed, r.cfg.HealBound, 3); ok {
		f.Recovered = rec
	}
	ts := r.tail.returned()
	to := f.Recovered
	if to.IsZero() {
		to = time.Now()
	}
	f.Outage, f.OutFrom, f.OutTo = longestGap(ts, f.Injected.Truncate(time.Millisecond), to)
	back := "NOT back within " + r.cfg.HealBound.String()
	if !f.Recovered.IsZero() {
		back = fmt.Sprintf("back %v after the heal", f.Recovered.Sub(f.Healed.Truncate(time.Millisecond)))
	}
	r.logf("#%d healed; cycle %s; longest time without a hello back %v", f.N, back, f.Outage)
}

// restarted checks lab.sh up's output after a kill: it must have started
// the killed host only (another start means a daemon died on its own).
func (r *runner) restarted(f *Fault, out string) {
	for _, line := range strings.Split(out, "\n") {
		i := strings.Index(line, " started in ")
		if i < 0 {
			continue
		}
		fs := strings.Fields(line[:i])
		if h := fs[len(fs)-1]; h != f.Host {
			r.s.Violations = append(r.s.Violations, Violation{InvDaemonsHealth,
				fmt.Sprintf("at fault #%d's restart of %s, %s was found dead and restarted", f.N, f.Host, h), []string{line}})
		}
	}
}

// excusedAt reports the fault on data that excuses a command sent at t
// (lost, or answered by a relay error), or "".
func (s *Summary) excusedAt(t time.Time) string {
	g := s.Cfg.RelayGrace
	for _, f := range s.Faults {
		if f.Host != "data" {
			continue
		}
		if !t.Before(f.Injected.Add(-g)) && !t.After(f.Healed.Add(g)) {
			return fmt.Sprintf("#%d %s data", f.N, f.Kind)
		}
	}
	return ""
}

func (r *runner) check(rc *relayClient) {
	s := r.s
	st, vs := checkLogs(r.tail.evs)
	s.Logs = st
	s.Violations = append(s.Violations, vs...)
	s.Checked[InvForwardEpoch] = fmt.Sprintf("ctrl forwarded %d hellos, data %d", st.Forwarded["ctrl"], st.Forwarded["data"])
	s.Checked[InvOneClaimant] = fmt.Sprintf("%d epochs claimed (epoch:instance) %s", len(st.Claims), strings.Join(st.Claims, " "))
	s.Checked[InvEpochsGrow] = fmt.Sprintf("highest epoch mgmt-a %d, mgmt-b %d", st.EpochMax["mgmt-a"], st.EpochMax["mgmt-b"])
	s.Checked[InvSeqOnce] = fmt.Sprintf("%d hellos came back", st.Returned)
	for h, n := range map[string]int{"ctrl": st.Forwarded["ctrl"], "data": st.Forwarded["data"]} {
		if n == 0 {
			s.Violations = append(s.Violations, Violation{InvForwardEpoch, h + ": no hello_forwarded line: checked nothing", nil})
		}
	}
	if st.Returned == 0 {
		s.Violations = append(s.Violations, Violation{InvSeqOnce, "no hello_returned line: checked nothing", nil})
	}
	back := 0
	for _, f := range s.Faults {
		if f.Recovered.IsZero() {
			s.Violations = append(s.Violations, Violation{InvCycleBack,
				fmt.Sprintf("fault #%d %s %s (%s): no hello back within %v of the heal at %s", f.N, f.Kind, f.Role, f.Host, s.Cfg.HealBound, f.Healed.Format("15:04:05.000")), nil})
			continue
		}
		back++
	}
	s.Checked[InvCycleBack] = fmt.Sprintf("%d of %d faults, bound %v", back, len(s.Faults), s.Cfg.HealBound)
	rs, rvs := rc.check(s.excusedAt)
	s.Relay = rs
	s.Violations = append(s.Violations, rvs...)
	if rs.Answered == 0 {
		s.Violations = append(s.Violations, Violation{InvRelay, "no command answered: checked nothing", nil})
	}
	s.Checked[InvRelay] = fmt.Sprintf("%d commands", rs.Sent)
	// Every daemon runs at the end, and no log holds a panic.
	alive := 0
	for _, h := range []string{"mgmt-a", "mgmt-b", "ctrl", "data", "agent"} {
		if _, err := r.pid(h); err != nil {
			s.Violations = append(s.Violations, Violation{InvDaemonsHealth, err.Error(), nil})
			continue
		}
		alive++
	}
	for _, e := range r.tail.other {
		if strings.Contains(e.Raw, "panic") || strings.Contains(e.Raw, "fatal error") || strings.Contains(e.Raw, "DATA RACE") {
			s.Violations = append(s.Violations, Violation{InvDaemonsHealth, e.Host + " log", []string{e.Raw}})
		}
	}
	s.Checked[InvDaemonsHealth] = fmt.Sprintf("%d of 5 daemons running at the end, %d non-JSON log lines", alive, len(r.tail.other))
}

// ErrViolated is returned by Summary.Err when an invariant is broken.
var ErrViolated = errors.New("chaos: invariants violated")

// Err returns nil when no invariant was broken, else an error wrapping
// ErrViolated.
func (s *Summary) Err() error {
	if len(s.Violations) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %d", ErrViolated, len(s.Violations))
}
