package agentsim_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/hellopics/hellopics/data/agentsim"
	"github.com/hellopics/hellopics/pkg/meds"
)

// relayStub is the relay's notification side on loopback: it answers
// every inform and hands over the reassembled messages.
type relayStub struct {
	conn *net.UDPConn
	msgs chan []byte
	done chan struct{}
}

func newRelayStub(t *testing.T) *relayStub {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &relayStub{conn: conn, msgs: make(chan []byte, 100), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		r := meds.NewReassembler(meds.ReassemblerConfig{})
		buf := make([]byte, 65536)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			p, err := meds.ParseV2c(buf[:n])
			if err != nil || p.PDU != gosnmp.InformRequest {
				continue
			}
			f, err := p.Fragment(true, 0, 0)
			if err != nil {
				continue
			}
			_, _ = conn.WriteToUDPAddrPort(meds.AppendV2cResponse(nil, p.Community, p.RequestID, 0, 0, p.VarBinds), from)
			if msg, res, _ := r.Add(time.Now(), meds.Key{Sender: from, Transfer: f.Transfer}, f); res == meds.Delivered {
				s.msgs <- bytes.Clone(msg)
			}
		}
	}()
	t.Cleanup(func() { _ = conn.Close(); <-s.done })
	return s
}

func (s *relayStub) next(t *testing.T) meds.Message {
	t.Helper()
	select {
	case b := <-s.msgs:
		m, err := meds.ParseMessage(b, meds.DefaultMaxText)
		if err != nil {
			t.Fatal(err)
		}
		return m
	case <-time.After(20 * time.Second):
		t.Fatal("timed out waiting for a notification")
	}
	return meds.Message{}
}

func startAgent(t *testing.T, mod func(*agentsim.Config)) (*agentsim.Agent, *relayStub) {
	t.Helper()
	stub := newRelayStub(t)
	cfg := agentsim.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.NotifyAddr = stub.conn.LocalAddr().String()
	cfg.SysName = "unit"
	if mod != nil {
		mod(&cfg)
	}
	a, err := agentsim.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a, stub
}

func client(t *testing.T, a *agentsim.Agent, community string, timeout time.Duration) *gosnmp.GoSNMP {
	t.Helper()
	g, err := meds.Security{Version: gosnmp.Version2c, Community: community}.Client(a.Addr().String(), timeout, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Conn.Close() })
	return g
}

func TestGetAndGetNext(t *testing.T) {
	a, _ := startAgent(t, nil)
	g := client(t, a, "public", 10*time.Second)
	res, err := g.Get([]string{meds.OIDSysDescr, meds.OIDSysObjectID, meds.OIDSysUpTime, meds.OIDSysName, "1.3.6.1.2.1.1.9.0"})
	if err != nil {
		t.Fatal(err)
	}
	wantTypes := []gosnmp.Asn1BER{gosnmp.OctetString, gosnmp.ObjectIdentifier, gosnmp.TimeTicks, gosnmp.OctetString, gosnmp.NoSuchObject}
	for i, v := range res.Variables {
		if v.Type != wantTypes[i] {
			t.Errorf("%s: type %s, want %s", v.Name, v.Type, wantTypes[i])
		}
	}
	if string(res.Variables[3].Value.([]byte)) != "unit" {
		t.Errorf("sysName.0 = %q", res.Variables[3].Value)
	}
	// A walk of the system group visits the four objects in order.
	var names []string
	if err := g.Walk("1.3.6.1.2.1.1", func(v gosnmp.SnmpPDU) error { names = append(names, v.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []string{"." + meds.OIDSysDescr, "." + meds.OIDSysObjectID, "." + meds.OIDSysUpTime, "." + meds.OIDSysName}
	if len(names) != 4 || names[0] != want[0] || names[3] != want[3] {
		t.Fatalf("walk = %v, want %v", names, want)
	}
	// The read community may not set: dropped, so no answer.
	g = client(t, a, "public", 200*time.Millisecond)
	if _, err := g.Set(meds.FragmentVarbinds(nil, meds.Fragment{Transfer: 1, Count: 1})); err == nil {
		t.Fatal("a SetRequest with the read community was answered")
	}
}

func TestCommandsAreEchoed(t *testing.T) {
	a, stub := startAgent(t, func(c *agentsim.Config) { c.MaxMsgSize = meds.MinMaxMsgSize })
	g := client(t, a, "private", 10*time.Second)
	for i, size := range []int{0, 64, 5000} {
		text := bytes.Repeat([]byte{byte('a' + i)}, size)
		cmd := meds.AppendMessage(nil, meds.Message{Type: meds.TypeCommand, ID: uint32(100 + i), Text: text})
		err := meds.Split(cmd, uint32(i), 300, func(f meds.Fragment) error {
			res, err := g.Set(meds.FragmentVarbinds(nil, f))
			if err == nil && res.Error != gosnmp.NoError {
				err = errors.New(res.Error.String())
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if m := stub.next(t); m.Type != meds.TypeResponse || m.ID != uint32(100+i) || !bytes.Equal(m.Text, text) {
			t.Fatalf("got %s id %d len %d", m.Type, m.ID, len(m.Text))
		}
	}
	// A malformed fragment is answered with an error-status and index.
	res, err := g.Set(meds.FragmentVarbinds(nil, meds.Fragment{Transfer: 9, Index: 4, Count: 2}))
	if err != nil || res.Error != gosnmp.WrongValue || res.ErrorIndex != 2 {
		t.Fatalf("bad fragment: %v %v", res, err)
	}
	// The agent counts a response once the relay answered its last
	// inform, which may be just after the stub handed the message over.
	deadline := time.Now().Add(20 * time.Second)
	for s := a.Stats(); s.Commands != 3 || s.Responses != 3 || s.BadFragments != 1; s = a.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", s)
		}
		time.Sleep(time.Millisecond) // polling a counter, not waiting for an event
	}
}

func TestEventsAndStatus(t *testing.T) {
	_, stub := startAgent(t, func(c *agentsim.Config) {
		c.EventInterval, c.EventSize = time.Millisecond, 3000
		c.StatusInterval, c.StatusSize = time.Millisecond, 10
	})
	next := map[meds.Type]uint32{meds.TypeEvent: 1, meds.TypeStatus: 1}
	for next[meds.TypeEvent] < 4 || next[meds.TypeStatus] < 4 {
		m := stub.next(t)
		if m.ID != next[m.Type] {
			t.Fatalf("%s %d, want %d", m.Type, m.ID, next[m.Type])
		}
		next[m.Type]++
	}
}
