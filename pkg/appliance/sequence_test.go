package appliance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hellopics/hellopics/pkg/tier"
)

// seqRuntime is a started mgmt Runtime without a shell; lows counts
// OnSequenceLow calls.
func seqRuntime(t *testing.T, lows *int) (*Runtime, *tier.Loop) {
	t.Helper()
	loop := tier.NewLoop(0)
	t.Cleanup(loop.Close)
	rt := NewRuntime(RuntimeConfig{Role: Mgmt, App: &App{}, Loop: loop, OnSequenceLow: func() { *lows++ }})
	loop.Do(rt.Start)
	t.Cleanup(func() { loop.Do(rt.Stop) })
	return rt, loop
}

// TestSequenceRules: the API's rules on one Runtime: mgmt only, bounded
// names and count, numbers on the master only, Observe, and a takeover
// that starts at the marks a backup was told, syncing at once.
func TestSequenceRules(t *testing.T) {
	var lows int
	rt, loop := seqRuntime(t, &lows)
	loop.Do(func() {
		n := rt.Node()
		q, err := n.Sequence("ids")
		if err != nil {
			t.Fatal(err)
		}
		if again, _ := n.Sequence("ids"); again != q {
			t.Fatal("a second Sequence(ids) is another sequence")
		}
		for _, bad := range []string{"", strings.Repeat("n", MaxSequenceName+1), "\xff"} {
			if _, err := n.Sequence(bad); err == nil {
				t.Errorf("Sequence(%q) accepted", bad)
			}
		}
		if _, err := q.Next(); !errors.Is(err, ErrNotMaster) {
			t.Fatalf("Next on a backup: %v; want ErrNotMaster", err)
		}
		// A backup is told marks, also of sequences it does not have yet.
		if err := rt.RestoreSequences(map[string]uint64{"ids": 5000, "later": 9000}); err != nil {
			t.Fatal(err)
		}
		if err := rt.RestoreSequences(map[string]uint64{"ids": 10}); err != nil || q.Peek() != 5000 {
			t.Fatalf("a lower mark: %v; next %d, want 5000 (marks only grow)", err, q.Peek())
		}
		if err := rt.RestoreSequences(map[string]uint64{"": 1}); err == nil {
			t.Error("a mark with an empty name accepted")
		}
		many := map[string]uint64{}
		for i := range MaxSequences + 1 {
			many[fmt.Sprintf("s%d", i)] = 1
		}
		if err := rt.RestoreSequences(many); err == nil {
			t.Error("more than MaxSequences marks accepted")
		}

		rt.SetMastership(true, 2)
		if v, err := q.Next(); err != nil || v != 5000 {
			t.Fatalf("first number after the takeover: %d, %v; want 5000", v, err)
		}
		if lows != 1 {
			t.Fatalf("OnSequenceLow called %d times after the takeover; want 1 (nothing told yet)", lows)
		}
		later, _ := n.Sequence("later")
		if v, _ := later.Next(); v != 9000 {
			t.Fatalf("a sequence created after its mark came: first %d, want 9000", v)
		}
		marks := rt.SequenceMarks()
		if marks["ids"] != 5001+SequenceReserve || marks["later"] != 9001+SequenceReserve {
			t.Fatalf("marks %v", marks)
		}
		// Half the reserve later, it asks again; not before.
		for q.Peek() < marks["ids"]-SequenceReserve/2 {
			q.Next()
		}
		if lows != 1 || rt.SequencesLow() {
			t.Fatalf("asked %d times, low %v, before half the reserve was used", lows, rt.SequencesLow())
		}
		q.Next()
		if lows != 2 || !rt.SequencesLow() {
			t.Fatalf("asked %d times, low %v, at half the reserve; want 2, true", lows, rt.SequencesLow())
		}
		q.Observe(1 << 40)
		if v, _ := q.Next(); v != 1<<40+1 {
			t.Fatalf("after Observe(2^40): %d", v)
		}
		q.Observe(7) // lower: no effect
		if v, _ := q.Next(); v != 1<<40+2 {
			t.Fatalf("after Observe(7): %d", v)
		}
		q.Observe(1<<64 - 1)
		if _, err := q.Next(); !errors.Is(err, ErrSequenceExhausted) {
			t.Fatalf("Next at the end of the range: %v", err)
		}
	})
	ct := NewRuntime(RuntimeConfig{Role: Ctrl, PairID: "p1", App: &App{}, Loop: loop})
	if _, err := ct.Node().Sequence("ids"); !errors.Is(err, ErrWrongRole) {
		t.Fatalf("Sequence on ctrl: %v", err)
	}
}

// TestSequenceAcrossFailover: two mgmt instances on loopback. No
// number is handed out twice: not after a switchover, and not after the
// master goes away without handing over, with more numbers handed out
// than one reserve holds.
func TestSequenceAcrossFailover(t *testing.T) {
	ha := map[string]string{"a": freeAddr(t), "b": freeAddr(t)}
	a := startApp(t, "a", 200, ha)
	defer a.Close()
	waitUntil(t, "a to be master", a.isMaster)
	b := startApp(t, "b", 100, ha)
	bClosed := false
	defer func() {
		if !bClosed {
			b.Close()
		}
	}()
	waitUntil(t, "b in sync", func() bool { return a.inSync("b") })
	seq := func(n *appNode) *Sequence {
		var q *Sequence
		var err error
		n.loop.Do(func() { q, err = n.node.Sequence("ids") })
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	qa, qb := seq(a), seq(b)
	seen := map[uint64]string{}
	take := func(who string, n *appNode, q *Sequence, count int) (last uint64) {
		t.Helper()
		n.loop.Do(func() {
			for range count {
				v, err := q.Next()
				if err != nil {
					t.Errorf("%s: Next: %v", who, err)
					return
				}
				if by, dup := seen[v]; dup {
					t.Errorf("%s handed out %d, already handed out by %s", who, v, by)
					return
				}
				if v <= last {
					t.Errorf("%s: %d after %d", who, v, last)
				}
				seen[v], last = who, v
			}
		})
		return last
	}
	told := func(n *appNode) uint64 {
		var m uint64
		n.loop.Do(func() { m = n.rt.seqMarks["ids"] })
		return m
	}
	if _, err := func() (uint64, error) {
		var v uint64
		var err error
		b.loop.Do(func() { v, err = qb.Next() })
		return v, err
	}(); !errors.Is(err, ErrNotMaster) {
		t.Fatalf("Next on the backup: %v", err)
	}

	last := take("a", a, qa, SequenceReserve+100) // more than one reserve: a syncs on the way
	waitUntil(t, "b told a mark above a's numbers", func() bool { return told(b) > last })

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := a.Switchover(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "b to be master", b.isMaster)
	last = take("b", b, qb, 10)
	waitUntil(t, "a told a mark above b's numbers", func() bool { return told(a) > last })

	b.Close() // without a handover
	bClosed = true
	waitUntil(t, "a to take over", a.isMaster)
	take("a again", a, qa, 10)
	if len(seen) != SequenceReserve+120 {
		t.Fatalf("%d numbers handed out; want %d", len(seen), SequenceReserve+120)
	}
}
