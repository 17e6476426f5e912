package main

import (
	"os"

	"github.com/hellopics/hellopics/data"
	"github.com/hellopics/hellopics/data/relay"
	"github.com/hellopics/hellopics/internal/cli"
	"github.com/hellopics/hellopics/pkg/sdnotify"
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

Flags:
`

func runData(args []string) int {
	cfg := data.DefaultConfig()
	cfg.Version = version
	rc := relay.DefaultConfig()
	var lf cli.LogFlags
	var mgmtAddrs, agent string
	fs := newFlagSet("data", dataUsage)
	fs.StringVar(&mgmtAddrs, "mgmt", envOr("HELLOPICS_MGMT", "127.0.0.1:7300"), "mgmt addresses, comma-separated, tried in turn (env HELLOPICS_MGMT)")
	fs.StringVar(&cfg.PairID, "pair", envOr("HELLOPICS_PAIR", cfg.PairID), "pair id shared with the control component (env HELLOPICS_PAIR)")
	fs.DurationVar(&cfg.RetryInterval, "retry", cfg.RetryInterval, "wait between attempts to reach mgmt or ctrl (80-100% of it, jittered)")
	fs.DurationVar(&cfg.DeadTimeout, "dead-timeout", cfg.DeadTimeout, "declare a silent ctrl lost after this long (at least 30ms)")
	fs.DurationVar(&cfg.MgmtDeadTimeout, "mgmt-dead-timeout", cfg.MgmtDeadTimeout, "declare a silent mgmt lost after this long and move on to the next (at least 30ms)")
	fs.DurationVar(&cfg.ReportInterval, "report-interval", cfg.ReportInterval, "how often relay counters are reported to mgmt")
	fs.StringVar(&agent, "agent", "", "SNMP agent host:port; enables the MEDS relay")
	fs.StringVar(&rc.CommandsAddr, "commands", "", "relay: TPCE commands TCP address (host:port); not opened when empty")
	fs.StringVar(&rc.EventsAddr, "events", "", "relay: TPCE events TCP address; not opened when empty")
	fs.StringVar(&rc.StatusAddr, "status", "", "relay: TPCE status TCP address; not opened when empty")
	fs.StringVar(&rc.NotifyAddr, "notify", rc.NotifyAddr, "relay: UDP address for the agent's informs and traps")
	fs.StringVar(&rc.CommandSecurity.Community, "community", rc.CommandSecurity.Community, "relay: SNMPv2c community of SetRequests")
	fs.StringVar(&rc.NotifySecurity.Community, "notify-community", rc.NotifySecurity.Community, "relay: SNMPv2c community required on informs")
	fs.IntVar(&rc.MaxMsgSize, "max-msg-size", rc.MaxMsgSize, "relay: largest SNMP message sent, octets (484 to 65507)")
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
	if agent != "" {
		rc.AgentAddr = agent
		cfg.Relay = &rc
	}
	log, err := lf.Logger("hellopics", nil)
	if err != nil {
		return fail(os.Stderr, "data", err)
	}
	cfg.Logger = log
	cfg.OnReadyChange = systemdReady("data")
	ctx, stop := untilSignal()
	defer stop()
	d, err := data.New(cfg)
	if err != nil {
		return fail(os.Stderr, "data", err)
	}
	<-ctx.Done()
	log.Info("signal received; stopping", "component", "data")
	_ = sdnotify.Stopping()
	d.Close()
	return 0
}
