package pconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestEchoRoundTrip(t *testing.T) {
	checkNoLeaks(t)
	srvEv := newRecorder()
	srv := listen(t, testConfig(echo, srvEv))
	in := newInbox()
	cliEv := newRecorder()
	c := dial(t, testConfig(in, cliEv), srv.Addr().String())
	est := cliEv.next(t, EventEstablished)
	if est.Session == nil || est.Session != c.Session() {
		t.Fatalf("established event without the client's session: %+v", est)
	}
	srvEv.next(t, EventEstablished)

	for _, n := range []int{0, 1, 64, 4096, 70000, 1 << 20} {
		p := bytes.Repeat([]byte{byte(n)}, n)
		if err := c.Send(42, p); err != nil {
			t.Fatalf("send %d bytes: %v", n, err)
		}
		m := in.next(t)
		if m.Type != 42 || !bytes.Equal(m.Payload, p) {
			t.Fatalf("echo of %d bytes: got type %d, %d bytes", n, m.Type, len(m.Payload))
		}
	}
	if err := c.Send(42, make([]byte, 1<<20+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversize send: %v, want ErrFrameTooLarge", err)
	}
	if err := c.Send(0, nil); !errors.Is(err, ErrBadType) {
		t.Fatalf("type 0 send: %v, want ErrBadType", err)
	}
	if err := c.Send(TypePing, nil); !errors.Is(err, ErrBadType) {
		t.Fatalf("reserved type send: %v, want ErrBadType", err)
	}
	st := c.Session().Stats()
	if st.FramesOut != 6 || st.FramesIn < 6 {
		t.Fatalf("stats %+v: want 6 frames out and at least 6 in", st)
	}
	c.Close()
	if ev := cliEv.next(t, EventShutdown); !errors.Is(ev.Err, ErrClosed) {
		t.Fatalf("client shutdown reason %v, want ErrClosed", ev.Err)
	}
	if ev := srvEv.next(t, EventShutdown); !errors.Is(ev.Err, ErrPeerClosed) {
		t.Fatalf("server shutdown reason %v, want ErrPeerClosed", ev.Err)
	}
	srv.Close()
}

func TestConcurrentSendKeepsFramesWhole(t *testing.T) {
	checkNoLeaks(t)
	in := newInbox()
	srv := listen(t, testConfig(in, nil))
	ev := newRecorder()
	c := dial(t, testConfig(HandlerFunc(func(*Session, Message) error { return nil }), ev), srv.Addr().String())
	ev.next(t, EventEstablished)

	const senders, each = 8, 500
	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			for i := range each {
				p := fmt.Appendf(nil, "%d:%d:%s", g, i, bytes.Repeat([]byte{'x'}, i%300))
				for {
					err := c.Send(MsgType(g+1), p)
					if err == nil {
						break
					}
					if !errors.Is(err, ErrQueueFull) {
						t.Errorf("send: %v", err)
						return
					}
					time.Sleep(time.Millisecond) // back off; the queue drains
				}
			}
		})
	}
	wg.Wait()
	next := make([]int, senders)
	for range senders * each {
		m := in.next(t)
		var g, i int
		var rest string
		if _, err := fmt.Sscanf(string(m.Payload), "%d:%d:%s", &g, &i, &rest); err != nil && i%300 != 0 {
			t.Fatalf("garbled frame %q: %v", m.Payload, err)
		}
		if MsgType(g+1) != m.Type || i != next[g] {
			t.Fatalf("frame %q of type %d out of order: want %d:%d", m.Payload, m.Type, g, next[g])
		}
		next[g]++
	}
	c.Close()
	srv.Close()
}

func TestMuxUnknownTypeClosesSession(t *testing.T) {
	mux := NewMux()
	got := make(chan string, 1)
	mux.HandleFunc(7, func(s *Session, m Message) error { got <- string(m.Payload); return nil })
	srvEv := newRecorder()
	srv := listen(t, testConfig(mux, srvEv))
	cliEv := newRecorder()
	c := dial(t, testConfig(newInbox(), cliEv), srv.Addr().String())
	cliEv.next(t, EventEstablished)
	if err := c.Send(7, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "hi" {
		t.Fatalf("handler got %q", s)
	}
	if err := c.Send(8, nil); err != nil {
		t.Fatal(err)
	}
	ev := srvEv.next(t, EventFailed)
	var ute *UnknownTypeError
	if !errors.As(ev.Err, &ute) || ute.Type != 8 {
		t.Fatalf("server session ended with %v, want UnknownTypeError for 8", ev.Err)
	}
	// The peer is told why.
	cev := cliEv.next(t, EventFailed)
	var pe *PeerError
	if !errors.As(cev.Err, &pe) || !strings.Contains(pe.Reason, "no handler for message type 8") {
		t.Fatalf("client session ended with %v, want the server's reason", cev.Err)
	}
}

func TestMuxPanicsOnMisuse(t *testing.T) {
	for name, f := range map[string]func(m *Mux){
		"reserved":  func(m *Mux) { m.HandleFunc(TypePing, nil) },
		"zero":      func(m *Mux) { m.HandleFunc(0, nil) },
		"duplicate": func(m *Mux) { m.HandleFunc(1, nil); m.HandleFunc(1, nil) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			f(NewMux())
		})
	}
}

// TestBadInputClosesOnlyThatSession sends each kind of bad input on its
// own raw connection while a good client keeps exchanging frames: the bad
// connection gets a TypeError frame naming the problem and is closed; the
// good one is never disturbed.
func TestBadInputClosesOnlyThatSession(t *testing.T) {
	checkNoLeaks(t)
	srvEv := newRecorder()
	cfg := testConfig(echo, srvEv)
	cfg.MaxFrameSize = 4096
	cfg.SendQueueBytes = 1 << 20
	srv := listen(t, cfg)
	in := newInbox()
	goodEv := newRecorder()
	good := dial(t, testConfig(in, goodEv), srv.Addr().String())
	goodEv.next(t, EventEstablished)
	srvEv.next(t, EventEstablished)

	ping := func(i int) {
		t.Helper()
		p := fmt.Appendf(nil, "still here %d", i)
		if err := good.Send(3, p); err != nil {
			t.Fatal(err)
		}
		if m := in.next(t); !bytes.Equal(m.Payload, p) {
			t.Fatalf("good client got %q, want %q", m.Payload, p)
		}
	}
	ping(0)
	cases := []struct {
		name  string
		bytes []byte
		want  string
	}{
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "unsupported frame version"},
		{"bad version", []byte{9, 0, 0, 1, 0, 0, 0, 0}, "unsupported frame version 9"},
		{"type zero", []byte{1, 0, 0, 0, 0, 0, 0, 0}, "invalid message type 0"},
		{"reserved type", []byte{1, 0, 0xff, 0xee, 0, 0, 0, 0}, "invalid message type 65518"},
		{"oversized", []byte{1, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff}, "announces 2147483647 bytes, maximum is 4096"},
		{"truncated", []byte{1, 0, 0, 1, 0, 0, 0, 10, 'a', 'b'}, "truncated frame"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc := rawConn(t, srv.Addr())
			srvEv.next(t, EventEstablished)
			if _, err := rc.Write(tc.bytes); err != nil {
				t.Fatal(err)
			}
			if tc.name == "truncated" {
				rc.(*net.TCPConn).CloseWrite()
			}
			ev := srvEv.next(t, EventFailed)
			mustContain(t, ev.Err, tc.want)
			// The peer is told why, then the connection is closed.
			rc.SetReadDeadline(time.Now().Add(waitFor))
			fr := NewFrameReader(rc, 4096, 4096)
			h, p, err := fr.Next()
			if err != nil || h.Type != TypeError {
				t.Fatalf("want a TypeError frame, got type %v, %v", h.Type, err)
			}
			if !bytes.Contains(p, []byte(tc.want)) {
				t.Fatalf("error frame %q does not say %q", p, tc.want)
			}
			if _, _, err := fr.Next(); err != io.EOF {
				t.Fatalf("connection not closed after the error frame: %v", err)
			}
			ping(i + 1)
		})
	}
	// A session leaves the server's table just after its final event.
	deadline := time.Now().Add(waitFor)
	for len(srv.Sessions()) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions left, want only the good one", len(srv.Sessions()))
		}
		time.Sleep(time.Millisecond)
	}
}

func TestMaxSessions(t *testing.T) {
	checkNoLeaks(t)
	srvEv := newRecorder()
	cfg := testConfig(echo, srvEv)
	cfg.MaxSessions = 2
	srv := listen(t, cfg)
	for range 2 {
		rawConn(t, srv.Addr())
		srvEv.next(t, EventEstablished)
	}
	extra := rawConn(t, srv.Addr())
	extra.SetReadDeadline(time.Now().Add(waitFor))
	h, p, err := NewFrameReader(extra, 1024, 1024).Next()
	if err != nil || h.Type != TypeError || !bytes.Contains(p, []byte("server full")) {
		t.Fatalf("third connection: type %v %q %v; want a 'server full' error frame", h.Type, p, err)
	}
	srv.Close()
}

func TestGracefulShutdownDrainsQueuedFrames(t *testing.T) {
	checkNoLeaks(t)
	const n = 2000
	srvReady := make(chan *Session, 1)
	srvEv := EventHandlerFunc(func(ev Event) {
		if ev.Type == EventEstablished {
			srvReady <- ev.Session
		}
	})
	srv := listen(t, testConfig(echo, srvEv))
	in := newInbox()
	cliEv := newRecorder()
	c := dial(t, testConfig(in, cliEv), srv.Addr().String())
	ss := <-srvReady
	for i := range n {
		if err := ss.Send(5, fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	shutdown(t, srv) // queues are drained before the goodbye
	for i := range n {
		m := in.next(t)
		if string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("frame %d is %q", i, m.Payload)
		}
	}
	if ev := cliEv.next(t, EventShutdown); !errors.Is(ev.Err, ErrPeerClosed) {
		t.Fatalf("client saw %v, want ErrPeerClosed", ev.Err)
	}
	if err := ss.Send(5, nil); err == nil {
		t.Fatal("send on a closed session succeeded")
	}
	c.Close()
}

func TestShutdownContextCutsOff(t *testing.T) {
	checkNoLeaks(t)
	srvEv := newRecorder()
	cfg := testConfig(echo, srvEv)
	srv := listen(t, cfg)
	rc := rawConn(t, srv.Addr()) // never answers, never closes
	srvEv.next(t, EventEstablished)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := srv.Shutdown(ctx)
	// The raw peer does not close its side; either the linger ran out
	// (clean) or the context cut it off.
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown: %v", err)
	}
	_ = rc
	if n := len(srv.Sessions()); n != 0 {
		t.Fatalf("%d sessions after shutdown", n)
	}
}

var _ = net.Dial
