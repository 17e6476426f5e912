package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hellopics/hellopics/internal/etcdtest"
)

// etcdHA is three mgmt processes with -election etcd on a three-member
// etcd cluster (real etcd processes), each instance reaching every etcd
// member through its own proxy, so that a test can cut one instance off
// etcd while the instances still hear each other.
type etcdHA struct {
	*haCluster
	etcd    *etcdtest.Cluster
	proxies map[string][]*etcdtest.Proxy
}

func newEtcdHA(t *testing.T) *etcdHA {
	t.Helper()
	etcd := etcdtest.StartAt(t, 3, func() string { return freePort(t) })
	e := &etcdHA{etcd: etcd, proxies: map[string][]*etcdtest.Proxy{}}
	var specs []haSpec
	for _, id := range []string{"a", "b", "c"} {
		var eps []string
		for _, ep := range etcd.Endpoints() {
			p := etcdtest.NewProxy(t, ep)
			e.proxies[id] = append(e.proxies[id], p)
			eps = append(eps, p.Addr)
		}
		flags := append([]string{"-election", "etcd", "-etcd-endpoints", strings.Join(eps, ","),
			"-etcd-lease-ttl", "1s", "-etcd-prefix", "/e2e/" + t.Name()}, steady...)
		specs = append(specs, haSpec{id: id, priority: 100, flags: flags})
	}
	e.haCluster = newHACluster(t, fast, specs...)
	for _, id := range []string{"a", "b", "c"} {
		e.StartMgmt(id)
	}
	e.StartPair(haPair)
	return e
}

// newMaster waits until one master other than old runs the cycle with
// hellos returning, at an epoch above epoch; it returns it and its
// epoch.
func (e *etcdHA) newMaster(old string, epoch uint64) (*haMgmt, uint64) {
	e.t.Helper()
	var m *haMgmt
	var ep uint64
	e.poll("a new master above epoch", func() string {
		master, sts := e.WaitMaster()
		st := sts[master.id]
		if master.id == old || st.GetEpoch() <= epoch {
			return "master " + master.id + " " + summarize(sts)
		}
		m, ep = master, st.GetEpoch()
		return ""
	})
	_, pos := m.p.WaitForN(0, and(step("cycle_started", haPair), field("epoch", strconv.FormatUint(ep, 10))), 1)
	m.p.WaitForN(pos, step("hello_returned", haPair), 3)
	return m, ep
}

// TestEtcdElection: three mgmt processes with -election etcd elect one
// master and ctrl and data cycle under it. SIGKILL of the master: another
// takes over at a higher epoch (a leader key's create revision) within
// the lease TTL, and the pair cycles under it (ctrl and data took the
// new epoch; hellos of the old one would be refused). The killed one
// comes back as a backup. Then etcd's leader is SIGKILLed too: the
// election goes on with two etcd members of three, and the pair cycles
// under the master (the same, or one other), and a second SIGKILL of
// the master fails over as the first did.
func TestEtcdElection(t *testing.T) {
	skipShort(t)
	e := newEtcdHA(t)
	master, sts := e.WaitMaster()
	epoch := sts[master.id].GetEpoch()
	e.WaitCycle(master.id, 0, haPair, 3)

	killed := time.Now()
	master.p.Kill()
	old := master.id
	master, epoch = e.newMaster(old, epoch)
	t.Logf("SIGKILL of %s: %s master at epoch %d, cycling within %v", old, master.id, epoch, time.Since(killed).Round(time.Millisecond))
	e.StartMgmt(old)
	master, sts = e.WaitMaster()
	if master.id == old || sts[master.id].GetEpoch() != epoch {
		t.Fatalf("the restarted %s took over: %s\n%s", old, summarize(sts), e.Tails())
	}

	l := e.etcd.Leader()
	if l == nil {
		t.Fatalf("no etcd leader\n%s", e.Tails())
	}
	l.Kill()
	t.Logf("SIGKILL of etcd's leader %s", l.Name)
	// Whatever the mastership does meanwhile, it settles on one master
	// that cycles, at the epoch it had or a higher one.
	master, epoch = e.newMaster("", epoch-1)
	e.poll("a new etcd leader", func() string {
		if e.etcd.Leader() == nil {
			return "none"
		}
		return ""
	})
	t.Logf("with etcd's leader gone: %s master at epoch %d", master.id, epoch)
	// Two etcd members of three still elect: SIGKILL of the master again.
	killed = time.Now()
	master.p.Kill()
	old = master.id
	master, epoch = e.newMaster(old, epoch)
	t.Logf("SIGKILL of %s with one etcd member down: %s master at epoch %d, cycling within %v", old, master.id, epoch, time.Since(killed).Round(time.Millisecond))
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
}

// TestEtcdElectionPartition: the master is cut off etcd (its proxies
// stop forwarding, as a partition would) while it still hears the other
// instances, which the built-in election would take for a healthy
// master. It steps down before its lease can expire on etcd, so the
// new master is elected only after the old one stepped down (never two
// masters at once), and the pair cycles under the new one. When the cut
// heals the old master stays a backup.
func TestEtcdElectionPartition(t *testing.T) {
	skipShort(t)
	e := newEtcdHA(t)
	master, sts := e.WaitMaster()
	epoch := sts[master.id].GetEpoch()
	e.WaitCycle(master.id, 0, haPair, 3)

	old := master
	mark := old.p.Mark()
	for _, p := range e.proxies[old.id] {
		p.Cut()
	}
	down, _ := old.p.WaitFor(mark, step("stepped_down", ""))
	master, epoch = e.newMaster(old.id, epoch)
	up := master.p.Find(0, and(step("became_master", ""), field("epoch", strconv.FormatUint(epoch, 10))))
	if len(up) == 0 {
		t.Fatalf("no became_master line at epoch %d on %s\n%s", epoch, master.id, e.Tails())
	}
	// The harness reads each line as it is written, so the times order
	// the two events (give or take its scheduling).
	if !up[0].At.After(down.At) {
		t.Errorf("%s became master at %v, before %s stepped down at %v", master.id, up[0].At, old.id, down.At)
	}
	t.Logf("%s cut off etcd: stepped down (%s); %s master at epoch %d %v later", old.id, down.Str("reason"), master.id, epoch, up[0].At.Sub(down.At).Round(time.Millisecond))
	for _, p := range e.proxies[old.id] {
		p.Heal()
	}
	got, sts := e.WaitMaster()
	if got.id != master.id || sts[got.id].GetEpoch() != epoch {
		t.Fatalf("after the heal: %s\n%s", summarize(sts), e.Tails())
	}
}
