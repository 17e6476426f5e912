package mgmt

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hellopics/hellopics/pkg/handshake"
	"github.com/hellopics/hellopics/pkg/pconn"
)

// Config configures a management instance. Start from DefaultConfig.
type Config struct {
	// ListenAddr is where ctrl and data connect (host:port). Default ":7300".
	ListenAddr string

	// AdvertiseAddr is the address components should use for this
	// instance, given to them by a backup's redirect. Default: ListenAddr
	// if it names a host, else the address the first component used.
	AdvertiseAddr string

	// OperatorAddr is where the operator gRPC API listens; "" disables it.
	// Default "127.0.0.1:7400".
	OperatorAddr string

	// HelloInterval is the period of the Hello cycle, at least 10 ms.
	// Default 1 s.
	HelloInterval time.Duration

	// IdentifyTimeout closes a session that has not identified itself in
	// time. Default 10 s.
	IdentifyTimeout time.Duration

	// DeadTimeout is pconn's dead-peer time for component sessions: a
	// component silent this long is declared lost. Default 3 s.
	DeadTimeout time.Duration

	// Transport, if set, is the base pconn configuration (TLS, limits);
	// its handlers are replaced.
	Transport *pconn.Config

	// Logger is the root logger; the instance logs under "mgmt". Nil
	// discards logs.
	Logger hclog.Logger
}

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config {
	return Config{
		ListenAddr:      ":7300",
		OperatorAddr:    "127.0.0.1:7400",
		HelloInterval:   handshake.DefaultHelloInterval,
		IdentifyTimeout: handshake.DefaultIdentifyTimeout,
		DeadTimeout:     3 * time.Second,
	}
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	var errs []error
	if c.ListenAddr == "" {
		errs = append(errs, errors.New("ListenAddr is empty"))
	}
	if c.HelloInterval < handshake.MinHelloInterval {
		errs = append(errs, fmt.Errorf("HelloInterval %v below the minimum %v", c.HelloInterval, handshake.MinHelloInterval))
	}
	if c.IdentifyTimeout <= 0 {
		errs = append(errs, fmt.Errorf("IdentifyTimeout %v must be positive", c.IdentifyTimeout))
	}
	if c.DeadTimeout < pconn.MinDeadTimeout {
		errs = append(errs, fmt.Errorf("DeadTimeout %v below the minimum %v", c.DeadTimeout, pconn.MinDeadTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("mgmt: invalid config: %w", err)
	}
	return nil
}
