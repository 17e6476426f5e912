package main

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

func parseSNMP(t *testing.T, args ...string) (*snmpFlags, error) {
	t.Helper()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	var sf snmpFlags
	sf.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &sf, sf.resolve()
}

// TestNoDefaultCommunity: SNMPv2c without a community is refused with
// a message that says how to give one and recommends SNMPv3.
func TestNoDefaultCommunity(t *testing.T) {
	t.Setenv(envCommunity, "")
	sf, err := parseSNMP(t)
	if err != nil {
		t.Fatal(err)
	}
	_, err = sf.notifySecurity("tsi")
	if !errors.Is(err, errNoCommunity) {
		t.Fatalf("no community: %v", err)
	}
	for _, want := range []string{"-community-file", envCommunity, "-snmp-version 3", "-v3-auth-pass-file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not mention %s:\n%v", want, err)
		}
	}
	for _, args := range [][]string{{"-commands", "7001", "161"}} {
		if got := runTSI(args); got != 2 {
			t.Errorf("tsi %q without a community: exit %d, want 2", args, got)
		}
	}
	if got := runData([]string{"-mgmt", "127.0.0.1:1", "-agent", "127.0.0.1:161", "-commands", "127.0.0.1:0"}); got != 2 {
		t.Errorf("data with a relay and no community: exit %d, want 2", got)
	}
	if got := runAgent([]string{"-listen", "127.0.0.1:0"}); got != 2 {
		t.Errorf("agent without a community: exit %d, want 2", got)
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
	t.Setenv(envPrivPass, "privpass-456")
	t.Setenv(envCommunity, "from-env")

	sf, err := parseSNMP(t, "-community-file", private)
	if err != nil || sf.community.value != "s3cret" || sf.notifyComm.value != "s3cret" || len(sf.warnings) != 0 {
		t.Fatalf("file: %q %q %v %q", sf.community.value, sf.notifyComm.value, err, sf.warnings)
	}
	sf, _ = parseSNMP(t)
	if sec, err := sf.notifySecurity("tsi"); err != nil || sec.Community != "from-env" {
		t.Fatalf("env: %+v %v", sec, err)
	}
	sf, _ = parseSNMP(t, "-community", "argv", "-notify-community", "other")
	if sf.community.value != "argv" || sf.notifyComm.value != "other" || len(sf.warnings) != 2 || !strings.Contains(sf.warnings[0], "ps") {
		t.Fatalf("argv: %q %q %q", sf.community.value, sf.notifyComm.value, sf.warnings)
	}
	if _, err := parseSNMP(t, "-community", "a", "-community-file", private); err == nil {
		t.Fatal("flag and file together taken")
	}
	sf, err = parseSNMP(t, "-snmp-version", "3", "-v3-user", "u", "-v3-auth-pass-file", open)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := sf.notifySecurity("tsi")
	if err != nil || sec.Version != gosnmp.Version3 || sec.AuthPassphrase != "authpass-123" || sec.PrivPassphrase != "privpass-456" {
		t.Fatalf("v3: %+v %v", sec, err)
	}
	if len(sf.warnings) != 1 || !strings.Contains(sf.warnings[0], "chmod 600") {
		t.Fatalf("no warning for a file others can read: %q", sf.warnings)
	}
	// Help never prints a secret taken from the environment.
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	var h snmpFlags
	h.register(fs)
	fs.PrintDefaults()
	if strings.Contains(out.String(), "privpass-456") || strings.Contains(out.String(), "from-env") {
		t.Fatalf("help shows a secret:\n%s", out.String())
	}
}

func TestAgentAllowFlag(t *testing.T) {
	c := relay.DefaultConfig()
	f := relayFlags{allow: "10.0.0.0/24, 192.0.2.7,::ffff:198.51.100.1"}
	if err := f.finish(&c); err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, p := range c.AgentAllow {
		got = append(got, p.String())
	}
	if strings.Join(got, " ") != "10.0.0.0/24 192.0.2.7/32 198.51.100.1/32" {
		t.Fatalf("prefixes %v", got)
	}
	if err := (&relayFlags{allow: "not-an-address"}).finish(&c); err == nil {
		t.Fatal("a bad -agent-allow taken")
	}
}
