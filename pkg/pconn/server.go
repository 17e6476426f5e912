package pconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Server accepts framed sessions. Create it with Listen or Serve; it owns
// a goroutine per session and one for accepting, all stopped by Shutdown
// or Close.
type Server struct {
	cfg Config
	log hclog.Logger
	ln  net.Listener

	mu       sync.Mutex
	sessions map[uint64]*Session
	closing  bool

	wg         sync.WaitGroup // accept loop and session goroutines
	acceptDone chan struct{}
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
		acceptDone: make(chan struct{}),
	}
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
			s.log.Error("accept failed; retrying", "error", err, "backoff", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.wg.Add(1)
		go s.serveConn(c)
	}
}

func (s *Server) serveConn(c net.Conn) {
	defer s.wg.Done()
	if s.cfg.TLS != nil {
		tc := tls.Server(c, s.cfg.TLS)
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DialTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			s.log.Warn("TLS handshake failed; connection closed", "peer", c.RemoteAddr().String(), "error", err)
			c.Close()
			return
		}
		c = tc
	}
	ss := newSession(c, &s.cfg, s.cfg.logger().Named("session"))
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		c.Close()
		return
	}
	if len(s.sessions) >= s.cfg.MaxSessions {
		s.mu.Unlock()
		s.log.Warn("connection refused: server full", "peer", c.RemoteAddr().String(), "max_sessions", s.cfg.MaxSessions)
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Write(AppendFrame(nil, TypeError, []byte(ErrServerFull.Error())))
		c.Close()
		return
	}
	s.sessions[ss.id] = ss
	s.mu.Unlock()

	ss.run()

	s.mu.Lock()
	delete(s.sessions, ss.id)
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
	_ = s.ln.Close()
	<-s.acceptDone
	return s.Sessions()
}
