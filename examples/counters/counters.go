// Package counters is an example appliance built on hellopics: a copy
// of it is a good start for your own (docs/framework.md walks through
// it).
//
//   - Configuration is set through mgmt's operator API (SetConfig), kept
//     in mgmt's replicated state, pushed to every pair's ctrl and passed
//     on by ctrl to its data.
//   - Each data component generates units at the configured "rate" until
//     it has generated "limit" in all, and reports them to mgmt in
//     numbered Deltas. mgmt adds them to the pair's total in replicated
//     state and acknowledges a Delta once every live backup holds it, so
//     a failover loses nothing and a resent Delta is not counted twice.
//   - GetTotals, through the operator API, shows the counts.
//
// Every function below runs on its component's loop: no locks.
package counters

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	countersv1 "github.com/hellopics/hellopics/examples/counters/proto/counters/v1"
	"github.com/hellopics/hellopics/pkg/appliance"
)

// ---------------------------------------------------------------- mgmt

// mgmtApp is the application in mgmt: the replicated state (config and
// totals) and the handlers that change it.
type mgmtApp struct {
	node    *appliance.Node
	config  *countersv1.Config
	pairs   map[string]*countersv1.PairTotal
	applied map[string]uint64 // pair -> config version its data applies; not replicated
	// committed is, per pair and data instance ("pair/instance"), the
	// last report every live backup holds: only those are acknowledged
	// again when data resends them.
	committed map[string]uint64
}

// Mgmt returns the application to run in mgmt (mgmt.Config.App).
func Mgmt() *appliance.App {
	a := &mgmtApp{config: &countersv1.Config{}, pairs: map[string]*countersv1.PairTotal{}, applied: map[string]uint64{},
		committed: map[string]uint64{}}
	mux := appliance.NewMux()
	appliance.HandleOperator(mux, appliance.Admin, a.setConfig)
	appliance.HandleOperator(mux, appliance.Read, a.getTotals)
	appliance.Handle(mux, a.delta)
	appliance.Handle(mux, func(c *appliance.Context, m *countersv1.ConfigApplied) error {
		a.applied[c.From.PairID] = m.GetVersion()
		return nil
	})
	return &appliance.App{
		Name: "counters", Mux: mux, State: a,
		OnStart: func(n *appliance.Node) { a.node = n },
		// A new master's state is what survived: all of it counts.
		OnMastership: func(master bool, _ uint64) {
			if master {
				for id, p := range a.pairs {
					a.committed[id+"/"+p.GetInstance()] = p.GetSeq()
				}
			}
		},
		// A pair that becomes ready (at start, or under a new master)
		// gets the configuration in force.
		OnPairReady: func(pair string, _ uint64) {
			if err := a.node.Send(appliance.To(appliance.Ctrl, pair), a.config); err != nil {
				a.node.Logger().Warn("config not sent", "pair", pair, "error", err)
			}
		},
	}
}

// setConfig replicates the change, answers once it is committed and
// pushes the new configuration to every ready pair.
func (a *mgmtApp) setConfig(c *appliance.Context, m *countersv1.SetConfig) error {
	if m.GetKey() != "limit" && m.GetKey() != "rate" {
		return fmt.Errorf("unknown key %q (limit, rate)", m.GetKey())
	}
	if m.GetValue() != "" {
		if _, err := strconv.ParseUint(m.GetValue(), 10, 64); err != nil {
			return fmt.Errorf("%s: %q is not a number", m.GetKey(), m.GetValue())
		}
	}
	next := proto.Clone(a.config).(*countersv1.Config)
	next.Version++
	if next.Values == nil {
		next.Values = map[string]string{}
	}
	if m.GetValue() == "" {
		delete(next.Values, m.GetKey())
	} else {
		next.Values[m.GetKey()] = m.GetValue()
	}
	return a.replicate(&countersv1.Update{Config: next}, func(cm appliance.Commit) {
		if cm.Err != nil {
			_ = c.ReplyError(cm.Err)
			return
		}
		_ = c.Reply(a.config)
		if _, err := a.node.Broadcast(appliance.Ctrl, a.config); err != nil {
			a.node.Logger().Warn("config not pushed to every pair", "error", err)
		}
	})
}

// delta counts a data component's report once: a report it already
// counted (resent after a failover) is acknowledged again, not added.
func (a *mgmtApp) delta(c *appliance.Context, m *countersv1.Delta) error {
	pair := c.From.PairID
	p := a.pairs[pair]
	if p != nil && p.GetInstance() == m.GetInstance() && m.GetSeq() <= p.GetSeq() {
		if m.GetSeq() > a.committed[pair+"/"+m.GetInstance()] {
			return fmt.Errorf("report %d is being replicated; send it again", m.GetSeq())
		}
		return c.Reply(&countersv1.DeltaAck{Seq: m.GetSeq()})
	}
	if p != nil && p.GetInstance() == m.GetInstance() && m.GetSeq() != p.GetSeq()+1 {
		return fmt.Errorf("report %d after %d: one is missing", m.GetSeq(), p.GetSeq())
	}
	return a.replicate(&countersv1.Update{PairId: pair, Delta: m}, func(cm appliance.Commit) {
		if cm.Err != nil {
			_ = c.ReplyError(cm.Err) // data sends it again, to whoever is master
			return
		}
		key := pair + "/" + m.GetInstance()
		a.committed[key] = max(a.committed[key], m.GetSeq())
		_ = c.Reply(&countersv1.DeltaAck{Seq: m.GetSeq()})
	})
}

func (a *mgmtApp) getTotals(c *appliance.Context, _ *countersv1.GetTotals) error {
	t := &countersv1.Totals{Config: a.config, Master: a.node.IsMaster()}
	for _, id := range sortedKeys(a.pairs) {
		p := proto.Clone(a.pairs[id]).(*countersv1.PairTotal)
		p.ConfigApplied = a.applied[id]
		t.Pairs = append(t.Pairs, p)
		t.Total += p.GetTotal()
	}
	return c.Reply(t)
}

func (a *mgmtApp) replicate(u *countersv1.Update, done func(appliance.Commit)) error {
	b, err := proto.Marshal(u)
	if err != nil {
		return err
	}
	return a.node.Replicate(b, done)
}

// Apply is appliance.State: one update, on the master and on backups.
func (a *mgmtApp) Apply(b []byte) error {
	var u countersv1.Update
	if err := proto.Unmarshal(b, &u); err != nil {
		return err
	}
	if u.GetConfig() != nil {
		a.config = u.GetConfig()
	}
	if d := u.GetDelta(); d != nil {
		p := a.pairs[u.GetPairId()]
		if p == nil {
			p = &countersv1.PairTotal{PairId: u.GetPairId()}
			a.pairs[u.GetPairId()] = p
		}
		if p.GetInstance() != d.GetInstance() {
			p.Instance, p.Seq = d.GetInstance(), 0
		}
		p.Seq = d.GetSeq()
		p.Total += d.GetUnits()
	}
	return nil
}

// Snapshot is appliance.State: the whole state for a joining backup.
func (a *mgmtApp) Snapshot() ([]byte, error) {
	s := &countersv1.Snapshot{Config: a.config}
	for _, id := range sortedKeys(a.pairs) {
		s.Pairs = append(s.Pairs, a.pairs[id])
	}
	return proto.Marshal(s)
}

// Restore is appliance.State: replace the state with the master's.
func (a *mgmtApp) Restore(b []byte) error {
	var s countersv1.Snapshot
	if err := proto.Unmarshal(b, &s); err != nil {
		return err
	}
	a.config = s.GetConfig()
	if a.config == nil {
		a.config = &countersv1.Config{}
	}
	a.pairs = map[string]*countersv1.PairTotal{}
	for _, p := range s.GetPairs() {
		a.pairs[p.GetPairId()] = p
	}
	return nil
}

// ---------------------------------------------------------------- ctrl

// Ctrl returns the application to run in ctrl (ctrl.Config.App): it
// keeps the newest configuration from mgmt and passes it on to data.
func Ctrl() *appliance.App {
	var node *appliance.Node
	config := &countersv1.Config{}
	toData := func() {
		if err := node.Send(appliance.Target{Role: appliance.Data}, config); err != nil && !errors.Is(err, appliance.ErrNoRoute) {
			node.Logger().Warn("config not passed on to data", "error", err)
		}
	}
	mux := appliance.NewMux()
	appliance.Handle(mux, func(c *appliance.Context, m *countersv1.Config) error {
		if m.GetVersion() >= config.GetVersion() {
			config = m
			toData()
		}
		return nil
	})
	return &appliance.App{
		Name: "counters", Mux: mux,
		OnStart:     func(n *appliance.Node) { node = n },
		OnPeerReady: func(appliance.Peer, uint64) { toData() },
	}
}

// ---------------------------------------------------------------- data

// Tick is how often data generates units and reports them.
const Tick = 10 * time.Millisecond

// dataApp generates units and reports them until mgmt acknowledges.
type dataApp struct {
	node      *appliance.Node
	instance  string
	config    *countersv1.Config
	generated uint64            // units generated so far
	reported  uint64            // units put into a Delta
	seq       uint64            // last Delta numbered
	pending   *countersv1.Delta // not acknowledged yet
	busy      bool              // a Call for pending is under way
	gen       uint64            // numbers the Calls, so that a stale answer is ignored
	carry     float64
}

// Data returns the application to run in data (data.Config.App).
func Data() *appliance.App {
	a := &dataApp{instance: newInstance(), config: &countersv1.Config{}}
	mux := appliance.NewMux()
	appliance.Handle(mux, func(c *appliance.Context, m *countersv1.Config) error {
		if m.GetVersion() < a.config.GetVersion() {
			return nil
		}
		a.config = m
		a.node.Logger().Info("config applied", "version", m.GetVersion(), "limit", m.GetValues()["limit"], "rate", m.GetValues()["rate"])
		return a.tellApplied()
	})
	return &appliance.App{
		Name: "counters", Mux: mux,
		// The framework stops the timer when data stops.
		OnStart: func(n *appliance.Node) { a.node = n; a.schedule() },
		// A new master (or the same one, reached again): what it may not
		// have seen is sent again.
		OnMasterChanged: func(string, uint64) {
			a.busy = false
			_ = a.tellApplied()
			a.report()
		},
	}
}

func (a *dataApp) tellApplied() error {
	err := a.node.Send(appliance.ToMgmt, &countersv1.ConfigApplied{Version: a.config.GetVersion()})
	if errors.Is(err, appliance.ErrNoRoute) {
		return nil // told again at OnMasterChanged
	}
	return err
}

func (a *dataApp) schedule() { a.node.After(Tick, a.tick) }

// tick generates the units due at the configured rate, up to the limit,
// and reports them.
func (a *dataApp) tick() {
	defer a.schedule()
	limit, _ := strconv.ParseUint(a.config.GetValues()["limit"], 10, 64)
	rate, _ := strconv.ParseUint(a.config.GetValues()["rate"], 10, 64)
	a.carry += float64(rate) * Tick.Seconds()
	n := uint64(a.carry)
	a.carry -= float64(n)
	if a.generated+n > limit {
		n = limit - min(limit, a.generated)
	}
	a.generated += n
	a.report()
}

// report sends the units not yet reported in one numbered Delta, one at
// a time. A Delta that is not acknowledged is sent again, unchanged, at
// the next tick or to the next master: mgmt counts a number once.
func (a *dataApp) report() {
	if a.busy {
		return
	}
	if a.pending == nil {
		if a.generated == a.reported {
			return
		}
		a.seq++
		a.pending = &countersv1.Delta{Instance: a.instance, Seq: a.seq, Units: a.generated - a.reported}
		a.reported = a.generated
	}
	a.gen++
	gen, d := a.gen, a.pending
	err := a.node.Call(appliance.ToMgmt, d, 2*time.Second, func(_ proto.Message, err error) {
		if gen != a.gen {
			return // an older attempt; a newer one is under way
		}
		a.busy = false
		if err != nil {
			a.node.Logger().Debug("report not acknowledged; will send it again", "seq", d.GetSeq(), "error", err)
			return
		}
		a.pending = nil
		a.report()
	})
	a.busy = err == nil
}

func newInstance() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
