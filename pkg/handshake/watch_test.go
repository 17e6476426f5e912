package handshake

import (
	"testing"
	"time"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

func elected(outs []Output) (to []SessionID) {
	for _, o := range outs {
		if s, ok := o.(Send); ok && s.Type == hellopicsv1.MsgType_MSG_TYPE_ELECTED {
			to = append(to, s.Session)
		}
	}
	return to
}

// TestWatchSessionHearsElection: a backup accepts a watch Identify without
// holding or redirecting it, keeps it past the identify timeout, and
// sends Elected on it when it becomes master; a newer watch of the same
// pair and role supersedes the older.
func TestWatchSessionHearsElection(t *testing.T) {
	now := time.Unix(1000, 0)
	m, err := NewMgmt(MgmtConfig{HelloInterval: time.Second, Epoch: 3, Backup: true, MasterAddr: "198.18.0.1:7300", HoldWithoutMaster: true})
	if err != nil {
		t.Fatal(err)
	}
	w := &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_CTRL, PairId: "p1", Instance: "i1", DataAddr: "198.18.0.9:7301", Watch: true}
	m.SessionUp(1, "198.18.0.9:5000", now)
	for _, o := range m.Receive(1, hellopicsv1.MsgType_MSG_TYPE_ID, w, now) {
		if _, ok := o.(Close); ok {
			t.Fatalf("a backup closed a watch session: %+v", o)
		}
		if s, ok := o.(Send); ok {
			t.Fatalf("a backup answered a watch identify: %+v", s)
		}
	}
	if m.Watchers() != 1 {
		t.Fatalf("%d watchers, want 1", m.Watchers())
	}
	for _, o := range m.Tick(now.Add(time.Hour)) {
		if _, ok := o.(Close); ok {
			t.Fatal("the identify timeout closed a watch session")
		}
	}
	if got := elected(m.SetMastership(false, 3, "198.18.0.1:7300", now)); len(got) != 0 {
		t.Fatalf("Elected sent while still backup: %v", got)
	}
	if got := elected(m.SetMastership(true, 4, "", now)); len(got) != 1 || got[0] != 1 {
		t.Fatalf("Elected to %v, want [1]", got)
	}
	if got := elected(m.SetMastership(true, 4, "", now)); len(got) != 0 {
		t.Fatalf("Elected again with nothing new: %v", got)
	}
	// A newer watch session supersedes the first.
	m.SessionUp(2, "198.18.0.9:5001", now)
	var closed bool
	for _, o := range m.Receive(2, hellopicsv1.MsgType_MSG_TYPE_ID, w, now) {
		if c, ok := o.(Close); ok && c.Session == 1 {
			closed = true
		}
	}
	if !closed || m.Watchers() != 1 {
		t.Fatalf("superseded closed=%v watchers=%d", closed, m.Watchers())
	}
	// Nothing registered: no pair in the registry.
	if len(m.Pairs()) != 0 {
		t.Fatalf("a watch session registered a pair: %v", m.Pairs())
	}
	// A watch Identify wrong in itself is refused.
	m.SessionUp(3, "198.18.0.9:5002", now)
	bad := &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_MGMT, PairId: "p1", Instance: "i1", Watch: true}
	var rejected bool
	for _, o := range m.Receive(3, hellopicsv1.MsgType_MSG_TYPE_ID, bad, now) {
		if s, ok := o.(Send); ok && s.Type == hellopicsv1.MsgType_MSG_TYPE_REJECT {
			rejected = true
		}
	}
	if !rejected {
		t.Fatal("a watch identify of role mgmt was not rejected")
	}
}

// TestMasterElectedFollowsOnlyNewerEpochs: a component leaves its mgmt
// session for an Elected above every epoch it has seen, and for nothing
// else.
func TestMasterElectedFollowsOnlyNewerEpochs(t *testing.T) {
	c, err := NewCtrl(CtrlConfig{PairID: "p1", Instance: "i", DataAddr: "198.18.0.9:7301"})
	if err != nil {
		t.Fatal(err)
	}
	c.MgmtUp(7)
	c.Receive(7, hellopicsv1.MsgType_MSG_TYPE_REDIRECT, &hellopicsv1.Redirect{MasterAddr: "198.18.0.1:7300", Epoch: 5})
	c.MgmtUp(8)
	for _, e := range []uint64{4, 5, EpochLimit} {
		for _, o := range c.MasterElected("198.18.0.2:7300", e) {
			if _, ok := o.(SwitchMgmt); ok {
				t.Fatalf("switched for epoch %d (fence at 5)", e)
			}
		}
	}
	var sw, cl bool
	for _, o := range c.MasterElected("198.18.0.2:7300", 6) {
		switch o := o.(type) {
		case SwitchMgmt:
			sw = o.Addr == "198.18.0.2:7300" && o.Epoch == 6
		case Close:
			cl = o.Session == 8
		}
	}
	if !sw || !cl || c.Epoch() != 6 {
		t.Fatalf("switch=%v close=%v epoch=%d, want a switch to epoch 6 closing session 8", sw, cl, c.Epoch())
	}
	if !c.WatchIdentify().GetWatch() {
		t.Fatal("WatchIdentify is not marked watch")
	}
}

// TestLateWatchHearsElection: a watch session that opens to a master
// after it was elected, from a component that knows an older epoch,
// hears Elected at once; one that knows the master's epoch does not.
func TestLateWatchHearsElection(t *testing.T) {
	now := time.Unix(1000, 0)
	m, err := NewMgmt(MgmtConfig{HelloInterval: time.Second, Epoch: 5})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		epoch uint64
		want  int
	}{{4, 1}, {5, 0}, {0, 1}} {
		id := SessionID(i + 1)
		m.SessionUp(id, "198.18.0.9:5000", now)
		w := &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_CTRL, PairId: "p1", Instance: "i1", DataAddr: "198.18.0.9:7301", Watch: true, Epoch: c.epoch}
		if got := elected(m.Receive(id, hellopicsv1.MsgType_MSG_TYPE_ID, w, now)); len(got) != c.want {
			t.Errorf("watch at epoch %d to a master at 5: %d Elected, want %d", c.epoch, len(got), c.want)
		}
	}
}
