package relay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

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
	c    portCounters

	mu      sync.Mutex
	clients map[*client]struct{}
	backlog [][]byte // ring, oldest at head
	head    int
	n       int
}

func newPort(r *Relay, kind portKind, ln net.Listener) *port {
	return &port{
		r: r, kind: kind, ln: ln,
		log:     r.log.Named(kind.String()),
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
		Violations: p.c.violations.Load(), MessagesIn: p.c.messagesIn.Load(), BytesIn: p.c.bytesIn.Load(),
		DiscardedBytes: p.c.discarded.Load(), MessagesOut: p.c.messagesOut.Load(), BytesOut: p.c.bytesOut.Load(),
		Backlog: backlog, BacklogDropped: p.c.backlogDropped.Load(),
	}
}

// accept runs until the listener is closed.
func (p *port) accept(ctx context.Context) {
	var seq uint64
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			p.log.Warn("accept failed", "error", err)
			continue
		}
		seq++
		p.c.accepted.Add(1)
		c := &client{
			p: p, conn: conn, seq: seq,
			q:     make(chan []byte, p.r.cfg.ClientQueue),
			done:  make(chan struct{}),
			drain: make(chan struct{}),
			log:   p.log.With("peer", conn.RemoteAddr().String(), "client", seq),
		}
		p.mu.Lock()
		c.pre = p.drainLocked()
		p.clients[c] = struct{}{}
		p.mu.Unlock()
		c.log.Info("client connected", "backlog_delivered", len(c.pre))
		p.r.wg.Add(2)
		go func() { defer p.r.wg.Done(); c.writeLoop(ctx) }()
		go func() { defer p.r.wg.Done(); c.readLoop(ctx) }()
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
		if err != nil {
			c.log.Warn("client closed", "reason", reason, "error", err)
		} else {
			c.log.Info("client closed", "reason", reason)
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
	rd := meds.NewReader(countingReader{c.conn, &c.p.c.bytesIn}, c.p.r.cfg.MaxText)
	for {
		m, err := rd.Next()
		if err != nil {
			var pe *meds.ProtocolError
			switch {
			case err == io.EOF:
				c.close("client closed the connection", nil)
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

type countingReader struct {
	r io.Reader
	n *atomic.Uint64
}

func (cr countingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	cr.n.Add(uint64(n))
	return n, err
}

type countingDiscard struct{ c *portCounters }

func (d countingDiscard) Write(p []byte) (int, error) {
	d.c.bytesIn.Add(uint64(len(p)))
	d.c.discarded.Add(uint64(len(p)))
	return len(p), nil
}
