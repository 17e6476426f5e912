package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hellopics/hellopics/data/tpce"
	"github.com/hellopics/hellopics/internal/await"
	"github.com/hellopics/hellopics/pkg/identity"
	"github.com/hellopics/hellopics/pkg/meds"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// The files whose metric names must exist in a live scrape.
var metricRefFiles = []string{
	"../deploy/grafana/hellopics.json",
	"../deploy/prometheus/alerts.yml",
}

// metricRef is a hellopics metric name as written in a PromQL
// expression (a histogram's _bucket, _sum or _count series included).
var metricRef = regexp.MustCompile(`\bhellopics_[a-z0-9_]*[a-z0-9]\b`)

// sampleName is the series name at the start of a sample line of the
// text exposition format.
var sampleName = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]`)

// TestMetricsLive runs two mgmt instances, ctrl, data with the MEDS relay
// and the SNMP agent simulator, all with mutual TLS and -metrics, makes
// the relay carry a command and drop garbage, and scrapes each daemon's
// /metrics. Each scrape must pass `promtool check metrics` (the name and
// help lint), and every hellopics_ name that the Grafana dashboard and
// the alerting rules under deploy/ use must be in a scrape: the
// dashboard and the rules cannot drift from the code unnoticed.
func TestMetricsLive(t *testing.T) {
	skipShort(t)
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian: apt-get install prometheus; .ci/run installs it): the live metrics lint does not run")
	}
	refs := map[string][]string{} // name -> files using it
	for _, f := range metricRefFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range metricRef.FindAllString(string(b), -1) {
			if !slices.Contains(refs[n], f) {
				refs[n] = append(refs[n], f)
			}
		}
	}
	if len(refs) < 20 {
		t.Fatalf("only %d hellopics metric names in %v: the files are not what this test expects", len(refs), metricRefFiles)
	}

	t.Parallel()
	tm := fast
	tm.hello = 100 * time.Millisecond
	p := newTestPKI(t, []string{"a", "b"}, []string{haPair})
	h := newHACluster(t, tm, haSpec{id: "a", priority: 200, flags: steady}, haSpec{id: "b", priority: 100, flags: steady})
	h.opTLS = p.clientConfig("operator-e2e")
	met := map[string]string{"mgmt-a": freePort(t), "mgmt-b": freePort(t), "ctrl": freePort(t), "data": freePort(t)}
	// A tracked check, so that hellopics_mgmt_track_up is in the scrape.
	h.StartMgmt("a", append(p.flags("mgmt-a"), "-metrics", met["mgmt-a"], "-track-name", "true", "-track-script", "true")...)
	h.StartMgmt("b", append(p.flags("mgmt-b"), "-metrics", met["mgmt-b"])...)
	h.startComponent("ctrl", haPair, h.ctrl, append(p.flags("ctrl-"+haPair), "-listen", "127.0.0.1:0", "-metrics", met["ctrl"])...)

	community := communityFile(t)
	agentAddr, notify := freeUDP(t), freeUDP(t)
	cmds, events, status := freePort(t), freePort(t), freePort(t)
	agent := startProc(t, "agent", "agent", "-log-json", "-listen", agentAddr, "-notify", notify,
		"-community-file", community, "-event-interval", "100ms", "-status-interval", "200ms")
	h.add(agent)
	agent.WaitFor(0, msg("agent simulator started"))
	h.startComponent("data", haPair, h.data, append(p.flags("data-"+haPair), "-metrics", met["data"],
		"-agent", agentAddr, "-notify", notify, "-community-file", community,
		"-commands", cmds, "-events", events, "-status", status)...)
	if m, sts := h.WaitMaster(); m.id != "a" {
		t.Fatalf("master is %s; want a: %s", m.id, summarize(sts))
	}
	h.WaitCycle("a", 0, haPair, 3)
	h.WaitSynced("a", "b", haPair)

	// The relay carries a command both ways and events ...
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := tpce.Dial(ctx, cmds, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := roundTrip(c, 1, []byte("e2e metrics"), meds.TypeResponse); err != nil {
		t.Fatalf("%v\n%s", err, h.Tails())
	}
	ev, err := tpce.Dial(ctx, events, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	watch(t, ev, meds.TypeEvent).waitCount(t, "events", 2)
	// ... and drops what is not SNMP; mgmt refuses a client without a
	// certificate: the refusal counters have samples to lint.
	u, err := net.Dial("udp", notify)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if _, err := u.Write([]byte("not an SNMP message")); err != nil {
		t.Fatal(err)
	}
	if r := tlsAttack(t, h.M("a").listen, nil); !r.closed {
		t.Errorf("a client without a certificate was not refused: %+v", r)
	}
	// An HA peer under another mgmt's certificate speaking as b.
	stranger := p.issue(identity.ID{Role: identity.RoleMgmt, Name: "x"}, "mgmt-x", 0)
	hb := haPB(t, hellopicsv1.HAMsgType_HA_MSG_TYPE_HEARTBEAT, &hellopicsv1.Heartbeat{Id: "b", Epoch: 1 << 40, MasterId: "b"})
	if r := tlsAttack(t, h.M("a").ha, []tls.Certificate{p.keyPair(stranger)}, hb); !r.closed {
		t.Errorf("a heartbeat in b's name under x's certificate was not refused: %+v", r)
	}

	// Each scrape lints clean; every name referenced is in one, once the
	// counters above have been counted.
	var missing []string
	scrapes := map[string][]byte{}
	present := func() bool {
		have := map[string]bool{}
		for who, addr := range met {
			b, err := fetchMetrics(addr)
			if err != nil {
				t.Fatalf("scrape of %s: %v", who, err)
			}
			scrapes[who] = b
			for _, l := range strings.Split(string(b), "\n") {
				if m := sampleName.FindStringSubmatch(l); m != nil {
					have[m[1]] = true
				}
			}
		}
		missing = missing[:0]
		for n := range refs {
			if !have[n] && !have[n+"_bucket"] { // a histogram by its family name
				missing = append(missing, n)
			}
		}
		return len(missing) == 0
	}
	if err := await.Within(waitTimeout, present); err != nil {
		sort.Strings(missing)
		var b strings.Builder
		for _, n := range missing {
			fmt.Fprintf(&b, "\n  %s (in %s)", n, strings.Join(refs[n], ", "))
		}
		t.Errorf("metric names used under deploy/ but in no live scrape (renamed in the code? fix the dashboard or the rules):%s", b.String())
	} else {
		t.Logf("the %d hellopics metric names under deploy/ are each in a live scrape", len(refs))
	}
	keep := os.Getenv("HELLOPICS_E2E_SCRAPES") // a directory to save the scrapes in
	for who, b := range scrapes {
		if keep != "" {
			if err := os.WriteFile(filepath.Join(keep, who+".prom"), b, 0o644); err != nil {
				t.Log(err)
			}
		}
		if !bytes.Contains(b, []byte("hellopics_")) {
			t.Errorf("%s: the scrape has no hellopics_ metric:\n%s", who, b)
		}
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(b)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			t.Errorf("promtool check metrics on the scrape of %s (exit %d):\n%s", who, ee.ExitCode(), out)
		case err != nil:
			t.Fatalf("promtool: %v", err)
		default:
			t.Logf("%s: promtool check metrics clean (%d octets, %d lines)", who, len(b), bytes.Count(b, []byte("\n")))
		}
	}
}

// fetchMetrics returns the text exposition of http://addr/metrics.
func fetchMetrics(addr string) ([]byte, error) {
	cl := http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 16<<20))
}
