// Package identity is the naming scheme of hellopics' certificates: who
// a peer is, read from the URI SAN of the certificate it presented over
// mutual TLS, in the form of a SPIFFE ID:
//
//	spiffe://<trust-domain>/mgmt/<id>            a management instance
//	spiffe://<trust-domain>/ctrl/<pair>          the control component of a pair
//	spiffe://<trust-domain>/data/<pair>          the data component of a pair
//	spiffe://<trust-domain>/operator/read/<name>  an operator who may look (status, watch)
//	spiffe://<trust-domain>/operator/admin/<name> an operator who may also act (switchover)
//
// The protocol checks what a peer says against its ID: a component may
// identify only as the role and pair its certificate names, an HA peer
// only as the mgmt id its certificate names, and data checks that the
// ctrl it dials is its pair's. The trust domain must be the one this
// process was configured with (pki init writes it into the CA's name).
package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Role is what a certificate's holder is.
type Role string

// The roles.
const (
	RoleMgmt     Role = "mgmt"
	RoleCtrl     Role = "ctrl"
	RoleData     Role = "data"
	RoleOperator Role = "operator"
)

// Perm is an operator's permission.
type Perm string

// The operator permissions. Admin includes read.
const (
	PermRead  Perm = "read"
	PermAdmin Perm = "admin"
)

// MaxNameLen bounds a name (mgmt id, pair id, operator name) in bytes.
const MaxNameLen = 64

// ID is a certificate holder's identity.
type ID struct {
	// TrustDomain is the SPIFFE trust domain, such as "hellopics.local".
	TrustDomain string
	// Role is what the holder is.
	Role Role
	// Name is the mgmt id, the pair id or the operator's name.
	Name string
	// Perm is an operator's permission; empty for the other roles.
	Perm Perm
}

// ErrNoIdentity: the certificate carries no hellopics SPIFFE ID.
var ErrNoIdentity = errors.New("identity: no spiffe:// URI SAN of a hellopics role")

// String is the ID's URI.
func (id ID) String() string { return id.URI().String() }

// URI returns the ID as a SPIFFE URI, for a certificate's URI SAN.
func (id ID) URI() *url.URL {
	path := "/" + string(id.Role)
	if id.Role == RoleOperator {
		path += "/" + string(id.Perm)
	}
	path += "/" + id.Name
	return &url.URL{Scheme: "spiffe", Host: id.TrustDomain, Path: path}
}

// Validate checks every field: a known role, a name of 1 to MaxNameLen
// bytes of letters, digits and "-_.:", a permission exactly for an
// operator, a trust domain that is a lowercase DNS-like name.
func (id ID) Validate() error {
	if !validTrustDomain(id.TrustDomain) {
		return fmt.Errorf("identity: trust domain %.64q: want lowercase letters, digits, '-' and '.'", id.TrustDomain)
	}
	switch id.Role {
	case RoleMgmt, RoleCtrl, RoleData:
		if id.Perm != "" {
			return fmt.Errorf("identity: a %s has no permission (%q)", id.Role, id.Perm)
		}
	case RoleOperator:
		if id.Perm != PermRead && id.Perm != PermAdmin {
			return fmt.Errorf("identity: operator permission %.16q: want read or admin", id.Perm)
		}
	default:
		return fmt.Errorf("identity: unknown role %.16q: want mgmt, ctrl, data or operator", id.Role)
	}
	if !validName(id.Name) {
		return fmt.Errorf("identity: name %.64q: want 1 to %d bytes of letters, digits and any of \"-_.:\"", id.Name, MaxNameLen)
	}
	return nil
}

// Parse reads an ID from a URI.
func Parse(u *url.URL) (ID, error) {
	if u == nil || u.Scheme != "spiffe" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Port() != "" {
		return ID{}, fmt.Errorf("identity: %.128q is not a spiffe://trust-domain/path URI", u)
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	id := ID{TrustDomain: u.Host, Role: Role(parts[0])}
	switch {
	case id.Role == RoleOperator && len(parts) == 3:
		id.Perm, id.Name = Perm(parts[1]), parts[2]
	case id.Role != RoleOperator && len(parts) == 2:
		id.Name = parts[1]
	default:
		return ID{}, fmt.Errorf("identity: %.128q: want /mgmt/ID, /ctrl/PAIR, /data/PAIR or /operator/read|admin/NAME", u.Path)
	}
	if err := id.Validate(); err != nil {
		return ID{}, err
	}
	return id, nil
}

// ParseString reads an ID from its URI text.
func ParseString(s string) (ID, error) {
	u, err := url.Parse(s)
	if err != nil {
		return ID{}, fmt.Errorf("identity: %w", err)
	}
	return Parse(u)
}

// FromCert returns the identity a certificate names: its one spiffe://
// URI SAN. A certificate with none, or more than one, has no identity.
func FromCert(c *x509.Certificate) (ID, error) {
	if c == nil {
		return ID{}, ErrNoIdentity
	}
	var found []*url.URL
	for _, u := range c.URIs {
		if u.Scheme == "spiffe" {
			found = append(found, u)
		}
	}
	switch len(found) {
	case 0:
		return ID{}, ErrNoIdentity
	case 1:
		return Parse(found[0])
	}
	return ID{}, fmt.Errorf("identity: the certificate names %d SPIFFE IDs; want one", len(found))
}

// FromState returns the identity of the peer of a TLS connection: the
// leaf certificate it presented (verified by the handshake).
func FromState(cs tls.ConnectionState) (ID, error) {
	if len(cs.PeerCertificates) == 0 {
		return ID{}, fmt.Errorf("%w: the peer presented no certificate", ErrNoIdentity)
	}
	return FromCert(cs.PeerCertificates[0])
}

// CanAct reports whether the ID may change the appliance's state through
// the operator API (switchover).
func (id ID) CanAct() bool { return id.Role == RoleOperator && id.Perm == PermAdmin }

// CanRead reports whether the ID may read the operator API (status,
// watch, health).
func (id ID) CanRead() bool { return id.Role == RoleOperator || id.Role == RoleMgmt }

func validName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

func validTrustDomain(s string) bool {
	if len(s) == 0 || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
