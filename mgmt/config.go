package mgmt

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/hellopics/hellopics/pkg/appliance"
)

// Config configures a management instance. Start from DefaultConfig.
//
// The instance itself (component port, registry and Hello cycle,
// mastership and state sync, the application) is configured by the
// embedded appliance.ManagementConfig, whose fields, and the election's
// within it (ID, Priority, Peers, HeartbeatInterval, DeadMisses,
// NoPreempt, PreemptDelay, MaxEpochJump), are promoted: cfg.ListenAddr,
// cfg.Peers. Config adds what the daemon serves beside it: the
// operator API and the metrics.
type Config struct {
	appliance.ManagementConfig

	// OperatorAddr is where the operator gRPC API listens; "" disables it.
	// Default "127.0.0.1:7400".
	OperatorAddr string

	// OperatorTLS, when set, serves the operator API over mutual TLS
	// with it, and every RPC is authorised from the client certificate's
	// identity (operator.WithTLS): reading needs an operator or a mgmt
	// peer, Switchover an operator admin. Give it a configuration that
	// accepts any identity of the trust domain, such as
	// tlsSource.ServerConfig(nil), so that a certificate of the wrong
	// role is told why (PermissionDenied) and counted. Nil is plaintext,
	// every RPC allowed.
	OperatorTLS *tls.Config

	// MetricsAddr is where Prometheus metrics are served (/metrics); ""
	// disables them.
	MetricsAddr string
}

// DefaultConfig returns the defaults described on Config and
// appliance.ManagementConfig.
func DefaultConfig() Config {
	return Config{
		ManagementConfig: withAppCycle(appliance.DefaultManagementConfig()),
		OperatorAddr:     "127.0.0.1:7400",
	}
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	if err := errors.Join(c.Problems()...); err != nil {
		return fmt.Errorf("mgmt: invalid config: %w", err)
	}
	return nil
}

// withAppCycle is c with the Hello cycle run as an application
// (pkg/hellocycle), mgmt's default.
func withAppCycle(c appliance.ManagementConfig) appliance.ManagementConfig {
	c.AppCycle = true
	return c
}
