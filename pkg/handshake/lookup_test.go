package handshake

import (
	"slices"
	"testing"
)

// TestMgmtLookups: Component, Session and ReadyPairs follow the
// registry: identified sessions only, the current one of each component,
// and the pairs whose cycle runs.
func TestMgmtLookups(t *testing.T) {
	m := runningMgmt(t)
	m.SessionUp(3, "10.0.0.3:3333", t0)
	if _, _, ok := m.Component(3); ok {
		t.Fatal("an unidentified session names a component")
	}
	if _, _, ok := m.Component(99); ok {
		t.Fatal("an unknown session names a component")
	}
	if p, r, ok := m.Component(1); !ok || p != "p1" || r != roleCtrlPB {
		t.Fatalf("Component(1) = %q %v %v", p, r, ok)
	}
	if p, r, ok := m.Component(2); !ok || p != "p1" || r != roleDataPB {
		t.Fatalf("Component(2) = %q %v %v", p, r, ok)
	}
	if id, ok := m.Session("p1", roleDataPB); !ok || id != 2 {
		t.Fatalf("Session(p1, data) = %d %v", id, ok)
	}
	if _, ok := m.Session("p2", roleDataPB); ok {
		t.Fatal("a session for an unknown pair")
	}
	if _, ok := m.Session("p1", 0); ok {
		t.Fatal("a session for no role")
	}
	if got := m.ReadyPairs(); !slices.Equal(got, []string{"p1"}) {
		t.Fatalf("ReadyPairs = %v", got)
	}

	// A second pair, identified but not ready, is not listed.
	m.Receive(3, msgID, ctrlID("p2", "c-2"), t0)
	if p, _, ok := m.Component(3); !ok || p != "p2" {
		t.Fatalf("Component(3) = %q %v", p, ok)
	}
	if got := m.ReadyPairs(); !slices.Equal(got, []string{"p1"}) {
		t.Fatalf("ReadyPairs with p2 not ready = %v", got)
	}

	// The same ctrl instance on a new session supersedes the old one.
	m.SessionUp(4, "10.0.0.1:1112", t0)
	m.Receive(4, msgID, ctrlID("p1", "c-1"), t0)
	if _, _, ok := m.Component(1); ok {
		t.Fatal("a superseded session still names its component")
	}
	if id, ok := m.Session("p1", roleCtrlPB); !ok || id != 4 {
		t.Fatalf("Session(p1, ctrl) = %d %v, want the new session", id, ok)
	}
	if got := m.ReadyPairs(); len(got) != 0 {
		t.Fatalf("ReadyPairs after a component was replaced = %v", got)
	}

	// A lost session is gone from every lookup.
	m.SessionDown(2, "gone", t0)
	if _, _, ok := m.Component(2); ok {
		t.Fatal("a lost session names a component")
	}
	if _, ok := m.Session("p1", roleDataPB); ok {
		t.Fatal("a lost component has a session")
	}
}
