package pconn

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"
)

// silentServer accepts TCP connections and never writes a byte: a hung
// peer whose kernel still ACKs.
func silentServer(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln
}

func TestDeadPeerDetected(t *testing.T) {
	checkNoLeaks(t)
	ln := silentServer(t)
	ev := newRecorder()
	cfg := testConfig(newInbox(), ev)
	cfg.DeadTimeout = MinDeadTimeout
	cfg.MaxRetries = 1
	c := dial(t, cfg, ln.Addr().String())
	ev.next(t, EventEstablished)
	start := time.Now()
	fail := ev.next(t, EventFailed)
	if !errors.Is(fail.Err, ErrDeadPeer) {
		t.Fatalf("session failed with %v, want ErrDeadPeer", fail.Err)
	}
	t.Logf("dead peer detected after %v (DeadTimeout %v)", time.Since(start), cfg.DeadTimeout)
	c.Close()
}

// TestIdleLinkStaysUp: with a short dead timeout and no application
// traffic, pings and pongs keep the session alive on both ends.
func TestIdleLinkStaysUp(t *testing.T) {
	checkNoLeaks(t)
	srvEv := newRecorder()
	scfg := testConfig(echo, srvEv)
	scfg.DeadTimeout = 3 * time.Second // the server's own, longer timeout
	srv := listen(t, scfg)
	ev := newRecorder()
	cfg := testConfig(newInbox(), ev)
	cfg.DeadTimeout = 150 * time.Millisecond
	c := dial(t, cfg, srv.Addr().String())
	ev.next(t, EventEstablished)
	s := c.Session()
	// Wait until the client has sent and received many keepalives: more
	// than several dead timeouts' worth of silence from the application.
	deadline := time.Now().Add(waitFor)
	for s.Stats().FramesIn < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d keepalive frames in %v", s.Stats().FramesIn, waitFor)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Err(); err != nil {
		t.Fatalf("idle session ended: %v", err)
	}
	ev.mu.Lock()
	for _, e := range ev.events {
		if e.Type == EventFailed {
			t.Fatalf("idle link failed: %v", e.Err)
		}
	}
	ev.mu.Unlock()
	c.Close()
}

// TestPeerNotReading: a peer that stops reading fills the socket buffers;
// the sender's queue stays bounded (ErrQueueFull) and the session fails
// with ErrPeerNotReading after the write timeout. Memory never grows.
func TestPeerNotReading(t *testing.T) {
	checkNoLeaks(t)
	ln := silentServer(t) // accepts and never reads
	ev := newRecorder()
	cfg := testConfig(newInbox(), ev)
	cfg.WriteTimeout = 300 * time.Millisecond
	cfg.DeadTimeout = 30 * time.Second // so the write timeout is what fires
	cfg.SendQueueBytes = 2 << 20
	cfg.MaxRetries = 1
	c := dial(t, cfg, ln.Addr().String())
	ev.next(t, EventEstablished)
	s := c.Session()
	p := bytes.Repeat([]byte{'z'}, 64<<10)
	var full, ended bool
	deadline := time.Now().Add(waitFor)
	for !ended {
		if time.Now().After(deadline) {
			t.Fatal("session neither filled nor failed")
		}
		err := s.Send(1, p)
		switch {
		case err == nil:
		case errors.Is(err, ErrQueueFull):
			full = true
			time.Sleep(5 * time.Millisecond)
		default:
			ended = true
		}
		if st := s.Stats(); st.Queued*(len(p)+HeaderSize) > cfg.SendQueueBytes {
			t.Fatalf("queue holds %d frames, over its %d-byte bound", st.Queued, cfg.SendQueueBytes)
		}
	}
	if !full {
		t.Error("queue never reported full")
	}
	fail := ev.next(t, EventFailed)
	if !errors.Is(fail.Err, ErrPeerNotReading) {
		t.Fatalf("session failed with %v, want ErrPeerNotReading", fail.Err)
	}
	c.Close()
}
