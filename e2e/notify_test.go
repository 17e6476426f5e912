package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// notifyRec is one line a notify script appended to its instance's
// file: which flag's script ran (master, backup, fault or any for
// -notify), the positional arguments and the environment it got.
type notifyRec struct {
	kind                                 string
	arg1, arg2, arg3, arg4               string // $1..$4: state, epoch, master, reason
	envState, envEpoch, envMaster, envID string
	envReason                            string
	raw                                  string
}

func (r notifyRec) String() string {
	return fmt.Sprintf("%s: state=%s epoch=%s master=%q reason=%q", r.kind, r.arg1, r.arg2, r.arg3, r.arg4)
}

// notifyScript is a shell command line that appends one tab-separated
// line to file: kind, $1..$3, the HELLOPICS_* variables, $4 and
// HELLOPICS_REASON last (a reason has no tab).
func notifyScript(kind, file string) string {
	return fmt.Sprintf(`printf '%%s\t%%s\t%%s\t%%s\t%%s\t%%s\t%%s\t%%s\t%%s\t%%s\n' %s "$1" "$2" "$3" "$HELLOPICS_STATE" "$HELLOPICS_EPOCH" "$HELLOPICS_MASTER" "$HELLOPICS_ID" "$4" "$HELLOPICS_REASON" >> %s`,
		kind, file)
}

// notifyFlags are the mgmt flags that make every script of the instance
// record itself in file.
func notifyFlags(file string) []string {
	return []string{
		"-notify-master", notifyScript("master", file),
		"-notify-backup", notifyScript("backup", file),
		"-notify-fault", notifyScript("fault", file),
		"-notify", notifyScript("any", file),
	}
}

// readNotify parses file (missing: no line yet).
func readNotify(t testing.TB, file string) []notifyRec {
	t.Helper()
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []notifyRec
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "" {
			continue
		}
		f := strings.Split(l, "\t")
		if len(f) != 10 {
			t.Fatalf("%s: malformed line %q", file, l)
		}
		out = append(out, notifyRec{kind: f[0], arg1: f[1], arg2: f[2], arg3: f[3], envState: f[4], envEpoch: f[5],
			envMaster: f[6], envID: f[7], arg4: f[8], envReason: f[9], raw: l})
	}
	return out
}

// notifyWant is one expected state run: the state, the master ("*": any),
// and a prefix of the reason ("" any); optional ones may be absent.
type notifyWant struct {
	state, master, reason string
	optional              bool
}

// notifyLog follows the file of one instance: the states it was told, in
// order (each state's own script then -notify's, checked as a pair).
type notifyLog struct {
	t    *testing.T
	h    *haCluster
	id   string
	file string
	seen int // states matched so far
}

// states reads the file and folds each (own script, any) pair into one
// record, checking the pair and the arguments against the environment.
func (n *notifyLog) states() []notifyRec {
	n.t.Helper()
	recs := readNotify(n.t, n.file)
	var out []notifyRec
	for i := 0; i+1 < len(recs); i += 2 {
		own, any := recs[i], recs[i+1]
		if own.kind != own.arg1 || any.kind != "any" || own.arg1 != any.arg1 || own.arg2 != any.arg2 || own.arg3 != any.arg3 || own.arg4 != any.arg4 {
			n.t.Fatalf("%s: the state's own script and -notify do not pair up:\n  %s\n  %s", n.id, own.raw, any.raw)
		}
		for _, r := range []notifyRec{own, any} {
			if r.arg1 != r.envState || r.arg2 != r.envEpoch || r.arg3 != r.envMaster || r.arg4 != r.envReason || r.envID != n.id {
				n.t.Fatalf("%s: arguments and environment differ: %q", n.id, r.raw)
			}
		}
		out = append(out, own)
	}
	return out
}

// expect waits until the instance was told the states in want after
// the ones already matched, and fails on any other. An optional state
// is skipped when the next line does not match it. It returns the
// records matched, one per want (a zero record for an absent optional).
func (n *notifyLog) expect(what string, want ...notifyWant) []notifyRec {
	n.t.Helper()
	var got []notifyRec
	n.h.poll(n.id+" notify scripts: "+what, func() string {
		got = got[:0]
		all := n.states()
		i := n.seen
		for _, w := range want {
			if i >= len(all) {
				if w.optional {
					// An optional state may still come: wait for the next
					// required one to decide.
					return fmt.Sprintf("%d of %d states so far: %v", i-n.seen, len(want), all[n.seen:])
				}
				return fmt.Sprintf("%d of %d states so far: %v", i-n.seen, len(want), all[n.seen:])
			}
			r := all[i]
			ok := r.arg1 == w.state && (w.master == "*" || r.arg3 == w.master) && strings.HasPrefix(r.arg4, w.reason)
			if !ok && w.optional {
				got = append(got, notifyRec{})
				continue
			}
			if !ok {
				n.t.Fatalf("%s notify scripts, %s: state %d is %v; want %s master=%q reason %q...\nall: %v\n%s",
					n.id, what, i, r, w.state, w.master, w.reason, all, n.h.Tails())
			}
			got = append(got, r)
			i++
		}
		n.seen = i
		return ""
	})
	return got
}

// done fails if the instance was told more states than matched.
func (n *notifyLog) done() {
	n.t.Helper()
	if all := n.states(); len(all) > n.seen {
		n.t.Errorf("%s told states beyond the expected ones: %v", n.id, all[n.seen:])
	}
}

func epochOf(t testing.TB, r notifyRec) uint64 {
	t.Helper()
	e, err := strconv.ParseUint(r.arg2, 10, 64)
	if err != nil {
		t.Fatalf("epoch %q: %v", r.arg2, err)
	}
	return e
}

// TestHANotifyOrder: each of two mgmt instances has all four notify
// scripts (-notify-master, -notify-backup, -notify-fault, -notify),
// each appending a line (which script, state, epoch, master, reason,
// from both the arguments and the environment) to the instance's file.
// The states the scripts are told, in order, through: the start (a
// master, b backup of a), a SIGKILL of a (b master), a's restart (a
// backup of b: a restarted daemon tells its state), a switchover with
// `hellopics ctl switchover` back to a (b backup, a master), a fault of
// a through a tracked check of weight 0 (a fault, b master), its end (a
// backup), and a paused master (SIGSTOP longer than the dead interval,
// then SIGCONT: two masters meet as after a healed partition; the one
// at the lower epoch steps down and runs notify-backup, the other may
// re-assert master when it sees the stale claim). docs/ha.md, "Notify
// scripts", says when each runs.
func TestHANotifyOrder(t *testing.T) {
	skipShort(t)
	t.Parallel()
	dir := t.TempDir()
	fileA, fileB, okA := filepath.Join(dir, "a.notify"), filepath.Join(dir, "b.notify"), filepath.Join(dir, "a-ok")
	if err := os.WriteFile(okA, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// -nopreempt on both: the restarted a stays backup.
	common := slices.Concat(steady, []string{"-nopreempt"})
	h := newHACluster(t, fast,
		haSpec{id: "a", priority: 200, flags: slices.Concat(common, notifyFlags(fileA),
			[]string{"-track-interval", "100ms", "-track-fall", "2", "-track-name", "ok", "-track-script", "test -e " + okA})},
		haSpec{id: "b", priority: 100, flags: slices.Concat(common, notifyFlags(fileB))})
	na := &notifyLog{t: t, h: h, id: "a", file: fileA}
	nb := &notifyLog{t: t, h: h, id: "b", file: fileB}

	// Start: a master, b backup of a, at the same epoch.
	h.StartMgmt("a")
	h.StartMgmt("b")
	h.StartPair(haPair)
	if m, sts := h.WaitMaster(); m.id != "a" {
		t.Fatalf("master is %s; want a: %s", m.id, summarize(sts))
	}
	h.WaitCycle("a", 0, haPair, 3)
	h.WaitSynced("a", "b", haPair)
	ra := na.expect("start", notifyWant{state: "master", master: "a", reason: "start: "})
	rb := nb.expect("start", notifyWant{state: "backup", master: "a", reason: "start: "})
	e1 := epochOf(t, ra[0])
	if epochOf(t, rb[0]) != e1 || h.MustStatus("a").GetEpoch() != e1 {
		t.Errorf("start: a told epoch %d, b %d, a's status %d", e1, epochOf(t, rb[0]), h.MustStatus("a").GetEpoch())
	}

	// SIGKILL of a: b runs notify-master at a higher epoch.
	bMark := h.M("b").p.Mark()
	h.M("a").p.Kill()
	h.WaitCycle("b", bMark, haPair, 3)
	rb = nb.expect("failover", notifyWant{state: "master", master: "b", reason: "became_master"})
	e2 := epochOf(t, rb[0])
	if e2 <= e1 {
		t.Errorf("failover: b told epoch %d; want above %d", e2, e1)
	}

	// a restarts (same -state-dir): it tells its scripts it is backup of b.
	h.StartMgmt("a")
	if m, sts := h.WaitMaster(); m.id != "b" {
		t.Fatalf("after a's restart the master is %s: %s", m.id, summarize(sts))
	}
	h.WaitSynced("b", "a", haPair)
	ra = na.expect("restart", notifyWant{state: "backup", master: "b", reason: "start: "})
	if epochOf(t, ra[0]) != e2 {
		t.Errorf("restart: a told epoch %s; want %d", ra[0].arg2, e2)
	}

	// Switchover to a with hellopics ctl: b backup (maybe first with no
	// master known, then of a), a master, at a higher epoch.
	aMark := h.M("a").p.Mark()
	out, err := exec.Command(binPath, "ctl", "-addr", h.M("a").op+","+h.M("b").op, "-timeout", waitTimeout.String(),
		"switchover", "-to", "a").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "switchover done: a is master") {
		t.Fatalf("hellopics ctl switchover -to a: %v\n%s\n%s", err, out, h.Tails())
	}
	h.WaitCycle("a", aMark, haPair, 3)
	ra = na.expect("switchover", notifyWant{state: "master", master: "a", reason: "became_master"})
	rb = nb.expect("switchover",
		notifyWant{state: "backup", master: "", reason: "handover_sent", optional: true},
		notifyWant{state: "backup", master: "a"})
	e3 := epochOf(t, ra[0])
	if e3 <= e2 || epochOf(t, rb[1]) != e3 {
		t.Errorf("switchover: a told epoch %d, b %s; want both above %d", e3, rb[1].arg2, e2)
	}
	h.WaitSynced("a", "b", haPair)

	// Fault: a's tracked check (weight 0) fails: a runs notify-fault, b
	// takes over and runs notify-master.
	bMark = h.M("b").p.Mark()
	if err := os.Remove(okA); err != nil {
		t.Fatal(err)
	}
	h.WaitCycle("b", bMark, haPair, 3)
	ra = na.expect("fault", notifyWant{state: "fault", master: "*"})
	rb = nb.expect("fault", notifyWant{state: "master", master: "b", reason: "became_master"})
	e4 := epochOf(t, rb[0])
	if e4 <= e3 || epochOf(t, ra[0]) < e3 {
		t.Errorf("fault: a told epoch %s, b %d; want a at least %d, b above", ra[0].arg2, e4, e3)
	}
	// Healed: a runs notify-backup (of b); b, master all along, runs nothing.
	if err := os.WriteFile(okA, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h.poll("a out of the fault state", func() string {
		st, err := h.Status("a")
		if err != nil {
			return err.Error()
		}
		if st.GetFault() || st.GetRole() != roleBackup || st.GetMasterId() != "b" {
			return fmt.Sprintf("role %v master %q fault %v", st.GetRole(), st.GetMasterId(), st.GetFault())
		}
		return ""
	})
	// While faulty, a is told fault again when it learns the new master
	// (or its epoch): the state told is (state, epoch, master).
	ra = na.expect("fault over",
		notifyWant{state: "fault", master: "b", reason: "master_changed", optional: true},
		notifyWant{state: "backup", master: "b"})
	if epochOf(t, ra[1]) != e4 {
		t.Errorf("fault over: a told epoch %s; want %d", ra[1].arg2, e4)
	}
	h.WaitSynced("b", "a", haPair)

	// Two masters meet: b paused past the dead interval, a takes over;
	// b resumed still claims at its lower epoch, steps down and runs
	// notify-backup; a re-asserts master if it sees b's stale claim.
	b := h.M("b").p
	aMark = h.M("a").p.Mark()
	b.Signal(syscall.SIGSTOP)
	resumed := false
	defer func() {
		if !resumed {
			b.Signal(syscall.SIGCONT)
		}
	}()
	h.WaitCycle("a", aMark, haPair, 3)
	ra = na.expect("b paused", notifyWant{state: "master", master: "a", reason: "became_master"})
	e5 := epochOf(t, ra[0])
	if e5 <= e4 {
		t.Errorf("b paused: a told epoch %d; want above %d", e5, e4)
	}
	b.Signal(syscall.SIGCONT)
	resumed = true
	if m, sts := h.WaitMaster(); m.id != "a" {
		t.Fatalf("after b resumed the master is %s: %s", m.id, summarize(sts))
	}
	h.WaitSynced("a", "b", haPair)
	rb = nb.expect("b resumed",
		notifyWant{state: "backup", master: "", optional: true},
		notifyWant{state: "backup", master: "a"})
	if epochOf(t, rb[1]) != e5 {
		t.Errorf("b resumed: told epoch %s; want %d", rb[1].arg2, e5)
	}
	// a's re-assertion, if any, is at most one (once per rival and epoch).
	all := na.states()
	extra := all[na.seen:]
	for _, r := range extra {
		if r.arg1 != "master" || r.arg3 != "a" || !strings.HasPrefix(r.arg4, "another master seen: b at epoch") {
			t.Errorf("a told %v after b resumed; want at most a re-asserted master", r)
		}
	}
	if len(extra) > 1 {
		t.Errorf("a re-asserted master %d times for one stale claim: %v", len(extra), extra)
	}
	na.seen += len(extra)
	t.Logf("a re-asserted master on b's stale claim: %v", len(extra) == 1)
	t.Logf("a told: %v", na.states())
	t.Logf("b told: %v", nb.states())
	na.done()
	nb.done()
}

// failoverTime kills master m's process and returns the time from the
// SIGKILL to the first hello returned under the new master, as its log
// timestamps say, and the new master.
func failoverTime(t *testing.T, h *haCluster, m *haMgmt) (time.Duration, *haMgmt) {
	t.Helper()
	nm := h.Other(m.id)
	mark := nm.p.Mark()
	killed := time.Now()
	m.p.Kill()
	l, _ := nm.p.WaitFor(mark, step("hello_returned", haPair))
	return logTime(l).Sub(killed), nm
}

// TestHANotifyHang: a -notify-master script that hangs (sleep 300) far
// beyond -notify-timeout (1 s) is killed at its timeout, its whole
// process group gone, the kill logged with the exit status, and the
// failover time (SIGKILL of the master to the first hello returned
// under the new master, from its log) stays under the same bound as
// with a script that exits at once. HELLOPICS_NOTIFY_RUNS failovers each
// (default 2); the figures are logged, docs/ha.md quotes them.
func TestHANotifyHang(t *testing.T) {
	skipShort(t)
	runs := 2
	if s := os.Getenv("HELLOPICS_NOTIFY_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("HELLOPICS_NOTIFY_RUNS=%q", s)
		}
		runs = n
	}
	const bound = 2 * time.Second
	figures := map[string][]time.Duration{}
	for _, variant := range []string{"exits", "hangs"} {
		t.Run(variant, func(t *testing.T) {
			dir := t.TempDir()
			script := func(id string) string {
				if variant == "exits" {
					return "true"
				}
				// The shell writes its pid (its process group) then waits on
				// a child: killing the group must take both.
				return fmt.Sprintf("echo $$ >> %s; sleep 300 & wait", filepath.Join(dir, id+".pgid"))
			}
			flags := func(id string) []string {
				return slices.Concat(steady, []string{"-nopreempt", "-notify-timeout", "1s", "-notify-master", script(id)})
			}
			h := newHACluster(t, fast, haSpec{id: "a", priority: 200, flags: flags("a")}, haSpec{id: "b", priority: 100, flags: flags("b")})
			h.StartMgmt("a")
			h.StartMgmt("b")
			h.StartPair(haPair)
			m, _ := h.WaitMaster()
			killedAt := map[string]int{} // instance -> pgid lines checked
			// checkKilled waits for the new master's hung script to be
			// killed at its timeout, and checks its process group is gone
			// and the cycle ran meanwhile.
			checkKilled := func(m *haMgmt) {
				t.Helper()
				_, from := m.p.WaitFor(0, step("became_master", ""))
				if variant == "exits" {
					m.p.WaitFor(from, and(msg("notify script ran"), field("state", "master")))
					return
				}
				l, pos := m.p.WaitFor(from, and(msg("notify script killed at its timeout"), field("state", "master")))
				if l.Str("@level") != "error" || l.Str("exit_code") != "-1" {
					t.Errorf("kill logged as %s", l.Raw)
				}
				if d := logDuration(l, "duration"); d < time.Second || d > time.Second+bound {
					t.Errorf("hung script killed after %v; want about the 1s timeout: %s", d, l.Raw)
				}
				// The cycle ran while the script hung: a second's worth of
				// hellos (20 at 50 ms; at least 5 on a loaded machine)
				// returned before the kill.
				if n := m.p.Count(from, step("hello_returned", haPair)) - m.p.Count(pos, step("hello_returned", haPair)); n < 5 {
					t.Errorf("%d hellos returned while %s's notify-master hung; want the cycle running", n, m.id)
				}
				b, err := os.ReadFile(filepath.Join(dir, m.id+".pgid"))
				if err != nil {
					t.Fatalf("the hung script did not record its pid: %v", err)
				}
				pids := strings.Fields(string(b))
				for _, s := range pids[killedAt[m.id]:] {
					pg, _ := strconv.Atoi(s)
					h.poll("process group "+s+" gone", func() string {
						if err := syscall.Kill(-pg, 0); !errors.Is(err, syscall.ESRCH) {
							return fmt.Sprintf("kill(-%d, 0): %v", pg, err)
						}
						return ""
					})
				}
				killedAt[m.id] = len(pids)
			}
			checkKilled(m)
			h.WaitCycle(m.id, 0, haPair, 3)
			for i := 0; i < runs; i++ {
				h.WaitSynced(m.id, h.Other(m.id).id, haPair)
				d, nm := failoverTime(t, h, m)
				figures[variant] = append(figures[variant], d)
				t.Logf("run %d: %s killed, %s's first hello returned %v later", i+1, m.id, nm.id, d.Round(time.Millisecond))
				if d > bound {
					t.Errorf("failover took %v; want under %v", d, bound)
				}
				checkKilled(nm)
				if nm.p.Count(0, step("became_master", "")) == 0 {
					t.Fatalf("%s never became master", nm.id)
				}
				h.StartMgmt(m.id)
				if got, sts := h.WaitMaster(); got != nm {
					t.Fatalf("after %s's restart the master is %s: %s", m.id, got.id, summarize(sts))
				}
				m = nm
			}
		})
	}
	for _, v := range []string{"exits", "hangs"} {
		if ds := figures[v]; len(ds) > 0 {
			slices.Sort(ds)
			t.Logf("notify-master %s: %d failovers, SIGKILL to first hello returned p50 %v max %v", v, len(ds),
				percentile(ds, 50).Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
		}
	}
}

// logDuration reads field k of l as a duration: a Go duration string, or
// a number of nanoseconds.
func logDuration(l logLine, k string) time.Duration {
	s := l.Str(k)
	if d, err := time.ParseDuration(s); err == nil {
		return d
	}
	n, _ := strconv.ParseFloat(s, 64)
	return time.Duration(n)
}

// cutProxy forwards TCP connections from its address to a target until
// cut: then it closes every connection it carries and those it accepts,
// until healed. It stands between two mgmt instances' HA sessions: a
// partition of the HA link without network namespaces (the peers see
// their connections reset rather than silence, and redial).
type cutProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// newCutProxy starts a proxy to target on a free loopback port; the
// test's cleanup stops it and waits for its goroutines.
func newCutProxy(t testing.TB, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", freePort(t))
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's address.
func (p *cutProxy) Addr() string { return p.ln.Addr().String() }

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if cut {
			c.Close()
			continue
		}
		p.wg.Add(1)
		go p.carry(c)
	}
}

// track adds c to the connections a cut closes, false (c closed) if the
// proxy is cut or closed meanwhile.
func (p *cutProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut || p.conns == nil {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *cutProxy) carry(c net.Conn) {
	defer p.wg.Done()
	u, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c) || !p.track(u) {
		c.Close()
		u.Close()
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go pipe(u, c)
	go pipe(c, u)
	<-done
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
}

// Cut closes every connection and refuses new ones until Heal.
func (p *cutProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
}

// Heal lets connections through again.
func (p *cutProxy) Heal() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// Close stops the proxy and waits for its goroutines.
func (p *cutProxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// TestHANotifyPartition: the HA link between the two mgmt instances is
// cut (a proxy on each direction; ctrl and data still reach both): the
// backup b claims a higher epoch and runs notify-master, ctrl and data
// follow it, and a stays master at its lower epoch (its scripts are told
// nothing new). When the link heals, a follows b and runs notify-backup
// (keepalived issue #1884: the scripts run again after the heal), and b,
// which stays master, re-asserts master at most once when it sees a's
// stale claim.
func TestHANotifyPartition(t *testing.T) {
	skipShort(t)
	t.Parallel()
	dir := t.TempDir()
	fileA, fileB := filepath.Join(dir, "a.notify"), filepath.Join(dir, "b.notify")
	h := newHACluster(t, fast,
		haSpec{id: "a", priority: 200, flags: slices.Concat(steady, []string{"-nopreempt"}, notifyFlags(fileA))},
		haSpec{id: "b", priority: 100, flags: slices.Concat(steady, []string{"-nopreempt"}, notifyFlags(fileB))})
	toA, toB := newCutProxy(t, h.M("a").ha), newCutProxy(t, h.M("b").ha)
	h.M("a").peerAddr, h.M("b").peerAddr = toA.Addr(), toB.Addr()
	na := &notifyLog{t: t, h: h, id: "a", file: fileA}
	nb := &notifyLog{t: t, h: h, id: "b", file: fileB}
	a := h.StartMgmt("a")
	b := h.StartMgmt("b")
	h.StartPair(haPair)
	if m, sts := h.WaitMaster(); m.id != "a" {
		t.Fatalf("master is %s; want a: %s", m.id, summarize(sts))
	}
	h.WaitCycle("a", 0, haPair, 3)
	h.WaitSynced("a", "b", haPair)
	ra := na.expect("start", notifyWant{state: "master", master: "a", reason: "start: "})
	nb.expect("start", notifyWant{state: "backup", master: "a", reason: "start: "})
	e1 := epochOf(t, ra[0])

	// The cut: b claims, the pair follows it; a stays master at e1.
	aMark, bMark := a.Mark(), b.Mark()
	toA.Cut()
	toB.Cut()
	h.WaitCycle("b", bMark, haPair, 3)
	rb := nb.expect("cut", notifyWant{state: "master", master: "b", reason: "became_master"})
	e2 := epochOf(t, rb[0])
	if e2 <= e1 {
		t.Errorf("cut: b told epoch %d; want above %d", e2, e1)
	}
	h.poll("two masters during the cut", func() string {
		sa, err := h.Status("a")
		if err != nil {
			return err.Error()
		}
		if sa.GetRole() != roleMaster || sa.GetEpoch() != e1 {
			return fmt.Sprintf("a: %v at epoch %d", sa.GetRole(), sa.GetEpoch())
		}
		return ""
	})
	if n := a.Count(aMark, step("stepped_down", "")); n != 0 {
		t.Errorf("a stepped down during the cut\n%s", h.Tails())
	}

	// The heal: one master, b; a runs notify-backup of b at e2.
	toA.Heal()
	toB.Heal()
	if m, sts := h.WaitMaster(); m.id != "b" {
		t.Fatalf("after the heal the master is %s: %s", m.id, summarize(sts))
	}
	h.WaitSynced("b", "a", haPair)
	ra = na.expect("heal",
		notifyWant{state: "backup", master: "", optional: true},
		notifyWant{state: "backup", master: "b"})
	if epochOf(t, ra[1]) != e2 {
		t.Errorf("heal: a told epoch %s; want %d", ra[1].arg2, e2)
	}
	all := nb.states()
	extra := all[nb.seen:]
	for _, r := range extra {
		if r.arg1 != "master" || r.arg3 != "b" || !strings.HasPrefix(r.arg4, "another master seen: a at epoch") {
			t.Errorf("b told %v after the heal; want at most a re-asserted master", r)
		}
	}
	if len(extra) > 1 {
		t.Errorf("b re-asserted master %d times for one stale claim: %v", len(extra), extra)
	}
	nb.seen += len(extra)
	t.Logf("a told: %v", na.states())
	t.Logf("b told: %v", nb.states())
	na.done()
	nb.done()
}

// TestComponentScriptsFailover: ctrl and data, each with -on-ready,
// -on-lost and -on-master-changed scripts recording what they got, run
// master_changed (the first master, a) and ready at start, then only
// master_changed (to b, at a higher epoch) when a is killed: the pair
// stays ready through a failover, so neither lost nor ready runs again.
func TestComponentScriptsFailover(t *testing.T) {
	skipShort(t)
	t.Parallel()
	dir := t.TempDir()
	h := newHACluster(t, fast, haSpec{id: "a", priority: 200, flags: steady}, haSpec{id: "b", priority: 100, flags: steady})
	h.StartMgmt("a")
	h.StartMgmt("b")
	file := func(role string) string { return filepath.Join(dir, role+".scripts") }
	scripts := func(role string) []string {
		rec := fmt.Sprintf(`printf '%%s\t%%s\t%%s\t%%s\t%%s\n' "$1" "$2" "$3" "$HELLOPICS_MASTER" "$4" >> %s`, file(role))
		return []string{"-on-ready", rec, "-on-lost", rec, "-on-master-changed", rec, "-script-timeout", "5s"}
	}
	ctrl := h.startComponent("ctrl", haPair, h.ctrl, append([]string{"-listen", "127.0.0.1:0"}, scripts("ctrl")...)...)
	data := h.startComponent("data", haPair, h.data, scripts("data")...)
	if m, sts := h.WaitMaster(); m.id != "a" {
		t.Fatalf("master is %s; want a: %s", m.id, summarize(sts))
	}
	h.WaitCycle("a", 0, haPair, 3)
	h.WaitSynced("a", "b", haPair)
	read := func(role string) [][]string {
		b, err := os.ReadFile(file(role))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		var out [][]string
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l != "" {
				out = append(out, strings.Split(l, "\t"))
			}
		}
		return out
	}
	// want waits for role's scripts to have run the events in order,
	// with the master address (mgmt a's or b's listen address) and
	// arguments matching the environment; it returns the epochs.
	want := func(role string, events ...[2]string) []uint64 {
		t.Helper()
		var epochs []uint64
		h.poll(role+"'s scripts", func() string {
			got := read(role)
			if len(got) < len(events) {
				return fmt.Sprintf("%v so far", got)
			}
			if len(got) > len(events) {
				t.Fatalf("%s's scripts ran %v; want %v", role, got, events)
			}
			epochs = epochs[:0]
			for i, e := range events {
				g := got[i]
				if len(g) != 5 || g[0] != e[0] || g[2] != h.M(e[1]).listen || g[2] != g[3] {
					t.Fatalf("%s's script %d: %v; want %s with master %s (%s)\nall: %v", role, i, g, e[0], e[1], h.M(e[1]).listen, got)
				}
				n, err := strconv.ParseUint(g[1], 10, 64)
				if err != nil || n == 0 {
					t.Fatalf("%s's script %d: epoch %q", role, i, g[1])
				}
				epochs = append(epochs, n)
			}
			return ""
		})
		return epochs
	}
	for _, role := range []string{"ctrl", "data"} {
		want(role, [2]string{"master_changed", "a"}, [2]string{"ready", "a"})
	}
	bMark := h.M("b").p.Mark()
	h.M("a").p.Kill()
	h.WaitCycle("b", bMark, haPair, 3)
	for _, role := range []string{"ctrl", "data"} {
		e := want(role, [2]string{"master_changed", "a"}, [2]string{"ready", "a"}, [2]string{"master_changed", "b"})
		if e[2] <= e[0] {
			t.Errorf("%s: master_changed to b at epoch %d, not above a's %d", role, e[2], e[0])
		}
	}
	for _, p := range []*proc{ctrl, data} {
		if n := p.Count(0, msg("notify script ran")); n != 3 {
			t.Errorf("%s logged %d script runs; want 3", p.name, n)
		}
	}
}
