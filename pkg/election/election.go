package election

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// ErrUnknownPeer is returned by Step for a sender that is not in
// Config.Peers, and by Switchover for an unknown target.
var ErrUnknownPeer = errors.New("election: unknown peer")

// Election is one instance's election machine. It is not safe for
// concurrent use: the shell owns it and calls it from one goroutine.
type Election struct {
	cfg      Config
	slot     uint64 // index of cfg.ID among the sorted members
	members  []string
	peers    map[string]*peer
	peerList []*peer // sorted by id

	started bool
	now     time.Time
	// componentEpochAt is when ObserveComponentEpoch last adopted an
	// epoch (its rate limit).
	componentEpochAt time.Time

	role        hellopicsv1.MgmtRole
	epoch       uint64 // highest epoch known
	masterEpoch uint64 // epoch we are master at (role master)
	lastOwn     uint64 // highest epoch we were master at in this run
	master      string // current master ("" none)
	followEpoch uint64 // epoch of the master we last reported following
	// lastMaster is the peer we last followed, at lastMasterEpoch: the
	// only instance whose Handover is honoured.
	lastMaster      string
	lastMasterEpoch uint64

	holdUntil       time.Time // no self-election before this
	nextHeartbeat   time.Time
	masterlessSince time.Time // zero while there is a master
	preemptSince    time.Time // zero unless we are preferred over the master
	yieldTo         string    // do not preempt this master ...
	yieldEpoch      uint64    // ... at this epoch (we handed over to it)

	exhausted bool // the epoch range is used up; reported once

	// fault: a tracked check of weight 0 fails (SetFault). The instance
	// never claims, preempts or takes a handover, steps down if master,
	// and announces priority 0 and fault in its heartbeats.
	fault bool

	sw   *switchover // master: a switchover in progress
	hand *handover   // backup: we handed over, waiting for the target
	// handedOver: master by a Handover (a graceful switchover), not by
	// an election.
	handedOver bool

	rep *Replicator

	persist uint64
	flush   bool
	msgs    []Message
	events  []Event
}

type peer struct {
	id, addr      string
	heard         time.Time
	alive         bool
	priority      uint32
	epoch         uint64
	masterID      string
	nopreempt     bool
	fault         bool // announces the fault state: never a candidate
	componentAddr string
	// linkLost: a connection to or from the peer broke (LinkLost) and
	// no heartbeat has come since.
	linkLost bool
}

func (p *peer) claims() bool { return p.alive && p.masterID == p.id }

type switchover struct {
	target   string
	deadline time.Time
	barrier  uint64 // version the target must ack; 0 until Sync is called
}

type handover struct {
	target string
	epoch  uint64
	until  time.Time // give up waiting for the target then
}

// New returns the machine for cfg, starting as a candidate.
// persistedEpoch is the value LoadEpoch returned (0 on first start): the
// instance will only ever take epochs above it.
func New(cfg Config, persistedEpoch uint64) (*Election, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !ValidEpoch(persistedEpoch) {
		return nil, fmt.Errorf("election: persisted epoch %d beyond the maximum %d", persistedEpoch, uint64(MaxEpoch))
	}
	e := &Election{
		cfg:     cfg,
		members: cfg.members(),
		peers:   map[string]*peer{},
		role:    hellopicsv1.MgmtRole_MGMT_ROLE_CANDIDATE,
		epoch:   persistedEpoch,
		rep:     NewReplicator(cfg.ID, cfg.maxSyncLag()),
	}
	for i, id := range e.members {
		if id == cfg.ID {
			e.slot = uint64(i)
		}
	}
	for _, p := range cfg.Peers {
		e.peers[p.ID] = &peer{id: p.ID, addr: p.Addr}
	}
	for _, id := range e.members {
		if p := e.peers[id]; p != nil {
			e.peerList = append(e.peerList, p)
		}
	}
	e.rep.ObserveEpoch(persistedEpoch)
	return e, nil
}

// NextEpoch returns the smallest epoch above after that belongs to
// slot among n members: epochs are dealt out round-robin (epoch mod n
// == slot), so two instances can never pick the same one, even when
// they cannot talk to each other. after must be at most MaxEpoch-2n,
// which the machine checks before calling it.
func NextEpoch(after, slot, n uint64) uint64 {
	e := after + 1
	return e + (slot+n-e%n)%n
}

func (e *Election) slotOf(id string) uint64 {
	for i, m := range e.members {
		if m == id {
			return uint64(i)
		}
	}
	return 0
}

// better reports whether (pa, a) wins an election against (pb, b).
func better(pa uint32, a string, pb uint32, b string) bool {
	if pa != pb {
		return pa > pb
	}
	return a > b
}

// advance moves the clock; time never goes back.
func (e *Election) advance(now time.Time) {
	if !e.started {
		e.started = true
		e.now = now
		e.holdUntil = now.Add(e.cfg.startupHold())
		e.nextHeartbeat = now
		e.masterlessSince = now
		return
	}
	if now.After(e.now) {
		e.now = now
	}
}

// Tick tells the machine the time is now. Call it at Ready.NextTick at
// the latest. It detects dead peers, runs the election, sends the
// heartbeats when due and times out switchovers.
func (e *Election) Tick(now time.Time) {
	e.advance(now)
	e.evaluate()
	if !e.now.Before(e.nextHeartbeat) {
		e.broadcast()
	}
}

// SetPriority changes this instance's priority at now (tracked health:
// a failing check lowers it). The next heartbeats carry it; a heartbeat
// goes to every peer at once, so that a better live backup sees a
// master it is now preferred over and preempts it (unless it is
// NoPreempt), and this instance itself preempts a master once it is
// preferred again. Config.Priority is the configured value; Priority
// reports the current one.
func (e *Election) SetPriority(now time.Time, priority uint32) {
	e.advance(now)
	if priority == e.cfg.Priority {
		return
	}
	e.cfg.Priority = priority
	e.evaluate()
	e.broadcast()
}

// Priority is this instance's current priority (SetPriority). While
// the instance is in the fault state its heartbeats announce 0 instead.
func (e *Election) Priority() uint32 { return e.cfg.Priority }

// SetFault puts this instance in the fault state at now, or takes it
// out of it (tracked health: a check of weight 0 fails, like
// keepalived's FAULT). While faulty the instance never becomes master:
// a master steps down at once (why says why), a backup never claims,
// preempts or takes a Handover, and its heartbeats, sent at once,
// announce priority 0 and the fault, so that its peers do not count it
// as a candidate (they claim without waiting for it). Out of the fault
// state it takes part in the election again with its priority: as the
// best live instance it preempts a working master (unless NoPreempt),
// or claims when there is none.
func (e *Election) SetFault(now time.Time, fault bool, why string) {
	e.advance(now)
	if fault == e.fault {
		return
	}
	e.fault = fault
	if fault && e.role == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		e.stepDown("fault: " + why) // broadcasts
	}
	e.evaluate()
	e.broadcast()
}

// Fault reports whether this instance is in the fault state (SetFault).
func (e *Election) Fault() bool { return e.fault }

// Step hands the machine a message received at now from the instance
// from (the time matters: a peer's liveness counts from it): a *hellopicsv1.Heartbeat, *hellopicsv1.Handover,
// *hellopicsv1.SyncUpdate or *hellopicsv1.SyncAck. It returns an error
// (and otherwise ignores the message) for an unknown sender
// (ErrUnknownPeer) or type, and a *Refusal (errors.Is ErrRefused) for a
// message whose content it refuses: an epoch at or above 2^63 or more
// than Config.MaxEpochJump above ours, a Handover from an instance that
// is not the master, a string over its limit. Neither changes any
// state, not even the sender's liveness; the shell should count and
// log them (rate-limited) and carry on.
func (e *Election) Step(now time.Time, from string, msg proto.Message) error {
	p := e.peers[from]
	if p == nil {
		return fmt.Errorf("%w: %.64q", ErrUnknownPeer, from)
	}
	if err := e.check(from, msg); err != nil {
		return err
	}
	e.advance(now)
	switch m := msg.(type) {
	case *hellopicsv1.Heartbeat:
		p.heard = e.now
		p.linkLost = false
		p.priority = m.GetPriority()
		p.epoch = m.GetEpoch()
		p.masterID = m.GetMasterId()
		p.nopreempt = m.GetNopreempt()
		p.fault = m.GetFault()
		p.componentAddr = m.GetComponentAddr()
		e.observe(m.GetEpoch(), "heartbeat from "+from)
		if m.GetMasterId() == from && m.GetEpoch() < e.epoch {
			// A stale master: tell it at once so that it steps down.
			e.send(from, e.heartbeat())
		}
	case *hellopicsv1.Handover:
		e.stepHandover(from, m)
	case *hellopicsv1.SyncUpdate:
		// Only the instance that claims mastership at the update's epoch
		// may change our copy of the state. An update that overtakes its
		// master's first heartbeat is dropped here; the next one finds no
		// baseline and asks for a snapshot.
		if p.masterID == from && p.epoch == m.GetEpoch() {
			e.observe(m.GetEpoch(), "sync update from "+from)
			if e.role != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
				e.rep.StepUpdate(from, m)
			}
		}
	case *hellopicsv1.SyncAck:
		e.rep.StepAck(from, m)
	default:
		return fmt.Errorf("election: unexpected message %T from %q", msg, from)
	}
	e.evaluate()
	return nil
}

// check refuses a message whose content no member would send: see Step.
func (e *Election) check(from string, msg proto.Message) error {
	switch m := msg.(type) {
	case *hellopicsv1.Heartbeat:
		return e.checkHeartbeat(from, m)
	case *hellopicsv1.Handover:
		if m.GetFromId() != "" && m.GetFromId() != from {
			return refuse("field", "handover from %s claims to come from %.64q", from, m.GetFromId())
		}
		if m.GetEpoch() <= e.epoch || m.GetEpoch() <= e.lastOwn {
			return nil // a resent handover we already took, or a stale one
		}
		if from != e.lastMaster || e.lastMasterEpoch != e.epoch {
			return refuse("handover", "handover from %s, which is not the master at epoch %d (master: %q)", from, e.epoch, e.lastMaster)
		}
		return e.checkEpoch(from, "handover", m.GetEpoch())
	case *hellopicsv1.SyncUpdate:
		return e.checkEpoch(from, "sync update", m.GetEpoch())
	case *hellopicsv1.SyncAck:
		if !ValidEpoch(m.GetEpoch()) {
			return refuse("epoch_range", "sync ack from %s carries epoch %d", from, m.GetEpoch())
		}
	}
	return nil
}

// stepHandover takes mastership at once when the master hands it over
// (check made sure it is the master), unless the epoch is not the next
// one of ours or we know better.
func (e *Election) stepHandover(from string, m *hellopicsv1.Handover) {
	if e.fault || e.cfg.External {
		return // a faulty instance never takes mastership; the master's handover times out
	}
	ep := m.GetEpoch()
	next, ok := e.nextOwnEpoch(e.slot)
	if !ok || ep != next || ep <= e.lastOwn {
		return // stale, duplicate, or not ours: a higher epoch exists
	}
	e.becomeMaster(ep, "handover from "+from)
	e.handedOver = true
}

// observe records an epoch seen in a message.
func (e *Election) observe(epoch uint64, why string) {
	if epoch <= e.epoch {
		return
	}
	e.epoch = epoch
	e.persist = epoch
	e.rep.ObserveEpoch(epoch)
	if e.role == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		e.stepDown(fmt.Sprintf("fenced: learned epoch %d from %s", epoch, why))
	}
}

// evaluate brings the role in line with what we know at e.now.
func (e *Election) evaluate() {
	e.updateLiveness()
	if e.role == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER && !e.cfg.External {
		// Two claims at one epoch cannot happen with a shared membership;
		// if it does, the worse one yields.
		for _, p := range e.peerList {
			if p.claims() && p.epoch == e.masterEpoch && better(p.priority, p.id, e.cfg.Priority, e.cfg.ID) {
				e.stepDown(fmt.Sprintf("conflict: %s also claims epoch %d (membership differs?)", p.id, p.epoch))
				break
			}
		}
	}
	if e.role == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		e.progressSwitchover()
		return
	}

	m := e.currentMaster()
	if m != e.master || (m != "" && e.followEpoch != e.epoch) {
		e.master = m
		e.followEpoch = e.epoch
		if m != "" {
			e.lastMaster, e.lastMasterEpoch = m, e.epoch
			e.role = hellopicsv1.MgmtRole_MGMT_ROLE_BACKUP
			e.event(EventMasterChanged, e.epoch, m, "", fmt.Sprintf("following %s at epoch %d", m, e.epoch))
		} else {
			e.role = hellopicsv1.MgmtRole_MGMT_ROLE_CANDIDATE
			e.event(EventMasterChanged, e.epoch, "", "", "no live master: electing")
		}
	}
	if m != "" {
		e.masterlessSince = time.Time{}
		if e.hand != nil && m == e.hand.target {
			e.hand = nil
		}
		if e.fault || e.cfg.External {
			e.preemptSince = time.Time{}
			return
		}
		e.considerPreempt(e.peers[m])
		return
	}
	e.preemptSince = time.Time{}
	if e.masterlessSince.IsZero() {
		e.masterlessSince = e.now
	}
	if e.fault || e.cfg.External {
		return // never claims while faulty, nor when an outside authority decides
	}
	if e.now.Before(e.holdUntil) {
		return
	}
	if e.hand != nil {
		if e.now.Before(e.hand.until) {
			return
		}
		e.hand = nil
	}
	if best := e.bestAlive(); best == "" {
		e.claim("no live master and highest priority among live instances")
	} else if !e.now.Before(e.fallbackAt()) {
		e.claim(fmt.Sprintf("no live master for %v although %s is preferred", e.now.Sub(e.masterlessSince), best))
	}
}

// fallbackAt is when a non-preferred candidate claims anyway, for the
// case where the preferred one never does (it hears a master we do not).
func (e *Election) fallbackAt() time.Time {
	from := e.masterlessSince
	if e.holdUntil.After(from) {
		from = e.holdUntil
	}
	return from.Add(2 * e.cfg.deadAfter())
}

// bestAlive returns a live peer preferred over us, or "" if we are the
// best live instance. A peer in the fault state is no candidate.
func (e *Election) bestAlive() string {
	best := ""
	bp, bid := e.cfg.Priority, e.cfg.ID
	for _, p := range e.peerList {
		if p.alive && !p.fault && better(p.priority, p.id, bp, bid) {
			best, bp, bid = p.id, p.priority, p.id
		}
	}
	return best
}

// currentMaster returns the live peer that claims mastership at the
// highest epoch we know; claims at lower epochs are stale.
func (e *Election) currentMaster() string {
	for _, p := range e.peerList {
		if p.claims() && p.epoch == e.epoch {
			return p.id
		}
	}
	return ""
}

func (e *Election) considerPreempt(m *peer) {
	// Only the best live instance preempts: the others would only add
	// churn, and a best instance that does not preempt (nopreempt, or it
	// handed over to this master) keeps the master in place.
	if e.cfg.NoPreempt || e.now.Before(e.holdUntil) ||
		!better(e.cfg.Priority, e.cfg.ID, m.priority, m.id) || e.bestAlive() != "" ||
		(m.id == e.yieldTo && e.epoch == e.yieldEpoch) {
		e.preemptSince = time.Time{}
		return
	}
	if e.preemptSince.IsZero() {
		e.preemptSince = e.now
	}
	if e.now.Sub(e.preemptSince) >= e.cfg.PreemptDelay {
		e.claim(fmt.Sprintf("preempting %s (priority %d) with priority %d", m.id, m.priority, e.cfg.Priority))
	}
}

// claim becomes master at our next epoch, if one is left.
func (e *Election) claim(why string) {
	ep, ok := e.nextOwnEpoch(e.slot)
	if !ok {
		if !e.exhausted {
			e.exhausted = true
			e.event(EventSteppedDown, e.epoch, "", "", fmt.Sprintf("cannot become master: epoch %d leaves no epoch below the maximum %d", e.epoch, uint64(MaxEpoch)))
		}
		return
	}
	e.becomeMaster(ep, why)
}

func (e *Election) updateLiveness() {
	dead := e.cfg.deadAfter()
	for _, p := range e.peerList {
		alive := !p.heard.IsZero() && e.now.Sub(p.heard) < dead
		if alive == p.alive {
			continue
		}
		p.alive = alive
		if alive {
			e.event(EventPeerUp, e.epoch, e.master, p.id, "heartbeats arriving")
			if e.role == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
				// Our claim must reach it before the snapshot that
				// AddBackup asks for: a backup takes state only from the
				// instance that claims mastership.
				e.send(p.id, e.heartbeat())
			}
			e.rep.AddBackup(p.id)
		} else {
			e.event(EventPeerDown, e.epoch, e.master, p.id, fmt.Sprintf("no heartbeat for %v", e.now.Sub(p.heard)))
			e.rep.RemoveBackup(p.id)
		}
	}
}

func (e *Election) becomeMaster(epoch uint64, why string) {
	e.role = hellopicsv1.MgmtRole_MGMT_ROLE_MASTER
	e.epoch = epoch
	e.masterEpoch = epoch
	e.lastOwn = epoch
	e.persist = epoch
	e.master = e.cfg.ID
	e.masterlessSince = time.Time{}
	e.preemptSince = time.Time{}
	e.yieldTo, e.yieldEpoch = "", 0
	e.hand = nil
	e.handedOver = false
	var backups []string
	for _, p := range e.peerList {
		if p.alive {
			backups = append(backups, p.id)
		}
	}
	e.rep.BecomeMaster(epoch, backups)
	e.event(EventBecameMaster, epoch, e.cfg.ID, "", why)
	e.broadcast() // announce at once: fences an old master sooner
}

func (e *Election) stepDown(why string) {
	e.abortSwitchover("stepped down")
	e.role = hellopicsv1.MgmtRole_MGMT_ROLE_CANDIDATE
	e.master = ""
	e.masterEpoch = 0
	e.masterlessSince = e.now
	// Give the master that fenced us a dead interval to be heard before
	// we consider taking over again; avoids a flap after a pause.
	e.holdUntil = e.now.Add(e.cfg.deadAfter())
	e.rep.BecomeBackup(e.epoch)
	e.event(EventSteppedDown, e.epoch, "", "", why)
	e.broadcast()
}

// Switchover starts a graceful switchover to target, or to the best
// live backup if target is empty, and returns the chosen target. The
// master first flushes its state (Ready.Flush), waits for the target to
// acknowledge it, then sends it a Handover with a fresh epoch belonging
// to the target and becomes a backup; the target takes over as soon as
// the Handover arrives. Progress and the outcome are reported as events.
func (e *Election) Switchover(now time.Time, target string) (string, error) {
	e.advance(now)
	if e.cfg.External {
		return "", ErrExternal
	}
	if e.role != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		return "", ErrNotMaster
	}
	if e.sw != nil {
		return "", fmt.Errorf("election: switchover to %s already in progress", e.sw.target)
	}
	if target == "" {
		target = e.bestAlive()
		if target == "" {
			// We are the best; take the best of the others.
			var bp uint32
			for _, p := range e.peerList {
				if p.alive && !p.fault && (target == "" || better(p.priority, p.id, bp, target)) {
					target, bp = p.id, p.priority
				}
			}
		}
		if target == "" {
			return "", errors.New("election: switchover: no live backup out of the fault state")
		}
	}
	p := e.peers[target]
	if p == nil {
		return "", fmt.Errorf("%w: switchover target %q", ErrUnknownPeer, target)
	}
	if !p.alive {
		return "", fmt.Errorf("election: switchover target %q is not alive", target)
	}
	if p.fault {
		return "", fmt.Errorf("election: switchover target %q is in the fault state", target)
	}
	e.sw = &switchover{target: target, deadline: e.now.Add(e.cfg.switchoverTimeout())}
	e.flush = true
	e.event(EventSwitchoverStarted, e.epoch, e.cfg.ID, target, "flushing state")
	return target, nil
}

func (e *Election) progressSwitchover() {
	sw := e.sw
	if sw == nil {
		return
	}
	t := e.peers[sw.target]
	switch {
	case !t.alive:
		e.abortSwitchover("target died")
	case !e.now.Before(sw.deadline):
		e.abortSwitchover(fmt.Sprintf("target acknowledged only version %d of %d within %v",
			e.rep.Acked(sw.target), sw.barrier, e.cfg.switchoverTimeout()))
	case sw.barrier != 0 && e.rep.Acked(sw.target) >= sw.barrier:
		e.handOver(sw.target)
	}
}

func (e *Election) abortSwitchover(why string) {
	if e.sw == nil {
		return
	}
	e.event(EventSwitchoverAborted, e.epoch, e.master, e.sw.target, why)
	e.sw = nil
}

func (e *Election) handOver(target string) {
	ep, ok := e.nextOwnEpoch(e.slotOf(target))
	if !ok {
		e.abortSwitchover("no epoch left below the maximum")
		return
	}
	e.sw = nil
	e.role = hellopicsv1.MgmtRole_MGMT_ROLE_CANDIDATE
	e.master = ""
	e.masterEpoch = 0
	e.masterlessSince = e.now
	e.hand = &handover{target: target, epoch: ep, until: e.now.Add(e.cfg.deadAfter())}
	e.yieldTo, e.yieldEpoch = target, ep
	e.rep.BecomeBackup(e.epoch)
	e.event(EventHandoverSent, ep, target, target, "graceful switchover")
	e.broadcast() // sends the Handover, and again with every heartbeat until the target claims
}

// Sync assigns the next version to a change of the registry and queues
// it for every backup in sync; it returns the version. During a
// switchover the first Sync after Ready.Flush is the barrier. Master
// only.
func (e *Election) Sync(pairs []*hellopicsv1.PairStatus, nextSeq uint64) (uint64, error) {
	return e.SyncWith(&hellopicsv1.SyncUpdate{Pairs: pairs, NextSeq: nextSeq})
}

// SyncWith is Sync for a body the shell builds: a delta (the pairs
// changed, removed_pairs, next_seq; see handshake.Mgmt.TakeChanges),
// which backups apply in version order on top of their snapshot.
// Master only.
func (e *Election) SyncWith(body *hellopicsv1.SyncUpdate) (uint64, error) {
	if e.role != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		return 0, ErrNotMaster
	}
	v, err := e.rep.UpdateWith(body)
	if err == nil && e.sw != nil && e.sw.barrier == 0 {
		e.sw.barrier = v
	}
	return v, err
}

// SyncApp assigns the next version to a batch of application state
// updates and queues it for every backup in sync, as one SyncUpdate with
// app_only set; it returns the version. It is never a switchover's
// barrier: flush the pending application updates with SyncApp before the
// Sync that Ready.Flush asks for. Master only.
func (e *Election) SyncApp(updates [][]byte) (uint64, error) {
	if e.role != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		return 0, ErrNotMaster
	}
	return e.rep.UpdateApp(updates)
}

// Snapshot queues a full snapshot of the registry for backup to; call
// it for every id in Ready.Snapshots. Master only.
func (e *Election) Snapshot(to string, pairs []*hellopicsv1.PairStatus, nextSeq uint64) error {
	return e.SnapshotWith(to, &hellopicsv1.SyncUpdate{Pairs: pairs, NextSeq: nextSeq})
}

// SnapshotWith is Snapshot with a body the shell builds: the registry
// and the application's whole state (app_snapshot), both as of the last
// version. Master only.
func (e *Election) SnapshotWith(to string, body *hellopicsv1.SyncUpdate) error {
	if e.role != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		return ErrNotMaster
	}
	return e.rep.SnapshotWith(to, body)
}

// Version is the last state version assigned (master) or applied
// (backup). A master's next Sync or SyncApp takes Version()+1.
func (e *Election) Version() uint64 { return e.rep.Version() }

// Committed is the highest version every live backup with a baseline
// acknowledged, and how many they are (see Replicator.Committed); the
// last version and 0 with none. 0, 0 unless master.
func (e *Election) Committed() (version uint64, backups int) {
	if e.role != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		return 0, 0
	}
	return e.rep.Committed()
}

// Reject reports that the shell could not apply u, one of rd.Apply
// (backup): the backup asks for a full snapshot instead of
// acknowledging u and what follows (see Replicator.Reject). Call it
// before sending rd.Messages.
func (e *Election) Reject(rd *Ready, u *hellopicsv1.SyncUpdate) {
	e.rep.Reject(u, rd.Messages)
}

// Heartbeat is the heartbeat this instance sends now. The shell may send
// it ahead of other frames on a new connection, so that the peer knows
// whose they are; it changes nothing in the machine.
func (e *Election) Heartbeat() *hellopicsv1.Heartbeat { return e.heartbeat() }

func (e *Election) heartbeat() *hellopicsv1.Heartbeat {
	prio := e.cfg.Priority
	if e.fault {
		prio = 0
	}
	return &hellopicsv1.Heartbeat{
		Id:            e.cfg.ID,
		Priority:      prio,
		Epoch:         e.epoch,
		MasterId:      e.master,
		ComponentAddr: e.cfg.ComponentAddr,
		Nopreempt:     e.cfg.NoPreempt,
		Fault:         e.fault,
	}
}

// broadcast sends a heartbeat to every peer (and resends a pending
// Handover, in case the first was lost).
func (e *Election) broadcast() {
	for _, p := range e.peerList {
		e.send(p.id, e.heartbeat())
	}
	if e.hand != nil {
		e.send(e.hand.target, &hellopicsv1.Handover{Epoch: e.hand.epoch, FromId: e.cfg.ID})
	}
	e.nextHeartbeat = e.now.Add(e.cfg.HeartbeatInterval)
}

func (e *Election) send(to string, m proto.Message) {
	var t hellopicsv1.HAMsgType
	switch m.(type) {
	case *hellopicsv1.Heartbeat:
		t = hellopicsv1.HAMsgType_HA_MSG_TYPE_HEARTBEAT
	case *hellopicsv1.Handover:
		t = hellopicsv1.HAMsgType_HA_MSG_TYPE_HANDOVER
	}
	e.msgs = append(e.msgs, Message{To: to, Type: t, Body: m})
}

func (e *Election) event(k EventKind, epoch uint64, master, peer, why string) {
	e.events = append(e.events, Event{Kind: k, Time: e.now, Epoch: epoch, Master: master, Peer: peer, Reason: why})
}

// HasReady reports whether Ready has anything beyond NextTick.
func (e *Election) HasReady() bool {
	return e.persist != 0 || e.flush || len(e.msgs) > 0 || len(e.events) > 0 ||
		len(e.rep.msgs) > 0 || len(e.rep.snaps) > 0 || len(e.rep.apply) > 0
}

// Ready returns, and forgets, everything the shell must do since the
// last call. See Ready for the order.
func (e *Election) Ready() Ready {
	rm, snaps, apply := e.rep.take()
	rd := Ready{
		PersistEpoch: e.persist,
		Apply:        apply,
		Messages:     append(e.msgs, rm...),
		Snapshots:    snaps,
		Flush:        e.flush,
		Events:       e.events,
		NextTick:     e.nextTick(),
	}
	e.persist, e.flush, e.msgs, e.events = 0, false, nil, nil
	return rd
}

// nextTick is the earliest instant something may change by itself.
func (e *Election) nextTick() time.Time {
	next := e.nextHeartbeat
	consider := func(t time.Time) {
		if !t.IsZero() && t.After(e.now) && t.Before(next) {
			next = t
		}
	}
	dead := e.cfg.deadAfter()
	for _, p := range e.peerList {
		if p.alive {
			consider(p.heard.Add(dead))
		}
	}
	consider(e.holdUntil)
	if !e.masterlessSince.IsZero() {
		consider(e.fallbackAt())
	}
	if !e.preemptSince.IsZero() {
		consider(e.preemptSince.Add(e.cfg.PreemptDelay))
	}
	if e.sw != nil {
		consider(e.sw.deadline)
	}
	if e.hand != nil {
		consider(e.hand.until)
	}
	return next
}

// Role is this instance's current role.
func (e *Election) Role() hellopicsv1.MgmtRole { return e.role }

// Epoch is the highest epoch this instance knows; while it is master,
// the epoch of its mastership.
func (e *Election) Epoch() uint64 { return e.epoch }

// Master is the current master's id ("" if none known).
func (e *Election) Master() string { return e.master }

// HandedOver reports whether this instance is master because the old
// master handed mastership over (a graceful switchover: its state was
// flushed here and it stopped on purpose), not because an election found
// no live master. False while not master.
func (e *Election) HandedOver() bool {
	return e.handedOver && e.role == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER
}

// Status returns the state for the operator API.
func (e *Election) Status() Status {
	st := Status{
		ID:          e.cfg.ID,
		Role:        e.role,
		Epoch:       e.epoch,
		MasterID:    e.master,
		SyncVersion: e.rep.Version(),
	}
	for _, p := range e.peerList {
		st.Peers = append(st.Peers, &hellopicsv1.MgmtPeerStatus{
			Id:       p.id,
			Addr:     p.addr,
			Alive:    p.alive,
			Priority: p.priority,
			Epoch:    p.epoch,
			SyncLag:  e.rep.Lag(p.id),
			InSync:   e.role == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER && e.rep.InSync(p.id),
			Fault:    p.fault,
		})
	}
	return st
}

// MasterComponentAddr is where the current master accepts ctrl and data,
// as its heartbeats announce it ("" if no master is known).
// ObserveComponentEpoch tells the election, at now, that a component
// this instance refused has seen epoch, above this instance's: a master
// that none of the instances it hears knows of (it is paused, cut off,
// or its heartbeats reach nobody) gave it that epoch, and the component
// would be refused for good. The election adopts the epoch as it would
// a peer's: a master steps down and, still the best live instance,
// claims again above it; a backup's next claim goes above it. An epoch
// out of range or more than MaxEpochJump above ours is refused (a
// *Refusal), and at most one is adopted per 20 heartbeat intervals, so
// that a stranger cannot make the master step down at will. It returns
// whether the epoch was adopted. With Config.External it adopts
// nothing and returns false: only the authority deals epochs, and a
// master above it would be one the authority never elected.
func (e *Election) ObserveComponentEpoch(now time.Time, epoch uint64) (bool, error) {
	if e.cfg.External {
		return false, nil // the authority's epochs only
	}
	if err := e.checkEpoch("a component", "an identify", epoch); err != nil {
		return false, err
	}
	e.advance(now)
	if epoch <= e.epoch {
		return false, nil
	}
	if !e.componentEpochAt.IsZero() && e.now.Sub(e.componentEpochAt) < 20*e.cfg.HeartbeatInterval {
		return false, nil
	}
	e.componentEpochAt = e.now
	e.observe(epoch, "a component's identify")
	e.evaluate()
	return true, nil
}

// LinkLost tells the election that a connection to or from peer id
// broke (a reset, a dead-peer timeout). It changes no liveness or role,
// which heartbeats alone decide; until the peer's next heartbeat,
// LiveMasterComponentAddr does not name it. Unknown ids are ignored.
func (e *Election) LinkLost(id string) {
	if p := e.peers[id]; p != nil {
		p.linkLost = true
	}
}

// LiveMasterComponentAddr is MasterComponentAddr while the master is
// this instance, or a peer heard from within two heartbeat intervals
// whose link has not broken since (LinkLost); "" otherwise. A backup
// redirects components only there: never toward a master it has
// stopped hearing from, which may be dead or cut off.
func (e *Election) LiveMasterComponentAddr() string {
	if e.master == "" {
		return ""
	}
	if e.master == e.cfg.ID {
		return e.cfg.ComponentAddr
	}
	p := e.peers[e.master]
	if p == nil || p.linkLost || e.now.Sub(p.heard) > 2*e.cfg.HeartbeatInterval {
		return ""
	}
	return p.componentAddr
}

func (e *Election) MasterComponentAddr() string {
	if e.master == "" {
		return ""
	}
	if e.master == e.cfg.ID {
		return e.cfg.ComponentAddr
	}
	for _, p := range e.peerList {
		if p.id == e.master {
			return p.componentAddr
		}
	}
	return ""
}
