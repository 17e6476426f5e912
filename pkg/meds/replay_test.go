package meds

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"
)

// captureInform runs an authoritative engine (d) on a loopback UDP
// socket, has a gosnmp sender send one authPriv inform to it (engine
// discovery included, real packets) and returns the inform's octets as
// they were taken.
func captureInform(t *testing.T, d *Decoder) []byte {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var taken [][]byte
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		var unknown uint32
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			raw := bytes.Clone(buf[:n]) // Decode may overwrite the digest in place
			p, disc, err := d.Decode(buf[:n])
			var out []byte
			switch {
			case err != nil:
				t.Errorf("decode: %v", err)
				continue
			case disc:
				unknown++
				out, err = d.Report(p, unknown)
			default:
				mu.Lock()
				taken = append(taken, raw)
				mu.Unlock()
				out, err = d.Response(p, gosnmp.NoError, 0, p.Variables)
			}
			if err == nil {
				_, _ = conn.WriteToUDPAddrPort(out, from)
			}
		}
	}()
	defer func() { _ = conn.Close(); <-done }()
	g, err := secV3.Client(conn.LocalAddr().String(), 5*time.Second, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Connect(); err != nil {
		t.Fatal(err)
	}
	defer g.Conn.Close()
	vars := NotificationVarbinds(nil, 100, Fragment{Transfer: 1, Count: 1, Data: []byte("event")})
	if _, err := g.SendTrap(gosnmp.SnmpTrap{Variables: vars, IsInform: true}); err != nil {
		t.Fatalf("inform: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(taken) != 1 {
		t.Fatalf("%d informs taken, want 1", len(taken))
	}
	return taken[0]
}

// TestReplayRefused: a real authPriv inform, taken once, replayed 7 s
// and 132 s later (inside the 150 s time window, past the 5 s duplicate
// memory of reassembly) is refused with ErrReplay; 200 s later the time
// window refuses it. A fake clock: no sleeping.
func TestReplayRefused(t *testing.T) {
	d, err := NewDecoder(secV3)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var mu sync.Mutex
	now := start
	d.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	pkt := captureInform(t, d)
	if d.ReplayCacheLen() != 1 {
		t.Fatalf("replay cache holds %d, want 1", d.ReplayCacheLen())
	}
	for _, tc := range []struct {
		after time.Duration
		want  error
	}{
		{0, ErrReplay}, {7 * time.Second, ErrReplay}, {132 * time.Second, ErrReplay}, {200 * time.Second, ErrNotInTimeWindow},
	} {
		mu.Lock()
		now = start.Add(tc.after)
		mu.Unlock()
		p, _, err := d.Decode(bytes.Clone(pkt)) // as it comes off the wire again
		if !errors.Is(err, tc.want) || !errors.Is(err, ErrUSM) {
			t.Fatalf("replayed %v later: %v (packet %v), want %v", tc.after, err, p != nil, tc.want)
		}
		t.Logf("replayed %v later: %v", tc.after, err)
	}
	// A new engine clock (a restart) starts an empty cache; entries
	// leave it with the window (TestReplayCacheBounded).
	mu.Lock()
	now = time.Now()
	mu.Unlock()
	d.SetEngineClock(d.boots, now)
	boots, secs := d.EngineClock(now)
	if _, _, err := d.Decode(encodeAt(t, secV3, gosnmp.InformRequest, Fragment{Transfer: 2, Count: 1}, boots, secs)); err != nil {
		t.Fatal(err)
	}
	if n := d.ReplayCacheLen(); n != 1 {
		t.Fatalf("replay cache holds %d after the clock reset and one message, want 1", n)
	}
}

// TestReplayCacheBounded: the cache keeps at most its size; when full it
// forgets the oldest and refuses every message not newer than it, so no
// replay gets through; entries older than the window are dropped.
func TestReplayCacheBounded(t *testing.T) {
	c := newReplayCache(4)
	digest := func(i int) string { return string(bytes.Repeat([]byte{byte(i)}, 16)) }
	for i := range 4 {
		if r := c.check(digest(i), int64(1000+i), 1010); r != replayNone {
			t.Fatalf("message %d refused (%d)", i, r)
		}
	}
	if c.check(digest(2), 1002, 1010) != replaySeen {
		t.Fatal("replay of 2 not refused")
	}
	// Full: 4 comes in, 0 (time 1000) is forgotten and becomes the floor.
	if c.check(digest(4), 1004, 1010) != replayNone || c.len() != 4 {
		t.Fatalf("message 4 refused or cache not bounded (%d)", c.len())
	}
	if c.check(digest(0), 1000, 1010) != replayTooOld {
		t.Fatal("replay of the forgotten message 0 not refused")
	}
	if c.check(digest(9), 999, 1010) != replayTooOld {
		t.Fatal("message older than the floor not refused")
	}
	if c.check(digest(5), 1005, 1010) != replayNone {
		t.Fatal("a newer message refused")
	}
	// 150 s on, everything has left the window and is forgotten.
	if c.check(digest(6), 1200, 1200) != replayNone || c.len() != 1 {
		t.Fatalf("expired entries kept: %d", c.len())
	}
}

// FuzzReplayCache: any sequence of digests and times keeps the cache
// within its bound and never takes a digest it still remembers.
func FuzzReplayCache(f *testing.F) {
	f.Add([]byte{1, 2, 3, 1, 2, 3, 200, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		c := newReplayCache(8)
		now := int64(1000)
		seen := map[byte]int64{}
		for i, x := range b {
			now += int64(x % 8)
			mt := now - int64(x%200)
			r := c.check(string([]byte{x}), mt, now)
			if last, ok := seen[x]; ok && r == replayNone && now-last <= TimeWindow && mt == last {
				t.Fatalf("step %d: digest %d taken twice within the window", i, x)
			}
			if r == replayNone {
				seen[x] = mt
			}
			if c.len() > 8 || len(c.seen) != c.len() {
				t.Fatalf("cache size %d, map %d", c.len(), len(c.seen))
			}
		}
	})
}
