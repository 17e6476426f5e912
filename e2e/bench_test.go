package e2e

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// percentile returns the p-th percentile (0 to 100) of sorted xs, by the
// nearest-rank method.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

func mean(xs []time.Duration) time.Duration {
	var sum time.Duration
	for _, x := range xs {
		sum += x
	}
	return sum / time.Duration(max(1, len(xs)))
}

// BenchmarkFirstHello measures, with the default -retry 1s, the time
// from the start of the last component to the first hello back at mgmt,
// as the harness reads mgmt's hello_returned line; the process start of
// that component is included. The others are started first, each once
// the previous has logged its start; when mgmt is last, ctrl and data
// are waiting for their next attempt to reach it (every 0.8 to 1 s).
// Run it with: go test -run '^$' -bench FirstHello -benchtime 20x ./e2e/
func BenchmarkFirstHello(b *testing.B) {
	skipShort(b)
	for _, last := range []string{"data", "ctrl", "mgmt"} {
		b.Run("last="+last, func(b *testing.B) { benchFirstHello(b, last) })
	}
}

func benchFirstHello(b *testing.B, last string) {
	tm := timing{hello: time.Second, retry: time.Second, dead: 3 * time.Second}
	var order []string
	for _, r := range []string{"mgmt", "ctrl", "data"} {
		if r != last {
			order = append(order, r)
		}
	}
	var lat []time.Duration
	for range b.N {
		c := newCluster(b, tm)
		for _, r := range order {
			c.Start(r, "pic0")
		}
		if m := c.Mgmt(); m != nil {
			// Whoever is registered has finished registering.
			for _, r := range order[1:] {
				m.WaitFor(0, and(step("identified", "pic0"), field("peer", r)))
			}
		}
		start := time.Now()
		c.Start(last, "pic0")
		l, _ := c.Mgmt().WaitFor(0, step("hello_returned", "pic0"))
		d := l.At.Sub(start)
		lat = append(lat, d)
		if slow := 100 * time.Millisecond; last != "mgmt" && d > slow {
			b.Logf("slow run (%v):\n%s", d.Round(time.Millisecond), c.Timeline(start))
		}
		for _, r := range []string{"data", "ctrl", "mgmt"} {
			c.Proc(r, "pic0").Kill()
		}
	}
	slices.Sort(lat)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(mean(lat))/1e6, "ms/op")
	b.ReportMetric(float64(percentile(lat, 50))/1e6, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 99))/1e6, "p99-ms")
}

// BenchmarkHelloRTT runs one pair with -hello-interval 10ms and collects
// the round-trip time mgmt measures for each of b.N hellos (the "rtt"
// of its hello_returned DEBUG lines; ctrl and data log at INFO, so their
// hops do not write a line per hello).
// Run it with: go test -run '^$' -bench HelloRTT -benchtime 2000x ./e2e/
func BenchmarkHelloRTT(b *testing.B) {
	skipShort(b)
	c := newCluster(b, timing{hello: 10 * time.Millisecond, retry: 100 * time.Millisecond, dead: 300 * time.Millisecond})
	c.logLevel = map[string]string{"mgmt": "debug", "ctrl": "info", "data": "info"}
	m := c.StartMgmt()
	c.StartCtrl("pic0")
	c.StartData("pic0")
	pos := c.WaitRunning(0, "pic0", 5)
	b.ResetTimer()
	_, end := m.WaitForN(pos, step("hello_returned", "pic0"), b.N)
	b.StopTimer()
	var rtts []time.Duration
	for _, l := range m.Lines(pos)[:end-pos] {
		if l.Step() != "hello_returned" || l.Str("pair") != "pic0" {
			continue
		}
		d, err := time.ParseDuration(strings.TrimPrefix(l.Msg(), "rtt "))
		if err != nil {
			b.Fatalf("hello_returned without an rtt: %s", l.Raw)
		}
		rtts = append(rtts, d)
	}
	if k := logCounters(m, pos, "pic0"); k.missed != 0 || k.outOfOrder != 0 {
		b.Logf("during the run: %d hellos sent, %d back in time, %d missed (late over 10 ms), %d out of order",
			k.sent, k.received, k.missed, k.outOfOrder)
	}
	slices.Sort(rtts)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(percentile(rtts, 50))/1e3, "p50-µs")
	b.ReportMetric(float64(percentile(rtts, 99))/1e3, "p99-µs")
	b.ReportMetric(float64(rtts[len(rtts)-1])/1e3, "max-µs")
}

// Timeline merges the lines every process of c read after t, in the
// order the harness read them, with their offset from t and the process
// name; pconn pings and per-hello lines are left out.
func (c *cluster) Timeline(t time.Time) string {
	type entry struct {
		at   time.Duration
		name string
		raw  string
	}
	var es []entry
	c.mu.Lock()
	procs := append([]*proc(nil), c.procs...)
	c.mu.Unlock()
	for _, p := range procs {
		for _, l := range p.Lines(0) {
			if l.At.Before(t) || strings.HasPrefix(l.Step(), "hello_") {
				continue
			}
			es = append(es, entry{l.At.Sub(t), p.name, l.Raw})
		}
	}
	sort.SliceStable(es, func(i, j int) bool { return es[i].at < es[j].at })
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "  %8.3fms %-10s %s\n", float64(e.at)/1e6, e.name, e.raw)
	}
	return b.String()
}
