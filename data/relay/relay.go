// Package relay is the MEDS relay of the hellopics data component, wire
// compatible with "tsi": TPCE clients connect over TCP to a commands, an
// events and a status port and speak MEDS (spec section 1); the relay
// carries their commands to the front-end SNMP agent as SetRequest
// fragments and turns the agent's InformRequests (or SNMPv2-Traps) back
// into MEDS responses, events and status blocks (spec section 2).
//
// The data component embeds it with New, Start, Stats and Close; the
// "hellopics tsi" command runs it alone. See docs/meds-relay.md.
package relay

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gosnmp/gosnmp"
	"github.com/hashicorp/go-hclog"

	"github.com/hellopics/hellopics/internal/ratelog"
	"github.com/hellopics/hellopics/pkg/dgram"
	"github.com/hellopics/hellopics/pkg/meds"
)

// Relay is a MEDS relay. Create it with New, run it with Start, stop it
// with Close.
type Relay struct {
	cfg      Config
	log      hclog.Logger
	fragSize int // medsData octets per SetRequest

	ports  [3]*port // by portKind; nil when not configured
	notify *net.UDPConn
	allow  []netip.Prefix // notification sources: the agent's addresses and AgentAllow
	dec    *meds.Decoder

	reasmMu sync.Mutex
	reasm   *meds.Reassembler

	pending *pendingTable // relay id -> who sent the command

	// nextID numbers commands toward the agent (relay ids), nextTransfer
	// the medsTransfer of their SetRequests. Both start at a random value
	// per relay, so that a restarted process's numbers are not the ones
	// the agent may still answer or remember for the process before it
	// (see New).
	nextID       atomic.Uint32
	nextTransfer atomic.Uint32
	sendQ        chan sendJob // SNMPv3: commands waiting for a sender goroutine
	// SNMPv2c: one asynchronous sender, and a place taken in it
	// (Senders in flight plus SendQueue waiting) by each command.
	pipe  *meds.V2cSender
	slots chan struct{}

	agentMu     sync.Mutex // guards the three below, written by the poller
	agentUp     bool
	agentPolled time.Time
	agentUptime time.Duration

	unknownEngID uint32 // usmStatsUnknownEngineIDs; notification loop only
	notInTime    uint32 // usmStatsNotInTimeWindows; notification loop only

	connMu   sync.Mutex // guards conns and perIP: the client places of MaxClients, MaxClientsPerIP
	conns    int
	perIP    map[netip.Addr]int
	tcpLog   *ratelog.Logger // accept failures and refusals
	logEvery time.Duration   // how often at most a kind of line a peer can trigger is logged

	c      counters
	cancel context.CancelFunc
	wg     sync.WaitGroup
	state  sync.Mutex
	run    bool
	closed bool
}

// sendJob is one command on its way to the agent.
type sendJob struct {
	c       *client
	id      uint32 // the client's id
	relayID uint32
	frame   []byte // encoded with relayID
}

// New checks cfg and returns a Relay that is not started. logger may be
// nil (no logs); the relay logs under logger.Named("relay").
func New(cfg Config, logger hclog.Logger) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	fragSize, err := meds.FragmentDataSize(cfg.MaxMsgSize, cfg.CommandSecurity, false)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	dec, err := meds.NewDecoder(cfg.NotifySecurity)
	if err != nil {
		return nil, fmt.Errorf("relay: notification security: %w", err)
	}
	dec.SetReplayCache(cfg.ReplayCache)
	// The smallest fragment a conforming agent sends sets how many
	// fragments a message may take.
	minData, err := meds.FragmentDataSize(meds.MinMaxMsgSize, cfg.NotifySecurity, true)
	if err != nil {
		minData = 16
	}
	r := &Relay{
		cfg:      cfg,
		log:      logger.Named("relay").With("component", "relay"),
		fragSize: fragSize,
		dec:      dec,
		reasm: meds.NewReassembler(meds.ReassemblerConfig{
			Timeout:    cfg.ReassemblyTimeout,
			MaxMessage: meds.HeaderLen + int(cfg.MaxText),
			MaxCount:   uint32((meds.HeaderLen+int(cfg.MaxText))/minData + 1),
		}),
		pending: newPendingTable(cfg.MaxPending),
		perIP:   make(map[netip.Addr]int),
	}
	// A data process restarted on the same notification address gets the
	// agent's late answers to its predecessor's commands; numbered from
	// 1 again, they would be taken for answers to its own (and the
	// agent's reassembly, keyed by sender and transfer, could mix the two
	// processes' fragments). From a random start they are unknown ids.
	r.nextID.Store(rand.Uint32())
	r.nextTransfer.Store(rand.Uint32())
	r.logEvery = time.Second
	if cfg.LogEveryError {
		r.logEvery = 0
	}
	r.tcpLog = ratelog.New(r.log, r.logEvery)
	if cfg.CommandSecurity.Version == gosnmp.Version2c {
		r.slots = make(chan struct{}, cfg.Senders+cfg.SendQueue)
	} else {
		r.sendQ = make(chan sendJob, cfg.SendQueue)
	}
	return r, nil
}

// Start opens the configured TCP ports and the notification socket,
// connects the SNMP senders and starts every goroutine. They stop when
// ctx is done or Close is called; Close waits for them either way.
func (r *Relay) Start(ctx context.Context) (err error) {
	r.state.Lock()
	defer r.state.Unlock()
	if r.run || r.closed {
		return errors.New("relay: Start called twice or after Close")
	}
	ctx, cancel := context.WithCancel(ctx)
	var closers []func()
	defer func() {
		if err != nil {
			cancel()
			for _, c := range closers {
				c()
			}
		}
	}()
	for kind, addr := range []string{r.cfg.CommandsAddr, r.cfg.EventsAddr, r.cfg.StatusAddr} {
		if addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("relay: listen on %s port %s: %w", portKind(kind), addr, err)
		}
		closers = append(closers, func() { _ = ln.Close() })
		r.ports[kind] = newPort(r, portKind(kind), ln)
	}
	if r.allow, err = agentSources(ctx, r.cfg.AgentAddr, r.cfg.AgentAllow); err != nil {
		return err
	}
	ua, err := net.ResolveUDPAddr("udp", r.cfg.NotifyAddr)
	if err != nil {
		return fmt.Errorf("relay: notification address %q: %w", r.cfg.NotifyAddr, err)
	}
	r.notify, err = net.ListenUDP("udp", ua)
	if err != nil {
		return fmt.Errorf("relay: listen for notifications on %s: %w", r.cfg.NotifyAddr, err)
	}
	closers = append(closers, func() { _ = r.notify.Close() })
	if r.cfg.UDPReadBuffer > 0 {
		if err := r.notify.SetReadBuffer(r.cfg.UDPReadBuffer); err != nil {
			r.log.Warn("notification socket receive buffer not set", "octets", r.cfg.UDPReadBuffer, "error", err)
		}
	}
	nrd, err := dgram.NewReader(r.notify, notifyBatch, 65536) // not gosnmp's 4096: a whole UDP datagram always fits
	if err != nil {
		return fmt.Errorf("relay: notification socket: %w", err)
	}
	nw, err := dgram.NewWriter(r.notify, notifyBatch)
	if err != nil {
		return fmt.Errorf("relay: notification socket: %w", err)
	}
	// SNMPv2c: one asynchronous sender; SNMPv3: Senders gosnmp clients.
	var senders []*gosnmpSetter
	if r.slots != nil {
		if r.pipe, err = r.newPipe(); err != nil {
			return err
		}
		closers = append(closers, func() { _ = r.pipe.Close() })
	} else {
		for range r.cfg.Senders {
			s, err := r.newSetter()
			if err != nil {
				return err
			}
			closers = append(closers, s.close)
			senders = append(senders, s)
		}
	}
	var poller *gosnmp.GoSNMP
	if r.cfg.PollInterval > 0 {
		if poller, err = r.agentClient(); err != nil {
			return err
		}
	}

	r.cancel = cancel
	r.run = true
	for _, p := range r.ports {
		if p != nil {
			r.wg.Add(1)
			go func() { defer r.wg.Done(); p.accept(ctx) }()
		}
	}
	for _, g := range senders {
		r.wg.Add(1)
		go func() { defer r.wg.Done(); r.sendLoop(ctx, g) }()
	}
	r.wg.Add(2)
	go func() { defer r.wg.Done(); r.notifyLoop(ctx, nrd, nw) }()
	go func() { defer r.wg.Done(); r.janitor(ctx) }()
	if poller != nil {
		r.wg.Add(1)
		go func() { defer r.wg.Done(); r.pollLoop(ctx, poller) }()
	}
	// Closing the sockets is what ends the blocking reads and accepts,
	// and the SNMP requests in flight.
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		<-ctx.Done()
		_ = r.notify.Close()
		if r.pipe != nil {
			_ = r.pipe.Close()
		}
		for _, s := range senders {
			s.close()
		}
		if poller != nil {
			_ = poller.Conn.Close()
		}
		for _, p := range r.ports {
			if p != nil {
				p.closeAll()
			}
		}
	}()
	a := r.Addrs()
	r.log.Info("relay started", "commands", addrString(a.Commands), "events", addrString(a.Events), "status", addrString(a.Status),
		"notify", addrString(a.Notify), "agent", r.cfg.AgentAddr, "version", r.cfg.CommandSecurity.Version.String(),
		"max_msg_size", r.cfg.MaxMsgSize, "fragment_data", r.fragSize, "notify_from", prefixesString(r.allow),
		"max_clients", r.cfg.MaxClients, "max_clients_per_ip", r.cfg.MaxClientsPerIP)
	return nil
}

// agentSources returns the prefixes notifications are accepted from:
// every address of the agent's host, and extra.
func agentSources(ctx context.Context, agent string, extra []netip.Prefix) ([]netip.Prefix, error) {
	host, _, err := net.SplitHostPort(agent)
	if err != nil {
		return nil, fmt.Errorf("relay: agent address %q: %w", agent, err)
	}
	var ips []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil && !a.IsUnspecified() {
		ips = []netip.Addr{a}
	} else if host == "" || err == nil { // unspecified: this host
		ips = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
	} else {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if ips, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host); err != nil {
			return nil, fmt.Errorf("relay: agent host %q (notifications are accepted from its addresses): %w", host, err)
		}
	}
	out := make([]netip.Prefix, 0, len(ips)+len(extra))
	for _, a := range ips {
		a = a.Unmap().WithZone("")
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	for _, p := range extra {
		out = append(out, p.Masked())
	}
	return out, nil
}

// allowed reports whether a notification from a may be decoded.
func (r *Relay) allowed(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range r.allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func prefixesString(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		if p.IsSingleIP() {
			s[i] = p.Addr().String()
		} else {
			s[i] = p.String()
		}
	}
	return strings.Join(s, ",")
}

// Close stops every goroutine the relay started, closes every socket and
// connection, and waits for them. It may be called more than once.
func (r *Relay) Close() error {
	r.state.Lock()
	if r.closed {
		r.state.Unlock()
		return nil
	}
	r.closed = true
	running := r.run
	r.state.Unlock()
	if !running {
		return nil
	}
	r.cancel()
	r.wg.Wait()
	r.logStats("relay stopped")
	return nil
}

// Addrs are the addresses a started relay listens on; nil for a port
// that is not configured.
type Addrs struct {
	Commands net.Addr // commands TCP port
	Events   net.Addr // events TCP port
	Status   net.Addr // status TCP port
	Notify   net.Addr // notification UDP socket
}

// Addrs returns the bound addresses (useful with port 0).
func (r *Relay) Addrs() Addrs {
	var a Addrs
	for kind, p := range r.ports {
		if p == nil {
			continue
		}
		switch portKind(kind) {
		case portCommands:
			a.Commands = p.ln.Addr()
		case portEvents:
			a.Events = p.ln.Addr()
		case portStatus:
			a.Status = p.ln.Addr()
		}
	}
	if r.notify != nil {
		a.Notify = r.notify.LocalAddr()
	}
	return a
}

func addrString(a net.Addr) string {
	if a == nil {
		return "-"
	}
	return a.String()
}

// Stats returns a snapshot of every counter.
func (r *Relay) Stats() Stats {
	pending := r.pending.len()
	r.reasmMu.Lock()
	reasmPending, _ := r.reasm.Pending()
	r.reasmMu.Unlock()
	r.agentMu.Lock()
	up, polled, uptime := r.agentUp, r.agentPolled, r.agentUptime
	r.agentMu.Unlock()
	c := &r.c
	return Stats{
		Commands: r.ports[portCommands].stats(), Events: r.ports[portEvents].stats(), Status: r.ports[portStatus].stats(),
		CommandsSent: c.commandsSent.Load(), FragmentsSent: c.fragmentsSent.Load(), SNMPBytesSent: c.snmpBytesSent.Load(),
		Retries: c.retries.Load(), SendFailures: c.sendFailures.Load(), AgentRefusals: c.agentRefusals.Load(),
		RelayErrors: c.relayErrors.Load(), PendingCommands: pending, PendingExpired: c.pendingExpired.Load(),
		SendQueue:     r.sendQueued(),
		Notifications: c.notifications.Load(), NotificationBytes: c.notificationBytes.Load(),
		InformsAnswered: c.informsAnswered.Load(), Reports: c.reports.Load(),
		FragmentsReceived: c.fragmentsReceived.Load(), Duplicates: c.duplicates.Load(), Reassembled: c.reassembled.Load(),
		ReassemblyPending: reasmPending,
		Responses:         c.responses.Load(), ResponsesRerouted: c.responsesRerouted.Load(),
		EventsReceived: c.events.Load(), StatusBlocks: c.statusBlocks.Load(),
		Dropped: DropStats{
			Decode: c.dropDecode.Load(), Version: c.dropVersion.Load(), Community: c.dropCommunity.Load(),
			USM: c.dropUSM.Load(), TimeWindow: c.dropTimeWindow.Load(), PDU: c.dropPDU.Load(), Fragment: c.dropFragment.Load(),
			Source: c.dropSource.Load(), Replay: c.dropReplay.Load(),
			Reassembly: c.dropReassembly.Load(), Expired: c.dropExpired.Load(), Message: c.dropMessage.Load(),
			WrongType: c.dropWrongType.Load(), NoPort: c.dropNoPort.Load(), RelayErrorLost: c.dropRelayErrorLost.Load(),
			LateResponse: c.dropLateResponse.Load(), UnknownID: c.dropUnknownID.Load(),
		},
		AgentReachable: up, AgentLastPoll: polled, AgentUptime: uptime, AgentPollFailures: c.pollFailures.Load(),
	}
}

func (r *Relay) logStats(msg string) {
	s := r.Stats()
	args := []any{"commands_in", s.Commands.MessagesIn, "responses", s.Responses, "rerouted", s.ResponsesRerouted,
		"events", s.EventsReceived, "status", s.StatusBlocks, "relay_errors", s.RelayErrors,
		"fragments_sent", s.FragmentsSent, "retries", s.Retries, "send_failures", s.SendFailures,
		"notifications", s.Notifications, "duplicates", s.Duplicates,
		"clients", s.Commands.Clients + s.Events.Clients + s.Status.Clients,
		"clients_refused", s.Commands.Refused + s.Events.Refused + s.Status.Refused + s.Commands.RefusedPerIP + s.Events.RefusedPerIP + s.Status.RefusedPerIP,
		"accept_errors", s.Commands.AcceptErrors + s.Events.AcceptErrors + s.Status.AcceptErrors,
		"clients_stalled", s.Commands.Stalled, "clients_idle", s.Commands.Idle,
		"agent_reachable", s.AgentReachable, "pending", s.PendingCommands}
	r.log.Info(msg, append(args, s.Dropped.logFields()...)...)
}

// submit renumbers a command and hands it to the SNMP side. It blocks
// while Senders commands are in flight and SendQueue more wait, and
// reports false when the relay or the client is closing.
func (r *Relay) submit(ctx context.Context, c *client, m meds.Message) bool {
	if r.pipe != nil {
		select {
		case r.slots <- struct{}{}:
		case <-ctx.Done():
			return false
		case <-c.done:
			return false
		}
	}
	relayID := r.nextID.Add(1)
	frame := meds.AppendMessage(make([]byte, 0, m.EncodedLen()), meds.Message{Type: meds.TypeCommand, Flags: m.Flags, ID: relayID, Text: m.Text})
	if r.pending.put(route{c: c, id: m.ID, relayID: relayID, at: time.Now()}) {
		r.c.pendingExpired.Add(1)
	}
	if r.pipe != nil {
		if err := r.pipe.Send(frame, r.nextTransfer.Add(1)); err != nil { // closed
			<-r.slots
			r.forget(relayID)
			return false
		}
		return true
	}
	select {
	case r.sendQ <- sendJob{c: c, id: m.ID, relayID: relayID, frame: frame}:
		return true
	case <-ctx.Done():
	case <-c.done:
	}
	r.forget(relayID)
	return false
}

// sendQueued is how many commands wait to be sent.
func (r *Relay) sendQueued() int {
	if r.pipe != nil {
		_, queued := r.pipe.InFlight()
		return queued
	}
	return len(r.sendQ)
}

func (r *Relay) forget(relayID uint32) {
	r.pending.take(relayID)
}

// relayError answers command id of client c with a type 5 message.
func (r *Relay) relayError(c *client, id uint32, reason string) {
	// The spec wants one line of UTF-8.
	reason = strings.ToValidUTF8(strings.ReplaceAll(strings.ReplaceAll(reason, "\r", " "), "\n", " "), "?")
	frame := meds.AppendMessage(nil, meds.Message{Type: meds.TypeRelayError, ID: id, Text: []byte(reason)})
	if c.gone.Load() || !c.send(frame) {
		r.c.dropRelayErrorLost.Add(1)
		c.log.Warn("relay error not delivered: client gone", "id", id, "reason", reason)
		return
	}
	r.c.relayErrors.Add(1)
	c.log.Warn("relay error sent", "id", id, "reason", reason)
}

// janitor expires incomplete transfers and forgotten routes, and logs
// the counters every StatsInterval.
func (r *Relay) janitor(ctx context.Context) {
	every := min(r.cfg.ReassemblyTimeout/5, time.Second)
	tick := time.NewTicker(every)
	defer tick.Stop()
	lastStats := time.Now()
	log := r.log.Named("reassembly")
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			r.reasmMu.Lock()
			r.reasm.Expire(now, func(e meds.Expired) {
				r.c.dropExpired.Add(1)
				log.Warn("incomplete transfer dropped", "peer", e.Key.Sender.String(), "transfer", e.Key.Transfer,
					"have", e.Have, "count", e.Count, "octets", e.Octets, "age", e.Age)
			})
			r.reasmMu.Unlock()
			r.c.pendingExpired.Add(uint64(r.pending.expire(now, r.cfg.PendingTimeout)))
			if r.cfg.StatsInterval > 0 && now.Sub(lastStats) >= r.cfg.StatsInterval {
				lastStats = now
				r.logStats("relay stats")
			}
		}
	}
}
