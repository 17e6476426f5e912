//go:build !linux

package dgram

import "net"

// readerSys and writerSys read and write one datagram per call where
// recvmmsg and sendmmsg are not available.
type readerSys struct{}

func (readerSys) init(*net.UDPConn, [][]byte) error { return nil }

func (readerSys) read(conn *net.UDPConn, bufs [][]byte, msgs []Msg) (int, error) {
	n, from, err := conn.ReadFromUDPAddrPort(bufs[0])
	if err != nil {
		return 0, err
	}
	msgs[0] = Msg{Buf: bufs[0][:n], Addr: from}
	return 1, nil
}

type writerSys struct{}

func (writerSys) init(*net.UDPConn, int) error { return nil }

func (writerSys) write(conn *net.UDPConn, msgs []Msg) {
	for i := range msgs {
		if msgs[i].Addr.IsValid() {
			_, msgs[i].Err = conn.WriteToUDPAddrPort(msgs[i].Buf, msgs[i].Addr)
		} else {
			_, msgs[i].Err = conn.Write(msgs[i].Buf)
		}
	}
}
