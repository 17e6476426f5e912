package meds

import (
	"errors"
	"io"
)

// minReadBuf is the initial read buffer of a Reader; it grows, once, up
// to the largest message the limit allows only when such a message comes.
const minReadBuf = 16 << 10

// Reader parses a stream of MEDS messages (a TPCE connection). It reads
// in large chunks into one buffer and returns messages whose Text aliases
// that buffer, so a steady stream is parsed without allocating. The
// header is checked, the text limit included, before any of the text is
// buffered.
//
// A Reader is not safe for concurrent use.
type Reader struct {
	r       io.Reader
	buf     []byte
	start   int   // first unconsumed octet in buf
	end     int   // one past the last buffered octet
	off     int64 // stream offset of buf[start]
	maxText uint32
	err     error // sticky read error
}

// NewReader returns a Reader on r that refuses text longer than maxText
// octets (DefaultMaxText when 0).
func NewReader(r io.Reader, maxText uint32) *Reader {
	if maxText == 0 {
		maxText = DefaultMaxText
	}
	n := minReadBuf
	if HeaderLen+int(maxText) < n {
		n = HeaderLen + int(maxText)
	}
	return &Reader{r: r, buf: make([]byte, n), maxText: maxText}
}

// Buffered returns how many octets of the next message(s) are buffered
// already: 0 between messages, more inside one (a partial header or
// text). A read deadline chosen from it tells a client that stalls
// inside a message from one that is silent between messages.
func (r *Reader) Buffered() int { return r.end - r.start }

// Offset returns the stream offset of the next message.
func (r *Reader) Offset() int64 { return r.off }

// Next returns the next message. Its Text is valid until the next call.
// At a clean end of stream it returns io.EOF; a stream that ends inside a
// message gives a *ProtocolError matching ErrTruncated; a bad header gives
// a *ProtocolError matching ErrVersion, ErrType or ErrTooLong, after which
// the stream cannot be resynchronised and the connection should be
// closed. Read errors are returned as they are.
func (r *Reader) Next() (Message, error) {
	if err := r.fill(HeaderLen); err != nil {
		return Message{}, err
	}
	h := DecodeHeader(r.buf[r.start:])
	if err := CheckHeader(h, r.maxText); err != nil {
		var pe *ProtocolError
		if errors.As(err, &pe) {
			pe.Offset = r.off
			pe.Snippet = snippet(r.buf[r.start:r.end])
		}
		return Message{}, err
	}
	total := HeaderLen + int(h.Length)
	if err := r.fill(total); err != nil {
		return Message{}, err
	}
	m := Message{Type: h.Type, Flags: h.Flags, ID: h.ID, Text: r.buf[r.start+HeaderLen : r.start+total : r.start+total]}
	r.start += total
	r.off += int64(total)
	if r.start == r.end {
		r.start, r.end = 0, 0
	}
	return m, nil
}

// fill makes at least n octets available from r.start.
func (r *Reader) fill(n int) error {
	if r.end-r.start >= n {
		return nil
	}
	if len(r.buf)-r.start < n {
		buf := r.buf
		if len(buf) < n {
			buf = make([]byte, n)
		}
		r.end = copy(buf, r.buf[r.start:r.end])
		r.start = 0
		r.buf = buf
	}
	for r.end-r.start < n {
		if r.err != nil {
			if r.err == io.EOF {
				if r.end == r.start {
					return io.EOF
				}
				return &ProtocolError{Kind: ErrTruncated, Offset: r.off, Snippet: snippet(r.buf[r.start:r.end])}
			}
			return r.err
		}
		k, err := r.r.Read(r.buf[r.end:])
		r.end += k
		if err != nil {
			r.err = err
		}
	}
	return nil
}
