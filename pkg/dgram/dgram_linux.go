//go:build linux

package dgram

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr of recvmmsg(2) and sendmmsg(2); Go pads it
// as C does.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// readerSys reads with recvmmsg(2).
type readerSys struct {
	rc    syscall.RawConn
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrAny
	fn    func(fd uintptr) bool // s.recv, made once: no allocation per call
	n     int                   // recv's results
	errno syscall.Errno
}

func (s *readerSys) init(conn *net.UDPConn, bufs [][]byte) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	s.rc, s.fn = rc, s.recv
	s.hdrs = make([]mmsghdr, len(bufs))
	s.iovs = make([]unix.Iovec, len(bufs))
	s.names = make([]unix.RawSockaddrAny, len(bufs))
	for i := range bufs {
		s.iovs[i].Base = &bufs[i][0]
		s.iovs[i].SetLen(len(bufs[i]))
	}
	return nil
}

func (s *readerSys) read(_ *net.UDPConn, bufs [][]byte, msgs []Msg) (int, error) {
	for i := range s.hdrs {
		h := &s.hdrs[i]
		h.hdr = unix.Msghdr{
			Name:    (*byte)(unsafe.Pointer(&s.names[i])),
			Namelen: uint32(unsafe.Sizeof(s.names[i])),
			Iov:     &s.iovs[i],
		}
		h.hdr.SetIovlen(1)
		h.len = 0
	}
	if err := s.rc.Read(s.fn); err != nil {
		return 0, err
	}
	if s.errno != 0 {
		return 0, os.NewSyscallError("recvmmsg", s.errno)
	}
	n := s.n
	for i := range n {
		msgs[i] = Msg{Buf: bufs[i][:min(int(s.hdrs[i].len), len(bufs[i]))], Addr: addrPort(&s.names[i])}
	}
	return n, nil
}

func (s *readerSys) recv(fd uintptr) bool {
	for {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&s.hdrs[0])), uintptr(len(s.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait until readable
		}
		s.n, s.errno = int(r), e
		return true
	}
}

// addrPort converts a sender's address as net does: an IPv4 sender on
// an IPv6 socket stays IPv4-mapped.
func addrPort(sa *unix.RawSockaddrAny) netip.AddrPort {
	switch sa.Addr.Family {
	case unix.AF_INET:
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(p.Addr), ntohs(p.Port))
	case unix.AF_INET6:
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom16(p.Addr), ntohs(p.Port))
	}
	return netip.AddrPort{}
}

// ntohs and htons convert sin_port, which is in network byte order.
func ntohs(v uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&v))
	return uint16(b[0])<<8 | uint16(b[1])
}

func htons(v uint16) uint16 {
	var r uint16
	b := (*[2]byte)(unsafe.Pointer(&r))
	b[0], b[1] = byte(v>>8), byte(v)
	return r
}

// writerSys writes with sendmmsg(2).
type writerSys struct {
	rc     syscall.RawConn
	family int // the socket's: AF_INET or AF_INET6
	hdrs   []mmsghdr
	iovs   []unix.Iovec
	names  []unix.RawSockaddrInet6 // large enough for either family
	fn     func(fd uintptr) bool   // s.send, made once
	k      int                     // datagrams to send
	sent   int                     // send's results
	errno  syscall.Errno
}

func (s *writerSys) init(conn *net.UDPConn, batch int) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		s.family, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("socket family: %w", serr)
	}
	s.rc, s.fn = rc, s.send
	s.hdrs = make([]mmsghdr, batch)
	s.iovs = make([]unix.Iovec, batch)
	s.names = make([]unix.RawSockaddrInet6, batch)
	return nil
}

// name writes to as a socket address of the socket's family into slot
// i and returns its length.
func (s *writerSys) name(i int, to netip.AddrPort) uint32 {
	if s.family == unix.AF_INET && to.Addr().Unmap().Is4() {
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(&s.names[i]))
		*p = unix.RawSockaddrInet4{Family: unix.AF_INET, Port: htons(to.Port()), Addr: to.Addr().Unmap().As4()}
		return unix.SizeofSockaddrInet4
	}
	s.names[i] = unix.RawSockaddrInet6{Family: unix.AF_INET6, Port: htons(to.Port()), Addr: to.Addr().As16()}
	return unix.SizeofSockaddrInet6
}

func (s *writerSys) write(_ *net.UDPConn, msgs []Msg) {
	for len(msgs) > 0 {
		k := min(len(msgs), len(s.hdrs))
		for i := range k {
			m := &msgs[i]
			s.iovs[i] = unix.Iovec{}
			if len(m.Buf) > 0 {
				s.iovs[i].Base = &m.Buf[0]
				s.iovs[i].SetLen(len(m.Buf))
			}
			h := &s.hdrs[i]
			h.hdr = unix.Msghdr{Iov: &s.iovs[i]}
			h.hdr.SetIovlen(1)
			if m.Addr.IsValid() {
				h.hdr.Name = (*byte)(unsafe.Pointer(&s.names[i]))
				h.hdr.Namelen = s.name(i, m.Addr)
			}
			h.len = 0
		}
		s.k = k
		err := s.rc.Write(s.fn)
		sent, errno := s.sent, s.errno
		if err != nil { // the socket is closed or broken: nothing more goes
			for i := range msgs {
				msgs[i].Err = err
			}
			return
		}
		if errno != 0 { // the first datagram was refused; go on after it
			msgs[0].Err = os.NewSyscallError("sendmmsg", errno)
			sent = 1
		}
		msgs = msgs[sent:]
	}
}

func (s *writerSys) send(fd uintptr) bool {
	for {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&s.hdrs[0])), uintptr(s.k), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait until writable
		}
		s.sent, s.errno = int(r), e
		return true
	}
}
