package handshake

import (
	"slices"
	"testing"
	"time"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// changedIDs returns the ids of a delta's changed and removed pairs.
func changedIDs(s Snapshot) (changed, removed []string) {
	for _, p := range s.Pairs {
		changed = append(changed, p.GetPairId())
	}
	return changed, s.Removed
}

// TestMgmtTakeChanges: a delta carries the pairs that changed since the
// last one (a hello sent or back, a relay report, a component lost),
// not the others, and the pairs expired; a backup fed the deltas holds
// the master's registry.
func TestMgmtTakeChanges(t *testing.T) {
	m := newTestMgmt(t, MgmtConfig{Epoch: 1, PairExpiry: time.Second})
	backup := newTestMgmt(t, MgmtConfig{Epoch: 1, Backup: true})
	sync := func(what string, wantChanged, wantRemoved []string) {
		t.Helper()
		d := m.TakeChanges()
		if c, r := changedIDs(d); !slices.Equal(c, wantChanged) || !slices.Equal(r, wantRemoved) {
			t.Fatalf("%s: delta changed %v removed %v, want %v %v", what, c, r, wantChanged, wantRemoved)
		}
		if d.Full || d.NextSeq != m.NextSeq() {
			t.Fatalf("%s: full=%v next_seq=%d (machine %d)", what, d.Full, d.NextSeq, m.NextSeq())
		}
		if m.HasChanges() {
			t.Fatalf("%s: changes left after TakeChanges", what)
		}
		if err := backup.Restore(d); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got, want := registryView(backup.Pairs()), registryView(m.Pairs()); got != want {
			t.Fatalf("%s: backup\n got %s\nwant %s", what, got, want)
		}
	}
	// Two pairs; p2's cycle runs on sessions 3 and 4.
	for i, p := range []string{"p1", "p2"} {
		c, d := SessionID(2*i+1), SessionID(2*i+2)
		m.SessionUp(c, "10.0.0.1:1", t0)
		m.SessionUp(d, "10.0.0.2:2", t0)
		m.Receive(c, msgID, ctrlID(p, "c-"+p), t0)
		m.Receive(d, msgID, dataID(p, "d-"+p), t0)
		m.Receive(d, msgReady, &hellopicsv1.Ready{Role: roleDataPB, PairId: p}, t0)
		m.Receive(c, msgReady, &hellopicsv1.Ready{Role: roleCtrlPB, PairId: p}, t0)
	}
	sync("registered", []string{"p1", "p2"}, nil)
	sync("nothing happened", nil, nil)

	// Hello 1 (p1, to ctrl) comes back from data: only p1 changed.
	m.Receive(2, msgHello, &hellopicsv1.Hello{Seq: 1, Direction: dirCD, Epoch: 1, PairId: "p1"}, t0.Add(time.Millisecond))
	sync("p1's hello back", []string{"p1"}, nil)

	// A relay report has no event of its own, and still reaches the backup.
	m.Receive(4, msgReport, &hellopicsv1.Report{Role: roleDataPB, PairId: "p2", Relay: &hellopicsv1.RelayStats{Commands: 7}}, t0)
	sync("p2's relay report", []string{"p2"}, nil)
	if r := backup.Pairs()[1].GetRelay(); r.GetCommands() != 7 {
		t.Fatalf("backup's relay of p2: %v", r)
	}

	// p2's components go; it expires after PairExpiry; p1 keeps cycling.
	m.SessionDown(3, "eof", t0)
	m.SessionDown(4, "eof", t0)
	sync("p2 lost", []string{"p2"}, nil)
	m.Tick(t0.Add(2 * time.Second))
	sync("p2 expired, p1's next hello", []string{"p1"}, []string{"p2"})
	if len(backup.Pairs()) != 1 {
		t.Fatalf("backup still holds the expired pair: %s", registryView(backup.Pairs()))
	}

	// p2 comes back under the same id within one delta after it was
	// removed: the backup forgets the old one and takes the new.
	m.SessionUp(5, "10.0.0.3:3", t0.Add(2*time.Second))
	m.Receive(5, msgID, ctrlID("p2", "c-new"), t0.Add(2*time.Second))
	sync("p2 again", []string{"p2"}, nil)
}

// TestMgmtRestoreDeltaChecked: a delta naming an invalid removed pair,
// or a full snapshot naming removed pairs, is refused.
func TestMgmtRestoreDeltaChecked(t *testing.T) {
	m := newTestMgmt(t, MgmtConfig{Epoch: 1, Backup: true})
	for name, s := range map[string]Snapshot{
		"empty removed id":    {Removed: []string{""}},
		"removed id too long": {Removed: []string{string(make([]byte, 300))}},
		"full with removed":   {Full: true, Removed: []string{"p1"}},
	} {
		if err := m.Restore(s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
