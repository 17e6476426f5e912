package appliance

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hellopics/hellopics/pkg/handshake"
	"github.com/hellopics/hellopics/pkg/pconn"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// mgmtLink is the mgmt shell as the application's Runtime sees it: the
// way to the components (Link, PairLister) and to
// the backups (Replicator). Its methods run on the loop.
type mgmtLink struct{ s *Management }

var (
	_ Link          = mgmtLink{}
	_ PairLister    = mgmtLink{}
	_ Replicator    = mgmtLink{}
	_ Publisher     = mgmtLink{}
	_ HelloObserver = mgmtLink{}
)

// Publish puts an application's event in the operator event stream.
func (l mgmtLink) Publish(ev *hellopicsv1.WatchEventsResponse) { l.s.publish(ev) }

// HelloReturned feeds hellopics_hello_rtt_seconds.
func (l mgmtLink) HelloReturned(pairID string, rtt time.Duration) {
	l.s.metrics.rtt.WithLabelValues(pairID).Observe(rtt.Seconds())
}

// HelloOutage feeds hellopics_mgmt_failover_outage_seconds.
func (l mgmtLink) HelloOutage(d time.Duration) { l.s.metrics.outage.Observe(d.Seconds()) }

// newAppSyncErrors counts the application state updates a backup could
// not apply.
func newAppSyncErrors() prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hellopics_mgmt_app_sync_errors_total",
		Help: "Application state updates or snapshots from the master this backup could not apply; it asks for a snapshot.",
	})
}

// SendApp queues an application message on the session of the
// identified component to (master only: a backup has none).
func (l mgmtLink) SendApp(to Target, payload []byte) error {
	s := l.s
	role := to.Role.Wire()
	id, ok := s.machine.Session(to.PairID, role)
	if !ok {
		return ErrNoRoute
	}
	ps := s.reg.Get(id)
	if ps == nil {
		return ErrNoRoute
	}
	return ps.SendRecord(MsgTypeApp, payload)
}

// ReadyTargets lists the role components of the pairs whose Hello cycle
// runs (both halves ready).
func (l mgmtLink) ReadyTargets(role Role) []Target {
	if role != Ctrl && role != Data {
		return nil
	}
	var out []Target
	for _, p := range l.s.machine.ReadyPairs() {
		out = append(out, To(role, p))
	}
	return out
}

// Replicate queues an application state update for the backups. The
// updates queued within one turn of the loop go out as one SyncUpdate
// (flushApp, posted once), at the version returned.
func (l mgmtLink) Replicate(update []byte) (uint64, error) {
	s := l.s
	if len(s.cfg.Peers) == 0 {
		// A single instance: nothing to wait for, committed at once
		// (after Node.Replicate has recorded the commit).
		s.appVersion++
		if !s.appCommitPosted {
			s.appCommitPosted = true
			s.loop.Post(func() {
				s.appCommitPosted = false
				s.rt.Committed(s.appVersion, 0)
			})
		}
		return s.appVersion, nil
	}
	if s.el == nil || s.el.Role() != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		return 0, ErrNotMaster
	}
	if len(s.appPending) == 0 {
		// Every path that takes a version flushes the pending updates
		// first, so the next version is theirs.
		s.appPendingVersion = s.el.Version() + 1
		s.loop.Post(s.flushApp)
	}
	s.appPending = append(s.appPending, bytes.Clone(update))
	return s.appPendingVersion, nil
}

// flushApp sends the pending application updates to the backups as one
// versioned SyncUpdate. Loop only; a no-op with nothing pending.
func (s *Management) flushApp() {
	if len(s.appPending) == 0 {
		return
	}
	ups := s.appPending
	s.appPending = nil
	if s.el == nil || s.el.Role() != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		return // mastership lost: the Runtime failed their commits
	}
	v, err := s.el.SyncApp(ups)
	if err != nil {
		s.haLog.Warn("ha_sync_app", "application state not synced to the backups", "component", "mgmt", "error", err)
		return
	}
	if v != s.appPendingVersion {
		// Cannot happen: a path took a version without flushing first.
		s.log.Error("application updates carried by an unexpected version", "component", "mgmt",
			"version", v, "expected", s.appPendingVersion, "epoch", s.el.Epoch())
	}
	s.drainElection()
}

// reportCommits tells the Runtime what every live backup holds. Master
// with peers only; loop only.
func (s *Management) reportCommits() {
	if _, ok := s.rt.PendingCommit(); !ok || s.el == nil || s.el.Role() != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		return
	}
	v, n := s.el.Committed()
	s.rt.Committed(v, n)
}

// appSnapshot is the application's state for a full SyncUpdate (nil
// without an App.State).
func (s *Management) appSnapshot() ([]byte, error) {
	if !s.rt.HasState() {
		return nil, nil
	}
	b, err := s.rt.SnapshotState()
	if err != nil {
		return nil, fmt.Errorf("application state snapshot: %w", err)
	}
	return b, nil
}

// applyApp applies the application part of a SyncUpdate on a backup.
func (s *Management) applyApp(u *hellopicsv1.SyncUpdate) error {
	if !s.rt.HasState() {
		return nil
	}
	if u.GetFull() {
		if err := s.rt.RestoreState(u.GetAppSnapshot()); err != nil {
			return fmt.Errorf("restore the application state: %w", err)
		}
		return nil
	}
	for i, b := range u.GetApp() {
		if err := s.rt.ApplyState(b); err != nil {
			return fmt.Errorf("application update %d of %d: %w", i+1, len(u.GetApp()), err)
		}
	}
	return nil
}

// appFrom names the sender of an application message: the identified
// component whose current session ps is. Loop only.
func (s *Management) appFrom(ps *pconn.Session) (Peer, bool) {
	id := handshake.SessionID(ps.ID())
	if s.reg.Get(id) != ps {
		return Peer{}, false
	}
	pair, role, ok := s.machine.Component(id)
	if !ok {
		return Peer{}, false
	}
	return Peer{Role: RoleOf(role), PairID: pair}, true
}

// OperatorCall runs the application's HandleOperator handler of typ
// for an operator (any goroutine) and waits for its reply or ctx; admin
// says whether the operator may call Admin handlers (Runtime.OperatorCall).
func (s *Management) OperatorCall(ctx context.Context, who Peer, admin bool, typ string, body []byte) (string, []byte, error) {
	return s.rt.OperatorCall(ctx, who, admin, typ, body)
}

// Node is the application's handle on this instance (Config.App): the
// same Node its OnStart was given.
func (s *Management) Node() *Node { return s.rt.Node() }

// maxHeldApp bounds the application messages kept behind one held
// Identify; beyond it they are dropped (and counted) as unidentified.
const maxHeldApp = 64

// heldApp are the application messages of a session whose Identify the
// machine holds for want of a master.
type heldApp struct {
	ps  *pconn.Session
	ins []Inbound
}

// holdApp keeps the application messages of a session whose Identify
// the machine holds (a backup that knows no live master yet): a
// component sends them as soon as its Identify is queued, and they are
// delivered once the Identify is accepted (releaseHeldApp), in order,
// after the handshake's own held messages. Loop only.
func (s *Management) holdApp(ps *pconn.Session, ins []Inbound) bool {
	id := handshake.SessionID(ps.ID())
	if s.reg.Get(id) == ps && !s.machine.Known(id) {
		// A session this instance closed (a backup redirected its
		// component): what was in flight on it is expected to be lost.
		s.rt.DropClosed(ps.RemoteAddr().String(), len(ins))
		return true
	}
	if s.reg.Get(id) != ps || !s.machine.Holding(id) {
		return false
	}
	h := s.heldApp[id]
	if h == nil {
		h = &heldApp{ps: ps}
		if s.heldApp == nil {
			s.heldApp = make(map[handshake.SessionID]*heldApp)
		}
		s.heldApp[id] = h
	}
	if len(h.ins)+len(ins) > maxHeldApp {
		return false
	}
	h.ins = append(h.ins, ins...)
	return true
}

// releaseHeldApp delivers the held application messages of sessions
// now identified, and drops those of sessions the machine no longer
// holds (redirected, refused or gone). Loop only.
func (s *Management) releaseHeldApp() {
	for id, h := range s.heldApp {
		if s.machine.Holding(id) {
			continue
		}
		delete(s.heldApp, id)
		p, ok := s.appFrom(h.ps)
		if !ok {
			s.rt.DropUnidentified(h.ps.RemoteAddr().String(), len(h.ins))
			continue
		}
		for _, in := range h.ins {
			s.rt.Deliver(p, in)
		}
	}
}
