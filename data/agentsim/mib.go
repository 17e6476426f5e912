package agentsim

import (
	"strconv"
	"strings"

	"github.com/gosnmp/gosnmp"

	"github.com/hellopics/hellopics/pkg/meds"
)

// mibOrder lists the objects the agent answers, in OID order.
var mibOrder = []string{meds.OIDSysDescr, meds.OIDSysObjectID, meds.OIDSysUpTime, meds.OIDSysName}

func (a *Agent) value(oid string) gosnmp.SnmpPDU {
	switch oid {
	case meds.OIDSysDescr:
		return gosnmp.SnmpPDU{Name: oid, Type: gosnmp.OctetString, Value: []byte(a.cfg.SysDescr)}
	case meds.OIDSysObjectID:
		return gosnmp.SnmpPDU{Name: oid, Type: gosnmp.ObjectIdentifier, Value: SysObjectID}
	case meds.OIDSysUpTime:
		return gosnmp.SnmpPDU{Name: oid, Type: gosnmp.TimeTicks, Value: a.uptime()}
	case meds.OIDSysName:
		return gosnmp.SnmpPDU{Name: oid, Type: gosnmp.OctetString, Value: []byte(a.cfg.SysName)}
	}
	return gosnmp.SnmpPDU{Name: oid, Type: gosnmp.NoSuchObject}
}

// lookup answers a GET (next false) or a GETNEXT (next true) for name.
func (a *Agent) lookup(name string, next bool) gosnmp.SnmpPDU {
	oid := strings.TrimPrefix(name, ".")
	if !next {
		return a.value(oid)
	}
	for _, o := range mibOrder {
		if compareOID(o, oid) > 0 {
			return a.value(o)
		}
	}
	return gosnmp.SnmpPDU{Name: oid, Type: gosnmp.EndOfMibView}
}

// compareOID orders dotted OIDs numerically, arc by arc.
func compareOID(x, y string) int {
	xs, ys := strings.Split(x, "."), strings.Split(y, ".")
	for i := 0; i < len(xs) && i < len(ys); i++ {
		a, _ := strconv.ParseUint(xs[i], 10, 64)
		b, _ := strconv.ParseUint(ys[i], 10, 64)
		if a != b {
			if a < b {
				return -1
			}
			return 1
		}
	}
	return len(xs) - len(ys)
}
