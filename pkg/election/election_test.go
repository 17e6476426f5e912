package election

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

const hb = 50 * time.Millisecond // the default heartbeat interval

func TestNextEpoch(t *testing.T) {
	tests := []struct{ after, slot, n, want uint64 }{
		{0, 0, 2, 2},
		{0, 1, 2, 1},
		{1, 1, 2, 3},
		{2, 0, 2, 4},
		{3, 0, 2, 4},
		{7, 2, 3, 8},
		{8, 2, 3, 11},
		{0, 0, 1, 1},
		{5, 0, 1, 6},
	}
	for _, tt := range tests {
		if got := NextEpoch(tt.after, tt.slot, tt.n); got != tt.want {
			t.Errorf("NextEpoch(%d, %d, %d) = %d, want %d", tt.after, tt.slot, tt.n, got, tt.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig("a", 100, Peer{ID: "b"})
	tests := []struct {
		name   string
		mutate func(c *Config)
		errHas string
	}{
		{"default", func(c *Config) {}, ""},
		{"no id", func(c *Config) { c.ID = "" }, "ID is empty"},
		{"no peers", func(c *Config) { c.Peers = nil }, "no peers"},
		{"empty peer id", func(c *Config) { c.Peers = []Peer{{}} }, "empty ID"},
		{"peer is self", func(c *Config) { c.Peers = []Peer{{ID: "a"}} }, "duplicate"},
		{"duplicate peer", func(c *Config) { c.Peers = []Peer{{ID: "b"}, {ID: "b"}} }, "duplicate"},
		{"zero interval", func(c *Config) { c.HeartbeatInterval = 0 }, "HeartbeatInterval"},
		{"zero misses", func(c *Config) { c.DeadMisses = 0 }, "DeadMisses"},
		{"negative hold", func(c *Config) { c.StartupHold = -1 }, "StartupHold"},
		{"negative preempt delay", func(c *Config) { c.PreemptDelay = -1 }, "PreemptDelay"},
		{"negative switchover timeout", func(c *Config) { c.SwitchoverTimeout = -1 }, "SwitchoverTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			c.Peers = append([]Peer(nil), good.Peers...)
			tt.mutate(&c)
			err := c.Validate()
			switch {
			case tt.errHas == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.errHas != "" && (err == nil || !strings.Contains(err.Error(), tt.errHas)):
				t.Fatalf("Validate = %v, want an error about %q", err, tt.errHas)
			}
			if _, nerr := New(c, 0); (nerr == nil) != (err == nil) {
				t.Fatalf("New error %v disagrees with Validate %v", nerr, err)
			}
		})
	}
}

func TestElection(t *testing.T) {
	tests := []struct {
		name  string
		nodes []nodeSpec
		want  string
	}{
		{"highest priority of two", []nodeSpec{{id: "a", priority: 100}, {id: "b", priority: 200}}, "b"},
		{"highest priority of three", []nodeSpec{{id: "a", priority: 100}, {id: "b", priority: 200}, {id: "c", priority: 150}}, "b"},
		{"tie broken by id", []nodeSpec{{id: "a", priority: 100}, {id: "c", priority: 100}, {id: "b", priority: 100}}, "c"},
		{"priority beats id", []nodeSpec{{id: "a", priority: 101}, {id: "z", priority: 100}}, "a"},
		{"nopreempt still elects the best at start", []nodeSpec{{id: "a", priority: 100}, {id: "b", priority: 200, nopreempt: true}}, "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSim(t, 1, tt.nodes...)
			if got := s.mustConverge(time.Second); got != tt.want {
				t.Fatalf("master = %s, want %s (%s)", got, tt.want, s.describe())
			}
			// The first election needs no more than the startup hold and
			// one round trip; and it is stable.
			if len(s.owner) != 1 {
				t.Fatalf("%d masterships at startup, want 1: %v", len(s.owner), s.owner)
			}
			s.run(2 * time.Second)
			if !s.converged() || s.master() != tt.want || len(s.owner) != 1 {
				t.Fatalf("not stable: %s, masterships %v", s.describe(), s.owner)
			}
			st := s.nodes[tt.want].e.Status()
			if st.Role != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER || st.MasterID != tt.want || len(st.Peers) != len(tt.nodes)-1 {
				t.Fatalf("master status = %+v", st)
			}
			for _, p := range st.Peers {
				if !p.Alive || p.Epoch != st.Epoch || p.SyncLag != 0 {
					t.Errorf("peer status %v, want alive at epoch %d, in sync", p, st.Epoch)
				}
			}
		})
	}
}

func TestMasterCrashTakeover(t *testing.T) {
	tests := []struct {
		name  string
		nodes []nodeSpec
		next  string
	}{
		{"two", []nodeSpec{{id: "a", priority: 200}, {id: "b", priority: 100}}, "b"},
		{"three", []nodeSpec{{id: "a", priority: 200}, {id: "b", priority: 100}, {id: "c", priority: 150}}, "c"},
	}
	for _, tt := range tests {
		// Crash at every phase of the heartbeat cycle.
		for phase := time.Duration(0); phase < hb; phase += 7 * time.Millisecond {
			t.Run(fmt.Sprintf("%s/%v", tt.name, phase), func(t *testing.T) {
				testCrashAt(t, tt.nodes, tt.next, phase)
			})
		}
	}
}

func testCrashAt(t *testing.T, nodes []nodeSpec, next string, phase time.Duration) {
	s := newSim(t, 2, nodes...)
	if m := s.mustConverge(time.Second); m != "a" {
		t.Fatalf("master = %s, want a", m)
	}
	old := s.nodes["a"].e.Epoch()
	s.run(time.Second + phase)
	s.crash("a")
	took, ok := s.runUntil(time.Second, func() bool { return s.master() != "" })
	if !ok || s.master() != next {
		t.Fatalf("after the crash: %s", s.describe())
	}
	if limit := 4 * hb; took > limit {
		t.Fatalf("takeover took %v, want at most 3 heartbeat intervals plus one (%v)", took, limit)
	}
	if ep := s.nodes[next].e.Epoch(); ep <= old {
		t.Fatalf("new epoch %d not above %d", ep, old)
	}
	s.mustConverge(time.Second)
}

func TestPreemption(t *testing.T) {
	tests := []struct {
		name      string
		nopreempt bool
		delay     time.Duration
		// want: a (the preferred node) is master within
		// [earliest, latest] after it starts; zero latest: never.
		earliest, latest time.Duration
	}{
		{"preempt at once", false, 0, 0, 3 * hb * 2},
		{"preempt after a delay", false, 500 * time.Millisecond, 500 * time.Millisecond, 500*time.Millisecond + 3*hb*2},
		{"nopreempt", true, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSim(t, 3,
				nodeSpec{id: "a", priority: 200, nopreempt: tt.nopreempt, delay: tt.delay, late: true},
				nodeSpec{id: "b", priority: 100})
			if m := s.mustConverge(time.Second); m != "b" {
				t.Fatalf("master = %s, want b", m)
			}
			s.run(time.Second)
			s.start("a")
			took, ok := s.runUntil(3*time.Second, func() bool { return s.master() == "a" })
			if tt.latest == 0 {
				if ok {
					t.Fatalf("a took over after %v despite nopreempt", took)
				}
				if !s.converged() || s.master() != "b" {
					t.Fatalf("want b master: %s", s.describe())
				}
				return
			}
			if !ok || took < tt.earliest || took > tt.latest {
				t.Fatalf("a took over after %v (ok=%v), want within [%v, %v]", took, ok, tt.earliest, tt.latest)
			}
			s.mustConverge(time.Second)
		})
	}
}

func TestPartitionAndHeal(t *testing.T) {
	tests := []struct {
		name  string
		nodes []nodeSpec
		sideA []string
		want  string // master after healing
	}{
		// Both sides elect; on healing the higher epoch wins, then the
		// preferred instance preempts with a fresh, higher epoch.
		{"two, preempt", []nodeSpec{{id: "a", priority: 200}, {id: "b", priority: 100}}, []string{"a"}, "a"},
		// With nopreempt on a, b's higher epoch wins and stays.
		{"two, nopreempt", []nodeSpec{{id: "a", priority: 200, nopreempt: true}, {id: "b", priority: 100}}, []string{"a"}, "b"},
		{"three, master isolated", []nodeSpec{{id: "a", priority: 200}, {id: "b", priority: 100}, {id: "c", priority: 150}}, []string{"a"}, "a"},
		{"three, backup isolated", []nodeSpec{{id: "a", priority: 200}, {id: "b", priority: 100}, {id: "c", priority: 150}}, []string{"b"}, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSim(t, 4, tt.nodes...)
			s.mustConverge(time.Second)
			var sideB []string
			for _, id := range s.order {
				if !contains(tt.sideA, id) {
					sideB = append(sideB, id)
				}
			}
			s.partition(tt.sideA, sideB)
			s.run(time.Second)
			before := s.masters()
			if len(before) != 2 {
				t.Fatalf("during the partition want a master on each side: %s", s.describe())
			}
			if s.nodes[before[0]].e.Epoch() == s.nodes[before[1]].e.Epoch() {
				t.Fatalf("two masters at one epoch: %s", s.describe())
			}
			s.heal()
			s.mustConverge(time.Second)
			// The preferred instance may then preempt: give it time.
			s.run(time.Second)
			if m := s.master(); m != tt.want {
				t.Fatalf("after healing master = %s, want %s", m, tt.want)
			}
			s.run(2 * time.Second)
			if !s.converged() || s.master() != tt.want {
				t.Fatalf("not stable after healing: %s", s.describe())
			}
			// The loser of the heal was fenced and said so.
			fenced := false
			for _, id := range before {
				for _, ev := range s.nodes[id].events {
					fenced = fenced || (ev.Kind == EventSteppedDown && strings.Contains(ev.Reason, "fenced"))
				}
			}
			if !fenced {
				t.Fatalf("no stepped_down(fenced) event after healing")
			}
		})
	}
}

func TestPausedMasterStepsDown(t *testing.T) {
	for _, nopreempt := range []bool{true, false} {
		t.Run(map[bool]string{true: "nopreempt", false: "preempt"}[nopreempt], func(t *testing.T) {
			s := newSim(t, 5,
				nodeSpec{id: "a", priority: 200, nopreempt: nopreempt},
				nodeSpec{id: "b", priority: 100},
				nodeSpec{id: "c", priority: 50})
			if m := s.mustConverge(time.Second); m != "a" {
				t.Fatalf("master = %s", m)
			}
			s.pause("a")
			if _, ok := s.runUntil(time.Second, func() bool { return len(s.masters()) == 2 }); !ok {
				t.Fatalf("no new master while a is paused: %s", s.describe())
			}
			s.run(time.Second)
			newEpoch := s.nodes["b"].e.Epoch()
			s.resume("a")
			// a wakes up still believing it is master; the buffered
			// heartbeats (or the first fresh one) fence it.
			took, ok := s.runUntil(time.Second, func() bool {
				return s.nodes["a"].e.Role() != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER || s.nodes["a"].e.Epoch() > newEpoch
			})
			if !ok || took > hb {
				t.Fatalf("a did not step down within a heartbeat (%v): %s", took, s.describe())
			}
			if !s.hasEvent("a", EventSteppedDown) {
				t.Fatalf("a emitted no stepped_down event")
			}
			want := "b"
			if !nopreempt {
				want = "a"
			}
			s.mustConverge(time.Second)
			s.run(time.Second) // a may preempt after its hold
			if m := s.master(); m != want || !s.converged() {
				t.Fatalf("master = %s, want %s: %s", m, want, s.describe())
			}
		})
	}
}

func TestRestartNeverReusesEpoch(t *testing.T) {
	s := newSim(t, 6, nodeSpec{id: "a", priority: 200}, nodeSpec{id: "b", priority: 100})
	s.mustConverge(time.Second)
	for round := range 5 {
		// Crash the master, let the other take over, bring it back.
		m := s.master()
		s.crash(m)
		s.mustConverge(time.Second)
		s.start(m)
		s.mustConverge(2 * time.Second)
		// Crash everything at once and restart: both come back with
		// their persisted epochs and take only fresh ones.
		if round%2 == 1 {
			s.crash("a")
			s.crash("b")
			s.run(100 * time.Millisecond)
			s.start("b")
			s.start("a")
			s.mustConverge(2 * time.Second)
		}
	}
	// s.check fails the test on any reuse; also check the history grew.
	if len(s.owner) < 8 {
		t.Fatalf("only %d masterships: %v", len(s.owner), s.owner)
	}
	// A restarted machine whose epoch was persisted by another starts
	// above it.
	e, err := New(s.nodes["a"].cfg, 41)
	if err != nil {
		t.Fatal(err)
	}
	e.Tick(t0)
	e.Tick(t0.Add(time.Second))
	if e.Role() != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER || e.Epoch() != 42 {
		t.Fatalf("alone after restart: role %v epoch %d, want master at 42", e.Role(), e.Epoch())
	}
	if rd := e.Ready(); rd.PersistEpoch != 42 {
		t.Fatalf("PersistEpoch = %d, want 42", rd.PersistEpoch)
	}
}

func TestSwitchover(t *testing.T) {
	specs := []nodeSpec{{id: "a", priority: 200}, {id: "b", priority: 100}, {id: "c", priority: 150}}
	tests := []struct {
		name   string
		target string
		want   string
	}{
		{"best backup", "", "c"},
		{"named backup", "b", "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSim(t, 7, specs...)
			s.mustConverge(time.Second)
			old := s.nodes["a"].e.Epoch()
			if s.nodes["a"].e.HandedOver() {
				t.Fatalf("a, master by election, says it was handed over")
			}
			got, err := s.nodes["a"].e.Switchover(s.now, tt.target)
			if err != nil || got != tt.want {
				t.Fatalf("Switchover(%q) = %q, %v; want %q", tt.target, got, err, tt.want)
			}
			s.process(s.nodes["a"])
			// Flush (one update), its ack, the handover: a few one-way
			// latencies, far less than a dead interval.
			took, ok := s.runUntil(time.Second, func() bool { return s.master() == tt.want })
			if !ok || took > 5*s.latency {
				t.Fatalf("handover took %v (ok=%v): %s", took, ok, s.describe())
			}
			// At no step were a and the target both master.
			if n := s.nodes[tt.want]; n.e.Epoch() <= old {
				t.Fatalf("new epoch %d not above %d", n.e.Epoch(), old)
			}
			if !s.nodes[tt.want].e.HandedOver() || s.nodes["a"].e.HandedOver() {
				t.Fatalf("HandedOver: target %v, a %v; want true, false",
					s.nodes[tt.want].e.HandedOver(), s.nodes["a"].e.HandedOver())
			}
			if !s.hasEvent("a", EventHandoverSent) || !s.hasEvent("a", EventSwitchoverStarted) {
				t.Fatalf("a's events: %v", s.nodes["a"].events)
			}
			// The target got the flushed state before taking over.
			if len(s.nodes[tt.want].applied) == 0 {
				t.Fatalf("target applied no state")
			}
			s.mustConverge(time.Second)
			// a does not preempt the master it handed over to.
			s.run(2 * time.Second)
			if !s.converged() || s.master() != tt.want {
				t.Fatalf("switchover undone: %s", s.describe())
			}
		})
	}
}

func TestSwitchoverLostHandover(t *testing.T) {
	s := newSim(t, 8, nodeSpec{id: "a", priority: 200}, nodeSpec{id: "b", priority: 100})
	s.mustConverge(time.Second)
	dropped := 0
	s.drop = func(d delivery) bool {
		if _, ok := d.msg.(*hellopicsv1.Handover); ok && dropped < 1 {
			dropped++
			return true
		}
		return false
	}
	if _, err := s.nodes["a"].e.Switchover(s.now, ""); err != nil {
		t.Fatal(err)
	}
	s.process(s.nodes["a"])
	if _, ok := s.runUntil(time.Second, func() bool { return s.master() == "b" }); !ok {
		t.Fatalf("handover not retried: %s", s.describe())
	}
	if dropped != 1 {
		t.Fatalf("dropped %d handovers", dropped)
	}
	s.mustConverge(time.Second)
}

func TestSwitchoverErrors(t *testing.T) {
	s := newSim(t, 9, nodeSpec{id: "a", priority: 200}, nodeSpec{id: "b", priority: 100}, nodeSpec{id: "c", priority: 50})
	s.mustConverge(time.Second)
	if _, err := s.nodes["b"].e.Switchover(s.now, ""); !errors.Is(err, ErrNotMaster) {
		t.Errorf("on a backup: %v, want ErrNotMaster", err)
	}
	if _, err := s.nodes["a"].e.Switchover(s.now, "zz"); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("unknown target: %v, want ErrUnknownPeer", err)
	}
	s.crash("c")
	s.run(time.Second)
	if _, err := s.nodes["a"].e.Switchover(s.now, "c"); err == nil {
		t.Errorf("dead target: no error")
	}
	// A target that never acknowledges: the switchover times out and a
	// stays master.
	s.drop = func(d delivery) bool {
		_, ack := d.msg.(*hellopicsv1.SyncAck)
		return ack
	}
	if _, err := s.nodes["a"].e.Switchover(s.now, "b"); err != nil {
		t.Fatalf("Switchover: %v", err)
	}
	if _, err := s.nodes["a"].e.Switchover(s.now, "b"); err == nil {
		t.Errorf("second switchover: no error")
	}
	s.process(s.nodes["a"])
	s.run(1100 * time.Millisecond)
	if s.nodes["a"].e.Role() != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		t.Fatalf("a stopped being master: %s", s.describe())
	}
	if !s.hasEvent("a", EventSwitchoverAborted) {
		t.Fatalf("no switchover_aborted event: %v", s.nodes["a"].events)
	}
}

func TestStepRejects(t *testing.T) {
	e, err := New(DefaultConfig("a", 1, Peer{ID: "b"}), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Step(t0, "x", &hellopicsv1.Heartbeat{Id: "x"}); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("unknown sender: %v", err)
	}
	if err := e.Step(t0, "b", &hellopicsv1.Heartbeat{Id: "c"}); err == nil {
		t.Errorf("spoofed id: no error")
	}
	if err := e.Step(t0, "b", &hellopicsv1.PairStatus{}); err == nil {
		t.Errorf("wrong type: no error")
	}
}

func TestEventString(t *testing.T) {
	ev := Event{Kind: EventBecameMaster, Epoch: 3, Master: "a", Reason: "why"}
	if got, want := ev.String(), `became_master epoch=3 master="a": why`; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if got := EventKind(99).String(); got != "event(99)" {
		t.Errorf("unknown kind = %q", got)
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// TestLiveMasterComponentAddr: a backup names the master's component
// address only while it hears the master: not once two heartbeats are
// late, nor after a link to it broke, until its next heartbeat.
func TestLiveMasterComponentAddr(t *testing.T) {
	s := newSim(t, 3, nodeSpec{id: "a", priority: 200}, nodeSpec{id: "b", priority: 100})
	if m := s.mustConverge(time.Second); m != "a" {
		t.Fatalf("master = %s, want a", m)
	}
	s.run(200 * time.Millisecond)
	b := s.nodes["b"].e
	if got, want := b.LiveMasterComponentAddr(), b.MasterComponentAddr(); got == "" || got != want {
		t.Fatalf("live master addr %q, want %q", got, want)
	}
	if a := s.nodes["a"].e; a.LiveMasterComponentAddr() != a.MasterComponentAddr() {
		t.Fatalf("the master names %q for itself", a.LiveMasterComponentAddr())
	}
	b.LinkLost("a")
	b.LinkLost("nobody") // ignored
	if got := b.LiveMasterComponentAddr(); got != "" {
		t.Fatalf("after LinkLost: %q", got)
	}
	s.run(3 * hb) // the next heartbeats clear it
	if b.LiveMasterComponentAddr() == "" || b.Master() != "a" {
		t.Fatalf("after a's heartbeats: %q (master %s)", b.LiveMasterComponentAddr(), b.Master())
	}
	// Silence: the address goes before the master is declared dead.
	s.pause("a")
	var sawGap bool
	s.runUntil(10*hb, func() bool {
		if b.Master() == "a" && b.LiveMasterComponentAddr() == "" {
			sawGap = true
		}
		return b.Master() != "a"
	})
	if !sawGap {
		t.Fatalf("b still named the silent master's address until it was declared dead (%s)", s.describe())
	}
}

// TestObserveComponentEpoch: a master refusing components that have
// seen a higher epoch (from a master it cannot hear) adopts it and
// claims again above it; out-of-range or too large jumps are refused,
// and adoptions are rate-limited.
func TestObserveComponentEpoch(t *testing.T) {
	s := newSim(t, 4, nodeSpec{id: "a", priority: 200}, nodeSpec{id: "b", priority: 100})
	if m := s.mustConverge(time.Second); m != "a" {
		t.Fatalf("master = %s, want a", m)
	}
	a := s.nodes["a"].e
	e0 := a.Epoch()
	if _, err := a.ObserveComponentEpoch(s.now, MaxEpoch+1); !errors.Is(err, ErrRefused) {
		t.Fatalf("epoch beyond the range: %v", err)
	}
	if _, err := a.ObserveComponentEpoch(s.now, e0+DefaultMaxEpochJump+1); !errors.Is(err, ErrRefused) {
		t.Fatalf("epoch beyond the jump: %v", err)
	}
	if ok, err := a.ObserveComponentEpoch(s.now, e0); ok || err != nil {
		t.Fatalf("an epoch not above ours: %v %v", ok, err)
	}
	if ok, err := a.ObserveComponentEpoch(s.now, e0+5); !ok || err != nil {
		t.Fatalf("a component's epoch: %v %v", ok, err)
	}
	s.process(s.nodes["a"])
	if _, ok := s.runUntil(time.Second, func() bool { return s.master() == "a" && a.Epoch() > e0+5 }); !ok {
		t.Fatalf("a did not claim again above the component's epoch: %s", s.describe())
	}
	if ok, _ := a.ObserveComponentEpoch(s.now, a.Epoch()+5); ok {
		t.Fatal("a second adoption within the rate limit")
	}
}

// TestPriorityDropHandsOver: a master whose priority falls below a live
// backup's (a tracked check failed) is preempted by it; back to health,
// it preempts again; a NoPreempt backup leaves it in place.
func TestPriorityDropHandsOver(t *testing.T) {
	for _, nopreempt := range []bool{false, true} {
		t.Run(fmt.Sprintf("nopreempt=%v", nopreempt), func(t *testing.T) {
			s := newSim(t, 5, nodeSpec{id: "a", priority: 200}, nodeSpec{id: "b", priority: 100, nopreempt: nopreempt})
			if m := s.mustConverge(time.Second); m != "a" {
				t.Fatalf("master = %s, want a", m)
			}
			s.run(time.Second)
			a := s.nodes["a"]
			a.e.SetPriority(s.now, 50)
			s.process(a)
			if a.e.Priority() != 50 {
				t.Fatalf("priority %d, want 50", a.e.Priority())
			}
			took, ok := s.runUntil(2*time.Second, func() bool { return s.master() == "b" })
			if nopreempt {
				if ok {
					t.Fatalf("nopreempt b took over after %v", took)
				}
				return
			}
			// b hears the lower priority in the heartbeat sent at once and
			// preempts at the next evaluation: well within a dead interval.
			if !ok || took > 3*hb {
				t.Fatalf("b master after %v (ok=%v), want within %v", took, ok, 3*hb)
			}
			s.mustConverge(time.Second)
			a.e.SetPriority(s.now, 200)
			s.process(a)
			if _, ok := s.runUntil(2*time.Second, func() bool { return s.master() == "a" }); !ok {
				t.Fatalf("a healthy again did not preempt: %s", s.describe())
			}
			s.mustConverge(time.Second)
		})
	}
}
