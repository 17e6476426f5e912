package pconn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// testPKI is a throwaway CA with a server and a client certificate.
type testPKI struct {
	pool           *x509.CertPool
	server, client tls.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "hellopics test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) tls.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn, Organization: []string{"hellopics"}},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &testPKI{
		pool:   pool,
		server: leaf(2, "mgmt-a", x509.ExtKeyUsageServerAuth),
		client: leaf(3, "ctrl-pic0", x509.ExtKeyUsageClientAuth),
	}
}

func TestMutualTLS(t *testing.T) {
	checkNoLeaks(t)
	pki := newTestPKI(t)
	srvEv := newRecorder()
	scfg := testConfig(echo, srvEv)
	scfg.TLS = &tls.Config{
		Certificates: []tls.Certificate{pki.server},
		ClientCAs:    pki.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
	srv := listen(t, scfg)

	in := newInbox()
	ev := newRecorder()
	ccfg := testConfig(in, ev)
	ccfg.TLS = &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.client}, MinVersion: tls.VersionTLS13}
	c := dial(t, ccfg, srv.Addr().String())
	cs := ev.next(t, EventEstablished).Session
	ss := srvEv.next(t, EventEstablished).Session
	if got := ss.PeerIdentity(); !strings.Contains(got, "CN=ctrl-pic0") {
		t.Fatalf("server sees client identity %q", got)
	}
	if got := cs.PeerIdentity(); !strings.Contains(got, "CN=mgmt-a") {
		t.Fatalf("client sees server identity %q", got)
	}
	if err := c.Send(4, []byte("secret")); err != nil {
		t.Fatal(err)
	}
	if m := in.next(t); string(m.Payload) != "secret" {
		t.Fatalf("echo over TLS: %q", m.Payload)
	}
	c.Close()

	// A client without a certificate is refused by the handshake and
	// never reaches the handlers.
	ev2 := newRecorder()
	nocert := testConfig(newInbox(), ev2)
	nocert.TLS = &tls.Config{RootCAs: pki.pool, MinVersion: tls.VersionTLS13}
	c2 := dial(t, nocert, srv.Addr().String())
	// TLS 1.3 lets the client finish its side of the handshake before the
	// server verifies; the server then refuses, and the client's session
	// (or attempt) fails on the server's certificate-required alert.
	fail := ev2.next(t, EventFailed)
	mustContain(t, fail.Err, "certificate")
	c2.Close()
	if n := len(srv.Sessions()); n != 0 {
		t.Fatalf("%d sessions on the server; the uncertified client got in", n)
	}

	// A client that does not trust the server's CA fails its handshake.
	ev3 := newRecorder()
	untrusting := testConfig(newInbox(), ev3)
	untrusting.TLS = &tls.Config{RootCAs: x509.NewCertPool(), Certificates: []tls.Certificate{pki.client}}
	untrusting.MaxRetries = 1
	c3 := dial(t, untrusting, srv.Addr().String())
	<-c3.Done()
	mustContain(t, c3.Err(), "certificate")
}

// TestTLSDirectWritesKeepOrder: over TLS a quiet Send writes through TLS
// itself (writeDirectTLS) and a busy one goes through the writer; mixed
// from several goroutines, with pauses that let both paths run, every
// frame arrives once, in each sender's order, and the byte counters add
// up.
func TestTLSDirectWritesKeepOrder(t *testing.T) {
	checkNoLeaks(t)
	pki := newTestPKI(t)
	in := newInbox()
	srvEv := newRecorder()
	scfg := testConfig(in, srvEv)
	scfg.TLS = &tls.Config{Certificates: []tls.Certificate{pki.server}, ClientCAs: pki.pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
	srv := listen(t, scfg)
	ev := newRecorder()
	ccfg := testConfig(newInbox(), ev)
	ccfg.TLS = &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.client}, MinVersion: tls.VersionTLS13}
	c := dial(t, ccfg, srv.Addr().String())
	cs := ev.next(t, EventEstablished).Session
	srvEv.next(t, EventEstablished)

	const senders, each = 4, 2000
	done := make(chan error, senders)
	for g := range senders {
		go func() {
			p := make([]byte, 8+g*700) // small and larger frames
			for i := range each {
				p[0], p[1], p[2] = byte(g), byte(i>>8), byte(i)
				for {
					err := cs.Send(MsgType(1+g), p)
					if err == nil {
						break
					}
					if err != ErrQueueFull {
						done <- err
						return
					}
					time.Sleep(time.Millisecond)
				}
				if i%97 == 0 {
					time.Sleep(50 * time.Microsecond) // quiet: the next Send may write directly
				}
			}
			done <- nil
		}()
	}
	for range senders {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	next := make([]int, senders)
	for range senders * each {
		m := in.next(t)
		g := int(m.Type) - 1
		if i := int(m.Payload[1])<<8 | int(m.Payload[2]); int(m.Payload[0]) != g || i != next[g] || len(m.Payload) != 8+g*700 {
			t.Fatalf("sender %d: frame %d (%d bytes) arrived when %d was due", g, i, len(m.Payload), next[g])
		}
		next[g]++
	}
	c.Close()
}
