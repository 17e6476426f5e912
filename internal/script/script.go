// Package script runs an operator's shell command line with a bound:
// the command runs as /bin/sh -c in a process group of its own, and at
// the timeout (or when the context ends) the whole group is killed with
// SIGKILL, so that the children of a hung script die with it. Its
// combined output is kept up to a limit. The notify scripts
// (pkg/notify) and the tracked health checks (pkg/track) share it.
package script

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// MaxOutput is how much of a command's combined output Run keeps.
const MaxOutput = 4096

// Command is one run of a shell command line.
type Command struct {
	// Line is the shell command line (/bin/sh -c Line).
	Line string
	// Args are the positional parameters $1, $2, ... of Line.
	Args []string
	// Env is added to the daemon's environment.
	Env []string
	// Timeout bounds the run; at it the process group is killed. 0: no
	// bound but the context's.
	Timeout time.Duration
}

// Result is the outcome of a run.
type Result struct {
	// ExitCode is the command's exit status, -1 when it was killed or
	// did not start.
	ExitCode int
	// TimedOut is true when the timeout killed it.
	TimedOut bool
	// Err is nil for exit status 0, else why the run failed.
	Err error
	// Duration is how long it ran.
	Duration time.Duration
	// Output is the first MaxOutput bytes of its stdout and stderr;
	// Dropped counts the bytes beyond.
	Output  string
	Dropped int
}

// Run runs c and waits for it (and, by at most a second more, for the
// output of children that escaped the process group).
func Run(ctx context.Context, c Command) Result {
	// The run's time counts from the instant its deadline does: a run
	// killed at its timeout reports at least the timeout.
	start := time.Now()
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", c.Line, "sh"}, c.Args...)...)
	if len(c.Env) > 0 {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The whole group: a script's children die with it.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// A child that escaped the group and holds the output pipe cannot
	// keep Wait (and the caller) waiting.
	cmd.WaitDelay = time.Second
	var out limitedBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	res := Result{ExitCode: -1, Duration: time.Since(start), Err: err}
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	res.TimedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
	out.mu.Lock()
	res.Output = out.buf.String()
	res.Dropped = out.dropped
	out.mu.Unlock()
	return res
}

// limitedBuffer keeps the first MaxOutput bytes written and counts the rest.
type limitedBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	dropped int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	room := MaxOutput - b.buf.Len()
	if room < len(p) {
		b.dropped += len(p) - max(room, 0)
		if room > 0 {
			b.buf.Write(p[:room])
		}
		return len(p), nil
	}
	b.buf.Write(p)
	return len(p), nil
}
