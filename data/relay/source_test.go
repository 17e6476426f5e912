package relay_test

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/hellopics/hellopics/data/agentsim"
	"github.com/hellopics/hellopics/data/relay"
	"github.com/hellopics/hellopics/pkg/meds"
)

// informFrom sends one SNMPv2c inform carrying msg from a UDP socket
// bound to local and returns that socket, to read an answer on.
func informFrom(t *testing.T, local string, to net.Addr, community string, transfer uint32, msg []byte) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(local), 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	pkt := meds.AppendV2cFragment(nil, gosnmp.InformRequest, community, transfer, 1, meds.Fragment{Transfer: transfer, Count: 1, Data: msg})
	if _, err := c.WriteTo(pkt, to); err != nil {
		t.Fatal(err)
	}
	return c
}

// answered reports whether c gets an answer within d.
func answered(c *net.UDPConn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 2048))
	return err == nil
}

// TestNotificationSourceChecked: an inform with the right community
// from an address that is not the agent's (a stranger forging an event
// and a response) is dropped unanswered and counted, never delivered;
// the same from the agent's address is; AgentAllow admits another
// address.
func TestNotificationSourceChecked(t *testing.T) {
	for _, allow := range []bool{false, true} {
		e := start(t, func(r *relay.Config, _ *agentsim.Config) {
			if allow {
				r.AgentAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
			}
		})
		ev, cmd := e.dial(e.addrs.Events), e.dial(e.addrs.Commands)
		waitFor(t, "clients", func() bool { return e.relay.Stats().Events.Clients == 1 && e.relay.Stats().Commands.Clients == 1 })
		forged := meds.AppendMessage(nil, meds.Message{Type: meds.TypeEvent, ID: 666, Text: []byte("forged")})
		resp := meds.AppendMessage(nil, meds.Message{Type: meds.TypeResponse, ID: 1, Text: []byte("forged response")})
		s1 := informFrom(t, "127.0.0.2", e.addrs.Notify, "public", 900, forged)
		s2 := informFrom(t, "127.0.0.2", e.addrs.Notify, "public", 901, resp)
		if !allow {
			waitFor(t, "strangers counted", func() bool { return e.relay.Stats().Dropped.Source == 2 })
			if answered(s1, 100*time.Millisecond) || answered(s2, 10*time.Millisecond) {
				t.Fatal("a stranger's inform was answered")
			}
		} else if !answered(s1, wait) || !answered(s2, wait) {
			t.Fatal("an inform from an AgentAllow address was not answered")
		}
		// The agent's own: delivered, and it comes after whatever the
		// stranger's would have been.
		informFrom(t, "127.0.0.1", e.addrs.Notify, "public", 902, meds.AppendMessage(nil, meds.Message{Type: meds.TypeEvent, ID: 7, Text: []byte("real")}))
		m := recv(t, ev)
		if !allow && (m.ID != 7 || string(m.Text) != "real") {
			t.Fatalf("events client got id %d %q, want the agent's event 7", m.ID, m.Text)
		}
		if allow && m.ID != 666 {
			t.Fatalf("allowed source: events client got id %d, want 666", m.ID)
		}
		if allow {
			waitFor(t, "both events", func() bool { return e.relay.Stats().EventsReceived == 2 })
		}
		s := e.relay.Stats()
		// From an allowed source the response is taken in, but it answers
		// no command this relay sent: dropped, not given to any client.
		if allow {
			waitFor(t, "the response to no command", func() bool { return e.relay.Stats().Dropped.UnknownID == 1 })
			s = e.relay.Stats()
		}
		if allow && (s.Dropped.Source != 0 || s.EventsReceived != 2 || s.ResponsesRerouted != 0 || s.Responses != 0) {
			t.Fatalf("allowed: %+v events %d rerouted %d responses %d", s.Dropped, s.EventsReceived, s.ResponsesRerouted, s.Responses)
		}
		if !allow && (s.EventsReceived != 1 || s.ResponsesRerouted != 0 || s.Notifications != 3) {
			t.Fatalf("strangers: events %d rerouted %d notifications %d", s.EventsReceived, s.ResponsesRerouted, s.Notifications)
		}
		// Either way the commands client's first message is the answer to
		// its own command.
		if err := cmd.Command(5, []byte("real")); err != nil {
			t.Fatal(err)
		}
		if m := recv(t, cmd); m.Type != meds.TypeResponse || m.ID != 5 || string(m.Text) != "real" {
			t.Fatalf("commands client got %s id %d %q, want the answer to its command 5", m.Type, m.ID, m.Text)
		}
	}
}
