package pconn

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hellopics/hellopics/internal/await"
)

// TestOverloadDelay: after refusals for load the wait doubles from
// RetryInterval up to MaxRetryBackoff, each drawn in its upper half.
func TestOverloadDelay(t *testing.T) {
	cfg := testConfig(echo, nil)
	cfg.RetryInterval, cfg.MaxRetryBackoff = 100*time.Millisecond, time.Second
	c := &Client{cfg: cfg, rnd: rand.New(rand.NewPCG(1, 2))}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond,
		4: 800 * time.Millisecond, 5: time.Second, 50: time.Second} {
		for range 100 {
			if d := c.overloadDelay(n); d < want/2 || d > want {
				t.Fatalf("refusal %d: wait %v, want in [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

// TestRefusedClientBacksOff: a client the server refuses for load
// (MaxSessions reached) retries less and less often, not every retry
// interval, and gets in once there is room.
func TestRefusedClientBacksOff(t *testing.T) {
	scfg := testConfig(echo, nil)
	scfg.MaxSessions = 1
	srv := listen(t, scfg)
	holder := dial(t, testConfig(echo, nil), srv.Addr().String())
	await.True(t, func() bool { return holder.Session() != nil && srv.Stats().Sessions == 1 }, "first client connected")

	ccfg := testConfig(echo, nil)
	ccfg.RetryInterval = 10 * time.Millisecond
	ccfg.MaxRetryBackoff = 160 * time.Millisecond
	c := dial(t, ccfg, srv.Addr().String())
	// Without backoff it would try about every 10 ms: a hundred times
	// in a second. With it, it waits 10, 20, 40, 80, 160, 160... ms,
	// each at least half of that: at most 16 in the first second.
	start := time.Now()
	await.True(t, func() bool { return srv.Stats().RefusedFull >= 4 }, "refused four times")
	time.Sleep(time.Second - time.Since(start)) // a window to count in, not a wait for an event
	elapsed := time.Since(start)
	if n := srv.Stats().RefusedFull; n > 30 {
		t.Fatalf("refused %d times in %v: not backing off", n, elapsed)
	}
	holder.Close()
	await.True(t, func() bool { return c.Session() != nil }, "refused client in once there is room")
	if err := c.Err(); err != nil && !errors.Is(err, ErrClosed) {
		t.Fatalf("client error %v", err)
	}
}
