package relay_test

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/hellopics/hellopics/data/agentsim"
	"github.com/hellopics/hellopics/data/relay"
	"github.com/hellopics/hellopics/pkg/meds"
)

// recordingConn keeps a copy of every datagram a gosnmp client sends.
type recordingConn struct {
	net.Conn
	mu   sync.Mutex
	sent [][]byte
}

func (c *recordingConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.sent = append(c.sent, bytes.Clone(b))
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *recordingConn) last() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent[len(c.sent)-1]
}

// TestSNMPv3ReplayRefused: an authPriv inform captured on the wire and
// sent again after the reassembly's duplicate memory has forgotten its
// transfer is refused by the replay cache: not answered, not delivered,
// counted as Dropped.Replay.
func TestSNMPv3ReplayRefused(t *testing.T) {
	usm := meds.Security{
		Version: gosnmp.Version3, User: "meds", Level: gosnmp.AuthPriv,
		AuthProtocol: gosnmp.SHA256, AuthPassphrase: "auth-secret-1",
		PrivProtocol: gosnmp.AES, PrivPassphrase: "priv-secret-1",
	}
	e := start(t, func(r *relay.Config, _ *agentsim.Config) {
		r.NotifySecurity = usm
		r.NotifySecurity.EngineID = meds.NewEngineID("relay")
		r.ReassemblyTimeout = 100 * time.Millisecond
	})
	ev := e.dial(e.addrs.Events)
	waitFor(t, "events client", func() bool { return e.relay.Stats().Events.Clients == 1 })
	g := informer(t, e, usm, wait)
	rec := &recordingConn{Conn: g.Conn}
	g.Conn = rec
	f := meds.Fragment{Transfer: 1, Count: 1, Data: meds.AppendMessage(nil, meds.Message{Type: meds.TypeEvent, ID: 1, Text: []byte("once")})}
	if _, err := g.SendTrap(gosnmp.SnmpTrap{IsInform: true, Variables: meds.NotificationVarbinds(nil, 1, f)}); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, ev); m.ID != 1 {
		t.Fatalf("got event %d", m.ID)
	}
	captured := rec.last()
	// Past the reassembly's memory of the delivered transfer (100 ms
	// here, 5 s by default): what stood between a replay and a second
	// delivery until now. The outcome does not depend on this pause.
	time.Sleep(500 * time.Millisecond)
	replayer, err := net.Dial("udp", e.addrs.Notify.String())
	if err != nil {
		t.Fatal(err)
	}
	defer replayer.Close()
	for range 2 {
		if _, err := replayer.Write(captured); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "replays counted", func() bool { return e.relay.Stats().Dropped.Replay == 2 })
	_ = replayer.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := replayer.Read(make([]byte, 2048)); err == nil {
		t.Fatal("a replay was answered")
	}
	if s := e.relay.Stats(); s.EventsReceived != 1 || s.Reassembled != 1 {
		t.Fatalf("events %d reassembled %d after the replays, want 1 and 1", s.EventsReceived, s.Reassembled)
	}
}
