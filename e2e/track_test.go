package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// TestHATrackScript: two mgmt instances, each with a tracked script
// check of weight 0 (`test -e DIR/X-ok`, every 100 ms, fall 2). Removing
// the master a's file puts a in the fault state: it steps down, runs its
// notify-fault script, and the backup b becomes master within
// (fall+1) × interval + the dead interval (docs/ha.md, "Tracked
// health"); the hello cycle resumes under b. With the file back, a is
// healthy again (priority 200, no fault) and, -nopreempt, stays backup.
// The time from removing the file to b's became_master is logged.
func TestHATrackScript(t *testing.T) {
	skipShort(t)
	t.Parallel()
	const (
		interval = 100 * time.Millisecond
		fall     = 2
		dead     = 10 * election50ms // steady: -dead-misses 10 at the default 50 ms heartbeat
	)
	dir := t.TempDir()
	okA, okB, faultA := filepath.Join(dir, "a-ok"), filepath.Join(dir, "b-ok"), filepath.Join(dir, "a-fault")
	for _, f := range []string{okA, okB} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	check := func(file string) []string {
		return []string{"-track-interval", interval.String(), "-track-fall", fmt.Sprint(fall), "-track-name", "ok",
			"-track-script", "test -e " + file}
	}
	h := newHACluster(t, fast,
		haSpec{id: "a", priority: 200, flags: slices.Concat(steady, []string{"-nopreempt", "-notify-fault", "touch " + faultA}, check(okA))},
		haSpec{id: "b", priority: 100, flags: slices.Concat(steady, check(okB))})
	a := h.StartMgmt("a")
	b := h.StartMgmt("b")
	h.StartPair(haPair)
	if m, sts := h.WaitMaster(); m.id != "a" {
		t.Fatalf("master is %s; want a: %s", m.id, summarize(sts))
	}
	h.WaitCycle("a", 0, haPair, 3)
	h.WaitSynced("a", "b", haPair)
	st := h.MustStatus("a")
	if st.GetBasePriority() != 200 || st.GetPriority() != 200 || st.GetFault() || len(st.GetTracks()) != 1 || !st.GetTracks()[0].GetOk() {
		t.Fatalf("a healthy: base_priority %d priority %d fault %v tracks %v", st.GetBasePriority(), st.GetPriority(), st.GetFault(), st.GetTracks())
	}

	aMark, bMark := a.Mark(), b.Mark()
	removed := time.Now()
	if err := os.Remove(okA); err != nil {
		t.Fatal(err)
	}
	failing, _ := a.WaitFor(aMark, and(msg("tracked check failing"), field("check", "ok"), field("state", "failing")))
	a.WaitFor(aMark, and(step("stepped_down", ""), msg("stepped down")))
	became, _ := b.WaitFor(bMark, step("became_master", ""))
	detected, took := logTime(failing).Sub(removed), logTime(became).Sub(removed)
	t.Logf("file removed -> a's check failing %v -> b's became_master %v (bound %v)", detected.Round(time.Millisecond),
		took.Round(time.Millisecond), (fall+1)*interval+dead)
	if bound := (fall+1)*interval + dead + slack; took > bound {
		t.Errorf("b became master %v after a's check started failing; want within %v", took, bound)
	}
	h.WaitCycle("b", bMark, haPair, 3)
	if m, sts := h.WaitMaster(); m.id != "b" {
		t.Fatalf("after a's fault the master is %s: %s", m.id, summarize(sts))
	}
	h.poll("a in the fault state", func() string {
		st, err := h.Status("a")
		if err != nil {
			return err.Error()
		}
		if !st.GetFault() || st.GetPriority() != 0 || st.GetRole() == roleMaster || st.GetTracks()[0].GetOk() {
			return fmt.Sprintf("role %v fault %v priority %d tracks %v", st.GetRole(), st.GetFault(), st.GetPriority(), st.GetTracks())
		}
		if _, err := os.Stat(faultA); err != nil {
			return "notify-fault not run: " + err.Error()
		}
		return ""
	})
	if ps := h.MustStatus("b").GetMgmtPeers(); len(ps) != 1 || !ps[0].GetFault() {
		t.Errorf("b does not see a faulty: %v", ps)
	}

	aMark = a.Mark()
	if err := os.WriteFile(okA, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	a.WaitFor(aMark, and(msg("tracked check passing again"), field("check", "ok")))
	a.WaitFor(aMark, msg("fault state over"))
	h.poll("a healthy again", func() string {
		st, err := h.Status("a")
		if err != nil {
			return err.Error()
		}
		if st.GetFault() || st.GetPriority() != 200 || !st.GetTracks()[0].GetOk() || st.GetRole() != roleBackup || st.GetMasterId() != "b" {
			return fmt.Sprintf("role %v master %q fault %v priority %d tracks %v", st.GetRole(), st.GetMasterId(), st.GetFault(), st.GetPriority(), st.GetTracks())
		}
		return ""
	})
	// Twenty hellos (a second at 50 ms: two dead intervals, twenty
	// heartbeats) later, a -nopreempt has not taken mastership back.
	b.WaitForN(b.Mark(), step("hello_returned", haPair), 20)
	if n := a.Count(aMark, step("became_master", "")); n != 0 {
		t.Errorf("a (-nopreempt) became master again once healthy\n%s", h.Tails())
	}
	if m, sts := h.WaitMaster(); m.id != "b" {
		t.Fatalf("master is %s; want b: %s", m.id, summarize(sts))
	}
	if st := h.MustStatus("a"); st.GetRole() != hellopicsv1.MgmtRole_MGMT_ROLE_BACKUP {
		t.Errorf("a: %v", st.GetRole())
	}
}

// election50ms is the default heartbeat interval.
const election50ms = 50 * time.Millisecond

// slack is what a loaded two-core machine under the race detector may
// add to a bound: a process not scheduled for a few hundred
// milliseconds (see steady).
const slack = 500 * time.Millisecond

// logTime is when a line was logged (its @timestamp), or when the
// harness read it if it has none.
func logTime(l logLine) time.Time {
	if ts, err := time.Parse(time.RFC3339Nano, l.Str("@timestamp")); err == nil {
		return ts
	}
	return l.At
}

// TestHATrackInterface: a master tracking a real network interface
// (-track-interface, weight 0) hands over when the link loses its
// carrier, and is healthy again when it comes back. The interface is
// one end of a veth pair made for the test; its other end is taken down
// and up, as a cable pulled from an uplink. Needs root and ip(8).
func TestHATrackInterface(t *testing.T) {
	skipShort(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a veth pair")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8)")
	}
	const (
		interval = 100 * time.Millisecond
		fall     = 2
		dead     = 10 * election50ms
	)
	name := fmt.Sprintf("hptk%d", os.Getpid()%100000)
	peer := name + "p"
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	ip("link", "add", name, "type", "veth", "peer", "name", peer)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", name).Run() })
	ip("link", "set", name, "up")
	ip("link", "set", peer, "up")

	h := newHACluster(t, fast,
		haSpec{id: "a", priority: 200, flags: slices.Concat(steady, []string{"-nopreempt", "-track-interval", interval.String(),
			"-track-fall", fmt.Sprint(fall), "-track-interface", name})},
		haSpec{id: "b", priority: 100, flags: steady})
	a := h.StartMgmt("a")
	b := h.StartMgmt("b")
	h.StartPair(haPair)
	if m, sts := h.WaitMaster(); m.id != "a" {
		t.Fatalf("master is %s; want a: %s", m.id, summarize(sts))
	}
	h.WaitCycle("a", 0, haPair, 3)
	if st := h.MustStatus("a"); st.GetFault() || len(st.GetTracks()) != 1 || !st.GetTracks()[0].GetOk() {
		t.Fatalf("a with its link up: fault %v tracks %v", st.GetFault(), st.GetTracks())
	}

	aMark, bMark := a.Mark(), b.Mark()
	cut := time.Now()
	ip("link", "set", peer, "down") // the carrier goes
	a.WaitFor(aMark, and(msg("tracked check failing"), field("state", "failing")))
	a.WaitFor(aMark, and(step("stepped_down", ""), msg("stepped down")))
	became, _ := b.WaitFor(bMark, step("became_master", ""))
	took := logTime(became).Sub(cut)
	t.Logf("carrier lost -> b's became_master %v (bound %v)", took.Round(time.Millisecond), (fall+1)*interval+dead)
	if bound := (fall+1)*interval + dead + slack; took > bound {
		t.Errorf("b became master %v after a's link lost its carrier; want within %v", took, bound)
	}
	h.WaitCycle("b", bMark, haPair, 3)
	if st := h.MustStatus("a"); !st.GetFault() || st.GetTracks()[0].GetOk() || st.GetTracks()[0].GetLastError() == "" {
		t.Errorf("a without its carrier: fault %v tracks %v", st.GetFault(), st.GetTracks())
	}

	aMark = a.Mark()
	ip("link", "set", peer, "up")
	a.WaitFor(aMark, msg("fault state over"))
	h.poll("a healthy again, backup", func() string {
		st, err := h.Status("a")
		if err != nil {
			return err.Error()
		}
		if st.GetFault() || !st.GetTracks()[0].GetOk() || st.GetRole() != roleBackup {
			return fmt.Sprintf("role %v fault %v tracks %v", st.GetRole(), st.GetFault(), st.GetTracks())
		}
		return ""
	})
}
