package tlsconf

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hellopics/hellopics/pkg/identity"
)

// testCA is a CA made for a test, writing PEM files into dir.
type testCA struct {
	t    *testing.T
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	td   string
}

func newCA(t *testing.T, td string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA " + td},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	ca := &testCA{t: t, dir: t.TempDir(), cert: c, key: key, td: td}
	writePEM(t, filepath.Join(ca.dir, "ca.crt"), "CERTIFICATE", der)
	return ca
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

var serial int64 = 100

// issue writes name.crt and name.key for id, valid from nb to na.
func (ca *testCA) issue(name string, id identity.ID, nb, na time.Time) Files {
	ca.t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), NotBefore: nb, NotAfter: na,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{id.URI()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	f := Files{Cert: filepath.Join(ca.dir, name+".crt"), Key: filepath.Join(ca.dir, name+".key"), CA: filepath.Join(ca.dir, "ca.crt")}
	writePEM(ca.t, f.Cert, "CERTIFICATE", der)
	writePEM(ca.t, f.Key, "PRIVATE KEY", kder)
	return f
}

func (ca *testCA) id(role identity.Role, name string) identity.ID {
	id := identity.ID{TrustDomain: ca.td, Role: role, Name: name}
	if role == identity.RoleOperator {
		id.Perm = identity.PermRead
	}
	return id
}

func (ca *testCA) good(name string, role identity.Role, n string) Files {
	return ca.issue(name, ca.id(role, n), time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
}

func load(t *testing.T, f Files) *Source {
	t.Helper()
	s, err := Load(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// handshake runs a TLS handshake over loopback between a client and a
// server config and returns each side's error and the identity each
// saw of the other.
func handshake(t *testing.T, client, server *tls.Config) (cerr, serr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		tc := tls.Server(c, server)
		err = tc.Handshake()
		if err == nil {
			// TLS 1.3: the client's certificate is checked after the
			// client's Finished; read to see the outcome.
			_ = tc.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = tc.Read(make([]byte, 1))
		}
		done <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := tls.Client(c, client)
	cerr = tc.Handshake()
	if cerr == nil {
		_, cerr = tc.Write([]byte{1})
		if cerr == nil {
			// Read the server's verdict on our certificate, if any.
			_ = tc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := tc.Read(make([]byte, 1)); err != nil && !isTimeout(err) && !errors.Is(err, io.EOF) {
				cerr = err
			}
		}
	}
	serr = <-done
	if serr != nil && strings.Contains(serr.Error(), "EOF") && cerr != nil {
		serr = nil // the client gave up first
	}
	return cerr, serr
}

// rawClient offers s's certificate and accepts any server: to see what
// the server alone decides.
func rawClient(t *testing.T, s *Source) *tls.Config {
	t.Helper()
	c, _, _ := s.current()
	return &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, Certificates: []tls.Certificate{*c}}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestMutualTLSIdentities(t *testing.T) {
	ca := newCA(t, "hellopics.test")
	mgmt := load(t, ca.good("mgmt-a", identity.RoleMgmt, "a"))
	ctrl := load(t, ca.good("ctrl-pic0", identity.RoleCtrl, "pic0"))
	data := load(t, ca.good("data-pic0", identity.RoleData, "pic0"))
	data1 := load(t, ca.good("data-pic1", identity.RoleData, "pic1"))

	// ctrl to mgmt, which accepts ctrl and data: fine.
	if c, s := handshake(t, ctrl.ClientConfig(Roles(identity.RoleMgmt)), mgmt.ServerConfig(Roles(identity.RoleCtrl, identity.RoleData))); c != nil || s != nil {
		t.Fatalf("ctrl to mgmt: client %v, server %v", c, s)
	}
	// data of pic1 to pic0's ctrl data port: refused by the server.
	_, s := handshake(t, rawClient(t, data1), ctrl.ServerConfig(Exactly(identity.RoleData, "pic0")))
	var pe *PeerError
	if !errors.As(s, &pe) || !strings.Contains(pe.Identity, "/data/pic1") {
		t.Fatalf("data of another pair: server %v", s)
	}
	// data dialling what it believes is its ctrl, but the server is mgmt:
	// refused by the client.
	c, _ := handshake(t, data.ClientConfig(Exactly(identity.RoleCtrl, "pic0")), mgmt.ServerConfig(nil))
	if !errors.As(c, &pe) || !strings.Contains(c.Error(), "is not ctrl/pic0") {
		t.Fatalf("data to a server that is not its ctrl: client %v", c)
	}
}

func TestRefusedCertificates(t *testing.T) {
	ca := newCA(t, "hellopics.test")
	other := newCA(t, "hellopics.test")
	foreign := newCA(t, "elsewhere.test")
	mgmt := load(t, ca.good("mgmt-a", identity.RoleMgmt, "a"))
	srv := mgmt.ServerConfig(nil)

	// Another CA's certificate (same trust domain name): not trusted.
	stranger := load(t, other.good("ctrl-x", identity.RoleCtrl, "pic0"))
	if _, s := handshake(t, stranger.ClientConfig(nil), srv); s == nil {
		t.Error("a certificate of another CA was accepted")
	}
	// Another trust domain, signed by our CA.
	td := ca.issue("ctrl-td", identity.ID{TrustDomain: "elsewhere.test", Role: identity.RoleCtrl, Name: "pic0"},
		time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	if s, err := Load(td, nil); err != nil {
		t.Fatal(err)
	} else if _, se := handshake(t, rawClient(t, s), srv); se == nil || !strings.Contains(se.Error(), "trust domain") {
		t.Errorf("another trust domain: %v", se)
	}
	_ = foreign
	// An expired certificate: Load refuses nothing (it may be replaced
	// soon), the peer refuses it.
	exp := ca.issue("ctrl-exp", ca.id(identity.RoleCtrl, "pic0"), time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
	es, err := Load(exp, nil)
	if err == nil {
		if _, se := handshake(t, es.ClientConfig(nil), srv); se == nil || !strings.Contains(se.Error(), "expired") {
			t.Errorf("an expired certificate: %v", se)
		}
	} else if !strings.Contains(err.Error(), "expired") {
		t.Errorf("loading an expired certificate: %v", err)
	}
	// No client certificate at all.
	noCert := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}
	if _, se := handshake(t, noCert, srv); se == nil {
		t.Error("a client without a certificate was accepted")
	}
	// TLS 1.2 only: refused.
	old := &tls.Config{MaxVersion: tls.VersionTLS12, InsecureSkipVerify: true}
	if c, _ := handshake(t, old, srv); c == nil {
		t.Error("a TLS 1.2 client got through")
	}
}

func TestFilesValidate(t *testing.T) {
	if err := (Files{Cert: "a"}).Validate(); err == nil || !strings.Contains(err.Error(), "-tls-key") {
		t.Errorf("partial files: %v", err)
	}
	if err := (Files{}).Validate(); err != nil {
		t.Errorf("no files: %v", err)
	}
	if _, err := Load(Files{}, nil); err == nil {
		t.Error("Load without files")
	}
	ca := newCA(t, "hellopics.test")
	f := ca.good("x", identity.RoleCtrl, "pic0")
	f.CA = filepath.Join(newCA(t, "hellopics.test").dir, "ca.crt")
	if _, err := Load(f, nil); err == nil || !strings.Contains(err.Error(), "does not chain") {
		t.Errorf("a certificate of another CA: %v", err)
	}
}

// TestReload: a new certificate written over the files is used by the
// next handshake, without touching an established connection.
func TestReload(t *testing.T) {
	ca := newCA(t, "hellopics.test")
	f := ca.good("mgmt-a", identity.RoleMgmt, "a")
	s := load(t, f)
	first := s.NotAfter()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); s.Watch(ctx, 10*time.Millisecond) }()

	// A connection established with the first certificate.
	client := load(t, ca.good("ctrl", identity.RoleCtrl, "pic0"))
	ln, err := tls.Listen("tcp", "127.0.0.1:0", s.ServerConfig(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, 1)
				for {
					if _, err := c.Read(b); err != nil {
						return
					}
					if _, err := c.Write(b); err != nil {
						return
					}
				}
			}()
		}
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), client.ClientConfig(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echo := func(c *tls.Conn) {
		t.Helper()
		if _, err := c.Write([]byte{7}); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		if _, err := c.Read(b); err != nil || b[0] != 7 {
			t.Fatalf("echo: %v %v", b, err)
		}
	}
	echo(conn)

	// Rotate: a new certificate, valid longer, written over the files.
	ca.issue("mgmt-a", ca.id(identity.RoleMgmt, "a"), time.Now().Add(-time.Minute), time.Now().Add(2*time.Hour))
	deadline := time.Now().Add(10 * time.Second)
	for s.NotAfter().Equal(first) {
		if time.Now().After(deadline) {
			t.Fatal("the new certificate was not picked up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	echo(conn) // the old connection carries on
	fresh := client.ClientConfig(nil)
	fresh.ClientSessionCache = nil // a resumed session would show the old certificate
	conn2, err := tls.Dial("tcp", ln.Addr().String(), fresh)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	echo(conn2)
	if got := conn2.ConnectionState().PeerCertificates[0].NotAfter; !got.Equal(s.NotAfter()) {
		t.Fatalf("the new connection saw a certificate ending %v; want %v", got, s.NotAfter())
	}
	cancel()
	<-done
}
