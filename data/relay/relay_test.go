package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"
	"github.com/hashicorp/go-hclog"

	"github.com/hellopics/hellopics/data/agentsim"
	"github.com/hellopics/hellopics/data/relay"
	"github.com/hellopics/hellopics/data/tpce"
	"github.com/hellopics/hellopics/pkg/meds"
)

// wait is the generous bound of every event wait in these tests.
const wait = 20 * time.Second

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func testLogger(t testing.TB, level hclog.Level) hclog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return hclog.New(&hclog.LoggerOptions{Name: "test", Level: level, Output: w})
}

type env struct {
	t     testing.TB
	log   hclog.Logger
	relay *relay.Relay
	agent *agentsim.Agent
	acfg  agentsim.Config
	rcfg  relay.Config // as the relay was started, AgentAddr set
	addrs relay.Addrs
}

// start runs a relay and an agent simulator wired to each other on
// loopback, with all three ports open.
func start(t testing.TB, mod func(*relay.Config, *agentsim.Config)) *env {
	t.Helper()
	log := testLogger(t, hclog.Warn)
	acfg := agentsim.DefaultConfig()
	acfg.Addr = "127.0.0.1:0"
	acfg.NotifyAddr = ""
	rcfg := relay.DefaultConfig()
	// The agent simulator's communities (the relay has none by default).
	rcfg.CommandSecurity.Community, rcfg.NotifySecurity.Community = "private", "public"
	rcfg.CommandsAddr, rcfg.EventsAddr, rcfg.StatusAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	rcfg.NotifyAddr = "127.0.0.1:0"
	rcfg.StatsInterval = 0
	if mod != nil {
		mod(&rcfg, &acfg)
	}
	e := &env{t: t, log: log, acfg: acfg}
	a, err := agentsim.New(acfg, log)
	if err != nil {
		t.Fatal(err)
	}
	rcfg.AgentAddr = a.Addr().String()
	e.acfg.Addr = a.Addr().String()
	e.rcfg = rcfg
	r, err := relay.New(rcfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	e.relay, e.addrs = r, r.Addrs()
	e.acfg.NotifyAddr = e.addrs.Notify.String()
	a.SetNotifyAddr(e.acfg.NotifyAddr)
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.agent = a
	t.Cleanup(func() { _ = e.agent.Close() })
	return e
}

func (e *env) dial(a net.Addr) *tpce.Conn {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := tpce.Dial(ctx, a.String(), 0)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitFor polls cond until it holds or the generous bound passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// recv reads one message with the generous deadline and copies it.
func recv(t testing.TB, c *tpce.Conn) meds.Message {
	t.Helper()
	type res struct {
		m   meds.Message
		err error
	}
	ch := make(chan res, 1)
	go func() {
		m, err := c.Recv()
		m.Text = bytes.Clone(m.Text)
		ch <- res{m, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("receive: %v", r.err)
		}
		return r.m
	case <-time.After(wait):
		_ = c.Close()
		t.Fatal("timed out waiting for a message")
	}
	return meds.Message{}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i%251)
	}
	return b
}

func TestCommandRoundTripsWhileEventsFlow(t *testing.T) {
	for _, maxMsg := range []int{meds.DefaultMaxMsgSize, meds.MinMaxMsgSize} {
		t.Run(fmt.Sprint(maxMsg), func(t *testing.T) {
			e := start(t, func(r *relay.Config, a *agentsim.Config) {
				r.MaxMsgSize, a.MaxMsgSize = maxMsg, maxMsg
				a.EventInterval, a.EventSize = 2*time.Millisecond, 100
				a.StatusInterval, a.StatusSize = 3*time.Millisecond, 2000
			})
			ev, st := e.dial(e.addrs.Events), e.dial(e.addrs.Status)
			c1, c2 := e.dial(e.addrs.Commands), e.dial(e.addrs.Commands)
			for _, size := range []int{0, 64, 60 << 10} {
				// Both clients use the same id: each gets its own answer.
				t1, t2 := pattern(size, 1), pattern(size, 2)
				if err := c1.Command(42, t1); err != nil {
					t.Fatal(err)
				}
				if err := c2.Command(42, t2); err != nil {
					t.Fatal(err)
				}
				for _, x := range []struct {
					c    *tpce.Conn
					text []byte
				}{{c1, t1}, {c2, t2}} {
					m := recv(t, x.c)
					if m.Type != meds.TypeResponse || m.ID != 42 || !bytes.Equal(m.Text, x.text) {
						t.Fatalf("size %d: got %s id %d with %d octets, want the echo of command 42", size, m.Type, m.ID, len(m.Text))
					}
				}
			}
			// Events and status blocks flowed meanwhile, in order.
			for _, x := range []struct {
				c *tpce.Conn
				t meds.Type
			}{{ev, meds.TypeEvent}, {st, meds.TypeStatus}} {
				var last uint32
				for range 5 {
					m := recv(t, x.c)
					if m.Type != x.t || m.ID <= last || !bytes.HasPrefix(m.Text, []byte(x.t.String()+" ")) {
						t.Fatalf("got %s id %d after %d, want %s in sequence", m.Type, m.ID, last, x.t)
					}
					last = m.ID
				}
			}
			s := e.relay.Stats()
			if s.Responses != 6 || s.RelayErrors != 0 || s.Commands.Clients != 2 {
				t.Fatalf("stats: %+v", s)
			}
			if maxMsg == meds.MinMaxMsgSize && s.FragmentsSent < 2*(60<<10)/484 {
				t.Fatalf("only %d fragments sent at max message size 484", s.FragmentsSent)
			}
		})
	}
}

func TestManyClientsComingAndGoing(t *testing.T) {
	e := start(t, func(_ *relay.Config, a *agentsim.Config) {
		a.EventInterval, a.EventSize = time.Millisecond, 200
	})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 5 {
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				res, err := tpce.RunLoad(ctx, tpce.LoadConfig{Addr: e.addrs.Commands.String(), Clients: 1, Window: 4, Size: 64 * (i + 1), Count: 20, Check: true})
				cancel()
				if err != nil || res.Commands != 20 {
					errs <- fmt.Errorf("client %d round %d: %d answered, %v", i, round, res.Commands, err)
					return
				}
			}
		}()
	}
	// Events clients come and go meanwhile; each sees events in order.
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 4 {
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				c, err := tpce.Dial(ctx, e.addrs.Events.String(), 0)
				cancel()
				if err != nil {
					errs <- err
					return
				}
				var last uint32
				for range 10 {
					m, err := c.Recv()
					if err != nil || m.Type != meds.TypeEvent || m.ID <= last {
						errs <- fmt.Errorf("events client %d round %d: %s id %d after %d: %v", i, round, m.Type, m.ID, last, err)
						break
					}
					last = m.ID
				}
				_ = c.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitFor(t, "every client gone", func() bool {
		s := e.relay.Stats()
		return s.Commands.Clients == 0 && s.Events.Clients == 0
	})
	if s := e.relay.Stats(); s.Commands.Accepted != 40 || s.Events.Accepted != 12 || s.Responses != 800 || s.PendingCommands != 0 {
		t.Fatalf("stats: accepted %d/%d responses %d pending %d", s.Commands.Accepted, s.Events.Accepted, s.Responses, s.PendingCommands)
	}
}

func TestResponseToAGoneClientGoesToTheOthers(t *testing.T) {
	release := make(chan struct{})
	called := make(chan uint32, 1)
	e := start(t, func(_ *relay.Config, a *agentsim.Config) {
		a.Respond = func(cmd meds.Message) []byte {
			called <- cmd.ID
			<-release
			return []byte("late")
		}
	})
	a, b := e.dial(e.addrs.Commands), e.dial(e.addrs.Commands)
	waitFor(t, "two clients", func() bool { return e.relay.Stats().Commands.Clients == 2 })
	if err := a.Command(7, []byte("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-called:
	case <-time.After(wait):
		t.Fatal("the agent never got the command")
	}
	_ = a.Close()
	waitFor(t, "the sender gone", func() bool { return e.relay.Stats().Commands.Clients == 1 })
	close(release)
	m := recv(t, b)
	if m.Type != meds.TypeResponse || m.ID != 7 || string(m.Text) != "late" {
		t.Fatalf("got %s id %d %q", m.Type, m.ID, m.Text)
	}
	if s := e.relay.Stats(); s.ResponsesRerouted != 1 {
		t.Fatalf("rerouted %d", s.ResponsesRerouted)
	}
}

func TestBacklogWithoutClient(t *testing.T) {
	e := start(t, func(r *relay.Config, a *agentsim.Config) {
		r.Backlog = 4
		a.EventInterval, a.EventSize = time.Millisecond, 10
	})
	waitFor(t, "backlog overflow", func() bool { return e.relay.Stats().Events.BacklogDropped >= 3 })
	c := e.dial(e.addrs.Events)
	var last uint32
	for i := range 6 {
		m := recv(t, c)
		if m.Type != meds.TypeEvent || m.ID <= last {
			t.Fatalf("event %d: id %d after %d", i, m.ID, last)
		}
		if i == 0 && m.ID < 4 {
			t.Fatalf("first event delivered is %d: the oldest should have been dropped", m.ID)
		}
		last = m.ID
	}
}

func TestAgentRestart(t *testing.T) {
	e := start(t, func(r *relay.Config, _ *agentsim.Config) {
		r.SNMPTimeout, r.SNMPRetries = 100*time.Millisecond, 1
		r.PollInterval = 50 * time.Millisecond
	})
	c := e.dial(e.addrs.Commands)
	roundTrip := func(id uint32) meds.Message {
		if err := c.Command(id, []byte("ping")); err != nil {
			t.Fatal(err)
		}
		return recv(t, c)
	}
	if m := roundTrip(1); m.Type != meds.TypeResponse {
		t.Fatalf("before restart: %s %q", m.Type, m.Text)
	}
	waitFor(t, "agent reachable", func() bool { return e.relay.Stats().AgentReachable })
	_ = e.agent.Close()
	m := roundTrip(2)
	if m.Type != meds.TypeRelayError || m.ID != 2 || !strings.Contains(string(m.Text), "did not take the command") {
		t.Fatalf("agent down: got %s id %d %q, want a relay error", m.Type, m.ID, m.Text)
	}
	t.Logf("relay error: %s", m.Text)
	waitFor(t, "agent unreachable", func() bool { return !e.relay.Stats().AgentReachable })
	a, err := agentsim.New(e.acfg, e.log)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.agent = a
	if m := roundTrip(3); m.Type != meds.TypeResponse || m.ID != 3 || string(m.Text) != "ping" {
		t.Fatalf("after restart: %s id %d %q", m.Type, m.ID, m.Text)
	}
	waitFor(t, "agent reachable again", func() bool { return e.relay.Stats().AgentReachable })
}

// TestRestartedRelayIgnoresOldAnswers: a relay restarted (a data process
// killed and started again) on the same notification address must not
// take the agent's late answer to the old process's command for an answer
// to its own: relay ids start at a random value per relay, so the old
// one's are unknown to the new one. With ids from 1 in every process
// (before the fix) the new client's command 1 got the old command's text,
// then its own answer a second time: what `make lab-chaos` found.
func TestRestartedRelayIgnoresOldAnswers(t *testing.T) {
	release := make(chan struct{})
	held := make(chan struct{}, 1)
	var once sync.Once
	e := start(t, func(_ *relay.Config, a *agentsim.Config) {
		a.Respond = func(cmd meds.Message) []byte {
			if string(cmd.Text) == "old" {
				once.Do(func() { held <- struct{}{}; <-release })
				return []byte("late answer to the old relay")
			}
			return append([]byte(nil), cmd.Text...)
		}
	})
	old := e.dial(e.addrs.Commands)
	if err := old.Command(1, []byte("old")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-time.After(wait):
		t.Fatal("the agent never got the old relay's command")
	}
	_ = old.Close()
	if err := e.relay.Close(); err != nil {
		t.Fatal(err)
	}
	// The new process: the same notification address, so the agent's
	// late answer reaches it.
	cfg := e.rcfg
	cfg.NotifyAddr = e.addrs.Notify.String()
	r2, err := relay.New(cfg, e.log)
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r2.Close() })
	c := e.dial(r2.Addrs().Commands)
	if err := c.Command(1, []byte("new")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new relay's command sent", func() bool { s := r2.Stats(); return s.Commands.MessagesIn == 1 && s.PendingCommands == 1 })
	close(release)
	// The agent answers in order: the old command, the new one, then
	// "after"; whatever reaches this client under id 1 before "after"
	// must be the new command's one answer.
	if err := c.Command(2, []byte("after")); err != nil {
		t.Fatal(err)
	}
	var ones []string
	for {
		m := recv(t, c)
		if m.ID == 2 {
			if m.Type != meds.TypeResponse || string(m.Text) != "after" {
				t.Fatalf("command 2: %s %q", m.Type, m.Text)
			}
			break
		}
		if m.ID == 1 {
			ones = append(ones, fmt.Sprintf("%s %q", m.Type, m.Text))
		} else if string(m.Text) != "late answer to the old relay" {
			t.Fatalf("unexpected %s id %d %q", m.Type, m.ID, m.Text)
		}
	}
	if len(ones) != 1 || ones[0] != `response "new"` {
		t.Fatalf("command 1 of the new relay answered with %v; want one response \"new\"", ones)
	}
	// The old relay's answer is no answer to anything here: dropped.
	if s := r2.Stats(); s.Dropped.UnknownID != 1 || s.ResponsesRerouted != 0 {
		t.Fatalf("unknown id drops %d, rerouted %d; want 1, 0", s.Dropped.UnknownID, s.ResponsesRerouted)
	}
}

// TestAgentPortClosedFailsFast: with the agent's port closed (ICMP
// port unreachable on loopback), a command gets its relay error after
// the quick refused tries, well before the time-outs (4 s by default)
// would end it.
func TestAgentPortClosedFailsFast(t *testing.T) {
	e := start(t, nil) // default SNMPTimeout 1 s, SNMPRetries 3
	c := e.dial(e.addrs.Commands)
	_ = e.agent.Close()
	t0 := time.Now()
	if err := c.Command(7, []byte("anyone?")); err != nil {
		t.Fatal(err)
	}
	m := recv(t, c)
	took := time.Since(t0)
	if m.Type != meds.TypeRelayError || m.ID != 7 || !strings.Contains(string(m.Text), "connection refused") {
		t.Fatalf("got %s id %d %q, want a relay error saying the port refused", m.Type, m.ID, m.Text)
	}
	if took >= 3*time.Second {
		t.Fatalf("relay error after %v: the refusals were not noticed", took)
	}
	t.Logf("relay error after %v: %s", took.Round(time.Millisecond), m.Text)
}

func TestTPCEViolationsCloseOnlyThatConnection(t *testing.T) {
	e := start(t, func(r *relay.Config, _ *agentsim.Config) { r.MaxText = 1000 })
	good := e.dial(e.addrs.Commands)
	cases := []struct {
		name  string
		frame []byte
		want  meds.Type // what the bad client reads before the close, 0 for nothing
	}{
		{"garbage", []byte("GET / HTTP/1.1\r\n\r\n"), 0},
		{"event on commands port", meds.AppendMessage(nil, meds.Message{Type: meds.TypeEvent, ID: 1}), 0},
		{"oversized", meds.AppendMessage(nil, meds.Message{Type: meds.TypeCommand, ID: 9, Text: make([]byte, 1001)}), meds.TypeRelayError},
	}
	for i, tc := range cases {
		bad := e.dial(e.addrs.Commands)
		raw, err := net.Dial("tcp", e.addrs.Commands.String())
		if err != nil {
			t.Fatal(err)
		}
		_ = bad.Close()
		rd := meds.NewReader(raw, 0)
		if _, err := raw.Write(tc.frame); err != nil {
			t.Fatal(err)
		}
		_ = raw.SetReadDeadline(time.Now().Add(wait))
		m, err := rd.Next()
		if tc.want != 0 {
			if err != nil || m.Type != tc.want || m.ID != 9 {
				t.Fatalf("%s: got %v %v, want a relay error for id 9", tc.name, m, err)
			}
			t.Logf("%s: relay error %q", tc.name, m.Text)
			m, err = rd.Next()
		}
		if err == nil {
			t.Fatalf("%s: connection still open, read %s", tc.name, m.Type)
		}
		_ = raw.Close()
		if got := e.relay.Stats().Commands.Violations; got != uint64(i+1) {
			t.Fatalf("%s: %d violations counted", tc.name, got)
		}
		if err := good.Command(uint32(i), []byte("still here")); err != nil {
			t.Fatal(err)
		}
		if m := recv(t, good); m.Type != meds.TypeResponse || m.ID != uint32(i) {
			t.Fatalf("%s: good client got %s id %d", tc.name, m.Type, m.ID)
		}
	}
	// Bytes written on the events port are read, counted and discarded.
	ev, err := net.Dial("tcp", e.addrs.Events.String())
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	if _, err := ev.Write(make([]byte, 1234)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "discarded octets counted", func() bool { return e.relay.Stats().Events.DiscardedBytes == 1234 })
}

func TestSlowClientIsClosedAlone(t *testing.T) {
	e := start(t, func(r *relay.Config, a *agentsim.Config) {
		r.ClientQueue = 8
		// Large datagrams make one inform per event: the test is quick.
		r.MaxMsgSize, a.MaxMsgSize = 60000, 60000
		a.EventInterval, a.EventSize = 100*time.Microsecond, 50000
	})
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	slow, err := d.Dial("tcp", e.addrs.Events.String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast := e.dial(e.addrs.Events)
	done := make(chan struct{})
	var got int
	go func() {
		defer close(done)
		for {
			if _, err := fast.Recv(); err != nil {
				return
			}
			got++
		}
	}()
	waitFor(t, "the slow client closed", func() bool { return e.relay.Stats().Events.SlowClosed == 1 })
	if s := e.relay.Stats(); s.Events.Clients != 1 {
		t.Fatalf("%d events clients left, want the fast one", s.Events.Clients)
	}
	_ = fast.Close()
	<-done
	if got == 0 {
		t.Fatal("the fast client got nothing")
	}
}

// informer sends raw MEDS fragments to the relay as gosnmp informs.
func informer(t testing.TB, e *env, sec meds.Security, timeout time.Duration) *gosnmp.GoSNMP {
	t.Helper()
	g, err := sec.Client(e.addrs.Notify.String(), timeout, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Conn.Close() })
	return g
}

func TestBadSNMPInputIsDroppedAndCounted(t *testing.T) {
	e := start(t, func(r *relay.Config, _ *agentsim.Config) { r.ReassemblyTimeout = 100 * time.Millisecond })
	ev := e.dial(e.addrs.Events)
	waitFor(t, "events client", func() bool { return e.relay.Stats().Events.Clients == 1 })
	udp, err := net.Dial("udp", e.addrs.Notify.String())
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	if _, err := udp.Write([]byte("\x30\x05garbage")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "undecodable packet counted", func() bool { return e.relay.Stats().Dropped.Decode == 1 })

	send := func(g *gosnmp.GoSNMP, f meds.Fragment) (*gosnmp.SnmpPacket, error) {
		return g.SendTrap(gosnmp.SnmpTrap{IsInform: true, Variables: meds.NotificationVarbinds(nil, 1, f)})
	}
	event := meds.AppendMessage(nil, meds.Message{Type: meds.TypeEvent, ID: 77, Text: []byte("from a test")})
	wrong := informer(t, e, meds.Security{Version: gosnmp.Version2c, Community: "guess"}, 300*time.Millisecond)
	if _, err := send(wrong, meds.Fragment{Transfer: 1, Count: 1, Data: event}); err == nil {
		t.Fatal("an inform with a wrong community was answered")
	}
	if d := e.relay.Stats().Dropped.Community; d < 1 {
		t.Fatalf("wrong community counted %d times", d)
	}
	g := informer(t, e, meds.Security{Version: gosnmp.Version2c, Community: "public"}, wait)
	res, err := send(g, meds.Fragment{Transfer: 2, Index: 3, Count: 2, Data: event})
	if err != nil || res.Error != gosnmp.WrongValue {
		t.Fatalf("impossible fragment index: %v %v, want a wrongValue answer", res, err)
	}
	if _, err := send(g, meds.Fragment{Transfer: 3, Index: 0, Count: 2, Data: event[:5]}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "incomplete transfer expired", func() bool { return e.relay.Stats().Dropped.Expired == 1 })
	// The same fragment twice is delivered once; both informs answered.
	for range 2 {
		if res, err := send(g, meds.Fragment{Transfer: 4, Count: 1, Data: event}); err != nil || res.Error != gosnmp.NoError {
			t.Fatalf("good inform: %v %v", res, err)
		}
	}
	if m := recv(t, ev); m.Type != meds.TypeEvent || m.ID != 77 || string(m.Text) != "from a test" {
		t.Fatalf("got %s id %d %q", m.Type, m.ID, m.Text)
	}
	s := e.relay.Stats()
	if s.Duplicates != 1 || s.Dropped.Fragment != 1 || s.EventsReceived < 1 {
		t.Fatalf("stats: duplicates %d bad fragments %d events %d", s.Duplicates, s.Dropped.Fragment, s.EventsReceived)
	}
	// A command (wrong type from an agent) is dropped.
	cmd := meds.AppendMessage(nil, meds.Message{Type: meds.TypeCommand, ID: 1})
	if _, err := send(g, meds.Fragment{Transfer: 5, Count: 1, Data: cmd}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "wrong type counted", func() bool { return e.relay.Stats().Dropped.WrongType == 1 })
}

func TestSNMPv3(t *testing.T) {
	usm := func(engine string) meds.Security {
		return meds.Security{
			Version: gosnmp.Version3, User: "meds", Level: gosnmp.AuthPriv,
			AuthProtocol: gosnmp.SHA256, AuthPassphrase: "auth-secret-1",
			PrivProtocol: gosnmp.AES, PrivPassphrase: "priv-secret-1",
			EngineID: engine,
		}
	}
	e := start(t, func(r *relay.Config, a *agentsim.Config) {
		r.CommandSecurity, r.NotifySecurity = usm(""), usm(meds.NewEngineID("relay"))
		a.Security, a.NotifySecurity = usm(meds.NewEngineID("agent")), usm("")
		r.MaxMsgSize, a.MaxMsgSize = meds.MinMaxMsgSize, meds.MinMaxMsgSize
		r.PollInterval = 50 * time.Millisecond
	})
	c := e.dial(e.addrs.Commands)
	for i, size := range []int{0, 64, 60 << 10} {
		text := pattern(size, byte(i))
		if err := c.Command(uint32(i), text); err != nil {
			t.Fatal(err)
		}
		if m := recv(t, c); m.Type != meds.TypeResponse || m.ID != uint32(i) || !bytes.Equal(m.Text, text) {
			t.Fatalf("size %d: got %s id %d %q", size, m.Type, m.ID, m.Text)
		}
	}
	waitFor(t, "agent reachable over SNMPv3", func() bool { return e.relay.Stats().AgentReachable })
	bad := usm("")
	bad.AuthPassphrase = "wrong-secret"
	g := informer(t, e, bad, 300*time.Millisecond)
	f := meds.Fragment{Transfer: 1, Count: 1, Data: meds.AppendMessage(nil, meds.Message{Type: meds.TypeEvent, ID: 1})}
	if _, err := g.SendTrap(gosnmp.SnmpTrap{IsInform: true, Variables: meds.NotificationVarbinds(nil, 1, f)}); err == nil {
		t.Fatal("an inform with a wrong key was answered")
	}
	if d := e.relay.Stats().Dropped.USM; d < 1 {
		t.Fatalf("USM failures counted %d times", d)
	}

	// A sender out of step with the relay's engine time (as after a
	// relay restart, or a replay) is refused, told the relay's time in
	// an authenticated Report, and gets its inform through on the
	// second try (gosnmp does that by itself).
	good := informer(t, e, usm(""), 2*time.Second)
	send := func(id uint32) error {
		f := meds.Fragment{Transfer: 100 + id, Count: 1, Data: meds.AppendMessage(nil, meds.Message{Type: meds.TypeEvent, ID: id})}
		_, err := good.SendTrap(gosnmp.SnmpTrap{IsInform: true, Variables: meds.NotificationVarbinds(nil, 1, f)})
		return err
	}
	if err := send(1); err != nil {
		t.Fatalf("inform in step: %v", err)
	}
	sp := good.SecurityParameters.(*gosnmp.UsmSecurityParameters)
	sp.AuthoritativeEngineTime += 1000 // out of the 150 s window
	if err := send(2); err != nil {
		t.Fatalf("inform out of step: %v", err)
	}
	if d := e.relay.Stats().Dropped.TimeWindow; d != 1 {
		t.Fatalf("time window refusals counted %d times, want 1", d)
	}
}

func TestCloseStopsEveryGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	e := start(t, func(_ *relay.Config, a *agentsim.Config) {
		a.EventInterval, a.EventSize = time.Millisecond, 100
	})
	cmd, ev := e.dial(e.addrs.Commands), e.dial(e.addrs.Events)
	if err := cmd.Command(1, []byte("x")); err != nil {
		t.Fatal(err)
	}
	recv(t, cmd)
	recv(t, ev)
	// Close the relay with clients still connected and work in flight.
	if err := e.relay.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Recv(); err == nil {
		t.Fatal("a client connection survived Close")
	}
	_ = e.agent.Close()
	_ = cmd.Close()
	_ = ev.Close()
	waitFor(t, "every goroutine gone", func() bool { return runtime.NumGoroutine() <= before })
}
