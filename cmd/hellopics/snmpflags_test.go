package main

import (
	"testing"

	"github.com/hellopics/hellopics/internal/cli"
)

// TestNoDefaultCommunity: the subcommands that speak SNMP refuse to
// start without a community (exit 2, bad usage).
func TestNoDefaultCommunity(t *testing.T) {
	t.Setenv(cli.EnvCommunity, "")
	for _, args := range [][]string{{"-commands", "7001", "161"}} {
		if got := runTSI(args); got != 2 {
			t.Errorf("tsi %q without a community: exit %d, want 2", args, got)
		}
	}
	if got := runAgent([]string{"-listen", "127.0.0.1:0"}); got != 2 {
		t.Errorf("agent without a community: exit %d, want 2", got)
	}
}
