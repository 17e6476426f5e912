package daemon

import (
	"fmt"
	"os"

	"github.com/hellopics/hellopics/data"
	"github.com/hellopics/hellopics/data/relay"
	"github.com/hellopics/hellopics/internal/cli"
)

const dataUsage = `Usage: %s [flags]

Runs the data component: it connects to management (retrying until it
answers), learns where its control component listens, connects to it and
reports ready, then forwards hellos. With -agent it also runs the MEDS
relay between TPCE clients and the SNMP agent; the relay keeps working
while management is away. Stops cleanly on SIGINT or SIGTERM.

The relay's SNMP flags are those of "hellopics tsi": there is no default
SNMPv2c community (-community-file or $HELLOPICS_COMMUNITY), SNMPv3 is
recommended (-snmp-version 3, -v3-user, -v3-auth-pass-file,
-v3-priv-pass-file or $HELLOPICS_SNMP_AUTH_PASS, $HELLOPICS_SNMP_PRIV_PASS).

Flags:
`

// RunData runs the data component (and, with -agent, its MEDS relay)
// with apps.Data as its application until SIGINT or SIGTERM,
// configured by args (the flags of "hellopics data", and their
// environment variables), and returns the process exit code as RunMgmt
// does. name is the command as its usage and errors show it ("counters
// data"); its first word names the logger.
func RunData(name string, args []string, apps Apps) int {
	cfg, cf, code, ok := dataConfig(name, args, apps)
	if !ok {
		return code
	}
	ctx, stop := cli.UntilSignal()
	defer stop()
	watchTLS(ctx, cfg.TLS, cf.log)
	d, err := data.New(cfg)
	if err != nil {
		return cli.Fail(os.Stderr, name, err)
	}
	return serveUntilSignal(ctx, cf.log, "data", d)
}

// dataConfig parses args into data's configuration and builds its
// logger; when it returns false, the command stops with code.
func dataConfig(name string, args []string, apps Apps) (data.Config, *componentFlags, int, bool) {
	cfg := data.DefaultConfig()
	rc := relay.DefaultConfig()
	cf := &componentFlags{name: name, role: "data", peer: "ctrl", version: apps.version(), cfg: &cfg.ComponentConfig}
	var (
		agent string
		sf    cli.SNMPFlags
		rf    cli.RelayFlags
	)
	fs := cli.NewFlagSet(name, fmt.Sprintf(dataUsage, name))
	cf.register(fs)
	sf.Register(fs)
	rf.Register(fs, &rc)
	fs.DurationVar(&cfg.ReportInterval, "report-interval", cfg.ReportInterval, "how often relay counters are reported to mgmt")
	fs.StringVar(&agent, "agent", "", "SNMP agent host:port; enables the MEDS relay")
	fs.StringVar(&rc.CommandsAddr, "commands", "", "relay: TPCE commands TCP address (host:port); not opened when empty")
	fs.StringVar(&rc.EventsAddr, "events", "", "relay: TPCE events TCP address; not opened when empty")
	fs.StringVar(&rc.StatusAddr, "status", "", "relay: TPCE status TCP address; not opened when empty")
	fs.StringVar(&rc.NotifyAddr, "notify", rc.NotifyAddr, "relay: UDP address for the agent's informs and traps")
	fs.IntVar(&rc.MaxMsgSize, "max-msg-size", rc.MaxMsgSize, "relay: largest SNMP message sent, octets (484 to 65507)")
	if code, ok := cli.ParseFlags(fs, args); !ok {
		return cfg, nil, code, false
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return cfg, nil, 2, false
	}
	if agent != "" {
		rc.AgentAddr = agent
		cfg.Relay = &rc
		err := sf.Resolve()
		if err == nil {
			rc.CommandSecurity, err = sf.CommandSecurity("")
		}
		if err == nil {
			rc.NotifySecurity, err = sf.NotifySecurity("data")
		}
		if err == nil {
			err = rf.Finish(&rc)
		}
		if err != nil {
			fmt.Fprintf(fs.Output(), "%s: %v\n", name, err)
			return cfg, nil, 2, false
		}
	}
	cfg.App = apps.Data
	if err := cf.finish(); err != nil {
		return cfg, nil, cli.Fail(os.Stderr, name, err), false
	}
	for _, w := range sf.Warnings {
		cf.log.Warn(w)
	}
	return cfg, cf, 0, true
}
