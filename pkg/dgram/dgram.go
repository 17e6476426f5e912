// Package dgram reads and writes UDP datagrams in batches: many
// datagrams per system call (recvmmsg and sendmmsg) on Linux, one per
// call elsewhere, with the same API and no allocation per datagram.
//
// A Reader belongs to one goroutine, a Writer to one goroutine; several
// of either may share a socket. Neither owns the socket: close it to end
// a blocked Read.
package dgram

import (
	"fmt"
	"net"
	"net/netip"
)

// Msg is one datagram of a batch.
type Msg struct {
	Buf  []byte         // the datagram's octets; valid until the next Read
	Addr netip.AddrPort // its sender (Reader)
	Err  error          // why it was not sent (Writer.Flush)
}

// Reader reads datagrams in batches from one socket.
type Reader struct {
	conn *net.UDPConn
	msgs []Msg
	bufs [][]byte // full-size receive buffers, one per batch slot
	sys  readerSys
}

// NewReader returns a Reader of up to batch datagrams per call, each of
// at most size octets (a longer one is truncated). batch and size below
// 1 mean 1 and 65536.
func NewReader(conn *net.UDPConn, batch, size int) (*Reader, error) {
	batch, size = max(batch, 1), cmp0(size, 65536)
	r := &Reader{conn: conn, msgs: make([]Msg, batch), bufs: make([][]byte, batch)}
	for i := range r.bufs {
		r.bufs[i] = make([]byte, size)
	}
	if err := r.sys.init(conn, r.bufs); err != nil {
		return nil, fmt.Errorf("dgram: reader: %w", err)
	}
	return r, nil
}

// Read waits for at least one datagram and returns the batch read, at
// most the batch size. The slices are valid until the next Read. The
// error is the socket's, net.ErrClosed once it is closed.
func (r *Reader) Read() ([]Msg, error) {
	n, err := r.sys.read(r.conn, r.bufs, r.msgs)
	if err != nil {
		return nil, err
	}
	return r.msgs[:n], nil
}

// Writer collects datagrams and sends them in batches from one socket.
type Writer struct {
	conn *net.UDPConn
	msgs []Msg
	bufs [][]byte // slot storage; grows to the largest datagram queued
	n    int      // queued
	sent uint64   // datagrams sent, ever
	lost uint64   // datagrams refused, ever
	err  error    // of the send Next made, for Commit
	sys  writerSys
}

// NewWriter returns a Writer of up to batch datagrams per call; batch
// below 1 means 1.
func NewWriter(conn *net.UDPConn, batch int) (*Writer, error) {
	batch = max(batch, 1)
	w := &Writer{conn: conn, msgs: make([]Msg, batch), bufs: make([][]byte, batch)}
	if err := w.sys.init(conn, batch); err != nil {
		return nil, fmt.Errorf("dgram: writer: %w", err)
	}
	return w, nil
}

// Add queues a copy of b for to (the zero AddrPort on a connected
// socket), sending the batch first if it is full. The error is Flush's.
func (w *Writer) Add(b []byte, to netip.AddrPort) error {
	var err error
	if w.n == len(w.msgs) {
		err = w.Flush()
	}
	w.bufs[w.n] = append(w.bufs[w.n][:0], b...)
	w.msgs[w.n] = Msg{Buf: w.bufs[w.n], Addr: to}
	w.n++
	return err
}

// Next returns the next slot's buffer, empty, to append a datagram to
// and hand to Commit: that saves Add's copy. A full batch is sent
// first; Commit returns that send's error.
func (w *Writer) Next() []byte {
	if w.n == len(w.msgs) {
		w.err = w.Flush()
	}
	return w.bufs[w.n][:0]
}

// Commit queues b, built on the buffer Next returned, for to.
func (w *Writer) Commit(b []byte, to netip.AddrPort) error {
	if w.n == len(w.msgs) { // Next was not called
		w.err = w.Flush()
	}
	w.bufs[w.n] = b
	w.msgs[w.n] = Msg{Buf: b, Addr: to}
	w.n++
	err := w.err
	w.err = nil
	return err
}

// Len is how many datagrams are queued.
func (w *Writer) Len() int { return w.n }

// Sent is how many datagrams the Writer has sent since it was made.
func (w *Writer) Sent() uint64 { return w.sent }

// Refused is how many datagrams the socket refused since the Writer was
// made.
func (w *Writer) Refused() uint64 { return w.lost }

// Flush sends every queued datagram. A datagram the socket refuses is
// dropped and the rest still sent; the error names the first refused,
// with how many were.
func (w *Writer) Flush() error {
	if w.n == 0 {
		return nil
	}
	msgs := w.msgs[:w.n]
	w.n = 0
	w.sys.write(w.conn, msgs)
	var first error
	failed := 0
	for i := range msgs {
		if msgs[i].Err != nil {
			if first == nil {
				first = fmt.Errorf("to %v: %w", msgs[i].Addr, msgs[i].Err)
			}
			failed++
			msgs[i].Err = nil
		}
	}
	w.sent += uint64(len(msgs) - failed)
	w.lost += uint64(failed)
	if failed > 1 {
		return fmt.Errorf("%d datagrams not sent, the first %w", failed, first)
	}
	if failed == 1 {
		return fmt.Errorf("datagram not sent %w", first)
	}
	return nil
}

func cmp0(v, def int) int {
	if v < 1 {
		return def
	}
	return v
}

// Reaches reports whether datagrams sent from conn may be expected to
// reach to: the address families match, or conn is bound to the IPv6
// unspecified address (a dual-stack socket), and a socket bound to a
// loopback address is not asked to reach another host.
func Reaches(conn *net.UDPConn, to netip.AddrPort) bool {
	la, ok := conn.LocalAddr().(*net.UDPAddr)
	if !ok || !to.IsValid() {
		return false
	}
	local, dst := la.AddrPort().Addr().Unmap(), to.Addr().Unmap()
	if local.IsUnspecified() {
		return local.Is6() || dst.Is4()
	}
	if local.Is4() != dst.Is4() {
		return false
	}
	return !local.IsLoopback() || dst.IsLoopback()
}

// SameAddr reports whether a and b are the same address and port, an
// IPv4-mapped IPv6 address being the same as its IPv4 one.
func SameAddr(a, b netip.AddrPort) bool {
	return a.Port() == b.Port() && a.Addr().Unmap() == b.Addr().Unmap()
}
