package track

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func parseTrack(args ...string) ([]Check, error) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var f Flags
	f.Register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return f.Checks()
}

func TestFlagsSettingsApplyToTheChecksAfter(t *testing.T) {
	cs, err := parseTrack(
		"-track-interface", "eth0",
		"-track-weight", "20", "-track-interval", "200ms", "-track-fall", "3", "-track-name", "web",
		"-track-script", "curl -fs localhost",
		"-track-rise", "2", "-track-timeout", "50ms",
		"-track-script", "test -e /run/ok")
	if err != nil {
		t.Fatal(err)
	}
	want := []Check{
		{Interface: "eth0"},
		{Name: "web", Script: "curl -fs localhost", Weight: 20, Interval: 200 * time.Millisecond, Fall: 3},
		{Script: "test -e /run/ok", Weight: 20, Interval: 200 * time.Millisecond, Fall: 3, Rise: 2, Timeout: 50 * time.Millisecond},
	}
	if len(cs) != len(want) {
		t.Fatalf("%d checks, want %d: %+v", len(cs), len(want), cs)
	}
	for i := range want {
		if cs[i] != want[i] {
			t.Errorf("check %d = %+v, want %+v", i, cs[i], want[i])
		}
	}
	if d := cs[0].WithDefaults(); d.Weight != 0 || d.Fall != DefaultFall || d.Interval != DefaultInterval || d.Name != "interface:eth0" {
		t.Errorf("defaults of the first check: %+v", d)
	}
}

func TestFlagsRefused(t *testing.T) {
	for _, args := range [][]string{
		{"-track-script", "true", "-track-weight", "10"}, // applies to none
		{"-track-weight", "-1", "-track-script", "true"},
		{"-track-fall", "0", "-track-script", "true"},
		{"-track-interval", "0s", "-track-script", "true"},
		{"-track-interface", "../etc"},
		{"-track-script", ""},
	} {
		if cs, err := parseTrack(args...); err == nil {
			t.Errorf("%s: accepted: %+v", strings.Join(args, " "), cs)
		}
	}
	if cs, err := parseTrack(); err != nil || len(cs) != 0 {
		t.Errorf("no flags: %v %v", cs, err)
	}
}
