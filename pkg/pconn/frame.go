package pconn

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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

// FrameReader reads frames from a byte stream. It checks each header
// before reading or allocating the payload and does not allocate per frame
// once warm: the payload it returns is valid until the next call to Next.
type FrameReader struct {
	br      *bufio.Reader
	max     int
	scratch []byte // for payloads larger than the bufio buffer
	pending int    // bytes of the previous frame still to discard
}

// NewFrameReader reads frames of at most maxPayload payload bytes from r,
// buffering bufSize bytes (payloads that fit are returned without a copy).
func NewFrameReader(r io.Reader, maxPayload, bufSize int) *FrameReader {
	if bufSize < HeaderSize {
		bufSize = HeaderSize
	}
	return &FrameReader{br: bufio.NewReaderSize(r, bufSize), max: maxPayload}
}

// Buffered reports how many bytes are read from the stream but not yet
// returned as frames.
func (fr *FrameReader) Buffered() int { return fr.br.Buffered() - fr.pending }

// Next returns the next frame. The payload aliases an internal buffer and
// is valid only until the next call. At a clean end of stream between
// frames it returns io.EOF; inside a frame, a *ProtocolError wrapping
// ErrTruncated. A header that fails ParseHeader returns its error.
func (fr *FrameReader) Next() (Header, []byte, error) {
	if cap(fr.scratch) > maxKeptScratch {
		fr.scratch = nil // a burst of large frames does not pin memory
	}
	if fr.pending > 0 {
		if _, err := fr.br.Discard(fr.pending); err != nil {
			return Header{}, nil, err
		}
		fr.pending = 0
	}
	hb, err := fr.br.Peek(HeaderSize)
	if err != nil {
		if err == io.EOF && len(hb) == 0 {
			return Header{}, nil, io.EOF
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return Header{}, nil, &ProtocolError{Err: ErrTruncated}
		}
		return Header{}, nil, err
	}
	h, err := ParseHeader(hb, fr.max)
	if err != nil {
		return h, nil, err
	}
	n := HeaderSize + int(h.Length)
	if n <= fr.br.Size() {
		b, err := fr.br.Peek(n)
		if err != nil {
			return h, nil, truncated(h, err)
		}
		fr.pending = n
		return h, b[HeaderSize:n:n], nil
	}
	// Larger than the buffer: copy into a scratch buffer that grows up to
	// the (already checked) announced length.
	if _, err := fr.br.Discard(HeaderSize); err != nil {
		return h, nil, truncated(h, err)
	}
	if cap(fr.scratch) < int(h.Length) {
		fr.scratch = make([]byte, h.Length)
	}
	p := fr.scratch[:h.Length]
	if _, err := io.ReadFull(fr.br, p); err != nil {
		return h, nil, truncated(h, err)
	}
	return h, p, nil
}

func truncated(h Header, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return &ProtocolError{Err: ErrTruncated, Header: h}
	}
	return err
}
