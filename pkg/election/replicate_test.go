package election

import (
	"errors"
	"testing"
	"time"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// pipe moves a replicator's messages to the others, as a lossless
// in-order link would, except to the ids in lost.
func pipe(t *testing.T, from string, nodes map[string]*Replicator, lost map[string]bool) {
	t.Helper()
	r := nodes[from]
	msgs := r.msgs
	r.msgs = nil
	for _, m := range msgs {
		if lost[m.To] {
			continue
		}
		switch b := m.Body.(type) {
		case *hellopicsv1.SyncUpdate:
			nodes[m.To].StepUpdate(from, b)
		case *hellopicsv1.SyncAck:
			nodes[m.To].StepAck(from, b)
		default:
			t.Fatalf("unexpected %T", b)
		}
	}
}

func TestReplicator(t *testing.T) {
	m := NewReplicator("m", 4)
	b1 := NewReplicator("b1", 4)
	b2 := NewReplicator("b2", 4)
	nodes := map[string]*Replicator{"m": m, "b1": b1, "b2": b2}
	pairs := []*hellopicsv1.PairStatus{{PairId: "p"}}

	if _, err := b1.Update(pairs, 1); !errors.Is(err, ErrNotMaster) {
		t.Fatalf("Update on a backup: %v", err)
	}
	m.BecomeMaster(3, []string{"b1", "b2"})
	b1.BecomeBackup(3)
	b2.BecomeBackup(3)
	_, snaps, _ := m.take()
	if len(snaps) != 2 {
		t.Fatalf("snapshots requested for %v, want both backups", snaps)
	}
	// Updates before the snapshot are not sent: the snapshot covers them.
	if v, _ := m.Update(pairs, 1); v != 2 {
		t.Fatalf("first update version %d, want 2 (1 is the mastership's start)", v)
	}
	if msgs, _, _ := m.take(); len(msgs) != 0 {
		t.Fatalf("update sent before any snapshot: %v", msgs)
	}
	for _, id := range []string{"b1", "b2"} {
		if err := m.Snapshot(id, pairs, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Snapshot("zz", pairs, 1); err == nil {
		t.Fatalf("snapshot for an unknown backup: no error")
	}
	pipe(t, "m", nodes, nil)
	pipe(t, "b1", nodes, nil)
	pipe(t, "b2", nodes, nil)
	if !m.InSync("b1") || !m.InSync("b2") || b1.Version() != 2 {
		t.Fatalf("after snapshots: lag b1=%d b2=%d, b1 version %d", m.Lag("b1"), m.Lag("b2"), b1.Version())
	}

	// b2 stops acking (its acks are lost): its lag grows, b1 stays in sync.
	lost := map[string]bool{}
	for i := range 3 {
		m.Update(pairs, uint64(i))
		pipe(t, "m", nodes, nil)
		pipe(t, "b1", nodes, nil)
		pipe(t, "b2", nodes, map[string]bool{"m": true})
	}
	if m.Lag("b1") != 0 || m.Lag("b2") != 3 {
		t.Fatalf("lag b1=%d b2=%d, want 0 and 3", m.Lag("b1"), m.Lag("b2"))
	}
	if _, _, apply := b1.take(); len(apply) != 4 {
		t.Fatalf("b1 applied %d updates, want 4", len(apply))
	}
	// Beyond MaxSyncLag the master asks for a snapshot instead.
	lost["b2"] = true
	for range 2 {
		m.Update(pairs, 0)
		pipe(t, "m", nodes, lost)
		pipe(t, "b1", nodes, nil)
	}
	if _, snaps, _ := m.take(); len(snaps) != 1 || snaps[0] != "b2" {
		t.Fatalf("snapshots %v, want [b2]", snaps)
	}
	if got := m.Lag("b2"); got != 5 {
		t.Fatalf("lag b2 = %d, want 5", got)
	}
	if err := m.Snapshot("b2", pairs, 0); err != nil {
		t.Fatal(err)
	}
	pipe(t, "m", nodes, nil)
	pipe(t, "b2", nodes, nil)
	pipe(t, "b1", nodes, nil)
	if !m.InSync("b2") || b2.Version() != m.Version() {
		t.Fatalf("b2 not caught up: lag %d, version %d of %d", m.Lag("b2"), b2.Version(), m.Version())
	}

	// A gap (an update lost on the way) makes the backup ask for a
	// snapshot with an ack of version 0.
	m.Update(pairs, 0)
	pipe(t, "m", nodes, map[string]bool{"b1": true})
	m.Update(pairs, 0)
	pipe(t, "m", nodes, nil)
	pipe(t, "b1", nodes, nil)
	pipe(t, "b2", nodes, nil)
	if _, snaps, _ := m.take(); len(snaps) != 1 || snaps[0] != "b1" {
		t.Fatalf("after a gap: snapshots %v, want [b1]", snaps)
	}

	// A stale master is ignored once a backup knows a higher epoch.
	before := b2.Version()
	b2.take()
	b2.ObserveEpoch(5)
	b2.StepUpdate("m", &hellopicsv1.SyncUpdate{Epoch: 3, Version: before + 1})
	if msgs, _, apply := b2.take(); len(msgs)+len(apply) != 0 || b2.Version() != before {
		t.Fatalf("stale update applied or acked: %v %v", msgs, apply)
	}
	// Acks for another epoch, or from unknown backups, change nothing.
	m.StepAck("b2", &hellopicsv1.SyncAck{Epoch: 2, Version: 1})
	m.StepAck("zz", &hellopicsv1.SyncAck{Epoch: 3, Version: 1})
	// An ack from the future is capped.
	m.StepAck("b2", &hellopicsv1.SyncAck{Epoch: 3, Version: 999})
	if m.Lag("b2") != 0 {
		t.Fatalf("lag after a future ack: %d", m.Lag("b2"))
	}
	// A duplicate is acked again, not applied again.
	dup := &hellopicsv1.SyncUpdate{Epoch: 5, Version: 1, Full: true}
	b2.StepUpdate("n", dup)
	b2.StepUpdate("n", &hellopicsv1.SyncUpdate{Epoch: 5, Version: 1})
	msgs, _, apply := b2.take()
	if len(apply) != 1 || len(msgs) != 2 || msgs[1].Body.(*hellopicsv1.SyncAck).GetVersion() != 1 {
		t.Fatalf("duplicate: applied %d, acks %v", len(apply), msgs)
	}

	// A backup that leaves and rejoins gets a snapshot again.
	m.RemoveBackup("b1")
	m.AddBackup("b1")
	if _, snaps, _ := m.take(); len(snaps) != 1 || snaps[0] != "b1" {
		t.Fatalf("rejoin: snapshots %v, want [b1]", snaps)
	}
}

// TestSyncRejoin runs replication through the election in the sim: a
// backup that crashes and comes back is sent a full snapshot, and the
// master's status shows its lag.
func TestSyncRejoin(t *testing.T) {
	s := newSim(t, 10, nodeSpec{id: "a", priority: 200}, nodeSpec{id: "b", priority: 100})
	s.mustConverge(time.Second)
	s.run(100 * time.Millisecond)
	a, b := s.nodes["a"], s.nodes["b"]
	if len(b.applied) != 1 || !b.applied[0].GetFull() {
		t.Fatalf("b applied %v, want one snapshot", b.applied)
	}
	if _, err := b.e.Sync(nil, 0); !errors.Is(err, ErrNotMaster) {
		t.Fatalf("Sync on a backup: %v", err)
	}
	if err := b.e.Snapshot("a", nil, 0); !errors.Is(err, ErrNotMaster) {
		t.Fatalf("Snapshot on a backup: %v", err)
	}
	for i := range 5 {
		if _, err := a.e.Sync(s.pairs(), uint64(i)); err != nil {
			t.Fatal(err)
		}
		s.process(a)
	}
	lag := func() uint64 { return a.e.Status().Peers[0].GetSyncLag() }
	if lag() != 5 {
		t.Fatalf("lag before the acks arrive = %d, want 5", lag())
	}
	s.run(10 * time.Millisecond)
	if lag() != 0 || len(b.applied) != 6 || b.e.Status().SyncVersion != a.e.Status().SyncVersion {
		t.Fatalf("lag %d, b applied %d, versions %d/%d", lag(), len(b.applied), b.e.Status().SyncVersion, a.e.Status().SyncVersion)
	}

	s.crash("b")
	s.run(200 * time.Millisecond)
	if _, err := a.e.Sync(s.pairs(), 9); err != nil {
		t.Fatal(err)
	}
	s.process(a)
	s.start("b")
	s.mustConverge(time.Second)
	s.run(10 * time.Millisecond)
	if len(b.applied) < 7 || !b.applied[len(b.applied)-1].GetFull() || lag() != 0 {
		t.Fatalf("after rejoin: applied %d (last full=%v), lag %d", len(b.applied), b.applied[len(b.applied)-1].GetFull(), lag())
	}
}

// TestReplicatorApp: application updates travel as app_only SyncUpdates
// in version order with the registry's, snapshots carry the
// application's state, and Committed follows the acks of the live
// backups that hold a baseline.
func TestReplicatorApp(t *testing.T) {
	m := NewReplicator("m", 16)
	b1 := NewReplicator("b1", 16)
	b2 := NewReplicator("b2", 16)
	nodes := map[string]*Replicator{"m": m, "b1": b1, "b2": b2}
	if _, err := b1.UpdateApp([][]byte{[]byte("x")}); !errors.Is(err, ErrNotMaster) {
		t.Fatalf("UpdateApp on a backup: %v", err)
	}
	if v, n := b1.Committed(); v != 0 || n != 0 {
		t.Fatalf("Committed on a backup = %d, %d", v, n)
	}
	m.BecomeMaster(1, []string{"b1", "b2"})
	b1.BecomeBackup(1)
	b2.BecomeBackup(1)
	m.take()
	// No backup holds a baseline yet: everything is committed at once.
	v, _ := m.UpdateApp([][]byte{[]byte("a")})
	if c, n := m.Committed(); c != v || n != 0 {
		t.Fatalf("Committed without baselines = %d, %d; want %d, 0", c, n, v)
	}
	if err := m.SnapshotWith("b1", &hellopicsv1.SyncUpdate{AppSnapshot: []byte("snap")}); err != nil {
		t.Fatal(err)
	}
	if c, n := m.Committed(); c != 0 || n != 1 {
		t.Fatalf("Committed before b1's ack = %d, %d; want 0, 1", c, n)
	}
	pipe(t, "m", nodes, nil)
	apply := takeApply(b1)
	if len(apply) != 1 || !apply[0].GetFull() || string(apply[0].GetAppSnapshot()) != "snap" || apply[0].GetAppOnly() {
		t.Fatalf("b1 applied %v, want the full snapshot with the app state", apply)
	}
	pipe(t, "b1", nodes, nil)
	if c, n := m.Committed(); c != v || n != 1 {
		t.Fatalf("Committed after b1's ack = %d, %d; want %d, 1", c, n, v)
	}

	v2, _ := m.UpdateApp([][]byte{[]byte("b"), []byte("c")})
	v3, _ := m.Update(nil, 7)
	if v2 != v+1 || v3 != v2+1 {
		t.Fatalf("versions %d, %d after %d", v2, v3, v)
	}
	pipe(t, "m", nodes, nil)
	apply = takeApply(b1)
	if len(apply) != 2 || !apply[0].GetAppOnly() || len(apply[0].GetApp()) != 2 || string(apply[0].GetApp()[1]) != "c" ||
		apply[1].GetAppOnly() || apply[1].GetNextSeq() != 7 {
		t.Fatalf("b1 applied %v", apply)
	}
	if c, _ := m.Committed(); c != v {
		t.Fatalf("Committed before the acks = %d, want %d", c, v)
	}
	pipe(t, "b1", nodes, nil)
	if c, n := m.Committed(); c != v3 || n != 1 {
		t.Fatalf("Committed = %d, %d; want %d, 1", c, n, v3)
	}
	// A dead backup no longer holds commits back.
	m.AddBackup("b1")
	m.RemoveBackup("b1")
	if c, n := m.Committed(); c != v3 || n != 0 {
		t.Fatalf("Committed without live backups = %d, %d", c, n)
	}
}

// TestReplicatorReject: a backup that cannot apply an update asks for a
// snapshot instead of acknowledging it, refuses the updates after it,
// and is whole again after the snapshot.
func TestReplicatorReject(t *testing.T) {
	m := NewReplicator("m", 16)
	b := NewReplicator("b", 16)
	nodes := map[string]*Replicator{"m": m, "b": b}
	m.BecomeMaster(1, []string{"b"})
	b.BecomeBackup(1)
	m.take()
	if err := m.Snapshot("b", nil, 0); err != nil {
		t.Fatal(err)
	}
	pipe(t, "m", nodes, nil)
	b.take()
	pipe(t, "b", nodes, nil)
	m.UpdateApp([][]byte{[]byte("ok")})
	bad, _ := m.UpdateApp([][]byte{[]byte("bad")})
	pipe(t, "m", nodes, nil)
	msgs, _, apply := b.take()
	if len(apply) != 2 || len(msgs) != 2 {
		t.Fatalf("apply %d, msgs %d", len(apply), len(msgs))
	}
	b.Reject(apply[1], msgs)
	if a := msgs[0].Body.(*hellopicsv1.SyncAck); a.GetVersion() != bad-1 {
		t.Fatalf("ack of the good update = %d, want %d", a.GetVersion(), bad-1)
	}
	if a := msgs[1].Body.(*hellopicsv1.SyncAck); a.GetVersion() != 0 {
		t.Fatalf("ack of the rejected update = %d, want 0", a.GetVersion())
	}
	b.msgs = msgs
	pipe(t, "b", nodes, nil)
	// b holds no baseline now: it does not count, and no backup holds
	// the rejected update (Acked 0).
	if c, n := m.Committed(); c != bad || n != 0 {
		t.Fatalf("Committed = %d, %d; want %d, 0", c, n, bad)
	}
	if _, snaps, _ := m.take(); len(snaps) != 1 || snaps[0] != "b" {
		t.Fatalf("snapshots %v, want [b]", snaps)
	}
	// Until the snapshot comes, updates are refused.
	m.UpdateApp([][]byte{[]byte("skipped")}) // not sent: b has no baseline
	b.StepUpdate("m", &hellopicsv1.SyncUpdate{Epoch: 1, Version: bad + 1, AppOnly: true})
	if msgs, _, apply := b.take(); len(apply) != 0 || msgs[0].Body.(*hellopicsv1.SyncAck).GetVersion() != 0 {
		t.Fatalf("after a rejection: applied %d, acks %v", len(apply), msgs)
	}
	if err := m.SnapshotWith("b", &hellopicsv1.SyncUpdate{AppSnapshot: []byte("s")}); err != nil {
		t.Fatal(err)
	}
	pipe(t, "m", nodes, nil)
	if apply := takeApply(b); len(apply) != 1 || !apply[0].GetFull() {
		t.Fatalf("snapshot not applied: %v", apply)
	}
	pipe(t, "b", nodes, nil)
	if c, n := m.Committed(); c != m.Version() || n != 1 {
		t.Fatalf("Committed after the snapshot = %d, %d; want %d, 1", c, n, m.Version())
	}
}

// takeApply returns and clears the updates r handed out to apply,
// leaving its messages to pipe.
func takeApply(r *Replicator) []*hellopicsv1.SyncUpdate {
	a := r.apply
	r.apply = nil
	return a
}
