package appliance_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/hellopics/hellopics/ctrl"
	"github.com/hellopics/hellopics/data"
	"github.com/hellopics/hellopics/internal/await"
	"github.com/hellopics/hellopics/mgmt"
	"github.com/hellopics/hellopics/pkg/appliance"
)

// trio is a single mgmt and one ctrl/data pair, in this process, on
// loopback, each with an application.
type trio struct {
	mgmt *mgmt.Server
	ctrl *ctrl.Ctrl
	data *data.Data
}

func startMgmt(t testing.TB, app *appliance.App) *mgmt.Server {
	t.Helper()
	mc := mgmt.DefaultConfig()
	mc.ListenAddr, mc.OperatorAddr, mc.App = "127.0.0.1:0", "", app
	mc.HelloInterval = 50 * time.Millisecond
	m, err := mgmt.New(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func startCtrl(t testing.TB, mgmtAddr string, app *appliance.App) *ctrl.Ctrl {
	t.Helper()
	return startCtrlAt(t, []string{mgmtAddr}, app)
}

func startCtrlAt(t testing.TB, mgmtAddrs []string, app *appliance.App) *ctrl.Ctrl {
	t.Helper()
	cc := ctrl.DefaultConfig()
	cc.MgmtAddrs, cc.ListenAddr, cc.PairID, cc.App = mgmtAddrs, "127.0.0.1:0", "p1", app
	cc.RetryInterval = 50 * time.Millisecond
	c, err := ctrl.New(cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func startData(t testing.TB, mgmtAddr string, app *appliance.App) *data.Data {
	t.Helper()
	return startDataAt(t, []string{mgmtAddr}, app)
}

func startDataAt(t testing.TB, mgmtAddrs []string, app *appliance.App) *data.Data {
	t.Helper()
	dc := data.DefaultConfig()
	dc.MgmtAddrs, dc.PairID, dc.App = mgmtAddrs, "p1", app
	dc.RetryInterval = 50 * time.Millisecond
	d, err := data.New(dc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func startTrio(t testing.TB, m, c, d *appliance.App) *trio {
	t.Helper()
	tr := &trio{mgmt: startMgmt(t, m)}
	tr.ctrl = startCtrl(t, tr.mgmt.Addr().String(), c)
	tr.data = startData(t, tr.mgmt.Addr().String(), d)
	await.True(t, func() bool { return tr.ctrl.Ready() && tr.data.Ready() }, "ctrl and data ready")
	return tr
}

type result struct {
	m   proto.Message
	err error
}

// call makes a Call from n's loop and waits for its outcome.
func call(t testing.TB, n *appliance.Node, to appliance.Target, m proto.Message, timeout time.Duration) result {
	t.Helper()
	ch := make(chan result, 1)
	n.Do(func() {
		if err := n.Call(to, m, timeout, func(r proto.Message, err error) { ch <- result{r, err} }); err != nil {
			ch <- result{nil, err}
		}
	})
	select {
	case r := <-ch:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("no outcome of the call in 30s")
		return result{}
	}
}

func send(n *appliance.Node, to appliance.Target, m proto.Message) (err error) {
	n.Do(func() { err = n.Send(to, m) })
	return err
}

// TestComponentMessages: application messages between real components,
// every direction the framework offers.
func TestComponentMessages(t *testing.T) {
	got := make(chan string, 2000)
	dataMux := appliance.NewMux()
	appliance.Handle(dataMux, func(c *appliance.Context, m *wrapperspb.StringValue) error {
		if c.From != (appliance.Peer{Role: appliance.Ctrl, PairID: "p1"}) {
			return fmt.Errorf("from %v", c.From)
		}
		got <- m.GetValue()
		return nil
	})
	ctrlMux := appliance.NewMux()
	appliance.HandleCall(ctrlMux, func(c *appliance.Context, m *wrapperspb.Int64Value) (*wrapperspb.Int64Value, error) {
		if m.GetValue() < 0 {
			return nil, errors.New("negative numbers refused")
		}
		return wrapperspb.Int64(m.GetValue() + 1), nil
	})
	appliance.Handle(ctrlMux, func(c *appliance.Context, m *wrapperspb.BoolValue) error { return nil }) // never answers
	fromMgmt := make(chan string, 1)
	appliance.Handle(ctrlMux, func(c *appliance.Context, m *wrapperspb.BytesValue) error {
		fromMgmt <- c.From.String() + " " + string(m.GetValue())
		return nil
	})
	mgmtMux := appliance.NewMux()
	appliance.HandleCall(mgmtMux, func(c *appliance.Context, m *wrapperspb.UInt64Value) (*wrapperspb.StringValue, error) {
		return wrapperspb.String("hello " + c.From.String()), nil
	})
	pairReady := make(chan string, 4)
	tr := startTrio(t,
		&appliance.App{Mux: mgmtMux, OnPairReady: func(pair string, _ uint64) { pairReady <- pair }},
		&appliance.App{Mux: ctrlMux}, &appliance.App{Mux: dataMux})
	cn, dn := tr.ctrl.Node(), tr.data.Node()

	// ctrl -> data, in order.
	cn.Do(func() {
		for i := range 1000 {
			if err := cn.Send(appliance.Target{Role: appliance.Data}, wrapperspb.String(fmt.Sprint(i))); err != nil {
				t.Errorf("send %d: %v", i, err)
				return
			}
		}
	})
	for i := range 1000 {
		select {
		case v := <-got:
			if v != fmt.Sprint(i) {
				t.Fatalf("message %d arrived as %s", i, v)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("message %d not delivered", i)
		}
	}

	// data -> ctrl calls: an answer, a handler's error, an unknown type,
	// a handler that never answers.
	if r := call(t, dn, appliance.Target{Role: appliance.Ctrl}, wrapperspb.Int64(41), 0); r.err != nil || r.m.(*wrapperspb.Int64Value).GetValue() != 42 {
		t.Fatalf("call: %v, %v", r.m, r.err)
	}
	var re *appliance.RemoteError
	if r := call(t, dn, appliance.Target{Role: appliance.Ctrl}, wrapperspb.Int64(-1), 0); !errors.As(r.err, &re) || re.Message != "negative numbers refused" {
		t.Fatalf("handler error: %v", r.err)
	}
	if r := call(t, dn, appliance.Target{Role: appliance.Ctrl}, wrapperspb.Double(1), 0); !errors.As(r.err, &re) || !strings.Contains(re.Message, "google.protobuf.DoubleValue") {
		t.Fatalf("unknown type: %v", r.err)
	}
	if r := call(t, dn, appliance.Target{Role: appliance.Ctrl}, wrapperspb.Bool(true), 50*time.Millisecond); !errors.Is(r.err, appliance.ErrTimeout) {
		t.Fatalf("unanswered call: %v, want ErrTimeout", r.err)
	}
	// data -> mgmt, and mgmt -> every ready pair's ctrl.
	if r := call(t, dn, appliance.ToMgmt, wrapperspb.UInt64(1), 0); r.err != nil || r.m.(*wrapperspb.StringValue).GetValue() != "hello data/p1" {
		t.Fatalf("call to mgmt: %v, %v", r.m, r.err)
	}
	if p := <-pairReady; p != "p1" {
		t.Fatalf("OnPairReady(%q)", p)
	}
	mn := mgmtNode(t, tr.mgmt)
	var n int
	var err error
	mn.Do(func() { n, err = mn.Broadcast(appliance.Ctrl, wrapperspb.Bytes([]byte("config"))) })
	if n != 1 || err != nil {
		t.Fatalf("broadcast: %d sent, %v", n, err)
	}
	if v := <-fromMgmt; v != "mgmt config" {
		t.Fatalf("ctrl got %q from mgmt", v)
	}
	// Too large for the frame limit: an error to the sender.
	if err := send(cn, appliance.Target{Role: appliance.Data}, wrapperspb.Bytes(make([]byte, 2<<20))); !errors.Is(err, appliance.ErrTooLarge) {
		t.Fatalf("2 MiB message: %v, want ErrTooLarge", err)
	}
	// ctrl reaches only its own pair, and no other tier.
	if err := send(cn, appliance.To(appliance.Data, "p2"), wrapperspb.String("x")); !errors.Is(err, appliance.ErrNoRoute) {
		t.Fatalf("another pair's data: %v", err)
	}
}

// mgmtNode is the application's Node in m (the App's OnStart gives it to
// applications; tests ask the server).
func mgmtNode(t testing.TB, m *mgmt.Server) *appliance.Node {
	t.Helper()
	n := m.Node()
	if n == nil {
		t.Fatal("mgmt has no application node")
	}
	return n
}

// TestComponentHooks: OnStart first, peer ready and lost, master
// changed and mgmt lost, and sends before the peer is ready refused.
func TestComponentHooks(t *testing.T) {
	m := startMgmt(t, nil)
	events := make(chan string, 16)
	var node *appliance.Node
	c := startCtrl(t, m.Addr().String(), &appliance.App{
		OnStart:         func(n *appliance.Node) { node = n; events <- "start" },
		OnPeerReady:     func(p appliance.Peer, _ uint64) { events <- "ready " + p.String() },
		OnPeerLost:      func(p appliance.Peer, _ string) { events <- "lost " + p.String() },
		OnMasterChanged: func(addr string, _ uint64) { events <- "master" },
	})
	next := func(want string) {
		t.Helper()
		select {
		case e := <-events:
			if e != want {
				t.Fatalf("hook %q, want %q", e, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no hook %q", want)
		}
	}
	next("start")
	next("master")
	if err := send(node, appliance.Target{Role: appliance.Data}, wrapperspb.String("early")); !errors.Is(err, appliance.ErrNoRoute) {
		t.Fatalf("send before data is ready: %v, want ErrNoRoute", err)
	}
	d := startData(t, m.Addr().String(), nil)
	next("ready data/p1")
	if c.Node() != node {
		t.Fatal("Ctrl.Node is not the node given to OnStart")
	}
	d.Close()
	next("lost data/p1")
}
