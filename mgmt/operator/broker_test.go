package operator

import (
	"sync"
	"testing"
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

	// The slow one got what fitted its channel (its buffer plus room for
	// the history, empty when it subscribed), then its channel closed.
	k := 0
	for range slow {
		k++
	}
	if k != buf+DefaultHistory {
		t.Errorf("slow subscriber got %d events, want %d", k, buf+DefaultHistory)
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
