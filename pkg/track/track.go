// Package track runs a management instance's tracked health checks, in
// the manner of keepalived's track_script and track_interface: each
// check runs every interval on its own goroutine (never on the
// caller's), a script bounded by its timeout (its process group is
// killed then, and the run counts as a failure), and changes state only
// after Fall consecutive failures or Rise consecutive successes. A
// failing check of weight W > 0 lowers the instance's priority by W; a
// failing check of weight 0 puts it in the fault state (Effective).
package track

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hellopics/hellopics/internal/script"
)

// Defaults of Check.
const (
	DefaultInterval = time.Second
	// DefaultFall: one failed run may be a fluke (a loaded host, a slow
	// disk); two in a row are not. keepalived's default is 1.
	DefaultFall = 2
	// DefaultRise: a check that passes again is believed at once
	// (keepalived's default).
	DefaultRise = 1
)

// Check is one tracked check: Script or Interface (exactly one).
type Check struct {
	// Name names the check in status, metrics and logs. Default
	// "script:" + Script or "interface:" + Interface.
	Name string
	// Script is a shell command line (/bin/sh -c); exit status 0 passes.
	Script string
	// Interface is a network interface; it passes while it is up with a
	// carrier (/sys/class/net/IF/operstate "up", or "unknown" as for
	// lo, and carrier 1). Absent, it fails.
	Interface string
	// Weight is how much a failing check lowers the priority; 0 puts
	// the instance in the fault state instead.
	Weight uint32
	// Interval is the time between the starts of two runs. Default
	// DefaultInterval.
	Interval time.Duration
	// Timeout bounds a script's run (its process group is killed and
	// the run fails). Default Interval.
	Timeout time.Duration
	// Fall and Rise are the consecutive failures and successes that
	// turn the check failing and passing. Defaults DefaultFall and
	// DefaultRise.
	Fall, Rise int
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c Check) WithDefaults() Check {
	if c.Name == "" {
		if c.Script != "" {
			c.Name = "script:" + c.Script
		} else {
			c.Name = "interface:" + c.Interface
		}
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = c.Interval
	}
	if c.Fall <= 0 {
		c.Fall = DefaultFall
	}
	if c.Rise <= 0 {
		c.Rise = DefaultRise
	}
	return c
}

// Problem reports what is wrong with c, nil if nothing.
func (c Check) Problem() error {
	switch {
	case (c.Script == "") == (c.Interface == ""):
		return errors.New("track: a check needs a script or an interface, not both")
	case c.Interface != "" && (strings.ContainsAny(c.Interface, "/\x00") || c.Interface == "." || c.Interface == ".."):
		return fmt.Errorf("track: %q is not an interface name", c.Interface)
	case c.Interval < 0 || c.Timeout < 0 || c.Fall < 0 || c.Rise < 0:
		return fmt.Errorf("track: %s: negative interval, timeout, fall or rise", c.WithDefaults().Name)
	}
	return nil
}

// State is a check's state.
type State struct {
	// Name and Weight are the check's.
	Name   string
	Weight uint32
	// OK is true while the check passes.
	OK bool
	// LastError is why the last run failed, "" after a success.
	LastError string
	// Since is when OK last changed, or when the first run decided it.
	Since time.Time
}

// Effective is the priority and fault state that base and the checks'
// states give: base less the weights of the failing checks of weight
// above 0 (at least 0), and fault while a check of weight 0 fails.
// failing names the failing checks.
func Effective(base uint32, states []State) (priority uint32, fault bool, failing []string) {
	var penalty uint64
	for _, s := range states {
		if s.OK {
			continue
		}
		failing = append(failing, s.Name)
		if s.Weight == 0 {
			fault = true
		}
		penalty += uint64(s.Weight)
	}
	if penalty >= uint64(base) {
		return 0, fault, failing
	}
	return base - uint32(penalty), fault, failing
}

// Tracker runs checks. Its methods are safe for concurrent use.
type Tracker struct {
	checks   []Check
	sysNet   string
	onChange func(State)

	mu     sync.Mutex
	states []State
	fails  []int // consecutive failures of each check
	oks    []int // consecutive successes

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start runs every check once, all at once, and waits for these first
// runs (at most the longest timeout): each check's first result is its
// initial state, so that the caller never elects on unknown health.
// Then it runs each check every interval on a goroutine of its own and
// calls onChange (if not nil), from that goroutine, whenever a check's
// OK changes. Close stops it.
func Start(checks []Check, onChange func(State)) (*Tracker, error) {
	return start(checks, "/sys/class/net", onChange)
}

func start(checks []Check, sysNet string, onChange func(State)) (*Tracker, error) {
	t := &Tracker{sysNet: sysNet, onChange: onChange}
	names := map[string]bool{}
	for _, c := range checks {
		if err := c.Problem(); err != nil {
			return nil, err
		}
		c = c.WithDefaults()
		if names[c.Name] {
			return nil, fmt.Errorf("track: two checks named %q (set -track-name)", c.Name)
		}
		names[c.Name] = true
		t.checks = append(t.checks, c)
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.states = make([]State, len(t.checks))
	t.fails = make([]int, len(t.checks))
	t.oks = make([]int, len(t.checks))
	var first sync.WaitGroup
	for i, c := range t.checks {
		first.Add(1)
		go func() {
			defer first.Done()
			err := t.run(c)
			now := time.Now()
			t.mu.Lock()
			t.states[i] = State{Name: c.Name, Weight: c.Weight, OK: err == nil, LastError: errString(err), Since: now}
			if err == nil {
				t.oks[i] = 1
			} else {
				t.fails[i] = 1
			}
			t.mu.Unlock()
		}()
	}
	first.Wait()
	for i := range t.checks {
		t.wg.Add(1)
		go t.loop(i)
	}
	return t, nil
}

// States returns every check's state, in the order given to Start.
func (t *Tracker) States() []State {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]State(nil), t.states...)
}

// Close stops the checks, killing a running script, and waits for them.
func (t *Tracker) Close() {
	t.cancel()
	t.wg.Wait()
}

func (t *Tracker) loop(i int) {
	defer t.wg.Done()
	c := t.checks[i]
	next := time.Now().Add(c.Interval)
	timer := time.NewTimer(c.Interval)
	defer timer.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		err := t.run(c)
		if t.ctx.Err() != nil {
			return
		}
		if st, changed := t.record(i, err, time.Now()); changed && t.onChange != nil {
			t.onChange(st)
		}
		// Keep the period from start to start; a run longer than it is
		// followed by the next at once.
		next = next.Add(c.Interval)
		if next.Before(start) {
			next = start.Add(c.Interval)
		}
		timer.Reset(time.Until(next))
	}
}

// record counts a run's result and reports the state and whether OK
// changed.
func (t *Tracker) record(i int, err error, now time.Time) (State, bool) {
	c := t.checks[i]
	t.mu.Lock()
	defer t.mu.Unlock()
	st := &t.states[i]
	st.LastError = errString(err)
	changed := false
	if err == nil {
		t.fails[i] = 0
		t.oks[i]++
		if !st.OK && t.oks[i] >= c.Rise {
			st.OK, st.Since, changed = true, now, true
		}
	} else {
		t.oks[i] = 0
		t.fails[i]++
		if st.OK && t.fails[i] >= c.Fall {
			st.OK, st.Since, changed = false, now, true
		}
	}
	return *st, changed
}

func (t *Tracker) run(c Check) error {
	if c.Script != "" {
		return RunScript(t.ctx, c.Script, c.Timeout)
	}
	return InterfaceUp(t.sysNet, c.Interface)
}

// RunScript runs a check script once: nil for exit status 0, else why
// it failed (its exit status and the start of its output, or that it
// was killed at timeout).
func RunScript(ctx context.Context, line string, timeout time.Duration) error {
	r := script.Run(ctx, script.Command{Line: line, Timeout: timeout})
	switch {
	case r.TimedOut:
		return fmt.Errorf("killed at its timeout %v", timeout)
	case r.Err != nil:
		out := strings.TrimSpace(r.Output)
		if i := strings.IndexByte(out, '\n'); i >= 0 {
			out = out[:i]
		}
		if len(out) > 200 {
			out = out[:200]
		}
		if out != "" {
			return fmt.Errorf("%v: %s", r.Err, out)
		}
		return r.Err
	}
	return nil
}

// InterfaceUp reports nil when the interface name, as sysNet (normally
// /sys/class/net) shows it, is operationally up with a carrier, else
// why not: absent, its operstate, or no carrier.
func InterfaceUp(sysNet, name string) error {
	dir := filepath.Join(sysNet, name)
	b, err := os.ReadFile(filepath.Join(dir, "operstate"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("interface %s absent", name)
		}
		return fmt.Errorf("interface %s: %w", name, err)
	}
	state := strings.TrimSpace(string(b))
	if state != "up" && state != "unknown" {
		return fmt.Errorf("interface %s %s", name, state)
	}
	// Reading carrier of an interface that is administratively down
	// fails (EINVAL): no carrier either way.
	b, err = os.ReadFile(filepath.Join(dir, "carrier"))
	if err != nil || strings.TrimSpace(string(b)) != "1" {
		return fmt.Errorf("interface %s has no carrier (operstate %s)", name, state)
	}
	return nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
