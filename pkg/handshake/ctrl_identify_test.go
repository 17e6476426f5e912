package handshake

import (
	"testing"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

func TestCtrlIdentifyExpired(t *testing.T) {
	c, err := NewCtrl(CtrlConfig{PairID: "pic0", Instance: "c1", DataAddr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	c.DataUp(7, "127.0.0.1:9")
	c.DataUp(8, "127.0.0.1:10")
	// Session 8 identifies; 7 never does.
	c.Receive(8, hellopicsv1.MsgType_MSG_TYPE_ID, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: "pic0", Instance: "d1"})

	out := c.IdentifyExpired(7)
	var rejected, closed bool
	for _, o := range out {
		switch o := o.(type) {
		case Send:
			rejected = rejected || (o.Session == 7 && o.Type == hellopicsv1.MsgType_MSG_TYPE_REJECT)
		case Close:
			closed = closed || o.Session == 7
		}
	}
	if !rejected || !closed {
		t.Fatalf("silent session not rejected and closed: %v", out)
	}
	if out := c.IdentifyExpired(8); len(out) != 0 {
		t.Fatalf("identified session touched: %v", out)
	}
	if out := c.IdentifyExpired(7); len(out) != 0 {
		t.Fatalf("expiry of a forgotten session did something: %v", out)
	}
}
