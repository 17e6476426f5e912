package appliance_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/hellopics/hellopics/mgmt"
	"github.com/hellopics/hellopics/pkg/appliance"
	"github.com/hellopics/hellopics/pkg/election"
)

// TestAppMessagesBehindHeldIdentify: a component identifies to an mgmt
// instance that knows no live master yet (its peer is silent), which
// holds the Identify; the message the component's application sends
// from OnMasterChanged, on the same link, waits with it and reaches
// mgmt's application once mgmt is master, not dropped as unidentified.
func TestAppMessagesBehindHeldIdentify(t *testing.T) {
	got := make(chan string, 4)
	mux := appliance.NewMux()
	appliance.Handle(mux, func(c *appliance.Context, m *wrapperspb.StringValue) error {
		got <- c.From.String() + ":" + m.GetValue()
		return nil
	})
	mc := mgmt.DefaultConfig()
	mc.ListenAddr, mc.OperatorAddr, mc.HAListenAddr = "127.0.0.1:0", "", freeAddr(t)
	mc.ID, mc.Priority, mc.App = "a", 100, &appliance.App{Mux: mux}
	// b never answers: a waits a dead interval (about a second) before
	// it takes mastership, holding what identifies meanwhile.
	mc.Peers = []election.Peer{{ID: "b", Addr: freeAddr(t)}}
	mc.HeartbeatInterval, mc.DeadMisses = 200*time.Millisecond, 5
	m, err := mgmt.New(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var node *appliance.Node
	app := &appliance.App{
		OnStart: func(n *appliance.Node) { node = n },
		OnMasterChanged: func(string, uint64) {
			if err := node.Send(appliance.ToMgmt, wrapperspb.String("hello")); err != nil {
				t.Errorf("Send from OnMasterChanged: %v", err)
			}
		},
	}
	startCtrl(t, m.Addr().String(), app)
	select {
	case g := <-got:
		if g != "ctrl/p1:hello" {
			t.Fatalf("mgmt's application got %q", g)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the message sent behind the held Identify never reached mgmt's application")
	}
}
