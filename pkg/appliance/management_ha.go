package appliance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hellopics/hellopics/pkg/election"
	"github.com/hellopics/hellopics/pkg/handshake"
	"github.com/hellopics/hellopics/pkg/identity"
	"github.com/hellopics/hellopics/pkg/pconn"
	"github.com/hellopics/hellopics/pkg/tlsconf"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// seqReserve is how far ahead of the hello numbers in use the master
// announces its next number to the backups: a backup that takes over
// starts there, so it never reuses a number the old master sent after
// its last sync reached the backup. The master syncs at once when the
// numbers in use come within half of it (election.SyncPacer), however
// many pairs and whatever the SyncInterval; a failover skips at most
// this many numbers.
const seqReserve = 4096

// epochFile is the name of the epoch file in Config.StateDir.
const epochFile = "epoch"

// startHA sets up mastership: a single instance makes itself master at a
// fresh epoch; with peers, the election machine and its transport start.
// Called from New before the component listener accepts.
func (s *Management) startHA(base pconn.Config) error {
	s.pacer = election.SyncPacer{Interval: s.cfg.syncInterval(), Reserve: seqReserve}
	if s.cfg.StateDir != "" {
		if err := os.MkdirAll(s.cfg.StateDir, 0o750); err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
		name := epochFile
		if s.cfg.Election == ElectionEtcd {
			name = etcdEpochFile
		}
		s.epochPath = filepath.Join(s.cfg.StateDir, name)
	} else {
		s.log.Warn("no state directory: the epoch is not persisted; a restart may reuse one", "component", "mgmt")
	}
	persisted, err := s.loadEpoch()
	if err != nil {
		return err
	}
	if len(s.cfg.Peers) == 0 {
		epoch := persisted + 1
		if err := s.saveEpoch(epoch); err != nil {
			return err
		}
		s.loop.Do(func() {
			s.log.Info("single management instance: master", "component", "mgmt", "epoch", epoch, "step", "mastership")
			s.rt.SetMastership(true, epoch)
			s.apply(s.machine.SetMastership(true, epoch, s.advertised, time.Now()))
			s.aligned = mastership{master: true, epoch: epoch, addr: s.advertised}
			s.checkNotify("single instance")
		})
		s.setServing(true)
		return nil
	}

	ec := s.cfg.Config
	ec.ID = s.cfg.ID
	ec.ComponentAddr = s.advertised
	ec.External = s.cfg.Election == ElectionEtcd
	el, err := election.New(ec, persisted)
	if err != nil {
		return err
	}
	if ec.External {
		if err := s.newEtcd(); err != nil {
			return err
		}
	}

	hc := base
	hc.DeadTimeout = max(pconn.MinDeadTimeout, time.Duration(s.cfg.DeadMisses+1)*s.cfg.HeartbeatInterval)
	hc.RetryInterval = s.cfg.HeartbeatInterval
	hc.RetryJitter = 0.2
	hc.EventHandler = nil
	hc.Logger = s.log.Named("ha")

	s.haInbound = make(map[string]*pconn.Session)
	s.haGreeted = make(map[string]*pconn.Session)
	s.syncErr = make(map[string]string)
	if s.haSources, err = newPeerAddrs(s.cfg.Peers); err != nil {
		return err
	}
	if err := s.haSources.refresh(); err != nil && !s.cfg.HAAnySource {
		// Not fatal: a name may resolve later (DNS at boot, a container
		// not up yet); it is looked up again when a connection comes.
		s.log.Warn("cannot resolve a mgmt peer's address yet; its connections are refused until it resolves",
			"component", "mgmt", "error", err)
	}
	in := hc
	in.Handler = pconn.HandlerFunc(s.onHAFrame)
	// An inbound session is identified by its first heartbeat naming a
	// configured peer (onHAFrame); one that does not within the identify
	// timeout is closed. The frame limit stays MaxFrameSize before that:
	// a master may send a large SyncUpdate ahead of its first heartbeat,
	// which must not cost the session (see onHAFrame).
	if s.cfg.TLS != nil {
		in.TLS = s.cfg.TLS.ServerConfig(tlsconf.Roles(identity.RoleMgmt))
	}
	in.IdentifyTimeout = s.cfg.IdentifyTimeout
	in.MaxFrameSizeUnidentified = 0
	if !s.cfg.HAAnySource {
		// Only the peers' addresses may connect at all: whatever a
		// stranger would send is never read, and the frame limit above
		// costs memory only on the peers' hosts.
		in.AcceptFilter = s.haAcceptFilter
	}
	in.EventHandler = pconn.EventHandlerFunc(func(ev pconn.Event) {
		if ev.Type == pconn.EventEstablished || ev.Session == nil {
			return
		}
		s.loop.PostUrgent(func() {
			if id, _ := ev.Session.Cookie().(string); id != "" && s.haInbound[id] == ev.Session {
				delete(s.haInbound, id)
				s.haLinkLost(id)
			}
		})
	})
	srv, err := pconn.Listen(s.cfg.HAListenAddr, in)
	if err != nil {
		return fmt.Errorf("listen for mgmt peers: %w", err)
	}
	s.haSrv = srv
	s.haScrape.Store(srv)
	s.haClients = make(map[string]*pconn.Client, len(s.cfg.Peers))
	var pending sync.WaitGroup // first attempt to each peer: connected or failed
	for _, p := range s.cfg.Peers {
		var once sync.Once
		pending.Add(1)
		// Frames may come back on our own connection too: a peer whose
		// connection to us is not up (yet) answers on ours.
		out := hc
		if s.cfg.TLS != nil {
			out.TLS = s.cfg.TLS.ClientConfig(tlsconf.Exactly(identity.RoleMgmt, p.ID))
		}
		out.Handler = pconn.HandlerFunc(func(_ *pconn.Session, m pconn.Message) error {
			t, msg, err := decodeHA(m)
			if err != nil {
				return err
			}
			s.loop.PostUrgent(func() { s.stepHA(p.ID, t, msg, nil) })
			return nil
		})
		out.EventHandler = pconn.EventHandlerFunc(func(ev pconn.Event) {
			if ev.Type == pconn.EventEstablished || ev.Session == nil {
				once.Do(pending.Done)
			}
			if ev.Type != pconn.EventEstablished && ev.Session != nil {
				s.loop.PostUrgent(func() { s.haLinkLost(p.ID) })
			}
		})
		c, err := pconn.Dial(out, p.Addr)
		if err != nil {
			s.stopHA()
			return fmt.Errorf("mgmt peer %s: %w", p.ID, err)
		}
		s.haClients[p.ID] = c
	}
	// Elect only once every peer has been reached or has refused (or the
	// dial timeout has passed): an instance whose connections are still
	// pending (its network just came back, say) cannot know whether a
	// master exists, and must not claim mastership against one.
	reached := make(chan struct{})
	go func() { pending.Wait(); close(reached) }()
	select {
	case <-reached:
	case <-time.After(hc.DialTimeout):
		s.log.Warn("some mgmt peers neither answer nor refuse; electing anyway", "component", "mgmt", "waited", hc.DialTimeout)
	}
	s.log.Info("electing a master", "component", "mgmt", "id", s.cfg.ID, "priority", s.cfg.Priority,
		"ha_listen", srv.Addr().String(), "peers", len(s.cfg.Peers), "epoch", persisted)
	s.loop.Do(func() {
		s.el = el
		s.startTrackedElection()
		s.el.Tick(time.Now())
		s.drainElection()
	})
	if ec.External {
		s.startEtcd()
	}
	return nil
}

// componentEpoch hands the election the epoch of a component this
// instance refused for having seen a higher one: a master nobody here
// hears gave it, and without this the component would be refused for
// good (found by the protocol simulator, docs/simulator.md). Loop only.
func (s *Management) componentEpoch(epoch uint64) {
	if s.el == nil {
		return
	}
	adopted, err := s.el.ObserveComponentEpoch(time.Now(), epoch)
	switch {
	case err != nil:
		s.metrics.haRefused.WithLabelValues("component_epoch").Inc()
		s.haLog.Warn("ha_component_epoch", "a component's epoch not adopted", "component", "mgmt", "epoch", s.el.Epoch(),
			"component_epoch", epoch, "error", err)
	case adopted:
		s.log.Info("a component has seen a higher epoch than any instance here; claiming above it", "component", "mgmt",
			"epoch", s.el.Epoch(), "step", "component_epoch")
	}
	s.drainElection()
}

// haLinkLost tells the election that a connection to or from peer id
// broke: if it is the master, components are no longer redirected to
// it (they are held) until its next heartbeat. Loop only.
func (s *Management) haLinkLost(id string) {
	if s.el == nil {
		return
	}
	s.el.LinkLost(id)
	s.drainElection()
}

func (s *Management) loadEpoch() (uint64, error) {
	if s.epochPath == "" {
		return 0, nil
	}
	n, err := election.LoadEpoch(s.epochPath)
	if err != nil {
		return 0, fmt.Errorf("epoch file: %w", err)
	}
	return n, nil
}

func (s *Management) saveEpoch(n uint64) error {
	if s.epochPath == "" {
		return nil
	}
	if err := election.SaveEpoch(s.epochPath, n); err != nil {
		return fmt.Errorf("persist epoch %d: %w", n, err)
	}
	return nil
}

// haMessage returns an empty message for an HA frame type.
func haMessage(t hellopicsv1.HAMsgType) (proto.Message, bool) {
	switch t {
	case hellopicsv1.HAMsgType_HA_MSG_TYPE_HEARTBEAT:
		return new(hellopicsv1.Heartbeat), true
	case hellopicsv1.HAMsgType_HA_MSG_TYPE_SYNC:
		return new(hellopicsv1.SyncUpdate), true
	case hellopicsv1.HAMsgType_HA_MSG_TYPE_SYNC_ACK:
		return new(hellopicsv1.SyncAck), true
	case hellopicsv1.HAMsgType_HA_MSG_TYPE_HANDOVER:
		return new(hellopicsv1.Handover), true
	}
	return nil, false
}

// onHAFrame decodes a peer's frame on its session goroutine and hands it
// to the election on the loop. The first frame of a session must be a
// heartbeat: it names the peer.
func (s *Management) onHAFrame(ps *pconn.Session, m pconn.Message) error {
	t, msg, err := decodeHA(m)
	if err != nil {
		s.metrics.haRefused.WithLabelValues("malformed").Inc()
		return err // pconn closes the session and logs why, rate-limited
	}
	from, _ := ps.Cookie().(string)
	if hb, ok := msg.(*hellopicsv1.Heartbeat); ok && from == "" {
		if reason, err := s.checkHASource(hb.GetId(), ps.RemoteAddr()); err != nil {
			s.refuseHA(reason, "mgmt peer connection refused", ps, err)
			return err
		}
		if cert := ps.PeerCertificate(); cert != nil {
			// With mutual TLS, a peer speaks only in its certificate's name.
			if id, err := identity.FromCert(cert); err != nil || id.Name != hb.GetId() {
				err := fmt.Errorf("a heartbeat in %.64q's name on a connection whose certificate names %s", hb.GetId(), id)
				s.refuseHA("certificate", "mgmt peer connection refused", ps, err)
				return err
			}
		}
		from = hb.GetId()
		ps.SetCookie(from)
		ps.SetIdentified() // a configured peer at its address; else pconn's IdentifyTimeout closes it
	}
	if from == "" {
		// A master's client may well send a SyncUpdate before its first
		// heartbeat on a new session (the snapshot for a peer that just
		// came back is queued at once). Drop the frame, which cannot be
		// attributed, but keep the session: closing it would also lose
		// the heartbeats that follow, and a restarting instance that
		// hears none within its startup hold claims mastership against a
		// working master. A lost snapshot is resent: the next delta finds
		// no baseline and is acknowledged with version 0.
		s.log.Debug("mgmt peer message before its first heartbeat dropped", "component", "mgmt", "type", t.String())
		return nil
	}
	s.loop.PostUrgent(func() { s.stepHA(from, t, msg, ps) })
	return nil
}

// decodeHA decodes an HA frame.
func decodeHA(m pconn.Message) (hellopicsv1.HAMsgType, proto.Message, error) {
	t := hellopicsv1.HAMsgType(m.Type)
	msg, ok := haMessage(t)
	if !ok {
		return t, nil, fmt.Errorf("unknown mgmt peer message type %d", m.Type)
	}
	if err := proto.Unmarshal(m.Payload, msg); err != nil {
		return t, nil, fmt.Errorf("malformed %s: %w", t, err)
	}
	return t, msg, nil
}

// stepHA hands a peer's message to the election; in is the inbound
// session it came on (nil when it came back on our own connection), kept
// as the way back to that peer while our connection to it is down.
func (s *Management) stepHA(from string, t hellopicsv1.HAMsgType, msg proto.Message, in *pconn.Session) {
	if s.el == nil {
		return // still reaching the peers; their next heartbeat will do
	}
	s.flushApp() // before a step can take a version or hand over
	if err := s.el.Step(time.Now(), from, msg); err != nil {
		reason := "invalid"
		var r *election.Refusal
		switch {
		case errors.As(err, &r):
			reason = r.Reason
		case errors.Is(err, election.ErrUnknownPeer):
			reason = "unknown_peer"
		}
		// A refused message changed nothing; on a peer's connection to
		// us it costs that connection (the peer reconnects); on ours it
		// is only dropped, since we chose whom to dial.
		var sess *pconn.Session
		if in != nil {
			sess = in
		}
		s.refuseHA(reason, "mgmt peer message refused", sess, err, "peer", from, "type", t.String())
		s.drainElection()
		return
	}
	if in != nil {
		s.haInbound[from] = in
	}
	s.drainElection()
	if hb, ok := msg.(*hellopicsv1.Heartbeat); ok && hb.GetMasterId() == from && from != s.cfg.ID {
		s.seenMaster(from, hb.GetEpoch())
	}
}

// sendHA sends to a peer on our connection to it or, while that is not
// up (a SYN stuck in retransmission after a partition, say), on the
// peer's connection to us.
func (s *Management) sendHA(m election.Message) {
	c := s.haClients[m.To]
	if c == nil {
		return
	}
	if sess := c.Session(); sess != nil && s.haGreeted[m.To] != sess {
		// A new connection: the peer attributes its frames from its
		// first heartbeat on and drops what comes before (onHAFrame).
		// Lead with one, so that a SyncAck (which nothing resends)
		// or a snapshot is not lost.
		s.haGreeted[m.To] = sess
		if m.Type != hellopicsv1.HAMsgType_HA_MSG_TYPE_HEARTBEAT {
			_ = sess.SendProto(pconn.MsgType(hellopicsv1.HAMsgType_HA_MSG_TYPE_HEARTBEAT), s.el.Heartbeat())
		}
	}
	err := c.SendProto(pconn.MsgType(m.Type), m.Body)
	if errors.Is(err, pconn.ErrNotConnected) {
		if in := s.haInbound[m.To]; in != nil {
			err = in.SendProto(pconn.MsgType(m.Type), m.Body)
		}
	}
	isSync := m.Type == hellopicsv1.HAMsgType_HA_MSG_TYPE_SYNC
	switch {
	case err == nil:
		if isSync {
			delete(s.syncErr, m.To)
		}
	case errors.Is(err, pconn.ErrNotConnected):
		// The peer is away: its liveness says so, and it gets a snapshot
		// when it is back.
		s.log.Trace("mgmt peer message not sent", "peer", m.To, "type", m.Type.String(), "error", err)
	default:
		// Anything else (a frame over the size limit, a full queue)
		// means the peer silently falls behind: say so.
		s.metrics.haSendErrors.WithLabelValues(m.Type.String()).Inc()
		if isSync {
			s.syncErr[m.To] = err.Error()
		}
		s.haLog.Warn("ha_send_"+m.Type.String(), "mgmt peer message not sent; the peer falls behind", "component", "mgmt",
			"peer", m.To, "type", m.Type.String(), "error", err)
	}
}

// checkHASource refuses a connection whose first heartbeat names id
// unless id is a configured peer and the connection comes from that
// peer's configured address (Config.HAAnySource lifts the address
// check, for peers behind NAT or multi-homed hosts).
func (s *Management) checkHASource(id string, remote net.Addr) (reason string, err error) {
	if !s.haSources.known(id) {
		return "unknown_peer", fmt.Errorf("%w: %.64q", election.ErrUnknownPeer, id)
	}
	if s.cfg.HAAnySource {
		return "", nil
	}
	ip, err := remoteIP(remote)
	if err != nil || !s.haSources.from(id, ip) {
		return "source", fmt.Errorf("a connection from %s claims to be mgmt peer %s, which is configured at another address (-ha-any-source lifts this check)", remote, id)
	}
	return "", nil
}

// haAcceptFilter refuses an HA connection from an address that is none
// of the peers'.
func (s *Management) haAcceptFilter(remote net.Addr) error {
	ip, err := remoteIP(remote)
	if err != nil {
		return err
	}
	if !s.haSources.from("", ip) {
		return fmt.Errorf("%s is not the address of a mgmt peer (-peers; -ha-any-source lifts this check)", ip)
	}
	return nil
}

// refuseHA counts a refused HA connection or message, logs it
// (rate-limited per reason) and closes sess if not nil.
func (s *Management) refuseHA(reason, msg string, sess *pconn.Session, err error, kv ...any) {
	s.metrics.haRefused.WithLabelValues(reason).Inc()
	args := append([]any{"component", "mgmt", "reason", reason, "error", err}, kv...)
	if sess != nil {
		args = append(args, "remote", sess.RemoteAddr().String())
	}
	s.haLog.Warn("ha_refused_"+reason, msg, args...)
	if sess != nil {
		sess.Close()
	}
}

// electionTick runs the election's tick that was due at due. A tick that
// comes much later than due means this process did not run for a while
// (a loaded machine, a long fsync): the heartbeats that arrived meanwhile
// are still on their way to the loop, and ticking first would declare
// live peers dead. Such a tick is put off once, briefly, for them.
func (s *Management) electionTick(due time.Time) {
	if time.Since(due) > s.cfg.HeartbeatInterval && !s.tickDeferred {
		s.tickDeferred = true
		s.log.Debug("election tick late; letting pending heartbeats in first", "component", "mgmt", "late", time.Since(due))
		s.loop.AtUrgent("election", time.Now().Add(5*time.Millisecond), func() { s.electionTick(time.Now()) })
		return
	}
	s.tickDeferred = false
	s.flushApp() // before a tick can take a version or hand over
	s.el.Tick(time.Now())
	s.drainElection()
}

// drainElection carries out what the election asks, in the order its
// Ready documents, then aligns the handshake machine's mastership with
// the election's. Loop goroutine only; re-entrant calls are folded into
// the running one.
func (s *Management) drainElection() {
	if s.el == nil {
		return
	}
	if s.draining {
		s.redrain = true
		return
	}
	s.draining = true
	defer s.reportCommits() // after draining is over: the callbacks may replicate
	defer func() { s.draining = false }()
	for round := 0; ; round++ {
		if round == maxDrainRounds {
			// Every round hands the election what the last one produced;
			// it settles in two or three. Never spin: leave the rest to
			// a later turn of the loop, where a Stop can get in between.
			s.haLog.Error("ha_drain", "election does not settle; carrying on later", "component", "mgmt", "rounds", round, "epoch", s.el.Epoch())
			s.loop.PostUrgent(s.drainElection)
			return
		}
		s.redrain = false
		for first := true; first || s.el.HasReady(); first = false {
			rd := s.el.Ready() // at least once: NextTick must always be re-armed
			if rd.PersistEpoch != 0 {
				if err := s.saveEpoch(rd.PersistEpoch); err != nil {
					s.log.Error("cannot persist the epoch; stopping so that no epoch is reused", "component", "mgmt", "error", err)
					s.failed(err)
					return
				}
			}
			unsynced := false // an application update failed: wait for a snapshot
			for _, u := range rd.Apply {
				if unsynced && !u.GetFull() {
					continue
				}
				if !u.GetAppOnly() {
					// A snapshot or a delta (the pairs changed and removed
					// since the last version). An update that is neither
					// (a master before deltas) carries the whole registry:
					// pairs it lacks were expired.
					full := u.GetFull() || !u.GetDelta()
					if err := s.machine.Restore(handshake.Snapshot{NextSeq: u.GetNextSeq(), Pairs: u.GetPairs(), Full: full, Removed: u.GetRemovedPairs()}); err != nil {
						s.metrics.haRefused.WithLabelValues("bad_state").Inc()
						s.haLog.Warn("ha_restore", "state update from the master not applied; this backup is not in sync", "component", "mgmt",
							"version", u.GetVersion(), "error", err)
						continue
					}
					if err := s.rt.RestoreSequences(u.GetSequences()); err != nil {
						s.metrics.haRefused.WithLabelValues("bad_state").Inc()
						s.haLog.Warn("ha_restore_sequences", "sequence marks from the master not applied", "component", "mgmt",
							"version", u.GetVersion(), "error", err)
					}
				}
				if err := s.applyApp(u); err != nil {
					s.appSyncErrors.Inc()
					s.haLog.Warn("ha_apply_app", "application state from the master not applied; asking for a snapshot", "component", "mgmt",
						"version", u.GetVersion(), "epoch", u.GetEpoch(), "error", err)
					s.el.Reject(&rd, u)
					unsynced = true
					continue
				}
				s.syncVersion = u.GetVersion()
			}
			for _, m := range rd.Messages {
				s.sendHA(m)
			}
			if len(rd.Snapshots) > 0 || rd.Flush {
				// The application updates applied so far must go out
				// first: a snapshot holds them, and a switchover's
				// target must have them before the barrier.
				s.flushApp()
			}
			if len(rd.Snapshots) > 0 {
				app, err := s.appSnapshot()
				if err != nil {
					s.haLog.Error("ha_snapshot_app", "snapshot not sent: the application cannot snapshot its state", "component", "mgmt", "error", err)
				}
				for _, id := range rd.Snapshots {
					if err != nil {
						break
					}
					body := &hellopicsv1.SyncUpdate{Pairs: s.machine.Pairs(), NextSeq: s.pacer.Sent(time.Now(), s.machine.NextSeq()), AppSnapshot: app,
						Sequences: s.rt.SequenceMarks()}
					if err := s.el.SnapshotWith(id, body); err != nil {
						s.log.Debug("snapshot not sent", "peer", id, "error", err)
					}
				}
			}
			if rd.Flush {
				// The switchover's barrier: what changed since the last
				// sync, at once.
				if err := s.sendChanges(); err != nil {
					s.log.Debug("flush not sent", "error", err)
				}
			}
			for _, ev := range rd.Events {
				msg, args := electionLine(ev)
				s.log.Info(msg, args...)
				s.publishHA(ev)
				switch ev.Kind {
				case election.EventBecameMaster, election.EventSteppedDown, election.EventMasterChanged, election.EventHandoverSent:
					s.lastHAWhy = ev.Kind.String()
					if ev.Reason != "" {
						s.lastHAWhy += ": " + ev.Reason
					}
				}
			}
			if !rd.NextTick.IsZero() {
				due := rd.NextTick
				s.loop.AtUrgent("election", due, func() { s.electionTick(due) })
			}
		}
		s.alignMastership()
		if !s.redrain && !s.el.HasReady() {
			return
		}
	}
}

// maxDrainRounds bounds the rounds of one drainElection.
const maxDrainRounds = 16

// mastership is what alignMastership last told the handshake machine.
type mastership struct {
	master bool
	epoch  uint64
	addr   string
}

// alignMastership tells the handshake machine when this instance became
// master or backup, or learned where the master is. It compares with
// what it told the machine last, not with what the machine reports, so
// a value the machine would not take cannot make it repeat for ever.
func (s *Management) alignMastership() {
	now := mastership{master: s.el.Role() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER, epoch: s.el.Epoch(),
		addr: s.el.LiveMasterComponentAddr()}
	defer s.checkNotify("")
	s.etcdAligned(now.master, now.epoch)
	if now == s.aligned {
		return
	}
	was := s.aligned
	s.aligned = now
	if now.addr != was.addr && now.master == was.master {
		s.log.Debug("master's component address", "component", "mgmt", "master_addr", now.addr, "epoch", now.epoch,
			"step", "master_addr")
	}
	if now.master != was.master || now.epoch != was.epoch {
		// A new mastership (or none): the backups get snapshots first,
		// and the numbers they were told start again from those.
		s.pacer.Reset()
	}
	changed := now.master != was.master || now.epoch != was.epoch
	if changed && now.master {
		// The application is master before the pairs become ready
		// again (the held identifies the machine answers now): its
		// OnMastership runs before their OnPairReady.
		s.rt.handedOver = !was.master && s.el.HandedOver()
		s.rt.SetMastership(now.master, now.epoch)
	}
	s.apply(s.machine.SetMastership(now.master, now.epoch, now.addr, time.Now()))
	if now.master && !was.master && s.el.HandedOver() {
		s.machine.PlannedTakeover()
	}
	if changed && !now.master {
		// A master that steps down: the pairs are lost first.
		s.rt.handedOver = false
		s.rt.SetMastership(now.master, now.epoch)
	}
	if changed {
		s.setServing(now.master)
	}
	s.releaseHeldApp()
}

// syncState sends the registry's changes to the backups after a change
// of the machine, paced (SyncInterval, election.SyncPacer): at once
// after a quiet spell or when the hello numbers' reserve runs low, else
// at the end of the interval, with what changed meanwhile. Master with
// peers only; loop goroutine.
func (s *Management) syncState() {
	if s.el == nil {
		s.machine.DiscardChanges() // nobody to tell
		return
	}
	if s.el.Role() != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		return
	}
	now, at := s.pacer.Plan(time.Now(), s.machine.HasChanges(), s.machine.NextSeq())
	if !now && s.rt.SequencesLow() {
		now = true // an application sequence's reserve runs low
	}
	if !now {
		if !at.IsZero() {
			s.loop.At("sync", at, s.syncState)
		}
		return
	}
	if err := s.sendChanges(); err != nil {
		s.haLog.Warn("ha_sync", "state not synced to the backups", "component", "mgmt", "error", err)
	}
	s.drainElection()
}

// sendChanges hands the election one delta of the registry (the pairs
// changed and removed since the last, and the next hello number with
// the reserve), after the application's pending updates (their version
// comes first). Loop goroutine, master.
func (s *Management) sendChanges() error {
	s.flushApp()
	d := s.machine.TakeChanges()
	s.loop.At("sync", time.Time{}, nil)
	_, err := s.el.SyncWith(&hellopicsv1.SyncUpdate{Pairs: d.Pairs, RemovedPairs: d.Removed, Delta: true,
		NextSeq: s.pacer.Sent(time.Now(), d.NextSeq), Sequences: s.rt.SequenceMarks()})
	return err
}

// Switchover hands mastership to target (or the best backup when "") and
// waits until it is done or ctx ends.
func (s *Management) Switchover(ctx context.Context, target string) (*hellopicsv1.SwitchoverResponse, error) {
	if len(s.cfg.Peers) == 0 {
		return nil, fmt.Errorf("%w: a single management instance has no backup", ErrNotMaster)
	}
	if s.etcd != nil {
		return s.switchoverEtcd(ctx, target)
	}
	var chosen string
	var err error
	if !s.loop.Do(func() {
		if s.el == nil {
			err = fmt.Errorf("%w: still reaching the other instances", ErrUnavailable)
			return
		}
		if s.el.Role() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
			// The application replicates what it keeps back first:
			// the handover waits for the target to hold it.
			s.rt.Switchover(target)
			s.flushApp()
		}
		chosen, err = s.el.Switchover(time.Now(), target)
		s.drainElection()
	}) {
		return nil, fmt.Errorf("mgmt: %w", ErrStopped)
	}
	if err != nil {
		if errors.Is(err, election.ErrNotMaster) {
			return nil, fmt.Errorf("%w: %v", ErrNotMaster, err)
		}
		return nil, err
	}
	s.log.Info("switchover requested", "component", "mgmt", "target", chosen, "step", "switchover")
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		var master string
		var epoch uint64
		s.loop.Do(func() { master, epoch = s.el.Master(), s.el.Epoch() })
		if master == chosen {
			return &hellopicsv1.SwitchoverResponse{NewMasterId: chosen, Epoch: epoch}, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("switchover to %s not confirmed: %w", chosen, ctx.Err())
		case <-tick.C:
		}
	}
}

func (s *Management) stopHA() {
	s.stopEtcd() // first: a leader revokes its lease while its peers still hear it
	for _, c := range s.haClients {
		c.Close()
	}
	if s.haSrv != nil {
		s.haSrv.Close()
	}
}

// setServing reports mastership to ManagementConfig.OnServing.
func (s *Management) setServing(master bool) {
	if s.cfg.OnServing != nil {
		s.cfg.OnServing(master)
	}
}

// electionLine is the log line of an election event: what happened in
// words, the values in the keys component, step, epoch, master, peer and
// reason (the last three only when set).
func electionLine(ev election.Event) (string, []any) {
	var msg string
	switch ev.Kind {
	case election.EventBecameMaster:
		msg = "became master"
	case election.EventSteppedDown:
		msg = "stepped down"
	case election.EventMasterChanged:
		msg = "following a new master"
		if ev.Master == "" {
			msg = "no live master"
		}
	case election.EventPeerUp:
		msg = "mgmt peer up"
	case election.EventPeerDown:
		msg = "mgmt peer down"
	case election.EventSwitchoverStarted:
		msg = "switchover started"
	case election.EventHandoverSent:
		msg = "mastership handed over"
	case election.EventSwitchoverAborted:
		msg = "switchover aborted"
	default:
		msg = strings.ReplaceAll(ev.Kind.String(), "_", " ")
	}
	args := []any{"component", "mgmt", "step", ev.Kind.String(), "epoch", ev.Epoch}
	if ev.Master != "" {
		args = append(args, "master", ev.Master)
	}
	if ev.Peer != "" {
		args = append(args, "peer", ev.Peer)
	}
	if ev.Reason != "" {
		args = append(args, "reason", ev.Reason)
	}
	return msg, args
}
