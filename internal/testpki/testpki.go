// Package testpki makes certificates for tests: a CA and certificates
// of hellopics identities (ECDSA P-256, one SPIFFE URI SAN, both the
// serverAuth and clientAuth extended key usages), written as PEM files
// into the test's temporary directory. It is for tests only.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hellopics/hellopics/pkg/identity"
	"github.com/hellopics/hellopics/pkg/tlsconf"
)

// CA is a certificate authority of one trust domain.
type CA struct {
	TrustDomain string
	Dir         string // holds ca.crt and the issued files
	Cert        *x509.Certificate
	key         *ecdsa.PrivateKey
}

var serial atomic.Int64

// NewCA makes a CA for trustDomain, valid for a day.
func NewCA(t testing.TB, trustDomain string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: "test CA " + trustDomain},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{TrustDomain: trustDomain, Dir: t.TempDir(), Cert: c, key: key}
	writePEM(t, ca.CAFile(), "CERTIFICATE", der)
	return ca
}

// CAFile is the path of the CA certificate, PEM.
func (ca *CA) CAFile() string { return filepath.Join(ca.Dir, "ca.crt") }

// ID returns the identity of role and name in the CA's trust domain;
// for an operator, name is "read/NAME" or "admin/NAME".
func (ca *CA) ID(t testing.TB, role identity.Role, name string) identity.ID {
	t.Helper()
	s := "spiffe://" + ca.TrustDomain + "/" + string(role) + "/" + name
	id, err := identity.ParseString(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Issue writes a certificate and key for id, valid for an hour, and
// returns the files with the CA's.
func (ca *CA) Issue(t testing.TB, id identity.ID) tlsconf.Files {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)),
		NotBefore:    time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{id.URI()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(ca.Dir, string(id.Role)+"-"+string(id.Perm)+"-"+id.Name)
	f := tlsconf.Files{Cert: base + ".crt", Key: base + ".key", CA: ca.CAFile()}
	writePEM(t, f.Cert, "CERTIFICATE", der)
	writePEM(t, f.Key, "PRIVATE KEY", kder)
	return f
}

// Source issues a certificate for id and loads it.
func (ca *CA) Source(t testing.TB, id identity.ID) *tlsconf.Source {
	t.Helper()
	s, err := tlsconf.Load(ca.Issue(t, id), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
