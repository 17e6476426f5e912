// Package tpce is a small TPCE client of the MEDS relay (spec section 1):
// it connects to the relay's commands, events or status port, sends
// commands and reads responses, relay errors, events and status blocks.
// RunLoad generates command load and measures round trips.
package tpce

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hellopics/hellopics/pkg/meds"
)

// Conn is one TCP connection to a relay port. Send may be called from
// one goroutine while another calls Recv.
type Conn struct {
	c  net.Conn
	rd *meds.Reader

	wmu sync.Mutex
	w   *bufio.Writer
	buf []byte
}

// Dial connects to a relay port at addr ("host:port"). maxText bounds
// the text of received messages (meds.DefaultMaxText when 0).
func Dial(ctx context.Context, addr string, maxText uint32) (*Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tpce: dial %s: %w", addr, err)
	}
	return &Conn{c: c, rd: meds.NewReader(c, maxText), w: bufio.NewWriterSize(c, 64<<10)}, nil
}

// Send writes one message (normally a command) and flushes it.
func (c *Conn) Send(m meds.Message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.buf = meds.AppendMessage(c.buf[:0], m)
	if _, err := c.w.Write(c.buf); err != nil {
		return fmt.Errorf("tpce: send %s id %d to %s: %w", m.Type, m.ID, c.c.RemoteAddr(), err)
	}
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("tpce: send %s id %d to %s: %w", m.Type, m.ID, c.c.RemoteAddr(), err)
	}
	return nil
}

// Command sends a command with id and text.
func (c *Conn) Command(id uint32, text []byte) error {
	return c.Send(meds.Message{Type: meds.TypeCommand, ID: id, Text: text})
}

// Recv reads the next message. Its Text is valid until the next Recv.
func (c *Conn) Recv() (meds.Message, error) {
	m, err := c.rd.Next()
	if err != nil {
		return m, fmt.Errorf("tpce: receive from %s: %w", c.c.RemoteAddr(), err)
	}
	return m, nil
}

// SetReadDeadline bounds the wait of Recv: past t it returns an error
// matching os.ErrDeadlineExceeded. The zero time waits forever.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.c.SetReadDeadline(t) }

// LocalAddr returns the client side's address.
func (c *Conn) LocalAddr() net.Addr { return c.c.LocalAddr() }

// Close closes the connection; a blocked Recv returns.
func (c *Conn) Close() error { return c.c.Close() }
