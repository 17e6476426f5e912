package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hellopics/hellopics/pkg/identity"
)

const td = "test.example"

func initCA(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := Init(dir, td, 0); err != nil {
		t.Fatal(err)
	}
	return dir
}

func loadCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	certs, err := LoadCerts(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 1 {
		t.Fatalf("%s: %d certificates, want 1", path, len(certs))
	}
	return certs[0]
}

func caPool(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(loadCert(t, filepath.Join(dir, CACertFile)))
	return pool
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestInit: the CA certificate is a self-signed P-256 CA that may sign
// certificates only one level down, names its trust domain, lasts 10
// years by default; its key is PKCS#8, mode 0600, and matches it.
func TestInit(t *testing.T) {
	dir := initCA(t)
	c := loadCert(t, filepath.Join(dir, CACertFile))
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("IsCA %v, BasicConstraintsValid %v, MaxPathLen %d, MaxPathLenZero %v", c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("KeyUsage %b", c.KeyUsage)
	}
	if c.Subject.CommonName != "hellopics CA "+td {
		t.Errorf("CN %q", c.Subject.CommonName)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if pk, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pk.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
	}
	if d := time.Until(c.NotAfter) - DefaultCAValidity; d > time.Minute || d < -time.Minute {
		t.Errorf("NotAfter %v: %v from 10 years", c.NotAfter, d)
	}
	if got := mode(t, filepath.Join(dir, CAKeyFile)); got != 0o600 {
		t.Errorf("ca.key mode %v, want 0600", got)
	}
	if got := mode(t, filepath.Join(dir, CACertFile)); got != 0o644 {
		t.Errorf("ca.crt mode %v, want 0644", got)
	}
	b, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if !strings.HasPrefix(string(b), "-----BEGIN PRIVATE KEY-----") {
		t.Errorf("ca.key is not PKCS#8 PEM: %.40q", b)
	}
	ca, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ca.TrustDomain != td {
		t.Errorf("trust domain %q, want %q", ca.TrustDomain, td)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("%d files in the CA directory, want 2 (no temporary files left)", len(entries))
	}
}

// TestInitRefusesOverwrite: a second Init, or one finding only a key,
// fails with ErrCAExists and leaves the files alone.
func TestInitRefusesOverwrite(t *testing.T) {
	dir := initCA(t)
	before, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	err := Init(dir, td, 0)
	if !errors.Is(err, ErrCAExists) {
		t.Fatalf("second Init: %v, want ErrCAExists", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if string(before) != string(after) {
		t.Error("the CA key changed")
	}
	os.Remove(filepath.Join(dir, CACertFile))
	if err := Init(dir, td, 0); !errors.Is(err, ErrCAExists) {
		t.Errorf("Init with a lone ca.key: %v, want ErrCAExists", err)
	}
}

// TestInitBadTrustDomain: the trust domain follows identity's rules.
func TestInitBadTrustDomain(t *testing.T) {
	for _, bad := range []string{"", "Upper.case", "a/b", "spiffe://x"} {
		if err := Init(t.TempDir(), bad, 0); err == nil {
			t.Errorf("Init(%q) succeeded", bad)
		}
	}
}

// TestIssueRoles: a certificate for each role names its holder with the
// one URI SAN, has both EKUs and digitalSignature, verifies against the
// CA as a client and as a server, and its key is 0600.
func TestIssueRoles(t *testing.T) {
	dir := initCA(t)
	pool := caPool(t, dir)
	for _, tc := range []struct {
		id   identity.ID
		file string
	}{
		{identity.ID{Role: identity.RoleMgmt, Name: "a"}, "mgmt-a"},
		{identity.ID{Role: identity.RoleCtrl, Name: "pic0"}, "ctrl-pic0"},
		{identity.ID{Role: identity.RoleData, Name: "pic0"}, "data-pic0"},
		{identity.ID{Role: identity.RoleOperator, Perm: identity.PermRead, Name: "bob"}, "operator-bob"},
		{identity.ID{TrustDomain: td, Role: identity.RoleOperator, Perm: identity.PermAdmin, Name: "alice"}, "operator-alice"},
	} {
		certPath, keyPath, err := Issue(dir, tc.id, IssueOptions{})
		if err != nil {
			t.Errorf("%v: %v", tc.id, err)
			continue
		}
		if certPath != filepath.Join(dir, tc.file+".crt") || keyPath != filepath.Join(dir, tc.file+".key") {
			t.Errorf("%v: wrote %s, %s", tc.id, certPath, keyPath)
		}
		c := loadCert(t, certPath)
		want := tc.id
		want.TrustDomain = td
		got, err := identity.FromCert(c)
		if err != nil || got != want {
			t.Errorf("%v: FromCert = %v, %v", tc.id, got, err)
		}
		if len(c.URIs) != 1 || len(c.DNSNames) != 0 || len(c.IPAddresses) != 0 || len(c.EmailAddresses) != 0 {
			t.Errorf("%v: SANs %v %v %v %v, want the URI only", tc.id, c.URIs, c.DNSNames, c.IPAddresses, c.EmailAddresses)
		}
		if c.IsCA || c.KeyUsage != x509.KeyUsageDigitalSignature {
			t.Errorf("%v: IsCA %v, KeyUsage %b", tc.id, c.IsCA, c.KeyUsage)
		}
		if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 129 || c.SerialNumber.BitLen() < 64 {
			t.Errorf("%v: serial %v", tc.id, c.SerialNumber)
		}
		if d := time.Since(c.NotBefore); d < Backdate-time.Minute || d > Backdate+time.Minute {
			t.Errorf("%v: NotBefore %v ago", tc.id, d)
		}
		if d := time.Until(c.NotAfter) - DefaultValidity; d > time.Minute || d < -time.Minute {
			t.Errorf("%v: NotAfter %v from a year", tc.id, d)
		}
		for _, eku := range []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth} {
			if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{eku}}); err != nil {
				t.Errorf("%v: verify for EKU %v: %v", tc.id, eku, err)
			}
		}
		if m := mode(t, keyPath); m != 0o600 {
			t.Errorf("%v: key mode %v", tc.id, m)
		}
		if m := mode(t, certPath); m != 0o644 {
			t.Errorf("%v: cert mode %v", tc.id, m)
		}
		if _, err := tls.LoadX509KeyPair(certPath, keyPath); err != nil {
			t.Errorf("%v: %v", tc.id, err)
		}
	}
}

// TestIssueOptions: hosts become DNS and IP SANs, OutDir and Name place
// the files, and a reissue replaces them.
func TestIssueOptions(t *testing.T) {
	dir := initCA(t)
	out := filepath.Join(t.TempDir(), "sub")
	id := identity.ID{Role: identity.RoleMgmt, Name: "b"}
	opts := IssueOptions{Hosts: []string{"mgmt-b.example", "127.0.0.1", "::1", "localhost"}, OutDir: out, Name: "node", Validity: 48 * time.Hour}
	certPath, keyPath, err := Issue(dir, id, opts)
	if err != nil {
		t.Fatal(err)
	}
	if certPath != filepath.Join(out, "node.crt") || keyPath != filepath.Join(out, "node.key") {
		t.Errorf("wrote %s, %s", certPath, keyPath)
	}
	c := loadCert(t, certPath)
	if strings.Join(c.DNSNames, ",") != "mgmt-b.example,localhost" || len(c.IPAddresses) != 2 {
		t.Errorf("DNS %v, IP %v", c.DNSNames, c.IPAddresses)
	}
	if err := c.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if d := time.Until(c.NotAfter) - 48*time.Hour; d > time.Minute || d < -time.Minute {
		t.Errorf("NotAfter %v from 48h", d)
	}
	if _, _, err := Issue(dir, id, opts); err != nil {
		t.Fatal(err)
	}
	if c2 := loadCert(t, certPath); c2.SerialNumber.Cmp(c.SerialNumber) == 0 {
		t.Error("reissue did not replace the certificate")
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 2 {
		t.Errorf("%d files in the output directory, want 2", len(entries))
	}
}

// TestIssueRefuses: wrong trust domain, invalid identity, bad hosts and
// file names, a directory with no CA.
func TestIssueRefuses(t *testing.T) {
	dir := initCA(t)
	for _, tc := range []struct {
		id   identity.ID
		opts IssueOptions
		err  string
	}{
		{identity.ID{TrustDomain: "other.example", Role: identity.RoleMgmt, Name: "a"}, IssueOptions{}, "trust domain"},
		{identity.ID{Role: identity.RoleMgmt, Name: "a", Perm: identity.PermRead}, IssueOptions{}, "no permission"},
		{identity.ID{Role: identity.RoleOperator, Name: "a"}, IssueOptions{}, "permission"},
		{identity.ID{Role: "pic", Name: "a"}, IssueOptions{}, "unknown role"},
		{identity.ID{Role: identity.RoleCtrl, Name: "a/b"}, IssueOptions{}, "name"},
		{identity.ID{Role: identity.RoleCtrl, Name: "p"}, IssueOptions{Hosts: []string{"bad host"}}, "host"},
		{identity.ID{Role: identity.RoleCtrl, Name: "p"}, IssueOptions{Name: "ca"}, "CA's"},
		{identity.ID{Role: identity.RoleCtrl, Name: "p"}, IssueOptions{Name: "../x"}, "base name"},
		{identity.ID{Role: identity.RoleCtrl, Name: "p"}, IssueOptions{Validity: -time.Hour}, "negative"},
	} {
		if _, _, err := Issue(dir, tc.id, tc.opts); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Issue(%+v, %+v): %v, want an error saying %q", tc.id, tc.opts, err, tc.err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("%d files in the CA directory after refusals, want 2", len(entries))
	}
	if _, _, err := Issue(t.TempDir(), identity.ID{Role: identity.RoleMgmt, Name: "a"}, IssueOptions{}); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Issue with no CA: %v", err)
	}
}

// TestIssueCappedByCA: a certificate never outlives its CA.
func TestIssueCappedByCA(t *testing.T) {
	dir := t.TempDir()
	if err := Init(dir, td, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	certPath, _, err := Issue(dir, identity.ID{Role: identity.RoleData, Name: "p"}, IssueOptions{Validity: 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ca := loadCert(t, filepath.Join(dir, CACertFile))
	if c := loadCert(t, certPath); !c.NotAfter.Equal(ca.NotAfter) {
		t.Errorf("NotAfter %v, want the CA's %v", c.NotAfter, ca.NotAfter)
	}
}

// TestLoadCAErrors: a key that is not the certificate's, a certificate
// that is not a CA, a CA naming no trust domain are refused.
func TestLoadCAErrors(t *testing.T) {
	a, b := initCA(t), initCA(t)
	mixed := t.TempDir()
	cp := func(from, to string) {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cp(filepath.Join(a, CACertFile), filepath.Join(mixed, CACertFile))
	cp(filepath.Join(b, CAKeyFile), filepath.Join(mixed, CAKeyFile))
	if _, err := LoadCA(mixed); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("mismatched key: %v", err)
	}
	certPath, keyPath, err := Issue(a, identity.ID{Role: identity.RoleMgmt, Name: "a"}, IssueOptions{OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	leaf := t.TempDir()
	cp(certPath, filepath.Join(leaf, CACertFile))
	cp(keyPath, filepath.Join(leaf, CAKeyFile))
	if _, err := LoadCA(leaf); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Errorf("leaf as CA: %v", err)
	}
}

// TestMutualTLS: two issued certificates complete a TLS 1.3 handshake
// with mutual authentication against the CA, and each side reads the
// other's identity from the connection state.
func TestMutualTLS(t *testing.T) {
	dir := initCA(t)
	pool := caPool(t, dir)
	mgmtCert, mgmtKey, err := Issue(dir, identity.ID{Role: identity.RoleMgmt, Name: "a"}, IssueOptions{Hosts: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	opCert, opKey, err := Issue(dir, identity.ID{Role: identity.RoleOperator, Perm: identity.PermAdmin, Name: "alice"}, IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srvPair, err := tls.LoadX509KeyPair(mgmtCert, mgmtKey)
	if err != nil {
		t.Fatal(err)
	}
	cliPair, err := tls.LoadX509KeyPair(opCert, opKey)
	if err != nil {
		t.Fatal(err)
	}
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	srv := tls.Server(c1, &tls.Config{
		Certificates: []tls.Certificate{srvPair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS13,
	})
	cli := tls.Client(c2, &tls.Config{
		Certificates: []tls.Certificate{cliPair},
		RootCAs:      pool,
		ServerName:   "localhost",
		MinVersion:   tls.VersionTLS13,
	})
	deadline := time.Now().Add(10 * time.Second)
	c1.SetDeadline(deadline)
	c2.SetDeadline(deadline)
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if v := cli.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("version %x", v)
	}
	srvSees, err := identity.FromState(srv.ConnectionState())
	if err != nil || srvSees.String() != "spiffe://"+td+"/operator/admin/alice" || !srvSees.CanAct() {
		t.Errorf("the server sees %v, %v", srvSees, err)
	}
	cliSees, err := identity.FromState(cli.ConnectionState())
	if err != nil || cliSees.String() != "spiffe://"+td+"/mgmt/a" {
		t.Errorf("the client sees %v, %v", cliSees, err)
	}
}

// TestOpenSSLVerify: openssl accepts the chain for TLS client and server
// use (skipped without openssl).
func TestOpenSSLVerify(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	dir := initCA(t)
	certPath, _, err := Issue(dir, identity.ID{Role: identity.RoleCtrl, Name: "pic0"}, IssueOptions{Hosts: []string{"localhost", "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, purpose := range []string{"sslclient", "sslserver"} {
		out, err := exec.Command(openssl, "verify", "-x509_strict", "-purpose", purpose, "-CAfile", filepath.Join(dir, CACertFile), certPath).CombinedOutput()
		if err != nil || !strings.Contains(string(out), ": OK") {
			t.Errorf("openssl verify -purpose %s: %v\n%s", purpose, err, out)
		}
	}
	out, err := exec.Command(openssl, "x509", "-noout", "-ext", "subjectAltName", "-in", certPath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "URI:spiffe://"+td+"/ctrl/pic0") {
		t.Errorf("openssl x509 -ext subjectAltName: %v\n%s", err, out)
	}
}

// TestDeploy: one call makes the CA and every certificate of a
// deployment; a second reuses the CA; duplicates and a foreign trust
// domain are refused.
func TestDeploy(t *testing.T) {
	dir := t.TempDir()
	d := Deployment{
		Mgmt:      []string{"a", "b"},
		Pairs:     []string{"pic0", "pic1"},
		Operators: []identity.ID{{Name: "alice", Perm: identity.PermAdmin}, {Name: "bob", Perm: identity.PermRead}},
		Hosts:     []string{"localhost"},
	}
	gotTD, issued, err := Deploy(dir, d)
	if err != nil {
		t.Fatal(err)
	}
	if gotTD != DefaultTrustDomain {
		t.Errorf("trust domain %q", gotTD)
	}
	var names []string
	pool := caPool(t, dir)
	for _, is := range issued {
		names = append(names, filepath.Base(is.Cert))
		c := loadCert(t, is.Cert)
		id, err := identity.FromCert(c)
		if err != nil || id != is.ID {
			t.Errorf("%s: %v, %v; want %v", is.Cert, id, err, is.ID)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Error(err)
		}
		if wantHosts := is.ID.Role != identity.RoleOperator; (len(c.DNSNames) == 1) != wantHosts {
			t.Errorf("%s: DNS names %v", is.Cert, c.DNSNames)
		}
	}
	want := "mgmt-a.crt mgmt-b.crt ctrl-pic0.crt data-pic0.crt ctrl-pic1.crt data-pic1.crt operator-alice.crt operator-bob.crt"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("wrote %s\nwant  %s", got, want)
	}
	caBefore, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	if _, _, err := Deploy(dir, Deployment{TrustDomain: DefaultTrustDomain, Mgmt: []string{"c"}}); err != nil {
		t.Fatal(err)
	}
	if caAfter, _ := os.ReadFile(filepath.Join(dir, CACertFile)); string(caAfter) != string(caBefore) {
		t.Error("the second Deploy replaced the CA")
	}
	if _, _, err := Deploy(dir, Deployment{TrustDomain: "other.example", Mgmt: []string{"c"}}); err == nil {
		t.Error("Deploy with another trust domain succeeded")
	}
	for _, bad := range []Deployment{
		{Mgmt: []string{"a", "a"}},
		{Operators: []identity.ID{{Name: "x", Perm: identity.PermRead}, {Name: "x", Perm: identity.PermAdmin}}},
		{Operators: []identity.ID{{Name: "x"}}},
		{Pairs: []string{""}},
	} {
		empty := t.TempDir()
		if _, _, err := Deploy(empty, bad); err == nil {
			t.Errorf("Deploy(%+v) succeeded", bad)
		}
		if entries, _ := os.ReadDir(empty); len(entries) != 0 {
			t.Errorf("Deploy(%+v) wrote %d files before refusing", bad, len(entries))
		}
	}
}

// TestBringYourOwnCA: a CA made elsewhere, RSA with a PKCS#1 key or
// ECDSA with a SEC 1 key, is loaded and issues if its certificate names
// the trust domain with a URI SAN spiffe://<td>; without one it is
// refused.
func TestBringYourOwnCA(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		key     crypto.Signer
		keyPEM  *pem.Block
		uris    []*url.URL
		wantErr string
	}{
		{"rsa", rsaKey, &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}, []*url.URL{{Scheme: "spiffe", Host: td}}, ""},
		{"ec-sec1", ecKey, &pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}, []*url.URL{{Scheme: "spiffe", Host: td}}, ""},
		{"no-td", ecKey, &pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}, nil, "no trust domain"},
	} {
		dir := t.TempDir()
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "someone else's CA"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(time.Hour),
			KeyUsage:              x509.KeyUsageCertSign,
			BasicConstraintsValid: true,
			IsCA:                  true,
			URIs:                  tc.uris,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, tc.key.Public(), tc.key)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, CACertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
		os.WriteFile(filepath.Join(dir, CAKeyFile), pem.EncodeToMemory(tc.keyPEM), 0o600)
		certPath, _, err := Issue(dir, identity.ID{Role: identity.RoleData, Name: "p"}, IssueOptions{})
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		c := loadCert(t, certPath)
		if _, err := c.Verify(x509.VerifyOptions{Roots: caPool(t, dir), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if !c.NotAfter.Equal(tmpl.NotAfter.Truncate(time.Second)) {
			t.Errorf("%s: NotAfter %v, want the CA's %v", tc.name, c.NotAfter, tmpl.NotAfter)
		}
	}
}
