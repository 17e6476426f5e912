// Package ctrl is the control component: it connects to management on a
// retry timer, identifies itself, accepts its data component and forwards
// hellos, by driving the pure handshake.Ctrl machine from a tier.Loop. It
// follows the master mgmt through a failover without restarting.
package ctrl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/hellopics/hellopics/internal/metrics"
	"github.com/hellopics/hellopics/pkg/appliance"
	"github.com/hellopics/hellopics/pkg/handshake"
	"github.com/hellopics/hellopics/pkg/identity"
	"github.com/hellopics/hellopics/pkg/pconn"
	"github.com/hellopics/hellopics/pkg/tier"
	"github.com/hellopics/hellopics/pkg/tlsconf"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// Config configures a control component. Start from DefaultConfig.
type Config struct {
	// ComponentConfig holds what ctrl shares with data: the mgmt
	// addresses, pair id, timers, transport, logger, metrics and health.
	tier.ComponentConfig

	// App is the application running in ctrl (pkg/appliance). Nil runs
	// none.
	App *appliance.App

	// ListenAddr is where the data component connects. Default ":7301".
	ListenAddr string

	// AdvertiseAddr is the address data is told to dial. Default:
	// ListenAddr if it names a host, else this host's address toward the
	// first mgmt, with ListenAddr's port.
	AdvertiseAddr string

	// IdentifyTimeout closes a data connection that has not identified
	// itself in time. Default 10 s.
	IdentifyTimeout time.Duration
}

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config {
	return Config{
		ComponentConfig: tier.DefaultComponentConfig(),
		ListenAddr:      ":7301",
		IdentifyTimeout: handshake.DefaultIdentifyTimeout,
	}
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	errs := c.Problems()
	if c.ListenAddr == "" {
		errs = append(errs, errors.New("ListenAddr is empty"))
	}
	if c.IdentifyTimeout <= 0 {
		errs = append(errs, fmt.Errorf("IdentifyTimeout %v must be positive", c.IdentifyTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ctrl: invalid config: %w", err)
	}
	return nil
}

// Ctrl is a running control component.
type Ctrl struct {
	cfg    Config
	log    hclog.Logger
	events *tier.EventLog // machine events; refusals rate-limited
	loop   *tier.Loop

	machine  *handshake.Ctrl // loop goroutine only
	reg      *tier.Registry  // loop goroutine only
	mgmtID   handshake.SessionID
	idTimers map[handshake.SessionID]*time.Timer // loop goroutine only

	ep      *tier.Endpoints        // metrics, health, readiness
	refused *prometheus.CounterVec // hellopics_ctrl_refused_total

	dataSrv *pconn.Server
	// dataScrape is dataSrv for the metrics scrapes, which may start
	// before it is set.
	dataScrape atomic.Pointer[pconn.Server]
	mgmt       *pconn.Client
	advert     string
}

// New validates cfg, listens for data and starts connecting to mgmt.
func New(cfg Config) (*Ctrl, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	root := cfg.Logger
	if root == nil {
		root = hclog.NewNullLogger()
	}
	c := &Ctrl{cfg: cfg, log: root.Named("ctrl"), events: tier.NewEventLog(root.Named("ctrl"), "ctrl", cfg.RefusalLogInterval), loop: tier.NewLoop(4096), reg: tier.NewRegistry(),
		idTimers: make(map[handshake.SessionID]*time.Timer), refused: tier.NewRefused("ctrl")}

	base := cfg.PconnBase()

	fail := func(err error) (*Ctrl, error) {
		c.stopEarly()
		return nil, fmt.Errorf("ctrl: %w", err)
	}
	if err := tier.CheckOwn(cfg.TLS, identity.RoleCtrl, cfg.PairID); err != nil {
		return fail(err)
	}
	// Listen first, to learn the address to advertise; serve only once
	// the machine exists, since sessions are handed to it at once.
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fail(fmt.Errorf("listen for data: %w", err))
	}
	c.advert = cfg.AdvertiseAddr
	if c.advert == "" {
		if c.advert, err = tier.AdvertiseAddr(ln.Addr(), cfg.MgmtAddrs[0]); err != nil {
			ln.Close()
			return fail(err)
		}
	}
	c.machine, err = handshake.NewCtrl(handshake.CtrlConfig{
		PairID: cfg.PairID, Instance: tier.NewInstance(), DataAddr: c.advert, Version: cfg.Version,
	})
	if err != nil {
		ln.Close()
		return fail(err)
	}

	c.ep, err = tier.StartEndpoints(tier.EndpointConfig{
		MetricsAddr: cfg.MetricsAddr, HealthAddr: cfg.HealthAddr, Service: "hellopics.ctrl",
		OnReadyChange: cfg.OnReadyChange,
		Collect:       func(ch chan<- prometheus.Metric) { metrics.Listener(ch, "data", c.dataScrape.Load()) },
		Extra:         append([]prometheus.Collector{c.refused}, tlsCollectors(cfg.TLS)...),
	}, c.log)
	if err != nil {
		ln.Close()
		return fail(err)
	}

	dc := base
	dc.Handler = c.loop.Handler(c.onFrame)
	dc.EventHandler = c.loop.EventHandler(c.onDataSession)
	dc.Logger = c.log.Named("data-listener")
	if cfg.TLS != nil {
		// Only this pair's data may connect; the Identify is checked
		// against the certificate too (onFrame).
		dc.TLS = cfg.TLS.ServerConfig(tlsconf.Exactly(identity.RoleData, cfg.PairID))
	}
	if dc.IdentifyTimeout == 0 {
		// A backstop behind the handshake's identify timer (idTimers): the
		// sessions are marked identified on EventIdentified (apply).
		dc.IdentifyTimeout = 2 * cfg.IdentifyTimeout
	}
	if c.dataSrv, err = pconn.Serve(ln, dc); err != nil {
		return fail(fmt.Errorf("serve data: %w", err))
	}
	c.dataScrape.Store(c.dataSrv)

	mc := base
	mc.Handler = c.loop.Handler(c.onFrame)
	mc.EventHandler = c.loop.EventHandler(c.onMgmtSession)
	mc.DeadTimeout = cfg.MgmtDeadTimeout
	mc.Logger = c.log.Named("mgmt-client")
	if cfg.TLS != nil {
		mc.TLS = cfg.TLS.ClientConfig(tlsconf.Roles(identity.RoleMgmt))
	}
	c.log.Info("starting", "component", "ctrl", "pair", cfg.PairID, "data_listen", ln.Addr().String(),
		"data_advertised", c.advert, "mgmt", cfg.MgmtAddrs)
	// Dial on the loop goroutine: the client's frames are handled there,
	// and apply reads c.mgmt (SwitchMgmt), so it must be set first.
	c.loop.Do(func() { c.mgmt, err = pconn.Dial(mc, cfg.MgmtAddrs...) })
	if err != nil {
		return fail(err)
	}
	return c, nil
}

// DataAddr is where ctrl listens for data.
func (c *Ctrl) DataAddr() net.Addr { return c.dataSrv.Addr() }

// Ready reports whether ctrl's data component is connected and ready.
func (c *Ctrl) Ready() bool {
	var r bool
	c.loop.Do(func() { r = c.machine.Ready() })
	return r
}

func (c *Ctrl) onMgmtSession(ev pconn.Event) {
	switch {
	case ev.Session == nil:
		c.ep.Links().Failed("mgmt")
		c.log.Debug("mgmt not reachable; will retry", "component", "ctrl", "peer", ev.Addr.String(), "error", ev.Err)
	case ev.Type == pconn.EventEstablished:
		c.mgmtID = c.reg.Add(ev.Session)
		c.ep.Links().Established("mgmt")
		c.log.Info("connected to mgmt", "component", "ctrl", "peer", ev.Addr.String(), "step", "connected")
		c.apply(c.machine.MgmtUp(c.mgmtID))
	default:
		if !c.reg.Remove(ev.Session) {
			return
		}
		c.ep.Links().Ended("mgmt")
		c.log.Debug("lost mgmt; reconnecting", "component", "ctrl", "peer", ev.Addr.String(), "reason", tier.Reason(ev.Err))
		c.apply(c.machine.MgmtDown(handshake.SessionID(ev.Session.ID()), tier.Reason(ev.Err)))
	}
}

func (c *Ctrl) onDataSession(ev pconn.Event) {
	switch ev.Type {
	case pconn.EventEstablished:
		id := c.reg.Add(ev.Session)
		c.ep.Links().Established("data")
		c.log.Debug("data connected", "component", "ctrl", "peer", ev.Addr.String())
		c.idTimers[id] = time.AfterFunc(c.cfg.IdentifyTimeout, func() {
			c.loop.Post(func() {
				delete(c.idTimers, id)
				c.apply(c.machine.IdentifyExpired(id))
			})
		})
		c.apply(c.machine.DataUp(id, ev.Addr.String()))
	default:
		if !c.reg.Remove(ev.Session) {
			return
		}
		c.ep.Links().Ended("data")
		if t := c.idTimers[handshake.SessionID(ev.Session.ID())]; t != nil {
			t.Stop()
			delete(c.idTimers, handshake.SessionID(ev.Session.ID()))
		}
		c.log.Debug("data session ended", "component", "ctrl", "peer", ev.Addr.String(), "reason", tier.Reason(ev.Err))
		c.apply(c.machine.DataDown(handshake.SessionID(ev.Session.ID()), tier.Reason(ev.Err)))
	}
}

func (c *Ctrl) onFrame(ps *pconn.Session, t hellopicsv1.MsgType, msg proto.Message) {
	id := handshake.SessionID(ps.ID())
	if c.reg.Get(id) == nil {
		return
	}
	if refuse := tier.CheckIdentify(ps, t, msg); refuse != nil {
		c.apply(refuse)
		return
	}
	c.apply(c.machine.Receive(id, t, msg))
}

func (c *Ctrl) apply(outs []handshake.Output) {
	defer func() { c.ep.SetReady(c.machine.Ready()) }()
	for _, o := range outs {
		switch o := o.(type) {
		case handshake.Send:
			c.reg.Send(c.log, o)
		case handshake.Close:
			c.reg.Close(c.log, o)
		case handshake.SwitchMgmt:
			c.log.Info("following the master mgmt", "component", "ctrl", "peer", o.Addr, "epoch", o.Epoch, "step", "switch_mgmt")
			c.mgmt.Redirect(o.Addr)
		case handshake.Event:
			c.events.Log(o)
			if o.Kind == handshake.EventIdentified {
				if ps := c.reg.Get(o.Session); ps != nil {
					ps.SetIdentified() // lifts pconn's MaxFrameSizeUnidentified
				}
			}
			if o.Refused != "" {
				c.refused.WithLabelValues(o.Refused).Inc()
			}
		}
	}
}

// Close stops the component: its mgmt session and data sessions are
// closed gracefully.
func (c *Ctrl) Close() error {
	c.mgmt.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := c.dataSrv.Shutdown(ctx)
	c.ep.Close()
	c.loop.Close()
	c.log.Info("stopped", "component", "ctrl")
	return err
}

// MetricsAddr is where metrics are served, or nil.
func (c *Ctrl) MetricsAddr() net.Addr { return c.ep.MetricsAddr() }

// stopEarly releases what New had started when it fails part way.
func (c *Ctrl) stopEarly() {
	if c.dataSrv != nil {
		c.dataSrv.Close()
	}
	c.ep.Close()
	c.loop.Close()
}

// HealthAddr is where the gRPC health service is served, or nil.
func (c *Ctrl) HealthAddr() net.Addr { return c.ep.HealthAddr() }

// tlsCollectors are the metrics of src (the certificate's expiry), none
// without TLS.
func tlsCollectors(src *tlsconf.Source) []prometheus.Collector {
	if src == nil {
		return nil
	}
	return []prometheus.Collector{src.Collector()}
}
