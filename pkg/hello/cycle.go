// Package hello is the Hello cycle as a pure state machine: for every
// ctrl/data pair whose two components are ready, mgmt sends a numbered
// hello every interval, alternately mgmt -> ctrl -> data -> mgmt and
// mgmt -> data -> ctrl -> mgmt, and counts what comes back: sent,
// received, missed (not back when the next was due, or due while a
// failover kept the cycle silent) and out of order.
//
// A Cycle is fed events (a pair ready or lost, a hello back, the time)
// and returns what to send and what happened, in the manner of
// etcd-io/raft: it does no I/O, keeps no clock and starts no goroutine.
// Its driver owns the sessions: today the handshake's mgmt machine
// (pkg/handshake), which maps a Send to the pair's session.
//
// Numbers come from one counter for all pairs. They are never reused by
// a later master: the driver syncs NextSeq to the backups with a reserve
// (Restore takes the larger), and Observe goes past the numbers a
// component reports having forwarded. Every hello carries the epoch it
// was sent at; one that comes back with another epoch is another
// master's, not this one's.
package hello

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// SeqLimit bounds hello numbers: the cycle never sends SeqLimit-1 or
// above (a component's report saturates there), and stops instead.
const SeqLimit = uint64(1) << 63

// Config configures a Cycle.
type Config struct {
	// Interval is the time between two hellos of a pair; required.
	Interval time.Duration
	// Spread moves each pair's hellos toward a phase of its own (a hash
	// of its id), so that pairs started together stop sending in
	// lock-step within a few intervals; no gap moves by more than a
	// tenth of the interval.
	Spread bool
	// Epoch is the mastership epoch hellos are stamped with (SetEpoch
	// changes it).
	Epoch uint64
	// Numbers, if set, hands out the hello numbers instead of the
	// Cycle's own counter: a replicated sequence on the framework API
	// (pkg/appliance Sequence), which keeps them unique across
	// failovers by itself. NextSeq, Observe and RestoreNextSeq then
	// read and raise it.
	Numbers Numbers
}

// Numbers is a source of hello numbers that only grow (pkg/appliance's
// *Sequence is one).
type Numbers interface {
	// Next hands out the next number, or fails (the cycle then stops).
	Next() (uint64, error)
	// Peek is the number Next would hand out now.
	Peek() uint64
	// Observe makes sure Next never hands out v or below.
	Observe(v uint64)
}

// Cycle runs the Hello cycles of every pair. Not safe for concurrent use.
type Cycle struct {
	cfg     Config
	nextSeq uint64
	pairs   map[string]*pair
	due     dueHeap
	// buf holds the outputs of the last call, reused by the next.
	buf outputs
}

// outputs returns buf emptied, for a call's outputs: what a call
// returns is valid until the next call (the driver carries it out at
// once), so a stream of hellos does not allocate a slice each.
func (c *Cycle) outputs() outputs {
	clear(c.buf)
	return c.buf[:0]
}

// pair is one pair's cycle and counters.
type pair struct {
	id      string
	running bool
	nextDue time.Time
	nextDir hellopicsv1.Direction
	// outstanding is the hello in flight (seq 0: none).
	outstanding sent

	sent, received, missed, outOfOrder, lastSeq uint64
	lastHello                                   time.Time
	lastRTT                                     time.Duration
	hasLastHello                                bool

	// phase is where in the interval the pair's hellos go (phaseNudge;
	// -1 until computed).
	phase time.Duration
	// outagePending: this instance took over with the pair's synced
	// lastHello (the old master's last returned hello); the first hello
	// back counts the gap (countOutage).
	outagePending bool
}

// sent is a hello in flight.
type sent struct {
	seq uint64
	dir hellopicsv1.Direction
	// epoch is the one the hello was sent at: a hello that comes back
	// with the same number but another epoch is another master's (two
	// masters number from the same synced counter), not this one.
	epoch  uint64
	sentAt time.Time
}

// New returns a Cycle with no pairs whose first hello number is 1.
func New(cfg Config) (*Cycle, error) {
	if cfg.Interval <= 0 {
		return nil, fmt.Errorf("hello: interval %v: must be positive", cfg.Interval)
	}
	return &Cycle{cfg: cfg, nextSeq: 1, pairs: make(map[string]*pair)}, nil
}

// Output is a Send or an Event. The outputs a method returns are valid
// until the next call to the Cycle: carry them out, or copy them, first.
type Output interface{ isOutput() }

// Send asks the driver to send Hello to the component of role To in
// pair PairID (the hello's first hop).
type Send struct {
	PairID string
	To     hellopicsv1.Role
	Hello  *hellopicsv1.Hello
}

// EventKind says what an Event reports.
type EventKind int

// The events.
const (
	// EventStarted: both components ready, the cycle runs (Seq: the
	// next number).
	EventStarted EventKind = iota + 1
	// EventStopped: the cycle stopped (Seq: the last number sent;
	// Reason says why).
	EventStopped
	// EventSent: a hello went to Peer, its first hop.
	EventSent
	// EventReturned: the hello in flight came back from Peer, its last
	// hop (RTT).
	EventReturned
	// EventMissed: the hello in flight was not back when the next was
	// due.
	EventMissed
	// EventOutOfOrder: a hello came back that is not the one in flight.
	EventOutOfOrder
	// EventOutage: the first hello back after a failover; the hellos
	// due while the cycle was silent (Outage) count as missed.
	EventOutage
)

// Event reports something the driver logs, counts or publishes.
type Event struct {
	Kind   EventKind
	PairID string
	// Peer is the component concerned (the first hop of a sent hello,
	// the sender of one back).
	Peer hellopicsv1.Role
	Seq  uint64
	// Epoch is the cycle's epoch; for EventOutOfOrder, the hello's.
	Epoch   uint64
	Message string
	// Attrs are further key/value pairs for the log line.
	Attrs  []any
	RTT    time.Duration
	Outage time.Duration
}

func (Send) isOutput()  {}
func (Event) isOutput() {}

type outputs []Output

func (o *outputs) event(e Event) { *o = append(*o, e) }

// NextSeq is the number the next hello will carry.
func (c *Cycle) NextSeq() uint64 {
	if c.cfg.Numbers != nil {
		return c.cfg.Numbers.Peek()
	}
	return c.nextSeq
}

// Interval is the time between two hellos of a pair.
func (c *Cycle) Interval() time.Duration { return c.cfg.Interval }

// SetEpoch sets the epoch hellos are stamped with from now on.
func (c *Cycle) SetEpoch(epoch uint64) { c.cfg.Epoch = epoch }

// Observe makes sure no hello carries seq or a number below it: a
// component reports the highest it forwarded, which a master that took
// over without the old master's state must go past. Numbers at or above
// SeqLimit are the caller's to refuse; Observe caps them.
func (c *Cycle) Observe(seq uint64) {
	seq = min(seq, SeqLimit-1)
	if c.cfg.Numbers != nil {
		c.cfg.Numbers.Observe(seq)
		return
	}
	if seq >= c.nextSeq {
		c.nextSeq = seq + 1
	}
}

// Running reports whether pair id's cycle runs.
func (c *Cycle) Running(id string) bool {
	p := c.pairs[id]
	return p != nil && p.running
}

// Has reports whether the Cycle knows pair id (started, restored or
// heard from, and not forgotten).
func (c *Cycle) Has(id string) bool { return c.pairs[id] != nil }

// Counters returns pair id's counters (zero for a pair never seen).
func (c *Cycle) Counters(id string) *hellopicsv1.HelloCounters {
	p := c.pairs[id]
	if p == nil {
		return &hellopicsv1.HelloCounters{}
	}
	return p.counters()
}

func (p *pair) counters() *hellopicsv1.HelloCounters {
	hc := &hellopicsv1.HelloCounters{
		Sent: p.sent, Received: p.received, Missed: p.missed, OutOfOrder: p.outOfOrder, LastSeq: p.lastSeq,
	}
	if p.hasLastHello {
		hc.LastHello = timestampOf(p.lastHello)
		hc.LastRtt = durationOf(p.lastRTT)
	}
	return hc
}

// get returns pair id, creating it.
func (c *Cycle) get(id string) *pair {
	p := c.pairs[id]
	if p == nil {
		p = &pair{id: id, phase: -1}
		c.pairs[id] = p
	}
	return p
}

// Forget drops pair id and its counters (the registry expired it).
func (c *Cycle) Forget(id string) { delete(c.pairs, id) }

// Start starts pair id's cycle, both of its components being ready, and
// sends its first hello, mgmt -> ctrl -> data. A running cycle is left
// alone.
func (c *Cycle) Start(id string, now time.Time) []Output {
	p := c.get(id)
	if p.running {
		return nil
	}
	out := c.outputs()
	p.running = true
	p.nextDir = hellopicsv1.Direction_DIRECTION_MGMT_CTRL_DATA
	p.outstanding = sent{}
	out.event(Event{Kind: EventStarted, PairID: id, Seq: c.NextSeq(), Epoch: c.cfg.Epoch,
		Message: "ctrl and data ready; hello cycle started", Attrs: []any{"hello_interval", c.cfg.Interval.String()}})
	c.send(&out, p, now)
	c.buf = out
	return out
}

// Stop stops pair id's cycle (a component lost, mastership lost); the
// hello in flight is forgotten, not counted. A stopped cycle is left
// alone.
func (c *Cycle) Stop(id, reason string) []Output {
	p := c.pairs[id]
	if p == nil || !p.running {
		return nil
	}
	p.running = false
	p.outstanding = sent{}
	out := c.outputs()
	out.event(Event{Kind: EventStopped, PairID: id, Seq: p.lastSeq, Epoch: c.cfg.Epoch,
		Message: "hello cycle stopped", Attrs: []any{"reason", reason}})
	c.buf = out
	return out
}

// TakeOver tells the Cycle that its driver became master. After a
// crash failover the time since the old master's last returned hello
// (synced, Restore) is an outage, counted at each pair's first hello
// back. planned says the mastership was handed over (a graceful
// switchover): the old master stopped its cycles on purpose and the
// pause is not an outage.
func (c *Cycle) TakeOver(planned bool) {
	for _, p := range c.pairs {
		p.outagePending = p.hasLastHello && !planned
	}
}

// countOutage counts the hellos a failover cost p, at the first hello
// back under this master: every interval since the old master's last
// returned hello (synced, so on that master's clock) beyond the one
// just returned is a missed hello. A gap of two intervals or less is
// no outage.
func (c *Cycle) countOutage(out *outputs, p *pair, now time.Time) {
	p.outagePending = false
	gap := now.Sub(p.lastHello)
	if gap <= 2*c.cfg.Interval {
		return
	}
	lost := uint64(gap/c.cfg.Interval) - 1
	p.missed = addSat(p.missed, lost)
	out.event(Event{Kind: EventOutage, PairID: p.id, Epoch: c.cfg.Epoch, Outage: gap,
		Message: "hello cycle back after a failover; the hellos due meanwhile count as missed",
		Attrs:   []any{"outage", gap.Round(time.Millisecond).String(), "missed", lost}})
}

// send sends p's next hello and schedules the one after.
func (c *Cycle) send(out *outputs, p *pair, now time.Time) {
	seq, err := c.number()
	if err != nil {
		// Unreachable by honest components, but never send a number a
		// component cannot report in full (its report saturates at
		// SeqLimit-1): stop instead.
		p.running = false
		p.outstanding = sent{}
		out.event(Event{Kind: EventStopped, PairID: p.id, Seq: p.lastSeq, Epoch: c.cfg.Epoch, Message: "hello cycle stopped",
			Attrs: []any{"reason", err.Error()}})
		return
	}
	h := sent{seq: seq, dir: p.nextDir, epoch: c.cfg.Epoch, sentAt: now}
	first := hellopicsv1.Role_ROLE_CTRL
	if h.dir == hellopicsv1.Direction_DIRECTION_MGMT_DATA_CTRL {
		first = hellopicsv1.Role_ROLE_DATA
		p.nextDir = hellopicsv1.Direction_DIRECTION_MGMT_CTRL_DATA
	} else {
		p.nextDir = hellopicsv1.Direction_DIRECTION_MGMT_DATA_CTRL
	}
	p.outstanding = h
	p.sent = addSat(p.sent, 1)
	p.lastSeq = h.seq
	c.schedule(p, now.Add(c.cfg.Interval+c.phaseNudge(p, now)))
	*out = append(*out, Send{PairID: p.id, To: first, Hello: &hellopicsv1.Hello{
		Seq: h.seq, Direction: h.dir, Epoch: c.cfg.Epoch, PairId: p.id, SentUnixNano: now.UnixNano(),
	}})
	out.event(Event{Kind: EventSent, Peer: first, PairID: p.id, Seq: h.seq, Epoch: c.cfg.Epoch, Message: h.dir.String()})
}

// errExhausted stops a cycle at the end of the numbers.
var errExhausted = errors.New("hello numbers exhausted")

// number takes the next hello number: below SeqLimit-1, from Numbers
// when set.
func (c *Cycle) number() (uint64, error) {
	if c.NextSeq() >= SeqLimit-1 {
		return 0, errExhausted
	}
	if c.cfg.Numbers != nil {
		v, err := c.cfg.Numbers.Next()
		if err != nil {
			return 0, fmt.Errorf("no hello number: %w", err)
		}
		if v >= SeqLimit-1 {
			return 0, errExhausted
		}
		return v, nil
	}
	v := c.nextSeq
	c.nextSeq++
	return v, nil
}

// Back handles a hello coming back to mgmt from the component of role
// from in pair id. It must be the hello in flight, back from its last
// hop (data after mgmt -> ctrl -> data, ctrl the other way), at its
// epoch; anything else counts as out of order. id must be a pair the
// driver registered (the Cycle keeps counters for every id it is given,
// until Forget): the pair a component identified for, not the hello's
// own pair_id, which is checked against it.
func (c *Cycle) Back(id string, from hellopicsv1.Role, h *hellopicsv1.Hello, now time.Time) []Output {
	out := c.outputs()
	p := c.get(id)
	lastHop := hellopicsv1.Role_ROLE_DATA
	if h.GetDirection() == hellopicsv1.Direction_DIRECTION_MGMT_DATA_CTRL {
		lastHop = hellopicsv1.Role_ROLE_CTRL
	}
	o := p.outstanding
	if !p.running || o.seq == 0 || h.GetSeq() != o.seq || h.GetDirection() != o.dir ||
		from != lastHop || h.GetPairId() != id || h.GetEpoch() != o.epoch {
		p.outOfOrder = addSat(p.outOfOrder, 1)
		msg := "hello came back with an unexpected number"
		if p.running && o.seq != 0 && h.GetSeq() == o.seq && h.GetEpoch() != o.epoch {
			// Same number, other epoch: a hello another master sent
			// (during a split, both number from the synced counter).
			msg = "hello of another master's epoch came back"
		}
		out.event(Event{Kind: EventOutOfOrder, Peer: from, PairID: id, Seq: h.GetSeq(), Epoch: h.GetEpoch(),
			Message: msg,
			Attrs:   []any{"direction", h.GetDirection().String(), "from", RoleName(from), "expected", o.seq, "expected_epoch", o.epoch}})
		c.buf = out
		return out
	}
	p.outstanding = sent{}
	p.received = addSat(p.received, 1)
	if p.outagePending {
		c.countOutage(&out, p, now)
	}
	p.lastHello = now
	p.lastRTT = now.Sub(o.sentAt)
	p.hasLastHello = true
	out.event(Event{Kind: EventReturned, Peer: lastHop, PairID: id, Seq: o.seq, Epoch: c.cfg.Epoch,
		Message: fmt.Sprintf("rtt %v", p.lastRTT), RTT: p.lastRTT})
	c.buf = out
	return out
}

// Tick advances the cycles to now: each pair whose next hello is due
// counts the one in flight as missed and sends the next. After a long
// pause (a late Tick) a pair sends one hello, not a burst. Pairs are
// handled in id order.
func (c *Cycle) Tick(now time.Time) []Output {
	out := c.outputs()
	for _, p := range c.dueAt(now) {
		if p.outstanding.seq != 0 {
			p.missed = addSat(p.missed, 1)
			out.event(Event{Kind: EventMissed, PairID: p.id, Seq: p.outstanding.seq, Epoch: c.cfg.Epoch,
				Message: "hello not back when the next was due",
				Attrs:   []any{"direction", p.outstanding.dir.String(), "waited", now.Sub(p.outstanding.sentAt).Round(time.Millisecond).String()}})
		}
		c.send(&out, p, now)
	}
	c.buf = out
	return out
}

// NextDeadline is when Tick must next be called; false if no cycle
// runs.
func (c *Cycle) NextDeadline() (time.Time, bool) { return c.nextDue() }

// Restore takes over pair id's counters from a snapshot or a delta of
// the old master (the cycle itself is not running here), and moves the
// next number past the pair's last one.
func (c *Cycle) Restore(id string, hc *hellopicsv1.HelloCounters) {
	p := c.get(id)
	p.sent, p.received, p.missed, p.outOfOrder = hc.GetSent(), hc.GetReceived(), hc.GetMissed(), hc.GetOutOfOrder()
	p.lastSeq = hc.GetLastSeq()
	if hc.GetLastHello() != nil {
		p.hasLastHello = true
		p.lastHello = hc.GetLastHello().AsTime()
		p.lastRTT = hc.GetLastRtt().AsDuration()
	}
	if p.lastSeq < math.MaxUint64 {
		c.Observe(p.lastSeq)
	}
}

// RestoreNextSeq moves the next number to n if it is higher (the mark a
// master synced, with its reserve).
func (c *Cycle) RestoreNextSeq(n uint64) {
	if n > c.NextSeq() {
		c.Observe(n - 1)
	}
}

// Pairs lists the pairs the Cycle knows, sorted.
func (c *Cycle) Pairs() []string {
	ids := make([]string, 0, len(c.pairs))
	for id := range c.pairs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func addSat(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

// RoleName is a role's short name: mgmt, ctrl, data, or unknown.
func RoleName(r hellopicsv1.Role) string {
	switch r {
	case hellopicsv1.Role_ROLE_CTRL:
		return "ctrl"
	case hellopicsv1.Role_ROLE_DATA:
		return "data"
	case hellopicsv1.Role_ROLE_MGMT:
		return "mgmt"
	}
	return "unknown"
}

// InFlight returns pair id's hello in flight: its number and direction;
// ok is false when none is.
func (c *Cycle) InFlight(id string) (seq uint64, dir hellopicsv1.Direction, ok bool) {
	p := c.pairs[id]
	if p == nil || p.outstanding.seq == 0 {
		return 0, 0, false
	}
	return p.outstanding.seq, p.outstanding.dir, true
}

// NextDue returns when pair id's next hello is due; ok is false when
// its cycle does not run.
func (c *Cycle) NextDue(id string) (at time.Time, ok bool) {
	p := c.pairs[id]
	if p == nil || !p.running {
		return time.Time{}, false
	}
	return p.nextDue, true
}
