package meds

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"
)

func requester(t *testing.T, p *msgPeer) (*V2cRequester, *int) {
	t.Helper()
	c, err := net.DialUDP("udp", nil, p.conn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	retries := 0
	return &V2cRequester{Conn: c, Community: "private", Timeout: 50 * time.Millisecond, Retries: 3, OnRetry: func() { retries++ }}, &retries
}

func TestSendMessageRetriesLostFragments(t *testing.T) {
	for _, window := range []int{1, 4, 32} {
		p := newMsgPeer(t, func(f Fragment) bool { return f.Index == 0 || f.Index == 5 || f.Index == 9 }, nil)
		q, retries := requester(t, p)
		msg := pattern(10*100 - 7)
		if err := q.SendMessage(gosnmp.SetRequest, 0, msg, 77, 100, window); err != nil {
			t.Fatalf("window %d: %v", window, err)
		}
		if *retries != 3 {
			t.Errorf("window %d: %d retries, want 3", window, *retries)
		}
		if string(p.message(77)) != string(msg) {
			t.Fatalf("window %d: the peer got a different message", window)
		}
	}
}

func TestSendMessageRefusedAndUnanswered(t *testing.T) {
	p := newMsgPeer(t, nil, func(f Fragment) bool { return f.Index == 2 })
	q, _ := requester(t, p)
	var r *Refused
	if err := q.SendMessage(gosnmp.SetRequest, 0, pattern(500), 1, 100, 4); !errors.As(err, &r) || r.Index != 2 || r.Status != StatusWrongValue || r.ErrorIndex != 3 {
		t.Fatalf("refused fragment: %v", err)
	}
	// Nothing listens on the discard port: every fragment is tried
	// 1 + Retries times, then the error names one.
	c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	retries := 0
	q2 := &V2cRequester{Conn: c, Community: "private", Timeout: 50 * time.Millisecond, Retries: 3, OnRetry: func() { retries++ }}
	err = q2.SendMessage(gosnmp.SetRequest, 0, pattern(300), 1, 100, 4)
	if !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("no answer: %v", err)
	}
	if retries < 3 {
		t.Fatalf("%d retries before giving up, want at least 3", retries)
	}
	t.Log(err)
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}
