package main

import (
	"strings"
	"testing"
)

// TestTSIEndpoint: the agent argument as tsi took it, port[@host], the
// port a number or a service name, the host the local one by default.
func TestTSIEndpoint(t *testing.T) {
	for _, tc := range []struct{ spec, want, err string }{
		{"161@vxlzp1", "vxlzp1:161", ""},
		{"161", "localhost:161", ""},
		{"snmp@agent.example", "agent.example:161", ""}, // /etc/services (Debian's netbase)
		{"snmp-trap", "localhost:162", ""},
		{"1161@198.18.0.41", "198.18.0.41:1161", ""},
		{"@host", "", "no port"},
		{"", "", "no port"},
		{"70000@host", "", "out of range"},
		{"no-such-service@host", "", "unknown udp service"},
	} {
		got, err := tsiEndpoint("udp", tc.spec, "localhost")
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.spec, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want one saying %q", tc.spec, err, tc.err)
		case got != tc.want:
			t.Errorf("%q = %q, want %q", tc.spec, got, tc.want)
		}
	}
}

// TestTSIUsage: a wrong command line is refused with status 2 and a
// reason, before anything is opened; -help is status 0.
func TestTSIUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"-help"}, 0},
		{[]string{}, 2},             // no agent
		{[]string{"161", "162"}, 2}, // two agents
		{[]string{"-commands", "no-such-service", "161"}, 2},
		{[]string{"-max-msg-size", "100", "161"}, 2}, // below 484
		{[]string{"-no-such-flag", "161"}, 2},
		{[]string{"@", "-commands", "7001"}, 2},
	} {
		if got := runTSI(tc.args); got != tc.code {
			t.Errorf("hellopics tsi %q: exit %d, want %d", tc.args, got, tc.code)
		}
	}
}
