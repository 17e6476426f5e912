package pconn

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzFrameReader feeds arbitrary bytes to the decoder: it must never
// panic, never return a payload over the limit, and fail only with a
// ProtocolError or io.EOF.
func FuzzFrameReader(f *testing.F) {
	good, _ := stream(0, 5, 70)
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add(AppendFrame(nil, TypePing, nil))
	f.Add(AppendFrame(nil, TypeError, []byte("bad thing")))
	f.Add([]byte{2, 0, 0, 1, 0, 0, 0, 0})
	f.Add([]byte{1, 0, 0, 1, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	const max = 256
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := NewFrameReader(bytes.NewReader(data), max, 64)
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
