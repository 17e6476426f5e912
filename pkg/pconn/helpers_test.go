package pconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitFor is the generous bound on any event a test waits for. Tests wait
// for events, never for time to pass.
const waitFor = 20 * time.Second

// recorder is an EventHandler that keeps every event and lets tests wait
// for one.
type recorder struct {
	mu     sync.Mutex
	events []Event
	ch     chan Event
}

func newRecorder() *recorder { return &recorder{ch: make(chan Event, 1024)} }

func (r *recorder) HandleEvent(ev Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	select {
	case r.ch <- ev:
	default:
	}
}

// next waits for the next event of type et, skipping others.
func (r *recorder) next(t *testing.T, et EventType) Event {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case ev := <-r.ch:
			if ev.Type == et {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %v event within %v", et, waitFor)
		}
	}
}

// inbox is a Handler that copies every frame into a channel.
type inbox struct{ ch chan Message }

func newInbox() *inbox { return &inbox{ch: make(chan Message, 100000)} }

func (b *inbox) ServeFrame(s *Session, m Message) error {
	b.ch <- Message{Type: m.Type, Flags: m.Flags, Payload: append([]byte(nil), m.Payload...)}
	return nil
}

func (b *inbox) next(t *testing.T) Message {
	t.Helper()
	select {
	case m := <-b.ch:
		return m
	case <-time.After(waitFor):
		t.Fatalf("no frame within %v", waitFor)
	}
	return Message{}
}

// echo is a Handler that sends every frame back.
var echo = HandlerFunc(func(s *Session, m Message) error { return s.Send(m.Type, m.Payload) })

func testConfig(h Handler, ev EventHandler) Config {
	cfg := DefaultConfig(h)
	cfg.EventHandler = ev
	cfg.RetryInterval = 20 * time.Millisecond
	// Most tests send large frames to servers that never call
	// SetIdentified; limits_test.go tests the unidentified limit.
	cfg.MaxFrameSizeUnidentified = 0
	return cfg
}

func listen(t *testing.T, cfg Config) *Server {
	t.Helper()
	srv, err := Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func dial(t *testing.T, cfg Config, addrs ...string) *Client {
	t.Helper()
	c, err := Dial(cfg, addrs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawConn opens a plain TCP connection for speaking bad protocol.
func rawConn(t *testing.T, addr net.Addr) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// checkNoLeaks fails if goroutines started by the test outlive it.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(waitFor)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after:\n%s", before, n, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func shutdown(t *testing.T, srv *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func mustContain(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v does not mention %q", err, want)
	}
}

var _ = errors.Is
var _ = fmt.Sprintf
