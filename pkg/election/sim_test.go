package election

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// The simulated world: N machines wired by an in-memory network with a
// fake clock that advances one millisecond per step. Links can be cut
// (per direction), delayed or lossy; nodes can be paused (their inbound
// frames are buffered, as a socket would, and delivered on resume) or
// crashed and restarted from their persisted epoch. Every step checks
// the safety invariants.

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const simStep = time.Millisecond

type delivery struct {
	at       time.Time
	seq      int
	from, to string
	msg      proto.Message
}

type simNode struct {
	id      string
	cfg     Config
	e       *Election
	store   uint64 // the persisted epoch: survives crashes
	down    bool   // crashed, or not started yet
	paused  bool
	inbox   []delivery
	events  []Event
	applied []*hellopicsv1.SyncUpdate

	lastKnown  uint64 // highest epoch known, over all incarnations
	lastMaster uint64 // highest epoch mastered, over all incarnations
	wasMaster  bool   // master at the last check, at epoch masterAt
	masterAt   uint64
}

type link struct{ from, to string }

type sim struct {
	t       testing.TB
	now     time.Time
	nodes   map[string]*simNode
	order   []string
	queue   []delivery
	seq     int
	latency time.Duration
	jitter  time.Duration // extra random latency up to this
	loss    float64       // probability a frame is lost
	rng     *rand.Rand
	cut     map[link]bool
	drop    func(d delivery) bool // optional test hook: true drops a frame

	owner map[uint64]string // epoch -> the node that was master at it
}

// nodeSpec describes one simulated instance.
type nodeSpec struct {
	id        string
	priority  uint32
	nopreempt bool
	delay     time.Duration // PreemptDelay
	late      bool          // do not start it with the others
}

func newSim(t testing.TB, seed uint64, specs ...nodeSpec) *sim {
	t.Helper()
	s := &sim{
		t:       t,
		now:     t0,
		nodes:   map[string]*simNode{},
		latency: 2 * time.Millisecond,
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		cut:     map[link]bool{},
		owner:   map[uint64]string{},
	}
	for _, sp := range specs {
		var peers []Peer
		for _, o := range specs {
			if o.id != sp.id {
				peers = append(peers, Peer{ID: o.id, Addr: o.id + ":7400"})
			}
		}
		cfg := DefaultConfig(sp.id, sp.priority, peers...)
		cfg.NoPreempt = sp.nopreempt
		cfg.ComponentAddr = sp.id + ":7300"
		cfg.PreemptDelay = sp.delay
		s.nodes[sp.id] = &simNode{id: sp.id, cfg: cfg, down: true}
		s.order = append(s.order, sp.id)
	}
	sort.Strings(s.order)
	for _, sp := range specs {
		if !sp.late {
			s.start(sp.id)
		}
	}
	return s
}

// start boots (or restarts after a crash) a node from its persisted epoch.
func (s *sim) start(id string) {
	s.t.Helper()
	n := s.nodes[id]
	e, err := New(n.cfg, n.store)
	if err != nil {
		s.t.Fatalf("New(%s): %v", id, err)
	}
	n.e, n.down, n.paused, n.inbox, n.wasMaster = e, false, false, nil, false
	n.e.Tick(s.now)
	s.process(n)
}

func (s *sim) crash(id string) {
	n := s.nodes[id]
	n.down, n.paused, n.inbox, n.e = true, false, nil, nil
}

func (s *sim) pause(id string) { s.nodes[id].paused = true }

func (s *sim) resume(id string) {
	n := s.nodes[id]
	if n.down || !n.paused {
		return
	}
	n.paused = false
	in := n.inbox
	n.inbox = nil
	for _, d := range in {
		s.deliver(n, d)
	}
	n.e.Tick(s.now)
	s.process(n)
}

// partition cuts every link between the groups, both ways.
func (s *sim) partition(a, b []string) {
	for _, x := range a {
		for _, y := range b {
			s.cut[link{x, y}] = true
			s.cut[link{y, x}] = true
		}
	}
}

func (s *sim) heal() { s.cut = map[link]bool{} }

// run advances the world by d.
func (s *sim) run(d time.Duration) {
	s.t.Helper()
	s.runUntil(d, func() bool { return false })
}

// runUntil advances the world until cond holds (checked after every
// step) or max elapsed; it returns the time taken and whether cond held.
func (s *sim) runUntil(max time.Duration, cond func() bool) (time.Duration, bool) {
	s.t.Helper()
	start := s.now
	for s.now.Sub(start) < max {
		s.step()
		if cond() {
			return s.now.Sub(start), true
		}
	}
	return s.now.Sub(start), false
}

func (s *sim) step() {
	s.t.Helper()
	s.now = s.now.Add(simStep)
	for len(s.queue) > 0 && !s.queue[0].at.After(s.now) {
		d := s.queue[0]
		s.queue = s.queue[1:]
		n := s.nodes[d.to]
		switch {
		case n.down:
		case n.paused:
			n.inbox = append(n.inbox, d)
		default:
			s.deliver(n, d)
		}
	}
	for _, id := range s.order {
		n := s.nodes[id]
		if n.down || n.paused {
			continue
		}
		n.e.Tick(s.now)
		s.process(n)
		if next := n.e.Ready().NextTick; !next.After(s.now) {
			s.t.Fatalf("%s: after Tick, NextTick %v is not after now %v", n.id, next.Sub(t0), s.now.Sub(t0))
		}
	}
}

func (s *sim) deliver(n *simNode, d delivery) {
	s.t.Helper()
	if err := n.e.Step(s.now, d.from, d.msg); err != nil {
		// Members send nothing to refuse, but for the handover of a
		// master that was fenced while its handover was on the way.
		var r *Refusal
		if !errors.As(err, &r) || r.Reason != "handover" {
			s.t.Fatalf("%s: Step(%s, %T): %v", n.id, d.from, d.msg, err)
		}
	}
	s.process(n)
}

// process plays the shell: persist, apply, send, answer snapshot and
// flush requests; then it checks the invariants.
func (s *sim) process(n *simNode) {
	s.t.Helper()
	for n.e.HasReady() {
		rd := n.e.Ready()
		if rd.PersistEpoch != 0 {
			if rd.PersistEpoch < n.store {
				s.t.Fatalf("%s: asked to persist epoch %d below the stored %d", n.id, rd.PersistEpoch, n.store)
			}
			n.store = rd.PersistEpoch
		}
		n.applied = append(n.applied, rd.Apply...)
		for _, m := range rd.Messages {
			s.send(n.id, m)
		}
		for _, to := range rd.Snapshots {
			if err := n.e.Snapshot(to, s.pairs(), 7); err != nil {
				s.t.Fatalf("%s: Snapshot(%s): %v", n.id, to, err)
			}
		}
		if rd.Flush {
			if _, err := n.e.Sync(nil, 7); err != nil {
				s.t.Fatalf("%s: Sync on flush: %v", n.id, err)
			}
		}
		n.events = append(n.events, rd.Events...)
		if testing.Verbose() && len(rd.Events) > 0 {
			for _, ev := range rd.Events {
				s.t.Logf("%v %s: %v", ev.Time.Sub(t0), n.id, ev)
			}
		}
	}
	s.check(n)
}

func (s *sim) pairs() []*hellopicsv1.PairStatus {
	return []*hellopicsv1.PairStatus{{PairId: "p1"}}
}

func (s *sim) send(from string, m Message) {
	if s.cut[link{from, m.To}] {
		return
	}
	d := delivery{at: s.now.Add(s.latency), from: from, to: m.To, msg: m.Body}
	if s.jitter > 0 {
		d.at = d.at.Add(time.Duration(s.rng.Int64N(int64(s.jitter))))
	}
	if s.loss > 0 && s.rng.Float64() < s.loss {
		return
	}
	if s.drop != nil && s.drop(d) {
		return
	}
	s.seq++
	d.seq = s.seq
	// Keep the queue sorted by time; frames on one link stay in order
	// because a later frame never gets an earlier slot than one already
	// queued on the same link.
	for i := len(s.queue) - 1; i >= 0; i-- {
		q := s.queue[i]
		if q.from == d.from && q.to == d.to && q.at.After(d.at) {
			d.at = q.at
			break
		}
	}
	i := sort.Search(len(s.queue), func(i int) bool { return s.queue[i].at.After(d.at) })
	s.queue = append(s.queue, delivery{})
	copy(s.queue[i+1:], s.queue[i:])
	s.queue[i] = d
}

// check asserts the safety invariants after n moved.
func (s *sim) check(n *simNode) {
	s.t.Helper()
	e := n.e
	if e.Epoch() < n.lastKnown {
		s.t.Fatalf("%s: known epoch went back from %d to %d", n.id, n.lastKnown, e.Epoch())
	}
	n.lastKnown = e.Epoch()
	if n.store < e.Epoch() {
		s.t.Fatalf("%s: knows epoch %d but persisted only %d", n.id, e.Epoch(), n.store)
	}
	if e.Role() != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		n.wasMaster = false
		return
	}
	ep := e.Epoch()
	if o, ok := s.owner[ep]; ok && o != n.id {
		s.t.Fatalf("%v: %s is master at epoch %d, which %s held: two masters at one epoch", s.now.Sub(t0), n.id, ep, o)
	}
	if !n.wasMaster || ep != n.masterAt {
		// A new mastership: its epoch must be fresh for this node too,
		// over all its incarnations.
		if ep <= n.lastMaster {
			s.t.Fatalf("%v: %s master at epoch %d, not above its previous %d", s.now.Sub(t0), n.id, ep, n.lastMaster)
		}
		n.lastMaster = ep
	}
	n.wasMaster, n.masterAt = true, ep
	s.owner[ep] = n.id
}

// masters returns the nodes that consider themselves master (paused
// ones included: they do not know they are paused).
func (s *sim) masters() []string {
	var ms []string
	for _, id := range s.order {
		n := s.nodes[id]
		if !n.down && n.e.Role() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
			ms = append(ms, id)
		}
	}
	return ms
}

func (s *sim) master() string {
	if ms := s.masters(); len(ms) == 1 {
		return ms[0]
	}
	return ""
}

// converged reports whether exactly one live node is master and every
// other live node follows it at its epoch.
func (s *sim) converged() bool {
	m := s.master()
	if m == "" || s.nodes[m].paused {
		return false
	}
	ep := s.nodes[m].e.Epoch()
	for _, id := range s.order {
		n := s.nodes[id]
		if n.down || n.paused || id == m {
			continue
		}
		if n.e.Role() != hellopicsv1.MgmtRole_MGMT_ROLE_BACKUP || n.e.Master() != m || n.e.Epoch() != ep {
			return false
		}
	}
	return true
}

func (s *sim) mustConverge(max time.Duration) string {
	s.t.Helper()
	if _, ok := s.runUntil(max, s.converged); !ok {
		s.t.Fatalf("no convergence within %v: %s", max, s.describe())
	}
	return s.master()
}

func (s *sim) describe() string {
	out := ""
	for _, id := range s.order {
		n := s.nodes[id]
		switch {
		case n.down:
			out += fmt.Sprintf(" %s:down", id)
		default:
			out += fmt.Sprintf(" %s:%s/e%d/m=%q", id, n.e.Role(), n.e.Epoch(), n.e.Master())
			if n.paused {
				out += "(paused)"
			}
		}
	}
	return out
}

func (s *sim) hasEvent(id string, k EventKind) bool {
	for _, ev := range s.nodes[id].events {
		if ev.Kind == k {
			return true
		}
	}
	return false
}
