package tier

import (
	"net"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hellopics/hellopics/internal/health"
	"github.com/hellopics/hellopics/internal/metrics"
)

// EndpointConfig says which optional servers a component runs and how it
// reports its readiness.
type EndpointConfig struct {
	// MetricsAddr serves Prometheus metrics at /metrics; "" runs none.
	MetricsAddr string
	// HealthAddr serves the gRPC health service; "" runs none.
	HealthAddr string
	// Service is the component's health service name ("hellopics.ctrl").
	Service string
	// Collect, if set, adds metrics read at scrape time.
	Collect func(ch chan<- prometheus.Metric)
	// Extra are more collectors to register (histograms and the like).
	Extra []prometheus.Collector
	// OnReadyChange is told each change of readiness (systemd, say).
	OnReadyChange func(ready bool)
}

// Endpoints are a component's metrics and health servers and its
// readiness, reported to both, to the log and to OnReadyChange. A nil
// *Endpoints, or one without servers, is valid and does nothing.
type Endpoints struct {
	cfg     EndpointConfig
	log     hclog.Logger
	links   *metrics.Links
	metrics *metrics.Server
	health  *health.Server
	ready   atomic.Bool // written on the loop, read by scrapes
}

// StartEndpoints starts the servers cfg asks for, NOT_SERVING at first.
func StartEndpoints(cfg EndpointConfig, log hclog.Logger) (*Endpoints, error) {
	e := &Endpoints{cfg: cfg, log: log}
	if cfg.MetricsAddr != "" {
		reg := metrics.NewRegistry()
		e.links = metrics.NewLinks(reg)
		reg.MustRegister(metrics.CollectorFunc(func(ch chan<- prometheus.Metric) {
			metrics.Gauge(ch, metrics.ReadyDesc, metrics.Bool(e.Ready()))
			if cfg.Collect != nil {
				cfg.Collect(ch)
			}
		}))
		reg.MustRegister(cfg.Extra...)
		s, err := metrics.Serve(cfg.MetricsAddr, reg, log.Named("metrics"))
		if err != nil {
			return nil, err
		}
		e.metrics = s
	}
	if cfg.HealthAddr != "" {
		s, err := health.Serve(cfg.HealthAddr, cfg.Service, log.Named("health"))
		if err != nil {
			e.Close()
			return nil, err
		}
		e.health = s
	}
	return e, nil
}

// Links counts the component's sessions per link (nil-safe).
func (e *Endpoints) Links() *metrics.Links {
	if e == nil {
		return nil
	}
	return e.links
}

// Ready is the readiness last set.
func (e *Endpoints) Ready() bool { return e != nil && e.ready.Load() }

// SetReady records the component's readiness; on a change it updates the
// health service, logs at DEBUG and calls OnReadyChange. Call it from the
// component's loop after every machine step.
func (e *Endpoints) SetReady(r bool) {
	if e == nil || r == e.ready.Load() {
		return
	}
	e.ready.Store(r)
	if r {
		e.log.Debug("handshake complete: ready", "step", "ready")
	}
	if e.health != nil {
		e.health.SetServing(e.cfg.Service, r)
	}
	if e.cfg.OnReadyChange != nil {
		e.cfg.OnReadyChange(r)
	}
}

// MetricsAddr is where metrics are served, or nil.
func (e *Endpoints) MetricsAddr() net.Addr {
	if e == nil || e.metrics == nil {
		return nil
	}
	return e.metrics.Addr()
}

// HealthAddr is where the health service is served, or nil.
func (e *Endpoints) HealthAddr() net.Addr {
	if e == nil || e.health == nil {
		return nil
	}
	return e.health.Addr()
}

// Close stops the servers.
func (e *Endpoints) Close() {
	if e == nil {
		return
	}
	if e.metrics != nil {
		e.metrics.Close()
	}
	if e.health != nil {
		e.health.Close()
	}
}

// Reason is an end-of-session error as a log value: "closed" for nil.
func Reason(err error) string {
	if err == nil {
		return "closed"
	}
	return err.Error()
}
