package handshake

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

func startTrio(t *testing.T) *netw {
	t.Helper()
	w := newNet(t)
	w.addTrio()
	for _, name := range []string{"m", "c1", "d1"} {
		w.start(name)
	}
	w.expectHealthy("m", "p1", 2)
	return w
}

// holdHello returns a hold function that holds back the hello numbered
// seq on the hop from -> to (or every hop if either is "").
func holdHello(seq uint64, from, to string) func(a, b *node, t hellopicsv1.MsgType, m proto.Message) bool {
	return func(a, b *node, t hellopicsv1.MsgType, m proto.Message) bool {
		return t == hellopicsv1.MsgType_MSG_TYPE_HELLO && m.(*hellopicsv1.Hello).GetSeq() == seq &&
			(from == "" || a.name == from) && (to == "" || b.name == to)
	}
}

func TestMissedAndOutOfOrder(t *testing.T) {
	for _, hop := range [][2]string{{"m", "c1"}, {"c1", "d1"}, {"d1", "m"}, {"m", "d1"}, {"d1", "c1"}, {"c1", "m"}} {
		t.Run(hop[0]+"-"+hop[1], func(t *testing.T) {
			w := startTrio(t)
			// Hold each following hello until one travels the chosen hop.
			var seq uint64
			for i := 0; i < 2 && len(w.held) == 0; i++ {
				seq = w.nodes["m"].mgmt.NextSeq()
				w.hold = holdHello(seq, hop[0], hop[1])
				w.advance(testInterval)
			}
			if len(w.held) == 0 {
				t.Fatalf("no hello travelled %v", hop)
			}
			w.hold = nil
			before := w.counters("m", "p1")
			// The next hello is due: the held one is missed.
			w.advance(testInterval)
			c := w.counters("m", "p1")
			if c.GetMissed() != before.GetMissed()+1 || c.GetOutOfOrder() != before.GetOutOfOrder() {
				t.Fatalf("after the miss: %v -> %v", before, c)
			}
			// It comes back late: out of order, and the cycle carries on.
			w.release()
			c = w.counters("m", "p1")
			if c.GetOutOfOrder() != before.GetOutOfOrder()+1 {
				t.Fatalf("after the late return: %v -> %v", before, c)
			}
			if es := w.eventsOf("m", EventHelloOutOfOrder); len(es) != 1 || es[0].Seq != seq {
				t.Fatalf("out-of-order events %v, want one for %d", es, seq)
			}
			w.expectHealthy("m", "p1", 3)
		})
	}
}

func TestAlternateDirections(t *testing.T) {
	w := startTrio(t)
	var path []string
	w.hold = func(a, b *node, typ hellopicsv1.MsgType, m proto.Message) bool {
		if typ == hellopicsv1.MsgType_MSG_TYPE_HELLO {
			h := m.(*hellopicsv1.Hello)
			path = append(path, fmt.Sprintf("%d %s %s->%s", h.GetSeq(), h.GetDirection(), a.name, b.name))
		}
		return false
	}
	w.advance(2 * testInterval)
	ctrlFirst := func(seq uint64) []string {
		d := hellopicsv1.Direction_DIRECTION_MGMT_CTRL_DATA
		return []string{
			fmt.Sprintf("%d %s m->c1", seq, d), fmt.Sprintf("%d %s c1->d1", seq, d), fmt.Sprintf("%d %s d1->m", seq, d)}
	}
	dataFirst := func(seq uint64) []string {
		d := hellopicsv1.Direction_DIRECTION_MGMT_DATA_CTRL
		return []string{
			fmt.Sprintf("%d %s m->d1", seq, d), fmt.Sprintf("%d %s d1->c1", seq, d), fmt.Sprintf("%d %s c1->m", seq, d)}
	}
	// One pair, no losses: odd numbers go ctrl first, even ones data first.
	var first uint64
	fmt.Sscan(path[0], &first)
	want := append(ctrlFirst(first), dataFirst(first+1)...)
	if first%2 == 0 {
		want = append(dataFirst(first), ctrlFirst(first+1)...)
	}
	if fmt.Sprint(path) != fmt.Sprint(want) {
		t.Fatalf("path\n%v\nwant\n%v", path, want)
	}
	// And the cycle starts ctrl first.
	sent := w.eventsOf("m", EventHelloSent)
	if sent[0].Seq != 1 || sent[0].Message != hellopicsv1.Direction_DIRECTION_MGMT_CTRL_DATA.String() {
		t.Fatalf("first hello %v", sent[0])
	}
}

func TestMultiplePairs(t *testing.T) {
	w := newNet(t)
	w.addMgmt("m", MgmtConfig{Epoch: 1})
	orders := permutations([]string{"c", "d"})
	for i := 1; i <= 4; i++ {
		w.addCtrl(fmt.Sprintf("c%d", i), fmt.Sprintf("p%d", i), "m")
		w.addData(fmt.Sprintf("d%d", i), fmt.Sprintf("p%d", i), "m")
	}
	w.start("m")
	for i := 1; i <= 4; i++ {
		for _, r := range orders[i%2] {
			w.start(fmt.Sprintf("%s%d", r, i))
			w.advance(testInterval / 4)
		}
	}
	for i := 1; i <= 4; i++ {
		w.expectHealthy("m", fmt.Sprintf("p%d", i), 2)
	}
	// Losing one pair's data leaves the others alone.
	w.kill("d2")
	w.advance(3 * testInterval)
	for _, p := range w.nodes["m"].mgmt.Pairs() {
		if p.GetCycleRunning() != (p.GetPairId() != "p2") {
			t.Fatalf("pair %s running=%v", p.GetPairId(), p.GetCycleRunning())
		}
		if p.GetCounters().GetMissed() != 0 || p.GetCounters().GetOutOfOrder() != 0 {
			t.Fatalf("pair %s counters %v", p.GetPairId(), p.GetCounters())
		}
	}
	if es := w.eventsOf("m", EventCycleStopped); len(es) != 1 || es[0].PairID != "p2" {
		t.Fatalf("cycle_stopped events %v", es)
	}
	w.start("d2")
	for i := 1; i <= 4; i++ {
		w.expectHealthy("m", fmt.Sprintf("p%d", i), 2)
	}
	// Hello numbers are shared by the pairs: the harness checked they only
	// grow; here check no pair reused one.
	seen := map[uint64]string{}
	for _, e := range w.eventsOf("m", EventHelloSent) {
		if p, dup := seen[e.Seq]; dup {
			t.Fatalf("hello %d sent to %s and %s", e.Seq, p, e.PairID)
		}
		seen[e.Seq] = e.PairID
	}
}

// TestRestartedComponentRedoesReady checks that a restarted data does not
// inherit its predecessor's readiness: until its own Ready arrives the
// cycle stays stopped.
func TestRestartedComponentRedoesReady(t *testing.T) {
	for _, victim := range []string{"c1", "d1"} {
		t.Run(victim, func(t *testing.T) {
			w := startTrio(t)
			w.hold = func(a, b *node, typ hellopicsv1.MsgType, _ proto.Message) bool {
				return typ == hellopicsv1.MsgType_MSG_TYPE_READY && a.name == victim && b.name == "m"
			}
			w.restart(victim)
			w.advance(3 * testInterval)
			p := w.pair("m", "p1")
			if p.GetCycleRunning() {
				t.Fatalf("cycle runs before %s's Ready", victim)
			}
			st := p.GetData()
			if victim == "c1" {
				st = p.GetCtrl()
			}
			if st.GetState() != hellopicsv1.ComponentState_COMPONENT_STATE_IDENTIFIED || st.GetInstance() != victim+"-2" {
				t.Fatalf("restarted %s: %v", victim, st)
			}
			w.hold = nil
			w.release()
			w.expectHealthy("m", "p1", 3)
		})
	}
}

// TestFailover moves mastership from m1 to m2: the components are
// redirected, redo Identify and Ready only, and the hello numbers carry on
// from m1's.
func TestFailover(t *testing.T) {
	w := newNet(t)
	w.addMgmt("m1", MgmtConfig{Epoch: 1})
	w.addMgmt("m2", MgmtConfig{Epoch: 1, Backup: true, MasterAddr: "m1"})
	w.addCtrl("c1", "p1", "m1")
	w.addData("d1", "p1", "m2") // data first meets the backup
	for _, name := range []string{"m1", "m2", "c1", "d1"} {
		w.start(name)
	}
	w.expectHealthy("m1", "p1", 3)
	if len(w.eventsOf("d1", EventRedirect)) != 1 || len(w.eventsOf("m2", EventRedirect)) != 1 {
		t.Fatalf("data was not redirected:\n%s", w.dump())
	}
	dials := len(w.eventsOf("c1", EventUp))
	old := w.counters("m1", "p1")

	// Failover: m1 steps down, m2 takes over with a higher epoch and m1's
	// registry.
	m1, m2 := w.nodes["m1"], w.nodes["m2"]
	if err := m2.mgmt.Restore(m1.mgmt.Snapshot()); err != nil {
		t.Fatal(err)
	}
	w.apply(m2, m2.mgmt.SetMastership(true, 2, "", w.now))
	w.apply(m1, m1.mgmt.SetMastership(false, 2, "m2", w.now))
	w.expectHealthy("m2", "p1", 3)
	if got := len(w.eventsOf("c1", EventUp)); got != dials+1 {
		t.Fatalf("ctrl saw %d connections after failover, want only the new mgmt one:\n%s", got-dials, w.dump())
	}
	if len(w.eventsOf("d1", EventPeer)) != 1 {
		t.Fatalf("data dialled ctrl again:\n%s", w.dump())
	}
	c := w.counters("m2", "p1")
	if c.GetSent() < old.GetSent()+3 || c.GetLastSeq() <= old.GetLastSeq() {
		t.Fatalf("counters did not carry on: %v then %v", old, c)
	}
	if w.nodes["c1"].ctrl.Epoch() != 2 || w.nodes["d1"].data.Epoch() != 2 {
		t.Fatalf("epochs %d %d", w.nodes["c1"].ctrl.Epoch(), w.nodes["d1"].data.Epoch())
	}
	if m1.mgmt.Pairs()[0].GetCycleRunning() {
		t.Fatal("m1 still runs the cycle")
	}

	// m1 restarts thinking it is master with the old epoch: the
	// components' fence refuses it.
	w.kill("m1")
	delete(w.snapshots, "m1")
	m1.mgmtCfg = MgmtConfig{Epoch: 1}
	w.start("m1")
	for _, name := range []string{"c1", "d1"} {
		w.nodes[name].mgmtAddr = "m1"
	}
	w.cut("m2", "c1")
	w.cut("m2", "d1")
	w.advance(3 * testInterval)
	if len(w.eventsOf("m1", EventRejected)) < 2 || w.pair("m1", "p1").GetCycleRunning() {
		t.Fatalf("deposed m1 accepted components:\n%s", w.dump())
	}
}

func TestRedirectWithoutMaster(t *testing.T) {
	w := newNet(t)
	w.addMgmt("m", MgmtConfig{Epoch: 3, Backup: true})
	w.addCtrl("c1", "p1", "m")
	w.start("m")
	w.start("c1")
	w.step(3)
	es := w.eventsOf("c1", EventRedirect)
	if len(es) != 1 || es[0].Epoch != 3 {
		t.Fatalf("redirect events %v\n%s", es, w.dump())
	}
	if w.nodes["c1"].mgmtAddr != "m" {
		t.Fatalf("ctrl switched to %q", w.nodes["c1"].mgmtAddr)
	}
}
