package hello

import (
	"fmt"
	"testing"
	"time"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// FuzzCycle drives a Cycle with arbitrary operations, hellos back with
// arbitrary fields among them (what a hostile component can send), and
// checks what must always hold: numbers sent only grow, no counter ever
// goes down, a pair never receives more than it sent, and a running
// pair always has a deadline.
func FuzzCycle(f *testing.F) {
	f.Add([]byte{0, 0, 3, 1, 2, 0, 5, 4})
	f.Add([]byte{0, 1, 2, 2, 3, 9, 9, 9, 9, 6, 1, 7, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		c, err := New(Config{Interval: iv, Spread: len(ops)%2 == 0, Epoch: 1})
		if err != nil {
			t.Fatal(err)
		}
		now := t0
		var lastSent uint64
		prev := map[string]*hellopicsv1.HelloCounters{}
		next := func() byte {
			if len(ops) == 0 {
				return 0
			}
			b := ops[0]
			ops = ops[1:]
			return b
		}
		for len(ops) > 0 {
			op, id := next()%8, fmt.Sprintf("p%d", next()%3)
			var outs []Output
			switch op {
			case 0:
				outs = c.Start(id, now)
			case 1:
				outs = c.Stop(id, "fuzz")
			case 2:
				now = now.Add(time.Duration(next()) * 5 * time.Millisecond)
				outs = c.Tick(now)
			case 3: // the right hello back
				if seq, dir, ok := c.InFlight(id); ok {
					from := data
					if dir == viaDC {
						from = ctrl
					}
					outs = c.Back(id, from, &hellopicsv1.Hello{Seq: seq, Direction: dir, Epoch: 1, PairId: id}, now)
				}
			case 4: // a hostile one
				h := &hellopicsv1.Hello{Seq: uint64(next()) << (next() % 64), Direction: hellopicsv1.Direction(next() % 4),
					Epoch: uint64(next() % 3), PairId: fmt.Sprintf("p%d", next()%4)}
				outs = c.Back(id, hellopicsv1.Role(next()%4), h, now)
			case 5:
				c.Observe(uint64(next()) << (next() % 64))
			case 6:
				c.TakeOver(next()%2 == 0)
				c.SetEpoch(uint64(next()%3) + 1)
			case 7:
				c.Forget(id)
				delete(prev, id)
			}
			for _, o := range outs {
				if s, ok := o.(Send); ok {
					if s.Hello.GetSeq() <= lastSent || s.Hello.GetSeq() >= SeqLimit-1 {
						t.Fatalf("hello %d sent after %d", s.Hello.GetSeq(), lastSent)
					}
					lastSent = s.Hello.GetSeq()
				}
			}
			for _, pid := range c.Pairs() {
				k := c.Counters(pid)
				if p := prev[pid]; p != nil && (k.GetSent() < p.GetSent() || k.GetReceived() < p.GetReceived() ||
					k.GetMissed() < p.GetMissed() || k.GetOutOfOrder() < p.GetOutOfOrder()) {
					t.Fatalf("%s: counters went down: %v -> %v", pid, p, k)
				}
				if k.GetReceived() > k.GetSent() {
					t.Fatalf("%s: received %d of %d sent", pid, k.GetReceived(), k.GetSent())
				}
				prev[pid] = k
				if c.Running(pid) {
					if _, ok := c.NextDue(pid); !ok {
						t.Fatalf("%s runs without a deadline", pid)
					}
					if _, ok := c.NextDeadline(); !ok {
						t.Fatal("a pair runs and NextDeadline says none")
					}
				}
			}
		}
	})
}
