package pconn

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzFrameReader feeds arbitrary bytes to the decoder, with a read
// buffer size and a read chunk size taken from the fuzzer too: it must
// never panic, never return a payload over the limit or other than the
// input, fail only with a ProtocolError or io.EOF, and never hold more
// memory than the bytes it was given justify.
func FuzzFrameReader(f *testing.F) {
	good, _ := stream(0, 5, 70)
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add(AppendFrame(nil, TypePing, nil))
	f.Add(AppendFrame(nil, TypeError, []byte("bad thing")))
	f.Add([]byte{2, 0, 0, 1, 0, 0, 0, 0})
	f.Add([]byte{1, 0, 0, 1, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	// With the buffer and chunk sizes chosen (see below).
	f.Add(append([]byte{0, 0}, good...))   // 8-byte buffer, 1-byte reads
	f.Add(append([]byte{56, 16}, good...)) // 64-byte buffer, all at once
	f.Add(append([]byte{255, 7}, good...)) // 263-byte buffer, 8-byte reads
	f.Add(append([]byte{20, 3}, AppendFrame(nil, 9, make([]byte, 200))...))
	const max = 256
	f.Fuzz(func(t *testing.T, data []byte) {
		// The first two bytes, when present, choose the read buffer
		// (8..263 bytes, often smaller than a payload) and the chunk size
		// of the reads (1..16 bytes, or all at once).
		bufSize, chunk := 64, len(data)+1
		if len(data) >= 2 {
			bufSize, chunk = HeaderSize+int(data[0]), 1+int(data[1]%17)
			if data[1]%17 == 16 {
				chunk = len(data)
			}
			data = data[2:]
		}
		r := &stallReader{t: t, data: data, chunk: chunk, end: io.EOF}
		fr := NewFrameReader(r, max, bufSize)
		r.fr = fr
		consumed := 0
		for {
			h, p, err := fr.Next()
			if err != nil {
				var perr *ProtocolError
				if err != io.EOF && !errors.As(err, &perr) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				if err == io.EOF && consumed != len(data) {
					t.Fatalf("EOF after %d of %d bytes", consumed, len(data))
				}
				return
			}
			if len(p) > max || int(h.Length) != len(p) {
				t.Fatalf("payload %d bytes, header says %d, max %d", len(p), h.Length, max)
			}
			if !bytes.Equal(p, data[consumed+HeaderSize:consumed+HeaderSize+len(p)]) {
				t.Fatal("payload differs from input")
			}
			consumed += HeaderSize + len(p)
		}
	})
}
