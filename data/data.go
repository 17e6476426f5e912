package data

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hellopics/hellopics/data/relay"
	"github.com/hellopics/hellopics/pkg/appliance"
	"github.com/hellopics/hellopics/pkg/handshake"
	"github.com/hellopics/hellopics/pkg/identity"
	"github.com/hellopics/hellopics/pkg/pconn"
	"github.com/hellopics/hellopics/pkg/tier"
	"github.com/hellopics/hellopics/pkg/tlsconf"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// Config configures a data component. Start from DefaultConfig.
type Config struct {
	// ComponentConfig holds what data shares with ctrl: the mgmt
	// addresses, pair id, timers, transport, logger, metrics and health.
	tier.ComponentConfig

	// App is the application running in data (pkg/appliance). Nil runs
	// none.
	App *appliance.App

	// ReportInterval is how often the relay's counters are reported to
	// mgmt. Default 5 s.
	ReportInterval time.Duration

	// Relay, if set, configures the embedded MEDS relay; nil runs no relay.
	Relay *relay.Config
}

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config {
	return Config{
		ComponentConfig: tier.DefaultComponentConfig(),
		ReportInterval:  5 * time.Second,
	}
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	errs := c.Problems()
	if c.ReportInterval <= 0 {
		errs = append(errs, fmt.Errorf("ReportInterval %v must be positive", c.ReportInterval))
	}
	if c.Relay != nil {
		if err := c.Relay.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("data: invalid config: %w", err)
	}
	return nil
}

// Data is a running data component.
type Data struct {
	cfg    Config
	log    hclog.Logger
	events *tier.EventLog // machine events; refusals rate-limited
	loop   *tier.Loop
	relay  *relay.Relay

	machine *handshake.Data // loop goroutine only
	reg     *tier.Registry  // loop goroutine only
	mgmtID  handshake.SessionID
	ctrl    *pconn.Session // loop goroutine only
	closing bool           // loop goroutine only: no new dials
	ctrlCfg pconn.Config

	ep      *tier.Endpoints        // metrics, health, readiness
	refused *prometheus.CounterVec // hellopics_data_refused_total

	mgmt   *pconn.Client
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // dials and the reporter
}

// New validates cfg, starts the relay (if configured) and starts
// connecting to mgmt.
func New(cfg Config) (*Data, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	root := cfg.Logger
	if root == nil {
		root = hclog.NewNullLogger()
	}
	if err := tier.CheckOwn(cfg.TLS, identity.RoleData, cfg.PairID); err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	m, err := handshake.NewData(handshake.DataConfig{
		PairID: cfg.PairID, Instance: tier.NewInstance(), Version: cfg.Version, RetryDelay: cfg.RetryInterval,
	})
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Data{
		cfg: cfg, log: root.Named("data"), events: tier.NewEventLog(root.Named("data"), "data", cfg.RefusalLogInterval), loop: tier.NewLoop(4096),
		machine: m, reg: tier.NewRegistry(), ctx: ctx, cancel: cancel, refused: tier.NewRefused("data"),
	}
	var relayLatency prometheus.Histogram
	if cfg.Relay != nil {
		rc := *cfg.Relay
		if cfg.MetricsAddr != "" {
			relayLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
				Name:    "hellopics_relay_response_seconds",
				Help:    "Time from a TPCE command's arrival to its response being queued to its client.",
				Buckets: prometheus.ExponentialBuckets(50e-6, 2, 18), // 50 µs to 6.5 s
			})
			rc.OnResponse = func(d time.Duration) { relayLatency.Observe(d.Seconds()) }
		}
		r, err := relay.New(rc, root.Named("data"))
		if err == nil {
			err = r.Start(ctx)
		}
		if err != nil {
			cancel()
			d.loop.Close()
			return nil, fmt.Errorf("data: relay: %w", err)
		}
		d.relay = r
	}

	base := cfg.PconnBase()

	d.ctrlCfg = base
	d.ctrlCfg.Handler = d.loop.Handler(d.onFrame)
	d.ctrlCfg.EventHandler = d.loop.EventHandler(d.onCtrlSession)
	d.ctrlCfg.Logger = d.log.Named("ctrl-client")
	if cfg.TLS != nil {
		// data dials the address mgmt gave it; the server there must be
		// this pair's ctrl.
		d.ctrlCfg.TLS = cfg.TLS.ClientConfig(tlsconf.Exactly(identity.RoleCtrl, cfg.PairID))
	}

	ec := tier.EndpointConfig{
		MetricsAddr: cfg.MetricsAddr, HealthAddr: cfg.HealthAddr, Service: "hellopics.data",
		OnReadyChange: cfg.OnReadyChange, Extra: []prometheus.Collector{d.refused},
	}
	if cfg.TLS != nil {
		ec.Extra = append(ec.Extra, cfg.TLS.Collector())
	}
	if d.relay != nil {
		ec.Collect = func(ch chan<- prometheus.Metric) { collectRelay(d.relay, ch) }
	}
	if relayLatency != nil {
		ec.Extra = append(ec.Extra, relayLatency)
	}
	if d.ep, err = tier.StartEndpoints(ec, d.log); err != nil {
		d.stopEarly()
		return nil, fmt.Errorf("data: %w", err)
	}

	mc := base
	mc.Handler = d.loop.Handler(d.onFrame)
	mc.EventHandler = d.loop.EventHandler(d.onMgmtSession)
	mc.DeadTimeout = cfg.MgmtDeadTimeout
	mc.Logger = d.log.Named("mgmt-client")
	if cfg.TLS != nil {
		mc.TLS = cfg.TLS.ClientConfig(tlsconf.Roles(identity.RoleMgmt))
	}
	d.log.Info("starting", "component", "data", "pair", cfg.PairID, "mgmt", cfg.MgmtAddrs, "relay", d.relay != nil)
	// Dial on the loop goroutine: the client's frames are handled there,
	// and apply reads d.mgmt (SwitchMgmt), so it must be set first.
	d.loop.Do(func() { d.mgmt, err = pconn.Dial(mc, cfg.MgmtAddrs...) })
	if err != nil {
		d.stopEarly()
		return nil, fmt.Errorf("data: %w", err)
	}
	if d.relay != nil {
		d.wg.Add(1)
		go d.reportLoop()
	}
	return d, nil
}

// Relay is the embedded relay, or nil.
func (d *Data) Relay() *relay.Relay { return d.relay }

// Ready reports whether data is connected to its ctrl and ready.
func (d *Data) Ready() bool {
	var r bool
	d.loop.Do(func() { r = d.machine.Ready() })
	return r
}

func (d *Data) onMgmtSession(ev pconn.Event) {
	now := time.Now()
	switch {
	case ev.Session == nil:
		d.ep.Links().Failed("mgmt")
		d.log.Debug("mgmt not reachable; will retry", "component", "data", "peer", ev.Addr.String(), "error", ev.Err)
	case ev.Type == pconn.EventEstablished:
		d.mgmtID = d.reg.Add(ev.Session)
		d.ep.Links().Established("mgmt")
		d.log.Info("connected to mgmt", "component", "data", "peer", ev.Addr.String(), "step", "connected")
		d.apply(d.machine.MgmtUp(d.mgmtID, now))
	default:
		if !d.reg.Remove(ev.Session) {
			return
		}
		d.ep.Links().Ended("mgmt")
		d.log.Debug("lost mgmt; reconnecting", "component", "data", "peer", ev.Addr.String(), "reason", tier.Reason(ev.Err))
		d.apply(d.machine.MgmtDown(handshake.SessionID(ev.Session.ID()), tier.Reason(ev.Err), now))
	}
}

func (d *Data) onCtrlSession(ev pconn.Event) {
	now := time.Now()
	switch ev.Type {
	case pconn.EventEstablished:
		id := d.reg.Add(ev.Session)
		d.ep.Links().Established("ctrl")
		d.ctrl = ev.Session
		d.log.Debug("connected to ctrl", "component", "data", "peer", ev.Addr.String())
		d.apply(d.machine.CtrlUp(id, now))
	default:
		if !d.reg.Remove(ev.Session) {
			return
		}
		d.ep.Links().Ended("ctrl")
		if d.ctrl == ev.Session {
			d.ctrl = nil
		}
		d.log.Debug("lost ctrl", "component", "data", "peer", ev.Addr.String(), "reason", tier.Reason(ev.Err))
		d.apply(d.machine.CtrlDown(handshake.SessionID(ev.Session.ID()), tier.Reason(ev.Err), now))
	}
}

func (d *Data) onFrame(ps *pconn.Session, t hellopicsv1.MsgType, msg proto.Message) {
	id := handshake.SessionID(ps.ID())
	if d.reg.Get(id) == nil {
		return
	}
	d.apply(d.machine.Receive(id, t, msg, time.Now()))
}

func (d *Data) tick() { d.apply(d.machine.Tick(time.Now())) }

// dial connects to ctrl off the loop; the session's events report success
// (CtrlUp), a failure is posted as DialFailed.
func (d *Data) dial(addr string) {
	d.log.Debug("dialling ctrl", "component", "data", "peer", addr)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		s, err := pconn.Connect(d.ctx, d.ctrlCfg, addr)
		if err != nil {
			d.loop.Post(func() {
				d.ep.Links().Failed("ctrl")
				d.log.Warn("cannot reach ctrl; will ask mgmt again", "component", "data", "peer", addr, "error", err)
				d.apply(d.machine.DialFailed(err.Error(), time.Now()))
			})
			return
		}
		// The session belongs to the loop from now on; if the component
		// is closing, end it here.
		select {
		case <-d.ctx.Done():
			s.Close()
			<-s.Done()
		default:
		}
	}()
}

func (d *Data) apply(outs []handshake.Output) {
	defer func() { d.ep.SetReady(d.machine.Ready()) }()
	for _, o := range outs {
		switch o := o.(type) {
		case handshake.Send:
			d.reg.Send(d.log, o)
		case handshake.Close:
			d.reg.Close(d.log, o)
		case handshake.Dial:
			if !d.closing {
				d.dial(o.Addr)
			}
		case handshake.SwitchMgmt:
			d.log.Info("following the master mgmt", "component", "data", "peer", o.Addr, "epoch", o.Epoch, "step", "switch_mgmt")
			d.mgmt.Redirect(o.Addr)
		case handshake.Event:
			d.events.Log(o)
			if o.Refused != "" {
				d.refused.WithLabelValues(o.Refused).Inc()
			}
		}
	}
	if at, ok := d.machine.NextDeadline(); ok {
		d.loop.At("handshake", at, d.tick)
	} else {
		d.loop.At("handshake", time.Time{}, nil)
	}
}

// reportLoop sends the relay's counters to mgmt every ReportInterval.
func (d *Data) reportLoop() {
	defer d.wg.Done()
	t := time.NewTicker(d.cfg.ReportInterval)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
			rep := &hellopicsv1.Report{
				Role: hellopicsv1.Role_ROLE_DATA, PairId: d.cfg.PairID,
				Time: timestamppb.Now(), Relay: RelayStats(d.relay.Stats()),
			}
			if err := d.mgmt.SendProto(pconn.MsgType(hellopicsv1.MsgType_MSG_TYPE_REPORT), rep); err != nil {
				d.log.Debug("relay report not sent", "component", "data", "error", err)
			}
		}
	}
}

// RelayStats converts the relay's counters to the reported form.
func RelayStats(s relay.Stats) *hellopicsv1.RelayStats {
	return &hellopicsv1.RelayStats{
		AgentReachable: s.AgentReachable,
		Clients:        uint32(s.Commands.Clients + s.Events.Clients + s.Status.Clients),
		Commands:       s.CommandsSent,
		Responses:      s.Responses + s.ResponsesRerouted,
		Events:         s.EventsReceived,
		StatusBlocks:   s.StatusBlocks,
		RelayErrors:    s.RelayErrors,
		Drops: s.Dropped.Decode + s.Dropped.Version + s.Dropped.Community + s.Dropped.USM + s.Dropped.TimeWindow + s.Dropped.PDU +
			s.Dropped.Fragment + s.Dropped.Reassembly + s.Dropped.Expired + s.Dropped.Message + s.Dropped.WrongType +
			s.Dropped.NoPort + s.Dropped.Source + s.Dropped.Replay + s.Commands.BacklogDropped + s.Events.BacklogDropped + s.Status.BacklogDropped,
		Counters: map[string]uint64{
			"fragments_sent":      s.FragmentsSent,
			"fragments_received":  s.FragmentsReceived,
			"retries":             s.Retries,
			"send_failures":       s.SendFailures,
			"duplicates":          s.Duplicates,
			"reassembled":         s.Reassembled,
			"informs_answered":    s.InformsAnswered,
			"agent_poll_failures": s.AgentPollFailures,
		},
	}
}

func (d *Data) stopRelay() {
	if d.relay != nil {
		d.relay.Close()
	}
}

// Close stops the component: sessions are closed gracefully and the relay
// stopped.
func (d *Data) Close() error {
	var ctrl *pconn.Session
	d.loop.Do(func() { d.closing, ctrl = true, d.ctrl })
	d.mgmt.Close()
	d.cancel()
	if ctrl != nil {
		ctrl.Close()
		select {
		case <-ctrl.Done():
		case <-time.After(3 * time.Second):
		}
	}
	d.wg.Wait()
	d.stopRelay()
	d.ep.Close()
	d.loop.Close()
	d.log.Info("stopped", "component", "data")
	return nil
}

// MetricsAddr is where metrics are served, or nil.
func (d *Data) MetricsAddr() net.Addr { return d.ep.MetricsAddr() }

// stopEarly releases what New had started when it fails part way.
func (d *Data) stopEarly() {
	d.stopRelay()
	d.cancel()
	d.ep.Close()
	d.loop.Close()
}

// HealthAddr is where the gRPC health service is served, or nil.
func (d *Data) HealthAddr() net.Addr { return d.ep.HealthAddr() }
