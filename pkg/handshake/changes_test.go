package handshake

import (
	"fmt"
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

// checkDeadlines fails unless m's deadline bookkeeping matches its
// state: the sets of idle pairs and of sessions that must identify, and
// NextDeadline against a scan of every pair and session.
func checkDeadlines(t *testing.T, m *Mgmt, where string) {
	t.Helper()
	var want time.Time
	found := false
	earliest := func(at time.Time) {
		if !found || at.Before(want) {
			want, found = at, true
		}
	}
	for id, p := range m.pairs {
		if _, ok := m.idlePairs[id]; ok != !p.idleSince.IsZero() {
			t.Fatalf("%s: pair %s idle since %v, in the idle set: %v", where, id, p.idleSince, ok)
		}
		if at, ok := m.cycle.NextDue(id); ok {
			earliest(at)
		}
		if m.cfg.PairExpiry > 0 && !p.idleSince.IsZero() {
			earliest(p.idleSince.Add(m.cfg.PairExpiry))
		}
	}
	for id := range m.idlePairs {
		if m.pairs[id] == nil {
			t.Fatalf("%s: idle set names pair %s, gone", where, id)
		}
	}
	for id, s := range m.sessions {
		waits := !s.identified && s.watch == nil
		if _, ok := m.unidentified[id]; ok != waits {
			t.Fatalf("%s: session %d must identify: %v, in the set: %v", where, id, waits, ok)
		}
		if waits {
			earliest(s.since.Add(m.cfg.IdentifyTimeout))
		}
	}
	for id := range m.unidentified {
		if m.sessions[id] == nil {
			t.Fatalf("%s: unidentified set names session %d, gone", where, id)
		}
	}
	got, ok := m.NextDeadline()
	if ok != found || !got.Equal(want) {
		t.Fatalf("%s: NextDeadline %v %v, a scan says %v %v", where, got, ok, want, found)
	}
}

// TestMgmtSpreadHellos: twenty pairs whose cycles start at the same
// instant (a failover) send their hellos spread over the interval after
// a few intervals, every gap within a tenth of the interval, none
// missed. Without SpreadHellos they stay in lock-step.
func TestMgmtSpreadHellos(t *testing.T) {
	for _, spread := range []bool{false, true} {
		m := newTestMgmt(t, MgmtConfig{Epoch: 1, SpreadHellos: spread})
		const n = 20
		var starts []Output
		for i := range n {
			p := fmt.Sprintf("p%d", i)
			c, d := SessionID(2*i+1), SessionID(2*i+2)
			m.SessionUp(c, "10.0.0.1:1", t0)
			m.SessionUp(d, "10.0.0.2:2", t0)
			m.Receive(c, msgID, ctrlID(p, "c-"+p), t0)
			m.Receive(d, msgID, dataID(p, "d-"+p), t0)
			m.Receive(d, msgReady, &hellopicsv1.Ready{Role: roleDataPB, PairId: p}, t0)
			starts = append(starts, m.Receive(c, msgReady, &hellopicsv1.Ready{Role: roleCtrlPB, PairId: p}, t0)...)
		}
		last := map[string]time.Time{}
		instants := map[time.Duration]bool{}
		back := func(outs []Output, at time.Time) {
			for _, o := range outs {
				ev, ok := o.(Event)
				if !ok || ev.Kind != EventHelloSent {
					continue
				}
				if prev, ok := last[ev.PairID]; ok {
					if gap := at.Sub(prev); gap < testInterval*9/10 || gap > testInterval*11/10 {
						t.Fatalf("spread=%v: %s: gap %v between two hellos", spread, ev.PairID, gap)
					}
				}
				last[ev.PairID] = at
				instants[at.Sub(t0)%testInterval] = true
				// It comes back at once, from the last hop.
				p := m.pairs[ev.PairID]
				hop := p.data.session
				_, dir, _ := m.cycle.InFlight(p.id)
				if dir == dirDC {
					hop = p.ctrl.session
				}
				m.Receive(hop, msgHello, &hellopicsv1.Hello{Seq: ev.Seq, Direction: dir, Epoch: 1, PairId: ev.PairID}, at)
			}
		}
		back(starts, t0)
		for round := range 12 {
			instants = map[time.Duration]bool{}
			for {
				at, ok := m.NextDeadline()
				if !ok {
					t.Fatal("no deadline with cycles running")
				}
				if at.After(t0.Add(time.Duration(round+1) * testInterval * 11 / 10)) {
					break
				}
				back(m.Tick(at), at)
			}
		}
		for _, p := range m.Pairs() {
			if c := p.GetCounters(); c.GetMissed() != 0 || c.GetOutOfOrder() != 0 {
				t.Fatalf("spread=%v: %s missed %d, out of order %d", spread, p.GetPairId(), c.GetMissed(), c.GetOutOfOrder())
			}
		}
		// In the last round: distinct instants within the interval.
		if !spread && len(instants) > 1 {
			t.Fatalf("without spreading: hellos at %d instants of the interval, want 1 (lock-step)", len(instants))
		}
		if spread && len(instants) < n/2 {
			t.Fatalf("spread: hellos at only %d instants of the interval for %d pairs", len(instants), n)
		}
	}
}
