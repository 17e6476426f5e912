package main

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hellopics/hellopics/pkg/identity"
	"github.com/hellopics/hellopics/pkg/pki"
)

func pkiRunT(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = pkiMain(args, &o, &e)
	return code, o.String(), e.String()
}

// TestPKIInitIssueShow: init, issue each role (flags before and after
// the arguments), show with -ca; the certificates name the right
// identities and verify against the CA.
func TestPKIInitIssueShow(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	if code, out, errOut := pkiRunT(t, "init", "-dir", dir, "-trust-domain", "plant1.example", "-days", "30"); code != 0 {
		t.Fatalf("init: %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := pkiRunT(t, "init", "-dir", dir); code != 1 || !strings.Contains(errOut, "already exists") {
		t.Errorf("second init: %d, %q", code, errOut)
	}
	out := t.TempDir()
	for _, tc := range []struct {
		args []string
		id   string
		file string
	}{
		{[]string{"-dir", dir, "mgmt", "a"}, "spiffe://plant1.example/mgmt/a", "mgmt-a"},
		{[]string{"ctrl", "pic0", "-dir", dir, "-out", out, "-host", "localhost,127.0.0.1"}, "spiffe://plant1.example/ctrl/pic0", "ctrl-pic0"},
		{[]string{"-dir", dir, "-days", "1", "data", "pic0"}, "spiffe://plant1.example/data/pic0", "data-pic0"},
		{[]string{"-dir", dir, "-perm", "admin", "operator", "alice"}, "spiffe://plant1.example/operator/admin/alice", "operator-alice"},
		{[]string{"-dir", dir, "operator", "bob", "-perm", "read"}, "spiffe://plant1.example/operator/read/bob", "operator-bob"},
	} {
		code, stdout, errOut := pkiRunT(t, append([]string{"issue"}, tc.args...)...)
		if code != 0 || !strings.HasPrefix(stdout, tc.id+": ") {
			t.Errorf("issue %q: %d\n%s%s", tc.args, code, stdout, errOut)
			continue
		}
		where := dir
		if strings.Contains(strings.Join(tc.args, " "), "-out") {
			where = out
		}
		certPath := filepath.Join(where, tc.file+".crt")
		certs, err := pki.LoadCerts(certPath)
		if err != nil {
			t.Fatal(err)
		}
		if id, err := identity.FromCert(certs[0]); err != nil || id.String() != tc.id {
			t.Errorf("%s names %v, %v", certPath, id, err)
		}
		code, stdout, errOut = pkiRunT(t, "show", "-ca", filepath.Join(dir, pki.CACertFile), certPath)
		if code != 0 {
			t.Errorf("show %s: %d\n%s%s", certPath, code, stdout, errOut)
		}
		for _, want := range []string{"identity:       " + tc.id, "issuer:         CN=hellopics CA plant1.example", "serverAuth, clientAuth", "verify client:  ok", "verify server:  ok", "ECDSA P-256"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("show %s: no %q in\n%s", certPath, want, stdout)
			}
		}
	}
	code, stdout, _ := pkiRunT(t, "show", filepath.Join(dir, pki.CACertFile))
	if code != 0 || !strings.Contains(stdout, "CA of trust domain plant1.example") || !strings.Contains(stdout, "path length 0") {
		t.Errorf("show ca.crt: %d\n%s", code, stdout)
	}
	// A certificate of another CA does not verify.
	other := t.TempDir()
	if code, _, errOut := pkiRunT(t, "init", "-dir", other); code != 0 {
		t.Fatal(errOut)
	}
	code, stdout, _ = pkiRunT(t, "show", "-ca", filepath.Join(other, pki.CACertFile), filepath.Join(dir, "mgmt-a.crt"))
	if code != 1 || !strings.Contains(stdout, "verify client:  FAILED") {
		t.Errorf("show against another CA: %d\n%s", code, stdout)
	}
	if code, _, errOut := pkiRunT(t, "show", filepath.Join(dir, "mgmt-a.key")); code != 1 || !strings.Contains(errOut, "no PEM CERTIFICATE") {
		t.Errorf("show of a key: %d %q", code, errOut)
	}
	// ca.crt, ca.key and mgmt-a, data-pic0, operator-alice and
	// operator-bob's .crt and .key; no temporary files.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 10 {
		t.Errorf("%d files in %s, want 10", len(entries), dir)
	}
}

// TestPKIDeployment: one command makes the CA and the documented files;
// it can be run again to add to the deployment with the same CA.
func TestPKIDeployment(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := pkiRunT(t, "deployment", "-dir", dir, "-mgmt", "a,b", "-pairs", "pic0,pic1", "-operators", "admin:alice,read:bob", "-host", "localhost,127.0.0.1")
	if code != 0 {
		t.Fatalf("deployment: %d\n%s%s", code, out, errOut)
	}
	var names []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := "ca.crt ca.key ctrl-pic0.crt ctrl-pic0.key ctrl-pic1.crt ctrl-pic1.key data-pic0.crt data-pic0.key data-pic1.crt data-pic1.key mgmt-a.crt mgmt-a.key mgmt-b.crt mgmt-b.key operator-alice.crt operator-alice.key operator-bob.crt operator-bob.key"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("files:\n%s\nwant\n%s", got, want)
	}
	cas, err := pki.LoadCerts(filepath.Join(dir, pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cas[0])
	for _, n := range []string{"mgmt-b", "ctrl-pic1", "operator-bob"} {
		c, err := pki.LoadCerts(filepath.Join(dir, n+".crt"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c[0].Verify(x509.VerifyOptions{Roots: pool, DNSName: map[bool]string{true: "", false: "localhost"}[n == "operator-bob"], KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("%s: %v", n, err)
		}
		if fi, err := os.Stat(filepath.Join(dir, n+".key")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s.key: %v, %v", n, fi.Mode(), err)
		}
	}
	code, out, errOut = pkiRunT(t, "deployment", "-dir", dir, "-mgmt", "c", "-pairs", "pic2", "-trust-domain", pki.DefaultTrustDomain)
	if code != 0 || !strings.Contains(out, "spiffe://hellopics.local/data/pic2") {
		t.Errorf("second deployment: %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := pkiRunT(t, "deployment", "-dir", dir, "-mgmt", "c", "-pairs", "pic2", "-trust-domain", "other.example"); code != 1 || !strings.Contains(errOut, "trust domain") {
		t.Errorf("deployment with another trust domain: %d %q", code, errOut)
	}
}

// TestPKIUsage: wrong command lines are refused with status 2 and a
// reason, before anything is written; -h is status 0.
func TestPKIUsage(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := pkiRunT(t, "init", "-dir", dir); code != 0 {
		t.Fatal(errOut)
	}
	for _, tc := range []struct {
		args []string
		code int
		say  string
	}{
		{[]string{}, 2, "Usage: hellopics pki"},
		{[]string{"help"}, 0, ""},
		{[]string{"nope"}, 2, "unknown command"},
		{[]string{"init", "-h"}, 0, ""},
		{[]string{"init"}, 2, "-dir is required"},
		{[]string{"init", "-dir", t.TempDir(), "-days", "0"}, 2, "-days 0"},
		{[]string{"init", "-dir", t.TempDir(), "extra"}, 2, "unexpected"},
		{[]string{"init", "-dir", t.TempDir(), "-trust-domain", "Bad_TD"}, 1, "trust domain"},
		{[]string{"issue", "-h"}, 0, ""},
		{[]string{"issue", "-dir", dir, "mgmt"}, 2, "want ROLE NAME"},
		{[]string{"issue", "mgmt", "a"}, 2, "-dir is required"},
		{[]string{"issue", "-dir", dir, "pic", "a"}, 2, `role "pic"`},
		{[]string{"issue", "-dir", dir, "operator", "alice"}, 2, "needs -perm"},
		{[]string{"issue", "-dir", dir, "-perm", "root", "operator", "alice"}, 2, "needs -perm"},
		{[]string{"issue", "-dir", dir, "-perm", "read", "mgmt", "a"}, 2, "operators only"},
		{[]string{"issue", "-dir", dir, "mgmt", "a/b"}, 2, "name"},
		{[]string{"issue", "-dir", dir, "-days", "-1", "mgmt", "a"}, 2, "-days -1"},
		{[]string{"issue", "-dir", dir, "-no-such-flag", "mgmt", "a"}, 2, "not defined"},
		{[]string{"issue", "-dir", dir, "-host", "bad host", "mgmt", "a"}, 1, "host"},
		{[]string{"issue", "-dir", t.TempDir(), "mgmt", "a"}, 1, "ca.crt"},
		{[]string{"deployment", "-dir", dir, "-pairs", "p"}, 2, "-mgmt is required"},
		{[]string{"deployment", "-dir", dir, "-mgmt", "a"}, 2, "-pairs is required"},
		{[]string{"deployment", "-mgmt", "a", "-pairs", "p"}, 2, "-dir is required"},
		{[]string{"deployment", "-dir", dir, "-mgmt", "a", "-pairs", "p", "-operators", "alice"}, 2, "PERM:NAME"},
		{[]string{"deployment", "-dir", dir, "-mgmt", "a", "-pairs", "p", "-operators", "root:alice"}, 2, "PERM:NAME"},
		{[]string{"deployment", "-dir", dir, "-mgmt", "a,a", "-pairs", "p"}, 1, "twice"},
		{[]string{"show"}, 2, "at least one FILE"},
		{[]string{"show", filepath.Join(dir, "nonexistent.crt")}, 1, "no such file"},
	} {
		code, _, errOut := pkiRunT(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.say) {
			t.Errorf("hellopics pki %q: exit %d, want %d; stderr %q, want it to say %q", tc.args, code, tc.code, errOut, tc.say)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("%d files in the CA directory after refusals, want 2", len(entries))
	}
}

// TestPKIListed: the subcommand is in the top-level usage.
func TestPKIListed(t *testing.T) {
	var b bytes.Buffer
	usage(&b)
	if !strings.Contains(b.String(), "\n  pki ") {
		t.Errorf("no pki in\n%s", b.String())
	}
}
