package pconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Config configures a Server or a Client. Start from DefaultConfig and
// change what you need; a zero field is an error, not a default, except
// where its comment says otherwise.
type Config struct {
	// Handler receives every application frame of every session. It runs
	// on the session's read loop: frames of one session are handled one at
	// a time, in order. Required unless Pull is set.
	Handler Handler

	// Pull puts sessions in pull mode: there is no read loop and no
	// Handler; the application reads each frame with Session.Recv, on its
	// own goroutine. It suits a client that sends a request and waits for
	// the answer. The dead-peer check then runs only while a Recv waits,
	// and pings from the peer are answered only during Recv: keep a Recv
	// pending, or let the peer's DeadTimeout allow for the pauses.
	Pull bool

	// EventHandler is told when a session is established and when it ends
	// (and, for a client, when an attempt to connect fails). Optional.
	EventHandler EventHandler

	// Logger receives pconn's own logs; sessions log through sub-loggers
	// named "session" with a "peer" key. Nil discards them.
	Logger hclog.Logger

	// LogInterval is how often at most a kind of warning that a peer can
	// trigger at will (a protocol error, a refused connection) is logged
	// per Server or Client; the occurrences in between are counted and
	// the next line says how many ("suppressed"). 0 logs every one (for
	// debugging; a flood then floods the log). Default 10 s.
	LogInterval time.Duration

	// MaxFrameSize is the largest payload, in bytes, accepted from a peer
	// and allowed in Send. Checked from the header, before the payload is
	// read. Default 1 MiB.
	MaxFrameSize int

	// MaxFrameSizeUnidentified is the largest payload, in bytes, accepted
	// on a server session until the application marks it identified with
	// Session.SetIdentified (typically once the peer's first message named
	// a known peer); MaxFrameSize applies from then on. A peer that has not
	// shown who it is thus cannot make the server buffer more than this per
	// connection. 0, or a value over MaxFrameSize, means no separate
	// limit: MaxFrameSize applies from the start. Client sessions are
	// identified from the start. Server only. Default 4 KiB.
	MaxFrameSizeUnidentified int

	// ReadBufferSize is the largest read buffer per session, in bytes.
	// Payloads that fit (header included) are handed to the Handler
	// without a copy. The buffer starts at 4 KiB (or this size if smaller)
	// and doubles up to this size as data arrives, so an idle session does
	// not cost the full size. Default 64 KiB.
	ReadBufferSize int

	// SendQueueFrames bounds the frames queued for one session and not yet
	// written. Send fails with ErrQueueFull beyond it. Default 4096.
	SendQueueFrames int

	// SendQueueBytes bounds the bytes queued for one session. Default 8 MiB.
	SendQueueBytes int

	// WriteTimeout is how long a write to the peer may block before the
	// session fails with ErrPeerNotReading: a peer that stops reading is
	// disconnected instead of growing our memory. Default 10 s.
	WriteTimeout time.Duration

	// DeadTimeout is how long a session may go without receiving anything
	// from the peer before it fails with ErrDeadPeer. When nothing arrives
	// for a fifth of it, pconn sends a ping that the peer answers, so an
	// idle but healthy link is never declared dead. Independent of TCP
	// keepalive. Minimum 30 ms. Default 3 s.
	DeadTimeout time.Duration

	// LingerTimeout bounds a graceful close: after our goodbye is written
	// we wait this long for the peer to close its side. Default 1 s.
	LingerTimeout time.Duration

	// TLS, when set, wraps every connection in TLS. For mutual TLS set
	// ClientAuth (server) or Certificates (client) as usual; the peer's
	// certificate subject becomes Session.PeerIdentity.
	TLS *tls.Config

	// AcceptFilter, when set, is asked about every accepted connection
	// before anything is read from it; a non-nil error closes it at once,
	// without a word to the peer (counted in ServerStats.RefusedFilter
	// and logged, rate-limited, with the error). Use it to accept only
	// known addresses. It must be quick and safe for concurrent use.
	// Server only.
	AcceptFilter func(remote net.Addr) error

	// MaxSessions bounds a server's concurrent sessions; a connection over
	// the limit is told why and closed. Server only. Default 1024.
	MaxSessions int

	// MaxSessionsPerHost bounds a server's concurrent connections from one
	// remote IP address, counted from the accept (TLS handshakes
	// included), so one host cannot take all of MaxSessions. A connection
	// over it is told why ("pconn: too many connections from this host";
	// with TLS it is closed without a handshake) and closed. 0 means no
	// per-host limit. Server only. Default 64.
	MaxSessionsPerHost int

	// IdentifyTimeout closes a server session that the application has not
	// marked identified (Session.SetIdentified) within this time of its
	// establishment: the peer receives an error frame and the session ends
	// with EventFailed and ErrIdentifyTimeout. Set it on servers whose
	// application calls SetIdentified once the peer proved who it is. 0
	// (the default) disables it. Server only.
	IdentifyTimeout time.Duration

	// RetryInterval is the client's wait between connection attempts.
	// Client only. Default 1 s.
	RetryInterval time.Duration

	// RetryJitter spreads retries: each wait is RetryInterval multiplied by
	// a random factor in [1-RetryJitter, 1], so clients started together
	// do not retry in step, and none waits longer than RetryInterval.
	// 0 disables it.
	// Client only. Default 0.2.
	RetryJitter float64

	// MaxRetryBackoff bounds the client's wait after a server refused
	// it for load (ErrServerFull, ErrTooManyFromHost): the first wait is
	// RetryInterval, each refusal in a row doubles it up to this bound,
	// and each is drawn at random in its upper half, so that a crowd of
	// refused clients (a chassis powering up, every component following
	// a failover) thins out instead of coming back in step and keeping
	// the server full. A session that lives resets it. Client only.
	// Default 30 s; at most RetryInterval when smaller.
	MaxRetryBackoff time.Duration

	// MaxRetries bounds the consecutive failed attempts before the client
	// gives up (Client.Done closes). 0 retries for ever. Client only.
	MaxRetries int

	// DialTimeout bounds one connection attempt, TLS handshake included;
	// a server also bounds each incoming TLS handshake with it. Default 3 s.
	DialTimeout time.Duration

	// Dial replaces net.Dialer for the client, e.g. to bind a source
	// address or to use an in-memory network in tests. Nil uses TCP.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
}

// DefaultConfig returns a Config with every default filled in and handler
// h. Adjust fields before use.
func DefaultConfig(h Handler) Config {
	return Config{
		Handler:                  h,
		MaxFrameSize:             1 << 20,          // 1 MiB, checked from the header
		MaxFrameSizeUnidentified: 4 << 10,          // server: until Session.SetIdentified
		ReadBufferSize:           64 << 10,         // frames up to 64 KiB are zero-copy
		SendQueueFrames:          4096,             // frames queued per session
		SendQueueBytes:           8 << 20,          // bytes queued per session
		WriteTimeout:             10 * time.Second, // a peer that stops reading is cut off
		DeadTimeout:              3 * time.Second,  // silent peer declared dead
		LingerTimeout:            time.Second,      // graceful close waits this long for the peer
		MaxSessions:              1024,             // server: concurrent sessions
		MaxSessionsPerHost:       64,               // server: concurrent connections per remote IP
		RetryInterval:            time.Second,      // client: between attempts
		RetryJitter:              0.2,              // client: each wait 80% to 100% of the interval
		MaxRetryBackoff:          30 * time.Second, // client: after refusals for load
		DialTimeout:              3 * time.Second,  // client: one attempt
		LogInterval:              logInterval,      // a peer's flood of errors: a line per kind and 10 s
	}
}

// MinDeadTimeout is the smallest DeadTimeout accepted.
const MinDeadTimeout = 30 * time.Millisecond

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	var errs []error
	if c.Handler == nil && !c.Pull {
		errs = append(errs, errors.New("Handler is nil"))
	}
	if c.Handler != nil && c.Pull {
		errs = append(errs, errors.New("Handler is set in pull mode"))
	}
	if c.MaxFrameSize <= 0 || c.MaxFrameSize > 1<<31-1 {
		errs = append(errs, fmt.Errorf("MaxFrameSize %d out of range (1..2^31-1)", c.MaxFrameSize))
	}
	if c.MaxFrameSizeUnidentified < 0 {
		errs = append(errs, fmt.Errorf("MaxFrameSizeUnidentified %d is negative", c.MaxFrameSizeUnidentified))
	}
	if c.ReadBufferSize < HeaderSize {
		errs = append(errs, fmt.Errorf("ReadBufferSize %d below %d", c.ReadBufferSize, HeaderSize))
	}
	if c.SendQueueFrames <= 0 {
		errs = append(errs, fmt.Errorf("SendQueueFrames %d must be positive", c.SendQueueFrames))
	}
	if c.SendQueueBytes < HeaderSize+c.MaxFrameSize {
		errs = append(errs, fmt.Errorf("SendQueueBytes %d must hold one maximum frame (%d)", c.SendQueueBytes, HeaderSize+c.MaxFrameSize))
	}
	if c.WriteTimeout <= 0 {
		errs = append(errs, fmt.Errorf("WriteTimeout %v must be positive", c.WriteTimeout))
	}
	if c.DeadTimeout < MinDeadTimeout {
		errs = append(errs, fmt.Errorf("DeadTimeout %v below the minimum %v", c.DeadTimeout, MinDeadTimeout))
	}
	if c.LingerTimeout < 0 {
		errs = append(errs, fmt.Errorf("LingerTimeout %v is negative", c.LingerTimeout))
	}
	if c.MaxSessions <= 0 {
		errs = append(errs, fmt.Errorf("MaxSessions %d must be positive", c.MaxSessions))
	}
	if c.MaxSessionsPerHost < 0 {
		errs = append(errs, fmt.Errorf("MaxSessionsPerHost %d is negative", c.MaxSessionsPerHost))
	}
	if c.IdentifyTimeout < 0 {
		errs = append(errs, fmt.Errorf("IdentifyTimeout %v is negative", c.IdentifyTimeout))
	}
	if c.RetryInterval <= 0 {
		errs = append(errs, fmt.Errorf("RetryInterval %v must be positive", c.RetryInterval))
	}
	if c.RetryJitter < 0 || c.RetryJitter >= 1 {
		errs = append(errs, fmt.Errorf("RetryJitter %v out of range [0,1)", c.RetryJitter))
	}
	if c.MaxRetries < 0 {
		errs = append(errs, fmt.Errorf("MaxRetries %d is negative", c.MaxRetries))
	}
	if c.LogInterval < 0 {
		errs = append(errs, fmt.Errorf("LogInterval %v is negative", c.LogInterval))
	}
	if c.DialTimeout <= 0 {
		errs = append(errs, fmt.Errorf("DialTimeout %v must be positive", c.DialTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pconn: invalid config: %w", err)
	}
	return nil
}

// unidentifiedMax is the payload limit of a server session until it is
// identified.
func (c *Config) unidentifiedMax() int {
	if c.MaxFrameSizeUnidentified == 0 {
		return c.MaxFrameSize
	}
	return min(c.MaxFrameSizeUnidentified, c.MaxFrameSize)
}

func (c *Config) logger() hclog.Logger {
	if c.Logger == nil {
		return hclog.NewNullLogger()
	}
	return c.Logger
}
