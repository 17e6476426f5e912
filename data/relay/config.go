package relay

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/hellopics/hellopics/pkg/meds"
)

// Config configures a Relay. Start from DefaultConfig and change what
// differs; Validate says what is wrong with it.
type Config struct {
	// CommandsAddr is the TCP address of the commands port ("host:port",
	// port 0 picks one). Empty: the port is not opened. tsi -commands.
	CommandsAddr string
	// EventsAddr is the TCP address of the events port; empty: not
	// opened. tsi -events.
	EventsAddr string
	// StatusAddr is the TCP address of the status port; empty: not
	// opened. tsi -status.
	StatusAddr string

	// AgentAddr is the agent's UDP address for SetRequests and polls,
	// "host:port" (the agent listens on UDP 161 by default). Required.
	AgentAddr string
	// NotifyAddr is the UDP address the relay receives InformRequests and
	// SNMPv2-Traps on. Default ":162".
	NotifyAddr string
	// AgentAllow are the source addresses, besides the agent's own, that
	// notifications are accepted from. The agent's are AgentAddr's host
	// resolved when the relay starts (every address of the name; the
	// loopback addresses when the host is empty or unspecified). Any
	// source port is accepted: net-snmp's snmpinform and an agent's
	// notification socket send from a port of their own. A notification
	// from any other address is dropped unanswered, counted (Dropped.Source)
	// and logged (rate-limited), before it is decoded. Add the prefix of
	// an agent that sends from another address (a multi-homed host, a
	// NAT); 0.0.0.0/0 and ::/0 accept anyone (not recommended).
	AgentAllow []netip.Prefix

	// CommandSecurity is what SetRequests and polls are sent with:
	// SNMPv2c with a community (no default: Validate refuses an empty
	// one), or SNMPv3 USM (the agent's engine is discovered).
	CommandSecurity meds.Security
	// NotifySecurity is what notifications must carry: SNMPv2c with a
	// community (no default), or SNMPv3 USM with the relay as the
	// authoritative engine (NotifySecurity.EngineID), recommended.
	NotifySecurity meds.Security

	// ReplayCache is how many authenticated SNMPv3 notifications are
	// remembered so that a replay inside the 150 s time window is
	// refused (Dropped.Replay); when full, the oldest is forgotten and
	// notifications not newer than it are refused too. Default
	// meds.DefaultReplayCache (65536, about 5 MiB; 436 a second over the
	// whole window).
	ReplayCache int

	// MaxText is the largest MEDS text accepted, in octets; a header
	// announcing more is refused before its text is read. Default 65536.
	MaxText uint32
	// MaxMsgSize is the largest SNMP message sent, in octets, which sets
	// the fragment size. Default 1472; 484 (RFC 3417) works.
	MaxMsgSize int
	// SNMPTimeout is how long the relay waits for the answer to a
	// SetRequest before sending it again. Default 1 s.
	SNMPTimeout time.Duration
	// SNMPRetries is how many times an unanswered SetRequest is sent
	// again before the command is answered with a relay error. Default 3.
	SNMPRetries int
	// Senders is how many commands may be in flight toward the agent at
	// once: with SNMPv2c over one UDP socket, with SNMPv3 each over its
	// own gosnmp client and socket. Default 16.
	Senders int
	// FragmentWindow is how many SetRequests of one command may wait for
	// their answers at once (SNMPv2c; SNMPv3 sends one at a time).
	// Default 8.
	FragmentWindow int
	// SendQueue is how many more commands may wait to be sent; a commands
	// connection whose command finds it full waits (TCP back-pressure).
	// Default 4096.
	SendQueue int

	// Backlog is how many messages a port keeps while it has no client,
	// delivered oldest first to the next one; past it the oldest is
	// dropped and counted. Default 1024.
	Backlog int
	// ClientQueue is how many messages a client may fall behind; past it
	// the relay closes that client with a logged reason. Default 4096.
	ClientQueue int

	// MaxClients is how many TPCE clients the relay serves at once, on
	// its three ports together; a connection past it is closed at once,
	// counted (refused, reason max_clients) and logged (rate-limited).
	// Default 256.
	MaxClients int
	// MaxClientsPerIP is how many of those may come from one remote IP
	// address; past it likewise (reason max_clients_per_ip). Default 64.
	MaxClientsPerIP int
	// StallTimeout closes a commands client that has sent part of a
	// message (a header, or part of a text) and then nothing more for
	// this long: a well-behaved client sends a message whole. 0: never.
	// Default 30 s.
	StallTimeout time.Duration
	// IdleTimeout closes a commands client that sends nothing at all for
	// this long between messages. Off by default (0): a TPCE client may
	// stay connected and silent for hours waiting for an operator, and
	// events and status clients only listen (they are never idle-closed);
	// MaxClients and MaxClientsPerIP bound what silent clients can take.
	IdleTimeout time.Duration

	// ReassemblyTimeout drops a transfer that stays incomplete this long.
	// Default 5 s.
	ReassemblyTimeout time.Duration
	// MaxPending is how many commands may wait for their response at
	// once; past it the oldest is forgotten (its response, if it comes,
	// goes to every commands client). Default 65536.
	MaxPending int
	// PendingTimeout forgets which client sent a command that got no
	// response for this long; a later response goes to every commands
	// client. Default 10 min.
	PendingTimeout time.Duration
	// PollInterval is how often the agent's sysUpTime.0 is read to tell
	// whether it is reachable; 0 disables polling. Default 5 s.
	PollInterval time.Duration
	// StatsInterval is how often the counters are logged; 0 disables it.
	// Default 1 min.
	StatsInterval time.Duration
	// LogEveryError logs every dropped packet and message; by default a
	// repeated reason is logged once a second with a count of the ones
	// held back. tsi -vperror.
	LogEveryError bool

	// OnResponse, if set, is called with the time from a command's arrival
	// to its response being queued to the client that sent it, for each
	// response routed back (used for a latency histogram). It runs on the
	// relay's notification goroutine and must not block.
	OnResponse func(latency time.Duration)
	// UDPReadBuffer is the notification socket's receive buffer in
	// octets (SO_RCVBUF), so bursts are not lost. Default 4 MiB.
	UDPReadBuffer int
}

// DefaultConfig returns the defaults described on Config, with no port
// opened and no agent address.
func DefaultConfig() Config {
	return Config{
		NotifyAddr:        ":162",
		CommandSecurity:   meds.Security{Version: gosnmp.Version2c},
		NotifySecurity:    meds.Security{Version: gosnmp.Version2c},
		ReplayCache:       meds.DefaultReplayCache,
		MaxText:           meds.DefaultMaxText,
		MaxMsgSize:        meds.DefaultMaxMsgSize,
		SNMPTimeout:       time.Second,
		SNMPRetries:       3,
		Senders:           16,
		FragmentWindow:    8,
		SendQueue:         4096,
		Backlog:           1024,
		ClientQueue:       4096,
		MaxClients:        256,
		MaxClientsPerIP:   64,
		StallTimeout:      30 * time.Second,
		ReassemblyTimeout: 5 * time.Second,
		MaxPending:        65536,
		PendingTimeout:    10 * time.Minute,
		PollInterval:      5 * time.Second,
		StatsInterval:     time.Minute,
		UDPReadBuffer:     4 << 20,
	}
}

// Validate reports the first field of c that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.AgentAddr == "" {
		errs = append(errs, errors.New("AgentAddr is required"))
	}
	if c.NotifyAddr == "" {
		errs = append(errs, errors.New("NotifyAddr is required"))
	}
	if c.CommandsAddr == "" && c.EventsAddr == "" && c.StatusAddr == "" {
		errs = append(errs, errors.New("no TCP port configured (CommandsAddr, EventsAddr, StatusAddr)"))
	}
	if c.MaxText == 0 {
		errs = append(errs, errors.New("MaxText must be positive"))
	}
	if c.MaxMsgSize < meds.MinMaxMsgSize {
		errs = append(errs, fmt.Errorf("MaxMsgSize %d is below the SNMP minimum %d", c.MaxMsgSize, meds.MinMaxMsgSize))
	}
	if c.SNMPTimeout <= 0 || c.SNMPRetries < 0 {
		errs = append(errs, fmt.Errorf("SNMPTimeout %v must be positive and SNMPRetries %d not negative", c.SNMPTimeout, c.SNMPRetries))
	}
	if c.Senders <= 0 || c.FragmentWindow <= 0 || c.SendQueue <= 0 || c.MaxPending <= 0 || c.Backlog <= 0 || c.ClientQueue <= 0 {
		errs = append(errs, errors.New("the fields Senders, FragmentWindow, SendQueue, MaxPending, Backlog and ClientQueue must be positive"))
	}
	if c.MaxClients <= 0 || c.MaxClientsPerIP <= 0 {
		errs = append(errs, fmt.Errorf("MaxClients %d and MaxClientsPerIP %d must be positive", c.MaxClients, c.MaxClientsPerIP))
	}
	if c.StallTimeout < 0 || c.IdleTimeout < 0 {
		errs = append(errs, fmt.Errorf("StallTimeout %v and IdleTimeout %v must not be negative (0: off)", c.StallTimeout, c.IdleTimeout))
	}
	if c.ReassemblyTimeout <= 0 || c.PendingTimeout <= 0 || c.PollInterval < 0 || c.StatsInterval < 0 {
		errs = append(errs, errors.New("the fields ReassemblyTimeout and PendingTimeout must be positive, PollInterval and StatsInterval not negative"))
	}
	if err := c.CommandSecurity.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("CommandSecurity: %w", err))
	}
	if err := c.NotifySecurity.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("NotifySecurity: %w", err))
	}
	if len(errs) == 0 {
		if _, err := meds.FragmentDataSize(c.MaxMsgSize, c.CommandSecurity, false); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("relay: invalid config: %w", err)
	}
	return nil
}
