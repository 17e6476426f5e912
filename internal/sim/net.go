package sim

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"time"

	"google.golang.org/protobuf/proto"
)

// The network models what pconn sessions over TCP can do, nothing more:
//
//   - Each session is two ends; each direction is a FIFO: frames on one
//     session are never reordered, duplicated or lost while it lives.
//     Each frame takes the link's latency plus a random jitter, and on a
//     lossy link a lost segment costs a retransmission timeout
//     (tcpRTO), holding up every frame behind it (head-of-line).
//   - A cut link (a partition, one direction or both) holds frames: TCP
//     retransmits, so they arrive after the heal, unless an end gave up
//     first (dead-peer timeout, crash), which loses everything in flight.
//   - Frames on different sessions are independent, so the order across
//     sessions (mgmt->ctrl vs data->mgmt, or the two HA sessions of a
//     pair of instances) is whatever the latencies make it.
//   - A connect takes a round trip; to a host that is up but has no
//     listener (process crashed) it is refused after a round trip; over
//     a cut link the SYN is retransmitted after synRetry and the attempt
//     fails after the dial timeout. A paused process's kernel still
//     completes the handshake and buffers what arrives.
//   - A graceful close sends a goodbye after what is queued, the peer
//     answers with its FIN; the closer's session ends then, or after the
//     linger timeout. A crashed process's kernel resets its sessions
//     (what was in flight is lost); the reset travels like a frame.
//   - Dead-peer detection as pconn does it: an end hears its peer while
//     the peer's end is open, its process runs (not paused) and the link
//     toward it works; pings then flow whatever the traffic. An end that
//     stops hearing gives up after 4/5 to 5/5 of its dead timeout, drawn
//     per end.
//
// Nothing is ever duplicated: TCP does not, and the machines' own
// resends (heartbeats, a pending handover, a component's repeated
// Identify and Ready on a new session) are the only repeats, as in the
// real system. Hostile peers replay and forge on their own sessions.

const (
	tcpRTO   = 200 * time.Millisecond // Linux's minimum retransmission timeout
	synRetry = time.Second            // the first SYN retransmission
)

type linkKey struct{ from, to string }

type linkState struct {
	cut   bool
	extra time.Duration // added to every frame (a slow path)
	loss  float64       // probability that a frame costs tcpRTO
}

type itemKind uint8

const (
	itemFrame   itemKind = iota + 1
	itemAccept           // the server's kernel hands the connection to the process
	itemGoodbye          // graceful close: nothing follows
	itemFin              // the answer to a goodbye
	itemReset            // the kernel reset the connection (crash, abort)
)

type item struct {
	kind itemKind
	typ  int32 // frame type (hellopicsv1.MsgType or HAMsgType)
	msg  proto.Message
	due  time.Duration
}

type endState uint8

const (
	endOpen endState = iota
	endClosing
	endGone
)

// Why a session ended, as pconn reports it.
var (
	errClosed     = errors.New("pconn: session closed")                      // we closed it
	errPeerClosed = errors.New("pconn: peer closed the session")             // a goodbye
	errReset      = errors.New("read: connection reset by peer")             // the peer's kernel reset it
	errDeadPeer   = errors.New("pconn: peer is dead: nothing received")      // the dead timeout
	errRefused    = errors.New("dial: connect: connection refused")          // nothing listens
	errTimeout    = errors.New("dial: i/o timeout")                          // the dial timeout
	errNotConn    = errors.New("pconn: not connected")                       // no session
	errSendClosed = errors.New("pconn: send on a closed or closing session") // Send after Close
)

// handler is what a process does with its end of a session.
type handler struct {
	frame  func(e *end, typ int32, msg proto.Message)
	accept func(e *end)            // server only: the session is established
	ended  func(e *end, err error) // the session ended (pconn's final event)
}

type session struct {
	id   uint64
	ends [2]*end // client, server
}

// end is one side of a session.
type end struct {
	s      *session
	side   int
	p      *proc
	inc    int
	h      handler
	local  string // host:port
	remote string // the peer's host:port
	state  endState
	dead   time.Duration // this end's dead timeout
	deadF  float64       // 0.8-1.0: when within the last fifth it gives up
	linger time.Duration

	out       []item // in flight from this end to the other
	scheduled bool   // the head of out has a delivery event
	blocked   bool   // the head waits for a cut link to heal

	lastRecv    time.Duration
	silentSince time.Duration // -1 while hearing the peer
	silentGen   uint64

	cookie string // the HA shell's session cookie (peer id)
}

func (e *end) other() *end { return e.s.ends[1-e.side] }

// ID is the session id, as pconn's Session.ID.
func (e *end) ID() uint64 { return e.s.id }

type listener struct {
	addr   string
	p      *proc
	inc    int
	h      handler
	dead   time.Duration
	linger time.Duration
}

type network struct {
	w         *World
	links     map[linkKey]*linkState
	latency   map[linkKey]time.Duration
	listeners map[string]*listener
	sessions  []*session
	nextID    uint64
	nextPort  int
}

func newNetwork(w *World) *network {
	return &network{w: w, links: map[linkKey]*linkState{}, latency: map[linkKey]time.Duration{},
		listeners: map[string]*listener{}, nextPort: 40000}
}

func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

func (n *network) link(from, to string) *linkState {
	k := linkKey{from, to}
	l := n.links[k]
	if l == nil {
		l = &linkState{}
		n.links[k] = l
	}
	return l
}

func (n *network) up(from, to string) bool {
	l := n.links[linkKey{from, to}]
	return l == nil || !l.cut
}

// base is the link's latency, drawn once per direction.
func (n *network) base(from, to string) time.Duration {
	k := linkKey{from, to}
	d, ok := n.latency[k]
	if !ok {
		lo, hi := n.w.sc.Net.LatencyMin, n.w.sc.Net.LatencyMax
		d = lo
		if hi > lo {
			d += time.Duration(n.w.rng.Int64N(int64(hi - lo)))
		}
		n.latency[k] = d
	}
	return d
}

// delay is one frame's time on the wire from host a to host b.
func (n *network) delay(a, b string) time.Duration {
	d := n.base(a, b)
	if j := n.w.sc.Net.Jitter; j > 0 {
		d += time.Duration(n.w.rng.Int64N(int64(j)))
	}
	if l := n.links[linkKey{a, b}]; l != nil {
		d += l.extra
		if l.loss > 0 && n.w.rng.Float64() < l.loss {
			d += tcpRTO
		}
	}
	return d
}

func (n *network) listen(l *listener) { l.inc = l.p.inc; n.listeners[l.addr] = l }

// connect makes one connection attempt from process p to addr and
// reports the client's end, or why it failed, to done (as an arrival
// of p's incarnation).
func (n *network) connect(p *proc, addr string, dialTimeout, dead, linger time.Duration, h handler, done func(*end, error)) {
	w := n.w
	inc := p.inc
	host := hostOf(addr)
	start := w.now
	report := func(at time.Duration, e *end, err error) {
		w.at(at, func() { w.onProc(p, inc, false, func() { done(e, err) }) })
	}
	var try func()
	try = func() {
		if !p.up || p.inc != inc {
			return
		}
		if !n.up(p.host, host) || !n.up(host, p.host) || w.hosts[host] == nil {
			if next := w.now + synRetry; next-start < dialTimeout {
				w.at(next, try)
				return
			}
			report(start+dialTimeout, nil, fmt.Errorf("dial tcp %s: %w", addr, errTimeout))
			return
		}
		rtt := n.delay(p.host, host) + n.delay(host, p.host)
		w.at(w.now+rtt, func() {
			if !p.up || p.inc != inc {
				return
			}
			l := n.listeners[addr]
			if l == nil || !l.p.up || l.p.inc != l.inc {
				w.onProc(p, inc, false, func() { done(nil, fmt.Errorf("dial tcp %s: %w", addr, errRefused)) })
				return
			}
			e := n.establish(p, l, dead, linger, h)
			w.onProc(p, inc, false, func() { done(e, nil) })
		})
	}
	try()
}

// establish creates the session between p and listener l; the
// server's process hears of it when the accept item reaches it.
func (n *network) establish(p *proc, l *listener, dead, linger time.Duration, h handler) *end {
	n.nextID++
	n.nextPort++
	s := &session{id: n.nextID}
	c := &end{s: s, side: 0, p: p, inc: p.inc, h: h, local: fmt.Sprintf("%s:%d", p.host, n.nextPort), remote: l.addr,
		dead: dead, linger: linger, silentSince: -1, lastRecv: n.w.now}
	sv := &end{s: s, side: 1, p: l.p, inc: l.inc, h: l.h, local: l.addr, remote: c.local,
		dead: l.dead, linger: l.linger, silentSince: -1, lastRecv: n.w.now}
	c.deadF = 0.8 + 0.2*n.w.rng.Float64()
	sv.deadF = 0.8 + 0.2*n.w.rng.Float64()
	s.ends = [2]*end{c, sv}
	n.sessions = append(n.sessions, s)
	n.push(c, item{kind: itemAccept})
	n.silence(c)
	n.silence(sv)
	return c
}

// push queues it on e's direction.
func (n *network) push(e *end, it item) {
	o := e.other()
	it.due = n.w.now + n.delay(e.p.host, o.p.host)
	e.out = append(e.out, it)
	n.schedule(e)
}

func (n *network) schedule(e *end) {
	if e.scheduled || e.blocked || len(e.out) == 0 {
		return
	}
	e.scheduled = true
	w := n.w
	w.seq++
	w.q.push(event{at: max(e.out[0].due, w.now), seq: w.seq, e: e})
}

// deliver hands the head of e's direction to the other end.
func (n *network) deliver(e *end) {
	e.scheduled = false
	if len(e.out) == 0 {
		return
	}
	o := e.other()
	if !n.up(e.p.host, o.p.host) {
		e.blocked = true
		return
	}
	it := e.out[0]
	e.out[0] = item{}
	e.out = e.out[1:]
	n.schedule(e)
	if o.state == endGone || !o.p.up || o.p.inc != o.inc {
		return
	}
	if o.p.paused {
		o.p.inbox = append(o.p.inbox, func() { n.arrive(o, it) })
		return
	}
	n.arrive(o, it)
	n.w.chk.touched(o.p)
}

// arrive is it reaching the process at e.
func (n *network) arrive(e *end, it item) {
	if e.state == endGone {
		return
	}
	e.lastRecv = n.w.now
	switch it.kind {
	case itemAccept:
		if e.h.accept != nil {
			e.h.accept(e)
		}
	case itemFrame:
		e.h.frame(e, it.typ, it.msg)
	case itemGoodbye:
		// pconn: the peer closes; what we had queued goes out, then
		// our FIN.
		e.state = endGone
		n.push(e, item{kind: itemFin})
		n.silence(e.other())
		e.h.ended(e, errPeerClosed)
	case itemFin:
		e.state = endGone
		e.h.ended(e, errClosed)
	case itemReset:
		e.state = endGone
		e.out = nil
		e.h.ended(e, errReset)
	}
}

// send queues a frame on e, as Session.SendProto.
func (n *network) send(e *end, typ int32, msg proto.Message) error {
	if e == nil {
		return errNotConn
	}
	if e.state != endOpen {
		return errSendClosed
	}
	n.push(e, item{kind: itemFrame, typ: typ, msg: msg})
	return nil
}

// close closes e gracefully, as Session.Close.
func (n *network) close(e *end) {
	if e == nil || e.state != endOpen {
		return
	}
	e.state = endClosing
	n.push(e, item{kind: itemGoodbye})
	n.silence(e.other())
	p, inc := e.p, e.inc
	n.w.after(e.linger, func() {
		n.w.onProc(p, inc, true, func() {
			if e.state == endClosing {
				e.state = endGone
				e.h.ended(e, errClosed)
			}
		})
	})
}

// abort ends e at once (a dead peer, a refused frame): what was queued
// is dropped, a reset goes to the peer; ended reports err.
func (n *network) abort(e *end, err error) {
	if e.state == endGone {
		return
	}
	e.state = endGone
	e.out = e.out[:0]
	e.blocked = false
	n.push(e, item{kind: itemReset})
	n.silence(e.other())
	e.h.ended(e, err)
}

// crash ends every session of p as its kernel does when the process
// dies: reset, in-flight frames lost; p hears nothing.
func (n *network) crash(p *proc) {
	for _, s := range n.sessions {
		for _, e := range s.ends {
			if e.p == p && e.inc == p.inc && e.state != endGone {
				e.state = endGone
				e.out = e.out[:0]
				e.blocked = false
				n.push(e, item{kind: itemReset})
				n.silence(e.other())
			}
		}
	}
	for addr, l := range n.listeners {
		if l.p == p {
			delete(n.listeners, addr)
		}
	}
}

// hearing reports whether e's peer keeps it informed (frames or pings).
func (n *network) hearing(e *end) bool {
	o := e.other()
	if o.state != endOpen || !o.p.running() || o.p.inc != o.inc || !n.up(o.p.host, e.p.host) {
		return false
	}
	if l := n.links[linkKey{o.p.host, e.p.host}]; l != nil {
		d := l.extra
		if l.loss > 0 {
			d += tcpRTO
		}
		if float64(d) >= 0.8*float64(e.dead) {
			return false
		}
	}
	return true
}

// silence re-evaluates whether e hears its peer, arming its dead check.
func (n *network) silence(e *end) {
	if e.state != endOpen || !e.p.up || e.p.inc != e.inc {
		return
	}
	if n.hearing(e) {
		e.silentSince = -1
		return
	}
	if e.silentSince >= 0 {
		return
	}
	e.silentSince = n.w.now
	e.silentGen++
	n.armDead(e, e.silentGen)
}

func (n *network) armDead(e *end, gen uint64) {
	from := max(e.silentSince, e.lastRecv)
	at := from + time.Duration(float64(e.dead)*e.deadF)
	p, inc := e.p, e.inc
	n.w.at(at, func() {
		n.w.onProc(p, inc, true, func() {
			if e.state != endOpen || e.silentGen != gen || e.silentSince < 0 {
				return
			}
			if n.hearing(e) {
				e.silentSince = -1
				return
			}
			if limit := max(e.silentSince, e.lastRecv) + time.Duration(float64(e.dead)*e.deadF); n.w.now < limit {
				n.armDead(e, gen)
				return
			}
			n.abort(e, fmt.Errorf("%w (%v)", errDeadPeer, e.dead))
		})
	})
}

// reevaluate follows a change of the network or of a process: every
// open end checks whether it still hears its peer, and directions held
// by a cut link that now works resume.
func (n *network) reevaluate() {
	live := n.sessions[:0]
	for _, s := range n.sessions {
		if s.ends[0].state == endGone && s.ends[1].state == endGone && len(s.ends[0].out) == 0 && len(s.ends[1].out) == 0 {
			continue
		}
		live = append(live, s)
	}
	for i := len(live); i < len(n.sessions); i++ {
		n.sessions[i] = nil
	}
	n.sessions = live
	for _, s := range n.sessions {
		for _, e := range s.ends {
			if e.blocked && n.up(e.p.host, e.other().p.host) {
				e.blocked = false
				if len(e.out) > 0 {
					e.out[0].due = n.w.now + n.delay(e.p.host, e.other().p.host)
				}
				n.schedule(e)
			}
			n.silence(e)
		}
	}
}

// cutSet returns the cut directed links, sorted, for traces.
func (n *network) cutSet() []string {
	var out []string
	for k, l := range n.links {
		if l.cut {
			out = append(out, k.from+">"+k.to)
		}
	}
	sort.Strings(out)
	return out
}
