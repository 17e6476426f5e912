package tier

import (
	"sync"
	"time"
)

// Loop runs a component's protocol work on one goroutine, in the order it
// was posted. Create it with NewLoop; Close stops it.
type Loop struct {
	work chan func()
	stop chan struct{}
	done chan struct{}
	once sync.Once

	timers map[string]*loopTimer // loop goroutine only
}

// NewLoop starts a loop whose queue holds up to queue pending items;
// Post blocks while it is full (backpressure on the session readers).
func NewLoop(queue int) *Loop {
	if queue <= 0 {
		queue = 1024
	}
	l := &Loop{work: make(chan func(), queue), stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

func (l *Loop) run() {
	defer close(l.done)
	for {
		select {
		case f := <-l.work:
			f()
		case <-l.stop:
			for _, lt := range l.timers {
				if lt.t != nil {
					lt.t.Stop()
				}
			}
			return
		}
	}
}

// Post queues f to run on the loop. It reports false, without running f,
// once the loop is stopped.
func (l *Loop) Post(f func()) bool {
	select {
	case <-l.stop:
		return false
	default:
	}
	select {
	case l.work <- f:
		return true
	case <-l.stop:
		return false
	}
}

// Do runs f on the loop and waits for it; false if the loop is stopped.
func (l *Loop) Do(f func()) bool {
	ran := make(chan struct{})
	if !l.Post(func() { f(); close(ran) }) {
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
		l.Post(func() {
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
	l.once.Do(func() { close(l.stop) })
	<-l.done
}

// Done is closed when the loop has stopped.
func (l *Loop) Done() <-chan struct{} { return l.done }
