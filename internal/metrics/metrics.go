// Package metrics serves a daemon's Prometheus metrics over HTTP and holds
// the small helpers the daemons share to describe them. Metric names
// follow Prometheus conventions: a hellopics_ prefix, _total for counters,
// base units (_seconds, _bytes).
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a registry with the Go runtime and process
// collectors, for one daemon.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Server serves /metrics (and /healthz, always 200 while the process
// runs) on one address.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// Serve listens on addr and serves reg until Close.
func Serve(addr string, reg *prometheus.Registry, log hclog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	s := &Server{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "error", err)
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String(), "path", "/metrics")
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server, waiting up to 2 s for scrapes in progress.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}

// CollectorFunc adapts a function that emits const metrics at scrape
// time into a prometheus.Collector (an "unchecked" collector: it
// describes nothing up front, which lets label sets vary).
type CollectorFunc func(ch chan<- prometheus.Metric)

// Describe sends nothing: the collector is unchecked.
func (f CollectorFunc) Describe(chan<- *prometheus.Desc) {}

// Collect calls f.
func (f CollectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

// Counter emits a counter value.
func Counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

// Gauge emits a gauge value.
func Gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// Bool is 1 for true, 0 for false.
func Bool(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Links counts a component's pconn sessions per link ("mgmt", "data",
// "ctrl") and whether each is up now.
type Links struct {
	sessions *prometheus.CounterVec
	up       *prometheus.GaugeVec
}

// NewLinks returns the link instruments, registered on reg.
func NewLinks(reg prometheus.Registerer) *Links {
	l := &Links{
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hellopics_sessions_total",
			Help: "pconn sessions by link and event (established, ended, connect_failed).",
		}, []string{"link", "event"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hellopics_link_up",
			Help: "Sessions up now, by link.",
		}, []string{"link"}),
	}
	reg.MustRegister(l.sessions, l.up)
	return l
}

// Established counts a new session on link.
func (l *Links) Established(link string) {
	if l != nil {
		l.sessions.WithLabelValues(link, "established").Inc()
		l.up.WithLabelValues(link).Inc()
	}
}

// Ended counts the end of a session on link.
func (l *Links) Ended(link string) {
	if l != nil {
		l.sessions.WithLabelValues(link, "ended").Inc()
		l.up.WithLabelValues(link).Dec()
	}
}

// Failed counts a failed connection attempt on link.
func (l *Links) Failed(link string) {
	if l != nil {
		l.sessions.WithLabelValues(link, "connect_failed").Inc()
	}
}

// ReadyDesc describes hellopics_handshake_ready, 1 while a component's
// handshake is complete.
var ReadyDesc = prometheus.NewDesc("hellopics_handshake_ready", "1 while this component's handshake is complete (ready).", nil, nil)
