package main

import (
	"os"

	"github.com/hellopics/hellopics/internal/cli"
	"github.com/hellopics/hellopics/mgmt"
)

func init() {
	register(&command{name: "mgmt", summary: "run the management component", run: runMgmt})
}

const mgmtUsage = `Usage: hellopics mgmt [flags]

Runs the management component: it accepts the control and data
components, tells each where its peer is, and runs the Hello cycle of
every pair that is ready. Stops cleanly on SIGINT or SIGTERM.

Flags:
`

func runMgmt(args []string) int {
	cfg := mgmt.DefaultConfig()
	var lf cli.LogFlags
	fs := newFlagSet("mgmt", mgmtUsage)
	fs.StringVar(&cfg.ListenAddr, "listen", envOr("HELLOPICS_MGMT_LISTEN", cfg.ListenAddr), "address for ctrl and data to connect to (env HELLOPICS_MGMT_LISTEN)")
	fs.StringVar(&cfg.AdvertiseAddr, "advertise", cfg.AdvertiseAddr, "address components use for this instance (default: -listen)")
	fs.StringVar(&cfg.OperatorAddr, "operator", envOr("HELLOPICS_OPERATOR_ADDR", cfg.OperatorAddr), "operator gRPC API address; empty disables it (env HELLOPICS_OPERATOR_ADDR)")
	fs.DurationVar(&cfg.HelloInterval, "hello-interval", cfg.HelloInterval, "Hello cycle period (at least 10ms)")
	fs.DurationVar(&cfg.DeadTimeout, "dead-timeout", cfg.DeadTimeout, "declare a silent component lost after this long (at least 30ms)")
	fs.DurationVar(&cfg.IdentifyTimeout, "identify-timeout", cfg.IdentifyTimeout, "close a session that does not identify itself in time")
	lf.Register(fs)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	log, err := lf.Logger("hellopics", nil)
	if err != nil {
		return fail(os.Stderr, "mgmt", err)
	}
	cfg.Logger = log
	ctx, stop := untilSignal()
	defer stop()
	d, err := mgmt.New(cfg)
	if err != nil {
		return fail(os.Stderr, "mgmt", err)
	}
	<-ctx.Done()
	log.Info("signal received; stopping", "component", "mgmt")
	d.Close()
	return 0
}
