// Package sdnotify tells the service manager (systemd) about the state of
// a daemon, as sd_notify(3) does, for units of Type=notify: Ready once the
// daemon really serves, Stopping when it begins to stop, Status for a
// one-line description shown by `systemctl status`.
//
// The messages go as datagrams to the unix socket named by $NOTIFY_SOCKET;
// a name starting with '@' is an abstract socket. When $NOTIFY_SOCKET is
// unset (not started by systemd, or not Type=notify) every function does
// nothing and returns nil, so daemons may call them unconditionally.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// Socket is the environment variable naming the notification socket.
const Socket = "NOTIFY_SOCKET"

// Ready tells the service manager that start-up is finished: for
// Type=notify units, systemd starts the units ordered after this one and
// `systemctl start` returns.
func Ready() error { return Notify("READY=1") }

// Stopping tells the service manager that the daemon is stopping.
func Stopping() error { return Notify("STOPPING=1") }

// Status sets the free-form status line of the unit. Newlines are
// replaced by spaces: the protocol is one assignment a line.
func Status(s string) error {
	return Notify("STATUS=" + strings.NewReplacer("\n", " ", "\r", " ").Replace(s))
}

// Enabled reports whether $NOTIFY_SOCKET is set.
func Enabled() bool { return os.Getenv(Socket) != "" }

// Notify sends state, newline-separated VAR=value assignments (see
// sd_notify(3)), in one datagram. It returns nil without sending when
// $NOTIFY_SOCKET is unset.
func Notify(state string) error {
	name := os.Getenv(Socket)
	if name == "" {
		return nil
	}
	if name[0] != '/' && name[0] != '@' {
		return fmt.Errorf("sdnotify: %s=%q: want an absolute path or an @abstract name", Socket, name)
	}
	// Go maps a leading '@' to the abstract namespace (a leading NUL).
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	n, err := c.Write([]byte(state))
	cerr := c.Close()
	if err == nil && n != len(state) {
		err = errors.New("short write")
	}
	if err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}
