package main

import (
	"fmt"
	"os"

	"github.com/hellopics/hellopics/data"
	"github.com/hellopics/hellopics/data/relay"
	"github.com/hellopics/hellopics/internal/cli"
)

func init() {
	register(&command{name: "data", summary: "run the data component (and its MEDS relay)", run: runData})
}

const dataUsage = `Usage: hellopics data [flags]

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

func runData(args []string) int {
	cfg := data.DefaultConfig()
	rc := relay.DefaultConfig()
	cf := componentFlags{role: "data", peer: "ctrl", cfg: &cfg.ComponentConfig}
	var (
		agent string
		sf    cli.SNMPFlags
		rf    cli.RelayFlags
	)
	fs := cli.NewFlagSet("hellopics data", dataUsage)
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
		return code
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
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
			fmt.Fprintf(fs.Output(), "hellopics data: %v\n", err)
			return 2
		}
	}
	log, err := cf.finish()
	if err != nil {
		return cli.Fail(os.Stderr, "hellopics data", err)
	}
	for _, w := range sf.Warnings {
		log.Warn(w)
	}
	ctx, stop := cli.UntilSignal()
	defer stop()
	watchTLS(ctx, cfg.TLS, log)
	d, err := data.New(cfg)
	if err != nil {
		return cli.Fail(os.Stderr, "hellopics data", err)
	}
	return serveUntilSignal(ctx, log, "data", d)
}
