package tier_test

import (
	"fmt"
	"time"

	"github.com/hellopics/hellopics/ctrl"
	"github.com/hellopics/hellopics/data"
	"github.com/hellopics/hellopics/mgmt"
)

// Example runs the three tiers of hellopics in one process, on loopback,
// and waits for the Hello cycle: the daemons are built from tier, pconn
// and the handshake machines, and a new appliance can be assembled the
// same way. In production each runs in its own process (hellopics mgmt,
// ctrl, data).
func Example() {
	mc := mgmt.DefaultConfig()
	mc.ListenAddr = "127.0.0.1:0"
	mc.OperatorAddr = ""
	mc.HelloInterval = 20 * time.Millisecond
	m, err := mgmt.New(mc)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()

	cc := ctrl.DefaultConfig()
	cc.MgmtAddrs = []string{m.Addr().String()}
	cc.ListenAddr = "127.0.0.1:0"
	c, err := ctrl.New(cc)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	dc := data.DefaultConfig()
	dc.MgmtAddrs = []string{m.Addr().String()}
	d, err := data.New(dc)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		pairs := m.Pairs()
		if len(pairs) == 1 && pairs[0].GetCycleRunning() && pairs[0].GetCounters().GetReceived() >= 3 {
			fmt.Printf("pair %s: cycle running, hellos coming back\n", pairs[0].GetPairId())
			return
		}
	}
	fmt.Println("no Hello cycle within 20s")
	// Output: pair pic0: cycle running, hellos coming back
}
