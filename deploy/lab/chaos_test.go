package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hellopics/hellopics/internal/chaos"
)

// TestLabChaos is the short form of `make lab-chaos`: 40 s of random
// faults (seed 1) in a lab of its own (prefix hpchaost, 198.18.78.0/24),
// with every invariant of internal/chaos checked; about 60 s in all.
// HELLOPICS_CHAOS_SEED and HELLOPICS_CHAOS_DURATION change the seed and
// the time.
func TestLabChaos(t *testing.T) {
	requireLab(t)
	for _, tool := range []string{"nft", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("LAB CHAOS TEST SKIPPED: %s not found (loss is nftables rules, throttling tc tbf)", tool)
		}
	}
	const prefix, net = "hpchaost", "198.18.78"
	if err := exec.Command("ip", "link", "show", prefix+"-br0").Run(); err == nil {
		t.Skipf("LAB CHAOS TEST SKIPPED: %s-br0 exists: another chaos test runs (or a killed one left it: LAB_PREFIX=%s deploy/lab/lab.sh down)", prefix, prefix)
	}
	bin := filepath.Join(t.TempDir(), "hellopics")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/hellopics/hellopics/cmd/hellopics").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfg := chaos.Config{Seed: 1, Duration: 40 * time.Second, LabSh: "./lab.sh", Bin: bin, Run: t.TempDir(),
		Prefix: prefix, Net: net, Out: testWriter{t}}
	if s := os.Getenv("HELLOPICS_CHAOS_SEED"); s != "" {
		var err error
		if cfg.Seed, err = parseUint(s); err != nil {
			t.Fatal(err)
		}
	}
	if d := os.Getenv("HELLOPICS_CHAOS_DURATION"); d != "" {
		var err error
		if cfg.Duration, err = time.ParseDuration(d); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Duration+3*time.Minute)
	defer cancel()
	s, err := chaos.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	s.Print(&b)
	t.Logf("\n%s", b.String())
	if len(s.Faults) < 5 {
		t.Errorf("only %d faults in %v", len(s.Faults), cfg.Duration)
	}
	if err := s.Err(); err != nil {
		t.Error(err)
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	links, _ := exec.Command("ip", "-o", "link").Output()
	if strings.Contains(string(out)+string(links), prefix+"-") {
		t.Errorf("left behind:\n%s%s", out, links)
	}
	if pids := processesOf(bin); len(pids) > 0 {
		t.Errorf("processes of %s left behind: %v", bin, pids)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func parseUint(s string) (uint64, error) {
	var n uint64
	_, err := fmt.Sscan(s, &n)
	return n, err
}
