package sdnotify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// listen opens a unixgram socket like systemd's and returns a function
// reading the next datagram.
func listen(t *testing.T, name string) func() string {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return func() string {
		t.Helper()
		buf := make([]byte, 4096)
		if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
}

func check(t *testing.T, recv func() string) {
	t.Helper()
	for _, c := range []struct {
		send func() error
		want string
	}{
		{Ready, "READY=1"},
		{func() error { return Status("serving\non 7300") }, "STATUS=serving on 7300"},
		{Stopping, "STOPPING=1"},
		{func() error { return Notify("READY=1\nSTATUS=up") }, "READY=1\nSTATUS=up"},
	} {
		if err := c.send(); err != nil {
			t.Fatal(err)
		}
		if got := recv(); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
}

func TestPathSocket(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify")
	recv := listen(t, name)
	t.Setenv(Socket, name)
	if !Enabled() {
		t.Fatal("Enabled false with NOTIFY_SOCKET set")
	}
	check(t, recv)
}

func TestAbstractSocket(t *testing.T) {
	name := fmt.Sprintf("@hellopics-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	recv := listen(t, name)
	t.Setenv(Socket, name)
	check(t, recv)
}

func TestUnsetIsNoop(t *testing.T) {
	t.Setenv(Socket, "")
	if Enabled() {
		t.Fatal("Enabled true with NOTIFY_SOCKET empty")
	}
	for _, f := range []func() error{Ready, Stopping, func() error { return Status("x") }} {
		if err := f(); err != nil {
			t.Errorf("unset NOTIFY_SOCKET: %v", err)
		}
	}
}

func TestErrors(t *testing.T) {
	t.Setenv(Socket, filepath.Join(t.TempDir(), "absent"))
	if err := Ready(); err == nil {
		t.Error("no error for a socket that does not exist")
	}
	t.Setenv(Socket, "relative/path")
	if err := Ready(); err == nil {
		t.Error("no error for a relative socket name")
	}
}

func ExampleReady() {
	// After the listeners are open and the first work can be served:
	if err := Ready(); err != nil {
		fmt.Fprintln(os.Stderr, "sd_notify:", err) // log, do not stop
	}
	// On SIGTERM, before closing:
	_ = Stopping()
	// Output:
}
