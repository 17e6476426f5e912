package meds

import (
	"errors"
	"fmt"
	"strconv"
)

// Sentinel errors. Every error this package returns for bad input matches
// one of them with errors.Is, and carries the details in a typed error
// (*ProtocolError or *FragmentError).
var (
	// ErrVersion: the header's version is not Version.
	ErrVersion = errors.New("meds: unsupported version")
	// ErrType: the header's type is not defined by version 1.
	ErrType = errors.New("meds: unknown message type")
	// ErrTooLong: the header announces more text than the limit.
	ErrTooLong = errors.New("meds: text longer than the limit")
	// ErrShort: fewer octets than a header.
	ErrShort = errors.New("meds: message shorter than its header")
	// ErrLength: a whole message's size disagrees with its header.
	ErrLength = errors.New("meds: message size disagrees with its header")
	// ErrTruncated: the stream ended inside a message.
	ErrTruncated = errors.New("meds: stream ended inside a message")

	// ErrFragment: the variable bindings are not a valid MEDS fragment.
	ErrFragment = errors.New("meds: malformed fragment")
)

// ProtocolError describes a MEDS framing violation: which rule, the header
// as read, the limit in force and where in the stream it happened.
type ProtocolError struct {
	Kind    error  // one of the sentinel errors above
	Header  Header // the offending header, when one was read
	Limit   uint32 // the text limit, for ErrTooLong
	Offset  int64  // stream offset of the message start (Reader) or size (ParseMessage)
	Snippet string // a short quoted view of the offending octets, for logs
}

// Error returns a one-line description suitable for logs and relay errors.
func (e *ProtocolError) Error() string {
	switch e.Kind {
	case ErrVersion:
		return fmt.Sprintf("meds: version %d at offset %d, want %d", e.Header.Version, e.Offset, Version)
	case ErrType:
		return fmt.Sprintf("meds: unknown message type %d at offset %d", uint8(e.Header.Type), e.Offset)
	case ErrTooLong:
		return fmt.Sprintf("meds: %s id %d announces %d text octets, limit %d", e.Header.Type, e.Header.ID, e.Header.Length, e.Limit)
	case ErrLength:
		return fmt.Sprintf("meds: %s id %d announces %d text octets, got %d", e.Header.Type, e.Header.ID, e.Header.Length, e.Offset-HeaderLen)
	case ErrShort:
		return fmt.Sprintf("meds: %d octets %s, shorter than the %d-octet header", e.Offset, e.Snippet, HeaderLen)
	case ErrTruncated:
		return fmt.Sprintf("meds: stream ended inside a message starting at offset %d", e.Offset)
	}
	return fmt.Sprintf("meds: protocol error %v", e.Kind)
}

// Unwrap returns the sentinel, so errors.Is(err, ErrTooLong) works.
func (e *ProtocolError) Unwrap() error { return e.Kind }

// FragmentError says why a set of variable bindings is not a fragment,
// with the SNMP error-status an agent answers it with.
type FragmentError struct {
	Reason string // what is wrong, for logs
	Index  int    // 1-based index of the offending variable binding, 0 if none
	Status uint8  // SNMP error-status: wrongType(7), wrongLength(8) or wrongValue(10)
}

// SNMP error-status values used in fragment answers (RFC 3416).
const (
	StatusWrongType   uint8 = 7
	StatusWrongLength uint8 = 8
	StatusWrongValue  uint8 = 10
)

// Error returns the reason with the offending binding.
func (e *FragmentError) Error() string {
	if e.Index > 0 {
		return "meds: malformed fragment: varbind " + strconv.Itoa(e.Index) + ": " + e.Reason
	}
	return "meds: malformed fragment: " + e.Reason
}

// Unwrap returns ErrFragment.
func (e *FragmentError) Unwrap() error { return ErrFragment }

func snippet(b []byte) string {
	const max = 16
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "..."
	}
	return strconv.Quote(string(b))
}
