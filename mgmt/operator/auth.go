package operator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/hellopics/hellopics/pkg/identity"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// Option configures a Server (New).
type Option func(*options)

type options struct {
	tls         *tls.Config
	logInterval time.Duration
	appCall     AppCallFunc
}

// WithTLS serves the API over TLS with cfg, which should require a
// client certificate (tlsconf.Source.ServerConfig(nil) does: any
// identity of the trust domain; the RPCs are authorised here, so that a
// certificate of the wrong role gets a PermissionDenied that says why
// rather than a failed handshake). Every RPC is then authorised from the
// identity of the client's certificate:
//
//   - GetStatus, WatchEvents, AppCall, the health service and
//     reflection need identity.ID.CanRead: an operator (read or admin)
//     or a mgmt peer; AppCall passes admin = identity.ID.CanAct to the
//     application, whose handlers registered with appliance.Admin need
//     it (PermissionDenied otherwise);
//   - Switchover, and any method not listed above, needs
//     identity.ID.CanAct: an operator admin.
//
// A nil cfg serves plaintext and allows every RPC.
func WithTLS(cfg *tls.Config) Option { return func(o *options) { o.tls = cfg } }

// WithRefusalLogInterval sets how often at most each kind of refusal is
// logged (the others are counted in the metric; the next line says how
// many were left out); 0 logs every one. Without this option:
// DefaultRefusalLogInterval.
func WithRefusalLogInterval(d time.Duration) Option {
	return func(o *options) { o.logInterval = d }
}

// DefaultRefusalLogInterval is how often at most each kind of refused
// request is logged; the others are counted, and the next line says how
// many were left out.
const DefaultRefusalLogInterval = 10 * time.Second

// The reasons of hellopics_operator_refused_total.
const (
	// RefusedHandshake: the TLS handshake failed (no certificate,
	// another CA, expired, another trust domain, or not TLS at all).
	RefusedHandshake = "handshake"
	// RefusedNoIdentity: TLS is on but the request carries no hellopics
	// identity (only with a tls.Config that accepts such clients).
	RefusedNoIdentity = "no_identity"
	// RefusedPermission: the identity may not call the method.
	RefusedPermission = "permission"
)

func newRefusedCounter() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hellopics_operator_refused_total",
		Help: "Operator API connections and requests refused, by reason: handshake (TLS), no_identity, permission.",
	}, []string{"reason"})
	for _, r := range []string{RefusedHandshake, RefusedNoIdentity, RefusedPermission} {
		c.WithLabelValues(r)
	}
	return c
}

// Collectors returns the server's metrics (hellopics_operator_refused_total)
// for the daemon's registry.
func (s *Server) Collectors() []prometheus.Collector { return []prometheus.Collector{s.refused} }

// access is what a method needs.
type access int

const (
	accessRead access = iota // CanRead
	accessAct                // CanAct
)

// methodAccess returns what calling the gRPC method full needs: reading
// for the methods that only look, acting for Switchover and for any
// method not known to only look, so that an RPC added later is closed
// until it is listed here.
func methodAccess(full string) access {
	switch full {
	case hellopicsv1.OperatorService_GetStatus_FullMethodName, hellopicsv1.OperatorService_WatchEvents_FullMethodName,
		hellopicsv1.OperatorService_AppCall_FullMethodName: // the application checks admin (AppCall)
		return accessRead
	}
	for _, svc := range []string{"/grpc.health.v1.Health/", "/grpc.reflection.v1.ServerReflection/", "/grpc.reflection.v1alpha.ServerReflection/"} {
		if strings.HasPrefix(full, svc) {
			return accessRead
		}
	}
	return accessAct
}

// peerIdentity returns the identity of the certificate the client of
// ctx presented over TLS.
func peerIdentity(ctx context.Context) (identity.ID, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return identity.ID{}, errors.New("no peer")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return identity.ID{}, errors.New("the connection is not TLS")
	}
	return identity.FromState(ti.State)
}

// authorize returns nil if the client of ctx may call method, else the
// status error to answer with, after logging and counting the refusal.
// Without TLS everything is allowed.
func (s *Server) authorize(ctx context.Context, method string) error {
	if !s.tls {
		return nil
	}
	id, err := peerIdentity(ctx)
	if err != nil {
		s.refused.WithLabelValues(RefusedNoIdentity).Inc()
		s.refusals.Warn("no_identity "+method, "operator API request refused: the client has no identity",
			"method", method, "peer", peerAddr(ctx), "error", err)
		return status.Errorf(codes.Unauthenticated, "no hellopics identity in the client certificate: %v", err)
	}
	need, ok := accessRead, id.CanRead()
	if methodAccess(method) == accessAct {
		need, ok = accessAct, id.CanAct()
	}
	if ok {
		return nil
	}
	s.refused.WithLabelValues(RefusedPermission).Inc()
	var msg, needs string
	switch {
	case need == accessAct && method == hellopicsv1.OperatorService_Switchover_FullMethodName:
		msg, needs = fmt.Sprintf("%s may not switch over: needs operator/admin", id), "operator/admin"
	case need == accessAct:
		msg, needs = fmt.Sprintf("%s may not call %s: needs operator/admin", id, method), "operator/admin"
	default:
		msg, needs = fmt.Sprintf("%s may not read the operator API: needs operator/read, operator/admin or mgmt", id),
			"operator/read, operator/admin or mgmt"
	}
	s.refusals.Warn("permission "+method, "operator API request refused: permission denied",
		"identity", id.String(), "method", method, "needs", needs, "peer", peerAddr(ctx))
	return status.Error(codes.PermissionDenied, msg)
}

func (s *Server) authUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := s.authorize(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (s *Server) authStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := s.authorize(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return h(srv, ss)
}

// whoArgs returns the log arguments naming the client's identity: none
// without TLS or identity.
func whoArgs(ctx context.Context) []any {
	id, err := peerIdentity(ctx)
	if err != nil {
		return nil
	}
	return []any{"identity", id.String()}
}

// countingCreds are the server's TLS credentials, which count and log
// (rate-limited) the handshakes that fail.
type countingCreds struct {
	credentials.TransportCredentials
	s *Server
}

func (c countingCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ServerHandshake(conn)
	if err != nil {
		c.s.refused.WithLabelValues(RefusedHandshake).Inc()
		c.s.refusals.Warn(RefusedHandshake, "operator API: TLS handshake failed; connection closed",
			"peer", conn.RemoteAddr().String(), "error", err)
	}
	return out, info, err
}

func (c countingCreds) Clone() credentials.TransportCredentials {
	return countingCreds{TransportCredentials: c.TransportCredentials.Clone(), s: c.s}
}
