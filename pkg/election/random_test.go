package election

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestRandomSchedules runs many random schedules of crashes, restarts,
// pauses, partitions (symmetric and one-way), lossy and slow links and
// switchovers. The sim checks the safety invariants at every step:
// never two masters at one epoch, ever; a node's known epoch never goes
// back, and each new mastership of a node has a higher epoch than its
// previous one, across restarts. After the chaos the network heals and
// the cluster must converge on exactly one master.
func TestRandomSchedules(t *testing.T) {
	seeds := 200
	if testing.Short() {
		seeds = 30
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			runRandomSchedule(t, seed)
		})
	}
}

func runRandomSchedule(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 42))
	n := 2 + rng.IntN(3) // 2 to 4 instances
	var specs []nodeSpec
	for i := range n {
		specs = append(specs, nodeSpec{
			id:        string(rune('a' + i)),
			priority:  uint32(rng.IntN(3) * 100), // ties happen
			nopreempt: rng.IntN(4) == 0,
			delay:     time.Duration(rng.IntN(3)) * 100 * time.Millisecond,
		})
	}
	s := newSim(t, seed, specs...)
	ids := s.order
	pick := func() string { return ids[rng.IntN(len(ids))] }

	for range 40 {
		switch rng.IntN(12) {
		case 0:
			s.crash(pick())
		case 1, 2:
			if id := pick(); s.nodes[id].down {
				s.start(id)
			}
		case 3:
			s.pause(pick())
		case 4:
			s.resume(pick())
		case 5: // split the cluster in two
			var a, b []string
			for _, id := range ids {
				if rng.IntN(2) == 0 {
					a = append(a, id)
				} else {
					b = append(b, id)
				}
			}
			s.partition(a, b)
		case 6: // a one-way link failure
			x, y := pick(), pick()
			if x != y {
				s.cut[link{x, y}] = true
			}
		case 7:
			s.heal()
		case 8:
			s.loss = []float64{0, 0.05, 0.3}[rng.IntN(3)]
			s.jitter = time.Duration(rng.IntN(3)) * 20 * time.Millisecond
		case 9, 10:
			if m := s.master(); m != "" && !s.nodes[m].paused {
				target := ""
				if rng.IntN(2) == 0 {
					target = pick()
				}
				if _, err := s.nodes[m].e.Switchover(s.now, target); err == nil {
					s.process(s.nodes[m])
				}
			}
		case 11:
			s.latency = time.Duration(1+rng.IntN(30)) * time.Millisecond
		}
		s.run(time.Duration(rng.IntN(400)) * time.Millisecond)
	}

	// Heal everything; the cluster must settle on one master.
	s.heal()
	s.loss, s.jitter, s.latency = 0, 0, 2*time.Millisecond
	for _, id := range ids {
		if s.nodes[id].down {
			s.start(id)
		} else {
			s.resume(id)
		}
	}
	s.mustConverge(3 * time.Second)
	s.run(2 * time.Second) // preemptions and delays play out
	if !s.converged() {
		t.Fatalf("seed %d: not converged after healing: %s", seed, s.describe())
	}
}
