package meds

import (
	"fmt"
	"strings"

	"github.com/gosnmp/gosnmp"
)

// Object identifiers of the MEDS mapping (spec section 2), under the IANA
// documentation enterprise number 32473, and the standard ones it uses.
const (
	OIDMeds          = "1.3.6.1.4.1.32473.7"
	OIDTransfer      = "1.3.6.1.4.1.32473.7.1.1.0" // medsTransfer, Gauge32
	OIDFragment      = "1.3.6.1.4.1.32473.7.1.2.0" // medsFragment, Gauge32, 0-based
	OIDFragments     = "1.3.6.1.4.1.32473.7.1.3.0" // medsFragments, Gauge32, >= 1
	OIDData          = "1.3.6.1.4.1.32473.7.1.4.0" // medsData, OCTET STRING
	OIDMessage       = "1.3.6.1.4.1.32473.7.2.1"   // medsMessage notification
	OIDSysDescr      = "1.3.6.1.2.1.1.1.0"
	OIDSysObjectID   = "1.3.6.1.2.1.1.2.0"
	OIDSysUpTime     = "1.3.6.1.2.1.1.3.0"
	OIDSysName       = "1.3.6.1.2.1.1.5.0"
	OIDSnmpTrapOID   = "1.3.6.1.6.3.1.1.4.1.0"
	OIDUnknownEngine = "1.3.6.1.6.3.15.1.1.4.0" // usmStatsUnknownEngineIDs.0
)

// DefaultMaxMsgSize is the default largest SNMP message, in octets.
const DefaultMaxMsgSize = 1472

// MinMaxMsgSize is the smallest maximum message size every SNMP entity
// must accept (RFC 3417), which the relay must work with.
const MinMaxMsgSize = 484

// Fragment is one piece of a MEDS message as carried by one SNMP message.
type Fragment struct {
	Transfer uint32 // the sender's id for the message, new for each message
	Index    uint32 // 0-based position
	Count    uint32 // number of fragments of the message, >= 1
	Data     []byte // the octets; aliases the source
}

// FragmentVarbinds returns the four variable bindings of f in spec order,
// as a SetRequest carries them. dst is reused when it has room.
func FragmentVarbinds(dst []gosnmp.SnmpPDU, f Fragment) []gosnmp.SnmpPDU {
	return append(dst[:0],
		gosnmp.SnmpPDU{Name: OIDTransfer, Type: gosnmp.Gauge32, Value: uint(f.Transfer)},
		gosnmp.SnmpPDU{Name: OIDFragment, Type: gosnmp.Gauge32, Value: uint(f.Index)},
		gosnmp.SnmpPDU{Name: OIDFragments, Type: gosnmp.Gauge32, Value: uint(f.Count)},
		gosnmp.SnmpPDU{Name: OIDData, Type: gosnmp.OctetString, Value: f.Data},
	)
}

// NotificationVarbinds returns the six variable bindings of a medsMessage
// notification carrying f: sysUpTime.0 (uptime in hundredths of a
// second), snmpTrapOID.0 = medsMessage, then the four of
// FragmentVarbinds.
func NotificationVarbinds(dst []gosnmp.SnmpPDU, uptime uint32, f Fragment) []gosnmp.SnmpPDU {
	dst = append(dst[:0],
		gosnmp.SnmpPDU{Name: OIDSysUpTime, Type: gosnmp.TimeTicks, Value: uptime},
		gosnmp.SnmpPDU{Name: OIDSnmpTrapOID, Type: gosnmp.ObjectIdentifier, Value: OIDMessage},
	)
	return append(dst, FragmentVarbinds(nil, f)...)
}

// ExtractFragment reads a fragment from the variable bindings of a
// SetRequest (notification false: exactly the four bindings) or of an
// InformRequest or SNMPv2-Trap (notification true: sysUpTime.0,
// snmpTrapOID.0 = medsMessage, then the four). Names, order, syntax and
// values are checked strictly: the count is at least 1 and at most
// maxCount (no limit when 0), the index is below the count, and the data
// is at most maxData octets (no limit when 0). The error is a
// *FragmentError with the error-status to answer. Data aliases the
// binding's value.
func ExtractFragment(vars []gosnmp.SnmpPDU, notification bool, maxCount uint32, maxData int) (Fragment, error) {
	base := 0
	if notification {
		if len(vars) != 6 {
			return Fragment{}, &FragmentError{Reason: fmt.Sprintf("%d variable bindings, want 6 (sysUpTime.0, snmpTrapOID.0 and four meds objects)", len(vars)), Status: StatusWrongLength}
		}
		if !sameOID(vars[0].Name, OIDSysUpTime) || vars[0].Type != gosnmp.TimeTicks {
			return Fragment{}, &FragmentError{Reason: "first binding is not sysUpTime.0 TimeTicks: " + describe(vars[0]), Index: 1, Status: StatusWrongType}
		}
		if !sameOID(vars[1].Name, OIDSnmpTrapOID) || vars[1].Type != gosnmp.ObjectIdentifier {
			return Fragment{}, &FragmentError{Reason: "second binding is not snmpTrapOID.0 OBJECT IDENTIFIER: " + describe(vars[1]), Index: 2, Status: StatusWrongType}
		}
		if v, ok := vars[1].Value.(string); !ok || !sameOID(v, OIDMessage) {
			return Fragment{}, &FragmentError{Reason: fmt.Sprintf("snmpTrapOID.0 is %v, want medsMessage %s", vars[1].Value, OIDMessage), Index: 2, Status: StatusWrongValue}
		}
		base = 2
	} else if len(vars) != 4 {
		return Fragment{}, &FragmentError{Reason: fmt.Sprintf("%d variable bindings, want 4 (medsTransfer, medsFragment, medsFragments, medsData)", len(vars)), Status: StatusWrongLength}
	}
	var f Fragment
	var err error
	if f.Transfer, err = gauge(vars[base], OIDTransfer, "medsTransfer", base+1); err != nil {
		return Fragment{}, err
	}
	if f.Index, err = gauge(vars[base+1], OIDFragment, "medsFragment", base+2); err != nil {
		return Fragment{}, err
	}
	if f.Count, err = gauge(vars[base+2], OIDFragments, "medsFragments", base+3); err != nil {
		return Fragment{}, err
	}
	d := vars[base+3]
	if !sameOID(d.Name, OIDData) || d.Type != gosnmp.OctetString {
		return Fragment{}, &FragmentError{Reason: "want medsData OCTET STRING, got " + describe(d), Index: base + 4, Status: StatusWrongType}
	}
	switch v := d.Value.(type) {
	case []byte:
		f.Data = v
	case string:
		f.Data = []byte(v)
	default:
		return Fragment{}, &FragmentError{Reason: fmt.Sprintf("medsData value is %T", d.Value), Index: base + 4, Status: StatusWrongType}
	}
	switch {
	case f.Count == 0:
		return Fragment{}, &FragmentError{Reason: "medsFragments is 0, want at least 1", Index: base + 3, Status: StatusWrongValue}
	case maxCount > 0 && f.Count > maxCount:
		return Fragment{}, &FragmentError{Reason: fmt.Sprintf("medsFragments %d over the limit %d", f.Count, maxCount), Index: base + 3, Status: StatusWrongValue}
	case f.Index >= f.Count:
		return Fragment{}, &FragmentError{Reason: fmt.Sprintf("medsFragment %d not below medsFragments %d", f.Index, f.Count), Index: base + 2, Status: StatusWrongValue}
	case maxData > 0 && len(f.Data) > maxData:
		return Fragment{}, &FragmentError{Reason: fmt.Sprintf("medsData of %d octets over the limit %d", len(f.Data), maxData), Index: base + 4, Status: StatusWrongLength}
	}
	return f, nil
}

func gauge(v gosnmp.SnmpPDU, oid, name string, idx int) (uint32, error) {
	if !sameOID(v.Name, oid) || v.Type != gosnmp.Gauge32 {
		return 0, &FragmentError{Reason: "want " + name + " Gauge32, got " + describe(v), Index: idx, Status: StatusWrongType}
	}
	var n uint64
	switch x := v.Value.(type) {
	case uint:
		n = uint64(x)
	case uint32:
		n = uint64(x)
	case uint64:
		n = x
	case int:
		if x < 0 {
			return 0, &FragmentError{Reason: fmt.Sprintf("%s is negative (%d)", name, x), Index: idx, Status: StatusWrongValue}
		}
		n = uint64(x)
	default:
		return 0, &FragmentError{Reason: fmt.Sprintf("%s value is %T", name, v.Value), Index: idx, Status: StatusWrongType}
	}
	if n > 0xffffffff {
		return 0, &FragmentError{Reason: fmt.Sprintf("%s %d does not fit Unsigned32", name, n), Index: idx, Status: StatusWrongValue}
	}
	return uint32(n), nil
}

// sameOID compares OIDs ignoring one leading dot (gosnmp decodes names
// as ".1.3...."), without allocating.
func sameOID(got, want string) bool {
	return strings.TrimPrefix(got, ".") == strings.TrimPrefix(want, ".")
}

func describe(v gosnmp.SnmpPDU) string {
	return fmt.Sprintf("%s %s", v.Name, v.Type)
}

// IsMedsOID reports whether oid names one of the MEDS objects.
func IsMedsOID(oid string) bool {
	o := strings.TrimPrefix(oid, ".")
	return o == OIDMeds || strings.HasPrefix(o, OIDMeds+".")
}

// Overheads, in octets, of everything in an SNMP message but the medsData
// value, with room for the longest encodings of integers and lengths.
// They were measured from gosnmp-encoded messages (see the tests) and
// rounded up.
const (
	overheadV2c          = 126 // message, PDU and four bindings, without community
	overheadNotification = 48  // sysUpTime.0 and snmpTrapOID.0 bindings
	overheadV3           = 150 // msgGlobalData, USM (engine id <= 32, auth <= 48, priv 8), scopedPDU
)

// FragmentDataSize returns how many medsData octets fit in one SNMP
// message of at most maxMsgSize octets for sec, in a notification when
// notification is true. It returns at least 1 when maxMsgSize is large
// enough for the fixed part, or an error.
func FragmentDataSize(maxMsgSize int, sec Security, notification bool) (int, error) {
	o := overheadV2c
	if notification {
		o += overheadNotification
	}
	if sec.Version == gosnmp.Version3 {
		o += overheadV3 + len(sec.User) + len(sec.ContextName) + len(sec.EngineID)
	} else {
		o += len(sec.Community)
	}
	n := maxMsgSize - o
	if n < 16 {
		return 0, fmt.Errorf("meds: max SNMP message size %d leaves %d octets for data (fixed part %d octets): too small", maxMsgSize, n, o)
	}
	return n, nil
}

// FragmentCount is the number of fragments Split makes of an encoded
// message of n octets with at most size octets each.
func FragmentCount(n, size int) uint32 {
	if n == 0 {
		return 1
	}
	return uint32((n + size - 1) / size)
}

// Split cuts an encoded message into fragments of at most size octets,
// in order, and calls fn with each; Data aliases msg. An empty msg makes
// one empty fragment. It stops at fn's first error and returns it.
func Split(msg []byte, transfer uint32, size int, fn func(Fragment) error) error {
	if size < 1 {
		return fmt.Errorf("meds: fragment size %d, want at least 1", size)
	}
	count := FragmentCount(len(msg), size)
	for i := uint32(0); i < count; i++ {
		lo := int(i) * size
		hi := min(lo+size, len(msg))
		if err := fn(Fragment{Transfer: transfer, Index: i, Count: count, Data: msg[lo:hi:hi]}); err != nil {
			return err
		}
	}
	return nil
}
