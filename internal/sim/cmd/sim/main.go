// Command sim runs the deterministic simulator of internal/sim over
// many seeds, in parallel over the cores, and reports the rate; a
// failing seed is shrunk to a minimal fault schedule and printed with
// its trace and the command that replays it.
//
//	go run ./internal/sim/cmd/sim -seeds 1000000     # seeds 0 to 999999
//	go run ./internal/sim/cmd/sim -seed 1234 -v      # one seed, traced
//	go run ./internal/sim/cmd/sim -seed 1234 -keep 2,5 -v  # a sub-schedule
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hellopics/hellopics/internal/sim"
)

func main() {
	seeds := flag.Uint64("seeds", 1000, "how many seeds to run, from -from on")
	from := flag.Uint64("from", 0, "the first seed")
	one := flag.Int64("seed", -1, "run this one seed only, traced, shrinking it if it fails")
	keep := flag.String("keep", "", "with -seed: run only these faults of its schedule (comma-separated indexes, or none)")
	workers := flag.Int("workers", runtime.NumCPU(), "seeds run in parallel")
	verbose := flag.Bool("v", false, "with -seed: print the whole trace, every hello included")
	maxFail := flag.Int("max-failures", 1, "stop after this many failing seeds")
	strict := flag.Bool("strict", false, "count the known limitations (docs/simulator.md) as failures")
	bug := flag.String("bug", "", "inject a bug into the simulated shells: forget-epoch or lose-session-down (to see a failure)")
	flag.Parse()
	opts := sim.Options{Strict: *strict}
	switch *bug {
	case "":
	case "forget-epoch":
		opts.Bug = sim.BugForgetEpoch
	case "lose-session-down":
		opts.Bug = sim.BugLoseSessionDown
	default:
		fmt.Fprintf(os.Stderr, "sim: -bug %q: unknown\n", *bug)
		os.Exit(2)
	}
	// The runs allocate much and keep little: collect less often.
	debug.SetGCPercent(400)

	if *one >= 0 {
		os.Exit(runOne(uint64(*one), *keep, *verbose, opts))
	}
	os.Exit(runMany(*from, *seeds, *workers, *maxFail, opts))
}

func runOne(seed uint64, keep string, verbose bool, base sim.Options) int {
	opts := base
	opts.Trace, opts.Verbose = true, verbose
	if verbose {
		opts.TraceLimit = 1 << 20
	}
	sc := sim.Generate(seed)
	fmt.Println(sc)
	fmt.Printf("liveness bound %v; fault schedule:\n", sc.LivenessBound())
	for i, f := range sc.Faults {
		fmt.Printf("  [%2d] %s\n", i, f)
	}
	if keep != "" {
		var idx []int
		if keep != "none" {
			for _, s := range strings.Split(keep, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(s))
				if err != nil || n < 0 || n >= len(sc.Faults) {
					fmt.Fprintf(os.Stderr, "sim: -keep: bad index %q\n", s)
					return 2
				}
				idx = append(idx, n)
			}
		}
		sc = sim.Subschedule(sc, idx)
	}
	start := time.Now()
	r := sim.Run(sc, opts)
	for _, l := range r.Trace {
		fmt.Println(l)
	}
	fmt.Printf("%d events, %v simulated, %v wall; %+v\n", r.Stats.Events, r.SimTime, time.Since(start).Round(time.Microsecond), r.Stats)
	if r.Violation == nil {
		fmt.Println("PASS")
		return 0
	}
	if keep != "" {
		fmt.Printf("FAIL: %v\n", r.Violation)
		return 1
	}
	_, rep := sim.Check(seed, base)
	fmt.Print(rep)
	return 1
}

func runMany(from, n uint64, workers, maxFail int, opts sim.Options) int {
	start := time.Now()
	var next, done, failures atomic.Uint64
	next.Store(from)
	end := from + n
	var mu sync.Mutex
	var reports []*sim.Report
	var total sim.Stats
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var stopOnce sync.Once
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				seed := next.Add(1) - 1
				if seed >= end {
					return
				}
				st, rep := sim.Check(seed, opts)
				mu.Lock()
				total.Add(st)
				if rep != nil {
					reports = append(reports, rep)
				}
				mu.Unlock()
				if rep != nil {
					if int(failures.Add(1)) >= maxFail {
						stopOnce.Do(func() { close(stop) })
					}
				}
				done.Add(1)
			}
		}()
	}
	ticker := time.NewTicker(10 * time.Second)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
loop:
	for {
		select {
		case <-finished:
			break loop
		case <-ticker.C:
			d := done.Load()
			el := time.Since(start)
			fmt.Printf("  %d seeds, %.0f seeds/s, %v\n", d, float64(d)/el.Seconds(), el.Round(time.Second))
		}
	}
	ticker.Stop()
	el := time.Since(start)
	d := done.Load()
	fmt.Printf("%d seeds (%d to %d) in %v on %d workers: %.0f seeds/s, %d failing\n",
		d, from, from+d, el.Round(time.Millisecond), workers, float64(d)/el.Seconds(), len(reports))
	fmt.Printf("exercised: %d events, %d faults, %d masterships, %d hellos back, %d hostile frames refused\n",
		total.Events, total.Faults, total.Masterships, total.HellosBack, total.HostileFrames)
	fmt.Printf("components that followed an Elected on a watch session: %d\n", total.WatchSwitches)
	fmt.Printf("known limitation hit (not a failure; see docs/simulator.md): epoch_ahead lockout %d\n", total.KnownEpochAhead)
	for _, r := range reports {
		fmt.Print(r)
	}
	if len(reports) > 0 {
		return 1
	}
	return 0
}
