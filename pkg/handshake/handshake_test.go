package handshake

import (
	"strings"
	"testing"
)

func TestStartOrders(t *testing.T) {
	for _, order := range permutations([]string{"m", "c1", "d1"}) {
		t.Run(strings.Join(order, "-"), func(t *testing.T) {
			w := newNet(t)
			w.addTrio()
			for _, name := range order {
				w.start(name)
				w.advance(testInterval / 3)
			}
			w.expectHealthy("m", "p1", 5)
			c := w.counters("m", "p1")
			if c.GetMissed() != 0 || c.GetOutOfOrder() != 0 || c.GetSent() != c.GetReceived() {
				t.Fatalf("counters %v\n%s", c, w.dump())
			}
		})
	}
}
