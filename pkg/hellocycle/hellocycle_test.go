package hellocycle_test

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hellopics/hellopics/ctrl"
	"github.com/hellopics/hellopics/data"
	"github.com/hellopics/hellopics/internal/await"
	"github.com/hellopics/hellopics/mgmt"
	"github.com/hellopics/hellopics/pkg/election"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// interval is the tests' Hello interval: short enough for many hellos,
// long enough that a loaded machine under -race returns them in time.
const interval = 50 * time.Millisecond

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startMgmt starts instance id of the cluster ha (nil: alone) with the
// cycle on the API, listening for components at addr.
func startMgmt(t *testing.T, id string, prio uint32, addr string, ha map[string]string) *mgmt.Server {
	t.Helper()
	mc := mgmt.DefaultConfig()
	mc.ListenAddr, mc.OperatorAddr = addr, ""
	mc.AppCycle, mc.HelloInterval = true, interval
	mc.ID, mc.Priority = id, prio
	mc.HeartbeatInterval = 20 * time.Millisecond
	if ha != nil {
		mc.HAListenAddr = ha[id]
		for p, a := range ha {
			if p != id {
				mc.Peers = append(mc.Peers, election.Peer{ID: p, Addr: a})
			}
		}
	}
	if os.Getenv("HELLOCYCLE_LOG") != "" {
		mc.Logger = hclog.New(&hclog.LoggerOptions{Name: id, Level: hclog.Debug, Output: os.Stderr})
	}
	s, err := mgmt.New(mc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startPair starts ctrl and data of pair p1 against the mgmt addresses.
func startPair(t *testing.T, addrs ...string) {
	t.Helper()
	cc := ctrl.DefaultConfig()
	cc.MgmtAddrs, cc.ListenAddr, cc.PairID = addrs, "127.0.0.1:0", "p1"
	cc.RetryInterval = 20 * time.Millisecond
	c, err := ctrl.New(cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	dc := data.DefaultConfig()
	dc.MgmtAddrs, dc.PairID = addrs, "p1"
	dc.RetryInterval = 20 * time.Millisecond
	d, err := data.New(dc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
}

// counters reads p1's counters on s's loop (nil if none yet).
func counters(s *mgmt.Server) *hellopicsv1.HelloCounters {
	var hc *hellopicsv1.HelloCounters
	s.Node().Do(func() { hc = s.HelloCycle().Counters("p1") })
	return hc
}

func isMaster(s *mgmt.Server) bool {
	var m bool
	s.Node().Do(func() { m = s.Node().IsMaster() })
	return m
}

func running(s *mgmt.Server) bool {
	var r bool
	s.Node().Do(func() { r = s.HelloCycle().Running("p1") })
	return r
}

// TestCycleOnTheAPI: the Hello cycle as an application, on two mgmt
// instances and a pair. Its hellos come back; the status shows its
// counters (the registry's own cycle is off); the backup holds them;
// a switchover and then a failover without a handover go on counting
// from them, never reuse a number, and count no outage for the planned
// switchover.
func TestCycleOnTheAPI(t *testing.T) {
	ha := map[string]string{"a": freeAddr(t), "b": freeAddr(t)}
	aAddr, bAddr := freeAddr(t), freeAddr(t)
	a := startMgmt(t, "a", 200, aAddr, ha)
	defer a.Close()
	b := startMgmt(t, "b", 100, bAddr, ha)
	bClosed := false
	defer func() {
		if !bClosed {
			b.Close()
		}
	}()
	await.True(t, func() bool { return isMaster(a) }, "a master")
	startPair(t, aAddr, bAddr)
	await.True(t, func() bool { hc := counters(a); return hc != nil && hc.GetReceived() >= 10 }, "10 hellos back at a")

	st, err := a.Status(context.Background(), &hellopicsv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.GetPairs()) != 1 || !st.GetPairs()[0].GetCycleRunning() || st.GetPairs()[0].GetCounters().GetReceived() < 10 {
		t.Fatalf("status of the app cycle: %v", st.GetPairs())
	}
	// While hellos flow, the counters go to the backup every counters
	// interval (here the hello interval): 20 hellos, at least 5 updates
	// (a change must never postpone the replication).
	var u0 uint64
	a.Node().Do(func() { u0 = a.HelloCycle().Updates() })
	r0 := counters(a).GetReceived()
	await.True(t, func() bool { return counters(a).GetReceived() >= r0+20 }, "20 more hellos back at a")
	var u1 uint64
	a.Node().Do(func() { u1 = a.HelloCycle().Updates() })
	t.Logf("%d counter updates over 20 hellos", u1-u0)
	if u1-u0 < 5 {
		t.Fatalf("%d counter updates replicated over 20 hellos; want one about every hello interval", u1-u0)
	}
	// The backup holds counters replicated from the master, within a
	// few counter intervals of any moment, while the hellos flow.
	for range 5 {
		at := counters(a)
		if err := await.Within(5*time.Second, func() bool {
			hc := counters(b)
			return hc != nil && hc.GetSent() >= at.GetSent() && hc.GetReceived() >= at.GetReceived()
		}); err != nil {
			t.Fatalf("b did not catch up with a's counters %v within 5s: it holds %v", at, counters(b))
		}
	}
	if running(b) {
		t.Fatal("the cycle runs on the backup")
	}

	// A switchover: b goes on from a's counters, counting no outage.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := a.Switchover(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	await.True(t, func() bool { return isMaster(b) }, "b master")
	atA := counters(a) // a stopped: what it had
	await.True(t, func() bool { hc := counters(b); return hc.GetReceived() >= atA.GetReceived()+10 }, "10 more hellos back at b")
	atB := counters(b)
	if atB.GetSent() < atA.GetSent() || atB.GetLastSeq() <= atA.GetLastSeq() {
		t.Fatalf("after the switchover: b %v; a had %v", atB, atA)
	}
	if atB.GetMissed() > atA.GetMissed()+2 {
		t.Fatalf("the switchover counted hellos missed: %d -> %d", atA.GetMissed(), atB.GetMissed())
	}
	if running(a) {
		t.Fatal("the cycle still runs on the old master")
	}

	// b stops without handing over (its backup a takes over after the
	// dead interval): a goes on above b's numbers, from b's counters.
	await.True(t, func() bool { hc := counters(a); return hc.GetReceived() >= atB.GetReceived() }, "a to hold b's counters")
	b.Close()
	bClosed = true
	await.True(t, func() bool { return isMaster(a) }, "a master again")
	await.True(t, func() bool { hc := counters(a); return hc.GetReceived() >= atB.GetReceived()+10 }, "10 more hellos back at a")
	final := counters(a)
	if final.GetLastSeq() <= atB.GetLastSeq() || final.GetSent() < atB.GetSent() {
		t.Fatalf("after the failover: a %v; b had %v", final, atB)
	}
	if final.GetReceived() > final.GetSent() {
		t.Fatalf("received %d of %d sent", final.GetReceived(), final.GetSent())
	}
}

// TestSeenAcrossRestart: a single mgmt (no backup to keep its numbers)
// restarts; ctrl and data report the highest number they passed on, and
// the new instance's hellos go on above it.
func TestSeenAcrossRestart(t *testing.T) {
	addr := freeAddr(t)
	first := startMgmt(t, "m", 100, addr, nil)
	startPair(t, addr)
	await.True(t, func() bool { hc := counters(first); return hc != nil && hc.GetReceived() >= 5 }, "5 hellos back")
	first.Close()
	before := counters(first).GetLastSeq()

	second := startMgmt(t, "m", 100, addr, nil)
	defer second.Close()
	await.True(t, func() bool { hc := counters(second); return hc != nil && hc.GetReceived() >= 3 }, "3 hellos back at the new instance")
	var next uint64
	second.Node().Do(func() { next = second.HelloCycle().NextSeq() })
	hc := counters(second)
	if first, sent := hc.GetLastSeq()-hc.GetSent()+1, hc.GetSent(); sent == 0 || first <= before {
		t.Fatalf("the new instance numbered from %d (last %d, %d sent); the old one had sent up to %d", first, hc.GetLastSeq(), sent, before)
	}
	if next <= before {
		t.Fatalf("next number %d, not above the %d seen", next, before)
	}
}
