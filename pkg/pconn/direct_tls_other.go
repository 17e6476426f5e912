//go:build !linux

package pconn

import (
	"net"
	"syscall"
)

// tlsRawConnOf disables direct TLS writes where the send queue cannot be
// asked: every frame goes through the writer goroutine.
func tlsRawConnOf(net.Conn) syscall.RawConn { return nil }

func sendBufSize(syscall.RawConn) int { return 0 }

func (s *Session) readOutq(uintptr) { s.outq = -1 }
