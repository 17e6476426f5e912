package handshake

import (
	"container/heap"
	"hash/fnv"
	"sort"
	"time"
)

// The Mgmt machine's deadlines, kept so that a Tick and NextDeadline
// cost what is due, not the size of the registry: with a thousand
// pairs each hello is one Tick, and a scan of every pair and session per
// Tick would make mgmt's CPU per pair grow with the pairs.
//
//   - hellos: a min-heap of (due, pair) entries, pushed whenever a
//     pair's next hello is scheduled; an entry is stale (skipped) once
//     the pair stopped, went or was rescheduled.
//   - pair expiry and identify timeouts: the sets of pairs without a
//     live component and of sessions that must still identify, which
//     are small (transient, or the pairs that are gone).

// dueHello is one scheduled hello.
type dueHello struct {
	at time.Time
	id string
}

// helloHeap orders due hellos by time, then pair id (deterministic).
type helloHeap []dueHello

func (h helloHeap) Len() int { return len(h) }
func (h helloHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].id < h[j].id
}
func (h helloHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *helloHeap) Push(x any)   { *h = append(*h, x.(dueHello)) }
func (h *helloHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// scheduleHello sets p's next hello at at.
func (m *Mgmt) scheduleHello(p *pair, at time.Time) {
	p.nextDue = at
	heap.Push(&m.hellos, dueHello{at: at, id: p.id})
	if len(m.hellos) > 4*len(m.pairs)+64 {
		// Cycles stopped and started faster than their hellos fall due
		// (a component flapping, or hostile) leave stale entries: keep
		// the heap within a few entries per pair.
		live := m.hellos[:0]
		for _, e := range m.hellos {
			if m.validHello(e) {
				live = append(live, e)
			}
		}
		clear(m.hellos[len(live):])
		m.hellos = live
		heap.Init(&m.hellos)
	}
}

// validHello reports whether e still names a scheduled hello.
func (m *Mgmt) validHello(e dueHello) bool {
	p := m.pairs[e.id]
	return p != nil && p.running && p.nextDue.Equal(e.at)
}

// dueHellos pops the hellos due at now and returns their pairs sorted
// by id, each once.
func (m *Mgmt) dueHellos(now time.Time) []*pair {
	var due []*pair
	var last dueHello
	for len(m.hellos) > 0 && !now.Before(m.hellos[0].at) {
		e := heap.Pop(&m.hellos).(dueHello)
		// Only the entry at a pair's nextDue is valid, and copies of
		// one entry pop one after the other: skip the repeat.
		if m.validHello(e) && (e.id != last.id || !e.at.Equal(last.at)) {
			last = e
			due = append(due, m.pairs[e.id])
		}
	}
	sort.Slice(due, func(i, j int) bool { return due[i].id < due[j].id })
	return due
}

// nextHello returns the earliest scheduled hello, dropping stale
// entries on top.
func (m *Mgmt) nextHello() (time.Time, bool) {
	for len(m.hellos) > 0 {
		if m.validHello(m.hellos[0]) {
			return m.hellos[0].at, true
		}
		heap.Pop(&m.hellos)
	}
	return time.Time{}, false
}

// idle records that p has had no live component since t: it may
// expire at t + PairExpiry.
func (m *Mgmt) idle(p *pair, t time.Time) {
	p.idleSince = t
	m.idlePairs[p.id] = struct{}{}
}

// busy records that p has a live component again.
func (m *Mgmt) busy(p *pair) {
	p.idleSince = time.Time{}
	delete(m.idlePairs, p.id)
}

// dropSession forgets session id.
func (m *Mgmt) dropSession(id SessionID) {
	delete(m.sessions, id)
	delete(m.unidentified, id)
}

// dropPair forgets pair id (its hello entries go stale).
func (m *Mgmt) dropPair(id string) {
	delete(m.pairs, id)
	delete(m.idlePairs, id)
}

// sortedIDs returns a set's keys in order (deterministic outputs).
func sortedIDs[K interface{ ~string | ~uint64 }](set map[K]struct{}) []K {
	ids := make([]K, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// phaseNudge spreads the pairs' hellos over the interval: each pair
// has a phase (a hash of its id), and every hello moves the next one
// toward it by at most a tenth of the interval. Pairs started together
// (a chassis powering up, a failover) stop sending in lock-step within
// a few intervals, and no gap between two hellos differs from the
// interval by more than a tenth. Zero unless MgmtConfig.SpreadHellos.
func (m *Mgmt) phaseNudge(p *pair, now time.Time) time.Duration {
	if !m.cfg.SpreadHellos {
		return 0
	}
	iv := m.cfg.HelloInterval
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
