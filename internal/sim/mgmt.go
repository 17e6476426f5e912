package sim

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hellopics/hellopics/pkg/election"
	"github.com/hellopics/hellopics/pkg/handshake"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// seqReserve mirrors pkg/appliance's: the master announces its next
// hello number this far ahead to the backups.
const seqReserve = 4096

// maxDrainRounds mirrors mgmt/ha.go's bound on one drainElection.
const maxDrainRounds = 16

const (
	compPort = 7300 // mgmt's component port
	haPort   = 7400 // mgmt's HA port
	dataPort = 7000 // ctrl's data port
)

// mgmtProc is one management instance: handshake.Mgmt and
// election.Election joined by a copy of the glue the daemon performs
// (mgmt/mgmt.go and mgmt/ha.go), function by function, without the
// application runtime (no State, no app frames), metrics and logs.
type mgmtProc struct {
	proc
	w    *World
	spec MgmtSpec

	compAddr, haAddr string
	peers            []election.Peer

	// persisted is the epoch file: it survives a crash.
	persisted uint64

	machine *handshake.Mgmt
	reg     map[handshake.SessionID]*end

	el           *election.Election
	haClients    map[string]*client
	haInbound    map[string]*end
	haGreeted    map[string]*end
	draining     bool
	redrain      bool
	tickDeferred bool
	aligned      mastership
	pacer        election.SyncPacer // when the registry's changes go to the backups
	pending      int                // peers whose first HA connection attempt is still open

	// what the checker follows, per incarnation
	hsEpoch uint64               // the handshake machine's epoch last seen
	sent    map[uint64]sentHello // hello numbers sent by this incarnation
	got     map[uint64]bool      // hello numbers counted received
}

type sentHello struct {
	pair  string
	epoch uint64
}

// mastership mirrors mgmt/ha.go's: what alignMastership last told the
// handshake machine.
type mastership struct {
	master bool
	epoch  uint64
	addr   string
}

func newMgmt(w *World, spec MgmtSpec) *mgmtProc {
	m := &mgmtProc{w: w, spec: spec}
	m.name, m.host = spec.ID, spec.ID
	m.compAddr = fmt.Sprintf("%s:%d", spec.ID, compPort)
	m.haAddr = fmt.Sprintf("%s:%d", spec.ID, haPort)
	for _, o := range w.sc.Mgmts {
		if o.ID != spec.ID {
			m.peers = append(m.peers, election.Peer{ID: o.ID, Addr: fmt.Sprintf("%s:%d", o.ID, haPort)})
		}
	}
	return m
}

func (m *mgmtProc) haDead() time.Duration {
	t := m.w.sc.Timers
	return max(30*time.Millisecond, time.Duration(t.DeadMisses+1)*t.Heartbeat)
}

// start mirrors mgmt.New: the handshake machine (a backup until the
// election decides), the component listener, then startHA.
func (m *mgmtProc) start() {
	w, t := m.w, m.w.sc.Timers
	m.inc++
	m.up, m.paused = true, false
	m.slots = [numSlots]timerSlot{}
	machine, err := handshake.NewMgmt(handshake.MgmtConfig{
		HelloInterval:   t.Hello,
		IdentifyTimeout: t.Identify,
		SpreadHellos:    true,
		Backup:          true,
		// The shell holds identifies while no live master is known.
		HoldWithoutMaster: len(m.peers) > 0,
	})
	if err != nil {
		panic(fmt.Errorf("sim: mgmt config: %w", err))
	}
	m.machine = machine
	m.reg = map[handshake.SessionID]*end{}
	m.el = nil
	m.draining, m.redrain, m.tickDeferred = false, false, false
	m.aligned = mastership{}
	m.pacer = election.SyncPacer{Interval: t.syncInterval(), Reserve: seqReserve}
	m.hsEpoch = 0
	m.sent = map[uint64]sentHello{}
	m.got = map[uint64]bool{}
	w.net.listen(&listener{addr: m.compAddr, p: &m.proc, dead: t.CompDead, linger: t.Linger, h: handler{
		accept: m.onSessionUp, frame: m.onFrame, ended: m.onSessionEnd,
	}})
	w.tracef("%s starts (incarnation %d, epoch file %d)", m.name, m.inc, m.persisted)
	m.startHA()
}

// crash is SIGKILL: only the epoch file survives.
func (m *mgmtProc) crash() {
	m.w.net.crash(&m.proc)
	m.up, m.paused = false, false
	m.inbox, m.timers = nil, nil
	m.el, m.machine, m.haClients = nil, nil, nil
	m.w.tracef("%s crashes", m.name)
}

// startHA mirrors mgmt/ha.go's startHA (with peers): the HA listener,
// a client to every peer, and the election once every peer has been
// reached or has refused, or the dial timeout has passed.
func (m *mgmtProc) startHA() {
	w, t := m.w, m.w.sc.Timers
	m.haInbound = map[string]*end{}
	m.haGreeted = map[string]*end{}
	w.net.listen(&listener{addr: m.haAddr, p: &m.proc, dead: m.haDead(), linger: t.Linger, h: handler{
		accept: m.onHAAccept,
		frame:  m.onHAFrame,
		ended: func(e *end, _ error) {
			if id := e.cookie; id != "" && m.haInbound[id] == e {
				delete(m.haInbound, id)
				if m.el != nil { // haLinkLost
					m.el.LinkLost(id)
					m.drainElection()
				}
			}
		},
	}})
	m.haClients = map[string]*client{}
	m.pending = len(m.peers)
	cfg := clientConfig{retry: t.Heartbeat, jitter: 0.2, dialTimeout: t.Dial, dead: m.haDead(), linger: t.Linger}
	for _, p := range m.peers {
		first := true
		id := p.ID
		m.haClients[id] = newClient(w, &m.proc, cfg, []string{p.Addr}, handler{
			frame: func(_ *end, typ int32, msg proto.Message) {
				if !haType(hellopicsv1.HAMsgType(typ), msg) {
					return // decodeHA: a frame that does not decode costs only itself here
				}
				m.stepHA(id, msg, nil)
			},
		}, func(*end, error) {
			if first {
				first = false
				m.reached()
			}
		})
	}
	w.procAfter(&m.proc, t.Dial, func() {
		if m.el == nil {
			w.tracef("%s: some mgmt peers neither answer nor refuse; electing anyway", m.name)
			m.startElection()
		}
	})
}

func (m *mgmtProc) reached() {
	if m.pending--; m.pending == 0 && m.el == nil {
		m.startElection()
	}
}

func (m *mgmtProc) startElection() {
	t := m.w.sc.Timers
	ec := election.DefaultConfig(m.spec.ID, m.spec.Priority, m.peers...)
	ec.ComponentAddr = m.compAddr
	ec.HeartbeatInterval = t.Heartbeat
	ec.DeadMisses = t.DeadMisses
	ec.NoPreempt = m.spec.NoPreempt
	ec.PreemptDelay = m.spec.PreemptDelay
	persisted := m.persisted
	if m.w.opts.Bug == BugForgetEpoch {
		persisted = 0
	}
	el, err := election.New(ec, persisted)
	if err != nil {
		panic(fmt.Errorf("sim: election config: %w", err))
	}
	m.el = el
	m.el.Tick(m.w.wall())
	m.drainElection()
}

// haType reports whether msg is what a frame of type t decodes to, as
// mgmt/ha.go's decodeHA (with haMessage) decides: frames travel decoded
// here, so a hostile frame "does not decode" when its body is not its
// type's.
func haType(t hellopicsv1.HAMsgType, msg proto.Message) bool {
	switch msg.(type) {
	case *hellopicsv1.Heartbeat:
		return t == hellopicsv1.HAMsgType_HA_MSG_TYPE_HEARTBEAT
	case *hellopicsv1.SyncUpdate:
		return t == hellopicsv1.HAMsgType_HA_MSG_TYPE_SYNC
	case *hellopicsv1.SyncAck:
		return t == hellopicsv1.HAMsgType_HA_MSG_TYPE_SYNC_ACK
	case *hellopicsv1.Handover:
		return t == hellopicsv1.HAMsgType_HA_MSG_TYPE_HANDOVER
	}
	return false
}

// onHAAccept is the HA listener's AcceptFilter: without -ha-any-source
// only the peers' hosts may connect; anyone else is closed at once.
func (m *mgmtProc) onHAAccept(e *end) {
	if m.w.sc.HAAnySource {
		return
	}
	host := hostOf(e.remote)
	for _, p := range m.peers {
		if hostOf(p.Addr) == host {
			return
		}
	}
	m.w.chk.hostileDone(e, "ha accept filter")
	m.w.net.abort(e, errors.New("accept filter"))
}

// onHAFrame mirrors mgmt/ha.go's onHAFrame: a frame that does not
// decode costs the session; the first heartbeat names the peer, which
// must be configured and come from its address (unless -ha-any-source);
// a frame before it is dropped and the session kept.
func (m *mgmtProc) onHAFrame(e *end, typ int32, msg proto.Message) {
	if !haType(hellopicsv1.HAMsgType(typ), msg) {
		m.w.chk.hostileDone(e, "malformed")
		m.w.net.abort(e, errors.New("malformed HA frame"))
		return
	}
	from := e.cookie
	if hb, ok := msg.(*hellopicsv1.Heartbeat); ok && from == "" {
		if err := m.checkHASource(hb.GetId(), e.remote); err != nil {
			m.w.chk.hostileDone(e, "ha source")
			m.w.net.close(e)
			return
		}
		from = hb.GetId()
		e.cookie = from
	}
	if from == "" {
		m.w.chk.hostileDone(e, "before heartbeat")
		return
	}
	m.stepHA(from, msg, e)
}

// checkHASource mirrors mgmt/ha.go's checkHASource.
func (m *mgmtProc) checkHASource(id, remote string) error {
	for _, p := range m.peers {
		if p.ID != id {
			continue
		}
		if m.w.sc.HAAnySource || hostOf(p.Addr) == hostOf(remote) {
			return nil
		}
		return fmt.Errorf("a connection from %s claims to be mgmt peer %s", remote, id)
	}
	return fmt.Errorf("%w: %.64q", election.ErrUnknownPeer, id)
}

// stepHA mirrors mgmt/ha.go's stepHA.
func (m *mgmtProc) stepHA(from string, msg proto.Message, in *end) {
	if m.el == nil {
		return // still reaching the peers; their next heartbeat will do
	}
	var before election.Status
	hostile := in != nil && in.other().p.hostile
	if hostile {
		before = m.el.Status()
	}
	err := m.el.Step(m.w.wall(), from, msg)
	if hostile {
		m.w.chk.hostileHA(m, in, msg, err, before)
	}
	if err != nil {
		if in != nil {
			m.w.net.close(in) // refuseHA: on a peer's connection to us it costs the connection
		}
		m.drainElection()
		return
	}
	if in != nil {
		m.haInbound[from] = in
	}
	m.drainElection()
}

// sendHA mirrors mgmt/ha.go's sendHA: our connection to the peer, led
// by a heartbeat on a new session, or else the peer's connection to us.
func (m *mgmtProc) sendHA(msg election.Message) {
	c := m.haClients[msg.To]
	if c == nil {
		return
	}
	if sess := c.Session(); sess != nil && m.haGreeted[msg.To] != sess {
		m.haGreeted[msg.To] = sess
		if msg.Type != hellopicsv1.HAMsgType_HA_MSG_TYPE_HEARTBEAT {
			_ = m.w.net.send(sess, int32(hellopicsv1.HAMsgType_HA_MSG_TYPE_HEARTBEAT), m.el.Heartbeat())
		}
	}
	err := m.w.net.send(c.Session(), int32(msg.Type), msg.Body)
	if errors.Is(err, errNotConn) {
		if in := m.haInbound[msg.To]; in != nil {
			_ = m.w.net.send(in, int32(msg.Type), msg.Body)
		}
	}
}

// electionTick mirrors mgmt/ha.go's: a tick much later than due (the
// process did not run) is put off once for 5 ms, for the heartbeats
// that arrived meanwhile.
func (m *mgmtProc) electionTick(due time.Time) {
	if m.w.wall().Sub(due) > m.w.sc.Timers.Heartbeat && !m.tickDeferred {
		m.tickDeferred = true
		m.w.slot(&m.proc, slotElection, m.w.wall().Add(5*time.Millisecond), func() { m.electionTick(m.w.wall()) })
		return
	}
	m.tickDeferred = false
	m.el.Tick(m.w.wall())
	m.drainElection()
}

// drainElection mirrors mgmt/ha.go's drainElection, the application's
// state aside: persist, apply (Restore), send, snapshots and flush (the
// registry and the next hello number plus seqReserve), events, the next
// tick; then alignMastership; re-entrant calls fold into the running one.
func (m *mgmtProc) drainElection() {
	if m.el == nil {
		return
	}
	if m.draining {
		m.redrain = true
		return
	}
	m.draining = true
	defer func() { m.draining = false }()
	for round := 0; ; round++ {
		if round == maxDrainRounds {
			m.w.tracef("%s: election does not settle; carrying on later", m.name)
			inc := m.inc
			m.w.after(0, func() { m.w.onProc(&m.proc, inc, false, m.drainElection) })
			return
		}
		m.redrain = false
		for first := true; first || m.el.HasReady(); first = false {
			rd := m.el.Ready()
			if rd.PersistEpoch != 0 {
				m.w.chk.persist(m, rd.PersistEpoch)
				m.persisted = rd.PersistEpoch
			}
			for _, u := range rd.Apply {
				if !u.GetAppOnly() {
					full := u.GetFull() || !u.GetDelta()
					if err := m.machine.Restore(handshake.Snapshot{NextSeq: u.GetNextSeq(), Pairs: u.GetPairs(), Full: full, Removed: u.GetRemovedPairs()}); err != nil {
						m.w.tracef("%s: state update %d not applied: %v", m.name, u.GetVersion(), err)
						continue
					}
				}
			}
			for _, msg := range rd.Messages {
				m.sendHA(msg)
			}
			for _, id := range rd.Snapshots {
				body := &hellopicsv1.SyncUpdate{Pairs: m.machine.Pairs(), NextSeq: m.pacer.Sent(m.w.wall(), m.machine.NextSeq())}
				_ = m.el.SnapshotWith(id, body)
			}
			if rd.Flush {
				_ = m.sendChanges()
			}
			for _, ev := range rd.Events {
				if ev.Kind != election.EventPeerUp && ev.Kind != election.EventPeerDown || m.w.opts.Verbose {
					m.w.tracef("%s: %v", m.name, ev)
				}
			}
			if !rd.NextTick.IsZero() {
				due := rd.NextTick
				m.w.slot(&m.proc, slotElection, due, func() { m.electionTick(due) })
			}
		}
		m.alignMastership()
		if !m.redrain && !m.el.HasReady() {
			return
		}
	}
}

// alignMastership mirrors mgmt/ha.go's.
func (m *mgmtProc) alignMastership() {
	now := mastership{master: m.el.Role() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER, epoch: m.el.Epoch(),
		addr: m.el.LiveMasterComponentAddr()}
	if now == m.aligned {
		return
	}
	if now.master != m.aligned.master || now.epoch != m.aligned.epoch {
		m.pacer.Reset()
	}
	was := m.aligned
	m.aligned = now
	m.apply(m.machine.SetMastership(now.master, now.epoch, now.addr, m.w.wall()))
	if now.master && !was.master && m.el.HandedOver() {
		m.machine.PlannedTakeover()
	}
}

// syncState mirrors pkg/appliance's: the registry's changes to the
// backups, paced by the SyncPacer.
func (m *mgmtProc) syncState() {
	if m.el == nil || m.el.Role() != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		return
	}
	now, at := m.pacer.Plan(m.w.wall(), m.machine.HasChanges(), m.machine.NextSeq())
	if !now {
		if !at.IsZero() {
			m.w.slot(&m.proc, slotSync, at, m.syncState)
		}
		return
	}
	_ = m.sendChanges()
	m.drainElection()
}

// sendChanges mirrors pkg/appliance's: one delta to the election.
func (m *mgmtProc) sendChanges() error {
	d := m.machine.TakeChanges()
	m.w.slot(&m.proc, slotSync, time.Time{}, nil)
	_, err := m.el.SyncWith(&hellopicsv1.SyncUpdate{Pairs: d.Pairs, RemovedPairs: d.Removed, Delta: true,
		NextSeq: m.pacer.Sent(m.w.wall(), d.NextSeq)})
	return err
}

// switchover mirrors the start of mgmt/ha.go's Switchover.
func (m *mgmtProc) switchover(target string) {
	if m.el == nil {
		return
	}
	chosen, err := m.el.Switchover(m.w.wall(), target)
	m.w.tracef("%s: switchover to %q: chosen %q, %v", m.name, target, chosen, err)
	m.drainElection()
}

// onSessionUp mirrors mgmt/mgmt.go's onSession (established).
func (m *mgmtProc) onSessionUp(e *end) {
	id := handshake.SessionID(e.ID())
	m.reg[id] = e
	m.apply(m.machine.SessionUp(id, e.remote, m.w.wall()))
}

// onSessionEnd mirrors mgmt/mgmt.go's onSession (ended).
func (m *mgmtProc) onSessionEnd(e *end, err error) {
	id := handshake.SessionID(e.ID())
	if m.reg[id] != e {
		return
	}
	delete(m.reg, id)
	if m.w.opts.Bug == BugLoseSessionDown {
		return // the injected bug: the machine never hears of the loss
	}
	m.apply(m.machine.SessionDown(id, err.Error(), m.w.wall()))
}

// onFrame mirrors mgmt/mgmt.go's onFrame (tier.Admit: a frame of a
// session the registry no longer has is dropped; no TLS, so no
// certificate check).
func (m *mgmtProc) onFrame(e *end, typ int32, msg proto.Message) {
	id := handshake.SessionID(e.ID())
	if m.reg[id] != e {
		return
	}
	epoch := m.machine.Epoch()
	outs := m.machine.Receive(id, hellopicsv1.MsgType(typ), msg, m.w.wall())
	m.w.chk.mgmtReceived(m, e, hellopicsv1.MsgType(typ), msg, outs, epoch)
	m.apply(outs)
}

func (m *mgmtProc) tick() { m.apply(m.machine.Tick(m.w.wall())) }

// apply mirrors mgmt/mgmt.go's apply (tier.Carry for Send, Close and
// Event), then re-arms the machine's deadline and syncs the backups
// after any output.
func (m *mgmtProc) apply(outs []handshake.Output) {
	for _, o := range outs {
		switch o := o.(type) {
		case handshake.Send:
			m.w.chk.mgmtSent(m, o)
			if e := m.reg[o.Session]; e != nil {
				_ = m.w.net.send(e, int32(o.Type), o.Msg)
			}
		case handshake.Close:
			if e := m.reg[o.Session]; e != nil {
				m.w.net.close(e)
			}
		case handshake.Event:
			m.w.chk.mgmtEvent(m, o)
			if o.Kind == handshake.EventRejected && o.Refused == handshake.RefusedEpochAhead && m.el != nil {
				// componentEpoch
				_, _ = m.el.ObserveComponentEpoch(m.w.wall(), o.PeerEpoch)
				m.drainElection()
			}
		}
	}
	if at, ok := m.machine.NextDeadline(); ok {
		m.w.slot(&m.proc, slotHandshake, at, m.tick)
	} else {
		m.w.slot(&m.proc, slotHandshake, time.Time{}, nil)
	}
	if len(outs) > 0 {
		m.syncState()
	}
}

// isMaster reports whether the election makes this instance master.
func (m *mgmtProc) isMaster() bool {
	return m.up && m.el != nil && m.el.Role() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER
}
