package handshake_test

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hellopics/hellopics/pkg/handshake"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// This example plays the three shells in one loop: it wires one Mgmt, one
// Ctrl and one Data machine together, delivers every Send to the machine
// at the other end of its connection, and prints what travels. Real
// shells do the same over pconn, one machine per process.
func Example() {
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	m, _ := handshake.NewMgmt(handshake.MgmtConfig{HelloInterval: time.Second, Epoch: 1})
	c, _ := handshake.NewCtrl(handshake.CtrlConfig{PairID: "pic0", Instance: "ctrl-1", DataAddr: "ctrl:7000"})
	d, _ := handshake.NewData(handshake.DataConfig{PairID: "pic0", Instance: "data-1"})

	// Each connection has one SessionID at each end.
	type end struct {
		who string
		id  handshake.SessionID
	}
	peerOf := map[end]end{
		{"ctrl", 1}: {"mgmt", 2}, {"mgmt", 2}: {"ctrl", 1}, // ctrl <-> mgmt
		{"data", 3}: {"mgmt", 4}, {"mgmt", 4}: {"data", 3}, // data <-> mgmt
		{"data", 5}: {"ctrl", 6}, {"ctrl", 6}: {"data", 5}, // data <-> ctrl, once dialled
	}
	receive := map[string]func(handshake.SessionID, hellopicsv1.MsgType, proto.Message) []handshake.Output{
		"mgmt": func(id handshake.SessionID, t hellopicsv1.MsgType, msg proto.Message) []handshake.Output {
			return m.Receive(id, t, msg, now)
		},
		"ctrl": c.Receive,
		"data": func(id handshake.SessionID, t hellopicsv1.MsgType, msg proto.Message) []handshake.Output {
			return d.Receive(id, t, msg, now)
		},
	}

	var handle func(who string, outs []handshake.Output)
	handle = func(who string, outs []handshake.Output) {
		for _, o := range outs {
			switch o := o.(type) {
			case handshake.Send:
				to := peerOf[end{who, o.Session}]
				fmt.Printf("%s -> %s: %s\n", who, to.who, o.Type)
				handle(to.who, receive[to.who](to.id, o.Type, o.Msg))
			case handshake.Dial:
				fmt.Printf("data dials %s\n", o.Addr)
				handle("ctrl", c.DataUp(6, "data:40000"))
				handle("data", d.CtrlUp(5, now))
			case handshake.Event:
				if o.Kind == handshake.EventCycleStarted || o.Kind == handshake.EventHelloReturned {
					fmt.Printf("%s: %s\n", who, o.Kind)
				}
			}
		}
	}

	handle("mgmt", m.SessionUp(2, "ctrl:50000", now))
	handle("ctrl", c.MgmtUp(1))
	handle("mgmt", m.SessionUp(4, "data:50001", now))
	handle("data", d.MgmtUp(3, now))

	// The shell calls Tick when NextDeadline is reached.
	if at, ok := m.NextDeadline(); ok {
		now = at
		handle("mgmt", m.Tick(now))
	}
	c0 := m.Pairs()[0].GetCounters()
	fmt.Printf("sent %d received %d missed %d\n", c0.GetSent(), c0.GetReceived(), c0.GetMissed())

	// Output:
	// ctrl -> mgmt: MSG_TYPE_ID
	// data -> mgmt: MSG_TYPE_ID
	// mgmt -> ctrl: MSG_TYPE_PEER
	// data -> mgmt: MSG_TYPE_GET_PEER
	// mgmt -> data: MSG_TYPE_PEER
	// data dials ctrl:7000
	// data -> ctrl: MSG_TYPE_ID
	// data -> ctrl: MSG_TYPE_READY
	// ctrl -> mgmt: MSG_TYPE_READY
	// data -> mgmt: MSG_TYPE_READY
	// mgmt: cycle_started
	// mgmt -> ctrl: MSG_TYPE_HELLO
	// ctrl -> data: MSG_TYPE_HELLO
	// data -> mgmt: MSG_TYPE_HELLO
	// mgmt: hello_returned
	// mgmt -> data: MSG_TYPE_HELLO
	// data -> ctrl: MSG_TYPE_HELLO
	// ctrl -> mgmt: MSG_TYPE_HELLO
	// mgmt: hello_returned
	// sent 2 received 2 missed 0
}
