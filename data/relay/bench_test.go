package relay_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hellopics/hellopics/data/agentsim"
	"github.com/hellopics/hellopics/data/relay"
	"github.com/hellopics/hellopics/data/tpce"
	"github.com/hellopics/hellopics/pkg/meds"
)

// BenchmarkRelay measures command round trips TPCE -> relay -> SNMP
// SetRequest -> agent simulator -> InformRequest -> relay -> TPCE, and
// BenchmarkBaseline the same MEDS bytes through a plain TCP -> UDP -> TCP
// forwarder with no SNMP, side by side. The default maximum SNMP
// message size (1472) cuts a 4 KiB command into 3 fragments, each a
// SetRequest and an echoing Response, and its response likewise, where
// the baseline moves one datagram each way; "msg=8192" runs the relay
// with one fragment per message, the baseline's datagram count:
//
//	go test -run '^$' -bench . -benchmem ./data/relay/
//
// Metrics: cmd/s (round trips per second), p50-µs and p99-µs (round-trip
// latency), cpu-µs/op (CPU time, user and system, per command), and
// allocs/op, which is per relayed command and counts every allocation
// in the process: client, relay and agent simulator.
func BenchmarkRelay(b *testing.B) {
	for _, c := range []struct{ size, maxMsg int }{{64, 0}, {4096, 0}, {4096, 8192}} {
		for _, clients := range []int{1, 16} {
			name := fmt.Sprintf("size=%d/clients=%d", c.size, clients)
			if c.maxMsg > 0 {
				name = fmt.Sprintf("size=%d/msg=%d/clients=%d", c.size, c.maxMsg, clients)
			}
			b.Run(name, func(b *testing.B) {
				e := startBench(b, c.maxMsg)
				runRoundTrips(b, e.addrs.Commands.String(), c.size, clients)
				st, as := e.relay.Stats(), e.agent.Stats()
				b.ReportMetric(float64(st.Retries)/float64(b.N), "retries/op")
				if st.Duplicates+as.NotifyFailures+st.SendFailures > 0 {
					b.Logf("duplicates %d, inform failures %d, send failures %d", st.Duplicates, as.NotifyFailures, st.SendFailures)
				}
			})
		}
	}
}

// BenchmarkBaseline is BenchmarkRelay's reference: see there.
func BenchmarkBaseline(b *testing.B) {
	for _, size := range []int{64, 4096} {
		for _, clients := range []int{1, 16} {
			b.Run(fmt.Sprintf("size=%d/clients=%d", size, clients), func(b *testing.B) {
				addr := startBaseline(b)
				runRoundTrips(b, addr, size, clients)
			})
		}
	}
}

// startBench starts a relay and an agent simulator; maxMsg, when not
// 0, is both sides' maximum SNMP message size (default 1472).
func startBench(b *testing.B, maxMsg int) *env {
	b.Helper()
	return start(b, func(r *relay.Config, a *agentsim.Config) {
		r.PollInterval = 0
		if maxMsg > 0 {
			r.MaxMsgSize, a.MaxMsgSize = maxMsg, maxMsg
		}
	})
}

// runRoundTrips spreads b.N commands over clients, one in flight each.
func runRoundTrips(b *testing.B, addr string, size, clients int) {
	conns := make([]*tpce.Conn, clients)
	for i := range conns {
		c, err := tpce.Dial(context.Background(), addr, 0)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	text := make([]byte, size)
	// Warm up every path (discovery, pools, buffers).
	for _, c := range conns {
		if err := c.Command(0, text); err != nil {
			b.Fatal(err)
		}
		if m, err := c.Recv(); err != nil || m.Type != meds.TypeResponse {
			b.Fatalf("warm-up: %v %v", m.Type, err)
		}
	}
	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	for i, c := range conns {
		n := b.N / clients
		if i < b.N%clients {
			n++
		}
		lat[i] = make([]time.Duration, 0, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := 1; id <= n; id++ {
				t0 := time.Now()
				if err := c.Command(uint32(id), text); err != nil {
					errs <- err
					return
				}
				m, err := c.Recv()
				if err != nil {
					errs <- err
					return
				}
				if m.Type != meds.TypeResponse || m.ID != uint32(id) || len(m.Text) != size {
					errs <- fmt.Errorf("got %s id %d len %d, want response %d len %d", m.Type, m.ID, len(m.Text), id, size)
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(len(all))/elapsed.Seconds(), "cmd/s")
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(all[(len(all)-1)*99/100].Microseconds()), "p99-µs")
		b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(len(all)), "cpu-µs/op")
	}
}

// cpuTime is the CPU time (user and system) the process has used: the
// cost of a command, less disturbed than its rate by other jobs on a
// shared machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startBaseline runs a forwarder that moves the same MEDS bytes TCP ->
// UDP -> echo -> UDP -> TCP, renumbering like the relay, with no SNMP.
func startBaseline(b *testing.B) string {
	b.Helper()
	log := hclog.NewNullLogger()
	_ = log
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	echo, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	up, err := net.DialUDP("udp", nil, echo.LocalAddr().(*net.UDPAddr))
	if err != nil {
		b.Fatal(err)
	}
	type route struct {
		c  net.Conn
		mu *sync.Mutex
		id uint32
	}
	var (
		mu     sync.Mutex
		routes = map[uint32]route{}
		next   uint32
		wg     sync.WaitGroup
	)
	var conns []net.Conn
	wg.Add(3)
	go func() { // the "agent": echo each command back as a response
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := echo.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			buf[1] = byte(meds.TypeResponse)
			_, _ = echo.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	go func() { // agent -> TCP
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, err := up.Read(buf)
			if err != nil {
				return
			}
			h := meds.DecodeHeader(buf)
			mu.Lock()
			rt, ok := routes[h.ID]
			delete(routes, h.ID)
			mu.Unlock()
			if !ok {
				continue
			}
			h.ID = rt.id
			meds.PutHeader(buf, h)
			rt.mu.Lock()
			_, _ = rt.c.Write(buf[:n])
			rt.mu.Unlock()
		}
	}()
	go func() { // TCP -> agent
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wmu := &sync.Mutex{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				rd := meds.NewReader(c, 0)
				buf := make([]byte, 0, 65536)
				for {
					m, err := rd.Next()
					if err != nil {
						return
					}
					mu.Lock()
					next++
					id := next
					routes[id] = route{c: c, mu: wmu, id: m.ID}
					mu.Unlock()
					m.ID = id
					buf = meds.AppendMessage(buf[:0], m)
					if _, err := up.Write(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	b.Cleanup(func() {
		_ = ln.Close()
		_ = echo.Close()
		_ = up.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}
