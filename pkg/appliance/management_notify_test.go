package appliance_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hellopics/hellopics/internal/await"
	"github.com/hellopics/hellopics/mgmt"
	"github.com/hellopics/hellopics/pkg/election"
	"github.com/hellopics/hellopics/pkg/notify"
)

// startNotifyHA starts mgmt instance id whose -notify script appends
// "$HELLOPICS_ID $1 $2 $3" to log.
func startNotifyHA(t *testing.T, id string, prio uint32, ha map[string]string, log string) *mgmt.Server {
	t.Helper()
	mc := mgmt.DefaultConfig()
	mc.ListenAddr, mc.OperatorAddr, mc.HAListenAddr = "127.0.0.1:0", "", ha[id]
	mc.ID, mc.Priority = id, prio
	mc.Notify = notify.Config{OnAny: `echo "$HELLOPICS_ID $1 $2 $3" >>` + log}
	for p, a := range ha {
		if p != id {
			mc.Peers = append(mc.Peers, election.Peer{ID: p, Addr: a})
		}
	}
	m, err := mgmt.New(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func notifyLines(path string) []string {
	b, _ := os.ReadFile(path)
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// TestNotifyThroughSwitchoverAndFailover: the scripts are told the first
// state at start, then every change, with the epoch and the master.
func TestNotifyThroughSwitchoverAndFailover(t *testing.T) {
	dir := t.TempDir()
	logA, logB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	ha := map[string]string{"a": freeAddr(t), "b": freeAddr(t)}
	a := startNotifyHA(t, "a", 200, ha, logA)
	await.True(t, func() bool { return len(notifyLines(logA)) == 1 }, "a notified")
	if l := notifyLines(logA)[0]; !strings.HasPrefix(l, "a master ") || !strings.HasSuffix(l, " a") {
		t.Fatalf("a: %q, want a master EPOCH a", l)
	}
	b := startNotifyHA(t, "b", 100, ha, logB)
	await.True(t, func() bool { return len(notifyLines(logB)) == 1 }, "b notified")
	if l := notifyLines(logB)[0]; !strings.HasPrefix(l, "b backup ") || !strings.HasSuffix(l, " a") {
		t.Fatalf("b: %q, want b backup EPOCH a", l)
	}

	ctx, cancel := context.WithTimeout(context.Background(), await.Timeout)
	defer cancel()
	if _, err := a.Switchover(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	await.True(t, func() bool { return len(notifyLines(logB)) >= 2 }, "b notified of the switchover")
	if l := notifyLines(logB)[1]; !strings.HasPrefix(l, "b master ") {
		t.Fatalf("b after the switchover: %q", l)
	}
	// a is told backup at once (the master not known yet, or b), then
	// again when it follows b.
	await.True(t, func() bool {
		for _, l := range notifyLines(logA)[1:] {
			if strings.HasPrefix(l, "a backup ") && strings.HasSuffix(l, " b") {
				return true
			}
		}
		return false
	}, "a notified backup following b: %q", notifyLines(logA))
	if l := notifyLines(logA)[1]; !strings.HasPrefix(l, "a backup ") {
		t.Fatalf("a after the switchover: %q, want a backup", l)
	}
	// a does not preempt the master it handed over to; b goes: a is
	// told master.
	n := len(notifyLines(logA))
	b.Close()
	await.True(t, func() bool {
		l := notifyLines(logA)
		return len(l) > n && strings.HasPrefix(l[len(l)-1], "a master ")
	}, "a notified master after b goes: %q", notifyLines(logA))
}
