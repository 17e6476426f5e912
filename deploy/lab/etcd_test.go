package lab

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hellopics/hellopics/internal/etcdtest"
)

// TestLabEtcd: the lab's etcd variant (LAB_ELECTION=etcd): three mgmt
// hosts with -election etcd on three etcd hosts. One master runs the
// cycle. Its host loses its routes to the etcd hosts (blackhole routes
// in its namespace) while the mgmt hosts still hear each other: it steps
// down, another takes over at a higher epoch, the cycle resumes past the
// last hello number, never two masters at once (as polled); the routes
// back, it follows. Then lab.sh failover cuts the master's link and
// kills it: another mgmt takes over the same way; lab.sh up brings the
// old one back as a backup.
func TestLabEtcd(t *testing.T) {
	requireLab(t)
	etcd := etcdtest.Binary()
	if etcd == "" {
		t.Skip("LAB TEST SKIPPED: no etcd binary (install etcd-server): the lab's etcd variant needs it")
	}
	bin := filepath.Join(t.TempDir(), "hellopics")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/hellopics/hellopics/cmd/hellopics").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	prefix, net := claim(t)
	l := &labEnv{t: t, prefix: prefix, net: net, run: t.TempDir(), bin: bin,
		extra: []string{"LAB_ELECTION=etcd", "LAB_ETCD=" + etcd}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("lab logs:\n%s", l.logs())
		}
		if out, err := l.shErr("down"); err != nil {
			t.Errorf("cleanup: lab.sh down: %v\n%s", err, out)
		}
	})
	l.sh("up")
	mgmts := []string{"mgmt-a", "mgmt-b", "mgmt-c"}
	var master string
	var seq uint64
	var epoch num
	waitFor(t, "one master with the Hello cycle running, followed by the others", 60*time.Second, func() (bool, string) {
		master = ""
		for _, h := range mgmts {
			st, err := l.status(h)
			if err != nil {
				return false, err.Error()
			}
			if s, ok := running(st); ok && st.Pairs[0].Counters.Received >= 2 {
				master, seq, epoch = h, s, st.Epoch
			}
		}
		if master == "" {
			return false, "no master runs the cycle yet"
		}
		for _, h := range mgmts {
			if st, err := l.status(h); err != nil || st.MasterID != master {
				return false, fmt.Sprintf("%s follows %q (%v)", h, st.MasterID, err)
			}
		}
		return true, ""
	})

	// The master's host loses its routes to the etcd hosts only (a
	// partition from etcd; the mgmt hosts still hear each other): it
	// steps down and another takes over, never two masters at once.
	etcdIPs := []string{net + ".61", net + ".62", net + ".63"}
	old := master
	route := func(op string) {
		for _, ip := range etcdIPs {
			if out, err := exec.Command("ip", "-n", prefix+"-"+old, "route", op, "blackhole", ip+"/32").CombinedOutput(); err != nil {
				t.Fatalf("ip route %s blackhole %s in %s: %v: %s", op, ip, old, err, out)
			}
		}
	}
	route("add")
	twice := ""
	waitFor(t, old+" steps down, another master runs the cycle", 60*time.Second, func() (bool, string) {
		var masters []string
		newMaster := ""
		for _, h := range mgmts {
			st, err := l.status(h)
			if err != nil {
				return false, err.Error()
			}
			if st.Role == "MGMT_ROLE_MASTER" {
				masters = append(masters, h)
			}
			if s, ok := running(st); ok && h != old && s > seq && st.Epoch > epoch {
				newMaster, seq, epoch = h, s, st.Epoch
			}
		}
		if len(masters) > 1 && twice == "" {
			twice = strings.Join(masters, " and ")
		}
		if newMaster == "" || len(masters) != 1 {
			return false, fmt.Sprintf("masters %v", masters)
		}
		master = newMaster
		return true, ""
	})
	if twice != "" {
		t.Errorf("two masters at once: %s", twice)
	}
	route("del")
	waitFor(t, old+" follows "+master+" once it reaches etcd again", 60*time.Second, func() (bool, string) {
		st, err := l.status(old)
		if err != nil {
			return false, err.Error()
		}
		return st.Role == "MGMT_ROLE_BACKUP" && st.MasterID == master, fmt.Sprintf("%s: %s of %q", old, st.Role, st.MasterID)
	})

	fo := l.sh("failover")
	if !strings.Contains(fo, "failover: master is "+master) {
		t.Fatalf("lab.sh failover did not cut %s:\n%s", master, fo)
	}
	old = master
	waitFor(t, "another master at a higher epoch, the cycle past the last hello number", 60*time.Second, func() (bool, string) {
		for _, h := range mgmts {
			if h == old {
				continue
			}
			st, err := l.status(h)
			if err != nil {
				return false, err.Error()
			}
			if s, ok := running(st); ok && s > seq && st.Epoch > epoch {
				master = h
				return true, ""
			}
		}
		return false, "no new master runs the cycle"
	})
	l.sh("up") // restores the old master's link and starts it again
	waitFor(t, old+" back as a backup of "+master, 60*time.Second, func() (bool, string) {
		st, err := l.status(old)
		if err != nil {
			return false, err.Error()
		}
		return st.Role == "MGMT_ROLE_BACKUP" && st.MasterID == master, fmt.Sprintf("%s: %s of %q", old, st.Role, st.MasterID)
	})
}
