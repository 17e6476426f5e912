package appliance

import "time"

// Timer runs a function on the component's loop at a deadline (Node.At,
// Node.After): like time.AfterFunc, but on the loop, so the function
// needs no locks, and never after OnStop (the component stops every
// timer). Its methods must be called on the loop.
type Timer struct {
	rt  *Runtime
	f   func()
	t   *time.Timer
	gen uint64 // counts arms; a fire of an older arm is ignored
	on  bool   // armed and not yet fired or stopped
}

// At runs f on the loop at t (at once if t has passed), unless the timer
// is stopped or reset first. Loop only.
func (n *Node) At(t time.Time, f func()) *Timer {
	tm := &Timer{rt: n.rt, f: f}
	tm.Reset(t)
	return tm
}

// After runs f on the loop after d; see At.
func (n *Node) After(d time.Duration, f func()) *Timer { return n.At(time.Now().Add(d), f) }

// Reset arms the timer for t, replacing its deadline (whether it fired,
// was stopped or is pending). After the component stopped it does
// nothing. Loop only.
func (tm *Timer) Reset(t time.Time) {
	r := tm.rt
	tm.Stop()
	if r.stopped {
		return
	}
	tm.gen++
	gen := tm.gen
	tm.on = true
	if r.timers == nil {
		r.timers = make(map[*Timer]struct{})
	}
	r.timers[tm] = struct{}{}
	tm.t = time.AfterFunc(time.Until(t), func() {
		r.cfg.Loop.Post(func() {
			if tm.gen != gen || !tm.on || r.stopped {
				return // stopped or re-armed since
			}
			tm.on = false
			delete(r.timers, tm)
			tm.f()
		})
	})
}

// Stop keeps f from running if it has not yet; it reports whether it
// did. Loop only.
func (tm *Timer) Stop() bool {
	was := tm.on
	tm.on = false
	if tm.t != nil {
		tm.t.Stop()
		tm.t = nil
	}
	delete(tm.rt.timers, tm)
	return was
}

// stopTimers stops every pending timer (Runtime.Stop).
func (r *Runtime) stopTimers() {
	for tm := range r.timers {
		tm.Stop()
	}
}
