package pconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/hellopics/hellopics/internal/ratelog"
)

// logInterval is Config.LogInterval's default.
const logInterval = 10 * time.Second

var sessionIDs atomic.Uint64

// Session is one framed connection, on a server or a client. Its methods
// are safe for concurrent use.
type Session struct {
	id       uint64
	conn     net.Conn
	cfg      *Config
	log      hclog.Logger
	rl       *ratelog.Logger // warnings a peer can trigger at will
	srv      *Server         // nil on a client
	peerID   string
	peerCert *x509.Certificate

	// identified is false on a server session until SetIdentified; maxIn
	// is the payload limit in force (MaxFrameSizeUnidentified, then
	// MaxFrameSize), read by the read loop before each frame.
	identified atomic.Bool
	maxIn      atomic.Int64

	ctx    context.Context
	cancel context.CancelFunc

	// The send queue: frames encoded back to back, written by the writer
	// goroutine in one write per batch.
	qmu     sync.Mutex
	qbuf    []byte
	qframes int
	qclosed bool
	wake    chan struct{}
	// qgen counts the times qbuf was taken, written or shifted; a record
	// frame (SendRecord) may grow while qgen and len(qbuf) are still
	// those of its last append: tailGen, tailEnd; it starts at tail.
	qgen          uint64
	tail, tailEnd int
	tailType      MsgType
	tailGen       uint64
	tailSet       bool

	// Direct writes, on plain TCP only: a Send that finds the queue empty,
	// no batch being written and the session quiet for directQuiet writes
	// its frame itself, in one non-blocking write, instead of waking the
	// writer goroutine (what it cannot write, the writer writes). This
	// saves a goroutine hand-off per frame on request/response traffic;
	// back-to-back Sends still queue up and are written in batches.
	raw      syscall.RawConn    // nil: no direct writes
	tlsRaw   syscall.RawConn    // TLS over TCP: the socket under it, for direct TLS writes
	sndBuf   int                // its send buffer size
	outqFn   func(uintptr)      // s.readOutq, bound once
	outq     int                // qmu: what outqFn read
	wdl      time.Time          // the write deadline last set (writer, or a direct write under qmu)
	directFn func(uintptr) bool // s.directWriteFD, bound once
	dbuf     []byte             // qmu: what directFn writes
	dn       int                // qmu: what directFn wrote
	writing  bool               // qmu: the writer goroutine is writing a batch
	lastSend time.Duration      // qmu: when a Send last found the queue idle (monoSince)

	framesIn, bytesIn   atomic.Uint64
	framesOut, bytesOut atomic.Uint64
	queueFull           atomic.Uint64

	cookieMu sync.Mutex
	cookie   any

	readerLocal any // the handler's, on the read goroutine (ReaderLocal)

	drain     chan struct{} // closed to start a graceful close
	drainOnce sync.Once
	kill      chan struct{} // closed to stop the writer at once
	killOnce  sync.Once
	initiated atomic.Bool // we asked for the graceful close (goodbye)

	// Pull mode (Config.Pull): the application reads with Recv.
	fr        *FrameReader
	recvMu    sync.Mutex
	recvErr   error
	receiving atomic.Bool
	pullEnd   chan error

	reasonMu sync.Mutex
	reason   error
	done     chan struct{}
}

// newSession makes a session on conn. srv is the server that accepted it,
// nil on a client: a server session starts unidentified. rl limits the
// warnings a peer can trigger; nil makes one for this session alone.
func newSession(conn net.Conn, cfg *Config, log hclog.Logger, srv *Server, rl *ratelog.Logger) *Session {
	ctx, cancel := context.WithCancel(context.Background())
	if rl == nil {
		rl = ratelog.New(log, cfg.LogInterval)
	}
	s := &Session{
		id:     sessionIDs.Add(1),
		conn:   conn,
		cfg:    cfg,
		rl:     rl,
		srv:    srv,
		ctx:    ctx,
		cancel: cancel,
		wake:   make(chan struct{}, 1),
		drain:  make(chan struct{}),
		kill:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if srv == nil {
		s.identified.Store(true)
		s.maxIn.Store(int64(cfg.MaxFrameSize))
	} else {
		s.maxIn.Store(int64(cfg.unidentifiedMax()))
	}
	if cfg.Pull {
		s.fr = NewFrameReader(conn, cfg.MaxFrameSize, cfg.ReadBufferSize)
		s.fr.lim = &s.maxIn
		s.pullEnd = make(chan error, 1)
	}
	if tc, ok := conn.(*tls.Conn); ok {
		if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
			s.peerID = certs[0].Subject.String()
			s.peerCert = certs[0]
		}
	}
	s.log = log.With("peer", conn.RemoteAddr().String(), "session", s.id)
	if s.raw = rawConnOf(conn); s.raw != nil {
		s.directFn = s.directWriteFD
	}
	if s.tlsRaw = tlsRawConnOf(conn); s.tlsRaw != nil {
		if s.sndBuf = sendBufSize(s.tlsRaw); s.sndBuf == 0 {
			s.tlsRaw = nil
		}
		s.outqFn = s.readOutq
	}
	return s
}

// ID is unique among the sessions of this process.
func (s *Session) ID() uint64 { return s.id }

// RemoteAddr is the peer's address.
func (s *Session) RemoteAddr() net.Addr { return s.conn.RemoteAddr() }

// LocalAddr is our end's address.
func (s *Session) LocalAddr() net.Addr { return s.conn.LocalAddr() }

// PeerIdentity is the subject of the peer's TLS certificate, or "" without
// (mutual) TLS.
func (s *Session) PeerIdentity() string { return s.peerID }

// PeerCertificate is the leaf certificate the peer presented in the TLS
// handshake (verified by it), or nil without (mutual) TLS.
func (s *Session) PeerCertificate() *x509.Certificate { return s.peerCert }

// SetIdentified marks the session identified: the application knows who
// the peer is (its first message named a configured peer, say). From the
// next frame on, the peer may send payloads up to Config.MaxFrameSize
// instead of Config.MaxFrameSizeUnidentified, and Config.IdentifyTimeout
// no longer applies. Client sessions are identified from the start. Safe
// for concurrent use; later calls do nothing.
func (s *Session) SetIdentified() {
	s.maxIn.Store(int64(s.cfg.MaxFrameSize))
	s.identified.Store(true)
}

// Identified reports whether the session is identified (see
// SetIdentified); always true on a client session.
func (s *Session) Identified() bool { return s.identified.Load() }

// SetCookie attaches an application value to the session.
func (s *Session) SetCookie(v any) {
	s.cookieMu.Lock()
	s.cookie = v
	s.cookieMu.Unlock()
}

// Cookie returns the value given to SetCookie, or nil.
func (s *Session) Cookie() any {
	s.cookieMu.Lock()
	defer s.cookieMu.Unlock()
	return s.cookie
}

// Context is cancelled when the session ends.
func (s *Session) Context() context.Context { return s.ctx }

// Done is closed when the session has ended and its final event was
// delivered.
func (s *Session) Done() <-chan struct{} { return s.done }

// Closing reports whether the session takes no more frames: it is
// ending or has ended, and its end is (or will be) reported by its final
// event. A Send that fails on a closing session fails with its end
// reason.
func (s *Session) Closing() bool {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return s.qclosed
}

// Err is why the session ended; nil while it runs.
func (s *Session) Err() error {
	select {
	case <-s.done:
		return s.endReason()
	default:
		return nil
	}
}

// SessionStats are a session's counters.
type SessionStats struct {
	FramesIn, BytesIn   uint64
	FramesOut, BytesOut uint64
	// QueueFull counts frames refused with ErrQueueFull.
	QueueFull uint64
	// Queued is the number of frames waiting to be written.
	Queued int
}

// Stats returns the session's counters; bytes include headers.
func (s *Session) Stats() SessionStats {
	s.qmu.Lock()
	q := s.qframes
	s.qmu.Unlock()
	return SessionStats{
		FramesIn: s.framesIn.Load(), BytesIn: s.bytesIn.Load(),
		FramesOut: s.framesOut.Load(), BytesOut: s.bytesOut.Load(),
		QueueFull: s.queueFull.Load(), Queued: q,
	}
}

// Send queues a frame of type t with a copy of payload. It does not wait
// for the write. It fails with ErrQueueFull when the peer is too far
// behind, and with the session's end reason once it is closing.
func (s *Session) Send(t MsgType, payload []byte) error {
	if err := s.checkSend(t, len(payload)); err != nil {
		return err
	}
	s.qmu.Lock()
	if err := s.admit(len(payload)); err != nil {
		s.qmu.Unlock()
		return err
	}
	wasEmpty := len(s.qbuf) == 0
	s.qbuf = AppendFrame(s.qbuf, t, payload)
	wake := s.queued(wasEmpty)
	s.qmu.Unlock()
	if wake {
		s.signal()
	}
	return nil
}

// SendProto queues a frame of type t carrying m in protobuf encoding,
// marshalled straight into the send queue.
func (s *Session) SendProto(t MsgType, m proto.Message) error {
	size := proto.Size(m)
	if err := s.checkSend(t, size); err != nil {
		return err
	}
	s.qmu.Lock()
	if err := s.admit(size); err != nil {
		s.qmu.Unlock()
		return err
	}
	wasEmpty := len(s.qbuf) == 0
	start := len(s.qbuf)
	s.qbuf = AppendHeader(s.qbuf, Header{Version: Version, Type: t, Length: uint32(size)})
	out, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(s.qbuf, m)
	if err != nil || len(out)-start-HeaderSize != size {
		s.qbuf = s.qbuf[:start]
		s.qmu.Unlock()
		if err == nil {
			err = errors.New("message changed while being sent")
		}
		return fmt.Errorf("pconn: marshal %T: %w", m, err)
	}
	s.qbuf = out
	wake := s.queued(wasEmpty)
	s.qmu.Unlock()
	if wake {
		s.signal()
	}
	return nil
}

// MaxRecordFrame bounds the frames SendRecord grows: records queued
// back to back share a frame up to this payload size. It stays within
// the smallest MaxFrameSizeUnidentified a peer is likely to apply before
// it has processed the sender's identification.
const MaxRecordFrame = 4 << 10

// SendRecord queues rec as the next record of a frame of type t, for
// frame types whose payload is a sequence of records (the encoding of a
// repeated protobuf field, say): while the last frame queued is of type
// t, has not been written (even in part) and stays within
// MaxRecordFrame, rec is appended to it; otherwise it starts a new
// frame. A stream of small messages thus costs one frame per batch, a
// quiet session still one write per message. It fails like Send.
func (s *Session) SendRecord(t MsgType, rec []byte) error {
	return s.SendRecordFrom(t, len(rec), bytesRecord(rec))
}

// RecordWriter writes a record straight into a session's send queue
// (SendRecordFrom).
type RecordWriter interface {
	// AppendRecord appends the record, of exactly the size announced,
	// to dst and returns it. It runs with the queue locked: it must not
	// block or call the session.
	AppendRecord(dst []byte) []byte
}

type bytesRecord []byte

func (b bytesRecord) AppendRecord(dst []byte) []byte { return append(dst, b...) }

// SendRecordFrom is SendRecord for a record of n bytes that w writes
// into the send queue itself, with no copy in between. A w that
// appends another number of bytes is a programming error: the frame is
// dropped and the error returned.
func (s *Session) SendRecordFrom(t MsgType, n int, w RecordWriter) error {
	if err := s.checkSend(t, n); err != nil {
		return err
	}
	s.qmu.Lock()
	if s.tailSet && s.tailType == t && s.tailGen == s.qgen && s.tailEnd == len(s.qbuf) &&
		s.tailEnd-s.tail-HeaderSize+n <= MaxRecordFrame {
		if s.qclosed || len(s.qbuf)+n > s.cfg.SendQueueBytes {
			err := s.admit(s.cfg.SendQueueBytes) // the reason: closed, or full
			s.qmu.Unlock()
			return err
		}
		if err := s.appendRecord(n, w); err != nil {
			s.qmu.Unlock()
			return err
		}
		s.tailEnd = len(s.qbuf)
		binary.BigEndian.PutUint32(s.qbuf[s.tail+4:s.tail+8], uint32(s.tailEnd-s.tail-HeaderSize))
		s.qmu.Unlock()
		return nil // the frame is queued: the writer is due already
	}
	if err := s.admit(n); err != nil {
		s.qmu.Unlock()
		return err
	}
	wasEmpty := len(s.qbuf) == 0
	start := len(s.qbuf)
	s.qbuf = AppendHeader(s.qbuf, Header{Version: Version, Type: t, Length: uint32(n)})
	if err := s.appendRecord(n, w); err != nil {
		s.qbuf = s.qbuf[:start]
		s.qmu.Unlock()
		return err
	}
	s.tail, s.tailEnd, s.tailType, s.tailGen, s.tailSet = start, len(s.qbuf), t, s.qgen, true
	// queued may write the frame at once: qgen then moves on, and the
	// next record starts a frame of its own.
	wake := s.queued(wasEmpty)
	s.qmu.Unlock()
	if wake {
		s.signal()
	}
	return nil
}

// appendRecord has w append its n bytes to the queue; qmu is held.
func (s *Session) appendRecord(n int, w RecordWriter) error {
	before := len(s.qbuf)
	out := w.AppendRecord(s.qbuf)
	if len(out)-before != n {
		return fmt.Errorf("pconn: a record announced as %d bytes wrote %d", n, len(out)-before)
	}
	s.qbuf = out
	return nil
}

// lightBatches is how many small batches in a row let the writer give
// back a large spare buffer.
const lightBatches = 16

// directQuiet is how long before a Send that finds the queue idle another
// one must have found it idle for the Send to write directly: longer than
// the gap between back-to-back Sends (a stream, better written in
// batches), shorter than a round trip.
const directQuiet = 5 * time.Microsecond

// epoch is the origin of monoSince.
var epoch = time.Now()

// monoSince is a cheap monotonic clock reading.
func monoSince() time.Duration { return time.Since(epoch) }

// queued accounts for the application frame just appended to the queue,
// which was empty before if wasEmpty; qmu is held. It writes the frame
// directly when it can, and reports whether the writer must be woken.
func (s *Session) queued(wasEmpty bool) bool {
	s.qframes++
	if (s.raw == nil && s.tlsRaw == nil) || !wasEmpty || s.writing {
		return wasEmpty
	}
	// The clock is read only here: a Send that finds frames queued is part
	// of a burst anyway.
	now := monoSince()
	quiet := now-s.lastSend >= directQuiet
	s.lastSend = now
	if !quiet {
		return true
	}
	if s.tlsRaw != nil {
		return !s.writeDirectTLS()
	}
	return !s.writeDirect()
}

// maxDirectTLS is the largest queue a direct TLS write takes: a few
// records, well within any socket's send buffer.
const maxDirectTLS = 16 << 10

// tlsOverhead bounds what TLS adds to the bytes written directly (record
// headers and AEAD tags, a record per 16 KiB).
const tlsOverhead = 256

// writeDirectTLS writes the whole queue through TLS on the caller's
// goroutine when the socket's send buffer has room for it, so that the
// write cannot block (qmu is held and no batch is being written). It
// reports whether everything was written; otherwise the queue is left as
// it was, for the writer. A TLS write that fails leaves the connection
// broken: the writer then fails too, and reports it.
func (s *Session) writeDirectTLS() bool {
	n := len(s.qbuf)
	if n > maxDirectTLS {
		return false
	}
	// Room in the socket's send buffer for all of it: the write cannot
	// block.
	if err := s.tlsRaw.Control(s.outqFn); err != nil || s.outq < 0 || s.sndBuf-s.outq < n+tlsOverhead {
		return false
	}
	// A TLS connection is broken for good by a write past its deadline:
	// make sure the one in force is far enough away (renewed when half of
	// WriteTimeout is gone, which spares a call per frame).
	if now := time.Now(); now.After(s.wdl.Add(-s.cfg.WriteTimeout / 2)) {
		s.wdl = now.Add(s.cfg.WriteTimeout)
		if err := s.conn.SetWriteDeadline(s.wdl); err != nil {
			return false
		}
	}
	if w, err := s.conn.Write(s.qbuf); err != nil || w != n {
		return false
	}
	s.bytesOut.Add(uint64(n))
	s.framesOut.Add(uint64(s.qframes))
	s.qbuf, s.qframes = s.qbuf[:0], 0
	s.qgen++
	return true
}

// writeDirect tries one non-blocking write of the whole queue; qmu is
// held and no batch is being written. It reports whether everything was
// written; what was not stays queued, in order, for the writer.
func (s *Session) writeDirect() bool {
	s.dbuf, s.dn = s.qbuf, 0
	if err := s.raw.Write(s.directFn); err != nil {
		s.dn = 0 // closed, or past a write deadline: the writer reports it
	}
	s.dbuf = nil
	n := s.dn
	if n == 0 {
		return false
	}
	s.bytesOut.Add(uint64(n))
	s.qgen++
	if n == len(s.qbuf) {
		s.framesOut.Add(uint64(s.qframes))
		s.qbuf, s.qframes = s.qbuf[:0], 0
		return true
	}
	// A partial write: the rest of the frame goes first, via the writer.
	s.qbuf = s.qbuf[:copy(s.qbuf, s.qbuf[n:])]
	return false
}

func (s *Session) checkSend(t MsgType, n int) error {
	if t == 0 || t > MaxUserType {
		return fmt.Errorf("pconn: send: %w %d (use 1..%d)", ErrBadType, uint16(t), uint16(MaxUserType))
	}
	if n > s.cfg.MaxFrameSize {
		return fmt.Errorf("pconn: send: %w: %d bytes, maximum is %d", ErrFrameTooLarge, n, s.cfg.MaxFrameSize)
	}
	return nil
}

// admit checks the queue bounds; qmu is held.
func (s *Session) admit(n int) error {
	if s.qclosed {
		if r := s.endReason(); r != nil {
			return r
		}
		return ErrClosed
	}
	if s.qframes >= s.cfg.SendQueueFrames || len(s.qbuf)+HeaderSize+n > s.cfg.SendQueueBytes {
		s.queueFull.Add(1)
		return ErrQueueFull // no allocation: a sender may retry in a loop; Stats has the counts
	}
	return nil
}

// sendControl queues a control frame regardless of the bounds.
func (s *Session) sendControl(t MsgType, payload []byte) {
	s.qmu.Lock()
	if s.qclosed {
		s.qmu.Unlock()
		return
	}
	wasEmpty := len(s.qbuf) == 0
	s.qbuf = AppendFrame(s.qbuf, t, payload)
	s.qframes++
	s.qmu.Unlock()
	if wasEmpty {
		s.signal()
	}
}

func (s *Session) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Close ends the session gracefully: frames already queued are written,
// then a goodbye, and the peer is given Config.LingerTimeout to close its
// side. It does not wait; use Done for that. Frames sent after Close fail.
func (s *Session) Close() error {
	s.initiated.Store(true)
	s.startDrain()
	return nil
}

func (s *Session) startDrain() { s.drainOnce.Do(func() { close(s.drain) }) }

// abort ends the session at once with reason err.
func (s *Session) abort(err error) {
	s.setReason(err)
	s.killOnce.Do(func() { close(s.kill) })
	_ = s.conn.Close()
}

func (s *Session) setReason(err error) {
	s.reasonMu.Lock()
	if s.reason == nil {
		s.reason = err
	}
	s.reasonMu.Unlock()
}

func (s *Session) endReason() error {
	s.reasonMu.Lock()
	defer s.reasonMu.Unlock()
	return s.reason
}

func (s *Session) event(t EventType, err error) {
	if s.cfg.EventHandler != nil {
		s.cfg.EventHandler.HandleEvent(Event{Type: t, Session: s, Addr: s.conn.RemoteAddr(), Err: err})
	}
}

// run drives the session until it ends, then delivers the final event.
// It is called on the goroutine of the Server or Client that owns the
// session.
func (s *Session) run() {
	s.log.Debug("session established", "local", s.conn.LocalAddr().String(), "identity", s.peerID)
	s.event(EventEstablished, nil)

	werr := make(chan error, 1)
	go func() { werr <- s.writeLoop() }()

	var rerr error
	if s.cfg.Pull {
		// The application reads (Recv); the session ends when a Recv
		// fails, or when the writer ends (a graceful close by us, or a
		// failure that has already set the reason).
		select {
		case rerr = <-s.pullEnd:
		case err := <-werr:
			werr <- err // collected below
			rerr = net.ErrClosed
			if s.initiated.Load() {
				rerr = io.EOF
			}
		}
	} else {
		rerr = s.readLoop()
	}
	var perr *ProtocolError
	var herr *HandlerError
	switch {
	case s.initiated.Load() && s.endReason() == nil &&
		(errors.Is(rerr, io.EOF) || errors.Is(rerr, os.ErrDeadlineExceeded) || errors.Is(rerr, net.ErrClosed)):
		// Our goodbye went out and the peer closed, or the linger ran out.
		s.setReason(ErrClosed)
	case errors.Is(rerr, errGoodbye):
		s.setReason(ErrPeerClosed)
		s.startDrain() // write what is queued, then close
		s.waitWriter(werr, s.cfg.WriteTimeout)
	case errors.As(rerr, &perr), errors.As(rerr, &herr):
		// The peer sent something we cannot take: tell it why, then close.
		s.setReason(rerr)
		// One line per kind of error and logInterval: a flood of bad
		// connections must not flood the log (Server.Stats counts them).
		what, key := "protocol error", ""
		if herr != nil {
			what, key = "refused by the handler", fmt.Sprintf("handler/%d", uint16(herr.Type))
		} else {
			key = "protocol/" + perr.Err.Error()
			if s.srv != nil {
				s.srv.stats.protocolErrors.Add(1)
			}
		}
		s.rl.Warn(key, "closing session: "+what, "peer", s.conn.RemoteAddr().String(), "session", s.id, "error", rerr)
		s.sendControl(TypeError, []byte(rerr.Error()))
		s.startDrain()
		s.waitWriter(werr, s.cfg.LingerTimeout)
	case errors.Is(rerr, io.EOF):
		s.setReason(ErrPeerVanished)
	default:
		s.setReason(rerr)
	}
	s.abort(ErrClosed) // no-op reason if one was set; stops the writer
	if err := <-werr; err != nil {
		s.log.Debug("writer ended", "error", err)
	}
	s.qmu.Lock()
	s.qclosed = true
	s.qbuf = nil
	s.qmu.Unlock()
	s.cancel()

	reason := s.endReason()
	et := EventFailed
	if errors.Is(reason, ErrClosed) || errors.Is(reason, ErrPeerClosed) {
		et = EventShutdown
	}
	s.log.Debug("session ended", "event", et.String(), "reason", reason)
	s.event(et, reason)
	close(s.done)
}

// waitWriter waits up to d for the writer to finish its drain, putting
// its result back for run to collect.
func (s *Session) waitWriter(werr chan error, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-werr:
		werr <- err
	case <-t.C:
	}
}

func (s *Session) readLoop() error {
	fr := NewFrameReader(s.conn, s.cfg.MaxFrameSize, s.cfg.ReadBufferSize)
	fr.lim = &s.maxIn
	bh, _ := s.cfg.Handler.(BatchHandler)
	for {
		h, p, err := s.readFrame(fr)
		if err != nil {
			if bh != nil {
				bh.EndBatch(s)
			}
			return err
		}
		if err := s.cfg.Handler.ServeFrame(s, Message{Type: h.Type, Flags: h.Flags, Payload: p}); err != nil {
			if bh != nil {
				bh.EndBatch(s)
			}
			return &HandlerError{Type: h.Type, Err: err}
		}
		if bh != nil && !fr.appFrameBuffered() {
			bh.EndBatch(s)
		}
	}
}

// ReaderLocal is storage for the session's Handler, used only from the
// goroutine that serves its frames (ServeFrame, EndBatch): per-session
// state without a lock.
func (s *Session) ReaderLocal() *any { return &s.readerLocal }

// readFrame reads up to the next application frame, handling the control
// frames on the way.
func (s *Session) readFrame(fr *FrameReader) (Header, []byte, error) {
	for {
		h, p, err := fr.Next()
		if err != nil {
			return h, nil, err
		}
		s.framesIn.Add(1)
		s.bytesIn.Add(uint64(HeaderSize + len(p)))
		switch h.Type {
		case TypePing:
			s.sendControl(TypePong, nil)
			continue
		case TypePong:
			continue
		case TypeGoodbye:
			return h, nil, errGoodbye
		case TypeError:
			reason := string(p)
			if len(reason) > 512 {
				reason = reason[:512]
			}
			s.rl.Warn("peer-error", "peer reported a protocol error", "peer", s.conn.RemoteAddr().String(), "session", s.id, "reason", reason)
			return h, nil, &PeerError{Reason: reason}
		}
		return h, p, nil
	}
}

// Recv returns the next application frame of a session in pull mode
// (Config.Pull), read by the calling goroutine itself: a client that
// sends a request and waits for its answer pays for no hand-off between
// goroutines. The payload is valid until the next Recv. Calls are
// serialised. Once it returns an error, the session is ending and every
// later call returns an error too (ErrPeerClosed after a graceful close
// by the peer).
func (s *Session) Recv() (Message, error) {
	if !s.cfg.Pull {
		return Message{}, errors.New("pconn: Recv needs a session in pull mode (Config.Pull)")
	}
	s.recvMu.Lock()
	defer s.recvMu.Unlock()
	if s.recvErr != nil {
		return Message{}, s.recvErr
	}
	s.receiving.Store(true)
	h, p, err := s.readFrame(s.fr)
	s.receiving.Store(false)
	if err != nil {
		select {
		case s.pullEnd <- err: // run decides how the session ends
		default:
		}
		if errors.Is(err, errGoodbye) {
			err = ErrPeerClosed
		}
		s.recvErr = err
		return Message{}, err
	}
	return Message{Type: h.Type, Flags: h.Flags, Payload: p}, nil
}

// writeLoop owns writes to the connection: batches of queued frames,
// keepalive pings and the dead-peer check, and the graceful drain.
func (s *Session) writeLoop() error {
	tick := time.NewTicker(s.cfg.DeadTimeout / 5)
	defer tick.Stop()
	var identify <-chan time.Time // server sessions with an IdentifyTimeout
	if s.srv != nil && s.cfg.IdentifyTimeout > 0 && !s.identified.Load() {
		t := time.NewTimer(s.cfg.IdentifyTimeout)
		defer t.Stop()
		identify = t.C
	}
	var spare []byte
	light := 0 // batches in a row much smaller than spare's capacity
	lastIn, idle := s.framesIn.Load(), 0

	flush := func() error {
		for {
			s.qmu.Lock()
			s.writing = false
			if len(s.qbuf) == 0 {
				s.qmu.Unlock()
				return nil
			}
			buf, n := s.qbuf, s.qframes
			s.qbuf, s.qframes = spare[:0], 0
			s.qgen++
			s.writing = true // no direct write may overtake this batch
			s.qmu.Unlock()
			s.wdl = time.Now().Add(s.cfg.WriteTimeout)
			if err := s.conn.SetWriteDeadline(s.wdl); err != nil {
				return err
			}
			if _, err := s.conn.Write(buf); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					return fmt.Errorf("%w (%v, %d bytes pending)", ErrPeerNotReading, s.cfg.WriteTimeout, len(buf))
				}
				return err
			}
			s.framesOut.Add(uint64(n))
			s.bytesOut.Add(uint64(len(buf)))
			// Let a burst's large buffer go once the traffic stays light
			// for a while; a stream keeps its buffers, which it would
			// otherwise grow again, copy by copy, after every dip.
			if cap(buf) > 4*s.cfg.ReadBufferSize && len(buf) < s.cfg.ReadBufferSize {
				if light++; light >= lightBatches {
					buf, light = nil, 0
				}
			} else {
				light = 0
			}
			spare = buf
		}
	}
	fail := func(err error) error {
		s.abort(err)
		return err
	}

	for {
		select {
		case <-s.wake:
			if err := flush(); err != nil {
				return fail(err)
			}
		case <-tick.C:
			if in := s.framesIn.Load(); in != lastIn || (s.cfg.Pull && !s.receiving.Load()) {
				// In pull mode the peer is checked only while the
				// application waits for it in Recv.
				lastIn, idle = in, 0
				continue
			}
			idle++
			if idle >= 4 {
				s.rl.Warn("dead", "peer is dead: nothing received", "peer", s.conn.RemoteAddr().String(), "session", s.id, "dead_timeout", s.cfg.DeadTimeout)
				return fail(fmt.Errorf("%w (%v)", ErrDeadPeer, s.cfg.DeadTimeout))
			}
			s.sendControl(TypePing, nil)
			if err := flush(); err != nil {
				return fail(err)
			}
		case <-identify:
			identify = nil
			if s.identified.Load() {
				continue
			}
			s.srv.stats.identifyTimeouts.Add(1)
			err := fmt.Errorf("%w (%v)", ErrIdentifyTimeout, s.cfg.IdentifyTimeout)
			s.rl.Warn("identify-timeout", "closing session: peer not identified in time", "peer", s.conn.RemoteAddr().String(),
				"session", s.id, "identify_timeout", s.cfg.IdentifyTimeout)
			s.setReason(err)
			s.sendControl(TypeError, []byte(err.Error()))
			_ = flush() // tell the peer why, if it reads
			return fail(err)
		case <-s.drain:
			s.qmu.Lock()
			if s.initiated.Load() && !s.qclosed {
				s.qbuf = AppendFrame(s.qbuf, TypeGoodbye, nil)
				s.qframes++
			}
			s.qclosed = true // nothing may follow the goodbye
			s.qmu.Unlock()
			if err := flush(); err != nil {
				return fail(err)
			}
			if cw, ok := s.conn.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
			_ = s.conn.SetReadDeadline(time.Now().Add(s.cfg.LingerTimeout))
			return nil
		case <-s.kill:
			return nil
		}
	}
}
