package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/gosnmp/gosnmp"
	"github.com/hashicorp/go-hclog"

	"github.com/hellopics/hellopics/pkg/dgram"
	"github.com/hellopics/hellopics/pkg/meds"
)

// agentClient returns a connected gosnmp client toward the agent.
func (r *Relay) agentClient() (*gosnmp.GoSNMP, error) {
	g, err := r.cfg.CommandSecurity.Client(r.cfg.AgentAddr, r.cfg.SNMPTimeout, r.cfg.SNMPRetries)
	if err != nil {
		return nil, fmt.Errorf("relay: agent client: %w", err)
	}
	g.OnRetry = func(*gosnmp.GoSNMP) { r.c.retries.Add(1) }
	if err := g.Connect(); err != nil {
		return nil, fmt.Errorf("relay: connect to agent %s: %w", r.cfg.AgentAddr, err)
	}
	return g, nil
}

// gosnmpSetter sends whole commands to the agent through gosnmp
// (SNMPv3), one SetRequest per fragment, one at a time.
type gosnmpSetter struct {
	g    *gosnmp.GoSNMP
	vars []gosnmp.SnmpPDU
}

// sendMessage returns nil when every fragment was taken, a
// *meds.Refused when the agent refused one, or another error.
func (s *gosnmpSetter) sendMessage(frame []byte, transfer uint32, size int) error {
	defer func() {
		for i := range s.vars {
			s.vars[i] = gosnmp.SnmpPDU{} // do not keep the frame alive
		}
	}()
	return meds.Split(frame, transfer, size, func(f meds.Fragment) error {
		s.vars = meds.FragmentVarbinds(s.vars, f)
		res, err := s.g.Set(s.vars)
		if err != nil {
			return fmt.Errorf("fragment %d of %d: %w: %w", f.Index, f.Count, meds.ErrNoAnswer, err)
		}
		if res.Error != gosnmp.NoError {
			return &meds.Refused{Index: f.Index, Count: f.Count, Status: uint8(res.Error), ErrorIndex: res.ErrorIndex}
		}
		return nil
	})
}

func (s *gosnmpSetter) close() { _ = s.g.Conn.Close() }

// newSetter returns a gosnmp setter (SNMPv3) with its own UDP socket
// toward the agent.
func (r *Relay) newSetter() (*gosnmpSetter, error) {
	g, err := r.agentClient()
	if err != nil {
		return nil, err
	}
	return &gosnmpSetter{g: g}, nil
}

// newPipe returns the SNMPv2c fast path: one socket toward the agent,
// Senders commands and FragmentWindow fragments of each in flight.
func (r *Relay) newPipe() (*meds.V2cSender, error) {
	p, err := meds.DialV2cSender(r.cfg.AgentAddr, meds.SenderConfig{
		PDU: gosnmp.SetRequest, Community: r.cfg.CommandSecurity.Community, FragmentSize: r.fragSize,
		Timeout: r.cfg.SNMPTimeout, Retries: r.cfg.SNMPRetries, Window: r.cfg.FragmentWindow,
		MaxInFlight: r.cfg.Senders, MaxQueued: r.cfg.SendQueue,
		OnRetry: func() { r.c.retries.Add(1) },
		OnDone:  r.commandDone,
	})
	if err != nil {
		return nil, fmt.Errorf("relay: agent %s: %w", r.cfg.AgentAddr, err)
	}
	return p, nil
}

// commandDone counts a command the fast path finished and answers a
// failed one with a relay error. It runs under the sender's lock.
func (r *Relay) commandDone(frame []byte, transfer uint32, err error) {
	<-r.slots
	switch {
	case err == nil:
		r.c.commandsSent.Add(1)
		r.c.fragmentsSent.Add(uint64(meds.FragmentCount(len(frame), r.fragSize)))
		r.c.snmpBytesSent.Add(uint64(len(frame)))
	case errors.Is(err, meds.ErrSenderClosed): // the relay is closing
	default:
		r.commandFailed(meds.DecodeHeader(frame).ID, transfer, r.sendError(err))
	}
}

// commandFailed answers the command relayID, whose SetRequests the agent
// did not answer, with a relay error to the client that sent it, and
// leaves a tombstone so that a response still to come is dropped (one
// answer per command). When the command is no longer pending, its
// response came already (the agent took it; only its Set answers were
// lost) or its route expired: no relay error then.
func (r *Relay) commandFailed(relayID, transfer uint32, err error) {
	rt, ok := r.pending.fail(relayID)
	if !ok {
		r.c.sendFailures.Add(1)
		r.log.Named("snmp").Warn("command not delivered, but no longer pending (answered already, or forgotten): no relay error sent",
			"relay_id", relayID, "transfer", transfer, "error", err)
		return
	}
	r.notDelivered(rt.c, rt.id, relayID, transfer, err)
}

// notDelivered counts and logs command id of client c, which the agent
// did not take, and answers it with a relay error.
func (r *Relay) notDelivered(c *client, id, relayID, transfer uint32, err error) {
	r.c.sendFailures.Add(1)
	c.log.Warn("command not delivered", "id", id, "relay_id", relayID, "transfer", transfer, "error", err)
	r.relayError(c, id, err.Error())
}

// sendLoop delivers queued commands to the agent, one SetRequest per
// fragment, with its own setter (and UDP socket).
func (r *Relay) sendLoop(ctx context.Context, s *gosnmpSetter) {
	defer s.close()
	for {
		var j sendJob
		select {
		case <-ctx.Done():
			return
		case j = <-r.sendQ:
		}
		transfer := r.nextTransfer.Add(1)
		err := r.sendCommand(s, j.frame, transfer)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// As on the SNMPv2c sender: a relay error only if the agent's
			// response has not answered the command already, and a
			// tombstone for a response still to come.
			r.commandFailed(j.relayID, transfer, err)
			continue
		}
		r.c.commandsSent.Add(1)
	}
}

// sendCommand sends one encoded command and counts what happened.
func (r *Relay) sendCommand(s *gosnmpSetter, frame []byte, transfer uint32) error {
	if err := s.sendMessage(frame, transfer, r.fragSize); err != nil {
		return r.sendError(err)
	}
	r.c.fragmentsSent.Add(uint64(meds.FragmentCount(len(frame), r.fragSize)))
	r.c.snmpBytesSent.Add(uint64(len(frame)))
	return nil
}

// sendError counts and words a failed command.
func (r *Relay) sendError(err error) error {
	var refused *meds.Refused
	if errors.As(err, &refused) {
		r.c.agentRefusals.Add(1)
		return fmt.Errorf("agent %s refused the command: %w", r.cfg.AgentAddr, err)
	}
	return fmt.Errorf("agent %s did not take the command: %w", r.cfg.AgentAddr, err)
}

// limiter lets one log line per reason through per second and counts
// the ones it holds back.
type limiter struct {
	all        bool // let everything through (Config.LogEveryError)
	last       map[string]time.Time
	suppressed map[string]int
}

func (l *limiter) log(log hclog.Logger, now time.Time, reason string, args ...any) {
	if l.last == nil {
		l.last, l.suppressed = map[string]time.Time{}, map[string]int{}
	}
	if !l.all && now.Sub(l.last[reason]) < time.Second {
		l.suppressed[reason]++
		return
	}
	l.last[reason] = now
	if n := l.suppressed[reason]; n > 0 {
		args = append(args, "suppressed", n)
		l.suppressed[reason] = 0
	}
	log.Warn(reason, args...)
}

// notifyLoop receives the agent's notifications. One goroutine owns the
// socket's reads, the decoder and the answers: it reads the datagrams
// that are waiting in one system call (recvmmsg), handles them, and
// sends their answers together (sendmmsg).
func (r *Relay) notifyLoop(ctx context.Context, rd *dgram.Reader, w *dgram.Writer) {
	n := &notifier{r: r, log: r.log.Named("snmp").Named("notify"), lim: limiter{all: r.cfg.LogEveryError},
		fast: r.cfg.NotifySecurity.Version == gosnmp.Version2c, w: w}
	for {
		ms, err := rd.Read()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			n.log.Warn("read failed", "error", err)
			continue
		}
		for _, m := range ms {
			r.c.notifications.Add(1)
			r.c.notificationBytes.Add(uint64(len(m.Buf)))
			n.handle(m.Buf, m.Addr)
		}
		n.flush()
	}
}

// notifyBatch is how many datagrams the notification loop reads, and
// answers, per system call.
const notifyBatch = 16

// notifier is the state of the notification loop.
type notifier struct {
	r    *Relay
	log  hclog.Logger
	lim  limiter
	fast bool          // SNMPv2c: try the allocation-free path first
	out  []byte        // answer being built
	w    *dgram.Writer // answers waiting for flush
	sent uint64        // w.Sent() at the last flush
}

// answer queues b for to; flush sends it.
func (n *notifier) answer(b []byte, to netip.AddrPort) {
	if err := n.w.Add(b, to); err != nil && !errors.Is(err, net.ErrClosed) {
		n.log.Warn("answers not sent", "error", err)
	}
}

// flush sends the queued answers and counts them.
func (n *notifier) flush() {
	if err := n.w.Flush(); err != nil && !errors.Is(err, net.ErrClosed) { // closed: stopping
		n.log.Warn("answers not sent", "error", err)
	}
	n.r.c.informsAnswered.Add(n.w.Sent() - n.sent)
	n.sent = n.w.Sent()
}

func (n *notifier) handle(b []byte, from netip.AddrPort) {
	now := time.Now()
	if !n.r.allowed(from.Addr()) {
		// Not the agent: not decoded, not answered (an answer would make
		// the relay a reflector), counted and logged once a second.
		n.r.c.dropSource.Add(1)
		n.lim.log(n.log, now, "notification from an address that is not the agent's dropped", "peer", from.String(),
			"octets", len(b), "allowed", prefixesString(n.r.allow))
		return
	}
	if n.fast {
		if p, err := meds.ParseV2c(b); err == nil && (p.PDU == gosnmp.InformRequest || p.PDU == gosnmp.SNMPv2Trap) {
			n.handleFast(&p, from, now)
			return
		}
	}
	n.handleGosnmp(b, from, now)
}

// handleFast handles a notification parsed by the SNMPv2c fast path.
func (n *notifier) handleFast(p *meds.V2cPacket, from netip.AddrPort, now time.Time) {
	r := n.r
	if string(p.Community) != r.cfg.NotifySecurity.Community {
		r.c.dropCommunity.Add(1)
		n.lim.log(n.log, now, "notification dropped", "peer", from.String(), "reason", fmt.Errorf("%w: %q", meds.ErrCommunity, p.Community))
		return
	}
	inform := p.PDU == gosnmp.InformRequest
	f, err := p.Fragment(true, 0, 0)
	if err != nil {
		r.c.dropFragment.Add(1)
		n.lim.log(n.log, now, "notification dropped", "peer", from.String(), "reason", err)
		if inform {
			status, index := fragmentStatus(err)
			n.out = meds.AppendV2cResponse(n.out[:0], p.Community, p.RequestID, uint8(status), index, p.VarBinds)
			n.answer(n.out, from)
		}
		return
	}
	msg, res, err := n.reassemble(from, f, now)
	n.count(from, f, now, res, err) // before the answer, so the sender sees it counted
	if inform {
		status, index := reassemblyStatus(res)
		n.out = meds.AppendV2cResponse(n.out[:0], p.Community, p.RequestID, uint8(status), index, p.VarBinds)
		n.answer(n.out, from)
	}
	if res == meds.Delivered {
		r.deliver(n.log, &n.lim, now, msg, from, f.Transfer)
	}
}

// handleGosnmp handles every other notification through gosnmp: SNMPv3,
// and whatever the fast path does not recognise.
func (n *notifier) handleGosnmp(b []byte, from netip.AddrPort, now time.Time) {
	r := n.r
	p, discovery, err := r.dec.Decode(b)
	if errors.Is(err, meds.ErrNotInTimeWindow) && p.MsgFlags&gosnmp.Reportable != 0 {
		// Tell the sender this engine's boots and time: a sender that
		// was out of step sends again, a replay gets nothing.
		r.notInTime++
		if rep, rerr := r.dec.TimeWindowReport(p, r.notInTime); rerr == nil {
			if _, werr := r.notify.WriteToUDPAddrPort(rep, from); werr == nil {
				r.c.reports.Add(1)
			}
		}
	}
	if err != nil {
		switch {
		case errors.Is(err, meds.ErrCommunity):
			r.c.dropCommunity.Add(1)
		case errors.Is(err, meds.ErrNotInTimeWindow):
			r.c.dropTimeWindow.Add(1)
		case errors.Is(err, meds.ErrReplay):
			r.c.dropReplay.Add(1)
		case errors.Is(err, meds.ErrUSM):
			r.c.dropUSM.Add(1)
		case errors.Is(err, meds.ErrSNMPVersion):
			r.c.dropVersion.Add(1)
		default:
			r.c.dropDecode.Add(1)
		}
		n.lim.log(n.log, now, "notification dropped", "peer", from.String(), "octets", len(b), "reason", err)
		return
	}
	if discovery {
		r.unknownEngID++
		rep, err := r.dec.Report(p, r.unknownEngID)
		if err != nil {
			n.log.Warn("discovery report not built", "peer", from.String(), "error", err)
			return
		}
		if _, err := r.notify.WriteToUDPAddrPort(rep, from); err == nil {
			r.c.reports.Add(1)
		}
		return
	}
	if p.PDUType != gosnmp.InformRequest && p.PDUType != gosnmp.SNMPv2Trap {
		r.c.dropPDU.Add(1)
		n.lim.log(n.log, now, "notification dropped", "peer", from.String(), "reason", "unexpected PDU "+p.PDUType.String())
		return
	}
	inform := p.PDUType == gosnmp.InformRequest
	reply := func(status gosnmp.SNMPError, index uint8) {
		out, err := r.dec.Response(p, status, index, p.Variables)
		if err != nil {
			n.log.Warn("answer not built", "peer", from.String(), "error", err)
			return
		}
		n.answer(out, from)
	}
	f, err := meds.ExtractFragment(p.Variables, true, 0, 0)
	if err != nil {
		r.c.dropFragment.Add(1)
		n.lim.log(n.log, now, "notification dropped", "peer", from.String(), "reason", err)
		if inform {
			reply(fragmentStatus(err))
		}
		return
	}
	msg, res, err := n.reassemble(from, f, now)
	n.count(from, f, now, res, err)
	if inform {
		reply(reassemblyStatus(res))
	}
	if res == meds.Delivered {
		r.deliver(n.log, &n.lim, now, msg, from, f.Transfer)
	}
}

func fragmentStatus(err error) (gosnmp.SNMPError, uint8) {
	var fe *meds.FragmentError
	if errors.As(err, &fe) {
		return gosnmp.SNMPError(fe.Status), uint8(fe.Index)
	}
	return gosnmp.WrongValue, 0
}

func reassemblyStatus(res meds.Result) (gosnmp.SNMPError, uint8) {
	if res == meds.Rejected {
		return gosnmp.WrongValue, 4 // the fragment does not fit its transfer
	}
	return gosnmp.NoError, 0
}

// reassemble offers f to the reassembler. A delivered message of one
// fragment aliases the packet, valid until the next read.
func (n *notifier) reassemble(from netip.AddrPort, f meds.Fragment, now time.Time) ([]byte, meds.Result, error) {
	n.r.reasmMu.Lock()
	defer n.r.reasmMu.Unlock()
	return n.r.reasm.Add(now, meds.Key{Sender: from, Transfer: f.Transfer}, f)
}

// count counts (and logs) what reassembly did with a fragment.
func (n *notifier) count(from netip.AddrPort, f meds.Fragment, now time.Time, res meds.Result, err error) {
	r := n.r
	switch res {
	case meds.Duplicate:
		r.c.duplicates.Add(1)
	case meds.Rejected:
		r.c.dropReassembly.Add(1)
		n.lim.log(n.log, now, "fragment refused", "peer", from.String(), "transfer", f.Transfer, "reason", err)
	case meds.Buffered:
		r.c.fragmentsReceived.Add(1)
	case meds.Delivered:
		r.c.fragmentsReceived.Add(1)
		r.c.reassembled.Add(1)
	}
}

// deliver routes one whole message from the agent to the TPCE side.
func (r *Relay) deliver(log hclog.Logger, lim *limiter, now time.Time, msg []byte, from netip.AddrPort, transfer uint32) {
	m, err := meds.ParseMessage(msg, r.cfg.MaxText)
	if err != nil {
		r.c.dropMessage.Add(1)
		lim.log(log, now, "message from agent dropped", "peer", from.String(), "transfer", transfer, "reason", err)
		return
	}
	var kind portKind
	switch m.Type {
	case meds.TypeResponse:
		kind = portCommands // counted below, once routed
	case meds.TypeEvent:
		kind = portEvents
		r.c.events.Add(1)
	case meds.TypeStatus:
		kind = portStatus
		r.c.statusBlocks.Add(1)
	default:
		r.c.dropWrongType.Add(1)
		lim.log(log, now, "message from agent dropped", "peer", from.String(), "transfer", transfer, "id", m.ID,
			"reason", fmt.Sprintf("an agent does not send %s messages", m.Type))
		return
	}
	p := r.ports[kind]
	if p == nil {
		r.c.dropNoPort.Add(1)
		lim.log(log, now, "message from agent dropped", "peer", from.String(), "id", m.ID, "type", m.Type.String(),
			"reason", kind.String()+" port not configured")
		return
	}
	frame := append(make([]byte, 0, len(msg)), msg...)
	if kind != portCommands {
		p.broadcast(frame)
		return
	}
	rt, ok, failed := r.pending.take(m.ID)
	if failed {
		// Its client had a relay error for it already (the agent took
		// the SetRequest, its answer was lost): one answer per command.
		r.c.dropLateResponse.Add(1)
		lim.log(log, now, "response to a command answered with a relay error dropped", "relay_id", m.ID)
		return
	}
	if !ok {
		// Not a command this relay waits for: another process's (a data
		// restarted on this notification address; relay ids start at a
		// random value), or one forgotten after PendingTimeout. Its
		// client's own id is unknown, and a client must get an answer
		// under its own id only: dropped.
		r.c.dropUnknownID.Add(1)
		lim.log(log, now, "response to no pending command dropped", "relay_id", m.ID)
		return
	}
	meds.PutHeader(frame, meds.Header{Version: meds.Version, Type: m.Type, Flags: m.Flags, ID: rt.id, Length: uint32(len(m.Text))})
	// Counted before it is queued, so a client that has it sees it
	// counted.
	r.c.responses.Add(1)
	if rt.c.send(frame) {
		if r.cfg.OnResponse != nil {
			r.cfg.OnResponse(now.Sub(rt.at))
		}
		return
	}
	r.c.responses.Add(^uint64(0))
	r.c.responsesRerouted.Add(1)
	log.Info("sender of the command gone: response sent to every commands client", "id", rt.id, "relay_id", m.ID,
		"peer", rt.c.conn.RemoteAddr().String())
	p.broadcast(frame)
}

// pollLoop reads the agent's sysUpTime.0 every PollInterval.
func (r *Relay) pollLoop(ctx context.Context, g *gosnmp.GoSNMP) {
	defer g.Conn.Close()
	log := r.log.Named("snmp").Named("poll")
	tick := time.NewTicker(r.cfg.PollInterval)
	defer tick.Stop()
	for {
		res, err := g.Get([]string{meds.OIDSysUpTime})
		now := time.Now()
		var uptime time.Duration
		if err == nil {
			if res.Error != gosnmp.NoError || len(res.Variables) != 1 || res.Variables[0].Type != gosnmp.TimeTicks {
				err = fmt.Errorf("unexpected answer to GET sysUpTime.0: %s, %d bindings", res.Error, len(res.Variables))
			} else {
				uptime = time.Duration(gosnmp.ToBigInt(res.Variables[0].Value).Int64()) * 10 * time.Millisecond
			}
		}
		if ctx.Err() != nil {
			return
		}
		r.agentMu.Lock()
		was := r.agentUp
		r.agentUp, r.agentPolled = err == nil, now
		if err == nil {
			r.agentUptime = uptime
		}
		r.agentMu.Unlock()
		switch {
		case err != nil:
			r.c.pollFailures.Add(1)
			if was || r.c.pollFailures.Load() == 1 {
				log.Warn("agent unreachable", "peer", r.cfg.AgentAddr, "error", err)
			}
		case !was:
			log.Info("agent reachable", "peer", r.cfg.AgentAddr, "uptime", uptime)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
