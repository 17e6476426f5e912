package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hellopics/hellopics/data/relay"
	"github.com/hellopics/hellopics/internal/cli"
)

func init() {
	register(&command{name: "tsi", summary: "run the MEDS relay alone (TPCE over TCP <-> SNMP agent)", run: runTSI})
}

const tsiUsage = `Usage: hellopics tsi [flags] agent[@host]

Runs the MEDS relay: TPCE clients connect to the commands, events and
status TCP ports; commands go to the SNMP agent as SetRequests, and the
agent's informs come back as responses, events and status blocks.

agent is the agent's UDP port, a number or a service name ("161",
"snmp"), optionally followed by @host (default: the local host), as tsi
takes it: 161@vxlzp1, snmp@frontend. Ports given to -commands, -events
and -status are numbers or TCP service names; a port that is not given
is not opened.

There is no default SNMPv2c community: give it with -community-file
or $HELLOPICS_COMMUNITY, or use SNMPv3 (-snmp-version 3, passphrases
from -v3-auth-pass-file and -v3-priv-pass-file or $HELLOPICS_SNMP_AUTH_PASS
and $HELLOPICS_SNMP_PRIV_PASS). Notifications are taken only from the
agent's addresses (and -agent-allow).

Flags:
`

// resolvePort turns a port number or service name into a number.
func resolvePort(network, p string) (int, error) {
	if n, err := strconv.Atoi(p); err == nil {
		if n < 0 || n > 65535 {
			return 0, fmt.Errorf("port %d out of range", n)
		}
		return n, nil
	}
	n, err := net.LookupPort(network, p)
	if err != nil {
		return 0, fmt.Errorf("unknown %s service %q: %w", network, p, err)
	}
	return n, nil
}

// tsiEndpoint parses "port[@host]" (tsi style) into "host:port"; host
// defaults to def.
func tsiEndpoint(network, spec, def string) (string, error) {
	port, host, _ := strings.Cut(spec, "@")
	if host == "" {
		host = def
	}
	if port == "" {
		return "", fmt.Errorf("%q: no port", spec)
	}
	n, err := resolvePort(network, port)
	if err != nil {
		return "", fmt.Errorf("%q: %w", spec, err)
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

func runTSI(args []string) int {
	fs := flag.NewFlagSet("tsi", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), tsiUsage)
		fs.PrintDefaults()
	}
	d := relay.DefaultConfig()
	var (
		lf                       cli.LogFlags
		sf                       cli.SNMPFlags
		rf                       cli.RelayFlags
		debug, vperror           bool
		commands, events, status string
		listen                   string
		maxText                  uint
	)
	lf.Register(fs)
	sf.Register(fs)
	rf.Register(fs, &d)
	fs.BoolVar(&debug, "debug", false, "log at debug level (same as -log-level debug)")
	fs.BoolVar(&vperror, "vperror", false, "log every error and dropped packet, not one a second per reason")
	fs.StringVar(&commands, "commands", "", "commands TCP port (number or service name); not opened when empty")
	fs.StringVar(&events, "events", "", "events TCP port (number or service name); not opened when empty")
	fs.StringVar(&status, "status", "", "status TCP port (number or service name); not opened when empty")
	fs.StringVar(&listen, "listen", "", "host or address the TCP ports listen on (default: every interface)")
	fs.StringVar(&d.NotifyAddr, "notify", d.NotifyAddr, "UDP address for the agent's informs and traps, host:port")
	fs.UintVar(&maxText, "max-text", uint(d.MaxText), "largest MEDS text accepted, octets")
	fs.IntVar(&d.MaxMsgSize, "max-msg-size", d.MaxMsgSize, "largest SNMP message sent, octets (484 to 65507)")
	fs.IntVar(&d.Backlog, "backlog", d.Backlog, "messages kept per port while it has no client")
	fs.IntVar(&d.ClientQueue, "client-queue", d.ClientQueue, "messages a client may fall behind before it is closed")
	fs.DurationVar(&d.SNMPTimeout, "snmp-timeout", d.SNMPTimeout, "wait for the answer to a SetRequest before sending it again")
	fs.IntVar(&d.SNMPRetries, "snmp-retries", d.SNMPRetries, "SetRequest retries before a relay error")
	fs.IntVar(&d.Senders, "senders", d.Senders, "commands sent to the agent at once")
	fs.IntVar(&d.FragmentWindow, "fragment-window", d.FragmentWindow, "SetRequests of one command awaiting their answers at once (SNMPv2c)")
	fs.IntVar(&d.MaxPending, "max-pending", d.MaxPending, "commands awaiting their response at once; past it the oldest is forgotten")
	fs.DurationVar(&d.ReassemblyTimeout, "reassembly-timeout", d.ReassemblyTimeout, "drop a transfer incomplete for this long")
	fs.DurationVar(&d.PollInterval, "poll", d.PollInterval, "agent reachability poll interval (0: off)")
	fs.DurationVar(&d.StatsInterval, "stats-interval", d.StatsInterval, "log the counters this often (0: off)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(fs.Output(), "hellopics tsi: "+format+"\n", a...)
		fs.Usage()
		return 2
	}
	if fs.NArg() != 1 {
		return usage("want one agent[@host] argument, got %d", fs.NArg())
	}
	if debug {
		lf.Level = "debug"
	}
	log, err := lf.Logger("tsi", nil)
	if err != nil {
		return usage("%v", err)
	}
	d.LogEveryError = vperror
	d.MaxText = uint32(maxText)
	if d.AgentAddr, err = tsiEndpoint("udp", fs.Arg(0), "localhost"); err != nil {
		return usage("agent %v", err)
	}
	for _, p := range []struct {
		spec string
		dst  *string
		name string
	}{{commands, &d.CommandsAddr, "commands"}, {events, &d.EventsAddr, "events"}, {status, &d.StatusAddr, "status"}} {
		if p.spec == "" {
			continue
		}
		n, err := resolvePort("tcp", p.spec)
		if err != nil {
			return usage("-%s: %v", p.name, err)
		}
		*p.dst = net.JoinHostPort(listen, strconv.Itoa(n))
	}
	if err := sf.Resolve(); err != nil {
		return usage("%v", err)
	}
	if d.CommandSecurity, err = sf.CommandSecurity(""); err != nil {
		return usage("%v", err)
	}
	if d.NotifySecurity, err = sf.NotifySecurity("tsi"); err != nil {
		return usage("%v", err)
	}
	if err := rf.Finish(&d); err != nil {
		return usage("%v", err)
	}
	for _, w := range sf.Warnings {
		log.Warn(w)
	}
	if err := d.Validate(); err != nil {
		return usage("%v", err)
	}
	r, err := relay.New(d, log)
	if err != nil {
		log.Error("relay not created", "error", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := r.Start(ctx); err != nil {
		log.Error("relay not started", "error", err)
		return 1
	}
	<-ctx.Done()
	log.Info("signal received, stopping")
	done := make(chan struct{})
	go func() { _ = r.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		log.Error("relay did not stop within 10s")
		return 1
	}
	return 0
}
