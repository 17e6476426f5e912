// Package ratelog logs repeated warnings once per interval: the first
// occurrence of a key is logged at once, the next ones are counted, and
// when the interval has passed the next occurrence is logged with
// suppressed=N, the number left out since the last line. A flood of bad
// input thus costs a few log lines per interval, not one per packet.
package ratelog

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Limiter logs through a go-hclog logger, at most once per interval per
// key. It is safe for concurrent use. Its memory grows with the number
// of distinct keys: use a small fixed set (a reason, not an address).
type Limiter struct {
	log      hclog.Logger
	interval time.Duration
	now      func() time.Time

	mu   sync.Mutex
	keys map[string]*entry
}

type entry struct {
	last       time.Time
	suppressed uint64
}

// New returns a Limiter that logs to log at most once per interval per
// key. A nil log discards everything; interval 0 means 10 s.
func New(log hclog.Logger, interval time.Duration) *Limiter {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if interval <= 0 {
		interval = 10 * time.Second
	}
	return &Limiter{log: log, interval: interval, now: time.Now, keys: map[string]*entry{}}
}

// Warn logs msg with args at WARN unless key was logged less than an
// interval ago, in which case it only counts it.
func (l *Limiter) Warn(key, msg string, args ...any) { l.emit(hclog.Warn, key, msg, args) }

// Error is Warn at ERROR level.
func (l *Limiter) Error(key, msg string, args ...any) { l.emit(hclog.Error, key, msg, args) }

// Info is Warn at INFO level.
func (l *Limiter) Info(key, msg string, args ...any) { l.emit(hclog.Info, key, msg, args) }

func (l *Limiter) emit(level hclog.Level, key, msg string, args []any) {
	if l.log.GetLevel() > level {
		return
	}
	now := l.now()
	l.mu.Lock()
	e := l.keys[key]
	if e == nil {
		e = &entry{}
		l.keys[key] = e
	} else if now.Sub(e.last) < l.interval {
		e.suppressed++
		l.mu.Unlock()
		return
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	l.mu.Unlock()
	if n > 0 {
		args = append(args[:len(args):len(args)], "suppressed", n)
	}
	l.log.Log(level, msg, args...)
}
