package e2e

import (
	"strings"
	"testing"
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
			pos := c.WaitRunning(0, "pic0", 5)
			k := logCounters(m, 0, "pic0")
			if !k.running || k.started != 1 || k.stopped != 0 {
				t.Errorf("after start order %v: %v; want one cycle_started, no cycle_stopped\n%s", order, k, c.Tails())
			}
			// The cycle keeps running: received keeps growing.
			c.WaitHellos(pos, "pic0", 5)
			if k2 := logCounters(m, 0, "pic0"); k2.received <= k.received {
				t.Errorf("received did not grow: before %v, after %v", k, k2)
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
