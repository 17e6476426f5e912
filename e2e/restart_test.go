package e2e

import (
	"testing"
)

// TestRestart stops each component of a running pair, with SIGKILL and
// with SIGTERM, starts it again and checks that the pair comes back to a
// running cycle by itself, and that the counters tell what happened.
func TestRestart(t *testing.T) {
	skipShort(t)
	t.Parallel()
	for _, how := range []string{"kill", "term"} {
		for _, role := range []string{"mgmt", "ctrl", "data"} {
			t.Run(how+"/"+role, func(t *testing.T) {
				t.Parallel()
				testRestart(t, role, how == "kill")
			})
		}
	}
}

func testRestart(t *testing.T, role string, kill bool) {
	const pair = "pic0"
	c := newCluster(t, fast)
	c.StartMgmt()
	c.StartCtrl(pair)
	c.StartData(pair)
	c.WaitRunning(0, pair, 3)

	m := c.Mgmt()
	ctrl, data := c.Ctrl(pair), c.Data(pair)
	ctrlMark, dataMark := ctrl.Mark(), data.Mark()
	mMark := m.Mark()
	mMark0 := mMark
	before := c.Counters(pair)

	victim := c.Proc(role, pair)
	if kill {
		victim.Kill()
	} else {
		victim.Stop() // fails the test unless it exits 0
		victim.WaitFor(0, and(msg("stopped"), field("component", role)))
	}

	// The survivors notice.
	switch role {
	case "mgmt":
		ctrl.WaitFor(ctrlMark, and(step("down", pair), field("peer", "mgmt")))
		data.WaitFor(dataMark, and(step("down", pair), field("peer", "mgmt")))
	default:
		_, pos := m.WaitFor(mMark, and(step("down", pair), field("peer", role)))
		m.WaitFor(mMark, step("cycle_stopped", pair))
		// The surviving peer loses its link to the victim too.
		other, otherMark := data, dataMark
		if role == "data" {
			other, otherMark = ctrl, ctrlMark
		}
		other.WaitFor(otherMark, and(step("down", pair), field("peer", role)))
		mMark = pos
	}

	// Start it again; the pair finds its way back without help.
	restarted := c.Start(role, pair)
	m = c.Mgmt()
	from := mMark
	if role == "mgmt" {
		from = 0
	}
	c.WaitRunning(from, pair, 3)
	after := c.WaitReceivedGrowing(pair, 3)

	switch role {
	case "mgmt":
		// A single mgmt (no -peers, no -state-dir): nothing carries its
		// counters over, so the new process counts from zero; but its
		// hello numbers go on above the highest ctrl and data forwarded
		// (they report it when they identify), so none is reused. (The
		// HA tests cover two instances.)
		if before.received < 3 {
			t.Errorf("old mgmt: %v; want at least 3 received", before)
		}
		if after.started != 1 || after.stopped != 0 || !after.running {
			t.Errorf("new mgmt: %v; want exactly one cycle_started and no cycle_stopped\n%s", after, c.Tails())
		}
		first, _ := m.WaitFor(0, step("cycle_started", pair))
		if seq := first.Uint("seq"); seq <= before.received {
			t.Errorf("new mgmt started the cycle with hello %d, not above the %d hellos of the old one\n%s", seq, before.received, c.Tails())
		}
		// Every hello passes ctrl exactly once: a number forwarded twice
		// would be a number reused.
		seen := map[uint64]bool{}
		for _, l := range ctrl.Find(0, step("hello_forwarded", pair)) {
			if seq := l.Uint("seq"); seen[seq] {
				t.Errorf("ctrl forwarded hello %d twice: a number was reused\n%s", seq, c.Tails())
				break
			} else {
				seen[seq] = true
			}
		}
		if after.received > after.sent || after.sent > after.received+after.missed+2 {
			t.Errorf("new mgmt counters inconsistent: %v", after)
		}
		// ctrl and data kept their connection to each other throughout.
		for p, mark := range map[*proc]int{ctrl: ctrlMark, data: dataMark} {
			for _, peer := range []string{"ctrl", "data"} {
				if ls := p.Find(mark, and(step("down", pair), field("peer", peer))); len(ls) > 0 {
					t.Errorf("%s lost its %s while mgmt restarted: %s\n%s", p.name, peer, ls[0].Raw, c.Tails())
				}
			}
		}
		// Both reconnected to the new mgmt and identified again.
		for _, peer := range []string{"ctrl", "data"} {
			if m.Count(0, and(step("identified", pair), field("peer", peer))) != 1 {
				t.Errorf("new mgmt: want %s of %s identified once\n%s", peer, pair, c.Tails())
			}
		}
	default:
		// Same mgmt: the cycle stopped once and started again; received
		// kept growing, and hello numbers were not reused.
		if after.started != 2 || after.stopped != 1 || !after.running {
			t.Errorf("after restarting %s: %v; want cycle_started twice and cycle_stopped once\n%s", role, after, c.Tails())
		}
		if after.received < before.received+5 {
			t.Errorf("received did not keep growing: before %v, after %v", before, after)
		}
		restartedAt := m.Find(mMark, step("cycle_started", pair))
		if len(restartedAt) == 0 || restartedAt[0].Uint("seq") <= before.lastSeq || after.lastSeq <= before.lastSeq {
			t.Errorf("restarted cycle does not continue the hello numbers (last before: %d): %v", before.lastSeq, restartedAt)
		}
		// The victim's own peer reconnected to the new process.
		if n := restarted.Count(0, step("identified", pair)) + restarted.Count(0, step("ready", pair)); n == 0 {
			t.Errorf("restarted %s never connected to its peer\n%s", role, c.Tails())
		}
	}
	t.Logf("restart of %s (kill=%v): before %v; after %v", role, kill, before, after)
	checkConsistent(t, pair, after)
	if role != "mgmt" {
		// While the cycle is stopped nothing is sent, so nothing can be
		// missed, however long the restart takes.
		var stopped bool
		for _, l := range m.Lines(mMark0) {
			if l.Str("pair") != pair {
				continue
			}
			switch l.Step() {
			case "cycle_stopped":
				stopped = true
			case "cycle_started":
				stopped = false
			case "hello_sent", "hello_missed":
				if stopped {
					t.Errorf("%s while the cycle was stopped: %s\n%s", l.Step(), l.Raw, c.Tails())
				}
			}
		}
	}
}
