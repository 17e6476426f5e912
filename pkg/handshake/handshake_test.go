package handshake

import (
	"strings"
	"testing"
)

func TestStartOrders(t *testing.T) {
	for _, order := range permutations([]string{"m", "c1", "d1"}) {
		t.Run(strings.Join(order, "-"), func(t *testing.T) {
			w := newNet(t)
			w.addTrio()
			for _, name := range order {
				w.start(name)
				w.advance(testInterval / 3)
			}
			w.expectHealthy("m", "p1", 5)
			c := w.counters("m", "p1")
			if c.GetMissed() != 0 || c.GetOutOfOrder() != 0 || c.GetSent() != c.GetReceived() {
				t.Fatalf("counters %v\n%s", c, w.dump())
			}
		})
	}
}

// TestRestartDuringHandshake starts the three components in every order,
// delivers only the first k messages of the handshake, restarts one
// component, and checks that the pair still reaches a healthy cycle.
func TestRestartDuringHandshake(t *testing.T) {
	for _, moving := range []bool{false, true} {
		for _, order := range permutations([]string{"m", "c1", "d1"}) {
			for _, victim := range []string{"m", "c1", "d1"} {
				for k := 0; ; k++ {
					w := newNet(t)
					w.movingAddrs = moving
					w.addTrio()
					// Start them one after the other, with k deliveries in all
					// before the fault, spread as the start order allows.
					budget := k
					for _, name := range order {
						w.start(name)
						budget -= w.step(budget)
						w.connectAll()
					}
					if budget > 0 {
						break // the whole handshake fits in k steps: done
					}
					w.restart(victim)
					w.expectHealthy("m", "p1", 3)
					if c := w.counters("m", "p1"); c.GetMissed() != 0 || c.GetOutOfOrder() > 1 {
						t.Fatalf("moving=%v order %v victim %s k=%d: counters %v\n%s", moving, order, victim, k, c, w.dump())
					}
				}
			}
		}
	}
}

// TestRestartWhileRunning restarts each component (and cuts each link) of
// a running pair, at different points of the cycle, and checks that the
// cycle comes back and the pair's counters carry on.
func TestRestartWhileRunning(t *testing.T) {
	faults := []struct {
		name string
		do   func(w *netw)
	}{
		{"restart m", func(w *netw) { w.restart("m") }},
		{"restart c1", func(w *netw) { w.restart("c1") }},
		{"restart d1", func(w *netw) { w.restart("d1") }},
		{"cut m-c1", func(w *netw) { w.cut("m", "c1") }},
		{"cut m-d1", func(w *netw) { w.cut("m", "d1") }},
		{"cut c1-d1", func(w *netw) { w.cut("c1", "d1") }},
		{"restart c1 and d1", func(w *netw) { w.restart("c1"); w.restart("d1") }},
		{"restart d1 and c1", func(w *netw) { w.restart("d1"); w.restart("c1") }},
		{"restart all", func(w *netw) { w.restart("d1"); w.restart("m"); w.restart("c1") }},
		{"kill c1, later start", func(w *netw) { w.kill("c1"); w.advance(5 * testInterval); w.start("c1") }},
		{"kill d1, later start", func(w *netw) { w.kill("d1"); w.advance(5 * testInterval); w.start("d1") }},
		{"kill m, later start", func(w *netw) { w.kill("m"); w.advance(5 * testInterval); w.start("m") }},
		{"restart c1 while m is down", func(w *netw) {
			w.kill("m")
			w.restart("c1")
			w.advance(5 * testInterval)
			// The restarted ctrl has seen no epoch yet and data has: ctrl
			// refuses it (its fence is mgmt's to raise) until mgmt is back.
			if c := w.nodes["c1"].ctrl; c.Ready() || c.Epoch() != 0 {
				w.t.Fatalf("restarted ctrl took data's epoch without mgmt (epoch %d):\n%s", c.Epoch(), w.dump())
			}
			w.start("m")
		}},
		{"restart d1 while m is down", func(w *netw) { w.kill("m"); w.restart("d1"); w.advance(5 * testInterval); w.start("m") }},
	}
	for _, moving := range []bool{false, true} {
		for _, f := range faults {
			// at: how many steps into a hello's journey the fault strikes.
			for at := 0; at < 4; at++ {
				w := newNet(t)
				w.movingAddrs = moving
				w.addTrio()
				for _, name := range []string{"m", "c1", "d1"} {
					w.start(name)
				}
				w.expectHealthy("m", "p1", 4)
				before := w.counters("m", "p1")
				// Let the next hello start, deliver `at` steps of it, strike.
				next, _ := w.nodes["m"].mgmt.NextDeadline()
				w.now = next
				w.apply(w.nodes["m"], w.nodes["m"].mgmt.Tick(w.now))
				w.step(at)
				f.do(w)
				w.expectHealthy("m", "p1", 3)
				after := w.counters("m", "p1")
				if after.GetSent() < before.GetSent()+4 || after.GetReceived() < before.GetReceived()+3 || after.GetMissed() > 1 {
					t.Fatalf("%s at %d (moving=%v): counters went from %v to %v\n%s", f.name, at, moving, before, after, w.dump())
				}
			}
		}
	}
}
