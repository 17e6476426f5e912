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
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hellopics/hellopics/data/relay"
	"github.com/hellopics/hellopics/pkg/appliance"
	"github.com/hellopics/hellopics/pkg/hellocycle"
	"github.com/hellopics/hellopics/pkg/tier"
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
	cfg   Config
	log   hclog.Logger
	relay *relay.Relay
	c     *appliance.Component

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the reporter
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
	ctx, cancel := context.WithCancel(context.Background())
	d := &Data{cfg: cfg, log: root.Named("data"), ctx: ctx, cancel: cancel}
	spec := appliance.ComponentSpec{Role: appliance.Data, Config: cfg.ComponentConfig, App: hellocycle.WithRelay(cfg.App)}
	if cfg.Relay != nil {
		rc := *cfg.Relay
		if cfg.MetricsAddr != "" {
			relayLatency := prometheus.NewHistogram(prometheus.HistogramOpts{
				Name:    "hellopics_relay_response_seconds",
				Help:    "Time from a TPCE command's arrival to its response being queued to its client.",
				Buckets: prometheus.ExponentialBuckets(50e-6, 2, 18), // 50 µs to 6.5 s
			})
			rc.OnResponse = func(d time.Duration) { relayLatency.Observe(d.Seconds()) }
			spec.Extra = append(spec.Extra, relayLatency)
		}
		r, err := relay.New(rc, root.Named("data"))
		if err == nil {
			err = r.Start(ctx)
		}
		if err != nil {
			cancel()
			return nil, fmt.Errorf("data: relay: %w", err)
		}
		d.relay = r
		spec.Collect = func(ch chan<- prometheus.Metric) { collectRelay(d.relay, ch) }
	}
	spec.LogFields = []any{"relay", d.relay != nil}
	c, err := appliance.StartComponent(spec)
	if err != nil {
		d.stopRelay()
		cancel()
		return nil, err
	}
	d.c = c
	if d.relay != nil {
		d.wg.Add(1)
		go d.reportLoop()
	}
	return d, nil
}

// Relay is the embedded relay, or nil.
func (d *Data) Relay() *relay.Relay { return d.relay }

// Ready reports whether data is connected to its ctrl and ready.
func (d *Data) Ready() bool { return d.c.Ready() }

// Node is the application's handle on this component (Config.App).
func (d *Data) Node() *appliance.Node { return d.c.Node() }

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
			if err := d.c.SendMgmt(hellopicsv1.MsgType_MSG_TYPE_REPORT, rep); err != nil {
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

// Close stops the component: the application, then its sessions,
// gracefully, then the relay.
func (d *Data) Close() error {
	d.cancel()
	d.wg.Wait()
	err := d.c.Close()
	d.stopRelay()
	d.log.Info("stopped", "component", "data")
	return err
}

// MetricsAddr is where metrics are served, or nil.
func (d *Data) MetricsAddr() net.Addr { return d.c.MetricsAddr() }

// HealthAddr is where the gRPC health service is served, or nil.
func (d *Data) HealthAddr() net.Addr { return d.c.HealthAddr() }
