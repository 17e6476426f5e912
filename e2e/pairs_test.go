package e2e

import (
	"context"
	"os/exec"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// ctlStatus runs "hellopics ctl -o json status" against c's mgmt and
// decodes its output.
func ctlStatus(t *testing.T, c *cluster) *hellopicsv1.GetStatusResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "ctl", "-addr", c.opAddr, "-o", "json", "status")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("hellopics ctl status: %v\n%s%s", err, out, stderr)
	}
	var st hellopicsv1.GetStatusResponse
	if err := protojson.Unmarshal(out, &st); err != nil {
		t.Fatalf("hellopics ctl status -o json: %v\n%s", err, out)
	}
	return &st
}

// TestTwoPairs runs pairs pic0 and pic1 on one mgmt: each runs its own
// cycle, hello numbers come from one counter shared by both, and losing a
// component of one pair leaves the other's cycle alone.
func TestTwoPairs(t *testing.T) {
	skipShort(t)
	t.Parallel()
	c := newCluster(t, fast)
	m := c.StartMgmt()
	for _, pair := range []string{"pic0", "pic1"} {
		c.StartCtrl(pair)
		c.StartData(pair)
	}
	c.WaitRunning(0, "pic0", 5)
	c.WaitRunning(0, "pic1", 5)

	k0, k1 := c.Counters("pic0"), c.Counters("pic1")
	for pair, k := range map[string]counters{"pic0": k0, "pic1": k1} {
		if k.started != 1 || k.stopped != 0 || !k.running {
			t.Errorf("%s: %v; want one running cycle\n%s", pair, k, c.Tails())
		}
		checkConsistent(t, pair, k)
	}
	// One number sequence for both pairs: no hello number is used twice.
	seen := map[uint64]string{}
	for _, l := range m.Find(0, step("hello_sent", "")) {
		if other, dup := seen[l.Uint("seq")]; dup {
			t.Fatalf("hello %d sent for %s and %s", l.Uint("seq"), other, l.Str("pair"))
		}
		seen[l.Uint("seq")] = l.Str("pair")
	}
	// Each pair's hellos travel through its own components only.
	for _, pair := range []string{"pic0", "pic1"} {
		for _, p := range []*proc{c.Ctrl(pair), c.Data(pair)} {
			if ls := p.Find(0, step("hello_forwarded", "")); len(ls) == 0 {
				t.Errorf("%s forwarded no hello", p.name)
			} else {
				for _, l := range ls {
					// A hello sent after mgmt's log was read is not in seen
					// yet: only the pair field can be checked for it.
					if sent, ok := seen[l.Uint("seq")]; l.Str("pair") != pair || (ok && sent != pair) {
						t.Fatalf("%s forwarded a hello of another pair: %s", p.name, l.Raw)
					}
				}
			}
		}
	}

	// The operator's view agrees: hellopics ctl status -o json.
	if operatorServed(t) {
		st := ctlStatus(t, c)
		running := map[string]bool{}
		for _, ps := range st.GetPairs() {
			running[ps.GetPairId()] = ps.GetCycleRunning() && ps.GetCounters().GetReceived() > 0
		}
		if !running["pic0"] || !running["pic1"] || len(running) != 2 {
			t.Errorf("ctl status: want pic0 and pic1 running with hellos received; got %v", running)
		}
	}

	// Kill pic1's data: pic1 stops, pic0 runs on untouched.
	mark := m.Mark()
	c.Data("pic1").Kill()
	m.WaitFor(mark, step("cycle_stopped", "pic1"))
	k0after := c.WaitReceivedGrowing("pic0", 5)
	if d := logCounters(m, mark, "pic0"); d.stopped != 0 || d.started != 0 || !k0after.running || k0after.received < k0.received+5 {
		t.Errorf("pic0 disturbed by the loss of pic1's data: %v, now %v\n%s", d, k0after, c.Tails())
	}
	checkConsistent(t, "pic0", k0after)
	// And pic1 comes back.
	c.StartData("pic1")
	c.WaitRunning(mark, "pic1", 3)
	if k := c.WaitReceivedGrowing("pic1", 3); !k.running || k.received <= k1.received {
		t.Errorf("pic1 after its data came back: %v (before: %v)", k, k1)
	}
}
