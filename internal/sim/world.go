package sim

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// t0 is the simulated wall clock at time zero. The machines see
// t0.Add(now); nothing in the package reads the real clock.
var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// event is one entry of the discrete-event queue: fn runs at at. Events
// at the same instant run in the order they were scheduled (seq).
type event struct {
	at  time.Duration
	seq uint64
	fn  func()
	e   *end // fn nil: the delivery of the head of e's direction
}

// eventQueue is a binary min-heap on (at, seq).
type eventQueue []event

func (q eventQueue) less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}

func (q *eventQueue) push(e event) {
	*q = append(*q, e)
	h := *q
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (q *eventQueue) pop() event {
	h := *q
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h[last] = event{}
	h = h[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(h) && h.less(l, m) {
			m = l
		}
		if r < len(h) && h.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
	return top
}

// proc is what every simulated process shares: whether it runs, its
// incarnation, and the work it could not do while paused.
type proc struct {
	name string
	host string
	up   bool // started and not crashed
	// paused is SIGSTOP: the kernel still accepts connections and
	// buffers what arrives, but the process runs nothing, not even its
	// timers, until resumed.
	paused bool
	inc    int // incarnation: bumped by every start; stale events check it
	// deferred holds what arrived (inbox) and what fell due (timers)
	// while paused; on resume the inbox runs first, as the shells read
	// the frames already buffered before a late tick (mgmt's
	// electionTick defers a late tick for them).
	inbox, timers []func()
	slots         [numSlots]timerSlot // named timers (tier.Loop.At)

	dirty   bool      // touched by the step: the checker looks at it
	m       *mgmtProc // the process, one of these
	c       *compProc //
	owner   any       // a hostile peer's *hostileProc
	hostile bool      // a hostile peer
}

func (p *proc) running() bool { return p.up && !p.paused }

// World is one simulated appliance: its processes, network and clock.
// It is not safe for concurrent use; runs are independent, so run
// several Worlds in parallel instead.
type World struct {
	sc   *Scenario
	opts Options
	now  time.Duration
	seq  uint64
	q    eventQueue
	rng  *rand.Rand // the network's and the shells' randomness

	net   *network
	mgmts []*mgmtProc
	comps []*compProc // ctrl and data, pair by pair
	pairs []*pairState
	hosts map[string]*proc

	chk      *checker
	trace    []string
	traceOn  bool
	failed   *Violation
	events   int
	stopped  bool
	nHostile int
	finalAt  time.Duration // when the final heal happened (-1 before)
	deadline time.Duration // end of the run at the latest
}

func newWorld(sc *Scenario, opts Options) *World {
	w := &World{
		sc:      sc,
		opts:    opts,
		rng:     rand.New(rand.NewPCG(sc.Seed, sc.Seed^0x5eed5eed5eed5eed)),
		hosts:   map[string]*proc{},
		traceOn: opts.Trace,
		finalAt: -1,
	}
	w.net = newNetwork(w)
	w.chk = newChecker(w)
	return w
}

// at schedules fn at the absolute time t (not before now).
func (w *World) at(t time.Duration, fn func()) {
	if t < w.now {
		t = w.now
	}
	w.seq++
	w.q.push(event{at: t, seq: w.seq, fn: fn})
}

// after schedules fn d from now.
func (w *World) after(d time.Duration, fn func()) { w.at(w.now+d, fn) }

// wall is the machines' clock reading now.
func (w *World) wall() time.Time { return t0.Add(w.now) }

// onProc runs fn as process p's incarnation inc: dropped if that
// incarnation is gone, deferred while p is paused. timer says whether
// fn is a timer (run after the inbox on resume) or an arrival.
func (w *World) onProc(p *proc, inc int, timer bool, fn func()) {
	if !p.up || p.inc != inc {
		return
	}
	if p.paused {
		if timer {
			p.timers = append(p.timers, fn)
		} else {
			p.inbox = append(p.inbox, fn)
		}
		return
	}
	fn()
	w.chk.touched(p)
}

// procAfter schedules a timer of p's current incarnation.
func (w *World) procAfter(p *proc, d time.Duration, fn func()) {
	inc := p.inc
	w.after(d, func() { w.onProc(p, inc, true, fn) })
}

// The named timers of a process (tier.Loop.At keys).
const (
	slotElection = iota
	slotHandshake
	slotSync
	numSlots
)

// timerSlot is one named timer: armed for at, with fn. At most one
// event is pending for it (at pending); a re-arm to the same or a later
// instant reuses it, which saves most events: the shells re-arm after
// every step.
type timerSlot struct {
	armed   bool
	at      time.Duration
	fn      func()
	pending time.Duration // -1: no event pending
	inc     int
}

// slot arms p's named timer key at t (zero time: disarm), replacing
// what was armed there, like tier.Loop.At: fn runs at t, not before.
func (w *World) slot(p *proc, key int, t time.Time, fn func()) {
	s := &p.slots[key]
	if s.inc != p.inc {
		*s = timerSlot{pending: -1, inc: p.inc}
	}
	if t.IsZero() {
		s.armed, s.fn = false, nil
		return
	}
	at := max(t.Sub(t0), w.now)
	s.armed, s.at, s.fn = true, at, fn
	if s.pending >= 0 && s.pending <= at {
		return // the pending event comes first and re-arms for at
	}
	s.pending = at
	inc := p.inc
	w.at(at, func() { w.slotDue(p, key, inc, at) })
}

func (w *World) slotDue(p *proc, key, inc int, at time.Duration) {
	s := &p.slots[key]
	if !p.up || p.inc != inc || s.inc != inc || s.pending != at {
		return
	}
	s.pending = -1
	if !s.armed {
		return
	}
	if s.at > w.now {
		s.pending = s.at
		next := s.at
		w.at(next, func() { w.slotDue(p, key, inc, next) })
		return
	}
	w.onProc(p, inc, true, func() {
		// Still armed for a time now past? (A re-arm while paused
		// replaces it, as the loop would.)
		if s.armed && s.at <= w.now && s.inc == inc {
			s.armed = false
			s.fn()
		} else if s.armed && s.pending < 0 {
			next := s.at
			s.pending = next
			w.at(next, func() { w.slotDue(p, key, inc, next) })
		}
	})
}

// resume runs what p could not while paused: the inbox, then the
// timers that fell due.
func (w *World) resume(p *proc) {
	if !p.up || !p.paused {
		return
	}
	p.paused = false
	in, tm := p.inbox, p.timers
	p.inbox, p.timers = nil, nil
	inc := p.inc
	for _, fn := range in {
		w.at(w.now, func() { w.onProc(p, inc, false, fn) })
	}
	for _, fn := range tm {
		w.at(w.now, func() { w.onProc(p, inc, true, fn) })
	}
}

// tracef records a line of the run's trace when tracing is on.
func (w *World) tracef(format string, args ...any) {
	if !w.traceOn {
		return
	}
	line := fmt.Sprintf("%9s ", fmtDur(w.now)) + fmt.Sprintf(format, args...)
	w.trace = append(w.trace, line)
	if max := w.opts.traceLimit(); len(w.trace) > 2*max {
		w.trace = append(w.trace[:0], w.trace[len(w.trace)-max:]...)
	}
}

// fail records the first violation and stops the run.
func (w *World) fail(invariant, format string, args ...any) {
	if w.failed != nil {
		return
	}
	w.failed = &Violation{Invariant: invariant, At: w.now, Detail: fmt.Sprintf(format, args...)}
	w.tracef("VIOLATION %s: %s", invariant, w.failed.Detail)
	w.stopped = true
}

// loop runs events until the run ends.
func (w *World) loop() {
	for !w.stopped && len(w.q) > 0 {
		e := w.q.pop()
		if e.at > w.deadline {
			break
		}
		w.now = e.at
		w.events++
		if e.fn != nil {
			e.fn()
		} else {
			w.net.deliver(e.e)
		}
		w.chk.afterStep()
		if w.opts.MaxEvents > 0 && w.events >= w.opts.MaxEvents {
			w.fail("budget", "more than %d events", w.opts.MaxEvents)
		}
	}
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%d.%03ds", d/time.Second, (d%time.Second)/time.Millisecond)
}

func joinNames(ns []string) string { return strings.Join(ns, ",") }
