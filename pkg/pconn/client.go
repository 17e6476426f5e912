package pconn

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/hellopics/hellopics/internal/ratelog"
)

// Client keeps one session to a server alive: it connects on a retry
// timer, reconnects by itself after a loss, and rotates through its
// addresses while none answers. It owns one goroutine, stopped by Close.
type Client struct {
	cfg   Config
	log   hclog.Logger
	rl    *ratelog.Logger // its sessions' warnings a peer can trigger
	addrs []string
	rnd   *rand.Rand

	mu       sync.Mutex
	sess     *Session
	next     int    // index into addrs of the next attempt
	redirect string // address to try next, before the rotation
	dialing  string // the address of the attempt in flight ("" none)
	// cancelDial ends the attempt in flight; Redirect calls it for an
	// attempt toward another address, which may well be a dead master.
	cancelDial context.CancelFunc
	err        error // why the client stopped

	kick   chan struct{} // wakes the retry wait (Redirect)
	closed chan struct{}
	once   sync.Once
	done   chan struct{}
}

// Dial starts a client for the servers at addrs, tried in turn. It returns
// at once; the first attempt is made right away, and the EventHandler
// hears of each session and of each failed attempt.
func Dial(cfg Config, addrs ...string) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("pconn: dial: no address given")
	}
	c := &Client{
		cfg:    cfg,
		log:    cfg.logger().Named("client"),
		rl:     ratelog.New(cfg.logger().Named("session"), cfg.LogInterval),
		addrs:  append([]string(nil), addrs...),
		rnd:    rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(sessionIDs.Add(1)))),
		kick:   make(chan struct{}, 1),
		closed: make(chan struct{}),
		done:   make(chan struct{}),
	}
	go c.loop()
	return c, nil
}

// Session returns the current session, or nil while disconnected.
func (c *Client) Session() *Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

// Send queues a frame on the current session; ErrNotConnected without one.
func (c *Client) Send(t MsgType, payload []byte) error {
	s := c.Session()
	if s == nil {
		return ErrNotConnected
	}
	return s.Send(t, payload)
}

// SendProto queues a protobuf frame on the current session.
func (c *Client) SendProto(t MsgType, m proto.Message) error {
	s := c.Session()
	if s == nil {
		return ErrNotConnected
	}
	return s.SendProto(t, m)
}

// Redirect makes addr the next address tried: the current session, if
// any, is ended at once (reason ErrRedirected, no goodbye, no drain), an
// attempt in flight toward another address is abandoned, and the client
// connects to addr at once. If that fails, the rotation through the
// configured addresses resumes.
func (c *Client) Redirect(addr string) {
	c.mu.Lock()
	c.redirect = addr
	s := c.sess
	if c.cancelDial != nil && c.dialing != addr {
		c.cancelDial()
	}
	c.mu.Unlock()
	if s != nil {
		// At once, not gracefully: the session is to an instance we are
		// told to leave, perhaps one whose host is gone, and a drain
		// toward silence would hold the dial to addr for its timeout.
		s.abort(ErrRedirected)
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Done is closed when the client has stopped: after Close, or when it
// spent MaxRetries (then Err says so).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the client stopped, nil while it runs.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the current session gracefully and stops reconnecting. It
// waits until the client's goroutine has ended.
func (c *Client) Close() error {
	c.once.Do(func() {
		close(c.closed)
		if s := c.Session(); s != nil {
			s.Close()
		}
	})
	<-c.done
	return nil
}

func (c *Client) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

func (c *Client) loop() {
	defer close(c.done)
	failures := 0 // consecutive, for MaxRetries
	round := 0    // configured addresses failed since the last wait or success
	refused := 0  // refusals for load in a row (overloadDelay)
	for !c.isClosed() {
		addr, redirected := c.pickAddr()
		conn, err := c.connect(addr)
		if err != nil {
			failures++
			c.log.Debug("connect failed", "addr", addr, "attempt", failures, "redirected", redirected, "error", err)
			if c.cfg.EventHandler != nil {
				c.cfg.EventHandler.HandleEvent(Event{Type: EventFailed, Addr: tcpAddr(addr), Err: err})
			}
			if c.cfg.MaxRetries > 0 && failures >= c.cfg.MaxRetries {
				c.stop(fmt.Errorf("%w: %d attempts, last to %s: %v", ErrGaveUp, failures, addr, err))
				return
			}
			var d time.Duration
			switch {
			case redirected:
				// The address we were sent to is not there (yet): go
				// back to the rotation soon, whoever redirected us may
				// know better by then.
				d = c.cfg.RetryInterval / 10
			default:
				// Try every configured address once before waiting.
				c.advance()
				if round++; round >= len(c.addrs) {
					round, d = 0, c.retryDelay()
				}
			}
			if d > 0 && !c.wait(d) {
				break
			}
			continue
		}
		s := newSession(conn, &c.cfg, c.cfg.logger().Named("session"), nil, c.rl)
		c.mu.Lock()
		c.sess = s
		c.mu.Unlock()
		if c.isClosed() { // Close ran between connect and publish
			s.Close()
		}
		began := time.Now()
		s.run()
		c.mu.Lock()
		c.sess = nil
		pending := c.redirect != ""
		c.mu.Unlock()
		// Reconnect at once after the loss of a session that had lived a
		// while (a restarted or failed-over server may already be there),
		// or when redirected. A session that died within a tenth of the
		// retry interval (refused by the server, or reset by one that is
		// dying) counts as a failed attempt: on to the next address, and
		// wait the retry interval once every address has failed, so that
		// we never spin.
		if pending || time.Since(began) >= c.cfg.RetryInterval/10 {
			round, failures, refused = 0, 0, 0
			if !pending && errors.Is(s.Err(), ErrDeadPeer) {
				// The server went silent (hung, paused or cut off) but
				// its address may well still accept connections: try the
				// next address after it first, or we would stay with it
				// forever. After it, not after the rotation's position: a
				// session that came from a Redirect left that elsewhere.
				c.advancePast(addr)
			}
			continue
		}
		failures++
		if c.cfg.MaxRetries > 0 && failures >= c.cfg.MaxRetries {
			c.stop(fmt.Errorf("%w: %d attempts, the last session to %s ended at once: %v", ErrGaveUp, failures, addr, s.Err()))
			return
		}
		c.advance()
		if overloaded(s.Err()) {
			// Refused for load: back off, growing, whatever the
			// rotation (another address would send us back here).
			refused++
			round = 0
			d := c.overloadDelay(refused)
			c.log.Debug("server refused for load; backing off", "addr", addr, "refusals", refused, "wait", d)
			if !c.wait(d) { // a Redirect (a new master) cuts it short
				break
			}
			continue
		}
		if round++; round >= len(c.addrs) {
			round = 0
			if !c.wait(c.retryDelay()) { // a Redirect cuts it short
				break
			}
		}
	}
	c.stop(ErrClosed)
}

// overloadDelay is the wait after the n-th refusal for load in a row:
// RetryInterval doubled n-1 times, at most MaxRetryBackoff, drawn at
// random in its upper half.
func (c *Client) overloadDelay(n int) time.Duration {
	limit := max(c.cfg.MaxRetryBackoff, c.cfg.RetryInterval)
	d := c.cfg.RetryInterval
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d/2 + time.Duration(c.rnd.Int64N(int64(d/2)+1))
}

func (c *Client) stop(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
}

// pickAddr returns the next address to try and whether it came from
// Redirect rather than the rotation.
func (c *Client) pickAddr() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.redirect != "" {
		a := c.redirect
		c.redirect = ""
		return a, true
	}
	return c.addrs[c.next%len(c.addrs)], false
}

// advancePast makes the address after addr in the rotation the next
// one tried; an address not in it (a redirect's) advances as usual.
func (c *Client) advancePast(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, a := range c.addrs {
		if a == addr {
			c.next = (i + 1) % len(c.addrs)
			return
		}
	}
	c.next = (c.next + 1) % len(c.addrs)
}

func (c *Client) advance() {
	c.mu.Lock()
	c.next = (c.next + 1) % len(c.addrs)
	c.mu.Unlock()
}

func (c *Client) retryDelay() time.Duration {
	d := float64(c.cfg.RetryInterval)
	if j := c.cfg.RetryJitter; j > 0 {
		// Jitter only shortens the wait: RetryInterval stays the bound on
		// how long a component takes to notice a server that came up.
		d *= 1 - j*c.rnd.Float64()
	}
	return time.Duration(d)
}

// wait sleeps d, or less if redirected; false if the client was closed.
func (c *Client) wait(d time.Duration) bool {
	alive, _ := c.waitKick(d)
	return alive
}

// waitKick sleeps d or until Redirect is called (kicked) or the client is
// closed (not alive).
func (c *Client) waitKick(d time.Duration) (alive, kicked bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true, false
	case <-c.kick:
		return true, true
	case <-c.closed:
		return false, false
	}
}

func (c *Client) connect(addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.DialTimeout)
	defer cancel()
	c.mu.Lock()
	c.dialing, c.cancelDial = addr, cancel
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.dialing, c.cancelDial = "", nil
		c.mu.Unlock()
	}()
	// Close cancels a pending attempt, and so does a Redirect elsewhere.
	go func() {
		select {
		case <-c.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	return dialConn(ctx, &c.cfg, addr)
}

type tcpAddrString string

func (a tcpAddrString) Network() string { return "tcp" }
func (a tcpAddrString) String() string  { return string(a) }

func tcpAddr(s string) net.Addr { return tcpAddrString(s) }
