package lab

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLabPartitions cuts the lab's hosts from each other in the ways
// docs/ha.md ("Partitions") describes, heals every cut, and checks from
// the outside that ctrl and data never act on two masters (the epochs
// of the hellos they forward never go back), that no hello number comes
// back twice, that every epoch has one master, and that after each heal
// one master runs the cycle again within healBound.
//
// Cuts are nftables rules in the receiving host's namespace (a one-way
// cut drops what one host sends to another, silently: no reset, no ICMP);
// the flapping link is the host's veth set down and up.
func TestLabPartitions(t *testing.T) {
	requireLab(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("LAB PARTITION TEST SKIPPED: nft not found; install nftables (the cuts are nftables rules in the namespaces)")
	}
	start := time.Now()
	bin := filepath.Join(t.TempDir(), "hellopics")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/hellopics/hellopics/cmd/hellopics").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	prefix, net := claim(t)
	l := &labEnv{t: t, prefix: prefix, net: net, run: t.TempDir(), bin: bin,
		extra: []string{"LAB_LOG_LEVEL=debug", "LAB_HELLO_INTERVAL=100ms"}}
	p := &partitioner{l: l}
	t.Cleanup(func() {
		p.heal()
		if t.Failed() {
			t.Logf("lab logs:\n%s", l.logs())
		}
		if out, err := l.shErr("down"); err != nil {
			t.Errorf("cleanup: lab.sh down: %v\n%s", err, out)
		}
	})
	l.sh("up")
	master := waitOneMaster(t, l, 60*time.Second)
	t.Logf("master %s", master)

	other := func(m string) string { return map[string]string{"mgmt-a": "mgmt-b", "mgmt-b": "mgmt-a"}[m] }
	type scenario struct {
		name string
		cut  func(master string)
		// during, when set, is what must be seen while the cut holds.
		during func(master string) (bool, string)
	}
	scenarios := []scenario{
		{"mgmt hosts cut from each other", func(m string) {
			p.cut(m, other(m))
			p.cut(other(m), m)
		}, func(m string) (bool, string) {
			// The backup no longer hears the master: it claims a higher
			// epoch, and ctrl and data follow it at once (watch session).
			st, err := l.status(other(m))
			if err != nil {
				return false, err.Error()
			}
			_, ok := running(st)
			return ok, fmt.Sprintf("%s role %s", other(m), st.Role)
		}},
		{"ctrl cut from data", func(string) {
			p.cut("ctrl", "data")
			p.cut("data", "ctrl")
		}, func(m string) (bool, string) { return missedGrows(l, m) }},
		{"data cut from mgmt only", func(string) {
			for _, h := range []string{"mgmt-a", "mgmt-b"} {
				p.cut("data", h)
				p.cut(h, "data")
			}
		}, nil},
		{"one way: the master's packets to the backup dropped", func(m string) {
			p.cut(m, other(m))
		}, nil},
		{"one way: the master's packets to ctrl and data dropped", func(m string) {
			p.cut(m, "ctrl")
			p.cut(m, "data")
		}, nil},
		{"the master's link flapping", func(m string) {
			for i := 0; i < 6; i++ {
				p.link(m, false)
				time.Sleep(300 * time.Millisecond)
				p.link(m, true)
				time.Sleep(400 * time.Millisecond)
			}
		}, nil},
	}
	var report []string
	for _, sc := range scenarios {
		m := waitOneMaster(t, l, healBound)
		t.Logf("=== %s (master %s)", sc.name, m)
		sc.cut(m)
		if sc.during != nil {
			waitFor(t, sc.name+": the expected effect", 30*time.Second, func() (bool, string) { return sc.during(m) })
		}
		time.Sleep(2 * time.Second) // hold the cut
		healed := time.Now()
		p.heal()
		nm := waitOneMaster(t, l, healBound)
		st, err := l.status(nm)
		if err != nil {
			t.Fatal(err)
		}
		recv := st.Pairs[0].Counters.Received
		waitFor(t, sc.name+": hellos come back after the heal", healBound, func() (bool, string) {
			st, err := l.status(nm)
			if err != nil {
				return false, err.Error()
			}
			seq, ok := running(st)
			return ok && st.Pairs[0].Counters.Received >= recv+3, fmt.Sprintf("running %v last_seq %d received %d", ok, seq, st.Pairs[0].Counters.Received)
		})
		report = append(report, fmt.Sprintf("%-55s master before %s, after %s; cycle back %v after the heal",
			sc.name, m, nm, time.Since(healed).Round(10*time.Millisecond)))
	}
	for _, r := range report {
		t.Log(r)
	}
	checkPartitionInvariants(t, l)
	t.Logf("partition test done in %v", time.Since(start).Round(time.Millisecond))
}

// healBound bounds the time from a heal to one master with hellos coming
// back (three returned, polled): generous, for a loaded CI machine; the
// figures the test logs are what it took.
const healBound = 20 * time.Second

// partitioner applies and removes the cuts.
type partitioner struct {
	l    *labEnv
	cuts map[string]bool // receiving hosts with the table
	down map[string]bool // hosts whose link is down
}

// cut drops every IPv4 packet from host src at host dst.
func (p *partitioner) cut(src, dst string) {
	p.l.t.Helper()
	if p.cuts == nil {
		p.cuts = map[string]bool{}
	}
	ns := p.l.prefix + "-" + dst
	if !p.cuts[dst] {
		p.nft(ns, "add table inet hpcut")
		p.nft(ns, "add chain inet hpcut in { type filter hook input priority 0 ; }")
		p.cuts[dst] = true
	}
	p.nft(ns, "add rule inet hpcut in ip saddr "+p.l.ip(src)+" drop")
	p.l.t.Logf("%s cut: %s -> %s dropped", time.Now().Format("15:04:05.000"), src, dst)
}

func (p *partitioner) nft(ns, rule string) {
	p.l.t.Helper()
	args := append([]string{"netns", "exec", ns, "nft"}, strings.Fields(rule)...)
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		p.l.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// link sets host's veth (its end on the bridge) up or down.
func (p *partitioner) link(host string, up bool) {
	p.l.t.Helper()
	if p.down == nil {
		p.down = map[string]bool{}
	}
	state := "down"
	if up {
		state = "up"
	}
	if out, err := exec.Command("ip", "link", "set", p.l.prefix+"-"+host, state).CombinedOutput(); err != nil {
		p.l.t.Fatalf("ip link set %s-%s %s: %v\n%s", p.l.prefix, host, state, err, out)
	}
	p.down[host] = !up
}

// heal removes every cut and sets every link up.
func (p *partitioner) heal() {
	for h := range p.cuts {
		_ = exec.Command("ip", "netns", "exec", p.l.prefix+"-"+h, "nft", "delete", "table", "inet", "hpcut").Run()
	}
	for h, down := range p.down {
		if down {
			_ = exec.Command("ip", "link", "set", p.l.prefix+"-"+h, "up").Run()
		}
	}
	p.cuts, p.down = nil, nil
	p.l.t.Logf("%s healed", time.Now().Format("15:04:05.000"))
}

// waitOneMaster waits until exactly one instance is master with the
// cycle running and the other is its backup, and returns the master.
func waitOneMaster(t *testing.T, l *labEnv, d time.Duration) string {
	t.Helper()
	var master string
	waitFor(t, "one master running the cycle, the other its backup", d, func() (bool, string) {
		a, errA := l.status("mgmt-a")
		b, errB := l.status("mgmt-b")
		if errA != nil || errB != nil {
			return false, fmt.Sprintf("status: %v %v", errA, errB)
		}
		for _, c := range []struct {
			m, b   mgmtStatus
			master string
		}{{a, b, "mgmt-a"}, {b, a, "mgmt-b"}} {
			if _, ok := running(c.m); ok && c.b.Role == "MGMT_ROLE_BACKUP" && c.b.MasterID == c.master {
				master = c.master
				return true, ""
			}
		}
		return false, fmt.Sprintf("mgmt-a %s epoch %d, mgmt-b %s epoch %d (master %q)", a.Role, a.Epoch, b.Role, b.Epoch, b.MasterID)
	})
	return master
}

// missedGrows reports whether m, master, counts missed hellos.
func missedGrows(l *labEnv, m string) (bool, string) {
	st, err := l.status(m)
	if err != nil || len(st.Pairs) == 0 {
		return false, fmt.Sprint(err)
	}
	return st.Pairs[0].Counters.Missed >= 3, fmt.Sprintf("missed %d", st.Pairs[0].Counters.Missed)
}

var (
	forwardedRE = regexp.MustCompile(`step=hello_forwarded .*seq=(\d+) epoch=(\d+)`)
	returnedRE  = regexp.MustCompile(`step=hello_returned .*seq=(\d+) epoch=(\d+)`)
	claimedRE   = regexp.MustCompile(`step=became_master epoch=(\d+)`)
)

// checkPartitionInvariants reads the daemons' logs (none was restarted):
// ctrl and data forwarded hellos of epochs that never went back (so they
// never acted on a deposed master after a newer one), each epoch was
// claimed by one instance and its hellos came back to that instance
// only, and no hello number came back twice.
func checkPartitionInvariants(t *testing.T, l *labEnv) {
	t.Helper()
	for _, comp := range []string{"ctrl", "data"} {
		var last uint64
		n := 0
		eachLine(t, filepath.Join(l.run, comp+".log"), func(line string) {
			m := forwardedRE.FindStringSubmatch(line)
			if m == nil {
				return
			}
			n++
			e, _ := strconv.ParseUint(m[2], 10, 64)
			if e < last {
				t.Errorf("%s forwarded a hello of epoch %d after one of epoch %d (acted on a deposed master): %s", comp, e, last, line)
			}
			last = max(last, e)
		})
		if n == 0 {
			t.Errorf("%s: no hello_forwarded line: the check checked nothing", comp)
		}
		t.Logf("%s: %d hellos forwarded, epochs never went back (last %d)", comp, n, last)
	}
	claimedBy := map[uint64]string{}
	returnedBy := map[uint64]string{}
	seen := map[uint64]string{}
	total := 0
	for _, h := range []string{"mgmt-a", "mgmt-b"} {
		eachLine(t, filepath.Join(l.run, h+".log"), func(line string) {
			if m := claimedRE.FindStringSubmatch(line); m != nil {
				e, _ := strconv.ParseUint(m[1], 10, 64)
				if o, ok := claimedBy[e]; ok && o != h {
					t.Errorf("epoch %d claimed by %s and %s", e, o, h)
				}
				claimedBy[e] = h
			}
			m := returnedRE.FindStringSubmatch(line)
			if m == nil {
				return
			}
			total++
			seq, _ := strconv.ParseUint(m[1], 10, 64)
			e, _ := strconv.ParseUint(m[2], 10, 64)
			if o, ok := returnedBy[e]; ok && o != h {
				t.Errorf("hellos of epoch %d came back to %s and to %s", e, o, h)
			}
			returnedBy[e] = h
			if o, ok := seen[seq]; ok {
				t.Errorf("hello %d came back twice (%s, then %s)", seq, o, h)
			}
			seen[seq] = h
		})
	}
	for e, h := range returnedBy {
		if c, ok := claimedBy[e]; ok && c != h {
			t.Errorf("epoch %d was claimed by %s but its hellos came back to %s", e, c, h)
		}
	}
	epochs := make([]uint64, 0, len(claimedBy))
	for e := range claimedBy {
		epochs = append(epochs, e)
	}
	sort.Slice(epochs, func(i, j int) bool { return epochs[i] < epochs[j] })
	if total == 0 {
		t.Error("no hello_returned line: the check checked nothing")
	}
	t.Logf("%d hellos came back, none twice; epochs claimed %v, each by one instance", total, epochs)
}

func eachLine(t *testing.T, path string, f func(string)) {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f(sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
