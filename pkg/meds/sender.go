package meds

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/hellopics/hellopics/pkg/dgram"
)

// SenderConfig configures a V2cSender.
type SenderConfig struct {
	// PDU is what each fragment travels in: gosnmp.SetRequest (relay to
	// agent), gosnmp.InformRequest or gosnmp.SNMPv2Trap (agent to relay;
	// a trap is not answered, so not retried).
	PDU gosnmp.PDUType
	// Community is sent, and required in answers.
	Community string
	// FragmentSize is the medsData octets per SNMP message; see
	// FragmentDataSize.
	FragmentSize int
	// Timeout is how long a fragment waits for its answer before it is
	// sent again (with a new request-id).
	Timeout time.Duration
	// Retries is how many times an unanswered fragment is sent again
	// before its message fails with ErrNoAnswer.
	Retries int
	// Window is how many fragments of one message may wait for their
	// answers at once (1: one at a time).
	Window int
	// MaxInFlight is how many messages may be in flight at once; more
	// wait, in order, up to MaxQueued.
	MaxInFlight int
	// MaxQueued is how many messages may wait for a place in flight;
	// past it Send returns ErrQueueFull.
	MaxQueued int
	// Uptime returns sysUpTime.0 for notifications; nil means 0.
	Uptime func() uint32
	// OnRetry, if set, is called before each fragment is sent again.
	OnRetry func()
	// OnDone is called once for every message Send took, with nil when
	// every fragment was answered with noError (a trap: was sent), a
	// *Refused, an error matching ErrNoAnswer, or ErrSenderClosed. It
	// runs on the sender's goroutines (or Send's) with the sender's lock
	// held: it must be quick and must not call the sender. After it the
	// sender no longer touches msg.
	OnDone func(msg []byte, transfer uint32, err error)
}

// ErrQueueFull is Send's error when MaxQueued messages already wait.
var ErrQueueFull = errors.New("meds: send queue full")

// ErrSenderClosed is the error of the messages still in flight or
// queued when a V2cSender is closed, and of Send after Close.
var ErrSenderClosed = errors.New("meds: sender closed")

// V2cSender sends MEDS messages as SNMPv2c requests to one peer, with
// many messages and their fragments in flight at once, each fragment
// retried on its own with a new request-id. Any goroutine may call Send
// or Queue. With DialV2cSender it owns a connected UDP socket and a
// goroutine that reads the answers in batches (recvmmsg); with
// NewV2cSender it sends from a socket another loop reads, which hands
// it the answers (Answer). A second goroutine resends what timed out.
// Nothing is allocated per message once the sender is warm. The
// counterpart of V2cRequester for a peer that many goroutines talk to.
type V2cSender struct {
	cfg  SenderConfig
	conn *net.UDPConn
	rd   *dgram.Reader  // nil when shared: the socket's owner reads
	peer netip.AddrPort // where requests go on a shared socket; zero when not shared
	tick time.Duration

	mu     sync.Mutex
	w      *dgram.Writer        // requests, sent per batch; under mu
	frags  map[uint32]fragState // by request-id: fragments in flight
	active int                  // messages in flight
	queue  []*outMsg            // messages waiting, oldest first
	free   []*outMsg            // spare message records
	reqID  uint32
	closed bool
	done   []finished // OnDone calls unlock makes, after the flush

	stop chan struct{}
	wg   sync.WaitGroup
}

// outMsg is one message taken by Send.
type outMsg struct {
	msg      []byte
	transfer uint32
	count    uint32 // fragments
	next     uint32 // the first fragment not yet sent
	open     int    // fragments waiting for their answers
	failed   bool   // finished with an error; late answers are ignored
}

// fragState is one fragment waiting for its answer.
type fragState struct {
	m        *outMsg
	index    uint32
	deadline time.Time
	attempts int
}

type finished struct {
	msg      []byte
	transfer uint32
	err      error
}

// DialV2cSender connects a UDP socket to addr (host:port) and starts
// the sender's goroutines; Close stops them and closes the socket.
func DialV2cSender(addr string, cfg SenderConfig) (*V2cSender, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("meds: sender: address %q: %w", addr, err)
	}
	conn, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		return nil, fmt.Errorf("meds: sender: connect to %s: %w", addr, err)
	}
	_ = conn.SetReadBuffer(4 << 20) // answers to a burst of requests
	s, err := newSender(conn, netip.AddrPort{}, cfg)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	if s.rd, err = dgram.NewReader(conn, 32, 65536); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("meds: sender: %w", err)
	}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.readLoop() }()
	go func() { defer s.wg.Done(); s.retryLoop() }()
	return s, nil
}

// NewV2cSender sends to peer from conn, a socket that some other loop
// owns and reads: that loop hands the sender every Response from peer
// through Answer. This saves a reader goroutine and its wake-ups when
// the loop reads anyway (a relay's notification socket, an agent's
// request socket). Close stops the retry goroutine and leaves conn
// open. Without a connected socket the sender does not learn that the
// peer's port is closed: unanswered requests fail on time-out only.
func NewV2cSender(conn *net.UDPConn, peer netip.AddrPort, cfg SenderConfig) (*V2cSender, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if !peer.IsValid() {
		return nil, errors.New("meds: sender: no peer address")
	}
	s, err := newSender(conn, peer, cfg)
	if err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.retryLoop() }()
	return s, nil
}

func (cfg *SenderConfig) check() error {
	if cfg.FragmentSize <= 0 || cfg.Timeout <= 0 || cfg.Retries < 0 || cfg.Window <= 0 || cfg.MaxInFlight <= 0 || cfg.MaxQueued < 0 {
		return errors.New("meds: sender: FragmentSize, Timeout, Window and MaxInFlight must be positive, Retries and MaxQueued not negative")
	}
	if cfg.OnDone == nil {
		cfg.OnDone = func([]byte, uint32, error) {}
	}
	return nil
}

func newSender(conn *net.UDPConn, peer netip.AddrPort, cfg SenderConfig) (*V2cSender, error) {
	w, err := dgram.NewWriter(conn, 32)
	if err != nil {
		return nil, fmt.Errorf("meds: sender: %w", err)
	}
	return &V2cSender{
		cfg: cfg, conn: conn, w: w, peer: peer,
		tick:  min(max(cfg.Timeout/8, time.Millisecond), 100*time.Millisecond),
		frags: make(map[uint32]fragState, cfg.MaxInFlight*cfg.Window),
		reqID: rand.Uint32() & 0x7fffffff,
		stop:  make(chan struct{}),
	}, nil
}

// Answer takes p, a packet that came from the peer on a shared socket
// (see NewV2cSender), and reports whether it answered a request in
// flight. Anything else (another PDU, another community, a late or
// foreign request-id) is left to the caller.
func (s *V2cSender) Answer(p *V2cPacket) bool {
	if p.PDU != gosnmp.GetResponse || string(p.Community) != s.cfg.Community {
		return false
	}
	s.mu.Lock()
	if _, ok := s.frags[p.RequestID]; !ok {
		s.mu.Unlock()
		return false
	}
	s.answerPacket(p, time.Now())
	s.unlock()
	return true
}

// Peer is where a shared sender's requests go (see NewV2cSender); the
// zero AddrPort for a sender with its own socket.
func (s *V2cSender) Peer() netip.AddrPort { return s.peer }

// Send takes msg (a whole encoded MEDS message) to be sent as fragments
// with transfer id transfer: now if fewer than MaxInFlight messages are
// in flight, else after the ones waiting. OnDone reports the outcome;
// msg must not change until then. The error is ErrQueueFull or
// ErrSenderClosed, and then OnDone is not called.
func (s *V2cSender) Send(msg []byte, transfer uint32) error {
	return s.send(msg, transfer, true)
}

// Queue is Send without the system call: the requests wait for Flush
// (or the sender's next send), so that a caller with several messages
// sends them together.
func (s *V2cSender) Queue(msg []byte, transfer uint32) error {
	return s.send(msg, transfer, false)
}

// Flush sends what Queue left waiting.
func (s *V2cSender) Flush() {
	s.mu.Lock()
	s.unlock()
}

func (s *V2cSender) send(msg []byte, transfer uint32, flush bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrSenderClosed
	}
	if s.active >= s.cfg.MaxInFlight && len(s.queue) >= s.cfg.MaxQueued {
		s.mu.Unlock()
		return ErrQueueFull
	}
	m := s.newMsg(msg, transfer)
	if s.active < s.cfg.MaxInFlight {
		s.start(m, time.Now())
	} else {
		s.queue = append(s.queue, m)
	}
	if flush || len(s.done) > 0 {
		s.unlock()
	} else {
		s.mu.Unlock()
	}
	return nil
}

// InFlight is how many messages are in flight and how many wait.
func (s *V2cSender) InFlight() (active, queued int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active, len(s.queue)
}

// Close stops the goroutines, closes the socket (unless shared) and
// finishes every message in flight or waiting with ErrSenderClosed.
func (s *V2cSender) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	var err error
	if !s.peer.IsValid() { // the socket is the sender's own
		err = s.conn.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.mu.Lock()
	for _, f := range s.frags {
		if !f.m.failed {
			s.finish(f.m, ErrSenderClosed)
		}
	}
	clear(s.frags)
	for _, m := range s.queue {
		s.done = append(s.done, finished{m.msg, m.transfer, ErrSenderClosed})
	}
	s.queue = nil
	s.unlock()
	return err
}

func (s *V2cSender) newMsg(msg []byte, transfer uint32) *outMsg {
	var m *outMsg
	if n := len(s.free); n > 0 {
		m, s.free = s.free[n-1], s.free[:n-1]
	} else {
		m = new(outMsg)
	}
	*m = outMsg{msg: msg, transfer: transfer, count: FragmentCount(len(msg), s.cfg.FragmentSize)}
	return m
}

// start puts m in flight. Under mu.
func (s *V2cSender) start(m *outMsg, now time.Time) {
	s.active++
	s.fill(m, now)
	if s.cfg.PDU == gosnmp.SNMPv2Trap { // nothing to wait for
		s.finish(m, nil)
	}
}

// fill sends fragments of m until Window wait for answers or none is
// left. Under mu.
func (s *V2cSender) fill(m *outMsg, now time.Time) {
	for m.next < m.count && (m.open < s.cfg.Window || s.cfg.PDU == gosnmp.SNMPv2Trap) {
		f := fragState{m: m, index: m.next, attempts: 1}
		m.next++
		if s.cfg.PDU != gosnmp.SNMPv2Trap {
			m.open++
		}
		s.transmit(f, now)
	}
}

// transmit queues one attempt of fragment f with a new request-id.
// Under mu; unlock sends it.
func (s *V2cSender) transmit(f fragState, now time.Time) {
	s.reqID = (s.reqID + 1) & 0x7fffffff
	if s.reqID == 0 {
		s.reqID = 1
	}
	var uptime uint32
	if s.cfg.Uptime != nil {
		uptime = s.cfg.Uptime()
	}
	b := AppendV2cFragment(s.w.Next(), s.cfg.PDU, s.cfg.Community, s.reqID, uptime, fragmentOf(f.m.msg, f.m.transfer, f.m.count, s.cfg.FragmentSize, f.index))
	_ = s.w.Commit(b, s.peer) // a refused datagram is retried on time-out
	if s.cfg.PDU != gosnmp.SNMPv2Trap {
		f.deadline = now.Add(s.cfg.Timeout)
		s.frags[s.reqID] = f
	}
}

// finish ends m with err and starts a waiting message. Under mu.
func (s *V2cSender) finish(m *outMsg, err error) {
	s.done = append(s.done, finished{m.msg, m.transfer, err})
	s.active--
	if err == nil || m.open == 0 {
		s.free = append(s.free, m)
	} else {
		m.failed = true // its other fragments still in frags hold it; dropped as they end
	}
	for len(s.queue) > 0 && s.active < s.cfg.MaxInFlight && !s.closed {
		next := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		s.start(next, time.Now())
	}
}

// drop forgets fragment f of a failed message. Under mu.
func (s *V2cSender) drop(f fragState) {
	f.m.open--
	if f.m.open == 0 {
		s.free = append(s.free, f.m)
	}
}

// unlock sends the queued requests, reports the messages that
// finished and releases mu.
func (s *V2cSender) unlock() {
	if s.w.Len() > 0 && !s.closed {
		_ = s.w.Flush() // a refused datagram is retried on time-out
	}
	for i, d := range s.done {
		s.cfg.OnDone(d.msg, d.transfer, d.err)
		s.done[i] = finished{}
	}
	s.done = s.done[:0]
	s.mu.Unlock()
}

// readLoop takes the answers, in batches.
func (s *V2cSender) readLoop() {
	for {
		ms, err := s.rd.Read()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// The peer's port is closed (ICMP): whatever is in flight
			// was lost; try again now rather than after the time-out.
			s.mu.Lock()
			s.expire(time.Now(), err)
			s.unlock()
			if !s.pause() {
				return
			}
			continue
		}
		now := time.Now()
		s.mu.Lock()
		for _, m := range ms {
			s.answer(m.Buf, now)
		}
		s.unlock()
	}
}

// pause waits a moment after a failed read, so a peer that is down is
// not hammered; false when the sender is closing.
func (s *V2cSender) pause() bool {
	t := time.NewTimer(min(s.cfg.Timeout/4, 50*time.Millisecond))
	defer t.Stop()
	select {
	case <-s.stop:
		return false
	case <-t.C:
		return true
	}
}

// answer handles one datagram from the peer. Under mu.
func (s *V2cSender) answer(b []byte, now time.Time) {
	p, err := ParseV2c(b)
	if err != nil || p.PDU != gosnmp.GetResponse || string(p.Community) != s.cfg.Community {
		return // not an answer of ours
	}
	s.answerPacket(&p, now)
}

// answerPacket handles a Response. Under mu.
func (s *V2cSender) answerPacket(p *V2cPacket, now time.Time) {
	f, ok := s.frags[p.RequestID]
	if !ok { // late, duplicate or foreign
		return
	}
	delete(s.frags, p.RequestID)
	m := f.m
	if m.failed {
		s.drop(f)
		return
	}
	m.open--
	if p.ErrorStatus != 0 {
		s.finish(m, &Refused{Index: f.index, Count: m.count, Status: p.ErrorStatus, ErrorIndex: p.ErrorIndex})
		return
	}
	s.fill(m, now)
	if m.open == 0 && m.next == m.count {
		s.finish(m, nil)
	}
}

// retryLoop resends what timed out, every tick.
func (s *V2cSender) retryLoop() {
	t := time.NewTicker(s.tick)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.mu.Lock()
			if len(s.frags) > 0 && s.expire(now, nil) {
				s.unlock()
			} else {
				s.mu.Unlock() // leaves what Queue queued to Flush
			}
		}
	}
}

// expire resends the fragments past their deadline, or all of them
// when a read failed with cause, failing a message whose fragment had
// its retries, and reports whether it did anything. Under mu.
func (s *V2cSender) expire(now time.Time, cause error) (acted bool) {
	for id, f := range s.frags {
		if f.m.failed {
			delete(s.frags, id)
			s.drop(f)
			continue
		}
		if cause == nil && now.Before(f.deadline) {
			continue
		}
		acted = true
		delete(s.frags, id)
		if f.attempts > s.cfg.Retries {
			f.m.open--
			why := cause
			if why == nil {
				why = fmt.Errorf("timeout after %v", s.cfg.Timeout)
			}
			s.finish(f.m, fmt.Errorf("fragment %d of %d: %w after %d retries: %w", f.index, f.m.count, ErrNoAnswer, s.cfg.Retries, why))
			continue
		}
		if s.cfg.OnRetry != nil {
			s.cfg.OnRetry()
		}
		f.attempts++
		s.transmit(f, now)
	}
	return acted
}
