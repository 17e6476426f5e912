// Package notify runs operator scripts when a management instance's
// state changes, in the manner of keepalived's notify_master,
// notify_backup and notify_fault (and when a ctrl or data component's
// pair becomes ready, is lost or its master changes), without ever
// blocking the caller: a
// Runner owns one goroutine that runs the scripts in order from a
// bounded queue, each bounded by a timeout after which its whole
// process group is killed.
//
// A script is a shell command line (run by /bin/sh -c) and gets the
// state as arguments and environment; see State.
package notify

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hellopics/hellopics/internal/script"
)

// The states a State may report.
const (
	Master = "master"
	Backup = "backup"
	Fault  = "fault"
)

// Defaults of Config.
const (
	DefaultTimeout   = 10 * time.Second
	DefaultQueueSize = 16
	// MaxOutput is how much of a script's combined output is logged;
	// the rest is dropped (and the log says how much).
	MaxOutput = script.MaxOutput
)

// State is what a script is told. It gets, as arguments $1..$4, the
// state, the epoch, the master's id and the reason, and in its
// environment HELLOPICS_STATE, HELLOPICS_EPOCH, HELLOPICS_MASTER,
// HELLOPICS_REASON and HELLOPICS_ID (this instance).
type State struct {
	// State is Master, Backup or Fault.
	State string
	// Epoch is the highest epoch this instance knows.
	Epoch uint64
	// Master is the id of the master this instance follows (its own id
	// when master), "" when none is known.
	Master string
	// Reason says in words why the state was (re)asserted.
	Reason string
}

// Config configures a Runner. A command left empty is not run.
type Config struct {
	// ID is this instance's id (HELLOPICS_ID).
	ID string
	// Component is the value of the component key of the runner's log
	// lines: "mgmt" when empty.
	Component string
	// Scripts are commands for other states than Master, Backup and
	// Fault, by state (the components' ready, lost, master_changed).
	Scripts map[string]string
	// Env is added to every script's environment (NAME=value).
	Env []string
	// OnMaster, OnBackup and OnFault run when the state becomes (or is
	// re-asserted as) Master, Backup or Fault.
	OnMaster, OnBackup, OnFault string
	// OnAny runs on every state, after the state's own script.
	OnAny string
	// Timeout bounds each run; at it the script's process group is
	// killed (SIGKILL). Default DefaultTimeout.
	Timeout time.Duration
	// QueueSize bounds the states waiting to run. When it is full the
	// last waiting state is replaced by the new one: the scripts skip
	// to the latest state rather than block. Default DefaultQueueSize.
	QueueSize int
	// Logger gets one line per run (exit status, duration, output). Nil
	// discards.
	Logger hclog.Logger
}

// Empty reports whether no command is configured.
func (c Config) Empty() bool {
	for _, cmd := range c.Scripts {
		if cmd != "" {
			return false
		}
	}
	return c.OnMaster == "" && c.OnBackup == "" && c.OnFault == "" && c.OnAny == ""
}

// Result is the outcome of one script run, reported to Runner.OnResult
// (tests, metrics).
type Result struct {
	State    State
	Command  string
	ExitCode int // -1 when killed or not started
	TimedOut bool
	Err      error
	Duration time.Duration
	Output   string // at most MaxOutput bytes
}

// Runner runs the scripts of Config in order on its own goroutine.
// Notify never blocks. Close stops it.
type Runner struct {
	cfg Config
	log hclog.Logger

	mu        sync.Mutex
	queue     []State
	coalesced uint64
	closed    bool
	wake      chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	onResult func(Result)
}

// New starts a Runner. onResult, if not nil, is called on the runner's
// goroutine after every run.
func New(cfg Config, onResult func(Result)) *Runner {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.Component == "" {
		cfg.Component = "mgmt"
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{cfg: cfg, log: log.Named("notify"), wake: make(chan struct{}, 1),
		ctx: ctx, cancel: cancel, done: make(chan struct{}), onResult: onResult}
	go r.run()
	return r
}

// Notify queues st to run and returns at once. When the queue is full
// the last waiting state is replaced by st (counted in Coalesced).
// After Close it does nothing.
func (r *Runner) Notify(st State) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	if len(r.queue) >= r.cfg.QueueSize {
		r.queue[len(r.queue)-1] = st
		r.coalesced++
		r.mu.Unlock()
		r.log.Warn("notify queue full: skipping to the latest state", "component", r.cfg.Component, "state", st.State, "epoch", st.Epoch)
	} else {
		r.queue = append(r.queue, st)
		r.mu.Unlock()
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Coalesced reports how many states were replaced in a full queue.
func (r *Runner) Coalesced() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.coalesced
}

// Close drops the states still waiting, kills a running script's process
// group and waits for the runner's goroutine to end.
func (r *Runner) Close() {
	r.mu.Lock()
	r.closed = true
	r.queue = nil
	r.mu.Unlock()
	r.cancel()
	<-r.done
}

func (r *Runner) run() {
	defer close(r.done)
	for {
		r.mu.Lock()
		if len(r.queue) == 0 {
			r.mu.Unlock()
			select {
			case <-r.wake:
				continue
			case <-r.ctx.Done():
				return
			}
		}
		st := r.queue[0]
		r.queue = r.queue[1:]
		r.mu.Unlock()
		var own string
		switch st.State {
		case Master:
			own = r.cfg.OnMaster
		case Backup:
			own = r.cfg.OnBackup
		case Fault:
			own = r.cfg.OnFault
		default:
			own = r.cfg.Scripts[st.State]
		}
		for _, cmd := range []string{own, r.cfg.OnAny} {
			if cmd == "" || r.ctx.Err() != nil {
				continue
			}
			res := r.exec(cmd, st)
			if r.onResult != nil {
				r.onResult(res)
			}
		}
	}
}

func (r *Runner) exec(command string, st State) Result {
	epoch := strconv.FormatUint(st.Epoch, 10)
	run := script.Run(r.ctx, script.Command{
		Line: command,
		Args: []string{st.State, epoch, st.Master, st.Reason},
		Env: append([]string{
			"HELLOPICS_STATE=" + st.State,
			"HELLOPICS_EPOCH=" + epoch,
			"HELLOPICS_MASTER=" + st.Master,
			"HELLOPICS_REASON=" + st.Reason,
			"HELLOPICS_ID=" + r.cfg.ID,
		}, r.cfg.Env...),
		Timeout: r.cfg.Timeout,
	})
	res := Result{State: st, Command: command, ExitCode: run.ExitCode, TimedOut: run.TimedOut, Err: run.Err,
		Duration: run.Duration, Output: run.Output}
	dropped := run.Dropped
	kv := []any{"component", r.cfg.Component, "state", st.State, "epoch", st.Epoch, "master", st.Master, "reason", st.Reason,
		"command", command, "exit_code", res.ExitCode, "duration", res.Duration, "output", res.Output}
	if dropped > 0 {
		kv = append(kv, "output_dropped_bytes", dropped)
	}
	switch {
	case res.TimedOut:
		r.log.Error("notify script killed at its timeout", append(kv, "timeout", r.cfg.Timeout)...)
	case res.Err != nil:
		r.log.Warn("notify script failed", append(kv, "error", res.Err)...)
	default:
		r.log.Info("notify script ran", kv...)
	}
	return res
}
