package e2e

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkHAFailover measures, with the default heartbeat settings
// (50ms, 3 misses), the time from the SIGKILL of the master mgmt to the
// first hello returned under the new master, as the harness reads the
// backup's hello_returned line (-log-level debug); one kill per
// iteration. Both instances run with -nopreempt, so the killed one,
// restarted each time, stays backup and the kills alternate. Also
// reported: the time to the backup's became_master (detection and
// election) and to its cycle_started (components re-registered).
//
// Sub-benchmarks: plaintext, and mtls, where every link (the components'
// and the HA peers') runs mutual TLS 1.3 with certificates made by
// pkg/pki (haBenchCluster); run side by side, they give the cost of TLS
// in a failover (the new master's sessions with ctrl and data are new TLS
// connections; ctrl and data may resume their sessions with it if they
// held one before).
// Run it with: go test -run '^$' -bench HAFailover -benchtime 20x ./e2e/
func BenchmarkHAFailover(b *testing.B) {
	skipShort(b)
	for _, sec := range haBenchSecurity {
		b.Run(sec, func(b *testing.B) { benchHAFailover(b, sec == "mtls") })
	}
}

// haBenchSecurity are the sub-benchmarks of the HA benchmarks.
var haBenchSecurity = []string{"plaintext", "mtls"}

// haBenchCluster starts the two mgmt instances of the HA benchmarks (a at
// priority 200, b at 100, both -nopreempt) and the pair, with mutual TLS
// on every link if mtls: each mgmt with its own certificate (kept across
// its restarts), ctrl and data with theirs, all from one pki.Deploy in a
// temporary directory.
func haBenchCluster(b *testing.B, tm timing, mtls bool) *haCluster {
	b.Helper()
	specs := []haSpec{
		{id: "a", priority: 200, flags: []string{"-nopreempt"}},
		{id: "b", priority: 100, flags: []string{"-nopreempt"}},
	}
	var p *testPKI
	if mtls {
		p = newTestPKI(b, []string{"a", "b"}, []string{haPair})
		for i := range specs {
			specs[i].flags = append(specs[i].flags, p.flags("mgmt-"+specs[i].id)...)
		}
	}
	h := newHACluster(b, tm, specs...)
	h.StartMgmt("a")
	h.StartMgmt("b")
	if !mtls {
		h.StartPair(haPair)
		return h
	}
	h.startComponent("ctrl", haPair, h.ctrl, append(p.flags("ctrl-"+haPair), "-listen", "127.0.0.1:0")...)
	h.startComponent("data", haPair, h.data, p.flags("data-"+haPair)...)
	// Every process runs with its certificate.
	for _, pr := range []*proc{h.M("a").p, h.M("b").p, h.Ctrl(haPair), h.Data(haPair)} {
		if pr.Count(0, msg("TLS certificate loaded")) == 0 {
			b.Fatalf("%s did not load its TLS certificate\n%s", pr.name, h.Tails())
		}
	}
	return h
}

func benchHAFailover(b *testing.B, mtls bool) {
	h := haBenchCluster(b, fast, mtls)
	master, _ := h.WaitMaster()
	h.WaitCycle(master.id, 0, haPair, 3)
	var toHello, toMaster, toCycle []time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		master = h.settle(master)
		backup := h.Other(master.id)
		mark := backup.p.Mark()
		b.StartTimer()
		start := time.Now()
		master.p.Kill()
		bm, pos := backup.p.WaitFor(mark, step("became_master", ""))
		cs, pos := backup.p.WaitFor(pos, step("cycle_started", haPair))
		hr, _ := backup.p.WaitFor(pos, step("hello_returned", haPair))
		b.StopTimer()
		toMaster = append(toMaster, bm.At.Sub(start))
		toCycle = append(toCycle, cs.At.Sub(start))
		toHello = append(toHello, hr.At.Sub(start))
		h.StartMgmt(master.id)
		master = backup
	}
	b.StopTimer()
	slices.Sort(toHello)
	slices.Sort(toMaster)
	slices.Sort(toCycle)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(percentile(toHello, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(toHello, 99)), "p99-ms")
	b.ReportMetric(ms(toHello[len(toHello)-1]), "max-ms")
	b.ReportMetric(ms(percentile(toMaster, 50)), "master-p50-ms")
	b.ReportMetric(ms(percentile(toCycle, 50)), "cycle-p50-ms")
}

// BenchmarkHASwitchover measures the interruption of the Hello cycle by a
// graceful switchover (operator API Switchover to the backup) at
// -hello-interval 10ms: per switchover, the longest gap between
// consecutive returned hellos (both instances' hello_returned lines,
// as the harness reads them) from the last one before the request to
// the fifth under the new master; one switchover per iteration, back
// and forth. Also reported: hellos missed over the whole run (the
// counters, which each new master continues) and those logged during
// the switchovers (from the request to the fifth hello under the new
// master; each is logged with -v).
// Sub-benchmarks plaintext and mtls, as for BenchmarkHAFailover.
// Run it with: go test -run '^$' -bench HASwitchover -benchtime 20x ./e2e/
func BenchmarkHASwitchover(b *testing.B) {
	skipShort(b)
	for _, sec := range haBenchSecurity {
		b.Run(sec, func(b *testing.B) { benchHASwitchover(b, sec == "mtls") })
	}
}

func benchHASwitchover(b *testing.B, mtls bool) {
	tm := fast
	tm.hello = 10 * time.Millisecond
	h := haBenchCluster(b, tm, mtls)
	master, _ := h.WaitMaster()
	h.WaitCycle(master.id, 0, haPair, 10)
	first := pairOf(h.MustStatus(master.id), haPair).GetCounters()
	var gaps []time.Duration
	missedIn := 0 // hello_missed lines logged during the switchovers
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		master = h.settle(master)
		target := h.Other(master.id)
		// The cycle runs on the master: start from a returned hello.
		mMark := master.p.Mark()
		_, mMark = master.p.WaitFor(mMark, step("hello_returned", haPair))
		tMark := target.p.Mark()
		b.StartTimer()
		if _, err := h.Switchover(master.id, target.id); err != nil {
			b.Fatalf("Switchover to %s: %v\n%s", target.id, err, h.Tails())
		}
		_, pos := target.p.WaitFor(tMark, step("cycle_started", haPair))
		target.p.WaitForN(pos, step("hello_returned", haPair), 5)
		b.StopTimer()
		// From the hello returned before the request to the fifth under
		// the new master.
		var at []time.Time
		for _, l := range master.p.Find(mMark-1, step("hello_returned", haPair)) {
			at = append(at, l.At)
		}
		for _, l := range target.p.Find(tMark, step("hello_returned", haPair))[:5] {
			at = append(at, l.At)
		}
		slices.SortFunc(at, func(x, y time.Time) int { return x.Compare(y) })
		var gap time.Duration
		for i := 1; i < len(at); i++ {
			gap = max(gap, at[i].Sub(at[i-1]))
		}
		gaps = append(gaps, gap)
		for _, p := range []*proc{master.p, target.p} {
			from := tMark
			if p == master.p {
				from = mMark
			}
			for _, l := range p.Find(from, step("hello_missed", haPair)) {
				missedIn++
				b.Logf("switchover %s -> %s: %s: %s", master.id, target.id, p.name, l.Raw)
			}
		}
		master = target
	}
	b.StopTimer()
	last := pairOf(h.MustStatus(master.id), haPair).GetCounters()
	slices.Sort(gaps)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(percentile(gaps, 50)), "gap-p50-ms")
	b.ReportMetric(ms(percentile(gaps, 99)), "gap-p99-ms")
	b.ReportMetric(ms(gaps[len(gaps)-1]), "gap-max-ms")
	b.ReportMetric(float64(last.GetMissed()-first.GetMissed()), "missed")
	b.ReportMetric(float64(missedIn), "missed-in-switchover")
}

// ms converts d to milliseconds for ReportMetric.
func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// settle waits for a settled master with its backup synced (any other
// running instance), trying again if the mastership changes meanwhile,
// and returns the master; prev is the master expected.
func (h *haCluster) settle(prev *haMgmt) *haMgmt {
	h.t.Helper()
	for attempt := 0; ; attempt++ {
		m, sts := h.WaitMaster()
		_, err := h.trySynced(m.id, h.Other(m.id).id, haPair)
		if err == nil {
			if m != prev {
				h.t.Logf("the master is %s, not %s as expected", m.id, prev.id)
			}
			return m
		}
		if attempt == 3 {
			h.t.Fatalf("no stable master: %v; %s\n%s", err, summarize(sts), h.Tails())
		}
	}
}
