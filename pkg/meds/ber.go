package meds

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gosnmp/gosnmp"
)

// This file is the SNMPv2c fast path: an allocation-free encoder and a
// strict parser for exactly the messages MEDS exchanges (SetRequest,
// InformRequest, SNMPv2-Trap and their Responses, carrying one
// fragment). Anything else, SNMPv3 included, goes through gosnmp
// (Decoder); the tests check both agree octet for octet.

// BER tags used by the fast path.
const (
	tagInteger     = 0x02
	tagOctetString = 0x04
	tagOID         = 0x06
	tagSequence    = 0x30
	tagGauge32     = 0x42
	tagTimeTicks   = 0x43
)

// ErrNotFastPath: the octets are not a message the SNMPv2c fast path
// handles; decode them with Decoder instead.
var ErrNotFastPath = errors.New("meds: not an SNMPv2c MEDS message")

// Encoded OIDs (contents octets).
var (
	encTransfer  = mustEncodeOID(OIDTransfer)
	encFragment  = mustEncodeOID(OIDFragment)
	encFragments = mustEncodeOID(OIDFragments)
	encData      = mustEncodeOID(OIDData)
	encMessage   = mustEncodeOID(OIDMessage)
	encSysUpTime = mustEncodeOID(OIDSysUpTime)
	encTrapOID   = mustEncodeOID(OIDSnmpTrapOID)
)

func mustEncodeOID(s string) []byte {
	parts := strings.Split(strings.TrimPrefix(s, "."), ".")
	arcs := make([]uint64, len(parts))
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			panic("meds: bad OID constant " + s)
		}
		arcs[i] = v
	}
	out := []byte{byte(arcs[0]*40 + arcs[1])}
	for _, a := range arcs[2:] {
		var tmp [10]byte
		n := len(tmp)
		n--
		tmp[n] = byte(a & 0x7f)
		for a >>= 7; a > 0; a >>= 7 {
			n--
			tmp[n] = byte(a&0x7f) | 0x80
		}
		out = append(out, tmp[n:]...)
	}
	return out
}

func lenOfLen(n int) int {
	switch {
	case n < 0x80:
		return 1
	case n < 0x100:
		return 2
	case n < 0x10000:
		return 3
	default:
		return 4
	}
}

// tlvLen is the size of a TLV whose contents are n octets.
func tlvLen(n int) int { return 1 + lenOfLen(n) + n }

func appendHeader(dst []byte, tag byte, n int) []byte {
	dst = append(dst, tag)
	switch {
	case n < 0x80:
		return append(dst, byte(n))
	case n < 0x100:
		return append(dst, 0x81, byte(n))
	case n < 0x10000:
		return append(dst, 0x82, byte(n>>8), byte(n))
	default:
		return append(dst, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
}

// intLen is the contents size of the minimal two's complement of v.
func intLen(v int64) int {
	n := 1
	for v > 127 || v < -128 {
		n++
		v >>= 8
	}
	return n
}

func appendInt(dst []byte, tag byte, v int64) []byte {
	n := intLen(v)
	dst = append(dst, tag, byte(n))
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, byte(v>>(8*i)))
	}
	return dst
}

// uintLen is the contents size of an unsigned value as BER (a leading
// zero when the high bit is set).
func uintLen(v uint32) int { return intLen(int64(v)) }

func appendUint(dst []byte, tag byte, v uint32) []byte { return appendInt(dst, tag, int64(v)) }

func varbindLen(oid []byte, valueTLV int) int { return tlvLen(tlvLen(len(oid)) + valueTLV) }

func appendVarbindHeader(dst []byte, oid []byte, valueTLV int) []byte {
	dst = appendHeader(dst, tagSequence, tlvLen(len(oid))+valueTLV)
	dst = appendHeader(dst, tagOID, len(oid))
	return append(dst, oid...)
}

// fragmentVarbindsLen is the size of the varbind list contents.
func fragmentVarbindsLen(notification bool, uptime uint32, f Fragment) int {
	n := varbindLen(encTransfer, tlvLen(uintLen(f.Transfer))) +
		varbindLen(encFragment, tlvLen(uintLen(f.Index))) +
		varbindLen(encFragments, tlvLen(uintLen(f.Count))) +
		varbindLen(encData, tlvLen(len(f.Data)))
	if notification {
		n += varbindLen(encSysUpTime, tlvLen(uintLen(uptime))) + varbindLen(encTrapOID, tlvLen(len(encMessage)))
	}
	return n
}

// AppendV2cFragment appends a whole SNMPv2c message of type pdu
// (gosnmp.SetRequest, gosnmp.InformRequest or gosnmp.SNMPv2Trap)
// carrying f to dst, without allocating when dst has room. Notifications
// start with sysUpTime.0 = uptime and snmpTrapOID.0 = medsMessage.
func AppendV2cFragment(dst []byte, pdu gosnmp.PDUType, community string, requestID uint32, uptime uint32, f Fragment) []byte {
	notification := pdu != gosnmp.SetRequest
	vbl := fragmentVarbindsLen(notification, uptime, f)
	pduLen := tlvLen(intLen(int64(requestID))) + 3 + 3 + tlvLen(vbl)
	msgLen := 3 + tlvLen(len(community)) + tlvLen(pduLen)
	dst = appendHeader(dst, tagSequence, msgLen)
	dst = appendInt(dst, tagInteger, int64(gosnmp.Version2c))
	dst = appendHeader(dst, tagOctetString, len(community))
	dst = append(dst, community...)
	dst = appendHeader(dst, byte(pdu), pduLen)
	dst = appendInt(dst, tagInteger, int64(requestID))
	dst = appendInt(dst, tagInteger, 0)
	dst = appendInt(dst, tagInteger, 0)
	dst = appendHeader(dst, tagSequence, vbl)
	if notification {
		dst = appendVarbindHeader(dst, encSysUpTime, tlvLen(uintLen(uptime)))
		dst = appendUint(dst, tagTimeTicks, uptime)
		dst = appendVarbindHeader(dst, encTrapOID, tlvLen(len(encMessage)))
		dst = appendHeader(dst, tagOID, len(encMessage))
		dst = append(dst, encMessage...)
	}
	dst = appendVarbindHeader(dst, encTransfer, tlvLen(uintLen(f.Transfer)))
	dst = appendUint(dst, tagGauge32, f.Transfer)
	dst = appendVarbindHeader(dst, encFragment, tlvLen(uintLen(f.Index)))
	dst = appendUint(dst, tagGauge32, f.Index)
	dst = appendVarbindHeader(dst, encFragments, tlvLen(uintLen(f.Count)))
	dst = appendUint(dst, tagGauge32, f.Count)
	dst = appendVarbindHeader(dst, encData, tlvLen(len(f.Data)))
	dst = appendHeader(dst, tagOctetString, len(f.Data))
	return append(dst, f.Data...)
}

// AppendV2cResponse appends the SNMPv2c Response to a request: the same
// community and request-id, error-status and error-index, and the raw
// varbind list contents varbinds (normally the request's, echoed).
func AppendV2cResponse(dst []byte, community []byte, requestID uint32, status, index uint8, varbinds []byte) []byte {
	pduLen := tlvLen(intLen(int64(requestID))) + tlvLen(intLen(int64(status))) + tlvLen(intLen(int64(index))) + tlvLen(len(varbinds))
	msgLen := 3 + tlvLen(len(community)) + tlvLen(pduLen)
	dst = appendHeader(dst, tagSequence, msgLen)
	dst = appendInt(dst, tagInteger, int64(gosnmp.Version2c))
	dst = appendHeader(dst, tagOctetString, len(community))
	dst = append(dst, community...)
	dst = appendHeader(dst, byte(gosnmp.GetResponse), pduLen)
	dst = appendInt(dst, tagInteger, int64(requestID))
	dst = appendInt(dst, tagInteger, int64(status))
	dst = appendInt(dst, tagInteger, int64(index))
	dst = appendHeader(dst, tagSequence, len(varbinds))
	return append(dst, varbinds...)
}

// V2cPacket is an SNMPv2c message parsed by ParseV2c. Its slices alias
// the parsed octets.
type V2cPacket struct {
	Community   []byte         // the community string
	PDU         gosnmp.PDUType // the PDU type (its BER tag)
	RequestID   uint32         // request-id (two's complement for negative values)
	ErrorStatus uint8          // error-status
	ErrorIndex  uint8          // error-index
	// VarBinds is the contents of the variable-bindings SEQUENCE.
	VarBinds []byte
}

// tlv reads one definite-length TLV at b[i:], returning the tag, the
// contents and the index after it.
func tlv(b []byte, i int) (tag byte, contents []byte, next int, ok bool) {
	if i+2 > len(b) {
		return 0, nil, 0, false
	}
	tag = b[i]
	l := int(b[i+1])
	i += 2
	if l&0x80 != 0 {
		k := l & 0x7f
		if k == 0 || k > 3 || i+k > len(b) {
			return 0, nil, 0, false
		}
		l = 0
		for j := 0; j < k; j++ {
			l = l<<8 | int(b[i+j])
		}
		i += k
	}
	if l > len(b)-i {
		return 0, nil, 0, false
	}
	return tag, b[i : i+l : i+l], i + l, true
}

// parseInt decodes a BER INTEGER of at most 4 contents octets... or 5
// for an unsigned 32-bit value with a leading zero.
func parseInt(c []byte) (int64, bool) {
	if len(c) == 0 || len(c) > 5 {
		return 0, false
	}
	v := int64(int8(c[0])) // sign extension
	for _, x := range c[1:] {
		v = v<<8 | int64(x)
	}
	return v, true
}

// ParseV2c parses an SNMPv2c message strictly: one SEQUENCE filling b,
// version 1, a community, and a PDU with request-id, error-status,
// error-index and a variable-bindings SEQUENCE, nothing after. It does
// not allocate. Messages of other versions, GetBulk PDUs and anything
// else return an error matching ErrNotFastPath.
func ParseV2c(b []byte) (V2cPacket, error) {
	var p V2cPacket
	fail := func(what string) (V2cPacket, error) {
		return V2cPacket{}, fmt.Errorf("%w: %s", ErrNotFastPath, what)
	}
	tag, msg, end, ok := tlv(b, 0)
	if !ok || tag != tagSequence || end != len(b) {
		return fail("no message SEQUENCE")
	}
	tag, ver, i, ok := tlv(msg, 0)
	if !ok || tag != tagInteger || len(ver) != 1 || ver[0] != byte(gosnmp.Version2c) {
		return fail("not version 2c")
	}
	tag, p.Community, i, ok = tlv(msg, i)
	if !ok || tag != tagOctetString {
		return fail("no community")
	}
	var pdu []byte
	tag, pdu, i, ok = tlv(msg, i)
	if !ok || i != len(msg) {
		return fail("no PDU")
	}
	switch pt := gosnmp.PDUType(tag); pt {
	case gosnmp.GetRequest, gosnmp.GetNextRequest, gosnmp.GetResponse, gosnmp.SetRequest, gosnmp.InformRequest, gosnmp.SNMPv2Trap:
		p.PDU = pt
	default:
		return fail("unsupported PDU type")
	}
	var fields [3]int64
	j := 0
	for k := range fields {
		var c []byte
		tag, c, j, ok = tlv(pdu, j)
		if !ok || tag != tagInteger {
			return fail("bad PDU header")
		}
		if fields[k], ok = parseInt(c); !ok {
			return fail("bad PDU integer")
		}
	}
	if fields[0] < -1<<31 || fields[0] > 1<<31-1 || fields[1] < 0 || fields[1] > 255 || fields[2] < 0 || fields[2] > 255 {
		return fail("PDU integer out of range")
	}
	p.RequestID, p.ErrorStatus, p.ErrorIndex = uint32(fields[0]), uint8(fields[1]), uint8(fields[2])
	tag, p.VarBinds, j, ok = tlv(pdu, j)
	if !ok || tag != tagSequence || j != len(pdu) {
		return fail("bad variable bindings")
	}
	return p, nil
}

// varbind reads the next binding of a varbind list contents.
func varbind(vbl []byte, i int) (oid []byte, tag byte, value []byte, next int, ok bool) {
	t, vb, next, ok := tlv(vbl, i)
	if !ok || t != tagSequence {
		return nil, 0, nil, 0, false
	}
	t, oid, k, ok := tlv(vb, 0)
	if !ok || t != tagOID {
		return nil, 0, nil, 0, false
	}
	tag, value, k, ok = tlv(vb, k)
	if !ok || k != len(vb) {
		return nil, 0, nil, 0, false
	}
	return oid, tag, value, next, true
}

// Fragment extracts the MEDS fragment from p's bindings with the checks
// and errors of ExtractFragment (a *FragmentError with the error-status
// and 1-based binding index to answer). Data aliases the packet.
func (p *V2cPacket) Fragment(notification bool, maxCount uint32, maxData int) (Fragment, error) {
	var f Fragment
	want := 4
	if notification {
		want = 6
	}
	i, idx := 0, 0
	bad := func(reason string, status uint8) (Fragment, error) {
		return Fragment{}, &FragmentError{Reason: reason, Index: idx, Status: status}
	}
	for i < len(p.VarBinds) {
		oid, tag, val, next, ok := varbind(p.VarBinds, i)
		idx++
		if !ok {
			return bad("binding does not decode", StatusWrongType)
		}
		if idx > want {
			idx = 0
			return bad(fmt.Sprintf("more than %d variable bindings", want), StatusWrongLength)
		}
		i = next
		k := idx
		if !notification {
			k += 2
		}
		switch k {
		case 1:
			if !bytes.Equal(oid, encSysUpTime) || tag != tagTimeTicks {
				return bad("first binding is not sysUpTime.0 TimeTicks", StatusWrongType)
			}
		case 2:
			if !bytes.Equal(oid, encTrapOID) || tag != tagOID {
				return bad("second binding is not snmpTrapOID.0 OBJECT IDENTIFIER", StatusWrongType)
			}
			if !bytes.Equal(val, encMessage) {
				return bad("snmpTrapOID.0 is not medsMessage "+OIDMessage, StatusWrongValue)
			}
		case 3, 4, 5:
			want, name := [...][]byte{encTransfer, encFragment, encFragments}[k-3], [...]string{"medsTransfer", "medsFragment", "medsFragments"}[k-3]
			if !bytes.Equal(oid, want) || tag != tagGauge32 {
				return bad("want "+name+" Gauge32", StatusWrongType)
			}
			v, ok := parseInt(val)
			if !ok || v < 0 || v > 0xffffffff || (len(val) == 5 && val[0] != 0) {
				return bad(name+" is not an Unsigned32", StatusWrongValue)
			}
			switch k {
			case 3:
				f.Transfer = uint32(v)
			case 4:
				f.Index = uint32(v)
			case 5:
				f.Count = uint32(v)
			}
		case 6:
			if !bytes.Equal(oid, encData) || tag != tagOctetString {
				return bad("want medsData OCTET STRING", StatusWrongType)
			}
			f.Data = val
		}
	}
	if idx != want {
		n := idx
		idx = 0
		return bad(fmt.Sprintf("%d variable bindings, want %d", n, want), StatusWrongLength)
	}
	base := 0
	if notification {
		base = 2
	}
	switch {
	case f.Count == 0:
		idx = base + 3
		return bad("medsFragments is 0, want at least 1", StatusWrongValue)
	case maxCount > 0 && f.Count > maxCount:
		idx = base + 3
		return bad(fmt.Sprintf("medsFragments %d over the limit %d", f.Count, maxCount), StatusWrongValue)
	case f.Index >= f.Count:
		idx = base + 2
		return bad(fmt.Sprintf("medsFragment %d not below medsFragments %d", f.Index, f.Count), StatusWrongValue)
	case maxData > 0 && len(f.Data) > maxData:
		idx = base + 4
		return bad(fmt.Sprintf("medsData of %d octets over the limit %d", len(f.Data), maxData), StatusWrongLength)
	}
	return f, nil
}
