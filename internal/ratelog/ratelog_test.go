package ratelog

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// clock is a manual clock for the tests.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newTestLogger() (*Logger, *clock, *bytes.Buffer) {
	var buf bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Trace, DisableTime: true})
	c := &clock{t: time.Unix(1000, 0)}
	l := New(log, 10*time.Second)
	l.now = c.now
	return l, c, &buf
}

func lines(buf *bytes.Buffer) []string {
	s := strings.TrimSpace(buf.String())
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestFirstLoggedThenSuppressedThenSummary(t *testing.T) {
	l, c, buf := newTestLogger()
	for i := 0; i < 1000; i++ {
		l.Warn("full", "connection refused: server full", "peer", "10.0.0.1:1234")
		c.advance(time.Millisecond) // 1 s in all: within the interval
	}
	got := lines(buf)
	if len(got) != 1 {
		t.Fatalf("%d lines for 1000 events within the interval, want 1:\n%s", len(got), buf)
	}
	if !strings.Contains(got[0], "[WARN]") || !strings.Contains(got[0], "connection refused: server full") ||
		!strings.Contains(got[0], "peer=10.0.0.1:1234") || strings.Contains(got[0], "suppressed") {
		t.Fatalf("first line %q", got[0])
	}
	c.advance(10 * time.Second)
	l.Warn("full", "connection refused: server full", "peer", "10.0.0.2:1")
	got = lines(buf)
	if len(got) != 2 || !strings.Contains(got[1], "suppressed=999") || !strings.Contains(got[1], "peer=10.0.0.2:1") {
		t.Fatalf("after the interval: %q, want a second line with suppressed=999", got)
	}
	// A new interval starts with that line: the next event is suppressed,
	// and one after a quiet interval is logged without a count.
	l.Warn("full", "connection refused: server full")
	c.advance(11 * time.Second)
	l.Warn("full", "connection refused: server full")
	c.advance(11 * time.Second)
	l.Warn("full", "connection refused: server full")
	got = lines(buf)
	if len(got) != 4 || !strings.Contains(got[2], "suppressed=1") || strings.Contains(got[3], "suppressed") {
		t.Fatalf("lines %q", got)
	}
}

func TestKeysAreIndependent(t *testing.T) {
	l, _, buf := newTestLogger()
	l.Warn("a", "event a")
	l.Error("b", "event b")
	l.Info("c", "event c")
	l.Warn("a", "event a")
	got := lines(buf)
	if len(got) != 3 || !strings.Contains(got[1], "[ERROR]") || !strings.Contains(got[2], "[INFO]") {
		t.Fatalf("lines %q", got)
	}
}

func TestCallerArgsNotModified(t *testing.T) {
	l, c, _ := newTestLogger()
	args := make([]any, 2, 10)
	args[0], args[1] = "k", "v"
	l.Warn("x", "m", args...)
	l.Warn("x", "m", args...)
	c.advance(time.Minute)
	l.Warn("x", "m", args...)
	if got := args[:cap(args)][2]; got != nil {
		t.Fatalf("caller's backing array written: %v", got)
	}
}

func TestKeysBounded(t *testing.T) {
	l, c, _ := newTestLogger()
	for i := 0; i < 10*maxKeys; i++ {
		l.Warn(strings.Repeat("k", i%50)+string(rune('a'+i%26))+time.Duration(i).String(), "m")
		c.advance(time.Second)
	}
	if n := len(l.keys); n > maxKeys {
		t.Fatalf("%d keys remembered, want at most %d", n, maxKeys)
	}
	// All at once, within one interval: the map stays bounded, and the
	// kinds beyond the bound share one line per interval.
	l, _, buf := newTestLogger()
	for i := 0; i < 10*maxKeys; i++ {
		l.Warn(time.Duration(i).String(), "m")
	}
	if n := len(l.keys); n > maxKeys+1 {
		t.Fatalf("%d keys remembered, want at most %d", n, maxKeys+1)
	}
	if n := len(lines(buf)); n != maxKeys+1 {
		t.Fatalf("%d lines, want %d", n, maxKeys+1)
	}
}

func TestNilLoggerAndConcurrentUse(t *testing.T) {
	l := New(nil, time.Second)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				l.Warn("k", "m", "j", j)
			}
		}()
	}
	wg.Wait()
}

// TestDebugKeepsTheSuppressed: a NewDebug Logger writes the first
// occurrence at its level, the ones within the interval at DEBUG, and
// the first after the interval at its level with the count; at a level
// above DEBUG the suppressed ones are not written at all.
func TestDebugKeepsTheSuppressed(t *testing.T) {
	for _, level := range []hclog.Level{hclog.Debug, hclog.Info} {
		var buf bytes.Buffer
		log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: level, DisableTime: true})
		c := &clock{t: time.Unix(1000, 0)}
		l := NewDebug(log, 10*time.Second)
		l.now = c.now
		for i := 0; i < 5; i++ {
			l.Warn("dropped", "hello dropped", "seq", i)
			c.advance(time.Second)
		}
		c.advance(10 * time.Second)
		l.Warn("dropped", "hello dropped", "seq", 5)
		got := lines(&buf)
		var warn, debug int
		for _, g := range got {
			switch {
			case strings.Contains(g, "[WARN]"):
				warn++
			case strings.Contains(g, "[DEBUG]") && strings.Contains(g, "suppressed_by=10s"):
				debug++
			default:
				t.Errorf("unexpected line %q", g)
			}
		}
		wantDebug := 4
		if level != hclog.Debug {
			wantDebug = 0
		}
		if warn != 2 || debug != wantDebug {
			t.Fatalf("level %v: %d WARN and %d DEBUG lines, want 2 and %d:\n%s", level, warn, debug, wantDebug, buf.String())
		}
		if last := got[len(got)-1]; !strings.Contains(last, "[WARN]") || !strings.Contains(last, "suppressed=4") || !strings.Contains(last, "seq=5") {
			t.Errorf("level %v: summary line %q, want WARN with suppressed=4", level, last)
		}
	}
}
