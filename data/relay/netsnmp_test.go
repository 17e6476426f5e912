package relay_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"

	"github.com/gosnmp/gosnmp"

	"github.com/hellopics/hellopics/data/agentsim"
	"github.com/hellopics/hellopics/data/relay"
	"github.com/hellopics/hellopics/pkg/meds"
)

// netsnmp runs one net-snmp tool, or skips the test when it is absent.
func netsnmp(t *testing.T, tool string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		t.Skipf("net-snmp %s not found (install the Debian package snmp): %v", tool, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	// No MIB files: numeric OIDs only, and no warnings about missing MIBs.
	cmd := exec.CommandContext(ctx, path, append([]string{"-m", "", "-On"}, args...)...)
	cmd.Env = append(cmd.Environ(), "MIBS=", "MIBDIRS=/nonexistent")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return string(out)
}

var v3Flags = []string{"-v3", "-l", "authPriv", "-u", "meds", "-a", "SHA-256", "-A", "auth-secret-1", "-x", "AES", "-X", "priv-secret-1"}

func usmProfile(engine string) meds.Security {
	return meds.Security{
		Version: gosnmp.Version3, User: "meds", Level: gosnmp.AuthPriv,
		AuthProtocol: gosnmp.SHA256, AuthPassphrase: "auth-secret-1",
		PrivProtocol: gosnmp.AES, PrivPassphrase: "priv-secret-1",
		EngineID: engine,
	}
}

func TestNetSNMPGetAgent(t *testing.T) {
	for _, v3 := range []bool{false, true} {
		t.Run(map[bool]string{false: "v2c", true: "v3"}[v3], func(t *testing.T) {
			e := start(t, func(_ *relay.Config, a *agentsim.Config) {
				a.SysName, a.MaxMsgSize = "sim-under-test", meds.MinMaxMsgSize
				if v3 {
					a.Security = usmProfile(meds.NewEngineID("agent"))
				}
			})
			target := e.agent.Addr().String()
			auth := []string{"-v2c", "-c", "public"}
			if v3 {
				auth = v3Flags
			}
			out := netsnmp(t, "snmpget", append(auth, "-r", "1", "-t", "5", target,
				meds.OIDSysDescr, meds.OIDSysObjectID, meds.OIDSysUpTime, meds.OIDSysName)...)
			t.Logf("snmpget:\n%s", out)
			for _, want := range []string{"hellopics MEDS", agentsim.SysObjectID, "Timeticks", "sim-under-test"} {
				if !strings.Contains(out, want) {
					t.Errorf("snmpget output lacks %q", want)
				}
			}
			out = netsnmp(t, "snmpgetnext", append(auth, "-r", "1", "-t", "5", target, meds.OIDSysObjectID)...)
			if !strings.Contains(out, meds.OIDSysUpTime) {
				t.Errorf("snmpgetnext after sysObjectID.0 gave %q, want sysUpTime.0", out)
			}
		})
	}
}

func TestNetSNMPInformToRelay(t *testing.T) {
	for _, tc := range []struct {
		name   string
		v3     bool
		maxMsg int
	}{{"v2c-1472", false, meds.DefaultMaxMsgSize}, {"v2c-484", false, meds.MinMaxMsgSize}, {"v3-484", true, meds.MinMaxMsgSize}} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, func(r *relay.Config, a *agentsim.Config) {
				r.MaxMsgSize, a.MaxMsgSize = tc.maxMsg, tc.maxMsg
				if tc.v3 {
					r.NotifySecurity = usmProfile(meds.NewEngineID("relay"))
				}
			})
			sec := meds.Security{Version: gosnmp.Version2c, Community: "public"}
			auth := []string{"-v2c", "-c", "public"}
			if tc.v3 {
				sec, auth = usmProfile(meds.NewEngineID("relay")), v3Flags
			}
			ev := e.dial(e.addrs.Events)
			waitFor(t, "events client", func() bool { return e.relay.Stats().Events.Clients == 1 })
			// The largest single-fragment event that fits the maximum size.
			n, err := meds.FragmentDataSize(tc.maxMsg, sec, true)
			if err != nil {
				t.Fatal(err)
			}
			text := bytes.Repeat([]byte("E"), n-meds.HeaderLen)
			msg := meds.AppendMessage(nil, meds.Message{Type: meds.TypeEvent, ID: 31337, Text: text})
			out := netsnmp(t, "snmpinform", append(auth, "-r", "1", "-t", "5", e.addrs.Notify.String(), "0", meds.OIDMessage,
				meds.OIDTransfer, "u", "4242", meds.OIDFragment, "u", "0", meds.OIDFragments, "u", "1",
				meds.OIDData, "x", hex.EncodeToString(msg))...)
			if out != "" {
				t.Logf("snmpinform: %s", out)
			}
			m := recv(t, ev)
			if m.Type != meds.TypeEvent || m.ID != 31337 || !bytes.Equal(m.Text, text) {
				t.Fatalf("got %s id %d with %d octets, want event 31337 of %d", m.Type, m.ID, len(m.Text), len(text))
			}
			s := e.relay.Stats()
			if s.InformsAnswered < 1 || s.EventsReceived != 1 {
				t.Fatalf("stats: %+v", s)
			}
			if per := s.NotificationBytes / s.Notifications; int(per) > tc.maxMsg {
				t.Fatalf("net-snmp sent %d-octet messages, over %d", per, tc.maxMsg)
			}
			t.Logf("%d notifications, %d octets", s.Notifications, s.NotificationBytes)
		})
	}
}
