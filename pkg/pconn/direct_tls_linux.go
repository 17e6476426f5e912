//go:build linux

package pconn

import (
	"crypto/tls"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// tlsRawConnOf returns, for a TLS connection over TCP, the raw socket
// under it, whose send queue tells whether a small write can complete at
// once (see Session.writeDirectTLS); nil for anything else.
func tlsRawConnOf(c net.Conn) syscall.RawConn {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil
	}
	nc, ok := tc.NetConn().(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := nc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// sendBufSize is the socket's send buffer size, or 0 if unknown.
func sendBufSize(rc syscall.RawConn) int {
	size := 0
	_ = rc.Control(func(fd uintptr) {
		if v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF); err == nil {
			size = v
		}
	})
	return size
}

// readOutq reads the bytes waiting in the socket's send queue into
// s.outq (-1 on error); bound once as s.outqFn for RawConn.Control, so
// that asking costs no allocation.
func (s *Session) readOutq(fd uintptr) {
	q, err := unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
	if err != nil {
		q = -1
	}
	s.outq = q
}
