package relay

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// failingListener fails every Accept with EMFILE, as a process out of
// file descriptors does, and counts the calls.
type failingListener struct {
	calls  atomic.Int64
	closed chan struct{}
	once   sync.Once
}

func (l *failingListener) Accept() (net.Conn, error) {
	select {
	case <-l.closed:
		return nil, net.ErrClosed
	default:
	}
	l.calls.Add(1)
	return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
}
func (l *failingListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *failingListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

type lineCounter struct {
	mu    sync.Mutex
	lines []string
}

func (w *lineCounter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines = append(w.lines, string(p))
	return len(p), nil
}

// TestAcceptBackoff: an accept that keeps failing (EMFILE) is retried
// after 5 ms doubling to 1 s, not in a spin, and logged once per second
// at most; the loop ends at once when the relay stops.
func TestAcceptBackoff(t *testing.T) {
	var out lineCounter
	cfg := DefaultConfig()
	cfg.AgentAddr, cfg.CommandsAddr = "127.0.0.1:161", "127.0.0.1:0"
	cfg.NotifySecurity.Community, cfg.CommandSecurity.Community = "n", "c"
	r, err := New(cfg, hclog.New(&hclog.LoggerOptions{Output: &out}))
	if err != nil {
		t.Fatal(err)
	}
	ln := &failingListener{closed: make(chan struct{})}
	p := newPort(r, portCommands, ln)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.accept(ctx) }()
	// 5+10+20+40+80+160+320 ms = 635 ms for the first 8 calls: wait
	// for them, then check how long they took at least.
	start := time.Now()
	deadline := time.Now().Add(20 * time.Second)
	for ln.calls.Load() < 8 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d accepts in 20 s", ln.calls.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if el := time.Since(start); el < 600*time.Millisecond {
		t.Fatalf("8 failed accepts in %v: no back-off", el)
	}
	cancel()
	_ = ln.Close()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("accept loop did not stop")
	}
	if n := p.stats().AcceptErrors; n < 8 {
		t.Fatalf("%d accept errors counted, want >= 8", n)
	}
	out.mu.Lock()
	defer out.mu.Unlock()
	if len(out.lines) > 2 || !strings.Contains(out.lines[0], "accept failed; backing off") {
		t.Fatalf("%d log lines for the failures, want at most 2 (one a second):\n%s", len(out.lines), strings.Join(out.lines, ""))
	}
}
