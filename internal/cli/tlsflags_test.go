package cli

import (
	"errors"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestTLSFlagsSecureByDefault(t *testing.T) {
	var f TLSFlags
	log := hclog.NewNullLogger()
	if s, err := f.Load(log, "127.0.0.1:7300", "[::1]:7301", "localhost:1", ""); s != nil || err != nil {
		t.Fatalf("loopback without certificates: %v %v", s, err)
	}
	if _, err := f.Load(log, "127.0.0.1:7300", ":7300"); !errors.Is(err, ErrInsecure) {
		t.Fatalf("every interface without certificates: %v", err)
	}
	if _, err := f.Load(log, "192.0.2.1:7300"); !errors.Is(err, ErrInsecure) {
		t.Fatalf("another host without certificates: %v", err)
	}
	f.Insecure = true
	if s, err := f.Load(log, "192.0.2.1:7300"); s != nil || err != nil {
		t.Fatalf("-insecure: %v %v", s, err)
	}
	f.Files.Cert = "x.crt"
	if _, err := f.Load(log); err == nil {
		t.Fatal("a certificate without key and CA")
	}
}
