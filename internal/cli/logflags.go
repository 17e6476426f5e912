// Package cli holds what the hellopics subcommands (and pkg/daemon, the
// command line of the three daemons) share on their command lines: the
// logging, TLS and SNMP flags, and the small helpers of flag parsing.
package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// LogFlags are the logging options every daemon accepts.
type LogFlags struct {
	// Level is the minimum level: trace, debug, info, warn or error.
	Level string
	// JSON selects JSON lines instead of the human format.
	JSON bool
	// RefusalsEvery is how often at most each kind of refused input is
	// logged (-log-refusals-every; daemons only).
	RefusalsEvery time.Duration
}

// RegisterRefusals adds -log-refusals-every to fs, for the daemons that
// refuse input from the network.
func (l *LogFlags) RegisterRefusals(fs *flag.FlagSet) {
	fs.DurationVar(&l.RefusalsEvery, "log-refusals-every", 10*time.Second,
		"log each kind of refused network input at most this often; the rest are counted in the metrics (0: log every one)")
}

// Register adds -log-level and -log-json to fs.
func (l *LogFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&l.Level, "log-level", "info", "minimum log level: trace, debug, info, warn, error")
	fs.BoolVar(&l.JSON, "log-json", false, "write logs as JSON lines (for machines)")
}

// Logger builds the root logger named name, writing to w (os.Stderr when
// nil). It fails on an unknown level rather than guessing.
func (l *LogFlags) Logger(name string, w io.Writer) (hclog.Logger, error) {
	lvl := hclog.LevelFromString(strings.TrimSpace(l.Level))
	if lvl == hclog.NoLevel {
		return nil, fmt.Errorf("unknown -log-level %q: want trace, debug, info, warn or error", l.Level)
	}
	if w == nil {
		w = os.Stderr
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:            name,
		Level:           lvl,
		JSONFormat:      l.JSON,
		Output:          w,
		TimeFormat:      "15:04:05.000",
		IncludeLocation: false,
	}), nil
}
