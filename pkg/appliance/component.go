package appliance

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/hellopics/hellopics/internal/metrics"
	"github.com/hellopics/hellopics/pkg/handshake"
	"github.com/hellopics/hellopics/pkg/identity"
	"github.com/hellopics/hellopics/pkg/pconn"
	"github.com/hellopics/hellopics/pkg/tier"
	"github.com/hellopics/hellopics/pkg/tlsconf"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// DefaultIdentifyTimeout is how long ctrl waits for a data connection
// to identify itself before closing it.
const DefaultIdentifyTimeout = handshake.DefaultIdentifyTimeout

// ComponentSpec is what a ctrl or data daemon asks of the component
// shell (StartComponent): the package ctrl and data fill it from their
// Config.
type ComponentSpec struct {
	// Role is Ctrl or Data.
	Role Role
	// Config is what every component shares: mgmt addresses, pair,
	// timers, transport, TLS, logger, metrics and health.
	Config tier.ComponentConfig
	// App is the application to run; nil runs none.
	App *App

	// ListenAddr (ctrl) is where data connects.
	ListenAddr string
	// AdvertiseAddr (ctrl) is the address data is told to dial; "":
	// ListenAddr if it names a host, else this host's address toward the
	// first mgmt.
	AdvertiseAddr string
	// IdentifyTimeout (ctrl) closes a data connection that has not
	// identified itself in time.
	IdentifyTimeout time.Duration

	// Collect and Extra are more metrics for the component's registry
	// (data: the relay's).
	Collect func(ch chan<- prometheus.Metric)
	Extra   []prometheus.Collector
	// LogFields are more key/values for the "starting" line.
	LogFields []any
}

// Component is a running ctrl or data component: the one shell both
// are built on. It joins the pconn sessions (to mgmt, and between ctrl
// and data) to the pure handshake machine of its role and to the
// application's Runtime, all on one loop goroutine.
type Component struct {
	spec   ComponentSpec
	name   string // "ctrl" or "data"
	peer   Role   // the other half of the pair
	log    hclog.Logger
	events *tier.EventLog
	loop   *tier.Loop
	rt     *Runtime

	// loop goroutine only
	m          machine
	reg        *tier.Registry
	mgmtID     handshake.SessionID
	mgmtUp     bool
	mgmtAddr   string                              // the mgmt session's remote address
	watchSess  map[*pconn.Session]string           // open watch sessions: remote address
	idTimers   map[handshake.SessionID]*time.Timer // ctrl: data sessions not identified yet
	peerSess   *pconn.Session                      // data: the session to ctrl
	wasReady   bool
	peerReason string
	closing    bool
	scripts    componentScripts

	ep      *tier.Endpoints
	refused *prometheus.CounterVec

	peerSrv    *pconn.Server                // ctrl: where data connects
	peerScrape atomic.Pointer[pconn.Server] // peerSrv for metrics scrapes, which may start first
	peerCfg    pconn.Config                 // data: how to dial ctrl
	mgmt       *pconn.Client
	watches    []*pconn.Client // one per mgmt address (watch.go)
	advert     string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // data's dials
}

// StartComponent validates nothing (the daemon's Config did), starts
// the component's servers and starts connecting to mgmt.
func StartComponent(spec ComponentSpec) (*Component, error) {
	if spec.Role != Ctrl && spec.Role != Data {
		return nil, fmt.Errorf("appliance: a component is ctrl or data, not %s", spec.Role)
	}
	cfg := &spec.Config
	root := cfg.Logger
	if root == nil {
		root = hclog.NewNullLogger()
	}
	c := &Component{spec: spec, name: spec.Role.String(), peer: Data, reg: tier.NewRegistry(),
		idTimers: make(map[handshake.SessionID]*time.Timer), watchSess: make(map[*pconn.Session]string), refused: tier.NewRefused(spec.Role.String()),
		loop: tier.NewLoop(4096)}
	if spec.Role == Data {
		c.peer = Ctrl
	}
	c.log = root.Named(c.name)
	c.events = tier.NewEventLog(c.log, c.name, cfg.RefusalLogInterval)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.startScripts()
	c.rt = NewRuntime(RuntimeConfig{Role: spec.Role, PairID: cfg.PairID, App: spec.App, Link: componentLink{c}, Fence: componentFence{c},
		Loop: c.loop, Logger: c.log, RefusalLogInterval: cfg.RefusalLogInterval})

	fail := func(err error) (*Component, error) {
		c.stopEarly()
		return nil, fmt.Errorf("%s: %w", c.name, err)
	}
	idRole := identity.RoleCtrl
	if spec.Role == Data {
		idRole = identity.RoleData
	}
	if err := tier.CheckOwn(cfg.TLS, idRole, cfg.PairID); err != nil {
		return fail(err)
	}
	base := cfg.PconnBase()

	// ctrl listens first, to learn the address to advertise; it serves
	// only once the machine exists, since sessions go to it at once.
	var ln net.Listener
	if spec.Role == Ctrl {
		var err error
		if ln, err = net.Listen("tcp", spec.ListenAddr); err != nil {
			return fail(fmt.Errorf("listen for data: %w", err))
		}
		c.advert = spec.AdvertiseAddr
		if c.advert == "" {
			if c.advert, err = tier.AdvertiseAddr(ln.Addr(), cfg.MgmtAddrs[0]); err != nil {
				ln.Close()
				return fail(err)
			}
		}
		mc, err := handshake.NewCtrl(handshake.CtrlConfig{PairID: cfg.PairID, Instance: tier.NewInstance(), DataAddr: c.advert, Version: cfg.Version})
		if err != nil {
			ln.Close()
			return fail(err)
		}
		c.m = ctrlMachine{mc}
	} else {
		md, err := handshake.NewData(handshake.DataConfig{PairID: cfg.PairID, Instance: tier.NewInstance(), Version: cfg.Version, RetryDelay: cfg.RetryInterval})
		if err != nil {
			return fail(err)
		}
		c.m = dataMachine{md}
	}

	extra := append([]prometheus.Collector{c.refused}, c.rt.Collectors()...)
	if cfg.TLS != nil {
		extra = append(extra, cfg.TLS.Collector())
	}
	var err error
	c.ep, err = tier.StartEndpoints(tier.EndpointConfig{
		MetricsAddr: cfg.MetricsAddr, HealthAddr: cfg.HealthAddr, Service: "hellopics." + c.name,
		OnReadyChange: cfg.OnReadyChange,
		Collect: func(ch chan<- prometheus.Metric) {
			if spec.Role == Ctrl {
				metrics.Listener(ch, "data", c.peerScrape.Load())
			}
			if spec.Collect != nil {
				spec.Collect(ch)
			}
		},
		Extra: append(extra, spec.Extra...),
	}, c.log)
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return fail(err)
	}

	if spec.Role == Ctrl {
		dc := base
		dc.Handler = c.rt.Handler(c.onFrame, c.appFrom, nil)
		dc.EventHandler = c.loop.EventHandler(c.onPeerSession)
		dc.Logger = c.log.Named("data-listener")
		if cfg.TLS != nil {
			// Only this pair's data may connect; the Identify is checked
			// against the certificate too (onFrame).
			dc.TLS = cfg.TLS.ServerConfig(tlsconf.Exactly(identity.RoleData, cfg.PairID))
		}
		if dc.IdentifyTimeout == 0 {
			// A backstop behind the handshake's identify timer
			// (idTimers): sessions are marked identified on
			// EventIdentified (apply).
			dc.IdentifyTimeout = 2 * spec.IdentifyTimeout
		}
		if c.peerSrv, err = pconn.Serve(ln, dc); err != nil {
			return fail(fmt.Errorf("serve data: %w", err))
		}
		c.peerScrape.Store(c.peerSrv)
	} else {
		c.peerCfg = base
		c.peerCfg.Handler = c.rt.Handler(c.onFrame, c.appFrom, nil)
		c.peerCfg.EventHandler = c.loop.EventHandler(c.onPeerSession)
		c.peerCfg.Logger = c.log.Named("ctrl-client")
		if cfg.TLS != nil {
			// data dials the address mgmt gave it; the server there
			// must be this pair's ctrl.
			c.peerCfg.TLS = cfg.TLS.ClientConfig(tlsconf.Exactly(identity.RoleCtrl, cfg.PairID))
		}
	}

	mc := base
	mc.Handler = c.rt.Handler(c.onFrame, c.appFrom, nil)
	mc.EventHandler = c.loop.EventHandler(c.onMgmtSession)
	mc.DeadTimeout = cfg.MgmtDeadTimeout
	// A dial toward a master that is not answering (its host lost, a
	// redirect there in the instant before the backup noticed) costs no
	// more than the silence that makes a session dead.
	mc.DialTimeout = min(mc.DialTimeout, cfg.MgmtDeadTimeout)
	mc.Logger = c.log.Named("mgmt-client")
	if cfg.TLS != nil {
		mc.TLS = cfg.TLS.ClientConfig(tlsconf.Roles(identity.RoleMgmt))
	}
	fields := []any{"component", c.name, "pair", cfg.PairID}
	if spec.Role == Ctrl {
		fields = append(fields, "data_listen", ln.Addr().String(), "data_advertised", c.advert)
	}
	fields = append(fields, "mgmt", cfg.MgmtAddrs)
	c.log.Info("starting", append(fields, spec.LogFields...)...)
	// The application starts first; then the dial, on the loop: the
	// client's frames are handled there, and apply reads c.mgmt
	// (SwitchMgmt), so it must be set before any.
	c.loop.Do(func() {
		c.rt.Start()
		if c.mgmt, err = pconn.Dial(mc, cfg.MgmtAddrs...); err == nil {
			err = c.startWatches(mc)
		}
	})
	if err != nil {
		if c.mgmt != nil {
			c.mgmt.Close()
		}
		return fail(err)
	}
	return c, nil
}

// Node is the application's handle on the component.
func (c *Component) Node() *Node { return c.rt.Node() }

// PeerAddr is where ctrl listens for data (nil on data).
func (c *Component) PeerAddr() net.Addr {
	if c.peerSrv == nil {
		return nil
	}
	return c.peerSrv.Addr()
}

// Ready reports whether the handshake with the pair's other half is
// complete.
func (c *Component) Ready() bool {
	var r bool
	c.loop.Do(func() { r = c.m.ready() })
	return r
}

// SendMgmt sends a hellopics message of type t to the mgmt the component
// is connected to (data's relay reports), from any goroutine.
func (c *Component) SendMgmt(t hellopicsv1.MsgType, m proto.Message) error {
	return c.mgmt.SendProto(pconn.MsgType(t), m)
}

// MetricsAddr is where metrics are served, or nil.
func (c *Component) MetricsAddr() net.Addr { return c.ep.MetricsAddr() }

// HealthAddr is where the gRPC health service is served, or nil.
func (c *Component) HealthAddr() net.Addr { return c.ep.HealthAddr() }

func (c *Component) onMgmtSession(ev pconn.Event) {
	now := time.Now()
	switch {
	case ev.Session == nil:
		c.ep.Links().Failed("mgmt")
		c.log.Debug("mgmt not reachable; will retry", "component", c.name, "peer", ev.Addr.String(), "error", ev.Err)
	case ev.Type == pconn.EventEstablished:
		c.mgmtID, c.mgmtUp = c.reg.Add(ev.Session), true
		c.mgmtAddr = ev.Addr.String()
		c.ep.Links().Established("mgmt")
		c.log.Info("connected to mgmt", "component", c.name, "peer", "mgmt", "addr", ev.Addr.String(), "step", "connected")
		c.apply(c.m.mgmtUp(c.mgmtID, now))
		// The Identify is queued ahead of anything the application
		// sends from here on.
		c.rt.MasterChanged(ev.Addr.String(), c.m.epoch())
	default:
		if !c.reg.Remove(ev.Session) {
			return
		}
		if handshake.SessionID(ev.Session.ID()) == c.mgmtID {
			c.mgmtUp = false
		}
		c.ep.Links().Ended("mgmt")
		c.log.Debug("lost mgmt; reconnecting", "component", c.name, "peer", ev.Addr.String(), "reason", tier.Reason(ev.Err))
		c.apply(c.m.mgmtDown(handshake.SessionID(ev.Session.ID()), tier.Reason(ev.Err), now))
		c.rt.MgmtLost(tier.Reason(ev.Err))
	}
}

// onPeerSession handles the sessions between ctrl and data: accepted
// by ctrl, dialled by data.
func (c *Component) onPeerSession(ev pconn.Event) {
	now := time.Now()
	peer := c.peer.String()
	id := handshake.SessionID(ev.Session.ID())
	switch ev.Type {
	case pconn.EventEstablished:
		c.reg.Add(ev.Session)
		c.ep.Links().Established(peer)
		if c.spec.Role == Ctrl {
			c.log.Debug("data connected", "component", c.name, "peer", ev.Addr.String())
			c.idTimers[id] = time.AfterFunc(c.spec.IdentifyTimeout, func() {
				c.loop.Post(func() {
					delete(c.idTimers, id)
					c.apply(c.m.(ctrlMachine).IdentifyExpired(id))
				})
			})
		} else {
			c.peerSess = ev.Session
			c.log.Debug("connected to ctrl", "component", c.name, "peer", ev.Addr.String())
		}
		c.apply(c.m.peerUp(id, ev.Addr.String(), now))
	default:
		if !c.reg.Remove(ev.Session) {
			return
		}
		c.ep.Links().Ended(peer)
		if t := c.idTimers[id]; t != nil {
			t.Stop()
			delete(c.idTimers, id)
		}
		if c.peerSess == ev.Session {
			c.peerSess = nil
		}
		if c.spec.Role == Ctrl {
			c.log.Debug("data session ended", "component", c.name, "peer", ev.Addr.String(), "reason", tier.Reason(ev.Err))
		} else {
			c.log.Debug("lost ctrl", "component", c.name, "peer", ev.Addr.String(), "reason", tier.Reason(ev.Err))
		}
		c.peerReason = tier.Reason(ev.Err)
		c.apply(c.m.peerDown(id, tier.Reason(ev.Err), now))
	}
}

func (c *Component) onFrame(ps *pconn.Session, t hellopicsv1.MsgType, msg proto.Message) {
	id, refuse, ok := tier.Admit(c.reg, ps, t, msg)
	if !ok {
		if refuse != nil {
			c.apply(refuse) // a false Identify
		}
		return
	}
	c.apply(c.m.receive(id, t, msg, time.Now()))
}

// appFrom names the sender of an application frame on ps: the mgmt
// session in use, or the identified session of the pair's other half.
// Loop only.
func (c *Component) appFrom(ps *pconn.Session) (Peer, bool) {
	id := handshake.SessionID(ps.ID())
	if c.reg.Get(id) != ps {
		return Peer{}, false
	}
	if c.mgmtUp && id == c.mgmtID {
		return Peer{Role: Mgmt}, true
	}
	if pid, ok := c.m.peerSession(); ok && pid == id {
		return Peer{Role: c.peer, PairID: c.spec.Config.PairID}, true
	}
	return Peer{}, false
}

func (c *Component) tick() { c.apply(c.m.tick(time.Now())) }

// dial connects data to ctrl off the loop; the session's events report
// success (peerUp), a failure is posted as DialFailed.
func (c *Component) dial(addr string) {
	c.log.Debug("dialling ctrl", "component", c.name, "peer", "ctrl", "addr", addr)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		s, err := pconn.Connect(c.ctx, c.peerCfg, addr)
		if err != nil {
			c.loop.Post(func() {
				c.ep.Links().Failed("ctrl")
				c.log.Warn("cannot reach ctrl; will ask mgmt again", "component", c.name, "peer", "ctrl", "addr", addr, "error", err)
				c.apply(c.m.(dataMachine).DialFailed(err.Error(), time.Now()))
			})
			return
		}
		// The session belongs to the loop from now on; if the component
		// is closing, end it here.
		select {
		case <-c.ctx.Done():
			s.Close()
			<-s.Done()
		default:
		}
	}()
}

// apply carries out the machine's outputs, re-arms its deadline and
// tells the application when the pair's other half became ready or was
// lost.
func (c *Component) apply(outs []handshake.Output) {
	for _, o := range outs {
		if tier.Carry(o, c.reg, c.log, c.events, c.refused) {
			continue
		}
		switch o := o.(type) {
		case handshake.Dial:
			if !c.closing {
				c.dial(o.Addr)
			}
		case handshake.SwitchMgmt:
			// Once per master and epoch at INFO: while the master cannot
			// reach this component but its backup can, the backup
			// redirects it back on every dial (the rest at DEBUG).
			c.events.Repeated(fmt.Sprintf("switch_mgmt:%s@%d", o.Addr, o.Epoch), hclog.Info, "following the master mgmt",
				"component", c.name, "peer", "mgmt", "addr", o.Addr, "epoch", o.Epoch, "step", "switch_mgmt")
			c.mgmt.Redirect(o.Addr)
			c.scripts.switchTo = o.Addr
		}
	}
	c.checkMaster()
	if at, ok := c.m.nextDeadline(); ok {
		c.loop.At("handshake", at, c.tick)
	} else {
		c.loop.At("handshake", time.Time{}, nil)
	}
	ready := c.m.ready()
	c.ep.SetReady(ready)
	if ready != c.wasReady {
		c.wasReady = ready
		p := Peer{Role: c.peer, PairID: c.spec.Config.PairID}
		if ready {
			c.rt.PeerReady(p, c.m.epoch())
			c.tellScripts(ScriptReady, c.m.epoch(), c.scripts.master, "pair ready")
		} else {
			reason := c.peerReason
			if reason == "" {
				reason = "not ready"
			}
			c.rt.PeerLost(p, reason)
			c.tellScripts(ScriptLost, c.m.epoch(), c.scripts.master, reason)
		}
	}
}

// Close stops the component: the application first, then its sessions,
// gracefully.
func (c *Component) Close() error {
	var peer *pconn.Session
	c.loop.Do(func() {
		c.closing, peer = true, c.peerSess
		c.rt.Stop()
	})
	c.mgmt.Close()
	for _, w := range c.watches {
		w.Close()
	}
	c.cancel()
	var err error
	if c.peerSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = c.peerSrv.Shutdown(ctx)
		cancel()
	}
	if peer != nil {
		peer.Close()
		select {
		case <-peer.Done():
		case <-time.After(3 * time.Second):
		}
	}
	c.wg.Wait()
	c.loop.Do(func() {
		for id, t := range c.idTimers {
			t.Stop()
			delete(c.idTimers, id)
		}
	})
	c.ep.Close()
	c.loop.Close()
	c.stopScripts()
	return err
}

// stopEarly releases what StartComponent had started when it fails.
func (c *Component) stopEarly() {
	if c.peerSrv != nil {
		c.peerSrv.Close()
	}
	c.cancel()
	c.ep.Close()
	c.loop.Close()
	c.stopScripts()
}

// componentFence is the handshake machine's epoch fence, for the
// Runtime. Loop only.
type componentFence struct{ c *Component }

func (f componentFence) Epoch() uint64 { return f.c.m.epoch() }

// Admit fences an application message. One from mgmt at a newer epoch
// raises the fence: the scripts hear master_changed then, as they do
// when a handshake message raises it (with the Hello cycle as an
// application, a hello may be the first message of the new master's
// epoch to reach data).
func (f componentFence) Admit(from Peer, epoch uint64) bool {
	before := f.c.m.epoch()
	ok := f.c.m.AdmitApp(from.Role.Wire(), epoch)
	if f.c.m.epoch() > before {
		f.c.checkMaster()
	}
	return ok
}

// componentLink is the component shell as its Runtime sees it.
type componentLink struct{ c *Component }

// SendApp queues an application message on the mgmt session or on the
// session to the pair's other half, once it is ready. Loop only.
func (l componentLink) SendApp(to Target, rec []byte) error {
	ps, err := l.session(to)
	if err != nil {
		return err
	}
	return ps.SendRecord(MsgTypeApp, rec)
}

// SendAppFrom is SendApp with the message written straight into the
// session's send queue (RecordLink).
func (l componentLink) SendAppFrom(to Target, n int, w pconn.RecordWriter) error {
	ps, err := l.session(to)
	if err != nil {
		return err
	}
	return ps.SendRecordFrom(MsgTypeApp, n, w)
}

// session is the session a message to to goes on.
func (l componentLink) session(to Target) (*pconn.Session, error) {
	c := l.c
	switch {
	case to.Role == Mgmt:
		if !c.mgmtUp {
			return nil, ErrNoRoute
		}
		if ps := c.reg.Get(c.mgmtID); ps != nil {
			return ps, nil
		}
		return nil, ErrNoRoute
	case to.Role == c.peer && to.PairID == c.spec.Config.PairID:
		id, ok := c.m.peerSession()
		if !ok || !c.m.ready() {
			return nil, ErrNoRoute
		}
		if ps := c.reg.Get(id); ps != nil {
			return ps, nil
		}
		return nil, ErrNoRoute
	case to.Role == c.peer:
		return nil, fmt.Errorf("%w: %s reaches only its own pair's %s", ErrNoRoute, c.name, to.Role)
	}
	return nil, fmt.Errorf("%w: %s cannot send to %s", ErrWrongRole, c.name, to)
}
