package e2e

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// timing is the intervals the daemons run with.
type timing struct {
	hello, retry, dead time.Duration
}

// fast keeps the suite quick while leaving room for a loaded two-core
// machine running the tests in parallel under the race detector.
var fast = timing{hello: 50 * time.Millisecond, retry: 100 * time.Millisecond, dead: 300 * time.Millisecond}

// ports hands out loopback TCP ports below the ephemeral range, so that
// neither another test of this package nor an outgoing connection's
// local port takes a port between its reservation and its use. Each is
// checked free by binding it.
var ports struct {
	sync.Mutex
	next int
}

const portLo, portHi = 20000, 32000

func freePort(tb testing.TB) string {
	tb.Helper()
	ports.Lock()
	defer ports.Unlock()
	if ports.next == 0 {
		ports.next = portLo + rand.IntN(portHi-portLo)
	}
	for range portHi - portLo {
		p := ports.next
		ports.next++
		if ports.next >= portHi {
			ports.next = portLo
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	tb.Fatal("no free loopback port")
	return ""
}

// cluster is one mgmt and any number of ctrl/data pairs, each a child
// process with its own ports.
type cluster struct {
	t  testing.TB
	tm timing

	// logLevel is the -log-level of each role ("debug" when absent).
	logLevel map[string]string
	// mgmtFlags are extra flags for every mgmt start (such as -metrics);
	// componentFlags for every ctrl and data start.
	mgmtFlags, componentFlags []string

	mgmtAddr string // where ctrl and data find mgmt (fixed across restarts)
	opAddr   string // mgmt's operator API

	mu    sync.Mutex
	mgmt  *proc // the current mgmt process, nil before the first start
	ctrl  map[string]*proc
	data  map[string]*proc
	procs []*proc // every process ever started, for failure messages
}

func newCluster(t testing.TB, tm timing) *cluster {
	t.Helper()
	return &cluster{
		t: t, tm: tm,
		mgmtAddr: freePort(t), opAddr: freePort(t),
		ctrl: make(map[string]*proc), data: make(map[string]*proc),
	}
}

func (c *cluster) add(p *proc) {
	p.context = c.Tails
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
}

// Tails formats the recent lines of every process of the cluster, leaving
// out the per-hello lines of a healthy cycle except the very last ones.
func (c *cluster) Tails() string {
	c.mu.Lock()
	procs := append([]*proc(nil), c.procs...)
	c.mu.Unlock()
	var b strings.Builder
	for _, p := range procs {
		ls := p.Lines(0)
		var keep []logLine
		for i, l := range ls {
			switch l.Step() {
			case "hello_sent", "hello_forwarded", "hello_returned":
				if i < len(ls)-4 {
					continue
				}
			}
			keep = append(keep, l)
		}
		if len(keep) > 40 {
			keep = keep[len(keep)-40:]
		}
		state := "running"
		if p.Exited() {
			state = fmt.Sprintf("exited: %v", p.ExitErr())
		}
		fmt.Fprintf(&b, "--- %s pid %d (%s), last %d of %d lines without hello chatter:\n", p.name, p.Pid(), state, len(keep), len(ls))
		for _, l := range keep {
			b.WriteString("  ")
			b.WriteString(l.Raw)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// logFlags returns the logging flags of role.
func (c *cluster) logFlags(role string) []string {
	lvl := c.logLevel[role]
	if lvl == "" {
		lvl = "debug"
	}
	return []string{"-log-json", "-log-level", lvl}
}

// StartMgmt starts mgmt and waits until it listens for components. If its
// port was taken meanwhile and nothing else runs yet, it moves to another.
func (c *cluster) StartMgmt() *proc {
	c.t.Helper()
	for attempt := 0; ; attempt++ {
		args := append([]string{"mgmt",
			"-listen", c.mgmtAddr,
			"-operator", c.opAddr,
			"-hello-interval", c.tm.hello.String(),
			"-dead-timeout", c.tm.dead.String(),
		}, c.logFlags("mgmt")...)
		args = append(args, c.mgmtFlags...)
		p := startProc(c.t, "mgmt", args...)
		c.add(p)
		_, _, err := p.waitFor(0, msg("listening for components"), 1, waitTimeout)
		if err == nil && operatorServed(c.t) {
			_, _, err = p.waitFor(0, msg("operator API listening"), 1, waitTimeout)
		}
		if err == nil {
			c.mu.Lock()
			c.mgmt = p
			c.mu.Unlock()
			return p
		}
		c.mu.Lock()
		alone := len(c.ctrl) == 0 && len(c.data) == 0
		c.mu.Unlock()
		if p.Exited() && alone && attempt < 3 && strings.Contains(p.Tail(20), "address already in use") {
			c.mgmtAddr, c.opAddr = freePort(c.t), freePort(c.t)
			continue
		}
		c.t.Fatalf("mgmt did not start: %v\n%s", err, c.Tails())
	}
}

// StartCtrl starts the ctrl of pair on a port of its choosing and waits
// for its "starting" line.
func (c *cluster) StartCtrl(pair string) *proc {
	c.t.Helper()
	return c.startComponent("ctrl", pair, c.ctrl, "-listen", "127.0.0.1:0")
}

// StartData starts the data of pair and waits for its "starting" line.
func (c *cluster) StartData(pair string) *proc {
	c.t.Helper()
	return c.startComponent("data", pair, c.data)
}

func (c *cluster) startComponent(role, pair string, into map[string]*proc, extra ...string) *proc {
	c.t.Helper()
	args := append([]string{role,
		"-mgmt", c.mgmtAddr,
		"-pair", pair,
		"-retry", c.tm.retry.String(),
		"-dead-timeout", c.tm.dead.String(),
	}, extra...)
	args = append(args, c.componentFlags...)
	args = append(args, c.logFlags(role)...)
	p := startProc(c.t, role+"-"+pair, args...)
	c.add(p)
	p.WaitFor(0, and(msg("starting"), field("component", role)))
	c.mu.Lock()
	into[pair] = p
	c.mu.Unlock()
	return p
}

// Start starts a component by role name ("mgmt", "ctrl", "data").
func (c *cluster) Start(role, pair string) *proc {
	c.t.Helper()
	switch role {
	case "mgmt":
		return c.StartMgmt()
	case "ctrl":
		return c.StartCtrl(pair)
	case "data":
		return c.StartData(pair)
	}
	c.t.Fatalf("unknown role %q", role)
	return nil
}

// Mgmt, Ctrl and Data return the current process of a component.
func (c *cluster) Mgmt() *proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mgmt
}

func (c *cluster) Ctrl(pair string) *proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ctrl[pair]
}

func (c *cluster) Data(pair string) *proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.data[pair]
}

// Proc returns the current process of a component by role name.
func (c *cluster) Proc(role, pair string) *proc {
	switch role {
	case "mgmt":
		return c.Mgmt()
	case "ctrl":
		return c.Ctrl(pair)
	}
	return c.Data(pair)
}

// WaitRunning waits, in the current mgmt's log from position from, for
// pair's cycle to start and then for n hellos of it to return; it returns
// the position after the last.
func (c *cluster) WaitRunning(from int, pair string, n int) int {
	c.t.Helper()
	m := c.Mgmt()
	_, pos := m.WaitFor(from, step("cycle_started", pair))
	_, pos = m.WaitForN(pos, step("hello_returned", pair), n)
	return pos
}

// WaitHellos waits for n more hellos of pair to return after position
// from in the current mgmt's log.
func (c *cluster) WaitHellos(from int, pair string, n int) int {
	c.t.Helper()
	_, pos := c.Mgmt().WaitForN(from, step("hello_returned", pair), n)
	return pos
}

// counters are a pair's Hello counters as the current mgmt's log tells
// them (they match GetStatus's HelloCounters: each mgmt process counts
// from zero).
type counters struct {
	sent, received, missed, outOfOrder, lastSeq uint64
	started, stopped                            int
	running                                     bool
	// From GetStatus only:
	lastRTT              time.Duration
	ctrlState, dataState hellopicsv1.ComponentState
	source               string // "log" or "GetStatus"
}

func (k counters) String() string {
	s := fmt.Sprintf("sent=%d received=%d missed=%d out_of_order=%d last_seq=%d cycle_started=%d cycle_stopped=%d running=%v",
		k.sent, k.received, k.missed, k.outOfOrder, k.lastSeq, k.started, k.stopped, k.running)
	if k.source == "GetStatus" {
		s += fmt.Sprintf(" last_rtt=%v ctrl=%v data=%v", k.lastRTT, k.ctrlState, k.dataState)
	}
	if k.source != "" {
		s += " (" + k.source + ")"
	}
	return s
}

// logCounters counts pair's events in p's log from position from.
func logCounters(p *proc, from int, pair string) counters {
	var k counters
	for _, l := range p.Lines(from) {
		if l.Str("pair") != pair {
			continue
		}
		switch l.Step() {
		case "hello_sent":
			k.sent++
			k.lastSeq = l.Uint("seq")
		case "hello_returned":
			k.received++
		case "hello_missed":
			k.missed++
		case "hello_out_of_order":
			k.outOfOrder++
		case "cycle_started":
			k.started++
			k.running = true
		case "cycle_stopped":
			k.stopped++
			k.running = false
		}
	}
	return k
}

// checkConsistent fails the test unless k obeys what holds for any run,
// however loaded the machine: every hello sent is received, missed, the
// one outstanding, or one in flight when a cycle stopped; and a hello
// that comes back out of order was missed first or caught by a stop.
func checkConsistent(tb testing.TB, pair string, k counters) {
	tb.Helper()
	stops := uint64(k.stopped)
	if k.received+k.missed > k.sent || k.sent > k.received+k.missed+1+stops || k.outOfOrder > k.missed+stops {
		tb.Errorf("%s: inconsistent counters: %v", pair, k)
	}
}
