package counters_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	countersv1 "github.com/hellopics/hellopics/examples/counters/proto/counters/v1"
	"github.com/hellopics/hellopics/internal/await"
	"github.com/hellopics/hellopics/pkg/appliance"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// The example's end-to-end test: two mgmt, one ctrl/data pair, all real
// processes of the counters binary on loopback. Configuration flows
// from the operator to data; data's units reach mgmt's replicated
// totals through a SIGKILL of the master and a switchover, and the
// total ends exactly at the configured limit: nothing lost, nothing
// counted twice.
func TestCountersThroughFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes")
	}
	bin := build(t)
	dir := t.TempDir()
	portA, portB, haA, haB, opA, opB, ctrlPort := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	mgmtArgs := func(id, listen, ha, peer, op string) []string {
		return []string{"mgmt", "-id", id, "-listen", listen, "-ha-listen", ha, "-peers", peer, "-operator", op,
			"-state-dir", filepath.Join(dir, id), "-nopreempt", "-hello-interval", "100ms", "-log-level", "debug"}
	}
	argsA := mgmtArgs("a", portA, haA, "b="+haB, opA)
	start(t, bin, dir, "mgmt-a", argsA...)
	a, b := operator(t, opA), operator(t, opB)
	waitMaster(t, a, "a") // first up, master; b joins as its backup
	start(t, bin, dir, "mgmt-b", mgmtArgs("b", portB, haB, "a="+haA, opB)...)
	await.True(t, func() bool { return inSync(a, "b") }, "mgmt b up and in sync")

	mgmts := portA + "," + portB
	start(t, bin, dir, "ctrl", "ctrl", "-mgmt", mgmts, "-pair", "p1", "-listen", ctrlPort, "-retry", "100ms")
	start(t, bin, dir, "data", "data", "-mgmt", mgmts, "-pair", "p1", "-retry", "100ms")
	await.True(t, func() bool { return cycling(a, "p1") }, "pair p1 cycling under mgmt a")

	// The configuration, through the example's own ctl.
	out := ctlRun(t, bin, opA, "set", "rate", "3000")
	if !strings.Contains(out, "config version 1: rate=3000") {
		t.Fatalf("ctl set: %q", out)
	}
	const limit = 24000
	ctlRun(t, bin, opA, "set", "limit", fmt.Sprint(limit))

	totals := func(c hellopicsv1.OperatorServiceClient) *countersv1.Totals {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var tot countersv1.Totals
		if err := appliance.OperatorCall(ctx, c, &countersv1.GetTotals{}, &tot); err != nil {
			return nil
		}
		if tot.GetTotal() > limit {
			t.Fatalf("counted %d units, more than the %d generated: a report counted twice", tot.GetTotal(), limit)
		}
		return &tot
	}
	atLeast := func(c hellopicsv1.OperatorServiceClient, n uint64) func() bool {
		return func() bool { tot := totals(c); return tot != nil && tot.GetTotal() >= n }
	}
	await.True(t, atLeast(a, 4000), "4000 units counted by mgmt a")

	// SIGKILL of the master while data reports.
	procs["mgmt-a"].Process.Signal(syscall.SIGKILL)
	_, _ = procs["mgmt-a"].Process.Wait()
	waitMaster(t, b, "b")
	await.True(t, atLeast(b, 10000), "10000 units counted by mgmt b after the failover")

	// a comes back as a backup, gets b's state, and takes over by a
	// switchover while units keep coming.
	start(t, bin, dir, "mgmt-a2", argsA...)
	await.True(t, func() bool { return inSync(b, "a") }, "mgmt a back and in sync")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.Switchover(ctx, &hellopicsv1.SwitchoverRequest{TargetId: "a"}); err != nil {
		t.Fatalf("switchover: %v", err)
	}
	waitMaster(t, a, "a")

	// The end: every unit counted once, on the master and the backup.
	await.True(t, func() bool {
		tot := totals(a)
		return tot != nil && tot.GetTotal() == limit && len(tot.GetPairs()) == 1 && tot.GetPairs()[0].GetConfigApplied() == 2
	}, "all %d units counted by mgmt a, config 2 applied by data", limit)
	await.True(t, func() bool { tot := totals(b); return tot != nil && tot.GetTotal() == limit }, "the backup holds the same total")
	out = ctlRun(t, bin, opB, "totals")
	if !strings.Contains(out, fmt.Sprintf("all   %d", limit)) || !strings.HasPrefix(out, "backup, config version 2: limit=24000 rate=3000") {
		t.Fatalf("ctl totals on the backup:\n%s", out)
	}
}

var procs = map[string]*exec.Cmd{}

func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "counters")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./cmd/counters")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// start runs the binary with args, its output in dir/name.log, killed
// at the end of the test (the log is printed if the test failed).
func start(t *testing.T, bin, dir, name string, args ...string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	procs[name] = cmd
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _, _ = cmd.Process.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		f.Close()
		delete(procs, name)
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("--- %s (last lines)\n%s", name, b)
		}
	})
}

func ctlRun(t *testing.T, bin, addr string, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, append([]string{"ctl", "-addr", addr}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("counters ctl %v: %v\n%s", args, err, errb.String())
	}
	return out.String()
}

func operator(t *testing.T, addr string) hellopicsv1.OperatorServiceClient {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return hellopicsv1.NewOperatorServiceClient(cc)
}

func status(c hellopicsv1.OperatorServiceClient) *hellopicsv1.GetStatusResponse {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := c.GetStatus(ctx, &hellopicsv1.GetStatusRequest{})
	if err != nil {
		return nil
	}
	return st
}

func waitMaster(t *testing.T, c hellopicsv1.OperatorServiceClient, id string) {
	t.Helper()
	await.True(t, func() bool {
		st := status(c)
		return st != nil && st.GetRole() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER && st.GetMasterId() == id
	}, "mgmt %s master", id)
}

func cycling(c hellopicsv1.OperatorServiceClient, pair string) bool {
	st := status(c)
	for _, p := range st.GetPairs() {
		if p.GetPairId() == pair && p.GetCycleRunning() {
			return true
		}
	}
	return false
}

func inSync(c hellopicsv1.OperatorServiceClient, peer string) bool {
	st := status(c)
	for _, p := range st.GetMgmtPeers() {
		if p.GetId() == peer && p.GetAlive() && p.GetInSync() {
			return true
		}
	}
	return false
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
