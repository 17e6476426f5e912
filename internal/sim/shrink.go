package sim

import (
	"fmt"
	"strings"
)

// maxShrinkRuns bounds the runs one shrink may take.
const maxShrinkRuns = 2000

// Shrink removes faults from sc's schedule (delta debugging, ddmin)
// while the run still breaks the invariant v names, and returns the
// smallest schedule found (its indexes into sc.Faults) and how many
// runs it took. The structure of the scenario (processes, timers,
// starts, the final heal) is kept; the network's randomness follows the
// seed, so a removed fault may change later latencies, which is why
// each candidate is run again rather than assumed.
func Shrink(sc *Scenario, opts Options, v *Violation) (keep []int, runs int) {
	opts.Trace = false
	fails := func(idx []int) bool {
		runs++
		r := Run(sc.with(idx), opts)
		return r.Violation != nil && r.Violation.Invariant == v.Invariant
	}
	keep = make([]int, len(sc.Faults))
	for i := range keep {
		keep[i] = i
	}
	if len(keep) > 0 && fails(nil) {
		return nil, runs
	}
	n := 2
	for len(keep) >= 2 && runs < maxShrinkRuns {
		chunks := split(keep, n)
		reduced := false
		for _, c := range chunks {
			if fails(c) {
				keep, n, reduced = c, 2, true
				break
			}
		}
		if !reduced && n > 2 {
			for i := range chunks {
				comp := complement(chunks, i)
				if fails(comp) {
					keep, n, reduced = comp, max(n-1, 2), true
					break
				}
			}
		}
		if !reduced {
			if n >= len(keep) {
				break
			}
			n = min(2*n, len(keep))
		}
	}
	// One by one, the last pass: ddmin's result is 1-minimal for
	// chunks, this makes it so for single faults too.
	for i := 0; i < len(keep) && runs < maxShrinkRuns; {
		cand := append(append([]int(nil), keep[:i]...), keep[i+1:]...)
		if fails(cand) {
			keep = cand
			continue
		}
		i++
	}
	return keep, runs
}

func split(xs []int, n int) [][]int {
	var out [][]int
	size := (len(xs) + n - 1) / n
	for i := 0; i < len(xs); i += size {
		out = append(out, xs[i:min(i+size, len(xs))])
	}
	return out
}

func complement(chunks [][]int, skip int) []int {
	var out []int
	for i, c := range chunks {
		if i != skip {
			out = append(out, c...)
		}
	}
	return out
}

// Report is a failing seed, shrunk and replayed with its trace.
type Report struct {
	Scenario *Scenario // as generated from the seed
	First    *Result   // the run of the full schedule
	Keep     []int     // the minimal schedule: indexes into Scenario.Faults
	Minimal  *Result   // the traced run of the minimal schedule
	Runs     int       // runs the shrinking took
	Bug      Bug       // the injected bug, if any
}

// Check generates the scenario of seed and runs it; on a violation it
// shrinks the schedule and replays the minimal one with its trace. It
// returns what the run exercised, and a nil Report when every
// invariant held.
func Check(seed uint64, opts Options) (Stats, *Report) {
	sc := Generate(seed)
	first := Run(sc, opts)
	if first.Violation == nil {
		return first.Stats, nil
	}
	keep, runs := Shrink(sc, opts, first.Violation)
	opts.Trace = true
	small := Run(sc.with(keep), opts)
	if small.Violation == nil || small.Violation.Invariant != first.Violation.Invariant {
		// Cannot happen (runs are deterministic); report the full run.
		keep = nil
		for i := range sc.Faults {
			keep = append(keep, i)
		}
		small = Run(sc, opts)
	}
	return first.Stats, &Report{Scenario: sc, First: first, Keep: keep, Minimal: small, Runs: runs, Bug: opts.Bug}
}

// Add adds o's counts to s.
func (s *Stats) Add(o Stats) {
	s.Events += o.Events
	s.HellosBack += o.HellosBack
	s.Masterships += o.Masterships
	s.HostileFrames += o.HostileFrames
	s.Faults += o.Faults
	s.KnownEpochAhead += o.KnownEpochAhead
	s.WatchSwitches += o.WatchSwitches
}

// Seed is the report's seed.
func (r *Report) Seed() uint64 { return r.Scenario.Seed }

// String is the report for people: the violation, the scenario, the
// minimal fault schedule, the trace's tail, and how to replay it.
func (r *Report) String() string {
	var b strings.Builder
	sc := r.Scenario
	fmt.Fprintf(&b, "FAIL seed %d: %v\n", sc.Seed, r.First.Violation)
	fmt.Fprintf(&b, "  %v\n", sc)
	fmt.Fprintf(&b, "  liveness bound %v\n", sc.LivenessBound())
	fmt.Fprintf(&b, "minimal fault schedule: %d of %d faults (%d runs to shrink), then the final heal at %s:\n",
		len(r.Keep), len(sc.Faults), r.Runs, fmtDur(sc.HealAt))
	for _, i := range r.Keep {
		fmt.Fprintf(&b, "  [%2d] %s\n", i, sc.Faults[i])
	}
	fmt.Fprintf(&b, "with it: %v\n", r.Minimal.Violation)
	fmt.Fprintf(&b, "trace of the minimal run (last %d lines):\n", len(r.Minimal.Trace))
	for _, l := range r.Minimal.Trace {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	fmt.Fprintf(&b, "replay: make sim SEED=%d", sc.Seed)
	if r.Bug != BugNone {
		fmt.Fprintf(&b, " (with the injected bug %s)", r.Bug)
	}
	if len(r.Keep) < len(sc.Faults) {
		fmt.Fprintf(&b, "   (the minimal schedule alone: go run ./internal/sim/cmd/sim -seed %d -keep %s -v)", sc.Seed, keepString(r.Keep))
	}
	b.WriteString("\n")
	return b.String()
}

func keepString(keep []int) string {
	if len(keep) == 0 {
		return "none"
	}
	s := make([]string, len(keep))
	for i, k := range keep {
		s[i] = fmt.Sprint(k)
	}
	return strings.Join(s, ",")
}

// Subschedule returns sc with only the faults at the indexes keep.
func Subschedule(sc *Scenario, keep []int) *Scenario { return sc.with(keep) }
