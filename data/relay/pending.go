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
}

// pendingTable maps relay ids to routes in a fixed ring indexed by the
// relay id, which grows by one per command: memory is bounded, nothing
// is allocated per command, and when the ring wraps onto a command still
// waiting, that oldest one is forgotten (its response, if it ever comes,
// goes to every commands client).
type pendingTable struct {
	mu    sync.Mutex
	slots []route
	n     int
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
	if s.used {
		evicted = true
	} else {
		p.n++
	}
	*s = rt
	return evicted
}

// take removes and returns the route of relayID.
func (p *pendingTable) take(relayID uint32) (route, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := &p.slots[int(relayID%uint32(len(p.slots)))]
	if !s.used || s.relayID != relayID {
		return route{}, false
	}
	rt := *s
	*s = route{}
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
			*s = route{}
			p.n--
			k++
		}
	}
	return k
}

func (p *pendingTable) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}
