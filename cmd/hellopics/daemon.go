package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hellopics/hellopics/pkg/sdnotify"
)

// newFlagSet returns a flag set that prints usage (the text, then the
// flags) on -h and reports errors without exiting.
func newFlagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("hellopics "+name, flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprint(w, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; it returns the exit code to use and false when
// the command should stop (help asked: 0, bad usage: 2).
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// untilSignal returns a context cancelled by SIGINT or SIGTERM.
func untilSignal() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// fail prints a one-line error for the named command and returns 1.
func fail(w io.Writer, name string, err error) int {
	fmt.Fprintf(w, "hellopics %s: %v\n", name, err)
	return 1
}

// envOr returns the environment variable's value, or def.
func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

// systemdReady tells systemd (Type=notify units) about readiness changes
// of a component; outside systemd it does nothing.
func systemdReady(name string) func(bool) {
	return func(ready bool) {
		if ready {
			_ = sdnotify.Ready()
			_ = sdnotify.Status(name + ": handshake complete, ready")
		} else {
			_ = sdnotify.Status(name + ": handshake in progress")
		}
	}
}
