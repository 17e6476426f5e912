package appliance

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/hellopics/hellopics/internal/await"
	"github.com/hellopics/hellopics/pkg/tier"
)

// memLink connects runtimes in memory: what one sends is decoded and
// delivered on the receiver's loop, as a shell would.
type memLink struct {
	self Peer
	mu   sync.Mutex
	to   map[Role]*Runtime
	// down makes SendApp fail as a shell does without a route.
	down bool
	// replicated collects Replicate calls (mgmt).
	version uint64
}

func (l *memLink) SendApp(to Target, payload []byte) error {
	l.mu.Lock()
	peer, down := l.to[to.Role], l.down
	l.mu.Unlock()
	if peer == nil || down {
		return ErrNoRoute
	}
	ins, err := peer.Decode(append([]byte(nil), payload...))
	if err != nil {
		return err
	}
	from := l.self
	peer.cfg.Loop.Post(func() {
		for _, in := range ins {
			peer.Deliver(from, in)
		}
	})
	return nil
}

func (l *memLink) Replicate([]byte) (uint64, error) { l.version++; return l.version, nil }

func (l *memLink) ReadyTargets(role Role) []Target { return []Target{To(role, "p1")} }

type pair struct {
	ctrl, data *Runtime
	cl, dl     *memLink
	cLoop      *tier.Loop
	dLoop      *tier.Loop
}

func newPair(t *testing.T, ctrlApp, dataApp *App) *pair {
	t.Helper()
	return newFencedPair(t, ctrlApp, dataApp, nil, nil)
}

// newFencedPair is newPair with the runtimes' epoch fences (nil: none).
func newFencedPair(t *testing.T, ctrlApp, dataApp *App, ctrlFence, dataFence Fence) *pair {
	t.Helper()
	p := &pair{cLoop: tier.NewLoop(0), dLoop: tier.NewLoop(0)}
	p.cl = &memLink{self: Peer{Role: Ctrl, PairID: "p1"}, to: map[Role]*Runtime{}}
	p.dl = &memLink{self: Peer{Role: Data, PairID: "p1"}, to: map[Role]*Runtime{}}
	p.ctrl = NewRuntime(RuntimeConfig{Role: Ctrl, PairID: "p1", App: ctrlApp, Link: p.cl, Loop: p.cLoop, Fence: ctrlFence})
	p.data = NewRuntime(RuntimeConfig{Role: Data, PairID: "p1", App: dataApp, Link: p.dl, Loop: p.dLoop, Fence: dataFence})
	p.cl.to[Data], p.dl.to[Ctrl] = p.data, p.ctrl
	p.cLoop.Do(p.ctrl.Start)
	p.dLoop.Do(p.data.Start)
	t.Cleanup(func() {
		p.cLoop.Do(p.ctrl.Stop)
		p.dLoop.Do(p.data.Stop)
		p.cLoop.Close()
		p.dLoop.Close()
	})
	return p
}

func wait[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting")
		panic("unreachable")
	}
}

func TestSendInOrderAndCall(t *testing.T) {
	got := make(chan string, 1000)
	dmux := NewMux()
	Handle(dmux, func(c *Context, m *wrapperspb.StringValue) error {
		if c.From != (Peer{Role: Ctrl, PairID: "p1"}) {
			t.Errorf("from %v", c.From)
		}
		got <- m.GetValue()
		return nil
	})
	HandleCall(dmux, func(c *Context, m *wrapperspb.Int64Value) (*wrapperspb.Int64Value, error) {
		if m.GetValue() < 0 {
			return nil, errors.New("negative")
		}
		return wrapperspb.Int64(m.GetValue() * 2), nil
	})
	Handle(dmux, func(c *Context, m *wrapperspb.BoolValue) error { return nil }) // never replies
	p := newPair(t, &App{}, &App{Mux: dmux})

	p.cLoop.Do(func() {
		for i := 0; i < 500; i++ {
			if err := p.ctrl.Node().Send(Target{Role: Data}, wrapperspb.String(strings.Repeat("x", i%7)+string(rune('a'+i%26)))); err != nil {
				t.Fatal(err)
			}
		}
	})
	for i := 0; i < 500; i++ {
		want := strings.Repeat("x", i%7) + string(rune('a'+i%26))
		if v := wait(t, got); v != want {
			t.Fatalf("message %d: %q, want %q", i, v, want)
		}
	}

	type res struct {
		m   proto.Message
		err error
	}
	call := func(m proto.Message, timeout time.Duration) res {
		ch := make(chan res, 1)
		p.cLoop.Do(func() {
			if err := p.ctrl.Node().Call(Target{Role: Data}, m, timeout, func(r proto.Message, err error) { ch <- res{r, err} }); err != nil {
				ch <- res{nil, err}
			}
		})
		return wait(t, ch)
	}
	if r := call(wrapperspb.Int64(21), 0); r.err != nil || r.m.(*wrapperspb.Int64Value).GetValue() != 42 {
		t.Fatalf("call: %v %v", r.m, r.err)
	}
	var re *RemoteError
	if r := call(wrapperspb.Int64(-1), 0); !errors.As(r.err, &re) || re.Message != "negative" {
		t.Fatalf("handler error: %v", r.err)
	}
	if r := call(wrapperspb.Double(1), 0); !errors.As(r.err, &re) || !strings.Contains(re.Message, "google.protobuf.DoubleValue") {
		t.Fatalf("unknown type: %v", r.err)
	}
	if n := counterValue(p.data.refused.WithLabelValues(RefusedUnknownType)); n != 1 {
		t.Fatalf("data refused unknown_type %v, want 1", n)
	}
	if r := call(wrapperspb.Bool(true), 20*time.Millisecond); !errors.Is(r.err, ErrTimeout) {
		t.Fatalf("no reply: %v, want ErrTimeout", r.err)
	}
	// A one-way message of an unknown type: refused on both sides.
	p.cLoop.Do(func() {
		if err := p.ctrl.Node().Send(Target{Role: Data}, wrapperspb.Float(1)); err != nil {
			t.Fatal(err)
		}
	})
	await.True(t, func() bool { return counterValue(p.ctrl.refused.WithLabelValues(RefusedByPeer)) == 1 }, "ctrl counts the refusal")
	// No route: an error to the sender, not a silent drop.
	p.cl.mu.Lock()
	p.cl.down = true
	p.cl.mu.Unlock()
	if r := call(wrapperspb.Int64(1), 0); !errors.Is(r.err, ErrNoRoute) {
		t.Fatalf("no route: %v", r.err)
	}
}

func TestCallLostWithItsLink(t *testing.T) {
	dmux := NewMux()
	Handle(dmux, func(c *Context, m *wrapperspb.BoolValue) error { return nil })
	lost := make(chan Peer, 1)
	p := newPair(t, &App{OnPeerLost: func(peer Peer, reason string) { lost <- peer }}, &App{Mux: dmux})
	errc := make(chan error, 1)
	p.cLoop.Do(func() {
		if err := p.ctrl.Node().Call(Target{Role: Data}, wrapperspb.Bool(true), time.Minute, func(_ proto.Message, err error) { errc <- err }); err != nil {
			t.Fatal(err)
		}
		p.ctrl.PeerLost(Peer{Role: Data, PairID: "p1"}, "test")
	})
	if err := wait(t, errc); !errors.Is(err, ErrLinkLost) {
		t.Fatalf("%v, want ErrLinkLost", err)
	}
	if peer := wait(t, lost); peer.Role != Data {
		t.Fatalf("OnPeerLost(%v)", peer)
	}
}

// TestReplyFromAnotherPeerRefused: a reply is taken only from the
// target of its call.
func TestReplyFromAnotherPeerRefused(t *testing.T) {
	dmux := NewMux()
	Handle(dmux, func(c *Context, m *wrapperspb.BoolValue) error { return nil })
	p := newPair(t, &App{}, &App{Mux: dmux})
	errc := make(chan error, 1)
	p.cLoop.Do(func() {
		_ = p.ctrl.Node().Call(Target{Role: Data}, wrapperspb.Bool(true), 50*time.Millisecond, func(_ proto.Message, err error) { errc <- err })
		forged, _, _ := appendRecord(nil, "google.protobuf.BoolValue", wrapperspb.Bool(false), header{call: 1, reply: true})
		ins, err := p.ctrl.Decode(forged)
		if err != nil || len(ins) != 1 {
			t.Fatal(len(ins), err)
		}
		p.ctrl.Deliver(Peer{Role: Data, PairID: "other"}, ins[0])
	})
	if err := wait(t, errc); !errors.Is(err, ErrTimeout) {
		t.Fatalf("%v: the forged reply was taken", err)
	}
	if n := counterValue(p.ctrl.refused.WithLabelValues(RefusedLateReply)); n != 1 {
		t.Fatalf("late_reply %v", n)
	}
}

type counterState struct{ n, applied int }

func (s *counterState) Apply(u []byte) error {
	if len(u) == 0 {
		return errors.New("empty update")
	}
	s.n += int(u[0])
	s.applied++
	return nil
}
func (s *counterState) Snapshot() ([]byte, error) { return []byte{byte(s.n)}, nil }
func (s *counterState) Restore(b []byte) error {
	s.n = 0
	if len(b) > 0 {
		s.n = int(b[0])
	}
	return nil
}

func TestReplicateAndOperatorCall(t *testing.T) {
	loop := tier.NewLoop(0)
	defer loop.Close()
	st := &counterState{}
	mux := NewMux()
	var node *Node
	HandleOperator(mux, Admin, func(c *Context, m *wrapperspb.Int32Value) error {
		return c.Node.Replicate([]byte{byte(m.GetValue())}, func(cm Commit) {
			if cm.Err != nil {
				_ = c.ReplyError(cm.Err)
				return
			}
			_ = c.Reply(wrapperspb.Int32(int32(st.n)))
		})
	})
	HandleOperator(mux, Read, func(c *Context, m *wrapperspb.StringValue) error {
		return c.Reply(wrapperspb.Int32(int32(st.n)))
	})
	link := &memLink{self: Peer{Role: Mgmt}, to: map[Role]*Runtime{}}
	rt := NewRuntime(RuntimeConfig{Role: Mgmt, App: &App{Mux: mux, State: st, OnStart: func(n *Node) { node = n }}, Link: link, Loop: loop})
	loop.Do(rt.Start)
	defer loop.Do(rt.Stop)

	ctx := context.Background()
	body, _ := proto.Marshal(wrapperspb.Int32(5))
	// Not master yet.
	if _, _, err := rt.OperatorCall(ctx, Peer{}, true, "google.protobuf.Int32Value", body); err == nil || !strings.Contains(err.Error(), "not the master") {
		t.Fatalf("backup: %v", err)
	}
	loop.Do(func() { rt.SetMastership(true, 3) })
	// Read-only operators cannot call Admin handlers.
	if _, _, err := rt.OperatorCall(ctx, Peer{}, false, "google.protobuf.Int32Value", body); !errors.Is(err, ErrPermission) {
		t.Fatalf("read-only: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		typ, b, err := rt.OperatorCall(ctx, Peer{Name: "alice"}, true, "google.protobuf.Int32Value", body)
		if err == nil && (typ != "google.protobuf.Int32Value" || len(b) == 0) {
			err = errors.New("bad answer " + typ)
		}
		done <- err
	}()
	// The answer waits for the commit.
	await.True(t, func() bool {
		var ok bool
		loop.Do(func() { _, ok = rt.PendingCommit() })
		return ok
	}, "the update is pending")
	select {
	case err := <-done:
		t.Fatalf("answered before the commit: %v", err)
	default:
	}
	loop.Do(func() { rt.Committed(1, 1) })
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
	if st.n != 5 || st.applied != 1 {
		t.Fatalf("state %+v", st)
	}
	// Losing mastership fails what is pending.
	errc := make(chan error, 1)
	loop.Do(func() {
		if err := node.Replicate([]byte{1}, func(c Commit) { errc <- c.Err }); err != nil {
			t.Fatal(err)
		}
		rt.SetMastership(false, 4)
	})
	if err := wait(t, errc); !errors.Is(err, ErrNotMaster) {
		t.Fatalf("%v", err)
	}
	// State.Apply refusing an update: nothing replicated.
	loop.Do(func() {
		rt.SetMastership(true, 5)
		if err := node.Replicate(nil, nil); err == nil {
			t.Error("empty update accepted")
		}
	})
	if link.version != 2 {
		t.Fatalf("replicated %d updates, want 2", link.version)
	}
	if _, _, err := rt.OperatorCall(ctx, Peer{}, false, "no.such.Type", nil); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("unknown: %v", err)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
