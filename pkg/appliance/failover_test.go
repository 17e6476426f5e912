package appliance_test

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/hellopics/hellopics/internal/await"
	"github.com/hellopics/hellopics/mgmt"
	"github.com/hellopics/hellopics/pkg/appliance"
	"github.com/hellopics/hellopics/pkg/election"
)

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startHA starts mgmt instance id of two, whose HA addresses are ha.
func startHA(t testing.TB, id string, prio uint32, ha map[string]string, app *appliance.App) *mgmt.Server {
	t.Helper()
	mc := mgmt.DefaultConfig()
	mc.ListenAddr, mc.OperatorAddr, mc.HAListenAddr, mc.App = "127.0.0.1:0", "", ha[id], app
	mc.ID, mc.Priority = id, prio
	for p, a := range ha {
		if p != id {
			mc.Peers = append(mc.Peers, election.Peer{ID: p, Addr: a})
		}
	}
	m, err := mgmt.New(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestHooksThroughFailover: a component follows the master through a
// failover, and its application is told: OnMgmtLost, then
// OnMasterChanged with the new master's address; the new master's
// application gets OnMastership and OnPairReady for the pair.
func TestHooksThroughFailover(t *testing.T) {
	ha := map[string]string{"a": freeAddr(t), "b": freeAddr(t)}
	var h hookLog
	a := startHA(t, "a", 200, ha, &appliance.App{OnMastership: func(m bool, _ uint64) { h.add("a master", m) }})
	await.True(t, func() bool { return h.has("a master", true) }, "a master")
	var bNode *appliance.Node
	var bEpoch atomic.Uint64
	b := startHA(t, "b", 100, ha, &appliance.App{
		OnStart: func(n *appliance.Node) { bNode = n },
		OnMastership: func(m bool, epoch uint64) {
			h.add("b master", m)
			bEpoch.Store(epoch)
		},
		OnPairReady: func(pair string, _ uint64) {
			h.add("b pair ready", pair)
			if err := bNode.Send(appliance.To(appliance.Ctrl, pair), wrapperspb.String("from b")); err != nil {
				t.Errorf("b: send to ctrl: %v", err)
			}
		},
	})
	addrs := []string{a.Addr().String(), b.Addr().String()}
	cmux := appliance.NewMux()
	stamped := make(chan uint64, 1)
	appliance.Handle(cmux, func(c *appliance.Context, m *wrapperspb.StringValue) error {
		stamped <- c.Epoch
		return nil
	})
	cc := startCtrlAt(t, addrs, &appliance.App{
		Mux:             cmux,
		OnMasterChanged: func(addr string, _ uint64) { h.add("ctrl master", addr) },
		OnMgmtLost:      func(string) { h.add("ctrl lost", true) },
	})
	startDataAt(t, addrs, nil)
	await.True(t, cc.Ready, "ctrl ready")
	await.True(t, func() bool { return h.last("ctrl master") == a.Addr().String() }, "ctrl with a")
	lostBefore := h.count("ctrl lost")

	a.Close() // the master goes; b takes over
	await.True(t, func() bool { return h.has("b master", true) }, "b master")
	await.True(t, func() bool { return h.has("b pair ready", "p1") }, "b: OnPairReady(p1)")
	await.True(t, func() bool { return h.last("ctrl master") == b.Addr().String() }, "ctrl: OnMasterChanged(b)")
	if h.count("ctrl lost") <= lostBefore {
		t.Fatal("ctrl's application was not told that it lost mgmt a")
	}
	// b's message reached ctrl stamped with b's epoch, over the wire.
	select {
	case e := <-stamped:
		if e == 0 || e != bEpoch.Load() {
			t.Fatalf("ctrl's handler saw epoch %d; b is master at %d", e, bEpoch.Load())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("b's message never reached ctrl")
	}
}

// hookLog records hooks from the components' loops; tests read it.
type hookLog struct {
	mu   sync.Mutex
	seen []hookEvent
}

type hookEvent struct {
	what string
	arg  any
}

func (h *hookLog) add(what string, arg any) {
	h.mu.Lock()
	h.seen = append(h.seen, hookEvent{what, arg})
	h.mu.Unlock()
}

func (h *hookLog) has(what string, arg any) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.seen {
		if e.what == what && e.arg == arg {
			return true
		}
	}
	return false
}

func (h *hookLog) count(what string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, e := range h.seen {
		if e.what == what {
			n++
		}
	}
	return n
}

// last is the argument of the last hook named what, or nil.
func (h *hookLog) last(what string) any {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := len(h.seen) - 1; i >= 0; i-- {
		if h.seen[i].what == what {
			return h.seen[i].arg
		}
	}
	return nil
}

// TestCallLostWhenPeerGoes: a Call in flight to data fails with
// ErrLinkLost as soon as data goes, not at its deadline.
func TestCallLostWhenPeerGoes(t *testing.T) {
	dataMux := appliance.NewMux()
	appliance.Handle(dataMux, func(c *appliance.Context, m *wrapperspb.BoolValue) error { return nil }) // never answers
	tr := startTrio(t, nil, nil, &appliance.App{Mux: dataMux})
	cn := tr.ctrl.Node()
	errc := make(chan error, 1)
	start := time.Now()
	cn.Do(func() {
		if err := cn.Call(appliance.Target{Role: appliance.Data}, wrapperspb.Bool(true), time.Minute,
			func(_ proto.Message, err error) { errc <- err }); err != nil {
			errc <- err
		}
	})
	tr.data.Close()
	if err := next(t, errc); !errors.Is(err, appliance.ErrLinkLost) {
		t.Fatalf("%v, want ErrLinkLost", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("the loss took %v to reach the caller", d)
	}
}

func next[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatal("nothing in 30s")
		panic("unreachable")
	}
}
