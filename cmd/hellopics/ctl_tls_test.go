package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hellopics/hellopics/internal/testpki"
	"github.com/hellopics/hellopics/mgmt/operator"
	"github.com/hellopics/hellopics/pkg/identity"
)

// ctlServeTLS runs an operator API over mutual TLS, with a certificate
// of ca for serverRole/serverName, until the test ends.
func ctlServeTLS(t *testing.T, b operator.Backend, ca *testpki.CA, serverRole identity.Role, serverName string) (*operator.Server, string) {
	t.Helper()
	src := ca.Source(t, ca.ID(t, serverRole, serverName))
	srv, _, addr := ctlServe(t, b, operator.WithTLS(src.ServerConfig(nil)))
	return srv, addr
}

// ctlCertArgs returns the TLS flags of a certificate of ca for role/name.
func ctlCertArgs(t *testing.T, ca *testpki.CA, role identity.Role, name string) []string {
	f := ca.Issue(t, ca.ID(t, role, name))
	return []string{"-tls-cert", f.Cert, "-tls-key", f.Key, "-tls-ca", f.CA}
}

func TestCtlTLS(t *testing.T) {
	ca := testpki.NewCA(t, "hellopics.test")
	srv, addr := ctlServeTLS(t, &ctlFakeBackend{status: ctlTestStatus()}, ca, identity.RoleMgmt, "mgmt-1")
	srv.SetServing(true)
	alice := ctlCertArgs(t, ca, identity.RoleOperator, "read/alice")
	bob := ctlCertArgs(t, ca, identity.RoleOperator, "admin/bob")

	code, out, errOut := ctlRunT(t, append([]string{"-addr", addr, "status"}, alice...)...)
	if code != 0 || !strings.Contains(out, "mgmt-1 (this instance)") {
		t.Errorf("status as alice: code %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if code, out, errOut := ctlRunT(t, append([]string{"-addr", addr, "health"}, alice...)...); code != 0 || out != "SERVING\n" {
		t.Errorf("health as alice: code %d, %q, %q", code, out, errOut)
	}
	code, _, errOut = ctlRunT(t, append([]string{"-addr", addr, "switchover"}, alice...)...)
	want := "hellopics ctl: switchover: mgmt at " + addr + " refused: permission denied: " +
		"spiffe://hellopics.test/operator/read/alice may not switch over: needs operator/admin\n"
	if code != 1 || errOut != want {
		t.Errorf("switchover as alice: code %d, stderr %q, want %q", code, errOut, want)
	}
	// The flags may come first, before the command; and from the
	// environment.
	code, out, errOut = ctlRunT(t, append(bob, "-addr", addr, "switchover")...)
	if code != 0 || out != "switchover done: mgmt-2 is master at epoch 8\n" {
		t.Errorf("switchover as bob: code %d, %q, %q", code, out, errOut)
	}
	t.Setenv("HELLOPICS_TLS_CERT", bob[1])
	t.Setenv("HELLOPICS_TLS_KEY", bob[3])
	t.Setenv("HELLOPICS_TLS_CA", bob[5])
	if code, out, errOut := ctlRunT(t, "-addr", addr, "switchover", "-to", "mgmt-2"); code != 0 {
		t.Errorf("switchover with HELLOPICS_TLS_*: code %d, %q, %q", code, out, errOut)
	}
}

func TestCtlTLSRefused(t *testing.T) {
	ca := testpki.NewCA(t, "hellopics.test")
	_, addr := ctlServeTLS(t, &ctlFakeBackend{status: ctlTestStatus()}, ca, identity.RoleMgmt, "mgmt-1")
	_, ctrlAddr := ctlServeTLS(t, &ctlFakeBackend{status: ctlTestStatus()}, ca, identity.RoleCtrl, "pic0")
	other := testpki.NewCA(t, "hellopics.test")
	// A client that trusts our mgmt but whose certificate mgmt does not
	// trust: mgmt refuses it.
	mallory := ctlCertArgs(t, other, identity.RoleOperator, "admin/mallory")
	both := filepath.Join(t.TempDir(), "both.crt")
	pemA, _ := os.ReadFile(ca.CAFile())
	pemB, _ := os.ReadFile(other.CAFile())
	if err := os.WriteFile(both, append(pemA, pemB...), 0o600); err != nil {
		t.Fatal(err)
	}
	mallory[5] = both
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"plaintext", []string{"-addr", addr}, "mgmt at " + addr + " closed the connection before answering"},
		{"ctrl's certificate", append([]string{"-addr", addr}, ctlCertArgs(t, ca, identity.RoleCtrl, "pic0")...),
			"mgmt at " + addr + " refused: permission denied: spiffe://hellopics.test/ctrl/pic0 may not read the operator API"},
		{"another CA", append([]string{"-addr", addr}, ctlCertArgs(t, other, identity.RoleOperator, "admin/mallory")...),
			"TLS with mgmt at " + addr + " failed"},
		{"refused by mgmt", append([]string{"-addr", addr}, mallory...),
			"TLS with mgmt at " + addr + " failed: mgmt "}, // refused our certificate (tls: bad certificate), or closed the connection (broken pipe) before we read why
		{"not a mgmt", append([]string{"-addr", ctrlAddr}, ctlCertArgs(t, ca, identity.RoleOperator, "admin/bob")...),
			"TLS with mgmt at " + ctrlAddr + " failed: tlsconf: peer spiffe://hellopics.test/ctrl/pic0 refused: role ctrl may not connect here"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := ctlRunT(t, append(tt.args, "status")...)
			if code != 1 || !strings.Contains(errOut, tt.want) {
				t.Errorf("status: code %d\nstdout: %s\nstderr: %s\nwant %q", code, out, errOut, tt.want)
			}
		})
	}
}

func TestCtlTLSUsage(t *testing.T) {
	ca := testpki.NewCA(t, "hellopics.test")
	f := ca.Issue(t, ca.ID(t, identity.RoleOperator, "read/alice"))
	code, _, errOut := ctlRunT(t, "-tls-cert", f.Cert, "status")
	if code != 2 || !strings.Contains(errOut, "missing [-tls-key -tls-ca]") {
		t.Errorf("partial TLS flags: code %d, %q", code, errOut)
	}
	code, _, errOut = ctlRunT(t, "-tls-cert", f.Cert, "-tls-key", f.Key, "-tls-ca", f.Cert+".nosuch", "status")
	if code != 1 || !strings.Contains(errOut, "CA bundle") {
		t.Errorf("missing CA file: code %d, %q", code, errOut)
	}
	if code, _, _ := ctlRunT(t, "-insecure", "status"); code != 2 {
		t.Errorf("ctl -insecure: code %d, want 2 (no such flag)", code)
	}
}
