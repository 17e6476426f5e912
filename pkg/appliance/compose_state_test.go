package appliance

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestComposeStates: two applications with a State each, composed on
// two mgmt instances. Each one's updates reach only its own State, on
// the master and on the backup (by snapshot and by update); a
// switchover and a failover keep both exactly.
func TestComposeStates(t *testing.T) {
	ha := map[string]string{"a": freeAddr(t), "b": freeAddr(t)}
	a := startComposed(t, "a", 200, ha)
	defer a.Close()
	waitUntil(t, "a to be master", a.isMaster)
	replicate2 := func(n *appNode, key string, count int) {
		t.Helper()
		// The second application's node tags its updates: swap it in
		// for the helper, which replicates through n.node.
		one := n.node
		n.node = n.node2
		defer func() { n.node = one }()
		n.replicate(t, key, count)
	}
	a.replicate(t, "one-early", 3)
	replicate2(a, "two-early", 2)

	b := startComposed(t, "b", 100, ha)
	bClosed := false
	defer func() {
		if !bClosed {
			b.Close()
		}
	}()
	waitUntil(t, "b to hold a's state", func() bool { return a.inSync("b") })
	want1 := map[string]int64{"one-early": 3}
	want2 := map[string]int64{"two-early": 2}
	check := func(what string, n *appNode) {
		t.Helper()
		sameCounters(t, what+" (one)", n.counters(), want1)
		var got2 map[string]int64
		n.loop.Do(func() { got2 = n.state2.m })
		sameCounters(t, what+" (two)", got2, want2)
	}
	check("b after its snapshot", b)

	a.replicate(t, "one", 4)
	replicate2(a, "two", 5)
	want1["one"], want2["two"] = 4, 5
	check("a", a)
	check("b after acknowledged updates", b)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := a.Switchover(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "b to be master", b.isMaster)
	check("b after the switchover", b)
	waitUntil(t, "a to hold b's state", func() bool { return b.inSync("a") })
	replicate2(b, "two-after", 1)
	want2["two-after"] = 1
	b.Close()
	bClosed = true
	waitUntil(t, "a to take over", a.isMaster)
	check("a after the failover", a)
}

// TestComposedStateDecoding: an update or snapshot of a composed State
// that does not fit this component's parts is refused, not applied.
func TestComposedStateDecoding(t *testing.T) {
	one, two := &replicaCounters{m: map[string]int64{}}, &replicaCounters{m: map[string]int64{}}
	m := &multiState{parts: []State{one, two}}
	if err := m.Apply(tagPart(2, []byte("k"))); err != nil || two.m["k"] != 1 || len(one.m) != 0 {
		t.Fatalf("Apply part 2: %v; one %v two %v", err, one.m, two.m)
	}
	for name, u := range map[string][]byte{
		"empty":        nil,
		"part 0":       tagPart(0, []byte("k")),
		"part 3":       tagPart(3, []byte("k")),
		"varint cut":   {0x80},
		"overlong":     {0x81, 0x00, 'k'},
		"huge part no": {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	} {
		if err := m.Apply(u); !errors.Is(err, errStatePart) {
			t.Errorf("Apply %s: %v", name, err)
		}
	}
	snap, err := m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"one part only":   snap[:1+int(snap[0])],
		"a part too many": append(bytes.Clone(snap), 0),
		"length beyond":   {0x05, 'x'},
		"bad length":      {0x80},
	} {
		if err := m.Restore(b); !errors.Is(err, errStatePart) {
			t.Errorf("Restore %s: %v", name, err)
		}
	}
	if two.m["k"] != 1 {
		t.Fatalf("a refused snapshot changed the state: %v", two.m)
	}
	if err := m.Restore(snap); err != nil || two.m["k"] != 1 {
		t.Fatalf("Restore of its own snapshot: %v, %v", err, two.m)
	}
	if err := m.Restore(nil); err != nil || len(two.m) != 0 {
		t.Fatalf("Restore(nil): %v, %v", err, two.m)
	}
}

// FuzzComposedState: whatever bytes arrive as an update or a snapshot,
// the composed State refuses them or hands its parts pieces that lie
// within them, and never panics.
func FuzzComposedState(f *testing.F) {
	f.Add([]byte{1, 'a'})
	f.Add([]byte{2, 1, 'b', 0})
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		parts := []State{&rawState{}, &rawState{}, &rawState{}}
		m := &multiState{parts: parts}
		_ = m.Apply(b)
		if err := m.Restore(b); err == nil && len(b) > 0 {
			// Restored: the pieces add up to b less its length prefixes.
			total := 0
			for _, p := range parts {
				total += len(p.(*rawState).b)
			}
			if total > len(b) {
				t.Fatalf("pieces of %d bytes from a snapshot of %d", total, len(b))
			}
			again, err := m.Snapshot()
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("snapshot after restore differs: %x vs %x (%v)", again, b, err)
			}
		}
	})
}

// rawState keeps its last update or snapshot as it is.
type rawState struct{ b []byte }

func (s *rawState) Apply(u []byte) error      { s.b = bytes.Clone(u); return nil }
func (s *rawState) Snapshot() ([]byte, error) { return s.b, nil }
func (s *rawState) Restore(b []byte) error    { s.b = bytes.Clone(b); return nil }

// TestComposedHandlersReplicateToTheirPart: a handler of an application
// composed with another stateful one is given the Node of its own State
// part (c.Node), so c.Node.Replicate reaches its State.
func TestComposedHandlersReplicateToTheirPart(t *testing.T) {
	var seen []int
	mux := NewMux()
	Handle(mux, func(c *Context, m *wrapperspb.StringValue) error { seen = append(seen, c.Node.part); return nil })
	one, two := &replicaCounters{m: map[string]int64{}}, &replicaCounters{m: map[string]int64{}}
	app := Compose("", &App{State: one}, &App{State: two, Mux: mux})
	r := &Runtime{}
	r.node = &Node{rt: r}
	rt := app.Mux.components[string((&wrapperspb.StringValue{}).ProtoReflect().Descriptor().FullName())]
	for range 2 {
		if err := rt.serve(&Context{Node: r.node}, wrapperspb.String("x")); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != 2 || seen[0] != 2 || seen[1] != 2 {
		t.Fatalf("handler saw parts %v; want [2 2]", seen)
	}
	if len(r.partNodes) != 2 {
		t.Fatalf("%d part nodes made; want 2, made once", len(r.partNodes))
	}
}
