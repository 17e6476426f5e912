package handshake

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// CtrlConfig configures a Ctrl machine.
type CtrlConfig struct {
	// PairID names the pair; required.
	PairID string
	// Instance is unique per process start (a random or time-based
	// string); mgmt uses it to tell a reconnect from a restart.
	Instance string
	// DataAddr is the host:port at which the shell accepts data
	// connections, as data should dial it; required.
	DataAddr string
	// Version is the software version sent in Identify.
	Version string
}

func (c *CtrlConfig) validate() error {
	if c.PairID == "" {
		return errors.New("handshake: ctrl needs a pair id")
	}
	if c.DataAddr == "" {
		return errors.New("handshake: ctrl needs the address at which it accepts data")
	}
	return nil
}

// Ctrl is the control component's side of the handshake: it registers with
// mgmt, accepts its data component and forwards hellos between them. It
// has no timers of its own (the shell's identify timer bounds how long an
// Identify is held, see IdentifyExpired). It is not safe for concurrent
// use.
type Ctrl struct {
	cfg   CtrlConfig
	fence fence

	mgmt   SessionID
	mgmtUp bool

	// dataSessions are the accepted data connections, identified or not.
	dataSessions map[SessionID]*dataSession
	data         SessionID // the identified data session, if hasData
	hasData      bool
	dataReady    bool
	// held are the data sessions whose Identify waits for ctrl's epoch
	// (dataSession.held), in arrival order; usually none, at most one or
	// two at a start or failover.
	held []SessionID
}

// dataSession is one connection accepted on the data address.
type dataSession struct {
	remoteAddr string
	identified bool
	instance   string // once identified
	// held is the Identify of a data that has seen a higher epoch than
	// ctrl (see identifyData), kept until ctrl hears that epoch from mgmt
	// or the identify timer expires; heldReady is its Ready, if that
	// arrived meanwhile.
	held      *hellopicsv1.Identify
	heldReady *hellopicsv1.Ready
}

// NewCtrl returns a Ctrl machine.
func NewCtrl(cfg CtrlConfig) (*Ctrl, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	f, err := newFence(hellopicsv1.Role_ROLE_CTRL, cfg.PairID)
	if err != nil {
		return nil, err
	}
	return &Ctrl{cfg: cfg, fence: f, dataSessions: make(map[SessionID]*dataSession)}, nil
}

// Epoch returns the highest mastership epoch seen.
func (c *Ctrl) Epoch() uint64 { return c.fence.epoch }

// AdmitApp reports whether an application message from the role from,
// stamped with epoch, may be delivered: the fence hellos pass. A message
// of an epoch below the highest seen is refused (a deposed master's, or
// one sent before a failover); mgmt's raises the fence; an epoch at or
// above EpochLimit is refused from anyone.
func (c *Ctrl) AdmitApp(from hellopicsv1.Role, epoch uint64) bool {
	return c.fence.admitApp(from, epoch)
}

// Ready reports whether ctrl has an identified data component that
// reported ready.
func (c *Ctrl) Ready() bool { return c.dataReady }

func (c *Ctrl) identify() *hellopicsv1.Identify {
	return &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_CTRL, PairId: c.cfg.PairID, Instance: c.cfg.Instance,
		DataAddr: c.cfg.DataAddr, Epoch: c.fence.epoch, Version: c.cfg.Version, LastSeq: c.fence.maxSeq()}
}

func (c *Ctrl) readyMsg() *hellopicsv1.Ready {
	return &hellopicsv1.Ready{Role: hellopicsv1.Role_ROLE_CTRL, PairId: c.cfg.PairID, Epoch: c.fence.epoch}
}

// DataSession is the session of the identified data component, if any
// (its messages are the pair's; it may not be ready yet).
func (c *Ctrl) DataSession() (SessionID, bool) { return c.data, c.hasData }

// MgmtUp reports that the connection to mgmt (first, again, or to a new
// master) is established. Ctrl identifies itself and, if its data is
// ready, reports ready.
func (c *Ctrl) MgmtUp(id SessionID) []Output {
	var out outputs
	c.mgmt, c.mgmtUp = id, true
	out.send(id, hellopicsv1.MsgType_MSG_TYPE_ID, c.identify())
	if c.dataReady {
		out.send(id, hellopicsv1.MsgType_MSG_TYPE_READY, c.readyMsg())
	}
	out.event(Event{Kind: EventUp, Peer: hellopicsv1.Role_ROLE_MGMT, PairID: c.cfg.PairID, Session: id, Epoch: c.fence.epoch,
		Message: fmt.Sprintf("connected to mgmt; identified (ready=%v)", c.dataReady)})
	return out
}

// MgmtDown reports that the mgmt connection is gone. The shell reconnects
// and calls MgmtUp; the data connection is kept.
func (c *Ctrl) MgmtDown(id SessionID, reason string) []Output {
	if !c.mgmtUp || id != c.mgmt {
		return nil
	}
	c.mgmtUp = false
	var out outputs
	out.event(Event{Kind: EventDown, Peer: hellopicsv1.Role_ROLE_MGMT, PairID: c.cfg.PairID, Session: id, Message: "mgmt lost", Attrs: []any{"reason", reason}})
	return out
}

// DataUp reports a connection accepted on the data address. Nothing but an
// Identify is accepted on it until it has identified itself.
func (c *Ctrl) DataUp(id SessionID, remoteAddr string) []Output {
	if ds, ok := c.dataSessions[id]; ok && ds.identified && c.hasData && c.data == id {
		// The shell reused a live ID: treat the old connection as lost.
		c.hasData, c.dataReady = false, false
	}
	c.dataSessions[id] = &dataSession{remoteAddr: remoteAddr}
	var out outputs
	out.event(Event{Kind: EventUp, Peer: hellopicsv1.Role_ROLE_DATA, PairID: c.cfg.PairID, Session: id, Message: "data connection from " + remoteAddr})
	return out
}

// IdentifyExpired reports that data session id has had its time to
// identify itself (the shell's timer, DefaultIdentifyTimeout by default):
// if it still has not, it is rejected and closed, so that connections
// that never identify cannot pile up on the data address. A session held
// for an epoch ctrl has not heard is refused with ReasonEpochAhead.
func (c *Ctrl) IdentifyExpired(id SessionID) []Output {
	ds, ok := c.dataSessions[id]
	if !ok || ds.identified {
		return nil
	}
	var out outputs
	if ds.held != nil {
		c.rejectData(&out, id, RefusedEpochAhead, ReasonEpochAhead,
			fmt.Sprintf("data has seen epoch %d, ctrl %d after the identify timeout", ds.held.GetEpoch(), c.fence.epoch))
		return out
	}
	c.rejectData(&out, id, RefusedIdentifyTimeout, "no Identify within the identify timeout", "")
	return out
}

// DataDown reports that a data connection is gone.
func (c *Ctrl) DataDown(id SessionID, reason string) []Output {
	if _, ok := c.dataSessions[id]; !ok {
		return nil
	}
	delete(c.dataSessions, id)
	c.unhold(id)
	if !c.hasData || id != c.data {
		return nil
	}
	c.hasData, c.dataReady = false, false
	var out outputs
	out.event(Event{Kind: EventDown, Peer: hellopicsv1.Role_ROLE_DATA, PairID: c.cfg.PairID, Session: id, Message: "data lost", Attrs: []any{"reason", reason}})
	return out
}

// Receive handles one frame of type t on session id, the mgmt session or a
// data session. msg must be of the Go type NewMessage(t) returns.
func (c *Ctrl) Receive(id SessionID, t hellopicsv1.MsgType, msg proto.Message) []Output {
	var out outputs
	if !checkMessage(t, msg) {
		refusedMsg(&out, RefusedMalformed, hellopicsv1.Role_ROLE_UNSPECIFIED, c.cfg.PairID, id, "malformed or unknown frame type %s", t)
		return out
	}
	switch ds, isData := c.dataSessions[id]; {
	case c.mgmtUp && id == c.mgmt:
		c.fromMgmt(&out, t, msg)
	case isData && !ds.identified:
		c.identifyData(&out, id, t, msg)
	case isData && c.hasData && id == c.data:
		c.fromData(&out, t, msg)
	default:
		ignored(&out, hellopicsv1.Role_ROLE_UNSPECIFIED, c.cfg.PairID, id, "%s on an unknown or replaced session", t)
	}
	c.admitHeld(&out)
	return out
}

func (c *Ctrl) fromMgmt(out *outputs, t hellopicsv1.MsgType, msg proto.Message) {
	const from = hellopicsv1.Role_ROLE_MGMT
	switch t {
	case hellopicsv1.MsgType_MSG_TYPE_HELLO:
		c.fence.forwardHello(out, msg.(*hellopicsv1.Hello), hop{from: from, to: hellopicsv1.Role_ROLE_DATA,
			fromSession: c.mgmt, toSession: c.data, toUp: c.hasData, pairID: c.cfg.PairID})
	case hellopicsv1.MsgType_MSG_TYPE_PEER:
		p := msg.(*hellopicsv1.Peer)
		// mgmt tells us our data (re)registered with it, which reset the
		// pair's readiness: say again that we are ready, if we are.
		if p.GetRole() != hellopicsv1.Role_ROLE_DATA || p.GetPairId() != c.cfg.PairID {
			ignored(out, from, c.cfg.PairID, c.mgmt, "peer %s of another pair", RoleName(p.GetRole()))
			return
		}
		if !c.fence.admit(out, p.GetEpoch(), "peer", from, c.cfg.PairID, c.mgmt, 0) {
			return
		}
		if c.dataReady {
			out.send(c.mgmt, hellopicsv1.MsgType_MSG_TYPE_READY, c.readyMsg())
		}
		out.event(Event{Kind: EventPeer, Peer: from, PairID: c.cfg.PairID, Session: c.mgmt, Epoch: p.GetEpoch(),
			Message: "mgmt registered data", Attrs: []any{"data_addr", Sanitize(p.GetAddr()), "data_ready", c.dataReady}})
	case hellopicsv1.MsgType_MSG_TYPE_REDIRECT:
		if c.fence.redirect(out, c.mgmt, msg.(*hellopicsv1.Redirect), c.cfg.PairID) {
			c.mgmtUp = false
		}
	case hellopicsv1.MsgType_MSG_TYPE_REJECT:
		out.event(Event{Kind: EventRejected, Peer: from, PairID: c.cfg.PairID, Session: c.mgmt, Message: "mgmt refuses: " + Sanitize(msg.(*hellopicsv1.Reject).GetReason())})
	default:
		ignored(out, from, c.cfg.PairID, c.mgmt, "unexpected %s from mgmt", t)
	}
}

// rejectData refuses data session id under rule refused: a Reject with
// reason (which must reveal nothing the sender did not send), a Close, and
// an event with reason and detail.
// ReasonEpochAhead is the reason of ctrl's Reject of a data that has
// seen a higher epoch than ctrl: at a start or failover, data can reach
// ctrl before mgmt's Peer tells ctrl the epoch; data retries.
const ReasonEpochAhead = "ctrl has not seen that epoch yet; retry"

func (c *Ctrl) rejectData(out *outputs, id SessionID, refused, reason, detail string) {
	out.send(id, hellopicsv1.MsgType_MSG_TYPE_REJECT, &hellopicsv1.Reject{Reason: Sanitize(reason)})
	*out = append(*out, Close{Session: id, Reason: reason})
	msg := reason
	if ds := c.dataSessions[id]; ds != nil {
		msg = fmt.Sprintf("data from %s: %s", ds.remoteAddr, reason)
	}
	if detail != "" {
		msg += " (" + detail + ")"
	}
	out.event(Event{Kind: EventRejected, Peer: hellopicsv1.Role_ROLE_DATA, PairID: c.cfg.PairID, Session: id, Epoch: c.fence.epoch,
		Refused: refused, Message: msg, Race: reason == ReasonEpochAhead})
	delete(c.dataSessions, id)
	c.unhold(id)
}

// unhold forgets that session id was held.
func (c *Ctrl) unhold(id SessionID) {
	for i, h := range c.held {
		if h == id {
			c.held = append(c.held[:i], c.held[i+1:]...)
			return
		}
	}
}

// admitHeld identifies the held data sessions whose epoch ctrl has now
// heard from mgmt, then takes the Ready each sent while held.
func (c *Ctrl) admitHeld(out *outputs) {
	for i := 0; i < len(c.held); {
		id := c.held[i]
		ds := c.dataSessions[id]
		if ds == nil || ds.held == nil {
			c.held = append(c.held[:i], c.held[i+1:]...)
			continue
		}
		if ds.held.GetEpoch() > c.fence.epoch {
			i++
			continue
		}
		in, ready := ds.held, ds.heldReady
		ds.held, ds.heldReady = nil, nil
		c.held = append(c.held[:i], c.held[i+1:]...)
		c.identifyData(out, id, hellopicsv1.MsgType_MSG_TYPE_ID, in)
		if ready != nil && c.hasData && c.data == id {
			c.fromData(out, hellopicsv1.MsgType_MSG_TYPE_READY, ready)
		}
	}
}

// holdFrame handles a frame on a held data session: its Ready is kept
// for when the session is identified, a hello (none should come) is
// dropped, anything else refused as before identification.
func (c *Ctrl) holdFrame(out *outputs, id SessionID, ds *dataSession, t hellopicsv1.MsgType, msg proto.Message) {
	switch t {
	case hellopicsv1.MsgType_MSG_TYPE_READY:
		ds.heldReady = proto.Clone(msg).(*hellopicsv1.Ready) // checked by fromData when taken
	case hellopicsv1.MsgType_MSG_TYPE_HELLO:
		ignored(out, hellopicsv1.Role_ROLE_DATA, c.cfg.PairID, id, "hello from data held for epoch %d", ds.held.GetEpoch())
	default:
		refusedMsg(out, RefusedNotIdentified, hellopicsv1.Role_ROLE_DATA, c.cfg.PairID, id, "%s before identification", t)
	}
}

// identifyData handles a frame on the data session id before it has
// identified itself. The rules (docs/handshake.md, "Hostile input"):
//
//   - only data of this ctrl's pair, with fields within the limits;
//   - ctrl never raises its fence from data: an Identify carrying an epoch
//     above ctrl's is held, unanswered, until ctrl hears that epoch from
//     mgmt (at a start or failover data often hears mgmt's Peer first),
//     then taken; if the identify timer expires first it is refused
//     ("retry") and data retries;
//   - while a data link is live, a new Identify replaces it only if it is
//     the same instance from the same host (data reconnecting after losing
//     a link ctrl has not yet seen die). Anyone else, a restarted data
//     included, is refused until the old link is gone: closed, or dead by
//     pconn's dead-peer timeout.
func (c *Ctrl) identifyData(out *outputs, id SessionID, t hellopicsv1.MsgType, msg proto.Message) {
	if ds := c.dataSessions[id]; ds.held != nil {
		c.holdFrame(out, id, ds, t, msg)
		return
	}
	if t != hellopicsv1.MsgType_MSG_TYPE_ID {
		refusedMsg(out, RefusedNotIdentified, hellopicsv1.Role_ROLE_DATA, c.cfg.PairID, id, "%s before identification", t)
		return
	}
	in := msg.(*hellopicsv1.Identify)
	ds := c.dataSessions[id]
	if in.GetRole() != hellopicsv1.Role_ROLE_DATA {
		c.rejectData(out, id, RefusedRole, fmt.Sprintf("role %s may not connect to ctrl", in.GetRole()), "")
		return
	}
	if refused, why := checkIdentifyFields(in); refused != "" {
		c.rejectData(out, id, refused, why, "")
		return
	}
	if in.GetPairId() != c.cfg.PairID {
		c.rejectData(out, id, RefusedWrongPair, "wrong pair", fmt.Sprintf("pair %q", in.GetPairId()))
		return
	}
	if in.GetEpoch() > c.fence.epoch {
		ds.held = proto.Clone(in).(*hellopicsv1.Identify)
		c.held = append(c.held, id)
		out.event(Event{Kind: EventHeld, Peer: hellopicsv1.Role_ROLE_DATA, PairID: c.cfg.PairID, Session: id, Epoch: c.fence.epoch,
			Message: fmt.Sprintf("data from %s has seen epoch %d, ctrl %d; identify held until mgmt tells ctrl", ds.remoteAddr, in.GetEpoch(), c.fence.epoch)})
		return
	}
	if c.hasData {
		old := c.dataSessions[c.data]
		if in.GetInstance() == "" || in.GetInstance() != old.instance || !sameHost(ds.remoteAddr, old.remoteAddr) {
			c.rejectData(out, id, RefusedInUse, "ctrl has a live data link; retry later",
				fmt.Sprintf("instance %q; live link from %s", in.GetInstance(), old.remoteAddr))
			return
		}
		// The same data from the same host connects again: it lost the
		// old link, which is dead or dying.
		*out = append(*out, Close{Session: c.data, Reason: "replaced by a newer connection of the same data instance"})
		delete(c.dataSessions, c.data)
		c.dataReady = false
	}
	ds.identified, ds.instance = true, in.GetInstance()
	c.data, c.hasData = id, true
	out.event(Event{Kind: EventIdentified, Peer: hellopicsv1.Role_ROLE_DATA, PairID: c.cfg.PairID, Session: id, Epoch: c.fence.epoch,
		Message: "data identified", Attrs: []any{"instance", in.GetInstance(), "addr", ds.remoteAddr}})
}

func (c *Ctrl) fromData(out *outputs, t hellopicsv1.MsgType, msg proto.Message) {
	const from = hellopicsv1.Role_ROLE_DATA
	switch t {
	case hellopicsv1.MsgType_MSG_TYPE_READY:
		r := msg.(*hellopicsv1.Ready)
		if r.GetRole() != from || r.GetPairId() != c.cfg.PairID {
			ignored(out, from, c.cfg.PairID, c.data, "ready for %s %q", RoleName(r.GetRole()), r.GetPairId())
			return
		}
		// r.Epoch is data's to report, not to raise ctrl's fence with.
		c.dataReady = true
		out.event(Event{Kind: EventReady, Peer: from, PairID: c.cfg.PairID, Session: c.data, Epoch: c.fence.epoch,
			Message: "data ready", Attrs: []any{"mgmt_connected", c.mgmtUp}})
		if c.mgmtUp {
			out.send(c.mgmt, hellopicsv1.MsgType_MSG_TYPE_READY, c.readyMsg())
		}
	case hellopicsv1.MsgType_MSG_TYPE_HELLO:
		c.fence.forwardHello(out, msg.(*hellopicsv1.Hello), hop{from: from, to: hellopicsv1.Role_ROLE_MGMT,
			fromSession: c.data, toSession: c.mgmt, toUp: c.mgmtUp, pairID: c.cfg.PairID})
	case hellopicsv1.MsgType_MSG_TYPE_REJECT:
		out.event(Event{Kind: EventRejected, Peer: from, PairID: c.cfg.PairID, Session: c.data, Message: "data refuses: " + Sanitize(msg.(*hellopicsv1.Reject).GetReason())})
	default:
		ignored(out, from, c.cfg.PairID, c.data, "unexpected %s from data", t)
	}
}

// WatchIdentify is the Identify to send on a watch session: this
// component's, marked watch (see MasterElected).
func (c *Ctrl) WatchIdentify() *hellopicsv1.Identify {
	in := c.identify()
	in.Watch = true
	return in
}

// MasterElected reports an Elected of epoch heard on the shell's watch
// session to the mgmt at addr. If that mastership is newer than any seen,
// the machine leaves its mgmt session and asks for a SwitchMgmt to addr;
// the shell then connects there and calls MgmtUp as after any switch.
func (c *Ctrl) MasterElected(addr string, epoch uint64) []Output {
	var out outputs
	if c.fence.elected(&out, c.mgmt, c.mgmtUp, addr, epoch, c.cfg.PairID) {
		c.mgmtUp = false
	}
	c.admitHeld(&out)
	return out
}
