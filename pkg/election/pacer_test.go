package election

import (
	"testing"
	"time"
)

// TestSyncPacer: a change after a quiet spell goes at once, changes
// within the interval wait for it, a low reserve goes at once.
func TestSyncPacer(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	p := SyncPacer{Interval: 100 * time.Millisecond, Reserve: 64}
	if now, at := p.Plan(t0, false, 1); !now || !at.IsZero() {
		t.Fatalf("nothing told yet: now=%v at=%v, want a sync at once (the reserve)", now, at)
	}
	if got := p.Sent(t0, 1); got != 65 {
		t.Fatalf("announced %d, want 65", got)
	}
	if now, at := p.Plan(t0.Add(time.Millisecond), false, 2); now || !at.IsZero() {
		t.Fatalf("no change: now=%v at=%v", now, at)
	}
	if now, at := p.Plan(t0.Add(10*time.Millisecond), true, 2); now || !at.Equal(t0.Add(100*time.Millisecond)) {
		t.Fatalf("change within the interval: now=%v at=%v, want at %v", now, at, t0.Add(100*time.Millisecond))
	}
	if now, _ := p.Plan(t0.Add(100*time.Millisecond), true, 2); !now {
		t.Fatal("change at the interval: not now")
	}
	// 33 numbers used since: 65-34 = 31 < 32 left.
	if now, _ := p.Plan(t0.Add(20*time.Millisecond), false, 34); !now {
		t.Fatal("reserve below half: not synced at once")
	}
	if now, _ := p.Plan(t0.Add(20*time.Millisecond), true, 33); now {
		t.Fatal("reserve at half: synced before the interval")
	}
	if got := p.Sent(t0.Add(20*time.Millisecond), 34); got != 98 {
		t.Fatalf("announced %d, want 98", got)
	}
	// A number beyond what was told (cannot happen with a shell that
	// asks after every change, but never trusted): at once.
	if now, _ := p.Plan(t0.Add(21*time.Millisecond), false, 200); !now {
		t.Fatal("beyond the announced number: not at once")
	}
	// Announced numbers never go down.
	if got := p.Sent(t0.Add(30*time.Millisecond), 10); got != 98 {
		t.Fatalf("announced %d after a lower next number, want 98 kept", got)
	}
	p.Reset()
	if now, _ := p.Plan(t0.Add(31*time.Millisecond), true, 10); !now {
		t.Fatal("after Reset: not at once")
	}
}
