package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// ctlRun runs "hellopics ctl -addr addr args..." and returns its exit
// status and output.
func ctlRun(t *testing.T, addr string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, append([]string{"ctl", "-addr", addr, "-timeout", "10s"}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ctx.Err() == nil:
		code = ee.ExitCode()
	default:
		t.Fatalf("hellopics ctl %q: %v\n%s%s", args, err, o.String(), e.String())
	}
	return code, o.String(), e.String()
}

// TestCtlOperator runs ctl pairs, events and status -check against a real
// mgmt, without a pair, with a running pair and with the pair's data
// killed; then against no mgmt at all and against an instance still
// electing.
func TestCtlOperator(t *testing.T) {
	skipShort(t)
	if !operatorServed(t) {
		t.Skip("mgmt does not serve the operator API")
	}
	t.Parallel()
	c := newCluster(t, fast)
	m := c.StartMgmt()
	t0 := time.Now().UTC()

	// A master without pairs is healthy.
	code, out, errOut := ctlRun(t, c.opAddr, "status", "-check")
	if code != 0 || !strings.HasPrefix(out, "OK: master ") || !strings.HasSuffix(out, ", 0 of 0 pairs ready and cycling\n") {
		t.Fatalf("status -check, no pairs: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := ctlRun(t, c.opAddr, "pairs"); code != 0 || out != "no pairs registered\n" {
		t.Errorf("pairs, none: exit %d, %q", code, out)
	}

	c.StartCtrl("pic0")
	c.StartData("pic0")
	c.WaitRunning(0, "pic0", 3)
	code, out, errOut = ctlRun(t, c.opAddr, "status", "-check")
	if code != 0 || !strings.HasSuffix(out, ", 1 of 1 pairs ready and cycling\n") {
		t.Errorf("status -check, pair running: exit %d\n%s%s", code, out, errOut)
	}

	// The table: one row, both ready, the cycle running, hellos counted.
	code, out, errOut = ctlRun(t, c.opAddr, "pairs", "-pair", "pic0")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "PAIR  CTRL ") {
		t.Fatalf("pairs: exit %d\n%s%s", code, out, errOut)
	}
	row := strings.Fields(lines[1])
	// pic0 ready ADDR ready ADDR yes running SENT RECEIVED MISSED OOO RTT AGE ago EPOCH
	if len(row) != 15 || row[0] != "pic0" || row[1] != "ready" || row[3] != "ready" || row[5] != "yes" || row[6] != "running" || row[7] == "0" || row[8] == "0" || row[13] != "ago" {
		t.Errorf("pairs row %q\n%s", row, c.Tails())
	}
	code, out, _ = ctlRun(t, c.opAddr, "-o", "json", "pairs")
	var pj struct {
		Role  string `json:"role"`
		Epoch uint64 `json:"epoch"`
		Pairs []struct {
			PairID       string `json:"pair_id"`
			CycleRunning bool   `json:"cycle_running"`
			Counters     struct {
				Sent string `json:"sent"`
			} `json:"counters"`
		} `json:"pairs"`
	}
	if err := json.Unmarshal([]byte(out), &pj); err != nil || code != 0 || pj.Role != "master" || pj.Epoch == 0 || len(pj.Pairs) != 1 || pj.Pairs[0].PairID != "pic0" || !pj.Pairs[0].CycleRunning || pj.Pairs[0].Counters.Sent == "0" {
		t.Errorf("pairs -o json: exit %d, %+v, %v\n%s", code, pj, err, out)
	}
	if code, _, errOut := ctlRun(t, c.opAddr, "pairs", "-pair", "pic9"); code != 1 || !strings.Contains(errOut, `no pair matches -pair "pic9"`) {
		t.Errorf("pairs -pair pic9: exit %d, %q", code, errOut)
	}

	// Data killed: the pair is down, the check says so and exits 3.
	mark := m.Mark()
	tKill := time.Now().UTC()
	c.Data("pic0").Kill()
	m.WaitFor(mark, step("cycle_stopped", "pic0"))
	code, out, errOut = ctlRun(t, c.opAddr, "status", "--check")
	want := "pair pic0: ctrl identified, data down, cycle stopped\n"
	if code != 3 || !strings.HasPrefix(out, want) || !strings.Contains(out, "DEGRADED: master ") {
		t.Errorf("status -check, data killed: exit %d, stdout\n%s\nwant it to begin %q\nstderr: %s\n%s", code, out, want, errOut, c.Tails())
	}
	code, out, _ = ctlRun(t, c.opAddr, "pairs")
	if row := strings.Fields(strings.Split(out, "\n")[1]); code != 0 || row[3] != "down" || row[5] != "NO" || row[6] != "stopped" {
		t.Errorf("pairs, data killed: exit %d\n%s", code, out)
	}

	// The events since the start: the cycle started, then stopped; since
	// the kill (an RFC 3339 time): not the start.
	code, out, errOut = ctlRun(t, c.opAddr, "events", "-since", t0.Format(time.RFC3339Nano))
	started, stopped := strings.Index(out, "cycle_started"), strings.Index(out, "cycle_stopped")
	if code != 0 || started < 0 || stopped < started {
		t.Errorf("events -since start: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = ctlRun(t, c.opAddr, "events", "--since", tKill.Format(time.RFC3339Nano), "-pair", "pic0")
	if code != 0 || strings.Contains(out, "cycle_started") || !strings.Contains(out, "cycle_stopped") {
		t.Errorf("events -since the kill: exit %d\n%s", code, out)
	}
	if code, out, _ := ctlRun(t, c.opAddr, "events", "-since", "10m"); code != 0 || !strings.Contains(out, "cycle_started") {
		t.Errorf("events -since 10m: exit %d\n%s", code, out)
	}

	// No mgmt: exit 1.
	addr := c.opAddr
	m.Kill()
	code, out, _ = ctlRun(t, addr, "status", "-check")
	if code != 1 || !strings.Contains(out, "cannot reach mgmt at "+addr) || !strings.HasSuffix(out, "UNREACHABLE: no mgmt answered\n") {
		t.Errorf("status -check, mgmt killed: exit %d\n%s", code, out)
	}

	// No master: an instance of two holding its startup (3 x 20 s of
	// heartbeats) before it claims, its peer absent: exit 4.
	opAddr := freePort(t)
	cand := startProc(t, "mgmt-candidate", "mgmt", "-id", "a", "-listen", freePort(t), "-operator", opAddr,
		"-ha-listen", freePort(t), "-peers", "b="+freePort(t), "-heartbeat", "20s", "-dead-misses", "3",
		"-state-dir", t.TempDir(), "-log-json")
	cand.WaitFor(0, msg("operator API listening"))
	code, out, errOut = ctlRun(t, opAddr, "status", "-check")
	if code != 4 || out != "no master: a at "+opAddr+" is candidate (electing) at epoch 0 and knows no master\nNO MASTER\n" {
		t.Errorf("status -check, electing: exit %d\n%s%s\n%s", code, out, errOut, cand.Tail(20))
	}
	// Usage stays 2.
	if code, _, errOut := ctlRun(t, opAddr, "status", "-check", "-o", "xml"); code != 2 || errOut == "" {
		t.Errorf("status -check -o xml: exit %d, %q", code, errOut)
	}
}

// TestCtlPaging: with more pairs than a page, ctl status shows the first
// -max-pairs and says how many more there are; ctl pairs and status
// -check walk every page (here one pair per request); -pair filters at
// mgmt; a page token of another filter is refused with InvalidArgument.
func TestCtlPaging(t *testing.T) {
	skipShort(t)
	if !operatorServed(t) {
		t.Skip("mgmt does not serve the operator API")
	}
	t.Parallel()
	c := newCluster(t, fast)
	c.StartMgmt()
	pairs := []string{"pic2", "pic0", "pic1"}
	for _, p := range pairs {
		c.StartCtrl(p)
		c.StartData(p)
	}
	for _, p := range pairs {
		c.WaitRunning(0, p, 2)
	}
	rows := func(out string) (ids []string) {
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 5 && strings.HasPrefix(f[0], "pic") && (f[5] == "running" || f[5] == "stopped") { // PAIR CTRL(2) DATA(2) CYCLE
				ids = append(ids, f[0])
			}
		}
		return ids
	}
	code, out, errOut := ctlRun(t, c.opAddr, "status", "-max-pairs", "2", "-page-size", "1")
	if got := fmt.Sprint(rows(out)); code != 0 || got != "[pic0 pic1]" || !strings.Contains(out, "showing 2 of 3 pairs (3 cycling)") {
		t.Errorf("status -max-pairs 2: exit %d, pairs %s\n%s%s", code, got, out, errOut)
	}
	code, out, errOut = ctlRun(t, c.opAddr, "status")
	if got := fmt.Sprint(rows(out)); code != 0 || got != "[pic0 pic1 pic2]" || strings.Contains(out, "showing") {
		t.Errorf("status: exit %d, pairs %s\n%s%s", code, got, out, errOut)
	}
	code, out, errOut = ctlRun(t, c.opAddr, "status", "-pair", "pic1")
	if got := fmt.Sprint(rows(out)); code != 0 || got != "[pic1]" {
		t.Errorf("status -pair pic1: exit %d, pairs %s\n%s%s", code, got, out, errOut)
	}
	code, out, errOut = ctlRun(t, c.opAddr, "status", "-pair", "nope*")
	if code != 0 || !strings.Contains(out, `no pair matches -pair "nope*"`) {
		t.Errorf("status -pair nope*: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = ctlRun(t, c.opAddr, "pairs", "-page-size", "1")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[1], "pic0 ") || !strings.HasPrefix(lines[3], "pic2 ") {
		t.Errorf("pairs -page-size 1: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = ctlRun(t, c.opAddr, "-o", "json", "status", "-max-pairs", "1", "-page-size", "1")
	if code != 0 || strings.Count(out, `"pair_id"`) != 9 { // pair_id is in each pair and in both its components
		t.Errorf("status -o json: every pair, whatever -max-pairs: exit %d, %d pair_id\n%s%s", code, strings.Count(out, `"pair_id"`), out, errOut)
	}
	if code, out, errOut := ctlRun(t, c.opAddr, "status", "-check"); code != 0 || !strings.HasSuffix(out, ", 3 of 3 pairs ready and cycling\n") {
		t.Errorf("status -check: exit %d\n%s%s", code, out, errOut)
	}

	// The API itself: pages of one, then a token of another filter.
	cc, err := grpc.NewClient(c.opAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	oc := hellopicsv1.NewOperatorServiceClient(cc)
	st, err := oc.GetStatus(ctx, &hellopicsv1.GetStatusRequest{PageSize: 1})
	if err != nil || len(st.GetPairs()) != 1 || st.GetNextPageToken() == "" || st.GetTotalPairs() != 3 || st.GetCyclingPairs() != 3 {
		t.Fatalf("first page: %v, %d pairs, token %q, total %d", err, len(st.GetPairs()), st.GetNextPageToken(), st.GetTotalPairs())
	}
	_, err = oc.GetStatus(ctx, &hellopicsv1.GetStatusRequest{Pair: "other*", PageToken: st.GetNextPageToken()})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("a token of another filter: %v, want InvalidArgument", err)
	}
	_, err = oc.GetStatus(ctx, &hellopicsv1.GetStatusRequest{Pair: strings.Repeat("x", 300)})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("a 300-byte filter: %v, want InvalidArgument", err)
	}
}
