package daemon

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hellopics/hellopics/internal/cli"
	"github.com/hellopics/hellopics/pkg/notify"
	"github.com/hellopics/hellopics/pkg/sdnotify"
	"github.com/hellopics/hellopics/pkg/tier"
	"github.com/hellopics/hellopics/pkg/tlsconf"
)

// envOr returns the environment variable's value, or def.
func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

// systemdReady tells systemd (Type=notify units) about readiness changes
// of a component; outside systemd it does nothing.
func systemdReady(name string) func(bool) {
	return func(ready bool) {
		if ready {
			_ = sdnotify.Ready()
			_ = sdnotify.Status(name + ": handshake complete, ready")
		} else {
			_ = sdnotify.Status(name + ": handshake in progress")
		}
	}
}

// componentFlags are the flags ctrl and data share, for the component
// of role whose peer component is peer, run as the command name: register
// adds them to a flag set, finish completes the configuration after
// parsing.
type componentFlags struct {
	name, role, peer string
	version          string
	cfg              *tier.ComponentConfig
	mgmtAddrs        string
	logFlags         cli.LogFlags
	tls              cli.TLSFlags
	// log is the component's logger, built by finish.
	log hclog.Logger
}

func (c *componentFlags) register(fs *flag.FlagSet) {
	cfg := c.cfg
	fs.StringVar(&c.mgmtAddrs, "mgmt", envOr("HELLOPICS_MGMT", "127.0.0.1:7300"), "mgmt addresses, comma-separated, tried in turn (env HELLOPICS_MGMT)")
	fs.StringVar(&cfg.PairID, "pair", envOr("HELLOPICS_PAIR", cfg.PairID), "pair id shared with the "+c.peer+" component (env HELLOPICS_PAIR)")
	fs.DurationVar(&cfg.RetryInterval, "retry", cfg.RetryInterval, "longest wait between attempts to reach mgmt or "+c.peer+" (each jittered down to 80% of it)")
	fs.DurationVar(&cfg.DeadTimeout, "dead-timeout", cfg.DeadTimeout, "declare a silent "+c.peer+" lost after this long (at least 30ms)")
	fs.DurationVar(&cfg.MgmtDeadTimeout, "mgmt-dead-timeout", cfg.MgmtDeadTimeout, "declare a silent mgmt lost after this long and move on to the next (at least 30ms)")
	fs.BoolVar(&cfg.NoWatch, "no-watch", cfg.NoWatch, "keep no watch sessions to the other mgmt addresses (a new master then reaches this component only once its -mgmt-dead-timeout gives up on the old one)")
	fs.StringVar(&cfg.HealthAddr, "health", envOr("HELLOPICS_HEALTH_ADDR", ""), "serve the gRPC health service (SERVING once the handshake is complete) on this address; empty disables (env HELLOPICS_HEALTH_ADDR)")
	fs.StringVar(&cfg.MetricsAddr, "metrics", envOr("HELLOPICS_METRICS_ADDR", ""), "serve Prometheus metrics on this address (/metrics); empty disables (env HELLOPICS_METRICS_ADDR)")
	// -on-*, not -notify-*: data's -notify is the relay's SNMP
	// notification address, and mgmt's -notify-* are the mastership
	// scripts; these name the component's own events.
	fs.StringVar(&cfg.Scripts.OnReady, "on-ready", "", "shell command run when the pair becomes ready ($1 ready, $2 epoch, $3 master address, $4 reason; docs/ha.md)")
	fs.StringVar(&cfg.Scripts.OnLost, "on-lost", "", "shell command run when the pair stops being ready (the other half or mgmt lost)")
	fs.StringVar(&cfg.Scripts.OnMasterChanged, "on-master-changed", "", "shell command run when the component learns of a master at a new epoch (the first one too)")
	fs.DurationVar(&cfg.Scripts.Timeout, "script-timeout", notify.DefaultTimeout, "kill an -on-* script's process group after this long")
	c.logFlags.Register(fs)
	c.logFlags.RegisterRefusals(fs)
	c.tls.Register(fs)
}

// finish completes the configuration after parsing and builds the
// logger (c.log). listen are the component's own listen addresses, for
// the rule that plaintext needs loopback or -insecure.
func (c *componentFlags) finish(listen ...string) error {
	c.cfg.MgmtAddrs = cli.SplitList(c.mgmtAddrs)
	c.cfg.Version = c.version
	c.cfg.RefusalLogInterval = c.logFlags.RefusalsEvery
	log, err := c.logFlags.Logger(logName(c.name), nil)
	if err != nil {
		return err
	}
	c.log = log
	c.cfg.Logger = log
	c.cfg.OnReadyChange = systemdReady(c.role)
	if c.cfg.TLS, err = c.tls.Load(log, append(listen, c.cfg.MgmtAddrs...)...); err != nil {
		return err
	}
	return nil
}

// watchTLS keeps src current until ctx ends: its files are read again
// when they change and on SIGHUP. Nothing without TLS. The goroutine it
// starts ends with ctx.
func watchTLS(ctx context.Context, src *tlsconf.Source, log hclog.Logger) {
	if src == nil {
		return
	}
	go src.Watch(ctx, 5*time.Second)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := src.Reload(); err != nil {
					log.Warn("SIGHUP: TLS files not reloaded; keeping the current ones", "error", err)
				} else {
					log.Info("SIGHUP: TLS files reloaded", "identity", src.ID().String())
				}
			}
		}
	}()
}

// serveUntilSignal waits for SIGINT or SIGTERM, then tells systemd and
// closes the component.
func serveUntilSignal(ctx context.Context, log hclog.Logger, role string, closer interface{ Close() error }) int {
	<-ctx.Done()
	log.Info("signal received; stopping", "component", role)
	_ = sdnotify.Stopping()
	_ = closer.Close()
	return 0
}
