package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// procKB returns a "kB" field of /proc/PID/status (VmRSS, VmHWM).
func procKB(t testing.TB, pid int, key string) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("status of %d: %v", pid, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s of %d: %q: %v", key, pid, l, err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, pid)
	return 0
}

// flood is many hostile connections, each from one of several loopback
// source addresses (another "host" each), kept open until Close.
type flood struct {
	mu    sync.Mutex
	conns []net.Conn
	dials int
	fails int
}

// open dials n connections to addr from 127.0.0.<first> upwards, perHost
// from each address, and writes payload(i) on connection i. Dials that
// fail and connections the server closes are part of the game: they are
// counted, not fatal.
func (f *flood) open(t testing.TB, addr string, n, first, perHost int, payload func(i int) []byte) {
	t.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			src := net.IPv4(127, 0, byte((first+i/perHost)/256), byte((first+i/perHost)%256))
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 5 * time.Second}
			c, err := d.Dial("tcp", addr)
			f.mu.Lock()
			defer f.mu.Unlock()
			f.dials++
			if err != nil {
				f.fails++
				return
			}
			if b := payload(i); len(b) > 0 {
				_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Write(b); err != nil {
					f.fails++
				}
			}
			f.conns = append(f.conns, c)
		}()
	}
	wg.Wait()
}

func (f *flood) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
}

// header is a pconn frame header announcing n payload bytes of type ty.
func header(ty uint16, n uint32) []byte {
	b := make([]byte, 8)
	b[0] = 1
	binary.BigEndian.PutUint16(b[2:4], ty)
	binary.BigEndian.PutUint32(b[4:8], n)
	return b
}

// floodTarget starts mgmt (metrics on the returned address), ctrl and
// data, and waits for the pair's cycle.
func floodTarget(t *testing.T, tm timing) (c *cluster, m *proc, metrics string) {
	t.Helper()
	c = newCluster(t, tm)
	metrics = freePort(t)
	c.mgmtFlags = []string{"-metrics", metrics}
	m = c.StartMgmt()
	c.StartCtrl(haPair)
	c.StartData(haPair)
	c.WaitRunning(0, haPair, 3)
	return c, m, metrics
}

// TestFloodLargeFrames opens 1,000 connections to a running mgmt from
// 16 "hosts": 500 announce a 1 MiB frame before identifying, 500
// identify as the data component of a pair of their own and then
// announce a 1 MiB frame, send 1 KiB of it and stall. mgmt used to
// allocate each announced megabyte at once (944 MB RSS); now the first
// 500 are refused from the header (the limit before identification is
// 4 KiB) and the others cost the bytes they sent. The real pair's cycle
// runs on without a missed hello, and the refusals are counted.
func TestFloodLargeFrames(t *testing.T) {
	skipShort(t)
	tm := fast
	tm.hello = 200 * time.Millisecond
	// The strays never answer pings: with the fast 300 ms dead timeout
	// mgmt would drop them before the measurement (a defence of its own,
	// not the one under test).
	tm.dead = 20 * time.Second
	c, m, met := floodTarget(t, tm)
	before := c.Counters(haPair)
	rss0 := procKB(t, m.Pid(), "VmRSS")
	mark := m.Mark()

	var f flood
	defer f.Close()
	f.open(t, c.mgmtAddr, 500, 10, 63, func(int) []byte {
		return header(uint16(hellopicsv1.MsgType_MSG_TYPE_ID), 1<<20)
	})
	var g flood
	defer g.Close()
	g.open(t, c.mgmtAddr, 500, 20, 63, func(i int) []byte {
		return pbFrame(t, hellopicsv1.MsgType_MSG_TYPE_ID, &hellopicsv1.Identify{
			Role: hellopicsv1.Role_ROLE_DATA, PairId: fmt.Sprintf("flood-%d", i), Instance: "x"})
	})
	// Every announce before identification is refused from its header.
	waitScrape(t, met, "hellopics_listener_refused_total", `listener="components",reason="protocol"`, 500, c.Tails)
	// The identified ones are registered; now each announces 1 MiB,
	// sends 1 KiB of it and stalls.
	waitScrape(t, met, "hellopics_listener_sessions", `listener="components"`, 502, c.Tails)
	half := append(header(uint16(hellopicsv1.MsgType_MSG_TYPE_REPORT), 1<<20), make([]byte, 1024)...)
	g.mu.Lock()
	for _, conn := range g.conns {
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write(half); err != nil {
			t.Errorf("identified flood connection closed: %v", err)
			break
		}
	}
	g.mu.Unlock()
	c.WaitHellos(m.Mark(), haPair, 5)
	hwm := procKB(t, m.Pid(), "VmHWM")
	t.Logf("mgmt RSS %d kB before, peak %d kB during the flood (%d dials, %d failed)", rss0, hwm, f.dials, f.fails)
	// Without the race detector the growth is about 20 MB; with it, a
	// few times that. Allocating the announced frames took 500 MB and
	// more.
	limit := uint64(64 << 10)
	if raceEnabled {
		limit = 320 << 10
	}
	if hwm-rss0 > limit {
		t.Errorf("mgmt's RSS grew by %d kB during the flood; want under %d kB", hwm-rss0, limit)
	}
	after := c.Counters(haPair)
	if after.missed != before.missed || after.received <= before.received {
		t.Errorf("counters %v -> %v: want received growing, nothing missed", before, after)
	}
	if n := m.Count(mark, contains("protocol error")); n > 20 {
		t.Errorf("%d log lines for 500 refusals; want a few (rate-limited)", n)
	}
	f.Close()
	g.Close()
}

// TestFloodIdle holds 1,100 idle connections to mgmt from one other
// host: 64 are accepted (the per-host limit), the rest refused at once,
// and a real ctrl killed and restarted meanwhile registers again without
// waiting for the strays' identify timeout.
func TestFloodIdle(t *testing.T) {
	skipShort(t)
	c, m, met := floodTarget(t, fast)

	var f flood
	defer f.Close()
	f.open(t, c.mgmtAddr, 1100, 2, 1100, func(int) []byte { return nil })
	// A dial that timed out (the listen backlog overflows on a loaded
	// machine, SYNs are dropped) never reached mgmt to be refused.
	if f.fails > 100 {
		t.Fatalf("%d of %d dials failed", f.fails, f.dials)
	}
	// 64 are admitted; when mgmt works through the flood slower than the
	// strays' dead timeout (the fast timers, under the race detector on
	// a loaded machine), the admitted ones are closed and as many more
	// admitted: allow two such rounds.
	refused := waitScrape(t, met, "hellopics_listener_refused_total", `listener="components",reason="per_host"`, float64(1100-3*64-f.fails), c.Tails)
	mark := m.Mark()
	c.Ctrl(haPair).Kill()
	c.StartCtrl(haPair)
	c.WaitRunning(mark, haPair, 3)
	if n := m.Count(mark, contains("too many connections from this host")); n > 3 {
		t.Errorf("%d log lines for %v refusals; want a few (rate-limited)", n, refused)
	}
}
