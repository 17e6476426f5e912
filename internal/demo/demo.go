// Package demo runs a whole hellopics appliance on one machine: the
// management, control and data components, the SNMP agent simulator and
// a TPCE client, each a separate process of the same binary, on loopback
// ports it picks, with their logs interleaved behind a prefix per process.
package demo

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hellopics/hellopics/pkg/identity"
	"github.com/hellopics/hellopics/pkg/pki"
	"github.com/hellopics/hellopics/pkg/tlsconf"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// Options configure a demo run.
type Options struct {
	// Exe is the hellopics binary to run the processes with.
	Exe string
	// Out receives the banner and the prefixed logs of every process.
	Out io.Writer
	// HelloInterval is passed to mgmt. Default 1s.
	HelloInterval time.Duration
	// HelloSummary is mgmt's -hello-summary: shorter than mgmt's
	// default, so that the demo shows the hellos flowing. Default 10s.
	HelloSummary time.Duration
	// CommandInterval is how often the TPCE client sends a command; 0
	// runs no relay traffic. Default 1s.
	CommandInterval time.Duration
	// LogLevel is passed to every process. Default "info".
	LogLevel string
	// Color prefixes each process's lines in its own color.
	Color bool
	// Failover, when it delivers, kills the master mgmt and restarts it
	// as a backup 3 s later.
	Failover <-chan struct{}
}

// spec is a process to run: its name and arguments.
type spec struct {
	name string
	args []string
}

// masterIndex asks each operator address for its role and returns the
// index of the master, or -1.
func masterIndex(ctx context.Context, ops []string, tc *tls.Config) int {
	creds := insecure.NewCredentials()
	if tc != nil {
		creds = credentials.NewTLS(tc)
	}
	for i, addr := range ops {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := hellopicsv1.NewOperatorServiceClient(conn).GetStatus(cctx, &hellopicsv1.GetStatusRequest{})
		cancel()
		conn.Close()
		if err == nil && st.GetRole() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
			return i
		}
	}
	return -1
}

// proc is one child process and the copy of its output.
type proc struct {
	name  string
	cmd   *exec.Cmd
	done  chan struct{}
	err   error
	stdin io.WriteCloser
}

// Run starts everything, prints a banner and blocks until ctx ends, then
// stops the processes (SIGTERM, then SIGKILL after 5 s) in reverse order
// of start. It returns an error if a process could not be started.
func Run(ctx context.Context, o Options) error {
	if o.HelloSummary == 0 {
		o.HelloSummary = 10 * time.Second
	}
	if o.HelloInterval == 0 {
		o.HelloInterval = time.Second
	}
	if o.CommandInterval == 0 {
		o.CommandInterval = time.Second
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	tcp, err := freePorts("tcp", 10)
	if err != nil {
		return err
	}
	udp, err := freePorts("udp", 2)
	if err != nil {
		return err
	}
	mgmtA, opA, haA := tcp[0], tcp[1], tcp[2]
	mgmtB, opB, haB := tcp[3], tcp[4], tcp[5]
	ctrlAddr, cmdAddr, evAddr, stAddr := tcp[6], tcp[7], tcp[8], tcp[9]
	agentAddr, notifyAddr := udp[0], udp[1]
	mgmts := mgmtA + "," + mgmtB
	stateDir, err := os.MkdirTemp("", "hellopics-demo-")
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	defer os.RemoveAll(stateDir)

	// Every link runs mutual TLS, with a PKI made for this run.
	pkiDir := filepath.Join(stateDir, "pki")
	if _, _, err := pki.Deploy(pkiDir, pki.Deployment{Mgmt: []string{"mgmt-a", "mgmt-b"}, Pairs: []string{"pic0"},
		Operators: []identity.ID{{Role: identity.RoleOperator, Perm: identity.PermAdmin, Name: "demo"}}}); err != nil {
		return fmt.Errorf("demo PKI: %w", err)
	}
	tlsFlags := func(base string) []string {
		return []string{"-tls-cert", filepath.Join(pkiDir, base+".crt"), "-tls-key", filepath.Join(pkiDir, base+".key"),
			"-tls-ca", filepath.Join(pkiDir, "ca.crt")}
	}
	// The demo asks the operator API who is master, as operator "demo".
	opSrc, err := tlsconf.Load(tlsconf.Files{Cert: filepath.Join(pkiDir, "operator-demo.crt"),
		Key: filepath.Join(pkiDir, "operator-demo.key"), CA: filepath.Join(pkiDir, "ca.crt")}, nil)
	if err != nil {
		return fmt.Errorf("demo PKI: %w", err)
	}
	opTLS := opSrc.ClientConfig(tlsconf.Roles(identity.RoleMgmt))

	out := &lockedWriter{w: o.Out}
	fmt.Fprintf(out, `hellopics demo: the appliance as separate processes on this machine

  mgmt-a   master candidate (priority 200): components %s, operator API %s
  mgmt-b   backup (priority 100): components %s, operator API %s
  ctrl     data connections %s
  data     MEDS relay: commands %s, events %s, status %s
  agent    SNMP agent simulator %s (informs to %s)
  tpce     a TPCE client sending a command every %v

Watch the readiness handshake below, then the Hello cycle every %v.
Every link runs mutual TLS (certificates in %s). In another terminal:
  %s ctl -addr %s,%s %s status
Fail the master over: type f and Enter here, or: kill -USR1 %d
(the master is killed with SIGKILL and restarted 3s later; it comes back as a backup).
Stop with Ctrl-C.

`, mgmtA, opA, mgmtB, opB, ctrlAddr, cmdAddr, evAddr, stAddr, agentAddr, notifyAddr, o.CommandInterval,
		o.HelloInterval, pkiDir, o.Exe, opA, opB, strings.Join(tlsFlags("operator-demo"), " "), os.Getpid())

	logFlags := []string{"-log-level", o.LogLevel}
	// The relay has no default SNMP community: agent and data share a
	// random one for this run, through the environment (not argv, which
	// ps shows).
	var rnd [12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return fmt.Errorf("demo community: %w", err)
	}
	childEnv := append(os.Environ(), "HELLOPICS_COMMUNITY=demo-"+hex.EncodeToString(rnd[:]))
	mgmtArgs := func(id, prio, listen, op, ha, peer string) []string {
		return append([]string{"mgmt", "-id", id, "-priority", prio, "-listen", listen, "-operator", op,
			"-ha-listen", ha, "-peers", peer, "-nopreempt", "-state-dir", filepath.Join(stateDir, id),
			"-hello-interval", o.HelloInterval.String(), "-hello-summary", o.HelloSummary.String()}, tlsFlags("mgmt-"+id)...)
	}
	specs := []spec{
		{"agent", []string{"agent", "-listen", agentAddr, "-notify", notifyAddr, "-event-interval", "5s", "-status-interval", "10s"}},
		{"mgmt-a", mgmtArgs("mgmt-a", "200", mgmtA, opA, haA, "mgmt-b="+haB)},
		{"mgmt-b", mgmtArgs("mgmt-b", "100", mgmtB, opB, haB, "mgmt-a="+haA)},
		{"ctrl", append([]string{"ctrl", "-mgmt", mgmts, "-listen", ctrlAddr}, tlsFlags("ctrl-pic0")...)},
		{"data", append([]string{"data", "-mgmt", mgmts, "-agent", agentAddr, "-notify", notifyAddr,
			"-commands", cmdAddr, "-events", evAddr, "-status", stAddr}, tlsFlags("data-pic0")...)},
		{"tpce", []string{"tpce", "-commands", cmdAddr, "-events", evAddr, "-status", stAddr, "-follow"}},
	}
	colors := []string{"\x1b[36m", "\x1b[35m", "\x1b[95m", "\x1b[33m", "\x1b[32m", "\x1b[34m"}
	procs := make([]*proc, len(specs))
	var procsMu sync.Mutex
	launch := func(i int) error {
		s := specs[i]
		prefix := fmt.Sprintf("%-6s | ", s.name)
		if o.Color {
			prefix = colors[i%len(colors)] + fmt.Sprintf("%-6s", s.name) + "\x1b[0m | "
		}
		args := s.args
		if s.name != "tpce" {
			args = append(append([]string(nil), args...), logFlags...)
		}
		p, err := start(o.Exe, s.name, args, childEnv, prefix, out)
		if err != nil {
			return err
		}
		procsMu.Lock()
		procs[i] = p
		procsMu.Unlock()
		return nil
	}
	stopAll := func() {
		procsMu.Lock()
		defer procsMu.Unlock()
		for i := len(procs) - 1; i >= 0; i-- {
			if procs[i] != nil {
				procs[i].stop(out)
			}
		}
	}
	for i := range specs {
		if specs[i].name == "tpce" {
			// The client does not retry: start it once the relay listens.
			if err := waitListening(ctx, cmdAddr, 30*time.Second); err != nil {
				stopAll()
				return fmt.Errorf("the relay in data: %w", err)
			}
		}
		if err := launch(i); err != nil {
			stopAll()
			return err
		}
	}

	// Failovers on request: kill the master, restart it 3 s later.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-o.Failover:
			}
			i := -1
			for try := 0; i < 0 && try < 50 && ctx.Err() == nil; try++ {
				if i = masterIndex(ctx, []string{opA, opB}, opTLS); i < 0 {
					time.Sleep(100 * time.Millisecond) // an election may be under way
				}
			}
			if i < 0 {
				fmt.Fprintf(out, "hellopics demo: no master answers right now; try again in a moment\n")
				continue
			}
			idx := 1 + i // specs index of mgmt-a or mgmt-b
			procsMu.Lock()
			p := procs[idx]
			procsMu.Unlock()
			fmt.Fprintf(out, "hellopics demo: failover: killing the master %s (pid %d) with SIGKILL; restarting it in 3s\n", specs[idx].name, p.cmd.Process.Pid)
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
			select {
			case <-ctx.Done():
				return
			case <-time.After(3 * time.Second):
			}
			fmt.Fprintf(out, "hellopics demo: restarting %s; it joins as a backup\n", specs[idx].name)
			if err := launch(idx); err != nil {
				fmt.Fprintf(out, "hellopics demo: restart of %s failed: %v\n", specs[idx].name, err)
			}
		}
	}()

	// The TPCE client reads commands from its standard input.
	feedDone := make(chan struct{})
	go func() {
		defer close(feedDone)
		tp := procs[len(procs)-1]
		t := time.NewTicker(o.CommandInterval)
		defer t.Stop()
		for n := 1; ; n++ {
			select {
			case <-ctx.Done():
				tp.stdin.Close()
				return
			case <-tp.done:
				return
			case <-t.C:
				if _, err := fmt.Fprintf(tp.stdin, "demo command %d\n", n); err != nil {
					return
				}
			}
		}
	}()

	<-ctx.Done()
	fmt.Fprintf(out, "\nhellopics demo: stopping every process\n")
	wg.Wait()
	stopAll()
	<-feedDone
	var errs []error
	for _, p := range procs {
		if p.err != nil && !isSignalExit(p.err) {
			errs = append(errs, fmt.Errorf("%s: %w", p.name, p.err))
		}
	}
	fmt.Fprintf(out, "hellopics demo: stopped\n")
	return errors.Join(errs...)
}

func start(exe, name string, args, env []string, prefix string, out io.Writer) (*proc, error) {
	cmd := exec.Command(exe, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	if name == "tpce" {
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		p.stdin = stdin
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(out, "%s%s\n", prefix, sc.Text())
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		<-copied
		if p.err != nil && !isSignalExit(p.err) {
			fmt.Fprintf(out, "%s(exited: %v)\n", prefix, p.err)
		}
		close(p.done)
	}()
	return p, nil
}

// stop asks the process to end and kills it if it has not within 5 s.
func (p *proc) stop(out io.Writer) {
	select {
	case <-p.done:
		return
	default:
	}
	if p.stdin != nil {
		// The TPCE client ends by itself at the end of its input, once
		// the commands in flight are answered: give it that chance
		// before the signal, which would cut an answer off.
		p.stdin.Close()
		select {
		case <-p.done:
			return
		case <-time.After(2 * time.Second):
		}
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		fmt.Fprintf(out, "hellopics demo: %s did not stop in 5s; killing it\n", p.name)
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func isSignalExit(err error) bool {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return true
		}
	}
	return false
}

// freePorts returns n distinct loopback addresses free at the moment.
func freePorts(network string, n int) ([]string, error) {
	var out []string
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for range n {
		switch network {
		case "tcp":
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, fmt.Errorf("pick a TCP port: %w", err)
			}
			closers = append(closers, ln)
			out = append(out, ln.Addr().String())
		default:
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				return nil, fmt.Errorf("pick a UDP port: %w", err)
			}
			closers = append(closers, pc)
			out = append(out, pc.LocalAddr().String())
		}
	}
	return out, nil
}

// lockedWriter serialises whole lines from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// waitListening waits until a TCP connection to addr succeeds.
func waitListening(ctx context.Context, addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening after %v: %w", addr, limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
