package handshake

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// DefaultRetryDelay is DataConfig.RetryDelay when none is set.
const DefaultRetryDelay = time.Second

// DataConfig configures a Data machine.
type DataConfig struct {
	// PairID names the pair; required.
	PairID string
	// Instance is unique per process start; see CtrlConfig.Instance.
	Instance string
	// Version is the software version sent in Identify.
	Version string
	// RetryDelay is how long data waits after a failed dial to ctrl (or a
	// ctrl connection that died young) before asking mgmt for the ctrl
	// address again. Zero means DefaultRetryDelay (1 s).
	RetryDelay time.Duration
}

func (c *DataConfig) validate() error {
	if c.PairID == "" {
		return errors.New("handshake: data needs a pair id")
	}
	if c.RetryDelay < 0 {
		return fmt.Errorf("handshake: negative retry delay %v", c.RetryDelay)
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	return nil
}

// Data is the data component's side of the handshake: it registers with
// mgmt, learns from mgmt where its ctrl listens, connects to it and
// forwards hellos between them. Its one timer is the retry after a failed
// connection to ctrl (see NextDeadline). It is not safe for concurrent use.
type Data struct {
	cfg   DataConfig
	fence fence

	// ctrlRaced: ctrl refused this link for the epoch race
	// (ReasonEpochAhead); its loss is logged at Debug.
	ctrlRaced bool

	mgmt   SessionID
	mgmtUp bool

	// ctrlAddr is the latest ctrl address mgmt gave.
	ctrlAddr string
	// dialing is true between a Dial output and CtrlUp or DialFailed.
	dialing  bool
	dialAddr string
	// ctrl is the connection to ctrl while ctrlUp; data is ready while it
	// has one.
	ctrl      SessionID
	ctrlUp    bool
	ctrlSince time.Time

	retryAt time.Time
	retry   bool
}

// NewData returns a Data machine.
func NewData(cfg DataConfig) (*Data, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	f, err := newFence(hellopicsv1.Role_ROLE_DATA, cfg.PairID)
	if err != nil {
		return nil, err
	}
	return &Data{cfg: cfg, fence: f}, nil
}

// Epoch returns the highest mastership epoch seen.
func (d *Data) Epoch() uint64 { return d.fence.epoch }

// AdmitApp reports whether an application message from the role from,
// stamped with epoch, may be delivered: the fence hellos pass. A message
// of an epoch below the highest seen is refused (a deposed master's, or
// one sent before a failover); mgmt's raises the fence; an epoch at or
// above EpochLimit is refused from anyone.
func (d *Data) AdmitApp(from hellopicsv1.Role, epoch uint64) bool {
	return d.fence.admitApp(from, epoch)
}

// Ready reports whether data is connected to its ctrl and has said so.
func (d *Data) Ready() bool { return d.ctrlUp }

// CtrlAddr returns the ctrl address last learned from mgmt.
func (d *Data) CtrlAddr() string { return d.ctrlAddr }

// CtrlSession is the session to ctrl, if connected (Ready).
func (d *Data) CtrlSession() (SessionID, bool) { return d.ctrl, d.ctrlUp }

func (d *Data) identify() *hellopicsv1.Identify {
	return &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: d.cfg.PairID, Instance: d.cfg.Instance,
		Epoch: d.fence.epoch, Version: d.cfg.Version, LastSeq: d.fence.maxSeq()}
}

func (d *Data) readyMsg() *hellopicsv1.Ready {
	return &hellopicsv1.Ready{Role: hellopicsv1.Role_ROLE_DATA, PairId: d.cfg.PairID, Epoch: d.fence.epoch}
}

// MgmtUp reports that the connection to mgmt (first, again, or to a new
// master) is established. Data identifies itself, then reports ready if it
// is connected to ctrl, or else asks for the ctrl address.
func (d *Data) MgmtUp(id SessionID, now time.Time) []Output {
	var out outputs
	d.mgmt, d.mgmtUp = id, true
	out.send(id, hellopicsv1.MsgType_MSG_TYPE_ID, d.identify())
	switch {
	case d.ctrlUp:
		out.send(id, hellopicsv1.MsgType_MSG_TYPE_READY, d.readyMsg())
	case !d.dialing:
		d.retry = false
		d.askPeer(&out)
	}
	out.event(Event{Kind: EventUp, Peer: hellopicsv1.Role_ROLE_MGMT, PairID: d.cfg.PairID, Session: id, Epoch: d.fence.epoch,
		Message: fmt.Sprintf("connected to mgmt; identified (ready=%v)", d.ctrlUp)})
	return out
}

func (d *Data) askPeer(out *outputs) {
	out.send(d.mgmt, hellopicsv1.MsgType_MSG_TYPE_GET_PEER, &hellopicsv1.GetPeer{PairId: d.cfg.PairID})
}

// MgmtDown reports that the mgmt connection is gone. The shell reconnects
// and calls MgmtUp; the ctrl connection is kept.
func (d *Data) MgmtDown(id SessionID, reason string, now time.Time) []Output {
	if !d.mgmtUp || id != d.mgmt {
		return nil
	}
	d.mgmtUp = false
	var out outputs
	out.event(Event{Kind: EventDown, Peer: hellopicsv1.Role_ROLE_MGMT, PairID: d.cfg.PairID, Session: id, Message: "mgmt lost", Attrs: []any{"reason", reason}})
	return out
}

func (d *Data) dial(out *outputs, addr string) {
	d.retry = false
	d.dialing, d.dialAddr = true, addr
	*out = append(*out, Dial{Addr: addr})
	out.event(Event{Kind: EventPeer, Peer: hellopicsv1.Role_ROLE_CTRL, PairID: d.cfg.PairID, Epoch: d.fence.epoch, Message: "dialling ctrl", Attrs: []any{"addr", addr}})
}

// CtrlUp reports that the connection asked for by the last Dial is
// established. Data identifies itself to ctrl and reports ready to ctrl
// and mgmt.
func (d *Data) CtrlUp(id SessionID, now time.Time) []Output {
	var out outputs
	if !d.dialing {
		out = append(out, Close{Session: id, Reason: "no dial to ctrl was pending"})
		return out
	}
	d.dialing = false
	if d.dialAddr != d.ctrlAddr {
		// mgmt named another ctrl address while we were dialling.
		out = append(out, Close{Session: id, Reason: "ctrl moved to " + d.ctrlAddr})
		d.dial(&out, d.ctrlAddr)
		return out
	}
	d.ctrl, d.ctrlUp, d.ctrlSince = id, true, now
	out.send(id, hellopicsv1.MsgType_MSG_TYPE_ID, d.identify())
	out.send(id, hellopicsv1.MsgType_MSG_TYPE_READY, d.readyMsg())
	if d.mgmtUp {
		out.send(d.mgmt, hellopicsv1.MsgType_MSG_TYPE_READY, d.readyMsg())
	}
	out.event(Event{Kind: EventReady, Peer: hellopicsv1.Role_ROLE_CTRL, PairID: d.cfg.PairID, Session: id, Epoch: d.fence.epoch,
		Message: "connected to ctrl; ready", Attrs: []any{"addr", d.dialAddr, "mgmt_connected", d.mgmtUp}})
	return out
}

// DialFailed reports that the connection asked for by the last Dial could
// not be established. Data asks mgmt again after RetryDelay.
func (d *Data) DialFailed(reason string, now time.Time) []Output {
	if !d.dialing {
		return nil
	}
	d.dialing = false
	var out outputs
	out.event(Event{Kind: EventDown, Peer: hellopicsv1.Role_ROLE_CTRL, PairID: d.cfg.PairID,
		Message: fmt.Sprintf("dial ctrl at %s failed: %s; retry in %v", d.dialAddr, reason, d.cfg.RetryDelay)})
	d.retry, d.retryAt = true, now.Add(d.cfg.RetryDelay)
	return out
}

// CtrlDown reports that the ctrl connection is gone. Data is no longer
// ready; it asks mgmt for the ctrl address again (or, without mgmt, dials
// the last one), at once unless the connection lasted less than
// RetryDelay.
func (d *Data) CtrlDown(id SessionID, reason string, now time.Time) []Output {
	if !d.ctrlUp || id != d.ctrl {
		return nil
	}
	d.ctrlUp = false
	var out outputs
	out.event(Event{Kind: EventDown, Peer: hellopicsv1.Role_ROLE_CTRL, PairID: d.cfg.PairID, Session: id, Message: "ctrl lost", Attrs: []any{"reason", reason},
		Race: d.ctrlRaced})
	d.ctrlRaced = false
	if at := d.ctrlSince.Add(d.cfg.RetryDelay); now.Before(at) {
		d.retry, d.retryAt = true, at
		return out
	}
	if d.mgmtUp {
		d.askPeer(&out)
	} else {
		// Without mgmt, try the same address: a ctrl restarted on a fixed
		// port is back there.
		d.dial(&out, d.ctrlAddr)
	}
	return out
}

// NextDeadline returns when Tick must next be called, and false if no
// retry is pending.
func (d *Data) NextDeadline() (time.Time, bool) {
	return d.retryAt, d.retry
}

// Tick runs a due retry: ask mgmt for the ctrl address, or, without mgmt,
// dial the last known one.
func (d *Data) Tick(now time.Time) []Output {
	if !d.retry || now.Before(d.retryAt) {
		return nil
	}
	d.retry = false
	if d.ctrlUp || d.dialing {
		return nil
	}
	var out outputs
	switch {
	case d.mgmtUp:
		d.askPeer(&out)
	case d.ctrlAddr != "":
		d.dial(&out, d.ctrlAddr)
	}
	return out
}

// Receive handles one frame of type t on session id, the mgmt session or
// the ctrl session. msg must be of the Go type NewMessage(t) returns.
func (d *Data) Receive(id SessionID, t hellopicsv1.MsgType, msg proto.Message, now time.Time) []Output {
	var out outputs
	switch {
	case !checkMessage(t, msg):
		refusedMsg(&out, RefusedMalformed, hellopicsv1.Role_ROLE_UNSPECIFIED, d.cfg.PairID, id, "malformed or unknown frame type %s", t)
	case d.mgmtUp && id == d.mgmt:
		d.fromMgmt(&out, t, msg)
	case d.ctrlUp && id == d.ctrl:
		d.fromCtrl(&out, t, msg)
	default:
		ignored(&out, hellopicsv1.Role_ROLE_UNSPECIFIED, d.cfg.PairID, id, "%s on an unknown session", t)
	}
	return out
}

func (d *Data) fromMgmt(out *outputs, t hellopicsv1.MsgType, msg proto.Message) {
	const from = hellopicsv1.Role_ROLE_MGMT
	switch t {
	case hellopicsv1.MsgType_MSG_TYPE_HELLO:
		d.fence.forwardHello(out, msg.(*hellopicsv1.Hello), hop{from: from, to: hellopicsv1.Role_ROLE_CTRL,
			fromSession: d.mgmt, toSession: d.ctrl, toUp: d.ctrlUp, pairID: d.cfg.PairID})
	case hellopicsv1.MsgType_MSG_TYPE_PEER:
		d.peer(out, msg.(*hellopicsv1.Peer))
	case hellopicsv1.MsgType_MSG_TYPE_REDIRECT:
		if d.fence.redirect(out, d.mgmt, msg.(*hellopicsv1.Redirect), d.cfg.PairID) {
			d.mgmtUp = false
		}
	case hellopicsv1.MsgType_MSG_TYPE_REJECT:
		out.event(Event{Kind: EventRejected, Peer: from, PairID: d.cfg.PairID, Session: d.mgmt, Message: "mgmt refuses: " + Sanitize(msg.(*hellopicsv1.Reject).GetReason())})
	default:
		ignored(out, from, d.cfg.PairID, d.mgmt, "unexpected %s from mgmt", t)
	}
}

// peer handles mgmt naming our ctrl's address, in answer to GetPeer or
// because ctrl (re)registered.
func (d *Data) peer(out *outputs, p *hellopicsv1.Peer) {
	const from = hellopicsv1.Role_ROLE_MGMT
	if p.GetRole() != hellopicsv1.Role_ROLE_CTRL || p.GetPairId() != d.cfg.PairID {
		ignored(out, from, d.cfg.PairID, d.mgmt, "peer %s of another pair", RoleName(p.GetRole()))
		return
	}
	if !ValidAddr(p.GetAddr()) {
		refusedMsg(out, RefusedAddr, from, d.cfg.PairID, d.mgmt, "peer with an invalid ctrl address")
		return
	}
	if !d.fence.admit(out, p.GetEpoch(), "peer", from, d.cfg.PairID, d.mgmt, 0) {
		return
	}
	d.ctrlAddr = p.GetAddr()
	switch {
	case d.ctrlUp && d.dialAddr == d.ctrlAddr:
		// ctrl re-registered with mgmt, which reset the pair's
		// readiness: say again that we are ready.
		out.send(d.mgmt, hellopicsv1.MsgType_MSG_TYPE_READY, d.readyMsg())
		out.event(Event{Kind: EventPeer, Peer: hellopicsv1.Role_ROLE_CTRL, PairID: d.cfg.PairID, Session: d.mgmt, Epoch: p.GetEpoch(),
			Message: "mgmt registered the ctrl already connected; ready again", Attrs: []any{"addr", d.ctrlAddr}})
	case d.ctrlUp:
		*out = append(*out, Close{Session: d.ctrl, Reason: "ctrl moved to " + d.ctrlAddr})
		d.ctrlUp = false
		d.dial(out, d.ctrlAddr)
	case d.dialing:
		// CtrlUp compares the addresses when the dial completes.
	default:
		d.dial(out, d.ctrlAddr)
	}
}

func (d *Data) fromCtrl(out *outputs, t hellopicsv1.MsgType, msg proto.Message) {
	const from = hellopicsv1.Role_ROLE_CTRL
	switch t {
	case hellopicsv1.MsgType_MSG_TYPE_HELLO:
		d.fence.forwardHello(out, msg.(*hellopicsv1.Hello), hop{from: from, to: hellopicsv1.Role_ROLE_MGMT,
			fromSession: d.ctrl, toSession: d.mgmt, toUp: d.mgmtUp, pairID: d.cfg.PairID})
	case hellopicsv1.MsgType_MSG_TYPE_REJECT:
		reason := Sanitize(msg.(*hellopicsv1.Reject).GetReason())
		d.ctrlRaced = reason == ReasonEpochAhead
		out.event(Event{Kind: EventRejected, Peer: from, PairID: d.cfg.PairID, Session: d.ctrl, Message: "ctrl refuses",
			Attrs: []any{"reason", reason}, Race: d.ctrlRaced})
	default:
		ignored(out, from, d.cfg.PairID, d.ctrl, "unexpected %s from ctrl", t)
	}
}

// WatchIdentify is the Identify to send on a watch session: this
// component's, marked watch (see MasterElected).
func (d *Data) WatchIdentify() *hellopicsv1.Identify {
	in := d.identify()
	in.Watch = true
	return in
}

// MasterElected reports an Elected of epoch heard on the shell's watch
// session to the mgmt at addr. If that mastership is newer than any seen,
// the machine leaves its mgmt session and asks for a SwitchMgmt to addr;
// the shell then connects there and calls MgmtUp as after any switch.
func (d *Data) MasterElected(addr string, epoch uint64) []Output {
	var out outputs
	if d.fence.elected(&out, d.mgmt, d.mgmtUp, addr, epoch, d.cfg.PairID) {
		d.mgmtUp = false
	}
	return out
}
