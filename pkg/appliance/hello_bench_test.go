package appliance_test

// The built-in Hello cycle against the same cycle written as an
// application on this API, side by side in the same run:
//
//	go test -run '^$' -bench BenchmarkHelloCycle -benchtime 200x -count 3 ./pkg/appliance/
//
// builtin: the cycle of the handshake machines (mgmt -> ctrl -> data ->
// mgmt over MSG_HELLO, epoch-fenced, numbered from the synced reserve),
// one hello every 10 ms; rtt-us is the mean of mgmt's
// hellopics_hello_rtt_seconds over the b.N hellos.
//
// hellocycle: the cycle as an application (mgmt -hello-cycle app,
// pkg/hellocycle: app messages fenced by epoch, numbered from a
// replicated Sequence, counters replicated as State), the machine's own
// cycle off; rtt-us is read from the same histogram, which it feeds.
//
// app: the same ring as bare application messages (Send mgmt -> ctrl,
// ctrl -> data, data -> mgmt, a UInt64Value carrying the number), one
// every 10 ms from mgmt's loop, the built-in cycle idle (1 h interval);
// rtt-us is measured on mgmt's loop, like the machine's.
//
// vs-builtin is app's rtt over the median of the builtin runs before it.

import (
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/hellopics/hellopics/internal/await"
	"github.com/hellopics/hellopics/mgmt"
	"github.com/hellopics/hellopics/pkg/appliance"
)

const helloBenchInterval = 10 * time.Millisecond

// builtinRTTs are the mean round trips of the builtin runs so far.
var builtinRTTs []float64

func BenchmarkHelloCycle(b *testing.B) {
	b.Run("builtin", func(b *testing.B) { benchHelloMetric(b, false) })
	b.Run("hellocycle", func(b *testing.B) { benchHelloMetric(b, true) })
	b.Run("app", benchHelloApp)
}

// startHelloTrio starts mgmt (with the Hello interval given), ctrl and
// data in this process, each with its app, until sc stops.
func startHelloTrio(sc *scoped, interval time.Duration, m, c, d *appliance.App) *mgmt.Server {
	return startHelloTrioWith(sc, interval, false, m, c, d)
}

// startHelloTrioWith is startHelloTrio, with the cycle as an
// application if appCycle.
func startHelloTrioWith(sc *scoped, interval time.Duration, appCycle bool, m, c, d *appliance.App) *mgmt.Server {
	mc := mgmt.DefaultConfig()
	mc.AppCycle = appCycle
	mc.ListenAddr, mc.OperatorAddr, mc.App = "127.0.0.1:0", "", m
	mc.HelloInterval = interval
	ms, err := mgmt.New(mc)
	if err != nil {
		sc.Fatal(err)
	}
	sc.Cleanup(func() { ms.Close() })
	cn := startCtrl(sc, ms.Addr().String(), c)
	dn := startData(sc, ms.Addr().String(), d)
	await.True(sc, func() bool { return cn.Ready() && dn.Ready() }, "ctrl and data ready")
	return ms
}

// rttStats reads the count and sum of mgmt's hello round trips.
func rttStats(b *testing.B, reg *prometheus.Registry) (uint64, float64) {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "hellopics_hello_rtt_seconds" {
			continue
		}
		var n uint64
		var sum float64
		for _, m := range mf.GetMetric() {
			n += m.GetHistogram().GetSampleCount()
			sum += m.GetHistogram().GetSampleSum()
		}
		return n, sum
	}
	return 0, 0
}

// benchHelloMetric runs the cycle, built in or as an application, and
// reports the mean of mgmt's hellopics_hello_rtt_seconds.
func benchHelloMetric(b *testing.B, appCycle bool) {
	sc := &scoped{TB: b}
	defer sc.stop()
	ms := startHelloTrioWith(sc, helloBenchInterval, appCycle, nil, nil, nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(ms.Collectors()...)
	await.True(b, func() bool { n, _ := rttStats(b, reg); return n > 0 }, "the first hello back")
	n0, sum0 := rttStats(b, reg)
	b.ResetTimer()
	n, sum := n0, sum0
	for n-n0 < uint64(b.N) {
		time.Sleep(helloBenchInterval)
		n, sum = rttStats(b, reg)
	}
	b.StopTimer()
	rtt := (sum - sum0) / float64(n-n0) * 1e6
	b.ReportMetric(rtt, "rtt-us")
	b.ReportMetric(0, "ns/op")
	if !appCycle {
		builtinRTTs = append(builtinRTTs, rtt)
		return
	}
	reportVsBuiltin(b, rtt)
}

// reportVsBuiltin reports rtt over the median builtin run so far.
func reportVsBuiltin(b *testing.B, rtt float64) {
	if len(builtinRTTs) > 0 {
		med := slices.Clone(builtinRTTs)
		slices.Sort(med)
		b.ReportMetric(rtt/med[len(med)/2], "vs-builtin")
	}
}

func benchHelloApp(b *testing.B) {
	back := make(chan time.Duration, 1)
	var sentAt time.Time // mgmt's loop only
	mm := appliance.NewMux()
	appliance.Handle(mm, func(c *appliance.Context, m *wrapperspb.UInt64Value) error {
		back <- time.Since(sentAt)
		return nil
	})
	cm := appliance.NewMux()
	appliance.Handle(cm, func(c *appliance.Context, m *wrapperspb.UInt64Value) error {
		return c.Node.Send(appliance.Target{Role: appliance.Data}, m)
	})
	dm := appliance.NewMux()
	appliance.Handle(dm, func(c *appliance.Context, m *wrapperspb.UInt64Value) error {
		return c.Node.Send(appliance.ToMgmt, m)
	})
	sc := &scoped{TB: b}
	defer sc.stop()
	ms := startHelloTrio(sc, time.Hour, &appliance.App{Mux: mm}, &appliance.App{Mux: cm}, &appliance.App{Mux: dm})
	n := ms.Node()
	to := appliance.To(appliance.Ctrl, "p1")
	await.True(b, func() bool { return len(n.ReadyPairs()) == 1 }, "the pair ready at mgmt")
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var err error
		n.Do(func() {
			sentAt = time.Now()
			err = n.Send(to, wrapperspb.UInt64(uint64(i)))
		})
		if err != nil {
			b.Fatal(err)
		}
		total += <-back
		time.Sleep(helloBenchInterval)
	}
	b.StopTimer()
	rtt := float64(total.Microseconds()) / float64(b.N)
	b.ReportMetric(rtt, "rtt-us")
	b.ReportMetric(0, "ns/op")
	reportVsBuiltin(b, rtt)
}
