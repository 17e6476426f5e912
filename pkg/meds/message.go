package meds

import (
	"encoding/binary"
	"fmt"
)

// Version is the only MEDS protocol version this package speaks.
const Version = 1

// HeaderLen is the size in octets of the fixed MEDS header.
const HeaderLen = 12

// DefaultMaxText is the largest text, in octets, a relay accepts by
// default (spec section 1).
const DefaultMaxText = 65536

// Type is the MEDS message type (header octet 1). The numeric values are
// part of the protocol: only append to this list.
type Type uint8

// The MEDS message types.
const (
	TypeCommand    Type = 1 // TPCE to agent
	TypeResponse   Type = 2 // agent to TPCE, answers a command
	TypeEvent      Type = 3 // agent to every events client
	TypeStatus     Type = 4 // agent to every status client (a status block)
	TypeRelayError Type = 5 // relay to TPCE: a command could not be delivered
)

// Valid reports whether t is one of the types defined by version 1.
func (t Type) Valid() bool { return t >= TypeCommand && t <= TypeRelayError }

// String returns the lower-case name of t, or "type(N)" when unknown.
func (t Type) String() string {
	switch t {
	case TypeCommand:
		return "command"
	case TypeResponse:
		return "response"
	case TypeEvent:
		return "event"
	case TypeStatus:
		return "status"
	case TypeRelayError:
		return "relay-error"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Header is the fixed 12-octet MEDS header, all integers big-endian.
type Header struct {
	Version uint8  // always Version on the wire
	Type    Type   // message type
	Flags   uint16 // 0 when sent; unknown bits are ignored when received
	ID      uint32 // command id, or the agent's sequence number
	Length  uint32 // number of text octets that follow
}

// PutHeader writes h into the first HeaderLen octets of b, which must be
// at least that long.
func PutHeader(b []byte, h Header) {
	_ = b[HeaderLen-1]
	b[0] = h.Version
	b[1] = byte(h.Type)
	binary.BigEndian.PutUint16(b[2:4], h.Flags)
	binary.BigEndian.PutUint32(b[4:8], h.ID)
	binary.BigEndian.PutUint32(b[8:12], h.Length)
}

// DecodeHeader reads a header from the first HeaderLen octets of b without
// checking it; see CheckHeader. It panics if b is shorter than HeaderLen.
func DecodeHeader(b []byte) Header {
	_ = b[HeaderLen-1]
	return Header{
		Version: b[0],
		Type:    Type(b[1]),
		Flags:   binary.BigEndian.Uint16(b[2:4]),
		ID:      binary.BigEndian.Uint32(b[4:8]),
		Length:  binary.BigEndian.Uint32(b[8:12]),
	}
}

// CheckHeader validates h against version 1 and the text limit maxText.
// The error is a *ProtocolError matching ErrVersion, ErrType or ErrTooLong.
func CheckHeader(h Header, maxText uint32) error {
	switch {
	case h.Version != Version:
		return &ProtocolError{Kind: ErrVersion, Header: h}
	case !h.Type.Valid():
		return &ProtocolError{Kind: ErrType, Header: h}
	case h.Length > maxText:
		return &ProtocolError{Kind: ErrTooLong, Header: h, Limit: maxText}
	}
	return nil
}

// Message is one MEDS message. Text aliases the buffer it was parsed
// from unless the caller copies it.
type Message struct {
	Type  Type   // message type
	Flags uint16 // header flags, 0 when sent
	ID    uint32 // command id, or the agent's sequence number
	Text  []byte // the opaque text
}

// Header returns the header that precedes m on the wire.
func (m Message) Header() Header {
	return Header{Version: Version, Type: m.Type, Flags: m.Flags, ID: m.ID, Length: uint32(len(m.Text))}
}

// EncodedLen is the number of octets m takes on the wire.
func (m Message) EncodedLen() int { return HeaderLen + len(m.Text) }

// AppendMessage appends the wire form of m (header then text) to dst and
// returns the extended slice.
func AppendMessage(dst []byte, m Message) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, HeaderLen)...)
	PutHeader(dst[n:], m.Header())
	return append(dst, m.Text...)
}

// ParseMessage decodes exactly one whole message from b, as carried in
// SNMP after reassembly. The text aliases b. It fails when b is shorter or
// longer than the header announces, or the header is invalid.
func ParseMessage(b []byte, maxText uint32) (Message, error) {
	if len(b) < HeaderLen {
		return Message{}, &ProtocolError{Kind: ErrShort, Offset: int64(len(b)), Snippet: snippet(b)}
	}
	h := DecodeHeader(b)
	if err := CheckHeader(h, maxText); err != nil {
		return Message{}, err
	}
	if uint64(len(b)-HeaderLen) != uint64(h.Length) {
		return Message{}, &ProtocolError{Kind: ErrLength, Header: h, Offset: int64(len(b))}
	}
	return Message{Type: h.Type, Flags: h.Flags, ID: h.ID, Text: b[HeaderLen:]}, nil
}
