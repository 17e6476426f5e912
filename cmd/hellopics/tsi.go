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

	"github.com/gosnmp/gosnmp"

	"github.com/hellopics/hellopics/data/relay"
	"github.com/hellopics/hellopics/internal/cli"
	"github.com/hellopics/hellopics/pkg/meds"
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

Flags:
`

// snmpFlags are the SNMP security flags shared by tsi and agent.
type snmpFlags struct {
	version                                   string
	user, level, authProto, privProto, engine string
	authPass, privPass                        string
}

func (s *snmpFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.version, "snmp-version", "2c", "SNMP version: 2c or 3")
	fs.StringVar(&s.user, "v3-user", "", "SNMPv3 USM user name")
	fs.StringVar(&s.level, "v3-level", "authPriv", "SNMPv3 security level: noAuthNoPriv, authNoPriv or authPriv")
	fs.StringVar(&s.authProto, "v3-auth", "SHA-256", "SNMPv3 authentication protocol: MD5, SHA, SHA-224, SHA-256, SHA-384, SHA-512")
	fs.StringVar(&s.privProto, "v3-priv", "AES", "SNMPv3 privacy protocol: DES, AES (AES-128), AES-192, AES-256")
	fs.StringVar(&s.authPass, "v3-auth-pass", os.Getenv("HELLOPICS_SNMP_AUTH_PASS"), "SNMPv3 authentication passphrase (default $HELLOPICS_SNMP_AUTH_PASS)")
	fs.StringVar(&s.privPass, "v3-priv-pass", os.Getenv("HELLOPICS_SNMP_PRIV_PASS"), "SNMPv3 privacy passphrase (default $HELLOPICS_SNMP_PRIV_PASS)")
	fs.StringVar(&s.engine, "v3-engine-id", "", "this side's SNMPv3 engine id as hex (default: from the command and host names)")
}

// security builds the meds.Security for one direction with community.
// role ("" when this side only sends) names the local authoritative
// engine, whose default id is role@hostname.
func (s *snmpFlags) security(community, role string) (meds.Security, error) {
	switch s.version {
	case "2c", "v2c", "2":
		return meds.Security{Version: gosnmp.Version2c, Community: community}, nil
	case "3", "v3":
	default:
		return meds.Security{}, fmt.Errorf("-snmp-version %q: want 2c or 3", s.version)
	}
	sec := meds.Security{Version: gosnmp.Version3, User: s.user, AuthPassphrase: s.authPass, PrivPassphrase: s.privPass}
	switch strings.ToLower(s.level) {
	case "noauthnopriv":
		sec.Level = gosnmp.NoAuthNoPriv
	case "authnopriv":
		sec.Level = gosnmp.AuthNoPriv
	case "authpriv":
		sec.Level = gosnmp.AuthPriv
	default:
		return sec, fmt.Errorf("-v3-level %q: want noAuthNoPriv, authNoPriv or authPriv", s.level)
	}
	auth := map[string]gosnmp.SnmpV3AuthProtocol{"MD5": gosnmp.MD5, "SHA": gosnmp.SHA, "SHA-224": gosnmp.SHA224,
		"SHA-256": gosnmp.SHA256, "SHA-384": gosnmp.SHA384, "SHA-512": gosnmp.SHA512}
	priv := map[string]gosnmp.SnmpV3PrivProtocol{"DES": gosnmp.DES, "AES": gosnmp.AES, "AES-128": gosnmp.AES,
		"AES-192": gosnmp.AES192, "AES-256": gosnmp.AES256}
	var ok bool
	if sec.AuthProtocol, ok = auth[strings.ToUpper(s.authProto)]; !ok {
		return sec, fmt.Errorf("-v3-auth %q: unknown protocol", s.authProto)
	}
	if sec.PrivProtocol, ok = priv[strings.ToUpper(s.privProto)]; !ok {
		return sec, fmt.Errorf("-v3-priv %q: unknown protocol", s.privProto)
	}
	if role != "" {
		if s.engine != "" {
			b, err := hexDecode(s.engine)
			if err != nil {
				return sec, fmt.Errorf("-v3-engine-id: %w", err)
			}
			sec.EngineID = string(b)
		} else {
			host, _ := os.Hostname()
			sec.EngineID = meds.NewEngineID(role + "@" + host)
		}
	}
	return sec, sec.Validate()
}

func hexDecode(s string) ([]byte, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if len(s)%2 != 0 {
		return nil, fmt.Errorf("%q: odd number of hex digits", s)
	}
	b := make([]byte, len(s)/2)
	for i := range b {
		v, err := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
		if err != nil {
			return nil, fmt.Errorf("%q: not hex", s)
		}
		b[i] = byte(v)
	}
	return b, nil
}

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
		sf                       snmpFlags
		debug, vperror           bool
		commands, events, status string
		listen                   string
		community, notifyComm    string
		maxText                  uint
	)
	lf.Register(fs)
	sf.register(fs)
	fs.BoolVar(&debug, "debug", false, "log at debug level (same as -log-level debug)")
	fs.BoolVar(&vperror, "vperror", false, "log every error and dropped packet, not one a second per reason")
	fs.StringVar(&commands, "commands", "", "commands TCP port (number or service name); not opened when empty")
	fs.StringVar(&events, "events", "", "events TCP port (number or service name); not opened when empty")
	fs.StringVar(&status, "status", "", "status TCP port (number or service name); not opened when empty")
	fs.StringVar(&listen, "listen", "", "host or address the TCP ports listen on (default: every interface)")
	fs.StringVar(&d.NotifyAddr, "notify", d.NotifyAddr, "UDP address for the agent's informs and traps, host:port")
	fs.StringVar(&community, "community", d.CommandSecurity.Community, "SNMPv2c community of SetRequests and polls")
	fs.StringVar(&notifyComm, "notify-community", d.NotifySecurity.Community, "SNMPv2c community required on informs and traps")
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
	if d.CommandSecurity, err = sf.security(community, ""); err != nil {
		return usage("%v", err)
	}
	if d.NotifySecurity, err = sf.security(notifyComm, "tsi"); err != nil {
		return usage("%v", err)
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
