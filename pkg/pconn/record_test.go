package pconn

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// TestSendRecordCoalesces: records sent back to back arrive as fewer
// frames whose payloads, concatenated, are the records in order; a
// frame never exceeds MaxRecordFrame; other frames in between are not
// overtaken.
func TestSendRecordCoalesces(t *testing.T) {
	var mu sync.Mutex
	var got []byte
	var frames, others int
	done := make(chan struct{})
	const n = 5000
	want := make([]byte, 0, n*10)
	for i := 0; i < n; i++ {
		want = append(want, bytes.Repeat([]byte{byte(i)}, 10)...)
	}
	srv, err := Listen("127.0.0.1:0", DefaultConfig(HandlerFunc(func(s *Session, m Message) error {
		mu.Lock()
		defer mu.Unlock()
		switch m.Type {
		case 7:
			if len(m.Payload) > MaxRecordFrame {
				t.Errorf("a record frame of %d bytes", len(m.Payload))
			}
			frames++
			got = append(got, m.Payload...)
		case 8:
			others++
			// Everything sent before it has arrived.
			if !bytes.Equal(got, want[:len(got)]) || len(got) != int(m.Payload[0])*1000*10 {
				t.Errorf("frame 8 #%d after %d record bytes", m.Payload[0], len(got))
			}
			if m.Payload[0] == n/1000 {
				close(done)
			}
		}
		return nil
	})))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := Connect(t.Context(), DefaultConfig(HandlerFunc(func(*Session, Message) error { return nil })), srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < n; i++ {
		rec := want[i*10 : i*10+10]
		for {
			err := c.SendRecord(7, rec)
			if err == nil {
				break
			}
			if err != ErrQueueFull {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
		if (i+1)%1000 == 0 {
			if err := c.Send(8, []byte{byte((i + 1) / 1000)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("not everything arrived")
	}
	mu.Lock()
	defer mu.Unlock()
	if !bytes.Equal(got, want) {
		t.Fatalf("records arrived out of order or damaged (%d of %d bytes)", len(got), len(want))
	}
	if others != n/1000 {
		t.Fatalf("%d other frames", others)
	}
	t.Logf("%d records in %d frames", n, frames)
}
