// Package ratelog rate-limits warning lines: the first line of a key is
// logged, the next ones within the interval are held back and counted,
// and the first one after the interval is logged with suppressed=N.
// Hostile input must cost a log line per interval, not one per packet.
package ratelog

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// maxKeys bounds the keys a Limiter remembers; past it the ones whose
// interval is over are forgotten, then, if still full, all of them (their
// held-back counts are lost, which costs at most one extra line per key).
const maxKeys = 1024

// Limiter logs at most one line per key per interval. It is safe for
// concurrent use. An interval of 0 or less logs every line.
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

// New returns a Limiter logging to logger.
func New(logger hclog.Logger, interval time.Duration) *Limiter {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Limiter{log: logger, interval: interval, now: time.Now, keys: make(map[string]*entry)}
}

// SetClock replaces time.Now (tests).
func (l *Limiter) SetClock(now func() time.Time) {
	l.mu.Lock()
	l.now = now
	l.mu.Unlock()
}

// Warn logs msg with args at WARN unless a line of key was logged less
// than the interval ago; then it only counts it. The next line of key
// logged carries suppressed=N, the count held back.
func (l *Limiter) Warn(key, msg string, args ...any) {
	if n, ok := l.allow(key); ok {
		if n > 0 {
			args = append(args, "suppressed", n)
		}
		l.log.Warn(msg, args...)
	}
}

// allow reports whether a line of key may be logged now, and how many
// were held back since the last one.
func (l *Limiter) allow(key string) (uint64, bool) {
	if l.interval <= 0 {
		return 0, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	e := l.keys[key]
	if e == nil {
		if len(l.keys) >= maxKeys {
			l.prune(now)
		}
		l.keys[key] = &entry{last: now}
		return 0, true
	}
	if now.Sub(e.last) < l.interval {
		e.suppressed++
		return 0, false
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	return n, true
}

func (l *Limiter) prune(now time.Time) {
	for k, e := range l.keys {
		if now.Sub(e.last) >= l.interval {
			delete(l.keys, k)
		}
	}
	if len(l.keys) >= maxKeys {
		clear(l.keys)
	}
}
