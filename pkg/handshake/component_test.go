package handshake

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// Sessions in these tests: 1 is mgmt, 2 and 3 are ctrl<->data.

func newTestCtrl(t *testing.T) *Ctrl {
	t.Helper()
	c, err := NewCtrl(CtrlConfig{PairID: "p1", Instance: "c-1", DataAddr: "c:7000", Version: "v"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func helloMsg(seq uint64, dir hellopicsv1.Direction, epoch uint64) *hellopicsv1.Hello {
	return &hellopicsv1.Hello{Seq: seq, Direction: dir, Epoch: epoch, PairId: "p1"}
}

func TestCtrl(t *testing.T) {
	c := newTestCtrl(t)
	outs := c.MgmtUp(1)
	if got := summary(outs); got != "send 1 ID | up" {
		t.Fatalf("mgmt up: %s", got)
	}
	want := &hellopicsv1.Identify{Role: roleCtrlPB, PairId: "p1", Instance: "c-1", DataAddr: "c:7000", Version: "v"}
	if id := sentMsg[*hellopicsv1.Identify](t, outs, msgID); !proto.Equal(id, want) {
		t.Fatalf("identify %v", id)
	}
	steps := []struct {
		name string
		do   func() []Output
		want string
	}{
		{"hello before data", func() []Output { return c.Receive(1, msgHello, helloMsg(1, dirCD, 2)) }, " | dropped"},
		{"data connects", func() []Output { return c.DataUp(2, "d:1") }, " | up"},
		{"ready before id", func() []Output { return c.Receive(2, msgReady, &hellopicsv1.Ready{Role: roleDataPB, PairId: "p1"}) }, " | ignored"},
		{"hello before id", func() []Output { return c.Receive(1, msgHello, helloMsg(2, dirCD, 2)) }, " | dropped"},
		{"data identifies", func() []Output { return c.Receive(2, msgID, dataID("p1", "d-1")) }, " | identified"},
		{"ready for ctrl", func() []Output { return c.Receive(2, msgReady, &hellopicsv1.Ready{Role: roleCtrlPB, PairId: "p1"}) }, " | ignored"},
		{"data ready", func() []Output { return c.Receive(2, msgReady, &hellopicsv1.Ready{Role: roleDataPB, PairId: "p1"}) }, "send 1 READY | ready"},
		{"hello to data", func() []Output { return c.Receive(1, msgHello, helloMsg(3, dirCD, 2)) }, "send 2 HELLO | hello_forwarded"},
		{"hello wrong way from mgmt", func() []Output { return c.Receive(1, msgHello, helloMsg(4, dirDC, 2)) }, " | ignored"},
		{"hello from data to mgmt", func() []Output { return c.Receive(2, msgHello, helloMsg(4, dirDC, 2)) }, "send 1 HELLO | hello_forwarded"},
		{"hello wrong way from data", func() []Output { return c.Receive(2, msgHello, helloMsg(5, dirCD, 2)) }, " | ignored"},
		{"stale hello from mgmt", func() []Output { return c.Receive(1, msgHello, helloMsg(6, dirCD, 1)) }, " | stale_epoch"},
		{"stale hello from data", func() []Output { return c.Receive(2, msgHello, helloMsg(6, dirDC, 1)) }, " | stale_epoch"},
		{"stale peer", func() []Output {
			return c.Receive(1, msgPeer, &hellopicsv1.Peer{Role: roleDataPB, PairId: "p1", Epoch: 1})
		}, " | stale_epoch"},
		{"peer nudge", func() []Output {
			return c.Receive(1, msgPeer, &hellopicsv1.Peer{Role: roleDataPB, PairId: "p1", Addr: "d:1", Epoch: 2})
		}, "send 1 READY | peer"},
		{"peer for another pair", func() []Output {
			return c.Receive(1, msgPeer, &hellopicsv1.Peer{Role: roleDataPB, PairId: "p2", Epoch: 2})
		}, " | ignored"},
		{"wrong pair data", func() []Output { c.DataUp(3, "x:1"); return c.Receive(3, msgID, dataID("p2", "d-9")) }, "send 3 REJECT; close 3 | rejected"},
		{"ctrl as data", func() []Output { c.DataUp(3, "x:1"); return c.Receive(3, msgID, ctrlID("p1", "c-9")) }, "send 3 REJECT; close 3 | rejected"},
		{"unknown session", func() []Output { return c.Receive(9, msgHello, helloMsg(7, dirCD, 2)) }, " | ignored"},
		{"malformed", func() []Output { return c.Receive(1, msgHello, &hellopicsv1.Ready{}) }, " | ignored"},
		{"unexpected from mgmt", func() []Output { return c.Receive(1, msgGetPeer, &hellopicsv1.GetPeer{}) }, " | ignored"},
		{"unexpected from data", func() []Output { return c.Receive(2, msgGetPeer, &hellopicsv1.GetPeer{}) }, " | ignored"},
		{"reject from mgmt", func() []Output { return c.Receive(1, msgReject, &hellopicsv1.Reject{Reason: "x"}) }, " | rejected"},
		{"reject from data", func() []Output { return c.Receive(2, msgReject, &hellopicsv1.Reject{Reason: "x"}) }, " | rejected"},
		{"mgmt down", func() []Output { return c.MgmtDown(1, "eof") }, " | down"},
		{"mgmt down again", func() []Output { return c.MgmtDown(1, "eof") }, " | "},
		{"hello from data without mgmt", func() []Output { return c.Receive(2, msgHello, helloMsg(8, dirDC, 2)) }, " | dropped"},
		{"data ready without mgmt", func() []Output { return c.Receive(2, msgReady, &hellopicsv1.Ready{Role: roleDataPB, PairId: "p1"}) }, " | ready"},
		{"mgmt back", func() []Output { return c.MgmtUp(4) }, "send 4 ID; send 4 READY | up"},
		{"another data refused while the link is live", func() []Output { c.DataUp(5, "d:2"); return c.Receive(5, msgID, dataID("p1", "d-2")) }, "send 5 REJECT; close 5 | rejected"},
		{"same data instance from another host refused", func() []Output { c.DataUp(5, "e:2"); return c.Receive(5, msgID, dataID("p1", "d-1")) }, "send 5 REJECT; close 5 | rejected"},
		{"same data instance from its host replaces old", func() []Output { c.DataUp(5, "d:2"); return c.Receive(5, msgID, dataID("p1", "d-1")) }, "close 2 | identified"},
		{"old data's hello", func() []Output { return c.Receive(2, msgHello, helloMsg(9, dirDC, 2)) }, " | ignored"},
		{"old data down", func() []Output { return c.DataDown(2, "eof") }, " | "},
		{"redirect stale", func() []Output { return c.Receive(4, msgRedir, &hellopicsv1.Redirect{MasterAddr: "m2", Epoch: 1}) }, " | stale_epoch"},
		{"redirect", func() []Output { return c.Receive(4, msgRedir, &hellopicsv1.Redirect{MasterAddr: "m2", Epoch: 3}) }, "close 4; switch m2@3 | redirect"},
		{"mgmt session given up", func() []Output { return c.Receive(4, msgHello, helloMsg(9, dirCD, 3)) }, " | ignored"},
		{"data down", func() []Output { return c.DataDown(5, "eof") }, " | down"},
	}
	for _, s := range steps {
		if got := summary(s.do()); got != s.want {
			t.Fatalf("%s: got %q, want %q", s.name, got, s.want)
		}
	}
	if c.Ready() || c.Epoch() != 3 {
		t.Fatalf("ready=%v epoch=%d", c.Ready(), c.Epoch())
	}
	// The data's Identify carries the epoch it has seen, but ctrl's fence
	// is mgmt's to raise: data ahead of ctrl is held, and told to retry
	// when the identify timer expires first; data at or below ctrl's
	// epoch is accepted, and its Ready's epoch raises nothing.
	c.DataUp(6, "d:3")
	if got := summary(c.Receive(6, msgID, &hellopicsv1.Identify{Role: roleDataPB, PairId: "p1", Epoch: 7})); got != " | held" {
		t.Fatalf("data ahead of ctrl: %s", got)
	}
	outs = c.IdentifyExpired(6)
	if got := summary(outs); got != "send 6 REJECT; close 6 | rejected" {
		t.Fatalf("held data's identify timer: %s", got)
	}
	if r := sentMsg[*hellopicsv1.Reject](t, outs, msgReject); !strings.Contains(r.GetReason(), "retry") {
		t.Fatalf("reject reason %q", r.GetReason())
	}
	c.DataUp(7, "d:4")
	c.Receive(7, msgID, &hellopicsv1.Identify{Role: roleDataPB, PairId: "p1", Epoch: 3})
	c.Receive(7, msgReady, &hellopicsv1.Ready{Role: roleDataPB, PairId: "p1", Epoch: 8})
	if !c.Ready() || c.Epoch() != 3 {
		t.Fatalf("ready=%v epoch=%d", c.Ready(), c.Epoch())
	}
}

func newTestData(t *testing.T) *Data {
	t.Helper()
	d, err := NewData(DataConfig{PairID: "p1", Instance: "d-1", Version: "v", RetryDelay: testRetryDelay})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func peer(addr string, epoch uint64) *hellopicsv1.Peer {
	return &hellopicsv1.Peer{Role: roleCtrlPB, PairId: "p1", Addr: addr, Epoch: epoch}
}

func TestData(t *testing.T) {
	d := newTestData(t)
	now := t0
	at := func(dt time.Duration) time.Time { now = now.Add(dt); return now }
	steps := []struct {
		name string
		do   func() []Output
		want string
	}{
		{"mgmt up", func() []Output { return d.MgmtUp(1, now) }, "send 1 ID; send 1 GET_PEER | up"},
		{"bad peer", func() []Output {
			return d.Receive(1, msgPeer, &hellopicsv1.Peer{Role: roleDataPB, PairId: "p1", Addr: "x"}, now)
		}, " | ignored"},
		{"peer", func() []Output { return d.Receive(1, msgPeer, peer("c:1", 2), now) }, "dial c:1 | peer"},
		{"same peer while dialling", func() []Output { return d.Receive(1, msgPeer, peer("c:1", 2), now) }, " | "},
		{"dial fails", func() []Output { return d.DialFailed("refused", now) }, " | down"},
		{"dial fails again", func() []Output { return d.DialFailed("refused", now) }, " | "},
		{"early tick", func() []Output { return d.Tick(at(testRetryDelay - 1)) }, " | "},
		{"retry", func() []Output { return d.Tick(at(1)) }, "send 1 GET_PEER | "},
		{"tick without retry", func() []Output { return d.Tick(at(time.Hour)) }, " | "},
		{"ctrl moved", func() []Output { return d.Receive(1, msgPeer, peer("c:2", 2), now) }, "dial c:2 | peer"},
		{"moved again while dialling", func() []Output { return d.Receive(1, msgPeer, peer("c:3", 2), now) }, " | "},
		{"stale dial completes", func() []Output { return d.CtrlUp(2, now) }, "close 2; dial c:3 | peer"},
		{"unasked connection", func() []Output { d.CtrlUp(3, now); return d.CtrlUp(4, now) }, "close 4 | "},
		{"hello to ctrl", func() []Output { return d.Receive(1, msgHello, helloMsg(1, dirDC, 2), now) }, "send 3 HELLO | hello_forwarded"},
		{"hello from ctrl", func() []Output { return d.Receive(3, msgHello, helloMsg(2, dirCD, 2), now) }, "send 1 HELLO | hello_forwarded"},
		{"hello wrong way from mgmt", func() []Output { return d.Receive(1, msgHello, helloMsg(3, dirCD, 2), now) }, " | ignored"},
		{"hello wrong way from ctrl", func() []Output { return d.Receive(3, msgHello, helloMsg(3, dirDC, 2), now) }, " | ignored"},
		{"stale hello from mgmt", func() []Output { return d.Receive(1, msgHello, helloMsg(4, dirDC, 1), now) }, " | stale_epoch"},
		{"stale hello from ctrl", func() []Output { return d.Receive(3, msgHello, helloMsg(4, dirCD, 1), now) }, " | stale_epoch"},
		{"stale peer", func() []Output { return d.Receive(1, msgPeer, peer("c:9", 1), now) }, " | stale_epoch"},
		{"peer nudge", func() []Output { return d.Receive(1, msgPeer, peer("c:3", 2), now) }, "send 1 READY | peer"},
		{"unexpected from mgmt", func() []Output { return d.Receive(1, msgReady, &hellopicsv1.Ready{}, now) }, " | ignored"},
		{"unexpected from ctrl", func() []Output { return d.Receive(3, msgReady, &hellopicsv1.Ready{}, now) }, " | ignored"},
		{"reject from ctrl", func() []Output { return d.Receive(3, msgReject, &hellopicsv1.Reject{}, now) }, " | rejected"},
		{"reject from mgmt", func() []Output { return d.Receive(1, msgReject, &hellopicsv1.Reject{}, now) }, " | rejected"},
		{"unknown session", func() []Output { return d.Receive(8, msgHello, helloMsg(5, dirCD, 2), now) }, " | ignored"},
		{"malformed", func() []Output { return d.Receive(1, msgPeer, nil, now) }, " | ignored"},
		{"mgmt down", func() []Output { return d.MgmtDown(1, "eof", now) }, " | down"},
		{"mgmt down again", func() []Output { return d.MgmtDown(1, "eof", now) }, " | "},
		{"hello from ctrl without mgmt", func() []Output { return d.Receive(3, msgHello, helloMsg(6, dirCD, 2), now) }, " | dropped"},
		{"mgmt back, ready", func() []Output { return d.MgmtUp(5, now) }, "send 5 ID; send 5 READY | up"},
		{"young ctrl dies", func() []Output { return d.CtrlDown(3, "eof", at(time.Millisecond)) }, " | down"},
		{"hello to absent ctrl", func() []Output { return d.Receive(5, msgHello, helloMsg(7, dirDC, 2), now) }, " | dropped"},
		{"ctrl down again", func() []Output { return d.CtrlDown(3, "eof", now) }, " | "},
		{"delayed retry", func() []Output { return d.Tick(at(testRetryDelay)) }, "send 5 GET_PEER | "},
		{"peer", func() []Output { return d.Receive(5, msgPeer, peer("c:3", 2), now) }, "dial c:3 | peer"},
		{"connected", func() []Output { return d.CtrlUp(6, now) }, "send 6 ID; send 6 READY; send 5 READY | ready"},
		{"old ctrl dies", func() []Output { return d.CtrlDown(6, "eof", at(time.Hour)) }, "send 5 GET_PEER | down"},
		{"peer", func() []Output { return d.Receive(5, msgPeer, peer("c:3", 2), now) }, "dial c:3 | peer"},
		{"connected", func() []Output { return d.CtrlUp(7, now) }, "send 7 ID; send 7 READY; send 5 READY | ready"},
		{"ctrl moves while connected", func() []Output { return d.Receive(5, msgPeer, peer("c:4", 2), now) }, "close 7; dial c:4 | peer"},
		{"dial fails", func() []Output { return d.DialFailed("refused", now) }, " | down"},
		{"redirect", func() []Output { return d.Receive(5, msgRedir, &hellopicsv1.Redirect{MasterAddr: "m2", Epoch: 4}, now) }, "close 5; switch m2@4 | redirect"},
		{"retry without mgmt dials", func() []Output { return d.Tick(at(testRetryDelay)) }, "dial c:4 | peer"},
		{"dial fails", func() []Output { return d.DialFailed("refused", now) }, " | down"},
		{"connected without mgmt", func() []Output { d.dial(new(outputs), "c:4"); return d.CtrlUp(8, now) }, "send 8 ID; send 8 READY | ready"},
		{"ctrl dies without mgmt", func() []Output { return d.CtrlDown(8, "eof", at(time.Hour)) }, "dial c:4 | down peer"},
		{"and is not back", func() []Output { return d.DialFailed("refused", now) }, " | down"},
		{"new master", func() []Output { return d.MgmtUp(9, now) }, "send 9 ID; send 9 GET_PEER | up"},
		{"redirect without master", func() []Output { return d.Receive(9, msgRedir, &hellopicsv1.Redirect{Epoch: 4}, now) }, "close 9 | redirect"},
	}
	for _, s := range steps {
		if got := summary(s.do()); got != s.want {
			t.Fatalf("%s: got %q, want %q", s.name, got, s.want)
		}
	}
	if d.Ready() || d.Epoch() != 4 || d.CtrlAddr() != "c:4" {
		t.Fatalf("ready=%v epoch=%d addr=%s", d.Ready(), d.Epoch(), d.CtrlAddr())
	}
	if _, ok := d.NextDeadline(); ok {
		t.Fatal("retry pending after MgmtUp")
	}
}
