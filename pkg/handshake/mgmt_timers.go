package handshake

import (
	"container/heap"
	"slices"
	"sort"
	"time"
)

// The Mgmt machine's deadlines, kept so that a Tick and NextDeadline
// cost what is due, not the size of the registry: with a thousand
// pairs each hello is one Tick, and a scan of every pair and session per
// Tick would make mgmt's CPU per pair grow with the pairs.
//
//   - hellos: in the Hello cycle's own heap (pkg/hello).
//   - pair expiry and identify timeouts: the sets of pairs without a
//     live component and of sessions that must still identify, each
//     with a min-heap of its deadlines (stale entries skipped the same
//     way). They are small in steady state but not at a failover: the
//     new master starts with every pair idle and thousands of sessions
//     connecting, and a scan of them after every frame took an eighth of
//     its CPU at 1,000 pairs (perf, bench pairs -kill).

// dueKey is one deadline of a pair (expiry) or a session (identify).
type dueKey[K ~string | ~uint64] struct {
	at time.Time
	id K
}

// keyHeap orders deadlines by time, then id.
type keyHeap[K ~string | ~uint64] []dueKey[K]

func (h keyHeap[K]) Len() int { return len(h) }
func (h keyHeap[K]) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].id < h[j].id
}
func (h keyHeap[K]) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *keyHeap[K]) Push(x any)   { *h = append(*h, x.(dueKey[K])) }
func (h *keyHeap[K]) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// push adds a deadline, first dropping the stale entries when they
// outnumber the live ones (live counts the set's members).
func (h *keyHeap[K]) push(e dueKey[K], live int, valid func(dueKey[K]) bool) {
	heap.Push(h, e)
	if len(*h) > 2*live+64 {
		kept := (*h)[:0]
		for _, x := range *h {
			if valid(x) {
				kept = append(kept, x)
			}
		}
		clear((*h)[len(kept):])
		*h = kept
		heap.Init(h)
	}
}

// next returns the earliest valid deadline, dropping stale entries on
// top.
func (h *keyHeap[K]) next(valid func(dueKey[K]) bool) (time.Time, bool) {
	for len(*h) > 0 {
		if valid((*h)[0]) {
			return (*h)[0].at, true
		}
		heap.Pop(h)
	}
	return time.Time{}, false
}

// due pops the valid deadlines at or before now and returns their ids,
// sorted, each once.
func (h *keyHeap[K]) due(now time.Time, valid func(dueKey[K]) bool) []K {
	var ids []K
	for len(*h) > 0 && !now.Before((*h)[0].at) {
		if e := heap.Pop(h).(dueKey[K]); valid(e) {
			ids = append(ids, e.id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return slices.Compact(ids)
}

// validIdle reports whether e is pair e.id's expiry.
func (m *Mgmt) validIdle(e dueKey[string]) bool {
	p := m.pairs[e.id]
	if _, idle := m.idlePairs[e.id]; !idle || p == nil {
		return false
	}
	return p.idleSince.Add(m.cfg.PairExpiry).Equal(e.at)
}

// validIdentify reports whether e is unidentified session e.id's
// identify deadline.
func (m *Mgmt) validIdentify(e dueKey[SessionID]) bool {
	s := m.sessions[e.id]
	if _, un := m.unidentified[e.id]; !un || s == nil {
		return false
	}
	return s.since.Add(m.cfg.IdentifyTimeout).Equal(e.at)
}

// unidentifiedSession records that session s must still identify.
func (m *Mgmt) unidentifiedSession(s *mgmtSession) {
	m.unidentified[s.id] = struct{}{}
	m.identifyDue.push(dueKey[SessionID]{at: s.since.Add(m.cfg.IdentifyTimeout), id: s.id}, len(m.unidentified), m.validIdentify)
}

// idle records that p has had no live component since t: it may
// expire at t + PairExpiry.
func (m *Mgmt) idle(p *pair, t time.Time) {
	p.idleSince = t
	m.idlePairs[p.id] = struct{}{}
	if m.cfg.PairExpiry > 0 {
		m.expiryDue.push(dueKey[string]{at: t.Add(m.cfg.PairExpiry), id: p.id}, len(m.idlePairs), m.validIdle)
	}
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
	m.cycle.Forget(id)
}
