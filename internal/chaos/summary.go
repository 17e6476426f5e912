package chaos

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Print writes the summary: faults by kind and target, the time for the
// cycle to come back, the longest outage, the relay's counts, each
// invariant ok or FAILED, and the violations with their log lines.
func (s *Summary) Print(w io.Writer) {
	c := s.Cfg
	fmt.Fprintf(w, "lab-chaos summary: seed %d, faults for %v (run %v in all), lab %s on %s.0/24, logs in %s\n",
		c.Seed, s.FaultsEnd.Sub(s.FaultsStart).Round(time.Second), s.End.Sub(s.Start).Round(time.Second), c.Prefix, c.Net, c.Run)
	fmt.Fprintf(w, "  %s (2 cores, shared)\n", s.Load)
	fmt.Fprintf(w, "faults injected: %d (one at a time)\n", len(s.Faults))
	for _, k := range Kinds {
		var n int
		by := map[string]int{}
		var worst *Fault
		for i := range s.Faults {
			f := &s.Faults[i]
			if f.Kind != k {
				continue
			}
			n++
			by[f.Role]++
			if worst == nil || f.Outage > worst.Outage {
				worst = f
			}
		}
		var parts []string
		for _, r := range Roles {
			parts = append(parts, fmt.Sprintf("%s %d", r, by[r]))
		}
		desc := map[string]string{
			"kill":     "SIGKILL, restarted (lab.sh up) after 0.3-4 s",
			"pause":    "SIGSTOP, SIGCONT after 0.1-4 s",
			"linkdown": "host's veth down, up after 0.2-4 s",
			"loss":     "nftables numgen drop 10-70% each way, 1-6 s",
			"throttle": "tbf 16-128 kbit/s each way, 1-6 s (stands in for delay: no netem here)",
		}[k]
		line := fmt.Sprintf("  %-9s %3d  (%s): %s", k, n, strings.Join(parts, ", "), desc)
		if worst != nil {
			line += fmt.Sprintf("; longest outage %v", worst.Outage)
		}
		fmt.Fprintln(w, line)
	}
	var backs []time.Duration
	for _, f := range s.Faults {
		if !f.Recovered.IsZero() {
			backs = append(backs, f.Recovered.Sub(f.Healed.Truncate(time.Millisecond)))
		}
	}
	sort.Slice(backs, func(i, j int) bool { return backs[i] < backs[j] })
	if len(backs) > 0 {
		fmt.Fprintf(w, "cycle back after the heal (first hello back): p50 %v, p99 %v, max %v over %d faults (bound %v)\n",
			backs[len(backs)/2], backs[(len(backs)-1)*99/100], backs[len(backs)-1], len(backs), c.HealBound)
	}
	var worst *Fault
	for i := range s.Faults {
		if worst == nil || s.Faults[i].Outage > worst.Outage {
			worst = &s.Faults[i]
		}
	}
	if worst != nil {
		fmt.Fprintf(w, "longest outage (no hello back): %v, fault #%d %s %s (%s, %s), from %s to %s\n",
			worst.Outage, worst.N, worst.Kind, worst.Role, worst.Host, worst.Note,
			worst.OutFrom.Format("15:04:05.000"), worst.OutTo.Format("15:04:05.000"))
	}
	r := s.Relay
	fmt.Fprintf(w, "relay: %d commands sent, %d answered, %d relay errors (%d excused), %d lost (%d excused), %d answered twice, %d wrong text; %d connections, %d failed dials\n",
		r.Sent, r.Answered, r.RelayErrors, r.ExcusedErrors, r.Lost, r.ExcusedLost, r.Twice, r.Wrong, r.Connections, r.DialFailures)
	fmt.Fprintf(w, "  excused: a command sent from %v before a fault on data to %v after its heal may be lost or get a relay error\n", c.RelayGrace, c.RelayGrace)
	failed := map[string]bool{}
	for _, v := range s.Violations {
		failed[v.Invariant] = true
	}
	fmt.Fprintln(w, "invariants:")
	for _, inv := range []string{InvForwardEpoch, InvOneClaimant, InvEpochsGrow, InvSeqOnce, InvCycleBack, InvRelay, InvDaemonsHealth} {
		mark := "ok    "
		if failed[inv] {
			mark = "FAILED"
		}
		fmt.Fprintf(w, "  %s %s: %s\n", mark, inv, s.Checked[inv])
	}
	if len(s.Violations) == 0 {
		fmt.Fprintln(w, "result: PASS, no invariant violated")
		return
	}
	fmt.Fprintf(w, "result: FAIL, %d violations:\n", len(s.Violations))
	for _, v := range s.Violations {
		fmt.Fprintf(w, "  - %s\n", v)
	}
}
