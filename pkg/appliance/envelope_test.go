package appliance

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// TestEnvelopeMatchesProtobuf checks the hand-written encoder and parser
// against the generated AppMessage both ways.
func TestEnvelopeMatchesProtobuf(t *testing.T) {
	body := wrapperspb.String("hello")
	b, err := appendEnvelope(nil, "google.protobuf.StringValue", body, header{call: 7, reply: true, errText: "boom", epoch: 1 << 33})
	if err != nil {
		t.Fatal(err)
	}
	var m hellopicsv1.AppMessage
	if err := proto.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want, _ := proto.Marshal(body)
	if m.GetType() != "google.protobuf.StringValue" || !bytes.Equal(m.GetBody(), want) || m.GetCall() != 7 || !m.GetReply() || m.GetError() != "boom" || m.GetEpoch() != 1<<33 {
		t.Fatalf("generated decode of our encoding: %v", &m)
	}
	gen, err := proto.Marshal(&hellopicsv1.AppMessage{Type: "a.B", Body: []byte{1, 2}, Call: 300, Error: "x", Epoch: 9})
	if err != nil {
		t.Fatal(err)
	}
	e, err := parseEnvelope(gen)
	if err != nil {
		t.Fatal(err)
	}
	if string(e.typ) != "a.B" || !bytes.Equal(e.body, []byte{1, 2}) || e.call != 300 || e.reply || string(e.errText) != "x" || e.epoch != 9 {
		t.Fatalf("our decode of the generated encoding: %+v", e)
	}
}

func TestEnvelopeRefusals(t *testing.T) {
	long := make([]byte, MaxTypeName+1)
	for i := range long {
		long[i] = 'a'
	}
	for name, b := range map[string][]byte{
		"no type":         mustMarshal(t, &hellopicsv1.AppMessage{Body: []byte{1}}),
		"long type":       mustMarshal(t, &hellopicsv1.AppMessage{Type: string(long)}),
		"truncated":       mustMarshal(t, &hellopicsv1.AppMessage{Type: "a.B", Body: []byte{1, 2, 3}})[:7],
		"wrong wire type": {0x08, 0x01}, // field 1 as a varint
		"bad tag":         {0xff},
		"not utf-8":       {0x0a, 0x02, 0xff, 0xfe},
		"epoch as bytes":  {0x0a, 0x01, 'a', 0x32, 0x01, 0x01}, // field 6, length-delimited
	} {
		if _, err := parseEnvelope(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Unknown fields are skipped, as protobuf does.
	b := append(mustMarshal(t, &hellopicsv1.AppMessage{Type: "a.B"}), 0x78, 0x05) // field 15, varint
	if _, err := parseEnvelope(b); err != nil {
		t.Errorf("unknown field: %v", err)
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseEnvelopeNoAlloc(t *testing.T) {
	b := mustMarshal(t, &hellopicsv1.AppMessage{Type: "acme.v1.Set", Body: make([]byte, 100), Call: 9})
	if n := testing.AllocsPerRun(100, func() { _, _ = parseEnvelope(b) }); n != 0 {
		t.Fatalf("parseEnvelope allocates %v times", n)
	}
}

// TestRecordsAreABatch: records appended back to back (as pconn's
// SendRecord coalesces them) are an AppBatch for the generated code,
// and eachEnvelope reads them in order.
func TestRecordsAreABatch(t *testing.T) {
	var frame []byte
	for i := range 3 {
		rec, _, err := appendRecord(nil, "google.protobuf.Int64Value", wrapperspb.Int64(int64(i)), header{call: uint64(i)})
		if err != nil {
			t.Fatal(err)
		}
		frame = append(frame, rec...)
	}
	var batch hellopicsv1.AppBatch
	if err := proto.Unmarshal(frame, &batch); err != nil || len(batch.GetMessages()) != 3 {
		t.Fatalf("generated decode: %d messages, %v", len(batch.GetMessages()), err)
	}
	var calls []uint64
	if err := eachEnvelope(frame, func(e envelope) error { calls = append(calls, e.call); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 3 || calls[0] != 0 || calls[2] != 2 {
		t.Fatalf("read %v", calls)
	}
	// A record after a large body: the prefix takes more bytes.
	rec, _, err := appendRecord([]byte("keep"), "google.protobuf.BytesValue", wrapperspb.Bytes(make([]byte, 300)), header{})
	if err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(rec, &batch); err != nil {
		t.Fatal(err)
	}
}

// FuzzEnvelope: any input either parses as an AppBatch, and then the
// generated code reads the same messages, or is refused; never a panic.
func FuzzEnvelope(f *testing.F) {
	f.Add(mustMarshalF(&hellopicsv1.AppBatch{Messages: []*hellopicsv1.AppMessage{{Type: "a.B", Body: []byte{1}, Call: 1, Epoch: 7}}}))
	f.Add(mustMarshalF(&hellopicsv1.AppBatch{Messages: []*hellopicsv1.AppMessage{{Reply: true, Call: 3, Error: "no"}, {Type: "c.D"}}}))
	f.Add([]byte{0x0a, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		var got []envelope
		if err := eachEnvelope(b, func(e envelope) error { got = append(got, e); return nil }); err != nil {
			return
		}
		var m hellopicsv1.AppBatch
		if perr := proto.Unmarshal(b, &m); perr != nil {
			t.Fatalf("we accepted what protobuf refuses: %v", perr)
		}
		if len(got) != len(m.GetMessages()) {
			t.Fatalf("%d messages, protobuf reads %d", len(got), len(m.GetMessages()))
		}
		for i, e := range got {
			pm := m.GetMessages()[i]
			if string(e.typ) != pm.GetType() || !bytes.Equal(e.body, pm.GetBody()) || e.call != pm.GetCall() || e.reply != pm.GetReply() || e.epoch != pm.GetEpoch() {
				t.Fatalf("message %d disagrees with protobuf: %+v vs %v", i, e, pm)
			}
		}
	})
}

func mustMarshalF(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// TestOutRecordMatchesAppendRecord: the record written straight into a
// send queue is the record appendRecord builds, and of the size set
// announced.
func TestOutRecordMatchesAppendRecord(t *testing.T) {
	long := string(bytes.Repeat([]byte("e"), 2*maxErrorText))
	for _, c := range []struct {
		typ string
		m   proto.Message
		h   header
	}{
		{"google.protobuf.BytesValue", wrapperspb.Bytes(make([]byte, 300)), header{}},
		{"google.protobuf.Int64Value", wrapperspb.Int64(-1), header{call: 1 << 40, reply: true, epoch: 3}},
		{"", nil, header{call: 7, reply: true, errText: long}},
		{"google.protobuf.StringValue", wrapperspb.String(""), header{epoch: 1<<64 - 1}},
	} {
		want, _, err := appendRecord(nil, c.typ, c.m, c.h)
		if err != nil {
			t.Fatal(err)
		}
		var r outRecord
		n := r.set(c.typ, c.m, c.h)
		got := r.AppendRecord([]byte("x"))[1:]
		if n != len(got) || !bytes.Equal(got, want) {
			t.Fatalf("%s: set says %d bytes, wrote %d, appendRecord %d; equal %v", c.typ, n, len(got), len(want), bytes.Equal(got, want))
		}
	}
}
