package tier

import (
	"fmt"

	"github.com/hellopics/hellopics/pkg/handshake"
	"github.com/hellopics/hellopics/pkg/identity"
	"github.com/hellopics/hellopics/pkg/pconn"
	"github.com/hellopics/hellopics/pkg/tlsconf"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// RefusedCertificate is the Event.Refused reason of an Identify that
// does not match the certificate of the session it came on.
const RefusedCertificate = "certificate"

// CheckIdentify compares an Identify with the certificate the session's
// peer presented: with mutual TLS, a component may identify only as the
// role and pair its certificate names. Without TLS (no certificate) it
// allows everything. When it refuses, it returns what the shell should
// do: a Reject naming the certificate's own identity (nothing about
// anyone else), the close, and an Event with Refused set to
// RefusedCertificate, for the log and the metric.
func CheckIdentify(ps *pconn.Session, t hellopicsv1.MsgType, msg any) []handshake.Output {
	in, ok := msg.(*hellopicsv1.Identify)
	if !ok || t != hellopicsv1.MsgType_MSG_TYPE_ID {
		return nil
	}
	cert := ps.PeerCertificate()
	if cert == nil {
		return nil
	}
	sid := handshake.SessionID(ps.ID())
	id, err := identity.FromCert(cert)
	var why string
	switch {
	case err != nil:
		why = fmt.Sprintf("certificate carries no identity: %v", err)
	case RoleOf(id.Role) != in.GetRole() || id.Name != in.GetPairId():
		why = fmt.Sprintf("certificate names %s, which may not identify as %s of pair %.64q",
			id, handshake.RoleName(in.GetRole()), in.GetPairId())
	default:
		return nil
	}
	return []handshake.Output{
		handshake.Send{Session: sid, Type: hellopicsv1.MsgType_MSG_TYPE_REJECT, Msg: &hellopicsv1.Reject{Reason: why}},
		handshake.Close{Session: sid, Reason: why},
		handshake.Event{Kind: handshake.EventRejected, Session: sid, Refused: RefusedCertificate,
			Message: fmt.Sprintf("%s from %s: %s", handshake.RoleName(in.GetRole()), ps.RemoteAddr(), why)},
	}
}

// RoleOf maps a certificate's role to the protocol's.
func RoleOf(r identity.Role) hellopicsv1.Role {
	switch r {
	case identity.RoleMgmt:
		return hellopicsv1.Role_ROLE_MGMT
	case identity.RoleCtrl:
		return hellopicsv1.Role_ROLE_CTRL
	case identity.RoleData:
		return hellopicsv1.Role_ROLE_DATA
	}
	return hellopicsv1.Role_ROLE_UNSPECIFIED
}

// CheckOwn verifies, at start, that a component's own certificate names
// it: role and pair. A ctrl started with data's certificate would be
// refused by every peer; better to say so at once.
func CheckOwn(src *tlsconf.Source, role identity.Role, pair string) error {
	if src == nil {
		return nil
	}
	if id := src.ID(); id.Role != role || id.Name != pair {
		return fmt.Errorf("the certificate names %s, but this is %s of pair %s", id, role, pair)
	}
	return nil
}
