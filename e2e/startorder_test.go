package e2e

import (
	"strings"
	"testing"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// skipShort skips end-to-end tests under -short.
func skipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test with real processes; skipped under -short")
	}
}

// TestStartOrders starts mgmt, ctrl and data in each of the six orders,
// each only once the one before has logged that it started, and checks
// that the pair reaches a running Hello cycle whose hellos come back.
func TestStartOrders(t *testing.T) {
	skipShort(t)
	t.Parallel()
	orders := [][3]string{
		{"mgmt", "ctrl", "data"},
		{"mgmt", "data", "ctrl"},
		{"ctrl", "mgmt", "data"},
		{"ctrl", "data", "mgmt"},
		{"data", "mgmt", "ctrl"},
		{"data", "ctrl", "mgmt"},
	}
	for _, order := range orders {
		t.Run(strings.Join(order[:], "-"), func(t *testing.T) {
			t.Parallel()
			c := newCluster(t, fast)
			for _, role := range order {
				c.Start(role, "pic0")
			}
			m := c.Mgmt()
			c.WaitRunning(0, "pic0", 5)
			k := c.Counters("pic0")
			if !k.running || k.started != 1 || k.stopped != 0 || k.received < 5 {
				t.Errorf("after start order %v: %v; want a running cycle, started once, never stopped, 5 received\n%s", order, k, c.Tails())
			}
			if k.source == "GetStatus" && (k.ctrlState != hellopicsv1.ComponentState_COMPONENT_STATE_READY ||
				k.dataState != hellopicsv1.ComponentState_COMPONENT_STATE_READY) {
				t.Errorf("GetStatus: %v; want ctrl and data READY", k)
			}
			checkConsistent(t, "pic0", k)
			// The cycle keeps running: received keeps growing. (A
			// loaded machine may delay a hello past its 50 ms: it then
			// counts as missed, and as out of order when it comes back,
			// which checkConsistent allows.)
			k2 := c.WaitReceivedGrowing("pic0", 5)
			checkConsistent(t, "pic0", k2)
			if k2.missed > 0 {
				t.Logf("late hellos on a loaded machine: %v", k2)
			}
			// Both components of the pair registered and reported ready.
			for _, role := range []string{"ctrl", "data"} {
				if n := m.Count(0, and(step("ready", "pic0"), field("peer", role))); n == 0 {
					t.Errorf("mgmt never logged %s of pic0 ready\n%s", role, c.Tails())
				}
			}
		})
	}
}
