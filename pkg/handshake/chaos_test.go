package handshake

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestChaos throws seeded random faults at two pairs (restarts of any
// component, cut links, time passing mid-handshake) and checks that once
// the faults stop both pairs come back to a healthy cycle. The harness
// checks on the way that hello numbers only grow.
func TestChaos(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 30
	}
	for seed := range seeds {
		rng := rand.New(rand.NewPCG(uint64(seed), 1))
		w := newNet(t)
		w.movingAddrs = seed%2 == 1
		w.addMgmt("m", MgmtConfig{Epoch: 1})
		w.addCtrl("c1", "p1", "m")
		w.addData("d1", "p1", "m")
		w.addCtrl("c2", "p2", "m")
		w.addData("d2", "p2", "m")
		names := []string{"m", "c1", "d1", "c2", "d2"}
		links := [][2]string{{"m", "c1"}, {"m", "d1"}, {"c1", "d1"}, {"m", "c2"}, {"m", "d2"}, {"c2", "d2"}}
		var log []string
		for _, i := range rng.Perm(len(names)) {
			w.start(names[i])
			w.step(rng.IntN(6))
		}
		for range 12 {
			switch rng.IntN(5) {
			case 0, 1:
				name := names[rng.IntN(len(names))]
				if w.nodes[name].alive {
					log = append(log, "kill "+name)
					w.kill(name)
				}
				if rng.IntN(2) == 0 {
					w.step(rng.IntN(8))
				}
				log = append(log, "start "+name)
				w.start(name)
			case 4:
				name := names[rng.IntN(len(names))]
				if w.nodes[name].alive {
					log = append(log, "kill "+name)
					w.kill(name)
				}
			case 2:
				l := links[rng.IntN(len(links))]
				if w.linked(l[0], l[1]) {
					log = append(log, "cut "+l[0]+"-"+l[1])
					w.cut(l[0], l[1])
				}
			case 3:
				d := time.Duration(rng.IntN(int(2 * testInterval)))
				log = append(log, fmt.Sprintf("advance %v", d))
				w.advance(d)
			}
			w.step(rng.IntN(12))
		}
		for _, name := range names {
			if !w.nodes[name].alive {
				log = append(log, "start "+name)
				w.start(name)
			}
		}
		func() {
			defer func() {
				if t.Failed() {
					t.Logf("seed %d: %v", seed, log)
				}
			}()
			w.expectHealthy("m", "p1", 3)
			w.expectHealthy("m", "p2", 3)
		}()
		if t.Failed() {
			return
		}
	}
}

// linked reports whether a and b have an open connection.
func (w *netw) linked(a, b string) bool {
	for _, c := range w.sortedConns() {
		if (c.ends[0].node == a && c.ends[1].node == b || c.ends[0].node == b && c.ends[1].node == a) && c.open[0] && c.open[1] {
			return true
		}
	}
	return false
}
