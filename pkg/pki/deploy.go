package pki

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hellopics/hellopics/pkg/identity"
)

// Deployment lists what a deployment needs certificates for.
type Deployment struct {
	// TrustDomain is the trust domain of the CA made when the directory
	// has none (empty: DefaultTrustDomain). When the directory has a CA,
	// a non-empty TrustDomain must be the CA's.
	TrustDomain string
	// CAValidity is the validity of a CA made (0: DefaultCAValidity).
	CAValidity time.Duration
	// Mgmt are the management instances' ids.
	Mgmt []string
	// Pairs are the pairs' ids; each gets a ctrl and a data certificate.
	Pairs []string
	// Operators are the operators' identities; only Name and Perm are
	// used.
	Operators []identity.ID
	// Hosts are added as DNS or IP SANs to the mgmt, ctrl and data
	// certificates (not the operators').
	Hosts []string
	// Validity is the validity of the issued certificates (0:
	// DefaultValidity).
	Validity time.Duration
}

// Issued is a certificate written by Deploy.
type Issued struct {
	ID   identity.ID
	Cert string // path of the certificate
	Key  string // path of its key
}

// Deploy makes a CA in dir if there is none (Init) and issues, into dir,
// a certificate for each mgmt instance (mgmt-<id>.crt, .key), each pair
// (ctrl-<pair>.crt, .key and data-<pair>.crt, .key) and each operator
// (operator-<name>.crt, .key), replacing older ones of the same names. It
// returns the CA's trust domain and the certificates, in that order:
// mgmt, then ctrl and data per pair, then operators. Names given twice in
// one role, and operators named twice, are refused before anything is
// written.
func Deploy(dir string, d Deployment) (trustDomain string, issued []Issued, err error) {
	var ids []identity.ID
	seen := map[string]bool{}
	add := func(id identity.ID) error {
		if err := (identity.ID{TrustDomain: DefaultTrustDomain, Role: id.Role, Name: id.Name, Perm: id.Perm}).Validate(); err != nil {
			return fmt.Errorf("pki: deployment: %w", err)
		}
		n := DefaultName(id)
		if seen[n] {
			return fmt.Errorf("pki: deployment: %s %q given twice", id.Role, id.Name)
		}
		seen[n] = true
		ids = append(ids, id)
		return nil
	}
	for _, m := range d.Mgmt {
		if err := add(identity.ID{Role: identity.RoleMgmt, Name: m}); err != nil {
			return "", nil, err
		}
	}
	for _, p := range d.Pairs {
		if err := add(identity.ID{Role: identity.RoleCtrl, Name: p}); err != nil {
			return "", nil, err
		}
		if err := add(identity.ID{Role: identity.RoleData, Name: p}); err != nil {
			return "", nil, err
		}
	}
	for _, o := range d.Operators {
		if err := add(identity.ID{Role: identity.RoleOperator, Name: o.Name, Perm: o.Perm}); err != nil {
			return "", nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, CACertFile)); errors.Is(err, os.ErrNotExist) {
		td := d.TrustDomain
		if td == "" {
			td = DefaultTrustDomain
		}
		if err := Init(dir, td, d.CAValidity); err != nil {
			return "", nil, err
		}
	}
	ca, err := LoadCA(dir)
	if err != nil {
		return "", nil, err
	}
	if d.TrustDomain != "" && d.TrustDomain != ca.TrustDomain {
		return "", nil, fmt.Errorf("pki: deployment: the CA in %s is of trust domain %q, not %q", dir, ca.TrustDomain, d.TrustDomain)
	}
	for _, id := range ids {
		opts := IssueOptions{Validity: d.Validity}
		if id.Role != identity.RoleOperator {
			opts.Hosts = d.Hosts
		}
		c, k, err := ca.Issue(id, opts)
		if err != nil {
			return "", issued, err
		}
		id.TrustDomain = ca.TrustDomain
		issued = append(issued, Issued{ID: id, Cert: c, Key: k})
	}
	return ca.TrustDomain, issued, nil
}
