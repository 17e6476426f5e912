package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hellopics/hellopics/pkg/pconn"
)

var (
	descListenerSessions = prometheus.NewDesc("hellopics_listener_sessions",
		"Sessions established now on a pconn listener.", []string{"listener"}, nil)
	descListenerAccepted = prometheus.NewDesc("hellopics_listener_accepted_total",
		"Connections accepted by a pconn listener, refused ones included.", []string{"listener"}, nil)
	descListenerRefused = prometheus.NewDesc("hellopics_listener_refused_total",
		"Connections and sessions a pconn listener refused or closed for what the peer did, by reason: "+
			"full (MaxSessions), per_host (MaxSessionsPerHost), filter (an address not allowed), protocol (an invalid frame), identify_timeout, tls, accept_error.",
		[]string{"listener", "reason"}, nil)
)

// Listener emits a pconn listener's counters (pconn.Server.Stats) under
// the name listener ("components", "ha", "data"). A nil server emits
// nothing.
func Listener(ch chan<- prometheus.Metric, listener string, srv *pconn.Server) {
	if srv == nil {
		return
	}
	st := srv.Stats()
	Gauge(ch, descListenerSessions, float64(st.Sessions), listener)
	Counter(ch, descListenerAccepted, float64(st.Accepted), listener)
	for _, r := range []struct {
		reason string
		n      uint64
	}{
		{"full", st.RefusedFull},
		{"per_host", st.RefusedPerHost},
		{"filter", st.RefusedFilter},
		{"protocol", st.ProtocolErrors},
		{"identify_timeout", st.IdentifyTimeouts},
		{"tls", st.TLSHandshakeFailures},
		{"accept_error", st.AcceptErrors},
	} {
		Counter(ch, descListenerRefused, float64(r.n), listener, r.reason)
	}
}
