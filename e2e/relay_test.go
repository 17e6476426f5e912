package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hellopics/hellopics/data/tpce"
	"github.com/hellopics/hellopics/pkg/meds"
)

// TestRelayProcesses runs the MEDS relay as "hellopics tsi" and the
// agent simulator as "hellopics agent", each its own process, with TPCE
// clients on real sockets: command round trips of 0 B, 64 B and 60 KiB
// from several clients at once while events and status blocks flow,
// clients coming and going, the agent killed (commands get relay
// errors) and restarted (commands get responses again), and the
// "hellopics tpce" client tool. Once at the default maximum SNMP
// message size, once at 484 octets, the RFC 3417 minimum.
func TestRelayProcesses(t *testing.T) {
	if binPath == "" {
		t.Skip("needs the hellopics binary (not built under -short)")
	}
	for _, mms := range []int{1472, 484} {
		t.Run(fmt.Sprintf("max-msg-size=%d", mms), func(t *testing.T) { relayProcesses(t, mms) })
	}
}

// relayLab is the relay's processes and addresses.
type relayLab struct {
	t                    *testing.T
	mms                  int
	agentAddr, notify    string // UDP
	cmds, events, status string // TCP
	agent, tsi           *proc
	community            string // a file holding the SNMPv2c community (there is no default)
}

// communityFile writes a fresh community to a 0600 file for agent and
// relay to share.
func communityFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "community")
	if err := os.WriteFile(path, []byte("e2e-"+strconv.FormatInt(time.Now().UnixNano(), 36)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// freeUDPPort returns a loopback address whose port is free for TCP
// (freePort) and UDP both.
func freeUDPPort(t *testing.T) string {
	t.Helper()
	for range 100 {
		addr := freePort(t)
		if c, err := net.ListenPacket("udp", addr); err == nil {
			_ = c.Close()
			return addr
		}
	}
	t.Fatal("no free loopback UDP port")
	return ""
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func (l *relayLab) startAgent() {
	l.t.Helper()
	l.agent = startProc(l.t, "agent", "agent", "-log-json", "-listen", l.agentAddr, "-notify", l.notify,
		"-community-file", l.community,
		"-max-msg-size", strconv.Itoa(l.mms), "-inform-timeout", "300ms",
		"-event-interval", "20ms", "-event-size", "700", "-status-interval", "50ms", "-status-size", "2000")
	l.agent.WaitFor(0, msg("agent simulator started"))
}

func (l *relayLab) dial(addr string) *tpce.Conn {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := tpce.Dial(ctx, addr, 0)
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip sends a command and waits for its answer, of the type want.
func roundTrip(c *tpce.Conn, id uint32, text []byte, want meds.Type) (meds.Message, error) {
	if err := c.Command(id, text); err != nil {
		return meds.Message{}, err
	}
	if err := c.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
		return meds.Message{}, err
	}
	m, err := c.Recv()
	if err != nil {
		return m, fmt.Errorf("command %d: %w", id, err)
	}
	m.Text = bytes.Clone(m.Text)
	if m.Type != want || m.ID != id {
		return m, fmt.Errorf("command %d: got %s id %d %q, want a %s", id, m.Type, m.ID, clip(m.Text), want)
	}
	if want == meds.TypeResponse && !bytes.Equal(m.Text, text) {
		return m, fmt.Errorf("command %d: response of %d octets is not the echo of the %d sent", id, len(m.Text), len(text))
	}
	return m, nil
}

func clip(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

// watcher reads a events or status port in the background and counts
// what arrives, checking that the ids of one agent run increase.
type watcher struct {
	mu       sync.Mutex
	n        int
	restarts int // times the ids started again from 1
	last     uint32
	err      error
	more     chan struct{} // closed and replaced on each message
}

func watch(t *testing.T, c *tpce.Conn, kind meds.Type) *watcher {
	w := &watcher{more: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := c.Recv()
			w.mu.Lock()
			if err != nil {
				w.mu.Unlock()
				return // closed by the cleanup
			}
			switch {
			case m.Type != kind:
				w.err = fmt.Errorf("%s id %d on the %s port", m.Type, m.ID, kind)
			case m.ID == 1 && w.n > 0:
				w.restarts++
			case m.ID <= w.last:
				w.err = fmt.Errorf("%s id %d after id %d", kind, m.ID, w.last)
			}
			w.n++
			w.last = m.ID
			close(w.more)
			w.more = make(chan struct{})
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { _ = c.Close(); <-done })
	return w
}

// waitCount waits until at least n messages arrived.
func (w *watcher) waitCount(t *testing.T, what string, n int) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		w.mu.Lock()
		got, more, err := w.n, w.more, w.err
		w.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
		select {
		case <-more:
		case <-deadline:
			t.Fatalf("%s: %d arrived, want %d", what, got, n)
		}
	}
}

func (w *watcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

func relayProcesses(t *testing.T, mms int) {
	l := &relayLab{t: t, mms: mms, agentAddr: freeUDPPort(t), notify: freeUDPPort(t),
		cmds: freePort(t), events: freePort(t), status: freePort(t), community: communityFile(t)}
	l.startAgent()
	// tsi's own command line: ports as numbers, the agent as port@host.
	l.tsi = startProc(t, "tsi", "tsi", "-log-json", "-listen", "127.0.0.1",
		"-commands", portOf(l.cmds), "-events", portOf(l.events), "-status", portOf(l.status),
		"-notify", l.notify, "-community-file", l.community, "-max-msg-size", strconv.Itoa(mms), "-snmp-timeout", "300ms", "-snmp-retries", "1",
		portOf(l.agentAddr)+"@127.0.0.1")
	l.tsi.WaitFor(0, msg("relay started"))

	events := watch(t, l.dial(l.events), meds.TypeEvent)
	status := watch(t, l.dial(l.status), meds.TypeStatus)

	// Three clients, each with round trips of 0 B, 64 B and 60 KiB
	// (many fragments each way), at the same time as the events and
	// status blocks.
	sizes := []int{0, 64, 60 << 10}
	clients := []*tpce.Conn{l.dial(l.cmds), l.dial(l.cmds), l.dial(l.cmds)}
	ev0, st0 := events.count(), status.count()
	var wg sync.WaitGroup
	errs := make(chan error, len(clients))
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j, size := range sizes {
				for k := range 2 {
					id := uint32(100*i + 10*j + k + 1)
					text := bytes.Repeat([]byte{byte('a' + i)}, size)
					if _, err := roundTrip(c, id, text, meds.TypeResponse); err != nil {
						errs <- fmt.Errorf("client %d: %w", i, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	events.waitCount(t, "events while the commands ran", ev0+5)
	status.waitCount(t, "status blocks while the commands ran", st0+3)

	// Clients come and go: one leaves, a new one arrives; both the new
	// one and an old one are served.
	_ = clients[1].Close()
	late := l.dial(l.cmds)
	for i, c := range []*tpce.Conn{late, clients[0]} {
		if _, err := roundTrip(c, uint32(900+i), []byte("after a client left"), meds.TypeResponse); err != nil {
			t.Fatal(err)
		}
	}

	// The agent dies: a command gets a relay error, and the relay keeps
	// serving its clients.
	l.agent.Kill()
	m, err := roundTrip(clients[0], 1000, []byte("agent down"), meds.TypeRelayError)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(m.Text), "did not take the command") {
		t.Fatalf("relay error %q does not say why", m.Text)
	}
	// It comes back on the same address: commands are answered, and
	// events flow again (numbered from 1 by the new agent).
	ev1 := events.count()
	l.startAgent()
	if _, err := roundTrip(clients[2], 1001, bytes.Repeat([]byte("z"), 5000), meds.TypeResponse); err != nil {
		t.Fatal(err)
	}
	events.waitCount(t, "events after the agent restarted", ev1+3)

	// The client tool, a process of its own.
	out, err := exec.Command(binPath, "tpce", "-commands", l.cmds, "-timeout", "20s", "show version", "").CombinedOutput()
	if err != nil {
		t.Fatalf("hellopics tpce: %v\n%s", err, out)
	}
	for _, want := range []string{`response id=1 len=12: "show version"`, `response id=2 len=0: ""`} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("hellopics tpce printed no %q:\n%s", want, out)
		}
	}

	// The relay stops cleanly, its counters logged.
	mark := l.tsi.Mark()
	l.tsi.Stop()
	if l.tsi.Count(mark, msg("relay stopped")) == 0 {
		t.Errorf("tsi logged no \"relay stopped\" with its counters:\n%s", l.tsi.Tail(10))
	}
	t.Logf("events %d (agent restarted %d time(s) under them), status blocks %d", events.count(), events.restarts, status.count())
}
