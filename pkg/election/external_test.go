package election

import (
	"errors"
	"testing"
	"time"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// extCluster is three machines with Config.External whose messages are
// delivered at once, except to and from the ids in cut.
type extCluster struct {
	t   *testing.T
	now time.Time
	m   map[string]*Election
	cut map[string]bool
	ev  map[string][]Event
}

func newExtCluster(t *testing.T, ids ...string) *extCluster {
	c := &extCluster{t: t, now: time.Unix(1000, 0), m: map[string]*Election{}, cut: map[string]bool{}, ev: map[string][]Event{}}
	for _, id := range ids {
		var peers []Peer
		for _, p := range ids {
			if p != id {
				peers = append(peers, Peer{ID: p})
			}
		}
		cfg := DefaultConfig(id, 100, peers...)
		cfg.External = true
		cfg.ComponentAddr = id + ":7300"
		e, err := New(cfg, 0)
		if err != nil {
			t.Fatal(err)
		}
		c.m[id] = e
	}
	return c
}

// run advances the clock by d in heartbeat steps, ticking and delivering.
func (c *extCluster) run(d time.Duration) {
	for end := c.now.Add(d); c.now.Before(end); c.now = c.now.Add(hb / 5) {
		for _, e := range c.m {
			e.Tick(c.now)
		}
		c.deliver()
	}
}

func (c *extCluster) deliver() {
	for more := true; more; {
		more = false
		for id, e := range c.m {
			for e.HasReady() {
				rd := e.Ready()
				c.ev[id] = append(c.ev[id], rd.Events...)
				for _, to := range rd.Snapshots {
					if err := e.Snapshot(to, nil, 0); err != nil {
						c.t.Fatalf("%s: snapshot for %s: %v", id, to, err)
					}
					more = true
				}
				for _, m := range rd.Messages {
					if c.cut[id] || c.cut[m.To] {
						continue
					}
					if err := c.m[m.To].Step(c.now, id, m.Body); err != nil {
						c.t.Fatalf("%s -> %s: %v", id, m.To, err)
					}
					more = true
				}
			}
		}
	}
}

func (c *extCluster) masters() []string {
	var ms []string
	for id, e := range c.m {
		if e.Role() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
			ms = append(ms, id)
		}
	}
	return ms
}

func TestExternalNeverElectsItself(t *testing.T) {
	c := newExtCluster(t, "a", "b", "c")
	c.run(2 * time.Second)
	if ms := c.masters(); len(ms) != 0 {
		t.Fatalf("masters %v without the authority's word", ms)
	}
	for id, e := range c.m {
		if e.Role() != hellopicsv1.MgmtRole_MGMT_ROLE_CANDIDATE {
			t.Fatalf("%s is %v", id, e.Role())
		}
	}
	if _, err := c.m["a"].Switchover(c.now, ""); !errors.Is(err, ErrExternal) {
		t.Fatalf("Switchover = %v, want ErrExternal", err)
	}
	if ok, err := c.m["a"].ObserveComponentEpoch(c.now, 50); ok || err != nil {
		t.Fatalf("ObserveComponentEpoch = %v, %v; want nothing adopted", ok, err)
	}
}

func TestExternalLeadFollowRelease(t *testing.T) {
	c := newExtCluster(t, "a", "b", "c")
	c.run(200 * time.Millisecond)
	if err := c.m["b"].Lead(c.now, 17, "etcd"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "c"} {
		if err := c.m[id].Follow(c.now, "b", 17); err != nil {
			t.Fatal(err)
		}
	}
	c.deliver()
	c.run(time.Second)
	if ms := c.masters(); len(ms) != 1 || ms[0] != "b" {
		t.Fatalf("masters %v, want [b]", ms)
	}
	for _, id := range []string{"a", "c"} {
		if e := c.m[id]; e.Master() != "b" || e.Epoch() != 17 || e.MasterComponentAddr() != "b:7300" {
			t.Fatalf("%s follows %q at %d (%q)", id, e.Master(), e.Epoch(), e.MasterComponentAddr())
		}
	}
	// The backups are in sync: the master has them as backups with a baseline.
	if _, n := c.m["b"].Committed(); n != 2 {
		t.Fatalf("master has %d backups with a baseline, want 2", n)
	}
	// A lower or equal epoch is refused; the same one is a no-op.
	if err := c.m["a"].Lead(c.now, 17, "etcd"); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("Lead at a known epoch = %v, want ErrStaleEpoch", err)
	}
	if err := c.m["b"].Lead(c.now, 17, "etcd"); err != nil {
		t.Fatalf("Lead again at the same epoch: %v", err)
	}

	// b's lease is lost: it steps down; nobody claims until told.
	c.m["b"].Release(c.now, "lease lost")
	c.run(time.Second)
	if ms := c.masters(); len(ms) != 0 {
		t.Fatalf("masters %v after the release", ms)
	}
	var stepped bool
	for _, ev := range c.ev["b"] {
		stepped = stepped || (ev.Kind == EventSteppedDown && ev.Reason == "lease lost")
	}
	if !stepped {
		t.Fatalf("no stepped_down event on b: %v", c.ev["b"])
	}
	if err := c.m["c"].Lead(c.now, 23, "etcd"); err != nil {
		t.Fatal(err)
	}
	c.deliver()
	c.run(500 * time.Millisecond)
	if ms := c.masters(); len(ms) != 1 || ms[0] != "c" {
		t.Fatalf("masters %v, want [c]", ms)
	}
	if e := c.m["a"]; e.Master() != "c" || e.Epoch() != 23 {
		t.Fatalf("a follows %q at %d, want c at 23 from heartbeats alone", e.Master(), e.Epoch())
	}
}

func TestExternalFencedByHigherEpoch(t *testing.T) {
	c := newExtCluster(t, "a", "b", "c")
	c.run(200 * time.Millisecond)
	if err := c.m["a"].Lead(c.now, 5, "etcd"); err != nil {
		t.Fatal(err)
	}
	c.run(200 * time.Millisecond)
	// a is cut off; the authority elects b above it. a hears of it when
	// the cut heals, from b's heartbeats, and steps down (fenced).
	c.cut["a"] = true
	if err := c.m["b"].Lead(c.now, 9, "etcd"); err != nil {
		t.Fatal(err)
	}
	c.run(500 * time.Millisecond)
	if r := c.m["a"].Role(); r != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		t.Fatalf("a is %v while cut off (nothing told it yet)", r)
	}
	delete(c.cut, "a")
	c.run(500 * time.Millisecond)
	if ms := c.masters(); len(ms) != 1 || ms[0] != "b" {
		t.Fatalf("masters %v after the cut healed, want [b]", ms)
	}
	if e := c.m["a"]; e.Master() != "b" || e.Epoch() != 9 {
		t.Fatalf("a follows %q at %d", e.Master(), e.Epoch())
	}
	// Follow with a higher epoch fences a master too.
	if err := c.m["b"].Follow(c.now, "c", 12); err != nil {
		t.Fatal(err)
	}
	if c.m["b"].Role() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		t.Fatal("b still master after the authority named c at a higher epoch")
	}
	// A fault refuses the lead.
	c.m["c"].SetFault(c.now, true, "test")
	if err := c.m["c"].Lead(c.now, 12, "etcd"); err == nil {
		t.Fatal("Lead in the fault state succeeded")
	}
}
