package appliance

import (
	"testing"
	"time"

	"github.com/hellopics/hellopics/pkg/tier"
)

// TestTimers: a timer runs its function on the loop at its deadline;
// Stop keeps it from running and says so; Reset moves it; none runs
// after the component stopped, and stopping leaves none pending.
func TestTimers(t *testing.T) {
	loop := tier.NewLoop(0)
	defer loop.Close()
	rt := NewRuntime(RuntimeConfig{Role: Ctrl, PairID: "p1", App: &App{}, Loop: loop})
	loop.Do(rt.Start)
	n := rt.Node()
	fired := make(chan string, 10)
	var stopped, moved, late *Timer
	loop.Do(func() {
		n.After(time.Millisecond, func() { fired <- "soon" })
		stopped = n.After(time.Millisecond, func() { fired <- "stopped" })
		if !stopped.Stop() || stopped.Stop() {
			t.Error("Stop: want true, then false")
		}
		moved = n.After(time.Hour, func() { fired <- "moved" })
		moved.Reset(time.Now().Add(5 * time.Millisecond))
		n.At(time.Now().Add(-time.Second), func() { fired <- "past" })
	})
	got := map[string]bool{}
	for range 3 {
		select {
		case s := <-fired:
			got[s] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("timers fired: %v", got)
		}
	}
	if !got["soon"] || !got["moved"] || !got["past"] {
		t.Fatalf("fired %v; want soon, moved, past", got)
	}
	loop.Do(func() {
		if moved.Stop() {
			t.Error("Stop of a timer that fired said true")
		}
		late = n.After(20*time.Millisecond, func() { fired <- "after stop" })
	})
	loop.Do(rt.Stop)
	loop.Do(func() {
		if len(rt.timers) != 0 || late.Stop() {
			t.Errorf("after Stop: %d timers pending", len(rt.timers))
		}
		late.Reset(time.Now()) // does nothing once stopped
	})
	select {
	case s := <-fired:
		t.Fatalf("%q fired", s)
	case <-time.After(100 * time.Millisecond):
	}
}
