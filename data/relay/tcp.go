package relay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hellopics/hellopics/internal/ratelog"
	"github.com/hellopics/hellopics/pkg/meds"
)

// portKind names the three TCP ports.
type portKind int

const (
	portCommands portKind = iota
	portEvents
	portStatus
)

func (k portKind) String() string {
	return [...]string{"commands", "events", "status"}[k]
}

// port is one TCP port: its listener, its clients and its backlog.
type port struct {
	r    *Relay
	kind portKind
	ln   net.Listener
	log  hclog.Logger
	// lifeLog logs clients coming and going, at most once per second
	// each (anyone can connect and leave in a loop).
	lifeLog *ratelog.Logger
	c       portCounters

	mu      sync.Mutex
	clients map[*client]struct{}
	backlog [][]byte // ring, oldest at head
	head    int
	n       int
}

func newPort(r *Relay, kind portKind, ln net.Listener) *port {
	log := r.log.Named(kind.String())
	return &port{
		r: r, kind: kind, ln: ln,
		log:     log,
		lifeLog: ratelog.New(log, r.logEvery),
		clients: make(map[*client]struct{}),
		backlog: make([][]byte, r.cfg.Backlog),
	}
}

func (p *port) stats() PortStats {
	if p == nil {
		return PortStats{}
	}
	p.mu.Lock()
	clients, backlog := len(p.clients), p.n
	p.mu.Unlock()
	return PortStats{
		Open: true, Clients: clients, Accepted: p.c.accepted.Load(), SlowClosed: p.c.slowClosed.Load(),
		Refused: p.c.refusedTotal.Load(), RefusedPerIP: p.c.refusedPerIP.Load(), AcceptErrors: p.c.acceptErrors.Load(),
		Stalled: p.c.stalled.Load(), Idle: p.c.idle.Load(),
		Violations: p.c.violations.Load(), MessagesIn: p.c.messagesIn.Load(), BytesIn: p.c.bytesIn.Load(),
		DiscardedBytes: p.c.discarded.Load(), MessagesOut: p.c.messagesOut.Load(), BytesOut: p.c.bytesOut.Load(),
		Backlog: backlog, BacklogDropped: p.c.backlogDropped.Load(),
	}
}

// Accept back-off after a failed accept (EMFILE, ENFILE, ENOBUFS...):
// it doubles from acceptBackoffMin up to acceptBackoffMax and starts
// again after a success, so a full file table costs a few wake-ups a
// second rather than a spinning core.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// accept runs until the listener is closed.
func (p *port) accept(ctx context.Context) {
	var seq uint64
	var delay time.Duration
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			delay = min(max(2*delay, acceptBackoffMin), acceptBackoffMax)
			p.c.acceptErrors.Add(1)
			p.r.tcpLog.Warn("accept:"+p.kind.String(), "accept failed; backing off", "port", p.kind.String(),
				"error", err, "retry_in", delay)
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		delay = 0
		ip := remoteIP(conn)
		if reason, limit := p.r.admit(ip); reason != "" {
			// Counted before the close: whoever sees the close sees it
			// counted.
			if reason == refusedTotal {
				p.c.refusedTotal.Add(1)
			} else {
				p.c.refusedPerIP.Add(1)
			}
			_ = conn.Close()
			p.r.tcpLog.Warn("refused:"+p.kind.String()+":"+reason, "client refused", "port", p.kind.String(),
				"peer", conn.RemoteAddr().String(), "reason", reason, "limit", limit)
			continue
		}
		seq++
		p.c.accepted.Add(1)
		c := &client{
			p: p, conn: conn, seq: seq, ip: ip,
			q:     make(chan []byte, p.r.cfg.ClientQueue),
			done:  make(chan struct{}),
			drain: make(chan struct{}),
			log:   p.log.With("peer", conn.RemoteAddr().String(), "client", seq),
		}
		p.mu.Lock()
		c.pre = p.drainLocked()
		p.clients[c] = struct{}{}
		p.mu.Unlock()
		p.lifeLog.Info("connected", "client connected", "peer", conn.RemoteAddr().String(), "client", seq, "backlog_delivered", len(c.pre))
		p.r.wg.Add(2)
		go func() { defer p.r.wg.Done(); c.writeLoop(ctx) }()
		go func() { defer p.r.wg.Done(); c.readLoop(ctx) }()
	}
}

// Why a connection was refused (the reason label of the metric).
const (
	refusedTotal = "max_clients"
	refusedPerIP = "max_clients_per_ip"
)

// remoteIP is the connection's remote address without its port, IPv4
// addresses in IPv6 form unmapped.
func remoteIP(conn net.Conn) netip.Addr {
	if a, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// admit takes a place for a client from ip, or says which limit is
// reached; release gives the place back.
func (r *Relay) admit(ip netip.Addr) (reason string, limit int) {
	r.connMu.Lock()
	defer r.connMu.Unlock()
	if r.conns >= r.cfg.MaxClients {
		return refusedTotal, r.cfg.MaxClients
	}
	if r.perIP[ip] >= r.cfg.MaxClientsPerIP {
		return refusedPerIP, r.cfg.MaxClientsPerIP
	}
	r.conns++
	r.perIP[ip]++
	return "", 0
}

func (r *Relay) release(ip netip.Addr) {
	r.connMu.Lock()
	defer r.connMu.Unlock()
	r.conns--
	if r.perIP[ip]--; r.perIP[ip] <= 0 {
		delete(r.perIP, ip)
	}
}

// drainLocked empties the backlog, oldest first.
func (p *port) drainLocked() [][]byte {
	if p.n == 0 {
		return nil
	}
	out := make([][]byte, 0, p.n)
	for i := 0; i < p.n; i++ {
		j := (p.head + i) % len(p.backlog)
		out = append(out, p.backlog[j])
		p.backlog[j] = nil
	}
	p.head, p.n = 0, 0
	return out
}

// broadcast queues frame to every client of the port, or keeps it in the
// backlog when there is none. Clients whose queue is full are closed.
func (p *port) broadcast(frame []byte) {
	var slow []*client
	p.mu.Lock()
	if len(p.clients) == 0 {
		if p.n == len(p.backlog) {
			p.backlog[p.head] = nil
			p.head = (p.head + 1) % len(p.backlog)
			p.n--
			p.c.backlogDropped.Add(1)
			if d := p.c.backlogDropped.Load(); d&(d-1) == 0 { // log at 1, 2, 4, 8...
				p.log.Warn("backlog full: oldest message dropped", "backlog", len(p.backlog), "dropped_total", d)
			}
		}
		p.backlog[(p.head+p.n)%len(p.backlog)] = frame
		p.n++
		p.mu.Unlock()
		return
	}
	for c := range p.clients {
		if !c.trySend(frame) {
			slow = append(slow, c)
		}
	}
	p.mu.Unlock()
	for _, c := range slow {
		c.closeSlow()
	}
}

func (p *port) remove(c *client) {
	p.mu.Lock()
	delete(p.clients, c)
	p.mu.Unlock()
}

// closeAll closes the listener and every client.
func (p *port) closeAll() {
	_ = p.ln.Close()
	p.mu.Lock()
	cs := make([]*client, 0, len(p.clients))
	for c := range p.clients {
		cs = append(cs, c)
	}
	p.mu.Unlock()
	for _, c := range cs {
		c.close("relay closing", nil)
	}
}

// client is one TCP connection on a port. Its writer goroutine owns the
// socket's write side; its reader goroutine the read side.
type client struct {
	p    *port
	conn net.Conn
	seq  uint64
	ip   netip.Addr // its place in the per-IP count
	log  hclog.Logger
	pre  [][]byte      // backlog to write first
	q    chan []byte   // frames to write; never closed
	done chan struct{} // closed by close
	once sync.Once
	// drain asks the writer to write what is queued, then half-close.
	drain     chan struct{}
	drainOnce sync.Once
	gone      atomic.Bool
}

// trySend queues frame without blocking; false means the queue is full.
func (c *client) trySend(frame []byte) bool {
	if c.gone.Load() {
		return true // being closed: nothing to do
	}
	select {
	case c.q <- frame:
		c.p.c.messagesOut.Add(1)
		return true
	default:
		return false
	}
}

// send queues frame and closes the client when its queue is full. It
// reports whether the frame was queued.
func (c *client) send(frame []byte) bool {
	if c.gone.Load() {
		return false
	}
	if c.trySend(frame) {
		return true
	}
	c.closeSlow()
	return false
}

func (c *client) closeSlow() {
	if c.gone.Load() {
		return
	}
	c.close(fmt.Sprintf("client fell %d messages behind (queue full)", cap(c.q)), nil)
	c.p.c.slowClosed.Add(1)
}

// close closes the connection once, with a logged reason.
func (c *client) close(reason string, err error) {
	c.once.Do(func() {
		c.gone.Store(true)
		close(c.done)
		_ = c.conn.Close()
		c.p.remove(c)
		c.p.r.release(c.ip)
		peer := c.conn.RemoteAddr().String()
		if err != nil {
			c.p.lifeLog.Warn("closed-error", "client closed", "peer", peer, "client", c.seq, "reason", reason, "error", err)
		} else {
			c.p.lifeLog.Info("closed", "client closed", "peer", peer, "client", c.seq, "reason", reason)
		}
	})
}

// closeAfterWrite lets the writer send what is queued (a relay error)
// and half-close, discards what the client still sends for a moment so
// the close is not a reset that would lose that relay error, then
// closes.
func (c *client) closeAfterWrite(reason string, err error) {
	c.drainOnce.Do(func() { close(c.drain) })
	_ = c.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _ := io.CopyN(io.Discard, c.conn, 1<<20)
	c.p.c.bytesIn.Add(uint64(n))
	c.close(reason, err)
}

func (c *client) writeLoop(ctx context.Context) {
	w := bufio.NewWriterSize(c.conn, 64<<10)
	write := func(frame []byte) bool {
		if _, err := w.Write(frame); err != nil {
			c.close("write failed", err)
			return false
		}
		c.p.c.bytesOut.Add(uint64(len(frame)))
		return true
	}
	for _, f := range c.pre {
		if !write(f) {
			return
		}
	}
	c.pre = nil
	for {
		if w.Buffered() > 0 && len(c.q) == 0 {
			if err := w.Flush(); err != nil {
				c.close("write failed", err)
				return
			}
		}
		select {
		case <-ctx.Done():
			c.close("relay closing", nil)
			return
		case <-c.done:
			return
		case <-c.drain:
			for len(c.q) > 0 {
				if !write(<-c.q) {
					return
				}
			}
			if err := w.Flush(); err != nil {
				c.close("write failed", err)
				return
			}
			if tc, ok := c.conn.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			<-c.done
			return
		case f := <-c.q:
			if !write(f) {
				return
			}
		}
	}
}

// readLoop reads commands on the commands port, and reads and discards
// on the others so that a close is seen at once.
func (c *client) readLoop(ctx context.Context) {
	if c.p.kind != portCommands {
		n, err := io.Copy(countingDiscard{&c.p.c}, c.conn)
		if n > 0 {
			c.log.Debug("octets discarded", "octets", n)
		}
		if err != nil && !c.gone.Load() {
			c.close("read failed", err)
		} else {
			c.close("client closed the connection", nil)
		}
		return
	}
	dr := &deadlineReader{conn: c.conn, n: &c.p.c.bytesIn, stall: c.p.r.cfg.StallTimeout, idle: c.p.r.cfg.IdleTimeout}
	rd := meds.NewReader(dr, c.p.r.cfg.MaxText)
	dr.rd = rd
	for {
		m, err := rd.Next()
		if err != nil {
			var pe *meds.ProtocolError
			switch {
			case err == io.EOF:
				c.close("client closed the connection", nil)
			case errors.Is(err, os.ErrDeadlineExceeded) && dr.partial:
				c.p.c.stalled.Add(1)
				c.close(fmt.Sprintf("stalled: %d octets of a message, then nothing for %v", rd.Buffered(), dr.stall), nil)
			case errors.Is(err, os.ErrDeadlineExceeded):
				c.p.c.idle.Add(1)
				c.close(fmt.Sprintf("idle: nothing sent for %v", dr.idle), nil)
			case errors.As(err, &pe):
				c.p.c.violations.Add(1)
				if errors.Is(err, meds.ErrTooLong) && pe.Header.Type == meds.TypeCommand {
					c.p.r.relayError(c, pe.Header.ID, fmt.Sprintf("command text of %d octets exceeds the limit of %d", pe.Header.Length, pe.Limit))
					c.closeAfterWrite("protocol violation", err)
					return
				}
				c.close("protocol violation", err)
			case c.gone.Load() || ctx.Err() != nil:
			default:
				c.close("read failed", err)
			}
			return
		}
		c.p.c.messagesIn.Add(1)
		if m.Type != meds.TypeCommand {
			c.p.c.violations.Add(1)
			c.close("protocol violation", fmt.Errorf("%s id %d on the commands port, only commands are allowed", m.Type, m.ID))
			return
		}
		if !c.p.r.submit(ctx, c, m) {
			return
		}
	}
}

// deadlineReader reads a commands connection for a meds.Reader, counts
// the octets and sets each read's deadline: StallTimeout inside a
// message, IdleTimeout (none when 0) between messages.
type deadlineReader struct {
	conn        net.Conn
	rd          *meds.Reader
	n           *atomic.Uint64
	stall, idle time.Duration
	partial     bool // the last read was inside a message
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	d.partial = d.rd.Buffered() > 0
	timeout := d.idle
	if d.partial {
		timeout = d.stall
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	if err := d.conn.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	n, err := d.conn.Read(p)
	d.n.Add(uint64(n))
	return n, err
}

type countingDiscard struct{ c *portCounters }

func (d countingDiscard) Write(p []byte) (int, error) {
	d.c.bytesIn.Add(uint64(len(p)))
	d.c.discarded.Add(uint64(len(p)))
	return len(p), nil
}
