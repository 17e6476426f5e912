package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hellopics/hellopics/data/agentsim"
	"github.com/hellopics/hellopics/internal/cli"
	"github.com/hellopics/hellopics/pkg/sdnotify"
)

func init() {
	register(&command{name: "agent", summary: "run the front-end SNMP agent simulator (MEDS over SNMP)", run: runAgent})
}

const agentUsage = `Usage: hellopics agent [flags]

Runs the front-end SNMP agent simulator: it answers GET and GETNEXT for
sysDescr.0, sysObjectID.0, sysUpTime.0 and sysName.0, takes MEDS commands
as SetRequest fragments and echoes each as a response sent in
InformRequests to the relay, and sends events and status blocks at the
rates given.

  snmpget -v2c -c public 127.0.0.1:1161 1.3.6.1.2.1.1.1.0

The community of SetRequests and informs has no default (-community-file
or $HELLOPICS_COMMUNITY, or SNMPv3); -read-community ("public") only
reads the system group.

Flags:
`

func runAgent(args []string) int {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), agentUsage)
		fs.PrintDefaults()
	}
	d := agentsim.DefaultConfig()
	var (
		lf cli.LogFlags
		sf cli.SNMPFlags
	)
	lf.Register(fs)
	sf.Register(fs)
	fs.StringVar(&d.Addr, "listen", d.Addr, "UDP address for requests, host:port")
	fs.StringVar(&d.NotifyAddr, "notify", d.NotifyAddr, "the relay's notification address, host:port")
	fs.StringVar(&d.ReadCommunity, "read-community", d.ReadCommunity, "SNMPv2c community accepted for GET and GETNEXT only")
	fs.IntVar(&d.MaxMsgSize, "max-msg-size", d.MaxMsgSize, "largest SNMP message sent, octets")
	fs.BoolVar(&d.UseTraps, "traps", false, "send SNMPv2-Traps instead of InformRequests")
	fs.DurationVar(&d.InformTimeout, "inform-timeout", d.InformTimeout, "wait for the answer to an inform before sending it again")
	fs.IntVar(&d.InformRetries, "inform-retries", d.InformRetries, "inform retries")
	fs.IntVar(&d.Senders, "senders", d.Senders, "responses sent at once")
	fs.IntVar(&d.Window, "window", d.Window, "informs of one message awaiting their answers at once (SNMPv2c)")
	fs.DurationVar(&d.EventInterval, "event-interval", 0, "time between events (0: none)")
	fs.IntVar(&d.EventSize, "event-size", 64, "event text size, octets")
	fs.DurationVar(&d.StatusInterval, "status-interval", 0, "time between status blocks (0: none)")
	fs.IntVar(&d.StatusSize, "status-size", 256, "status block text size, octets")
	fs.StringVar(&d.SysName, "sys-name", d.SysName, "value of sysName.0")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(fs.Output(), "hellopics agent: "+format+"\n", a...)
		fs.Usage()
		return 2
	}
	if fs.NArg() != 0 {
		return usage("unexpected arguments %q", fs.Args())
	}
	log, err := lf.Logger("agent", nil)
	if err != nil {
		return usage("%v", err)
	}
	if err := sf.Resolve(); err != nil {
		return usage("%v", err)
	}
	if d.Security, err = sf.CommandSecurity("agent"); err != nil {
		return usage("%v", err)
	}
	if d.NotifySecurity, err = sf.NotifySecurity(""); err != nil {
		return usage("%v", err)
	}
	for _, w := range sf.Warnings {
		log.Warn(w)
	}
	a, err := agentsim.New(d, log)
	if err != nil {
		log.Error("agent not created", "error", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := a.Start(ctx); err != nil {
		log.Error("agent not started", "error", err)
		_ = a.Close()
		return 1
	}
	_ = sdnotify.Ready() // systemd Type=notify: serving
	<-ctx.Done()
	_ = sdnotify.Stopping()
	_ = a.Close()
	return 0
}
