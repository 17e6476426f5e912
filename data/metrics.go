package data

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hellopics/hellopics/data/relay"
	"github.com/hellopics/hellopics/internal/metrics"
)

var (
	descRelayMessages  = prometheus.NewDesc("hellopics_relay_messages_total", "MEDS messages on the TPCE ports, by port and direction (in: from clients, out: to clients).", []string{"port", "direction"}, nil)
	descRelayBytes     = prometheus.NewDesc("hellopics_relay_bytes_total", "Octets on the TPCE ports, by port and direction.", []string{"port", "direction"}, nil)
	descRelayClients   = prometheus.NewDesc("hellopics_relay_clients", "TPCE clients connected now, by port.", []string{"port"}, nil)
	descRelayBacklog   = prometheus.NewDesc("hellopics_relay_backlog_messages", "Messages kept for a port without a client.", []string{"port"}, nil)
	descRelayClosed    = prometheus.NewDesc("hellopics_relay_clients_closed_total", "TPCE clients closed by the relay, by port and reason.", []string{"port", "reason"}, nil)
	descRelayRefused   = prometheus.NewDesc("hellopics_relay_clients_refused_total", "TPCE connections closed at once because a client limit was reached, by port and reason (max_clients, max_clients_per_ip).", []string{"port", "reason"}, nil)
	descRelayAcceptErr = prometheus.NewDesc("hellopics_relay_accept_errors_total", "Failed accepts on a TPCE port (EMFILE...), each followed by a back-off of 5 ms doubling to 1 s.", []string{"port"}, nil)
	descRelayFragments = prometheus.NewDesc("hellopics_relay_snmp_fragments_total", "MEDS fragments over SNMP, by direction (sent: SetRequests taken by the agent, received: from notifications).", []string{"direction"}, nil)
	descRelayRetries   = prometheus.NewDesc("hellopics_relay_snmp_retries_total", "SetRequests sent again after a timeout.", nil, nil)
	descRelayFailures  = prometheus.NewDesc("hellopics_relay_send_failures_total", "Commands not delivered to the agent after the retries.", nil, nil)
	descRelayErrors    = prometheus.NewDesc("hellopics_relay_errors_sent_total", "Relay errors (type 5) sent to clients.", nil, nil)
	descRelayDrops     = prometheus.NewDesc("hellopics_relay_drops_total", "Packets and messages dropped, by reason.", []string{"reason"}, nil)
	descRelayPending   = prometheus.NewDesc("hellopics_relay_pending_commands", "Commands waiting for their response.", nil, nil)
	descAgentUp        = prometheus.NewDesc("hellopics_relay_agent_reachable", "1 when the last sysUpTime.0 poll of the agent was answered.", nil, nil)
)

// collectRelay emits the relay's counters.
func collectRelay(r *relay.Relay, ch chan<- prometheus.Metric) {
	s := r.Stats()
	for _, p := range []struct {
		name string
		st   relay.PortStats
	}{{"commands", s.Commands}, {"events", s.Events}, {"status", s.Status}} {
		if !p.st.Open {
			continue
		}
		metrics.Counter(ch, descRelayMessages, float64(p.st.MessagesIn), p.name, "in")
		metrics.Counter(ch, descRelayMessages, float64(p.st.MessagesOut), p.name, "out")
		metrics.Counter(ch, descRelayBytes, float64(p.st.BytesIn), p.name, "in")
		metrics.Counter(ch, descRelayBytes, float64(p.st.BytesOut), p.name, "out")
		metrics.Gauge(ch, descRelayClients, float64(p.st.Clients), p.name)
		metrics.Gauge(ch, descRelayBacklog, float64(p.st.Backlog), p.name)
		metrics.Counter(ch, descRelayClosed, float64(p.st.SlowClosed), p.name, "slow")
		metrics.Counter(ch, descRelayClosed, float64(p.st.Violations), p.name, "protocol_violation")
		metrics.Counter(ch, descRelayClosed, float64(p.st.Stalled), p.name, "stalled")
		metrics.Counter(ch, descRelayClosed, float64(p.st.Idle), p.name, "idle")
		metrics.Counter(ch, descRelayRefused, float64(p.st.Refused), p.name, "max_clients")
		metrics.Counter(ch, descRelayRefused, float64(p.st.RefusedPerIP), p.name, "max_clients_per_ip")
		metrics.Counter(ch, descRelayAcceptErr, float64(p.st.AcceptErrors), p.name)
		metrics.Counter(ch, descRelayDrops, float64(p.st.BacklogDropped), "backlog_full_"+p.name)
	}
	metrics.Counter(ch, descRelayFragments, float64(s.FragmentsSent), "sent")
	metrics.Counter(ch, descRelayFragments, float64(s.FragmentsReceived), "received")
	metrics.Counter(ch, descRelayRetries, float64(s.Retries))
	metrics.Counter(ch, descRelayFailures, float64(s.SendFailures))
	metrics.Counter(ch, descRelayErrors, float64(s.RelayErrors))
	d := s.Dropped
	for reason, v := range map[string]uint64{
		"decode": d.Decode, "version": d.Version, "community": d.Community, "usm": d.USM, "time_window": d.TimeWindow, "pdu": d.PDU,
		"fragment": d.Fragment, "reassembly": d.Reassembly, "expired": d.Expired, "message": d.Message,
		"source": d.Source, "replay": d.Replay,
		"wrong_type": d.WrongType, "no_port": d.NoPort, "relay_error_lost": d.RelayErrorLost,
		"late_response": d.LateResponse,
		"unknown_id":    d.UnknownID,
	} {
		metrics.Counter(ch, descRelayDrops, float64(v), reason)
	}
	metrics.Gauge(ch, descRelayPending, float64(s.PendingCommands))
	metrics.Gauge(ch, descAgentUp, metrics.Bool(s.AgentReachable))
}
