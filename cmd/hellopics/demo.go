package main

import (
	"bufio"
	"context"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hellopics/hellopics/internal/cli"
	"github.com/hellopics/hellopics/internal/demo"
)

func init() {
	register(&command{name: "demo", summary: "run mgmt, ctrl, data, an SNMP agent and a TPCE client on this machine", run: runDemo})
}

const demoUsage = `Usage: hellopics demo [flags]

Runs a whole appliance on this machine, each component its own process on
loopback ports chosen at start: two mgmt instances (master and backup),
ctrl, data (with the MEDS relay), the SNMP agent simulator and a TPCE
client that sends a command a second. Their logs are shown interleaved,
each line behind the name of its process. Type f and Enter (or send
SIGUSR1) to kill the master and watch the backup take over. Runs until
Ctrl-C, then stops everything.

Flags:
`

func runDemo(args []string) int {
	o := demo.Options{Out: os.Stdout}
	fs := cli.NewFlagSet("hellopics demo", demoUsage)
	fs.DurationVar(&o.HelloInterval, "hello-interval", 0, "Hello cycle period (default 1s)")
	fs.DurationVar(&o.HelloSummary, "hello-summary", 0, "period of mgmt's INFO summary of each Hello cycle (default 10s)")
	fs.DurationVar(&o.CommandInterval, "command-interval", 0, "time between TPCE commands (default 1s)")
	fs.StringVar(&o.LogLevel, "log-level", "info", "log level of every process")
	color := fs.Bool("color", isTerminal(os.Stdout), "color the process names (default: when writing to a terminal)")
	if code, ok := cli.ParseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	o.Color = *color
	exe, err := os.Executable()
	if err != nil {
		return cli.Fail(os.Stderr, "hellopics demo", err)
	}
	o.Exe = exe
	ctx, stop := cli.UntilSignal()
	defer stop()
	o.Failover = failoverRequests(ctx)
	if err := demo.Run(ctx, o); err != nil {
		return cli.Fail(os.Stderr, "hellopics demo", err)
	}
	return 0
}

// failoverRequests delivers a request on SIGUSR1 and on each line "f"
// typed on standard input.
func failoverRequests(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	req := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	go func() {
		defer signal.Stop(sig)
		for {
			select {
			case <-ctx.Done():
				return
			case <-sig:
				req()
			}
		}
	}()
	// The reader ends with standard input; the process exits after the
	// demo, so a read still blocked then is of no consequence.
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == "f" {
				req()
			}
		}
	}()
	return ch
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
