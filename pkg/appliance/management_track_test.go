package appliance_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hellopics/hellopics/internal/await"
	"github.com/hellopics/hellopics/mgmt"
	"github.com/hellopics/hellopics/pkg/election"
	"github.com/hellopics/hellopics/pkg/notify"
	"github.com/hellopics/hellopics/pkg/track"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// startTracked starts mgmt instance id (alone when ha is nil) with the
// checks and a -notify script appending "$1 $3" to dir/notify-ID.
func startTracked(t *testing.T, id string, prio uint32, ha map[string]string, dir string, checks ...track.Check) *mgmt.Server {
	t.Helper()
	mc := mgmt.DefaultConfig()
	mc.ListenAddr, mc.OperatorAddr, mc.HAListenAddr = "127.0.0.1:0", "", ha[id]
	mc.ID, mc.Priority, mc.Track = id, prio, checks
	mc.Notify = notify.Config{OnAny: `echo "$1 $3" >>` + filepath.Join(dir, "notify-"+id)}
	for p, a := range ha {
		if p != id {
			mc.Peers = append(mc.Peers, election.Peer{ID: p, Addr: a})
		}
	}
	m, err := mgmt.New(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// fileCheck passes while dir/name exists.
func fileCheck(dir, name string, weight uint32) track.Check {
	return track.Check{Name: name, Script: "test -e " + filepath.Join(dir, name), Weight: weight,
		Interval: 20 * time.Millisecond, Fall: 2}
}

func status(t *testing.T, m *mgmt.Server) *hellopicsv1.GetStatusResponse {
	t.Helper()
	st, err := m.Status(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func isMaster(t *testing.T, m *mgmt.Server) bool {
	return status(t, m).GetRole() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// gauge reads a gauge of m's collectors (labels as name=value pairs).
func gauge(t *testing.T, m *mgmt.Server, name string, labels ...string) (float64, bool) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	for _, c := range m.Collectors() {
		reg.MustRegister(c)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, mt := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range mt.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			return mt.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func notified(dir, id, line string) bool {
	b, _ := os.ReadFile(filepath.Join(dir, "notify-"+id))
	for _, l := range strings.Split(string(b), "\n") {
		if l == line {
			return true
		}
	}
	return false
}

// TestTrackFaultHandsOver: a master whose check of weight 0 fails
// enters the fault state, steps down and runs its notify-fault script;
// the backup takes over. Its status and metrics show the fault and the
// failing check. Healthy again, it is no longer faulty and, the better
// instance (not NoPreempt), preempts back.
func TestTrackFaultHandsOver(t *testing.T) {
	dir := t.TempDir()
	touch(t, filepath.Join(dir, "ok"))
	ha := map[string]string{"a": freeAddr(t), "b": freeAddr(t)}
	a := startTracked(t, "a", 200, ha, dir, fileCheck(dir, "ok", 0))
	await.True(t, func() bool { return isMaster(t, a) }, "a master")
	b := startTracked(t, "b", 100, ha, dir)
	await.True(t, func() bool { return notified(dir, "b", "backup a") }, "b backup following a")
	st := status(t, a)
	if st.GetBasePriority() != 200 || st.GetPriority() != 200 || st.GetFault() || len(st.GetTracks()) != 1 || !st.GetTracks()[0].GetOk() {
		t.Fatalf("a healthy: %v", st)
	}
	if v, ok := gauge(t, a, "hellopics_mgmt_track_up", "check", "ok"); !ok || v != 1 {
		t.Fatalf("hellopics_mgmt_track_up{check=ok} = %v (%v), want 1", v, ok)
	}

	if err := os.Remove(filepath.Join(dir, "ok")); err != nil {
		t.Fatal(err)
	}
	await.True(t, func() bool { return isMaster(t, b) }, "b master after a's check failed")
	await.True(t, func() bool { return notified(dir, "a", "fault b") }, "a's scripts told fault")
	st = status(t, a)
	if st.GetRole() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER || !st.GetFault() || st.GetPriority() != 0 || st.GetBasePriority() != 200 ||
		st.GetTracks()[0].GetOk() || st.GetTracks()[0].GetLastError() == "" {
		t.Fatalf("a faulty: %v", st)
	}
	if v, _ := gauge(t, a, "hellopics_mgmt_fault"); v != 1 {
		t.Errorf("hellopics_mgmt_fault = %v, want 1", v)
	}
	if v, _ := gauge(t, a, "hellopics_mgmt_priority"); v != 0 {
		t.Errorf("hellopics_mgmt_priority = %v, want 0", v)
	}
	if v, ok := gauge(t, a, "hellopics_mgmt_track_up", "check", "ok"); !ok || v != 0 {
		t.Errorf("hellopics_mgmt_track_up{check=ok} = %v (%v), want 0", v, ok)
	}
	if ps := status(t, b).GetMgmtPeers(); len(ps) != 1 || !ps[0].GetFault() || ps[0].GetPriority() != 0 {
		t.Errorf("b's view of a: %v", ps)
	}

	touch(t, filepath.Join(dir, "ok"))
	await.True(t, func() bool { return isMaster(t, a) }, "a healthy again preempts b")
	if st := status(t, a); st.GetFault() || st.GetPriority() != 200 {
		t.Fatalf("a healthy again: %v", st)
	}
}

// TestTrackWeightLowersPriority: a failing check of weight 150 lowers
// the master's priority from 200 to 50, below the backup's 100, which
// preempts it; no fault.
func TestTrackWeightLowersPriority(t *testing.T) {
	dir := t.TempDir()
	touch(t, filepath.Join(dir, "up"))
	ha := map[string]string{"a": freeAddr(t), "b": freeAddr(t)}
	a := startTracked(t, "a", 200, ha, dir, fileCheck(dir, "up", 150))
	await.True(t, func() bool { return isMaster(t, a) }, "a master")
	b := startTracked(t, "b", 100, ha, dir)
	await.True(t, func() bool { return notified(dir, "b", "backup a") }, "b backup following a")
	if err := os.Remove(filepath.Join(dir, "up")); err != nil {
		t.Fatal(err)
	}
	await.True(t, func() bool { return isMaster(t, b) }, "b preempts a of lowered priority")
	st := status(t, a)
	if st.GetFault() || st.GetPriority() != 50 || st.GetBasePriority() != 200 {
		t.Fatalf("a with a failing check of weight 150: %v", st)
	}
	if v, _ := gauge(t, a, "hellopics_mgmt_priority"); v != 50 {
		t.Errorf("hellopics_mgmt_priority = %v, want 50", v)
	}
	if notified(dir, "a", "fault b") {
		t.Error("a told fault for a check of weight 150")
	}
}

// TestTrackFaultFromStart: an instance whose check fails at its first
// run never becomes master, although its priority is the highest.
func TestTrackFaultFromStart(t *testing.T) {
	dir := t.TempDir()
	ha := map[string]string{"a": freeAddr(t), "b": freeAddr(t)}
	a := startTracked(t, "a", 200, ha, dir, fileCheck(dir, "ok", 0))
	b := startTracked(t, "b", 100, ha, dir)
	await.True(t, func() bool { return isMaster(t, b) }, "b master")
	await.True(t, func() bool { return notified(dir, "a", "fault b") }, "a told fault")
	if isMaster(t, a) || !status(t, a).GetFault() {
		t.Fatalf("a: %v", status(t, a))
	}
	// Its scripts were only ever told fault, never with itself as the
	// master.
	out, _ := os.ReadFile(filepath.Join(dir, "notify-a"))
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !strings.HasPrefix(l, "fault") || l == "fault a" {
			t.Errorf("a's scripts told %q:\n%s", l, out)
		}
	}
}

// TestTrackSingleInstance: a single instance stays master in the fault
// state (nobody could take over) and runs its notify-fault script.
func TestTrackSingleInstance(t *testing.T) {
	dir := t.TempDir()
	touch(t, filepath.Join(dir, "ok"))
	a := startTracked(t, "a", 100, nil, dir, fileCheck(dir, "ok", 0))
	await.True(t, func() bool { return notified(dir, "a", "master a") }, "a told master")
	if err := os.Remove(filepath.Join(dir, "ok")); err != nil {
		t.Fatal(err)
	}
	await.True(t, func() bool { return notified(dir, "a", "fault a") }, "a told fault")
	if st := status(t, a); !st.GetFault() || st.GetRole() != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		t.Fatalf("a: %v", st)
	}
	touch(t, filepath.Join(dir, "ok"))
	await.True(t, func() bool { return !status(t, a).GetFault() }, "a out of the fault state")
	await.True(t, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "notify-a"))
		return strings.HasSuffix(string(b), "fault a\nmaster a\n")
	}, "a told master again")
}

// TestTrackDuplicateNames: two checks of one name are refused at start.
func TestTrackDuplicateNames(t *testing.T) {
	mc := mgmt.DefaultConfig()
	mc.ListenAddr, mc.OperatorAddr = "127.0.0.1:0", ""
	mc.Track = []track.Check{{Script: "true"}, {Script: "true"}}
	if m, err := mgmt.New(mc); err == nil {
		m.Close()
		t.Fatal("two checks named alike accepted")
	}
}

// TestTrackStopsOnClose: Close stops the checks' goroutines, a hung
// script included (its process group is killed).
func TestTrackStopsOnClose(t *testing.T) {
	dir := t.TempDir()
	ok, hung := filepath.Join(dir, "ok"), filepath.Join(dir, "hung")
	touch(t, ok)
	mc := mgmt.DefaultConfig()
	mc.ListenAddr, mc.OperatorAddr = "127.0.0.1:0", ""
	mc.Track = []track.Check{{Name: "quick", Script: "true", Interval: 10 * time.Millisecond},
		{Name: "hangs", Script: "test -e " + ok + " || { touch " + hung + "; sleep 60; }", Interval: 10 * time.Millisecond, Timeout: time.Minute}}
	m, err := mgmt.New(mc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(ok); err != nil {
		t.Fatal(err)
	}
	await.True(t, func() bool { _, err := os.Stat(hung); return err == nil }, "the check hangs")
	start := time.Now()
	m.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close with a hung check took %v", d)
	}
	await.True(t, func() bool {
		buf := make([]byte, 1<<20)
		return !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "pkg/track.(*Tracker)")
	}, "the tracker's goroutines end")
}
