// Command chaos runs a chaos run in the namespace lab (package
// internal/chaos; `make lab-chaos DURATION=2m SEED=1`) and exits 1 when
// an invariant is violated, 2 when the run could not be made.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hellopics/hellopics/internal/chaos"
)

func main() {
	var cfg chaos.Config
	flag.Uint64Var(&cfg.Seed, "seed", uint64(time.Now().UnixNano()%1000000), "the fault schedule's seed (replay a run with its seed)")
	flag.DurationVar(&cfg.Duration, "duration", 2*time.Minute, "inject faults for this long")
	flag.StringVar(&cfg.LabSh, "lab", "deploy/lab/lab.sh", "lab.sh")
	flag.StringVar(&cfg.Bin, "bin", "bin/hellopics", "the hellopics binary")
	flag.StringVar(&cfg.Run, "run", "run/chaos", "the lab's run folder (logs are kept there)")
	flag.StringVar(&cfg.Prefix, "prefix", "hpchaos", "LAB_PREFIX (must start with hpchaos)")
	flag.StringVar(&cfg.Net, "net", "198.18.77", "LAB_NET")
	flag.DurationVar(&cfg.HealBound, "heal-bound", 20*time.Second, "the cycle must be back this soon after each heal")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "chaos: must run as root (network namespaces)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := chaos.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	s.Print(os.Stdout)
	if f, err := os.Create(cfg.Run + "/summary.txt"); err == nil {
		s.Print(f)
		_ = f.Close()
	}
	if s.Err() != nil {
		os.Exit(1)
	}
}
