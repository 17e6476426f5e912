package meds

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func frames(ms ...Message) []byte {
	var b []byte
	for _, m := range ms {
		b = AppendMessage(b, m)
	}
	return b
}

func TestHeaderRoundTrip(t *testing.T) {
	h := Header{Version: 1, Type: TypeStatus, Flags: 0xbeef, ID: 0xdeadbeef, Length: 70000}
	var b [HeaderLen]byte
	PutHeader(b[:], h)
	want := []byte{1, 4, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef, 0, 1, 0x11, 0x70}
	if !bytes.Equal(b[:], want) {
		t.Fatalf("PutHeader = % x, want % x", b, want)
	}
	if got := DecodeHeader(b[:]); got != h {
		t.Fatalf("DecodeHeader = %+v, want %+v", got, h)
	}
}

func TestReaderOneByteAtATime(t *testing.T) {
	in := []Message{
		{Type: TypeCommand, ID: 1, Text: []byte("hello")},
		{Type: TypeCommand, ID: 2},
		{Type: TypeCommand, ID: 3, Flags: 7, Text: bytes.Repeat([]byte{'x'}, 60<<10)},
	}
	for _, name := range []string{"whole", "onebyte", "half"} {
		t.Run(name, func(t *testing.T) {
			var src io.Reader = bytes.NewReader(frames(in...))
			switch name {
			case "onebyte":
				src = iotest.OneByteReader(src)
			case "half":
				src = iotest.HalfReader(src)
			}
			r := NewReader(src, 0)
			for i, want := range in {
				got, err := r.Next()
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if got.Type != want.Type || got.ID != want.ID || got.Flags != want.Flags || !bytes.Equal(got.Text, want.Text) {
					t.Fatalf("message %d = %v/%d/%d len %d, want %v/%d/%d len %d", i, got.Type, got.ID, got.Flags, len(got.Text), want.Type, want.ID, want.Flags, len(want.Text))
				}
			}
			if _, err := r.Next(); err != io.EOF {
				t.Fatalf("after the last message: %v, want io.EOF", err)
			}
		})
	}
}

// limitedReader fails the test if more than n octets are read.
type limitedReader struct {
	t *testing.T
	r io.Reader
	n int
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if len(p) > l.n {
		p = p[:l.n]
	}
	if len(p) == 0 {
		l.t.Error("reader asked for octets past the header")
		return 0, io.ErrNoProgress
	}
	k, err := l.r.Read(p)
	l.n -= k
	return k, err
}

func TestReaderRefusesBeforeBuffering(t *testing.T) {
	b := frames(Message{Type: TypeCommand, ID: 9, Text: make([]byte, 100)})
	r := NewReader(&limitedReader{t: t, r: bytes.NewReader(b), n: HeaderLen}, 99)
	_, err := r.Next()
	var pe *ProtocolError
	if !errors.Is(err, ErrTooLong) || !errors.As(err, &pe) || pe.Header.Length != 100 || pe.Limit != 99 {
		t.Fatalf("Next = %v, want ErrTooLong with length 100 limit 99", err)
	}
	t.Log(err)
}

func TestReaderErrors(t *testing.T) {
	good := frames(Message{Type: TypeEvent, ID: 1, Text: []byte("ok")})
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"version", append(append([]byte{}, good...), 2, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0), ErrVersion},
		{"type0", append(append([]byte{}, good...), 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0), ErrType},
		{"type9", append(append([]byte{}, good...), 1, 9, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0), ErrType},
		{"truncated header", append(append([]byte{}, good...), 1, 1, 0), ErrTruncated},
		{"truncated text", append(append([]byte{}, good...), 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5, 'a'), ErrTruncated},
		{"too long", append(append([]byte{}, good...), 1, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1), ErrTooLong},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tc.in), 0)
			if _, err := r.Next(); err != nil {
				t.Fatalf("first message: %v", err)
			}
			_, err := r.Next()
			if !errors.Is(err, tc.want) {
				t.Fatalf("Next = %v, want %v", err, tc.want)
			}
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Offset != int64(len(good)) {
				t.Fatalf("error %v does not carry offset %d", err, len(good))
			}
		})
	}
}

// loopReader replays one buffer forever.
type loopReader struct {
	b   []byte
	off int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], l.b[l.off:])
		n += k
		l.off = (l.off + k) % len(l.b)
	}
	return n, nil
}

func TestReaderDoesNotAllocate(t *testing.T) {
	src := &loopReader{b: frames(
		Message{Type: TypeCommand, ID: 1, Text: make([]byte, 64)},
		Message{Type: TypeCommand, ID: 2, Text: make([]byte, 4096)},
		Message{Type: TypeCommand, ID: 3},
	)}
	r := NewReader(src, 0)
	for range 100 { // warm up
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Next allocates %.1f times per message, want 0", allocs)
	}
}

func TestParseMessage(t *testing.T) {
	b := frames(Message{Type: TypeResponse, ID: 77, Text: []byte("abc")})
	m, err := ParseMessage(b, 10)
	if err != nil || m.ID != 77 || string(m.Text) != "abc" {
		t.Fatalf("ParseMessage = %+v, %v", m, err)
	}
	if _, err := ParseMessage(b[:len(b)-1], 10); !errors.Is(err, ErrLength) {
		t.Fatalf("short: %v, want ErrLength", err)
	}
	if _, err := ParseMessage(append(b, 0), 10); !errors.Is(err, ErrLength) {
		t.Fatalf("long: %v, want ErrLength", err)
	}
	if _, err := ParseMessage(b[:5], 10); !errors.Is(err, ErrShort) {
		t.Fatalf("shorter than a header: %v, want ErrShort", err)
	}
	if _, err := ParseMessage(b, 2); !errors.Is(err, ErrTooLong) {
		t.Fatalf("over the limit: %v, want ErrTooLong", err)
	}
}

func FuzzReader(f *testing.F) {
	f.Add(frames(Message{Type: TypeCommand, ID: 1, Text: []byte("show status")}))
	f.Add(frames(Message{Type: TypeCommand, ID: 1}, Message{Type: TypeEvent, ID: 2, Text: []byte("x")}))
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{1, 1, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(iotest.HalfReader(bytes.NewReader(in)), 1024)
		var out []byte
		for {
			m, err := r.Next()
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrType) && !errors.Is(err, ErrTooLong) && !errors.Is(err, ErrTruncated) {
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			if len(m.Text) > 1024 {
				t.Fatalf("text of %d octets passed the limit", len(m.Text))
			}
			out = AppendMessage(out, m)
		}
		// Everything accepted re-encodes to a prefix of the input.
		if !bytes.HasPrefix(in, out) {
			t.Fatalf("re-encoded messages are not a prefix of the input")
		}
	})
}
