// Package health serves the standard gRPC health service for a component
// that has no other gRPC API (ctrl, data): SERVING while its handshake is
// complete, NOT_SERVING otherwise, so that load balancers, orchestrators
// and `grpc_health_probe` can ask it.
package health

import (
	"errors"
	"fmt"
	"net"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Server is a gRPC server with only the health service.
type Server struct {
	grpc   *grpc.Server
	health *grpchealth.Server
	ln     net.Listener
	done   chan struct{}
}

// Serve listens on addr and serves the health service, NOT_SERVING until
// SetServing(true). service names the component ("hellopics.ctrl"); the
// overall status ("") follows it.
func Serve(addr, service string, log hclog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("health: listen on %s: %w", addr, err)
	}
	s := &Server{grpc: grpc.NewServer(), health: grpchealth.NewServer(), ln: ln, done: make(chan struct{})}
	healthpb.RegisterHealthServer(s.grpc, s.health)
	s.set(service, false)
	go func() {
		defer close(s.done)
		if err := s.grpc.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			log.Error("health server stopped", "error", err)
		}
	}()
	log.Info("serving gRPC health", "addr", ln.Addr().String(), "service", service)
	return s, nil
}

func (s *Server) set(service string, serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus(service, st)
	s.health.SetServingStatus("", st)
}

// SetServing sets the status of service and of the server as a whole.
func (s *Server) SetServing(service string, serving bool) { s.set(service, serving) }

// Addr is where the server listens.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server and its streams (health Watch streams included).
func (s *Server) Close() {
	s.health.Shutdown()
	s.grpc.Stop()
	<-s.done
}
