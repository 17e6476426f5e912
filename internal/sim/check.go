package sim

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hellopics/hellopics/pkg/election"
	"github.com/hellopics/hellopics/pkg/handshake"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// The invariants, by the names a Violation reports.
const (
	// InvOneMaster: at most one master per epoch, three ways: one
	// instance's election is master at it, one instance's handshake
	// machine sends hellos and peers stamped with it, and ctrl and data
	// act (forward, dial, answer, raise their fence) on messages stamped
	// with it from one instance only.
	InvOneMaster = "one-master-per-epoch"
	// InvEpochs: epochs never decrease: an instance's election epoch,
	// over all its incarnations (the epoch file), is never above what it
	// persisted and is never asked to persist less; its handshake
	// machine's epoch, and each component incarnation's fence, never go
	// back.
	InvEpochs = "epochs-never-decrease"
	// InvAligned: after every step, a handshake machine that acts as
	// master does so at the epoch its election is master at.
	InvAligned = "mastership-aligned"
	// InvHelloOnce: a mgmt incarnation counts each hello number received
	// at most once.
	InvHelloOnce = "hello-received-once"
	// InvHelloOwn: a hello counted received is one this incarnation sent
	// to that pair, at the epoch it carries.
	InvHelloOwn = "hello-received-is-own"
	// InvHelloReuse: across failovers, no hello number comes back twice
	// (to any mgmt, at any epoch) while a component incarnation that
	// forwarded both lives: its Identify carries the highest number it
	// forwarded, so every master it joins starts above it. (A pair whose
	// ctrl and data both restarted keeps no such memory; then only the
	// synced next number plus seqReserve protects, which a partitioned
	// or unsynced master can outrun.)
	InvHelloReuse = "hello-number-not-reused"
	// InvLiveness: a pair whose ctrl, data and a set of mgmt instances
	// run, with every link among them working and every other running
	// mgmt cut off from them, has a hello come back at least once per
	// Scenario.LivenessBound.
	InvLiveness = "liveness"
	// InvHostile: what a hostile peer sends is refused and changes
	// nothing (an HA frame: not even the sender's liveness).
	InvHostile = "hostile-refused"
)

// pairState is the checker's view of one pair.
type pairState struct {
	id         string
	ctrl, data *compProc

	lastReturn  time.Duration // last hello back at any mgmt (-1 none)
	stableSince time.Duration // since when its island holds (-1 not)
	island      string
	members     []*mgmtProc // the island's mgmt instances
	known       bool        // a known limitation holds in this island
	afterHeal   int         // hellos back since the final heal
}

type checker struct {
	w        *World
	elOwner  map[uint64]string // election master per epoch
	hsOwner  map[uint64]string // handshake sender per epoch
	actOwner map[uint64]string // the mgmt components acted on, per epoch
	elEpoch  map[string]uint64 // per instance, over incarnations
	dirty    []*proc

	// Stats counts what the run exercised.
	stats Stats
}

// Stats counts what a run exercised.
type Stats struct {
	Events        int // events run
	HellosBack    int // hellos counted received
	Masterships   int // elections won (became master)
	HostileFrames int // hostile frames handled by a machine or refused by a shell
	Faults        int // faults applied
	WatchSwitches int // components that followed an Elected on a watch session
	// KnownEpochAhead counts liveness bounds missed because ctrl or data
	// had seen a higher epoch than every instance it could reach (which
	// refuses it: epoch_ahead, and cannot learn that epoch); a failure
	// with Options.Strict.
	KnownEpochAhead int
}

func newChecker(w *World) *checker {
	return &checker{w: w, elOwner: map[uint64]string{}, hsOwner: map[uint64]string{},
		actOwner: map[uint64]string{}, elEpoch: map[string]uint64{}}
}

func (k *checker) touched(p *proc) {
	if !p.dirty {
		p.dirty = true
		k.dirty = append(k.dirty, p)
	}
}

// afterStep checks the state of every process the step touched.
func (k *checker) afterStep() {
	for _, p := range k.dirty {
		p.dirty = false
		switch {
		case p.m != nil:
			k.checkMgmt(p.m)
		case p.c != nil:
			k.checkComp(p.c)
		}
	}
	k.dirty = k.dirty[:0]
}

func (k *checker) checkMgmt(m *mgmtProc) {
	w := k.w
	if !m.up || m.machine == nil {
		return
	}
	if m.el != nil {
		e := m.el.Epoch()
		if e < k.elEpoch[m.name] {
			w.fail(InvEpochs, "%s: election epoch went back from %d to %d", m.name, k.elEpoch[m.name], e)
			return
		}
		k.elEpoch[m.name] = e
		if m.persisted < e {
			w.fail(InvEpochs, "%s: knows epoch %d but persisted only %d", m.name, e, m.persisted)
			return
		}
		if m.el.Role() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
			if o := k.elOwner[e]; o != "" && o != m.name {
				w.fail(InvOneMaster, "%s is master at epoch %d, which %s held", m.name, e, o)
				return
			}
			if k.elOwner[e] == "" {
				k.stats.Masterships++
			}
			k.elOwner[e] = m.name
		}
	}
	hs := m.machine.Epoch()
	if hs < m.hsEpoch {
		w.fail(InvEpochs, "%s: handshake epoch went back from %d to %d", m.name, m.hsEpoch, hs)
		return
	}
	m.hsEpoch = hs
	if m.machine.IsMaster() && (m.el == nil || m.el.Role() != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER || m.el.Epoch() != hs) {
		w.fail(InvAligned, "%s: the handshake machine is master at epoch %d, the election is %v", m.name, hs, m.elString())
	}
}

func (m *mgmtProc) elString() string {
	if m.el == nil {
		return "not started"
	}
	return fmt.Sprintf("%v at epoch %d (master %q)", m.el.Role(), m.el.Epoch(), m.el.Master())
}

func (k *checker) checkComp(c *compProc) {
	if !c.up || (c.ctrl == nil && c.data == nil) {
		return
	}
	if e := c.Epoch(); e < c.epoch {
		k.w.fail(InvEpochs, "%s: fence went back from %d to %d", c.name, c.epoch, e)
	} else {
		c.epoch = e
	}
}

func (k *checker) persist(m *mgmtProc, epoch uint64) {
	if epoch < m.persisted {
		k.w.fail(InvEpochs, "%s: asked to persist epoch %d below the stored %d", m.name, epoch, m.persisted)
	}
}

// mgmtSent follows what a handshake machine sends.
func (k *checker) mgmtSent(m *mgmtProc, o handshake.Send) {
	var epoch uint64
	switch msg := o.Msg.(type) {
	case *hellopicsv1.Hello:
		epoch = msg.GetEpoch()
		if s, ok := m.sent[msg.GetSeq()]; ok {
			k.w.fail(InvHelloOnce, "%s sent hello %d twice (pair %s, then %s)", m.name, msg.GetSeq(), s.pair, msg.GetPairId())
			return
		}
		m.sent[msg.GetSeq()] = sentHello{pair: msg.GetPairId(), epoch: epoch}
	case *hellopicsv1.Peer:
		epoch = msg.GetEpoch()
	case *hellopicsv1.Elected:
		epoch = msg.GetEpoch()
	default:
		return
	}
	if o := k.hsOwner[epoch]; o != "" && o != m.name {
		k.w.fail(InvOneMaster, "%s sends as master at epoch %d, which %s did", m.name, epoch, o)
		return
	}
	k.hsOwner[epoch] = m.name
}

// mgmtReceived follows a frame a handshake machine took.
func (k *checker) mgmtReceived(m *mgmtProc, e *end, t hellopicsv1.MsgType, msg proto.Message, outs []handshake.Output, epoch uint64) {
	w := k.w
	if e.other().p.hostile {
		k.hostileOutputs(m.name, e, outs, true)
		if m.machine.Epoch() != epoch {
			w.fail(InvHostile, "%s: a hostile %s changed the epoch from %d to %d", m.name, t, epoch, m.machine.Epoch())
		}
		return
	}
	for _, o := range outs {
		ev, ok := o.(handshake.Event)
		if !ok || ev.Kind != handshake.EventHelloReturned {
			continue
		}
		seq := ev.Seq
		k.stats.HellosBack++
		if m.got[seq] {
			w.fail(InvHelloOnce, "%s counted hello %d received twice", m.name, seq)
			return
		}
		m.got[seq] = true
		h, _ := msg.(*hellopicsv1.Hello)
		s, sent := m.sent[seq]
		switch {
		case !sent || s.pair != ev.PairID:
			w.fail(InvHelloOwn, "%s counted hello %d of pair %s received, which it never sent to that pair", m.name, seq, ev.PairID)
			return
		case h.GetEpoch() != s.epoch:
			w.fail(InvHelloOwn, "%s counted hello %d of pair %s received; it sent it at epoch %d, but the one that came back carries epoch %d (another master's hello)",
				m.name, seq, ev.PairID, s.epoch, h.GetEpoch())
			return
		}
		ps := w.pair(ev.PairID)
		if ps == nil {
			continue
		}
		for _, c := range []*compProc{ps.ctrl, ps.data} {
			if !c.up {
				continue
			}
			if _, ok := c.fwd[seq]; !ok {
				continue
			}
			delete(c.fwd, seq)
			if _, dup := c.back[seq]; dup {
				w.fail(InvHelloReuse, "hello %d of pair %s came back to %s a second time while %s (incarnation %d), which forwarded both, lives",
					seq, ev.PairID, m.name, c.name, c.inc)
				return
			}
			c.back[seq] = struct{}{}
		}
		ps.lastReturn = w.now
		if w.finalAt >= 0 {
			ps.afterHeal++
		}
	}
}

func (k *checker) mgmtEvent(m *mgmtProc, ev handshake.Event) {
	w := k.w
	if !w.traceOn {
		return
	}
	switch ev.Kind {
	case handshake.EventHelloSent, handshake.EventHelloReturned, handshake.EventUp, handshake.EventHelloMissed, handshake.EventHelloOutOfOrder:
		if !w.opts.Verbose {
			return
		}
	}
	w.tracef("%s: %v", m.name, ev)
}

// compReceived follows a frame a component's machine took.
func (k *checker) compReceived(c *compProc, e *end, fromMgmt bool, t hellopicsv1.MsgType, msg proto.Message, outs []handshake.Output,
	before uint64, ready bool, peer handshake.SessionID) {
	w := k.w
	if e.other().p.hostile {
		k.hostileOutputs(c.name, e, outs, false)
		if c.Epoch() != before || c.Ready() != ready || c.peerID() != peer {
			w.fail(InvHostile, "%s: a hostile %s changed its state (epoch %d -> %d, ready %v -> %v)", c.name, t, before, c.Epoch(), ready, c.Ready())
		}
		return
	}
	for _, o := range outs {
		if s, ok := o.(handshake.Send); ok && s.Type == hellopicsv1.MsgType_MSG_TYPE_HELLO {
			if h, ok := s.Msg.(*hellopicsv1.Hello); ok {
				c.fwd[h.GetSeq()] = struct{}{}
			}
		}
	}
	if !fromMgmt {
		return
	}
	var epoch uint64
	switch m := msg.(type) {
	case *hellopicsv1.Hello:
		epoch = m.GetEpoch()
	case *hellopicsv1.Peer:
		epoch = m.GetEpoch()
	default:
		return
	}
	acted := c.Epoch() > before
	for _, o := range outs {
		switch o.(type) {
		case handshake.Send, handshake.Dial, handshake.SwitchMgmt:
			acted = true
		}
	}
	if !acted {
		return
	}
	from := hostOf(e.remote)
	if o := k.actOwner[epoch]; o != "" && o != from {
		w.fail(InvOneMaster, "%s acted on %s from %s at epoch %d, where components acted on %s before", c.name, t, from, epoch, o)
		return
	}
	k.actOwner[epoch] = from
}

// compElected follows an Elected a component's machine took on a watch
// session: raising the fence or switching to the sender is acting on
// the sender as the master of that epoch.
func (k *checker) compElected(c *compProc, e *end, epoch uint64, outs []handshake.Output, before uint64) {
	acted := c.Epoch() > before
	for _, o := range outs {
		if _, ok := o.(handshake.SwitchMgmt); ok {
			acted = true
		}
	}
	if !acted {
		return
	}
	k.stats.WatchSwitches++
	from := hostOf(e.remote)
	if e.other().p.hostile {
		k.w.fail(InvHostile, "%s followed a hostile Elected at epoch %d", c.name, epoch)
		return
	}
	if o := k.actOwner[epoch]; o != "" && o != from {
		k.w.fail(InvOneMaster, "%s acted on an Elected from %s at epoch %d, where components acted on %s before", c.name, from, epoch, o)
		return
	}
	k.actOwner[epoch] = from
}

func (k *checker) compEvent(c *compProc, ev handshake.Event) {
	w := k.w
	if !w.traceOn {
		return
	}
	switch ev.Kind {
	case handshake.EventHelloForwarded, handshake.EventUp:
		if !w.opts.Verbose {
			return
		}
	}
	w.tracef("%s: %v", c.name, ev)
}

// hostileOutputs checks what a machine made of a hostile frame: only
// refusals, redirects (a backup answers every Identify so), holds (a
// backup that knows no live master keeps a well-formed Identify until
// it does; answered then, and checked, like any) and losses; a
// seq-bomb's Identify may be accepted.
func (k *checker) hostileOutputs(who string, e *end, outs []handshake.Output, mgmt bool) {
	k.stats.HostileFrames++
	for _, o := range outs {
		switch o := o.(type) {
		case handshake.Send:
			if o.Type != hellopicsv1.MsgType_MSG_TYPE_REJECT && o.Type != hellopicsv1.MsgType_MSG_TYPE_REDIRECT && !seqBomb(e) {
				k.w.fail(InvHostile, "%s answered a hostile peer with %s", who, o.Type)
			}
		case handshake.Dial, handshake.SwitchMgmt:
			k.w.fail(InvHostile, "%s acted on a hostile peer: %T", who, o)
		case handshake.Event:
			switch o.Kind {
			case handshake.EventIgnored, handshake.EventRejected, handshake.EventRedirect, handshake.EventDown, handshake.EventUp,
				handshake.EventHeld:
			case handshake.EventIdentified:
				if !mgmt || !seqBomb(e) {
					k.w.fail(InvHostile, "%s accepted a hostile peer: %v", who, o)
				}
			default:
				k.w.fail(InvHostile, "%s took a hostile peer's frame: %v", who, o)
			}
		}
	}
}

func seqBomb(e *end) bool {
	h, ok := e.other().p.owner.(*hostileProc)
	return ok && h.f.Hostile == HostileSeqBomb
}

// hostileDone counts a hostile frame or connection a shell refused
// before any machine saw it.
func (k *checker) hostileDone(e *end, _ string) {
	if e.other().p.hostile {
		k.stats.HostileFrames++
	}
}

// hostileHA checks the election's answer to a hostile HA frame: a
// refusal, and no change at all.
func (k *checker) hostileHA(m *mgmtProc, in *end, msg proto.Message, err error, before election.Status) {
	k.stats.HostileFrames++
	if err == nil {
		k.w.fail(InvHostile, "%s: the election took a hostile %T: %v", m.name, msg, msg)
		return
	}
	after := m.el.Status()
	if !sameStatus(before, after) {
		k.w.fail(InvHostile, "%s: a refused hostile %T (%v) changed the election: %+v -> %+v", m.name, msg, err, before, after)
	}
}

func sameStatus(a, b election.Status) bool {
	if a.ID != b.ID || a.Role != b.Role || a.Epoch != b.Epoch || a.MasterID != b.MasterID || a.SyncVersion != b.SyncVersion || len(a.Peers) != len(b.Peers) {
		return false
	}
	for i := range a.Peers {
		if !proto.Equal(a.Peers[i], b.Peers[i]) {
			return false
		}
	}
	return true
}

// island reports whether pair ps is in a closed world where it must
// cycle: ctrl and data run, a non-empty set S of running mgmt
// instances, every link among them both ways working and not slow,
// and every other running mgmt cut off from all of them both ways.
// It returns S's names as the island's signature.
func (k *checker) island(ps *pairState) (bool, string, []*mgmtProc) {
	n := k.w.net
	c, d := ps.ctrl, ps.data
	if !c.running() || !d.running() {
		return false, "", nil
	}
	good := func(a, b string) bool {
		for _, key := range []linkKey{{a, b}, {b, a}} {
			if l := n.links[key]; l != nil && (l.cut || l.extra > 0 || l.loss > 0) {
				return false
			}
		}
		return true
	}
	cut := func(a, b string) bool { return !n.up(a, b) && !n.up(b, a) }
	if !good(c.host, d.host) {
		return false, "", nil
	}
	var in, out []*mgmtProc
	for _, m := range k.w.mgmts {
		if !m.running() {
			continue
		}
		if good(m.host, c.host) && good(m.host, d.host) {
			in = append(in, m)
		} else {
			out = append(out, m)
		}
	}
	if len(in) == 0 {
		return false, "", nil
	}
	var names []string
	for i, a := range in {
		names = append(names, a.name)
		for _, b := range in[i+1:] {
			if !good(a.host, b.host) {
				return false, "", nil
			}
		}
	}
	for _, x := range out {
		if !cut(x.host, c.host) || !cut(x.host, d.host) {
			return false, "", nil
		}
		for _, a := range in {
			if !cut(x.host, a.host) {
				return false, "", nil
			}
		}
	}
	return true, strings.Join(names, ","), in
}

// changed re-evaluates every pair's island after a fault: a pair's
// bound starts again when its island forms or changes, or when the
// operator switches the master over.
func (k *checker) changed(kind FaultKind) {
	for _, ps := range k.w.pairs {
		ok, sig, members := k.island(ps)
		switch {
		case !ok:
			ps.stableSince = -1
		case ps.stableSince < 0 || sig != ps.island || kind == FaultSwitchover:
			ps.stableSince = k.w.now
			ps.known = false
		}
		ps.island, ps.members = sig, members
	}
}

// liveness checks every pair's bound; it reports whether the run has
// done its work: every pair cycled since the final heal, and the
// cluster has had time to settle.
func (k *checker) liveness() (done bool) {
	w := k.w
	bound := w.sc.LivenessBound()
	done = w.finalAt >= 0 && w.now >= w.finalAt+w.settle()
	for _, ps := range w.pairs {
		if ps.stableSince >= 0 && !ps.known {
			since := max(ps.lastReturn, ps.stableSince)
			if w.now-since >= bound && !w.opts.Strict && k.epochAhead(ps) {
				// Known limitation: ctrl or data has seen a higher
				// epoch than any instance it can reach, which refuses
				// it (epoch_ahead) and has no way to learn that epoch.
				k.stats.KnownEpochAhead++
				ps.known = true
				continue
			}
			if w.now-since >= bound {
				w.fail(InvLiveness, "pair %s (island %s, stable since %s) has had no hello back since %s, beyond the bound %v: %s",
					ps.id, ps.island, fmtDur(ps.stableSince), fmtDur(since), bound, w.describePair(ps))
				return false
			}
		}
		if ps.afterHeal < 3 {
			done = false
		}
	}
	return done
}

// epochAhead reports whether ctrl or data of ps has a fence above the
// epoch of every mgmt instance of its island.
func (k *checker) epochAhead(ps *pairState) bool {
	fence := max(ps.ctrl.Epoch(), ps.data.Epoch())
	for _, m := range ps.members {
		if m.el != nil && m.el.Epoch() >= fence {
			return false
		}
	}
	return true
}

// describePair says where a pair's components and the mgmt instances
// stand, for a liveness report.
func (w *World) describePair(ps *pairState) string {
	var b strings.Builder
	for _, m := range w.mgmts {
		switch {
		case !m.up:
			fmt.Fprintf(&b, "%s down; ", m.name)
		default:
			fmt.Fprintf(&b, "%s %s, handshake epoch %d master=%v, ready pairs %v; ", m.name, m.elString(), m.machine.Epoch(), m.machine.IsMaster(), m.machine.ReadyPairs())
		}
	}
	for _, c := range []*compProc{ps.ctrl, ps.data} {
		if !c.up {
			fmt.Fprintf(&b, "%s down; ", c.name)
			continue
		}
		mg := "none"
		if c.mgmtUp {
			if e := c.reg[c.mgmtID]; e != nil {
				mg = hostOf(e.remote)
			}
		}
		fmt.Fprintf(&b, "%s fence %d ready %v mgmt %s; ", c.name, c.Epoch(), c.Ready(), mg)
	}
	if cuts := w.net.cutSet(); len(cuts) > 0 {
		sort.Strings(cuts)
		fmt.Fprintf(&b, "cut %s", strings.Join(cuts, " "))
	}
	return strings.TrimSuffix(b.String(), "; ")
}
