package tier

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Loop runs a component's protocol work on one goroutine, in the order it
// was posted. Create it with NewLoop; Close stops it.
//
// Posted work is queued under a mutex and taken by the loop a batch at a
// time: a stream of frames costs one wake-up of the loop per batch, not
// one channel operation per frame.
//
// Urgent work (PostUrgent, AtUrgent) has a lane of its own: the loop
// runs it before any other queued work and between any two items of a
// batch, so that it never waits behind a backlog (mgmt's heartbeats
// behind a thousand components connecting at once).
type Loop struct {
	max  int
	wake chan struct{} // one token: the queue went from empty to not
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu      sync.Mutex
	urgent  []func()
	nUrgent atomic.Int32 // len(urgent), read without the lock between items
	queue   []func()
	spare   []func()      // the last batch's array, for reuse
	space   chan struct{} // closed when room was made; nil while no one waits
	stopped bool

	timers map[string]*loopTimer // loop goroutine only
}

// spinTurns is how many times the loop yields, looking for more work,
// before it sleeps: a stream of frames then costs few wake-ups.
const spinTurns = 2

// NewLoop starts a loop whose queue holds up to queue pending items;
// Post blocks while it is full (backpressure on the session readers).
func NewLoop(queue int) *Loop {
	if queue <= 0 {
		queue = 1024
	}
	l := &Loop{max: queue, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

func (l *Loop) run() {
	defer close(l.done)
	idle := 0
	for {
		if idle >= spinTurns {
			select {
			case <-l.wake:
			case <-l.stop:
				l.stopTimers()
				return
			}
		} else {
			runtime.Gosched() // more may come at once: look again before sleeping
		}
		if !l.runUrgent() {
			l.stopTimers()
			return
		}
		l.mu.Lock()
		if len(l.queue) == 0 {
			l.mu.Unlock()
			idle++
			continue
		}
		idle = 0
		batch := l.queue
		l.queue, l.spare = l.spare[:0], nil
		if l.space != nil {
			close(l.space) // wake the posters waiting for room
			l.space = nil
		}
		l.mu.Unlock()
		for i, f := range batch {
			select {
			case <-l.stop:
				l.stopTimers()
				return
			default:
			}
			if l.nUrgent.Load() > 0 && !l.runUrgent() {
				l.stopTimers()
				return
			}
			f()
			batch[i] = nil
		}
		l.mu.Lock()
		if l.spare == nil && cap(batch) <= 4*l.max {
			l.spare = batch[:0]
		}
		l.mu.Unlock()
	}
}

// runUrgent runs the urgent work queued; false if the loop was stopped.
func (l *Loop) runUrgent() bool {
	for l.nUrgent.Load() > 0 {
		l.mu.Lock()
		work := l.urgent
		l.urgent = nil
		l.nUrgent.Store(0)
		l.mu.Unlock()
		for _, f := range work {
			select {
			case <-l.stop:
				return false
			default:
			}
			f()
		}
	}
	return true
}

func (l *Loop) stopTimers() {
	for _, lt := range l.timers {
		if lt.t != nil {
			lt.t.Stop()
		}
	}
}

// Post queues f to run on the loop. It reports false, without running f,
// once the loop is stopped.
func (l *Loop) Post(f func()) bool {
	l.mu.Lock()
	for !l.stopped && len(l.queue) >= l.max {
		if l.space == nil {
			l.space = make(chan struct{})
		}
		space := l.space
		l.mu.Unlock()
		select {
		case <-space:
		case <-l.stop:
		}
		l.mu.Lock()
	}
	if l.stopped {
		l.mu.Unlock()
		return false
	}
	l.queue = append(l.queue, f)
	first := len(l.queue) == 1
	l.mu.Unlock()
	if first {
		select {
		case l.wake <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
	return true
}

// PostUrgent queues f to run on the loop before the work queued with
// Post, and between two items of a batch already taken: it waits for
// the item running now only. It never blocks (keep urgent work small
// and bounded: mgmt's heartbeats and election, not a peer's flood). It
// reports false, without running f, once the loop is stopped.
func (l *Loop) PostUrgent(f func()) bool {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return false
	}
	l.urgent = append(l.urgent, f)
	l.nUrgent.Store(int32(len(l.urgent)))
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
	return true
}

// Do runs f on the loop and waits for it; false if the loop is stopped.
func (l *Loop) Do(f func()) bool { return l.do(f, l.Post) }

// DoUrgent is Do on the urgent lane (PostUrgent): for a reader that
// must answer while the loop works through a backlog, such as the
// operator's status.
func (l *Loop) DoUrgent(f func()) bool { return l.do(f, l.PostUrgent) }

func (l *Loop) do(f func(), post func(func()) bool) bool {
	ran := make(chan struct{})
	if !post(func() { f(); close(ran) }) {
		return false
	}
	select {
	case <-ran:
		return true
	case <-l.done:
		return false
	}
}

// At arranges for f to run on the loop at time t, replacing the earlier
// deadline of the same key; a zero t cancels it. A component has one key
// per machine that wants ticks. Call it only from the loop goroutine.
func (l *Loop) At(key string, t time.Time, f func()) {
	l.at(key, t, f, l.Post)
}

// AtUrgent is At for urgent work: f is posted with PostUrgent when t
// comes. A key is either urgent or not; do not mix At and AtUrgent on
// one.
func (l *Loop) AtUrgent(key string, t time.Time, f func()) {
	l.at(key, t, f, l.PostUrgent)
}

func (l *Loop) at(key string, t time.Time, f func(), post func(func()) bool) {
	if l.timers == nil {
		l.timers = make(map[string]*loopTimer)
	}
	lt := l.timers[key]
	if lt == nil {
		lt = &loopTimer{}
		l.timers[key] = lt
	}
	lt.gen++
	if lt.t != nil {
		lt.t.Stop()
		lt.t = nil
	}
	if t.IsZero() {
		return
	}
	gen := lt.gen
	lt.t = time.AfterFunc(time.Until(t), func() {
		post(func() {
			if lt.gen == gen { // not re-armed or cancelled since
				lt.t = nil
				f()
			}
		})
	})
}

// loopTimer is one deadline of a Loop; fields are loop-goroutine only.
type loopTimer struct {
	t   *time.Timer
	gen uint64
}

// Close stops the loop and waits for the item running now, if any; work
// still queued is dropped.
func (l *Loop) Close() {
	l.once.Do(func() {
		l.mu.Lock()
		l.stopped = true
		l.mu.Unlock()
		close(l.stop)
	})
	<-l.done
}

// Done is closed when the loop has stopped.
func (l *Loop) Done() <-chan struct{} { return l.done }
