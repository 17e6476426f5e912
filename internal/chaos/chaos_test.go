package chaos

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// evs builds log events from "host step epoch seq" lines, 1 ms apart.
func evs(lines ...string) []Event {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	var out []Event
	for i, l := range lines {
		var e Event
		var seq int
		fmt.Sscan(l, &e.Host, &e.Step, &e.Epoch, &seq)
		if seq >= 0 {
			e.Seq, e.HasSeq = uint64(seq), true
		}
		e.T, e.Raw = t0.Add(time.Duration(i)*time.Millisecond), l
		out = append(out, e)
	}
	return out
}

func invariants(vs []Violation) string {
	var s []string
	for _, v := range vs {
		s = append(s, v.Invariant)
	}
	return strings.Join(s, "|")
}

// TestCheckLogs feeds each check a log that breaks it, and a clean one:
// none of the checks is one that cannot fail.
func TestCheckLogs(t *testing.T) {
	good := []string{
		"mgmt-a became_master 2 -1", "mgmt-a hello_sent 2 1", "ctrl hello_forwarded 2 1", "data hello_forwarded 2 1",
		"mgmt-a hello_returned 2 1", "mgmt-b became_master 3 -1", "ctrl hello_forwarded 3 2", "data hello_forwarded 3 2",
		"mgmt-b hello_returned 3 2", "mgmt-a stepped_down 3 -1",
	}
	st, vs := checkLogs(evs(good...))
	if len(vs) != 0 || st.Returned != 2 || st.Forwarded["ctrl"] != 2 {
		t.Fatalf("clean log: %v %+v", vs, st)
	}
	for _, c := range []struct {
		name string
		add  []string
		want string
	}{
		{"forward after a higher epoch", []string{"data hello_forwarded 2 3"}, InvForwardEpoch},
		{"two claimants", []string{"mgmt-a became_master 4 -1", "mgmt-b became_master 4 -1"}, InvOneClaimant},
		{"hello at the other instance", []string{"mgmt-a hello_returned 3 9"}, InvOneClaimant},
		{"epoch back", []string{"mgmt-a master_changed 2 -1"}, InvEpochsGrow},
		{"seq twice", []string{"mgmt-b hello_returned 3 1"}, InvSeqOnce},
	} {
		_, vs := checkLogs(evs(append(append([]string{}, good...), c.add...)...))
		if got := invariants(vs); got != c.want {
			t.Errorf("%s: violations %q, want %q (%v)", c.name, got, c.want, vs)
		}
	}
}

func TestLongestGap(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms ...int) []time.Time {
		var ts []time.Time
		for _, m := range ms {
			ts = append(ts, t0.Add(time.Duration(m)*time.Millisecond))
		}
		return ts
	}
	ts := at(0, 100, 200, 1700, 1800, 5000)
	g, from, to := longestGap(ts, t0.Add(150*time.Millisecond), t0.Add(1700*time.Millisecond))
	if g != 1500*time.Millisecond || !from.Equal(ts[2]) || !to.Equal(ts[3]) {
		t.Errorf("gap %v from %v to %v", g, from, to)
	}
	if f, ok := firstAfter(ts, t0.Add(1750*time.Millisecond)); !ok || !f.Equal(ts[4]) {
		t.Errorf("firstAfter: %v %v", f, ok)
	}
}

// TestRelayCheck: a duplicate, a wrong echo and an unexcused loss are
// violations; a loss during a fault on data is excused.
func TestRelayCheck(t *testing.T) {
	t0 := time.Unix(1000, 0)
	r := newRelayClient("x", time.Millisecond)
	add := func(id uint32, sec int, resp, errs int, wrong string) {
		cm := &command{id: id, sent: t0.Add(time.Duration(sec) * time.Second), conn: 1, responses: resp, errors: errs}
		if wrong != "" {
			cm.wrong = []string{wrong}
		}
		r.cmds[id] = cm
		r.order = append(r.order, id)
	}
	add(1, 0, 1, 0, "")
	add(2, 1, 2, 0, "")    // twice
	add(3, 2, 1, 0, "bad") // wrong text
	add(4, 3, 0, 0, "")    // lost, not excused
	add(5, 50, 0, 0, "")   // lost, excused
	add(6, 51, 0, 1, "")   // relay error, excused
	add(7, 4, 0, 1, "")    // relay error, not excused
	s := &Summary{Cfg: Config{RelayGrace: 5 * time.Second}, Faults: []Fault{{N: 1, Kind: "kill", Host: "data",
		Injected: t0.Add(52 * time.Second), Healed: t0.Add(53 * time.Second)}}}
	st, vs := r.check(s.excusedAt)
	if st.Sent != 7 || st.Answered != 2 || st.Twice != 1 || st.Wrong != 1 || st.Lost != 2 || st.ExcusedLost != 1 ||
		st.RelayErrors != 2 || st.ExcusedErrors != 1 || len(vs) != 4 {
		t.Errorf("stats %+v, violations %v", st, vs)
	}
}

// TestScheduleReplays: a seed gives the same faults.
func TestScheduleReplays(t *testing.T) {
	draw := func(seed uint64) string {
		rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		var b strings.Builder
		for n := 1; n <= 50; n++ {
			fmt.Fprintf(&b, "%+v\n", next(rng, n))
		}
		return b.String()
	}
	first, again := draw(7), draw(7)
	if first != again || first == draw(8) {
		t.Error("the schedule does not follow the seed")
	}
	if s := draw(7); !strings.Contains(s, "kill") || !strings.Contains(s, "throttle") {
		t.Errorf("50 faults without every kind:\n%s", s)
	}
}
