package ratelog

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestLimiter(t *testing.T) {
	var buf bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info})
	l := New(log, time.Second)
	now := time.Unix(0, 0)
	l.now = func() time.Time { return now }
	for range 1000 {
		l.Warn("a", "bad thing", "peer", "x")
	}
	l.Warn("b", "other thing")
	now = now.Add(1500 * time.Millisecond)
	l.Warn("a", "bad thing", "peer", "y")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], "peer=x") || strings.Contains(lines[0], "suppressed") {
		t.Errorf("first line %q", lines[0])
	}
	if !strings.Contains(lines[1], "other thing") {
		t.Errorf("second line %q", lines[1])
	}
	if !strings.Contains(lines[2], "peer=y") || !strings.Contains(lines[2], "suppressed=999") {
		t.Errorf("third line %q", lines[2])
	}
}

func TestLimiterConcurrent(t *testing.T) {
	var buf syncBuf
	l := New(hclog.New(&hclog.LoggerOptions{Output: &buf}), time.Hour)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				l.Error("k", "flood")
			}
		}()
	}
	wg.Wait()
	if n := strings.Count(buf.String(), "flood"); n != 1 {
		t.Fatalf("%d lines for 8000 calls in one interval, want 1", n)
	}
}

func TestLimiterBelowLevel(t *testing.T) {
	var buf bytes.Buffer
	l := New(hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Error}), time.Hour)
	l.Warn("k", "hidden")
	l.Error("k2", "shown")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), "shown") {
		t.Fatalf("log %q", buf.String())
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
