package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// notifySocket listens like systemd's notification socket.
func notifySocket(t *testing.T) (*net.UnixConn, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, path
}

// waitNotify reads datagrams until one contains want.
func waitNotify(t *testing.T, c *net.UnixConn, want string) {
	t.Helper()
	buf := make([]byte, 4096)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_ = c.SetReadDeadline(deadline)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no %q from the daemon: %v", want, err)
		}
		if strings.Contains(string(buf[:n]), want) {
			return
		}
	}
}

// pending reports whether a datagram is waiting.
func pending(c *net.UnixConn) string {
	buf := make([]byte, 4096)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	n, err := c.Read(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

// TestSystemdReadiness runs the real daemons with NOTIFY_SOCKET set, as
// systemd's Type=notify does: mgmt is ready when it serves; ctrl only once
// its handshake is complete, which needs data.
func TestSystemdReadiness(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	exe := filepath.Join(t.TempDir(), "hellopics")
	if out, err := exec.Command("go", "build", "-o", exe, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mgmtAddr := ln.Addr().String()
	ln.Close()
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctrlAddr := ln.Addr().String()
	ln.Close()

	run := func(sock string, args ...string) {
		cmd := exec.Command(exe, args...)
		cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		})
	}
	ms, mpath := notifySocket(t)
	run(mpath, "mgmt", "-listen", mgmtAddr, "-operator", "", "-hello-interval", "50ms")
	waitNotify(t, ms, "READY=1")

	cs, cpath := notifySocket(t)
	run(cpath, "ctrl", "-mgmt", mgmtAddr, "-listen", ctrlAddr, "-retry", "100ms")
	if msg := pending(cs); strings.Contains(msg, "READY=1") {
		t.Fatalf("ctrl reported ready before its data component existed: %q", msg)
	}
	ds, dpath := notifySocket(t)
	run(dpath, "data", "-mgmt", mgmtAddr, "-retry", "100ms")
	waitNotify(t, cs, "READY=1")
	waitNotify(t, ds, "READY=1")
}
