package tpce

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hellopics/hellopics/pkg/meds"
)

// LoadConfig describes a load run: Clients connections, each keeping
// Window commands of Size octets in flight, until Count commands have
// been answered in all or Duration has passed (whichever is set first;
// one of them is required).
type LoadConfig struct {
	Addr     string        // the relay's commands port
	Clients  int           // concurrent connections (default 1)
	Window   int           // commands in flight per connection (default 1)
	Size     int           // text octets per command
	Count    int           // total commands to answer; 0: use Duration
	Duration time.Duration // run time when Count is 0
	Check    bool          // check that each response echoes its command
}

// LoadResult is what RunLoad measured.
type LoadResult struct {
	Commands    int             // answered with a response
	RelayErrors int             // answered with a relay error
	Elapsed     time.Duration   // wall time of the run
	Latencies   []time.Duration // round trip of each answered command, sorted
}

// Rate returns answered commands per second.
func (r LoadResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Commands) / r.Elapsed.Seconds()
}

// Percentile returns the q-th (0..1) round-trip latency.
func (r LoadResult) Percentile(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(q * float64(len(r.Latencies)-1))
	return r.Latencies[i]
}

// RunLoad runs cfg against a relay and returns what it measured. Each
// client numbers its commands from 1; responses may come in any order.
func RunLoad(ctx context.Context, cfg LoadConfig) (LoadResult, error) {
	if cfg.Clients <= 0 {
		cfg.Clients = 1
	}
	if cfg.Window <= 0 {
		cfg.Window = 1
	}
	if cfg.Count <= 0 && cfg.Duration <= 0 {
		return LoadResult{}, errors.New("tpce: load needs a count or a duration")
	}
	conns := make([]*Conn, 0, cfg.Clients)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range cfg.Clients {
		c, err := Dial(ctx, cfg.Addr, 0)
		if err != nil {
			return LoadResult{}, err
		}
		conns = append(conns, c)
	}
	var deadline time.Time
	if cfg.Count <= 0 {
		deadline = time.Now().Add(cfg.Duration)
	}
	per := func(i int) int {
		if cfg.Count <= 0 {
			return -1
		}
		n := cfg.Count / cfg.Clients
		if i < cfg.Count%cfg.Clients {
			n++
		}
		return n
	}
	var (
		mu   sync.Mutex
		res  LoadResult
		errs []error
		wg   sync.WaitGroup
	)
	start := time.Now()
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat, relayErrs, err := runClient(ctx, c, cfg, per(i), deadline)
			mu.Lock()
			defer mu.Unlock()
			res.Latencies = append(res.Latencies, lat...)
			res.RelayErrors += relayErrs
			if err != nil {
				errs = append(errs, fmt.Errorf("client %d: %w", i, err))
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Commands = len(res.Latencies)
	slices.Sort(res.Latencies)
	return res, errors.Join(errs...)
}

func runClient(ctx context.Context, c *Conn, cfg LoadConfig, total int, deadline time.Time) ([]time.Duration, int, error) {
	text := bytes.Repeat([]byte("meds"), cfg.Size/4+1)[:cfg.Size]
	sent := make(map[uint32]time.Time, cfg.Window)
	var lat []time.Duration
	var nextID uint32
	relayErrs := 0
	done := func() bool {
		if total >= 0 {
			return int(nextID) >= total
		}
		return time.Now().After(deadline)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	for {
		for len(sent) < cfg.Window && !done() {
			nextID++
			sent[nextID] = time.Now()
			if err := c.Command(nextID, text); err != nil {
				return lat, relayErrs, err
			}
		}
		if len(sent) == 0 {
			return lat, relayErrs, nil
		}
		m, err := c.Recv()
		if err != nil {
			return lat, relayErrs, err
		}
		t0, ok := sent[m.ID]
		if !ok {
			return lat, relayErrs, fmt.Errorf("%s with id %d matches no command in flight", m.Type, m.ID)
		}
		delete(sent, m.ID)
		switch m.Type {
		case meds.TypeResponse:
			if cfg.Check && !bytes.Equal(m.Text, text) {
				return lat, relayErrs, fmt.Errorf("response %d: text of %d octets does not echo the command", m.ID, len(m.Text))
			}
			lat = append(lat, time.Since(t0))
		case meds.TypeRelayError:
			relayErrs++
		default:
			return lat, relayErrs, fmt.Errorf("unexpected %s id %d on the commands port", m.Type, m.ID)
		}
	}
}
