package pconn

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Frame types of the tests below.
const (
	typeIdentify MsgType = 1 // the server marks the session identified
	typeData     MsgType = 2 // echoed
)

// identifying is a server Handler: typeIdentify marks the session
// identified, anything else is echoed.
var identifying = HandlerFunc(func(s *Session, m Message) error {
	if m.Type == typeIdentify {
		s.SetIdentified()
		return nil
	}
	return s.Send(m.Type, m.Payload)
})

// readErrorFrame reads frames from c until an error frame, and returns
// its reason.
func readErrorFrame(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	fr := NewFrameReader(c, 1<<20, 4096)
	for {
		h, p, err := fr.Next()
		if err != nil {
			t.Fatalf("no error frame: %v", err)
		}
		if h.Type == TypeError {
			return string(p)
		}
	}
}

// expectClosed waits for the server to close c.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("connection not closed by the server: %v", err)
	}
}

func TestUnidentifiedFrameLimit(t *testing.T) {
	checkNoLeaks(t)
	srvEv := newRecorder()
	cfg := DefaultConfig(identifying) // MaxFrameSizeUnidentified 4 KiB
	cfg.EventHandler = srvEv
	srv := listen(t, cfg)

	// Before identification: 4 KiB passes, 4 KiB + 1 is refused from the
	// header, the peer is told why and the session ends.
	c := rawConn(t, srv.Addr())
	if _, err := c.Write(AppendFrame(nil, typeData, make([]byte, 4096))); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(AppendHeader(nil, Header{Version: Version, Type: typeData, Length: 4097})); err != nil {
		t.Fatal(err)
	}
	reason := readErrorFrame(t, c)
	if !strings.Contains(reason, "frame too large") || !strings.Contains(reason, "maximum is 4096") {
		t.Fatalf("error frame %q", reason)
	}
	ev := srvEv.next(t, EventFailed)
	var perr *ProtocolError
	if !errors.As(ev.Err, &perr) || perr.Err != ErrFrameTooLarge || ev.Session.Identified() {
		t.Fatalf("server session ended with %v (identified %v), want ErrFrameTooLarge", ev.Err, ev.Session.Identified())
	}
	if st := srv.Stats(); st.ProtocolErrors != 1 {
		t.Fatalf("stats %+v, want 1 protocol error", st)
	}

	// After identification, MaxFrameSize applies.
	in := newInbox()
	cli := dial(t, testConfig(in, nil), srv.Addr().String())
	ev = srvEv.next(t, EventEstablished)
	if ev.Session.Identified() {
		t.Fatal("server session identified from the start")
	}
	waitSession(t, cli)
	if !cli.Session().Identified() {
		t.Fatal("client session not identified from the start")
	}
	if err := cli.Send(typeIdentify, []byte("me")); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{7}, 1<<20)
	if err := cli.Send(typeData, big); err != nil {
		t.Fatal(err)
	}
	if m := in.next(t); m.Type != typeData || !bytes.Equal(m.Payload, big) {
		t.Fatalf("echo: type %v, %d bytes", m.Type, len(m.Payload))
	}
	if !ev.Session.Identified() {
		t.Fatal("server session not identified")
	}
	cli.Close()
	shutdown(t, srv)
}

func TestSetIdentifiedFromAnotherGoroutine(t *testing.T) {
	// The application identifies the session from its own goroutine while
	// the read loop waits for the next header: the limit read for that
	// header is the new one.
	checkNoLeaks(t)
	srvEv := newRecorder()
	cfg := DefaultConfig(echo)
	cfg.EventHandler = srvEv
	srv := listen(t, cfg)
	in := newInbox()
	cli := dial(t, testConfig(in, nil), srv.Addr().String())
	ev := srvEv.next(t, EventEstablished)
	done := make(chan struct{})
	go func() { defer close(done); ev.Session.SetIdentified() }()
	<-done
	waitSession(t, cli)
	big := make([]byte, 100<<10)
	if err := cli.Send(typeData, big); err != nil {
		t.Fatal(err)
	}
	if m := in.next(t); len(m.Payload) != len(big) {
		t.Fatalf("echo of %d bytes", len(m.Payload))
	}
	cli.Close()
	shutdown(t, srv)
}

// waitSession waits until the client has a session.
func waitSession(t *testing.T, c *Client) *Session {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for c.Session() == nil {
		if time.Now().After(deadline) {
			t.Fatal("client not connected")
		}
		time.Sleep(time.Millisecond)
	}
	return c.Session()
}

func TestIdentifyTimeout(t *testing.T) {
	checkNoLeaks(t)
	srvEv := newRecorder()
	cfg := DefaultConfig(identifying)
	cfg.EventHandler = srvEv
	cfg.IdentifyTimeout = 100 * time.Millisecond
	cfg.DeadTimeout = time.Minute // only the identify timeout may close
	srv := listen(t, cfg)

	// A client that answers pings but never identifies.
	cliEv := newRecorder()
	ccfg := testConfig(newInbox(), cliEv)
	ccfg.DeadTimeout = time.Minute
	s, err := Connect(t.Context(), ccfg, srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ev := srvEv.next(t, EventFailed)
	if !errors.Is(ev.Err, ErrIdentifyTimeout) {
		t.Fatalf("server session ended with %v, want ErrIdentifyTimeout", ev.Err)
	}
	<-s.Done()
	var pe *PeerError
	if !errors.As(s.Err(), &pe) || !strings.Contains(pe.Reason, "not identified in time") {
		t.Fatalf("client session ended with %v, want the reason", s.Err())
	}

	// A raw connection that sends nothing at all.
	raw := rawConn(t, srv.Addr())
	if r := readErrorFrame(t, raw); !strings.Contains(r, "not identified in time") {
		t.Fatalf("error frame %q", r)
	}
	expectClosed(t, raw)
	srvEv.next(t, EventFailed)

	// An identified session outlives the timeout by far.
	good, err := Connect(t.Context(), ccfg, srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := good.Send(typeIdentify, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * cfg.IdentifyTimeout)
	if err := good.Err(); err != nil {
		t.Fatalf("identified session ended: %v", err)
	}
	if st := srv.Stats(); st.IdentifyTimeouts != 2 || st.Sessions != 1 {
		t.Fatalf("stats %+v, want 2 identify timeouts, 1 session", st)
	}
	good.Close()
	<-good.Done()
	shutdown(t, srv)
}

func TestIdentifyTimeoutOffByDefault(t *testing.T) {
	if DefaultConfig(nil).IdentifyTimeout != 0 {
		t.Fatal("IdentifyTimeout on by default")
	}
}

// dialFrom connects to addr from the local IP address ip.
func dialFrom(t *testing.T, ip string, addr net.Addr) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: waitFor}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestMaxSessionsPerHost(t *testing.T) {
	checkNoLeaks(t)
	srvEv := newRecorder()
	var logBuf syncBuffer
	cfg := DefaultConfig(echo)
	cfg.EventHandler = srvEv
	cfg.MaxSessionsPerHost = 3
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: &logBuf, Level: hclog.Warn})
	srv := listen(t, cfg)

	var held []net.Conn
	for range 3 {
		held = append(held, dialFrom(t, "127.0.0.1", srv.Addr()))
		srvEv.next(t, EventEstablished)
	}
	// The fourth and later ones from the same host are told why and closed.
	start := time.Now()
	const over = 50
	for range over {
		c := dialFrom(t, "127.0.0.1", srv.Addr())
		if r := readErrorFrame(t, c); r != ErrTooManyFromHost.Error() {
			t.Fatalf("error frame %q", r)
		}
		expectClosed(t, c)
	}
	elapsed := time.Since(start)
	// Another host is not affected (Linux routes all of 127/8 to lo).
	other := dialFrom(t, "127.0.0.2", srv.Addr())
	srvEv.next(t, EventEstablished)
	if _, err := other.Write(AppendFrame(nil, typeData, []byte("x"))); err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.RefusedPerHost != over || st.Sessions != 4 || st.Accepted != 3+over+1 {
		t.Fatalf("stats %+v, want %d refused per host, 4 sessions", st, over)
	}
	// The refusals were logged once, then counted: at most one line per
	// started interval.
	lines := strings.Count(logBuf.String(), "too many connections from this host")
	if maxLines := 1 + int(elapsed/logInterval); lines < 1 || lines > maxLines {
		t.Fatalf("%d log lines for %d refusals in %v, want 1..%d:\n%s", lines, over, elapsed, maxLines, logBuf.String())
	}

	// A host that closes one of its connections may connect again.
	held[0].Close()
	srvEv.next(t, EventFailed)
	deadline := time.Now().Add(waitFor)
	for srv.Stats().Sessions != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("session not gone: %+v", srv.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	dialFrom(t, "127.0.0.1", srv.Addr())
	srvEv.next(t, EventEstablished)
	if st := srv.Stats(); st.RefusedPerHost != over {
		t.Fatalf("stats %+v after a place was freed", st)
	}
	srv.Close()
}

func TestMaxSessionsPerHostZeroIsUnlimited(t *testing.T) {
	checkNoLeaks(t)
	srvEv := newRecorder()
	cfg := DefaultConfig(echo)
	cfg.EventHandler = srvEv
	cfg.MaxSessionsPerHost = 0
	cfg.MaxSessions = 100
	srv := listen(t, cfg)
	for range 100 {
		rawConn(t, srv.Addr())
		srvEv.next(t, EventEstablished)
	}
	c := rawConn(t, srv.Addr())
	if r := readErrorFrame(t, c); r != ErrServerFull.Error() {
		t.Fatalf("error frame %q", r)
	}
	if st := srv.Stats(); st.RefusedFull != 1 || st.RefusedPerHost != 0 {
		t.Fatalf("stats %+v", st)
	}
	srv.Close()
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// flakyListener fails its first n accepts with err, then accepts from ln.
type flakyListener struct {
	net.Listener
	mu     sync.Mutex
	n      int
	err    error
	failed chan struct{} // closed after the last failure
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.n > 0 {
		l.n--
		if l.n == 0 {
			close(l.failed)
		}
		l.mu.Unlock()
		return nil, l.err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

func TestAcceptErrorsCountedAndLogRateLimited(t *testing.T) {
	checkNoLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const fails = 7 // backoff 5, 10, ... 320 ms: about 0.6 s in all
	fl := &flakyListener{Listener: ln, n: fails, err: fmt.Errorf("accept: %w", os.NewSyscallError("accept4", errors.New("too many open files"))),
		failed: make(chan struct{})}
	var logBuf syncBuffer
	srvEv := newRecorder()
	cfg := DefaultConfig(echo)
	cfg.EventHandler = srvEv
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: &logBuf, Level: hclog.Warn})
	start := time.Now()
	srv, err := Serve(fl, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	<-fl.failed
	rawConn(t, srv.Addr()) // accepted once the failures are over
	srvEv.next(t, EventEstablished)
	elapsed := time.Since(start)
	if st := srv.Stats(); st.AcceptErrors != fails || st.Accepted != 1 {
		t.Fatalf("stats %+v, want %d accept errors", st, fails)
	}
	lines := strings.Count(logBuf.String(), "accept failed; retrying")
	if maxLines := 1 + int(elapsed/logInterval); lines < 1 || lines > maxLines {
		t.Fatalf("%d log lines for %d failed accepts in %v, want 1..%d:\n%s", lines, fails, elapsed, maxLines, logBuf.String())
	}
}

// rxQueued returns the bytes received and not yet read by the process on
// the established TCP sockets whose local port is port (Linux only).
func rxQueued(port int) (int, bool) {
	total, found := 0, false
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Scan() // header
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 5 || fs[3] != "01" {
				continue
			}
			local := fs[1]
			p, err := strconv.ParseUint(local[strings.LastIndexByte(local, ':')+1:], 16, 16)
			if err != nil || int(p) != port {
				continue
			}
			q := fs[4]
			rx, err := strconv.ParseUint(q[strings.IndexByte(q, ':')+1:], 16, 32)
			if err != nil {
				continue
			}
			total += int(rx)
			found = true
		}
	}
	return total, found
}

// TestStalledLargeFramesCostLittle: 1,000 connections each announce a
// 1 MiB frame (within MaxFrameSize, so not refused) and send nothing
// more. The server must not allocate the announced megabyte per session
// (1 GiB in all); buffers grow only as bytes arrive.
func TestStalledLargeFramesCostLittle(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 connections")
	}
	checkNoLeaks(t)
	const conns = 1000
	var established sync.WaitGroup
	established.Add(conns)
	cfg := DefaultConfig(echo)
	cfg.MaxFrameSizeUnidentified = 0 // 1 MiB announced frames pass the header check
	cfg.MaxSessionsPerHost = 0
	cfg.DeadTimeout = 10 * time.Minute // the sessions must stay for the measurement
	cfg.EventHandler = EventHandlerFunc(func(ev Event) {
		if ev.Type == EventEstablished {
			established.Done()
		}
	})
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	srv := listen(t, cfg)
	header := AppendHeader(nil, Header{Version: Version, Type: typeData, Length: 1 << 20})
	clients := make([]net.Conn, 0, conns)
	for range conns {
		c := rawConn(t, srv.Addr())
		clients = append(clients, c)
	}
	established.Wait()
	for _, c := range clients {
		if _, err := c.Write(header); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the server has read every header (Linux: nothing left
	// in the sockets' receive queues); elsewhere, give it a moment.
	port := srv.Addr().(*net.TCPAddr).Port
	deadline := time.Now().Add(waitFor)
	for {
		q, ok := rxQueued(port)
		if !ok {
			time.Sleep(time.Second)
			break
		}
		if q == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still unread by the server", q)
		}
		time.Sleep(10 * time.Millisecond)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("%d stalled sessions: heap in use grew by %.1f MiB (%.1f KiB per session); stacks in use %.1f MiB",
		conns, float64(growth)/(1<<20), float64(growth)/conns/1024, float64(after.StackInuse)/(1<<20))
	if growth > 64<<20 {
		t.Fatalf("heap in use grew by %d MiB for %d stalled 1 MiB frames, want < 64 MiB", growth>>20, conns)
	}
	srv.Close()
}

// TestAcceptFilter: a connection the filter refuses is closed before
// anything is read or written, counted, and frees its per-host slot; one
// it lets through is served.
func TestAcceptFilter(t *testing.T) {
	checkNoLeaks(t)
	srvEv := newRecorder()
	cfg := DefaultConfig(echo)
	cfg.EventHandler = srvEv
	cfg.MaxSessionsPerHost = 1
	cfg.AcceptFilter = func(a net.Addr) error {
		if strings.HasPrefix(a.String(), "127.0.0.2:") {
			return errors.New("not a peer")
		}
		return nil
	}
	srv := listen(t, cfg)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: waitFor}
	for range 3 {
		c, err := d.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(waitFor))
		if n, err := c.Read(make([]byte, 64)); n != 0 || err == nil {
			t.Fatalf("a filtered connection read %d bytes, %v; want a close and nothing", n, err)
		}
		c.Close()
	}
	rawConn(t, srv.Addr())
	srvEv.next(t, EventEstablished)
	if st := srv.Stats(); st.RefusedFilter != 3 || st.RefusedPerHost != 0 || st.Sessions != 1 {
		t.Fatalf("stats %+v", st)
	}
	srv.Close()
}
