// Package pki creates a small certificate authority for a hellopics
// deployment and issues the certificates of its components and
// operators, with the standard library only (crypto/x509, ECDSA P-256).
//
// A CA directory holds two files:
//
//	ca.crt  the self-signed CA certificate (PEM), given to every process
//	ca.key  its private key (PKCS#8 PEM, mode 0600), kept where certificates are issued
//
// Every issued certificate names its holder with exactly one URI SAN,
// the SPIFFE ID of package identity (spiffe://<trust-domain>/mgmt/<id>,
// /ctrl/<pair>, /data/<pair>, /operator/read|admin/<name>), and carries
// both the serverAuth and clientAuth extended key usages, since every
// component both accepts and makes mutually authenticated connections.
// The trust domain is recorded in the CA certificate as the URI SAN
// spiffe://<trust-domain>, from which Issue reads it back.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hellopics/hellopics/pkg/identity"
)

// The files of a CA directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// Defaults.
const (
	// DefaultTrustDomain is the trust domain of "hellopics pki init"
	// when none is given.
	DefaultTrustDomain = "hellopics.local"
	// DefaultCAValidity is how long a CA made by Init is valid when no
	// validity is given: 10 years (3650 days).
	DefaultCAValidity = 3650 * 24 * time.Hour
	// DefaultValidity is how long an issued certificate is valid when
	// no validity is given: 1 year (365 days). It never outlives its CA.
	DefaultValidity = 365 * 24 * time.Hour
	// Backdate is how far before now a certificate's NotBefore is set,
	// to tolerate clocks a little behind the issuer's.
	Backdate = 5 * time.Minute
)

// ErrCAExists: Init found a CA (or part of one) in the directory and did
// not overwrite it.
var ErrCAExists = errors.New("pki: a CA already exists")

// CA is a loaded certificate authority.
type CA struct {
	// Cert is the CA certificate.
	Cert *x509.Certificate
	// Key is its private key.
	Key crypto.Signer
	// TrustDomain is the SPIFFE trust domain the CA certificate names.
	TrustDomain string
	// Dir is the directory the CA was loaded from, where Issue writes
	// when IssueOptions.OutDir is empty.
	Dir string
}

// IssueOptions tune Issue. The zero value issues a 1-year certificate
// with no DNS or IP SANs into the CA directory.
type IssueOptions struct {
	// Hosts are DNS names and IP addresses added as SANs, for peers that
	// verify a host name as well as the SPIFFE ID. Optional.
	Hosts []string
	// Validity is how long the certificate is valid; 0 means
	// DefaultValidity. It is cut short at the CA's NotAfter.
	Validity time.Duration
	// OutDir is where the files are written; empty means the CA
	// directory. It is created (mode 0700) if missing.
	OutDir string
	// Name is the base name of the files, NAME.crt and NAME.key; empty
	// means "<role>-<name>", such as mgmt-a or operator-alice.
	Name string
}

// Init creates a CA in dir (created with mode 0700 if missing): a new
// ECDSA P-256 key written to dir/ca.key (PKCS#8 PEM, mode 0600) and a
// self-signed certificate written to dir/ca.crt (mode 0644), valid for
// validity (0 means DefaultCAValidity) from 5 minutes ago, with subject
// CN "hellopics CA <trustDomain>" and the URI SAN spiffe://<trustDomain>.
// It refuses, with an error wrapping ErrCAExists, to replace either file.
func Init(dir, trustDomain string, validity time.Duration) error {
	if err := checkTrustDomain(trustDomain); err != nil {
		return err
	}
	if validity < 0 {
		return fmt.Errorf("pki: CA validity %v: must not be negative", validity)
	}
	if validity == 0 {
		validity = DefaultCAValidity
	}
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	for _, p := range []string{keyPath, certPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%w: %s exists; remove the directory's ca.crt and ca.key first to start over (every certificate it issued will stop verifying)", ErrCAExists, p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("pki: init: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: init: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("pki: init: generating the CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return fmt.Errorf("pki: init: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "hellopics CA " + trustDomain, Organization: []string{"hellopics"}},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		URIs:                  []*url.URL{{Scheme: "spiffe", Host: trustDomain}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("pki: init: signing the CA certificate: %w", err)
	}
	keyPEM, err := marshalKey(key)
	if err != nil {
		return fmt.Errorf("pki: init: %w", err)
	}
	// Key first, then certificate, each linked into place only if absent:
	// two concurrent Inits cannot both succeed, and a failure leaves no
	// certificate without its key.
	if err := writeFile(keyPath, keyPEM, 0o600, false); err != nil {
		return fmt.Errorf("pki: init: %w", err)
	}
	if err := writeFile(certPath, certPEM(der), 0o644, false); err != nil {
		os.Remove(keyPath)
		return fmt.Errorf("pki: init: %w", err)
	}
	return nil
}

// LoadCA reads the CA of dir: dir/ca.crt and dir/ca.key. The key may be
// PKCS#8, SEC 1 ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY") PEM and
// must match the certificate, which must be a CA allowed to sign
// certificates and must name its trust domain with a URI SAN
// spiffe://<trust-domain>.
func LoadCA(dir string) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certs, err := LoadCerts(certPath)
	if err != nil {
		return nil, fmt.Errorf("pki: loading the CA: %w", err)
	}
	cert := certs[0]
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, fmt.Errorf("pki: %s is not a CA certificate", certPath)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("pki: %s may not sign certificates (no certSign key usage)", certPath)
	}
	td, err := trustDomainOf(cert)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", certPath, err)
	}
	key, err := loadKey(keyPath)
	if err != nil {
		return nil, fmt.Errorf("pki: loading the CA: %w", err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("pki: %s does not match %s", keyPath, certPath)
	}
	return &CA{Cert: cert, Key: key, TrustDomain: td, Dir: dir}, nil
}

// Issue signs a certificate for id with the CA of dir and writes it to
// OutDir/Name.crt (mode 0644) and its new ECDSA P-256 key to
// OutDir/Name.key (PKCS#8 PEM, mode 0600), each atomically (a temporary
// file renamed into place), replacing older ones. It returns the two
// paths.
//
// The certificate's one URI SAN is id.URI(); it has the key usage
// digitalSignature, the extended key usages serverAuth and clientAuth, a
// random 128-bit serial number and a NotBefore 5 minutes ago. An id with
// no trust domain gets the CA's; an id with another is refused.
func Issue(dir string, id identity.ID, opts IssueOptions) (certPath, keyPath string, err error) {
	ca, err := LoadCA(dir)
	if err != nil {
		return "", "", err
	}
	return ca.Issue(id, opts)
}

// Issue is the function Issue with a loaded CA, for issuing several
// certificates without reading the CA each time; an empty opts.OutDir
// means ca.Dir.
func (ca *CA) Issue(id identity.ID, opts IssueOptions) (certPath, keyPath string, err error) {
	switch id.TrustDomain {
	case "":
		id.TrustDomain = ca.TrustDomain
	case ca.TrustDomain:
	default:
		return "", "", fmt.Errorf("pki: issue: %s is in trust domain %q, the CA's is %q", id, id.TrustDomain, ca.TrustDomain)
	}
	if err := id.Validate(); err != nil {
		return "", "", fmt.Errorf("pki: issue: %w", err)
	}
	if opts.Validity < 0 {
		return "", "", fmt.Errorf("pki: issue %s: validity %v: must not be negative", id, opts.Validity)
	}
	if opts.Validity == 0 {
		opts.Validity = DefaultValidity
	}
	name := opts.Name
	if name == "" {
		name = DefaultName(id)
	}
	if err := checkFileName(name); err != nil {
		return "", "", fmt.Errorf("pki: issue %s: %w", id, err)
	}
	outDir := opts.OutDir
	if outDir == "" {
		outDir = ca.Dir
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"hellopics"}},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{id.URI()},
	}
	// The common name is informative only (peers are identified by the
	// URI SAN); RFC 5280 bounds it to 64 characters.
	if cn := strings.TrimPrefix(id.URI().Path, "/"); len(cn) <= 64 {
		tmpl.Subject.CommonName = cn
	}
	for _, h := range opts.Hosts {
		h = strings.TrimSpace(h)
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			continue
		}
		if err := checkDNSName(h); err != nil {
			return "", "", fmt.Errorf("pki: issue %s: %w", id, err)
		}
		tmpl.DNSNames = append(tmpl.DNSNames, h)
	}
	now := time.Now()
	if !now.Before(ca.Cert.NotAfter) {
		return "", "", fmt.Errorf("pki: issue %s: the CA expired at %s", id, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-Backdate), now.Add(opts.Validity)
	if tmpl.NotBefore.Before(ca.Cert.NotBefore) {
		tmpl.NotBefore = ca.Cert.NotBefore
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	if tmpl.SerialNumber, err = newSerial(); err != nil {
		return "", "", fmt.Errorf("pki: issue %s: %w", id, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("pki: issue %s: generating the key: %w", id, err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return "", "", fmt.Errorf("pki: issue %s: signing: %w", id, err)
	}
	keyPEM, err := marshalKey(key)
	if err != nil {
		return "", "", fmt.Errorf("pki: issue %s: %w", id, err)
	}
	if err := os.MkdirAll(outDir, 0o700); err != nil {
		return "", "", fmt.Errorf("pki: issue %s: %w", id, err)
	}
	certPath, keyPath = filepath.Join(outDir, name+".crt"), filepath.Join(outDir, name+".key")
	// The key first: a process reloading the pair sees, at worst, a new
	// key with the old certificate for an instant, a mismatch that a
	// loader refuses rather than a certificate without its key.
	if err := writeFile(keyPath, keyPEM, 0o600, true); err != nil {
		return "", "", fmt.Errorf("pki: issue %s: %w", id, err)
	}
	if err := writeFile(certPath, certPEM(der), 0o644, true); err != nil {
		return "", "", fmt.Errorf("pki: issue %s: %w", id, err)
	}
	return certPath, keyPath, nil
}

// DefaultName is the base name Issue gives id's files when
// IssueOptions.Name is empty: "<role>-<name>", such as "mgmt-a",
// "ctrl-pic0", "data-pic0" or "operator-alice".
func DefaultName(id identity.ID) string { return string(id.Role) + "-" + id.Name }

// LoadCerts reads the PEM certificates of a file, in order; it fails if
// there are none.
func LoadCerts(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", path, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: no PEM CERTIFICATE block", path)
	}
	return certs, nil
}

// TrustDomainOf returns the trust domain a CA certificate names with its
// URI SAN spiffe://<trust-domain>.
func TrustDomainOf(c *x509.Certificate) (string, error) { return trustDomainOf(c) }

func trustDomainOf(c *x509.Certificate) (string, error) {
	var tds []string
	for _, u := range c.URIs {
		if u.Scheme == "spiffe" && (u.Path == "" || u.Path == "/") {
			tds = append(tds, u.Host)
		}
	}
	switch len(tds) {
	case 0:
		return "", errors.New("the CA certificate names no trust domain (want a URI SAN spiffe://<trust-domain>)")
	case 1:
		if err := checkTrustDomain(tds[0]); err != nil {
			return "", err
		}
		return tds[0], nil
	}
	return "", fmt.Errorf("the CA certificate names %d trust domains; want one", len(tds))
}

// checkTrustDomain applies identity's rules for a trust domain.
func checkTrustDomain(td string) error {
	if err := (identity.ID{TrustDomain: td, Role: identity.RoleMgmt, Name: "x"}).Validate(); err != nil {
		return fmt.Errorf("pki: bad trust domain: %w", err)
	}
	return nil
}

func checkFileName(name string) error {
	switch {
	case name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) || strings.ContainsRune(name, 0):
		return fmt.Errorf("file name %q: want a base name, without directory", name)
	case name == "ca":
		return errors.New(`file name "ca" is the CA's`)
	}
	return nil
}

func checkDNSName(h string) error {
	if h == "" || len(h) > 253 {
		return fmt.Errorf("host %q: want a DNS name or an IP address", h)
	}
	for i, label := range strings.Split(h, ".") {
		if label == "*" && i == 0 {
			continue
		}
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("host %q: want a DNS name or an IP address", h)
		}
		for j := 0; j < len(label); j++ {
			c := label[j]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("host %q: want a DNS name or an IP address", h)
			}
		}
	}
	return nil
}

func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil // positive, as RFC 5280 requires
}

func marshalKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encoding the key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func loadKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, fmt.Errorf("%s: no PEM private key", path)
		}
		var k any
		switch blk.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(blk.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%s: a %T cannot sign", path, k)
		}
		return s, nil
	}
}

// writeFile writes data to path through a temporary file in the same
// directory, synced, with mode perm, then renamed over path (replace) or
// linked to path only if path does not exist (!replace).
func writeFile(path string, data []byte, perm fs.FileMode, replace bool) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil || !replace {
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if replace {
		err = os.Rename(tmp, path)
	} else if err = os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		err = fmt.Errorf("%w: %s exists", ErrCAExists, path)
	}
	if err != nil {
		return err
	}
	syncDir(filepath.Dir(path))
	return nil
}

// syncDir makes a rename or link in dir durable, as far as the file
// system allows; failures are ignored (the file is in place).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
