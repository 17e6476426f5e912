package handshake

import (
	"testing"
	"time"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// TestNewMasterStartsAboveForwardedSeq: a master that took over without
// the old master's state (its next number is 1) learns from ctrl and data
// the highest number they forwarded and starts above it.
func TestNewMasterStartsAboveForwardedSeq(t *testing.T) {
	m, err := NewMgmt(MgmtConfig{Epoch: 3})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	m.SessionUp(1, "c", now)
	m.SessionUp(2, "d", now)
	m.Receive(1, hellopicsv1.MsgType_MSG_TYPE_ID, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_CTRL, PairId: "p", Instance: "c1", DataAddr: "x:1", Epoch: 2, LastSeq: 500}, now)
	m.Receive(2, hellopicsv1.MsgType_MSG_TYPE_ID, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: "p", Instance: "d1", Epoch: 2, LastSeq: 480}, now)
	m.Receive(2, hellopicsv1.MsgType_MSG_TYPE_READY, &hellopicsv1.Ready{Role: hellopicsv1.Role_ROLE_DATA, PairId: "p", Epoch: 3}, now)
	out := m.Receive(1, hellopicsv1.MsgType_MSG_TYPE_READY, &hellopicsv1.Ready{Role: hellopicsv1.Role_ROLE_CTRL, PairId: "p", Epoch: 3}, now)
	var first uint64
	for _, o := range out {
		if s, ok := o.(Send); ok && s.Type == hellopicsv1.MsgType_MSG_TYPE_HELLO {
			first = s.Msg.(*hellopicsv1.Hello).GetSeq()
		}
	}
	if first != 501 {
		t.Fatalf("first hello of the new master is %d, want 501 (above the 500 ctrl forwarded)", first)
	}
}

// TestComponentsReportForwardedSeq: ctrl and data put the highest hello
// number they forwarded in their Identify.
func TestComponentsReportForwardedSeq(t *testing.T) {
	c, _ := NewCtrl(CtrlConfig{PairID: "p", Instance: "c1", DataAddr: "x:1"})
	c.MgmtUp(1)
	c.DataUp(2, "d")
	c.Receive(2, hellopicsv1.MsgType_MSG_TYPE_ID, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: "p", Instance: "d1"})
	c.Receive(1, hellopicsv1.MsgType_MSG_TYPE_HELLO, &hellopicsv1.Hello{Seq: 41, Epoch: 1, PairId: "p", Direction: hellopicsv1.Direction_DIRECTION_MGMT_CTRL_DATA})
	c.Receive(2, hellopicsv1.MsgType_MSG_TYPE_HELLO, &hellopicsv1.Hello{Seq: 42, Epoch: 1, PairId: "p", Direction: hellopicsv1.Direction_DIRECTION_MGMT_DATA_CTRL})
	if got := c.identify().GetLastSeq(); got != 42 {
		t.Fatalf("ctrl reports last_seq %d, want 42", got)
	}
}
