package sim

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
)

// Scenario is everything a run depends on: the topology, the timers,
// the network and the fault schedule. Generate derives one from a seed;
// a run of the same Scenario with the same Options is the same run.
type Scenario struct {
	// Seed drives the randomness of the run itself (latencies, jitter,
	// the retry jitter of the clients).
	Seed uint64
	// Mgmts are the management instances, m1 to m3.
	Mgmts []MgmtSpec
	// Pairs is how many ctrl/data pairs run (p1 with c1 and d1, ...).
	Pairs int
	// Timers are the configured timers.
	Timers Timers
	// Net is the network's latency.
	Net NetSpec
	// HAAnySource is mgmt's -ha-any-source: without it a hostile host
	// cannot reach the HA port at all (the accept filter).
	HAAnySource bool
	// Watch is whether ctrl and data keep watch sessions to every mgmt
	// address (pkg/appliance/watch.go), as they do with two or more
	// addresses unless -no-watch. Drawn from its own stream of the seed,
	// so that the rest of the scenario is what it was without it.
	Watch bool
	// Start is when each process (by name) first starts.
	Start map[string]time.Duration
	// Faults is the fault schedule, sorted by time.
	Faults []Fault
	// HealAt is the end of the fault phase: every link heals, every
	// process resumes or starts, and every pair must then cycle within
	// the liveness bound.
	HealAt time.Duration
}

// MgmtSpec is one management instance.
type MgmtSpec struct {
	ID           string
	Priority     uint32
	NoPreempt    bool
	PreemptDelay time.Duration
}

// Timers are the configured timers of every process.
type Timers struct {
	Heartbeat  time.Duration // election HeartbeatInterval
	DeadMisses int           // election DeadMisses
	Hello      time.Duration // mgmt HelloInterval
	// Sync is mgmt's SyncInterval (0: the Hello interval, at most 100
	// ms, as in pkg/appliance).
	Sync time.Duration
	// MgmtDead is the components' MgmtDeadTimeout (their session to mgmt).
	MgmtDead time.Duration
	// PeerDead is the components' DeadTimeout (the ctrl<->data session).
	PeerDead time.Duration
	// CompDead is mgmt's DeadTimeout for component sessions.
	CompDead time.Duration
	// Retry is the components' RetryInterval (also data's RetryDelay).
	Retry time.Duration
	// Dial is pconn's DialTimeout (3 s and fixed in the real transport;
	// a parameter of the model, smaller to keep runs short).
	Dial time.Duration
	// Linger is pconn's LingerTimeout.
	Linger time.Duration
	// Identify is mgmt's and ctrl's identify timeout.
	Identify time.Duration
}

// NetSpec is the network's latency model: each direction of each host
// pair gets a base latency in [LatencyMin, LatencyMax), each frame that
// plus up to Jitter.
type NetSpec struct {
	LatencyMin, LatencyMax, Jitter time.Duration
}

// FaultKind says what a Fault does.
type FaultKind int

// The kinds of Fault.
const (
	FaultCrash      FaultKind = iota + 1 // SIGKILL of Proc
	FaultStart                           // start Proc if it is down (a restart after a crash)
	FaultPause                           // SIGSTOP of Proc
	FaultResume                          // SIGCONT of Proc
	FaultPartition                       // cut every link between A and B (from A to B only if OneWay)
	FaultIsolate                         // cut Proc's host from every other, both ways (host lost)
	FaultHeal                            // heal every link
	FaultSlow                            // the links between A and B get Extra delay and Loss
	FaultHostile                         // a hostile peer does Hostile against Proc
	FaultSwitchover                      // the operator asks the master (if any) to hand over to Proc ("" best)
)

var faultNames = map[FaultKind]string{
	FaultCrash: "crash", FaultStart: "start", FaultPause: "pause", FaultResume: "resume",
	FaultPartition: "partition", FaultIsolate: "isolate", FaultHeal: "heal", FaultSlow: "slow",
	FaultHostile: "hostile", FaultSwitchover: "switchover",
}

// String is the kind's name.
func (k FaultKind) String() string {
	if s, ok := faultNames[k]; ok {
		return s
	}
	return fmt.Sprintf("fault(%d)", int(k))
}

// Fault is one event of the fault schedule.
type Fault struct {
	At     time.Duration
	Kind   FaultKind
	Proc   string
	A, B   []string
	OneWay bool
	Extra  time.Duration
	Loss   float64
	// Hostile is what a FaultHostile sends (see HostileKind), Variant
	// which of its forms.
	Hostile HostileKind
	Variant int
}

// String formats the fault for a trace.
func (f Fault) String() string {
	s := fmt.Sprintf("%9s %s", fmtDur(f.At), f.Kind)
	switch f.Kind {
	case FaultPartition:
		arrow := "|"
		if f.OneWay {
			arrow = "->"
		}
		s += fmt.Sprintf(" {%s} %s {%s}", joinNames(f.A), arrow, joinNames(f.B))
	case FaultSlow:
		s += fmt.Sprintf(" {%s}<->{%s} +%v loss %.0f%%", joinNames(f.A), joinNames(f.B), f.Extra, 100*f.Loss)
	case FaultHostile:
		s += fmt.Sprintf(" %s at %s", f.Hostile, f.Proc)
	case FaultSwitchover:
		to := f.Proc
		if to == "" {
			to = "(best)"
		}
		s += " to " + to
	case FaultHeal:
	default:
		s += " " + f.Proc
	}
	return s
}

// procNames lists every process of the scenario: mgmt, then ctrl and
// data pair by pair.
func (sc *Scenario) procNames() []string {
	var ns []string
	for _, m := range sc.Mgmts {
		ns = append(ns, m.ID)
	}
	for i := 1; i <= sc.Pairs; i++ {
		ns = append(ns, fmt.Sprintf("c%d", i), fmt.Sprintf("d%d", i))
	}
	return ns
}

// String describes the scenario's topology and timers.
func (sc *Scenario) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %d mgmt (", sc.Seed, len(sc.Mgmts))
	for i, m := range sc.Mgmts {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s prio %d", m.ID, m.Priority)
		if m.NoPreempt {
			b.WriteString(" nopreempt")
		}
		if m.PreemptDelay > 0 {
			fmt.Fprintf(&b, " preempt-delay %v", m.PreemptDelay)
		}
	}
	t := sc.Timers
	fmt.Fprintf(&b, "), %d pairs; heartbeat %v x%d, hello %v, mgmt-dead %v, peer-dead %v, mgmt's component dead %v, retry %v, dial %v, linger %v; latency %v-%v +%v jitter",
		sc.Pairs, t.Heartbeat, t.DeadMisses, t.Hello, t.MgmtDead, t.PeerDead, t.CompDead, t.Retry, t.Dial, t.Linger,
		sc.Net.LatencyMin, sc.Net.LatencyMax, sc.Net.Jitter)
	if sc.HAAnySource {
		b.WriteString("; ha-any-source")
	}
	if !sc.Watch {
		b.WriteString("; no-watch")
	}
	fmt.Fprintf(&b, "; heal at %s", fmtDur(sc.HealAt))
	return b.String()
}

// LivenessBound is how long, at most, a pair whose ctrl, data and some
// mgmt instances have been up and connected among themselves, with no
// other live mgmt in reach, may go without a hello coming back. It is
// the sum of the worst cases of each step, in order:
//
//   - the election among the reachable instances: a restarted instance
//     first waits for its HA connections (a dial timeout), then its
//     startup hold (a dead interval), the fallback claim (two more) or
//     the hold after a step-down (one more), the HA session to a lost
//     peer dying (haDead) and the preempt delay, plus a few heartbeats;
//   - stale sessions dying: mgmt's component session (CompDead, held by
//     a restarted component's predecessor: "in use"), ctrl's data link
//     (PeerDead) and a component's session to a silent mgmt (MgmtDead);
//   - a component's round through every mgmt address, each costing a
//     dial timeout at worst, then a retry wait; a redirect's graceful
//     close (linger), twice;
//   - data's retries (RetryDelay = Retry), three: a failed dial, a ctrl
//     refusing it while it knows a higher epoch, a short-lived link;
//   - three hello intervals and 100 ms of slack for the round trips.
func (sc *Scenario) LivenessBound() time.Duration {
	t := sc.Timers
	deadAfter := time.Duration(t.DeadMisses) * t.Heartbeat
	haDead := max(30*time.Millisecond, time.Duration(t.DeadMisses+1)*t.Heartbeat)
	var preempt time.Duration
	for _, m := range sc.Mgmts {
		preempt = max(preempt, m.PreemptDelay)
	}
	election := t.Dial + deadAfter + 3*deadAfter + haDead + preempt + 4*t.Heartbeat
	stale := t.CompDead + t.PeerDead + t.MgmtDead
	rounds := time.Duration(len(sc.Mgmts))*t.Dial + t.Retry + 2*t.Linger
	return election + stale + rounds + 3*t.Retry + 3*t.Hello + 100*time.Millisecond
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

// Generate derives a scenario from seed: 2 or 3 mgmt instances, 1 to 3
// pairs, timers drawn from realistic ranges, and up to 16 faults in a
// fault phase of 1 to 6 seconds.
func Generate(seed uint64) *Scenario {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	ms := time.Millisecond
	sc := &Scenario{Seed: seed, Start: map[string]time.Duration{}}
	n := 2 + r.IntN(2)
	for i := 1; i <= n; i++ {
		sc.Mgmts = append(sc.Mgmts, MgmtSpec{
			ID:           fmt.Sprintf("m%d", i),
			Priority:     uint32(r.IntN(3) * 100),
			NoPreempt:    r.IntN(4) == 0,
			PreemptDelay: pick(r, 0, 0, 50*ms, 200*ms),
		})
	}
	sc.Pairs = 1 + r.IntN(3)
	hb := pick(r, 10*ms, 20*ms, 50*ms)
	sc.Timers = Timers{
		Heartbeat:  hb,
		DeadMisses: pick(r, 2, 3, 3),
		Hello:      pick(r, 20*ms, 50*ms, 100*ms),
		MgmtDead:   pick(r, 30*ms, 100*ms, 300*ms),
		PeerDead:   pick(r, 100*ms, 300*ms, time.Second),
		CompDead:   pick(r, 100*ms, 300*ms, time.Second),
		Retry:      pick(r, 20*ms, 50*ms, 100*ms, 300*ms),
		Dial:       pick(r, 100*ms, 300*ms, 900*ms),
		Linger:     pick(r, 50*ms, 200*ms),
		Identify:   time.Second,
	}
	sc.Net = NetSpec{
		LatencyMin: 50 * time.Microsecond,
		LatencyMax: pick(r, 200*time.Microsecond, time.Millisecond, 3*ms),
		Jitter:     pick(r, 0, 100*time.Microsecond, time.Millisecond),
	}
	sc.HAAnySource = r.IntN(3) == 0
	// Watches in three seeds of four: both paths stay covered.
	sc.Watch = rand.New(rand.NewPCG(seed, 0x77617463686573)).IntN(4) != 0
	names := sc.procNames()
	for _, name := range names {
		sc.Start[name] = time.Duration(r.IntN(300)) * ms
	}
	sc.HealAt = time.Second + time.Duration(r.IntN(5000))*ms
	mgmts := names[:n]
	others := func(x string) []string {
		var out []string
		for _, y := range names {
			if y != x {
				out = append(out, y)
			}
		}
		return out
	}
	split := func() (a, b []string) {
		for _, x := range names {
			if r.IntN(2) == 0 {
				a = append(a, x)
			} else {
				b = append(b, x)
			}
		}
		if len(a) == 0 || len(b) == 0 {
			x := names[r.IntN(len(names))]
			return []string{x}, others(x)
		}
		return a, b
	}
	k := r.IntN(17)
	for range k {
		f := Fault{At: time.Duration(r.Int64N(int64(sc.HealAt)))}
		switch w := r.IntN(22); {
		case w < 3:
			f.Kind, f.Proc = FaultCrash, pick(r, names...)
		case w < 6:
			f.Kind, f.Proc = FaultStart, pick(r, names...)
		case w < 8:
			f.Kind, f.Proc = FaultPause, pick(r, names...)
		case w < 10:
			f.Kind, f.Proc = FaultResume, pick(r, names...)
		case w < 12:
			f.Kind = FaultPartition
			f.A, f.B = split()
			f.OneWay = r.IntN(3) == 0
		case w < 13:
			f.Kind, f.Proc = FaultIsolate, pick(r, names...)
		case w < 15:
			f.Kind = FaultHeal
		case w < 16:
			f.Kind = FaultSlow
			f.A, f.B = split()
			f.Extra = pick(r, 0, ms, 5*ms, 20*ms)
			f.Loss = pick(r, 0, 0.01, 0.1)
		case w < 20:
			f.Kind = FaultHostile
			f.Hostile = HostileKind(1 + r.IntN(int(hostileKinds)))
			f.Proc = f.Hostile.target(r, sc, mgmts)
			f.Variant = r.IntN(8)
		default:
			f.Kind = FaultSwitchover
			if r.IntN(2) == 0 {
				f.Proc = pick(r, mgmts...)
			}
		}
		sc.Faults = append(sc.Faults, f)
	}
	sort.SliceStable(sc.Faults, func(i, j int) bool { return sc.Faults[i].At < sc.Faults[j].At })
	return sc
}

// without returns a copy of sc whose fault schedule keeps only the
// faults at the indexes keep (sorted).
func (sc *Scenario) with(keep []int) *Scenario {
	c := *sc
	c.Faults = make([]Fault, 0, len(keep))
	for _, i := range keep {
		c.Faults = append(c.Faults, sc.Faults[i])
	}
	return &c
}

// syncInterval mirrors pkg/appliance's default.
func (t Timers) syncInterval() time.Duration {
	if t.Sync > 0 {
		return t.Sync
	}
	return min(t.Hello, 100*time.Millisecond)
}
