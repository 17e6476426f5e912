package relay

import (
	"testing"
	"time"
)

func TestPendingTableWrapsAndExpires(t *testing.T) {
	p := newPendingTable(4)
	t0 := time.Unix(100, 0)
	for id := uint32(1); id <= 4; id++ {
		if p.put(route{id: id * 10, relayID: id, at: t0}) {
			t.Fatalf("relay id %d evicted something from a table with room", id)
		}
	}
	if !p.put(route{id: 50, relayID: 5, at: t0.Add(time.Minute)}) {
		t.Fatal("wrapping onto relay id 1 did not report it forgotten")
	}
	if _, ok := p.take(1); ok {
		t.Fatal("relay id 1 still found after it was forgotten")
	}
	if rt, ok := p.take(2); !ok || rt.id != 20 {
		t.Fatalf("take(2) = %+v, %v", rt, ok)
	}
	if _, ok := p.take(2); ok {
		t.Fatal("relay id 2 taken twice")
	}
	if n := p.expire(t0.Add(30*time.Second), 10*time.Second); n != 2 || p.len() != 1 {
		t.Fatalf("expired %d, %d left; want 2 expired (ids 3, 4) and 1 left (id 5)", n, p.len())
	}
	if rt, ok := p.take(5); !ok || rt.id != 50 {
		t.Fatalf("take(5) = %+v, %v", rt, ok)
	}
}
