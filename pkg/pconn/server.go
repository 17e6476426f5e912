package pconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hellopics/hellopics/internal/ratelog"
)

// Server accepts framed sessions. Create it with Listen or Serve; it owns
// a goroutine per session and one for accepting, all stopped by Shutdown
// or Close.
type Server struct {
	cfg   Config
	log   hclog.Logger
	rl    *ratelog.Logger // the server's own warnings a peer can trigger
	srl   *ratelog.Logger // its sessions' ones
	ln    net.Listener
	stats serverCounters

	mu       sync.Mutex
	sessions map[uint64]*Session
	perHost  map[string]int // connections per remote IP, from accept to close
	closing  bool

	wg         sync.WaitGroup // accept loop and session goroutines
	acceptDone chan struct{}
	quit       chan struct{} // closed when the server stops accepting
	quitOnce   sync.Once
}

// serverCounters are the counters behind ServerStats.
type serverCounters struct {
	accepted, refusedFull, refusedPerHost atomic.Uint64
	refusedFilter                         atomic.Uint64
	protocolErrors, identifyTimeouts      atomic.Uint64
	tlsFailures, acceptErrors             atomic.Uint64
}

// ServerStats are a server's counters since it started, for metrics. The
// events they count are logged at most once per kind and 10 s (the line
// after a quiet spell carries "suppressed", the number not logged).
type ServerStats struct {
	// Sessions is the number of sessions established now.
	Sessions int
	// Accepted counts the connections accepted, refused ones included.
	Accepted uint64
	// RefusedFull counts connections refused because MaxSessions sessions
	// were established (logged "connection refused: server full").
	RefusedFull uint64
	// RefusedFilter counts connections AcceptFilter refused (logged
	// "connection refused by the accept filter").
	RefusedFilter uint64
	// RefusedPerHost counts connections refused over MaxSessionsPerHost
	// (logged "connection refused: too many connections from this host").
	RefusedPerHost uint64
	// ProtocolErrors counts sessions closed because the peer sent an
	// invalid frame: bad version or type, over the frame size limit in
	// force, truncated (logged "closing session: protocol error").
	ProtocolErrors uint64
	// IdentifyTimeouts counts sessions closed because they were not
	// identified within IdentifyTimeout (logged "closing session: peer
	// not identified in time").
	IdentifyTimeouts uint64
	// TLSHandshakeFailures counts connections whose TLS handshake failed
	// or did not finish within DialTimeout (logged "TLS handshake failed;
	// connection closed").
	TLSHandshakeFailures uint64
	// AcceptErrors counts failed accepts, such as running out of file
	// descriptors (logged "accept failed; retrying").
	AcceptErrors uint64
}

// Stats returns the server's counters. Safe for concurrent use.
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	n := len(s.sessions)
	s.mu.Unlock()
	return ServerStats{
		Sessions:             n,
		Accepted:             s.stats.accepted.Load(),
		RefusedFull:          s.stats.refusedFull.Load(),
		RefusedPerHost:       s.stats.refusedPerHost.Load(),
		RefusedFilter:        s.stats.refusedFilter.Load(),
		ProtocolErrors:       s.stats.protocolErrors.Load(),
		IdentifyTimeouts:     s.stats.identifyTimeouts.Load(),
		TLSHandshakeFailures: s.stats.tlsFailures.Load(),
		AcceptErrors:         s.stats.acceptErrors.Load(),
	}
}

// Listen listens on the TCP address addr ("host:port"; port 0 picks one)
// and serves sessions with cfg.
func Listen(addr string, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pconn: listen on %s: %w", addr, err)
	}
	return Serve(ln, cfg)
}

// Serve serves sessions on ln, which the Server then owns and closes.
func Serve(ln net.Listener, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		ln.Close()
		return nil, err
	}
	s := &Server{
		cfg:        cfg,
		log:        cfg.logger().Named("server"),
		ln:         ln,
		sessions:   make(map[uint64]*Session),
		perHost:    make(map[string]int),
		acceptDone: make(chan struct{}),
		quit:       make(chan struct{}),
	}
	s.rl = ratelog.New(s.log, cfg.LogInterval)
	s.srl = ratelog.New(cfg.logger().Named("session"), cfg.LogInterval)
	s.wg.Add(1)
	go s.acceptLoop()
	s.log.Debug("listening", "addr", ln.Addr().String(), "tls", cfg.TLS != nil)
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Sessions returns the sessions established now.
func (s *Server) Sessions() []*Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		out = append(out, ss)
	}
	return out
}

// Session returns the established session with the given id, or nil.
func (s *Server) Session(id uint64) *Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}

// Send queues a frame on the session with the given id.
func (s *Server) Send(id uint64, t MsgType, payload []byte) error {
	ss := s.Session(id)
	if ss == nil {
		return fmt.Errorf("pconn: send to session %d: %w", id, ErrNotConnected)
	}
	return ss.Send(t, payload)
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	defer close(s.acceptDone)
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and go on.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff < time.Second {
				backoff *= 2
			}
			s.stats.acceptErrors.Add(1)
			s.rl.Error("accept", "accept failed; retrying", "error", err, "backoff", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-s.quit:
				t.Stop()
			}
			continue
		}
		backoff = 0
		s.stats.accepted.Add(1)
		host, admitted := s.admitHost(c.RemoteAddr())
		s.wg.Add(1)
		go s.serveConn(c, host, admitted)
	}
}

// hostOf is the remote IP address that MaxSessionsPerHost counts by.
func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip4 := ta.IP.To4(); ip4 != nil {
			return ip4.String()
		}
		return ta.IP.String()
	}
	if h, _, err := net.SplitHostPort(a.String()); err == nil {
		return h
	}
	return a.String()
}

// admitHost counts a new connection from a's host, unless that host is at
// MaxSessionsPerHost.
func (s *Server) admitHost(a net.Addr) (string, bool) {
	if s.cfg.MaxSessionsPerHost == 0 {
		return "", true
	}
	host := hostOf(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perHost[host] >= s.cfg.MaxSessionsPerHost {
		return host, false
	}
	s.perHost[host]++
	return host, true
}

// releaseHost uncounts a connection admitted by admitHost.
func (s *Server) releaseHost(host string) {
	s.mu.Lock()
	s.releaseHostLocked(host)
	s.mu.Unlock()
}

// releaseHostLocked is releaseHost with mu held.
func (s *Server) releaseHostLocked(host string) {
	if s.cfg.MaxSessionsPerHost == 0 {
		return
	}
	if s.perHost[host]--; s.perHost[host] <= 0 {
		delete(s.perHost, host)
	}
}

// refuse tells the peer on c why it is refused, in an error frame, and
// closes c.
func refuse(c net.Conn, why error) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write(AppendFrame(nil, TypeError, []byte(why.Error())))
	c.Close()
}

func (s *Server) serveConn(c net.Conn, host string, admitted bool) {
	defer s.wg.Done()
	peer := c.RemoteAddr().String()
	if f := s.cfg.AcceptFilter; f != nil {
		if err := f(c.RemoteAddr()); err != nil {
			if admitted {
				s.releaseHost(host)
			}
			s.stats.refusedFilter.Add(1)
			s.rl.Warn("refused-filter", "connection refused by the accept filter", "peer", peer, "error", err)
			c.Close() // nothing is read or written: not even why
			return
		}
	}
	if !admitted {
		s.stats.refusedPerHost.Add(1)
		s.rl.Warn("refused-per-host", "connection refused: too many connections from this host", "peer", peer,
			"max_sessions_per_host", s.cfg.MaxSessionsPerHost)
		if s.cfg.TLS != nil {
			c.Close() // a TLS handshake is the costliest thing a flood could make us do
			return
		}
		refuse(c, ErrTooManyFromHost)
		return
	}
	released := false
	defer func() {
		if !released {
			s.releaseHost(host)
		}
	}()
	if s.cfg.TLS != nil {
		tc := tls.Server(c, s.cfg.TLS)
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DialTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			s.stats.tlsFailures.Add(1)
			s.rl.Warn("tls", "TLS handshake failed; connection closed", "peer", peer, "error", err)
			c.Close()
			return
		}
		c = tc
	}
	ss := newSession(c, &s.cfg, s.cfg.logger().Named("session"), s, s.srl)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		c.Close()
		return
	}
	if len(s.sessions) >= s.cfg.MaxSessions {
		s.mu.Unlock()
		s.stats.refusedFull.Add(1)
		s.rl.Warn("refused-full", "connection refused: server full", "peer", peer, "max_sessions", s.cfg.MaxSessions)
		refuse(c, ErrServerFull)
		return
	}
	s.sessions[ss.id] = ss
	s.mu.Unlock()

	ss.run()

	// The session and its place in the per-host count go together, so
	// that Stats().Sessions dropping means the host may connect again.
	s.mu.Lock()
	delete(s.sessions, ss.id)
	s.releaseHostLocked(host)
	released = true
	s.mu.Unlock()
}

// Shutdown stops accepting, closes every session gracefully (queued
// frames are written, then a goodbye) and waits for them to end. When ctx
// ends first, the remaining sessions are cut off and ctx's error returned.
func (s *Server) Shutdown(ctx context.Context) error {
	sessions := s.stopAccepting()
	for _, ss := range sessions {
		ss.Close()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, ss := range s.Sessions() {
			ss.abort(ErrClosed)
		}
		<-done
		return ctx.Err()
	}
}

// Close stops accepting and cuts every session off at once.
func (s *Server) Close() error {
	for _, ss := range s.stopAccepting() {
		ss.abort(ErrClosed)
	}
	s.wg.Wait()
	return nil
}

func (s *Server) stopAccepting() []*Session {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.quitOnce.Do(func() { close(s.quit) })
	_ = s.ln.Close()
	<-s.acceptDone
	return s.Sessions()
}
