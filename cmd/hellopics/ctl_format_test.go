package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

var ctlUpdate = flag.Bool("update", false, "rewrite the golden files in testdata")

// ctlTestNow is the "now" of the fixed status below.
var ctlTestNow = time.Date(2026, 11, 22, 0, 42, 4, 0, time.UTC)

// ctlTestStatus is a master with two management peers and three pairs: one
// running, one half registered, one with no relay report.
func ctlTestStatus() *hellopicsv1.GetStatusResponse {
	ts := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(ctlTestNow.Add(-d)) }
	return &hellopicsv1.GetStatusResponse{
		Id:            "mgmt-1",
		Role:          hellopicsv1.MgmtRole_MGMT_ROLE_MASTER,
		Epoch:         7,
		MasterId:      "mgmt-1",
		ComponentAddr: "10.0.0.1:7300",
		Version:       "v1.4.0",
		SyncVersion:   1042,
		Started:       ts(26*time.Hour + 3*time.Minute + 5*time.Second),
		BasePriority:  200,
		Priority:      180,
		Tracks: []*hellopicsv1.TrackStatus{
			{Name: "uplink", Weight: 0, Ok: true, Since: ts(26 * time.Hour)},
			{Name: "script:curl -fs http://localhost:8080/health", Weight: 20, Ok: false, Since: ts(42 * time.Second),
				LastError: "exit status 7: curl: (7) Failed to connect to localhost port 8080"},
		},
		MgmtPeers: []*hellopicsv1.MgmtPeerStatus{
			{Id: "mgmt-2", Addr: "10.0.0.2:7401", Alive: true, Priority: 100, Epoch: 7, InSync: true},
			{Id: "mgmt-3", Addr: "10.0.0.3:7401", Alive: false, Priority: 50, Epoch: 6, SyncLag: 12},
			{Id: "mgmt-4", Addr: "10.0.0.4:7401", Alive: true, Priority: 40, Epoch: 7, SyncLag: 300,
				SyncError: "pconn: frame too large: 1100000 bytes, maximum 1048576"},
			{Id: "mgmt-5", Addr: "10.0.0.5:7401", Alive: true, Priority: 0, Epoch: 7, InSync: true, Fault: true},
		},
		Pairs: []*hellopicsv1.PairStatus{
			{
				PairId:       "pic0",
				Ctrl:         &hellopicsv1.ComponentStatus{Role: hellopicsv1.Role_ROLE_CTRL, PairId: "pic0", Instance: "ctrl-a", Addr: "10.0.0.5:41000", DataAddr: "10.0.0.5:7500", State: hellopicsv1.ComponentState_COMPONENT_STATE_READY, ConnectedSince: ts(time.Hour)},
				Data:         &hellopicsv1.ComponentStatus{Role: hellopicsv1.Role_ROLE_DATA, PairId: "pic0", Instance: "data-a", Addr: "10.0.0.6:41200", State: hellopicsv1.ComponentState_COMPONENT_STATE_READY, ConnectedSince: ts(time.Hour)},
				CycleRunning: true,
				Counters:     &hellopicsv1.HelloCounters{Sent: 36000, Received: 35990, Missed: 8, OutOfOrder: 2, LastSeq: 36000, LastHello: ts(80 * time.Millisecond), LastRtt: durationpb.New(1234567 * time.Nanosecond)},
				Relay:        &hellopicsv1.RelayStats{AgentReachable: true, Clients: 3, Commands: 1200, Responses: 1199, Events: 5400, StatusBlocks: 360, RelayErrors: 1, Drops: 0, Counters: map[string]uint64{"informs_retried": 4}},
			},
			{
				PairId:   "pic1",
				Ctrl:     &hellopicsv1.ComponentStatus{Role: hellopicsv1.Role_ROLE_CTRL, PairId: "pic1", Addr: "10.0.0.7:41000", State: hellopicsv1.ComponentState_COMPONENT_STATE_IDENTIFIED},
				Data:     &hellopicsv1.ComponentStatus{Role: hellopicsv1.Role_ROLE_DATA, PairId: "pic1", State: hellopicsv1.ComponentState_COMPONENT_STATE_DOWN},
				Counters: &hellopicsv1.HelloCounters{Sent: 10, Received: 4, Missed: 6, LastSeq: 10, LastHello: ts(95 * time.Second), LastRtt: durationpb.New(450 * time.Microsecond)},
				Relay:    &hellopicsv1.RelayStats{AgentReachable: false},
			},
			{
				PairId: "pic2",
				Ctrl:   &hellopicsv1.ComponentStatus{Role: hellopicsv1.Role_ROLE_CTRL, PairId: "pic2", Addr: "10.0.0.9:41000", State: hellopicsv1.ComponentState_COMPONENT_STATE_READY},
			},
		},
	}
}

func ctlGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *ctlUpdate {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -run %s -update rewrites it)\ngot:\n%s\nwant:\n%s", path, t.Name(), got, want)
	}
}

func TestCtlFormatStatus(t *testing.T) {
	var b bytes.Buffer
	if err := ctlFormatStatus(&b, "", ctlTestStatus(), ctlTestNow); err != nil {
		t.Fatal(err)
	}
	ctlGolden(t, "status.golden", b.Bytes())
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasSuffix(line, " ") {
			t.Errorf("trailing space in %q", line)
		}
	}
}

func TestCtlFormatStatusBackup(t *testing.T) {
	st := &hellopicsv1.GetStatusResponse{Id: "mgmt-2", Role: hellopicsv1.MgmtRole_MGMT_ROLE_BACKUP, Epoch: 7, MasterId: "mgmt-1", SyncVersion: 1040,
		MgmtPeers: []*hellopicsv1.MgmtPeerStatus{{Id: "mgmt-1", Addr: "10.0.0.1:7401", Alive: true, Priority: 200, Epoch: 7, SyncLag: 99}}}
	var b bytes.Buffer
	if err := ctlFormatStatus(&b, "10.0.0.2:7400", st, ctlTestNow); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"mgmt-2 at 10.0.0.2:7400", "backup", "1040 applied", "no pairs registered"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// A backup does not know its peers' sync lag.
	if strings.Contains(out, "99") {
		t.Errorf("backup shows a sync lag:\n%s", out)
	}
}

func TestCtlFormatStatusFault(t *testing.T) {
	st := &hellopicsv1.GetStatusResponse{Id: "mgmt-1", Role: hellopicsv1.MgmtRole_MGMT_ROLE_BACKUP, BasePriority: 200, Fault: true,
		Tracks: []*hellopicsv1.TrackStatus{{Name: "interface:eth1", LastError: "interface eth1 down"}}}
	var b bytes.Buffer
	if err := ctlFormatStatus(&b, "", st, ctlTestNow); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"0 (base 200): FAULT", "interface:eth1", "0 (fault)", "FAILING", "interface eth1 down"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
	// A server that reports no priority (before tracked health): no line.
	b.Reset()
	if err := ctlFormatStatus(&b, "", &hellopicsv1.GetStatusResponse{Id: "x"}, ctlTestNow); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "priority") {
		t.Errorf("priority line without a priority:\n%s", b.String())
	}
}

func TestCtlFormatStatusEmpty(t *testing.T) {
	var b bytes.Buffer
	if err := ctlFormatStatus(&b, "", &hellopicsv1.GetStatusResponse{}, ctlTestNow); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"(no id)", "unknown", "none", "no other management instance", "no pairs registered"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
}

func TestCtlMarshalJSON(t *testing.T) {
	want := ctlTestStatus()
	for _, multiline := range []bool{false, true} {
		b, err := ctlMarshalJSON(want, multiline)
		if err != nil {
			t.Fatal(err)
		}
		if got := bytes.Count(b, []byte("\n")) > 0; got != multiline {
			t.Errorf("multiline %v: output has newlines: %v", multiline, got)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		// Every field, zero or not, under its proto name.
		for _, k := range []string{"id", "master_id", "sync_version", "pairs", "mgmt_peers"} {
			if _, ok := m[k]; !ok {
				t.Errorf("JSON lacks %q", k)
			}
		}
		pairs := m["pairs"].([]any)
		if _, ok := pairs[1].(map[string]any)["cycle_running"]; !ok {
			t.Errorf("JSON lacks a false cycle_running: %s", b)
		}
		got := &hellopicsv1.GetStatusResponse{}
		if err := protojson.Unmarshal(b, got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, want) {
			t.Errorf("JSON does not round-trip:\n%s", b)
		}
	}
}

func TestCtlFormatEvent(t *testing.T) {
	tests := []struct {
		ev   *hellopicsv1.WatchEventsResponse
		want string
	}{
		{
			&hellopicsv1.WatchEventsResponse{Time: timestamppb.New(ctlTestNow.Add(123 * time.Millisecond)), Kind: "component_up", PairId: "pic0", Message: "ctrl ctrl-a connected from 10.0.0.5:41000", Epoch: 7},
			"2026-11-22T00:42:04.123Z  component_up        pic0      ctrl ctrl-a connected from 10.0.0.5:41000",
		},
		{
			&hellopicsv1.WatchEventsResponse{Time: timestamppb.New(ctlTestNow), Kind: "mastership", Message: "mgmt-1 is master at epoch 7\n(switchover)"},
			"2026-11-22T00:42:04.000Z  mastership          -         mgmt-1 is master at epoch 7 (switchover)",
		},
		{&hellopicsv1.WatchEventsResponse{}, "-  -                   -         "},
	}
	for _, tt := range tests {
		if got := ctlFormatEvent(tt.ev); got != tt.want {
			t.Errorf("ctlFormatEvent(%v)\n got %q\nwant %q", tt.ev, got, tt.want)
		}
	}
}

func TestCtlAge(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{80 * time.Millisecond, "80ms"},
		{95*time.Second + 400*time.Millisecond, "1m35s"},
		{26*time.Hour + 3*time.Minute + 5*time.Second, "1d2h3m5s"},
	}
	for _, tt := range tests {
		if got := ctlAge(tt.d); got != tt.want {
			t.Errorf("ctlAge(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestCtlDialReason(t *testing.T) {
	tests := []struct{ msg, want string }{
		{`connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:7400: connect: connection refused"`, "connection refused"},
		{`connection error: desc = "transport: Error while dialing: dial tcp: lookup x.invalid: no such host"`, "no such host"},
		{`connection error: desc = "transport: something new"`, "transport: something new"},
	}
	for _, tt := range tests {
		if got := ctlDialReason(tt.msg); got != tt.want {
			t.Errorf("ctlDialReason(%q) = %q, want %q", tt.msg, got, tt.want)
		}
	}
}
