package meds

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"
)

var (
	secV2 = Security{Version: gosnmp.Version2c, Community: "public"}
	secV3 = Security{
		Version: gosnmp.Version3, User: "medsuser", Level: gosnmp.AuthPriv,
		AuthProtocol: gosnmp.SHA256, AuthPassphrase: "authpass123",
		PrivProtocol: gosnmp.AES, PrivPassphrase: "privpass123",
		EngineID: NewEngineID("agent-engine-id-long-name-x"),
	}
)

// encode marshals one SNMP message carrying f, as the sender would; an
// SNMPv3 one with the largest engine boots and time (the sizes' worst
// case, never in a receiver's time window).
func encode(t testing.TB, sec Security, pdu gosnmp.PDUType, f Fragment) []byte {
	t.Helper()
	return encodeAt(t, sec, pdu, f, 0x7fffffff, 0x7fffffff)
}

// encodeFor is encode for the receiver d: in its time window.
func encodeFor(t testing.TB, d *Decoder, sec Security, pdu gosnmp.PDUType, f Fragment) []byte {
	t.Helper()
	boots, secs := d.EngineClock(time.Now())
	return encodeAt(t, sec, pdu, f, boots, secs)
}

func encodeAt(t testing.TB, sec Security, pdu gosnmp.PDUType, f Fragment, boots, secs uint32) []byte {
	t.Helper()
	var vars []gosnmp.SnmpPDU
	if pdu == gosnmp.SetRequest {
		vars = FragmentVarbinds(nil, f)
	} else {
		vars = NotificationVarbinds(nil, 0xffffffff, f)
	}
	p := &gosnmp.SnmpPacket{
		Version: sec.Version, Community: sec.Community, PDUType: pdu,
		RequestID: 0x7fffffff, MsgID: 0x7fffffff, MsgMaxSize: 65507,
		Variables: vars, Logger: gosnmp.NewLogger(nil),
	}
	if sec.Version == gosnmp.Version3 {
		sp := sec.usm(sec.EngineID)
		sp.AuthoritativeEngineBoots = boots
		sp.AuthoritativeEngineTime = secs
		sp.Logger = gosnmp.NewLogger(nil)
		if err := sp.InitSecurityKeys(); err != nil {
			t.Fatal(err)
		}
		p.SecurityModel = gosnmp.UserSecurityModel
		p.SecurityParameters = sp
		p.MsgFlags = sec.Level | gosnmp.Reportable
		p.ContextEngineID = sec.EngineID
		if err := sp.InitPacket(p); err != nil {
			t.Fatal(err)
		}
	}
	b, err := p.MarshalMsg()
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

func TestFragmentSizeFitsMaxMessage(t *testing.T) {
	for _, sec := range []Security{secV2, secV3} {
		for _, max := range []int{MinMaxMsgSize, DefaultMaxMsgSize, 9000} {
			for _, pdu := range []gosnmp.PDUType{gosnmp.SetRequest, gosnmp.InformRequest} {
				name := fmt.Sprintf("%s/%d/%s", sec.Version, max, pdu)
				t.Run(name, func(t *testing.T) {
					n, err := FragmentDataSize(max, sec, pdu != gosnmp.SetRequest)
					if err != nil {
						t.Fatal(err)
					}
					f := Fragment{Transfer: 0xffffffff, Index: 0xfffffffe, Count: 0xffffffff, Data: bytes.Repeat([]byte{0xff}, n)}
					b := encode(t, sec, pdu, f)
					if len(b) > max {
						t.Fatalf("%d data octets make a %d-octet message, over %d", n, len(b), max)
					}
					if max-len(b) > 64 {
						t.Logf("%d octets of slack (message %d of %d)", max-len(b), len(b), max)
					}
				})
			}
		}
	}
}

func TestExtractFragmentRoundTrip(t *testing.T) {
	for _, sec := range []Security{secV2, secV3} {
		for _, pdu := range []gosnmp.PDUType{gosnmp.SetRequest, gosnmp.InformRequest, gosnmp.SNMPv2Trap} {
			want := Fragment{Transfer: 42, Index: 1, Count: 3, Data: []byte("frag\x00ment")}
			d, err := NewDecoder(sec)
			if err != nil {
				t.Fatal(err)
			}
			p, disc, err := d.Decode(encodeFor(t, d, sec, pdu, want))
			if err != nil || disc {
				t.Fatalf("%s %s: Decode = %v, discovery %v", sec.Version, pdu, err, disc)
			}
			got, err := ExtractFragment(p.Variables, pdu != gosnmp.SetRequest, 0, 0)
			if err != nil {
				t.Fatalf("%s %s: ExtractFragment: %v", sec.Version, pdu, err)
			}
			if got.Transfer != want.Transfer || got.Index != want.Index || got.Count != want.Count || !bytes.Equal(got.Data, want.Data) {
				t.Fatalf("%s %s: got %+v, want %+v", sec.Version, pdu, got, want)
			}
		}
	}
}

func TestDecoderRefusals(t *testing.T) {
	f := Fragment{Transfer: 1, Count: 1}
	v2, _ := NewDecoder(secV2)
	wrong := secV2
	wrong.Community = "private"
	if _, _, err := v2.Decode(encode(t, wrong, gosnmp.InformRequest, f)); !errors.Is(err, ErrCommunity) {
		t.Errorf("wrong community: %v", err)
	}
	if _, _, err := v2.Decode([]byte("garbage")); !errors.Is(err, ErrDecode) {
		t.Errorf("garbage: %v", err)
	}
	if _, _, err := v2.Decode(encode(t, secV3, gosnmp.InformRequest, f)); !errors.Is(err, ErrSNMPVersion) {
		t.Errorf("v3 to a v2c decoder: %v", err)
	}
	v3, _ := NewDecoder(secV3)
	bad := secV3
	bad.AuthPassphrase = "otherpass123"
	if _, _, err := v3.Decode(encodeFor(t, v3, bad, gosnmp.InformRequest, f)); !errors.Is(err, ErrUSM) {
		t.Errorf("wrong auth key: %v", err)
	}
	b := encodeFor(t, v3, secV3, gosnmp.InformRequest, f)
	b[len(b)-3] ^= 0x55
	if _, _, err := v3.Decode(b); !errors.Is(err, ErrUSM) {
		t.Errorf("tampered: %v", err)
	}
}

func TestExtractFragmentStrict(t *testing.T) {
	good := func() []gosnmp.SnmpPDU {
		return NotificationVarbinds(nil, 5, Fragment{Transfer: 1, Index: 0, Count: 2, Data: []byte("x")})
	}
	tests := []struct {
		name   string
		mod    func([]gosnmp.SnmpPDU) []gosnmp.SnmpPDU
		status uint8
	}{
		{"too few", func(v []gosnmp.SnmpPDU) []gosnmp.SnmpPDU { return v[:5] }, StatusWrongLength},
		{"trap oid", func(v []gosnmp.SnmpPDU) []gosnmp.SnmpPDU { v[1].Value = "1.3.6.1.4.1.99"; return v }, StatusWrongValue},
		{"order", func(v []gosnmp.SnmpPDU) []gosnmp.SnmpPDU { v[2], v[3] = v[3], v[2]; return v }, StatusWrongType},
		{"type", func(v []gosnmp.SnmpPDU) []gosnmp.SnmpPDU { v[2].Type = gosnmp.Integer; return v }, StatusWrongType},
		{"count 0", func(v []gosnmp.SnmpPDU) []gosnmp.SnmpPDU { v[4].Value = uint(0); return v }, StatusWrongValue},
		{"index past count", func(v []gosnmp.SnmpPDU) []gosnmp.SnmpPDU { v[3].Value = uint(2); return v }, StatusWrongValue},
		{"data type", func(v []gosnmp.SnmpPDU) []gosnmp.SnmpPDU { v[5].Type = gosnmp.Integer; return v }, StatusWrongType},
		{"count over limit", func(v []gosnmp.SnmpPDU) []gosnmp.SnmpPDU { v[4].Value = uint(100); return v }, StatusWrongValue},
		{"data over limit", func(v []gosnmp.SnmpPDU) []gosnmp.SnmpPDU { v[5].Value = make([]byte, 11); return v }, StatusWrongLength},
	}
	for _, tc := range tests {
		_, err := ExtractFragment(tc.mod(good()), true, 10, 10)
		var fe *FragmentError
		if !errors.As(err, &fe) || fe.Status != tc.status || !errors.Is(err, ErrFragment) {
			t.Errorf("%s: %v, want status %d", tc.name, err, tc.status)
		}
	}
	if _, err := ExtractFragment(good(), true, 10, 10); err != nil {
		t.Fatalf("good: %v", err)
	}
}

func TestSplitReassemble(t *testing.T) {
	msg := frames(Message{Type: TypeResponse, ID: 3, Text: bytes.Repeat([]byte("0123456789"), 6000)})
	var frags []Fragment
	if err := Split(msg, 9, 1000, func(f Fragment) error { frags = append(frags, f); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(frags) != 61 {
		t.Fatalf("%d fragments, want 61", len(frags))
	}
	r := NewReassembler(ReassemblerConfig{})
	key := Key{Sender: netip.MustParseAddrPort("127.0.0.1:162"), Transfer: 9}
	now := time.Unix(1000, 0)
	// Deliver in reverse, with every fragment twice.
	for i := len(frags) - 1; i >= 0; i-- {
		for range 2 {
			got, res, err := r.Add(now, key, frags[i])
			switch {
			case err != nil:
				t.Fatal(err)
			case i == 0 && res == Delivered:
				if !bytes.Equal(got, msg) {
					t.Fatal("reassembled message differs")
				}
			case res == Delivered:
				t.Fatalf("delivered at fragment %d", i)
			}
		}
	}
	if _, res, _ := r.Add(now, key, frags[5]); res != Duplicate {
		t.Fatalf("fragment after delivery: %v, want duplicate", res)
	}
	if n, b := r.Pending(); n != 0 || b != 0 {
		t.Fatalf("pending %d transfers %d octets after delivery", n, b)
	}
	// Empty message: one empty fragment.
	var one []Fragment
	_ = Split(nil, 1, 10, func(f Fragment) error { one = append(one, f); return nil })
	if len(one) != 1 || one[0].Count != 1 || len(one[0].Data) != 0 {
		t.Fatalf("empty split = %+v", one)
	}
}

func TestReassemblerExpireAndLimits(t *testing.T) {
	r := NewReassembler(ReassemblerConfig{Timeout: time.Second, MaxTransfers: 2, MaxMessage: 100})
	a := netip.MustParseAddrPort("127.0.0.1:1")
	t0 := time.Unix(0, 0)
	k := func(n uint32) Key { return Key{Sender: a, Transfer: n} }
	if _, res, _ := r.Add(t0, k(1), Fragment{Transfer: 1, Index: 0, Count: 2, Data: []byte("a")}); res != Buffered {
		t.Fatal(res)
	}
	if _, res, _ := r.Add(t0, k(2), Fragment{Transfer: 2, Index: 0, Count: 2, Data: []byte("a")}); res != Buffered {
		t.Fatal(res)
	}
	if _, res, err := r.Add(t0, k(3), Fragment{Transfer: 3, Index: 0, Count: 2}); res != Rejected || !errors.Is(err, ErrReassemblyLimit) {
		t.Fatalf("third transfer: %v %v", res, err)
	}
	if _, res, err := r.Add(t0, k(1), Fragment{Transfer: 1, Index: 1, Count: 3}); res != Rejected || !errors.Is(err, ErrInconsistent) {
		t.Fatalf("count changes: %v %v", res, err)
	}
	if _, res, err := r.Add(t0, k(2), Fragment{Transfer: 2, Index: 1, Count: 2, Data: make([]byte, 100)}); res != Rejected || !errors.Is(err, ErrReassemblyLimit) {
		t.Fatalf("over message size: %v %v", res, err)
	}
	if n := r.Expire(t0.Add(time.Second), nil); n != 0 {
		t.Fatalf("expired %d at the timeout, want 0", n)
	}
	var got []Expired
	if n := r.Expire(t0.Add(2*time.Second), func(e Expired) { got = append(got, e) }); n != 1 || got[0].Key != k(1) || got[0].Have != 1 || got[0].Count != 2 {
		t.Fatalf("expire = %d %+v", n, got)
	}
	if n, b := r.Pending(); n != 0 || b != 0 {
		t.Fatalf("pending %d/%d after expiry", n, b)
	}
}

func TestReassemblerForgetsDelivered(t *testing.T) {
	r := NewReassembler(ReassemblerConfig{Timeout: time.Second, Remember: 2})
	a := netip.MustParseAddrPort("127.0.0.1:1")
	t0 := time.Unix(0, 0)
	for i := uint32(1); i <= 3; i++ {
		if _, res, _ := r.Add(t0, Key{a, i}, Fragment{Transfer: i, Count: 1}); res != Delivered {
			t.Fatal(res)
		}
	}
	if _, res, _ := r.Add(t0, Key{a, 3}, Fragment{Transfer: 3, Count: 1}); res != Duplicate {
		t.Fatalf("recent duplicate: %v", res)
	}
	if _, res, _ := r.Add(t0, Key{a, 1}, Fragment{Transfer: 1, Count: 1}); res != Delivered {
		t.Fatalf("forgotten past Remember: %v", res)
	}
	r.Expire(t0.Add(3*time.Second), nil)
	if _, res, _ := r.Add(t0, Key{a, 3}, Fragment{Transfer: 3, Count: 1}); res != Delivered {
		t.Fatalf("forgotten past the timeout: %v", res)
	}
}

func FuzzReassembler(f *testing.F) {
	f.Add([]byte{0, 0, 2, 5, 1, 2, 2, 3, 0, 1, 1, 0})
	f.Add([]byte{1, 0, 1, 0, 1, 1, 2, 200})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReassembler(ReassemblerConfig{Timeout: 10 * time.Second, MaxMessage: 64, MaxCount: 8, MaxTransfers: 4, MaxBuffered: 128, Remember: 4})
		now := time.Unix(0, 0)
		// Each record: transfer, index, count, data length.
		for len(in) >= 4 {
			tr, idx, cnt, n := uint32(in[0]%4), uint32(in[1]), uint32(in[2]), int(in[3]%32)
			in = in[4:]
			now = now.Add(time.Second)
			key := Key{Sender: netip.MustParseAddrPort("127.0.0.1:9"), Transfer: tr}
			msg, res, err := r.Add(now, key, Fragment{Transfer: tr, Index: idx, Count: cnt, Data: make([]byte, n)})
			if (err != nil) != (res == Rejected) {
				t.Fatalf("result %v with error %v", res, err)
			}
			if res == Delivered && len(msg) > 64 {
				t.Fatalf("delivered %d octets over the limit", len(msg))
			}
			if tr, b := r.Pending(); tr > 4 || b > 128 {
				t.Fatalf("pending %d transfers %d octets over the limits", tr, b)
			}
			if in0 := len(in); in0%3 == 0 {
				r.Expire(now, nil)
			}
		}
	})
}

func FuzzExtractFragment(f *testing.F) {
	for _, pdu := range []gosnmp.PDUType{gosnmp.SetRequest, gosnmp.InformRequest, gosnmp.SNMPv2Trap} {
		f.Add(encode(f, secV2, pdu, Fragment{Transfer: 7, Index: 0, Count: 1, Data: []byte("abc")}))
		f.Add(encode(f, secV2, pdu, Fragment{Transfer: 7, Index: 3, Count: 2}))
	}
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x01})
	d, err := NewDecoder(secV2)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		p, _, err := d.Decode(in)
		if err != nil {
			if !errors.Is(err, ErrSNMP) {
				t.Fatalf("refusal %v does not match ErrSNMP", err)
			}
			return
		}
		fr, err := ExtractFragment(p.Variables, p.PDUType != gosnmp.SetRequest, 64, 1400)
		if err != nil {
			if !errors.Is(err, ErrFragment) {
				t.Fatalf("error %v does not match ErrFragment", err)
			}
			return
		}
		if fr.Count == 0 || fr.Index >= fr.Count || fr.Count > 64 || len(fr.Data) > 1400 {
			t.Fatalf("accepted impossible fragment %+v", fr)
		}
	})
}
