package handshake

import (
	"testing"
	"time"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// TestNoCycle: with the machine's cycle off (an application runs it),
// a pair whose components are both ready is reported ready once
// (EventPairReady), is listed as ready, sends no hello, even at a tick
// long after, and is reported lost once when a half goes.
func TestNoCycle(t *testing.T) {
	m, err := NewMgmt(MgmtConfig{Epoch: 3, NoCycle: true})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	var all []Output
	all = append(all, m.SessionUp(1, "c", now)...)
	all = append(all, m.SessionUp(2, "d", now)...)
	all = append(all, m.Receive(1, hellopicsv1.MsgType_MSG_TYPE_ID, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_CTRL, PairId: "p", Instance: "c1", DataAddr: "x:1", Epoch: 3}, now)...)
	all = append(all, m.Receive(2, hellopicsv1.MsgType_MSG_TYPE_ID, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: "p", Instance: "d1", Epoch: 3}, now)...)
	all = append(all, m.Receive(2, hellopicsv1.MsgType_MSG_TYPE_READY, &hellopicsv1.Ready{Role: hellopicsv1.Role_ROLE_DATA, PairId: "p", Epoch: 3}, now)...)
	all = append(all, m.Receive(1, hellopicsv1.MsgType_MSG_TYPE_READY, &hellopicsv1.Ready{Role: hellopicsv1.Role_ROLE_CTRL, PairId: "p", Epoch: 3}, now)...)
	// A second Ready changes nothing.
	all = append(all, m.Receive(1, hellopicsv1.MsgType_MSG_TYPE_READY, &hellopicsv1.Ready{Role: hellopicsv1.Role_ROLE_CTRL, PairId: "p", Epoch: 3}, now)...)
	all = append(all, m.Tick(now.Add(time.Hour))...)
	kinds := map[EventKind]int{}
	for _, o := range all {
		switch o := o.(type) {
		case Send:
			if o.Type == hellopicsv1.MsgType_MSG_TYPE_HELLO {
				t.Fatalf("a hello was sent with the cycle off: %v", o.Msg)
			}
		case Event:
			kinds[o.Kind]++
		}
	}
	if kinds[EventPairReady] != 1 || kinds[EventCycleStarted] != 0 {
		t.Fatalf("events %v: want one pair_ready, no cycle_started", kinds)
	}
	if got := m.ReadyPairs(); len(got) != 1 || got[0] != "p" {
		t.Fatalf("ReadyPairs = %v", got)
	}
	if ps := m.Pairs(); len(ps) != 1 || !ps[0].GetCycleRunning() {
		t.Fatalf("status: %v", ps)
	}
	lost := 0
	for _, o := range m.SessionDown(2, "gone", now) {
		if e, ok := o.(Event); ok && e.Kind == EventPairLost {
			lost++
			if e.Attr("reason") == "" {
				t.Fatalf("pair_lost without a reason: %v", e)
			}
		}
	}
	for _, o := range m.SessionDown(1, "gone", now) {
		if e, ok := o.(Event); ok && e.Kind == EventPairLost {
			lost++
		}
	}
	if lost != 1 || len(m.ReadyPairs()) != 0 {
		t.Fatalf("%d pair_lost events, ready %v; want one, none", lost, m.ReadyPairs())
	}
}
