package appliance

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hellopics/hellopics/internal/metrics"
	"github.com/hellopics/hellopics/pkg/handshake"
	"github.com/hellopics/hellopics/pkg/tier"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

var (
	descMaster      = prometheus.NewDesc("hellopics_mgmt_master", "1 while this management instance is the master.", nil, nil)
	descEpoch       = prometheus.NewDesc("hellopics_mgmt_epoch", "Mastership epoch this instance knows.", nil, nil)
	descSyncVersion = prometheus.NewDesc("hellopics_mgmt_sync_version", "Last state version sent (master) or applied (backup).", nil, nil)
	descSyncLag     = prometheus.NewDesc("hellopics_mgmt_sync_lag", "State updates a backup has not acknowledged (on the master).", []string{"peer"}, nil)
	descPeerInSync  = prometheus.NewDesc("hellopics_mgmt_peer_in_sync", "1 while the backup holds the master's state and acknowledged every update (on the master).", []string{"peer"}, nil)
	descPeerAlive   = prometheus.NewDesc("hellopics_mgmt_peer_alive", "1 while the other management instance's heartbeats arrive.", []string{"peer"}, nil)
	descPriority    = prometheus.NewDesc("hellopics_mgmt_priority", "Election priority this instance announces: -priority less the weights of its failing tracked checks (at least 0), 0 in the fault state.", nil, nil)
	descFault       = prometheus.NewDesc("hellopics_mgmt_fault", "1 while this instance is in the fault state (a tracked check of weight 0 fails): it is never master.", nil, nil)
	descTrackUp     = prometheus.NewDesc("hellopics_mgmt_track_up", "1 while the tracked health check passes, 0 while it fails (after -track-fall failed runs).", []string{"check"}, nil)
	descCycle       = prometheus.NewDesc("hellopics_hello_cycle_running", "1 while the pair's Hello cycle runs.", []string{"pair"}, nil)
	descReady       = prometheus.NewDesc("hellopics_component_ready", "1 while the component is ready (handshake complete).", []string{"pair", "role"}, nil)
	descConnected   = prometheus.NewDesc("hellopics_component_connected", "1 while the component has a session to this instance.", []string{"pair", "role"}, nil)
	descSent        = prometheus.NewDesc("hellopics_hellos_sent_total", "Hellos sent.", []string{"pair"}, nil)
	descReceived    = prometheus.NewDesc("hellopics_hellos_received_total", "Hellos that came back with the expected number.", []string{"pair"}, nil)
	descMissed      = prometheus.NewDesc("hellopics_hellos_missed_total", "Hellos not back when the next was due.", []string{"pair"}, nil)
	descOutOfOrder  = prometheus.NewDesc("hellopics_hellos_out_of_order_total", "Hellos that came back with an unexpected number.", []string{"pair"}, nil)
	descLastSeq     = prometheus.NewDesc("hellopics_hello_last_seq", "Number of the last hello sent.", []string{"pair"}, nil)
)

// mgmtMetrics are the instruments updated as things happen; the rest is
// read from the status at scrape time.
type mgmtMetrics struct {
	rtt *prometheus.HistogramVec
	// outage is how long a pair's cycle was silent across a failover,
	// seen by the new master.
	outage   prometheus.Histogram
	sessions *prometheus.CounterVec
	// haRefused counts HA connections and messages refused, by reason.
	haRefused *prometheus.CounterVec
	// haSendErrors counts HA messages that could not be sent for
	// another reason than the peer being away, by message type.
	haSendErrors *prometheus.CounterVec
	refused      *prometheus.CounterVec
	// notifyRuns counts notify script runs by state and result;
	// notifySeconds is their duration; notifyState is 1 for the state
	// the scripts were last told.
	notifyRuns    *prometheus.CounterVec
	notifySeconds prometheus.Histogram
	notifyState   *prometheus.GaugeVec
}

func newMgmtMetrics() *mgmtMetrics {
	return &mgmtMetrics{
		rtt: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hellopics_hello_rtt_seconds",
			Help:    "Round-trip time of returned hellos.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16), // 50 µs to 1.6 s
		}, []string{"pair"}),
		outage: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hellopics_mgmt_failover_outage_seconds",
			Help:    "Time a pair's Hello cycle was silent across a failover: from the old master's last returned hello to the first under this master (the hellos due in between count as missed).",
			Buckets: prometheus.ExponentialBuckets(5e-3, 2, 12), // 5 ms to 10 s
		}),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hellopics_sessions_total",
			Help: "Component sessions by event: established, ended.",
		}, []string{"event"}),
		haRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hellopics_mgmt_ha_refused_total",
			Help: "Connections and messages from mgmt peers refused, by reason: unknown_peer, source, epoch_range, epoch_jump, handover, field, malformed, component_epoch (a refused component's epoch beyond the bounds).",
		}, []string{"reason"}),
		haSendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hellopics_mgmt_ha_send_errors_total",
			Help: "Messages to mgmt peers not sent although the peer is connected (too large, queue full), by type.",
		}, []string{"type"}),
		refused: tier.NewRefused("mgmt"),
		notifyRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hellopics_mgmt_notify_runs_total",
			Help: "Notify script runs by the state they were told (master, backup, fault) and result (ok, failed, timeout).",
		}, []string{"state", "result"}),
		notifySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hellopics_mgmt_notify_duration_seconds",
			Help:    "How long notify scripts ran.",
			Buckets: prometheus.ExponentialBuckets(1e-3, 4, 10), // 1 ms to 262 s
		}),
		notifyState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hellopics_mgmt_notify_state",
			Help: "1 for the state (master, backup, fault) this instance last asserted to its notify scripts.",
		}, []string{"state"}),
	}
}

// Collectors are the instance's metrics: the component and HA links,
// the registry and Hello counters, mastership and sync, refusals, and
// the application's (hellopics_mgmt_app_*). The daemon registers them
// beside its own (the operator API's).
func (s *Management) Collectors() []prometheus.Collector {
	cs := []prometheus.Collector{s.metrics.rtt, s.metrics.outage, s.metrics.sessions, s.metrics.refused, s.metrics.haRefused,
		s.metrics.haSendErrors, s.appSyncErrors, s.metrics.notifyRuns, s.metrics.notifySeconds, s.metrics.notifyState,
		metrics.CollectorFunc(s.collect)}
	if s.cfg.TLS != nil {
		cs = append(cs, s.cfg.TLS.Collector())
	}
	return append(cs, s.rt.Collectors()...)
}

func (s *Management) collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	metrics.Listener(ch, "components", s.srv)
	metrics.Listener(ch, "ha", s.haScrape.Load())
	st, err := s.Status(ctx, nil)
	if err != nil {
		return
	}
	metrics.Gauge(ch, descMaster, metrics.Bool(st.GetRole() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER))
	metrics.Gauge(ch, descEpoch, float64(st.GetEpoch()))
	metrics.Gauge(ch, descSyncVersion, float64(st.GetSyncVersion()))
	metrics.Gauge(ch, descPriority, float64(st.GetPriority()))
	metrics.Gauge(ch, descFault, metrics.Bool(st.GetFault()))
	for _, t := range st.GetTracks() {
		metrics.Gauge(ch, descTrackUp, metrics.Bool(t.GetOk()), t.GetName())
	}
	for _, p := range st.GetMgmtPeers() {
		metrics.Gauge(ch, descPeerAlive, metrics.Bool(p.GetAlive()), p.GetId())
		metrics.Gauge(ch, descSyncLag, float64(p.GetSyncLag()), p.GetId())
		if st.GetRole() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
			metrics.Gauge(ch, descPeerInSync, metrics.Bool(p.GetInSync()), p.GetId())
		}
	}
	for _, p := range st.GetPairs() {
		id := p.GetPairId()
		metrics.Gauge(ch, descCycle, metrics.Bool(p.GetCycleRunning()), id)
		for _, c := range []*hellopicsv1.ComponentStatus{p.GetCtrl(), p.GetData()} {
			if c == nil {
				continue
			}
			role := handshake.RoleName(c.GetRole())
			metrics.Gauge(ch, descReady, metrics.Bool(c.GetState() == hellopicsv1.ComponentState_COMPONENT_STATE_READY), id, role)
			metrics.Gauge(ch, descConnected, metrics.Bool(c.GetState() != hellopicsv1.ComponentState_COMPONENT_STATE_DOWN &&
				c.GetState() != hellopicsv1.ComponentState_COMPONENT_STATE_UNSPECIFIED), id, role)
		}
		c := p.GetCounters()
		metrics.Counter(ch, descSent, float64(c.GetSent()), id)
		metrics.Counter(ch, descReceived, float64(c.GetReceived()), id)
		metrics.Counter(ch, descMissed, float64(c.GetMissed()), id)
		metrics.Counter(ch, descOutOfOrder, float64(c.GetOutOfOrder()), id)
		metrics.Gauge(ch, descLastSeq, float64(c.GetLastSeq()), id)
	}
}
