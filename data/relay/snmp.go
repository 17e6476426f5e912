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

// sendLoop delivers queued commands to the agent, one SetRequest per
// fragment, with its own client (and UDP socket).
func (r *Relay) sendLoop(ctx context.Context, g *gosnmp.GoSNMP) {
	defer g.Conn.Close()
	log := r.log.Named("snmp")
	vars := make([]gosnmp.SnmpPDU, 0, 4)
	for {
		var j sendJob
		select {
		case <-ctx.Done():
			return
		case j = <-r.sendQ:
		}
		transfer := r.nextTransfer.Add(1)
		err := meds.Split(j.frame, transfer, r.fragSize, func(f meds.Fragment) error {
			vars = meds.FragmentVarbinds(vars, f)
			res, err := g.Set(vars)
			if err != nil {
				return fmt.Errorf("agent %s did not take fragment %d of %d after %d retries: %w", r.cfg.AgentAddr, f.Index, f.Count, r.cfg.SNMPRetries, err)
			}
			if res.Error != gosnmp.NoError {
				r.c.agentRefusals.Add(1)
				return fmt.Errorf("agent %s refused fragment %d of %d: %s at binding %d", r.cfg.AgentAddr, f.Index, f.Count, res.Error, res.ErrorIndex)
			}
			r.c.fragmentsSent.Add(1)
			r.c.snmpBytesSent.Add(uint64(len(f.Data)))
			return nil
		})
		for i := range vars {
			vars[i] = gosnmp.SnmpPDU{} // do not keep the frame alive
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.c.sendFailures.Add(1)
			r.forget(j.relayID)
			log.Warn("command not delivered", "peer", j.c.conn.RemoteAddr().String(), "id", j.id, "relay_id", j.relayID, "transfer", transfer, "error", err)
			r.relayError(j.c, j.id, err.Error())
			continue
		}
		r.c.commandsSent.Add(1)
	}
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
// socket and the decoder.
func (r *Relay) notifyLoop(ctx context.Context) {
	log := r.log.Named("snmp").Named("notify")
	buf := make([]byte, 65536) // not gosnmp's 4096: a whole UDP datagram always fits
	lim := limiter{all: r.cfg.LogEveryError}
	var resp []byte
	for {
		n, from, err := r.notify.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			log.Warn("read failed", "error", err)
			continue
		}
		r.c.notifications.Add(1)
		r.c.notificationBytes.Add(uint64(n))
		resp = r.handleNotification(log, &lim, buf[:n], from, resp[:0])
	}
}

func (r *Relay) answer(log hclog.Logger, b []byte, to netip.AddrPort) bool {
	if _, err := r.notify.WriteToUDPAddrPort(b, to); err != nil {
		log.Warn("answer not sent", "peer", to.String(), "error", err)
		return false
	}
	return true
}

func (r *Relay) handleNotification(log hclog.Logger, lim *limiter, b []byte, from netip.AddrPort, scratch []byte) []byte {
	now := time.Now()
	p, discovery, err := r.dec.Decode(b)
	if err != nil {
		switch {
		case errors.Is(err, meds.ErrCommunity):
			r.c.dropCommunity.Add(1)
		case errors.Is(err, meds.ErrUSM):
			r.c.dropUSM.Add(1)
		case errors.Is(err, meds.ErrSNMPVersion):
			r.c.dropVersion.Add(1)
		default:
			r.c.dropDecode.Add(1)
		}
		lim.log(log, now, "notification dropped", "peer", from.String(), "octets", len(b), "reason", err)
		return scratch
	}
	if discovery {
		r.unknownEngID++
		rep, err := r.dec.Report(p, r.unknownEngID, 1, uint32(now.Sub(r.started)/time.Second))
		if err == nil && r.answer(log, rep, from) {
			r.c.reports.Add(1)
		}
		return scratch
	}
	if p.PDUType != gosnmp.InformRequest && p.PDUType != gosnmp.SNMPv2Trap {
		r.c.dropPDU.Add(1)
		lim.log(log, now, "notification dropped", "peer", from.String(), "reason", "unexpected PDU "+p.PDUType.String())
		return scratch
	}
	inform := p.PDUType == gosnmp.InformRequest
	f, err := meds.ExtractFragment(p.Variables, true, 0, 0)
	if err != nil {
		r.c.dropFragment.Add(1)
		lim.log(log, now, "notification dropped", "peer", from.String(), "reason", err)
		if inform {
			var fe *meds.FragmentError
			status, index := gosnmp.WrongValue, uint8(0)
			if errors.As(err, &fe) {
				status, index = gosnmp.SNMPError(fe.Status), uint8(fe.Index)
			}
			if out, err := r.dec.Response(p, status, index, p.Variables); err == nil && r.answer(log, out, from) {
				r.c.informsAnswered.Add(1)
			}
		}
		return scratch
	}
	r.reasmMu.Lock()
	msg, res, err := r.reasm.Add(now, meds.Key{Sender: from, Transfer: f.Transfer}, f)
	if res == meds.Delivered {
		// The message may alias the packet; copy it before the lock
		// goes, the buffer is reused by the next read.
		scratch = append(scratch[:0], msg...)
		msg = scratch
	}
	r.reasmMu.Unlock()
	if inform {
		status, index := gosnmp.NoError, uint8(0)
		if res == meds.Rejected {
			status, index = gosnmp.WrongValue, 4
		}
		if out, err := r.dec.Response(p, status, index, p.Variables); err == nil && r.answer(log, out, from) {
			r.c.informsAnswered.Add(1)
		}
	}
	switch res {
	case meds.Duplicate:
		r.c.duplicates.Add(1)
		return scratch
	case meds.Rejected:
		r.c.dropReassembly.Add(1)
		lim.log(log, now, "fragment refused", "peer", from.String(), "transfer", f.Transfer, "reason", err)
		return scratch
	case meds.Buffered:
		r.c.fragmentsReceived.Add(1)
		return scratch
	}
	r.c.fragmentsReceived.Add(1)
	r.c.reassembled.Add(1)
	r.deliver(log, lim, now, msg, from, f.Transfer)
	return scratch
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
		kind = portCommands
		r.c.responses.Add(1)
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
	r.pendMu.Lock()
	rt, ok := r.pending[m.ID]
	delete(r.pending, m.ID)
	r.pendMu.Unlock()
	if !ok {
		// Not ours (or forgotten): every commands client gets it as is.
		r.c.responses.Add(^uint64(0))
		r.c.responsesRerouted.Add(1)
		lim.log(log, now, "response with unknown id sent to every commands client", "relay_id", m.ID)
		p.broadcast(frame)
		return
	}
	meds.PutHeader(frame, meds.Header{Version: meds.Version, Type: m.Type, Flags: m.Flags, ID: rt.id, Length: uint32(len(m.Text))})
	if rt.c.send(frame) {
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
