package tier

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hellopics/hellopics/pkg/pconn"
	"github.com/hellopics/hellopics/pkg/tlsconf"
)

// ComponentConfig is the configuration every component that connects to
// management shares (ctrl and data embed it). Start from
// DefaultComponentConfig.
type ComponentConfig struct {
	// MgmtAddrs are the management instances (host:port), tried in turn.
	// Required.
	MgmtAddrs []string

	// PairID names the ctrl/data pair; both halves use the same. Default
	// "pic0".
	PairID string

	// RetryInterval is the longest wait between attempts to reach mgmt
	// or the peer component; each wait is jittered down to 80 % of it.
	// Default 1 s.
	RetryInterval time.Duration

	// DeadTimeout declares the peer component (data for ctrl, ctrl for
	// data) lost after this much silence. Default 3 s.
	DeadTimeout time.Duration

	// MgmtDeadTimeout declares the mgmt session lost after this much
	// silence (pconn pings an idle link every fifth of it). It also
	// bounds one attempt to connect to a mgmt address (TLS handshake
	// included), so that a dial toward a host that is gone costs no
	// more. Default 3 s: with watch sessions a component follows a new
	// master when it is elected, not when this gives up (the failover
	// benchmark measured the same times at 300 ms, 1 s and 3 s), and at
	// 1,000 pairs the pings of 300 ms starved mgmt into a collapse
	// (docs/performance.md). Lower it only with NoWatch.
	MgmtDeadTimeout time.Duration

	// NoWatch turns off the watch sessions: with two or more MgmtAddrs a
	// component keeps, besides its session to the master, a light one to
	// every mgmt address, on which a backup that becomes master says so
	// at once (docs/ha.md); without them a component leaves a master
	// whose host is lost only after MgmtDeadTimeout. Default false.
	NoWatch bool

	// Transport, if set, is the base pconn configuration (limits).
	Transport *pconn.Config

	// TLS, when set, puts every link of the component under mutual TLS
	// 1.3 with identities checked (docs/security.md): its own
	// certificate must name its role and PairID. Nil is plaintext.
	TLS *tlsconf.Source

	// Logger is the root logger; the component logs under its role name.
	Logger hclog.Logger

	// Version is reported to mgmt in the identity.
	Version string

	// MetricsAddr is where Prometheus metrics are served; "" disables them.
	MetricsAddr string

	// HealthAddr is where the standard gRPC health service is served
	// (SERVING while the handshake is complete); "" disables it.
	HealthAddr string

	// RefusalLogInterval is how often at most each kind of refused input
	// (a rule of the handshake, a transport error) is logged; the ones in
	// between are counted in the metrics and the next line says how many
	// ("suppressed"). 0 logs every one. Default 10 s.
	RefusalLogInterval time.Duration

	// OnReadyChange, if set, is called (on the component's loop, so it
	// must not block) each time the handshake completes (true) or is
	// undone by a loss (false). The daemon uses it for systemd readiness.
	OnReadyChange func(ready bool)

	// Scripts are operator scripts run when the pair becomes ready, is
	// lost, or the master mgmt changes (docs/ha.md, "Component
	// scripts"). None by default.
	Scripts ComponentScripts
}

// ComponentScripts are the shell command lines a ctrl or data component
// runs on its own events, each as /bin/sh -c CMD sh EVENT EPOCH MASTER
// REASON, on a goroutine of their own, bounded by Timeout (package
// pkg/notify). Empty commands are not run.
type ComponentScripts struct {
	// OnReady runs when the pair becomes ready (the handshake complete).
	OnReady string
	// OnLost runs when the pair stops being ready (the other half or
	// mgmt lost).
	OnLost string
	// OnMasterChanged runs when the component learns of a master at a
	// new epoch (the first one too).
	OnMasterChanged string
	// Timeout bounds each run (its process group is killed then).
	// Default 10 s.
	Timeout time.Duration
}

// DefaultComponentConfig returns the defaults described on
// ComponentConfig.
func DefaultComponentConfig() ComponentConfig {
	return ComponentConfig{
		PairID:          "pic0",
		RetryInterval:   time.Second,
		DeadTimeout:     3 * time.Second,
		MgmtDeadTimeout: 3 * time.Second,

		RefusalLogInterval: 10 * time.Second,
	}
}

// Problems lists every invalid field, for the embedding config's Validate.
func (c *ComponentConfig) Problems() []error {
	var errs []error
	if len(c.MgmtAddrs) == 0 {
		errs = append(errs, errors.New("no mgmt address"))
	}
	if c.PairID == "" {
		errs = append(errs, errors.New("PairID is empty"))
	}
	if c.RetryInterval <= 0 {
		errs = append(errs, fmt.Errorf("RetryInterval %v must be positive", c.RetryInterval))
	}
	if c.DeadTimeout < pconn.MinDeadTimeout {
		errs = append(errs, fmt.Errorf("DeadTimeout %v below the minimum %v", c.DeadTimeout, pconn.MinDeadTimeout))
	}
	if c.RefusalLogInterval < 0 {
		errs = append(errs, fmt.Errorf("RefusalLogInterval %v is negative", c.RefusalLogInterval))
	}
	if c.MgmtDeadTimeout < pconn.MinDeadTimeout {
		errs = append(errs, fmt.Errorf("MgmtDeadTimeout %v below the minimum %v", c.MgmtDeadTimeout, pconn.MinDeadTimeout))
	}
	return errs
}

// PconnBase is the pconn configuration the component's links start from:
// Transport (or pconn's defaults) with the retry interval and the peer's
// dead timeout applied.
func (c *ComponentConfig) PconnBase() pconn.Config {
	base := pconn.DefaultConfig(nil)
	if c.Transport != nil {
		base = *c.Transport
	}
	base.DeadTimeout = c.DeadTimeout
	base.RetryInterval = c.RetryInterval
	base.LogInterval = c.RefusalLogInterval
	return base
}
