package hellocycle

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/hellopics/hellopics/internal/ratelog"
	"github.com/hellopics/hellopics/pkg/appliance"
	"github.com/hellopics/hellopics/pkg/hello"
	hellocyclev1 "github.com/hellopics/hellopics/proto/hellopics/hellocycle/v1"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// Defaults and limits.
const (
	// DefaultInterval is the Hello interval when none is set.
	DefaultInterval = time.Second
	// MinInterval is the shortest interval accepted.
	MinInterval = 10 * time.Millisecond
	// MinCountersInterval is the shortest CountersInterval accepted.
	MinCountersInterval = 10 * time.Millisecond
	// SequenceName is the replicated sequence the hellos are numbered
	// from (Node.Sequence): an application beside this one must not use
	// it.
	SequenceName = "hellopics.hello"
	// MaxSeqJump bounds how far a component's Seen may move the numbers
	// on: a larger report is refused (it is forged or corrupt: no
	// honest component saw a number that far above the master's).
	MaxSeqJump = uint64(1) << 48
	// DefaultMaxPairs bounds the replicated counters, in pairs.
	DefaultMaxPairs = 65536
	// floodInterval is how often a flooding line (a hello missed while
	// a link is cut) is logged at WARN per pair.
	floodInterval = 10 * time.Second
)

// Config configures the Hello cycle application of mgmt.
type Config struct {
	// Interval is the time between two hellos of a pair, and the hello
	// timeout. Default DefaultInterval; at least MinInterval.
	Interval time.Duration
	// Spread moves pairs started together apart over the interval
	// (hello.Config.Spread). Default true in DefaultConfig.
	Spread bool
	// CountersInterval is how often the counters of the pairs that
	// changed are replicated to the backups, in one update. A new master
	// after a crash counts on from counters up to this old (the hellos
	// of the gap since count as missed: its outage). Default: the
	// interval; at least MinCountersInterval.
	CountersInterval time.Duration
	// MaxPairs bounds the pairs whose counters are kept; a replicated
	// update beyond it is refused. Default DefaultMaxPairs.
	MaxPairs int
}

// DefaultConfig is the configuration of a 1 s cycle.
func DefaultConfig() Config {
	return Config{Interval: DefaultInterval, Spread: true}
}

func (c *Config) normalize() error {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Interval < MinInterval {
		return fmt.Errorf("hellocycle: interval %v below the minimum %v", c.Interval, MinInterval)
	}
	if c.CountersInterval == 0 {
		c.CountersInterval = c.Interval
	}
	if c.CountersInterval < MinCountersInterval {
		return fmt.Errorf("hellocycle: counters interval %v below the minimum %v", c.CountersInterval, MinCountersInterval)
	}
	if c.MaxPairs == 0 {
		c.MaxPairs = DefaultMaxPairs
	}
	if c.MaxPairs < 0 {
		return fmt.Errorf("hellocycle: MaxPairs %d: must be positive", c.MaxPairs)
	}
	return nil
}

// Cycle is the handle on a running Mgmt application: its counters, for
// tests and a status view. Its methods must be called on mgmt's loop
// (from hooks, handlers, or Node.Do).
type Cycle struct {
	cfg    Config
	node   *appliance.Node
	log    hclog.Logger
	floods *ratelog.Logger
	seq    *appliance.Sequence
	cycle  *hello.Cycle
	// tick is armed at the cycle's next deadline; flush replicates the
	// dirty counters.
	tick, flush *appliance.Timer
	// flushArmed: flush is pending (the dirty counters go when it fires).
	flushArmed bool
	state      *counterState
	// seenFrom are the halves of each pair whose Seen arrived since it
	// was last lost; waiting the ready pairs whose cycle waits for them.
	seenFrom map[string]uint8
	waiting  map[string]*appliance.Timer
	dirty    map[string]struct{}
	// refusedSeen counts Seen reports refused (a jump too far); stale
	// the hellos of an earlier mastership that came back here.
	refusedSeen, stale uint64
	// updates counts the counter updates replicated.
	updates uint64
}

// Mgmt returns the Hello cycle application of mgmt and its handle.
func Mgmt(cfg Config) (*appliance.App, *Cycle, error) {
	if err := cfg.normalize(); err != nil {
		return nil, nil, err
	}
	c := &Cycle{cfg: cfg, state: newCounterState(cfg.MaxPairs), dirty: map[string]struct{}{},
		seenFrom: map[string]uint8{}, waiting: map[string]*appliance.Timer{}}
	mux := appliance.NewMux()
	appliance.Handle(mux, c.back)
	appliance.Handle(mux, c.seen)
	appliance.HandleOperator(mux, appliance.Read, c.status)
	return &appliance.App{
		Name:         "hellocycle",
		Mux:          mux,
		State:        c.state,
		OnStart:      c.start,
		OnStop:       c.stop,
		OnMastership: c.mastership,
		OnPairReady:  c.pairReady,
		OnPairLost:   c.pairLost,
		// A switchover hands over the counters as they are now.
		OnSwitchover: func(string) { c.replicate() },
	}, c, nil
}

func (c *Cycle) start(n *appliance.Node) {
	c.node = n
	c.log = n.Logger()
	c.floods = ratelog.NewDebug(c.log, floodInterval)
	seq, err := n.Sequence(SequenceName)
	if err != nil {
		// Only a full set of sequences fails here: another application
		// took them all. No hello can be numbered safely.
		c.log.Error("hello cycle cannot number its hellos; it will not run", "component", "mgmt", "error", err)
		return
	}
	c.seq = seq
	cy, err := hello.New(hello.Config{Interval: c.cfg.Interval, Spread: c.cfg.Spread, Numbers: seq, Epoch: n.Epoch()})
	if err != nil {
		c.log.Error("hello cycle cannot number its hellos; it will not run", "component", "mgmt", "error", err)
		return
	}
	c.cycle = cy
}

func (c *Cycle) stop() {
	if c.tick != nil {
		c.tick.Stop()
	}
	if c.flush != nil {
		c.flush.Stop()
	}
}

// mastership: a new master takes the counters the old one replicated,
// and counts the gap since their last returned hello as an outage
// unless the mastership was handed over; an old one stops every cycle.
func (c *Cycle) mastership(master bool, epoch uint64) {
	if c.cycle == nil {
		return
	}
	c.cycle.SetEpoch(epoch)
	if !master {
		for _, id := range c.cycle.Pairs() {
			c.carry(c.cycle.Stop(id, "no longer master"))
		}
		c.arm()
		return
	}
	for id, hc := range c.state.pairs {
		c.cycle.Restore(id, hc)
	}
	c.cycle.TakeOver(c.node.HandedOver())
}

// pairReady starts the pair's cycle once both of its components told
// the highest number they saw (Seen): a component that reconnects ready
// makes its pair ready with its Identify, before the Seen behind it
// arrives, and a single restarted mgmt would number from 1 again. A
// component that saw no hello sends no Seen, so the cycle starts
// anyway one interval after the pair became ready.
func (c *Cycle) pairReady(pairID string, epoch uint64) {
	if c.cycle == nil {
		return
	}
	c.cycle.SetEpoch(max(epoch, c.node.Epoch()))
	if c.seenFrom[pairID] == seenBoth {
		c.startPair(pairID)
		return
	}
	if c.waiting[pairID] == nil {
		c.waiting[pairID] = c.node.After(c.cfg.Interval, func() { c.startPair(pairID) })
	}
}

// startPair starts a ready pair's cycle (pairReady).
func (c *Cycle) startPair(pairID string) {
	if t := c.waiting[pairID]; t != nil {
		t.Stop()
		delete(c.waiting, pairID)
	}
	c.carry(c.cycle.Start(pairID, time.Now()))
	c.arm()
}

func (c *Cycle) pairLost(pairID, reason string) {
	if c.cycle == nil {
		return
	}
	delete(c.seenFrom, pairID)
	if t := c.waiting[pairID]; t != nil {
		t.Stop()
		delete(c.waiting, pairID)
	}
	c.carry(c.cycle.Stop(pairID, reason))
	c.arm()
}

// back takes a hello back from its last hop. One of an earlier
// mastership's epoch (sent by the master before a switchover or a
// failover, passed on after the component followed this one) is not
// this master's to count: it is dropped, counted in StaleHellos.
func (c *Cycle) back(ctx *appliance.Context, h *hellopicsv1.Hello) error {
	if c.cycle == nil || !c.node.IsMaster() {
		return nil // a backup has no cycle running: nothing to count
	}
	if h.GetEpoch() < c.node.Epoch() {
		c.stale++
		if c.log.IsDebug() {
			c.log.Debug("hello of an earlier mastership came back; not counted", "component", "mgmt", "step", "hello_stale",
				"peer", ctx.From.String(), "pair", ctx.From.PairID, "seq", h.GetSeq(), "epoch", h.GetEpoch())
		}
		return nil
	}
	c.carry(c.cycle.Back(ctx.From.PairID, ctx.From.Role.Wire(), h, time.Now()))
	return nil
}

// The halves of a pair whose Seen arrived (Cycle.seenFrom).
const (
	seenCtrl = 1 << iota
	seenData
	seenBoth = seenCtrl | seenData
)

// markSeen records a component's Seen and starts its pair's cycle if it
// waits for no other.
func (c *Cycle) markSeen(from appliance.Peer) {
	bit := uint8(seenCtrl)
	if from.Role == appliance.Data {
		bit = seenData
	}
	c.seenFrom[from.PairID] |= bit
	if c.seenFrom[from.PairID] == seenBoth && c.waiting[from.PairID] != nil {
		c.startPair(from.PairID)
	}
}

// errSeenJump refuses a Seen too far above the numbers in use.
var errSeenJump = errors.New("hellocycle: reported hello number too far above the master's")

// seen takes a component's highest forwarded number: the numbers go on
// above it.
func (c *Cycle) seen(ctx *appliance.Context, m *hellocyclev1.Seen) error {
	if c.seq == nil {
		return nil
	}
	defer c.markSeen(ctx.From)
	ls, next := m.GetLastSeq(), c.seq.Peek()
	if ls < next {
		return nil
	}
	if ls-next >= MaxSeqJump || ls >= hello.SeqLimit-1 {
		c.refusedSeen++
		return fmt.Errorf("%w: %d, next %d, at most %d above", errSeenJump, ls, next, MaxSeqJump)
	}
	c.log.Debug("hello numbers moved past a component's", "component", "mgmt", "step", "seen",
		"peer", ctx.From.String(), "pair", ctx.From.PairID, "seq", ls)
	c.seq.Observe(ls)
	return nil
}

// carry sends the cycle's hellos and logs and publishes its events.
func (c *Cycle) carry(outs []hello.Output) {
	for _, o := range outs {
		switch o := o.(type) {
		case hello.Send:
			to := appliance.To(appliance.RoleOf(o.To), o.PairID)
			if err := c.node.Send(to, o.Hello); err != nil {
				// Counted as missed when the next is due.
				c.floods.Warn("send:"+o.PairID, "hello not sent", "component", "mgmt", "step", "hello_send_failed",
					"peer", to.String(), "pair", o.PairID, "seq", o.Hello.GetSeq(), "error", err)
			}
		case hello.Event:
			c.event(o)
		}
	}
}

// stepNames are the log steps of the cycle's events, as the built-in
// cycle's (docs/logs.md).
var stepNames = map[hello.EventKind]string{
	hello.EventStarted:    "cycle_started",
	hello.EventStopped:    "cycle_stopped",
	hello.EventSent:       "hello_sent",
	hello.EventReturned:   "hello_returned",
	hello.EventMissed:     "hello_missed",
	hello.EventOutOfOrder: "hello_out_of_order",
	hello.EventOutage:     "outage",
}

func (c *Cycle) event(ev hello.Event) {
	step := stepNames[ev.Kind]
	args := []any{"component", "mgmt", "step", step}
	if ev.Peer != hellopicsv1.Role_ROLE_UNSPECIFIED {
		args = append(args, "peer", hello.RoleName(ev.Peer))
	}
	args = append(args, "pair", ev.PairID)
	if ev.Seq != 0 {
		args = append(args, "seq", ev.Seq)
	}
	if ev.Epoch != 0 {
		args = append(args, "epoch", ev.Epoch)
	}
	args = append(args, ev.Attrs...)
	// The built-in cycle's levels (handshake.EventKind.Level).
	switch ev.Kind {
	case hello.EventSent, hello.EventReturned:
		if c.log.IsDebug() {
			c.log.Debug(ev.Message, args...)
		}
	case hello.EventMissed, hello.EventOutOfOrder:
		c.floods.Warn(step+":"+ev.PairID, ev.Message, args...)
		c.publish(step, ev)
	case hello.EventStarted:
		c.log.Info(ev.Message, args...)
		c.publish(step, ev)
	default:
		c.log.Warn(ev.Message, args...)
		c.publish(step, ev)
	}
	switch ev.Kind {
	case hello.EventReturned:
		c.node.HelloReturned(ev.PairID, ev.RTT)
	case hello.EventOutage:
		c.node.HelloOutage(ev.Outage)
	}
	if ev.Kind != hello.EventStarted && ev.Kind != hello.EventStopped {
		c.markDirty(ev.PairID)
	}
}

// publish puts ev in the operator event stream.
func (c *Cycle) publish(step string, ev hello.Event) {
	msg := ev.Message
	if ev.Seq != 0 {
		msg = fmt.Sprintf("%s (seq %d)", msg, ev.Seq)
	}
	if err := c.node.Publish(step, ev.PairID, msg); err != nil {
		c.log.Debug("hello event not published", "component", "mgmt", "pair", ev.PairID, "step", step, "error", err)
	}
}

// markDirty schedules the replication of a pair's counters: at most
// CountersInterval after the first change since the last replication,
// however many follow (a later change never postpones it).
func (c *Cycle) markDirty(id string) {
	c.dirty[id] = struct{}{}
	if c.flushArmed {
		return
	}
	c.flushArmed = true
	if c.flush == nil {
		c.flush = c.node.After(c.cfg.CountersInterval, c.replicate)
	} else {
		c.flush.Reset(time.Now().Add(c.cfg.CountersInterval))
	}
}

// replicate sends the counters of the pairs that changed to the
// backups, in one update.
func (c *Cycle) replicate() {
	c.flushArmed = false
	if c.flush != nil {
		c.flush.Stop() // called before it fired (a switchover): it must not fire too
	}
	if len(c.dirty) == 0 || !c.node.IsMaster() {
		clear(c.dirty)
		return
	}
	ids := make([]string, 0, len(c.dirty))
	for id := range c.dirty {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	clear(c.dirty)
	u := &hellocyclev1.Counters{Pairs: make([]*hellocyclev1.PairCounters, 0, len(ids))}
	for _, id := range ids {
		u.Pairs = append(u.Pairs, &hellocyclev1.PairCounters{PairId: id, Counters: c.cycle.Counters(id)})
	}
	b, err := proto.Marshal(u)
	if err == nil {
		err = c.node.Replicate(b, nil)
	}
	if err == nil {
		c.updates++
	}
	if err != nil {
		c.log.Warn("hello counters not replicated", "component", "mgmt", "step", "counters_sync", "pairs", len(ids), "error", err)
	}
}

// arm sets the tick timer to the cycle's next deadline.
func (c *Cycle) arm() {
	next, ok := c.cycle.NextDeadline()
	switch {
	case !ok:
		if c.tick != nil {
			c.tick.Stop()
		}
	case c.tick == nil:
		c.tick = c.node.At(next, c.onTick)
	default:
		c.tick.Reset(next)
	}
}

func (c *Cycle) onTick() {
	c.carry(c.cycle.Tick(time.Now()))
	c.arm()
}

// Counters returns a pair's counters (nil for a pair never seen): the
// live ones on the master, the replicated ones on a backup.
func (c *Cycle) Counters(pairID string) *hellopicsv1.HelloCounters {
	if c.node != nil && c.node.IsMaster() && c.cycle != nil && c.cycle.Has(pairID) {
		return c.cycle.Counters(pairID)
	}
	if hc := c.state.pairs[pairID]; hc != nil {
		return proto.Clone(hc).(*hellopicsv1.HelloCounters)
	}
	return nil
}

// Running reports whether a pair's cycle runs here.
func (c *Cycle) Running(pairID string) bool { return c.cycle != nil && c.cycle.Running(pairID) }

// NextSeq is the number the next hello will carry.
func (c *Cycle) NextSeq() uint64 {
	if c.seq == nil {
		return 0
	}
	return c.seq.Peek()
}

// Updates counts the counter updates this instance replicated: one per
// CountersInterval at most, while counters change.
func (c *Cycle) Updates() uint64 { return c.updates }

// StaleHellos counts the hellos of an earlier mastership's epoch that
// came back here, and were not counted.
func (c *Cycle) StaleHellos() uint64 { return c.stale }

// RefusedSeen counts the components' reports refused as too far ahead.
func (c *Cycle) RefusedSeen() uint64 { return c.refusedSeen }

// status answers the operator's StatusRequest.
func (c *Cycle) status(ctx *appliance.Context, req *hellocyclev1.StatusRequest) error {
	resp := &hellocyclev1.StatusResponse{NextSeq: c.NextSeq(), Epoch: c.node.Epoch()}
	ids := map[string]struct{}{}
	for id := range c.state.pairs {
		ids[id] = struct{}{}
	}
	if c.cycle != nil {
		for _, id := range c.cycle.Pairs() {
			ids[id] = struct{}{}
		}
	}
	sorted := make([]string, 0, len(ids))
	for id := range ids {
		if req.GetPairId() == "" || id == req.GetPairId() {
			sorted = append(sorted, id)
		}
	}
	sort.Strings(sorted)
	for _, id := range sorted {
		resp.Pairs = append(resp.Pairs, &hellocyclev1.PairCounters{PairId: id, Counters: c.Counters(id)})
		if c.Running(id) {
			resp.Running = append(resp.Running, id)
		}
	}
	return ctx.Reply(resp)
}
