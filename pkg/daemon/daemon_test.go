package daemon

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/hellopics/hellopics/internal/cli"
	"github.com/hellopics/hellopics/pkg/appliance"
)

// stderrOf runs f with os.Stderr going to a pipe and returns what f
// wrote there.
func stderrOf(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	defer func() { os.Stderr = saved }()
	f()
	os.Stderr = saved
	w.Close()
	return <-done
}

func TestMainSubcommands(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		apps       Apps
		code       int
		out, error string
	}{
		{args: []string{"help"}, out: "Usage:\n  counters <subcommand> [flags]"},
		{args: []string{"-h"}, out: "Run 'counters <subcommand> -h' for its flags."},
		{args: nil, code: 2, error: "Usage:\n  counters <subcommand>"},
		{args: []string{"tsi"}, code: 2, error: `counters: unknown subcommand "tsi"`},
		{args: []string{"version"}, apps: Apps{Version: "1.2.3"}, out: "counters 1.2.3\n"},
		{args: []string{"--version"}, out: "counters dev\n"},
	} {
		var stdout, stderr bytes.Buffer
		code := mainTo("counters", tc.args, tc.apps, &stdout, &stderr)
		if code != tc.code {
			t.Errorf("%q: exit %d, want %d", tc.args, code, tc.code)
		}
		if !strings.Contains(stdout.String(), tc.out) || (tc.out == "") != (stdout.Len() == 0) {
			t.Errorf("%q: stdout %q, want %q", tc.args, stdout.String(), tc.out)
		}
		if !strings.Contains(stderr.String(), tc.error) || (tc.error == "") != (stderr.Len() == 0) {
			t.Errorf("%q: stderr %q, want %q", tc.args, stderr.String(), tc.error)
		}
	}
}

// TestHelpNamesTheProgram: each daemon's -h exits 0 and shows the
// command it was run as, and its flags.
func TestHelpNamesTheProgram(t *testing.T) {
	for _, d := range []string{"mgmt", "ctrl", "data"} {
		var code int
		out := stderrOf(t, func() { code = Main("counters", []string{d, "-h"}, Apps{}) })
		if code != 0 {
			t.Errorf("%s -h: exit %d", d, code)
		}
		if !strings.HasPrefix(out, "Usage: counters "+d+" [flags]\n") || strings.Contains(out, "hellopics "+d) ||
			!strings.Contains(out, "-tls-cert") || !strings.Contains(out, "-log-level") {
			t.Errorf("%s -h:\n%s", d, out)
		}
		out = stderrOf(t, func() { code = Main("counters", []string{d, "-no-such-flag"}, Apps{}) })
		if code != 2 || !strings.Contains(out, "-no-such-flag") {
			t.Errorf("%s -no-such-flag: exit %d\n%s", d, code, out)
		}
	}
}

// TestAppsInConfig: each daemon's App and the version go into its
// Config; a nil App stays nil.
func TestAppsInConfig(t *testing.T) {
	apps := Apps{
		Mgmt:    &appliance.App{Name: "m"},
		Ctrl:    &appliance.App{Name: "c"},
		Data:    &appliance.App{Name: "d"},
		Version: "7.0",
	}
	for _, a := range []Apps{apps, {}} {
		stderrOf(t, func() {
			m, _, code, ok := mgmtConfig("counters mgmt", []string{"-listen", "127.0.0.1:0", "-operator", ""}, a)
			if !ok || m.App != a.Mgmt || m.Version != a.version() || m.Logger == nil {
				t.Errorf("mgmt: %v %d: App %v, Version %q", ok, code, m.App, m.Version)
			}
			c, _, code, ok := ctrlConfig("counters ctrl", []string{"-listen", "127.0.0.1:0", "-mgmt", "127.0.0.1:1"}, a)
			if !ok || c.App != a.Ctrl || c.Version != a.version() || c.Logger == nil {
				t.Errorf("ctrl: %v %d: App %v, Version %q", ok, code, c.App, c.Version)
			}
			d, _, code, ok := dataConfig("counters data", []string{"-mgmt", "127.0.0.1:1,[::1]:2"}, a)
			if !ok || d.App != a.Data || d.Version != a.version() || len(d.MgmtAddrs) != 2 {
				t.Errorf("data: %v %d: App %v, Version %q, mgmt %q", ok, code, d.App, d.Version, d.MgmtAddrs)
			}
		})
	}
}

// TestPlaintextNeedsLoopback: without certificates, an address other
// than loopback is refused (exit 1) unless -insecure.
func TestPlaintextNeedsLoopback(t *testing.T) {
	out := stderrOf(t, func() {
		if code := RunCtrl("counters ctrl", []string{"-mgmt", "192.0.2.1:7300", "-listen", "127.0.0.1:0"}, Apps{}); code != 1 {
			t.Errorf("ctrl toward another host without TLS: exit %d, want 1", code)
		}
	})
	if !strings.HasPrefix(out, "counters ctrl: ") || !strings.Contains(out, "-insecure") {
		t.Errorf("error:\n%s", out)
	}
}

func TestDataRelayNeedsCommunity(t *testing.T) {
	t.Setenv(cli.EnvCommunity, "")
	out := stderrOf(t, func() {
		if got := RunData("counters data", []string{"-mgmt", "127.0.0.1:1", "-agent", "127.0.0.1:161", "-commands", "127.0.0.1:0"}, Apps{}); got != 2 {
			t.Errorf("data with a relay and no community: exit %d, want 2", got)
		}
	})
	if !strings.HasPrefix(out, "counters data: SNMPv2c needs a community") {
		t.Errorf("error:\n%s", out)
	}
}

func TestMgmtPeersSyntax(t *testing.T) {
	out := stderrOf(t, func() {
		if code := RunMgmt("counters mgmt", []string{"-peers", "b=127.0.0.1:1,nonsense"}, Apps{}); code != 2 {
			t.Errorf("bad -peers: exit %d, want 2", code)
		}
	})
	if !strings.Contains(out, `counters mgmt: -peers: "nonsense" is not id=host:port`) {
		t.Errorf("error:\n%s", out)
	}
}

// TestMgmtTrackFlags: the tracked checks reach the config, each with
// the settings given before it; a setting after the last check is a
// usage error.
func TestMgmtTrackFlags(t *testing.T) {
	stderrOf(t, func() {
		m, _, code, ok := mgmtConfig("counters mgmt", []string{"-listen", "127.0.0.1:0", "-operator", "",
			"-track-interface", "lo", "-track-weight", "30", "-track-fall", "3", "-track-script", "test -e /run/ok"}, Apps{})
		if !ok || len(m.Track) != 2 {
			t.Fatalf("mgmt: %v %d: %+v", ok, code, m.Track)
		}
		if c := m.Track[0]; c.Interface != "lo" || c.Weight != 0 {
			t.Errorf("first check %+v", c)
		}
		if c := m.Track[1]; c.Script != "test -e /run/ok" || c.Weight != 30 || c.Fall != 3 {
			t.Errorf("second check %+v", c)
		}
	})
	out := stderrOf(t, func() {
		if code := RunMgmt("counters mgmt", []string{"-track-script", "true", "-track-weight", "10"}, Apps{}); code != 2 {
			t.Errorf("setting after the last check: exit %d, want 2", code)
		}
	})
	if !strings.Contains(out, "-track-weight is given after the last -track-script") {
		t.Errorf("error:\n%s", out)
	}
}
