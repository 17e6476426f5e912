package appliance

import (
	"testing"
	"time"

	"github.com/hellopics/hellopics/pkg/hello"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// TestCycleNumberedBySequence: the Hello cycle machine takes its numbers
// from a replicated Sequence on the API: on the master they continue
// from the marks a backup was told, and off it the cycle stops rather
// than send a number another master may use.
func TestCycleNumberedBySequence(t *testing.T) {
	var lows int
	rt, loop := seqRuntime(t, &lows)
	loop.Do(func() {
		q, err := rt.Node().Sequence("hello")
		if err != nil {
			t.Fatal(err)
		}
		if err := rt.RestoreSequences(map[string]uint64{"hello": 9000}); err != nil {
			t.Fatal(err)
		}
		rt.SetMastership(true, 3)
		c, err := hello.New(hello.Config{Interval: time.Second, Epoch: 3, Numbers: q})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		var first *hellopicsv1.Hello
		for _, o := range c.Start("p1", now) {
			if s, ok := o.(hello.Send); ok {
				first = s.Hello
			}
		}
		if first.GetSeq() != 9000 || q.Peek() != 9001 {
			t.Fatalf("first hello %d, sequence at %d; want 9000, 9001", first.GetSeq(), q.Peek())
		}
		rt.SetMastership(false, 3)
		outs := c.Tick(now.Add(time.Second))
		if c.Running("p1") || len(outs) == 0 {
			t.Fatalf("the cycle still runs on a backup: %v", outs)
		}
		for _, o := range outs {
			if _, ok := o.(hello.Send); ok {
				t.Fatalf("a hello sent by a backup: %v", o)
			}
		}
	})
}
