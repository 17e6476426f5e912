package mgmt_test

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hellopics/hellopics/ctrl"
	"github.com/hellopics/hellopics/data"
	"github.com/hellopics/hellopics/mgmt"
)

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// value returns the value of the first sample whose line starts with
// prefix (name and labels), or -1.
func value(text, prefix string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, prefix+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, prefix)), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// startTiers runs mgmt, ctrl and data in-process on loopback, with
// metrics on for mgmt and ctrl (and data if dataMetrics), closed when the
// test ends.
func startTiers(t *testing.T, hello time.Duration, dataMetrics bool) (*mgmt.Server, *ctrl.Ctrl, *data.Data) {
	t.Helper()
	mc := mgmt.DefaultConfig()
	mc.ListenAddr, mc.OperatorAddr, mc.MetricsAddr = "127.0.0.1:0", "", "127.0.0.1:0"
	mc.HelloInterval = hello
	m, err := mgmt.New(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	cc := ctrl.DefaultConfig()
	cc.MgmtAddrs, cc.ListenAddr, cc.MetricsAddr = []string{m.Addr().String()}, "127.0.0.1:0", "127.0.0.1:0"
	c, err := ctrl.New(cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	dc := data.DefaultConfig()
	dc.MgmtAddrs = []string{m.Addr().String()}
	if dataMetrics {
		dc.MetricsAddr = "127.0.0.1:0"
	}
	d, err := data.New(dc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return m, c, d
}

// TestMetrics runs the three tiers in-process with metrics on and checks,
// through real scrapes, that the hello counters, the round-trip histogram,
// mastership and readiness are exported under Prometheus names.
func TestMetrics(t *testing.T) {
	m, c, d := startTiers(t, 20*time.Millisecond, true)

	var text string
	deadline := time.Now().Add(20 * time.Second)
	for {
		text = scrape(t, m.MetricsAddr().String())
		if value(text, `hellopics_hellos_received_total{pair="pic0"}`) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hello counters never reached 3:\n%s", grep(text, "hellopics_"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{
		`hellopics_mgmt_master 1`,
		`hellopics_hello_cycle_running{pair="pic0"} 1`,
		`hellopics_component_ready{pair="pic0",role="ctrl"} 1`,
		`hellopics_component_ready{pair="pic0",role="data"} 1`,
		`hellopics_sessions_total{event="established"} 2`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("mgmt metrics lack %q:\n%s", want, grep(text, "hellopics_"))
		}
	}
	if n := value(text, `hellopics_hello_rtt_seconds_count{pair="pic0"}`); n < 3 {
		t.Errorf("rtt histogram has %v samples, want >= 3", n)
	}
	if regexp.MustCompile(`hellopics_hellos_sent_total\{pair="pic0"\} [0-9]`).FindString(text) == "" {
		t.Error("no hellos_sent_total counter")
	}
	for name, addr := range map[string]string{"ctrl": c.MetricsAddr().String(), "data": d.MetricsAddr().String()} {
		deadline := time.Now().Add(20 * time.Second)
		for {
			text := scrape(t, addr)
			if strings.Contains(text, "hellopics_handshake_ready 1\n") &&
				strings.Contains(text, `hellopics_link_up{link="mgmt"} 1`+"\n") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s metrics never showed ready and the mgmt link up:\n%s", name, grep(text, "hellopics_"))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func grep(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
