package relay

import (
	"sync/atomic"
	"time"
)

// PortStats are the counters of one TCP port.
type PortStats struct {
	Open           bool   // the port is configured and listening
	Clients        int    // clients connected now
	Accepted       uint64 // clients accepted since start
	SlowClosed     uint64 // clients closed because their queue was full
	Refused        uint64 // connections closed at once: MaxClients reached
	RefusedPerIP   uint64 // connections closed at once: MaxClientsPerIP reached for their address
	AcceptErrors   uint64 // accepts that failed (EMFILE...), each followed by a back-off
	Stalled        uint64 // clients closed after StallTimeout inside a message
	Idle           uint64 // clients closed after IdleTimeout without a message
	Violations     uint64 // clients closed for a protocol violation
	MessagesIn     uint64 // MEDS messages read from clients (commands)
	BytesIn        uint64 // octets read from clients, discarded ones included
	DiscardedBytes uint64 // octets read and discarded on events and status connections
	MessagesOut    uint64 // MEDS messages queued to clients (one per client)
	BytesOut       uint64 // octets written to clients
	Backlog        int    // messages kept now for want of a client
	BacklogDropped uint64 // messages dropped from a full backlog
}

// DropStats counts the SNMP packets and messages dropped, by reason.
type DropStats struct {
	Source         uint64 // notifications from an address that is not the agent's (nor in AgentAllow), not decoded
	Replay         uint64 // authenticated SNMPv3 messages seen before (a replay) or older than the replay cache covers
	Decode         uint64 // packets that do not decode as SNMP
	Version        uint64 // packets of another SNMP version
	Community      uint64 // SNMPv2c packets with a wrong community
	USM            uint64 // SNMPv3 packets failing USM checks (time window apart)
	TimeWindow     uint64 // authenticated SNMPv3 packets outside the engine's time window (replays, senders out of step)
	PDU            uint64 // packets of an unexpected PDU type
	Fragment       uint64 // notifications that are not valid fragments
	Reassembly     uint64 // fragments refused by the reassembler (limits, inconsistency)
	Expired        uint64 // transfers that never completed
	Message        uint64 // reassembled messages that are not valid MEDS
	WrongType      uint64 // reassembled messages of a type the agent may not send
	NoPort         uint64 // messages for a port that is not configured
	RelayErrorLost uint64 // relay errors whose client was gone
	LateResponse   uint64 // agent responses to commands already answered with a relay error
	UnknownID      uint64 // agent responses under a relay id this relay is not waiting for (another process's, or expired)
}

// Stats is a snapshot of the relay's counters, from Relay.Stats. All
// counts are since Start.
type Stats struct {
	Commands PortStats // the commands port
	Events   PortStats // the events port
	Status   PortStats // the status port

	CommandsSent    uint64 // commands delivered whole to the agent
	FragmentsSent   uint64 // SetRequests answered with noError
	SNMPBytesSent   uint64 // octets of MEDS data sent in SetRequests
	Retries         uint64 // SetRequests sent again after a timeout
	SendFailures    uint64 // commands not delivered after the retries
	AgentRefusals   uint64 // SetRequests answered with an error-status
	RelayErrors     uint64 // relay errors sent to clients
	PendingCommands int    // commands waiting for their response
	PendingExpired  uint64 // commands forgotten after PendingTimeout or past MaxPending
	SendQueue       int    // commands waiting for a sender now

	Notifications     uint64 // SNMP packets received on the notification socket
	NotificationBytes uint64 // octets of those packets
	InformsAnswered   uint64 // Responses sent to InformRequests
	Reports           uint64 // SNMPv3 discovery Reports sent
	FragmentsReceived uint64 // valid fragments received
	Duplicates        uint64 // duplicate fragments ignored
	Reassembled       uint64 // messages delivered by reassembly
	ReassemblyPending int    // incomplete transfers now

	Responses         uint64 // responses routed to the client that sent the command
	ResponsesRerouted uint64 // responses sent to every commands client (their sender gone)
	EventsReceived    uint64 // events received from the agent
	StatusBlocks      uint64 // status blocks received from the agent

	Dropped DropStats // what was dropped, by reason

	AgentReachable    bool          // the last poll of sysUpTime.0 was answered
	AgentLastPoll     time.Time     // when the agent was last polled
	AgentUptime       time.Duration // the agent's sysUpTime at the last answered poll
	AgentPollFailures uint64        // polls not answered
}

type portCounters struct {
	accepted, slowClosed, violations, messagesIn, bytesIn, discarded atomic.Uint64
	messagesOut, bytesOut, backlogDropped                            atomic.Uint64
	refusedTotal, refusedPerIP, acceptErrors, stalled, idle          atomic.Uint64
}

type counters struct {
	commandsSent, fragmentsSent, snmpBytesSent, retries, sendFailures atomic.Uint64
	agentRefusals, relayErrors, pendingExpired                        atomic.Uint64
	notifications, notificationBytes, informsAnswered, reports        atomic.Uint64
	fragmentsReceived, duplicates, reassembled                        atomic.Uint64
	responses, responsesRerouted, events, statusBlocks                atomic.Uint64

	dropDecode, dropVersion, dropCommunity, dropUSM, dropTimeWindow, dropPDU, dropFragment atomic.Uint64
	dropReassembly, dropExpired, dropMessage, dropWrongType, dropNoPort                    atomic.Uint64
	dropRelayErrorLost, dropSource, dropReplay, dropLateResponse, dropUnknownID            atomic.Uint64

	pollFailures atomic.Uint64
}

// logFields returns the drops as log keys: dropped, the total, then
// dropped_<reason> for each reason that counted any.
func (d DropStats) logFields() []any {
	reasons := []struct {
		key string
		n   uint64
	}{
		{"dropped_source", d.Source}, {"dropped_replay", d.Replay}, {"dropped_decode", d.Decode},
		{"dropped_version", d.Version}, {"dropped_community", d.Community}, {"dropped_usm", d.USM},
		{"dropped_time_window", d.TimeWindow}, {"dropped_pdu", d.PDU}, {"dropped_fragment", d.Fragment},
		{"dropped_reassembly", d.Reassembly}, {"dropped_expired", d.Expired}, {"dropped_message", d.Message},
		{"dropped_wrong_type", d.WrongType}, {"dropped_no_port", d.NoPort}, {"dropped_relay_error_lost", d.RelayErrorLost},
		{"dropped_late_response", d.LateResponse}, {"dropped_unknown_id", d.UnknownID},
	}
	var total uint64
	var out []any
	for _, r := range reasons {
		total += r.n
		if r.n != 0 {
			out = append(out, r.key, r.n)
		}
	}
	return append([]any{"dropped", total}, out...)
}
