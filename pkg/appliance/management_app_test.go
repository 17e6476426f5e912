package appliance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	dto "github.com/prometheus/client_model/go"

	"github.com/hellopics/hellopics/pkg/election"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// replicaCounters is an App.State: a map of counters; an update is a key
// to increment. Loop only, like every State.
type replicaCounters struct {
	m map[string]int64
	// refuse makes Apply fail for this key (a backup out of step).
	refuse string
}

func (c *replicaCounters) Apply(u []byte) error {
	if string(u) == c.refuse && c.refuse != "" {
		return fmt.Errorf("refusing %q", u)
	}
	c.m[string(u)]++
	return nil
}

func (c *replicaCounters) Snapshot() ([]byte, error) { return json.Marshal(c.m) }

func (c *replicaCounters) Restore(b []byte) error {
	m := map[string]int64{}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
	}
	c.m = m
	return nil
}

// appNode is an mgmt.Server running a counter application.
type appNode struct {
	*Management
	state *replicaCounters
	node  *Node
	// state2 and node2 are the second application's, when composed
	// (startComposed).
	state2 *replicaCounters
	node2  *Node
}

// freeAddr is a loopback address nobody listens on now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startApp starts instance id of a cluster whose HA addresses are ha.
func startApp(t testing.TB, id string, prio uint32, ha map[string]string) *appNode {
	t.Helper()
	return startAppWith(t, id, prio, ha, func(n *appNode) *App {
		return &App{Name: "counters", State: n.state, OnStart: func(nd *Node) { n.node = nd }}
	})
}

// startComposed is startApp with two applications composed, each with
// a State of its own (state and node, state2 and node2).
func startComposed(t testing.TB, id string, prio uint32, ha map[string]string) *appNode {
	t.Helper()
	return startAppWith(t, id, prio, ha, func(n *appNode) *App {
		n.state2 = &replicaCounters{m: map[string]int64{}}
		return Compose("",
			&App{Name: "one", State: n.state, OnStart: func(nd *Node) { n.node = nd }},
			&App{Name: "stateless"},
			&App{Name: "two", State: n.state2, OnStart: func(nd *Node) { n.node2 = nd }})
	})
}

// startAppWith starts instance id running the application app builds.
func startAppWith(t testing.TB, id string, prio uint32, ha map[string]string, app func(n *appNode) *App) *appNode {
	t.Helper()
	n := &appNode{state: &replicaCounters{m: map[string]int64{}}}
	mc := DefaultManagementConfig()
	mc.ListenAddr, mc.HAListenAddr = "127.0.0.1:0", ha[id]
	mc.ID, mc.Priority = id, prio
	mc.HeartbeatInterval = 20 * time.Millisecond
	for p, a := range ha {
		if p != id {
			mc.Peers = append(mc.Peers, election.Peer{ID: p, Addr: a})
		}
	}
	if os.Getenv("APPTEST_LOG") != "" {
		mc.Logger = hclog.New(&hclog.LoggerOptions{Name: id, Level: hclog.Trace, Output: os.Stderr})
	}
	mc.App = app(n)
	s, err := StartManagement(mc)
	if err != nil {
		t.Fatal(err)
	}
	n.Management = s
	return n
}

func (n *appNode) isMaster() bool {
	var m bool
	n.loop.Do(func() { m = n.el != nil && n.el.Role() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER && n.node.IsMaster() })
	return m
}

// inSync reports whether this master sees backup id holding every update.
func (n *appNode) inSync(id string) bool {
	var ok bool
	n.loop.Do(func() {
		if n.el == nil {
			return
		}
		for _, p := range n.el.Status().Peers {
			ok = ok || p.GetId() == id && p.GetInSync()
		}
	})
	return ok
}

func (n *appNode) counters() map[string]int64 {
	var m map[string]int64
	n.loop.Do(func() { m = maps.Clone(n.state.m) })
	return m
}

// replicate replicates count updates of key and returns their commits.
func (n *appNode) replicate(t testing.TB, key string, count int) []Commit {
	t.Helper()
	ch := make(chan Commit, count)
	var err error
	n.loop.Do(func() {
		for range count {
			if err = n.node.Replicate([]byte(key), func(c Commit) { ch <- c }); err != nil {
				return
			}
		}
	})
	if err != nil {
		t.Fatalf("Replicate: %v", err)
	}
	out := make([]Commit, 0, count)
	timeout := time.After(20 * time.Second)
	for range count {
		select {
		case c := <-ch:
			out = append(out, c)
		case <-timeout:
			var diag string
			n.loop.Do(func() {
				v, b := n.el.Committed()
				pv, ok := n.rt.PendingCommit()
				diag = fmt.Sprintf("committed %d over %d backups, version %d, pending %d %v, status %v", v, b, n.el.Version(), pv, ok, n.el.Status())
			})
			t.Fatalf("%d of %d commits reported: %s", len(out), count, diag)
		}
	}
	return out
}

func sameCounters(t *testing.T, what string, got, want map[string]int64) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Fatalf("%s: counters %v, want %v", what, got, want)
	}
}

// TestAppStateReplication: two instances on loopback. Updates made
// before the backup exists commit with no backup; the backup gets them
// in its snapshot, then every update (acknowledged: Acked 1); a
// switchover hands over the exact state; after the new master is closed
// without a handover, the other holds every acknowledged update.
func TestAppStateReplication(t *testing.T) {
	ha := map[string]string{"a": freeAddr(t), "b": freeAddr(t)}
	a := startApp(t, "a", 200, ha)
	defer a.Close()
	waitUntil(t, "a to be master", a.isMaster)

	want := map[string]int64{}
	for _, c := range a.replicate(t, "early", 5) {
		if c.Err != nil || c.Acked != 0 {
			t.Fatalf("commit without a backup: %+v", c)
		}
	}
	want["early"] = 5

	b := startApp(t, "b", 100, ha)
	bClosed := false
	defer func() {
		if !bClosed {
			b.Close()
		}
	}()
	waitUntil(t, "b to hold a's state", func() bool { return a.inSync("b") })
	sameCounters(t, "b after its snapshot", b.counters(), want)
	if err := b.node.Replicate([]byte("x"), nil); !errors.Is(err, ErrNotMaster) {
		t.Fatalf("Replicate on a backup: %v", err)
	}

	last := uint64(0)
	for _, c := range a.replicate(t, "k", 20) {
		if c.Err != nil || c.Acked != 1 || c.Version < last {
			t.Fatalf("commit with one backup: %+v (after version %d)", c, last)
		}
		last = c.Version
	}
	want["k"] = 20
	// Acknowledged means applied: b holds them now.
	sameCounters(t, "b after acknowledged updates", b.counters(), want)

	// A switchover: b takes over with the exact state.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := a.Switchover(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "b to be master", b.isMaster)
	sameCounters(t, "b after the switchover", b.counters(), want)
	if a.isMaster() {
		t.Fatal("a still master")
	}

	waitUntil(t, "a to hold b's state", func() bool { return b.inSync("a") })
	for _, c := range b.replicate(t, "after", 10) {
		if c.Err != nil || c.Acked != 1 {
			t.Fatalf("commit after the switchover: %+v", c)
		}
	}
	want["after"] = 10

	// The master goes away without handing over: a takes over with
	// every update it acknowledged.
	b.Close()
	bClosed = true
	waitUntil(t, "a to take over", a.isMaster)
	sameCounters(t, "a after the failover", a.counters(), want)
	for _, c := range a.replicate(t, "alone", 3) {
		if c.Err != nil || c.Acked != 0 {
			t.Fatalf("commit with the backup gone: %+v", c)
		}
	}
}

// TestAppStateRejected: a backup whose State refuses an update asks for
// a snapshot and is whole again, and counts it.
func TestAppStateRejected(t *testing.T) {
	ha := map[string]string{"a": freeAddr(t), "b": freeAddr(t)}
	a := startApp(t, "a", 200, ha)
	defer a.Close()
	b := startApp(t, "b", 100, ha)
	defer b.Close()
	waitUntil(t, "a to be master", a.isMaster)
	waitUntil(t, "b to hold a's state", func() bool { return a.inSync("b") })
	b.loop.Do(func() { b.state.refuse = "bad" })
	a.replicate(t, "bad", 1)
	// b refused it; the snapshot it asked for is restored, not replayed.
	waitUntil(t, "b to be whole again", func() bool {
		return a.inSync("b") && maps.Equal(b.counters(), map[string]int64{"bad": 1})
	})
	var m dto.Metric
	if err := b.appSyncErrors.Write(&m); err != nil || m.GetCounter().GetValue() < 1 {
		n := m.GetCounter().GetValue()
		t.Fatalf("app sync errors = %v", n)
	}
}

// TestAppSingleInstance: a single instance commits at once, with no
// backup.
func TestAppSingleInstance(t *testing.T) {
	n := &appNode{state: &replicaCounters{m: map[string]int64{}}}
	mc := DefaultManagementConfig()
	mc.ListenAddr = "127.0.0.1:0"
	mc.App = &App{State: n.state, OnStart: func(nd *Node) { n.node = nd }}
	s, err := StartManagement(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n.Management = s
	cs := n.replicate(t, "k", 3)
	for i, c := range cs {
		if c.Err != nil || c.Acked != 0 || c.Version != uint64(i+1) {
			t.Fatalf("commit %d: %+v", i, c)
		}
	}
	sameCounters(t, "single", n.counters(), map[string]int64{"k": 3})
}

// TestSwitchoverHook: an application that keeps an update back until a
// switchover replicates it from OnSwitchover, and the new master holds
// it the moment it is master.
func TestSwitchoverHook(t *testing.T) {
	ha := map[string]string{"a": freeAddr(t), "b": freeAddr(t)}
	start := func(id string, prio uint32) *appNode {
		return startAppWith(t, id, prio, ha, func(n *appNode) *App {
			return &App{State: n.state, OnStart: func(nd *Node) { n.node = nd },
				OnSwitchover: func(target string) {
					if err := n.node.Replicate([]byte("kept-for-"+target), nil); err != nil {
						t.Errorf("Replicate from OnSwitchover: %v", err)
					}
				}}
		})
	}
	a := start("a", 200)
	defer a.Close()
	b := start("b", 100)
	defer b.Close()
	waitUntil(t, "a to be master", a.isMaster)
	waitUntil(t, "b in sync", func() bool { return a.inSync("b") })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := a.Switchover(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "b to be master", b.isMaster)
	if got := b.counters(); got["kept-for-b"] != 1 {
		t.Fatalf("b holds %v; want the update kept for the switchover", got)
	}
}
