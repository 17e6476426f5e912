package meds

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"
)

// peer answers SetRequests on loopback like an agent: it drops the
// first copy of every fragment whose index is in drop, refuses the
// fragment refuse (if >= 0), and records the fragments it took.
type peer struct {
	conn   *net.UDPConn
	drop   map[uint32]bool
	refuse int64
	mu     sync.Mutex
	got    map[uint32][]byte
	done   chan struct{}
}

func newPeer(t *testing.T, drop []uint32, refuse int64) *peer {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{conn: conn, drop: map[uint32]bool{}, refuse: refuse, got: map[uint32][]byte{}, done: make(chan struct{})}
	for _, d := range drop {
		p.drop[d] = true
	}
	go p.serve()
	t.Cleanup(func() { _ = conn.Close(); <-p.done })
	return p
}

func (p *peer) serve() {
	defer close(p.done)
	buf := make([]byte, 65536)
	for {
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		pkt, err := ParseV2c(buf[:n])
		if err != nil {
			continue
		}
		f, err := pkt.Fragment(pkt.PDU != gosnmp.SetRequest, 0, 0)
		if err != nil {
			continue
		}
		p.mu.Lock()
		if p.drop[f.Index] {
			delete(p.drop, f.Index)
			p.mu.Unlock()
			continue
		}
		status := uint8(0)
		if int64(f.Index) == p.refuse {
			status = StatusWrongValue
		} else {
			p.got[f.Index] = append([]byte(nil), f.Data...)
		}
		p.mu.Unlock()
		out := AppendV2cResponse(nil, pkt.Community, pkt.RequestID, status, 3, pkt.VarBinds)
		_, _ = p.conn.WriteToUDPAddrPort(out, from)
	}
}

func requester(t *testing.T, p *peer) (*V2cRequester, *int) {
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
		p := newPeer(t, []uint32{0, 5, 9}, -1)
		q, retries := requester(t, p)
		msg := pattern(10*100 - 7)
		if err := q.SendMessage(gosnmp.SetRequest, 0, msg, 77, 100, window); err != nil {
			t.Fatalf("window %d: %v", window, err)
		}
		if *retries != 3 {
			t.Errorf("window %d: %d retries, want 3", window, *retries)
		}
		p.mu.Lock()
		var joined []byte
		for i := uint32(0); i < 10; i++ {
			joined = append(joined, p.got[i]...)
		}
		p.mu.Unlock()
		if string(joined) != string(msg) {
			t.Fatalf("window %d: the peer got a different message", window)
		}
	}
}

func TestSendMessageRefusedAndUnanswered(t *testing.T) {
	p := newPeer(t, nil, 2)
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
