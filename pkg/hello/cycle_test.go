package hello

import (
	"fmt"
	"strings"
	"testing"
	"time"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

var (
	t0    = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	iv    = 100 * time.Millisecond
	ctrl  = hellopicsv1.Role_ROLE_CTRL
	data  = hellopicsv1.Role_ROLE_DATA
	viaCD = hellopicsv1.Direction_DIRECTION_MGMT_CTRL_DATA
	viaDC = hellopicsv1.Direction_DIRECTION_MGMT_DATA_CTRL
)

func newCycle(t testing.TB, spread bool) *Cycle {
	t.Helper()
	c, err := New(Config{Interval: iv, Spread: spread, Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// summary is the outputs as "send ctrl 1; started; sent ..." for
// comparisons.
func summary(outs []Output) string {
	var parts []string
	for _, o := range outs {
		switch o := o.(type) {
		case Send:
			parts = append(parts, fmt.Sprintf("send %s %d", RoleName(o.To), o.Hello.GetSeq()))
		case Event:
			parts = append(parts, kindName(o.Kind))
		}
	}
	return strings.Join(parts, "; ")
}

func kindName(k EventKind) string {
	return map[EventKind]string{EventStarted: "started", EventStopped: "stopped", EventSent: "sent", EventReturned: "returned",
		EventMissed: "missed", EventOutOfOrder: "out_of_order", EventOutage: "outage"}[k]
}

// sentHello is the Hello of the outputs' Send.
func sentHello(t testing.TB, outs []Output) *hellopicsv1.Hello {
	t.Helper()
	for _, o := range outs {
		if s, ok := o.(Send); ok {
			return s.Hello
		}
	}
	t.Fatalf("no hello sent in %s", summary(outs))
	return nil
}

func counters(c *Cycle, id string) string {
	k := c.Counters(id)
	return fmt.Sprintf("sent %d received %d missed %d out_of_order %d last %d", k.GetSent(), k.GetReceived(), k.GetMissed(), k.GetOutOfOrder(), k.GetLastSeq())
}

// TestCycleRuns: a started cycle sends hello 1 to ctrl, then, one
// interval later, hello 2 the other way round to data; each comes back
// from its last hop and counts; a hello not back when the next is due
// counts as missed; the numbers grow across pairs.
func TestCycleRuns(t *testing.T) {
	c := newCycle(t, false)
	outs := c.Start("p1", t0)
	if got := summary(outs); got != "started; send ctrl 1; sent" {
		t.Fatalf("start: %s", got)
	}
	h := sentHello(t, outs)
	if h.GetDirection() != viaCD || h.GetEpoch() != 1 || h.GetPairId() != "p1" {
		t.Fatalf("first hello %v", h)
	}
	if got := summary(c.Start("p1", t0)); got != "" {
		t.Fatalf("a second start: %s", got)
	}
	if at, ok := c.NextDeadline(); !ok || !at.Equal(t0.Add(iv)) {
		t.Fatalf("next deadline %v %v", at, ok)
	}
	back := c.Back("p1", data, h, t0.Add(3*time.Millisecond))
	if got := summary(back); got != "returned" || back[0].(Event).RTT != 3*time.Millisecond {
		t.Fatalf("back: %s %+v", got, back)
	}
	outs = c.Tick(t0.Add(iv))
	h2 := sentHello(t, outs)
	if got := summary(outs); got != "send data 2; sent" || h2.GetDirection() != viaDC {
		t.Fatalf("second: %s %v", got, h2)
	}
	// Not back: at the next one it is missed.
	if got := summary(c.Tick(t0.Add(2 * iv))); got != "missed; send ctrl 3; sent" {
		t.Fatalf("tick with hello 2 out: %s", got)
	}
	if got := counters(c, "p1"); got != "sent 3 received 1 missed 1 out_of_order 0 last 3" {
		t.Fatal(got)
	}
	// Another pair takes the next number.
	if h := sentHello(t, c.Start("p2", t0.Add(2*iv))); h.GetSeq() != 4 {
		t.Fatalf("p2's first hello is %d; want 4", h.GetSeq())
	}
	// Stopped: no more hellos, the one in flight forgotten, not missed.
	if got := summary(c.Stop("p1", "ctrl lost")); got != "stopped" {
		t.Fatalf("stop: %s", got)
	}
	if got := summary(c.Tick(t0.Add(10 * iv))); got != "missed; send data 5; sent" { // p2 only
		t.Fatalf("tick after p1 stopped: %s", got)
	}
	if got := counters(c, "p1"); got != "sent 3 received 1 missed 1 out_of_order 0 last 3" || c.Running("p1") {
		t.Fatalf("p1 after its stop: %s running %v", got, c.Running("p1"))
	}
}

// TestCycleOutOfOrder: a hello that is not the one in flight counts as
// out of order and changes nothing else: a wrong number, direction,
// pair, epoch, or last hop, or one while no cycle runs.
func TestCycleOutOfOrder(t *testing.T) {
	c := newCycle(t, false)
	h := sentHello(t, c.Start("p1", t0))
	for name, tc := range map[string]struct {
		from hellopicsv1.Role
		h    *hellopicsv1.Hello
	}{
		"number":    {data, &hellopicsv1.Hello{Seq: 9, Direction: viaCD, Epoch: 1, PairId: "p1"}},
		"direction": {ctrl, &hellopicsv1.Hello{Seq: h.GetSeq(), Direction: viaDC, Epoch: 1, PairId: "p1"}},
		"last hop":  {ctrl, h},
		"pair":      {data, &hellopicsv1.Hello{Seq: h.GetSeq(), Direction: viaCD, Epoch: 1, PairId: "p2"}},
		"epoch":     {data, &hellopicsv1.Hello{Seq: h.GetSeq(), Direction: viaCD, Epoch: 2, PairId: "p1"}},
	} {
		if got := summary(c.Back("p1", tc.from, tc.h, t0)); got != "out_of_order" {
			t.Errorf("%s: %s", name, got)
		}
	}
	if got := counters(c, "p1"); got != "sent 1 received 0 missed 0 out_of_order 5 last 1" {
		t.Fatal(got)
	}
	// The right one still counts.
	if got := summary(c.Back("p1", data, h, t0)); got != "returned" {
		t.Fatalf("the right hello: %s", got)
	}
	// Twice: the second is out of order.
	if got := summary(c.Back("p1", data, h, t0)); got != "out_of_order" {
		t.Fatalf("a duplicate: %s", got)
	}
	c.Stop("p1", "gone")
	if got := summary(c.Back("p1", data, h, t0)); got != "out_of_order" {
		t.Fatalf("a hello while stopped: %s", got)
	}
}

// TestCycleLateTick: after a long pause a pair sends one hello, not a
// burst, and counts one missed.
func TestCycleLateTick(t *testing.T) {
	c := newCycle(t, false)
	c.Start("p1", t0)
	if got := summary(c.Tick(t0.Add(50 * iv))); got != "missed; send data 2; sent" {
		t.Fatalf("late tick: %s", got)
	}
	if got := summary(c.Tick(t0.Add(50 * iv))); got != "" {
		t.Fatalf("the same instant again: %s", got)
	}
}

// TestCycleTakeOver: a machine that restored the old master's counters
// and number takes over: numbers continue above, and the first hello
// back counts the silent intervals as missed (outage), once; a planned
// takeover (a switchover) counts none.
func TestCycleTakeOver(t *testing.T) {
	old := newCycle(t, false)
	h := sentHello(t, old.Start("p1", t0))
	old.Back("p1", data, h, t0.Add(time.Millisecond))
	for _, planned := range []bool{false, true} {
		t.Run(fmt.Sprintf("planned=%v", planned), func(t *testing.T) {
			c := newCycle(t, false)
			c.Restore("p1", old.Counters("p1"))
			c.RestoreNextSeq(old.NextSeq() + 64)
			c.SetEpoch(2)
			c.TakeOver(planned)
			took := t0.Add(time.Second)
			h := sentHello(t, c.Start("p1", took))
			if h.GetSeq() != old.NextSeq()+64 || h.GetEpoch() != 2 {
				t.Fatalf("first hello of the new master: %v", h)
			}
			got := summary(c.Back("p1", data, h, took.Add(11*time.Millisecond)))
			want, missed := "outage; returned", uint64(9) // 10 intervals since the last one back
			if planned {
				want, missed = "returned", 0
			}
			if got != want || c.Counters("p1").GetMissed() != missed || c.Counters("p1").GetReceived() != 2 {
				t.Fatalf("first back: %s; %s; want %s, %d missed", got, counters(c, "p1"), want, missed)
			}
			h = sentHello(t, c.Tick(took.Add(iv)))
			if got := summary(c.Back("p1", ctrl, h, took.Add(iv+time.Millisecond))); got != "returned" {
				t.Fatalf("second back: %s", got)
			}
		})
	}
}

// TestCycleNumbersBounded: Observe goes past a reported number, never
// back; at the end of the range the cycle stops instead of sending a
// number a component could not report.
func TestCycleNumbersBounded(t *testing.T) {
	c := newCycle(t, false)
	c.Observe(41)
	c.Observe(7)
	if c.NextSeq() != 42 {
		t.Fatalf("next %d after Observe(41), Observe(7); want 42", c.NextSeq())
	}
	c.Observe(1<<64 - 1)
	if c.NextSeq() != SeqLimit {
		t.Fatalf("Observe(max) left next at %d; want SeqLimit", c.NextSeq())
	}
	if got := summary(c.Start("p1", t0)); got != "started; stopped" || c.Running("p1") {
		t.Fatalf("start at the end of the numbers: %s", got)
	}
}

// TestCycleSpread: pairs started together drift apart toward their own
// phases, no gap moving by more than a tenth of the interval.
func TestCycleSpread(t *testing.T) {
	c := newCycle(t, true)
	for i := range 50 {
		c.Start(fmt.Sprintf("p%02d", i), t0)
	}
	last := map[string]time.Time{}
	instants := map[time.Time]bool{}
	for range 40 {
		now, ok := c.NextDeadline()
		if !ok {
			t.Fatal("no deadline")
		}
		for _, o := range c.Tick(now) {
			if s, ok := o.(Send); ok {
				if prev, seen := last[s.PairID]; seen {
					if gap := now.Sub(prev); gap < iv-iv/10 || gap > iv+iv/10 {
						t.Fatalf("%s: gap %v", s.PairID, gap)
					}
				}
				last[s.PairID] = now
				instants[now] = true
			}
		}
	}
	if len(instants) < 10 {
		t.Fatalf("hellos at %d instants; the pairs are still in lock-step", len(instants))
	}
}

// TestCycleForget: a forgotten pair's stale schedule sends nothing and
// its counters are gone.
func TestCycleForget(t *testing.T) {
	c := newCycle(t, false)
	c.Start("p1", t0)
	c.Forget("p1")
	if got := summary(c.Tick(t0.Add(iv))); got != "" {
		t.Fatalf("tick after Forget: %s", got)
	}
	if _, ok := c.NextDeadline(); ok {
		t.Fatal("a deadline after Forget")
	}
	if got := counters(c, "p1"); got != "sent 0 received 0 missed 0 out_of_order 0 last 0" {
		t.Fatal(got)
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without an interval")
	}
}

// counter is a Numbers that can be made to fail.
type counter struct {
	next uint64
	err  error
}

func (n *counter) Next() (uint64, error) {
	if n.err != nil {
		return 0, n.err
	}
	n.next++
	return n.next - 1, nil
}
func (n *counter) Peek() uint64 { return n.next }
func (n *counter) Observe(v uint64) {
	if v >= n.next {
		n.next = v + 1
	}
}

// TestCycleNumbers: with Config.Numbers the hellos carry its numbers,
// Observe and Restore raise it, and a source that fails stops the cycle
// with its reason instead of sending.
func TestCycleNumbers(t *testing.T) {
	src := &counter{next: 100}
	c, err := New(Config{Interval: iv, Epoch: 1, Numbers: src})
	if err != nil {
		t.Fatal(err)
	}
	if h := sentHello(t, c.Start("p1", t0)); h.GetSeq() != 100 || src.Peek() != 101 || c.NextSeq() != 101 {
		t.Fatalf("first hello %d, source at %d", h.GetSeq(), src.Peek())
	}
	c.Observe(500)
	c.RestoreNextSeq(700)
	c.Restore("p2", &hellopicsv1.HelloCounters{LastSeq: 650})
	if src.Peek() != 700 {
		t.Fatalf("source at %d after Observe(500), RestoreNextSeq(700), a restored last 650; want 700", src.Peek())
	}
	src.err = fmt.Errorf("not the master")
	outs := c.Tick(t0.Add(iv))
	if got := summary(outs); got != "missed; stopped" || c.Running("p1") {
		t.Fatalf("tick with a failing source: %s, running %v", got, c.Running("p1"))
	}
	if ev := outs[1].(Event); !strings.Contains(fmt.Sprint(ev.Attrs...), "not the master") {
		t.Fatalf("stop reason %v", ev.Attrs)
	}
}
