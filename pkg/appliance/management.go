package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hellopics/hellopics/internal/ratelog"
	"github.com/hellopics/hellopics/pkg/election"
	"github.com/hellopics/hellopics/pkg/handshake"
	"github.com/hellopics/hellopics/pkg/identity"
	"github.com/hellopics/hellopics/pkg/notify"
	"github.com/hellopics/hellopics/pkg/pconn"
	"github.com/hellopics/hellopics/pkg/tier"
	"github.com/hellopics/hellopics/pkg/tlsconf"
	"github.com/hellopics/hellopics/pkg/track"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// sessionsPerPair and sessionMargin size mgmt's session limit (pconn
// MaxSessions) from ManagementConfig.MaxPairs when no Transport is
// given.
const (
	sessionsPerPair = 4
	sessionMargin   = 64
)

// Management is a running management instance: the shell that joins
// the component sessions to the handshake machine (registry, Hello
// cycle, redirects), the HA links to the election machine (mastership,
// state sync, fencing) and both to the application's Runtime, all on
// one loop goroutine. The mgmt daemon is built on it, as ctrl and data
// are built on Component.
type Management struct {
	cfg     ManagementConfig
	log     hclog.Logger
	events  *tier.EventLog // machine events; refusals rate-limited
	started time.Time

	loop    *tier.Loop
	machine *handshake.Mgmt // loop goroutine only
	reg     *tier.Registry  // loop goroutine only
	// heldApp are application messages behind held Identifies
	// (holdApp). Loop only.
	heldApp map[handshake.SessionID]*heldApp
	srv     *pconn.Server

	// Mastership (management_ha.go); loop goroutine only unless noted.
	el           *election.Election // nil for a single instance
	haSrv        *pconn.Server
	haScrape     atomic.Pointer[pconn.Server] // haSrv for metrics scrapes, which start before it is set
	haClients    map[string]*pconn.Client     // set before the loop uses it
	haInbound    map[string]*pconn.Session    // peers' connections to us, by id
	haGreeted    map[string]*pconn.Session    // our connection to each peer that carried a heartbeat
	epochPath    string
	draining     bool
	tickDeferred bool
	redrain      bool
	aligned      mastership         // what alignMastership last applied
	pacer        election.SyncPacer // when the registry's changes go to the backups
	haSources    *peerAddrs         // where each peer's connections may come from
	syncErr      map[string]string  // peer id -> why its last sync was not sent
	haLog        *ratelog.Logger
	syncVersion  uint64
	advertised   string

	// The election on etcd (management_etcd.go): nil with the built-in
	// one. The lead fields are the loop's: the term this instance leads
	// in, at which epoch (0: none).
	etcd          *etcdRunner
	etcdLeadEpoch uint64
	etcdLeadTerm  uint64

	// Notify scripts (management_notify.go); loop goroutine only.
	notifier     *notify.Runner // nil when no script is configured
	lastNotified notified
	lastHAWhy    string          // the last mastership event, for the scripts' reason
	rivals       map[string]bool // "peer@epoch" of masters seen while master
	fault        bool            // a tracked check of weight 0 fails

	// Tracked health (management_track.go); loop goroutine only.
	tracker   *track.Tracker // nil without checks
	trackPrio uint32         // the priority the checks leave (cfg.Priority without checks)

	metrics *mgmtMetrics

	// The application (management_app.go); loop goroutine only unless noted.
	rt                *Runtime // any goroutine (its own rules)
	appPending        [][]byte // updates not yet sent to the backups
	appPendingVersion uint64   // the version that will carry them
	appVersion        uint64   // a single instance's update count
	appCommitPosted   bool
	appSyncErrors     prometheus.Counter

	failOnce sync.Once
	fail     chan error // receives the error that stops the instance

	// helloBase is each running cycle's start of the current summary
	// period (management_summary.go). On the loop.
	helloBase map[string]helloBaseline

	mu        sync.Mutex
	listeners []func(*hellopicsv1.WatchEventsResponse)
}

// StartManagement starts a management instance: it listens for
// components at once, reaches its peers, elects, and runs until Close.
// cfg is checked with Problems first.
func StartManagement(cfg ManagementConfig) (*Management, error) {
	if err := errors.Join(cfg.Problems()...); err != nil {
		return nil, fmt.Errorf("mgmt: invalid config: %w", err)
	}
	root := cfg.Logger
	if root == nil {
		root = hclog.NewNullLogger()
	}
	expiry := cfg.PairExpiry
	if expiry == 0 {
		expiry = -1 // ManagementConfig: 0 keeps pairs forever; the machine: negative
	}
	m, err := handshake.NewMgmt(handshake.MgmtConfig{
		HelloInterval:   cfg.HelloInterval,
		NoCycle:         cfg.AppCycle,
		IdentifyTimeout: cfg.IdentifyTimeout,
		MaxPairs:        cfg.MaxPairs,
		PairExpiry:      expiry,
		// Pairs started together (a chassis powering up, a failover)
		// do not send in lock-step for ever.
		SpreadHellos: true,
		Backup:       true, // until the election (or a single instance) decides
		// A backup that knows no live master holds an Identify: it may
		// be the next master, and components arriving after a failover
		// are then accepted without another round of dials.
		HoldWithoutMaster: len(cfg.Peers) > 0,
	})
	if err != nil {
		return nil, fmt.Errorf("mgmt: %w", err)
	}
	s := &Management{
		cfg:     cfg,
		log:     root.Named("mgmt"),
		events:  tier.NewEventLog(root.Named("mgmt"), "mgmt", cfg.RefusalLogInterval),
		haLog:   ratelog.New(root.Named("mgmt").Named("ha"), cfg.RefusalLogInterval),
		started: time.Now(),
		loop:    tier.NewLoop(4096),
		machine: m,
		reg:     tier.NewRegistry(),
		fail:    make(chan error, 1),
		metrics: newMgmtMetrics(),

		appSyncErrors: newAppSyncErrors(),
	}
	if s.cfg.ID == "" {
		s.cfg.ID, _ = os.Hostname()
		if s.cfg.ID == "" {
			s.cfg.ID = "mgmt"
		}
	}
	pc := pconn.DefaultConfig(nil)
	if cfg.Transport != nil {
		pc = *cfg.Transport
	} else {
		// Room for every pair the registry may hold: each has up to four
		// sessions here (ctrl's and data's, and their watch sessions),
		// and a margin for strays and reconnections.
		pc.MaxSessions = max(pc.MaxSessions, sessionsPerPair*cfg.MaxPairs+sessionMargin)
	}
	if cfg.TLS != nil {
		if err := tier.CheckOwn(cfg.TLS, identity.RoleMgmt, s.cfg.ID); err != nil {
			s.loop.Close()
			return nil, fmt.Errorf("mgmt: %w (set -id to the name in the certificate)", err)
		}
		pc.TLS = cfg.TLS.ServerConfig(tlsconf.Roles(identity.RoleCtrl, identity.RoleData))
	}
	s.rt = NewRuntime(RuntimeConfig{
		Role: Mgmt, App: cfg.App, Link: mgmtLink{s}, Loop: s.loop, Logger: s.log,
		RefusalLogInterval: cfg.RefusalLogInterval,
		// A sequence's reserve runs low: sync now (syncState sees it).
		OnSequenceLow: func() { s.loop.At("sync", time.Now(), s.syncState) },
	})
	s.loop.Do(s.rt.Start)
	// Application frames are taken out before tier.Decode, which knows
	// only the handshake's.
	pc.Handler = s.rt.Handler(s.onFrame, s.appFrom, s.holdApp)
	pc.EventHandler = s.loop.EventHandler(s.onSession)
	pc.DeadTimeout = cfg.DeadTimeout
	pc.LogInterval = cfg.RefusalLogInterval
	pc.Logger = s.log.Named("pconn")
	if pc.IdentifyTimeout == 0 {
		// A backstop behind the handshake's own identify timeout: the
		// sessions are marked identified on EventIdentified (apply).
		pc.IdentifyTimeout = 2 * cfg.IdentifyTimeout
	}
	srv, err := pconn.Listen(cfg.ListenAddr, pc)
	if err != nil {
		s.loop.Do(s.rt.Stop)
		s.loop.Close()
		return nil, fmt.Errorf("mgmt: components: %w", err)
	}
	s.srv = srv
	s.advertised = cfg.AdvertiseAddr
	if s.advertised == "" {
		s.advertised = srv.Addr().String()
		if len(cfg.Peers) > 0 {
			// Listening on every interface: tell components (through the
			// other instances' redirects) the address this host uses
			// toward its peers.
			if a, err := tier.AdvertiseAddr(srv.Addr(), cfg.Peers[0].Addr); err == nil {
				s.advertised = a
			} else {
				s.log.Warn("cannot tell which address to advertise; set -advertise", "component", "mgmt", "error", err)
			}
		}
	}
	s.log.Info("listening for components", "component", "mgmt", "id", s.cfg.ID, "addr", srv.Addr().String(),
		"hello_interval", cfg.HelloInterval)
	s.loop.Do(s.startHelloSummary)
	s.startNotify()
	if err := s.startTrack(); err != nil {
		s.srv.Close()
		s.stopNotify()
		s.loop.Do(s.rt.Stop)
		s.loop.Close()
		return nil, fmt.Errorf("mgmt: %w", err)
	}
	if err := s.startHA(pc); err != nil {
		s.Close()
		return nil, fmt.Errorf("mgmt: %w", err)
	}
	return s, nil
}

// ID is this instance's id among the management instances.
func (s *Management) ID() string { return s.cfg.ID }

// AdvertisedAddr is the component address given to others.
func (s *Management) AdvertisedAddr() string { return s.advertised }

// Failed receives the error that made the instance stop working (such as
// an epoch that cannot be persisted); the daemon should exit.
func (s *Management) Failed() <-chan error { return s.fail }

func (s *Management) failed(err error) {
	s.failOnce.Do(func() { s.fail <- err })
}

// Addr is where components connect.
func (s *Management) Addr() net.Addr { return s.srv.Addr() }

// HAAddr is where the other management instances connect, or nil for a
// single instance.
func (s *Management) HAAddr() net.Addr {
	if srv := s.haScrape.Load(); srv != nil {
		return srv.Addr()
	}
	return nil
}

// OnEvent registers f to be called, on the instance's loop goroutine, for
// every event an operator should see (handshake steps at INFO and above,
// hello losses, mastership changes). f must not block.
func (s *Management) OnEvent(f func(*hellopicsv1.WatchEventsResponse)) {
	s.mu.Lock()
	s.listeners = append(s.listeners, f)
	s.mu.Unlock()
}

func (s *Management) onSession(ev pconn.Event) {
	if ev.Session == nil {
		return
	}
	now := time.Now()
	switch ev.Type {
	case pconn.EventEstablished:
		id := s.reg.Add(ev.Session)
		s.metrics.sessions.WithLabelValues("established").Inc()
		s.log.Debug("component connected", "component", "mgmt", "peer", ev.Addr.String(), "session", uint64(id))
		s.apply(s.machine.SessionUp(id, ev.Addr.String(), now))
	default:
		if !s.reg.Remove(ev.Session) {
			return
		}
		s.metrics.sessions.WithLabelValues("ended").Inc()
		reason := "closed"
		if ev.Err != nil {
			reason = ev.Err.Error()
		}
		s.log.Debug("component session ended", "component", "mgmt", "peer", ev.Addr.String(), "reason", reason)
		id := handshake.SessionID(ev.Session.ID())
		pair, role, identified := s.machine.Component(id)
		s.apply(s.machine.SessionDown(id, reason, now))
		if h := s.heldApp[id]; h != nil {
			delete(s.heldApp, id)
			s.rt.DropUnidentified(ev.Addr.String(), len(h.ins))
		}
		if identified {
			s.rt.LinkLost(To(RoleOf(role), pair))
		}
	}
}

func (s *Management) onFrame(ps *pconn.Session, t hellopicsv1.MsgType, msg proto.Message) {
	id, refuse, ok := tier.Admit(s.reg, ps, t, msg)
	if !ok {
		if refuse != nil {
			s.apply(refuse) // a false Identify
		}
		return
	}
	s.apply(s.machine.Receive(id, t, msg, time.Now()))
}

func (s *Management) tick() { s.apply(s.machine.Tick(time.Now())) }

// apply carries out the machine's outputs, then re-arms its deadline.
func (s *Management) apply(outs []handshake.Output) {
	for _, o := range outs {
		tier.Carry(o, s.reg, s.log, s.events, s.metrics.refused)
		switch o := o.(type) {
		case handshake.Event:
			switch o.Kind {
			case handshake.EventHelloReturned:
				s.metrics.rtt.WithLabelValues(o.PairID).Observe(o.RTT.Seconds())
			case handshake.EventOutage:
				s.metrics.outage.Observe(o.Outage.Seconds())
			case handshake.EventRejected:
				if o.Refused == handshake.RefusedEpochAhead {
					s.componentEpoch(o.PeerEpoch)
				}
			}
			switch o.Kind {
			case handshake.EventCycleStarted:
				s.rt.PairReady(o.PairID, o.Epoch)
				s.helloCycleStarted(o.PairID)
			case handshake.EventCycleStopped:
				s.rt.PairLost(o.PairID, o.Attr("reason"))
				delete(s.helloBase, o.PairID)
			case handshake.EventPairReady:
				s.rt.PairReady(o.PairID, o.Epoch)
				s.helloCycleStarted(o.PairID)
			case handshake.EventPairLost:
				s.rt.PairLost(o.PairID, o.Attr("reason"))
				delete(s.helloBase, o.PairID)
			}
			if o.Kind.Level() >= slog.LevelInfo || o.Kind == handshake.EventMastership {
				s.publish(&hellopicsv1.WatchEventsResponse{Kind: o.Kind.String(), PairId: o.PairID, Message: o.String(), Epoch: o.Epoch})
			}
		}
	}
	if at, ok := s.machine.NextDeadline(); ok {
		s.loop.At("handshake", at, s.tick)
	} else {
		s.loop.At("handshake", time.Time{}, nil)
	}
	if len(outs) > 0 {
		s.syncState()
	}
}

func (s *Management) publishHA(ev election.Event) {
	s.publish(&hellopicsv1.WatchEventsResponse{Kind: "mastership", Message: ev.String(), Epoch: ev.Epoch})
}

func (s *Management) publish(ev *hellopicsv1.WatchEventsResponse) {
	ev.Time = timestamppb.Now()
	s.mu.Lock()
	ls := s.listeners
	s.mu.Unlock()
	for _, f := range ls {
		f(ev)
	}
}

// Pairs returns the peer registry as it is now.
func (s *Management) Pairs() []*hellopicsv1.PairStatus {
	var out []*hellopicsv1.PairStatus
	s.loop.Do(func() {
		out = s.machine.Pairs()
		s.viewCycle(out)
	})
	return out
}

// viewCycle sets the pairs' counters and cycle state from the
// application that runs the cycle (ManagementConfig.CycleView), if
// one does. Loop only.
func (s *Management) viewCycle(pairs []*hellopicsv1.PairStatus) {
	v := s.cfg.CycleView
	if v == nil {
		return
	}
	for _, p := range pairs {
		if c := v.Counters(p.GetPairId()); c != nil {
			p.Counters = c
		}
		p.CycleRunning = v.Running(p.GetPairId())
	}
}

// Watchers is the number of components' watch sessions open here (one
// per pair and role at most).
func (s *Management) Watchers() int {
	var n int
	s.loop.Do(func() { n = s.machine.Watchers() })
	return n
}

// Status returns the operator view of this instance: its pairs as req
// selects (a filter and a page, see hellopicsv1.GetStatusRequest); nil
// is every pair. A page token that does not belong to req's filter is
// ErrBadRequest.
func (s *Management) Status(ctx context.Context, req *hellopicsv1.GetStatusRequest) (*hellopicsv1.GetStatusResponse, error) {
	q := handshake.PairQuery{Match: req.GetPair(), After: req.GetPageToken(), Limit: int(req.GetPageSize())}
	pageOK := true
	st := &hellopicsv1.GetStatusResponse{
		Id:            s.cfg.ID,
		ComponentAddr: s.advertised,
		Started:       timestamppb.New(s.started),
		Version:       s.cfg.Version,
	}
	// On the urgent lane: the status answers while mgmt works through a
	// backlog (a thousand components connecting at once).
	ok := s.loop.DoUrgent(func() {
		s.trackStatus(st)
		var page handshake.PairsPage
		if page, pageOK = s.machine.PairsPage(q); !pageOK {
			return
		}
		st.Pairs, st.NextPageToken = page.Pairs, page.Next
		s.viewCycle(st.Pairs)
		st.TotalPairs, st.CyclingPairs = uint32(page.Total), uint32(page.Cycling)
		st.Epoch = s.machine.Epoch()
		if s.machine.IsMaster() {
			st.Role = hellopicsv1.MgmtRole_MGMT_ROLE_MASTER
			st.MasterId = s.cfg.ID
		} else {
			st.Role = hellopicsv1.MgmtRole_MGMT_ROLE_BACKUP
		}
		if s.el != nil {
			es := s.el.Status()
			st.Role, st.Epoch, st.MasterId, st.MgmtPeers = es.Role, es.Epoch, es.MasterID, es.Peers
			for _, p := range st.MgmtPeers {
				if st.Role == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
					p.SyncError = s.syncErr[p.GetId()]
				}
			}
			st.SyncVersion = es.SyncVersion
			if st.Role != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER && s.syncVersion > st.SyncVersion {
				st.SyncVersion = s.syncVersion
			}
		}
	})
	if !ok {
		return nil, fmt.Errorf("mgmt: %w", ErrStopped)
	}
	if !pageOK {
		return nil, fmt.Errorf("mgmt: %w: page token %q is not of the pairs %q", ErrBadRequest, q.After, q.Match)
	}
	return st, ctx.Err()
}

// Close stops accepting, closes every component session gracefully,
// leaves the other management instances and stops the application and
// the loop.
func (s *Management) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	s.stopTrack()
	err := s.srv.Shutdown(ctx)
	s.stopHA()
	s.stopNotify()
	s.loop.Do(s.rt.Stop)
	s.loop.Close()
	s.log.Info("stopped", "component", "mgmt")
	return err
}
