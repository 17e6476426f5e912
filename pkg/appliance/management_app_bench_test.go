package appliance

import (
	"fmt"
	"testing"
	"time"
)

// waitTB polls cond, failing after a generous bound (waitUntil for
// benchmarks).
func waitTB(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkAppReplication measures the application state updates per
// second a master replicates to one backup over loopback HA sessions and
// sees acknowledged (Commit with Acked 1), with up to window updates in
// flight, made in loop turns of batch updates.
func BenchmarkAppReplication(b *testing.B) {
	const window, batch = 4096, 256
	ha := map[string]string{"a": freeAddr(b), "b": freeAddr(b)}
	m := startApp(b, "a", 200, ha)
	defer m.Close()
	bk := startApp(b, "b", 100, ha)
	defer bk.Close()
	waitTB(b, "a to be master", m.isMaster)
	waitTB(b, "b to hold a's state", func() bool { return m.inSync("b") })

	update := []byte("counter-0000001")
	slots := make(chan struct{}, window)
	done := make(chan Commit, window)
	commit := func(c Commit) { done <- c }
	acked := make(chan error, 1)
	go func() { // owned by the benchmark: ends after b.N commits
		for i := 0; i < b.N; i++ {
			c := <-done
			<-slots
			if c.Err != nil || c.Acked != 1 {
				acked <- fmt.Errorf("commit %+v, want one backup's ack", c)
				return
			}
		}
		acked <- nil
	}()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; {
		n := min(batch, b.N-sent)
		for range n {
			slots <- struct{}{}
		}
		var err error
		m.loop.Do(func() {
			for range n {
				if err = m.node.Replicate(update, commit); err != nil {
					return
				}
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		sent += n
	}
	if err := <-acked; err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "updates/s")
}
