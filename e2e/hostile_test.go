package e2e

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"
	"golang.org/x/sys/unix"

	"github.com/hellopics/hellopics/pkg/meds"
)

// Hostile input against the relay as real processes (issue 10): each
// attack must do no harm, and be counted and logged (rate-limited).

// hostileTSI starts "hellopics tsi" with the lab's community and extra
// flags, the agent at agentAddr (which may not even run).
func (l *relayLab) hostileTSI(extra ...string) {
	l.t.Helper()
	args := []string{"tsi", "-log-json", "-listen", "127.0.0.1",
		"-commands", portOf(l.cmds), "-events", portOf(l.events), "-status", portOf(l.status),
		"-notify", l.notify, "-community-file", l.community, "-poll", "0"}
	args = append(append(args, extra...), portOf(l.agentAddr)+"@127.0.0.1")
	l.tsi = startProc(l.t, "tsi", args...)
	l.tsi.WaitFor(0, msg("relay started"))
}

func newRelayLab(t *testing.T) *relayLab {
	return &relayLab{t: t, mms: 1472, agentAddr: freeUDPPort(t), notify: freeUDPPort(t),
		cmds: freePort(t), events: freePort(t), status: freePort(t), community: communityFile(t)}
}

// stoppedStats stops tsi and returns its final counters line.
func (l *relayLab) stoppedStats() logLine {
	l.t.Helper()
	mark := l.tsi.Mark()
	l.tsi.Stop()
	ls := l.tsi.Find(mark, msg("relay stopped"))
	if len(ls) != 1 {
		l.t.Fatalf("tsi logged no counters at stop\n%s", l.tsi.Tail(20))
	}
	return ls[0]
}

func readCommunity(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// sendInform sends one SNMPv2c inform carrying m from a socket bound to
// local (a 127.0.0.0/8 address: this host, another source address).
func sendInform(t *testing.T, local, to, community string, transfer uint32, m meds.Message) {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(local), 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ua, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		t.Fatal(err)
	}
	pkt := meds.AppendV2cFragment(nil, gosnmp.InformRequest, community, transfer, 1,
		meds.Fragment{Transfer: transfer, Count: 1, Data: meds.AppendMessage(nil, m)})
	if _, err := c.WriteTo(pkt, ua); err != nil {
		t.Fatal(err)
	}
}

// TestRelayStrangerNotification: an inform with the right community
// from an address that is not the agent's is not delivered to the TPCE
// clients, and is counted and logged; the agent's own is delivered.
func TestRelayStrangerNotification(t *testing.T) {
	if binPath == "" {
		t.Skip("needs the hellopics binary (not built under -short)")
	}
	l := newRelayLab(t)
	l.hostileTSI()
	events := l.dial(l.events)
	comm := readCommunity(t, l.community)
	mark := l.tsi.Mark()
	for i := range 50 {
		sendInform(t, "127.0.0.2", l.notify, comm, uint32(100+i), meds.Message{Type: meds.TypeEvent, ID: 666, Text: []byte("forged")})
	}
	l.tsi.WaitFor(mark, and(msg("notification from an address that is not the agent's dropped"), field("allowed", "127.0.0.1")))
	// The agent's address (the agent is 127.0.0.1): delivered, and the
	// first thing the events client gets.
	sendInform(t, "127.0.0.1", l.notify, comm, 1, meds.Message{Type: meds.TypeEvent, ID: 7, Text: []byte("real")})
	_ = events.SetReadDeadline(time.Now().Add(waitTimeout))
	m, err := events.Recv()
	if err != nil || m.ID != 7 || string(m.Text) != "real" {
		t.Fatalf("events client got %v %q (%v), want the agent's event 7", m.ID, m.Text, err)
	}
	if n := l.tsi.Count(mark, msg("notification from an address that is not the agent's dropped")); n > 2 {
		t.Errorf("%d log lines for 50 strangers' informs in well under a second, want 1 (rate-limited)", n)
	}
	st := l.stoppedStats()
	if d := st.Str("dropped_source"); d != "50" {
		t.Fatalf("stranger informs not counted: dropped_source=%s", d)
	}
}

// TestRelayClientFlood: 60 silent connections from one address against
// -max-clients-per-ip 10 -max-clients 20: 50 are refused at once and
// counted, the log stays short, and a real client from another address
// does a command round trip while the flood stays connected.
func TestRelayClientFlood(t *testing.T) {
	if binPath == "" {
		t.Skip("needs the hellopics binary (not built under -short)")
	}
	l := newRelayLab(t)
	l.startAgentWith("-community-file", l.community)
	l.hostileTSI("-max-clients", "20", "-max-clients-per-ip", "10")
	mark := l.tsi.Mark()
	var refused int
	var flood []net.Conn
	for range 60 {
		c, err := net.DialTimeout("tcp", l.cmds, waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		flood = append(flood, c)
	}
	defer func() {
		for _, c := range flood {
			_ = c.Close()
		}
	}()
	for _, c := range flood {
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
			refused++ // closed by the relay
		}
	}
	if refused != 50 {
		t.Fatalf("%d of 60 connections from one address refused, want 50", refused)
	}
	// A real client from another address is served.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: waitTimeout}
	c, err := d.Dial("tcp", l.cmds)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(meds.AppendMessage(nil, meds.Message{Type: meds.TypeCommand, ID: 5, Text: []byte("past the flood")})); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	m, err := meds.NewReader(c, 0).Next()
	if err != nil || m.Type != meds.TypeResponse || m.ID != 5 || string(m.Text) != "past the flood" {
		t.Fatalf("real client: %v %v", m, err)
	}
	if n := l.tsi.Count(mark, msg("client refused")); n > 3 {
		t.Errorf("%d log lines for 50 refusals, want a few (rate-limited)", n)
	}
	st := l.stoppedStats()
	if st.Uint("clients_refused") != 50 {
		t.Fatalf("clients_refused=%s, want 50", st.Str("clients_refused"))
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func (l *relayLab) startAgentWith(extra ...string) {
	l.t.Helper()
	args := append([]string{"agent", "-log-json", "-listen", l.agentAddr, "-notify", l.notify,
		"-max-msg-size", strconv.Itoa(l.mms), "-inform-timeout", "300ms"}, extra...)
	l.agent = startProc(l.t, "agent", args...)
	l.agent.WaitFor(0, msg("agent simulator started"))
}

// cpuTime is the process's user+system CPU time, from /proc.
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// TestRelayAcceptEMFILE: tsi out of file descriptors (RLIMIT_NOFILE
// lowered under it) with clients knocking: accept fails with EMFILE
// and backs off instead of spinning: CPU stays low, the log small, the
// failures are counted; once descriptors are free again a client is
// served.
func TestRelayAcceptEMFILE(t *testing.T) {
	if binPath == "" {
		t.Skip("needs the hellopics binary (not built under -short)")
	}
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("needs /proc")
	}
	l := newRelayLab(t)
	l.startAgentWith("-community-file", l.community)
	l.hostileTSI()
	pid := l.tsi.Pid()
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	var old unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &old); err != nil {
		t.Skipf("prlimit: %v", err)
	}
	lim := unix.Rlimit{Cur: uint64(len(fds) + 2), Max: old.Max} // the soft limit only: it can be raised again
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &lim, nil); err != nil {
		t.Skipf("prlimit: %v", err)
	}
	mark := l.tsi.Mark()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range 10 { // the first one or two take the last descriptors
		c, err := net.DialTimeout("tcp", l.cmds, waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	l.tsi.WaitFor(mark, msg("accept failed; backing off"))
	cpu0, log0 := cpuTime(t, pid), len(l.tsi.Lines(mark))
	const window = 3 * time.Second
	time.Sleep(window) // the measurement window: a spinning loop would burn it all
	cpu := cpuTime(t, pid) - cpu0
	lines := l.tsi.Lines(mark)[log0:]
	var octets int
	var msgs []string
	for _, ln := range lines {
		octets += len(ln.Raw) + 1
		msgs = append(msgs, ln.Msg())
	}
	t.Logf("lines: %q", msgs)
	t.Logf("out of descriptors for %v: CPU %v, %d log lines (%d octets)", window, cpu, len(lines), octets)
	if cpu > window/4 {
		t.Errorf("tsi used %v of CPU in %v out of descriptors: spinning", cpu, window)
	}
	if len(lines) > 10 || octets > 4096 {
		t.Errorf("%d log lines, %d octets in %v out of descriptors, want a few (one a second)", len(lines), octets, window)
	}
	// Descriptors back: the waiting connections are accepted and served.
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &old, nil); err != nil {
		t.Fatal(err)
	}
	c := conns[len(conns)-1]
	if _, err := c.Write(meds.AppendMessage(nil, meds.Message{Type: meds.TypeCommand, ID: 9, Text: []byte("after EMFILE")})); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	if m, err := meds.NewReader(c, 0).Next(); err != nil || m.ID != 9 || m.Type != meds.TypeResponse {
		t.Fatalf("after the limit was lifted: %v %v", m, err)
	}
	st := l.stoppedStats()
	if st.Uint("accept_errors") == 0 {
		t.Fatal("accept errors not counted")
	}
	t.Logf("accept_errors=%s", st.Str("accept_errors"))
}

// captureProxy forwards UDP datagrams from the agent to the relay's
// notification address and the answers back, keeping a copy of every
// datagram toward the relay.
type captureProxy struct {
	ln, up *net.UDPConn
	mu     sync.Mutex
	agent  netip.AddrPort
	got    [][]byte
	done   chan struct{}
}

func newCaptureProxy(t *testing.T, to string) *captureProxy {
	t.Helper()
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ua, _ := net.ResolveUDPAddr("udp", to)
	up, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, ua)
	if err != nil {
		t.Fatal(err)
	}
	p := &captureProxy{ln: ln, up: up, done: make(chan struct{})}
	go func() { // agent -> relay
		defer close(p.done)
		buf := make([]byte, 65536)
		for {
			n, from, err := ln.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			p.mu.Lock()
			p.agent = from
			p.got = append(p.got, bytes.Clone(buf[:n]))
			p.mu.Unlock()
			_, _ = up.Write(buf[:n])
		}
	}()
	go func() { // relay -> agent
		buf := make([]byte, 65536)
		for {
			n, err := up.Read(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				continue // ECONNREFUSED while the relay starts
			}
			p.mu.Lock()
			to := p.agent
			p.mu.Unlock()
			_, _ = ln.WriteToUDPAddrPort(buf[:n], to)
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); _ = up.Close(); <-p.done })
	return p
}

func (p *captureProxy) captured() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]byte(nil), p.got...)
}

// TestRelaySNMPv3Replay: the agent sends SNMPv3 authPriv informs
// (events) to tsi through a proxy that records them; every recorded
// datagram is sent again once reassembly has forgotten the transfers.
// No event reaches the events client twice, and the replays are counted.
func TestRelaySNMPv3Replay(t *testing.T) {
	if binPath == "" {
		t.Skip("needs the hellopics binary (not built under -short)")
	}
	l := newRelayLab(t)
	dir := t.TempDir()
	authFile, privFile := filepath.Join(dir, "auth"), filepath.Join(dir, "priv")
	for f, v := range map[string]string{authFile: "e2e-auth-pass-1\n", privFile: "e2e-priv-pass-1\n"} {
		if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	v3 := []string{"-snmp-version", "3", "-v3-user", "medsops", "-v3-auth-pass-file", authFile, "-v3-priv-pass-file", privFile}
	proxy := newCaptureProxy(t, l.notify)
	l.hostileTSI(append(v3, "-reassembly-timeout", "200ms")...)
	l.notify = proxy.ln.LocalAddr().String() // the agent sends through the proxy
	l.startAgentWith(append(v3, "-event-interval", "50ms", "-event-size", "100")...)
	events := watch(t, l.dial(l.events), meds.TypeEvent)
	events.waitCount(t, "events over SNMPv3", 5)
	pkts := proxy.captured()
	l.agent.Kill() // nothing new from now on
	n0 := events.count()
	time.Sleep(time.Second) // past the 200 ms reassembly memory: only the replay cache stands in the way
	mark := l.tsi.Mark()
	for _, p := range pkts {
		if _, err := proxy.up.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	l.tsi.WaitFor(mark, and(msg("notification dropped"), match{"reason: replayed", func(ln logLine) bool {
		return strings.Contains(ln.Str("reason"), "replayed message")
	}}))
	st := l.stoppedStats()
	if events.count() != n0 {
		t.Fatalf("%d events before the replay, %d after: replays delivered", n0, events.count())
	}
	d := st.Uint("dropped_replay")
	if d == 0 {
		t.Fatalf("replays not counted: dropped=%s\n%s", st.Str("dropped"), st.Raw)
	}
	t.Logf("%d datagrams replayed; %d dropped as replays", len(pkts), d)
}
