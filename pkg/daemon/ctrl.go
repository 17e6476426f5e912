package daemon

import (
	"fmt"
	"os"

	"github.com/hellopics/hellopics/ctrl"
	"github.com/hellopics/hellopics/internal/cli"
)

const ctrlUsage = `Usage: %s [flags]

Runs the control component: it connects to management (retrying until it
answers), identifies itself, accepts its data component and forwards
hellos. It follows the master mgmt through a failover. Stops cleanly on
SIGINT or SIGTERM.

Flags:
`

// RunCtrl runs the control component with apps.Ctrl as its application
// until SIGINT or SIGTERM, configured by args (the flags of "hellopics
// ctrl", and their environment variables), and returns the process exit
// code as RunMgmt does. name is the command as its usage and errors
// show it ("counters ctrl"); its first word names the logger.
func RunCtrl(name string, args []string, apps Apps) int {
	cfg, cf, code, ok := ctrlConfig(name, args, apps)
	if !ok {
		return code
	}
	ctx, stop := cli.UntilSignal()
	defer stop()
	watchTLS(ctx, cfg.TLS, cf.log)
	c, err := ctrl.New(cfg)
	if err != nil {
		return cli.Fail(os.Stderr, name, err)
	}
	return serveUntilSignal(ctx, cf.log, "ctrl", c)
}

// ctrlConfig parses args into ctrl's configuration and builds its
// logger; when it returns false, the command stops with code.
func ctrlConfig(name string, args []string, apps Apps) (ctrl.Config, *componentFlags, int, bool) {
	cfg := ctrl.DefaultConfig()
	cf := &componentFlags{name: name, role: "ctrl", peer: "data", version: apps.version(), cfg: &cfg.ComponentConfig}
	fs := cli.NewFlagSet(name, fmt.Sprintf(ctrlUsage, name))
	cf.register(fs)
	fs.StringVar(&cfg.ListenAddr, "listen", cfg.ListenAddr, "address for the data component to connect to")
	fs.StringVar(&cfg.AdvertiseAddr, "advertise", cfg.AdvertiseAddr, "address data is told to dial (default: -listen, or this host's address toward mgmt)")
	fs.DurationVar(&cfg.IdentifyTimeout, "identify-timeout", cfg.IdentifyTimeout, "close a data connection that does not identify itself in time")
	if code, ok := cli.ParseFlags(fs, args); !ok {
		return cfg, nil, code, false
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return cfg, nil, 2, false
	}
	cfg.App = apps.Ctrl
	if err := cf.finish(cfg.ListenAddr); err != nil {
		return cfg, nil, cli.Fail(os.Stderr, name, err), false
	}
	return cfg, cf, 0, true
}
