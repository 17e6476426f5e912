package appliance_test

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/hellopics/hellopics/ctrl"
	"github.com/hellopics/hellopics/data"
	"github.com/hellopics/hellopics/mgmt"
	"github.com/hellopics/hellopics/pkg/appliance"
)

// An application in ctrl asks the data component of its pair to
// upper-case a string, once data is ready: a Call with a deadline,
// answered by a HandleCall handler. mgmt, ctrl and data run in this
// process, on loopback.
func Example() {
	// data: answers StringValue calls.
	dataMux := appliance.NewMux()
	appliance.HandleCall(dataMux, func(c *appliance.Context, m *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return wrapperspb.String(strings.ToUpper(m.GetValue())), nil
	})

	// ctrl: calls data as soon as it is ready.
	done := make(chan string, 1)
	var node *appliance.Node
	ctrlApp := &appliance.App{
		OnStart: func(n *appliance.Node) { node = n },
		OnPeerReady: func(peer appliance.Peer, _ uint64) {
			err := node.Call(appliance.Target{Role: appliance.Data}, wrapperspb.String("hello from ctrl"), time.Second,
				func(reply proto.Message, err error) {
					if err != nil {
						done <- err.Error()
						return
					}
					done <- peer.String() + " answered " + reply.(*wrapperspb.StringValue).GetValue()
				})
			if err != nil {
				done <- err.Error()
			}
		},
	}

	mc := mgmt.DefaultConfig()
	mc.ListenAddr, mc.OperatorAddr = "127.0.0.1:0", ""
	m, err := mgmt.New(mc)
	if err != nil {
		panic(err)
	}
	defer m.Close()
	cc := ctrl.DefaultConfig()
	cc.MgmtAddrs, cc.ListenAddr, cc.App = []string{m.Addr().String()}, "127.0.0.1:0", ctrlApp
	c, err := ctrl.New(cc)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	dc := data.DefaultConfig()
	dc.MgmtAddrs, dc.App = []string{m.Addr().String()}, &appliance.App{Mux: dataMux}
	d, err := data.New(dc)
	if err != nil {
		panic(err)
	}
	defer d.Close()

	fmt.Println(<-done)
	// Output: data/pic0 answered HELLO FROM CTRL
}
