package sim

import (
	"fmt"
	"time"
)

// Bug is a deliberate bug injected into the simulator's copy of the
// shells, for tests that show the checker can fail.
type Bug int

// The bugs that can be injected.
const (
	BugNone Bug = iota
	// BugForgetEpoch: a restarted mgmt ignores its epoch file, as if it
	// had none (caught by InvEpochs, and InvOneMaster where it re-takes
	// an epoch).
	BugForgetEpoch
	// BugLoseSessionDown: mgmt's shell never tells its handshake machine
	// that a component session ended, so a restarted component finds
	// its place taken forever (caught by InvLiveness).
	BugLoseSessionDown
)

// String is the bug's name.
func (b Bug) String() string {
	switch b {
	case BugNone:
		return "none"
	case BugForgetEpoch:
		return "forget-epoch"
	case BugLoseSessionDown:
		return "lose-session-down"
	}
	return fmt.Sprintf("bug(%d)", int(b))
}

// Options tune a run; the zero value is a plain, silent run.
type Options struct {
	// Trace records the run's trace (faults, mastership, handshake
	// steps); Verbose adds every hello and heartbeat-level event.
	Trace, Verbose bool
	// TraceLimit is how many trace lines are kept (the last ones);
	// zero means 400.
	TraceLimit int
	// Bug injects a bug (tests only).
	Bug Bug
	// MaxEvents bounds a run (zero: no bound beyond the deadline).
	MaxEvents int
	// Strict makes the known limitation a failure too (see
	// Stats.KnownEpochAhead).
	Strict bool
}

func (o Options) traceLimit() int {
	if o.TraceLimit > 0 {
		return o.TraceLimit
	}
	return 400
}

// Violation is a broken invariant.
type Violation struct {
	// Invariant is one of the Inv* names.
	Invariant string
	// At is the simulated time.
	At time.Duration
	// Detail says what happened.
	Detail string
}

func (v *Violation) String() string {
	return fmt.Sprintf("%s violated at %s: %s", v.Invariant, fmtDur(v.At), v.Detail)
}

// Result is the outcome of one run.
type Result struct {
	// Violation is the first invariant broken, nil if none.
	Violation *Violation
	// Stats counts what the run exercised.
	Stats Stats
	// SimTime is how far the simulated clock went.
	SimTime time.Duration
	// Trace is the tail of the trace, with Options.Trace.
	Trace []string
}

// livenessTick is how often the liveness bound is checked.
const livenessTick = 50 * time.Millisecond

// Run runs scenario sc and checks every invariant after every step.
func Run(sc *Scenario, opts Options) *Result {
	w := newWorld(sc, opts)
	w.build()
	for _, name := range sc.procNames() {
		p := w.hosts[name]
		w.at(sc.Start[name], func() { w.startProc(p) })
	}
	for _, f := range sc.Faults {
		w.at(f.At, func() { w.apply(f) })
	}
	w.at(sc.HealAt, w.finalHeal)
	var tick func()
	tick = func() {
		if w.chk.liveness() {
			w.stopped = true
			return
		}
		w.after(livenessTick, tick)
	}
	w.after(livenessTick, tick)
	w.deadline = sc.HealAt + w.settle() + 2*sc.LivenessBound()
	w.loop()
	if w.failed == nil && !w.stopped {
		w.fail(InvLiveness, "the run ended at %s without every pair cycling three times after the final heal", fmtDur(w.now))
	}
	w.chk.stats.Events = w.events
	return &Result{Violation: w.failed, Stats: w.chk.stats, SimTime: w.now, Trace: w.traceTail()}
}

func (w *World) traceTail() []string {
	if max := w.opts.traceLimit(); len(w.trace) > max {
		return w.trace[len(w.trace)-max:]
	}
	return w.trace
}

// settle is how long after the final heal the run goes on at least:
// restarted instances reach their peers, hold, elect and preempt.
func (w *World) settle() time.Duration {
	t := w.sc.Timers
	deadAfter := time.Duration(t.DeadMisses) * t.Heartbeat
	var preempt time.Duration
	for _, m := range w.sc.Mgmts {
		preempt = max(preempt, m.PreemptDelay)
	}
	return t.Dial + 6*deadAfter + preempt + 4*t.Heartbeat
}

// build creates the processes.
func (w *World) build() {
	for _, spec := range w.sc.Mgmts {
		m := newMgmt(w, spec)
		m.proc.m = m
		w.mgmts = append(w.mgmts, m)
		w.hosts[m.host] = &m.proc
	}
	for i := 1; i <= w.sc.Pairs; i++ {
		ps := &pairState{id: fmt.Sprintf("p%d", i), lastReturn: -1, stableSince: -1}
		ps.ctrl = newComp(w, ps, true)
		ps.data = newComp(w, ps, false)
		for _, c := range []*compProc{ps.ctrl, ps.data} {
			c.proc.c = c
			w.comps = append(w.comps, c)
			w.hosts[c.host] = &c.proc
		}
		w.pairs = append(w.pairs, ps)
	}
}

func (w *World) pair(id string) *pairState {
	for _, ps := range w.pairs {
		if ps.id == id {
			return ps
		}
	}
	return nil
}

func (w *World) startProc(p *proc) {
	if p.up {
		return
	}
	switch {
	case p.m != nil:
		p.m.start()
	case p.c != nil:
		p.c.start()
	}
	w.chk.touched(p)
	w.net.reevaluate()
	w.chk.changed(FaultStart)
}

func (w *World) crashProc(p *proc) {
	if !p.up {
		return
	}
	switch {
	case p.m != nil:
		p.m.crash()
	case p.c != nil:
		p.c.crash()
	}
}

// apply carries out one fault of the schedule.
func (w *World) apply(f Fault) {
	w.chk.stats.Faults++
	w.tracef("FAULT %s", f.String()[10:])
	n := w.net
	switch f.Kind {
	case FaultCrash:
		w.crashProc(w.hosts[f.Proc])
	case FaultStart:
		w.startProc(w.hosts[f.Proc])
	case FaultPause:
		if p := w.hosts[f.Proc]; p.up {
			p.paused = true
		}
	case FaultResume:
		w.resume(w.hosts[f.Proc])
	case FaultPartition:
		for _, a := range f.A {
			for _, b := range f.B {
				n.link(a, b).cut = true
				if !f.OneWay {
					n.link(b, a).cut = true
				}
			}
		}
	case FaultIsolate:
		for _, o := range w.sc.procNames() {
			if o != f.Proc {
				n.link(f.Proc, o).cut = true
				n.link(o, f.Proc).cut = true
			}
		}
	case FaultHeal:
		w.healLinks()
	case FaultSlow:
		for _, a := range f.A {
			for _, b := range f.B {
				for _, l := range []*linkState{n.link(a, b), n.link(b, a)} {
					l.extra, l.loss = f.Extra, f.Loss
				}
			}
		}
	case FaultHostile:
		w.spawnHostile(f)
	case FaultSwitchover:
		for _, m := range w.mgmts {
			if m.isMaster() && !m.paused {
				inc := m.inc
				w.onProc(&m.proc, inc, false, func() { m.switchover(f.Proc) })
				break
			}
		}
	}
	n.reevaluate()
	w.chk.changed(f.Kind)
}

func (w *World) healLinks() {
	for _, l := range w.net.links {
		l.cut, l.extra, l.loss = false, 0, 0
	}
}

// finalHeal ends the fault phase: every link heals, every paused
// process resumes and every crashed one starts again.
func (w *World) finalHeal() {
	w.tracef("FINAL HEAL: every link heals, every process runs")
	w.finalAt = w.now
	w.healLinks()
	for _, name := range w.sc.procNames() {
		p := w.hosts[name]
		if !p.up {
			switch {
			case p.m != nil:
				p.m.start()
			case p.c != nil:
				p.c.start()
			}
			w.chk.touched(p)
		} else {
			w.resume(p)
		}
	}
	w.net.reevaluate()
	w.chk.changed(FaultHeal)
}
