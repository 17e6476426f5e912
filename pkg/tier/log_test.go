package tier

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hellopics/hellopics/pkg/handshake"
	"github.com/hellopics/hellopics/pkg/pconn"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// countLevels counts the lines of buf per level tag ("[WARN]", ...).
func countLevels(buf *bytes.Buffer) map[string]int {
	n := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		for _, lvl := range []string{"[DEBUG]", "[INFO]", "[WARN]", "[ERROR]"} {
			if strings.Contains(l, lvl) {
				n[lvl]++
			}
		}
	}
	return n
}

// TestEventLogFloods: a hello dropped on every cycle (a cut link) is
// logged at WARN once, the repeats within FloodInterval at DEBUG; each
// pair and kind has its own limit; other events are not limited; and a
// Repeated line of the shell's own is limited the same way per key.
func TestEventLogFloods(t *testing.T) {
	var buf bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Debug, DisableTime: true})
	el := NewEventLog(log, "ctrl", 0)
	dropped := func(pair string, seq uint64) handshake.Event {
		return handshake.Event{Kind: handshake.EventDropped, Peer: hellopicsv1.Role_ROLE_MGMT, PairID: pair, Seq: seq, Epoch: 2,
			Message: "hello dropped: the next hop is not connected", Attrs: []any{"to", "data"}}
	}
	for i := uint64(1); i <= 50; i++ {
		el.Log(dropped("pic0", i))
	}
	if got := countLevels(&buf); got["[WARN]"] != 1 || got["[DEBUG]"] != 49 {
		t.Fatalf("50 drops: %v lines; want 1 WARN and 49 DEBUG:\n%s", got, buf.String())
	}
	if first := strings.SplitN(buf.String(), "\n", 2)[0]; !strings.Contains(first, "[WARN]") || !strings.Contains(first, "seq=1") ||
		!strings.Contains(first, "step=dropped") || !strings.Contains(first, "component=ctrl") {
		t.Errorf("first line %q; want the WARN of hello 1", first)
	}
	// Another pair has its own limit.
	buf.Reset()
	el.Log(dropped("pic1", 1))
	el.Log(dropped("pic1", 2))
	if got := countLevels(&buf); got["[WARN]"] != 1 || got["[DEBUG]"] != 1 {
		t.Errorf("another pair: %v; want its first at WARN", got)
	}
	// Other WARN events are not limited.
	buf.Reset()
	for i := 0; i < 3; i++ {
		el.Log(handshake.Event{Kind: handshake.EventDown, Peer: hellopicsv1.Role_ROLE_DATA, PairID: "pic0", Message: "data lost"})
	}
	if got := countLevels(&buf); got["[WARN]"]+got["[INFO]"]+got["[ERROR]"] != 3 {
		t.Errorf("3 down events: %v; want 3 lines, not limited", got)
	}
	// Repeated: the first per key at its level, the rest at DEBUG.
	buf.Reset()
	for i := 0; i < 5; i++ {
		el.Repeated("switch_mgmt:127.0.0.1:1@2", hclog.Info, "following the master mgmt", "epoch", 2)
	}
	el.Repeated("switch_mgmt:127.0.0.1:2@3", hclog.Info, "following the master mgmt", "epoch", 3)
	if got := countLevels(&buf); got["[INFO]"] != 2 || got["[DEBUG]"] != 4 {
		t.Errorf("Repeated: %v; want 2 INFO (one per key) and 4 DEBUG:\n%s", got, buf.String())
	}
}

// TestSendFailedLevel: a send on a session that is closing (its peer
// lost, as the killed master's during a failover) is logged at DEBUG,
// since the loss has its own line; a send that fails on a running
// session (here a frame over the size limit) at WARN.
func TestSendFailedLevel(t *testing.T) {
	srv, err := pconn.Listen("127.0.0.1:0", pconn.DefaultConfig(pconn.HandlerFunc(func(*pconn.Session, pconn.Message) error { return nil })))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg := pconn.DefaultConfig(pconn.HandlerFunc(func(*pconn.Session, pconn.Message) error { return nil }))
	cfg.MaxFrameSize = 64
	s, err := pconn.Connect(context.Background(), cfg, srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var buf bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Debug, DisableTime: true})
	reg := NewRegistry()
	id := reg.Add(s)
	big := &hellopicsv1.Hello{PairId: strings.Repeat("x", 200)}
	reg.Send(log, handshake.Send{Session: id, Type: hellopicsv1.MsgType_MSG_TYPE_HELLO, Msg: big})
	if got := buf.String(); !strings.Contains(got, "[WARN]") || !strings.Contains(got, "send failed") {
		t.Errorf("a frame too large on a running session: %q; want a WARN send failed", got)
	}
	buf.Reset()
	s.Close()
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("session did not end")
	}
	if !s.Closing() {
		t.Fatal("an ended session is not Closing")
	}
	reg.Send(log, handshake.Send{Session: id, Type: hellopicsv1.MsgType_MSG_TYPE_HELLO, Msg: &hellopicsv1.Hello{PairId: "pic0"}})
	if got := buf.String(); !strings.Contains(got, "[DEBUG]") || !strings.Contains(got, "send failed") || !strings.Contains(got, "session_closing=true") {
		t.Errorf("a send on a closed session: %q; want a DEBUG send failed", got)
	}
}
