// Package agentsim is the front-end SNMP agent simulator of the MEDS data
// fast path (spec section 3): it answers GET and GETNEXT for the system
// group so standard SNMP tools reach it, takes MEDS commands as SNMP
// SetRequest fragments, answers each command with a response of the same
// id (an echo by default) sent as InformRequests (or SNMPv2-Traps) to the
// relay's notification address, and can send events and status blocks at
// a configured rate and size.
package agentsim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gosnmp/gosnmp"
	"github.com/hashicorp/go-hclog"

	"github.com/hellopics/hellopics/pkg/dgram"
	"github.com/hellopics/hellopics/pkg/meds"
)

// Config configures an Agent. Start from DefaultConfig.
type Config struct {
	// Addr is the UDP address the agent takes requests on. Default
	// "127.0.0.1:161"; port 0 picks a free port (see Agent.Addr).
	Addr string
	// NotifyAddr is the relay's notification address, where responses,
	// events and status blocks go. Default "127.0.0.1:162".
	NotifyAddr string
	// Security is what requests must carry: SNMPv2c community (default
	// "private", the relay's command community) or SNMPv3 USM, the agent
	// being the authoritative engine.
	Security meds.Security
	// ReadCommunity is an SNMPv2c community accepted for GET and GETNEXT
	// only (default "public"), so standard tools can read the system
	// group; empty accepts only Security.Community.
	ReadCommunity string
	// NotifySecurity is what notifications are sent with: SNMPv2c
	// community (default "public") or SNMPv3 USM toward the relay's
	// engine (discovered).
	NotifySecurity meds.Security
	// MaxMsgSize is the largest SNMP message sent, in octets (default
	// 1472, at least 484); notifications are fragmented to fit.
	MaxMsgSize int
	// MaxText is the largest command text accepted (default 65536).
	MaxText uint32
	// UseTraps sends SNMPv2-Traps instead of InformRequests (no answer,
	// no retry).
	UseTraps bool
	// InformTimeout is how long to wait for the answer to an inform
	// before sending it again (default 1 s).
	InformTimeout time.Duration
	// InformRetries is how many times an unanswered inform is sent again
	// (default 3).
	InformRetries int
	// Senders is how many responses may be in flight at once: with
	// SNMPv2c over one UDP socket, with SNMPv3 each from its own gosnmp
	// client and socket (default 8).
	Senders int
	// Window is how many notifications of one message may wait for
	// their answers at once (SNMPv2c; SNMPv3 sends one at a time).
	// Default 8.
	Window int
	// Queue is how many responses may wait for a sender; past it the
	// newest is dropped and counted (default 16384).
	Queue int
	// EventInterval is the time between two events; 0 sends none.
	EventInterval time.Duration
	// EventSize is the text size of an event in octets.
	EventSize int
	// StatusInterval is the time between two status blocks; 0 sends none.
	StatusInterval time.Duration
	// StatusSize is the text size of a status block in octets.
	StatusSize int
	// Respond makes the response text of a command; nil echoes the
	// command's text. It is called from one goroutine and must not keep
	// cmd.Text.
	Respond func(cmd meds.Message) []byte
	// SysDescr, SysName: the values of sysDescr.0 and sysName.0.
	SysDescr, SysName string
	// EngineBoots is the SNMPv3 snmpEngineBoots of the agent's engine;
	// 0 (the default) takes meds.BootsAt(start), which grows from one
	// start to the next.
	EngineBoots uint32
	// ReassemblyTimeout drops an incomplete command after this long
	// (default 5 s).
	ReassemblyTimeout time.Duration
}

// SysObjectID is the agent simulator's sysObjectID.0 value.
const SysObjectID = meds.OIDMeds + ".3.1"

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Addr:              "127.0.0.1:161",
		NotifyAddr:        "127.0.0.1:162",
		Security:          meds.Security{Version: gosnmp.Version2c, Community: "private"},
		ReadCommunity:     "public",
		NotifySecurity:    meds.Security{Version: gosnmp.Version2c, Community: "public"},
		MaxMsgSize:        meds.DefaultMaxMsgSize,
		MaxText:           meds.DefaultMaxText,
		InformTimeout:     time.Second,
		InformRetries:     3,
		Senders:           8,
		Window:            8,
		Queue:             16384,
		SysDescr:          "hellopics MEDS front-end agent simulator",
		SysName:           host,
		ReassemblyTimeout: 5 * time.Second,
	}
}

// Stats are the agent's counters since New.
type Stats struct {
	Requests        uint64 // SNMP messages received and accepted
	Dropped         uint64 // SNMP messages refused (decode, community, USM)
	Gets            uint64 // GET and GETNEXT answered
	Fragments       uint64 // SetRequest fragments taken
	BadFragments    uint64 // SetRequest fragments refused with an error-status
	Commands        uint64 // commands reassembled
	Responses       uint64 // responses sent whole
	Events          uint64 // events sent whole
	Status          uint64 // status blocks sent whole
	Notifications   uint64 // InformRequests or traps sent (one per fragment)
	NotifyFailures  uint64 // messages given up after the inform retries
	QueueDrops      uint64 // responses dropped because the send queue was full
	ExpiredCommands uint64 // incomplete commands dropped by the timeout
}

type counters struct {
	requests, dropped, gets, fragments, badFragments, commands atomic.Uint64
	responses, events, status, notifications, notifyFailures   atomic.Uint64
	queueDrops, expiredCommands                                atomic.Uint64
}

// Agent is a running agent simulator.
type Agent struct {
	cfg           Config
	log           hclog.Logger
	conn          *net.UDPConn
	dec           *meds.Decoder
	out           []byte        // answer buffer of the request loop
	w             *dgram.Writer // answers of the request loop, sent per batch
	readDec       *meds.Decoder // ReadCommunity, GET and GETNEXT only; nil if none
	reasm         *meds.Reassembler
	fragSize      int
	start         time.Time
	transfer      atomic.Uint32
	jobs          chan meds.Message // SNMPv3: responses waiting for a sender goroutine
	pipe          *meds.V2cSender   // SNMPv2c: the responses' sender
	c             counters
	unknownEngine uint32
	notInTime     uint32 // usmStatsNotInTimeWindows

	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once
}

// New checks cfg and opens the agent's UDP socket; Start starts serving.
func New(cfg Config, logger hclog.Logger) (*Agent, error) {
	d := DefaultConfig()
	if cfg.MaxMsgSize == 0 {
		cfg.MaxMsgSize = d.MaxMsgSize
	}
	if cfg.MaxText == 0 {
		cfg.MaxText = d.MaxText
	}
	if cfg.InformTimeout <= 0 {
		cfg.InformTimeout = d.InformTimeout
	}
	if cfg.Senders <= 0 {
		cfg.Senders = d.Senders
	}
	if cfg.Window <= 0 {
		cfg.Window = d.Window
	}
	if cfg.Queue <= 0 {
		cfg.Queue = d.Queue
	}
	if cfg.ReassemblyTimeout <= 0 {
		cfg.ReassemblyTimeout = d.ReassemblyTimeout
	}
	if cfg.MaxMsgSize < meds.MinMaxMsgSize {
		return nil, fmt.Errorf("agentsim: max message size %d below the SNMP minimum %d", cfg.MaxMsgSize, meds.MinMaxMsgSize)
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	dec, err := meds.NewDecoder(cfg.Security)
	if err != nil {
		return nil, fmt.Errorf("agentsim: request security: %w", err)
	}
	var readDec *meds.Decoder
	if cfg.Security.Version == gosnmp.Version2c && cfg.ReadCommunity != "" && cfg.ReadCommunity != cfg.Security.Community {
		readDec, err = meds.NewDecoder(meds.Security{Version: gosnmp.Version2c, Community: cfg.ReadCommunity})
		if err != nil {
			return nil, fmt.Errorf("agentsim: read community: %w", err)
		}
	}
	if err := cfg.NotifySecurity.Validate(); err != nil {
		return nil, fmt.Errorf("agentsim: notification security: %w", err)
	}
	fragSize, err := meds.FragmentDataSize(cfg.MaxMsgSize, cfg.NotifySecurity, true)
	if err != nil {
		return nil, fmt.Errorf("agentsim: %w", err)
	}
	maxData, _ := meds.FragmentDataSize(meds.MinMaxMsgSize, cfg.Security, false)
	maxCount := uint32((meds.HeaderLen+int(cfg.MaxText))/maxData + 1)
	ua, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("agentsim: request address %q: %w", cfg.Addr, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("agentsim: listen on %s: %w", cfg.Addr, err)
	}
	// Bursts of fragments from many relay senders must not be lost.
	_ = conn.SetReadBuffer(4 << 20)
	a := &Agent{
		cfg:     cfg,
		log:     logger.Named("agentsim").With("component", "agentsim"),
		conn:    conn,
		dec:     dec,
		readDec: readDec,
		reasm: meds.NewReassembler(meds.ReassemblerConfig{
			Timeout:    cfg.ReassemblyTimeout,
			MaxMessage: meds.HeaderLen + int(cfg.MaxText),
			MaxCount:   maxCount,
		}),
		fragSize: fragSize,
		start:    time.Now(),
	}
	if cfg.NotifySecurity.Version != gosnmp.Version2c { // SNMPv2c: Start makes a V2cSender
		a.jobs = make(chan meds.Message, cfg.Queue)
	}
	// A random first transfer id keeps a restarted agent's transfers
	// apart from the ones the relay still remembers.
	a.transfer.Store(rand.Uint32())
	if cfg.EngineBoots != 0 {
		dec.SetEngineClock(cfg.EngineBoots, a.start)
	}
	return a, nil
}

// SetNotifyAddr changes where notifications go; call it before Start
// (useful when the relay's port is known only after the agent's).
func (a *Agent) SetNotifyAddr(addr string) { a.cfg.NotifyAddr = addr }

// Addr returns the UDP address the agent takes requests on.
func (a *Agent) Addr() *net.UDPAddr { return a.conn.LocalAddr().(*net.UDPAddr) }

// Start starts the request loop, the response senders and the event and
// status generators. They run until ctx is done or Close is called.
func (a *Agent) Start(ctx context.Context) (err error) {
	ctx, a.cancel = context.WithCancel(ctx)
	var senders []sender
	defer func() {
		if err != nil {
			for _, s := range senders {
				s.close()
			}
			a.closePipe()
			a.cancel()
		}
	}()
	// SNMPv2c responses go through one asynchronous sender, SNMPv3 ones
	// through Senders goroutines with a gosnmp client each. The event
	// and status generators have a sender each, so that each stream
	// stays in order.
	responders := a.cfg.Senders
	if a.cfg.NotifySecurity.Version == gosnmp.Version2c {
		if a.pipe, err = a.newPipe(); err != nil {
			return err
		}
		responders = 0
	}
	for range responders + 2 {
		g, err := a.notifier()
		if err != nil {
			return err
		}
		senders = append(senders, g)
	}
	rd, err := dgram.NewReader(a.conn, serveBatch, 65536)
	if err == nil {
		a.w, err = dgram.NewWriter(a.conn, serveBatch)
	}
	if err != nil {
		return fmt.Errorf("agentsim: request socket: %w", err)
	}
	a.log.Info("agent simulator started", "addr", a.Addr().String(), "notify", a.cfg.NotifyAddr,
		"version", a.cfg.Security.Version.String(), "max_msg_size", a.cfg.MaxMsgSize, "fragment_data", a.fragSize)
	a.wg.Add(1)
	go func() { defer a.wg.Done(); a.serve(ctx, rd) }()
	for i := range responders {
		g := senders[i]
		a.wg.Add(1)
		go func() { defer a.wg.Done(); a.sendLoop(ctx, g) }()
	}
	a.wg.Add(2)
	go func() {
		defer a.wg.Done()
		a.generate(ctx, senders[responders], meds.TypeEvent, a.cfg.EventInterval, a.cfg.EventSize)
	}()
	go func() {
		defer a.wg.Done()
		a.generate(ctx, senders[responders+1], meds.TypeStatus, a.cfg.StatusInterval, a.cfg.StatusSize)
	}()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		<-ctx.Done()
		_ = a.conn.Close() // ends serve's read
		for _, s := range senders {
			s.close() // ends informs in flight
		}
		a.closePipe()
	}()
	return nil
}

// Close stops every goroutine the agent started and waits for them.
func (a *Agent) Close() error {
	a.closed.Do(func() {
		if a.cancel != nil {
			a.cancel()
		}
		_ = a.conn.Close()
		a.wg.Wait()
		st := a.Stats()
		a.log.Info("agent simulator stopped", "requests", st.Requests, "dropped", st.Dropped, "gets", st.Gets,
			"fragments", st.Fragments, "bad_fragments", st.BadFragments, "commands", st.Commands, "responses", st.Responses,
			"events", st.Events, "status", st.Status, "notifications", st.Notifications, "notify_failures", st.NotifyFailures,
			"queue_drops", st.QueueDrops, "expired_commands", st.ExpiredCommands)
	})
	return nil
}

// Stats returns a snapshot of the counters.
func (a *Agent) Stats() Stats {
	return Stats{
		Requests: a.c.requests.Load(), Dropped: a.c.dropped.Load(), Gets: a.c.gets.Load(),
		Fragments: a.c.fragments.Load(), BadFragments: a.c.badFragments.Load(), Commands: a.c.commands.Load(),
		Responses: a.c.responses.Load(), Events: a.c.events.Load(), Status: a.c.status.Load(),
		Notifications: a.c.notifications.Load(), NotifyFailures: a.c.notifyFailures.Load(),
		QueueDrops: a.c.queueDrops.Load(), ExpiredCommands: a.c.expiredCommands.Load(),
	}
}

// Send queues a message (normally a response, event or status block) to
// be sent to the relay as notifications. It reports false when the queue
// is full, and (SNMPv2c) before Start.
func (a *Agent) Send(m meds.Message) bool { return a.send(m, true) }

// send is Send; with now false an SNMPv2c message waits for the flush
// at the end of the request loop's batch.
func (a *Agent) send(m meds.Message, now bool) bool {
	if a.pipe != nil {
		b, tr := meds.AppendMessage(make([]byte, 0, m.EncodedLen()), m), a.transfer.Add(1)
		var err error
		if now {
			err = a.pipe.Send(b, tr)
		} else {
			err = a.pipe.Queue(b, tr)
		}
		if err != nil {
			a.c.queueDrops.Add(1)
			return false
		}
		return true
	}
	select {
	case a.jobs <- m:
		return true
	default:
		a.c.queueDrops.Add(1)
		return false
	}
}

// newPipe returns the SNMPv2c notification sender: one socket toward
// the relay, Senders messages and Window fragments of each in flight,
// Queue more waiting.
func (a *Agent) newPipe() (*meds.V2cSender, error) {
	pdu := gosnmp.InformRequest
	if a.cfg.UseTraps {
		pdu = gosnmp.SNMPv2Trap
	}
	log := a.log.Named("notify")
	cfg := meds.SenderConfig{
		PDU: pdu, Community: a.cfg.NotifySecurity.Community, FragmentSize: a.fragSize,
		Timeout: a.cfg.InformTimeout, Retries: a.cfg.InformRetries, Window: a.cfg.Window,
		MaxInFlight: a.cfg.Senders, MaxQueued: a.cfg.Queue, Uptime: a.uptime,
		OnDone: func(msg []byte, transfer uint32, err error) {
			h := meds.DecodeHeader(msg)
			switch {
			case errors.Is(err, meds.ErrSenderClosed): // stopping
			case err != nil:
				a.notDelivered(log, h.Type, h.ID, transfer, err)
			default:
				a.sent(h.Type, meds.FragmentCount(len(msg), a.fragSize))
			}
		},
	}
	// From the request socket when it can reach the relay: the request
	// loop then reads the informs' answers with the requests.
	if ua, err := net.ResolveUDPAddr("udp", a.cfg.NotifyAddr); err == nil && dgram.Reaches(a.conn, ua.AddrPort()) {
		p, err := meds.NewV2cSender(a.conn, ua.AddrPort(), cfg)
		if err != nil {
			return nil, fmt.Errorf("agentsim: notifications: %w", err)
		}
		return p, nil
	}
	p, err := meds.DialV2cSender(a.cfg.NotifyAddr, cfg)
	if err != nil {
		return nil, fmt.Errorf("agentsim: notifications: %w", err)
	}
	return p, nil
}

func (a *Agent) closePipe() {
	if a.pipe != nil {
		_ = a.pipe.Close()
	}
}

// notDelivered counts and logs a message the relay did not take.
func (a *Agent) notDelivered(log hclog.Logger, t meds.Type, id, transfer uint32, err error) {
	a.c.notifyFailures.Add(1)
	log.Warn("message not delivered to the relay", "type", t.String(), "id", id, "transfer", transfer, "peer", a.cfg.NotifyAddr, "error", err)
}

// sent counts a message the relay took, in fragments notifications.
func (a *Agent) sent(t meds.Type, fragments uint32) {
	a.c.notifications.Add(uint64(fragments))
	switch t {
	case meds.TypeResponse:
		a.c.responses.Add(1)
	case meds.TypeEvent:
		a.c.events.Add(1)
	case meds.TypeStatus:
		a.c.status.Add(1)
	}
}

func (a *Agent) uptime() uint32 { return uint32(time.Since(a.start) / (10 * time.Millisecond)) }

// sender sends whole messages as notifications, one per fragment, and
// waits for their answers (none for traps).
type sender interface {
	// sendMessage returns nil when every fragment was answered with
	// noError, a *meds.Refused when one was refused, or another error.
	sendMessage(uptime uint32, msg []byte, transfer uint32, size int) error
	close()
}

// gosnmpSender goes through gosnmp (SNMPv3), one fragment at a time.
type gosnmpSender struct {
	g      *gosnmp.GoSNMP
	inform bool
	vars   []gosnmp.SnmpPDU
}

func (s *gosnmpSender) sendMessage(uptime uint32, msg []byte, transfer uint32, size int) error {
	return meds.Split(msg, transfer, size, func(f meds.Fragment) error {
		s.vars = meds.NotificationVarbinds(s.vars, uptime, f)
		res, err := s.g.SendTrap(gosnmp.SnmpTrap{Variables: s.vars, IsInform: s.inform})
		if err != nil {
			return fmt.Errorf("fragment %d of %d: %w: %w", f.Index, f.Count, meds.ErrNoAnswer, err)
		}
		if s.inform && res != nil && res.Error != gosnmp.NoError {
			return &meds.Refused{Index: f.Index, Count: f.Count, Status: uint8(res.Error), ErrorIndex: res.ErrorIndex}
		}
		return nil
	})
}

func (s *gosnmpSender) close() { _ = s.g.Conn.Close() }

// fastSender is the SNMPv2c fast path.
type fastSender struct {
	conn   *net.UDPConn
	pdu    gosnmp.PDUType
	window int
	q      meds.V2cRequester
}

func (s *fastSender) sendMessage(uptime uint32, msg []byte, transfer uint32, size int) error {
	return s.q.SendMessage(s.pdu, uptime, msg, transfer, size, s.window)
}

func (s *fastSender) close() { _ = s.conn.Close() }

// notifier returns a sender with its own UDP socket toward the relay.
func (a *Agent) notifier() (sender, error) {
	sec := a.cfg.NotifySecurity
	if sec.Version == gosnmp.Version2c {
		ua, err := net.ResolveUDPAddr("udp", a.cfg.NotifyAddr)
		if err != nil {
			return nil, fmt.Errorf("agentsim: notification address %q: %w", a.cfg.NotifyAddr, err)
		}
		conn, err := net.DialUDP("udp", nil, ua)
		if err != nil {
			return nil, fmt.Errorf("agentsim: connect to %s: %w", a.cfg.NotifyAddr, err)
		}
		pdu := gosnmp.InformRequest
		if a.cfg.UseTraps {
			pdu = gosnmp.SNMPv2Trap
		}
		return &fastSender{conn: conn, pdu: pdu, window: a.cfg.Window, q: meds.V2cRequester{
			Conn: conn, Community: sec.Community, Timeout: a.cfg.InformTimeout, Retries: a.cfg.InformRetries,
		}}, nil
	}
	g, err := sec.Client(a.cfg.NotifyAddr, a.cfg.InformTimeout, a.cfg.InformRetries)
	if err != nil {
		return nil, fmt.Errorf("agentsim: notification client: %w", err)
	}
	if err := g.Connect(); err != nil {
		return nil, fmt.Errorf("agentsim: connect to %s: %w", a.cfg.NotifyAddr, err)
	}
	return &gosnmpSender{g: g, inform: !a.cfg.UseTraps}, nil
}

// serve is the request loop: one goroutine owns the socket's reads, the
// decoder and the reassembler. It reads the requests waiting in one
// system call (recvmmsg) and sends their answers together (sendmmsg).
func (a *Agent) serve(ctx context.Context, rd *dgram.Reader) {
	log := a.log.Named("snmp")
	lastExpire := time.Now()
	for {
		ms, err := rd.Read()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			log.Warn("read failed", "error", err)
			continue
		}
		now := time.Now()
		if now.Sub(lastExpire) > a.cfg.ReassemblyTimeout/5 {
			lastExpire = now
			a.reasm.Expire(now, func(e meds.Expired) {
				a.c.expiredCommands.Add(1)
				log.Warn("incomplete command dropped", "peer", e.Key.Sender.String(), "transfer", e.Key.Transfer,
					"have", e.Have, "count", e.Count, "age", e.Age)
			})
		}
		for _, m := range ms {
			a.handle(log, m.Buf, m.Addr, now)
		}
		// The responses to the commands of the batch first: they are
		// what a TPCE client waits for; the answers to the SetRequests
		// only free the relay's window.
		if a.pipe != nil {
			a.pipe.Flush()
		}
		if err := a.w.Flush(); err != nil && !errors.Is(err, net.ErrClosed) { // closed: stopping
			log.Warn("answers not sent", "error", err)
		}
	}
}

// serveBatch is how many requests the request loop reads, and answers,
// per system call.
const serveBatch = 16

// reply queues an answer; serve sends the batch.
func (a *Agent) reply(log hclog.Logger, b []byte, to netip.AddrPort) {
	if err := a.w.Add(b, to); err != nil && !errors.Is(err, net.ErrClosed) {
		log.Warn("answers not sent", "error", err)
	}
}

func (a *Agent) handle(log hclog.Logger, b []byte, from netip.AddrPort, now time.Time) {
	if a.cfg.Security.Version == gosnmp.Version2c || a.pipe != nil {
		if p, err := meds.ParseV2c(b); err == nil {
			if p.PDU == gosnmp.SetRequest && a.cfg.Security.Version == gosnmp.Version2c {
				a.setFast(log, &p, from, now)
				return
			}
			// The answer to an inform sent from this socket (a late
			// one is no bad request either).
			if p.PDU == gosnmp.GetResponse && a.pipe != nil && dgram.SameAddr(from, a.pipe.Peer()) {
				a.pipe.Answer(&p)
				return
			}
		}
	}
	p, discovery, err := a.dec.Decode(b)
	if errors.Is(err, meds.ErrCommunity) && a.readDec != nil {
		// The read community may GET and GETNEXT, nothing else.
		if rp, _, rerr := a.readDec.Decode(b); rerr == nil && (rp.PDUType == gosnmp.GetRequest || rp.PDUType == gosnmp.GetNextRequest) {
			p, err = rp, nil
		}
	}
	if err != nil {
		a.c.dropped.Add(1)
		log.Debug("request dropped", "peer", from.String(), "reason", err)
		if errors.Is(err, meds.ErrNotInTimeWindow) && p.MsgFlags&gosnmp.Reportable != 0 {
			a.notInTime++
			if rep, rerr := a.dec.TimeWindowReport(p, a.notInTime); rerr == nil {
				a.reply(log, rep, from)
			}
		}
		return
	}
	if discovery {
		a.unknownEngine++
		rep, err := a.dec.Report(p, a.unknownEngine)
		if err != nil {
			log.Warn("discovery report not built", "peer", from.String(), "error", err)
			return
		}
		a.reply(log, rep, from)
		return
	}
	a.c.requests.Add(1)
	switch p.PDUType {
	case gosnmp.GetRequest, gosnmp.GetNextRequest:
		a.c.gets.Add(1)
		vars := make([]gosnmp.SnmpPDU, len(p.Variables))
		for i, v := range p.Variables {
			vars[i] = a.lookup(v.Name, p.PDUType == gosnmp.GetNextRequest)
		}
		resp, err := a.dec.Response(p, gosnmp.NoError, 0, vars) // answers under p's own community
		if err != nil {
			log.Warn("get answer not built", "peer", from.String(), "error", err)
			return
		}
		a.reply(log, resp, from)
	case gosnmp.SetRequest:
		a.set(log, p, from, now)
	default:
		a.c.dropped.Add(1)
		log.Debug("unexpected PDU dropped", "peer", from.String(), "pdu", p.PDUType.String())
	}
}

// setFast takes a SetRequest parsed by the SNMPv2c fast path.
func (a *Agent) setFast(log hclog.Logger, p *meds.V2cPacket, from netip.AddrPort, now time.Time) {
	if string(p.Community) != a.cfg.Security.Community {
		a.c.dropped.Add(1)
		log.Debug("request dropped", "peer", from.String(), "reason", "wrong community for a SetRequest")
		return
	}
	a.c.requests.Add(1)
	f, err := p.Fragment(false, 0, 0)
	if err != nil {
		a.c.badFragments.Add(1)
		status, index := uint8(gosnmp.WrongValue), uint8(0)
		var fe *meds.FragmentError
		if errors.As(err, &fe) {
			status, index = fe.Status, uint8(fe.Index)
		}
		log.Warn("bad fragment refused", "peer", from.String(), "reason", err)
		a.out = meds.AppendV2cResponse(a.out[:0], p.Community, p.RequestID, status, index, p.VarBinds)
		a.reply(log, a.out, from)
		return
	}
	msg, res, err := a.reasm.Add(now, meds.Key{Sender: from, Transfer: f.Transfer}, f)
	status, index := uint8(0), uint8(0)
	if res == meds.Rejected {
		a.c.badFragments.Add(1)
		status, index = uint8(gosnmp.WrongValue), 2
		log.Warn("fragment refused by reassembly", "peer", from.String(), "transfer", f.Transfer, "reason", err)
	} else {
		a.c.fragments.Add(1)
	}
	a.out = meds.AppendV2cResponse(a.out[:0], p.Community, p.RequestID, status, index, p.VarBinds)
	a.reply(log, a.out, from)
	if res == meds.Delivered {
		a.command(log, msg, from, f.Transfer)
	}
}

func (a *Agent) set(log hclog.Logger, p *gosnmp.SnmpPacket, from netip.AddrPort, now time.Time) {
	f, err := meds.ExtractFragment(p.Variables, false, 0, 0)
	if err != nil {
		a.c.badFragments.Add(1)
		var fe *meds.FragmentError
		status, index := gosnmp.WrongValue, uint8(0)
		if errors.As(err, &fe) {
			status, index = gosnmp.SNMPError(fe.Status), uint8(fe.Index)
		}
		log.Warn("bad fragment refused", "peer", from.String(), "reason", err)
		if resp, err := a.dec.Response(p, status, index, p.Variables); err == nil {
			a.reply(log, resp, from)
		}
		return
	}
	msg, res, err := a.reasm.Add(now, meds.Key{Sender: from, Transfer: f.Transfer}, f)
	status, index := gosnmp.NoError, uint8(0)
	if res == meds.Rejected {
		a.c.badFragments.Add(1)
		status, index = gosnmp.WrongValue, 2
		log.Warn("fragment refused by reassembly", "peer", from.String(), "transfer", f.Transfer, "reason", err)
	} else {
		a.c.fragments.Add(1)
	}
	if resp, err := a.dec.Response(p, status, index, p.Variables); err == nil {
		a.reply(log, resp, from)
	} else {
		log.Warn("set answer not built", "peer", from.String(), "error", err)
	}
	if res == meds.Delivered {
		a.command(log, msg, from, f.Transfer)
	}
}

// command answers one reassembled command.
func (a *Agent) command(log hclog.Logger, msg []byte, from netip.AddrPort, transfer uint32) {
	cmd, err := meds.ParseMessage(msg, a.cfg.MaxText)
	if err != nil {
		log.Warn("reassembled command dropped", "peer", from.String(), "transfer", transfer, "reason", err)
		return
	}
	if cmd.Type != meds.TypeCommand {
		log.Warn("reassembled message dropped: not a command", "peer", from.String(), "type", cmd.Type.String(), "id", cmd.ID)
		return
	}
	a.c.commands.Add(1)
	// An echo: the SNMPv2c Send encodes the text at once; the SNMPv3
	// queue keeps the message, which needs its own copy then.
	text := cmd.Text
	if a.cfg.Respond != nil {
		text = a.cfg.Respond(cmd)
	} else if a.pipe == nil {
		text = append([]byte(nil), cmd.Text...)
	}
	if !a.send(meds.Message{Type: meds.TypeResponse, ID: cmd.ID, Text: text}, false) {
		log.Warn("response dropped: send queue full", "id", cmd.ID, "queue", a.cfg.Queue)
	}
}

// sendLoop sends queued messages as notifications with its own client.
func (a *Agent) sendLoop(ctx context.Context, g sender) {
	defer g.close()
	log := a.log.Named("notify")
	var buf []byte
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-a.jobs:
			buf = a.notify(log, g, buf, m)
		}
	}
}

// notify sends m as one notification per fragment and counts it.
func (a *Agent) notify(log hclog.Logger, g sender, buf []byte, m meds.Message) []byte {
	buf = meds.AppendMessage(buf[:0], m)
	transfer := a.transfer.Add(1)
	err := g.sendMessage(a.uptime(), buf, transfer, a.fragSize)
	if err != nil {
		a.notDelivered(log, m.Type, m.ID, transfer, err)
		return buf
	}
	a.sent(m.Type, meds.FragmentCount(len(buf), a.fragSize))
	return buf
}

// generate sends events or status blocks every interval, numbered from 1.
func (a *Agent) generate(ctx context.Context, g sender, t meds.Type, every time.Duration, size int) {
	defer g.close()
	if every <= 0 {
		return
	}
	log := a.log.Named(t.String())
	tick := time.NewTicker(every)
	defer tick.Stop()
	var seq uint32
	var buf []byte
	text := make([]byte, size)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		seq++
		fill(text, t, seq)
		buf = a.notify(log, g, buf, meds.Message{Type: t, ID: seq, Text: text})
	}
}

// fill writes a recognisable pattern: "<type> <seq> " then letters.
func fill(b []byte, t meds.Type, seq uint32) {
	head := fmt.Appendf(nil, "%s %d ", t, seq)
	n := copy(b, head)
	for i := n; i < len(b); i++ {
		b[i] = 'a' + byte(i%26)
	}
}
