package e2e

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hellopics/hellopics/pkg/election"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// haAttack connects to an HA port from the local address src (an IP on
// loopback: 127.0.0.1 is where the real peers are configured, any other
// 127/8 address is "another host"), writes frames and reports whether
// the server closed the connection within waitTimeout. It never answers
// anything.
func haAttack(t *testing.T, src, addr string, frames ...[]byte) (closed bool) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	defer conn.Close()
	for _, f := range frames {
		if _, err := conn.Write(f); err != nil {
			return true
		}
	}
	if err := conn.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	// Read (and drop) whatever comes, heartbeats included, until the
	// server closes or the deadline passes.
	buf := make([]byte, 4096)
	for {
		if _, err := conn.Read(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return false
			}
			return errors.Is(err, io.EOF) || strings.Contains(err.Error(), "reset")
		}
	}
}

// haPB is an HA frame of type ty carrying m.
func haPB(t *testing.T, ty hellopicsv1.HAMsgType, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return frame(uint16(ty), b)
}

// haPinger connects to addr and sends a pconn ping every 50 ms, and
// nothing else, until the server closes the connection (true) or
// waitTimeout passes (false).
func haPinger(t *testing.T, addr string) bool {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		buf := make([]byte, 512)
		for {
			if _, err := conn.Read(buf); err != nil {
				return
			}
		}
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(waitTimeout)
	for {
		select {
		case <-closed:
			return true
		case <-deadline:
			return false
		case <-tick.C:
			_, _ = conn.Write(frame(0xFF01, nil)) // pconn's ping
		}
	}
}

// refusedHA matches mgmt's rate-limited WARN for a refused HA
// connection or message with the given reason.
func refusedHA(reason string) match {
	return and(contains("refused"), field("reason", reason))
}

// TestHAForgedHeartbeats sends, while a pair's cycle runs under master
// a (backup b), what an attacker on the network would: a heartbeat in
// b's name with epoch 2^64-1, one with an epoch far above the cluster's,
// one from another host's address, a Handover in a's name to the
// backup, and a connection that sends nothing. Each is refused, counted
// (a WARN with its reason), costs only its connection; a stays master
// at its epoch, the epoch files are not touched, the cycle runs on with
// no hello missed, and both instances stop cleanly on SIGTERM.
func TestHAForgedHeartbeats(t *testing.T) {
	skipShort(t)
	t.Parallel()
	tm := fast
	tm.hello = 200 * time.Millisecond // the test asserts no hello is missed: room for a stalled process
	h := newHACluster(t, tm, haSpec{id: "a", priority: 200, flags: steady}, haSpec{id: "b", priority: 100, flags: steady})
	metA, metB := freePort(t), freePort(t)
	// A short identify timeout, for the connection that sends nothing.
	a := h.StartMgmt("a", "-metrics", metA, "-identify-timeout", "1s")
	b := h.StartMgmt("b", "-metrics", metB, "-identify-timeout", "1s")
	h.StartPair(haPair)
	if m, sts := h.WaitMaster(); m.id != "a" {
		t.Fatalf("master is %s; want a: %s", m.id, summarize(sts))
	}
	h.WaitCycle("a", 0, haPair, 3)
	h.WaitSynced("a", "b", haPair)
	before := h.MustStatus("a")
	epoch := before.GetEpoch()
	bc := pairOf(before, haPair).GetCounters()
	epochA, epochB := readEpoch(t, h.M("a")), readEpoch(t, h.M("b"))
	aMark, bMark := a.Mark(), b.Mark()
	forged := h.M("b").listen // the component address a stranger would announce

	hb := func(id string, ep uint64, master string) []byte {
		return haPB(t, hellopicsv1.HAMsgType_HA_MSG_TYPE_HEARTBEAT, &hellopicsv1.Heartbeat{
			Id: id, Priority: 255, Epoch: ep, MasterId: master, ComponentAddr: forged})
	}
	// Where each refusal is counted: the election's refusals by reason,
	// or the HA listener's for connections from an address that is no
	// peer's (closed before anything is read).
	haRefused := func(reason string) (string, string) {
		return "hellopics_mgmt_ha_refused_total", `reason="` + reason + `"`
	}
	filtered := func() (string, string) {
		return "hellopics_listener_refused_total", `listener="ha",reason="filter"`
	}
	type counter func() (string, string)
	attacks := []struct {
		name, src, to string
		frames        [][]byte
		metrics       string
		counted       counter
	}{
		{"epoch 2^64-1 in b's name", "127.0.0.1", h.M("a").ha, [][]byte{hb("b", 1<<64-1, "b")}, metA, func() (string, string) { return haRefused("epoch_range") }},
		{"epoch 2^63 in b's name", "127.0.0.1", h.M("a").ha, [][]byte{hb("b", 1<<63, "b")}, metA, func() (string, string) { return haRefused("epoch_range") }},
		{"epoch beyond the window", "127.0.0.1", h.M("a").ha, [][]byte{hb("b", epoch+election.DefaultMaxEpochJump+1, "b")}, metA, func() (string, string) { return haRefused("epoch_jump") }},
		{"a stranger's name", "127.0.0.1", h.M("a").ha, [][]byte{hb("mallory", epoch+1, "mallory")}, metA, func() (string, string) { return haRefused("unknown_peer") }},
		{"b's name from another host", "127.0.0.2", h.M("a").ha, [][]byte{hb("b", epoch+1, "b")}, metA, filtered},
		{"handover in a's name from another host", "127.0.0.3", h.M("b").ha, [][]byte{
			hb("a", epoch, "a"),
			haPB(t, hellopicsv1.HAMsgType_HA_MSG_TYPE_HANDOVER, &hellopicsv1.Handover{Epoch: epoch + 1, FromId: "a"}),
		}, metB, filtered},
	}
	for _, at := range attacks {
		name, labels := at.counted()
		before := max(0, scrape(t, at.metrics, name, labels))
		if !haAttack(t, at.src, at.to, at.frames...) {
			t.Errorf("%s: the connection was not closed within %v", at.name, waitTimeout)
		}
		if n := scrape(t, at.metrics, name, labels); n != before+1 {
			t.Errorf("%s: %s{%s} went from %v to %v; want one more", at.name, name, labels, before, n)
		}
	}

	// A connection that never identifies but keeps the link alive with
	// pings (a silent one is dropped sooner, by the dead-peer timer) is
	// closed after the identify timeout, and counted.
	idle := max(0, scrape(t, metA, "hellopics_listener_refused_total", `listener="ha",reason="identify_timeout"`))
	start := time.Now()
	if !haPinger(t, h.M("a").ha) {
		t.Errorf("an unidentified connection to the HA port was not closed within %v", waitTimeout)
	} else if el := time.Since(start); el < 900*time.Millisecond {
		t.Errorf("the unidentified connection was closed after %v, before the identify timeout", el)
	}
	if n := scrape(t, metA, "hellopics_listener_refused_total", `listener="ha",reason="identify_timeout"`); n != idle+1 {
		t.Errorf("HA identify timeouts went from %v to %v; want one more", idle, n)
	}

	// Counted every time, logged once per reason and interval.
	if n := a.Count(aMark, refusedHA("epoch_range")); n != 1 {
		t.Errorf("a logged %d refusals for epoch_range; want 1 (rate-limited)", n)
	}

	// The harm did not happen.
	after := h.MustStatus("a")
	if after.GetRole() != roleMaster || after.GetEpoch() != epoch {
		t.Fatalf("after the attacks a is %v at epoch %d; want master at %d\n%s", after.GetRole(), after.GetEpoch(), epoch, h.Tails())
	}
	if st := h.MustStatus("b"); st.GetRole() != roleBackup || st.GetMasterId() != "a" || st.GetEpoch() != epoch {
		t.Fatalf("after the attacks b is %v following %q at %d", st.GetRole(), st.GetMasterId(), st.GetEpoch())
	}
	if ea, eb := readEpoch(t, h.M("a")), readEpoch(t, h.M("b")); ea != epochA || eb != epochB {
		t.Errorf("epoch files went from %d/%d to %d/%d", epochA, epochB, ea, eb)
	}
	for p, mark := range map[*proc]int{a: aMark, b: bMark} {
		for _, s := range []string{"stepped_down", "became_master", "master_changed"} {
			if n := p.Count(mark, step(s, "")); n > 0 {
				t.Errorf("%s logged %s %d times during the attacks", p.name, s, n)
			}
		}
	}
	a.WaitForN(a.Mark(), step("hello_returned", haPair), 3)
	if n := a.Count(aMark, step("cycle_stopped", haPair)); n > 0 {
		t.Errorf("the cycle stopped %d times during the attacks", n)
	}
	ac := pairOf(h.MustStatus("a"), haPair).GetCounters()
	if ac.GetMissed() != bc.GetMissed() || ac.GetOutOfOrder() != bc.GetOutOfOrder() || ac.GetReceived() <= bc.GetReceived() {
		t.Errorf("counters went from %v to %v; want received growing, nothing missed", bc, ac)
	}
	a.Stop()
	b.Stop()
}

// TestEpochFileForged starts mgmt on an epoch file holding 2^64-1:
// it refuses to start, says why, and leaves the file as it was, instead
// of becoming master at epoch 0 and writing the file backwards.
func TestEpochFileForged(t *testing.T) {
	skipShort(t)
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "epoch")
	const forged = "18446744073709551615\n"
	if err := os.WriteFile(path, []byte(forged), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "mgmt", "mgmt", "-listen", "127.0.0.1:0", "-operator", "", "-state-dir", dir, "-log-json")
	select {
	case <-p.done:
	case <-time.After(waitTimeout):
		t.Fatalf("mgmt runs on a forged epoch file\n%s", p.Tail(20))
	}
	if err := p.ExitErr(); err == nil {
		t.Fatalf("mgmt started on a forged epoch file\n%s", p.Tail(20))
	}
	if !strings.Contains(p.Tail(20), "beyond the maximum") {
		t.Errorf("the error does not say why:\n%s", p.Tail(20))
	}
	if b, _ := os.ReadFile(path); string(b) != forged {
		t.Errorf("epoch file rewritten to %q", b)
	}
}

// waitScrape polls the sample of scrape until it reaches at least want,
// and returns it; it fails the test with context() after waitTimeout.
func waitScrape(t *testing.T, addr, name, labels string, want float64, context func() string) float64 {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		v := scrape(t, addr, name, labels)
		if v >= want {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s{%s} is %v after %v; want at least %v\n%s", name, labels, v, waitTimeout, want, context())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scrape fetches a Prometheus text exposition from http://addr/metrics
// and returns the value of the sample whose name and labels (as printed,
// e.g. `reason="source"`) are given, or -1 if there is none.
func scrape(t *testing.T, addr, name, labels string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	want := name
	if labels != "" {
		want += "{" + labels + "}"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, want+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("sample %q: %v", l, err)
			}
			return f
		}
	}
	return -1
}
