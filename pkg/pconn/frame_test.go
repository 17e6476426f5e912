package pconn

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestParseHeader(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"ok", []byte{1, 0, 0, 7, 0, 0, 0, 3}, nil},
		{"ok control", []byte{1, 0, 0xff, 0x01, 0, 0, 0, 0}, nil},
		{"flags ignored", []byte{1, 0xff, 0, 7, 0, 0, 0, 0}, nil},
		{"short", []byte{1, 0, 0}, ErrTruncated},
		{"version 0", []byte{0, 0, 0, 7, 0, 0, 0, 0}, ErrBadVersion},
		{"version 2", []byte{2, 0, 0, 7, 0, 0, 0, 0}, ErrBadVersion},
		{"type 0", []byte{1, 0, 0, 0, 0, 0, 0, 0}, ErrBadType},
		{"unknown control", []byte{1, 0, 0xff, 0x77, 0, 0, 0, 0}, ErrBadType},
		{"at limit", []byte{1, 0, 0, 7, 0, 0, 0x04, 0}, nil},
		{"over limit", []byte{1, 0, 0, 7, 0, 0, 0x04, 1}, ErrFrameTooLarge},
		{"huge", []byte{1, 0, 0, 7, 0xff, 0xff, 0xff, 0xff}, ErrFrameTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseHeader(tt.in, 1024)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseHeader(% x) = %v, want %v", tt.in, err, tt.want)
			}
			if err != nil && err.Error() == "" {
				t.Fatal("empty error text")
			}
		})
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	h := Header{Version: Version, Flags: 0x5a, Type: 0x1234, Length: 0x00abcdef}
	b := AppendHeader(nil, h)
	if len(b) != HeaderSize {
		t.Fatalf("header is %d bytes, want %d", len(b), HeaderSize)
	}
	got, err := ParseHeader(b, 1<<24)
	if err != nil || got != h {
		t.Fatalf("round trip: got %+v, %v; want %+v", got, err, h)
	}
	// The wire layout is part of the protocol (docs/pconn.md).
	want := []byte{1, 0x5a, 0x12, 0x34, 0x00, 0xab, 0xcd, 0xef}
	if !bytes.Equal(b, want) {
		t.Fatalf("encoding % x, want % x", b, want)
	}
}

// stream builds frames of the given payload sizes.
func stream(sizes ...int) ([]byte, [][]byte) {
	var out []byte
	var payloads [][]byte
	for i, n := range sizes {
		p := bytes.Repeat([]byte{byte(i + 1)}, n)
		payloads = append(payloads, p)
		out = AppendFrame(out, MsgType(i+1), p)
	}
	return out, payloads
}

func TestFrameReader(t *testing.T) {
	sizes := []int{0, 1, 63, 64, 100, 1000, 0, 5000}
	wire, payloads := stream(sizes...)
	readers := map[string]func() io.Reader{
		"whole":        func() io.Reader { return bytes.NewReader(wire) },
		"byte at once": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(wire)) },
		"half":         func() io.Reader { return iotest.HalfReader(bytes.NewReader(wire)) },
	}
	for name, mk := range readers {
		for _, buf := range []int{HeaderSize, 64, 4096} { // small buffers force the scratch path
			fr := NewFrameReader(mk(), 8192, buf)
			for i, want := range payloads {
				h, p, err := fr.Next()
				if err != nil {
					t.Fatalf("%s/buf %d: frame %d: %v", name, buf, i, err)
				}
				if h.Type != MsgType(i+1) || !bytes.Equal(p, want) {
					t.Fatalf("%s/buf %d: frame %d: type %d, %d bytes; want type %d, %d bytes", name, buf, i, h.Type, len(p), i+1, len(want))
				}
			}
			if _, _, err := fr.Next(); err != io.EOF {
				t.Fatalf("%s/buf %d: after last frame: %v, want io.EOF", name, buf, err)
			}
		}
	}
}

func TestFrameReaderTruncated(t *testing.T) {
	wire, _ := stream(10)
	for cut := 1; cut < len(wire); cut++ {
		fr := NewFrameReader(bytes.NewReader(wire[:cut]), 1024, 64)
		_, _, err := fr.Next()
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut at %d: %v, want ErrTruncated", cut, err)
		}
	}
}

// countingReader counts the bytes handed out.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestFrameReaderRefusesOversizeBeforeReadingPayload(t *testing.T) {
	// A header announcing 1 GiB, followed by a little: the reader must
	// fail on the header alone, without reading the rest.
	wire := AppendHeader(nil, Header{Version: Version, Type: 9, Length: 1 << 30})
	cr := &countingReader{r: iotest.OneByteReader(io.MultiReader(bytes.NewReader(wire), bytes.NewReader(make([]byte, 1<<16))))}
	fr := NewFrameReader(cr, 1<<20, 64)
	_, _, err := fr.Next()
	var perr *ProtocolError
	if !errors.As(err, &perr) || perr.Err != ErrFrameTooLarge {
		t.Fatalf("got %v, want ErrFrameTooLarge", err)
	}
	if perr.Header.Length != 1<<30 || perr.Max != 1<<20 {
		t.Fatalf("error lacks sizes: %+v", perr)
	}
	if cr.n != HeaderSize {
		t.Fatalf("read %d bytes before refusing, want %d (the header only)", cr.n, HeaderSize)
	}
}

func TestFrameReaderNoAllocs(t *testing.T) {
	wire, _ := stream(64, 64, 64, 64)
	r := bytes.NewReader(wire)
	fr := NewFrameReader(r, 1024, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(wire)
		fr.reset(r)
		for i := 0; i < 4; i++ {
			if _, _, err := fr.Next(); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per 4 frames, want 0", allocs)
	}
}

// stallReader hands out its data in chunks of at most chunk bytes, then
// fails with end, or errStalled, standing for a peer that stops sending. Before
// each read it checks that fr holds no more memory than the data handed
// out justifies.
type stallReader struct {
	t      *testing.T
	data   []byte
	chunk  int
	served int
	fr     *FrameReader
	end    error
}

var errStalled = errors.New("stalled")

func (r *stallReader) Read(p []byte) (int, error) {
	r.check()
	if r.served == len(r.data) {
		if r.end != nil {
			return 0, r.end
		}
		return 0, errStalled
	}
	n := copy(p[:min(len(p), r.chunk)], r.data[r.served:])
	r.served += n
	return n, nil
}

// check: the read buffer is within its bound, and the scratch buffer at
// most twice the bytes received (or the initial read buffer size).
func (r *stallReader) check() {
	r.t.Helper()
	if r.fr == nil {
		return
	}
	if len(r.fr.buf) > r.fr.bufMax {
		r.t.Fatalf("read buffer %d bytes, bound %d", len(r.fr.buf), r.fr.bufMax)
	}
	if c := cap(r.fr.scratch); c > max(2*r.served, initialReadBuffer) {
		r.t.Fatalf("scratch %d bytes after %d bytes received", c, r.served)
	}
	if len(r.fr.buf) > max(2*r.served, initialReadBuffer) {
		r.t.Fatalf("read buffer %d bytes after %d bytes received", len(r.fr.buf), r.served)
	}
}

func TestFrameReaderAllocatesAsBytesArrive(t *testing.T) {
	const big = 1 << 20
	for _, tc := range []struct {
		name    string
		bufSize int
		send    int // payload bytes sent before the stall
		chunk   int
	}{
		{"header only", 64 << 10, 0, 1 << 16},
		{"a little", 64 << 10, 100, 1 << 16},
		{"half in small chunks", 64 << 10, big / 2, 1000},
		{"half in big chunks", 64 << 10, big / 2, 1 << 20},
		{"small buffer", 64, big / 4, 333},
		{"fits the buffer, header only", 2 << 20, 0, 1 << 16},
		{"fits the buffer, a little", 2 << 20, 5000, 1 << 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wire := AppendFrame(nil, 7, bytes.Repeat([]byte{0xab}, big))
			r := &stallReader{t: t, data: wire[:HeaderSize+tc.send], chunk: tc.chunk}
			fr := NewFrameReader(r, big, tc.bufSize)
			r.fr = fr
			if _, _, err := fr.Next(); !errors.Is(err, errStalled) {
				t.Fatalf("got %v, want the stall", err)
			}
			r.check()
			if tc.send == 0 && (cap(fr.scratch) != 0 || len(fr.buf) > initialReadBuffer) {
				t.Fatalf("header alone: scratch %d, buffer %d bytes", cap(fr.scratch), len(fr.buf))
			}
		})
	}
}

func TestFrameReaderLargeFramesThenSmall(t *testing.T) {
	// Large frames through the scratch path, in odd chunks, with small
	// frames between them that arrive in the same reads.
	sizes := []int{1 << 20, 3, 300 << 10, 0, 70000, 64<<10 - HeaderSize, 64<<10 - HeaderSize + 1, 5}
	wire, payloads := stream(sizes...)
	for _, chunk := range []int{1, 7, 4096, 100000, len(wire)} {
		r := &stallReader{t: t, data: wire, chunk: chunk}
		fr := NewFrameReader(r, 1<<20, 64<<10)
		for i, want := range payloads {
			h, p, err := fr.Next()
			if err != nil {
				t.Fatalf("chunk %d: frame %d: %v", chunk, i, err)
			}
			if h.Type != MsgType(i+1) || !bytes.Equal(p, want) {
				t.Fatalf("chunk %d: frame %d: type %d, %d bytes; want type %d, %d bytes", chunk, i, h.Type, len(p), i+1, len(want))
			}
		}
		if _, _, err := fr.Next(); !errors.Is(err, errStalled) {
			t.Fatalf("chunk %d: after the last frame: %v", chunk, err)
		}
	}
}

func TestFrameReaderIdleCostsLittle(t *testing.T) {
	// A reader that has read one small frame holds the initial buffer
	// only, whatever the configured read buffer size.
	wire := AppendFrame(nil, 1, []byte("identify"))
	fr := NewFrameReader(bytes.NewReader(wire), 1<<20, 64<<10)
	if _, _, err := fr.Next(); err != nil {
		t.Fatal(err)
	}
	if len(fr.buf) != initialReadBuffer {
		t.Fatalf("read buffer %d bytes, want %d", len(fr.buf), initialReadBuffer)
	}
}

func TestFrameReaderStreamGrowsBuffer(t *testing.T) {
	// A stream of small frames that fills every read grows the buffer to
	// its configured size (fewer system calls), and no further.
	wire, _ := stream(make([]int, 5000)...)
	for range 5000 {
		wire = AppendFrame(wire, 1, make([]byte, 56))
	}
	fr := NewFrameReader(bytes.NewReader(wire), 1024, 32<<10)
	for {
		if _, _, err := fr.Next(); err != nil {
			if err != io.EOF {
				t.Fatal(err)
			}
			break
		}
	}
	if len(fr.buf) != 32<<10 {
		t.Fatalf("read buffer %d bytes after a stream, want 32 KiB", len(fr.buf))
	}
}
