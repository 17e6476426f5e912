package appliance

import (
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestCompose: two applications in one component each get their own
// messages and every hook, in the order given; a type handled twice is
// refused at once.
func TestCompose(t *testing.T) {
	got := make(chan string, 10)
	amux, bmux := NewMux(), NewMux()
	Handle(amux, func(c *Context, m *wrapperspb.StringValue) error { got <- "a:" + m.GetValue(); return nil })
	Handle(bmux, func(c *Context, m *wrapperspb.Int64Value) error { got <- "b:int"; return nil })
	a := &App{Name: "a", Mux: amux, OnPeerReady: func(Peer, uint64) { got <- "a:ready" }}
	b := &App{Name: "b", Mux: bmux, OnPeerReady: func(Peer, uint64) { got <- "b:ready" }, State: &replicaCounters{m: map[string]int64{}}}
	both := Compose("", a, nil, b)
	if both.Name != "a+b" || both.State != b.State {
		t.Fatalf("composed: name %q, state %v", both.Name, both.State)
	}
	p := newPair(t, both, &App{})
	p.cLoop.Do(func() { p.ctrl.PeerReady(Peer{Role: Data, PairID: "p1"}, 1) })
	p.dLoop.Do(func() {
		if err := p.data.Node().Send(Target{Role: Ctrl}, wrapperspb.String("x")); err != nil {
			t.Fatal(err)
		}
		if err := p.data.Node().Send(Target{Role: Ctrl}, wrapperspb.Int64(1)); err != nil {
			t.Fatal(err)
		}
	})
	for _, want := range []string{"a:ready", "b:ready", "a:x", "b:int"} {
		if g := wait(t, got); g != want {
			t.Fatalf("got %q; want %q", g, want)
		}
	}
	for name, apps := range map[string][]*App{
		"a type twice": {a, {Mux: amux}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Compose did not panic", name)
				}
			}()
			Compose("", apps...)
		}()
	}
}
