package sim

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// seedCount is how many seeds TestSeeds runs: HELLOPICS_SIM_SEEDS, or
// 3000 (300 with -short). Under the race detector a seed costs about
// four times as much: 3000 seeds take some 40 s on two cores.
func seedCount(t *testing.T) int {
	if s := os.Getenv("HELLOPICS_SIM_SEEDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("HELLOPICS_SIM_SEEDS=%q: %v", s, err)
		}
		return n
	}
	if testing.Short() {
		return 300
	}
	return 3000
}

// TestSeeds runs many seeds on every core; a failing seed is reported
// shrunk, with its trace and the command that replays it.
func TestSeeds(t *testing.T) {
	n := seedCount(t)
	var next atomic.Int64
	var mu sync.Mutex
	var fails []*Report
	var total Stats
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				seed := next.Add(1) - 1
				if seed >= int64(n) {
					return
				}
				st, rep := Check(uint64(seed), Options{})
				mu.Lock()
				total.Add(st)
				if rep != nil {
					fails = append(fails, rep)
				}
				stop := len(fails) >= 3
				mu.Unlock()
				if stop {
					return
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d seeds: %+v", n, total)
	for _, r := range fails {
		t.Errorf("%v", r)
	}
	if total.HellosBack == 0 || total.Masterships == 0 || total.HostileFrames == 0 || total.Faults == 0 {
		t.Errorf("the runs exercised too little: %+v", total)
	}
}

// TestDeterministic: a seed replays exactly, trace and all.
func TestDeterministic(t *testing.T) {
	for _, seed := range []uint64{1, 7, 42, 1999} {
		a := Run(Generate(seed), Options{Trace: true, Verbose: true, TraceLimit: 1 << 20})
		b := Run(Generate(seed), Options{Trace: true, Verbose: true, TraceLimit: 1 << 20})
		if a.Stats != b.Stats || a.SimTime != b.SimTime || !slices.Equal(a.Trace, b.Trace) {
			t.Fatalf("seed %d: two runs differ: %+v at %v vs %+v at %v", seed, a.Stats, a.SimTime, b.Stats, b.SimTime)
		}
		if len(a.Trace) < 50 {
			t.Fatalf("seed %d: a trace of %d lines only", seed, len(a.Trace))
		}
	}
}

// TestInjectedBugs shows that the checker can fail: with a bug injected
// into the simulator's copy of a shell, some early seed breaks the
// invariant the bug is about, and the report names it, shrinks the
// schedule to the few faults that matter, and says how to replay it.
func TestInjectedBugs(t *testing.T) {
	for _, tc := range []struct {
		bug       Bug
		invariant string
		maxFaults int
	}{
		{BugForgetEpoch, InvEpochs, 2},       // a crash and a start of a mgmt that held an epoch
		{BugLoseSessionDown, InvLiveness, 2}, // a crash and a start of a component
	} {
		t.Run(fmt.Sprint(tc.bug), func(t *testing.T) {
			for seed := range uint64(300) {
				_, rep := Check(seed, Options{Bug: tc.bug})
				if rep == nil || rep.First.Violation.Invariant != tc.invariant {
					continue
				}
				s := rep.String()
				t.Logf("caught at seed %d:\n%s", seed, s)
				if len(rep.Keep) > tc.maxFaults || len(rep.Keep) >= len(rep.Scenario.Faults) && len(rep.Scenario.Faults) > tc.maxFaults {
					t.Errorf("shrunk to %d of %d faults, want at most %d", len(rep.Keep), len(rep.Scenario.Faults), tc.maxFaults)
				}
				if rep.Minimal.Violation == nil || rep.Minimal.Violation.Invariant != tc.invariant {
					t.Errorf("the minimal schedule does not fail the same way: %v", rep.Minimal.Violation)
				}
				for _, want := range []string{"FAIL seed " + fmt.Sprint(seed), tc.invariant, "minimal fault schedule", fmt.Sprintf("make sim SEED=%d", seed), "VIOLATION"} {
					if !strings.Contains(s, want) {
						t.Errorf("the report lacks %q", want)
					}
				}
				return
			}
			t.Fatalf("bug %d never caught in 300 seeds", tc.bug)
		})
	}
}

// TestShrinkKeepsStructure: shrinking only removes faults; the
// scenario's processes, timers and final heal stay.
func TestShrinkKeepsStructure(t *testing.T) {
	sc := Generate(5)
	sub := sc.with(nil)
	if len(sub.Faults) != 0 || sub.HealAt != sc.HealAt || sub.Pairs != sc.Pairs || len(sub.Mgmts) != len(sc.Mgmts) || sub.Timers != sc.Timers {
		t.Fatalf("with(nil) changed more than the faults: %v vs %v", sub, sc)
	}
	if r := Run(sub, Options{}); r.Violation != nil {
		t.Fatalf("no faults at all: %v", r.Violation)
	}
}

func TestSplit(t *testing.T) {
	got := split([]int{0, 1, 2, 3, 4}, 2)
	if len(got) != 2 || !slices.Equal(got[0], []int{0, 1, 2}) || !slices.Equal(got[1], []int{3, 4}) {
		t.Fatalf("split: %v", got)
	}
	if c := complement(got, 0); !slices.Equal(c, []int{3, 4}) {
		t.Fatalf("complement: %v", c)
	}
}
