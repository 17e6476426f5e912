package systemd

import (
	"bufio"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// notifySocket is a unixgram socket standing in for systemd's: it
// collects what one daemon sends.
type notifySocket struct {
	path string
	msgs chan string
}

func newNotifySocket(t *testing.T, name string) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	s := &notifySocket{path: path, msgs: make(chan string, 64)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				close(s.msgs)
				return
			}
			s.msgs <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { c.Close() })
	return s
}

// waitReady waits for READY=1 and returns everything received until then.
func (s *notifySocket) waitReady(t *testing.T, who string, d time.Duration) []string {
	t.Helper()
	var got []string
	timeout := time.After(d)
	for {
		select {
		case m, ok := <-s.msgs:
			if !ok {
				t.Fatalf("%s: notification socket closed", who)
			}
			got = append(got, m)
			if strings.Contains("\n"+m+"\n", "\nREADY=1\n") {
				return got
			}
		case <-timeout:
			t.Fatalf("%s: no READY=1 within %v (got %q)", who, d, got)
		}
	}
}

// daemon starts `hellopics args...` with NOTIFY_SOCKET=sock, its stderr
// copied to the returned channel line by line.
func daemon(t *testing.T, bin string, sock *notifySocket, args ...string) <-chan string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock.path)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody reads any more
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return lines
}

// TestReadiness checks what the Type=notify units rely on: mgmt sends
// READY=1 once it listens; ctrl and data once their handshake completes.
// Loopback only.
func TestReadiness(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	bin := buildHellopics(t)

	mgmtSock := newNotifySocket(t, "mgmt")
	mgmtLog := daemon(t, bin, mgmtSock, "mgmt", "-listen", "127.0.0.1:0", "-operator", "", "-hello-interval", "100ms")
	mgmtSock.waitReady(t, "mgmt", 30*time.Second)
	addrRE := regexp.MustCompile(`listening for components: .*addr=(\S+)`)
	var mgmtAddr string
	for line := range mgmtLog {
		if m := addrRE.FindStringSubmatch(line); m != nil {
			mgmtAddr = m[1]
			break
		}
	}
	if mgmtAddr == "" {
		t.Fatal("mgmt did not say where it listens")
	}

	ctrlSock := newNotifySocket(t, "ctrl")
	daemon(t, bin, ctrlSock, "ctrl", "-mgmt", mgmtAddr, "-listen", "127.0.0.1:0", "-retry", "100ms")
	select {
	case m := <-ctrlSock.msgs:
		if strings.Contains(m, "READY=1") {
			t.Fatalf("ctrl ready without its data component: %q", m)
		}
	case <-time.After(500 * time.Millisecond):
	}
	dataSock := newNotifySocket(t, "data")
	daemon(t, bin, dataSock, "data", "-mgmt", mgmtAddr, "-retry", "100ms")
	got := ctrlSock.waitReady(t, "ctrl", 30*time.Second)
	t.Logf("ctrl sent %q", got)
	got = dataSock.waitReady(t, "data", 30*time.Second)
	t.Logf("data sent %q", got)
}
