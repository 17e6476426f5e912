package meds

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gosnmp/gosnmp"
)

// The fast path and gosnmp agree octet for octet, both ways.
func TestV2cFastPathMatchesGosnmp(t *testing.T) {
	frags := []Fragment{
		{Transfer: 0, Index: 0, Count: 1},
		{Transfer: 127, Index: 128, Count: 255, Data: []byte("x")},
		{Transfer: 0x7fffffff, Index: 0x80000000, Count: 0xffffffff, Data: bytes.Repeat([]byte{0xfe}, 300)},
		{Transfer: 65536, Index: 1, Count: 2, Data: make([]byte, 70000)},
	}
	dec, err := NewDecoder(secV2)
	if err != nil {
		t.Fatal(err)
	}
	for _, pdu := range []gosnmp.PDUType{gosnmp.SetRequest, gosnmp.InformRequest, gosnmp.SNMPv2Trap} {
		for _, f := range frags {
			for _, reqID := range []uint32{0, 1, 127, 128, 0x7fffffff} {
				notification := pdu != gosnmp.SetRequest
				var vars []gosnmp.SnmpPDU
				if notification {
					vars = NotificationVarbinds(nil, 0xffffffff, f)
				} else {
					vars = FragmentVarbinds(nil, f)
				}
				ref := &gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: "public", PDUType: pdu, RequestID: reqID, Variables: vars, Logger: gosnmp.NewLogger(nil)}
				want, err := ref.MarshalMsg()
				if err != nil {
					t.Fatal(err)
				}
				got := AppendV2cFragment(nil, pdu, "public", reqID, 0xffffffff, f)
				if !bytes.Equal(got, want) {
					t.Fatalf("%s %+v id %d:\n got % x\nwant % x", pdu, f.Index, reqID, head(got), head(want))
				}
				p, err := ParseV2c(want)
				if err != nil {
					t.Fatal(err)
				}
				if p.PDU != pdu || p.RequestID != reqID || string(p.Community) != "public" {
					t.Fatalf("parsed %+v", p)
				}
				gf, err := p.Fragment(notification, 0, 0)
				if err != nil || gf.Transfer != f.Transfer || gf.Index != f.Index || gf.Count != f.Count || !bytes.Equal(gf.Data, f.Data) {
					t.Fatalf("fragment %+v %v", gf.Index, err)
				}
				// The response built by the fast path decodes in gosnmp
				// as the echo of the request.
				resp := AppendV2cResponse(nil, p.Community, p.RequestID, 0, 0, p.VarBinds)
				gp, _, err := dec.Decode(resp)
				if err != nil || gp.PDUType != gosnmp.GetResponse || gp.RequestID != reqID || len(gp.Variables) != len(vars) {
					t.Fatalf("response: %v %+v", err, gp)
				}
				if _, err := ExtractFragment(gp.Variables, notification, 0, 0); err != nil {
					t.Fatalf("response bindings: %v", err)
				}
			}
		}
	}
}

func head(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

func TestV2cFastPathErrors(t *testing.T) {
	good := AppendV2cFragment(nil, gosnmp.InformRequest, "public", 5, 1, Fragment{Transfer: 1, Index: 0, Count: 2, Data: []byte("ab")})
	if _, err := ParseV2c(good[:len(good)-1]); !errors.Is(err, ErrNotFastPath) {
		t.Errorf("truncated: %v", err)
	}
	if _, err := ParseV2c(append(append([]byte{}, good...), 0)); !errors.Is(err, ErrNotFastPath) {
		t.Errorf("trailing octet: %v", err)
	}
	p, err := ParseV2c(good)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Fragment(false, 0, 0); !errors.Is(err, ErrFragment) {
		t.Errorf("notification read as a set: %v", err)
	}
	bad := AppendV2cFragment(nil, gosnmp.InformRequest, "public", 5, 1, Fragment{Transfer: 1, Index: 2, Count: 2})
	p, _ = ParseV2c(bad)
	var fe *FragmentError
	if _, err := p.Fragment(true, 0, 0); !errors.As(err, &fe) || fe.Status != StatusWrongValue || fe.Index != 4 {
		t.Errorf("index past count: %v", err)
	}
}

func TestV2cFastPathDoesNotAllocate(t *testing.T) {
	f := Fragment{Transfer: 9, Index: 0, Count: 1, Data: make([]byte, 64)}
	buf := make([]byte, 0, 2048)
	out := make([]byte, 0, 2048)
	allocs := testing.AllocsPerRun(1000, func() {
		b := AppendV2cFragment(buf[:0], gosnmp.InformRequest, "public", 77, 5, f)
		p, err := ParseV2c(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Fragment(true, 0, 0); err != nil {
			t.Fatal(err)
		}
		out = AppendV2cResponse(out[:0], p.Community, p.RequestID, 0, 0, p.VarBinds)
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per fragment, want 0", allocs)
	}
}

func FuzzParseV2c(f *testing.F) {
	for _, pdu := range []gosnmp.PDUType{gosnmp.SetRequest, gosnmp.InformRequest, gosnmp.SNMPv2Trap} {
		f.Add(AppendV2cFragment(nil, pdu, "public", 1, 2, Fragment{Transfer: 3, Count: 1, Data: []byte("meds")}))
	}
	f.Add(AppendV2cResponse(nil, []byte("public"), 1, 0, 0, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseV2c(b)
		if err != nil {
			return
		}
		for _, n := range []bool{false, true} {
			fr, err := p.Fragment(n, 64, 1400)
			if err != nil {
				if !errors.Is(err, ErrFragment) {
					t.Fatalf("error %v", err)
				}
				continue
			}
			if fr.Count == 0 || fr.Index >= fr.Count || fr.Count > 64 || len(fr.Data) > 1400 {
				t.Fatalf("accepted impossible fragment %+v", fr)
			}
		}
		// Re-encoding a parsed response is the identity when the
		// original was minimal.
		_ = AppendV2cResponse(nil, p.Community, p.RequestID, p.ErrorStatus, p.ErrorIndex, p.VarBinds)
	})
}
