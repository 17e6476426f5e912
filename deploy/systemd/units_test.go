// Package systemd holds the tests of the hellopics systemd units: they pass
// `systemd-analyze verify` (verify.sh), their ExecStart flags exist in
// `hellopics <cmd> -h`, and their environment files set only variables
// that hellopics or the unit reads.
package systemd

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// units maps each unit to its subcommand and environment files.
var units = map[string]struct {
	cmd string
	env []string
}{
	"hellopics-mgmt.service":  {"mgmt", []string{"mgmt-a.env", "mgmt-b.env"}},
	"hellopics-ctrl.service":  {"ctrl", []string{"ctrl.env"}},
	"hellopics-data.service":  {"data", []string{"data.env"}},
	"hellopics-agent.service": {"agent", []string{"agent.env"}},
}

func buildHellopics(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hellopics")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/hellopics/hellopics/cmd/hellopics").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// directives returns the values of key in a unit file, continuation lines
// joined.
func directives(t *testing.T, unit, key string) []string {
	t.Helper()
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+"="); ok {
			out = append(out, v)
		}
	}
	return out
}

func TestVerify(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("SYSTEMD UNITS NOT VERIFIED: systemd-analyze not found; apt-get install systemd")
	}
	cmd := exec.Command("./verify.sh")
	cmd.Env = append(os.Environ(), "HELLOPICS="+buildHellopics(t))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("verify.sh: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

func TestExecStartFlags(t *testing.T) {
	bin := buildHellopics(t)
	src, err := filepath.Glob("../../cmd/hellopics/*.go")
	if err != nil || len(src) == 0 {
		t.Fatalf("cmd/hellopics sources: %v", err)
	}
	shared, _ := filepath.Glob("../../internal/cli/*.go") // the flags every daemon shares
	src = append(src, shared...)
	daemons, _ := filepath.Glob("../../pkg/daemon/*.go") // mgmt, ctrl and data
	src = append(src, daemons...)
	readEnv := regexp.MustCompile(`(?:envOr|Getenv|LookupEnv)\("(HELLOPICS_[A-Z0-9_]+)"`)
	daemonVars := map[string]bool{}
	for _, f := range src {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range readEnv.FindAllStringSubmatch(string(b), -1) {
			daemonVars[m[1]] = true
		}
	}
	names := make([]string, 0, len(units))
	for n := range units {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		u := units[name]
		t.Run(name, func(t *testing.T) {
			execs := directives(t, name, "ExecStart")
			if len(execs) != 1 {
				t.Fatalf("want one ExecStart, got %q", execs)
			}
			f := strings.Fields(execs[0])
			if len(f) < 2 || f[0] != "/usr/local/bin/hellopics" || f[1] != u.cmd {
				t.Fatalf("ExecStart %q: want /usr/local/bin/hellopics %s ...", execs[0], u.cmd)
			}
			help, _ := exec.Command(bin, u.cmd, "-h").CombinedOutput()
			usedVars := map[string]bool{}
			for _, a := range f[2:] {
				if strings.HasPrefix(a, "-") {
					flag := strings.SplitN(strings.TrimLeft(a, "-"), "=", 2)[0]
					if !regexp.MustCompile(`(?m)^  -` + regexp.QuoteMeta(flag) + `(\s|$)`).Match(help) {
						t.Errorf("ExecStart flag %s: not in `hellopics %s -h`", a, u.cmd)
					}
				}
				for _, m := range regexp.MustCompile(`\$\{?([A-Z0-9_]+)`).FindAllStringSubmatch(a, -1) {
					usedVars[m[1]] = true
				}
			}
			for _, envFile := range u.env {
				set := map[string]bool{}
				b, err := os.ReadFile(filepath.Join("env", envFile))
				if err != nil {
					t.Fatal(err)
				}
				for _, line := range strings.Split(string(b), "\n") {
					line = strings.TrimSpace(line)
					if line == "" || strings.HasPrefix(line, "#") {
						continue
					}
					k, _, ok := strings.Cut(line, "=")
					if !ok {
						t.Errorf("%s: not VAR=value: %q", envFile, line)
						continue
					}
					set[k] = true
					if !daemonVars[k] && !usedVars[k] {
						t.Errorf("%s: %s is read neither by hellopics nor by %s's ExecStart", envFile, k, name)
					}
				}
				for v := range usedVars {
					if !set[v] {
						t.Errorf("%s: ExecStart uses ${%s}, not set in env/%s", name, v, envFile)
					}
				}
			}
			if got := directives(t, name, "Type"); len(got) != 1 || got[0] != "notify" {
				t.Errorf("Type=%q, want notify", got)
			}
		})
	}
}
