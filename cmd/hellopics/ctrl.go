package main

import (
	"os"

	"github.com/hellopics/hellopics/ctrl"
	"github.com/hellopics/hellopics/internal/cli"
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
	cf := componentFlags{role: "ctrl", peer: "data", cfg: &cfg.ComponentConfig}
	fs := cli.NewFlagSet("hellopics ctrl", ctrlUsage)
	cf.register(fs)
	fs.StringVar(&cfg.ListenAddr, "listen", cfg.ListenAddr, "address for the data component to connect to")
	fs.StringVar(&cfg.AdvertiseAddr, "advertise", cfg.AdvertiseAddr, "address data is told to dial (default: -listen, or this host's address toward mgmt)")
	fs.DurationVar(&cfg.IdentifyTimeout, "identify-timeout", cfg.IdentifyTimeout, "close a data connection that does not identify itself in time")
	if code, ok := cli.ParseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	log, err := cf.finish(cfg.ListenAddr)
	if err != nil {
		return cli.Fail(os.Stderr, "hellopics ctrl", err)
	}
	ctx, stop := cli.UntilSignal()
	defer stop()
	watchTLS(ctx, cfg.TLS, log)
	c, err := ctrl.New(cfg)
	if err != nil {
		return cli.Fail(os.Stderr, "hellopics ctrl", err)
	}
	return serveUntilSignal(ctx, log, "ctrl", c)
}
