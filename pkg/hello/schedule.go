package hello

import (
	"container/heap"
	"hash/fnv"
	"sort"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The pairs' next hellos are kept in a min-heap by time: a Tick pops the
// due ones and the next deadline is the top, so neither costs a scan of
// every pair (at 1,000 pairs a scan per event was a visible share of
// mgmt's CPU). A pair's entry is valid only while it matches the pair's
// nextDue and the cycle runs; stale entries (a cycle stopped, or
// rescheduled) are skipped when they surface, and swept when they
// outnumber the pairs.

// due is one scheduled hello.
type due struct {
	at time.Time
	id string
}

// dueHeap orders due hellos by time, then pair id (deterministic).
type dueHeap []due

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].id < h[j].id
}
func (h dueHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)   { *h = append(*h, x.(due)) }
func (h *dueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// schedule sets p's next hello at at.
func (c *Cycle) schedule(p *pair, at time.Time) {
	p.nextDue = at
	heap.Push(&c.due, due{at: at, id: p.id})
	if len(c.due) > 4*len(c.pairs)+64 {
		// Cycles stopped and started faster than their hellos fall due
		// (a component flapping, or hostile) leave stale entries: keep
		// the heap within a few entries per pair.
		live := c.due[:0]
		for _, e := range c.due {
			if c.valid(e) {
				live = append(live, e)
			}
		}
		clear(c.due[len(live):])
		c.due = live
		heap.Init(&c.due)
	}
}

// valid reports whether e still names a scheduled hello.
func (c *Cycle) valid(e due) bool {
	p := c.pairs[e.id]
	return p != nil && p.running && p.nextDue.Equal(e.at)
}

// dueAt pops the hellos due at now and returns their pairs sorted by
// id, each once.
func (c *Cycle) dueAt(now time.Time) []*pair {
	var out []*pair
	var last due
	for len(c.due) > 0 && !now.Before(c.due[0].at) {
		e := heap.Pop(&c.due).(due)
		// Only the entry at a pair's nextDue is valid, and copies of
		// one entry pop one after the other: skip the repeat.
		if c.valid(e) && (e.id != last.id || !e.at.Equal(last.at)) {
			last = e
			out = append(out, c.pairs[e.id])
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// nextDue returns the earliest scheduled hello, dropping stale entries
// on top.
func (c *Cycle) nextDue() (time.Time, bool) {
	for len(c.due) > 0 {
		if c.valid(c.due[0]) {
			return c.due[0].at, true
		}
		heap.Pop(&c.due)
	}
	return time.Time{}, false
}

// phaseNudge spreads the pairs' hellos over the interval: each pair has
// a phase (a hash of its id), and every hello moves the next one toward
// it by at most a tenth of the interval. Pairs started together (a
// chassis powering up, a failover) stop sending in lock-step within a
// few intervals, and no gap between two hellos differs from the
// interval by more than a tenth. Zero unless Config.Spread.
func (c *Cycle) phaseNudge(p *pair, now time.Time) time.Duration {
	if !c.cfg.Spread {
		return 0
	}
	iv := c.cfg.Interval
	if p.phase < 0 {
		h := fnv.New64a()
		h.Write([]byte(p.id))
		p.phase = time.Duration(h.Sum64() % uint64(iv))
	}
	cur := time.Duration(uint64(now.UnixNano()) % uint64(iv))
	d := p.phase - cur // in (-iv, iv): bring it into (-iv/2, iv/2]
	if d > iv/2 {
		d -= iv
	} else if d <= -iv/2 {
		d += iv
	}
	return max(-iv/10, min(iv/10, d))
}

func timestampOf(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

func durationOf(d time.Duration) *durationpb.Duration { return durationpb.New(d) }
