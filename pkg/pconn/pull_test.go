package pconn

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"
)

func pullConfig(ev EventHandler) Config {
	cfg := DefaultConfig(nil)
	cfg.Pull = true
	cfg.EventHandler = ev
	return cfg
}

func TestPullRoundTrips(t *testing.T) {
	checkNoLeaks(t)
	srvEv := newRecorder()
	srv := listen(t, testConfig(echo, srvEv))
	ev := newRecorder()
	s, err := Connect(t.Context(), pullConfig(ev), srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ev.next(t, EventEstablished)
	for i, n := range []int{0, 64, 4096, 70000} {
		p := bytes.Repeat([]byte{byte(i)}, n)
		if err := s.Send(9, p); err != nil {
			t.Fatal(err)
		}
		m, err := s.Recv()
		if err != nil {
			t.Fatalf("recv %d: %v", i, err)
		}
		if m.Type != 9 || !bytes.Equal(m.Payload, p) {
			t.Fatalf("echo %d: type %d, %d bytes", i, m.Type, len(m.Payload))
		}
	}
	// A graceful close by the peer ends Recv with ErrPeerClosed.
	shutdown(t, srv)
	if _, err := s.Recv(); !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("recv after the server's shutdown: %v, want ErrPeerClosed", err)
	}
	if sd := ev.next(t, EventShutdown); !errors.Is(sd.Err, ErrPeerClosed) {
		t.Fatalf("session ended with %v", sd.Err)
	}
	if _, err := s.Recv(); err == nil {
		t.Fatal("recv after the end succeeded")
	}
	<-s.Done()
}

func TestPullCloseWhileWaiting(t *testing.T) {
	checkNoLeaks(t)
	srv := listen(t, testConfig(HandlerFunc(func(*Session, Message) error { return nil }), nil))
	ev := newRecorder()
	s, err := Connect(t.Context(), pullConfig(ev), srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ev.next(t, EventEstablished)
	got := make(chan error, 1)
	go func() { _, err := s.Recv(); got <- err }()
	s.Close()
	select {
	case err := <-got:
		if err == nil {
			t.Fatal("recv returned a frame after Close")
		}
	case <-time.After(waitFor):
		t.Fatal("recv still blocked after Close")
	}
	if sd := ev.next(t, EventShutdown); !errors.Is(sd.Err, ErrClosed) {
		t.Fatalf("session ended with %v, want ErrClosed", sd.Err)
	}
}

func TestPullDeadPeerWhileWaiting(t *testing.T) {
	checkNoLeaks(t)
	ln := silentServer(t)
	ev := newRecorder()
	cfg := pullConfig(ev)
	cfg.DeadTimeout = 100 * time.Millisecond
	s, err := Connect(t.Context(), cfg, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err == nil {
		t.Fatal("recv from a silent peer returned a frame")
	}
	if f := ev.next(t, EventFailed); !errors.Is(f.Err, ErrDeadPeer) {
		t.Fatalf("session failed with %v, want ErrDeadPeer", f.Err)
	}
}

func TestPullProtocolError(t *testing.T) {
	checkNoLeaks(t)
	srvEv := newRecorder()
	srv := listen(t, testConfig(HandlerFunc(func(s *Session, m Message) error {
		return fmt.Errorf("refused %d", m.Type) // answered with an error frame
	}), srvEv))
	ev := newRecorder()
	s, err := Connect(t.Context(), pullConfig(ev), srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(3, nil); err != nil {
		t.Fatal(err)
	}
	_, err = s.Recv()
	var pe *PeerError
	if !errors.As(err, &pe) || pe.Reason == "" {
		t.Fatalf("recv: %v, want the peer's reason", err)
	}
	mustContain(t, err, "refused 3")
	ev.next(t, EventFailed)
}

func TestPullConfig(t *testing.T) {
	cfg := pullConfig(nil)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("pull config without handler: %v", err)
	}
	cfg.Handler = echo
	mustContain(t, cfg.Validate(), "Handler is set in pull mode")
	srv := listen(t, testConfig(echo, nil))
	ev := newRecorder()
	c := dial(t, testConfig(newInbox(), ev), srv.Addr().String())
	ev.next(t, EventEstablished)
	if _, err := c.Session().Recv(); err == nil {
		t.Fatal("Recv worked on a session with a handler")
	}
}
