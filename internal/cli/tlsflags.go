package cli

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/hellopics/hellopics/pkg/tlsconf"
)

// TLSFlags are the mutual-TLS options every daemon and ctl accept, the
// same everywhere: -tls-cert, -tls-key, -tls-ca (or HELLOPICS_TLS_CERT,
// HELLOPICS_TLS_KEY, HELLOPICS_TLS_CA, for systemd env files) and
// -insecure.
type TLSFlags struct {
	Files tlsconf.Files
	// Insecure allows plaintext on addresses other than loopback.
	Insecure bool
}

// Register adds the flags to fs.
func (f *TLSFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Files.Cert, "tls-cert", os.Getenv("HELLOPICS_TLS_CERT"), "this process's certificate, PEM (env HELLOPICS_TLS_CERT; hellopics pki issue makes one)")
	fs.StringVar(&f.Files.Key, "tls-key", os.Getenv("HELLOPICS_TLS_KEY"), "its private key, PEM, mode 0600 (env HELLOPICS_TLS_KEY)")
	fs.StringVar(&f.Files.CA, "tls-ca", os.Getenv("HELLOPICS_TLS_CA"), "the CA certificate(s) peers must chain to, PEM (env HELLOPICS_TLS_CA)")
	fs.BoolVar(&f.Insecure, "insecure", false, "allow plaintext without certificates on addresses other than loopback (anyone who reaches a port may then speak)")
}

// ErrInsecure is returned by Load when no certificates are given and an
// address is not loopback.
var ErrInsecure = errors.New("no TLS certificates")

// Load returns the TLS source the flags name, or nil for plaintext.
// Without certificates, plaintext is allowed only when every address in
// addrs (listen or dial addresses, host:port; "" is skipped) is
// loopback, with a WARN, or when -insecure is given; otherwise Load
// fails and says what to do.
func (f *TLSFlags) Load(log hclog.Logger, addrs ...string) (*tlsconf.Source, error) {
	if f.Files.Set() {
		return tlsconf.Load(f.Files, log.Named("tls"))
	}
	var open []string
	for _, a := range addrs {
		if a != "" && !IsLoopback(a) {
			open = append(open, a)
		}
	}
	switch {
	case len(open) > 0 && !f.Insecure:
		return nil, fmt.Errorf("%w for %v, which are not loopback: give -tls-cert, -tls-key and -tls-ca "+
			"(hellopics pki init and hellopics pki issue make them), or -insecure to run in plaintext anyway", ErrInsecure, open)
	case len(open) > 0:
		log.Warn("running WITHOUT TLS on addresses other than loopback (-insecure): anyone who reaches them may speak", "addrs", open)
	default:
		log.Warn("running without TLS (loopback only); give -tls-cert, -tls-key and -tls-ca for mutual TLS")
	}
	return nil, nil
}

// IsLoopback reports whether the host of addr (host:port) is a loopback
// address or "localhost". An empty host (every interface) is not.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
