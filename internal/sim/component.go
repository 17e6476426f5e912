package sim

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hellopics/hellopics/pkg/handshake"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// compProc is a ctrl or data component: handshake.Ctrl or
// handshake.Data joined to its sessions by a copy of the component
// shell's glue (pkg/appliance/component.go and machine.go), the
// application runtime aside.
type compProc struct {
	proc
	w      *World
	isCtrl bool
	pair   string // p1, p2, ...
	ps     *pairState

	dataAddr string // ctrl: where data connects

	ctrl *handshake.Ctrl
	data *handshake.Data

	reg      map[handshake.SessionID]*end
	mgmtID   handshake.SessionID
	mgmtUp   bool
	idTimers map[handshake.SessionID]bool // ctrl: data sessions not identified yet
	peerSess *end                         // data: the session to ctrl
	mgmt     *client
	mgmtAddr string // the mgmt session's remote address

	// watch.go: a client per mgmt address, and the open watch sessions
	watches   []*client
	watchSess map[*end]string

	// what the checker follows, per incarnation
	epoch uint64              // the fence last seen
	fwd   map[uint64]struct{} // hello numbers forwarded, not yet seen back
	back  map[uint64]struct{} // hello numbers forwarded here that came back to a mgmt
}

func newComp(w *World, ps *pairState, isCtrl bool) *compProc {
	c := &compProc{w: w, isCtrl: isCtrl, pair: ps.id, ps: ps}
	n := ps.id[1:]
	if isCtrl {
		c.name = "c" + n
		c.dataAddr = fmt.Sprintf("%s:%d", c.name, dataPort)
	} else {
		c.name = "d" + n
	}
	c.host = c.name
	return c
}

// start mirrors appliance.StartComponent: the machine of the role
// (a fresh instance id each start), ctrl's data listener, and the
// client to mgmt over every mgmt address.
func (c *compProc) start() {
	w, t := c.w, c.w.sc.Timers
	c.inc++
	c.up, c.paused = true, false
	c.slots = [numSlots]timerSlot{}
	c.reg = map[handshake.SessionID]*end{}
	c.mgmtID, c.mgmtUp = 0, false
	c.idTimers = map[handshake.SessionID]bool{}
	c.peerSess = nil
	c.mgmtAddr = ""
	c.watches, c.watchSess = nil, map[*end]string{}
	c.epoch = 0
	c.fwd = map[uint64]struct{}{}
	c.back = map[uint64]struct{}{}
	instance := fmt.Sprintf("%s-%d", c.name, c.inc)
	var err error
	if c.isCtrl {
		c.ctrl, err = handshake.NewCtrl(handshake.CtrlConfig{PairID: c.pair, Instance: instance, DataAddr: c.dataAddr, Version: "sim"})
		if err == nil {
			w.net.listen(&listener{addr: c.dataAddr, p: &c.proc, dead: t.PeerDead, linger: t.Linger, h: handler{
				accept: c.onPeerUp, frame: c.onFrame, ended: c.onPeerEnd,
			}})
		}
	} else {
		c.data, err = handshake.NewData(handshake.DataConfig{PairID: c.pair, Instance: instance, Version: "sim", RetryDelay: t.Retry})
	}
	if err != nil {
		panic(fmt.Errorf("sim: %s config: %w", c.name, err))
	}
	var addrs []string
	for _, m := range w.mgmts {
		addrs = append(addrs, m.compAddr)
	}
	w.tracef("%s starts (instance %s)", c.name, instance)
	c.mgmt = newClient(w, &c.proc, clientConfig{retry: t.Retry, jitter: 0.2, dialTimeout: t.Dial, dead: t.MgmtDead, linger: t.Linger},
		addrs, handler{frame: c.onFrame, ended: c.onMgmtEnd}, c.onMgmtEvent)
	c.startWatches(addrs)
}

// startWatches mirrors watch.go's: with two or more mgmt addresses (and
// the scenario's watches on), a client per address, configured as the
// mgmt client but for the dead timeout: max(DeadTimeout, MgmtDeadTimeout).
func (c *compProc) startWatches(addrs []string) {
	t := c.w.sc.Timers
	if !c.w.sc.Watch || len(addrs) < 2 {
		return
	}
	cfg := clientConfig{retry: t.Retry, jitter: 0.2, dialTimeout: t.Dial, dead: max(t.PeerDead, t.MgmtDead), linger: t.Linger}
	for _, a := range addrs {
		c.watches = append(c.watches, newClient(c.w, &c.proc, cfg, []string{a},
			handler{frame: c.onWatchFrame, ended: c.onWatchEnd}, c.onWatchEvent))
	}
}

// onWatchEvent mirrors onWatchSession (established): the session is
// kept by its remote address and sent the watch Identify.
func (c *compProc) onWatchEvent(e *end, _ error) {
	if e == nil {
		return
	}
	c.watchSess[e] = e.remote
	var in *hellopicsv1.Identify
	if c.isCtrl {
		in = c.ctrl.WatchIdentify()
	} else {
		in = c.data.WatchIdentify()
	}
	_ = c.w.net.send(e, int32(hellopicsv1.MsgType_MSG_TYPE_ID), in)
}

// onWatchEnd mirrors onWatchSession (ended).
func (c *compProc) onWatchEnd(e *end, _ error) { delete(c.watchSess, e) }

// onWatchFrame mirrors onWatchFrame. A frame whose body is not its
// type's does not decode: tier.Prepare's error closes the session.
func (c *compProc) onWatchFrame(e *end, typ int32, msg proto.Message) {
	addr, ok := c.watchSess[e]
	if !ok {
		return
	}
	t := hellopicsv1.MsgType(typ)
	if nm, known := handshake.NewMessage(t); !known || nm.ProtoReflect().Descriptor() != msg.ProtoReflect().Descriptor() {
		c.w.net.abort(e, errors.New("frame does not decode"))
		return
	}
	if t != hellopicsv1.MsgType_MSG_TYPE_ELECTED {
		return // a Reject (mgmt then closes) or anything else: logged only
	}
	epoch := msg.(*hellopicsv1.Elected).GetEpoch()
	if c.mgmtUp && c.mgmtAddr == addr {
		return // already there
	}
	before := c.Epoch()
	var outs []handshake.Output
	if c.isCtrl {
		outs = c.ctrl.MasterElected(addr, epoch)
	} else {
		outs = c.data.MasterElected(addr, epoch)
	}
	c.w.chk.compElected(c, e, epoch, outs, before)
	c.apply(outs)
}

// crash is SIGKILL: nothing survives.
func (c *compProc) crash() {
	c.w.net.crash(&c.proc)
	c.up, c.paused = false, false
	c.inbox, c.timers = nil, nil
	c.mgmt.closed = true
	for _, wc := range c.watches {
		wc.closed = true
	}
	c.ctrl, c.data = nil, nil
	c.w.tracef("%s crashes", c.name)
}

// The machine of the role, as pkg/appliance/machine.go adapts it.

func (c *compProc) mUp(id handshake.SessionID) []handshake.Output {
	if c.isCtrl {
		return c.ctrl.MgmtUp(id)
	}
	return c.data.MgmtUp(id, c.w.wall())
}

func (c *compProc) mDown(id handshake.SessionID, r string) []handshake.Output {
	if c.isCtrl {
		return c.ctrl.MgmtDown(id, r)
	}
	return c.data.MgmtDown(id, r, c.w.wall())
}

func (c *compProc) pUp(id handshake.SessionID, remote string) []handshake.Output {
	if c.isCtrl {
		return c.ctrl.DataUp(id, remote)
	}
	return c.data.CtrlUp(id, c.w.wall())
}

func (c *compProc) pDown(id handshake.SessionID, r string) []handshake.Output {
	if c.isCtrl {
		return c.ctrl.DataDown(id, r)
	}
	return c.data.CtrlDown(id, r, c.w.wall())
}

func (c *compProc) receive(id handshake.SessionID, t hellopicsv1.MsgType, msg proto.Message) []handshake.Output {
	if c.isCtrl {
		return c.ctrl.Receive(id, t, msg)
	}
	return c.data.Receive(id, t, msg, c.w.wall())
}

// Epoch is the machine's fence.
func (c *compProc) Epoch() uint64 {
	if c.isCtrl {
		return c.ctrl.Epoch()
	}
	return c.data.Epoch()
}

// Ready is the machine's readiness.
func (c *compProc) Ready() bool {
	if c.isCtrl {
		return c.ctrl.Ready()
	}
	return c.data.Ready()
}

// onMgmtEvent mirrors onMgmtSession for the client's events:
// established, or a failed attempt (nothing to do but log).
func (c *compProc) onMgmtEvent(e *end, err error) {
	if e == nil {
		return
	}
	id := handshake.SessionID(e.ID())
	c.reg[id] = e
	c.mgmtID, c.mgmtUp = id, true
	c.mgmtAddr = e.remote
	c.w.tracef("%s connected to mgmt %s", c.name, hostOf(e.remote))
	c.apply(c.mUp(id))
}

// onMgmtEnd mirrors onMgmtSession for a session's end.
func (c *compProc) onMgmtEnd(e *end, err error) {
	id := handshake.SessionID(e.ID())
	if c.reg[id] != e {
		return
	}
	delete(c.reg, id)
	if id == c.mgmtID {
		c.mgmtUp = false
	}
	c.apply(c.mDown(id, err.Error()))
}

// onPeerUp mirrors onPeerSession (established): ctrl arms the
// identify timer of an accepted data session; data keeps its session.
func (c *compProc) onPeerUp(e *end) {
	id := handshake.SessionID(e.ID())
	c.reg[id] = e
	if c.isCtrl {
		c.idTimers[id] = true
		c.w.procAfter(&c.proc, c.w.sc.Timers.Identify, func() {
			if c.idTimers[id] {
				delete(c.idTimers, id)
				c.apply(c.ctrl.IdentifyExpired(id))
			}
		})
	} else {
		c.peerSess = e
	}
	c.apply(c.pUp(id, e.remote))
}

// onPeerEnd mirrors onPeerSession (ended).
func (c *compProc) onPeerEnd(e *end, err error) {
	id := handshake.SessionID(e.ID())
	if c.reg[id] != e {
		return
	}
	delete(c.reg, id)
	delete(c.idTimers, id)
	if c.peerSess == e {
		c.peerSess = nil
	}
	c.apply(c.pDown(id, err.Error()))
}

// onFrame mirrors onFrame (tier.Admit; no TLS).
func (c *compProc) onFrame(e *end, typ int32, msg proto.Message) {
	id := handshake.SessionID(e.ID())
	if c.reg[id] != e {
		return
	}
	fromMgmt := c.mgmtUp && id == c.mgmtID
	before, ready, peer := c.Epoch(), c.Ready(), c.peerID()
	outs := c.receive(id, hellopicsv1.MsgType(typ), msg)
	c.w.chk.compReceived(c, e, fromMgmt, hellopicsv1.MsgType(typ), msg, outs, before, ready, peer)
	c.apply(outs)
}

func (c *compProc) peerID() handshake.SessionID {
	var id handshake.SessionID
	var ok bool
	if c.isCtrl {
		id, ok = c.ctrl.DataSession()
	} else {
		id, ok = c.data.CtrlSession()
	}
	if !ok {
		return 0
	}
	return id
}

func (c *compProc) tick() { c.apply(c.data.Tick(c.w.wall())) }

// dial mirrors data's dial: one pconn.Connect; its session's events
// report success (peerUp), a failure is DialFailed.
func (c *compProc) dial(addr string) {
	t := c.w.sc.Timers
	c.w.net.connect(&c.proc, addr, t.Dial, t.PeerDead, t.Linger, handler{frame: c.onFrame, ended: c.onPeerEnd},
		func(e *end, err error) {
			if err != nil {
				c.apply(c.data.DialFailed(err.Error(), c.w.wall()))
				return
			}
			c.onPeerUp(e)
		})
}

// apply mirrors the component shell's apply: tier.Carry for Send,
// Close and Event, Dial, SwitchMgmt as the client's Redirect; then the
// machine's deadline (data).
func (c *compProc) apply(outs []handshake.Output) {
	for _, o := range outs {
		switch o := o.(type) {
		case handshake.Send:
			if e := c.reg[o.Session]; e != nil {
				_ = c.w.net.send(e, int32(o.Type), o.Msg)
			}
		case handshake.Close:
			if e := c.reg[o.Session]; e != nil {
				c.w.net.close(e)
			}
		case handshake.Dial:
			c.dial(o.Addr)
		case handshake.SwitchMgmt:
			c.w.tracef("%s: following the master mgmt at %s, epoch %d", c.name, o.Addr, o.Epoch)
			c.mgmt.Redirect(o.Addr)
		case handshake.Event:
			c.w.chk.compEvent(c, o)
		}
	}
	if !c.isCtrl {
		if at, ok := c.data.NextDeadline(); ok {
			c.w.slot(&c.proc, slotHandshake, at, c.tick)
		} else {
			c.w.slot(&c.proc, slotHandshake, time.Time{}, nil)
		}
	}
}
