// Package ratelog limits repeated log lines: the first occurrence of a
// kind of event is logged at once, later ones within an interval are
// counted instead, and the first one after the interval is logged with a
// "suppressed" key saying how many were left out since the previous line.
//
// It is meant for events a remote party can trigger at will (refused
// connections, protocol errors, failed accepts): a flood of them must not
// write megabytes of log, yet the operator must see that it happens and
// roughly how often. Count the events in a metric too: a flood that stops
// within an interval leaves its suppressed count unlogged.
//
//	rl := ratelog.New(logger, 10*time.Second)
//	rl.Warn("refused-full", "connection refused: server full", "peer", addr)
//
// A Logger made by NewDebug writes the occurrences it leaves out at DEBUG
// instead of dropping them: for floods of a normal event (a hello
// dropped on every cycle while a link is cut), where a debug log should
// still hold every occurrence.
//
// A Logger is safe for concurrent use.
package ratelog

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// maxKeys bounds the kinds of events remembered: beyond it, kinds whose
// interval has passed are forgotten, and while none has, new kinds share
// one interval (overflowKey). Keys should come from a small set (a
// message kind, not a peer address).
const maxKeys = 256

// overflowKey is the key new kinds share while maxKeys are remembered.
const overflowKey = "\x00overflow"

// Logger logs through an hclog.Logger at most one line per key and
// interval.
type Logger struct {
	log      hclog.Logger
	interval time.Duration
	now      func() time.Time // time.Now; replaced in tests
	// debug: the suppressed occurrences are written at DEBUG.
	debug bool

	mu   sync.Mutex
	keys map[string]*window
}

// window is one key's current interval.
type window struct {
	start      time.Time // when its last line was logged
	suppressed uint64    // occurrences not logged since then
}

// New returns a Logger writing to log (nil discards) at most one line per
// key and interval.
func New(log hclog.Logger, interval time.Duration) *Logger {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Logger{log: log, interval: interval, now: time.Now, keys: make(map[string]*window)}
}

// NewDebug is New, but the occurrences left out are written at DEBUG
// (with the key suppressed_by naming the limiter's interval) rather
// than dropped.
func NewDebug(log hclog.Logger, interval time.Duration) *Logger {
	l := New(log, interval)
	l.debug = true
	return l
}

// Warn logs msg with args at WARN level, unless a line with the same key
// was logged less than the interval ago, in which case it only counts it.
// A line logged after suppressed ones carries "suppressed", their number.
func (l *Logger) Warn(key, msg string, args ...any) { l.emit(hclog.Warn, key, msg, args) }

// Error is Warn at ERROR level.
func (l *Logger) Error(key, msg string, args ...any) { l.emit(hclog.Error, key, msg, args) }

// Info is Warn at INFO level.
func (l *Logger) Info(key, msg string, args ...any) { l.emit(hclog.Info, key, msg, args) }

func (l *Logger) emit(level hclog.Level, key, msg string, args []any) {
	now := l.now()
	l.mu.Lock()
	w := l.keys[key]
	if w != nil && now.Sub(w.start) < l.interval {
		w.suppressed++
		l.mu.Unlock()
		l.suppressed(msg, args)
		return
	}
	if w == nil && len(l.keys) >= maxKeys {
		l.forget(now)
		if len(l.keys) >= maxKeys {
			key = overflowKey
			if w = l.keys[key]; w != nil && now.Sub(w.start) < l.interval {
				w.suppressed++
				l.mu.Unlock()
				l.suppressed(msg, args)
				return
			}
		}
	}
	if w == nil {
		w = &window{}
		l.keys[key] = w
	}
	suppressed := w.suppressed
	w.suppressed, w.start = 0, now
	l.mu.Unlock()
	if suppressed > 0 {
		args = append(args[:len(args):len(args)], "suppressed", suppressed, "interval", l.interval)
	}
	l.log.Log(level, msg, args...)
}

// suppressed writes an occurrence left out at DEBUG, for a NewDebug
// Logger.
func (l *Logger) suppressed(msg string, args []any) {
	if l.debug && l.log.IsDebug() {
		l.log.Debug(msg, append(args[:len(args):len(args)], "suppressed_by", l.interval)...)
	}
}

// forget drops the keys whose interval has passed; mu is held.
func (l *Logger) forget(now time.Time) {
	for k, w := range l.keys {
		if now.Sub(w.start) >= l.interval {
			delete(l.keys, k)
		}
	}
}
