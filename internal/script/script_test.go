package script

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestRunTimeout: a command that outlives its timeout is killed with its
// children, reports the timeout, exit code -1 and a duration of at least
// the timeout (the run's time counts from where its deadline does).
func TestRunTimeout(t *testing.T) {
	for range 20 {
		res := Run(context.Background(), Command{Line: "sleep 30 & wait", Timeout: 20 * time.Millisecond})
		if !res.TimedOut || res.ExitCode != -1 {
			t.Fatalf("timed out %v, exit %d; want true, -1", res.TimedOut, res.ExitCode)
		}
		if res.Duration < 20*time.Millisecond {
			t.Fatalf("killed at its 20ms timeout after %v", res.Duration)
		}
	}
}

// TestRunArgs: the arguments and environment reach the command, and its
// output and exit status come back.
func TestRunArgs(t *testing.T) {
	res := Run(context.Background(), Command{Line: `echo "$1 $2 $HP_X"; exit 3`, Args: []string{"master", "7"}, Env: []string{"HP_X=y"}})
	if res.ExitCode != 3 || res.TimedOut || strings.TrimSpace(res.Output) != "master 7 y" {
		t.Fatalf("exit %d, timed out %v, output %q", res.ExitCode, res.TimedOut, res.Output)
	}
}
