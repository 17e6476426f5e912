package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hellopics/hellopics/internal/cli"
	"github.com/hellopics/hellopics/pkg/identity"
	"github.com/hellopics/hellopics/pkg/pki"
)

func init() {
	register(&command{name: "pki", summary: "make a CA and issue the certificates of mutual TLS", run: runPKI})
}

const pkiUsage = `Usage: hellopics pki <command> [flags] [args]

Makes a certificate authority for a deployment and issues the
certificates its components and operators present over mutual TLS.
Each certificate names its holder with one URI SAN, a SPIFFE ID:
spiffe://<trust-domain>/mgmt/<id>, /ctrl/<pair>, /data/<pair>,
/operator/read/<name> or /operator/admin/<name>.

Commands:
  init -dir DIR [-trust-domain TD] [-days N]
        make a CA: DIR/ca.crt (give it to every process) and DIR/ca.key
        (mode 0600; keep it off the appliances). Refuses to replace one.
  issue -dir DIR [-out DIR] [-host H,...] [-days N] [-perm P] ROLE NAME
        issue OUT/ROLE-NAME.crt and .key (mode 0600), replacing older ones.
        ROLE is mgmt, ctrl, data or operator; NAME the mgmt id, the pair
        or the operator's name; -perm read|admin is an operator's
        permission (required for operators only).
  deployment -dir DIR -mgmt ID,... -pairs PAIR,... [-operators PERM:NAME,...]
             [-host H,...] [-days N] [-trust-domain TD]
        make the CA if DIR has none, then issue into DIR everything a
        deployment needs: mgmt-ID.crt/.key for each mgmt instance,
        ctrl-PAIR.crt/.key and data-PAIR.crt/.key for each pair,
        operator-NAME.crt/.key for each operator.
  show [-ca CAFILE] FILE...
        print the certificates of PEM files: identity, issuer, validity,
        SANs, key usages; with -ca, also whether each verifies against it.

Examples:
  hellopics pki init -dir /etc/hellopics/pki -trust-domain plant1.example
  hellopics pki issue -dir /etc/hellopics/pki -host mgmt-a.plant1.example mgmt a
  hellopics pki issue -dir /etc/hellopics/pki -perm admin operator alice
  hellopics pki deployment -dir ./pki -mgmt a,b -pairs pic0,pic1 -operators admin:alice,read:bob -host localhost,127.0.0.1
  hellopics pki show -ca ./pki/ca.crt ./pki/mgmt-a.crt

Flags may also follow the arguments. Run "hellopics pki <command> -h"
for a command's flags. Exit status: 0 on success, 1 on failure, 2 on
bad usage.
`

func runPKI(args []string) int { return pkiMain(args, os.Stdout, os.Stderr) }

// pkiMain runs "hellopics pki" with its arguments, writing to stdout and
// stderr, and returns the exit code.
func pkiMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, pkiUsage)
		return 2
	}
	cmds := map[string]func([]string, io.Writer, io.Writer) int{
		"init":       pkiInit,
		"issue":      pkiIssue,
		"deployment": pkiDeployment,
		"show":       pkiShow,
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, pkiUsage)
		return 0
	}
	run, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "hellopics pki: unknown command %q\n\n%s", args[0], pkiUsage)
		return 2
	}
	return run(args[1:], stdout, stderr)
}

// pkiFlagSet is cli.NewFlagSet writing to stderr.
func pkiFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := cli.NewFlagSet("hellopics pki "+name, usage)
	fs.SetOutput(stderr)
	return fs
}

// parseInterspersed parses args allowing flags after positional
// arguments (as in "issue mgmt a -dir x"); "--" ends the flags. It
// returns the positional arguments, and like cli.ParseFlags the exit code
// and false when the command should stop.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, int, bool) {
	var pos []string
	for {
		if code, ok := cli.ParseFlags(fs, args); !ok {
			return nil, code, false
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, 0, true
		}
		// flag stops at "--" (consumed) or at the first non-flag.
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), 0, true
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// pkiUsageErr reports a usage error in the flag set's way: the message,
// then the usage, status 2.
func pkiUsageErr(fs *flag.FlagSet, format string, a ...any) int {
	fmt.Fprintf(fs.Output(), "%s: "+format+"\n\n", append([]any{fs.Name()}, a...)...)
	fs.Usage()
	return 2
}

// pkiFail reports an error of a pki command (without the package's
// "pki: " prefix).
func pkiFail(stderr io.Writer, cmd string, err error) {
	fmt.Fprintf(stderr, "hellopics pki %s: %s\n", cmd, strings.TrimPrefix(err.Error(), "pki: "))
}

// daysDuration turns -days into a validity, reporting a usage error
// (and false) when it is out of range.
func daysDuration(fs *flag.FlagSet, days int) (time.Duration, bool) {
	if days <= 0 || days > 100*366 {
		pkiUsageErr(fs, "-days %d: want 1 to %d", days, 100*366)
		return 0, false
	}
	return time.Duration(days) * 24 * time.Hour, true
}

const pkiInitUsage = `Usage: hellopics pki init -dir DIR [-trust-domain TD] [-days N]

Makes a CA: a new ECDSA P-256 key in DIR/ca.key (PKCS#8 PEM, mode 0600)
and a self-signed CA certificate in DIR/ca.crt naming the trust domain
(subject "hellopics CA TD", URI SAN spiffe://TD). DIR is created (mode
0700) if missing. An existing CA is never replaced.

Flags:
`

func pkiInit(args []string, stdout, stderr io.Writer) int {
	fs := pkiFlagSet("init", pkiInitUsage, stderr)
	dir := fs.String("dir", "", "CA directory (required)")
	td := fs.String("trust-domain", pki.DefaultTrustDomain, "SPIFFE trust domain: lowercase letters, digits, '-' and '.'")
	days := fs.Int("days", 3650, "validity of the CA certificate, days")
	pos, code, ok := parseInterspersed(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return pkiUsageErr(fs, "unexpected arguments %q", pos)
	}
	if *dir == "" {
		return pkiUsageErr(fs, "-dir is required")
	}
	validity, ok := daysDuration(fs, *days)
	if !ok {
		return 2
	}
	if err := pki.Init(*dir, *td, validity); err != nil {
		pkiFail(stderr, "init", err)
		return 1
	}
	fmt.Fprintf(stdout, "CA of trust domain %s: %s, %s (keep the key secret)\n", *td,
		filepath.Join(*dir, pki.CACertFile), filepath.Join(*dir, pki.CAKeyFile))
	return 0
}

const pkiIssueUsage = `Usage: hellopics pki issue -dir DIR [-out DIR] [-host H,...] [-days N] [-perm read|admin] ROLE NAME

Issues a certificate signed by the CA of -dir for ROLE NAME:
  mgmt ID       spiffe://TD/mgmt/ID          a management instance
  ctrl PAIR     spiffe://TD/ctrl/PAIR        the control component of a pair
  data PAIR     spiffe://TD/data/PAIR        the data component of a pair
  operator NAME spiffe://TD/operator/PERM/NAME, with -perm read or admin
The trust domain TD is the CA's. Writes OUT/ROLE-NAME.crt (mode 0644)
and OUT/ROLE-NAME.key (mode 0600), replacing older ones (renewal). The
certificate is valid for both TLS server and client authentication and
never outlives the CA.

Flags:
`

func pkiIssue(args []string, stdout, stderr io.Writer) int {
	fs := pkiFlagSet("issue", pkiIssueUsage, stderr)
	dir := fs.String("dir", "", "CA directory, holding ca.crt and ca.key (required)")
	out := fs.String("out", "", "directory the certificate and key are written to (default: -dir)")
	hosts := fs.String("host", "", "comma-separated DNS names and IP addresses added as SANs")
	days := fs.Int("days", 365, "validity, days (cut short at the CA's expiry)")
	perm := fs.String("perm", "", "operator permission: read or admin (operators only)")
	name := fs.String("name", "", "base name of the files (default: ROLE-NAME)")
	pos, code, ok := parseInterspersed(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 2 {
		return pkiUsageErr(fs, "want ROLE NAME, got %d arguments", len(pos))
	}
	if *dir == "" {
		return pkiUsageErr(fs, "-dir is required")
	}
	validity, ok := daysDuration(fs, *days)
	if !ok {
		return 2
	}
	id := identity.ID{Role: identity.Role(pos[0]), Name: pos[1], Perm: identity.Perm(*perm)}
	switch id.Role {
	case identity.RoleMgmt, identity.RoleCtrl, identity.RoleData:
		if *perm != "" {
			return pkiUsageErr(fs, "-perm is for operators only, not a %s", id.Role)
		}
	case identity.RoleOperator:
		if id.Perm != identity.PermRead && id.Perm != identity.PermAdmin {
			return pkiUsageErr(fs, "an operator needs -perm read or -perm admin")
		}
	default:
		return pkiUsageErr(fs, "role %q: want mgmt, ctrl, data or operator", pos[0])
	}
	// The trust domain does not matter here: this only checks the name.
	if err := (identity.ID{TrustDomain: pki.DefaultTrustDomain, Role: id.Role, Name: id.Name, Perm: id.Perm}).Validate(); err != nil {
		return pkiUsageErr(fs, "%v", err)
	}
	certPath, keyPath, err := pki.Issue(*dir, id, pki.IssueOptions{Hosts: cli.SplitList(*hosts), Validity: validity, OutDir: *out, Name: *name})
	if err != nil {
		pkiFail(stderr, "issue", err)
		return 1
	}
	c, err := pki.LoadCerts(certPath)
	if err != nil {
		pkiFail(stderr, "issue", err)
		return 1
	}
	got, _ := identity.FromCert(c[0])
	fmt.Fprintf(stdout, "%s: %s, %s (valid until %s)\n", got, certPath, keyPath, c[0].NotAfter.UTC().Format(time.RFC3339))
	return 0
}

const pkiDeploymentUsage = `Usage: hellopics pki deployment -dir DIR -mgmt ID,... -pairs PAIR,... [-operators PERM:NAME,...] [-host H,...] [-days N] [-trust-domain TD]

Makes the CA in DIR if there is none (as "pki init"), then issues into
DIR, replacing older ones:
  mgmt-ID.crt, mgmt-ID.key               for each -mgmt ID
  ctrl-PAIR.crt, ctrl-PAIR.key           for each -pairs PAIR
  data-PAIR.crt, data-PAIR.key           for each -pairs PAIR
  operator-NAME.crt, operator-NAME.key   for each -operators PERM:NAME
next to ca.crt and ca.key. PERM is read or admin. The -host names are
added to the mgmt, ctrl and data certificates. Keys are mode 0600.

Example:
  hellopics pki deployment -dir ./pki -mgmt a,b -pairs pic0 -operators admin:alice,read:bob -host localhost,127.0.0.1

Flags:
`

func pkiDeployment(args []string, stdout, stderr io.Writer) int {
	fs := pkiFlagSet("deployment", pkiDeploymentUsage, stderr)
	dir := fs.String("dir", "", "CA directory, where every file is written (required)")
	mgmt := fs.String("mgmt", "", "comma-separated management instance ids (required)")
	pairs := fs.String("pairs", "", "comma-separated pair ids (required)")
	ops := fs.String("operators", "", "comma-separated operators, PERM:NAME with PERM read or admin")
	hosts := fs.String("host", "", "comma-separated DNS names and IP addresses added to the mgmt, ctrl and data certificates")
	days := fs.Int("days", 365, "validity of the certificates, days (cut short at the CA's expiry)")
	caDays := fs.Int("ca-days", 3650, "validity of the CA certificate if one is made, days")
	td := fs.String("trust-domain", "", "trust domain of the CA if one is made (default "+pki.DefaultTrustDomain+"); if given, an existing CA must be of it")
	pos, code, ok := parseInterspersed(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return pkiUsageErr(fs, "unexpected arguments %q", pos)
	}
	d := pki.Deployment{TrustDomain: *td, Mgmt: cli.SplitList(*mgmt), Pairs: cli.SplitList(*pairs), Hosts: cli.SplitList(*hosts)}
	switch {
	case *dir == "":
		return pkiUsageErr(fs, "-dir is required")
	case len(d.Mgmt) == 0:
		return pkiUsageErr(fs, "-mgmt is required")
	case len(d.Pairs) == 0:
		return pkiUsageErr(fs, "-pairs is required")
	}
	if d.Validity, ok = daysDuration(fs, *days); !ok {
		return 2
	}
	if d.CAValidity, ok = daysDuration(fs, *caDays); !ok {
		return 2
	}
	for _, o := range cli.SplitList(*ops) {
		perm, name, found := strings.Cut(o, ":")
		if !found || (perm != string(identity.PermRead) && perm != string(identity.PermAdmin)) || name == "" {
			return pkiUsageErr(fs, "-operators %q: want PERM:NAME with PERM read or admin", o)
		}
		d.Operators = append(d.Operators, identity.ID{Role: identity.RoleOperator, Perm: identity.Perm(perm), Name: name})
	}
	gotTD, issued, err := pki.Deploy(*dir, d)
	for _, is := range issued {
		fmt.Fprintf(stdout, "%-50s %s, %s\n", is.ID, is.Cert, is.Key)
	}
	if err != nil {
		pkiFail(stderr, "deployment", err)
		return 1
	}
	fmt.Fprintf(stdout, "trust domain %s; CA %s (give ca.crt to every process; keep ca.key off the appliances)\n", gotTD, filepath.Join(*dir, pki.CACertFile))
	return 0
}

const pkiShowUsage = `Usage: hellopics pki show [-ca CAFILE] FILE...

Prints each certificate of the PEM files: the identity (SPIFFE ID) it
names, subject, issuer, serial number, validity, key, key usages, SANs
and SHA-256 fingerprint. With -ca, also whether it verifies against the
CA certificates of CAFILE for TLS client and server use; the exit
status is then 1 if one does not.

Flags:
`

func pkiShow(args []string, stdout, stderr io.Writer) int {
	fs := pkiFlagSet("show", pkiShowUsage, stderr)
	caFile := fs.String("ca", "", "CA certificate file to verify against")
	pos, code, ok := parseInterspersed(fs, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return pkiUsageErr(fs, "want at least one FILE")
	}
	var roots *x509.CertPool
	if *caFile != "" {
		cas, err := pki.LoadCerts(*caFile)
		if err != nil {
			fmt.Fprintf(stderr, "hellopics pki show: -ca: %v\n", err)
			return 1
		}
		roots = x509.NewCertPool()
		for _, c := range cas {
			roots.AddCert(c)
		}
	}
	status := 0
	for i, file := range pos {
		certs, err := pki.LoadCerts(file)
		if err != nil {
			fmt.Fprintf(stderr, "hellopics pki show: %v\n", err)
			status = 1
			continue
		}
		for j, c := range certs {
			if i+j > 0 {
				fmt.Fprintln(stdout)
			}
			title := file
			if len(certs) > 1 {
				title = fmt.Sprintf("%s (certificate %d of %d)", file, j+1, len(certs))
			}
			fmt.Fprintf(stdout, "%s:\n", title)
			if !showCert(stdout, c, roots, certs[j+1:]) {
				status = 1
			}
		}
	}
	return status
}

// showCert prints c; with roots, it also verifies it (with the
// certificates after it in its file as intermediates) and returns false
// if that fails.
func showCert(w io.Writer, c *x509.Certificate, roots *x509.CertPool, rest []*x509.Certificate) bool {
	line := func(k, format string, a ...any) {
		fmt.Fprintf(w, "  %-15s "+format+"\n", append([]any{k + ":"}, a...)...)
	}
	if c.IsCA {
		if td, err := pki.TrustDomainOf(c); err == nil {
			line("identity", "CA of trust domain %s", td)
		} else {
			line("identity", "CA (%v)", err)
		}
	} else if id, err := identity.FromCert(c); err == nil {
		line("identity", "%s", id)
	} else {
		line("identity", "none (%v)", err)
	}
	line("subject", "%s", c.Subject)
	line("issuer", "%s", c.Issuer)
	line("serial", "%x", c.SerialNumber)
	now := time.Now()
	var state string
	switch {
	case now.Before(c.NotBefore):
		state = "NOT YET VALID"
	case now.After(c.NotAfter):
		state = "EXPIRED"
	default:
		state = fmt.Sprintf("expires in %d days", int(c.NotAfter.Sub(now).Hours()/24))
	}
	line("valid", "%s to %s (%s)", c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), state)
	line("key", "%s", keyDescription(c.PublicKey))
	if c.IsCA {
		pathLen := "unlimited"
		if c.MaxPathLen > 0 || c.MaxPathLenZero {
			pathLen = fmt.Sprint(c.MaxPathLen)
		}
		line("CA", "yes, path length %s", pathLen)
	}
	line("key usage", "%s", keyUsages(c.KeyUsage))
	line("ext key usage", "%s", extKeyUsages(c.ExtKeyUsage))
	for _, u := range c.URIs {
		line("URI SAN", "%s", u)
	}
	for _, n := range c.DNSNames {
		line("DNS SAN", "%s", n)
	}
	for _, ip := range c.IPAddresses {
		line("IP SAN", "%s", ip)
	}
	for _, e := range c.EmailAddresses {
		line("email SAN", "%s", e)
	}
	sum := sha256.Sum256(c.Raw)
	line("sha256", "%X", sum)
	if roots == nil {
		return true
	}
	inter := x509.NewCertPool()
	for _, r := range rest {
		inter.AddCert(r)
	}
	ok := true
	for _, eku := range []struct {
		name string
		eku  x509.ExtKeyUsage
	}{{"client", x509.ExtKeyUsageClientAuth}, {"server", x509.ExtKeyUsageServerAuth}} {
		_, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{eku.eku}})
		if err != nil {
			line("verify "+eku.name, "FAILED: %v", err)
			ok = false
		} else {
			line("verify "+eku.name, "ok")
		}
	}
	return ok
}

func keyDescription(k any) string {
	switch k := k.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d bits", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", k)
}

func keyUsages(ku x509.KeyUsage) string {
	names := []string{"digitalSignature", "contentCommitment", "keyEncipherment", "dataEncipherment", "keyAgreement", "certSign", "crlSign", "encipherOnly", "decipherOnly"}
	var out []string
	for i, n := range names {
		if ku&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

func extKeyUsages(ekus []x509.ExtKeyUsage) string {
	var out []string
	for _, e := range ekus {
		switch e {
		case x509.ExtKeyUsageServerAuth:
			out = append(out, "serverAuth")
		case x509.ExtKeyUsageClientAuth:
			out = append(out, "clientAuth")
		case x509.ExtKeyUsageAny:
			out = append(out, "any")
		default:
			out = append(out, fmt.Sprintf("#%d", e))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}
