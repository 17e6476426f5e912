package handshake

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// Unit tests of each machine on its own, fed by hand.

const (
	msgID      = hellopicsv1.MsgType_MSG_TYPE_ID
	msgGetPeer = hellopicsv1.MsgType_MSG_TYPE_GET_PEER
	msgPeer    = hellopicsv1.MsgType_MSG_TYPE_PEER
	msgReady   = hellopicsv1.MsgType_MSG_TYPE_READY
	msgHello   = hellopicsv1.MsgType_MSG_TYPE_HELLO
	msgRedir   = hellopicsv1.MsgType_MSG_TYPE_REDIRECT
	msgReport  = hellopicsv1.MsgType_MSG_TYPE_REPORT
	msgReject  = hellopicsv1.MsgType_MSG_TYPE_REJECT

	roleCtrlPB = hellopicsv1.Role_ROLE_CTRL
	roleDataPB = hellopicsv1.Role_ROLE_DATA
	dirCD      = hellopicsv1.Direction_DIRECTION_MGMT_CTRL_DATA
	dirDC      = hellopicsv1.Direction_DIRECTION_MGMT_DATA_CTRL
)

// summary renders the non-event outputs compactly, e.g.
// "send 1 MSG_TYPE_ID; close 1; dial a:1", and the event kinds after "|".
func summary(outs []Output) string {
	var acts, evs []string
	for _, o := range outs {
		switch o := o.(type) {
		case Send:
			acts = append(acts, fmt.Sprintf("send %d %s", o.Session, strings.TrimPrefix(o.Type.String(), "MSG_TYPE_")))
		case Close:
			acts = append(acts, fmt.Sprintf("close %d", o.Session))
		case Dial:
			acts = append(acts, "dial "+o.Addr)
		case SwitchMgmt:
			acts = append(acts, fmt.Sprintf("switch %s@%d", o.Addr, o.Epoch))
		case Event:
			evs = append(evs, o.Kind.String())
		}
	}
	return strings.Join(acts, "; ") + " | " + strings.Join(evs, " ")
}

func sentMsg[T proto.Message](t *testing.T, outs []Output, typ hellopicsv1.MsgType) T {
	t.Helper()
	for _, o := range outs {
		if s, ok := o.(Send); ok && s.Type == typ {
			return s.Msg.(T)
		}
	}
	t.Fatalf("no %s in %s", typ, summary(outs))
	var zero T
	return zero
}

func ctrlID(pair, inst string) *hellopicsv1.Identify {
	return &hellopicsv1.Identify{Role: roleCtrlPB, PairId: pair, Instance: inst, DataAddr: "c:7000", Epoch: 1}
}

func dataID(pair, inst string) *hellopicsv1.Identify {
	return &hellopicsv1.Identify{Role: roleDataPB, PairId: pair, Instance: inst, Epoch: 1}
}

func newTestMgmt(t *testing.T, cfg MgmtConfig) *Mgmt {
	t.Helper()
	if cfg.HelloInterval == 0 {
		cfg.HelloInterval = testInterval
	}
	m, err := NewMgmt(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// runningMgmt returns a mgmt with pair p1 on sessions 1 (ctrl) and 2
// (data), both ready, and hello 1 sent at t0.
func runningMgmt(t *testing.T) *Mgmt {
	t.Helper()
	m := newTestMgmt(t, MgmtConfig{Epoch: 1})
	m.SessionUp(1, "10.0.0.1:1111", t0)
	m.SessionUp(2, "10.0.0.2:2222", t0)
	m.Receive(1, msgID, ctrlID("p1", "c-1"), t0)
	m.Receive(2, msgID, dataID("p1", "d-1"), t0)
	m.Receive(2, msgReady, &hellopicsv1.Ready{Role: roleDataPB, PairId: "p1"}, t0)
	outs := m.Receive(1, msgReady, &hellopicsv1.Ready{Role: roleCtrlPB, PairId: "p1"}, t0)
	if got := summary(outs); got != "send 1 HELLO | ready cycle_started hello_sent" {
		t.Fatalf("start: %s", got)
	}
	return m
}

func TestMgmtIgnoresBeforeIdentify(t *testing.T) {
	m := newTestMgmt(t, MgmtConfig{Epoch: 1})
	m.SessionUp(7, "x:1", t0)
	for _, tc := range []struct {
		typ hellopicsv1.MsgType
		msg proto.Message
	}{
		{msgGetPeer, &hellopicsv1.GetPeer{PairId: "p1"}},
		{msgReady, &hellopicsv1.Ready{Role: roleDataPB, PairId: "p1"}},
		{msgHello, &hellopicsv1.Hello{Seq: 1, Direction: dirCD, PairId: "p1"}},
		{msgReport, &hellopicsv1.Report{Role: roleDataPB, PairId: "p1"}},
		{msgID, &hellopicsv1.Ready{}},  // wrong Go type for the frame
		{hellopicsv1.MsgType(99), nil}, // unknown frame type
		{msgHello, nil},                // no message
		{hellopicsv1.MsgType_MSG_TYPE_UNSPECIFIED, &hellopicsv1.Hello{}},
	} {
		if got := summary(m.Receive(7, tc.typ, tc.msg, t0)); got != " | ignored" {
			t.Errorf("%s before identify: %s", tc.typ, got)
		}
	}
	if at, ok := m.NextDeadline(); !ok || !at.Equal(t0.Add(DefaultIdentifyTimeout)) {
		t.Errorf("identify deadline %v %v", at, ok)
	}
	if got := summary(m.Receive(8, msgID, ctrlID("p1", "c"), t0)); got != " | ignored" {
		t.Errorf("unknown session: %s", got)
	}
	if len(m.Pairs()) != 0 {
		t.Errorf("registry %v", m.Pairs())
	}
	// The session can still identify afterwards.
	if got := summary(m.Receive(7, msgID, ctrlID("p1", "c"), t0)); got != " | identified" {
		t.Errorf("identify: %s", got)
	}
	// One that never identifies is closed after IdentifyTimeout.
	m.SessionUp(9, "scanner:1", t0)
	if got := summary(m.Tick(t0.Add(DefaultIdentifyTimeout - 1))); got != " | " {
		t.Errorf("early: %s", got)
	}
	if got := summary(m.Tick(t0.Add(DefaultIdentifyTimeout))); got != "close 9 | down" {
		t.Errorf("timeout: %s", got)
	}
	if _, ok := m.NextDeadline(); ok {
		t.Error("deadline left")
	}
}

func TestMgmtRejectsBadIdentity(t *testing.T) {
	tests := []struct {
		name string
		id   *hellopicsv1.Identify
		want string // part of the reason
	}{
		{"no role", &hellopicsv1.Identify{PairId: "p1", Instance: "x"}, "ROLE_UNSPECIFIED"},
		{"mgmt role", &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_MGMT, PairId: "p1"}, "ROLE_MGMT"},
		{"empty pair", &hellopicsv1.Identify{Role: roleDataPB, Instance: "x"}, "pair id must be"},
		{"ctrl without data addr", &hellopicsv1.Identify{Role: roleCtrlPB, PairId: "p1", Instance: "x"}, "data address"},
		{"second ctrl", ctrlID("p1", "c-2"), "identity in use"},
		{"second data", dataID("p1", "d-2"), "identity in use"},
		{"second ctrl without instance", ctrlID("p1", ""), "identity in use"},
		{"live ctrl's instance from another host", ctrlID("p1", "c-1"), "identity in use"},
		{"higher epoch", &hellopicsv1.Identify{Role: roleDataPB, PairId: "p9", Epoch: 2}, "stale master"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := runningMgmt(t)
			m.SessionUp(9, "x:9", t0)
			outs := m.Receive(9, msgID, tc.id, t0)
			if got := summary(outs); got != "send 9 REJECT; close 9 | rejected" {
				t.Fatalf("got %s", got)
			}
			if r := sentMsg[*hellopicsv1.Reject](t, outs, msgReject); !strings.Contains(r.GetReason(), tc.want) {
				t.Fatalf("reason %q, want %q", r.GetReason(), tc.want)
			}
			// The session is gone; the running pair is untouched.
			if got := summary(m.Receive(9, msgID, dataID("p2", "d"), t0)); got != " | ignored" {
				t.Fatalf("after reject: %s", got)
			}
			if !m.Pairs()[0].GetCycleRunning() {
				t.Fatal("running pair disturbed")
			}
		})
	}
}

func TestMgmtReidentify(t *testing.T) {
	m := runningMgmt(t)
	// The same message again is harmless.
	if got := summary(m.Receive(1, msgID, ctrlID("p1", "c-1"), t0)); got != " | ignored" {
		t.Fatalf("repeat: %s", got)
	}
	// The same instance on a new connection replaces the old one, and the
	// pair must get ready again.
	m.SessionUp(3, "10.0.0.1:3333", t0)
	if got := summary(m.Receive(3, msgID, ctrlID("p1", "c-1"), t0)); got != "close 1; send 3 PEER; send 2 PEER | down cycle_stopped identified peer peer" {
		t.Fatalf("same instance: %s", got)
	}
	if got := summary(m.SessionDown(1, "eof", t0)); got != " | " {
		t.Fatalf("old session down: %s", got)
	}
	// An identified session that changes its identity is thrown out.
	if got := summary(m.Receive(3, msgID, ctrlID("p1", "c-9"), t0)); got != "send 3 REJECT; close 3 | rejected down cycle_stopped" && got != "send 3 REJECT; close 3 | rejected down" {
		t.Fatalf("changed identity: %s", got)
	}
	if st := m.Pairs()[0].GetCtrl().GetState(); st != hellopicsv1.ComponentState_COMPONENT_STATE_DOWN {
		t.Fatalf("ctrl state %s", st)
	}
}

func TestMgmtPeerAndReady(t *testing.T) {
	m := newTestMgmt(t, MgmtConfig{Epoch: 4})
	m.SessionUp(2, "d:1", t0)
	m.Receive(2, msgID, dataID("p1", "d"), t0)
	// data asks before ctrl exists: answered when ctrl registers.
	if got := summary(m.Receive(2, msgGetPeer, &hellopicsv1.GetPeer{PairId: "p1"}, t0)); got != " | peer" {
		t.Fatalf("get_peer without ctrl: %s", got)
	}
	if got := summary(m.Receive(2, msgGetPeer, &hellopicsv1.GetPeer{PairId: "p2"}, t0)); got != " | ignored" {
		t.Fatalf("get_peer for another pair: %s", got)
	}
	m.SessionUp(1, "c:1", t0)
	outs := m.Receive(1, msgID, &hellopicsv1.Identify{Role: roleCtrlPB, PairId: "p1", Instance: "c", DataAddr: "c:7000", Epoch: 4}, t0)
	var p *hellopicsv1.Peer // the one to data; ctrl gets one too (mgmt's epoch)
	for _, o := range outs {
		if snd, ok := o.(Send); ok && snd.Session == 2 && snd.Type == msgPeer {
			p = snd.Msg.(*hellopicsv1.Peer)
		}
	}
	want := &hellopicsv1.Peer{Role: roleCtrlPB, PairId: "p1", Addr: "c:7000", Epoch: 4}
	if !proto.Equal(p, want) {
		t.Fatalf("peer %v, want %v", p, want)
	}
	// Now asked, answered at once.
	if got := summary(m.Receive(2, msgGetPeer, &hellopicsv1.GetPeer{PairId: "p1"}, t0)); got != "send 2 PEER | peer" {
		t.Fatalf("get_peer: %s", got)
	}
	if got := summary(m.Receive(1, msgGetPeer, &hellopicsv1.GetPeer{PairId: "p1"}, t0)); got != " | ignored" {
		t.Fatalf("get_peer from ctrl: %s", got)
	}
	// Ready must describe the session's own component.
	if got := summary(m.Receive(1, msgReady, &hellopicsv1.Ready{Role: roleDataPB, PairId: "p1"}, t0)); got != " | ignored" {
		t.Fatalf("ready for data on ctrl session: %s", got)
	}
	if got := summary(m.Receive(1, msgReady, &hellopicsv1.Ready{Role: roleCtrlPB, PairId: "p1"}, t0)); got != " | ready" {
		t.Fatalf("ctrl ready: %s", got)
	}
	if got := summary(m.Receive(1, msgReady, &hellopicsv1.Ready{Role: roleCtrlPB, PairId: "p1"}, t0)); got != " | " {
		t.Fatalf("ctrl ready again: %s", got)
	}
	if got := summary(m.Receive(2, msgReady, &hellopicsv1.Ready{Role: roleDataPB, PairId: "p1"}, t0)); got != "send 1 HELLO | ready cycle_started hello_sent" {
		t.Fatalf("data ready: %s", got)
	}
	// Unexpected frames from identified components are logged.
	if got := summary(m.Receive(2, msgPeer, &hellopicsv1.Peer{}, t0)); got != " | ignored" {
		t.Fatalf("peer to mgmt: %s", got)
	}
	if got := summary(m.Receive(2, msgReject, &hellopicsv1.Reject{Reason: "bye"}, t0)); got != " | rejected" {
		t.Fatalf("reject to mgmt: %s", got)
	}
}

func TestMgmtHelloCounting(t *testing.T) {
	m := runningMgmt(t)
	back := func(sess SessionID, seq uint64, dir hellopicsv1.Direction, at time.Time) string {
		return summary(m.Receive(sess, msgHello, &hellopicsv1.Hello{Seq: seq, Direction: dir, Epoch: 1, PairId: "p1"}, at))
	}
	// Hello 1 went to ctrl, so it must come back from data (session 2).
	if got := back(1, 1, dirCD, t0.Add(time.Millisecond)); got != " | hello_out_of_order" {
		t.Fatalf("wrong last hop: %s", got)
	}
	if got := back(2, 1, dirDC, t0.Add(time.Millisecond)); got != " | hello_out_of_order" {
		t.Fatalf("wrong direction: %s", got)
	}
	// Same number and path, but another master's epoch (a split where
	// both number from the synced counter): not this master's hello.
	for _, e := range []uint64{0, 2} {
		outs := m.Receive(2, msgHello, &hellopicsv1.Hello{Seq: 1, Direction: dirCD, Epoch: e, PairId: "p1"}, t0.Add(time.Millisecond))
		if got := summary(outs); got != " | hello_out_of_order" {
			t.Fatalf("hello 1 at epoch %d: %s", e, got)
		}
		if ev := outs[0].(Event); ev.Message != "hello of another master's epoch came back" {
			t.Fatalf("hello 1 at epoch %d: message %q", e, ev.Message)
		}
	}
	if got := back(2, 1, dirCD, t0.Add(7*time.Millisecond)); got != " | hello_returned" {
		t.Fatalf("return: %s", got)
	}
	if got := back(2, 1, dirCD, t0.Add(8*time.Millisecond)); got != " | hello_out_of_order" {
		t.Fatalf("duplicate: %s", got)
	}
	if d, ok := m.NextDeadline(); !ok || !d.Equal(t0.Add(testInterval)) {
		t.Fatalf("deadline %v %v", d, ok)
	}
	if got := summary(m.Tick(t0.Add(testInterval - 1))); got != " | " {
		t.Fatalf("early tick: %s", got)
	}
	// Hello 2 goes to data; it never comes back.
	if got := summary(m.Tick(t0.Add(testInterval))); got != "send 2 HELLO | hello_sent" {
		t.Fatalf("tick: %s", got)
	}
	// A very late tick sends one hello, not a burst.
	late := t0.Add(10 * testInterval)
	if got := summary(m.Tick(late)); got != "send 1 HELLO | hello_missed hello_sent" {
		t.Fatalf("late tick: %s", got)
	}
	if d, _ := m.NextDeadline(); !d.Equal(late.Add(testInterval)) {
		t.Fatalf("deadline after late tick %v", d)
	}
	c := m.Pairs()[0].GetCounters()
	want := &hellopicsv1.HelloCounters{Sent: 3, Received: 1, Missed: 1, OutOfOrder: 5, LastSeq: 3,
		LastHello: c.GetLastHello(), LastRtt: c.GetLastRtt()}
	if !proto.Equal(c, want) {
		t.Fatalf("counters %v, want %v", c, want)
	}
	if c.GetLastRtt().AsDuration() != 7*time.Millisecond || !c.GetLastHello().AsTime().Equal(t0.Add(7*time.Millisecond)) {
		t.Fatalf("rtt %v at %v", c.GetLastRtt().AsDuration(), c.GetLastHello().AsTime())
	}
	// Losing data stops the cycle; a hello arriving afterwards is out of
	// order.
	if got := summary(m.SessionDown(2, "eof", late)); got != " | down cycle_stopped" {
		t.Fatalf("down: %s", got)
	}
	if _, ok := m.NextDeadline(); ok {
		t.Fatal("deadline with no cycle")
	}
	if got := back(1, 3, dirCD, late); got != " | hello_out_of_order" {
		t.Fatalf("hello after stop: %s", got)
	}
	if got := summary(m.SessionDown(2, "eof", late)); got != "" && got != " | " {
		t.Fatalf("second down: %s", got)
	}
}

func TestMgmtSessionBookkeeping(t *testing.T) {
	m := runningMgmt(t)
	// The shell reusing a live session id means the old one is gone.
	if got := summary(m.SessionUp(2, "10.0.0.2:3333", t0)); got != " | down cycle_stopped up" {
		t.Fatalf("reuse: %s", got)
	}
	if got := summary(m.SessionDown(2, "eof", t0)); got != " | down" {
		t.Fatalf("unidentified down: %s", got)
	}
	if got := summary(m.SessionDown(2, "eof", t0)); got != " | " {
		t.Fatalf("unknown down: %s", got)
	}
}

func TestMgmtRegistry(t *testing.T) {
	m := runningMgmt(t)
	m.Receive(2, msgHello, &hellopicsv1.Hello{Seq: 1, Direction: dirCD, Epoch: 1, PairId: "p1"}, t0.Add(3*time.Millisecond))
	relay := &hellopicsv1.RelayStats{AgentReachable: true, Commands: 5}
	m.Receive(2, msgReport, &hellopicsv1.Report{Role: roleDataPB, PairId: "p1", Relay: relay}, t0)
	m.Receive(1, msgReport, &hellopicsv1.Report{Role: roleCtrlPB, PairId: "p1"}, t0)
	ps := m.Pairs()
	if len(ps) != 1 {
		t.Fatalf("pairs %v", ps)
	}
	p := ps[0]
	ready := hellopicsv1.ComponentState_COMPONENT_STATE_READY
	checks := []struct {
		name      string
		got, want any
	}{
		{"pair", p.GetPairId(), "p1"},
		{"running", p.GetCycleRunning(), true},
		{"ctrl role", p.GetCtrl().GetRole(), roleCtrlPB},
		{"ctrl instance", p.GetCtrl().GetInstance(), "c-1"},
		{"ctrl addr", p.GetCtrl().GetAddr(), "10.0.0.1:1111"},
		{"ctrl data addr", p.GetCtrl().GetDataAddr(), "c:7000"},
		{"ctrl state", p.GetCtrl().GetState(), ready},
		{"ctrl since", p.GetCtrl().GetConnectedSince().AsTime(), t0},
		{"data role", p.GetData().GetRole(), roleDataPB},
		{"data instance", p.GetData().GetInstance(), "d-1"},
		{"data addr", p.GetData().GetAddr(), "10.0.0.2:2222"},
		{"data state", p.GetData().GetState(), ready},
		{"rtt", p.GetCounters().GetLastRtt().AsDuration(), 3 * time.Millisecond},
		{"relay commands", p.GetRelay().GetCommands(), uint64(5)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
	// The result is a copy.
	p.Relay.Commands = 99
	if m.Pairs()[0].GetRelay().GetCommands() != 5 {
		t.Error("Pairs shares state")
	}
	m.SessionDown(1, "eof", t0)
	p = m.Pairs()[0]
	if p.GetCtrl().GetState() != hellopicsv1.ComponentState_COMPONENT_STATE_DOWN || p.GetCtrl().GetInstance() != "c-1" ||
		p.GetData().GetState() != hellopicsv1.ComponentState_COMPONENT_STATE_IDENTIFIED || p.GetCycleRunning() {
		t.Errorf("after ctrl loss: %v", p)
	}
}

func TestMgmtSnapshotRestore(t *testing.T) {
	m := runningMgmt(t)
	m.Receive(2, msgHello, &hellopicsv1.Hello{Seq: 1, Direction: dirCD, Epoch: 1, PairId: "p1"}, t0.Add(time.Millisecond))
	m.Tick(t0.Add(testInterval))
	snap := m.Snapshot()
	if snap.NextSeq != 3 {
		t.Fatalf("next seq %d", snap.NextSeq)
	}
	b := newTestMgmt(t, MgmtConfig{Epoch: 1, Backup: true, MasterAddr: "m:1"})
	if err := b.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if b.NextSeq() != 3 {
		t.Fatalf("restored next seq %d", b.NextSeq())
	}
	got := b.Pairs()[0]
	if !proto.Equal(got.GetCounters(), snap.Pairs[0].GetCounters()) || got.GetCycleRunning() ||
		got.GetCtrl().GetInstance() != "c-1" || got.GetCtrl().GetState() != hellopicsv1.ComponentState_COMPONENT_STATE_DOWN {
		t.Fatalf("restored %v from %v", got, snap.Pairs[0])
	}
	// Restoring never moves the numbers back, and last_seq wins over a
	// stale next_seq.
	if err := b.Restore(Snapshot{NextSeq: 1, Pairs: []*hellopicsv1.PairStatus{{PairId: "p2", Counters: &hellopicsv1.HelloCounters{LastSeq: 41}}}}); err != nil {
		t.Fatal(err)
	}
	if b.NextSeq() != 42 {
		t.Fatalf("next seq %d, want 42", b.NextSeq())
	}
	if err := b.Restore(Snapshot{Pairs: []*hellopicsv1.PairStatus{{}}}); err == nil {
		t.Fatal("pair without id restored")
	}
}

func TestMgmtMastership(t *testing.T) {
	m := runningMgmt(t)
	m.SessionUp(5, "x:5", t0) // unidentified: left alone
	outs := m.SetMastership(false, 2, "m2:1", t0)
	if got := summary(outs); got != "send 1 REDIRECT; close 1; send 2 REDIRECT; close 2 | mastership redirect down cycle_stopped redirect down" {
		t.Fatalf("step down: %s", got)
	}
	if r := sentMsg[*hellopicsv1.Redirect](t, outs, msgRedir); r.GetMasterAddr() != "m2:1" || r.GetEpoch() != 2 {
		t.Fatalf("redirect %v", r)
	}
	if m.IsMaster() || m.Epoch() != 2 {
		t.Fatalf("master=%v epoch=%d", m.IsMaster(), m.Epoch())
	}
	// As backup it redirects whoever identifies.
	if got := summary(m.Receive(5, msgID, dataID("p1", "d-2"), t0)); got != "send 5 REDIRECT; close 5 | redirect" {
		t.Fatalf("identify at backup: %s", got)
	}
	// Epochs never go down.
	m.SetMastership(true, 1, "", t0)
	if !m.IsMaster() || m.Epoch() != 2 {
		t.Fatalf("master=%v epoch=%d", m.IsMaster(), m.Epoch())
	}
	m.SessionUp(6, "x:6", t0)
	if got := summary(m.Receive(6, msgID, dataID("p1", "d-2"), t0)); got != " | identified" {
		t.Fatalf("identify at new master: %s", got)
	}
}

func TestConfigValidation(t *testing.T) {
	if m, err := NewMgmt(MgmtConfig{}); err != nil || m.HelloInterval() != DefaultHelloInterval {
		t.Errorf("default interval: %v %v", m, err)
	}
	if _, err := NewMgmt(MgmtConfig{HelloInterval: 9 * time.Millisecond}); err == nil {
		t.Error("9ms interval accepted")
	}
	if _, err := NewMgmt(MgmtConfig{IdentifyTimeout: -1}); err == nil {
		t.Error("negative identify timeout accepted")
	}
	if _, err := NewMgmt(MgmtConfig{HelloInterval: MinHelloInterval}); err != nil {
		t.Error(err)
	}
	for _, cfg := range []CtrlConfig{{DataAddr: "a:1"}, {PairID: "p"}} {
		if _, err := NewCtrl(cfg); err == nil {
			t.Errorf("ctrl %+v accepted", cfg)
		}
	}
	for _, cfg := range []DataConfig{{}, {PairID: "p", RetryDelay: -1}} {
		if _, err := NewData(cfg); err == nil {
			t.Errorf("data %+v accepted", cfg)
		}
	}
	if d, err := NewData(DataConfig{PairID: "p"}); err != nil || d.cfg.RetryDelay != DefaultRetryDelay {
		t.Errorf("default retry: %v", err)
	}
}

func TestEventNames(t *testing.T) {
	for k := EventIgnored; k <= EventMastership; k++ {
		if strings.HasPrefix(k.String(), "EventKind(") {
			t.Errorf("kind %d has no name", int(k))
		}
	}
	if EventKind(0).String() != "EventKind(0)" {
		t.Error(EventKind(0).String())
	}
	if EventHelloSent.Level() != slog.LevelDebug || EventHelloMissed.Level() != slog.LevelWarn || EventCycleStarted.Level() != slog.LevelInfo {
		t.Error("levels")
	}
	e := Event{Kind: EventDown, Peer: roleCtrlPB, PairID: "p1", Session: 3, Seq: 4, Epoch: 5, Message: "gone"}
	if got := e.String(); got != `down peer=ctrl pair="p1" session=3 seq=4 epoch=5: gone` {
		t.Error(got)
	}
	for typ := range hellopicsv1.MsgType_name {
		msg, ok := NewMessage(hellopicsv1.MsgType(typ))
		// Application frames are not the handshake's: the shells take
		// them out first (appliance.Runtime.Handler).
		want := typ != 0 && hellopicsv1.MsgType(typ) != hellopicsv1.MsgType_MSG_TYPE_APP
		if ok != want || ok && !checkMessage(hellopicsv1.MsgType(typ), msg) {
			t.Errorf("NewMessage(%d) = %v, %v", typ, msg, ok)
		}
	}
}

// TestMgmtHoldWithoutMaster: a backup that knows no live master holds an
// Identify (nothing sent, the session kept) and answers it the moment
// it becomes master (accepted, no reconnection) or learns the master
// (redirected there); the identify timeout still bounds the wait.
func TestMgmtHoldWithoutMaster(t *testing.T) {
	b := newTestMgmt(t, MgmtConfig{Epoch: 1, Backup: true, HoldWithoutMaster: true})
	b.SessionUp(1, "c:1", t0)
	b.SessionUp(2, "d:1", t0)
	if got := summary(b.Receive(1, msgID, ctrlID("p1", "c-1"), t0)); got != " | held" {
		t.Fatalf("identify at a backup without master: %s", got)
	}
	b.Receive(2, msgID, dataID("p1", "d-1"), t0)
	// data asks for its peer at once: kept behind the held Identify.
	if got := summary(b.Receive(2, msgGetPeer, &hellopicsv1.GetPeer{PairId: "p1"}, t0)); got != " | " {
		t.Fatalf("GetPeer behind a held identify: %s", got)
	}
	// Becoming master answers both at once, in session order, then the
	// GetPeer.
	outs := b.SetMastership(true, 2, "", t0.Add(time.Millisecond))
	if got := summary(outs); !strings.Contains(got, "identified") || strings.Count(got, "identified") != 2 ||
		strings.Contains(got, "REDIRECT") || !strings.HasSuffix(got, "identified identified peer peer") {
		t.Fatalf("held identifies when master: %s", got)
	}
	// Too many messages behind a held identify cost the session.
	f := newTestMgmt(t, MgmtConfig{Epoch: 1, Backup: true, HoldWithoutMaster: true})
	f.SessionUp(1, "c:1", t0)
	f.Receive(1, msgID, ctrlID("p1", "c-1"), t0)
	var last string
	for i := 0; i <= maxHeldMsgs; i++ {
		last = summary(f.Receive(1, msgGetPeer, &hellopicsv1.GetPeer{PairId: "p1"}, t0))
	}
	if last != "close 1 | down" {
		t.Fatalf("message %d behind a held identify: %s", maxHeldMsgs+1, last)
	}
	if p := b.Pairs()[0]; p.GetCtrl().GetState() == hellopicsv1.ComponentState_COMPONENT_STATE_DOWN ||
		p.GetData().GetState() == hellopicsv1.ComponentState_COMPONENT_STATE_DOWN {
		t.Fatalf("pair after the held identifies: %v", p)
	}

	// Learning the master redirects the held ones there.
	c := newTestMgmt(t, MgmtConfig{Epoch: 1, Backup: true, HoldWithoutMaster: true})
	c.SessionUp(1, "c:1", t0)
	c.Receive(1, msgID, ctrlID("p1", "c-1"), t0)
	if got := summary(c.SetMastership(false, 2, "", t0)); strings.Contains(got, "REDIRECT") {
		t.Fatalf("still no master: %s", got)
	}
	outs = c.SetMastership(false, 2, "m2:1", t0)
	if got := summary(outs); got != "send 1 REDIRECT; close 1 | redirect" {
		t.Fatalf("held identify when the master is known: %s", got)
	}
	if r := sentMsg[*hellopicsv1.Redirect](t, outs, msgRedir); r.GetMasterAddr() != "m2:1" {
		t.Fatalf("redirect %v", r)
	}

	// The identify timeout ends a hold that lasts.
	d := newTestMgmt(t, MgmtConfig{Epoch: 1, Backup: true, HoldWithoutMaster: true, IdentifyTimeout: time.Second})
	d.SessionUp(1, "c:1", t0)
	d.Receive(1, msgID, ctrlID("p1", "c-1"), t0)
	if got := summary(d.Tick(t0.Add(time.Second))); !strings.HasPrefix(got, "close 1") {
		t.Fatalf("held past the identify timeout: %s", got)
	}

	// Without HoldWithoutMaster a backup redirects at once, as before.
	e := newTestMgmt(t, MgmtConfig{Epoch: 1, Backup: true})
	e.SessionUp(1, "c:1", t0)
	if got := summary(e.Receive(1, msgID, ctrlID("p1", "c-1"), t0)); got != "send 1 REDIRECT; close 1 | redirect" {
		t.Fatalf("identify at a backup that does not hold: %s", got)
	}
}

// takeOver is a backup b that synced a master whose pair p1 had hello 1
// back at t0+1ms, took over at took (planned: by a switchover's
// handover) and has p1's components ready again; seq is the hello in
// flight.
func takeOver(t *testing.T, took time.Time, planned bool) (b *Mgmt, seq uint64) {
	t.Helper()
	m := runningMgmt(t)
	m.Receive(2, msgHello, &hellopicsv1.Hello{Seq: 1, Direction: dirCD, Epoch: 1, PairId: "p1"}, t0.Add(time.Millisecond))
	b = newTestMgmt(t, MgmtConfig{Epoch: 1, Backup: true, MasterAddr: "m:1"})
	if err := b.Restore(m.Snapshot()); err != nil {
		t.Fatal(err)
	}
	b.SetMastership(true, 2, "", took)
	if planned {
		b.PlannedTakeover()
	}
	b.SessionUp(1, "10.0.0.1:1111", took)
	b.SessionUp(2, "10.0.0.2:2222", took)
	b.Receive(1, msgID, ctrlID("p1", "c-1"), took)
	b.Receive(2, msgID, dataID("p1", "d-1"), took)
	b.Receive(2, msgReady, &hellopicsv1.Ready{Role: roleDataPB, PairId: "p1"}, took)
	b.Receive(1, msgReady, &hellopicsv1.Ready{Role: roleCtrlPB, PairId: "p1"}, took)
	return b, b.Pairs()[0].GetCounters().GetLastSeq()
}

// TestMgmtOutageCounted: a backup that takes over counts the hellos due
// between the old master's last returned hello (synced) and its own
// first one as missed, and says how long the cycle was silent.
func TestMgmtOutageCounted(t *testing.T) {
	took := t0.Add(time.Second) // the old master died; b takes over
	b, seq := takeOver(t, took, false)
	back := t0.Add(time.Second + 11*time.Millisecond) // 1.01 s after the last one came back
	outs := b.Receive(2, msgHello, &hellopicsv1.Hello{Seq: seq, Direction: dirCD, Epoch: 2, PairId: "p1"}, back)
	var ev *Event
	for _, o := range outs {
		if e, ok := o.(Event); ok && e.Kind == EventOutage {
			ev = &e
		}
	}
	if ev == nil || ev.Outage != time.Second+10*time.Millisecond || ev.Level() < slog.LevelWarn {
		t.Fatalf("outage event %+v in %s", ev, summary(outs))
	}
	// 10 intervals of 100 ms: the one that came back, 9 missed.
	if c := b.Pairs()[0].GetCounters(); c.GetMissed() != 9 || c.GetReceived() != 2 {
		t.Fatalf("counters after the outage: %v", c)
	}
	// Only the first hello back counts it.
	b.Tick(back.Add(testInterval))
	seq = b.Pairs()[0].GetCounters().GetLastSeq()
	if got := summary(b.Receive(1, msgHello, &hellopicsv1.Hello{Seq: seq, Direction: dirDC, Epoch: 2, PairId: "p1"}, back.Add(testInterval+time.Millisecond))); strings.Contains(got, "outage") {
		t.Fatalf("a second outage: %s", got)
	}
}

// TestMgmtPlannedTakeoverNoOutage: a backup handed mastership by a
// graceful switchover counts no outage, however long the pause (the old
// master stopped its cycles on purpose); the cycle's counters continue.
func TestMgmtPlannedTakeoverNoOutage(t *testing.T) {
	took := t0.Add(time.Second) // ten intervals later
	b, seq := takeOver(t, took, true)
	back := took.Add(11 * time.Millisecond)
	if got := summary(b.Receive(2, msgHello, &hellopicsv1.Hello{Seq: seq, Direction: dirCD, Epoch: 2, PairId: "p1"}, back)); strings.Contains(got, "outage") {
		t.Fatalf("an outage after a planned takeover: %s", got)
	}
	if c := b.Pairs()[0].GetCounters(); c.GetMissed() != 0 || c.GetReceived() != 2 {
		t.Fatalf("counters after the planned takeover: %v; want 0 missed, 2 received", c)
	}
}

// TestMgmtEpochAheadNamesTheEpoch: refusing a component that has seen a
// higher epoch tells the shell which, for its election.
func TestMgmtEpochAheadNamesTheEpoch(t *testing.T) {
	m := newTestMgmt(t, MgmtConfig{Epoch: 1})
	m.SessionUp(1, "c:1", t0)
	id := ctrlID("p1", "c-1")
	id.Epoch = 5
	var ev *Event
	for _, o := range m.Receive(1, msgID, id, t0) {
		if e, ok := o.(Event); ok && e.Kind == EventRejected {
			ev = &e
		}
	}
	if ev == nil || ev.Refused != RefusedEpochAhead || ev.PeerEpoch != 5 {
		t.Fatalf("rejection %+v", ev)
	}
}
