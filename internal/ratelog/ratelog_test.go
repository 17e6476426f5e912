package ratelog

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSpace(s.b.String()), "\n")
}

func TestLimiter(t *testing.T) {
	var out syncBuf
	l := New(hclog.New(&hclog.LoggerOptions{Output: &out}), time.Second)
	now := time.Unix(1000, 0)
	l.SetClock(func() time.Time { return now })
	for range 1000 {
		l.Warn("accept", "accept failed", "error", "too many open files")
	}
	l.Warn("other", "other failed")
	now = now.Add(time.Second)
	l.Warn("accept", "accept failed", "error", "too many open files")
	l.Warn("accept", "accept failed", "error", "too many open files")
	got := out.lines()
	if len(got) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(got), strings.Join(got, "\n"))
	}
	if strings.Contains(got[0], "suppressed") || !strings.Contains(got[2], "suppressed=999") {
		t.Fatalf("suppressed counts wrong:\n%s", strings.Join(got, "\n"))
	}
}

func TestLimiterConcurrentAndBounded(t *testing.T) {
	var out syncBuf
	l := New(hclog.New(&hclog.LoggerOptions{Output: &out}), time.Hour)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				l.Warn(string(rune('a'+g))+strings.Repeat("x", i%3000), "m")
			}
		}()
	}
	wg.Wait()
	l.mu.Lock()
	n := len(l.keys)
	l.mu.Unlock()
	if n > maxKeys {
		t.Fatalf("%d keys remembered, bound %d", n, maxKeys)
	}
}

func TestLimiterZeroIntervalLogsAll(t *testing.T) {
	var out syncBuf
	l := New(hclog.New(&hclog.LoggerOptions{Output: &out}), 0)
	for range 5 {
		l.Warn("k", "m")
	}
	if n := len(out.lines()); n != 5 {
		t.Fatalf("%d lines, want 5", n)
	}
}
