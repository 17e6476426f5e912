package appliance_test

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hellopics/hellopics/ctrl"
	"github.com/hellopics/hellopics/data"
	"github.com/hellopics/hellopics/internal/await"
	"github.com/hellopics/hellopics/mgmt"
	"github.com/hellopics/hellopics/pkg/appliance"
	"github.com/hellopics/hellopics/pkg/election"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// TestWatchFollowsElectionAfterHostLoss: the master's host goes silent
// (its links blackholed, no reset reaches anyone) while ctrl and data
// would wait ten minutes before giving up on it. They follow the backup
// as soon as it is elected, because it says so on their watch sessions.
func TestWatchFollowsElectionAfterHostLoss(t *testing.T) {
	haA, haB := freeAddr(t), freeAddr(t)
	toA, toB := startProxy(t, haA), startProxy(t, haB) // the HA link, both ways
	var h hookLog
	a := startHAVia(t, "a", 200, haA, election.Peer{ID: "b", Addr: toB.addr()}, &appliance.App{
		OnMastership: func(m bool, _ uint64) { h.add("a master", m) }})
	await.True(t, func() bool { return h.has("a master", true) }, "a master")
	b := startHAVia(t, "b", 100, haB, election.Peer{ID: "a", Addr: toA.addr()}, &appliance.App{
		OnMastership: func(m bool, e uint64) { h.add("b master", m) },
		OnPairReady:  func(pair string, _ uint64) { h.add("b pair ready", pair) },
	})
	compA := startProxy(t, a.Addr().String()) // the components' way to a
	addrs := []string{compA.addr(), b.Addr().String()}

	cc := ctrl.DefaultConfig()
	cc.MgmtAddrs, cc.ListenAddr, cc.PairID = addrs, "127.0.0.1:0", "p1"
	cc.RetryInterval, cc.MgmtDeadTimeout = 50*time.Millisecond, 10*time.Minute
	cc.App = &appliance.App{OnMasterChanged: func(addr string, _ uint64) { h.add("ctrl master", addr) }}
	c, err := ctrl.New(cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	dc := data.DefaultConfig()
	dc.MgmtAddrs, dc.PairID = addrs, "p1"
	dc.RetryInterval, dc.MgmtDeadTimeout = 50*time.Millisecond, 10*time.Minute
	dc.App = &appliance.App{OnMasterChanged: func(addr string, _ uint64) { h.add("data master", addr) }}
	d, err := data.New(dc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	await.True(t, func() bool { return c.Ready() && d.Ready() }, "ctrl and data ready")
	await.True(t, func() bool { return h.last("ctrl master") == compA.addr() }, "ctrl on a")
	await.True(t, func() bool { return b.Watchers() == 2 }, "b has ctrl's and data's watch sessions (has %d)", b.Watchers())
	// b must know a as its master before a is lost: on a loaded machine
	// b can claim before a's first heartbeat reaches it through the
	// proxies (a "b master" at epoch 1, below a's), and a freeze then
	// would leave it there, below the epoch ctrl and data follow.
	status := func(m *mgmt.Server) *hellopicsv1.GetStatusResponse {
		st, err := m.Status(context.Background(), &hellopicsv1.GetStatusRequest{PageSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	await.True(t, func() bool { return status(b).GetMasterId() == "a" }, "b follows a")
	epochA := status(a).GetEpoch()

	toA.freeze()
	toB.freeze()
	compA.freeze()
	await.True(t, func() bool { st := status(b); return st.GetMasterId() == "b" && st.GetEpoch() > epochA }, "b elected above a's epoch %d", epochA)
	await.True(t, func() bool { return h.last("ctrl master") == b.Addr().String() }, "ctrl follows b")
	await.True(t, func() bool { return h.last("data master") == b.Addr().String() }, "data follows b")
	await.True(t, func() bool { return h.has("b pair ready", "p1") }, "the pair ready on b")
}

// startHAVia starts mgmt id listening for HA on ha, reaching its one
// peer at peer.Addr.
func startHAVia(t testing.TB, id string, prio uint32, ha string, peer election.Peer, app *appliance.App) *mgmt.Server {
	t.Helper()
	mc := mgmt.DefaultConfig()
	mc.ListenAddr, mc.OperatorAddr, mc.HAListenAddr, mc.App = "127.0.0.1:0", "", ha, app
	mc.ID, mc.Priority, mc.Peers = id, prio, []election.Peer{peer}
	m, err := mgmt.New(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// proxy forwards TCP connections to target until frozen; then it reads
// and drops everything, both ways, and keeps the connections open: a
// host lost, as its peers see it.
type proxy struct {
	ln     net.Listener
	target string
	frozen atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }
func (p *proxy) freeze()      { p.frozen.Store(true) }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.frozen.Load() {
			p.track(in) // accepted, never answered
			continue
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.track(in)
		p.track(out)
		p.wg.Add(2)
		go p.pipe(out, in)
		go p.pipe(in, out)
	}
}

func (p *proxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			if !p.frozen.Load() {
				if tc, ok := dst.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
			}
			return
		}
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
