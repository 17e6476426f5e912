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

// tally is a replicated State: a running total; an update is one byte
// to add.
type tally struct{ total int }

func (t *tally) Apply(u []byte) error {
	if len(u) != 1 {
		return fmt.Errorf("an update is one byte, not %d", len(u))
	}
	t.total += int(u[0])
	return nil
}
func (t *tally) Snapshot() ([]byte, error) { return []byte{byte(t.total)}, nil }
func (t *tally) Restore(b []byte) error {
	t.total = 0
	if len(b) == 1 {
		t.total = int(b[0])
	}
	return nil
}

// The master mgmt changes its application's replicated state with
// Node.Replicate: the update is applied at once and streamed to the
// backups; the callback runs once every live backup holds it (here a
// single instance: at once, with no backup to count).
func ExampleNode_Replicate() {
	state := &tally{}
	done := make(chan string, 1)
	var node *appliance.Node
	app := &appliance.App{
		State:   state,
		OnStart: func(n *appliance.Node) { node = n },
		OnMastership: func(master bool, _ uint64) {
			if !master {
				return
			}
			err := node.Replicate([]byte{40}, func(c appliance.Commit) {
				done <- fmt.Sprintf("total %d, acknowledged by %d backups, error %v", state.total, c.Acked, c.Err)
			})
			if err != nil {
				done <- err.Error()
			}
		},
	}
	mc := mgmt.DefaultConfig()
	mc.ListenAddr, mc.OperatorAddr, mc.App = "127.0.0.1:0", "", app
	m, err := mgmt.New(mc)
	if err != nil {
		panic(err)
	}
	defer m.Close()
	fmt.Println(<-done)
	// Output: total 40, acknowledged by 0 backups, error <nil>
}
