package relay_test

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hellopics/hellopics/data/agentsim"
	"github.com/hellopics/hellopics/data/relay"
	"github.com/hellopics/hellopics/pkg/meds"
)

// dialFrom connects to addr from the loopback address local (any
// 127.0.0.0/8 address is this host on Linux).
func dialFrom(t *testing.T, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: wait}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, local, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// closedByRelay waits until the relay closes c (EOF or reset) and fails
// if it is still open after the generous bound.
func closedByRelay(t *testing.T, c net.Conn, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("%s: connection not closed by the relay (%v)", what, err)
	}
}

func clients(s relay.Stats) int { return s.Commands.Clients + s.Events.Clients + s.Status.Clients }

// TestClientLimits fills the per-IP and the total client limits with
// silent clients: connections past them are closed at once and counted
// by reason, the silent ones stay, and a real client served after one
// leaves.
func TestClientLimits(t *testing.T) {
	e := start(t, func(r *relay.Config, _ *agentsim.Config) { r.MaxClients, r.MaxClientsPerIP = 6, 4 })
	cmds := e.addrs.Commands.String()
	var first net.Conn
	for i := range 4 {
		c := dialFrom(t, "127.0.0.1", cmds)
		if i == 0 {
			first = c
		}
	}
	waitFor(t, "4 clients", func() bool { return clients(e.relay.Stats()) == 4 })
	closedByRelay(t, dialFrom(t, "127.0.0.1", e.addrs.Events.String()), "5th from 127.0.0.1")
	if s := e.relay.Stats(); s.Events.RefusedPerIP != 1 || s.Events.Refused != 0 {
		t.Fatalf("per-IP refusal counted as %+v", s.Events)
	}
	dialFrom(t, "127.0.0.2", cmds)
	dialFrom(t, "127.0.0.2", e.addrs.Status.String())
	waitFor(t, "6 clients", func() bool { return clients(e.relay.Stats()) == 6 })
	for i := range 3 {
		closedByRelay(t, dialFrom(t, "127.0.0.3", cmds), "past the total")
		if got := e.relay.Stats().Commands.Refused; got != uint64(i+1) {
			t.Fatalf("total refusals counted %d, want %d", got, i+1)
		}
	}
	if n := clients(e.relay.Stats()); n != 6 {
		t.Fatalf("%d clients after the refusals, want the 6 admitted", n)
	}
	// One leaves: a real client gets its place and is served.
	_ = first.Close()
	waitFor(t, "a place freed", func() bool { return clients(e.relay.Stats()) == 5 })
	c := e.dial(e.addrs.Commands)
	if err := c.Command(7, []byte("after the flood")); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, c); m.Type != meds.TypeResponse || m.ID != 7 {
		t.Fatalf("got %s id %d, want the response to 7", m.Type, m.ID)
	}
}

// TestStalledClientIsClosed: a commands client that sends half a header
// and stalls is closed after StallTimeout and counted; a silent commands
// client and an events listener connected all along stay and work.
func TestStalledClientIsClosed(t *testing.T) {
	e := start(t, func(r *relay.Config, a *agentsim.Config) {
		r.StallTimeout = time.Second
		a.EventInterval, a.EventSize = 20*time.Millisecond, 10
	})
	silent := e.dial(e.addrs.Commands)
	ev := e.dial(e.addrs.Events)
	stall := dialFrom(t, "127.0.0.1", e.addrs.Commands.String())
	if _, err := stall.Write([]byte{1, 1, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	closedByRelay(t, stall, "stalled client")
	waitFor(t, "stalled counted", func() bool { return e.relay.Stats().Commands.Stalled == 1 })
	// A message sent in pieces that take longer than StallTimeout in
	// all, each within it, is fine: the timeout is per silence, not
	// per message.
	slow := dialFrom(t, "127.0.0.1", e.addrs.Commands.String())
	frame := meds.AppendMessage(nil, meds.Message{Type: meds.TypeCommand, ID: 3, Text: []byte("abcdef")})
	for i := 0; i < len(frame); i += 6 {
		if _, err := slow.Write(frame[i:min(i+6, len(frame))]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(400 * time.Millisecond) // 1.2 s in all, 600 ms under StallTimeout each
	}
	rd := meds.NewReader(slow, 0)
	_ = slow.SetReadDeadline(time.Now().Add(wait))
	if m, err := rd.Next(); err != nil || m.ID != 3 {
		t.Fatalf("slow but steady client: %v %v", m, err)
	}
	if err := silent.Command(1, []byte("silent until now")); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, silent); m.Type != meds.TypeResponse || m.ID != 1 {
		t.Fatalf("silent client got %s id %d", m.Type, m.ID)
	}
	if m := recv(t, ev); m.Type != meds.TypeEvent {
		t.Fatalf("listener got %s", m.Type)
	}
	s := e.relay.Stats()
	if s.Commands.Stalled != 1 || s.Commands.Idle != 0 || s.Events.Idle != 0 {
		t.Fatalf("stalled %d idle %d/%d, want 1 0 0", s.Commands.Stalled, s.Commands.Idle, s.Events.Idle)
	}
}

// TestIdleTimeout: with IdleTimeout set, a silent commands client is
// closed and counted; an events listener is not.
func TestIdleTimeout(t *testing.T) {
	e := start(t, func(r *relay.Config, _ *agentsim.Config) { r.IdleTimeout = 150 * time.Millisecond })
	ev := dialFrom(t, "127.0.0.1", e.addrs.Events.String())
	idle := dialFrom(t, "127.0.0.1", e.addrs.Commands.String())
	closedByRelay(t, idle, "idle client")
	waitFor(t, "idle counted", func() bool { return e.relay.Stats().Commands.Idle == 1 })
	// The listener, connected before, is still there.
	_ = ev.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := ev.Read(make([]byte, 1)); err == io.EOF {
		t.Fatal("events listener closed by the idle timeout")
	}
	if n := e.relay.Stats().Events.Clients; n != 1 {
		t.Fatalf("%d events clients, want 1", n)
	}
}
