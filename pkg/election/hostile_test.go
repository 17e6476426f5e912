package election

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// masterAt returns instance a of members {a, b} as master at an epoch
// of its own, having followed nothing: b is alive and a backup.
func masterAt(t *testing.T, persisted uint64) (*Election, time.Time) {
	t.Helper()
	cfg := DefaultConfig("a", 200, Peer{ID: "b", Addr: "b:1"})
	cfg.ComponentAddr = "127.0.0.1:7300"
	e, err := New(cfg, persisted)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	e.Tick(now)
	mustStep(t, e, now, "b", &hellopicsv1.Heartbeat{Id: "b", Priority: 100, Epoch: persisted})
	now = now.Add(time.Second)
	mustStep(t, e, now, "b", &hellopicsv1.Heartbeat{Id: "b", Priority: 100, Epoch: persisted})
	e.Tick(now)
	if e.Role() != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		t.Fatalf("a is %v, want master", e.Role())
	}
	e.Ready()
	return e, now
}

func mustStep(t *testing.T, e *Election, now time.Time, from string, m proto.Message) {
	t.Helper()
	if err := e.Step(now, from, m); err != nil {
		t.Fatalf("Step(%s, %v): %v", from, m, err)
	}
}

// refused asserts that Step refuses m for reason and changes nothing
// that the status shows.
func refused(t *testing.T, e *Election, now time.Time, from string, m proto.Message, reason string) {
	t.Helper()
	before := e.Status()
	err := e.Step(now, from, m)
	var r *Refusal
	if !errors.As(err, &r) || !errors.Is(err, ErrRefused) {
		t.Fatalf("Step(%s, %v) = %v, want a refusal (%s)", from, m, err, reason)
	}
	if r.Reason != reason {
		t.Fatalf("refusal reason %q (%v), want %q", r.Reason, err, reason)
	}
	if after := e.Status(); !sameStatus(before, after) {
		t.Fatalf("a refused message changed the state:\n before %+v\n after  %+v", before, after)
	}
	if rd := e.Ready(); rd.PersistEpoch != 0 || len(rd.Events) != 0 {
		t.Fatalf("a refused message asked for persist %d, events %v", rd.PersistEpoch, rd.Events)
	}
}

func sameStatus(a, b Status) bool {
	if a.ID != b.ID || a.Role != b.Role || a.Epoch != b.Epoch || a.MasterID != b.MasterID ||
		a.SyncVersion != b.SyncVersion || len(a.Peers) != len(b.Peers) {
		return false
	}
	for i := range a.Peers {
		if !proto.Equal(a.Peers[i], b.Peers[i]) {
			return false
		}
	}
	return true
}

func TestHostileHeartbeats(t *testing.T) {
	e, now := masterAt(t, 6)
	ep := e.Epoch()
	huge := uint64(1<<64 - 1)
	refused(t, e, now, "b", &hellopicsv1.Heartbeat{Id: "b", Epoch: huge, MasterId: "b", ComponentAddr: "10.0.0.9:1"}, "epoch_range")
	refused(t, e, now, "b", &hellopicsv1.Heartbeat{Id: "b", Epoch: 1 << 63}, "epoch_range")
	refused(t, e, now, "b", &hellopicsv1.Heartbeat{Id: "b", Epoch: ep + DefaultMaxEpochJump + 1, MasterId: "b"}, "epoch_jump")
	refused(t, e, now, "b", &hellopicsv1.Heartbeat{Id: "c", Epoch: ep}, "field")
	refused(t, e, now, "b", &hellopicsv1.Heartbeat{Id: "b", Epoch: ep, MasterId: "stranger"}, "field")
	refused(t, e, now, "b", &hellopicsv1.Heartbeat{Id: "b", Epoch: ep, ComponentAddr: strings.Repeat("x", MaxAddrLen+1)}, "field")
	refused(t, e, now, "b", &hellopicsv1.Heartbeat{Id: "b", Epoch: ep, ComponentAddr: "no port"}, "field")
	if err := e.Step(now, "stranger", &hellopicsv1.Heartbeat{Id: "stranger", Epoch: huge}); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("unknown sender: %v", err)
	}
	if e.Role() != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER || e.Epoch() != ep {
		t.Fatalf("after the attack: role %v epoch %d, want master at %d", e.Role(), e.Epoch(), ep)
	}
	// Within the window a member's higher epoch still fences us: that
	// is how a paused master learns it was replaced.
	mustStep(t, e, now, "b", &hellopicsv1.Heartbeat{Id: "b", Epoch: ep + 5, MasterId: "b", ComponentAddr: "127.0.0.1:7301"})
	if e.Role() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER || e.Epoch() != ep+5 {
		t.Fatalf("a fenced master: role %v epoch %d", e.Role(), e.Epoch())
	}
}

func TestMaxEpochJumpConfig(t *testing.T) {
	cfg := DefaultConfig("a", 200, Peer{ID: "b"})
	cfg.MaxEpochJump = 10
	e, err := New(cfg, 4)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	refused(t, e, now, "b", &hellopicsv1.Heartbeat{Id: "b", Epoch: 15, MasterId: "b"}, "epoch_jump")
	mustStep(t, e, now, "b", &hellopicsv1.Heartbeat{Id: "b", Epoch: 14, MasterId: "b"})
	if e.Epoch() != 14 || e.Master() != "b" {
		t.Fatalf("epoch %d master %q, want 14 b", e.Epoch(), e.Master())
	}
}

// followingA returns instance b of members {a, b, c}, following a at
// epoch 3, with c a backup like b.
func followingA(t *testing.T) (*Election, time.Time) {
	t.Helper()
	e, err := New(DefaultConfig("b", 100, Peer{ID: "a"}, Peer{ID: "c"}), 0)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	e.Tick(now)
	mustStep(t, e, now, "a", &hellopicsv1.Heartbeat{Id: "a", Priority: 200, Epoch: 3, MasterId: "a"})
	mustStep(t, e, now, "c", &hellopicsv1.Heartbeat{Id: "c", Priority: 50, Epoch: 3, MasterId: "a"})
	if e.Master() != "a" {
		t.Fatalf("master %q, want a", e.Master())
	}
	e.Ready()
	return e, now
}

func TestHandoverOnlyFromMaster(t *testing.T) {
	e, now := followingA(t)
	next := NextEpoch(3, 1, 3) // b's slot among a, b, c
	// c is a member but not the master: its handover is refused.
	refused(t, e, now, "c", &hellopicsv1.Handover{Epoch: next, FromId: "c"}, "handover")
	// A handover that says it comes from someone else.
	refused(t, e, now, "a", &hellopicsv1.Handover{Epoch: next, FromId: "c"}, "field")
	// The master's own handover, at an epoch that is not our next one.
	mustStep(t, e, now, "a", &hellopicsv1.Handover{Epoch: next + 3, FromId: "a"})
	if e.Role() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		t.Fatal("took a handover at an epoch that is not our next")
	}
	// The master's handover, as it sends it: its heartbeat without a
	// master first, then the Handover.
	mustStep(t, e, now, "a", &hellopicsv1.Heartbeat{Id: "a", Priority: 200, Epoch: 3})
	mustStep(t, e, now, "a", &hellopicsv1.Handover{Epoch: next, FromId: "a"})
	if e.Role() != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER || e.Epoch() != next {
		t.Fatalf("after the master's handover: %v at %d", e.Role(), e.Epoch())
	}
	// The same handover again, resent with the old master's heartbeats:
	// not an attack, not an error.
	mustStep(t, e, now, "a", &hellopicsv1.Handover{Epoch: next, FromId: "a"})
}

func TestSyncOnlyFromMaster(t *testing.T) {
	e, now := followingA(t)
	forged := &hellopicsv1.SyncUpdate{Epoch: 3, Version: 9, Full: true, NextSeq: 1 << 40,
		Pairs: []*hellopicsv1.PairStatus{{PairId: "forged"}}}
	mustStep(t, e, now, "c", forged)
	if rd := e.Ready(); len(rd.Apply) != 0 {
		t.Fatalf("a sync update from a backup was applied: %v", rd.Apply)
	}
	mustStep(t, e, now, "a", forged)
	if rd := e.Ready(); len(rd.Apply) != 1 {
		t.Fatalf("the master's snapshot was not applied: %v", rd.Apply)
	}
	refused(t, e, now, "a", &hellopicsv1.SyncUpdate{Epoch: 1 << 63, Full: true}, "epoch_range")
}

func TestEpochFileOutOfRange(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "epoch")
	if err := os.WriteFile(path, []byte("18446744073709551615\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := LoadEpoch(path); err == nil || !strings.Contains(err.Error(), "beyond the maximum") {
		t.Fatalf("LoadEpoch of 2^64-1 = %d, %v; want an error", n, err)
	}
	if err := SaveEpoch(path, 1<<63); err == nil {
		t.Fatal("SaveEpoch(2^63) succeeded")
	}
	if err := SaveEpoch(path, MaxEpoch); err != nil {
		t.Fatal(err)
	}
	if n, err := LoadEpoch(path); err != nil || n != MaxEpoch {
		t.Fatalf("LoadEpoch = %d, %v", n, err)
	}
	if _, err := New(DefaultConfig("a", 1, Peer{ID: "b"}), 1<<63); err == nil {
		t.Fatal("New accepted a persisted epoch of 2^63")
	}
}

// TestEpochExhausted: an instance whose epoch is at the end of the
// range never wraps to a small epoch; it stays without mastership and
// says why, once.
func TestEpochExhausted(t *testing.T) {
	e, err := New(DefaultConfig("a", 200, Peer{ID: "b"}), MaxEpoch-1)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	var reasons []string
	for i := range 20 {
		e.Tick(now.Add(time.Duration(i) * time.Second))
		for _, ev := range e.Ready().Events {
			reasons = append(reasons, ev.Reason)
		}
	}
	if e.Role() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER || e.Epoch() != MaxEpoch-1 {
		t.Fatalf("role %v epoch %d", e.Role(), e.Epoch())
	}
	n := 0
	for _, r := range reasons {
		if strings.Contains(r, "cannot become master") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d 'cannot become master' events, want 1: %q", n, reasons)
	}
}
