package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

func TestCtlFormatPairs(t *testing.T) {
	st := ctlTestStatus()
	var b bytes.Buffer
	if err := ctlFormatPairs(&b, st.GetEpoch(), st.GetPairs(), ctlTestNow); err != nil {
		t.Fatal(err)
	}
	ctlGolden(t, "pairs.golden", b.Bytes())
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasSuffix(line, " ") {
			t.Errorf("trailing space in %q", line)
		}
	}
	b.Reset()
	if err := ctlFormatPairs(&b, 1, nil, ctlTestNow); err != nil || b.String() != "no pairs registered\n" {
		t.Errorf("no pairs: %q, %v", b.String(), err)
	}
}

func TestCtlPairMatch(t *testing.T) {
	for _, tc := range []struct {
		filter, id string
		want       bool
	}{
		{"", "pic0", true},
		{"pic0", "pic0", true},
		{"pic0", "pic01", false},
		{"pic", "pic0", false},
		{"pic*", "pic0", true},
		{"pic*", "pic", true},
		{"pic1*", "pic0", false},
		{"*", "anything", true},
	} {
		if got := ctlPairMatch(tc.filter, tc.id); got != tc.want {
			t.Errorf("ctlPairMatch(%q, %q) = %v, want %v", tc.filter, tc.id, got, tc.want)
		}
	}
}

func TestCtlParseSince(t *testing.T) {
	now := ctlTestNow
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"5m", now.Add(-5 * time.Minute)},
		{"0s", now},
		{"2026-12-06T13:00:00Z", time.Date(2026, 12, 6, 13, 0, 0, 0, time.UTC)},
		{"2026-12-06T14:00:00.5+01:00", time.Date(2026, 12, 6, 13, 0, 0, 5e8, time.UTC)},
	} {
		got, err := ctlParseSince(tc.in, now)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("ctlParseSince(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"-5m", "yesterday", "2026-12-06", "5"} {
		if _, err := ctlParseSince(bad, now); err == nil {
			t.Errorf("ctlParseSince(%q) accepted", bad)
		}
	}
}

// ctlHealthy is a master with two ready, cycling pairs.
func ctlHealthy() *hellopicsv1.GetStatusResponse {
	ready := func(pair string) *hellopicsv1.PairStatus {
		return &hellopicsv1.PairStatus{PairId: pair, CycleRunning: true,
			Ctrl: &hellopicsv1.ComponentStatus{State: hellopicsv1.ComponentState_COMPONENT_STATE_READY},
			Data: &hellopicsv1.ComponentStatus{State: hellopicsv1.ComponentState_COMPONENT_STATE_READY}}
	}
	return &hellopicsv1.GetStatusResponse{Id: "mgmt-1", Role: hellopicsv1.MgmtRole_MGMT_ROLE_MASTER, Epoch: 7, MasterId: "mgmt-1",
		Pairs: []*hellopicsv1.PairStatus{ready("pic0"), ready("pic1")}}
}

func TestCtlCheck(t *testing.T) {
	down := errors.New("cannot reach mgmt at 10.0.0.9:7400: connection refused")
	backup := &hellopicsv1.GetStatusResponse{Id: "mgmt-2", Role: hellopicsv1.MgmtRole_MGMT_ROLE_BACKUP, Epoch: 7, MasterId: "mgmt-1", Pairs: ctlHealthy().Pairs}
	candidate := &hellopicsv1.GetStatusResponse{Id: "mgmt-2", Role: hellopicsv1.MgmtRole_MGMT_ROLE_CANDIDATE, Epoch: 7}
	degraded := ctlTestStatus() // pic1 half down, pic2 without data
	for _, tc := range []struct {
		name     string
		sts      []*hellopicsv1.GetStatusResponse
		errs     []error
		code     int
		problems []string
	}{
		{"healthy", []*hellopicsv1.GetStatusResponse{ctlHealthy()}, []error{nil}, ctlExitOK, nil},
		{"no pairs", []*hellopicsv1.GetStatusResponse{{Id: "mgmt-1", Role: hellopicsv1.MgmtRole_MGMT_ROLE_MASTER, MasterId: "mgmt-1"}}, []error{nil}, ctlExitOK, nil},
		{"pairs down", []*hellopicsv1.GetStatusResponse{degraded}, []error{nil}, ctlExitDegraded, []string{
			"pair pic1: ctrl identified, data down, cycle stopped",
			"pair pic2: data absent, cycle stopped",
		}},
		{"backup first", []*hellopicsv1.GetStatusResponse{backup, ctlHealthy()}, []error{nil, nil}, ctlExitOK, nil},
		{"backup only", []*hellopicsv1.GetStatusResponse{backup}, []error{nil}, ctlExitDegraded, []string{
			"master mgmt-1 is not among -addr: pairs checked on mgmt-2's synced copy",
		}},
		{"master and one down", []*hellopicsv1.GetStatusResponse{ctlHealthy(), nil}, []error{nil, down}, ctlExitDegraded, []string{down.Error()}},
		{"no master", []*hellopicsv1.GetStatusResponse{candidate, nil}, []error{nil, down}, ctlExitNoMaster, []string{
			"no master: mgmt-2 at a is candidate (electing) at epoch 7 and knows no master",
			down.Error(),
		}},
		{"unreachable", []*hellopicsv1.GetStatusResponse{nil, nil}, []error{down, down}, ctlExitFailure, []string{down.Error(), down.Error()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ctlCheck([]string{"a", "b"}[:len(tc.sts)], tc.sts, tc.errs)
			if r.Code != tc.code || strings.Join(r.Problems, "\n") != strings.Join(tc.problems, "\n") {
				t.Errorf("ctlCheck: code %d (%s), problems\n%s\nwant code %d, problems\n%s", r.Code, r.State, strings.Join(r.Problems, "\n"), tc.code, strings.Join(tc.problems, "\n"))
			}
		})
	}
}

// status -check against an operator API: the exit status and the lines.
func TestCtlStatusCheck(t *testing.T) {
	_, _, healthy := ctlServe(t, &ctlFakeBackend{status: ctlHealthy()})
	_, _, degraded := ctlServe(t, &ctlFakeBackend{status: ctlTestStatus()})
	code, out, errOut := ctlRunT(t, "-addr", healthy, "status", "-check")
	if code != 0 || out != "OK: master mgmt-1 at epoch 7, 2 of 2 pairs ready and cycling\n" {
		t.Errorf("healthy: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = ctlRunT(t, "-addr", degraded, "status", "--check")
	want := "pair pic1: ctrl identified, data down, cycle stopped\npair pic2: data absent, cycle stopped\nDEGRADED: master mgmt-1 at epoch 7, 1 of 3 pairs ready and cycling\n"
	if code != 3 || out != want {
		t.Errorf("degraded: code %d, stdout\n%s\nwant\n%s", code, out, want)
	}
	code, out, _ = ctlRunT(t, "-addr", degraded, "-o", "json", "status", "-check")
	var r ctlCheckResult
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 3 || r.State != "degraded" || r.Code != 3 || len(r.Problems) != 2 || r.Pairs != 3 || r.Healthy != 1 {
		t.Errorf("degraded -o json: code %d, %+v, %v\n%s", code, r, err, out)
	}
	down := ctlFreeAddr(t)
	if code, out, _ := ctlRunT(t, "-addr", down, "status", "-check"); code != 1 || !strings.HasSuffix(out, "UNREACHABLE: no mgmt answered\n") {
		t.Errorf("unreachable: code %d, stdout %q", code, out)
	}
	if code, _, errOut := ctlRunT(t, "status", "-check", "-o", "yaml"); code != 2 || errOut == "" {
		t.Errorf("bad usage: code %d, stderr %q", code, errOut)
	}
}

func TestCtlPairs(t *testing.T) {
	_, _, maddr := ctlServe(t, &ctlFakeBackend{status: ctlTestStatus()})
	backup := proto.Clone(ctlTestStatus()).(*hellopicsv1.GetStatusResponse)
	backup.Id, backup.Role = "mgmt-2", hellopicsv1.MgmtRole_MGMT_ROLE_BACKUP
	backup.Pairs = backup.Pairs[:1]
	_, _, baddr := ctlServe(t, &ctlFakeBackend{status: backup})

	// The master's answer, whichever comes first in -addr.
	code, out, errOut := ctlRunT(t, "-addr", baddr+","+maddr, "pairs")
	if code != 0 || strings.Count(out, "\n") != 4 || !strings.HasPrefix(out, "PAIR  CTRL") || errOut != "" {
		t.Errorf("pairs: code %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	// A backup alone: its copy, said so.
	code, out, errOut = ctlRunT(t, "-addr", baddr, "pairs")
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(errOut, "no master among -addr: pairs as mgmt-2 (backup) last synced them") {
		t.Errorf("pairs from a backup: code %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	code, out, _ = ctlRunT(t, "-addr", maddr, "pairs", "-pair", "pic1")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[1], "pic1 ") {
		t.Errorf("pairs -pair pic1: code %d\n%s", code, out)
	}
	code, out, _ = ctlRunT(t, "-addr", maddr, "-o", "json", "pairs", "-pair", "pic*")
	var j struct {
		From  string           `json:"from"`
		Role  string           `json:"role"`
		Epoch uint64           `json:"epoch"`
		Pairs []map[string]any `json:"pairs"`
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil || code != 0 || j.From != "mgmt-1" || j.Role != "master" || j.Epoch != 7 || len(j.Pairs) != 3 || j.Pairs[1]["pair_id"] != "pic1" {
		t.Errorf("pairs -o json: code %d, %+v, %v\n%s", code, j, err, out)
	}
	if code, _, errOut := ctlRunT(t, "-addr", maddr, "pairs", "-pair", "nosuch"); code != 1 || !strings.Contains(errOut, `no pair matches -pair "nosuch"`) {
		t.Errorf("pairs -pair nosuch: code %d, stderr %q", code, errOut)
	}
	down := ctlFreeAddr(t)
	if code, _, errOut := ctlRunT(t, "-addr", down, "pairs"); code != 1 || !strings.Contains(errOut, "cannot reach mgmt at "+down) {
		t.Errorf("pairs unreachable: code %d, stderr %q", code, errOut)
	}
}

func ctlEv(i int, pair string) *hellopicsv1.WatchEventsResponse {
	return &hellopicsv1.WatchEventsResponse{
		Time: timestamppb.New(ctlTestNow.Add(time.Duration(i) * time.Second)), Kind: "hello_missed", PairId: pair,
		Message: fmt.Sprintf("hello %d missed", i), Epoch: 7,
	}
}

func TestCtlEvents(t *testing.T) {
	_, br, addr := ctlServe(t, &ctlFakeBackend{})
	for i := range 100 {
		br.Publish(ctlEv(i, fmt.Sprintf("pic%d", i%2)))
	}
	since := ctlTestNow.Add(90 * time.Second).Format(time.RFC3339)
	code, out, errOut := ctlRunT(t, "-addr", addr, "events", "-since", since)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != 10 || !strings.HasSuffix(lines[0], "hello 90 missed") || !strings.HasSuffix(lines[9], "hello 99 missed") {
		t.Errorf("events -since %s: code %d\nstdout:\n%s\nstderr:\n%s", since, code, out, errOut)
	}
	// Without -since: all that is kept, beyond the 64 a watch replays.
	code, out, _ = ctlRunT(t, "-addr", addr, "events", "-pair", "pic1")
	if lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); code != 0 || len(lines) != 50 || !strings.HasSuffix(lines[0], "pic1      hello 1 missed") {
		t.Errorf("events -pair pic1: code %d, %d lines\n%s", code, len(lines), out)
	}
	// A duration back from now: the test events are in the past.
	if code, out, _ := ctlRunT(t, "-addr", addr, "events", "--since", "1m"); code != 0 || out != "" {
		t.Errorf("events --since 1m: code %d\n%s", code, out)
	}
	code, out, _ = ctlRunT(t, "-addr", addr, "-o", "json", "events", "-since", ctlTestNow.Add(99*time.Second).Format(time.RFC3339))
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); code != 0 || err != nil || m["message"] != "hello 99 missed" {
		t.Errorf("events -o json: code %d, %v\n%s", code, err, out)
	}
	if code, _, errOut := ctlRunT(t, "-addr", addr, "events", "-since", "yesterday"); code != 2 || !strings.Contains(errOut, `bad -since "yesterday"`) {
		t.Errorf("events -since yesterday: code %d, stderr %q", code, errOut)
	}
	down := ctlFreeAddr(t)
	if code, _, errOut := ctlRunT(t, "-addr", down, "events"); code != 1 || !strings.Contains(errOut, "cannot reach mgmt at "+down) {
		t.Errorf("events unreachable: code %d, stderr %q", code, errOut)
	}
	// The next address when the first does not answer.
	if code, out, _ := ctlRunT(t, "-addr", down+","+addr, "events", "-since", since); code != 0 || strings.Count(out, "\n") != 10 {
		t.Errorf("events on the second address: code %d\n%s", code, out)
	}
}

// events -follow prints the history since the time, then the new events,
// until Ctrl-C.
func TestCtlEventsFollow(t *testing.T) {
	_, br, addr := ctlServe(t, &ctlFakeBackend{})
	for i := range 5 {
		br.Publish(ctlEv(i, "pic0"))
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errOut bytes.Buffer
	done := make(chan int, 1)
	since := ctlTestNow.Add(3 * time.Second).Format(time.RFC3339)
	go func() {
		done <- ctlMain(ctx, []string{"-addr", addr, "events", "-since", since, "-follow", "-pair", "pic0"}, pw, &errOut)
		pw.Close()
	}()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func() string {
		t.Helper()
		select {
		case l := <-lines:
			return l
		case <-time.After(ctlWait):
			t.Fatal("no event line")
			return ""
		}
	}
	for _, want := range []string{"hello 3 missed", "hello 4 missed"} {
		if l := next(); !strings.HasSuffix(l, want) {
			t.Fatalf("history line %q, want ...%q", l, want)
		}
	}
	// Subscribed (the history came): a new event of another pair is
	// filtered out, one of pic0 printed.
	br.Publish(ctlEv(5, "pic1"))
	br.Publish(ctlEv(6, "pic0"))
	if l := next(); !strings.HasSuffix(l, "pic0      hello 6 missed") {
		t.Errorf("live line %q", l)
	}
	cancel()
	go func() {
		for range lines {
		}
	}()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("events -follow ended with %d: %s", code, errOut.String())
		}
	case <-time.After(ctlWait):
		t.Fatal("events -follow did not stop on cancel")
	}
}
