package pconn

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
)

// Frames written directly by Send (quiet session, plain TCP) and frames
// the writer goroutine finishes after a partial direct write, or writes
// in batches, arrive whole and in order, also when the peer reads slowly.
func TestDirectWritesKeepFramesWholeAndInOrder(t *testing.T) {
	checkNoLeaks(t)
	in := newInbox()
	release := make(chan struct{})
	first := true
	slow := HandlerFunc(func(s *Session, m Message) error {
		if first { // stall the reader so the socket buffers fill up
			first = false
			<-release
		}
		return in.ServeFrame(s, m)
	})
	srv := listen(t, testConfig(slow, nil))
	ev := newRecorder()
	c := dial(t, testConfig(HandlerFunc(func(*Session, Message) error { return nil }), ev), srv.Addr().String())
	s := ev.next(t, EventEstablished).Session
	if s.raw == nil {
		t.Fatal("plain TCP session without direct writes")
	}

	const n = 64
	frame := func(i int) []byte {
		size := 16
		if i%4 == 1 {
			size = 300 << 10 // larger than a loopback socket buffer takes at once, often
		}
		p := bytes.Repeat([]byte{byte(i)}, size)
		binary.BigEndian.PutUint32(p, uint32(i))
		return p
	}
	for i := range n {
		if i%2 == 0 {
			time.Sleep(2 * directQuiet) // quiet: the next Send writes directly
		}
		if err := s.Send(7, frame(i)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if i == n/2 {
			close(release)
		}
	}
	for i := range n {
		m := in.next(t)
		if want := frame(i); !bytes.Equal(m.Payload, want) {
			t.Fatalf("frame %d: got %d bytes starting % x, want %d bytes starting % x",
				i, len(m.Payload), m.Payload[:min(8, len(m.Payload))], len(want), want[:8])
		}
	}
	// The writer counts a batch once its write returns, which may be
	// after the peer has handled it; keepalive pings count too.
	for deadline := time.Now().Add(waitFor); s.Stats().FramesOut < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("FramesOut %d, want at least %d", s.Stats().FramesOut, n)
		}
	}
	c.Close()
}
