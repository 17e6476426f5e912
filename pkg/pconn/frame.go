package pconn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
)

// Version is the only frame format version this package speaks.
const Version = 1

// HeaderSize is the size in bytes of the fixed frame header.
const HeaderSize = 8

// MsgType is a frame's message type. Applications use 1 to MaxUserType;
// 0 is invalid and the types above MaxUserType belong to pconn itself.
type MsgType uint16

// MaxUserType is the largest message type an application may use.
const MaxUserType MsgType = 0xFEFF

// Control frame types, used by pconn itself and never passed to handlers.
// ONLY APPEND: the numbers are part of the protocol.
const (
	// TypePing asks the peer for a TypePong; sent when the link is idle.
	TypePing MsgType = 0xFF01
	// TypePong answers a TypePing.
	TypePong MsgType = 0xFF02
	// TypeGoodbye announces a graceful close: no frame follows it.
	TypeGoodbye MsgType = 0xFF03
	// TypeError carries a one-line reason before the sender closes the
	// session because of the receiver's protocol error.
	TypeError MsgType = 0xFF04
)

func (t MsgType) isControl() bool { return t > MaxUserType }

func (t MsgType) String() string {
	switch t {
	case TypePing:
		return "ping"
	case TypePong:
		return "pong"
	case TypeGoodbye:
		return "goodbye"
	case TypeError:
		return "error"
	}
	return fmt.Sprintf("%d", uint16(t))
}

// Header is the fixed part of a frame. On the wire it is, in network byte
// order: version (1 byte), flags (1 byte), type (2 bytes), payload length
// (4 bytes).
type Header struct {
	Version uint8
	// Flags are reserved: senders set 0, receivers ignore unknown bits.
	Flags  uint8
	Type   MsgType
	Length uint32
}

// Errors that describe a peer's protocol violation. They are wrapped in a
// *ProtocolError that says where it happened.
var (
	// ErrBadVersion: the header's version is not Version.
	ErrBadVersion = errors.New("unsupported frame version")
	// ErrBadType: type 0, or a reserved type pconn does not know.
	ErrBadType = errors.New("invalid message type")
	// ErrFrameTooLarge: the header announces more than the maximum frame size.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrTruncated: the stream ended inside a frame.
	ErrTruncated = errors.New("truncated frame")
)

// ProtocolError is a frame the peer should not have sent. The session that
// read it is closed; other sessions are not affected.
type ProtocolError struct {
	// Err is one of ErrBadVersion, ErrBadType, ErrFrameTooLarge, ErrTruncated.
	Err error
	// Header is the offending frame's header, as far as it was read.
	Header Header
	// Max is the maximum frame size in force (for ErrFrameTooLarge).
	Max int
	// Snippet is the header's raw bytes, for the log.
	Snippet [HeaderSize]byte
}

func (e *ProtocolError) Error() string {
	switch e.Err {
	case ErrFrameTooLarge:
		return fmt.Sprintf("pconn: %v: type %s announces %d bytes, maximum is %d", e.Err, e.Header.Type, e.Header.Length, e.Max)
	case ErrBadVersion:
		return fmt.Sprintf("pconn: %v %d (want %d), header % x", e.Err, e.Header.Version, Version, e.Snippet)
	case ErrBadType:
		return fmt.Sprintf("pconn: %v %d, header % x", e.Err, uint16(e.Header.Type), e.Snippet)
	}
	return fmt.Sprintf("pconn: %v (type %s, length %d)", e.Err, e.Header.Type, e.Header.Length)
}

func (e *ProtocolError) Unwrap() error { return e.Err }

// ParseHeader decodes and checks a header from the first HeaderSize bytes
// of b. maxPayload is the largest payload accepted; a larger announced
// length fails with ErrFrameTooLarge before anything else is read.
func ParseHeader(b []byte, maxPayload int) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, &ProtocolError{Err: ErrTruncated}
	}
	h := Header{
		Version: b[0],
		Flags:   b[1],
		Type:    MsgType(binary.BigEndian.Uint16(b[2:4])),
		Length:  binary.BigEndian.Uint32(b[4:8]),
	}
	var perr *ProtocolError
	switch {
	case h.Version != Version:
		perr = &ProtocolError{Err: ErrBadVersion, Header: h}
	case h.Type == 0 || (h.Type.isControl() && h.Type > TypeError):
		perr = &ProtocolError{Err: ErrBadType, Header: h}
	case uint64(h.Length) > uint64(maxPayload):
		perr = &ProtocolError{Err: ErrFrameTooLarge, Header: h, Max: maxPayload}
	default:
		return h, nil
	}
	copy(perr.Snippet[:], b[:HeaderSize])
	return h, perr
}

// AppendHeader appends the encoding of h to dst.
func AppendHeader(dst []byte, h Header) []byte {
	return append(dst, h.Version, h.Flags, byte(h.Type>>8), byte(h.Type),
		byte(h.Length>>24), byte(h.Length>>16), byte(h.Length>>8), byte(h.Length))
}

// AppendFrame appends a whole frame of type t carrying payload to dst.
func AppendFrame(dst []byte, t MsgType, payload []byte) []byte {
	dst = AppendHeader(dst, Header{Version: Version, Type: t, Length: uint32(len(payload))})
	return append(dst, payload...)
}

// maxKeptScratch is the largest scratch buffer kept between frames.
const maxKeptScratch = 256 << 10

// initialReadBuffer is the size a FrameReader's read buffer starts at
// (or its whole size when smaller). It grows, by doubling, up to the size
// given to NewFrameReader as data arrives: when a frame that fits the
// full size is longer, or when a read fills it (a stream of frames). So
// an idle session costs this much, not the full size.
const initialReadBuffer = 4 << 10

// FrameReader reads frames from a byte stream. It checks each header
// before reading or allocating the payload, and allocates only as bytes
// actually arrive, never from a header's announced length alone: a peer
// that announces a large frame and sends nothing costs nothing. It does
// not allocate per frame once warm: the payload it returns is valid until
// the next call to Next.
type FrameReader struct {
	r       io.Reader
	max     int           // largest payload accepted
	lim     *atomic.Int64 // if set, replaces max: read once a header has arrived
	buf     []byte        // read buffer, grown up to bufMax; unread data is buf[rpos:wpos]
	rpos    int
	wpos    int
	bufMax  int
	full    bool   // the last read filled buf: grow it at the next one
	err     error  // the read error met, returned once buf[rpos:wpos] runs out
	scratch []byte // for payloads larger than bufMax
}

// NewFrameReader reads frames of at most maxPayload payload bytes from r,
// buffering up to bufSize bytes: frames (header included) that fit are
// returned without a copy. The buffer starts small and grows with the
// data received.
func NewFrameReader(r io.Reader, maxPayload, bufSize int) *FrameReader {
	if bufSize < HeaderSize {
		bufSize = HeaderSize
	}
	return &FrameReader{r: r, max: maxPayload, bufMax: bufSize}
}

// reset makes fr read from r, keeping its buffers (for tests).
func (fr *FrameReader) reset(r io.Reader) {
	fr.r, fr.rpos, fr.wpos, fr.err, fr.full = r, 0, 0, nil, false
}

// Buffered reports how many bytes are read from the stream but not yet
// returned as frames.
func (fr *FrameReader) Buffered() int { return fr.wpos - fr.rpos }

// appFrameBuffered reports whether a whole application frame is
// buffered, after any whole control frames: whether Next would return
// an application frame without reading from the stream.
func (fr *FrameReader) appFrameBuffered() bool {
	for pos := fr.rpos; ; {
		if fr.wpos-pos < HeaderSize {
			return false
		}
		h, err := ParseHeader(fr.buf[pos:fr.wpos], fr.max)
		if err != nil {
			return true // Next reports the error without waiting
		}
		n := HeaderSize + int(h.Length)
		if n > fr.wpos-pos {
			return false
		}
		if !h.Type.isControl() {
			return true
		}
		pos += n
	}
}

// Next returns the next frame. The payload aliases an internal buffer and
// is valid only until the next call. At a clean end of stream between
// frames it returns io.EOF; inside a frame, a *ProtocolError wrapping
// ErrTruncated. A header that fails ParseHeader returns its error.
func (fr *FrameReader) Next() (Header, []byte, error) {
	if cap(fr.scratch) > maxKeptScratch {
		fr.scratch = nil // a burst of large frames does not pin memory
	}
	if err := fr.fill(HeaderSize); err != nil {
		if fr.Buffered() == 0 && err == io.EOF {
			return Header{}, nil, io.EOF
		}
		return Header{}, nil, truncated(Header{}, err)
	}
	limit := fr.max
	if fr.lim != nil {
		limit = int(fr.lim.Load()) // Session.SetIdentified may have raised it meanwhile
	}
	h, err := ParseHeader(fr.buf[fr.rpos:fr.wpos], limit)
	if err != nil {
		return h, nil, err
	}
	n := HeaderSize + int(h.Length)
	if n <= fr.bufMax {
		if err := fr.fill(n); err != nil {
			return h, nil, truncated(h, err)
		}
		p := fr.buf[fr.rpos+HeaderSize : fr.rpos+n : fr.rpos+n]
		fr.rpos += n
		return h, p, nil
	}
	// Larger than the buffer: copy into a scratch buffer that grows, as
	// the payload arrives, up to the (already checked) announced length.
	fr.rpos += HeaderSize
	p, err := fr.readLarge(int(h.Length))
	if err != nil {
		return h, nil, truncated(h, err)
	}
	return h, p, nil
}

// fill reads until at least n <= bufMax bytes are buffered.
func (fr *FrameReader) fill(n int) error {
	for fr.wpos-fr.rpos < n {
		if fr.err != nil {
			return fr.err
		}
		if fr.wpos == len(fr.buf) || fr.rpos+n > len(fr.buf) {
			fr.makeRoom()
		}
		fr.read()
	}
	return nil
}

// makeRoom moves the unread bytes to the front of buf and grows it (by
// doubling, up to bufMax) when they fill it, or when the last read filled
// most of it (a stream: bigger reads save system calls). Growth is thus
// bounded by twice the bytes received, whatever a header announces.
func (fr *FrameReader) makeRoom() {
	unread := fr.wpos - fr.rpos
	size := len(fr.buf)
	switch {
	case size == 0:
		size = min(initialReadBuffer, fr.bufMax)
	case (unread == size || fr.full) && size < fr.bufMax:
		size = min(2*size, fr.bufMax)
	}
	fr.full = false
	if size != len(fr.buf) {
		nb := make([]byte, size)
		copy(nb, fr.buf[fr.rpos:fr.wpos])
		fr.buf = nb
	} else if fr.rpos > 0 {
		copy(fr.buf, fr.buf[fr.rpos:fr.wpos])
	}
	fr.rpos, fr.wpos = 0, unread
}

// read does one read into the free end of buf, recording its error.
func (fr *FrameReader) read() {
	free := fr.buf[fr.wpos:]
	m, err := fr.readInto(free)
	fr.wpos += m
	fr.full = m > 0 && fr.wpos == len(fr.buf) && 2*m >= len(fr.buf)
	if err != nil {
		fr.err = err
	}
}

// readInto reads into b (not empty) like bufio.Reader: a reader that keeps
// returning nothing and no error fails with io.ErrNoProgress.
func (fr *FrameReader) readInto(b []byte) (int, error) {
	for range 100 {
		if m, err := fr.r.Read(b); m > 0 || err != nil {
			return m, err
		}
	}
	return 0, io.ErrNoProgress
}

// readLarge reads a payload of n > bufMax bytes, the bytes already
// buffered first, into scratch, which grows (by doubling) as the payload
// arrives, never beyond n.
func (fr *FrameReader) readLarge(n int) ([]byte, error) {
	p := fr.scratch[:0]
	grow := func(need int) {
		if cap(p) >= need {
			return
		}
		c := min(n, max(2*cap(p), need, len(fr.buf)))
		np := make([]byte, len(p), c)
		copy(np, p)
		p = np
		fr.scratch = np
	}
	for len(p) < n {
		if k := min(fr.wpos-fr.rpos, n-len(p)); k > 0 {
			grow(len(p) + k)
			p = append(p, fr.buf[fr.rpos:fr.rpos+k]...)
			fr.rpos += k
			continue
		}
		if fr.err != nil {
			return nil, fr.err
		}
		if len(p) < cap(p) {
			// Room left: read straight into it.
			m, err := fr.readInto(p[len(p):min(cap(p), n)])
			p = p[:len(p)+m]
			if err != nil {
				fr.err = err
			}
			continue
		}
		// Full (or none yet): wait for more bytes in the read buffer before
		// growing it.
		fr.rpos, fr.wpos = 0, 0
		if len(fr.buf) == 0 {
			fr.makeRoom()
		}
		fr.read()
	}
	return p, nil
}

func truncated(h Header, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return &ProtocolError{Err: ErrTruncated, Header: h}
	}
	return err
}
