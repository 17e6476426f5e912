package relay

import (
	"sync"
	"time"
)

// route remembers who sent a command now travelling under a relay id.
type route struct {
	c       *client
	id      uint32 // the client's own id
	relayID uint32
	at      time.Time
	used    bool
	// failed: the command was answered with a relay error; the slot
	// stays as a tombstone, so that the agent's late response to it
	// (the SetRequest taken, its answer lost) is dropped, not sent as
	// a second answer.
	failed bool
}

// pendingTable maps relay ids to routes in a fixed ring indexed by the
// relay id, which grows by one per command: memory is bounded, nothing
// is allocated per command, and when the ring wraps onto a command still
// waiting, that oldest one is forgotten (its response, if it ever comes,
// goes to every commands client). A command answered with a relay
// error leaves a tombstone (fail) until the slot is reused or expires.
type pendingTable struct {
	mu    sync.Mutex
	slots []route
	n     int // live routes (tombstones not counted)
}

func newPendingTable(size int) *pendingTable {
	return &pendingTable{slots: make([]route, size)}
}

// put records rt; it reports whether an older route was forgotten.
func (p *pendingTable) put(rt route) (evicted bool) {
	rt.used = true
	p.mu.Lock()
	defer p.mu.Unlock()
	s := &p.slots[int(rt.relayID%uint32(len(p.slots)))]
	if s.used && !s.failed {
		evicted = true
	} else {
		p.n++
	}
	*s = rt
	return evicted
}

// take removes and returns the live route of relayID. A tombstone
// (fail) is removed too, and reported by failed: the command was
// answered already.
func (p *pendingTable) take(relayID uint32) (rt route, ok, failed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := &p.slots[int(relayID%uint32(len(p.slots)))]
	if !s.used || s.relayID != relayID {
		return route{}, false, false
	}
	rt = *s
	*s = route{}
	if rt.failed {
		return route{}, false, true
	}
	p.n--
	return rt, true, false
}

// fail returns the live route of relayID and leaves a tombstone in its
// place: the command is answered with a relay error, and a response
// that comes after it is dropped (take reports it failed).
func (p *pendingTable) fail(relayID uint32) (route, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := &p.slots[int(relayID%uint32(len(p.slots)))]
	if !s.used || s.relayID != relayID || s.failed {
		return route{}, false
	}
	rt := *s
	s.failed, s.c = true, nil // the tombstone holds no client
	p.n--
	return rt, true
}

// expire forgets the routes older than timeout and returns how many.
func (p *pendingTable) expire(now time.Time, timeout time.Duration) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := 0
	for i := range p.slots {
		if s := &p.slots[i]; s.used && now.Sub(s.at) > timeout {
			if !s.failed {
				p.n--
				k++
			}
			*s = route{}
		}
	}
	return k
}

func (p *pendingTable) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}
