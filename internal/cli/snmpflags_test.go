package cli

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gosnmp/gosnmp"

	"github.com/hellopics/hellopics/data/relay"
)

func parseSNMP(t *testing.T, args ...string) (*SNMPFlags, error) {
	t.Helper()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	var sf SNMPFlags
	sf.Register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &sf, sf.Resolve()
}

// TestNoDefaultCommunity: SNMPv2c without a community is refused with
// a message that says how to give one and recommends SNMPv3.
func TestNoDefaultCommunity(t *testing.T) {
	t.Setenv(EnvCommunity, "")
	sf, err := parseSNMP(t)
	if err != nil {
		t.Fatal(err)
	}
	_, err = sf.NotifySecurity("tsi")
	if !errors.Is(err, ErrNoCommunity) {
		t.Fatalf("no community: %v", err)
	}
	for _, want := range []string{"-community-file", EnvCommunity, "-snmp-version 3", "-v3-auth-pass-file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not mention %s:\n%v", want, err)
		}
	}
}

// TestSecretSources: flag, file and environment; the file's first line;
// warnings for argv and for a file others can read; flag and file
// together refused; the notification community defaults to the
// command one.
func TestSecretSources(t *testing.T) {
	dir := t.TempDir()
	private := filepath.Join(dir, "community")
	if err := os.WriteFile(private, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "auth")
	if err := os.WriteFile(open, []byte("authpass-123\r\nignored\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvPrivPass, "privpass-456")
	t.Setenv(EnvCommunity, "from-env")

	sf, err := parseSNMP(t, "-community-file", private)
	if err != nil || sf.community.value != "s3cret" || sf.notifyComm.value != "s3cret" || len(sf.Warnings) != 0 {
		t.Fatalf("file: %q %q %v %q", sf.community.value, sf.notifyComm.value, err, sf.Warnings)
	}
	sf, _ = parseSNMP(t)
	if sec, err := sf.NotifySecurity("tsi"); err != nil || sec.Community != "from-env" {
		t.Fatalf("env: %+v %v", sec, err)
	}
	sf, _ = parseSNMP(t, "-community", "argv", "-notify-community", "other")
	if sf.community.value != "argv" || sf.notifyComm.value != "other" || len(sf.Warnings) != 2 || !strings.Contains(sf.Warnings[0], "ps") {
		t.Fatalf("argv: %q %q %q", sf.community.value, sf.notifyComm.value, sf.Warnings)
	}
	if _, err := parseSNMP(t, "-community", "a", "-community-file", private); err == nil {
		t.Fatal("flag and file together taken")
	}
	sf, err = parseSNMP(t, "-snmp-version", "3", "-v3-user", "u", "-v3-auth-pass-file", open)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := sf.NotifySecurity("tsi")
	if err != nil || sec.Version != gosnmp.Version3 || sec.AuthPassphrase != "authpass-123" || sec.PrivPassphrase != "privpass-456" {
		t.Fatalf("v3: %+v %v", sec, err)
	}
	if len(sf.Warnings) != 1 || !strings.Contains(sf.Warnings[0], "chmod 600") {
		t.Fatalf("no warning for a file others can read: %q", sf.Warnings)
	}
	// Help never prints a secret taken from the environment.
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	var h SNMPFlags
	h.Register(fs)
	fs.PrintDefaults()
	if strings.Contains(out.String(), "privpass-456") || strings.Contains(out.String(), "from-env") {
		t.Fatalf("help shows a secret:\n%s", out.String())
	}
}

func TestAgentAllowFlag(t *testing.T) {
	c := relay.DefaultConfig()
	f := RelayFlags{allow: "10.0.0.0/24, 192.0.2.7,::ffff:198.51.100.1"}
	if err := f.Finish(&c); err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, p := range c.AgentAllow {
		got = append(got, p.String())
	}
	if strings.Join(got, " ") != "10.0.0.0/24 192.0.2.7/32 198.51.100.1/32" {
		t.Fatalf("prefixes %v", got)
	}
	if err := (&RelayFlags{allow: "not-an-address"}).Finish(&c); err == nil {
		t.Fatal("a bad -agent-allow taken")
	}
}
