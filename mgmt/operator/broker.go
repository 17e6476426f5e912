package operator

import (
	"sync"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// DefaultHistory is how many recent events a Broker keeps and replays to
// each new subscriber.
const DefaultHistory = 64

// DefaultSubscriberBuffer is the per-subscriber buffer NewBroker uses when
// given zero or less.
const DefaultSubscriberBuffer = 256

// Broker fans events out to any number of subscribers (the WatchEvents
// streams). Publish never blocks: a subscriber whose buffer is full is
// dropped, its channel closed and the drop counted, so a slow operator
// client never slows the management daemon down. The broker keeps the last
// DefaultHistory events and hands them to every new subscriber first.
//
// A Broker is safe for concurrent use. Events are shared between
// subscribers and the history: once published, an event must not be
// modified.
type Broker struct {
	buf int

	mu      sync.Mutex
	subs    map[*subscription]struct{}
	ring    []*hellopicsv1.WatchEventsResponse // len == cap == history size
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
		ring: make([]*hellopicsv1.WatchEventsResponse, DefaultHistory),
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

// Subscribe returns a channel that first yields the recent history, oldest
// first, then every event published from now on, in order. The channel is
// closed when the subscriber falls behind by more than its buffer, when
// cancel is called, or when the broker is closed. cancel may be called
// more than once and from any goroutine.
func (b *Broker) Subscribe() (<-chan *hellopicsv1.WatchEventsResponse, func()) {
	s := b.subscribe()
	return s.ch, func() { b.unsubscribe(s) }
}

func (b *Broker) subscribe() *subscription {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := &subscription{ch: make(chan *hellopicsv1.WatchEventsResponse, b.buf+len(b.ring))}
	if b.closed {
		close(s.ch)
		return s
	}
	start := (b.next - b.n + len(b.ring)) % len(b.ring)
	for i := 0; i < b.n; i++ {
		s.ch <- b.ring[(start+i)%len(b.ring)]
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
