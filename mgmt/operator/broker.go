package operator

import (
	"sync"
	"time"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// DefaultHistory is how many of the recent events a Broker replays to a
// new subscriber that asks for no time (Subscribe, and WatchEvents
// without since).
const DefaultHistory = 64

// HistorySize is how many recent events a Broker keeps: the history that
// SubscribeSince and History search, at most HistorySize events however
// old (a count bound, not a time bound: about 100 bytes an event, some
// 100 KiB in all).
const HistorySize = 1024

// DefaultSubscriberBuffer is the per-subscriber buffer NewBroker uses when
// given zero or less.
const DefaultSubscriberBuffer = 256

// Broker fans events out to any number of subscribers (the WatchEvents
// streams). Publish never blocks: a subscriber whose buffer is full is
// dropped, its channel closed and the drop counted, so a slow operator
// client never slows the management daemon down. The broker keeps the last
// HistorySize events and hands a new subscriber the last DefaultHistory
// of them first, or those since a time (SubscribeSince).
//
// A Broker is safe for concurrent use. Events are shared between
// subscribers and the history: once published, an event must not be
// modified.
type Broker struct {
	buf int

	mu      sync.Mutex
	subs    map[*subscription]struct{}
	ring    []*hellopicsv1.WatchEventsResponse // len == cap == HistorySize
	next    int                                // ring index of the next event
	n       int                                // events in the ring
	closed  bool
	dropped uint64
	pubs    uint64
}

// subscription is one subscriber. dropped is written before ch is closed
// (under Broker.mu), so a reader that saw ch closed may read it.
type subscription struct {
	ch      chan *hellopicsv1.WatchEventsResponse
	dropped bool
}

// NewBroker returns a broker whose subscribers each buffer up to
// bufferPerSubscriber events beyond the replayed history
// (DefaultSubscriberBuffer when bufferPerSubscriber <= 0).
func NewBroker(bufferPerSubscriber int) *Broker {
	if bufferPerSubscriber <= 0 {
		bufferPerSubscriber = DefaultSubscriberBuffer
	}
	return &Broker{
		buf:  bufferPerSubscriber,
		subs: make(map[*subscription]struct{}),
		ring: make([]*hellopicsv1.WatchEventsResponse, HistorySize),
	}
}

// Publish records ev in the history and hands it to every subscriber
// without blocking. A subscriber whose buffer is full is dropped: its
// channel is closed and Dropped counts it. Publish after Close, or of a nil
// event, does nothing.
func (b *Broker) Publish(ev *hellopicsv1.WatchEventsResponse) {
	if ev == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.pubs++
	b.ring[b.next] = ev
	b.next = (b.next + 1) % len(b.ring)
	if b.n < len(b.ring) {
		b.n++
	}
	for s := range b.subs {
		select {
		case s.ch <- ev:
		default:
			s.dropped = true
			close(s.ch)
			delete(b.subs, s)
			b.dropped++
		}
	}
}

// Subscribe returns a channel that first yields the last DefaultHistory
// events of the history, oldest first, then every event published from
// now on, in order. The channel is closed when the subscriber falls
// behind by more than its buffer, when cancel is called, or when the
// broker is closed. cancel may be called more than once and from any
// goroutine.
func (b *Broker) Subscribe() (<-chan *hellopicsv1.WatchEventsResponse, func()) {
	s := b.subscribe(nil)
	return s.ch, func() { b.unsubscribe(s) }
}

// SubscribeSince is Subscribe, but the channel first yields every event
// of the history (up to HistorySize) whose time is at or after since.
func (b *Broker) SubscribeSince(since time.Time) (<-chan *hellopicsv1.WatchEventsResponse, func()) {
	s := b.subscribe(&since)
	return s.ch, func() { b.unsubscribe(s) }
}

// History returns the events of the history whose time is at or after
// since (all of them for the zero time), oldest first (at most
// HistorySize; none after Close).
func (b *Broker) History(since time.Time) []*hellopicsv1.WatchEventsResponse {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	return b.historyLocked(&since)
}

// historyLocked returns the last DefaultHistory events (since nil) or
// those at or after *since; b.mu is held. An event without a time is
// left out when a time other than the zero time is asked for.
func (b *Broker) historyLocked(since *time.Time) []*hellopicsv1.WatchEventsResponse {
	n := b.n
	if since == nil {
		n = min(n, DefaultHistory)
	}
	var out []*hellopicsv1.WatchEventsResponse
	start := (b.next - n + len(b.ring)) % len(b.ring)
	for i := 0; i < n; i++ {
		ev := b.ring[(start+i)%len(b.ring)]
		if since != nil && !since.IsZero() && (ev.GetTime() == nil || ev.GetTime().AsTime().Before(*since)) {
			continue
		}
		out = append(out, ev)
	}
	return out
}

// subscribe subscribes with the history since *since (nil: the last
// DefaultHistory events); its channel holds the history and the buffer.
func (b *Broker) subscribe(since *time.Time) *subscription {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		s := &subscription{ch: make(chan *hellopicsv1.WatchEventsResponse)}
		close(s.ch)
		return s
	}
	h := b.historyLocked(since)
	s := &subscription{ch: make(chan *hellopicsv1.WatchEventsResponse, b.buf+len(h))}
	for _, ev := range h {
		s.ch <- ev
	}
	b.subs[s] = struct{}{}
	return s
}

func (b *Broker) unsubscribe(s *subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[s]; ok {
		delete(b.subs, s)
		close(s.ch)
	}
}

// Close closes every subscriber's channel; later subscribers get a closed
// channel (without history) and later events are discarded. Close is
// idempotent.
func (b *Broker) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	for s := range b.subs {
		close(s.ch)
		delete(b.subs, s)
	}
}

// Closed reports whether Close has been called.
func (b *Broker) Closed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// BrokerStats are a Broker's counters.
type BrokerStats struct {
	// Published is the number of events published.
	Published uint64
	// Subscribers is the number of subscribers now.
	Subscribers int
	// Dropped is the number of subscribers dropped for falling behind.
	Dropped uint64
}

// Stats returns the broker's counters.
func (b *Broker) Stats() BrokerStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return BrokerStats{Published: b.pubs, Subscribers: len(b.subs), Dropped: b.dropped}
}
