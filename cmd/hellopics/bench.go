package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/hellopics/hellopics/internal/cli"
	"github.com/hellopics/hellopics/internal/pairload"
)

func init() {
	register(&command{name: "bench", summary: "load tools: bench pairs runs N ctrl/data pairs against mgmt and measures it", run: runBench})
}

const benchUsage = `Usage: hellopics bench pairs [flags]

Runs -n ctrl/data pairs in this process (the real component code, over
real TCP) against mgmt instances, each pair from a loopback host of
its own (-source-net), waits until every pair's Hello cycle runs,
measures a steady-state window and, with -kill, SIGKILLs the master
and measures the time until every pair cycles under the new one. It
prints mgmt's CPU (fraction of one core) and RSS, the bytes per second
the master's HA sockets sent (state sync and heartbeats), the hello
round-trip p50/p99 (the last RTT of every pair, sampled each second),
the hellos sent, received and missed in the window, and the mastership
changes seen.

With -spawn N (the default, 2) it starts N plaintext "hellopics mgmt"
processes on 127.0.0.1 itself (ports from -base-port) and stops them at
the end; with -spawn 0 give the instances with -mgmt, -operator and, for
CPU, RSS, sync bytes and -kill, -pids and -ha-ports.

  hellopics bench pairs -n 100
  hellopics bench pairs -n 1000 -start-rate 50 -window 20s -kill
  hellopics bench pairs -spawn 0 -mgmt 10.0.0.1:7300 -operator 10.0.0.1:7400 -n 50

Flags:
`

func runBench(args []string) int {
	if len(args) == 0 || args[0] != "pairs" {
		fmt.Fprint(os.Stderr, benchUsage)
		if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "help" {
			return 0
		}
		return 2
	}
	return benchPairs(args[1:], os.Stdout, os.Stderr)
}

func benchPairs(args []string, stdout, stderr io.Writer) int {
	const name = "hellopics bench pairs"
	fs := cli.NewFlagSet(name, benchUsage)
	fs.SetOutput(stderr)
	cfg := pairload.DefaultConfig()
	var (
		mgmtAddrs, opAddrs, pids, haPorts string
		spawn, basePort                   int
		hello, heartbeat                  time.Duration
		deadMisses                        int
		logFile, mgmtLevel                string
		lf                                cli.LogFlags
	)
	fs.IntVar(&cfg.Pairs, "n", cfg.Pairs, "pairs to run")
	fs.StringVar(&cfg.Prefix, "prefix", cfg.Prefix, "pair ids are this prefix and a 4-digit number")
	fs.StringVar(&cfg.SourceNet, "source-net", cfg.SourceNet, "pair i dials from (and its ctrl listens on) the i-th host of this 127.x.0.0/16, so mgmt sees a host per pair; \"\" dials every pair from the default source (mgmt's per-host limit then caps the pairs)")
	fs.DurationVar(&cfg.MgmtDeadTimeout, "mgmt-dead-timeout", 0, "the components' -mgmt-dead-timeout (0: their default); idle, they ping mgmt every fifth of it")
	fs.Float64Var(&cfg.StartRate, "start-rate", 0, "pairs started per second (0: all at once, like a chassis powering up)")
	fs.DurationVar(&cfg.Settle, "settle", cfg.Settle, "longest wait for every pair to cycle (at the start and after -kill)")
	fs.DurationVar(&cfg.Window, "window", cfg.Window, "steady-state measurement window")
	fs.DurationVar(&cfg.Freeze, "freeze", 0, "after the window, stop the master (SIGSTOP) this long, then SIGCONT: time until every pair cycles and the mastership changes over the next -freeze-watch")
	fs.DurationVar(&cfg.FreezeWatch, "freeze-watch", 10*time.Second, "with -freeze: how long after the SIGCONT to count mastership changes")
	fs.BoolVar(&cfg.Kill, "kill", false, "after the window, SIGKILL the master and time the recovery of every pair")
	fs.IntVar(&spawn, "spawn", 2, "start this many mgmt processes on 127.0.0.1 (0: use -mgmt, -operator, -pids, -ha-ports)")
	fs.IntVar(&basePort, "base-port", 17300, "with -spawn: instance i listens on base+i (components), base+100+i (HA), base+200+i (operator)")
	fs.DurationVar(&hello, "hello-interval", time.Second, "with -spawn: mgmt -hello-interval")
	fs.DurationVar(&heartbeat, "heartbeat", 0, "with -spawn: mgmt -heartbeat (0: its default)")
	helloCycle := "builtin"
	fs.StringVar(&helloCycle, "hello-cycle", helloCycle, "with -spawn: mgmt -hello-cycle (builtin, or app: the cycle as an application)")
	fs.IntVar(&deadMisses, "dead-misses", 0, "with -spawn: mgmt -dead-misses (0: its default)")
	fs.StringVar(&mgmtLevel, "mgmt-log-level", "warn", "with -spawn: mgmt -log-level (its lines go to -log)")
	fs.StringVar(&mgmtAddrs, "mgmt", "", "with -spawn 0: mgmt component addresses, comma-separated")
	fs.StringVar(&opAddrs, "operator", "", "with -spawn 0: their operator API addresses (plaintext), same order")
	fs.StringVar(&pids, "pids", "", "with -spawn 0: their process ids, same order (CPU, RSS, sync bytes, -kill)")
	fs.StringVar(&haPorts, "ha-ports", "", "with -spawn 0: their HA ports, comma-separated (sync bytes)")
	fs.StringVar(&logFile, "log", "", "write the pairs' logs (and spawned mgmt's) here; default: discarded")
	lf.Register(fs)
	lf.Level = "warn"
	if code, ok := cli.ParseFlags(fs, args); !ok {
		return code
	}
	if cfg.Pairs <= 0 {
		return cli.Fail(stderr, name, errors.New("-n must be positive"))
	}
	var logW io.Writer = io.Discard
	if logFile != "" {
		f, err := os.Create(logFile)
		if err != nil {
			return cli.Fail(stderr, name, err)
		}
		defer f.Close()
		logW = f
	}
	logger, err := lf.Logger("bench", logW)
	if err != nil {
		return cli.Fail(stderr, name, err)
	}
	cfg.Logger, cfg.Out = logger, stderr

	ctx, cancel := cli.UntilSignal()
	defer cancel()
	if spawn > 0 {
		stop, err := spawnMgmt(ctx, &cfg, spawn, basePort, hello, heartbeat, deadMisses, mgmtLevel, []string{"-hello-cycle", helloCycle}, logW, stderr)
		defer stop()
		if err != nil {
			return cli.Fail(stderr, name, err)
		}
	} else {
		cfg.Mgmt, cfg.Operator = cli.SplitList(mgmtAddrs), cli.SplitList(opAddrs)
		for _, s := range cli.SplitList(pids) {
			p, err := strconv.Atoi(s)
			if err != nil {
				return cli.Fail(stderr, name, fmt.Errorf("-pids: %w", err))
			}
			cfg.PIDs = append(cfg.PIDs, p)
		}
		for _, s := range cli.SplitList(haPorts) {
			p, err := strconv.Atoi(s)
			if err != nil {
				return cli.Fail(stderr, name, fmt.Errorf("-ha-ports: %w", err))
			}
			cfg.HAPorts = append(cfg.HAPorts, p)
		}
	}
	res, err := pairload.Run(ctx, cfg)
	if err != nil {
		return cli.Fail(stderr, name, err)
	}
	printBench(stdout, cfg, res)
	return 0
}

// spawnMgmt starts n plaintext mgmt processes of this binary on loopback
// and waits for their operator ports; stop kills them.
func spawnMgmt(ctx context.Context, cfg *pairload.Config, n, base int, hello, heartbeat time.Duration, deadMisses int, level string, extra []string, logW io.Writer, stderr io.Writer) (stop func(), err error) {
	self, err := os.Executable()
	if err != nil {
		return func() {}, err
	}
	dir, err := os.MkdirTemp("", "hellopics-bench-")
	if err != nil {
		return func() {}, err
	}
	var cmds []*exec.Cmd
	stop = func() {
		for _, c := range cmds {
			if c.ProcessState == nil {
				_ = c.Process.Signal(syscall.SIGTERM)
			}
		}
		for _, c := range cmds {
			done := make(chan struct{})
			go func() { _ = c.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = c.Process.Kill()
				<-done
			}
		}
		os.RemoveAll(dir)
	}
	addr := func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }
	maxPairs := max(cfg.Pairs+16, 512)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("mgmt-%c", 'a'+i)
		args := []string{"mgmt", "-insecure", "-id", id, "-priority", strconv.Itoa(200 - i), "-nopreempt",
			"-listen", addr(base + i), "-ha-listen", addr(base + 100 + i), "-operator", addr(base + 200 + i),
			"-state-dir", filepath.Join(dir, id), "-hello-interval", hello.String(),
			"-max-pairs", strconv.Itoa(maxPairs), "-log-level", level}
		args = append(args, extra...)
		if heartbeat > 0 {
			args = append(args, "-heartbeat", heartbeat.String())
		}
		if deadMisses > 0 {
			args = append(args, "-dead-misses", strconv.Itoa(deadMisses))
		}
		if n > 1 {
			peers := ""
			for j := 0; j < n; j++ {
				if j != i {
					if peers != "" {
						peers += ","
					}
					peers += fmt.Sprintf("mgmt-%c=%s", 'a'+j, addr(base+100+j))
				}
			}
			args = append(args, "-peers", peers)
		}
		c := exec.Command(self, args...)
		c.Stdout, c.Stderr = logW, logW
		if err := c.Start(); err != nil {
			return stop, fmt.Errorf("start %s: %w", id, err)
		}
		cmds = append(cmds, c)
		cfg.Mgmt = append(cfg.Mgmt, addr(base+i))
		cfg.Operator = append(cfg.Operator, addr(base+200+i))
		cfg.PIDs = append(cfg.PIDs, c.Process.Pid)
		cfg.HAPorts = append(cfg.HAPorts, base+100+i)
		fmt.Fprintf(stderr, "started %s (pid %d): components %s, operator %s\n", id, c.Process.Pid, addr(base+i), addr(base+200+i))
	}
	return stop, nil
}

func printBench(w io.Writer, cfg pairload.Config, r pairload.Result) {
	mb := func(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }
	fmt.Fprintf(w, "pairs                  %d (start rate %v/s; 0 = all at once)\n", r.Pairs, cfg.StartRate)
	fmt.Fprintf(w, "all cycling after      %v\n", r.StartTook.Round(time.Millisecond))
	fmt.Fprintf(w, "window                 %v, master %s\n", cfg.Window, r.Master)
	fmt.Fprintf(w, "mgmt CPU               master %.1f %%, backup %.1f %% of one core\n", 100*r.MasterCPU, 100*r.BackupCPU)
	fmt.Fprintf(w, "mgmt RSS               master %s (peak %s), backup %s\n", mb(r.MasterRSS), mb(r.MasterPeakRSS), mb(r.BackupRSS))
	fmt.Fprintf(w, "master HA bytes sent   %.0f B/s\n", r.SyncBytesPerS)
	fmt.Fprintf(w, "hello RTT              p50 %v, p99 %v (%d samples)\n", r.RTTP50.Round(time.Microsecond), r.RTTP99.Round(time.Microsecond), r.RTTSamples)
	fmt.Fprintf(w, "hellos in the window   sent %d, received %d, missed %d, out of order %d\n", r.Sent, r.Received, r.Missed, r.OutOfOrder)
	fmt.Fprintf(w, "mastership changes     %d\n", r.EpochChanges)
	if cfg.Freeze > 0 {
		fmt.Fprintf(w, "master stopped %v     every pair cycling %v after the SIGCONT; epoch %d -> %d over %v (%d mastership changes at most)\n",
			cfg.Freeze, r.FreezeSettle.Round(time.Millisecond), r.FreezeEpochs[0], r.FreezeEpochs[1], cfg.FreezeWatch, r.FreezeEpochs[1]-r.FreezeEpochs[0])
	}
	if cfg.Kill {
		fmt.Fprintf(w, "SIGKILL of the master  first pair cycling after %v, every pair after %v\n",
			r.FailoverFirst.Round(time.Millisecond), r.FailoverAll.Round(time.Millisecond))
		fmt.Fprintf(w, "  CPU meanwhile        new master %.1f %%, the pairs (this process) %.1f %% of one core\n",
			100*r.FailoverCPU, 100*r.FailoverPairsCPU)
	}
}
