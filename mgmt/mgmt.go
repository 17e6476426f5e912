package mgmt

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hellopics/hellopics/pkg/handshake"
	"github.com/hellopics/hellopics/pkg/pconn"
	"github.com/hellopics/hellopics/pkg/tier"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// Server is a running management instance.
type Server struct {
	cfg     Config
	log     hclog.Logger
	started time.Time

	loop    *tier.Loop
	machine *handshake.Mgmt // loop goroutine only
	reg     *tier.Registry  // loop goroutine only
	srv     *pconn.Server

	mu        sync.Mutex
	listeners []func(handshake.Event)
}

// New validates cfg and starts the instance: it listens for components at
// once and runs until Close.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	root := cfg.Logger
	if root == nil {
		root = hclog.NewNullLogger()
	}
	m, err := handshake.NewMgmt(handshake.MgmtConfig{
		HelloInterval:   cfg.HelloInterval,
		IdentifyTimeout: cfg.IdentifyTimeout,
		Epoch:           1,
	})
	if err != nil {
		return nil, fmt.Errorf("mgmt: %w", err)
	}
	s := &Server{
		cfg:     cfg,
		log:     root.Named("mgmt"),
		started: time.Now(),
		loop:    tier.NewLoop(4096),
		machine: m,
		reg:     tier.NewRegistry(),
	}
	pc := pconn.DefaultConfig(nil)
	if cfg.Transport != nil {
		pc = *cfg.Transport
	}
	pc.Handler = s.loop.Handler(s.onFrame)
	pc.EventHandler = s.loop.EventHandler(s.onSession)
	pc.DeadTimeout = cfg.DeadTimeout
	pc.Logger = s.log.Named("pconn")
	srv, err := pconn.Listen(cfg.ListenAddr, pc)
	if err != nil {
		s.loop.Close()
		return nil, fmt.Errorf("mgmt: components: %w", err)
	}
	s.srv = srv
	s.log.Info("listening for components", "component", "mgmt", "addr", srv.Addr().String(),
		"hello_interval", cfg.HelloInterval, "epoch", m.Epoch())
	return s, nil
}

// Addr is where components connect.
func (s *Server) Addr() net.Addr { return s.srv.Addr() }

// OnEvent registers f to be called, on the instance's loop goroutine, for
// every handshake event. f must not block.
func (s *Server) OnEvent(f func(handshake.Event)) {
	s.mu.Lock()
	s.listeners = append(s.listeners, f)
	s.mu.Unlock()
}

func (s *Server) onSession(ev pconn.Event) {
	if ev.Session == nil {
		return
	}
	now := time.Now()
	switch ev.Type {
	case pconn.EventEstablished:
		id := s.reg.Add(ev.Session)
		s.log.Debug("component connected", "component", "mgmt", "peer", ev.Addr.String(), "session", uint64(id))
		s.apply(s.machine.SessionUp(id, ev.Addr.String(), now))
	default:
		if !s.reg.Remove(ev.Session) {
			return
		}
		reason := "closed"
		if ev.Err != nil {
			reason = ev.Err.Error()
		}
		s.log.Debug("component session ended", "component", "mgmt", "peer", ev.Addr.String(), "reason", reason)
		s.apply(s.machine.SessionDown(handshake.SessionID(ev.Session.ID()), reason, now))
	}
}

func (s *Server) onFrame(ps *pconn.Session, t hellopicsv1.MsgType, msg proto.Message) {
	id := handshake.SessionID(ps.ID())
	if s.reg.Get(id) == nil {
		return // a frame that raced with its session's end
	}
	s.apply(s.machine.Receive(id, t, msg, time.Now()))
}

func (s *Server) tick() { s.apply(s.machine.Tick(time.Now())) }

// apply carries out the machine's outputs, then re-arms its deadline.
func (s *Server) apply(outs []handshake.Output) {
	for _, o := range outs {
		switch o := o.(type) {
		case handshake.Send:
			s.reg.Send(s.log, o)
		case handshake.Close:
			s.reg.Close(s.log, o)
		case handshake.Event:
			tier.LogEvent(s.log, "mgmt", o)
			s.mu.Lock()
			ls := s.listeners
			s.mu.Unlock()
			for _, f := range ls {
				f(o)
			}
		}
	}
	if at, ok := s.machine.NextDeadline(); ok {
		s.loop.At("handshake", at, s.tick)
	} else {
		s.loop.At("handshake", time.Time{}, nil)
	}
}

// Pairs returns the peer registry as it is now.
func (s *Server) Pairs() []*hellopicsv1.PairStatus {
	var out []*hellopicsv1.PairStatus
	s.loop.Do(func() { out = s.machine.Pairs() })
	return out
}

// Status returns the operator view of this instance.
func (s *Server) Status(ctx context.Context) (*hellopicsv1.GetStatusResponse, error) {
	st := &hellopicsv1.GetStatusResponse{
		Id:            "mgmt",
		ComponentAddr: s.Addr().String(),
		Started:       timestamppb.New(s.started),
	}
	ok := s.loop.Do(func() {
		st.Pairs = s.machine.Pairs()
		st.Epoch = s.machine.Epoch()
		if s.machine.IsMaster() {
			st.Role = hellopicsv1.MgmtRole_MGMT_ROLE_MASTER
		} else {
			st.Role = hellopicsv1.MgmtRole_MGMT_ROLE_BACKUP
		}
	})
	if !ok {
		return nil, fmt.Errorf("mgmt: stopped")
	}
	return st, ctx.Err()
}

// Close stops accepting, closes every component session gracefully and
// stops the instance.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	s.loop.Close()
	s.log.Info("stopped", "component", "mgmt")
	return err
}
