package cli

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/gosnmp/gosnmp"

	"github.com/hellopics/hellopics/data/relay"
	"github.com/hellopics/hellopics/pkg/meds"
)

// Environment variables holding the SNMP secrets, read when neither the
// flag nor its -file form is given.
const (
	EnvCommunity       = "HELLOPICS_COMMUNITY"
	EnvNotifyCommunity = "HELLOPICS_NOTIFY_COMMUNITY"
	EnvAuthPass        = "HELLOPICS_SNMP_AUTH_PASS"
	EnvPrivPass        = "HELLOPICS_SNMP_PRIV_PASS"
)

// SNMPFlags are the SNMP flags shared by tsi, data and agent: version,
// SNMPv2c communities and SNMPv3 USM, each secret from a file, the
// environment or (visible in ps, kept for compatibility) the command
// line. There is no default community.
type SNMPFlags struct {
	version                                   string
	user, level, authProto, privProto, engine string

	community, notifyComm, authPass, privPass secret

	// Warnings are what Resolve found worth a WARN line once the logger
	// exists: secrets on the command line, secret files others can read.
	Warnings []string
}

// secret is one secret's three sources.
type secret struct {
	flag, file, env string // flag names and the variable
	argv, path      string // what was given
	value           string // resolved
}

// Register adds the SNMP flags to fs.
func (s *SNMPFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&s.version, "snmp-version", "2c", "SNMP version: 2c or 3 (recommended: authPriv)")
	fs.StringVar(&s.user, "v3-user", "", "SNMPv3 USM user name")
	fs.StringVar(&s.level, "v3-level", "authPriv", "SNMPv3 security level: noAuthNoPriv, authNoPriv or authPriv")
	fs.StringVar(&s.authProto, "v3-auth", "SHA-256", "SNMPv3 authentication protocol: MD5, SHA, SHA-224, SHA-256, SHA-384, SHA-512")
	fs.StringVar(&s.privProto, "v3-priv", "AES", "SNMPv3 privacy protocol: DES, AES (AES-128), AES-192, AES-256")
	fs.StringVar(&s.engine, "v3-engine-id", "", "this side's SNMPv3 engine id as hex (default: from the command and host names)")
	s.community = secret{flag: "community", file: "community-file", env: EnvCommunity}
	s.notifyComm = secret{flag: "notify-community", file: "notify-community-file", env: EnvNotifyCommunity}
	s.authPass = secret{flag: "v3-auth-pass", file: "v3-auth-pass-file", env: EnvAuthPass}
	s.privPass = secret{flag: "v3-priv-pass", file: "v3-priv-pass-file", env: EnvPrivPass}
	for _, x := range []struct {
		sec  *secret
		what string
	}{
		{&s.community, "SNMPv2c community of SetRequests (and of notifications unless -notify-community*)"},
		{&s.notifyComm, "SNMPv2c community of notifications (default: the -community one)"},
		{&s.authPass, "SNMPv3 authentication passphrase"},
		{&s.privPass, "SNMPv3 privacy passphrase"},
	} {
		fs.StringVar(&x.sec.argv, x.sec.flag, "", x.what+"; visible in ps: prefer -"+x.sec.file+" or $"+x.sec.env)
		fs.StringVar(&x.sec.path, x.sec.file, "", "file holding the "+x.what+" (mode 0600; one line)")
	}
}

// Resolve reads the secrets after fs.Parse: the flag, else the file,
// else the environment variable. It records warnings for secrets on the
// command line and for secret files readable by group or others.
func (s *SNMPFlags) Resolve() error {
	for _, x := range []*secret{&s.community, &s.notifyComm, &s.authPass, &s.privPass} {
		switch {
		case x.argv != "" && x.path != "":
			return fmt.Errorf("-%s and -%s both given: give one", x.flag, x.file)
		case x.argv != "":
			x.value = x.argv
			s.Warnings = append(s.Warnings, fmt.Sprintf("-%s puts a secret on the command line, where every user of this host sees it (ps, /proc); use -%s or $%s",
				x.flag, x.file, x.env))
		case x.path != "":
			v, warn, err := readSecretFile(x.path)
			if err != nil {
				return fmt.Errorf("-%s: %w", x.file, err)
			}
			if warn != "" {
				s.Warnings = append(s.Warnings, "-"+x.file+": "+warn)
			}
			x.value = v
		default:
			x.value = secretFromEnv(x.env)
		}
	}
	if s.notifyComm.value == "" {
		s.notifyComm.value = s.community.value
	}
	return nil
}

// secretFromEnv reads one of the secret variables (spelled out, so that
// deploy/systemd's tests see which variables hellopics reads).
func secretFromEnv(name string) string {
	switch name {
	case EnvCommunity:
		return os.Getenv("HELLOPICS_COMMUNITY")
	case EnvNotifyCommunity:
		return os.Getenv("HELLOPICS_NOTIFY_COMMUNITY")
	case EnvAuthPass:
		return os.Getenv("HELLOPICS_SNMP_AUTH_PASS")
	case EnvPrivPass:
		return os.Getenv("HELLOPICS_SNMP_PRIV_PASS")
	}
	return ""
}

// readSecretFile reads a secret: the file's first line, without its end
// of line. warn is set when group or others may read the file.
func readSecretFile(path string) (value, warn string, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", "", err
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		warn = fmt.Sprintf("%s is readable or writable by group or others (mode %04o): chmod 600 it", path, m)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	v, _, _ := strings.Cut(string(b), "\n")
	v = strings.TrimSuffix(v, "\r")
	if v == "" {
		return "", warn, fmt.Errorf("%s: empty first line", path)
	}
	return v, warn, nil
}

// ErrNoCommunity is the usage error of SNMPv2c without a community.
var ErrNoCommunity = errors.New(`SNMPv2c needs a community and there is no default (anyone who can send a
datagram and guesses "public" could inject events and forge responses).
Give it with -community-file PATH (mode 0600) or $` + EnvCommunity + `
(-community works too but is visible in ps), the same on the other side;
better, use SNMPv3 with authentication and privacy:
  -snmp-version 3 -v3-user NAME -v3-auth-pass-file PATH -v3-priv-pass-file PATH`)

// CommandSecurity is the security of what this side sends as requests
// (tsi, data: SetRequests and polls) or takes as requests (agent, whose
// engine is role@host).
func (s *SNMPFlags) CommandSecurity(role string) (meds.Security, error) {
	return s.security(s.community.value, role)
}

// NotifySecurity is the security of the notifications: required on
// receipt (tsi, data: role names the local engine) or sent (agent: "").
func (s *SNMPFlags) NotifySecurity(role string) (meds.Security, error) {
	return s.security(s.notifyComm.value, role)
}

// security builds the meds.Security for one direction with community.
// role ("" when this side only sends) names the local authoritative
// engine, whose default id is role@hostname.
func (s *SNMPFlags) security(community, role string) (meds.Security, error) {
	switch s.version {
	case "2c", "v2c", "2":
		if community == "" {
			return meds.Security{}, ErrNoCommunity
		}
		return meds.Security{Version: gosnmp.Version2c, Community: community}, nil
	case "3", "v3":
	default:
		return meds.Security{}, fmt.Errorf("-snmp-version %q: want 2c or 3", s.version)
	}
	sec := meds.Security{Version: gosnmp.Version3, User: s.user, AuthPassphrase: s.authPass.value, PrivPassphrase: s.privPass.value}
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
	if err := sec.Validate(); err != nil {
		return sec, fmt.Errorf("%w (passphrases: -v3-auth-pass-file, -v3-priv-pass-file or $%s, $%s)", err, EnvAuthPass, EnvPrivPass)
	}
	return sec, nil
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

// RelayFlags are the relay's hostile-input limits, shared by tsi and
// data.
type RelayFlags struct {
	allow string
}

// Register adds -agent-allow and the limit flags to fs, with c's
// values as defaults and c as their destination.
func (f *RelayFlags) Register(fs *flag.FlagSet, c *relay.Config) {
	fs.StringVar(&f.allow, "agent-allow", "", "more source addresses or prefixes notifications are accepted from, comma-separated (CIDR or IP); the agent's own addresses always are")
	fs.IntVar(&c.MaxClients, "max-clients", c.MaxClients, "TPCE clients served at once, all ports together; more are refused")
	fs.IntVar(&c.MaxClientsPerIP, "max-clients-per-ip", c.MaxClientsPerIP, "TPCE clients served at once from one address")
	fs.DurationVar(&c.StallTimeout, "stall-timeout", c.StallTimeout, "close a commands client silent this long inside a message (0: never)")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "close a commands client silent this long between messages (0: never; listeners never are)")
}

// Finish puts the parsed values into c.
func (f *RelayFlags) Finish(c *relay.Config) error {
	c.AgentAllow = nil
	for _, p := range SplitList(f.allow) {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			a, aerr := netip.ParseAddr(p)
			if aerr != nil {
				return fmt.Errorf("-agent-allow %q: not a prefix (10.0.0.0/24) or an address", p)
			}
			pfx = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		c.AgentAllow = append(c.AgentAllow, pfx)
	}
	return nil
}
