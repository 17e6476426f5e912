package appliance

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// MaxTypeName bounds the type name of an application message: longer
// names are refused before any lookup.
const MaxTypeName = 256

// maxErrorText bounds the error text of a reply, both ways.
const maxErrorText = 1024

// envelope is a decoded AppMessage (hellopics.v1.AppMessage), parsed in
// place: typ, body and errText alias the frame's bytes.
type envelope struct {
	typ     []byte
	body    []byte
	call    uint64
	reply   bool
	errText []byte
	epoch   uint64
}

// header is what an outgoing AppMessage carries besides its type and
// body.
type header struct {
	call    uint64
	reply   bool
	errText string
	// epoch is the sender's mastership epoch (Runtime.stamp).
	epoch uint64
}

// The AppMessage field numbers (proto/hellopics/v1/component.proto).
const (
	fieldType  = 1
	fieldBody  = 2
	fieldCall  = 3
	fieldReply = 4
	fieldError = 5
	fieldEpoch = 6
)

var errEnvelope = errors.New("malformed application message")

// fieldMessages is AppBatch's field of messages.
const fieldMessages = 1

// maxRecordPrefix is the most a record's prefix takes: the tag of
// AppBatch.messages and a length.
const maxRecordPrefix = 1 + binary.MaxVarintLen64

// eachEnvelope parses an AppBatch without allocating and calls fn with
// each message in order; it stops at the first error. Unknown fields
// are skipped, as protobuf does.
func eachEnvelope(b []byte, fn func(envelope) error) error {
	for len(b) > 0 {
		num, wt, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %v", errEnvelope, protowire.ParseError(n))
		}
		if num > protowire.MaxValidNumber {
			return fmt.Errorf("%w: field number %d", errEnvelope, num)
		}
		b = b[n:]
		if num != fieldMessages {
			n := protowire.ConsumeFieldValue(num, wt, b)
			if n < 0 {
				return fmt.Errorf("%w: field %d: %v", errEnvelope, num, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		if wt != protowire.BytesType {
			return fmt.Errorf("%w: messages of wire type %d", errEnvelope, wt)
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return fmt.Errorf("%w: %v", errEnvelope, protowire.ParseError(n))
		}
		b = b[n:]
		e, err := parseEnvelope(v)
		if err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// appendRecord appends one AppMessage to dst as a record of an
// AppBatch (pconn.Session.SendRecord): the envelope is encoded after
// room for the longest prefix, then the prefix is written just before
// it. It returns the record, which starts inside the returned buffer,
// and that buffer (dst grown), for reuse.
func appendRecord(dst []byte, typ string, m proto.Message, h header) (rec, buf []byte, err error) {
	base := len(dst)
	dst = append(dst, make([]byte, maxRecordPrefix)...)
	dst, err = appendEnvelope(dst, typ, m, h)
	if err != nil {
		return nil, dst, err
	}
	body := len(dst) - base - maxRecordPrefix
	var pre [maxRecordPrefix]byte
	p := protowire.AppendTag(pre[:0], fieldMessages, protowire.BytesType)
	p = protowire.AppendVarint(p, uint64(body))
	start := base + maxRecordPrefix - len(p)
	copy(dst[start:], p)
	return dst[start:], dst, nil
}

// parseEnvelope parses an AppMessage without allocating. Unknown fields
// are skipped, as protobuf does; a field of the wrong wire type, a
// truncated one, a type name over MaxTypeName or an error text over the
// limit is an error.
func parseEnvelope(b []byte) (envelope, error) {
	var e envelope
	for len(b) > 0 {
		num, wt, n := protowire.ConsumeTag(b)
		if n < 0 {
			return e, fmt.Errorf("%w: %v", errEnvelope, protowire.ParseError(n))
		}
		if num > protowire.MaxValidNumber {
			return e, fmt.Errorf("%w: field number %d", errEnvelope, num)
		}
		b = b[n:]
		switch {
		case (num == fieldType || num == fieldBody || num == fieldError) && wt == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return e, fmt.Errorf("%w: field %d: %v", errEnvelope, num, protowire.ParseError(n))
			}
			switch num {
			case fieldType:
				e.typ = v
			case fieldBody:
				e.body = v
			default:
				e.errText = v
			}
			b = b[n:]
		case (num == fieldCall || num == fieldReply || num == fieldEpoch) && wt == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return e, fmt.Errorf("%w: field %d: %v", errEnvelope, num, protowire.ParseError(n))
			}
			switch num {
			case fieldCall:
				e.call = v
			case fieldReply:
				e.reply = v != 0
			default:
				e.epoch = v
			}
			b = b[n:]
		case num == fieldType || num == fieldBody || num == fieldError || num == fieldCall || num == fieldReply || num == fieldEpoch:
			return e, fmt.Errorf("%w: field %d has wire type %d", errEnvelope, num, wt)
		default:
			n := protowire.ConsumeFieldValue(num, wt, b)
			if n < 0 {
				return e, fmt.Errorf("%w: field %d: %v", errEnvelope, num, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	if len(e.typ) > MaxTypeName {
		return e, fmt.Errorf("%w: type name of %d bytes (limit %d)", errEnvelope, len(e.typ), MaxTypeName)
	}
	if !utf8.Valid(e.typ) {
		return e, fmt.Errorf("%w: type name is not UTF-8", errEnvelope)
	}
	if !utf8.Valid(e.errText) {
		return e, fmt.Errorf("%w: error text is not UTF-8", errEnvelope)
	}
	if len(e.errText) > maxErrorText {
		e.errText = e.errText[:maxErrorText]
	}
	if len(e.typ) == 0 && !e.reply {
		return e, fmt.Errorf("%w: no type", errEnvelope)
	}
	return e, nil
}

// outRecord is one AppMessage on its way out, written as an AppBatch
// record straight into a session's send queue (pconn.RecordWriter).
type outRecord struct {
	typ      string
	m        proto.Message
	bodySize int
	header
	envSize int
}

// set fills r and returns the record's size.
func (r *outRecord) set(typ string, m proto.Message, h header) int {
	if len(h.errText) > maxErrorText {
		h.errText = h.errText[:maxErrorText]
	}
	*r = outRecord{typ: typ, m: m, header: h}
	call, reply, errText := h.call, h.reply, h.errText
	n := 0
	if typ != "" {
		n += 1 + protowire.SizeBytes(len(typ))
	}
	if m != nil {
		r.bodySize = proto.Size(m)
		n += 1 + protowire.SizeBytes(r.bodySize)
	}
	if call != 0 {
		n += 1 + protowire.SizeVarint(call)
	}
	if reply {
		n += 2
	}
	if errText != "" {
		n += 1 + protowire.SizeBytes(len(errText))
	}
	if h.epoch != 0 {
		n += 1 + protowire.SizeVarint(h.epoch)
	}
	r.envSize = n
	return 1 + protowire.SizeBytes(n)
}

// AppendRecord is pconn.RecordWriter: the record's prefix, then the
// envelope, the body marshalled in place.
func (r *outRecord) AppendRecord(dst []byte) []byte {
	dst = protowire.AppendTag(dst, fieldMessages, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(r.envSize))
	if r.typ != "" {
		dst = protowire.AppendTag(dst, fieldType, protowire.BytesType)
		dst = protowire.AppendString(dst, r.typ)
	}
	if r.m != nil {
		dst = protowire.AppendTag(dst, fieldBody, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(r.bodySize))
		// A failure, or a message that changed since set, shows as a
		// record of the wrong size, which the session refuses.
		dst, _ = proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(dst, r.m)
	}
	if r.call != 0 {
		dst = protowire.AppendTag(dst, fieldCall, protowire.VarintType)
		dst = protowire.AppendVarint(dst, r.call)
	}
	if r.reply {
		dst = protowire.AppendTag(dst, fieldReply, protowire.VarintType)
		dst = protowire.AppendVarint(dst, 1)
	}
	if r.errText != "" {
		dst = protowire.AppendTag(dst, fieldError, protowire.BytesType)
		dst = protowire.AppendString(dst, r.errText)
	}
	if r.epoch != 0 {
		dst = protowire.AppendTag(dst, fieldEpoch, protowire.VarintType)
		dst = protowire.AppendVarint(dst, r.epoch)
	}
	return dst
}

// appendEnvelope appends an AppMessage carrying m (nil for none) to dst.
func appendEnvelope(dst []byte, typ string, m proto.Message, h header) ([]byte, error) {
	call, reply, errText := h.call, h.reply, h.errText
	if typ != "" {
		dst = protowire.AppendTag(dst, fieldType, protowire.BytesType)
		dst = protowire.AppendString(dst, typ)
	}
	if m != nil {
		size := proto.Size(m)
		dst = protowire.AppendTag(dst, fieldBody, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(size))
		start := len(dst)
		var err error
		dst, err = proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(dst, m)
		if err != nil {
			return dst, fmt.Errorf("appliance: marshal %s: %w", typ, err)
		}
		if len(dst)-start != size {
			return dst, fmt.Errorf("appliance: marshal %s: message changed while being sent", typ)
		}
	}
	if call != 0 {
		dst = protowire.AppendTag(dst, fieldCall, protowire.VarintType)
		dst = protowire.AppendVarint(dst, call)
	}
	if reply {
		dst = protowire.AppendTag(dst, fieldReply, protowire.VarintType)
		dst = protowire.AppendVarint(dst, 1)
	}
	if errText != "" {
		if len(errText) > maxErrorText {
			errText = errText[:maxErrorText]
		}
		dst = protowire.AppendTag(dst, fieldError, protowire.BytesType)
		dst = protowire.AppendString(dst, errText)
	}
	if h.epoch != 0 {
		dst = protowire.AppendTag(dst, fieldEpoch, protowire.VarintType)
		dst = protowire.AppendVarint(dst, h.epoch)
	}
	return dst, nil
}
