// Package tlsconf turns a certificate, its key and a CA bundle on disk
// into the mutual-TLS configurations of hellopics' links, and keeps them
// current: the files are read again when they change (Watch) or when
// asked (Reload, on SIGHUP), and new handshakes use the new certificate
// and CA at once, while established sessions carry on undisturbed.
//
// Peers are authenticated by their certificate's chain to the CA and
// identified by its SPIFFE ID (package identity), not by host name: a
// server is checked to be who the caller expects (the mgmt instance, the
// pair's ctrl), and a client to be of the roles the listener accepts.
// Only TLS 1.3 is spoken.
package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hellopics/hellopics/pkg/identity"
)

// Files names the PEM files of one process's TLS identity.
type Files struct {
	// Cert is this process's certificate (chain), PEM.
	Cert string
	// Key is its private key, PEM (PKCS#8, EC or PKCS#1).
	Key string
	// CA is the bundle of CA certificates that peers' certificates must
	// chain to, PEM.
	CA string
}

// Set reports whether any file is given.
func (f Files) Set() bool { return f.Cert != "" || f.Key != "" || f.CA != "" }

// Validate reports a partial set: all three files or none.
func (f Files) Validate() error {
	if !f.Set() {
		return nil
	}
	var missing []string
	if f.Cert == "" {
		missing = append(missing, "-tls-cert")
	}
	if f.Key == "" {
		missing = append(missing, "-tls-key")
	}
	if f.CA == "" {
		missing = append(missing, "-tls-ca")
	}
	if len(missing) > 0 {
		return fmt.Errorf("tlsconf: mutual TLS needs a certificate, its key and a CA; missing %v", missing)
	}
	return nil
}

// ExpiryWarning is how close to its end a certificate must be for Load,
// Reload and Watch to log a WARN.
const ExpiryWarning = 30 * 24 * time.Hour

// Source holds the current certificate, key and CA pool read from Files.
// It is safe for concurrent use.
type Source struct {
	files Files
	log   hclog.Logger
	now   func() time.Time

	mu     sync.RWMutex
	cert   *tls.Certificate
	leaf   *x509.Certificate
	id     identity.ID
	pool   *x509.CertPool
	stamps [3]stamp // of Cert, Key, CA when last read

	clientCache tls.ClientSessionCache
}

type stamp struct {
	mod  time.Time
	size int64
}

// Load reads files (all three must be given) and returns a Source. Its
// own certificate must carry a hellopics identity and chain to the CA.
func Load(files Files, log hclog.Logger) (*Source, error) {
	if !files.Set() {
		return nil, errors.New("tlsconf: no certificate files given")
	}
	if err := files.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	s := &Source{files: files, log: log, now: time.Now, clientCache: tls.NewLRUClientSessionCache(64)}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the files again. On success, new handshakes use what was
// read; on failure (a file half written, a key that does not match) the
// previous material stays in use and the error says why.
func (s *Source) Reload() error {
	cert, err := tls.LoadX509KeyPair(s.files.Cert, s.files.Key)
	if err != nil {
		return fmt.Errorf("tlsconf: certificate %s and key %s: %w", s.files.Cert, s.files.Key, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return fmt.Errorf("tlsconf: certificate %s: %w", s.files.Cert, err)
	}
	id, err := identity.FromCert(leaf)
	if err != nil {
		return fmt.Errorf("tlsconf: certificate %s: %w", s.files.Cert, err)
	}
	caPEM, err := os.ReadFile(s.files.CA)
	if err != nil {
		return fmt.Errorf("tlsconf: CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := caPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return fmt.Errorf("tlsconf: CA bundle %s: %w", s.files.CA, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return fmt.Errorf("tlsconf: CA bundle %s holds no certificate", s.files.CA)
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: s.now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("tlsconf: certificate %s does not chain to the CA in %s: %w", s.files.Cert, s.files.CA, err)
	}
	cert.Leaf = leaf
	var st [3]stamp
	for i, p := range []string{s.files.Cert, s.files.Key, s.files.CA} {
		st[i] = stampOf(p)
	}
	s.mu.Lock()
	changed := s.leaf == nil || s.leaf.SerialNumber.Cmp(leaf.SerialNumber) != 0
	s.cert, s.leaf, s.id, s.pool, s.stamps = &cert, leaf, id, pool, st
	s.mu.Unlock()
	if changed {
		s.log.Info("TLS certificate loaded", "identity", id.String(), "serial", leaf.SerialNumber.Text(16),
			"not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	s.checkExpiry()
	return nil
}

func stampOf(path string) stamp {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}
	}
	return stamp{mod: fi.ModTime(), size: fi.Size()}
}

// checkExpiry logs a WARN when the certificate is close to its end.
func (s *Source) checkExpiry() {
	left := s.NotAfter().Sub(s.now())
	switch {
	case left <= 0:
		s.log.Error("TLS certificate has expired; peers refuse it", "identity", s.ID().String(), "not_after", s.NotAfter().UTC().Format(time.RFC3339))
	case left < ExpiryWarning:
		s.log.Warn("TLS certificate expires soon; issue a new one (it is reloaded when its file changes)",
			"identity", s.ID().String(), "expires_in", left.Round(time.Minute).String())
	}
}

// Watch reloads the files whenever one of them changes (checked every
// interval) until ctx ends, and checks the expiry once a day. Run it on
// a goroutine the caller owns; it returns when ctx is done.
func (s *Source) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	lastExpiryCheck := s.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.RLock()
		old := s.stamps
		s.mu.RUnlock()
		changed := false
		for i, p := range []string{s.files.Cert, s.files.Key, s.files.CA} {
			if stampOf(p) != old[i] {
				changed = true
			}
		}
		if changed {
			if err := s.Reload(); err != nil {
				// Often a file caught half written: the next tick retries.
				s.log.Warn("TLS files changed but cannot be loaded; keeping the current ones", "error", err)
			}
		}
		if s.now().Sub(lastExpiryCheck) >= 24*time.Hour {
			lastExpiryCheck = s.now()
			s.checkExpiry()
		}
	}
}

// ID is the identity this process's certificate names.
func (s *Source) ID() identity.ID {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.id
}

// NotAfter is when this process's certificate expires.
func (s *Source) NotAfter() time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.leaf.NotAfter
}

func (s *Source) current() (*tls.Certificate, *x509.CertPool, identity.ID) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cert, s.pool, s.id
}

// Check is a caller's rule for the peer's identity: nil accepts it.
type Check func(peer identity.ID) error

// ServerConfig returns the configuration of a listener: TLS 1.3, a
// client certificate required, chained to the current CA, naming an
// identity of our trust domain that allow accepts (nil: any of them).
func (s *Source) ServerConfig(allow Check) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequireAnyClientCert, // verified below, against the CA of the moment
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			c, _, _ := s.current()
			return c, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := s.verifyPeer(cs, x509.ExtKeyUsageClientAuth, allow)
			return err
		},
	}
}

// ClientConfig returns the configuration for dialling a server: TLS 1.3,
// our certificate offered, the server's chained to the current CA and
// naming an identity of our trust domain that expect accepts (nil: any).
// Host names are not checked: identities are. Sessions are resumed where
// the server allows, so a reconnect after a failover costs less.
func (s *Source) ClientConfig(expect Check) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // the chain and the identity are verified below
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, _, _ := s.current()
			return c, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := s.verifyPeer(cs, x509.ExtKeyUsageServerAuth, expect)
			return err
		},
		ClientSessionCache: s.clientCache,
	}
}

// PeerError is why a peer's certificate was refused. Identity is what
// the certificate names, when it names anything.
type PeerError struct {
	Identity string
	Err      error
}

// Error says whose certificate was refused and why.
func (e *PeerError) Error() string {
	if e.Identity != "" {
		return fmt.Sprintf("tlsconf: peer %s refused: %v", e.Identity, e.Err)
	}
	return fmt.Sprintf("tlsconf: peer refused: %v", e.Err)
}

// Unwrap returns the reason.
func (e *PeerError) Unwrap() error { return e.Err }

func (s *Source) verifyPeer(cs tls.ConnectionState, usage x509.ExtKeyUsage, check Check) (identity.ID, error) {
	if len(cs.PeerCertificates) == 0 {
		return identity.ID{}, &PeerError{Err: errors.New("no certificate presented")}
	}
	_, pool, own := s.current()
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	id, idErr := identity.FromCert(leaf)
	name := ""
	if idErr == nil {
		name = id.String()
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: s.now(),
		KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return id, &PeerError{Identity: name, Err: err}
	}
	if idErr != nil {
		return id, &PeerError{Err: idErr}
	}
	if id.TrustDomain != own.TrustDomain {
		return id, &PeerError{Identity: name, Err: fmt.Errorf("trust domain %q is not ours (%q)", id.TrustDomain, own.TrustDomain)}
	}
	if check != nil {
		if err := check(id); err != nil {
			return id, &PeerError{Identity: name, Err: err}
		}
	}
	return id, nil
}

// Roles returns a Check that accepts the given roles.
func Roles(roles ...identity.Role) Check {
	return func(id identity.ID) error {
		for _, r := range roles {
			if id.Role == r {
				return nil
			}
		}
		return fmt.Errorf("role %s may not connect here (want %v)", id.Role, roles)
	}
}

// Exactly returns a Check that accepts only the identity with role and
// name (the mgmt peer we dial, the pair's ctrl).
func Exactly(role identity.Role, name string) Check {
	return func(id identity.ID) error {
		if id.Role != role || id.Name != name {
			return fmt.Errorf("is not %s/%s", role, name)
		}
		return nil
	}
}

var descExpiry = prometheus.NewDesc("hellopics_tls_cert_expiry_seconds",
	"Seconds until this process's TLS certificate expires (negative once it has).", []string{"identity"}, nil)

// Collector exports hellopics_tls_cert_expiry_seconds for the current
// certificate.
func (s *Source) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *Source }

func (c collector) Describe(ch chan<- *prometheus.Desc) { ch <- descExpiry }

func (c collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descExpiry, prometheus.GaugeValue,
		c.s.NotAfter().Sub(c.s.now()).Seconds(), c.s.ID().String())
}
