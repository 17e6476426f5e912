package main

import (
	"os"

	"github.com/hellopics/hellopics/ctrl"
	"github.com/hellopics/hellopics/internal/cli"
	"github.com/hellopics/hellopics/pkg/sdnotify"
)

func init() {
	register(&command{name: "ctrl", summary: "run the control component", run: runCtrl})
}

const ctrlUsage = `Usage: hellopics ctrl [flags]

Runs the control component: it connects to management (retrying until it
answers), identifies itself, accepts its data component and forwards
hellos. It follows the master mgmt through a failover. Stops cleanly on
SIGINT or SIGTERM.

Flags:
`

func runCtrl(args []string) int {
	cfg := ctrl.DefaultConfig()
	cfg.Version = version
	var lf cli.LogFlags
	var mgmtAddrs string
	fs := newFlagSet("ctrl", ctrlUsage)
	fs.StringVar(&mgmtAddrs, "mgmt", envOr("HELLOPICS_MGMT", "127.0.0.1:7300"), "mgmt addresses, comma-separated, tried in turn (env HELLOPICS_MGMT)")
	fs.StringVar(&cfg.ListenAddr, "listen", cfg.ListenAddr, "address for the data component to connect to")
	fs.StringVar(&cfg.AdvertiseAddr, "advertise", cfg.AdvertiseAddr, "address data is told to dial (default: -listen, or this host's address toward mgmt)")
	fs.StringVar(&cfg.PairID, "pair", envOr("HELLOPICS_PAIR", cfg.PairID), "pair id shared with the data component (env HELLOPICS_PAIR)")
	fs.DurationVar(&cfg.RetryInterval, "retry", cfg.RetryInterval, "wait between attempts to reach mgmt (80-100% of it, jittered)")
	fs.DurationVar(&cfg.DeadTimeout, "dead-timeout", cfg.DeadTimeout, "declare a silent data lost after this long (at least 30ms)")
	fs.DurationVar(&cfg.MgmtDeadTimeout, "mgmt-dead-timeout", cfg.MgmtDeadTimeout, "declare a silent mgmt lost after this long and move on to the next (at least 30ms)")
	fs.DurationVar(&cfg.IdentifyTimeout, "identify-timeout", cfg.IdentifyTimeout, "close a data connection that does not identify itself in time")
	fs.StringVar(&cfg.HealthAddr, "health", envOr("HELLOPICS_HEALTH_ADDR", ""), "serve the gRPC health service (SERVING once the handshake is complete) on this address; empty disables (env HELLOPICS_HEALTH_ADDR)")
	fs.StringVar(&cfg.MetricsAddr, "metrics", envOr("HELLOPICS_METRICS_ADDR", ""), "serve Prometheus metrics on this address (/metrics); empty disables (env HELLOPICS_METRICS_ADDR)")
	lf.Register(fs)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	cfg.MgmtAddrs = splitList(mgmtAddrs)
	log, err := lf.Logger("hellopics", nil)
	if err != nil {
		return fail(os.Stderr, "ctrl", err)
	}
	cfg.Logger = log
	cfg.OnReadyChange = systemdReady("ctrl")
	ctx, stop := untilSignal()
	defer stop()
	c, err := ctrl.New(cfg)
	if err != nil {
		return fail(os.Stderr, "ctrl", err)
	}
	<-ctx.Done()
	log.Info("signal received; stopping", "component", "ctrl")
	_ = sdnotify.Stopping()
	c.Close()
	return 0
}
