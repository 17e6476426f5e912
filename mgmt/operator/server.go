// Package operator is the management component's operator API: the gRPC
// service hellopics.v1.OperatorService (GetStatus, WatchEvents,
// Switchover, AppCall) with the standard health service and server reflection, and
// the Broker that fans events out to the WatchEvents streams.
//
// With WithTLS, clients present a certificate and every RPC is
// authorised from its identity (package identity): reading (and AppCall)
// needs an operator or a mgmt peer, Switchover an operator admin, and
// the application's handlers registered with appliance.Admin too. Refusals are
// PermissionDenied, logged rate-limited and counted in
// hellopics_operator_refused_total (Collectors).
//
// The management daemon implements Backend, publishes its events to a
// Broker and calls Server.SetServing(true) while it is the master and
// ready, SetServing(false) otherwise:
//
//	br := operator.NewBroker(0)
//	srv := operator.New(daemon, br, log, operator.WithTLS(tlsSource.ServerConfig(nil)))
//	ln, err := net.Listen("tcp", operator.DefaultAddr)
//	go srv.Serve(ln)
//	defer srv.GracefulStop()
//
// See docs/operator.md.
package operator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/hellopics/hellopics/internal/ratelog"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// DefaultAddr is the operator API's default listen address.
const DefaultAddr = "127.0.0.1:7400"

// DefaultGracePeriod is how long GracefulStop waits for RPCs in flight
// before it cuts them.
const DefaultGracePeriod = 5 * time.Second

// MaxPairFilter bounds GetStatusRequest's pair and page_token (a pair id
// is at most 64 bytes).
const MaxPairFilter = 128

// ServiceName is the operator service's full name, also its name in the
// health service.
const ServiceName = "hellopics.v1.OperatorService"

// Backend is what the operator API asks the management daemon. Errors may
// wrap ErrNotMaster, ErrUnavailable, ErrUnknownTarget or ErrTargetNotReady
// to choose the gRPC code (see Code).
type Backend interface {
	// Status returns the instance's status, its pairs as req selects
	// (filter, page). The result is marshaled after Status returns and
	// must not be modified afterwards.
	Status(ctx context.Context, req *hellopicsv1.GetStatusRequest) (*hellopicsv1.GetStatusResponse, error)
	// Switchover hands mastership to targetID ("" for the best backup)
	// and returns once the new master has taken over or ctx is done.
	Switchover(ctx context.Context, targetID string) (*hellopicsv1.SwitchoverResponse, error)
}

// Server serves the operator API. Create it with New, start it with Serve,
// end it with Stop or GracefulStop.
type Server struct {
	hellopicsv1.UnimplementedOperatorServiceServer

	// GracePeriod bounds GracefulStop (DefaultGracePeriod when zero). Set
	// it before Serve.
	GracePeriod time.Duration

	backend Backend
	broker  *Broker
	log     hclog.Logger
	grpc    *grpc.Server
	health  *health.Server

	tls      bool // RPCs are authorised from the client's certificate
	appCall  AppCallFunc
	refused  *prometheus.CounterVec
	refusals *ratelog.Logger

	mu       sync.Mutex
	ln       net.Listener
	done     chan struct{} // closed by Stop and GracefulStop: ends WatchEvents
	stopOnce sync.Once
}

// New returns a server answering from b and streaming the events of br
// (a nil br streams nothing). The health service says NOT_SERVING until
// SetServing(true). A nil log discards the logs; the server logs to its
// sub-logger "operator". Without WithTLS, it serves plaintext and allows
// every RPC.
func New(b Backend, br *Broker, log hclog.Logger, opts ...Option) *Server {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if br == nil {
		br = NewBroker(0)
	}
	o := options{logInterval: DefaultRefusalLogInterval}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{
		backend: b,
		broker:  br,
		log:     log.Named("operator"),
		health:  health.NewServer(),
		done:    make(chan struct{}),
		tls:     o.tls != nil,
		appCall: o.appCall,
		refused: newRefusedCounter(),
	}
	s.refusals = ratelog.New(s.log, o.logInterval)
	sopts := []grpc.ServerOption{
		// Authorisation inside the logging, so that refusals are
		// logged at DEBUG like any RPC.
		grpc.ChainUnaryInterceptor(s.logUnary, s.authUnary),
		grpc.ChainStreamInterceptor(s.logStream, s.authStream),
	}
	if o.tls != nil {
		sopts = append(sopts, grpc.Creds(countingCreds{TransportCredentials: credentials.NewTLS(o.tls), s: s}))
	}
	s.grpc = grpc.NewServer(sopts...)
	hellopicsv1.RegisterOperatorServiceServer(s.grpc, s)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	s.SetServing(false)
	return s
}

// Serve accepts connections on ln until Stop or GracefulStop; it then
// returns nil. It is called once.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	s.log.Info("operator API listening", "addr", ln.Addr().String(), "tls", s.tls)
	err := s.grpc.Serve(ln)
	if err == nil || errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return fmt.Errorf("operator: serve %s: %w", ln.Addr(), err)
}

// Addr returns the address Serve listens on, or nil before Serve.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// SetServing sets the health of both ServiceName and "" (the server as a
// whole): SERVING on a ready master, NOT_SERVING otherwise. It is ignored
// once the server is stopping.
func (s *Server) SetServing(serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus(ServiceName, st)
	s.health.SetServingStatus("", st)
}

// Stop closes the listener and every connection at once and ends every
// goroutine of the server. It does not close the Broker.
func (s *Server) Stop() {
	s.beginStop()
	s.grpc.Stop()
}

// GracefulStop stops accepting connections, ends the WatchEvents streams,
// waits up to GracePeriod for the other RPCs in flight, then stops like
// Stop. It does not close the Broker.
func (s *Server) GracefulStop() {
	s.beginStop()
	grace := s.GracePeriod
	if grace <= 0 {
		grace = DefaultGracePeriod
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		s.grpc.GracefulStop()
	}()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-stopped:
	case <-t.C:
		s.log.Warn("operator API: RPCs still running after the grace period, cutting them", "grace", grace)
		s.grpc.Stop()
		<-stopped
	}
}

func (s *Server) beginStop() {
	s.stopOnce.Do(func() {
		s.health.Shutdown()
		close(s.done)
	})
}

// GetStatus implements hellopicsv1.OperatorServiceServer.
func (s *Server) GetStatus(ctx context.Context, req *hellopicsv1.GetStatusRequest) (*hellopicsv1.GetStatusResponse, error) {
	if len(req.GetPair()) > MaxPairFilter || len(req.GetPageToken()) > MaxPairFilter {
		return nil, status.Errorf(codes.InvalidArgument, "pair filter of %d bytes and page token of %d (at most %d each)",
			len(req.GetPair()), len(req.GetPageToken()), MaxPairFilter)
	}
	resp, err := s.backend.Status(ctx, req)
	if err != nil {
		return nil, toStatus(err)
	}
	if resp == nil {
		return nil, status.Error(codes.Internal, "backend returned no status")
	}
	return resp, nil
}

// Switchover implements hellopicsv1.OperatorServiceServer.
func (s *Server) Switchover(ctx context.Context, req *hellopicsv1.SwitchoverRequest) (*hellopicsv1.SwitchoverResponse, error) {
	who := whoArgs(ctx)
	s.log.Info("switchover requested", append([]any{"target", req.GetTargetId(), "peer", peerAddr(ctx)}, who...)...)
	resp, err := s.backend.Switchover(ctx, req.GetTargetId())
	if err != nil {
		s.log.Warn("switchover failed", append([]any{"target", req.GetTargetId(), "error", err}, who...)...)
		return nil, toStatus(err)
	}
	if resp == nil {
		return nil, status.Error(codes.Internal, "backend returned no switchover result")
	}
	s.log.Info("switchover done", append([]any{"new_master", resp.GetNewMasterId(), "epoch", resp.GetEpoch()}, who...)...)
	return resp, nil
}

// WatchEvents implements hellopicsv1.OperatorServiceServer: it sends the
// recent history (the last DefaultHistory events, or with since every
// kept event at or after it), then, unless history_only, every event as
// it is published. It ends with InvalidArgument for a malformed since,
// with OK after the history when history_only, with ResourceExhausted
// when the client falls too far behind and with Unavailable when the
// server stops.
func (s *Server) WatchEvents(req *hellopicsv1.WatchEventsRequest, stream grpc.ServerStreamingServer[hellopicsv1.WatchEventsResponse]) error {
	var since *time.Time
	if ts := req.GetSince(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			return status.Errorf(codes.InvalidArgument, "bad since: %v", err)
		}
		t := ts.AsTime()
		since = &t
	}
	if req.GetHistoryOnly() {
		var h []*hellopicsv1.WatchEventsResponse
		if since != nil {
			h = s.broker.History(*since)
		} else {
			h = s.broker.History(time.Time{})
			h = h[max(0, len(h)-DefaultHistory):]
		}
		for _, ev := range h {
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
		return nil
	}
	sub := s.broker.subscribe(since)
	defer s.broker.unsubscribe(sub)
	// Send the headers now so that the client knows it is subscribed
	// before the first event.
	if err := stream.SendHeader(nil); err != nil {
		return err
	}
	ctx := stream.Context()
	for {
		select {
		case ev, ok := <-sub.ch:
			if !ok {
				if sub.dropped {
					s.log.Warn("operator client too slow, event stream dropped", "peer", peerAddr(ctx))
					return status.Error(codes.ResourceExhausted, "client too slow: events were dropped; watch again")
				}
				return status.Error(codes.Unavailable, "event stream closed: management is stopping")
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
		case <-s.done:
			return status.Error(codes.Unavailable, "management is stopping")
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

func (s *Server) logUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	t0 := time.Now()
	resp, err := h(ctx, req)
	s.log.Debug("rpc", rpcLogArgs(ctx, info.FullMethod, t0, err)...)
	return resp, err
}

func (s *Server) logStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx := ss.Context()
	t0 := time.Now()
	s.log.Debug("rpc stream begins", append([]any{"method", info.FullMethod, "peer", peerAddr(ctx)}, whoArgs(ctx)...)...)
	err := h(srv, ss)
	s.log.Debug("rpc stream ends", rpcLogArgs(ctx, info.FullMethod, t0, err)...)
	return err
}

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

// rpcLogArgs are the key-value pairs logged for a finished RPC.
func rpcLogArgs(ctx context.Context, method string, t0 time.Time, err error) []any {
	st := status.Convert(err)
	args := append([]any{"method", method, "peer", peerAddr(ctx)}, whoArgs(ctx)...)
	args = append(args, "code", st.Code().String(), "duration", time.Since(t0))
	if err != nil {
		args = append(args, "error", st.Message())
	}
	return args
}
