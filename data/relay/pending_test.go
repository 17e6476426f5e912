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
	if _, ok, _ := p.take(1); ok {
		t.Fatal("relay id 1 still found after it was forgotten")
	}
	if rt, ok, _ := p.take(2); !ok || rt.id != 20 {
		t.Fatalf("take(2) = %+v, %v", rt, ok)
	}
	if _, ok, _ := p.take(2); ok {
		t.Fatal("relay id 2 taken twice")
	}
	if n := p.expire(t0.Add(30*time.Second), 10*time.Second); n != 2 || p.len() != 1 {
		t.Fatalf("expired %d, %d left; want 2 expired (ids 3, 4) and 1 left (id 5)", n, p.len())
	}
	if rt, ok, _ := p.take(5); !ok || rt.id != 50 {
		t.Fatalf("take(5) = %+v, %v", rt, ok)
	}
}

// TestPendingTableTombstone: a command answered with a relay error
// (fail) leaves a tombstone: its late response is reported failed once,
// a second fail finds nothing, and the tombstone counts as no pending
// command and is reused without an eviction.
func TestPendingTableTombstone(t *testing.T) {
	p := newPendingTable(4)
	t0 := time.Unix(100, 0)
	p.put(route{id: 10, relayID: 1, at: t0})
	if rt, ok := p.fail(1); !ok || rt.id != 10 || p.len() != 0 {
		t.Fatalf("fail(1) = %+v, %v; %d pending", rt, ok, p.len())
	}
	if _, ok := p.fail(1); ok {
		t.Fatal("failed twice")
	}
	if _, ok, failed := p.take(1); ok || !failed {
		t.Fatalf("late response: ok %v failed %v, want false true", ok, failed)
	}
	if _, ok, failed := p.take(1); ok || failed {
		t.Fatal("tombstone reported twice")
	}
	p.put(route{id: 20, relayID: 2, at: t0})
	p.fail(2)
	if p.put(route{id: 60, relayID: 6, at: t0}) {
		t.Fatal("reusing a tombstone's slot reported an eviction")
	}
	if p.len() != 1 {
		t.Fatalf("%d pending, want 1", p.len())
	}
}
