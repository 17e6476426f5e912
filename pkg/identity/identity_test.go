package identity

import (
	"crypto/x509"
	"net/url"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, id := range []ID{
		{TrustDomain: "hellopics.local", Role: RoleMgmt, Name: "a"},
		{TrustDomain: "example.org", Role: RoleCtrl, Name: "pic0"},
		{TrustDomain: "example.org", Role: RoleData, Name: "line-card:3"},
		{TrustDomain: "example.org", Role: RoleOperator, Perm: PermRead, Name: "alice"},
		{TrustDomain: "example.org", Role: RoleOperator, Perm: PermAdmin, Name: "bob"},
	} {
		if err := id.Validate(); err != nil {
			t.Fatalf("%+v: %v", id, err)
		}
		got, err := ParseString(id.String())
		if err != nil || got != id {
			t.Fatalf("%s parsed as %+v, %v", id, got, err)
		}
		c := &x509.Certificate{URIs: []*url.URL{{Scheme: "https", Host: "x"}, id.URI()}}
		if got, err := FromCert(c); err != nil || got != id {
			t.Fatalf("FromCert(%s) = %+v, %v", id, got, err)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, s := range []string{
		"https://hellopics.local/mgmt/a",
		"spiffe://hellopics.local/mgmt",
		"spiffe://hellopics.local/mgmt/a/b",
		"spiffe://hellopics.local/root/a",
		"spiffe://hellopics.local/operator/a",
		"spiffe://hellopics.local/operator/root/a",
		"spiffe://hellopics.local/ctrl/" + strings.Repeat("x", MaxNameLen+1),
		"spiffe://hellopics.local/ctrl/pic 0",
		"spiffe://Hellopics.Local/ctrl/pic0",
		"spiffe://hellopics.local:8443/ctrl/pic0",
		"spiffe://u@hellopics.local/ctrl/pic0",
		"spiffe://hellopics.local/ctrl/pic0?x=1",
		"spiffe:///ctrl/pic0",
	} {
		if id, err := ParseString(s); err == nil {
			t.Errorf("%s parsed as %+v", s, id)
		}
	}
	two := &x509.Certificate{URIs: []*url.URL{
		{Scheme: "spiffe", Host: "a.b", Path: "/ctrl/p"}, {Scheme: "spiffe", Host: "a.b", Path: "/data/p"}}}
	if _, err := FromCert(two); err == nil {
		t.Error("a certificate with two identities has one")
	}
	if _, err := FromCert(&x509.Certificate{}); err != ErrNoIdentity {
		t.Errorf("no URI SAN: %v", err)
	}
}

func TestPermissions(t *testing.T) {
	read := ID{TrustDomain: "t", Role: RoleOperator, Perm: PermRead, Name: "r"}
	admin := ID{TrustDomain: "t", Role: RoleOperator, Perm: PermAdmin, Name: "a"}
	ctrl := ID{TrustDomain: "t", Role: RoleCtrl, Name: "p"}
	if read.CanAct() || !read.CanRead() || !admin.CanAct() || !admin.CanRead() || ctrl.CanRead() || ctrl.CanAct() {
		t.Fatal("permissions wrong")
	}
}

func FuzzParse(f *testing.F) {
	f.Add("spiffe://hellopics.local/operator/admin/bob")
	f.Add("spiffe://x/ctrl/pic0")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseString(s)
		if err != nil {
			return
		}
		if err := id.Validate(); err != nil {
			t.Fatalf("parsed an invalid ID %+v: %v", id, err)
		}
		if back, err := ParseString(id.String()); err != nil || back != id {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, id, id.String(), back, err)
		}
	})
}
