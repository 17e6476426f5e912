package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitTimeout bounds every wait for a log line: generous, for a loaded
// two-core machine running the tests in parallel under the race detector.
const waitTimeout = 25 * time.Second

// logLine is one line a child wrote, with its JSON fields when it was a
// JSON object (hclog -log-json), else only Raw.
type logLine struct {
	Raw    string
	Fields map[string]any
	// At is when the harness read the line.
	At time.Time
}

// Str returns field k as a string ("" if absent); numbers are formatted.
func (l logLine) Str(k string) string {
	switch v := l.Fields[k].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// Uint returns field k as an unsigned number (0 if absent or not one).
func (l logLine) Uint(k string) uint64 {
	n, _ := strconv.ParseUint(l.Str(k), 10, 64)
	return n
}

// Msg is the line's "@message".
func (l logLine) Msg() string { return l.Str("@message") }

// Step is the line's "step" (the handshake event kind).
func (l logLine) Step() string { return l.Str("step") }

// match is a predicate on log lines with a description for failures.
type match struct {
	desc string
	f    func(logLine) bool
}

// step matches lines whose step is s and, when pair is not "", whose pair
// is pair.
func step(s, pair string) match {
	d := "step=" + s
	if pair != "" {
		d += " pair=" + pair
	}
	return match{d, func(l logLine) bool { return l.Step() == s && (pair == "" || l.Str("pair") == pair) }}
}

// msg matches lines whose "@message" is m.
func msg(m string) match {
	return match{fmt.Sprintf("@message=%q", m), func(l logLine) bool { return l.Msg() == m }}
}

// and matches lines that all of ms match.
func and(ms ...match) match {
	var ds []string
	for _, m := range ms {
		ds = append(ds, m.desc)
	}
	return match{strings.Join(ds, " "), func(l logLine) bool {
		for _, m := range ms {
			if !m.f(l) {
				return false
			}
		}
		return true
	}}
}

// field matches lines whose field k is v.
func field(k, v string) match {
	return match{k + "=" + v, func(l logLine) bool { return l.Str(k) == v }}
}

// proc is one hellopics child process and everything it logged. Lines are
// kept in order; a test marks a position (Mark) before acting and waits
// for a line after it (WaitFor), so nothing is missed and nothing depends
// on sleeping.
type proc struct {
	tb   testing.TB
	name string
	args []string
	cmd  *exec.Cmd

	mu      sync.Mutex
	lines   []logLine
	changed chan struct{} // closed and replaced when a line arrives or the process exits
	exited  bool
	waitErr error

	// context, if set, formats the recent lines of every related process
	// for failure messages (the cluster's tails); else Tail is used.
	context func() string

	readers sync.WaitGroup
	done    chan struct{} // closed once the process has exited and its output is read
}

// startProc starts the hellopics binary with args as a child in its own
// process group. t.Cleanup kills it (SIGKILL) if it still runs, and
// fails the test if it reported a data race or a panic.
func startProc(tb testing.TB, name string, args ...string) *proc {
	tb.Helper()
	p := &proc{tb: tb, name: name, args: args, changed: make(chan struct{}), done: make(chan struct{})}
	cmd := exec.Command(binPath, args...)
	cmd.SysProcAttr = sysProcAttr()
	cmd.Env = append(cmd.Environ(), "GORACE=halt_on_error=0 exitcode=66")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	p.cmd = cmd
	p.readers.Add(2)
	go p.read(stdout)
	go p.read(stderr)
	go func() {
		p.readers.Wait() // the pipes must be drained before Wait
		err := cmd.Wait()
		p.mu.Lock()
		p.exited, p.waitErr = true, err
		p.notifyLocked()
		p.mu.Unlock()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.Kill()
		p.checkHealthy()
	})
	return p
}

func (p *proc) read(r io.Reader) {
	defer p.readers.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		l := logLine{Raw: sc.Text(), At: time.Now()}
		if strings.HasPrefix(l.Raw, "{") {
			d := json.NewDecoder(strings.NewReader(l.Raw))
			d.UseNumber()
			var m map[string]any
			if d.Decode(&m) == nil {
				l.Fields = m
			}
		}
		p.mu.Lock()
		p.lines = append(p.lines, l)
		p.notifyLocked()
		p.mu.Unlock()
	}
	// A read error here only means the process is gone.
}

func (p *proc) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Pid is the child's process id.
func (p *proc) Pid() int { return p.cmd.Process.Pid }

// Mark returns the position after the last line read so far.
func (p *proc) Mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

// Lines returns a copy of the lines from position from on.
func (p *proc) Lines(from int) []logLine {
	p.mu.Lock()
	defer p.mu.Unlock()
	if from > len(p.lines) {
		from = len(p.lines)
	}
	return append([]logLine(nil), p.lines[from:]...)
}

// Count counts the lines from position from that m matches.
func (p *proc) Count(from int, m match) int {
	n := 0
	for _, l := range p.Lines(from) {
		if m.f(l) {
			n++
		}
	}
	return n
}

// Find returns the matching lines from position from on.
func (p *proc) Find(from int, m match) []logLine {
	var out []logLine
	for _, l := range p.Lines(from) {
		if m.f(l) {
			out = append(out, l)
		}
	}
	return out
}

// WaitFor waits until a line from position from on matches m and returns
// it with the position after it. It fails the test after waitTimeout, or
// if the process exits first, printing the process's recent lines.
func (p *proc) WaitFor(from int, m match) (logLine, int) {
	p.tb.Helper()
	return p.WaitForIn(p.tb, from, m)
}

// WaitForIn is WaitFor failing tb rather than the test that started the
// process (for a subtest sharing its parent's processes).
func (p *proc) WaitForIn(tb testing.TB, from int, m match) (logLine, int) {
	tb.Helper()
	l, next, err := p.waitFor(from, m, 1, waitTimeout)
	if err != nil {
		tb.Fatalf("%s: %v\n%s", p.name, err, p.failContext())
	}
	return l, next
}

// failContext is what a failure message shows: the recent lines of the
// process and of its cluster.
func (p *proc) failContext() string {
	if p.context != nil {
		return p.context()
	}
	return p.Tail(40)
}

// WaitForN waits until n lines from position from on match m, and returns
// the last of them with the position after it.
func (p *proc) WaitForN(from int, m match, n int) (logLine, int) {
	p.tb.Helper()
	l, next, err := p.waitFor(from, m, n, waitTimeout)
	if err != nil {
		p.tb.Fatalf("%s: %v\n%s", p.name, err, p.failContext())
	}
	return l, next
}

// waitFor is WaitForN returning an error instead of failing.
func (p *proc) waitFor(from int, m match, n int, timeout time.Duration) (logLine, int, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	seen := 0
	for {
		p.mu.Lock()
		for ; from < len(p.lines); from++ {
			if m.f(p.lines[from]) {
				seen++
				if seen == n {
					l := p.lines[from]
					p.mu.Unlock()
					return l, from + 1, nil
				}
			}
		}
		ch, exited, werr := p.changed, p.exited, p.waitErr
		p.mu.Unlock()
		if exited {
			return logLine{}, from, fmt.Errorf("exited (%v) before logging %d line(s) %s (saw %d)", werr, n, m.desc, seen)
		}
		select {
		case <-ch:
		case <-timer.C:
			return logLine{}, from, fmt.Errorf("no %d line(s) %s within %v (saw %d)", n, m.desc, timeout, seen)
		}
	}
}

// Tail formats the last n lines for a failure message.
func (p *proc) Tail(n int) string {
	ls := p.Lines(0)
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "--- last %d lines of %s (%s):\n", len(ls), p.name, strings.Join(p.args, " "))
	for _, l := range ls {
		b.WriteString("  ")
		b.WriteString(l.Raw)
		b.WriteByte('\n')
	}
	return b.String()
}

// Exited reports whether the process has exited.
func (p *proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the child's process group.
func (p *proc) Signal(sig syscall.Signal) {
	if p.Exited() {
		return
	}
	// The group's id is the child's pid (Setpgid). ESRCH: already gone.
	if err := syscall.Kill(-p.Pid(), sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		p.tb.Errorf("%s: kill -%d: %v", p.name, sig, err)
	}
}

// Kill kills the process with SIGKILL and waits for it to exit.
func (p *proc) Kill() {
	p.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits for a clean exit (status 0). It fails the
// test if the process does not exit in time (it is then killed) or exits
// with an error.
func (p *proc) Stop() {
	p.tb.Helper()
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(waitTimeout):
		p.Kill()
		p.tb.Fatalf("%s did not exit within %v of SIGTERM\n%s", p.name, waitTimeout, p.Tail(40))
	}
	if err := p.ExitErr(); err != nil {
		p.tb.Errorf("%s exited with %v after SIGTERM\n%s", p.name, err, p.Tail(40))
	}
}

// ExitErr is the process's exit error, once it has exited.
func (p *proc) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// checkHealthy fails the test if the child reported a data race, a panic
// or a fatal runtime error.
func (p *proc) checkHealthy() {
	for _, l := range p.Lines(0) {
		if l.Fields != nil {
			continue
		}
		for _, bad := range []string{"WARNING: DATA RACE", "panic: ", "fatal error: "} {
			if strings.Contains(l.Raw, bad) {
				p.tb.Errorf("%s reported %q\n%s", p.name, strings.TrimSpace(bad), p.Tail(200))
				return
			}
		}
	}
}
