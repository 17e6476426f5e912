package meds

import (
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"
)

// TestDecoderTimeWindow: an authenticated SNMPv3 message is taken only
// with this engine's boots and a time within 150 s of its own (RFC
// 3414 section 3.2 step 7); the Report that answers the others is
// authenticated and carries the engine's boots and time.
func TestDecoderTimeWindow(t *testing.T) {
	d, err := NewDecoder(secV3)
	if err != nil {
		t.Fatal(err)
	}
	d.SetEngineClock(7, time.Now().Add(-1000*time.Second))
	boots, secs := d.EngineClock(time.Now())
	if boots != 7 || secs < 1000 || secs > 1100 {
		t.Fatalf("EngineClock = %d, %d; want 7 and about 1000", boots, secs)
	}
	f := Fragment{Transfer: 1, Count: 1}
	for _, tc := range []struct {
		name       string
		boots, sec uint32
		ok         bool
	}{
		{"in step", 7, secs, true},
		{"100 s behind", 7, secs - 100, true},
		{"100 s ahead", 7, secs + 100, true},
		{"200 s behind (a replay)", 7, secs - 200, false},
		{"200 s ahead", 7, secs + 200, false},
		{"an earlier boot", 6, secs, false},
		{"a later boot", 8, secs, false},
	} {
		p, disc, err := d.Decode(encodeAt(t, secV3, gosnmp.InformRequest, f, tc.boots, tc.sec))
		switch {
		case disc:
			t.Errorf("%s: taken for discovery", tc.name)
		case tc.ok && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case !tc.ok && (!errors.Is(err, ErrNotInTimeWindow) || !errors.Is(err, ErrUSM) || p == nil):
			t.Errorf("%s: %v (packet %v), want ErrNotInTimeWindow with the packet", tc.name, err, p != nil)
		}
	}
	// Without authentication there is no time window.
	noAuth := Security{Version: gosnmp.Version3, User: "plain", Level: gosnmp.NoAuthNoPriv, EngineID: secV3.EngineID}
	dn, err := NewDecoder(noAuth)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := dn.Decode(encodeAt(t, noAuth, gosnmp.InformRequest, f, 1, 1)); err != nil {
		t.Errorf("noAuthNoPriv message: %v", err)
	}

	// The Report: authenticated with the user's key, with the engine's
	// clock and the counter.
	p, _, err := d.Decode(encodeAt(t, secV3, gosnmp.InformRequest, f, 3, 3))
	if !errors.Is(err, ErrNotInTimeWindow) {
		t.Fatal(err)
	}
	rep, err := d.TimeWindowReport(p, 5)
	if err != nil {
		t.Fatal(err)
	}
	check := func(sec Security) (*gosnmp.SnmpPacket, error) {
		sp := sec.usm(secV3.EngineID)
		sp.Logger = gosnmp.NewLogger(nil)
		if err := sp.InitSecurityKeys(); err != nil {
			t.Fatal(err)
		}
		x := &gosnmp.GoSNMP{Version: gosnmp.Version3, SecurityModel: gosnmp.UserSecurityModel, MsgFlags: gosnmp.AuthNoPriv,
			SecurityParameters: sp, Logger: gosnmp.NewLogger(nil)}
		return x.UnmarshalTrap(rep, false)
	}
	got, err := check(secV3)
	if err != nil {
		t.Fatalf("the report does not decode with the user's keys: %v", err)
	}
	usm := got.SecurityParameters.(*gosnmp.UsmSecurityParameters)
	if got.PDUType != gosnmp.Report || got.MsgFlags&gosnmp.AuthPriv != gosnmp.AuthNoPriv || usm.AuthoritativeEngineBoots != 7 ||
		usm.AuthoritativeEngineTime < secs || len(got.Variables) != 1 || got.Variables[0].Name != "."+OIDNotInTimeWindows ||
		gosnmp.ToBigInt(got.Variables[0].Value).Uint64() != 5 {
		t.Fatalf("report: %s flags %s boots %d time %d vars %+v", got.PDUType, got.MsgFlags, usm.AuthoritativeEngineBoots, usm.AuthoritativeEngineTime, got.Variables)
	}
	other := secV3
	other.AuthPassphrase = "someone-else"
	if _, err := check(other); err == nil {
		t.Fatal("the report decodes with another key: it is not authenticated")
	}
}

// TestTimeWindowRecovery: a gosnmp sender that was in step with the
// engine, which then restarts (a new boots), gets the time window
// Report for its next inform, catches up and sends it again, which is
// taken: real packets over UDP.
func TestTimeWindowRecovery(t *testing.T) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDecoder(secV3)
	if err != nil {
		t.Fatal(err)
	}
	var restart, refused, taken atomic.Int32
	done := make(chan struct{})
	go func() { // the authoritative engine: the relay's part
		defer close(done)
		buf := make([]byte, 65536)
		var unknown, late uint32
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if restart.CompareAndSwap(1, 2) {
				boots, _ := d.EngineClock(time.Now())
				d.SetEngineClock(boots+1, time.Now())
			}
			p, disc, err := d.Decode(buf[:n])
			var out []byte
			switch {
			case errors.Is(err, ErrNotInTimeWindow):
				refused.Add(1)
				late++
				out, err = d.TimeWindowReport(p, late)
			case err != nil:
				t.Errorf("decode: %v", err)
				continue
			case disc:
				unknown++
				out, err = d.Report(p, unknown)
			default:
				taken.Add(1)
				out, err = d.Response(p, gosnmp.NoError, 0, p.Variables)
			}
			if err != nil {
				t.Errorf("answer: %v", err)
				continue
			}
			_, _ = conn.WriteToUDPAddrPort(out, from)
		}
	}()
	defer func() { _ = conn.Close(); <-done }()

	g, err := secV3.Client(conn.LocalAddr().String(), 2*time.Second, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Connect(); err != nil {
		t.Fatal(err)
	}
	defer g.Conn.Close()
	inform := func(i uint32) error {
		vars := NotificationVarbinds(nil, 100, Fragment{Transfer: i, Count: 1, Data: []byte("x")})
		_, err := g.SendTrap(gosnmp.SnmpTrap{Variables: vars, IsInform: true})
		return err
	}
	if err := inform(1); err != nil {
		t.Fatalf("first inform: %v", err)
	}
	restart.Store(1)
	if err := inform(2); err != nil {
		t.Fatalf("inform after the engine restarted: %v", err)
	}
	if refused.Load() != 1 || taken.Load() != 2 {
		t.Fatalf("%d informs refused for the time window, %d taken; want 1 and 2", refused.Load(), taken.Load())
	}
}

// FuzzDecoder: whatever arrives on an SNMP socket, Decode neither
// panics nor takes it without a reason, and what it takes can be
// answered: a Response, a discovery Report or a time window Report.
func FuzzDecoder(f *testing.F) {
	v2, err := NewDecoder(secV2)
	if err != nil {
		f.Fatal(err)
	}
	v3, err := NewDecoder(secV3)
	if err != nil {
		f.Fatal(err)
	}
	fr := Fragment{Transfer: 9, Index: 0, Count: 1, Data: []byte("seed")}
	f.Add(encode(f, secV2, gosnmp.InformRequest, fr))
	f.Add(encode(f, secV2, gosnmp.SetRequest, fr))
	f.Add(encodeFor(f, v3, secV3, gosnmp.InformRequest, fr))
	f.Add(encode(f, secV3, gosnmp.InformRequest, fr)) // out of the time window
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x03})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, d := range []*Decoder{v2, v3} {
			p, disc, err := d.Decode(b)
			switch {
			case errors.Is(err, ErrNotInTimeWindow):
				if p == nil {
					t.Fatal("ErrNotInTimeWindow without the packet")
				}
				if _, err := d.TimeWindowReport(p, 1); err != nil {
					t.Fatalf("time window report: %v", err)
				}
			case err != nil:
				if !errors.Is(err, ErrSNMP) {
					t.Fatalf("refusal %v does not wrap ErrSNMP", err)
				}
			case p == nil:
				t.Fatal("no error and no packet")
			case disc:
				_, _ = d.Report(p, 1) // may fail on odd fields; must not panic
			default:
				_, _ = d.Response(p, gosnmp.NoError, 0, p.Variables)
			}
		}
	})
}
