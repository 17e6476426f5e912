package sim

import (
	"errors"
	"time"
)

// clientConfig is what a pconn.Client of the model needs of pconn.Config.
type clientConfig struct {
	retry       time.Duration // RetryInterval
	jitter      float64       // RetryJitter
	dialTimeout time.Duration // DialTimeout
	dead        time.Duration // DeadTimeout of its sessions
	linger      time.Duration // LingerTimeout
}

// client mirrors pkg/pconn/client.go's Client.loop, event by event: it
// keeps one session to one of addrs, rotates through them while none
// answers, waits RetryInterval (jittered down) after a round of
// failures, reconnects at once after the loss of a session that lived
// RetryInterval/10 or more (to the next address if that peer went
// silent), and Redirect closes the session and tries the given address
// first, a tenth of the retry interval before rotating again.
type client struct {
	w     *World
	p     *proc
	cfg   clientConfig
	addrs []string
	h     handler // for the sessions' frames and ends
	// event is the EventHandler: established (e set), failed attempt
	// (e nil, err set).
	event func(e *end, err error)

	next     int
	redirect string
	sess     *end
	began    time.Duration
	failures int
	round    int
	waitGen  uint64
	waiting  bool
	kick     bool // the buffered kick of Redirect
	closed   bool
}

func newClient(w *World, p *proc, cfg clientConfig, addrs []string, h handler, event func(*end, error)) *client {
	c := &client{w: w, p: p, cfg: cfg, addrs: addrs, event: event}
	c.h = handler{frame: h.frame, ended: func(e *end, err error) {
		if h.ended != nil {
			h.ended(e, err)
		}
		c.sessionEnded(e, err)
	}}
	c.attempt()
	return c
}

// Session is the current session (perhaps closing), nil while
// disconnected.
func (c *client) Session() *end { return c.sess }

func (c *client) pickAddr() (string, bool) {
	if c.redirect != "" {
		a := c.redirect
		c.redirect = ""
		return a, true
	}
	return c.addrs[c.next%len(c.addrs)], false
}

func (c *client) advance() { c.next = (c.next + 1) % len(c.addrs) }

func (c *client) retryDelay() time.Duration {
	d := float64(c.cfg.retry)
	if j := c.cfg.jitter; j > 0 {
		d *= 1 - j*c.w.rng.Float64()
	}
	return time.Duration(d)
}

func (c *client) attempt() {
	if c.closed {
		return
	}
	addr, redirected := c.pickAddr()
	c.w.net.connect(c.p, addr, c.cfg.dialTimeout, c.cfg.dead, c.cfg.linger, c.h, func(e *end, err error) {
		if err != nil {
			c.failed(err, redirected)
			return
		}
		c.sess, c.began = e, c.w.now
		if c.event != nil {
			c.event(e, nil)
		}
	})
}

func (c *client) failed(err error, redirected bool) {
	c.failures++
	if c.event != nil {
		c.event(nil, err)
	}
	var d time.Duration
	if redirected {
		d = c.cfg.retry / 10
	} else {
		c.advance()
		if c.round++; c.round >= len(c.addrs) {
			c.round, d = 0, c.retryDelay()
		}
	}
	if d > 0 {
		c.wait(d)
		return
	}
	c.attempt()
}

func (c *client) sessionEnded(e *end, err error) {
	if e != c.sess {
		return
	}
	c.sess = nil
	pending := c.redirect != ""
	if pending || c.w.now-c.began >= c.cfg.retry/10 {
		c.round, c.failures = 0, 0
		if !pending && errors.Is(err, errDeadPeer) {
			c.advance()
		}
		c.attempt()
		return
	}
	c.failures++
	c.advance()
	if c.round++; c.round >= len(c.addrs) {
		c.round = 0
		c.wait(c.retryDelay())
		return
	}
	c.attempt()
}

// wait sleeps d, cut short by a Redirect (now or already buffered).
func (c *client) wait(d time.Duration) {
	if c.kick {
		c.kick = false
		c.attempt()
		return
	}
	c.waiting = true
	c.waitGen++
	gen := c.waitGen
	c.w.procAfter(c.p, d, func() {
		if c.waiting && c.waitGen == gen {
			c.waiting = false
			c.attempt()
		}
	})
}

// Redirect mirrors Client.Redirect: addr is tried next; the session,
// if any, is closed gracefully; a wait is cut short (the kick is
// buffered if the client is not waiting).
func (c *client) Redirect(addr string) {
	c.redirect = addr
	if c.sess != nil {
		c.w.net.close(c.sess)
	}
	if c.waiting {
		c.waiting = false
		c.waitGen++
		c.attempt()
		return
	}
	c.kick = true
}
