package handshake

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// The harness wires Mgmt, Ctrl and Data machines together in memory, the
// way the shells will over pconn: every Send becomes a delivery on a
// connection, every Close and process kill a SessionDown on both ends, a
// Dial a new connection (or DialFailed). Deliveries are queued FIFO, time
// is a fake clock that only moves in advance, and the shells' reconnect to
// mgmt happens whenever the network goes quiet.

var t0 = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

const (
	testInterval   = 100 * time.Millisecond
	testRetryDelay = 30 * time.Millisecond
)

type role int

const (
	roleMgmt role = iota
	roleCtrl
	roleData
)

type node struct {
	name  string
	role  role
	pair  string
	gen   int
	alive bool

	mgmt *Mgmt
	ctrl *Ctrl
	data *Data

	mgmtCfg  MgmtConfig // for mgmt nodes
	mgmtAddr string     // for ctrl and data: the mgmt node to connect to
	mgmtConn *conn      // open connection to mgmt, if any
	events   []Event
}

func (n *node) instance() string { return fmt.Sprintf("%s-%d", n.name, n.gen) }

// dataAddr is where a ctrl node listens for data; it changes on restart
// when the network's movingAddrs is set.
func (n *node) dataAddr(moving bool) string {
	if moving {
		return fmt.Sprintf("%s:%d", n.name, 7000+n.gen)
	}
	return n.name + ":7000"
}

type end struct {
	node string
	gen  int
	sid  SessionID
}

type conn struct {
	ends [2]end
	open [2]bool
	// closed[i] is true once end i's machine asked to close it.
	closed [2]bool
	// toMgmt is true for component->mgmt connections, false for data->ctrl.
	toMgmt bool
}

type netw struct {
	t           *testing.T
	now         time.Time
	nodes       map[string]*node
	order       []string
	conns       map[end]*conn
	queue       []func()
	nextSID     SessionID
	movingAddrs bool
	// hold, if set, decides whether a message is held back instead of
	// delivered; held ones are delivered by release.
	hold func(from, to *node, t hellopicsv1.MsgType, msg proto.Message) bool
	held []func()
	// lastSeq is the highest hello number any mgmt sent: numbers must
	// only grow.
	lastSeq uint64
	// snapshots are the last Snapshot of each mgmt node, restored when it
	// restarts (standing in for persistence or the HA sync).
	snapshots map[string]Snapshot
	steps     int
	// shadows are backups of each mgmt node fed only its deltas
	// (TakeChanges) after every call; checkShadow compares them with it.
	shadows map[string]*Mgmt
}

func newNet(t *testing.T) *netw {
	t.Helper()
	return &netw{t: t, now: t0, nodes: map[string]*node{}, conns: map[end]*conn{}, snapshots: map[string]Snapshot{}, shadows: map[string]*Mgmt{}}
}

func (w *netw) addMgmt(name string, cfg MgmtConfig) *node {
	if cfg.HelloInterval == 0 {
		cfg.HelloInterval = testInterval
	}
	n := &node{name: name, role: roleMgmt, mgmtCfg: cfg}
	w.nodes[name] = n
	w.order = append(w.order, name)
	return n
}

func (w *netw) addCtrl(name, pair, mgmt string) *node {
	n := &node{name: name, role: roleCtrl, pair: pair, mgmtAddr: mgmt}
	w.nodes[name] = n
	w.order = append(w.order, name)
	return n
}

func (w *netw) addData(name, pair, mgmt string) *node {
	n := &node{name: name, role: roleData, pair: pair, mgmtAddr: mgmt}
	w.nodes[name] = n
	w.order = append(w.order, name)
	return n
}

// addTrio adds mgmt "m" and one pair "p1" with ctrl "c1" and data "d1".
func (w *netw) addTrio() {
	w.addMgmt("m", MgmtConfig{Epoch: 1})
	w.addCtrl("c1", "p1", "m")
	w.addData("d1", "p1", "m")
}

func (w *netw) start(name string) {
	w.t.Helper()
	n := w.nodes[name]
	if n.alive {
		w.t.Fatalf("start %s: already running", name)
	}
	n.gen++
	n.alive = true
	n.mgmtConn = nil
	var err error
	switch n.role {
	case roleMgmt:
		n.mgmt, err = NewMgmt(n.mgmtCfg)
		if err == nil {
			if s, ok := w.snapshots[name]; ok {
				err = n.mgmt.Restore(s)
			}
		}
		delete(w.shadows, name) // a new baseline when it acts as master
	case roleCtrl:
		n.ctrl, err = NewCtrl(CtrlConfig{PairID: n.pair, Instance: n.instance(), DataAddr: n.dataAddr(w.movingAddrs), Version: "test"})
	case roleData:
		n.data, err = NewData(DataConfig{PairID: n.pair, Instance: n.instance(), Version: "test", RetryDelay: testRetryDelay})
	}
	if err != nil {
		w.t.Fatalf("start %s: %v", name, err)
	}
	w.connectAll()
}

// kill stops a node's process: its connections drop, the peers notice.
func (w *netw) kill(name string) {
	w.t.Helper()
	n := w.nodes[name]
	if !n.alive {
		w.t.Fatalf("kill %s: not running", name)
	}
	if n.role == roleMgmt {
		w.snapshots[name] = n.mgmt.Snapshot()
	}
	n.alive = false
	for _, c := range w.sortedConns() {
		for i, e := range c.ends {
			if e.node == name && e.gen == n.gen && c.open[i] {
				c.open[i] = false
				w.queueDown(c, 1-i, "peer process died")
			}
		}
	}
}

func (w *netw) restart(name string) {
	w.t.Helper()
	w.kill(name)
	w.start(name)
}

// cut breaks the connection between two live nodes, as a network fault.
func (w *netw) cut(a, b string) {
	w.t.Helper()
	found := false
	for _, c := range w.sortedConns() {
		if (c.ends[0].node == a && c.ends[1].node == b || c.ends[0].node == b && c.ends[1].node == a) && c.open[0] && c.open[1] {
			c.open[0], c.open[1] = false, false
			w.queueDown(c, 0, "connection reset")
			w.queueDown(c, 1, "connection reset")
			found = true
		}
	}
	if !found {
		w.t.Fatalf("cut %s-%s: no open connection", a, b)
	}
}

func (w *netw) sortedConns() []*conn {
	var cs []*conn
	seen := map[*conn]bool{}
	for _, c := range w.conns {
		if !seen[c] {
			seen[c] = true
			cs = append(cs, c)
		}
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].ends[0].sid < cs[j].ends[0].sid })
	return cs
}

func (w *netw) newConn(a, b *node, toMgmt bool) *conn {
	w.nextSID++
	ea := end{a.name, a.gen, w.nextSID}
	w.nextSID++
	eb := end{b.name, b.gen, w.nextSID}
	c := &conn{ends: [2]end{ea, eb}, open: [2]bool{true, true}, toMgmt: toMgmt}
	w.conns[ea], w.conns[eb] = c, c
	return c
}

// connectAll is the ctrl and data shells' reconnect loop: every live
// component without a mgmt connection connects to its mgmt if that is up.
func (w *netw) connectAll() bool {
	did := false
	for _, name := range w.order {
		n := w.nodes[name]
		if !n.alive || n.role == roleMgmt || n.mgmtConn != nil {
			continue
		}
		m := w.nodes[n.mgmtAddr]
		if m == nil || !m.alive {
			continue
		}
		c := w.newConn(n, m, true)
		n.mgmtConn = c
		did = true
		w.queue = append(w.queue, func() {
			if !w.live(c, 1) || !w.live(c, 0) {
				return
			}
			w.apply(m, m.mgmt.SessionUp(c.ends[1].sid, n.name, w.now))
			w.apply(n, w.component(n).mgmtUp(c.ends[0].sid, w.now))
		})
	}
	return did
}

// componentAPI unifies the ctrl and data calls the harness makes.
type componentAPI struct {
	mgmtUp   func(SessionID, time.Time) []Output
	mgmtDown func(SessionID, string, time.Time) []Output
	peerDown func(SessionID, string, time.Time) []Output
	receive  func(SessionID, hellopicsv1.MsgType, proto.Message, time.Time) []Output
}

func (w *netw) component(n *node) componentAPI {
	if n.role == roleCtrl {
		c := n.ctrl
		return componentAPI{
			mgmtUp:   func(id SessionID, _ time.Time) []Output { return c.MgmtUp(id) },
			mgmtDown: func(id SessionID, r string, _ time.Time) []Output { return c.MgmtDown(id, r) },
			peerDown: func(id SessionID, r string, _ time.Time) []Output { return c.DataDown(id, r) },
			receive: func(id SessionID, t hellopicsv1.MsgType, m proto.Message, _ time.Time) []Output {
				return c.Receive(id, t, m)
			},
		}
	}
	d := n.data
	return componentAPI{mgmtUp: d.MgmtUp, mgmtDown: d.MgmtDown, peerDown: d.CtrlDown, receive: d.Receive}
}

// live reports whether end i of c can still receive.
func (w *netw) live(c *conn, i int) bool {
	e := c.ends[i]
	n := w.nodes[e.node]
	return c.open[i] && n.alive && n.gen == e.gen
}

func (w *netw) queueDown(c *conn, i int, reason string) {
	e := c.ends[i]
	w.queue = append(w.queue, func() {
		n := w.nodes[e.node]
		c.open[i] = false
		if !n.alive || n.gen != e.gen {
			return
		}
		if n.mgmtConn == c {
			n.mgmtConn = nil
		}
		switch {
		case n.role == roleMgmt:
			w.apply(n, n.mgmt.SessionDown(e.sid, reason, w.now))
		case c.toMgmt:
			w.apply(n, w.component(n).mgmtDown(e.sid, reason, w.now))
		default:
			w.apply(n, w.component(n).peerDown(e.sid, reason, w.now))
		}
	})
}

// apply carries out a machine's outputs as its shell would.
func (w *netw) apply(n *node, outs []Output) {
	w.t.Helper()
	for _, o := range outs {
		switch o := o.(type) {
		case Send:
			w.send(n, o)
		case Close:
			c := w.conns[end{n.name, n.gen, o.Session}]
			if c == nil {
				w.t.Fatalf("%s closes unknown session %d", n.name, o.Session)
			}
			i := 0
			if c.ends[1].sid == o.Session {
				i = 1
			}
			if c.closed[i] {
				w.t.Fatalf("%s closes session %d twice", n.name, o.Session)
			}
			c.closed[i] = true
			if c.open[i] {
				c.open[i] = false
				w.queueDown(c, i, "closed: "+o.Reason)
				w.queueDown(c, 1-i, "closed by peer: "+o.Reason)
			}
		case Dial:
			w.dial(n, o.Addr)
		case SwitchMgmt:
			n.mgmtAddr = o.Addr
		case Event:
			n.events = append(n.events, o)
		default:
			w.t.Fatalf("unknown output %T", o)
		}
	}
	if n.role == roleMgmt && n.alive {
		checkDeadlines(w.t, n.mgmt, fmt.Sprintf("%s at step %d", n.name, w.steps))
		w.checkShadow(n)
	}
}

// checkShadow hands mgmt node n's changes to its shadow backup and
// fails unless the shadow's registry now equals n's: the deltas carry
// every change a backup must hold.
func (w *netw) checkShadow(n *node) {
	w.t.Helper()
	if !n.mgmt.IsMaster() {
		delete(w.shadows, n.name) // the next mastership starts a new baseline
		return
	}
	sh := w.shadows[n.name]
	if sh == nil {
		// A master's backups start from a full snapshot, then take
		// deltas (as the Replicator has it).
		var err error
		if sh, err = NewMgmt(MgmtConfig{Backup: true, Epoch: n.mgmt.Epoch(), HelloInterval: n.mgmtCfg.HelloInterval}); err != nil {
			w.t.Fatal(err)
		}
		full := n.mgmt.Snapshot()
		full.Full = true
		n.mgmt.TakeChanges()
		if err := sh.Restore(full); err != nil {
			w.t.Fatalf("%s: shadow baseline: %v", n.name, err)
		}
		w.shadows[n.name] = sh
	}
	if err := sh.Restore(n.mgmt.TakeChanges()); err != nil {
		w.t.Fatalf("%s: shadow restore: %v", n.name, err)
	}
	if got, want := registryView(sh.Pairs()), registryView(n.mgmt.Pairs()); got != want {
		w.t.Fatalf("%s: backup fed deltas differs at step %d:\n got %s\nwant %s", n.name, w.steps, got, want)
	}
	if sh.NextSeq() != n.mgmt.NextSeq() {
		w.t.Fatalf("%s: backup's next hello number %d, master's %d", n.name, sh.NextSeq(), n.mgmt.NextSeq())
	}
}

// registryView renders what a backup holds of a registry: pairs,
// counters, relay reports and components' identities (not the live
// sessions, which a backup never takes over).
func registryView(ps []*hellopicsv1.PairStatus) string {
	var b strings.Builder
	for _, p := range ps {
		c := p.GetCounters()
		fmt.Fprintf(&b, "[%s sent=%d recv=%d missed=%d ooo=%d last=%d hello=%v rtt=%v relay=%v",
			p.GetPairId(), c.GetSent(), c.GetReceived(), c.GetMissed(), c.GetOutOfOrder(), c.GetLastSeq(),
			c.GetLastHello().AsTime(), c.GetLastRtt().AsDuration(), p.GetRelay().String())
		for _, m := range []*hellopicsv1.ComponentStatus{p.GetCtrl(), p.GetData()} {
			fmt.Fprintf(&b, " %s/%s/%s", m.GetInstance(), m.GetAddr(), m.GetDataAddr())
		}
		b.WriteString("] ")
	}
	return b.String()
}

func (w *netw) send(n *node, s Send) {
	w.t.Helper()
	c := w.conns[end{n.name, n.gen, s.Session}]
	if c == nil {
		w.t.Fatalf("%s sends %s on unknown session %d", n.name, s.Type, s.Session)
	}
	if n.role == roleMgmt && s.Type == hellopicsv1.MsgType_MSG_TYPE_HELLO {
		seq := s.Msg.(*hellopicsv1.Hello).GetSeq()
		if seq <= w.lastSeq {
			w.t.Fatalf("%s sent hello %d after %d: numbers must only grow", n.name, seq, w.lastSeq)
		}
		w.lastSeq = seq
	}
	to := 1
	if c.ends[1].sid == s.Session {
		to = 0
	}
	if c.closed[1-to] {
		w.t.Fatalf("%s sends %s on a session %d it closed", n.name, s.Type, s.Session)
	}
	if !c.open[1-to] {
		return // the write fails; the shell will report the session down
	}
	// Go through the wire encoding, as the shells will.
	b, err := proto.Marshal(s.Msg)
	if err != nil {
		w.t.Fatal(err)
	}
	msg, ok := NewMessage(s.Type)
	if !ok {
		w.t.Fatalf("%s sends unknown type %s", n.name, s.Type)
	}
	if err := proto.Unmarshal(b, msg); err != nil {
		w.t.Fatal(err)
	}
	e := c.ends[to]
	deliver := func() {
		if !w.live(c, to) {
			return
		}
		dst := w.nodes[e.node]
		if dst.role == roleMgmt {
			w.apply(dst, dst.mgmt.Receive(e.sid, s.Type, msg, w.now))
		} else {
			w.apply(dst, w.component(dst).receive(e.sid, s.Type, msg, w.now))
		}
	}
	if w.hold != nil && w.hold(n, w.nodes[e.node], s.Type, msg) {
		w.held = append(w.held, deliver)
		return
	}
	w.queue = append(w.queue, deliver)
}

func (w *netw) dial(n *node, addr string) {
	w.queue = append(w.queue, func() {
		if !n.alive {
			return
		}
		for _, name := range w.order {
			c := w.nodes[name]
			if c.role == roleCtrl && c.alive && c.dataAddr(w.movingAddrs) == addr {
				cn := w.newConn(n, c, false)
				w.apply(c, c.ctrl.DataUp(cn.ends[1].sid, n.name))
				w.apply(n, n.data.CtrlUp(cn.ends[0].sid, w.now))
				return
			}
		}
		w.apply(n, n.data.DialFailed("connection refused", w.now))
	})
}

// step delivers up to k queued actions and reports how many it did.
func (w *netw) step(k int) int {
	done := 0
	for done < k && len(w.queue) > 0 {
		f := w.queue[0]
		w.queue = w.queue[1:]
		f()
		done++
		w.steps++
		if w.steps > 1_000_000 {
			w.t.Fatal("network does not settle")
		}
	}
	return done
}

// run delivers until the network is quiet, letting the shells reconnect a
// few times (a shell refused by mgmt would retry forever, with backoff).
func (w *netw) run() {
	for range 4 {
		w.step(1 << 30)
		if !w.connectAll() {
			return
		}
	}
	w.step(1 << 30)
}

// release delivers the held messages.
func (w *netw) release() {
	w.queue = append(w.queue, w.held...)
	w.held = nil
	w.run()
}

// advance moves the clock by d, ticking machines at their deadlines.
func (w *netw) advance(d time.Duration) {
	w.t.Helper()
	w.run()
	target := w.now.Add(d)
	for {
		var next time.Time
		var who *node
		for _, name := range w.order {
			n := w.nodes[name]
			if !n.alive {
				continue
			}
			var at time.Time
			var ok bool
			switch n.role {
			case roleMgmt:
				at, ok = n.mgmt.NextDeadline()
			case roleData:
				at, ok = n.data.NextDeadline()
			}
			if ok && !at.After(target) && (who == nil || at.Before(next)) {
				next, who = at, n
			}
		}
		if who == nil {
			w.now = target
			w.run()
			return
		}
		if next.After(w.now) {
			w.now = next
		}
		switch who.role {
		case roleMgmt:
			w.apply(who, who.mgmt.Tick(w.now))
		case roleData:
			w.apply(who, who.data.Tick(w.now))
		}
		w.run()
	}
}

func (w *netw) pair(mgmt, id string) *hellopicsv1.PairStatus {
	w.t.Helper()
	for _, p := range w.nodes[mgmt].mgmt.Pairs() {
		if p.GetPairId() == id {
			return p
		}
	}
	return nil
}

// counters returns the pair's counters at mgmt.
func (w *netw) counters(mgmt, id string) *hellopicsv1.HelloCounters {
	w.t.Helper()
	p := w.pair(mgmt, id)
	if p == nil {
		return &hellopicsv1.HelloCounters{}
	}
	return p.GetCounters()
}

// expectHealthy checks that the pair's cycle runs and that the next n
// hellos all come back in order.
func (w *netw) expectHealthy(mgmt, id string, n int) {
	w.t.Helper()
	w.advance(testInterval + 3*testRetryDelay) // let retries, reconnects and a pending miss finish
	p := w.pair(mgmt, id)
	if !p.GetCycleRunning() {
		w.t.Fatalf("pair %s: cycle not running at %s:\n%s", id, mgmt, w.dump())
	}
	c0 := proto.Clone(p.GetCounters()).(*hellopicsv1.HelloCounters)
	w.advance(time.Duration(n) * testInterval)
	c1 := w.counters(mgmt, id)
	if c1.GetSent()-c0.GetSent() != uint64(n) || c1.GetReceived()-c0.GetReceived() != uint64(n) ||
		c1.GetMissed() != c0.GetMissed() || c1.GetOutOfOrder() != c0.GetOutOfOrder() {
		w.t.Fatalf("pair %s: after %d intervals counters went from %v to %v\n%s", id, n, c0, c1, w.dump())
	}
	if st := w.pair(mgmt, id); st.GetCtrl().GetState() != hellopicsv1.ComponentState_COMPONENT_STATE_READY ||
		st.GetData().GetState() != hellopicsv1.ComponentState_COMPONENT_STATE_READY {
		w.t.Fatalf("pair %s: states %s/%s", id, st.GetCtrl().GetState(), st.GetData().GetState())
	}
}

// dump renders every node's events, for failure messages.
func (w *netw) dump() string {
	var b strings.Builder
	for _, name := range w.order {
		n := w.nodes[name]
		fmt.Fprintf(&b, "== %s (gen %d, alive %v)\n", name, n.gen, n.alive)
		for _, e := range n.events {
			fmt.Fprintf(&b, "  %s\n", e)
		}
	}
	return b.String()
}

// eventsOf returns the events of kind k that node name recorded.
func (w *netw) eventsOf(name string, k EventKind) []Event {
	var es []Event
	for _, e := range w.nodes[name].events {
		if e.Kind == k {
			es = append(es, e)
		}
	}
	return es
}

// permutations returns every order of names.
func permutations(names []string) [][]string {
	if len(names) <= 1 {
		return [][]string{append([]string(nil), names...)}
	}
	var out [][]string
	for i := range names {
		rest := append(append([]string(nil), names[:i]...), names[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]string{names[i]}, p...))
		}
	}
	return out
}
