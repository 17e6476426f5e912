package e2e

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// binPath is the hellopics binary built by TestMain; "" under -short.
var binPath string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "hellopics-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "hellopics")
	if err := build(binPath); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	code := m.Run()
	if stray := strayProcesses(binPath); len(stray) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: stray hellopics processes after the tests:\n  %s\n", strings.Join(stray, "\n  "))
		if code == 0 {
			code = 1
		}
	}
	return code
}

// build compiles ./cmd/hellopics into out, with -race when this test
// binary has it.
func build(out string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("go tool not found: %w", err)
	}
	args := []string{"build", "-o", out}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/hellopics")
	cmd := exec.Command(gobin, args...)
	cmd.Dir = ".." // the module root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "e2e: built %s (race=%v) in %v\n", out, raceEnabled, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// strayProcesses lists the live processes running bin ("pid: cmdline"),
// from /proc; nil where there is no /proc.
func strayProcesses(bin string) []string {
	// Children killed by the cleanups have been waited for; give the
	// kernel a moment for any that were not (there should be none).
	deadline := time.Now().Add(2 * time.Second)
	for {
		var out []string
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return nil
		}
		for _, e := range ents {
			if e.Name()[0] < '0' || e.Name()[0] > '9' {
				continue
			}
			b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err != nil || len(b) == 0 {
				continue
			}
			argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
			if argv[0] == bin {
				out = append(out, e.Name()+": "+strings.Join(argv, " "))
			}
		}
		if len(out) == 0 || time.Now().After(deadline) {
			return out
		}
		time.Sleep(100 * time.Millisecond)
	}
}
