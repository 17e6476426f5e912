package election

import (
	"errors"
	"fmt"
	"testing"
	"time"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// The fault state (tracked check of weight 0 failing): a faulty instance
// is never master, whatever its priority, and its peers do not wait for
// it.

// neverMaster runs the sim for d and fails if id is master at any step.
func neverMaster(t *testing.T, s *sim, id string, d time.Duration) {
	t.Helper()
	if took, ok := s.runUntil(d, func() bool {
		n := s.nodes[id]
		return !n.down && n.e.Role() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER
	}); ok {
		t.Fatalf("%s faulty but master after %v: %s", id, took, s.describe())
	}
}

// TestFaultStepsDownAndComesBack: a faulty master steps down at once
// and the backup takes over within a few heartbeats, even a NoPreempt
// one (it claims a masterless cluster, it does not preempt); out of the
// fault state a, the better instance, preempts b again (b's NoPreempt
// only stops b itself from preempting).
func TestFaultStepsDownAndComesBack(t *testing.T) {
	for _, nopreempt := range []bool{false, true} {
		t.Run(fmt.Sprintf("b_nopreempt=%v", nopreempt), func(t *testing.T) {
			s := newSim(t, 7, nodeSpec{id: "a", priority: 200}, nodeSpec{id: "b", priority: 100, nopreempt: nopreempt})
			if m := s.mustConverge(time.Second); m != "a" {
				t.Fatalf("master = %s, want a", m)
			}
			a := s.nodes["a"]
			a.e.SetFault(s.now, true, "check failed")
			s.process(a)
			if a.e.Role() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER || !a.e.Fault() {
				t.Fatalf("a still master (or not faulty) right after SetFault: %s", s.describe())
			}
			if hb := a.e.Heartbeat(); !hb.GetFault() || hb.GetPriority() != 0 {
				t.Fatalf("heartbeat of a faulty instance: fault=%v priority=%d, want true, 0", hb.GetFault(), hb.GetPriority())
			}
			took, ok := s.runUntil(time.Second, func() bool { return s.master() == "b" })
			if !ok || took > 3*hb {
				t.Fatalf("b master after %v (ok=%v), want within %v: %s", took, ok, 3*hb, s.describe())
			}
			neverMaster(t, s, "a", 3*time.Second)
			if st := s.nodes["b"].e.Status(); !st.Peers[0].GetFault() {
				t.Fatal("b's status does not show a faulty")
			}
			a.e.SetFault(s.now, false, "")
			s.process(a)
			if _, ok := s.runUntil(2*time.Second, func() bool { return s.master() == "a" }); !ok {
				t.Fatalf("a out of the fault state did not preempt: %s", s.describe())
			}
			s.mustConverge(time.Second)
		})
	}
}

// TestFaultNeverClaimsAlone: a faulty instance whose peers are all dead
// stays without mastership (keepalived's FAULT holds no VIP), and
// claims once healthy.
func TestFaultNeverClaimsAlone(t *testing.T) {
	s := newSim(t, 8, nodeSpec{id: "a", priority: 200}, nodeSpec{id: "b", priority: 100})
	s.mustConverge(time.Second)
	a := s.nodes["a"]
	a.e.SetFault(s.now, true, "check failed")
	s.process(a)
	s.mustConverge(time.Second)
	s.crash("b")
	neverMaster(t, s, "a", 5*time.Second)
	if a.e.Role() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		t.Fatal("a master")
	}
	a.e.SetFault(s.now, false, "")
	s.process(a)
	if _, ok := s.runUntil(time.Second, func() bool { return s.master() == "a" }); !ok {
		t.Fatalf("a healthy and alone did not claim: %s", s.describe())
	}
}

// TestFaultFromStart: an instance faulty before its first tick never
// claims, and the others do not wait for it although its configured
// priority is the highest: c claims within the startup hold and a dead
// interval or so, not after the two dead intervals of the fallback.
func TestFaultFromStart(t *testing.T) {
	s := newSim(t, 9, nodeSpec{id: "a", priority: 200, late: true}, nodeSpec{id: "b", priority: 100}, nodeSpec{id: "c", priority: 150})
	// Started faulty, the way the shell does it after its first checks.
	n := s.nodes["a"]
	e, err := New(n.cfg, n.store)
	if err != nil {
		t.Fatal(err)
	}
	e.SetFault(s.now, true, "first check failed")
	n.e, n.down = e, false
	s.process(n)
	if m := s.mustConverge(2 * time.Second); m != "c" {
		t.Fatalf("master = %s, want c (a is faulty): %s", m, s.describe())
	}
	neverMaster(t, s, "a", 3*time.Second)
}

// TestFaultRefusesHandover: a switchover to a faulty instance is
// refused, one without a target picks the best healthy backup, and a
// Handover reaching a faulty instance is not taken.
func TestFaultRefusesHandover(t *testing.T) {
	s := newSim(t, 10, nodeSpec{id: "a", priority: 200}, nodeSpec{id: "b", priority: 150}, nodeSpec{id: "c", priority: 100})
	s.mustConverge(time.Second)
	b := s.nodes["b"]
	b.e.SetFault(s.now, true, "check failed")
	s.process(b)
	s.run(100 * time.Millisecond)
	a := s.nodes["a"]
	if _, err := a.e.Switchover(s.now, "b"); err == nil {
		t.Fatal("switchover to a faulty instance accepted")
	}
	target, err := a.e.Switchover(s.now, "")
	if err != nil || target != "c" {
		t.Fatalf("switchover picked %q (%v), want c", target, err)
	}
	s.process(a)
	if _, ok := s.runUntil(2*time.Second, func() bool { return s.master() == "c" }); !ok {
		t.Fatalf("no handover to c: %s", s.describe())
	}
	// A Handover to a faulty instance (as from a master that did not
	// hear the fault yet) is ignored.
	next, _ := b.e.nextOwnEpoch(b.e.slot)
	b.e.lastMaster, b.e.lastMasterEpoch = "c", b.e.Epoch()
	if err := b.e.Step(s.now, "c", &hellopicsv1.Handover{Epoch: next, FromId: "c"}); err != nil && !errors.Is(err, ErrRefused) {
		t.Fatal(err)
	}
	if b.e.Role() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		t.Fatal("faulty b took a handover")
	}
}
