//go:build !unix

package pconn

import (
	"net"
	"syscall"
)

// rawConnOf disables direct writes where there is no non-blocking write
// to a raw socket; every frame goes through the writer goroutine.
func rawConnOf(net.Conn) syscall.RawConn { return nil }

func (s *Session) directWriteFD(uintptr) bool {
	s.dn = 0
	return true
}
