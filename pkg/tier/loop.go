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

	// The single deadline, touched only on the loop goroutine.
	timer  *time.Timer
	timerC <-chan time.Time
	timerF func()
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
		case <-l.timerC:
			l.timerC = nil
			if f := l.timerF; f != nil {
				l.timerF = nil
				f()
			}
		case <-l.stop:
			if l.timer != nil {
				l.timer.Stop()
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

// At arranges for f to run on the loop at time t, replacing any earlier
// deadline; a zero t cancels it. Call it only from the loop goroutine.
func (l *Loop) At(t time.Time, f func()) {
	if l.timer == nil {
		l.timer = time.NewTimer(time.Hour)
		l.timer.Stop()
	}
	l.timer.Stop()
	if t.IsZero() {
		l.timerC, l.timerF = nil, nil
		return
	}
	l.timer.Reset(time.Until(t))
	l.timerC, l.timerF = l.timer.C, f
}

// Close stops the loop and waits for the item running now, if any; work
// still queued is dropped.
func (l *Loop) Close() {
	l.once.Do(func() { close(l.stop) })
	<-l.done
}

// Done is closed when the loop has stopped.
func (l *Loop) Done() <-chan struct{} { return l.done }
