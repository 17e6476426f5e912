package mgmt

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/hashicorp/go-hclog"

	"github.com/hellopics/hellopics/internal/metrics"
	"github.com/hellopics/hellopics/mgmt/operator"
	"github.com/hellopics/hellopics/pkg/appliance"
	"github.com/hellopics/hellopics/pkg/hellocycle"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// Server is a running management instance: the framework's management
// shell (appliance.Management) with the operator API and the metrics
// served beside it.
type Server struct {
	*appliance.Management

	op     *operator.Server
	opAddr net.Addr
	broker *operator.Broker
	opDone chan struct{}
	metSrv *metrics.Server
	// cycle is the Hello cycle application (Config.AppCycle), or nil.
	cycle *hellocycle.Cycle
}

// HelloCycle is the Hello cycle application when Config.AppCycle is
// set (nil otherwise); call its methods through Node().Do.
func (s *Server) HelloCycle() *hellocycle.Cycle { return s.cycle }

// New validates cfg and starts the instance: it listens for components at
// once and runs until Close.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	log = log.Named("mgmt")
	s := &Server{}
	if cfg.AppCycle {
		// The Hello cycle runs as an application, beside cfg.App.
		hc := hellocycle.DefaultConfig()
		hc.Interval = cfg.HelloInterval
		app, cycle, err := hellocycle.Mgmt(hc)
		if err != nil {
			return nil, fmt.Errorf("mgmt: %w", err)
		}
		name := "hellocycle"
		if cfg.App != nil && cfg.App.Name != "" {
			name = cfg.App.Name
		}
		cfg.App = appliance.Compose(name, app, cfg.App)
		cfg.CycleView = cycle
		s.cycle = cycle
	}
	var ln net.Listener
	if cfg.OperatorAddr != "" {
		// Listen first, so that a port in use fails before anything runs;
		// serve once the instance exists.
		var err error
		if ln, err = net.Listen("tcp", cfg.OperatorAddr); err != nil {
			return nil, fmt.Errorf("mgmt: operator API: %w", err)
		}
		s.opAddr = ln.Addr()
		s.broker = operator.NewBroker(256)
		s.op = operator.New(s, s.broker, log, operator.WithTLS(cfg.OperatorTLS),
			operator.WithRefusalLogInterval(cfg.RefusalLogInterval), operator.WithAppCall(s.appCall))
		cfg.OnServing = s.op.SetServing
	}
	m, err := appliance.StartManagement(cfg.ManagementConfig)
	if err != nil {
		if ln != nil {
			ln.Close()
			s.broker.Close()
		}
		return nil, err
	}
	s.Management = m
	if s.op != nil {
		m.OnEvent(s.broker.Publish)
		s.opDone = make(chan struct{})
		go func() {
			defer close(s.opDone)
			if err := s.op.Serve(ln); err != nil {
				log.Error("operator API stopped", "component", "mgmt", "error", err)
			}
		}()
	}
	if cfg.MetricsAddr != "" {
		reg := metrics.NewRegistry()
		reg.MustRegister(m.Collectors()...)
		if s.op != nil {
			reg.MustRegister(s.op.Collectors()...)
		}
		if s.metSrv, err = metrics.Serve(cfg.MetricsAddr, reg, log.Named("metrics")); err != nil {
			s.Close()
			return nil, fmt.Errorf("mgmt: %w", err)
		}
	}
	return s, nil
}

// OperatorAddr is where the operator API listens, or nil without one.
func (s *Server) OperatorAddr() net.Addr { return s.opAddr }

// MetricsAddr is where metrics are served, or nil.
func (s *Server) MetricsAddr() net.Addr {
	if s.metSrv == nil {
		return nil
	}
	return s.metSrv.Addr()
}

// Status returns the instance's status, its pairs as req selects
// (operator.Backend).
func (s *Server) Status(ctx context.Context, req *hellopicsv1.GetStatusRequest) (*hellopicsv1.GetStatusResponse, error) {
	st, err := s.Management.Status(ctx, req)
	if errors.Is(err, appliance.ErrBadRequest) {
		return nil, fmt.Errorf("%w: %v", operator.ErrInvalidArgument, err)
	}
	return st, err
}

// Switchover hands mastership to target (or the best backup when "") and
// waits until it is done or ctx ends (operator.Backend).
func (s *Server) Switchover(ctx context.Context, target string) (*hellopicsv1.SwitchoverResponse, error) {
	r, err := s.Management.Switchover(ctx, target)
	switch {
	case errors.Is(err, appliance.ErrNotMaster):
		return nil, fmt.Errorf("%w: %v", operator.ErrNotMaster, err)
	case errors.Is(err, appliance.ErrUnavailable):
		return nil, fmt.Errorf("%w: %v", operator.ErrUnavailable, err)
	}
	return r, err
}

// appCall runs an operator's AppCall in the application
// (operator.AppCallFunc).
func (s *Server) appCall(ctx context.Context, name string, admin bool, typ string, body []byte) (string, []byte, error) {
	return s.OperatorCall(ctx, appliance.Peer{Role: appliance.Operator, Name: name}, admin, typ, body)
}

// Close stops the operator API (health NOT_SERVING first), then the
// instance, then the metrics.
func (s *Server) Close() error {
	if s.op != nil {
		s.op.SetServing(false)
		s.op.GracefulStop()
		if s.opDone != nil {
			<-s.opDone
		}
		s.broker.Close()
	}
	var err error
	if s.Management != nil {
		err = s.Management.Close()
	}
	if s.metSrv != nil {
		s.metSrv.Close()
	}
	return err
}
