package operator

import (
	"sync"
	"testing"
	"time"
)

func TestBrokerHistory(t *testing.T) {
	b := NewBroker(4)
	defer b.Close()
	const n = DefaultHistory + 36
	for i := range n {
		b.Publish(event(i))
	}
	ch, cancel := b.Subscribe()
	defer cancel()
	for i := n - DefaultHistory; i < n; i++ {
		ev := <-ch
		if ev.GetMessage() != event(i).GetMessage() {
			t.Fatalf("history: got %q, want %q", ev.GetMessage(), event(i).GetMessage())
		}
	}
	select {
	case ev := <-ch:
		t.Fatalf("extra event %v", ev)
	default:
	}
	b.Publish(event(n))
	if ev := <-ch; ev.GetMessage() != event(n).GetMessage() {
		t.Fatalf("live: got %q, want %q", ev.GetMessage(), event(n).GetMessage())
	}
}

func TestBrokerShortHistory(t *testing.T) {
	b := NewBroker(4)
	defer b.Close()
	ch, cancel := b.Subscribe()
	select {
	case ev := <-ch:
		t.Fatalf("empty broker replays %v", ev)
	default:
	}
	cancel()
	b.Publish(event(0))
	b.Publish(event(1))
	ch, cancel = b.Subscribe()
	defer cancel()
	for i := range 2 {
		if ev := <-ch; ev.GetMessage() != event(i).GetMessage() {
			t.Fatalf("got %q, want %q", ev.GetMessage(), event(i).GetMessage())
		}
	}
}

// A subscriber that does not read is dropped once its buffer is full, and
// Publish never waits for it; a subscriber that reads gets every event.
func TestBrokerSlowSubscriberDropped(t *testing.T) {
	const buf, n = 8, 10000
	b := NewBroker(buf)
	defer b.Close()
	slow, cancelSlow := b.Subscribe()
	defer cancelSlow()
	fast, cancelFast := b.Subscribe()
	defer cancelFast()

	// Publish and read the fast subscriber in lockstep: had Publish waited
	// for the slow subscriber, this would deadlock.
	for i := range n {
		b.Publish(event(i))
		select {
		case ev := <-fast:
			if ev.GetMessage() != event(i).GetMessage() {
				t.Fatalf("fast subscriber got %q, want %q", ev.GetMessage(), event(i).GetMessage())
			}
		default:
			t.Fatalf("fast subscriber has no event %d", i)
		}
	}

	// The slow one got what fitted its channel (its buffer; the history
	// was empty when it subscribed), then its channel closed.
	k := 0
	for range slow {
		k++
	}
	if k != buf {
		t.Errorf("slow subscriber got %d events, want %d", k, buf)
	}
	if st := b.Stats(); st.Dropped != 1 || st.Published != n || st.Subscribers != 1 {
		t.Errorf("Stats = %+v, want Dropped 1, Published %d, Subscribers 1", st, n)
	}
	cancelSlow() // cancel after a drop is harmless
}

func TestBrokerClose(t *testing.T) {
	b := NewBroker(4)
	ch, cancel := b.Subscribe()
	b.Close()
	if _, ok := <-ch; ok {
		t.Error("channel open after Close")
	}
	cancel()
	b.Close()
	b.Publish(event(0)) // discarded, no panic
	ch, cancel = b.Subscribe()
	defer cancel()
	if _, ok := <-ch; ok {
		t.Error("Subscribe after Close gives an open channel")
	}
	if !b.Closed() {
		t.Error("Closed = false after Close")
	}
}

func TestBrokerConcurrent(t *testing.T) {
	b := NewBroker(1 << 14)
	defer b.Close()
	ch, cancel := b.Subscribe()
	defer cancel()
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				b.Publish(event(p*1000 + i))
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			c, cancel := b.Subscribe()
			cancel()
			for range c {
			}
		})
	}
	wg.Wait()
	if got := len(ch); got != 4000 {
		t.Errorf("subscriber holds %d events, want 4000", got)
	}
}

// The history holds the last HistorySize events; SubscribeSince and
// History return those at or after a time, Subscribe the last
// DefaultHistory.
func TestBrokerSince(t *testing.T) {
	b := NewBroker(4)
	defer b.Close()
	const n = HistorySize + 100
	for i := range n {
		b.Publish(event(i))
	}
	all := b.History(time.Time{})
	if len(all) != HistorySize || all[0].GetMessage() != event(n-HistorySize).GetMessage() || all[len(all)-1].GetMessage() != event(n-1).GetMessage() {
		t.Fatalf("History(zero): %d events from %q to %q, want %d from %q", len(all), all[0].GetMessage(), all[len(all)-1].GetMessage(), HistorySize, event(n-HistorySize).GetMessage())
	}
	since := event(n - 200).GetTime().AsTime()
	if h := b.History(since); len(h) != 200 || h[0].GetMessage() != event(n-200).GetMessage() {
		t.Fatalf("History(since event %d): %d events from %q, want 200", n-200, len(h), h[0].GetMessage())
	}
	if h := b.History(event(n).GetTime().AsTime()); len(h) != 0 {
		t.Fatalf("History(after the last): %d events, want 0", len(h))
	}

	ch, cancel := b.SubscribeSince(since)
	defer cancel()
	for i := n - 200; i < n; i++ {
		if ev := <-ch; ev.GetMessage() != event(i).GetMessage() {
			t.Fatalf("SubscribeSince: got %q, want %q", ev.GetMessage(), event(i).GetMessage())
		}
	}
	// Then the live events, its buffer of 4 beyond the history.
	for i := n; i < n+4; i++ {
		b.Publish(event(i))
		if ev := <-ch; ev.GetMessage() != event(i).GetMessage() {
			t.Fatalf("SubscribeSince live: got %q, want %q", ev.GetMessage(), event(i).GetMessage())
		}
	}
	ch2, cancel2 := b.Subscribe()
	defer cancel2()
	if got := len(ch2); got != DefaultHistory {
		t.Errorf("Subscribe replays %d events, want %d", got, DefaultHistory)
	}
	b.Close()
	if h := b.History(time.Time{}); h != nil {
		t.Errorf("History after Close: %d events", len(h))
	}
}
