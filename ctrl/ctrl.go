// Package ctrl is the control component: it connects to management on a
// retry timer, identifies itself, accepts its data component and forwards
// hellos. It follows the master mgmt through a failover without
// restarting. It runs on the component shell of package appliance (the
// same as data's), with the application of Config.App inside.
package ctrl

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hellopics/hellopics/pkg/appliance"
	"github.com/hellopics/hellopics/pkg/hellocycle"
	"github.com/hellopics/hellopics/pkg/tier"
)

// Config configures a control component. Start from DefaultConfig.
type Config struct {
	// ComponentConfig holds what ctrl shares with data: the mgmt
	// addresses, pair id, timers, transport, logger, metrics and health.
	tier.ComponentConfig

	// App is the application running in ctrl (pkg/appliance). Nil runs
	// none.
	App *appliance.App

	// ListenAddr is where the data component connects. Default ":7301".
	ListenAddr string

	// AdvertiseAddr is the address data is told to dial. Default:
	// ListenAddr if it names a host, else this host's address toward the
	// first mgmt, with ListenAddr's port.
	AdvertiseAddr string

	// IdentifyTimeout closes a data connection that has not identified
	// itself in time. Default 10 s.
	IdentifyTimeout time.Duration
}

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config {
	return Config{
		ComponentConfig: tier.DefaultComponentConfig(),
		ListenAddr:      ":7301",
		IdentifyTimeout: appliance.DefaultIdentifyTimeout,
	}
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	errs := c.Problems()
	if c.ListenAddr == "" {
		errs = append(errs, errors.New("ListenAddr is empty"))
	}
	if c.IdentifyTimeout <= 0 {
		errs = append(errs, fmt.Errorf("IdentifyTimeout %v must be positive", c.IdentifyTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ctrl: invalid config: %w", err)
	}
	return nil
}

// Ctrl is a running control component.
type Ctrl struct {
	c   *appliance.Component
	log hclog.Logger
}

// New validates cfg, listens for data and starts connecting to mgmt.
func New(cfg Config) (*Ctrl, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c, err := appliance.StartComponent(appliance.ComponentSpec{
		Role: appliance.Ctrl, Config: cfg.ComponentConfig, App: hellocycle.WithRelay(cfg.App),
		ListenAddr: cfg.ListenAddr, AdvertiseAddr: cfg.AdvertiseAddr, IdentifyTimeout: cfg.IdentifyTimeout,
	})
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Ctrl{c: c, log: log.Named("ctrl")}, nil
}

// DataAddr is where ctrl listens for data.
func (c *Ctrl) DataAddr() net.Addr { return c.c.PeerAddr() }

// Ready reports whether ctrl's data component is connected and ready.
func (c *Ctrl) Ready() bool { return c.c.Ready() }

// Node is the application's handle on this component (Config.App).
func (c *Ctrl) Node() *appliance.Node { return c.c.Node() }

// Close stops the component: the application, then its mgmt session and
// data sessions, gracefully.
func (c *Ctrl) Close() error {
	err := c.c.Close()
	c.log.Info("stopped", "component", "ctrl")
	return err
}

// MetricsAddr is where metrics are served, or nil.
func (c *Ctrl) MetricsAddr() net.Addr { return c.c.MetricsAddr() }

// HealthAddr is where the gRPC health service is served, or nil.
func (c *Ctrl) HealthAddr() net.Addr { return c.c.HealthAddr() }
