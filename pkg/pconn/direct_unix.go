//go:build unix

package pconn

import (
	"net"
	"syscall"
)

// rawConnOf returns the raw connection of a plain TCP connection, which
// the session may write to directly (see Session.writeDirect); nil for
// anything else (TLS, pipes, custom dialers' wrappers).
func rawConnOf(c net.Conn) syscall.RawConn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// directWriteFD makes one non-blocking write attempt of s.dbuf to fd,
// leaving the count in s.dn (0 when the socket buffer is full or on any
// error: the writer goroutine then writes and reports the error). It is
// the function given to RawConn.Write; returning true means no waiting.
func (s *Session) directWriteFD(fd uintptr) bool {
	n, err := syscall.Write(int(fd), s.dbuf)
	if err != nil || n < 0 {
		n = 0
	}
	s.dn = n
	return true
}
