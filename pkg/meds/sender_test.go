package meds

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"
)

// msgPeer answers requests on loopback like an agent or a relay: it
// drops the first copy of a fragment when drop says so, refuses a
// fragment when refuse says so, and keeps the fragments it took by
// transfer.
type msgPeer struct {
	conn   *net.UDPConn
	drop   func(Fragment) bool
	refuse func(Fragment) bool
	mu     sync.Mutex
	seen   map[[2]uint32]bool
	got    map[uint32][][]byte
	copies int         // datagrams received
	quiet  atomic.Bool // answer only: record nothing, allocate nothing
	done   chan struct{}
}

func newMsgPeer(t *testing.T, drop, refuse func(Fragment) bool) *msgPeer {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadBuffer(4 << 20)
	p := &msgPeer{conn: conn, drop: drop, refuse: refuse, seen: map[[2]uint32]bool{}, got: map[uint32][][]byte{}, done: make(chan struct{})}
	go p.serve()
	t.Cleanup(func() { _ = conn.Close(); <-p.done })
	return p
}

func (p *msgPeer) serve() {
	defer close(p.done)
	buf := make([]byte, 65536)
	var out []byte
	for {
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		pkt, err := ParseV2c(buf[:n])
		if err != nil {
			continue
		}
		if p.quiet.Load() {
			out = AppendV2cResponse(out[:0], pkt.Community, pkt.RequestID, 0, 0, pkt.VarBinds)
			_, _ = p.conn.WriteToUDPAddrPort(out, from)
			continue
		}
		f, err := pkt.Fragment(pkt.PDU != gosnmp.SetRequest, 0, 0)
		if err != nil {
			continue
		}
		p.mu.Lock()
		p.copies++
		key := [2]uint32{f.Transfer, f.Index}
		first := !p.seen[key]
		p.seen[key] = true
		if first && p.drop != nil && p.drop(f) {
			p.mu.Unlock()
			continue
		}
		status := uint8(0)
		if p.refuse != nil && p.refuse(f) {
			status = StatusWrongValue
		} else {
			if p.got[f.Transfer] == nil {
				p.got[f.Transfer] = make([][]byte, f.Count)
			}
			p.got[f.Transfer][f.Index] = bytes.Clone(f.Data)
		}
		p.mu.Unlock()
		if pkt.PDU == gosnmp.SNMPv2Trap {
			continue
		}
		out = AppendV2cResponse(out[:0], pkt.Community, pkt.RequestID, status, 3, pkt.VarBinds)
		_, _ = p.conn.WriteToUDPAddrPort(out, from)
	}
}

// message is what the peer took of transfer, joined.
func (p *msgPeer) message(transfer uint32) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Join(p.got[transfer], nil)
}

// outcomes collects OnDone's reports.
type outcomes struct {
	mu   sync.Mutex
	errs map[uint32]error
	ch   chan uint32
}

func newOutcomes() *outcomes {
	return &outcomes{errs: map[uint32]error{}, ch: make(chan uint32, 10000)}
}

func (o *outcomes) onDone(_ []byte, transfer uint32, err error) {
	o.mu.Lock()
	if _, dup := o.errs[transfer]; dup {
		err = fmt.Errorf("OnDone called twice for transfer %d", transfer)
	}
	o.errs[transfer] = err
	o.mu.Unlock()
	o.ch <- transfer
}

// wait waits for n outcomes, failing after a generous deadline.
func (o *outcomes) wait(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for range n {
		select {
		case <-o.ch:
		case <-deadline:
			t.Fatalf("not every message finished")
		}
	}
}

func (o *outcomes) err(transfer uint32) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.errs[transfer]
}

func testSender(t *testing.T, addr string, cfg SenderConfig) *V2cSender {
	t.Helper()
	s, err := DialV2cSender(addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func senderConfig(o *outcomes) SenderConfig {
	cfg := SenderConfig{PDU: gosnmp.SetRequest, Community: "private", FragmentSize: 100, Timeout: 50 * time.Millisecond,
		Retries: 3, Window: 4, MaxInFlight: 4, MaxQueued: 1000}
	if o != nil {
		cfg.OnDone = o.onDone
	}
	return cfg
}

// TestSenderManyMessagesWithLoss: messages of 0 to 30 fragments from
// several goroutines, more than MaxInFlight at once, with the first
// copy of every seventh fragment lost, all arrive whole and each is
// reported once.
func TestSenderManyMessagesWithLoss(t *testing.T) {
	p := newMsgPeer(t, func(f Fragment) bool { return (f.Transfer+f.Index)%7 == 0 }, nil)
	o := newOutcomes()
	cfg := senderConfig(o)
	cfg.Timeout, cfg.MaxInFlight = 20*time.Millisecond, 8
	var mu sync.Mutex
	retries := 0
	cfg.OnRetry = func() { mu.Lock(); retries++; mu.Unlock() }
	s := testSender(t, p.conn.LocalAddr().String(), cfg)
	const goroutines, each = 8, 25
	msgs := make(map[uint32][]byte)
	for g := range goroutines {
		for i := range each {
			tr := uint32(g*each + i + 1)
			msgs[tr] = pattern(int(tr*37) % 3000)
		}
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				tr := uint32(g*each + i + 1)
				if err := s.Send(msgs[tr], tr); err != nil {
					t.Errorf("Send %d: %v", tr, err)
				}
			}
		}()
	}
	wg.Wait()
	o.wait(t, len(msgs))
	lost := 0
	for tr, msg := range msgs {
		if err := o.err(tr); err != nil {
			t.Fatalf("transfer %d: %v", tr, err)
		}
		if got := p.message(tr); !bytes.Equal(got, msg) {
			t.Fatalf("transfer %d: the peer got %d octets, want %d", tr, len(got), len(msg))
		}
		for i := range FragmentCount(len(msg), 100) {
			if (tr+i)%7 == 0 {
				lost++
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if retries < lost {
		t.Fatalf("%d retries for %d lost fragments", retries, lost)
	}
	if active, queued := s.InFlight(); active != 0 || queued != 0 {
		t.Fatalf("after the end: %d in flight, %d queued", active, queued)
	}
}

func TestSenderRefusedAndUnanswered(t *testing.T) {
	p := newMsgPeer(t, nil, func(f Fragment) bool { return f.Transfer == 2 && f.Index == 3 })
	o := newOutcomes()
	s := testSender(t, p.conn.LocalAddr().String(), senderConfig(o))
	for tr := uint32(1); tr <= 3; tr++ {
		if err := s.Send(pattern(1000), tr); err != nil {
			t.Fatal(err)
		}
	}
	o.wait(t, 3)
	var r *Refused
	if err := o.err(2); !errors.As(err, &r) || r.Index != 3 || r.Count != 10 || r.Status != StatusWrongValue || r.ErrorIndex != 3 {
		t.Fatalf("refused fragment: %v", err)
	}
	if o.err(1) != nil || o.err(3) != nil {
		t.Fatalf("the others: %v, %v", o.err(1), o.err(3))
	}

	// Nothing listens on the discard port: the message fails naming a
	// fragment that was never answered.
	o2 := newOutcomes()
	retries := 0
	cfg := senderConfig(o2)
	cfg.OnRetry = func() { retries++ } // under the sender's lock
	s2 := testSender(t, "127.0.0.1:9", cfg)
	if err := s2.Send(pattern(300), 5); err != nil {
		t.Fatal(err)
	}
	o2.wait(t, 1)
	if err := o2.err(5); !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("no answer: %v", err)
	}
	s2.mu.Lock()
	defer s2.mu.Unlock()
	if retries < 3 {
		t.Fatalf("%d retries before giving up, want at least 3", retries)
	}
	t.Log(o2.err(5))
}

func TestSenderQueueFullAndClose(t *testing.T) {
	// A peer that reads nothing: no answer, no ICMP refusal.
	mute, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	before := runtime.NumGoroutine()
	o := newOutcomes()
	cfg := senderConfig(o)
	cfg.MaxInFlight, cfg.MaxQueued, cfg.Timeout = 1, 2, time.Hour // never answered, never retried
	s, err := DialV2cSender(mute.LocalAddr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for tr := uint32(1); tr <= 3; tr++ { // one in flight, two waiting
		if err := s.Send(pattern(10), tr); err != nil {
			t.Fatalf("Send %d: %v", tr, err)
		}
	}
	if active, queued := s.InFlight(); active != 1 || queued != 2 {
		t.Fatalf("InFlight = %d, %d; want 1 and 2", active, queued)
	}
	if err := s.Send(pattern(10), 9); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Send past the queue: %v, want ErrQueueFull", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(pattern(10), 10); !errors.Is(err, ErrSenderClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after Close, %d before", runtime.NumGoroutine(), before)
		}
		time.Sleep(time.Millisecond)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for tr := uint32(1); tr <= 3; tr++ {
		if err, ok := o.errs[tr]; !ok || !errors.Is(err, ErrSenderClosed) {
			t.Fatalf("transfer %d after Close: reported %v, %v; want ErrSenderClosed", tr, ok, err)
		}
	}
	if _, ok := o.errs[9]; ok {
		t.Fatal("the refused message was reported to OnDone")
	}
}

// TestSenderQueueAndFlush: Queue sends nothing until Flush.
func TestSenderQueueAndFlush(t *testing.T) {
	p := newMsgPeer(t, nil, nil)
	o := newOutcomes()
	cfg := senderConfig(o)
	cfg.Timeout = time.Hour // a lost request would not be retried in time
	s := testSender(t, p.conn.LocalAddr().String(), cfg)
	for tr := uint32(1); tr <= 3; tr++ {
		if err := s.Queue(pattern(150), tr); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing is sent yet: a short wait proves nothing, so look at the
	// sender's own queue of datagrams.
	s.mu.Lock()
	queued := s.w.Len()
	s.mu.Unlock()
	if queued != 6 {
		t.Fatalf("%d requests waiting for Flush, want 6", queued)
	}
	s.Flush()
	o.wait(t, 3)
	for tr := uint32(1); tr <= 3; tr++ {
		if err := o.err(tr); err != nil || !bytes.Equal(p.message(tr), pattern(150)) {
			t.Fatalf("transfer %d: %v, peer got %d octets", tr, err, len(p.message(tr)))
		}
	}
}

func TestSenderTraps(t *testing.T) {
	p := newMsgPeer(t, nil, nil)
	o := newOutcomes()
	cfg := senderConfig(o)
	cfg.PDU = gosnmp.SNMPv2Trap
	cfg.Uptime = func() uint32 { return 42 }
	s := testSender(t, p.conn.LocalAddr().String(), cfg)
	msg := pattern(950)
	if err := s.Send(msg, 7); err != nil {
		t.Fatal(err)
	}
	o.wait(t, 1)
	if err := o.err(7); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !bytes.Equal(p.message(7), msg) {
		if time.Now().After(deadline) {
			t.Fatalf("the peer got %d octets of %d", len(p.message(7)), len(msg))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSenderNoAllocations: once warm, a message sent and answered
// allocates nothing (the peer allocates nothing either).
func TestSenderNoAllocations(t *testing.T) {
	p := newMsgPeer(t, nil, nil)
	p.quiet.Store(true)
	done := make(chan struct{}, 1)
	cfg := senderConfig(nil)
	cfg.OnDone = func([]byte, uint32, error) { done <- struct{}{} }
	s := testSender(t, p.conn.LocalAddr().String(), cfg)
	msg := pattern(250) // 3 fragments
	send := func() {
		if err := s.Send(msg, 1); err != nil {
			t.Fatal(err)
		}
		<-done
	}
	for range 50 {
		send()
	}
	if allocs := testing.AllocsPerRun(500, send); allocs > 0.1 {
		t.Fatalf("%.2f allocations per message of 3 fragments, want 0", allocs)
	}
}

// TestSenderShared: a sender on a socket another loop reads gets its
// answers through Answer, and Close leaves the socket open.
func TestSenderShared(t *testing.T) {
	p := newMsgPeer(t, func(f Fragment) bool { return f.Index == 1 }, nil) // one loss: a retry on time-out
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	o := newOutcomes()
	s, err := NewV2cSender(conn, p.conn.LocalAddr().(*net.UDPAddr).AddrPort(), senderConfig(o))
	if err != nil {
		t.Fatal(err)
	}
	loopDone := make(chan struct{})
	var foreign atomic.Int32
	go func() { // the socket's owner
		defer close(loopDone)
		buf := make([]byte, 65536)
		for {
			n, _, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			pkt, err := ParseV2c(buf[:n])
			if err != nil || !s.Answer(&pkt) {
				foreign.Add(1)
			}
		}
	}()
	for tr := uint32(1); tr <= 5; tr++ {
		if err := s.Send(pattern(420), tr); err != nil {
			t.Fatal(err)
		}
	}
	o.wait(t, 5)
	for tr := uint32(1); tr <= 5; tr++ {
		if err := o.err(tr); err != nil || !bytes.Equal(p.message(tr), pattern(420)) {
			t.Fatalf("transfer %d: %v, the peer got %d octets", tr, err, len(p.message(tr)))
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The socket is still the owner's: it still sends.
	if _, err := conn.WriteToUDPAddrPort([]byte("x"), p.conn.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		t.Fatalf("socket closed by the shared sender's Close: %v", err)
	}
	_ = conn.Close()
	<-loopDone
	t.Logf("%d datagrams not answers to requests in flight", foreign.Load())
}
