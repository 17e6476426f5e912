package handshake

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hellopics/hellopics/pkg/hello"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

const (
	// DefaultHelloInterval is the Hello cycle period when none is set.
	DefaultHelloInterval = time.Second
	// MinHelloInterval is the shortest Hello cycle period accepted.
	MinHelloInterval = 10 * time.Millisecond
	// DefaultIdentifyTimeout is MgmtConfig.IdentifyTimeout when none is set.
	DefaultIdentifyTimeout = 10 * time.Second
)

// MgmtConfig configures a Mgmt machine.
type MgmtConfig struct {
	// HelloInterval is the period of every pair's Hello cycle. Zero means
	// DefaultHelloInterval (1 s); values below MinHelloInterval (10 ms) are
	// refused. A hello that has not returned when the next is due counts
	// as missed, so the interval is also the hello timeout.
	HelloInterval time.Duration
	// NoCycle turns the machine's own Hello cycle off: an application
	// on the framework runs it instead (pkg/hellocycle). Pairs still
	// become ready; no MSG_HELLO is sent, and one that comes back is
	// refused as out of order.
	NoCycle bool
	// IdentifyTimeout is how long a connection may stay without
	// identifying itself before mgmt closes it. Zero means
	// DefaultIdentifyTimeout (10 s); components identify at once, so only
	// strays and port scanners hit it.
	IdentifyTimeout time.Duration
	// Epoch is the mastership epoch stamped on every message to ctrl and
	// data. It never decreases; use 1 when there is no election.
	Epoch uint64
	// Backup starts the machine as a backup: it answers every Identify
	// with a Redirect to MasterAddr and closes the session. The zero value
	// is a master.
	Backup bool
	// MasterAddr is, for a backup, the component address of the master
	// ("" when no live master is known).
	MasterAddr string
	// HoldWithoutMaster makes a backup that knows no live master
	// (MasterAddr "") hold a component's Identify instead of redirecting
	// it nowhere: SetMastership answers it the moment this instance
	// becomes master (accepted at once, no reconnection) or learns the
	// master (redirected there). The identify timeout bounds the wait.
	HoldWithoutMaster bool
	// MaxPairs bounds the registry: an Identify that would create a pair
	// beyond it is refused (RefusedTooManyPairs). Zero means
	// DefaultMaxPairs.
	MaxPairs int
	// PairExpiry is how long a pair whose ctrl and data are both gone
	// stays in the registry before Tick removes it (EventPairExpired).
	// Zero means DefaultPairExpiry; a negative value keeps pairs forever.
	PairExpiry time.Duration
	// SpreadHellos spreads the pairs' hellos over the interval instead
	// of keeping the instants their cycles started at (all at once
	// after a failover): each gap between two hellos of a pair is then
	// within a tenth of HelloInterval of it, not exactly it.
	SpreadHellos bool
}

func (c *MgmtConfig) validate() error {
	if c.HelloInterval == 0 {
		c.HelloInterval = DefaultHelloInterval
	}
	if c.HelloInterval < MinHelloInterval {
		return fmt.Errorf("handshake: hello interval %v below the minimum %v", c.HelloInterval, MinHelloInterval)
	}
	if c.IdentifyTimeout < 0 {
		return fmt.Errorf("handshake: negative identify timeout %v", c.IdentifyTimeout)
	}
	if c.IdentifyTimeout == 0 {
		c.IdentifyTimeout = DefaultIdentifyTimeout
	}
	if c.MaxPairs < 0 {
		return fmt.Errorf("handshake: negative max pairs %d", c.MaxPairs)
	}
	if c.MaxPairs == 0 {
		c.MaxPairs = DefaultMaxPairs
	}
	if c.PairExpiry == 0 {
		c.PairExpiry = DefaultPairExpiry
	}
	if c.Epoch >= EpochLimit {
		return fmt.Errorf("handshake: epoch %d out of range", c.Epoch)
	}
	return nil
}

// Mgmt is the management side of the handshake and the owner of every
// pair's Hello cycle. It is a pure state machine: the shell reports
// sessions, frames and the time, and carries out the returned outputs. It
// is not safe for concurrent use.
type Mgmt struct {
	cfg      MgmtConfig
	sessions map[SessionID]*mgmtSession
	watches  map[watchKey]SessionID
	pairs    map[string]*pair
	// cycle runs the pairs' Hello cycles (pkg/hello); the machine
	// starts and stops them with the handshake and carries their
	// hellos on the pairs' sessions.
	cycle *hello.Cycle
	// unstamped counts pairs without components whose idleSince is not
	// yet set (restored ones): the next call with a time sets it.
	unstamped int
	// changed and removed are the pairs changed and forgotten since the
	// last TakeChanges (noteChanges): what a master sends its backups.
	changed map[string]struct{}
	removed map[string]struct{}

	// Deadlines (mgmt_timers.go).
	idlePairs    map[string]struct{}    // pairs with idleSince set
	unidentified map[SessionID]struct{} // sessions that must still identify
	expiryDue    keyHeap[string]        // idle pairs' expiries (mgmt_timers.go)
	identifyDue  keyHeap[SessionID]     // unidentified sessions' identify deadlines
}

// mgmtSession is one connection to mgmt.
type mgmtSession struct {
	id         SessionID
	remoteAddr string
	since      time.Time
	identified bool
	ident      *hellopicsv1.Identify // the accepted Identify, once identified
	// held is the Identify a backup holds while it knows no live master
	// (identify); answered by SetMastership. heldMsgs are the messages
	// that came after it (a component sends GetPeer at once), handled
	// once the Identify is accepted; at most maxHeldMsgs.
	held     *hellopicsv1.Identify
	heldMsgs []heldMsg
	// watch is the accepted Identify of a watch session (Identify.watch):
	// nothing is registered for it, and it hears an Elected whenever
	// this instance becomes master.
	watch *hellopicsv1.Identify
}

// watchKey is whom a watch session is for: one per pair and role, a
// newer one superseding the older.
type watchKey struct {
	pairID string
	role   hellopicsv1.Role
}

// heldMsg is a message received behind a held Identify.
type heldMsg struct {
	t   hellopicsv1.MsgType
	msg proto.Message
}

// maxHeldMsgs bounds the messages kept behind a held Identify; a
// component sends two or three (GetPeer, Ready, a Report).
const maxHeldMsgs = 8

// member is a registered component of a pair.
type member struct {
	session SessionID
	live    bool // false once the session is lost; the rest is kept for the registry
	ready   bool
	// wasReady is true once the current session has reported ready; it
	// survives a reset of the pair, to know whom to nudge (see identify).
	wasReady bool
	instance string
	addr     string
	dataAddr string
	since    time.Time
}

// pair is one ctrl/data pair in the registry (its Hello cycle and
// counters are in Mgmt.cycle).
type pair struct {
	id         string
	ctrl, data member
	relay      *hellopicsv1.RelayStats

	// idleSince is when the pair last had neither component live (zero
	// while one is, or not yet known for a restored pair).
	idleSince time.Time
	// up: both components ready, with the cycle off (NoCycle): between
	// EventPairReady and EventPairLost.
	up bool
}

// NewMgmt returns a Mgmt machine with an empty registry whose first hello
// number is 1.
func NewMgmt(cfg MgmtConfig) (*Mgmt, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cycle, err := hello.New(hello.Config{Interval: cfg.HelloInterval, Spread: cfg.SpreadHellos, Epoch: cfg.Epoch})
	if err != nil {
		return nil, err
	}
	return &Mgmt{
		cfg:      cfg,
		sessions: make(map[SessionID]*mgmtSession),
		watches:  make(map[watchKey]SessionID),
		pairs:    make(map[string]*pair),
		cycle:    cycle,
		changed:  make(map[string]struct{}),
		removed:  make(map[string]struct{}),

		idlePairs:    make(map[string]struct{}),
		unidentified: make(map[SessionID]struct{}),
	}, nil
}

// Epoch returns the epoch stamped on outgoing messages.
func (m *Mgmt) Epoch() uint64 { return m.cfg.Epoch }

// IsMaster reports whether the machine acts as master.
func (m *Mgmt) IsMaster() bool { return !m.cfg.Backup }

// HelloInterval returns the Hello cycle period in use.
func (m *Mgmt) HelloInterval() time.Duration { return m.cfg.HelloInterval }

// NextSeq returns the hello number the next hello will carry.
func (m *Mgmt) NextSeq() uint64 { return m.cycle.NextSeq() }

// SessionUp reports a new connection from remoteAddr. Nothing is accepted
// on it but an Identify until it has identified itself.
func (m *Mgmt) SessionUp(id SessionID, remoteAddr string, now time.Time) (res []Output) {
	defer func() { m.noteChanges(res) }()
	var out outputs
	m.stamp(now)
	if old, ok := m.sessions[id]; ok {
		// The shell reused a live ID: treat the old connection as lost.
		out = append(out, m.SessionDown(old.id, "session id reused", now)...)
	}
	s := &mgmtSession{id: id, remoteAddr: remoteAddr, since: now}
	m.sessions[id] = s
	m.unidentifiedSession(s)
	out.event(Event{Kind: EventUp, Session: id, Message: "connection from " + remoteAddr})
	return out
}

// SessionDown reports that a connection is gone. If it was a registered
// component, that pair's cycle stops and both its components must report
// ready again. Unknown sessions are ignored.
func (m *Mgmt) SessionDown(id SessionID, reason string, now time.Time) (res []Output) {
	defer func() { m.noteChanges(res) }()
	var out outputs
	s, ok := m.sessions[id]
	if !ok {
		return nil
	}
	m.dropSession(id)
	if w := s.watch; w != nil {
		k := watchKey{w.GetPairId(), w.GetRole()}
		if m.watches[k] == id {
			delete(m.watches, k)
		}
		out.event(Event{Kind: EventWatch, Peer: w.GetRole(), PairID: w.GetPairId(), Session: id,
			Message: "watch session lost", Attrs: []any{"addr", s.remoteAddr, "reason", reason}})
		return out
	}
	if !s.identified {
		out.event(Event{Kind: EventDown, Session: id, Message: "unidentified session lost", Attrs: []any{"addr", s.remoteAddr, "reason", reason}})
		return out
	}
	p := m.pairs[s.ident.GetPairId()]
	if p == nil {
		return out // cannot happen: an identified session's pair has a live member
	}
	mb := p.member(s.ident.GetRole())
	if !mb.live || mb.session != id {
		return out
	}
	mb.live, mb.ready = false, false
	if !p.ctrl.live && !p.data.live {
		m.idle(p, now)
	}
	why := fmt.Sprintf("%s %s lost: %s", RoleName(s.ident.GetRole()), s.ident.GetInstance(), reason)
	out.event(Event{Kind: EventDown, Peer: s.ident.GetRole(), PairID: p.id, Session: id, Epoch: m.cfg.Epoch,
		Message: "component lost", Attrs: []any{"instance", s.ident.GetInstance(), "reason", reason}})
	m.resetPair(&out, p, why)
	return out
}

// resetPair stops p's cycle and clears both ready flags: a component's
// readiness is always relative to its peer, so losing either makes both
// stale.
func (m *Mgmt) resetPair(out *outputs, p *pair, why string) {
	p.ctrl.ready, p.data.ready = false, false
	m.carry(out, 0, m.cycle.Stop(p.id, why))
	if p.up {
		p.up = false
		out.event(Event{Kind: EventPairLost, PairID: p.id, Epoch: m.cfg.Epoch, Message: "pair no longer ready", Attrs: []any{"reason", why}})
	}
}

// pairUp reports whether p's two components are ready: its cycle runs,
// or with the cycle off, it is up.
func (m *Mgmt) pairUp(p *pair) bool {
	if m.cfg.NoCycle {
		return p.up
	}
	return m.cycle.Running(p.id)
}

// Receive handles one frame of type t from session id. msg must be of the
// Go type NewMessage(t) returns.
func (m *Mgmt) Receive(id SessionID, t hellopicsv1.MsgType, msg proto.Message, now time.Time) (res []Output) {
	defer func() { m.noteChanges(res) }()
	var out outputs
	s, ok := m.sessions[id]
	if !ok {
		out.event(Event{Kind: EventIgnored, Session: id, Message: fmt.Sprintf("%s on unknown session", t)})
		return out
	}
	if !checkMessage(t, msg) {
		out.event(Event{Kind: EventIgnored, Session: id, Refused: RefusedMalformed, Message: fmt.Sprintf("malformed or unknown frame type %s from %s", t, s.remoteAddr)})
		return out
	}
	if w := s.watch; w != nil {
		// A watch session only listens: there is nothing to say on it
		// after the Identify.
		if t == hellopicsv1.MsgType_MSG_TYPE_ID && proto.Equal(msg, w) {
			return out
		}
		out.event(Event{Kind: EventIgnored, Peer: w.GetRole(), PairID: w.GetPairId(), Session: id,
			Message: fmt.Sprintf("%s on a watch session", t)})
		return out
	}
	if !s.identified {
		if s.held != nil {
			if t == hellopicsv1.MsgType_MSG_TYPE_ID {
				s.held, s.heldMsgs = msg.(*hellopicsv1.Identify), nil // it starts again
				return out
			}
			if len(s.heldMsgs) >= maxHeldMsgs {
				reason := fmt.Sprintf("more than %d messages behind an identify held for want of a master", maxHeldMsgs)
				out = append(out, Close{Session: id, Reason: reason})
				out.event(Event{Kind: EventDown, Session: id, Refused: RefusedNotIdentified, Message: s.remoteAddr + ": " + reason})
				m.dropSession(id)
				return out
			}
			s.heldMsgs = append(s.heldMsgs, heldMsg{t, msg})
			return out
		}
		if t != hellopicsv1.MsgType_MSG_TYPE_ID {
			out.event(Event{Kind: EventIgnored, Session: id, Refused: RefusedNotIdentified, Message: fmt.Sprintf("%s before identification from %s", t, s.remoteAddr)})
			return out
		}
		m.identify(&out, s, msg.(*hellopicsv1.Identify), now)
		return out
	}
	role, p := s.ident.GetRole(), m.pairs[s.ident.GetPairId()]
	if p == nil {
		return out // cannot happen: an identified session's pair has a live member
	}
	switch t {
	case hellopicsv1.MsgType_MSG_TYPE_ID:
		if proto.Equal(msg, s.ident) {
			out.event(Event{Kind: EventIgnored, Peer: role, PairID: p.id, Session: id, Message: "repeated identify"})
			return out
		}
		m.reject(&out, s, msg.(*hellopicsv1.Identify), RefusedIdentityChanged, "identity changed on an identified session", "")
		out = append(out, m.SessionDown(id, "identity changed", now)...)
	case hellopicsv1.MsgType_MSG_TYPE_GET_PEER:
		m.getPeer(&out, s, p, msg.(*hellopicsv1.GetPeer))
	case hellopicsv1.MsgType_MSG_TYPE_READY:
		m.ready(&out, s, p, msg.(*hellopicsv1.Ready), now)
	case hellopicsv1.MsgType_MSG_TYPE_HELLO:
		m.carry(&out, s.id, m.cycle.Back(p.id, role, msg.(*hellopicsv1.Hello), now))
	case hellopicsv1.MsgType_MSG_TYPE_REPORT:
		r := msg.(*hellopicsv1.Report)
		if r.GetRole() != role || r.GetPairId() != p.id || !checkRelay(r.GetRelay()) {
			out.event(Event{Kind: EventIgnored, Peer: role, PairID: p.id, Session: id, Refused: RefusedReport,
				Message: fmt.Sprintf("report from %s not for its own pair and role, or beyond the limits (%d counters, names of at most %d bytes)",
					RoleName(role), MaxRelayCounters, MaxCounterNameLen)})
			return out
		}
		if role == hellopicsv1.Role_ROLE_DATA && r.GetRelay() != nil {
			p.relay = proto.Clone(r.GetRelay()).(*hellopicsv1.RelayStats)
			m.changed[p.id] = struct{}{} // the one change that has no event
		}
	case hellopicsv1.MsgType_MSG_TYPE_REJECT:
		out.event(Event{Kind: EventRejected, Peer: role, PairID: p.id, Session: id, Message: "peer refuses: " + Sanitize(msg.(*hellopicsv1.Reject).GetReason())})
	default:
		out.event(Event{Kind: EventIgnored, Peer: role, PairID: p.id, Session: id, Message: fmt.Sprintf("unexpected %s", t)})
	}
	return out
}

// reject refuses session s, which claims to be who, under rule refused:
// a Reject with reason, then a Close. The reason goes to the stranger and
// must reveal nothing about others; detail is for the log only.
func (m *Mgmt) reject(out *outputs, s *mgmtSession, who *hellopicsv1.Identify, refused, reason, detail string) {
	out.send(s.id, hellopicsv1.MsgType_MSG_TYPE_REJECT, &hellopicsv1.Reject{Reason: Sanitize(reason)})
	*out = append(*out, Close{Session: s.id, Reason: reason})
	msg := fmt.Sprintf("%s (instance %q from %s): %s", RoleName(who.GetRole()), Sanitize(who.GetInstance()), s.remoteAddr, reason)
	if detail != "" {
		msg += " (" + detail + ")"
	}
	pairID := who.GetPairId()
	if !ValidPairID(pairID) {
		pairID = ""
	}
	ev := Event{Kind: EventRejected, Peer: who.GetRole(), PairID: pairID, Session: s.id, Epoch: m.cfg.Epoch, Refused: refused, Message: msg}
	if refused == RefusedEpochAhead {
		ev.PeerEpoch = who.GetEpoch()
	}
	out.event(ev)
}

// identify checks and registers an Identify on the unidentified session s.
func (m *Mgmt) identify(out *outputs, s *mgmtSession, in *hellopicsv1.Identify, now time.Time) {
	if in.GetWatch() {
		m.watch(out, s, in)
		return
	}
	if m.cfg.Backup && m.cfg.MasterAddr == "" && m.cfg.HoldWithoutMaster {
		// No live master known: this instance may well be the next one
		// (the master just died), and a redirect would send the
		// component round the addresses, perhaps to the dead master.
		// Hold the Identify; SetMastership answers it. The identify
		// timeout still bounds the wait. An Identify that is wrong in
		// itself is refused at once, as a master would.
		refused, why := checkIdentifyFields(in)
		if r := in.GetRole(); r != hellopicsv1.Role_ROLE_CTRL && r != hellopicsv1.Role_ROLE_DATA {
			refused, why = RefusedRole, fmt.Sprintf("role %s may not register with mgmt", r)
		}
		if refused != "" {
			m.reject(out, s, in, refused, why, "")
			m.dropSession(s.id)
			return
		}
		s.held = in
		pairID := in.GetPairId()
		if !ValidPairID(pairID) {
			pairID = ""
		}
		out.event(Event{Kind: EventHeld, Peer: in.GetRole(), PairID: pairID, Session: s.id, Epoch: m.cfg.Epoch,
			Message: "no live master known; identify held until one is"})
		return
	}
	if m.cfg.Backup {
		out.send(s.id, hellopicsv1.MsgType_MSG_TYPE_REDIRECT, &hellopicsv1.Redirect{MasterAddr: m.cfg.MasterAddr, Epoch: m.cfg.Epoch})
		reason := "not master; master is " + m.cfg.MasterAddr
		if m.cfg.MasterAddr == "" {
			reason = "not master; no master known"
		}
		*out = append(*out, Close{Session: s.id, Reason: reason})
		pairID := in.GetPairId()
		if !ValidPairID(pairID) {
			pairID = ""
		}
		msg, attrs := "not master; component redirected to the master", []any{"master_addr", m.cfg.MasterAddr}
		if m.cfg.MasterAddr == "" {
			msg, attrs = "not master and no master known; component told to retry", nil
		}
		out.event(Event{Kind: EventRedirect, Peer: in.GetRole(), PairID: pairID, Session: s.id, Epoch: m.cfg.Epoch, Message: msg, Attrs: attrs})
		m.dropSession(s.id)
		return
	}
	if refused, reason, detail := m.checkIdentity(s, in); refused != "" {
		m.reject(out, s, in, refused, reason, detail)
		m.dropSession(s.id)
		return
	}
	if ls, next := in.GetLastSeq(), m.cycle.NextSeq(); ls >= next {
		if ls-next >= MaxSeqJump {
			m.reject(out, s, in, RefusedSeqRange, "last_seq too far above this master's hello numbers",
				fmt.Sprintf("last_seq %d, next %d, at most %d above", ls, next, MaxSeqJump))
			m.dropSession(s.id)
			return
		}
		// The component has forwarded numbers this master never synced
		// (it took over without the old master's state): go past them.
		// checkIdentity bounds ls below SeqLimit, so this cannot wrap.
		m.cycle.Observe(ls)
	}
	p := m.pairs[in.GetPairId()]
	if p == nil {
		p = &pair{id: in.GetPairId()}
		m.pairs[p.id] = p
	}
	m.busy(p)
	role := in.GetRole()
	mb := p.member(role)
	if mb.live {
		// checkIdentity let this through: it is the same instance from the
		// same host on a new connection, so the old one is dead whether or
		// not we noticed.
		old := mb.session
		*out = append(*out, Close{Session: old, Reason: "superseded by a new session of the same instance"})
		*out = append(*out, m.SessionDown(old, "superseded by a new session of the same instance", now)...)
		m.busy(p)
	}
	s.identified = true
	delete(m.unidentified, s.id)
	s.ident = proto.Clone(in).(*hellopicsv1.Identify)
	*mb = member{session: s.id, live: true, instance: in.GetInstance(), addr: s.remoteAddr, dataAddr: in.GetDataAddr(), since: s.since}
	out.event(Event{Kind: EventIdentified, Peer: role, PairID: p.id, Session: s.id, Epoch: m.cfg.Epoch,
		Message: "component identified", Attrs: []any{"instance", in.GetInstance(), "addr", s.remoteAddr}})
	// Tell the other side of the pair about the newcomer. data learns (or
	// relearns) where ctrl listens; ctrl learns that data is back. Either
	// re-announces its readiness if it still is ready, which is how a pair
	// whose readiness was reset by a lost session gets going again. ctrl
	// is told whenever both are registered: the Peer carries this mgmt's
	// epoch, which ctrl must know before it accepts data that has seen it
	// (ctrl never raises its fence from data).
	switch role {
	case hellopicsv1.Role_ROLE_CTRL:
		if p.data.live {
			// ctrl first: data will dial it at once.
			m.sendPeer(out, p, p.ctrl.session, hellopicsv1.Role_ROLE_DATA, p.data.addr)
			m.sendPeer(out, p, p.data.session, hellopicsv1.Role_ROLE_CTRL, p.ctrl.dataAddr)
		}
	case hellopicsv1.Role_ROLE_DATA:
		if p.ctrl.live {
			m.sendPeer(out, p, p.ctrl.session, hellopicsv1.Role_ROLE_DATA, p.data.addr)
		}
	}
}

// watch accepts the watch session s for the component in names, whatever
// this instance's role: it registers nothing, superseding an older watch
// session of the same pair and role, and hears an Elected whenever this
// instance becomes master (SetMastership), or at once if it is master
// at an epoch above the one the Identify carries: a watch that opens
// just after the election would otherwise miss it, and its component
// would wait for its dead timeout on the old master. An Identify wrong
// in itself is refused, as any other.
func (m *Mgmt) watch(out *outputs, s *mgmtSession, in *hellopicsv1.Identify) {
	refused, why := checkIdentifyFields(in)
	if r := in.GetRole(); r != hellopicsv1.Role_ROLE_CTRL && r != hellopicsv1.Role_ROLE_DATA {
		refused, why = RefusedRole, fmt.Sprintf("role %s may not watch mgmt", r)
	}
	if refused != "" {
		m.reject(out, s, in, refused, why, "")
		m.dropSession(s.id)
		return
	}
	k := watchKey{in.GetPairId(), in.GetRole()}
	if old, ok := m.watches[k]; ok && old != s.id {
		*out = append(*out, Close{Session: old, Reason: "superseded by a newer watch session"})
		*out = append(*out, m.SessionDown(old, "superseded by a newer watch session", s.since)...)
	}
	s.watch = proto.Clone(in).(*hellopicsv1.Identify)
	delete(m.unidentified, s.id)
	m.watches[k] = s.id
	out.event(Event{Kind: EventWatch, Peer: in.GetRole(), PairID: in.GetPairId(), Session: s.id, Epoch: m.cfg.Epoch,
		Message: fmt.Sprintf("watch session for %s %s instance %s from %s", RoleName(in.GetRole()), in.GetPairId(), in.GetInstance(), s.remoteAddr)})
	if !m.cfg.Backup && in.GetEpoch() < m.cfg.Epoch {
		out.send(s.id, hellopicsv1.MsgType_MSG_TYPE_ELECTED, &hellopicsv1.Elected{Epoch: m.cfg.Epoch})
	}
}

// Watchers is the number of watch sessions open.
func (m *Mgmt) Watchers() int { return len(m.watches) }

// checkIdentity returns why in, on session s, is refused: the rule, a
// reason for the sender that reveals nothing about others, and details for
// the log. The rule is "" when in is accepted.
func (m *Mgmt) checkIdentity(s *mgmtSession, in *hellopicsv1.Identify) (refused, reason, detail string) {
	role := in.GetRole()
	if role != hellopicsv1.Role_ROLE_CTRL && role != hellopicsv1.Role_ROLE_DATA {
		return RefusedRole, fmt.Sprintf("role %s may not register with mgmt", role), ""
	}
	if refused, why := checkIdentifyFields(in); refused != "" {
		return refused, why, ""
	}
	if in.GetEpoch() > m.cfg.Epoch {
		return RefusedEpochAhead, fmt.Sprintf("stale master: component has seen epoch %d, this mgmt has %d", in.GetEpoch(), m.cfg.Epoch), ""
	}
	p := m.pairs[in.GetPairId()]
	if p == nil {
		if len(m.pairs) >= m.cfg.MaxPairs {
			return RefusedTooManyPairs, "registry full", fmt.Sprintf("%d pairs, the maximum", len(m.pairs))
		}
		return "", "", ""
	}
	// A live registration is superseded only by the same instance from the
	// same host: the component reconnecting before mgmt noticed that its
	// old connection died. Knowing the instance id is not enough.
	if mb := p.member(role); mb.live && (in.GetInstance() == "" || in.GetInstance() != mb.instance || !sameHost(s.remoteAddr, mb.addr)) {
		return RefusedInUse, "identity in use; retry later",
			fmt.Sprintf("pair %s has a live %s, instance %q from %s", p.id, RoleName(role), mb.instance, mb.addr)
	}
	return "", "", ""
}

// sendPeer sends a Peer describing the role component of p to session to.
func (m *Mgmt) sendPeer(out *outputs, p *pair, to SessionID, role hellopicsv1.Role, addr string) {
	out.send(to, hellopicsv1.MsgType_MSG_TYPE_PEER, &hellopicsv1.Peer{Role: role, PairId: p.id, Addr: addr, Epoch: m.cfg.Epoch})
	out.event(Event{Kind: EventPeer, Peer: role, PairID: p.id, Session: to, Epoch: m.cfg.Epoch,
		Message: "sent its address to the other side of the pair", Attrs: []any{"addr", addr}})
}

func (m *Mgmt) getPeer(out *outputs, s *mgmtSession, p *pair, g *hellopicsv1.GetPeer) {
	if s.ident.GetRole() != hellopicsv1.Role_ROLE_DATA || g.GetPairId() != p.id {
		out.event(Event{Kind: EventIgnored, Peer: s.ident.GetRole(), PairID: p.id, Session: s.id,
			Message: fmt.Sprintf("get_peer for another pair from %s", RoleName(s.ident.GetRole()))})
		return
	}
	if !p.ctrl.live {
		out.event(Event{Kind: EventPeer, Peer: hellopicsv1.Role_ROLE_DATA, PairID: p.id, Session: s.id,
			Message: "data asks for its ctrl; answering when ctrl registers"})
		return
	}
	m.sendPeer(out, p, s.id, hellopicsv1.Role_ROLE_CTRL, p.ctrl.dataAddr)
}

func (m *Mgmt) ready(out *outputs, s *mgmtSession, p *pair, r *hellopicsv1.Ready, now time.Time) {
	role := s.ident.GetRole()
	if r.GetRole() != role || r.GetPairId() != p.id {
		out.event(Event{Kind: EventIgnored, Peer: role, PairID: p.id, Session: s.id,
			Message: fmt.Sprintf("ready for %s of another pair on a %s session", RoleName(r.GetRole()), RoleName(role))})
		return
	}
	mb := p.member(role)
	mb.wasReady = true
	if !mb.ready {
		mb.ready = true
		out.event(Event{Kind: EventReady, Peer: role, PairID: p.id, Session: s.id, Epoch: m.cfg.Epoch, Message: "component ready"})
	}
	switch {
	case !p.ctrl.ready || !p.data.ready:
	case !m.cfg.NoCycle:
		m.carry(out, 0, m.cycle.Start(p.id, now))
	case !p.up:
		p.up = true
		out.event(Event{Kind: EventPairReady, PairID: p.id, Epoch: m.cfg.Epoch, Message: "ctrl and data ready"})
	}
}

// carry turns the cycle's outputs into the machine's: a hello goes on
// the session of its first hop in its pair, and the events become the
// machine's (session: the one a hello went on, or came back on: from).
func (m *Mgmt) carry(out *outputs, from SessionID, outs []hello.Output) {
	var sentOn SessionID
	for _, o := range outs {
		switch o := o.(type) {
		case hello.Send:
			p := m.pairs[o.PairID]
			if p == nil {
				continue // cannot happen: the cycle runs registered pairs only
			}
			sentOn = p.member(o.To).session
			out.send(sentOn, hellopicsv1.MsgType_MSG_TYPE_HELLO, o.Hello)
		case hello.Event:
			ev := Event{Peer: o.Peer, PairID: o.PairID, Seq: o.Seq, Epoch: o.Epoch, Message: o.Message, Attrs: o.Attrs,
				RTT: o.RTT, Outage: o.Outage}
			switch o.Kind {
			case hello.EventStarted:
				ev.Kind = EventCycleStarted
			case hello.EventStopped:
				ev.Kind = EventCycleStopped
			case hello.EventSent:
				ev.Kind, ev.Session = EventHelloSent, sentOn
			case hello.EventReturned:
				ev.Kind, ev.Session = EventHelloReturned, from
			case hello.EventMissed:
				ev.Kind = EventHelloMissed
			case hello.EventOutOfOrder:
				ev.Kind, ev.Session = EventHelloOutOfOrder, from
			case hello.EventOutage:
				ev.Kind = EventOutage
			}
			out.event(ev)
		}
	}
}

// NextDeadline returns when Tick must next be called, and false if
// nothing is scheduled (no cycle runs, no session awaits its Identify).
// The shell reads it again after every call; calling Tick earlier or more
// often is harmless.
func (m *Mgmt) NextDeadline() (time.Time, bool) {
	next, found := m.cycle.NextDeadline()
	earliest := func(at time.Time) {
		if !found || at.Before(next) {
			next, found = at, true
		}
	}
	if m.cfg.PairExpiry > 0 {
		if at, ok := m.expiryDue.next(m.validIdle); ok {
			earliest(at)
		}
	}
	if at, ok := m.identifyDue.next(m.validIdentify); ok {
		earliest(at)
	}
	return next, found
}

// Tick advances the Hello cycles to now: each pair whose next hello is due
// counts the outstanding one as missed and sends the next. After a long
// pause (a late Tick) the cycle sends one hello, not a burst. Sessions that
// have not identified within IdentifyTimeout are closed.
func (m *Mgmt) Tick(now time.Time) (res []Output) {
	defer func() { m.noteChanges(res) }()
	var out outputs
	m.stamp(now)
	if len(m.unidentified) > 0 {
		for _, id := range m.identifyDue.due(now, m.validIdentify) {
			s := m.sessions[id]
			reason := fmt.Sprintf("no identify within %v", m.cfg.IdentifyTimeout)
			out = append(out, Close{Session: id, Reason: reason})
			out.event(Event{Kind: EventDown, Session: id, Refused: RefusedIdentifyTimeout, Message: s.remoteAddr + ": " + reason})
			m.dropSession(id)
		}
	}
	if m.cfg.PairExpiry > 0 && len(m.idlePairs) > 0 {
		for _, id := range m.expiryDue.due(now, m.validIdle) {
			p := m.pairs[id]
			m.dropPair(p.id)
			m.removed[p.id] = struct{}{}
			out.event(Event{Kind: EventPairExpired, PairID: p.id, Epoch: m.cfg.Epoch,
				Message: "ctrl and data gone too long; pair removed from the registry", Attrs: []any{"gone", now.Sub(p.idleSince).Round(time.Millisecond).String()}})
		}
	}
	m.carry(&out, 0, m.cycle.Tick(now))
	return out
}

// PlannedTakeover tells a machine that SetMastership just made master
// that the mastership was handed over by a graceful switchover: the old
// master flushed its state here and stopped its cycles on purpose, so
// the pause until they run here is planned, not an outage, and no hello
// counts as missed for it (a crash failover's gap does: countOutage).
func (m *Mgmt) PlannedTakeover() { m.cycle.TakeOver(true) }

// SetMastership changes the machine's role and epoch. A master that
// becomes backup redirects and closes every identified session and stops
// every cycle; a backup that becomes master starts accepting components.
// The epoch never decreases: a lower value is ignored.
func (m *Mgmt) SetMastership(isMaster bool, epoch uint64, masterAddr string, now time.Time) (res []Output) {
	defer func() { m.noteChanges(res) }()
	var out outputs
	m.stamp(now)
	wasEpoch := m.cfg.Epoch
	if epoch > m.cfg.Epoch && epoch < EpochLimit {
		m.cfg.Epoch = epoch
		m.cycle.SetEpoch(epoch)
	}
	wasBackup := m.cfg.Backup
	m.cfg.Backup, m.cfg.MasterAddr = !isMaster, masterAddr
	if wasBackup && isMaster {
		// Taking over: the time since the old master's last returned
		// hello is an outage, counted when the cycle runs again.
		m.cycle.TakeOver(false)
	}
	if wasBackup == isMaster || m.cfg.Epoch != wasEpoch {
		// Only a change of role or epoch is news: a backup learning or
		// losing sight of the master (MasterAddr) happens at every late
		// heartbeat.
		out.event(Event{Kind: EventMastership, Epoch: m.cfg.Epoch,
			Message: mastershipMessage(isMaster, masterAddr)})
	}
	if !m.cfg.Backup || m.cfg.MasterAddr != "" {
		// Answer the held identifies: accepted as master, redirected
		// to the master as backup.
		for _, id := range m.sortedSessions() {
			if s := m.sessions[id]; s.held != nil {
				in, msgs := s.held, s.heldMsgs
				s.held, s.heldMsgs = nil, nil
				m.identify(&out, s, in, now)
				if !s.identified {
					continue // redirected or refused: the rest goes with it
				}
				for _, h := range msgs {
					if m.sessions[id] != s {
						break
					}
					out = append(out, m.Receive(id, h.t, h.msg, now)...)
				}
			}
		}
	}
	if isMaster {
		if wasBackup || m.cfg.Epoch != wasEpoch {
			// Tell the watchers at once: a component still on the old
			// master (its host lost, no reset to say so) follows now,
			// not when its own dead timeout gives up.
			for _, id := range m.sortedSessions() {
				if s := m.sessions[id]; s.watch != nil {
					out.send(id, hellopicsv1.MsgType_MSG_TYPE_ELECTED, &hellopicsv1.Elected{Epoch: m.cfg.Epoch})
				}
			}
		}
		return out
	}
	for _, id := range m.sortedSessions() {
		s := m.sessions[id]
		if !s.identified {
			continue
		}
		out.send(id, hellopicsv1.MsgType_MSG_TYPE_REDIRECT, &hellopicsv1.Redirect{MasterAddr: masterAddr, Epoch: m.cfg.Epoch})
		out = append(out, Close{Session: id, Reason: "no longer master"})
		out.event(Event{Kind: EventRedirect, Peer: s.ident.GetRole(), PairID: s.ident.GetPairId(), Session: id, Epoch: m.cfg.Epoch, Message: "no longer master; component redirected to the master", Attrs: []any{"master_addr", masterAddr}})
		out = append(out, m.SessionDown(id, "no longer master", now)...)
	}
	return out
}

// Known reports whether session id is one the machine still has: false
// once it closed it (a redirect, a refusal) or was told it ended.
func (m *Mgmt) Known(id SessionID) bool { return m.sessions[id] != nil }

// Holding reports whether the machine holds session id's Identify for
// want of a live master (answered by SetMastership): what comes after
// it on the session waits with it.
func (m *Mgmt) Holding(id SessionID) bool {
	s := m.sessions[id]
	return s != nil && s.held != nil
}

// Component names the component identified on session id: its pair
// and role. ok is false for a session that is unknown, has not
// identified itself, or is no longer its component's current session.
func (m *Mgmt) Component(id SessionID) (pairID string, role hellopicsv1.Role, ok bool) {
	s := m.sessions[id]
	if s == nil || !s.identified {
		return "", 0, false
	}
	p := m.pairs[s.ident.GetPairId()]
	if p == nil {
		return "", 0, false
	}
	role = s.ident.GetRole()
	if mb := p.member(role); !mb.live || mb.session != id {
		return "", 0, false
	}
	return p.id, role, true
}

// Session returns the session of the live role component of pair
// pairID; ok is false if there is none (or role is neither ctrl nor
// data).
func (m *Mgmt) Session(pairID string, role hellopicsv1.Role) (SessionID, bool) {
	if role != hellopicsv1.Role_ROLE_CTRL && role != hellopicsv1.Role_ROLE_DATA {
		return 0, false
	}
	p := m.pairs[pairID]
	if p == nil {
		return 0, false
	}
	mb := p.member(role)
	if !mb.live {
		return 0, false
	}
	return mb.session, true
}

// PairCounters returns the Hello counters of pair id, at the cost of
// that one pair (Pairs builds the whole registry); ok is false for a
// pair not in the registry.
func (m *Mgmt) PairCounters(id string) (c *hellopicsv1.HelloCounters, ok bool) {
	if m.pairs[id] == nil {
		return nil, false
	}
	return m.cycle.Counters(id), true
}

// ReadyPairs lists, sorted, the pairs whose Hello cycle runs: both
// components are identified and ready (between EventCycleStarted and
// EventCycleStopped).
func (m *Mgmt) ReadyPairs() []string {
	var out []string
	for _, p := range m.sortedPairs() {
		if m.pairUp(p) {
			out = append(out, p.id)
		}
	}
	return out
}

// stamp starts the idle time of restored pairs that have no component.
func (m *Mgmt) stamp(now time.Time) {
	if m.unstamped == 0 {
		return
	}
	m.unstamped = 0
	for _, p := range m.pairs {
		if p.idleSince.IsZero() && !p.ctrl.live && !p.data.live {
			m.idle(p, now)
		}
	}
}

func (m *Mgmt) sortedSessions() []SessionID {
	ids := make([]SessionID, 0, len(m.sessions))
	for id := range m.sessions {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

func (m *Mgmt) sortedPairs() []*pair {
	ps := make([]*pair, 0, len(m.pairs))
	for _, p := range m.pairs {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].id < ps[j].id })
	return ps
}

func (p *pair) member(role hellopicsv1.Role) *member {
	if role == hellopicsv1.Role_ROLE_CTRL {
		return &p.ctrl
	}
	return &p.data
}

// Pairs returns the registry, one PairStatus per pair ever registered (or
// restored), sorted by pair id. The result is a copy.
func (m *Mgmt) Pairs() []*hellopicsv1.PairStatus {
	page, _ := m.PairsPage(PairQuery{})
	return page.Pairs
}

// PairQuery selects the pairs of a status page (PairsPage).
type PairQuery struct {
	// Match is a pair id, or with a trailing '*' a prefix; "" matches
	// every pair.
	Match string
	// After, when set, starts the page after this pair id.
	After string
	// Limit is the most pairs on the page; 0 is no limit.
	Limit int
}

// Matches reports whether pair id matches q.Match.
func (q PairQuery) Matches(id string) bool {
	if q.Match == "" {
		return true
	}
	if p, ok := strings.CutSuffix(q.Match, "*"); ok {
		return strings.HasPrefix(id, p)
	}
	return id == q.Match
}

// PairsPage is one page of the registry's status (PairsPage).
type PairsPage struct {
	// Pairs are the page's pairs, in pair id order.
	Pairs []*hellopicsv1.PairStatus
	// Next is the After of the next page; "" on the last page.
	Next string
	// Total and Cycling count the pairs matching the query on every page,
	// and those of them running the Hello cycle.
	Total, Cycling int
}

// PairsPage returns the status of the pairs q selects, in pair id order:
// what a status page costs is its own pairs' status, not the registry's.
// An exact Match is a map lookup. ok is false when q.After is set but
// does not match q.Match (a token of another query).
func (m *Mgmt) PairsPage(q PairQuery) (page PairsPage, ok bool) {
	if q.After != "" && !q.Matches(q.After) {
		return page, false
	}
	if q.Match != "" && !strings.HasSuffix(q.Match, "*") {
		if p := m.pairs[q.Match]; p != nil && q.After < p.id {
			page.Pairs, page.Total = []*hellopicsv1.PairStatus{m.status(p)}, 1
			if m.pairUp(p) {
				page.Cycling = 1
			}
		} else if p != nil {
			page.Total = 1
		}
		return page, true
	}
	ps := make([]*pair, 0, len(m.pairs))
	for _, p := range m.pairs {
		if q.Matches(p.id) {
			ps = append(ps, p)
			if m.pairUp(p) {
				page.Cycling++
			}
		}
	}
	page.Total = len(ps)
	sort.Slice(ps, func(i, j int) bool { return ps[i].id < ps[j].id })
	i := 0
	if q.After != "" {
		i = sort.Search(len(ps), func(i int) bool { return ps[i].id > q.After })
	}
	end := len(ps)
	if q.Limit > 0 && i+q.Limit < end {
		end = i + q.Limit
		page.Next = ps[end-1].id
	}
	page.Pairs = make([]*hellopicsv1.PairStatus, 0, end-i)
	for _, p := range ps[i:end] {
		page.Pairs = append(page.Pairs, m.status(p))
	}
	return page, true
}

func (m *Mgmt) status(p *pair) *hellopicsv1.PairStatus {
	st := &hellopicsv1.PairStatus{
		PairId:       p.id,
		Ctrl:         p.ctrl.status(hellopicsv1.Role_ROLE_CTRL, p.id),
		Data:         p.data.status(hellopicsv1.Role_ROLE_DATA, p.id),
		CycleRunning: m.pairUp(p),
		Counters:     m.cycle.Counters(p.id),
	}
	if p.relay != nil {
		st.Relay = proto.Clone(p.relay).(*hellopicsv1.RelayStats)
	}
	return st
}

func (mb *member) status(role hellopicsv1.Role, pairID string) *hellopicsv1.ComponentStatus {
	cs := &hellopicsv1.ComponentStatus{
		Role: role, PairId: pairID, Instance: mb.instance, Addr: mb.addr, DataAddr: mb.dataAddr,
		State: hellopicsv1.ComponentState_COMPONENT_STATE_DOWN,
	}
	if mb.live {
		cs.State = hellopicsv1.ComponentState_COMPONENT_STATE_IDENTIFIED
		if mb.ready {
			cs.State = hellopicsv1.ComponentState_COMPONENT_STATE_READY
		}
		cs.ConnectedSince = timestamppb.New(mb.since)
	}
	return cs
}

// Snapshot is the part of a Mgmt's state that a backup must hold to take
// over: the next hello number and every pair's counters. It maps onto
// hellopicsv1.SyncUpdate (NextSeq, Pairs).
type Snapshot struct {
	// NextSeq is the hello number the machine would use next.
	NextSeq uint64
	// Pairs are the registry's pairs, as Pairs returns them.
	Pairs []*hellopicsv1.PairStatus
	// Full marks a snapshot of the whole registry: Restore then also
	// forgets the pairs it does not hold that have no live component here
	// (pairs the master expired).
	Full bool
	// Removed, in a snapshot that is not Full (TakeChanges), are the
	// pairs forgotten since the last one: Restore forgets them (those
	// with no live component here) before it loads Pairs.
	Removed []string
}

// noteChanges records the pairs a call's outputs name as changed: every
// change of a pair's state the backups hold (membership, addresses,
// readiness, counters) comes with an event naming the pair, but for a
// relay report (recorded where it is taken). A pair named but gone was
// removed (expired) and is recorded there.
func (m *Mgmt) noteChanges(outs []Output) {
	for _, o := range outs {
		if ev, ok := o.(Event); ok && ev.PairID != "" {
			if _, ok := m.pairs[ev.PairID]; ok {
				m.changed[ev.PairID] = struct{}{}
			}
		}
	}
}

// DiscardChanges forgets the changes recorded since the last
// TakeChanges, for a machine that has no backup to tell (a single
// instance): what it records stays bounded.
func (m *Mgmt) DiscardChanges() {
	clear(m.changed)
	clear(m.removed)
}

// HasChanges reports whether a pair changed or was removed since the
// last TakeChanges.
func (m *Mgmt) HasChanges() bool { return len(m.changed) > 0 || len(m.removed) > 0 }

// TakeChanges returns what changed since its last call, and forgets
// it: the pairs changed (as Pairs returns them, sorted by id), the pairs
// removed, and the next hello number; Full is false. A master sends it
// to its backups as a delta (Restore applies it), in place of the whole
// registry: what a change costs does not grow with the pairs. A pair
// changed and removed since is only in Removed; one removed and
// registered again is in both (Restore forgets it first).
func (m *Mgmt) TakeChanges() Snapshot {
	s := Snapshot{NextSeq: m.cycle.NextSeq()}
	if len(m.changed) > 0 {
		ids := make([]string, 0, len(m.changed))
		for id := range m.changed {
			if _, ok := m.pairs[id]; ok {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		s.Pairs = make([]*hellopicsv1.PairStatus, 0, len(ids))
		for _, id := range ids {
			s.Pairs = append(s.Pairs, m.status(m.pairs[id]))
		}
		clear(m.changed)
	}
	if len(m.removed) > 0 {
		s.Removed = make([]string, 0, len(m.removed))
		for id := range m.removed {
			s.Removed = append(s.Removed, id)
		}
		sort.Strings(s.Removed)
		clear(m.removed)
	}
	return s
}

// Snapshot returns the state to replicate to a backup.
func (m *Mgmt) Snapshot() Snapshot {
	return Snapshot{NextSeq: m.cycle.NextSeq(), Pairs: m.Pairs()}
}

// ErrBadSnapshot is returned by Restore for a snapshot it cannot use.
var ErrBadSnapshot = errors.New("handshake: bad snapshot")

// Restore loads a Snapshot taken on another (or an earlier) machine: hello
// numbers continue from the larger of its NextSeq and the machine's own,
// and each pair's counters and relay report are taken over. Sessions,
// readiness and running cycles are not restored: components re-identify
// with the new master and the cycles restart from the handshake.
func (m *Mgmt) Restore(s Snapshot) error {
	in := make(map[string]bool, len(s.Pairs))
	for _, ps := range s.Pairs {
		if !ValidPairID(ps.GetPairId()) {
			return fmt.Errorf("%w: pair id empty or beyond the limits", ErrBadSnapshot)
		}
		in[ps.GetPairId()] = true
	}
	for _, id := range s.Removed {
		if !ValidPairID(id) {
			return fmt.Errorf("%w: removed pair id empty or beyond the limits", ErrBadSnapshot)
		}
	}
	if s.Full && len(s.Removed) > 0 {
		return fmt.Errorf("%w: a full snapshot names removed pairs", ErrBadSnapshot)
	}
	// What this machine changed itself is moot: it holds the master's
	// state now, and a master it becomes sends full snapshots first.
	clear(m.changed)
	clear(m.removed)
	for _, id := range s.Removed {
		if p := m.pairs[id]; p != nil && !p.ctrl.live && !p.data.live {
			m.dropPair(id)
		}
	}
	if s.Full {
		for id, p := range m.pairs {
			if !in[id] && !p.ctrl.live && !p.data.live {
				m.dropPair(id)
			}
		}
	}
	m.cycle.RestoreNextSeq(s.NextSeq)
	for _, ps := range s.Pairs {
		p := m.pairs[ps.GetPairId()]
		if p == nil {
			// Restored without components: its idle time starts at the
			// next call that knows the time (see stamp).
			p = &pair{id: ps.GetPairId()}
			m.pairs[p.id] = p
			m.unstamped++
		}
		m.cycle.Restore(p.id, ps.GetCounters())
		if ps.GetRelay() != nil {
			p.relay = proto.Clone(ps.GetRelay()).(*hellopicsv1.RelayStats)
		}
		for _, cs := range []*hellopicsv1.ComponentStatus{ps.GetCtrl(), ps.GetData()} {
			if cs == nil {
				continue
			}
			mb := p.member(cs.GetRole())
			if cs.GetRole() != hellopicsv1.Role_ROLE_CTRL && cs.GetRole() != hellopicsv1.Role_ROLE_DATA || mb.live {
				continue
			}
			mb.instance, mb.addr, mb.dataAddr = cs.GetInstance(), cs.GetAddr(), cs.GetDataAddr()
		}
	}
	return nil
}

func mastershipMessage(isMaster bool, masterAddr string) string {
	switch {
	case isMaster:
		return "now master"
	case masterAddr == "":
		return "now a backup; no master known"
	default:
		return "now a backup of the master at " + masterAddr
	}
}
