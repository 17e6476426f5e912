package demo

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the demo's writers and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDemo runs the README's first command the way a user does: the real
// binary, five processes, until interrupted. It checks that the handshake
// completes, the Hello cycle runs, TPCE commands come back through the
// relay, and everything stops cleanly.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	exe := filepath.Join(t.TempDir(), "hellopics")
	build := exec.Command("go", "build", "-o", exe, "../../cmd/hellopics")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	failover := make(chan struct{}, 1)
	go func() {
		done <- Run(ctx, Options{Exe: exe, Out: &out, HelloInterval: 50 * time.Millisecond,
			CommandInterval: 100 * time.Millisecond, LogLevel: "info", Failover: failover})
	}()
	waitOutput := func(want ...string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			s := out.String()
			missing := ""
			for _, w := range want {
				if !strings.Contains(s, w) {
					missing = w
					break
				}
			}
			if missing == "" {
				return
			}
			if time.Now().After(deadline) {
				cancel()
				<-done
				t.Fatalf("demo output lacks %q after 60s:\n%s", missing, out.String())
			}
			select {
			case err := <-done:
				t.Fatalf("demo ended early: %v\n%s", err, out.String())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	waitOutput(
		"step=identified peer=ctrl",
		"step=identified peer=data",
		"step=cycle_started",
		"response id=1 len=14: \"demo command 1\"",
	)
	// The failover the banner promises: the master is killed, the backup
	// takes over and runs the cycle, the old master returns as a backup.
	// Which instance is master is not assumed: on a loaded machine a
	// stall may already have moved mastership.
	before := strings.Count(out.String(), "step=became_master")
	failover <- struct{}{}
	waitOutput("failover: killing the master mgmt-")
	deadline0 := time.Now().Add(60 * time.Second)
	for strings.Count(out.String(), "step=became_master") <= before {
		if time.Now().After(deadline0) {
			t.Fatalf("no instance became master after the failover:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitOutput("it joins as a backup")
	deadline := time.Now().Add(60 * time.Second)
	for strings.Count(out.String(), "step=cycle_started") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no cycle under the new master:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo stopped with %v\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("demo did not stop within 60s of the interrupt\n%s", out.String())
	}
	s := out.String()
	for _, w := range []string{"hellopics demo: stopped", "mgmt-b | ", "stopped: component=mgmt", "stopped: component=data"} {
		if !strings.Contains(s, w) {
			t.Errorf("after the stop, output lacks %q", w)
		}
	}
	if strings.Contains(s, "did not stop in 5s") {
		t.Errorf("a process had to be killed:\n%s", s)
	}
}
