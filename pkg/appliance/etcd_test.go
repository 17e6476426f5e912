package appliance_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hellopics/hellopics/internal/await"
	"github.com/hellopics/hellopics/internal/etcdtest"
	"github.com/hellopics/hellopics/mgmt"
	"github.com/hellopics/hellopics/pkg/appliance"
	"github.com/hellopics/hellopics/pkg/election"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// etcdTrio is three mgmt instances with the election on etcd, each
// reaching etcd through its own proxies (one per etcd member), so that a
// test can cut one instance off etcd while the instances still hear
// each other.
type etcdTrio struct {
	t       *testing.T
	etcd    *etcdtest.Cluster
	ids     []string
	ha      map[string]string
	proxies map[string][]*etcdtest.Proxy
	mu      sync.Mutex
	m       map[string]*mgmt.Server
}

func newEtcdTrio(t *testing.T) *etcdTrio {
	tr := &etcdTrio{t: t, etcd: etcdtest.Start(t, 3), ids: []string{"a", "b", "c"}, ha: map[string]string{},
		proxies: map[string][]*etcdtest.Proxy{}, m: map[string]*mgmt.Server{}}
	for _, id := range tr.ids {
		tr.ha[id] = freeAddr(t)
		for _, ep := range tr.etcd.Endpoints() {
			tr.proxies[id] = append(tr.proxies[id], etcdtest.NewProxy(t, ep))
		}
	}
	return tr
}

func (tr *etcdTrio) start(id string) *mgmt.Server {
	t := tr.t
	t.Helper()
	mc := mgmt.DefaultConfig()
	mc.ListenAddr, mc.OperatorAddr, mc.HAListenAddr = "127.0.0.1:0", "", tr.ha[id]
	mc.ID = id
	mc.Election = appliance.ElectionEtcd
	mc.Etcd.LeaseTTL = time.Second
	mc.Etcd.Prefix = "/test/" + t.Name()
	for _, p := range tr.proxies[id] {
		mc.Etcd.Endpoints = append(mc.Etcd.Endpoints, p.Addr)
	}
	for _, p := range tr.ids {
		if p != id {
			mc.Peers = append(mc.Peers, election.Peer{ID: p, Addr: tr.ha[p]})
		}
	}
	var buf syncBuffer
	mc.Logger = hclog.New(&hclog.LoggerOptions{Name: id, Output: &buf, Level: hclog.Info})
	m, err := mgmt.New(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Close()
		if t.Failed() || os.Getenv("ETCDTEST_LOGS") != "" {
			t.Logf("mgmt %s log:\n%s", id, buf.String())
		}
	})
	tr.mu.Lock()
	tr.m[id] = m
	tr.mu.Unlock()
	return m
}

func (tr *etcdTrio) stop(id string) {
	tr.mu.Lock()
	m := tr.m[id]
	delete(tr.m, id)
	tr.mu.Unlock()
	m.Close()
}

func (tr *etcdTrio) status(id string) *hellopicsv1.GetStatusResponse {
	tr.mu.Lock()
	m := tr.m[id]
	tr.mu.Unlock()
	if m == nil {
		return nil
	}
	st, err := m.Status(context.Background(), &hellopicsv1.GetStatusRequest{})
	if err != nil {
		return nil
	}
	return st
}

// masters returns the running instances that are master, and their epochs.
func (tr *etcdTrio) masters() map[string]uint64 {
	ms := map[string]uint64{}
	for _, id := range tr.ids {
		if st := tr.status(id); st != nil && st.GetRole() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
			ms[id] = st.GetEpoch()
		}
	}
	return ms
}

// awaitMaster waits for exactly one master, other than not, followed by
// every other running instance, at an epoch above above; it returns it.
func (tr *etcdTrio) awaitMaster(not string, above uint64) (string, uint64) {
	tr.t.Helper()
	var master string
	var epoch uint64
	await.True(tr.t, func() bool {
		ms := tr.masters()
		if len(ms) != 1 {
			return false
		}
		for id, e := range ms {
			master, epoch = id, e
		}
		if master == not || epoch <= above {
			return false
		}
		for _, id := range tr.ids {
			if st := tr.status(id); st != nil && id != master && (st.GetMasterId() != master || st.GetEpoch() != epoch) {
				return false
			}
		}
		return true
	}, "one master other than %q above epoch %d, followed by the others", not, above)
	return master, epoch
}

// watchSplitBrain fails the test if two instances are ever master at
// once, sampling until the test ends.
func (tr *etcdTrio) watchSplitBrain() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if ms := tr.masters(); len(ms) > 1 {
				tr.t.Errorf("two masters at once: %v", ms)
				return
			}
		}
	}()
	tr.t.Cleanup(func() { close(done); wg.Wait() })
}

// awaitHellos waits until the one master, at an epoch of at least
// min, shows pair p1 cycling with hellos received beyond what it showed
// first at that mastership (the mastership may move meanwhile, as when
// etcd's leader is lost: then it waits for the next); it returns the
// master and its epoch.
func (tr *etcdTrio) awaitHellos(min uint64) (string, uint64) {
	tr.t.Helper()
	base := map[string]uint64{}
	var master string
	var epoch uint64
	await.True(tr.t, func() bool {
		ms := tr.masters()
		if len(ms) != 1 {
			return false
		}
		for id, e := range ms {
			master, epoch = id, e
		}
		if epoch < min {
			return false
		}
		st := tr.status(master)
		if st == nil || st.GetEpoch() != epoch {
			return false
		}
		for _, p := range st.GetPairs() {
			if p.GetPairId() != "p1" || !p.GetCycleRunning() {
				continue
			}
			key := fmt.Sprintf("%s@%d", master, epoch)
			got := p.GetCounters().GetReceived()
			b, ok := base[key]
			if !ok {
				base[key] = got
				return false
			}
			return got >= b+2
		}
		return false
	}, "hellos returning under one master at epoch %d or above", min)
	return master, epoch
}

// awaitCtrl waits until ctrl's OnMasterChanged named master's address.
func (tr *etcdTrio) awaitCtrl(seen *atomic.Value, master string) {
	tr.t.Helper()
	tr.mu.Lock()
	want := tr.m[master].Addr().String()
	tr.mu.Unlock()
	await.True(tr.t, func() bool { a, _ := seen.Load().(string); return a == want }, "ctrl with master %s", master)
}

// awaitCampaigning waits until every running instance has a campaign
// key under the election's prefix.
func (tr *etcdTrio) awaitCampaigning() {
	tr.t.Helper()
	cli, err := tr.etcd.Client()
	if err != nil {
		tr.t.Fatal(err)
	}
	defer cli.Close()
	var last string
	err = await.Within(await.Timeout, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		resp, err := cli.Get(ctx, "/test/"+tr.t.Name()+"/", clientv3.WithPrefix())
		if err != nil {
			last = err.Error()
			return false
		}
		have := map[string]bool{}
		var keys []string
		for _, kv := range resp.Kvs {
			have[string(kv.Value)] = true
			keys = append(keys, fmt.Sprintf("%s@%d", kv.Value, kv.CreateRevision))
		}
		last = strings.Join(keys, " ")
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for id := range tr.m {
			if !have[id] {
				return false
			}
		}
		return true
	})
	if err != nil {
		tr.t.Fatalf("not every instance campaigns on etcd: keys %s: %v", last, err)
	}
}

// syncBuffer is a bytes.Buffer for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestEtcdElectionFailover: three mgmt on a three-member etcd elect one
// master; ctrl and data follow it; when it goes, another takes over at
// a higher epoch (the leader key's create revision) and ctrl and data
// follow it; the election survives the loss of etcd's leader; a
// switchover resigns to the next instance.
func TestEtcdElectionFailover(t *testing.T) {
	tr := newEtcdTrio(t)
	tr.watchSplitBrain()
	var addrs []string
	for _, id := range tr.ids {
		addrs = append(addrs, tr.start(id).Addr().String())
	}
	master, epoch := tr.awaitMaster("", 0)
	t.Logf("master %s at epoch %d", master, epoch)

	// Hellos returning under a master show that ctrl and data took its
	// epoch: they refuse a hello of an epoch below the highest they saw.
	var ctrlMaster atomic.Value
	startCtrlAt(t, addrs, &appliance.App{OnMasterChanged: func(a string, _ uint64) { ctrlMaster.Store(a) }})
	startDataAt(t, addrs, nil)
	tr.awaitHellos(epoch)
	tr.awaitCtrl(&ctrlMaster, master)

	// The master goes (its lease is revoked as it stops).
	tr.stop(master)
	old := master
	master, epoch = tr.awaitMaster(old, epoch)
	t.Logf("after %s stopped: master %s at epoch %d", old, master, epoch)
	tr.awaitHellos(epoch)
	tr.awaitCtrl(&ctrlMaster, master)
	tr.start(old)

	// etcd's leader is killed: etcd elects another within a second or
	// so, and the mastership either holds or moves, once.
	if l := tr.etcd.Leader(); l != nil {
		l.Kill()
		t.Logf("killed etcd leader %s", l.Name)
		defer func() {
			if err := l.Start(); err != nil {
				t.Error(err)
			}
		}()
	} else {
		t.Fatal("no etcd leader found")
	}
	master, epoch = tr.awaitHellos(epoch)
	t.Logf("after etcd's leader was killed: master %s at epoch %d", master, epoch)

	// Every instance campaigns again: each has its key in etcd's queue
	// (a term that ended while etcd had no leader once never did).
	tr.awaitCampaigning()
	// A switchover resigns: another instance takes over.
	tr.mu.Lock()
	m := tr.m[master]
	tr.mu.Unlock()
	if _, err := m.Switchover(context.Background(), "c"); err == nil {
		t.Fatal("a switchover to a named target was accepted")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := m.Switchover(ctx, "")
	if err != nil {
		t.Fatalf("switchover: %v", err)
	}
	if resp.GetNewMasterId() == master || resp.GetEpoch() <= epoch {
		t.Fatalf("switchover answered %v; master was %s at %d", resp, master, epoch)
	}
	old = master
	_, epoch = tr.awaitMaster(old, epoch)
	master, _ = tr.awaitHellos(epoch)
	tr.awaitCtrl(&ctrlMaster, master)
}

// TestEtcdElectionPartition: the master is cut off etcd but not from
// the other instances (which the built-in election would not notice):
// it steps down before its lease can expire, another takes over at a
// higher epoch, never two masters at once; when the cut heals, the old
// master follows.
func TestEtcdElectionPartition(t *testing.T) {
	tr := newEtcdTrio(t)
	tr.watchSplitBrain()
	var addrs []string
	for _, id := range tr.ids {
		addrs = append(addrs, tr.start(id).Addr().String())
	}
	master, epoch := tr.awaitMaster("", 0)
	startCtrlAt(t, addrs, nil)
	startDataAt(t, addrs, nil)
	tr.awaitHellos(epoch)

	for _, p := range tr.proxies[master] {
		p.Cut()
	}
	old := master
	master, epoch = tr.awaitMaster(old, epoch)
	t.Logf("%s cut off etcd: master %s at epoch %d", old, master, epoch)
	if st := tr.status(old); st.GetRole() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		t.Fatalf("%s still master while cut off etcd", old)
	}
	tr.awaitHellos(epoch)
	for _, p := range tr.proxies[old] {
		p.Heal()
	}
	// Healed: the old master is a backup of the new one (awaitMaster
	// checks that every instance follows it) and campaigns again.
	got, _ := tr.awaitMaster(old, epoch-1)
	if got != master {
		t.Fatalf("after the heal the master is %s, want %s still", got, master)
	}

	// An instance cut off etcd still stops promptly: nothing waits on
	// etcd for ever.
	for _, p := range tr.proxies[old] {
		p.Cut()
	}
	stopped := make(chan struct{})
	go func() { tr.stop(old); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not stop within 15 s while cut off etcd", old)
	}
}

// TestEtcdConfigProblems: the etcd election's configuration is checked.
func TestEtcdConfigProblems(t *testing.T) {
	peers := []election.Peer{{ID: "b", Addr: "127.0.0.1:1"}}
	tests := []struct {
		name   string
		mutate func(c *appliance.ManagementConfig)
		errHas string
	}{
		{"builtin", func(c *appliance.ManagementConfig) {}, ""},
		{"etcd", func(c *appliance.ManagementConfig) {}, ""},
		{"unknown election", func(c *appliance.ManagementConfig) { c.Election = "zookeeper" }, "neither"},
		{"no endpoints", func(c *appliance.ManagementConfig) { c.Etcd.Endpoints = nil }, "no etcd endpoints"},
		{"no peers", func(c *appliance.ManagementConfig) { c.Peers = nil; c.HAListenAddr = "" }, "needs Peers"},
		{"fractional TTL", func(c *appliance.ManagementConfig) { c.Etcd.LeaseTTL = 1500 * time.Millisecond }, "whole number of seconds"},
		{"External without etcd", func(c *appliance.ManagementConfig) { c.Election = ""; c.External = true }, "External"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := appliance.DefaultManagementConfig()
			c.Peers, c.HAListenAddr = peers, "127.0.0.1:0"
			if tt.name != "builtin" {
				c.Election = appliance.ElectionEtcd
				c.Etcd.Endpoints = []string{"127.0.0.1:2379"}
			}
			tt.mutate(&c)
			var msgs []string
			for _, err := range c.Problems() {
				msgs = append(msgs, err.Error())
			}
			all := strings.Join(msgs, "; ")
			switch {
			case tt.errHas == "" && all != "":
				t.Fatalf("Problems: %s", all)
			case tt.errHas != "" && !strings.Contains(all, tt.errHas):
				t.Fatalf("Problems = %q, want one about %q", all, tt.errHas)
			}
		})
	}
}
