package pconn

// Transport benchmarks: pconn against gRPC-Go bidirectional streaming and
// against a plain length-prefixed TCP echo, all on loopback, side by side:
//
//	go test -run '^$' -bench BenchmarkTransport -benchmem -count 3 ./pkg/pconn/
//
// Sub-benchmarks are named <workload>/<transport>. The transports ending
// in -mtls (-tls for raw TCP) are the same over TLS 1.3, mutual for pconn
// and gRPC, with the certificates and configurations of pkg/tlsconf
// (made once per process by pkg/pki). Metrics:
//
//	rt/s        round trips per second (ping-pong: one message in flight)
//	msgs/s      messages per second received by the server (one-way stream)
//	p50-us      median round trip, microseconds
//	p99-us      99th percentile round trip, microseconds
//	allocs/msg  heap allocations per message carried, both ends together
//	            (client and server run in this process): a ping-pong round
//	            trip carries two messages, a streamed message one.
//
// Every sub-benchmark run sets up its own server and client and closes
// them before it returns; BenchmarkTransport checks that no goroutine
// outlives it.
//
// BenchmarkConnect measures connection set-up, plaintext against mutual
// TLS with and without session resumption.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hellopics/hellopics/pkg/pki"
	"github.com/hellopics/hellopics/pkg/tlsconf"
	benchv1 "github.com/hellopics/hellopics/proto/hellopics/bench/v1"
)

// benchTransport is one transport under test: a ping-pong client and a
// one-way streaming client, each against its own fresh server.
type benchTransport struct {
	name string
	// pingPong starts an echo server and a client; rt does one round trip
	// of p and checks the answer's length.
	pingPong func(b *testing.B) (rt func(p []byte) error, stop func())
	// stream starts a counting server and a client; send sends one
	// message (as fast as the transport allows), wait blocks until the
	// server has received n messages.
	stream func(b *testing.B, n int) (send func(p []byte) error, wait func() error, stop func())
}

// The plaintext transports, each followed by its TLS variant, so that
// the two run side by side.
var benchTransports = []benchTransport{
	{"pconn", pconnPingPong(false), pconnStream(false)},
	{"pconn-mtls", pconnPingPong(true), pconnStream(true)},
	{"pconn-pull", pconnPullPingPong(false), pconnStream(false)},
	{"pconn-pull-mtls", pconnPullPingPong(true), pconnStream(true)},
	{"grpc", grpcPingPong(false), grpcStream(false)},
	{"grpc-mtls", grpcPingPong(true), grpcStream(true)},
	{"rawtcp", rawPingPong(false), rawStream(false)},
	{"rawtcp-tls", rawPingPong(true), rawStream(true)},
}

// benchCerts are the TLS configurations of the -mtls transports: a
// server with mgmt-a's certificate and a client with ctrl-pic0's, both
// from pkg/tlsconf as the daemons make them (TLS 1.3, a client
// certificate required, the peer's chain and SPIFFE identity verified;
// the client with a session cache). Made once per process.
var benchCerts struct {
	once           sync.Once
	server, client *tlsconf.Source
	err            error
}

// benchMTLS returns the server's and the client's configurations of the
// mutual TLS transports. The certificates are issued by pki.Deploy into a
// temporary directory, loaded, and the directory removed at once: a
// Source keeps what it read and reads the files again only when asked.
func benchMTLS(b *testing.B) (server, client *tls.Config) {
	b.Helper()
	c := &benchCerts
	c.once.Do(func() {
		dir, err := os.MkdirTemp("", "pconn-bench-pki-")
		if err != nil {
			c.err = err
			return
		}
		defer os.RemoveAll(dir)
		_, issued, err := pki.Deploy(dir, pki.Deployment{Mgmt: []string{"a"}, Pairs: []string{"pic0"}})
		if err != nil {
			c.err = err
			return
		}
		// Deploy returns mgmt-a, then ctrl-pic0 and data-pic0.
		ca := dir + "/" + pki.CACertFile
		if c.server, c.err = tlsconf.Load(tlsconf.Files{Cert: issued[0].Cert, Key: issued[0].Key, CA: ca}, nil); c.err != nil {
			return
		}
		c.client, c.err = tlsconf.Load(tlsconf.Files{Cert: issued[1].Cert, Key: issued[1].Key, CA: ca}, nil)
	})
	if c.err != nil {
		b.Fatalf("benchmark certificates: %v", c.err)
	}
	return c.server.ServerConfig(nil), c.client.ClientConfig(nil)
}

func BenchmarkTransport(b *testing.B) {
	defer checkBenchLeaks(b, runtime.NumGoroutine())
	for _, size := range []struct {
		name string
		n    int
	}{{"64B", 64}, {"4KiB", 4096}} {
		for _, tr := range benchTransports {
			b.Run("pingpong-"+size.name+"/"+tr.name, func(b *testing.B) {
				benchPingPong(b, tr, size.n)
			})
		}
	}
	for _, tr := range benchTransports {
		b.Run("stream-64B/"+tr.name, func(b *testing.B) {
			benchStream(b, tr, 64)
		})
	}
}

// checkBenchLeaks fails b if more goroutines than before run, once those
// that are ending have had time to (gRPC's goroutines take a moment to
// notice the close): nothing a sub-benchmark started may outlive it.
func checkBenchLeaks(b *testing.B, before int) {
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			b.Errorf("goroutine leak: %d before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkTransportPconnInHandler is pconn's 64-byte ping-pong driven
// from the client's handler, which sends the next request when the echo
// arrives, instead of a goroutine that waits for each answer. It is not
// one of the compared figures: it shows what the hand-off from the read
// loop to a waiting goroutine costs in BenchmarkTransport's pconn runs.
func BenchmarkTransportPconnInHandler(b *testing.B) {
	p := make([]byte, 64)
	// A run is n round trips; the handler records each one's duration in
	// lat and closes done after the last. The main goroutine sets them up
	// before the run's first Send, which orders them before the handler.
	var (
		lat  []time.Duration
		done chan struct{}
		i    int
		sent time.Time
	)
	s, stop := pconnPair(b, false,
		HandlerFunc(func(s *Session, m Message) error { return s.Send(m.Type, m.Payload) }),
		HandlerFunc(func(s *Session, m Message) error {
			lat[i] = time.Since(sent)
			if i++; i == len(lat) {
				close(done)
				return nil
			}
			sent = time.Now()
			return s.Send(1, p)
		}))
	defer stop()
	run := func(n int) {
		lat, done, i = make([]time.Duration, n), make(chan struct{}), 0
		sent = time.Now()
		if err := s.Send(1, p); err != nil {
			b.Fatal(err)
		}
		if err := waitChan(done)(); err != nil {
			b.Fatal(err)
		}
	}
	run(100) // warm up
	lat = make([]time.Duration, b.N)
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	done, i = make(chan struct{}), 0
	sent = time.Now()
	if err := s.Send(1, p); err != nil {
		b.Fatal(err)
	}
	if err := waitChan(done)(); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rt/s")
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-us")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Nanoseconds())/1e3, "p99-us")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(2*b.N), "allocs/msg")
}

// BenchmarkConnect measures a client's connection set-up: from
// Connect (dial, TLS handshake if any, session started) to the echo of a
// first 64-byte frame read back (pull mode), one fresh connection per
// iteration against one server. Sub-benchmarks:
//
//	plaintext     TCP only
//	mtls-full     mutual TLS 1.3, a full handshake every time (no client
//	              session cache)
//	mtls-resumed  mutual TLS 1.3 resuming the session of the previous
//	              connection (the client's ClientSessionCache, as
//	              tlsconf's ClientConfig has); every timed connection
//	              is checked to have resumed (ConnectionState.DidResume)
//
// Metrics: us/connect the mean set-up time, p50-us and p99-us its
// percentiles. The close of each connection is not counted: ns/op,
// which would include it, is reported as 0.
//
//	go test -run '^$' -bench BenchmarkConnect -count 3 ./pkg/pconn/
func BenchmarkConnect(b *testing.B) {
	defer checkBenchLeaks(b, runtime.NumGoroutine())
	for _, mode := range []string{"plaintext", "mtls-full", "mtls-resumed"} {
		b.Run(mode, func(b *testing.B) { benchConnect(b, mode) })
	}
}

func benchConnect(b *testing.B, mode string) {
	scfg := benchPconnConfig(HandlerFunc(func(s *Session, m Message) error { return s.Send(m.Type, m.Payload) }), nil)
	scfg.MaxSessionsPerHost = 0 // connections closed but not yet ended on the server side must not count
	ccfg := DefaultConfig(nil)
	ccfg.Pull = true
	var resumed, handshakes atomic.Int64
	if mode != "plaintext" {
		var cli *tls.Config
		scfg.TLS, cli = benchMTLS(b)
		cli = cli.Clone()
		switch mode {
		case "mtls-full":
			cli.ClientSessionCache = nil
		case "mtls-resumed":
			cli.ClientSessionCache = tls.NewLRUClientSessionCache(4) // this benchmark's own
		}
		verify := cli.VerifyConnection // runs on resumed handshakes too
		cli.VerifyConnection = func(cs tls.ConnectionState) error {
			handshakes.Add(1)
			if cs.DidResume {
				resumed.Add(1)
			}
			return verify(cs)
		}
		ccfg.TLS = cli
	}
	srv, err := Listen("127.0.0.1:0", scfg)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	addr := srv.Addr().String()
	p := make([]byte, 64)
	connect := func() time.Duration {
		t0 := time.Now()
		s, err := Connect(context.Background(), ccfg, addr)
		if err != nil {
			b.Fatal(err)
		}
		defer func() { s.Close(); <-s.Done() }()
		if err := s.Send(1, p); err != nil {
			b.Fatal(err)
		}
		m, err := s.Recv()
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		if len(m.Payload) != len(p) {
			b.Fatal("pconn: short echo")
		}
		return d
	}
	for range 10 { // warm up; the first primes the session cache
		connect()
	}
	resumed.Store(0)
	handshakes.Store(0)
	lat := make([]time.Duration, b.N)
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		lat[i] = connect()
		total += lat[i]
	}
	b.StopTimer()
	if mode == "mtls-resumed" && (resumed.Load() != int64(b.N) || handshakes.Load() != int64(b.N)) {
		b.Fatalf("%d of %d handshakes resumed; want all %d", resumed.Load(), handshakes.Load(), b.N)
	}
	if mode == "mtls-full" && resumed.Load() != 0 {
		b.Fatalf("%d of %d handshakes resumed; want none", resumed.Load(), handshakes.Load())
	}
	slices.Sort(lat)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N)/1e3, "us/connect")
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-us")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Nanoseconds())/1e3, "p99-us")
}

func benchPingPong(b *testing.B, tr benchTransport, size int) {
	rt, stop := tr.pingPong(b)
	defer stop()
	p := make([]byte, size)
	for i := range p {
		p[i] = byte(i)
	}
	// Warm up: buffers grown, connections and goroutines settled.
	for range 100 {
		if err := rt(p); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, b.N)
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		t0 := time.Now()
		if err := rt(p); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(t0)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rt/s")
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-us")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Nanoseconds())/1e3, "p99-us")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(2*b.N), "allocs/msg")
}

func benchStream(b *testing.B, tr benchTransport, size int) {
	const warm = 1000
	send, wait, stop := tr.stream(b, warm+b.N)
	defer stop()
	p := make([]byte, size)
	for range warm {
		if err := send(p); err != nil {
			b.Fatal(err)
		}
	}
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := send(p); err != nil {
			b.Fatal(err)
		}
	}
	if err := wait(); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N), "allocs/msg")
}

// benchWait bounds every wait of the benchmarks, so that a broken
// transport fails instead of hanging.
const benchWait = time.Minute

var errBenchTimeout = errors.New("benchmark: timed out waiting")

// ---- pconn ----

func benchPconnConfig(h Handler, ev EventHandler) Config {
	cfg := DefaultConfig(h)
	cfg.EventHandler = ev
	return cfg
}

// benchPconnConfigs are the server's and the client's configurations,
// with mutual TLS if mtls.
func benchPconnConfigs(b *testing.B, mtls bool, srvH, cliH Handler, cliEv EventHandler) (srv, cli Config) {
	srv, cli = benchPconnConfig(srvH, nil), benchPconnConfig(cliH, cliEv)
	if mtls {
		srv.TLS, cli.TLS = benchMTLS(b)
	}
	return srv, cli
}

// pconnPair starts a server with srvH and a client with cliH (with mutual
// TLS if mtls), and returns the client's session once established.
func pconnPair(b *testing.B, mtls bool, srvH, cliH Handler) (*Session, func()) {
	est := make(chan *Session, 1)
	scfg, ccfg := benchPconnConfigs(b, mtls, srvH, cliH, EventHandlerFunc(func(ev Event) {
		if ev.Type == EventEstablished {
			est <- ev.Session
		}
	}))
	srv, err := Listen("127.0.0.1:0", scfg)
	if err != nil {
		b.Fatal(err)
	}
	cli, err := Dial(ccfg, srv.Addr().String())
	if err != nil {
		srv.Close()
		b.Fatal(err)
	}
	stop := func() {
		cli.Close()
		srv.Close()
	}
	select {
	case s := <-est:
		return s, stop
	case <-time.After(benchWait):
		stop()
		b.Fatal("pconn: no session")
		return nil, nil
	}
}

func pconnPingPong(mtls bool) func(b *testing.B) (func([]byte) error, func()) {
	return func(b *testing.B) (func([]byte) error, func()) {
		return pconnPingPongOn(b, mtls)
	}
}

func pconnPingPongOn(b *testing.B, mtls bool) (func([]byte) error, func()) {
	got := make(chan int, 1)
	s, stop := pconnPair(b, mtls,
		HandlerFunc(func(s *Session, m Message) error { return s.Send(m.Type, m.Payload) }),
		HandlerFunc(func(_ *Session, m Message) error { got <- len(m.Payload); return nil }))
	rt := func(p []byte) error {
		if err := s.Send(1, p); err != nil {
			return err
		}
		if n := <-got; n != len(p) {
			return errors.New("pconn: short echo")
		}
		return nil
	}
	return rt, stop
}

// pconnPullPingPong is the same ping-pong with the client session in pull
// mode: the goroutine that waits for the answer reads it (Session.Recv),
// as the raw TCP client does. (Its stream figure is pconn's, the sender
// side being the same.)
func pconnPullPingPong(mtls bool) func(b *testing.B) (func([]byte) error, func()) {
	return func(b *testing.B) (func([]byte) error, func()) {
		return pconnPullPingPongOn(b, mtls)
	}
}

func pconnPullPingPongOn(b *testing.B, mtls bool) (func([]byte) error, func()) {
	scfg, cfg := benchPconnConfigs(b, mtls,
		HandlerFunc(func(s *Session, m Message) error { return s.Send(m.Type, m.Payload) }), nil, nil)
	srv, err := Listen("127.0.0.1:0", scfg)
	if err != nil {
		b.Fatal(err)
	}
	cfg.Pull = true
	s, err := Connect(context.Background(), cfg, srv.Addr().String())
	if err != nil {
		srv.Close()
		b.Fatal(err)
	}
	rt := func(p []byte) error {
		if err := s.Send(1, p); err != nil {
			return err
		}
		m, err := s.Recv()
		if err != nil {
			return err
		}
		if len(m.Payload) != len(p) {
			return errors.New("pconn: short echo")
		}
		return nil
	}
	stop := func() {
		s.Close()
		<-s.Done()
		srv.Close()
	}
	return rt, stop
}

func pconnStream(mtls bool) func(b *testing.B, n int) (func([]byte) error, func() error, func()) {
	return func(b *testing.B, n int) (func([]byte) error, func() error, func()) {
		return pconnStreamOn(b, mtls, n)
	}
}

func pconnStreamOn(b *testing.B, mtls bool, n int) (func([]byte) error, func() error, func()) {
	done := make(chan struct{})
	count := 0 // only the server session's read loop touches it
	s, stop := pconnPair(b, mtls,
		HandlerFunc(func(_ *Session, _ Message) error {
			if count++; count == n {
				close(done)
			}
			return nil
		}),
		HandlerFunc(func(*Session, Message) error { return nil }))
	send := func(p []byte) error {
		for {
			err := s.Send(1, p)
			if !errors.Is(err, ErrQueueFull) {
				return err
			}
			runtime.Gosched() // the writer is behind: let it run
		}
	}
	return send, waitChan(done), stop
}

func waitChan(done chan struct{}) func() error {
	return func() error {
		select {
		case <-done:
			return nil
		case <-time.After(benchWait):
			return errBenchTimeout
		}
	}
}

// ---- gRPC ----

type grpcEcho struct {
	benchv1.UnimplementedEchoServiceServer
	count int           // stream mode: messages to receive, then close done
	done  chan struct{} // nil in echo mode
}

func (e *grpcEcho) Echo(st grpc.BidiStreamingServer[benchv1.EchoRequest, benchv1.EchoResponse]) error {
	var resp benchv1.EchoResponse
	n := 0
	for {
		req, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if e.done != nil {
			if n++; n == e.count {
				close(e.done)
			}
			continue
		}
		resp.Payload = req.Payload
		if err := st.Send(&resp); err != nil {
			return err
		}
	}
}

// grpcPair starts an echo server and a client stream, with mutual TLS
// (credentials.NewTLS on both ends, with the configurations of the pconn
// transports) if mtls.
func grpcPair(b *testing.B, mtls bool, svc *grpcEcho) (grpc.BidiStreamingClient[benchv1.EchoRequest, benchv1.EchoResponse], func()) {
	srvCreds, cliCreds := insecure.NewCredentials(), insecure.NewCredentials()
	if mtls {
		s, c := benchMTLS(b)
		srvCreds, cliCreds = credentials.NewTLS(s), credentials.NewTLS(c)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(srvCreds))
	benchv1.RegisterEchoServiceServer(srv, svc)
	served := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(served) }()
	cc, err := grpc.NewClient("passthrough:///"+ln.Addr().String(),
		grpc.WithTransportCredentials(cliCreds))
	if err != nil {
		srv.Stop()
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop := func() {
		cancel()
		cc.Close()
		srv.Stop()
		<-served
	}
	st, err := benchv1.NewEchoServiceClient(cc).Echo(ctx)
	if err != nil {
		stop()
		b.Fatal(err)
	}
	return st, stop
}

func grpcPingPong(mtls bool) func(b *testing.B) (func([]byte) error, func()) {
	return func(b *testing.B) (func([]byte) error, func()) {
		return grpcPingPongOn(b, mtls)
	}
}

func grpcPingPongOn(b *testing.B, mtls bool) (func([]byte) error, func()) {
	st, stop := grpcPair(b, mtls, &grpcEcho{})
	var req benchv1.EchoRequest
	rt := func(p []byte) error {
		req.Payload = p
		if err := st.Send(&req); err != nil {
			return err
		}
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		if len(resp.Payload) != len(p) {
			return errors.New("grpc: short echo")
		}
		return nil
	}
	return rt, stop
}

func grpcStream(mtls bool) func(b *testing.B, n int) (func([]byte) error, func() error, func()) {
	return func(b *testing.B, n int) (func([]byte) error, func() error, func()) {
		return grpcStreamOn(b, mtls, n)
	}
}

func grpcStreamOn(b *testing.B, mtls bool, n int) (func([]byte) error, func() error, func()) {
	done := make(chan struct{})
	st, stop := grpcPair(b, mtls, &grpcEcho{count: n, done: done})
	var req benchv1.EchoRequest
	send := func(p []byte) error {
		req.Payload = p
		return st.Send(&req)
	}
	return send, waitChan(done), stop
}

// ---- raw TCP: 4-byte big-endian length prefix, then the payload ----

const rawBufSize = 64 << 10

// rawServer accepts connections and runs serve on each, one goroutine per
// connection, over TLS with tlsCfg if not nil; stop closes the listener
// and every connection and waits.
func rawServer(b *testing.B, tlsCfg *tls.Config, serve func(c net.Conn)) (addr string, stop func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				if tlsCfg != nil {
					serve(tls.Server(c, tlsCfg)) // the handshake on the first read
					return
				}
				serve(c)
			})
		}
	})
	return ln.Addr().String(), func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
}

// rawEcho reads a message, writes it back, and flushes when no further
// request is already buffered.
func rawEcho(c net.Conn) {
	br := bufio.NewReaderSize(c, rawBufSize)
	bw := bufio.NewWriterSize(c, rawBufSize)
	var hdr [4]byte
	buf := make([]byte, 0, 4096)
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[:]))
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(br, buf); err != nil {
			return
		}
		bw.Write(hdr[:])
		bw.Write(buf)
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return
			}
		}
	}
}

type rawClient struct {
	c   net.Conn
	br  *bufio.Reader
	bw  *bufio.Writer
	hdr [4]byte
	buf []byte
}

// dialRaw connects to addr, over TLS with tlsCfg if not nil (the
// handshake done here).
func dialRaw(b *testing.B, addr string, tlsCfg *tls.Config) *rawClient {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	if tlsCfg != nil {
		cfg := tlsCfg.Clone()
		cfg.ServerName = "127.0.0.1"
		tc := tls.Client(c, cfg)
		if err := tc.Handshake(); err != nil {
			c.Close()
			b.Fatal(err)
		}
		c = tc
	}
	return &rawClient{c: c, br: bufio.NewReaderSize(c, rawBufSize), bw: bufio.NewWriterSize(c, rawBufSize), buf: make([]byte, 4096)}
}

func (r *rawClient) write(p []byte) error {
	binary.BigEndian.PutUint32(r.hdr[:], uint32(len(p)))
	r.bw.Write(r.hdr[:])
	_, err := r.bw.Write(p)
	return err
}

// rawTLS returns the TLS configurations of the raw TCP transport: none,
// or pconn's mutual TLS ones.
func rawTLS(b *testing.B, on bool) (server, client *tls.Config) {
	if !on {
		return nil, nil
	}
	return benchMTLS(b)
}

func rawPingPong(withTLS bool) func(b *testing.B) (func([]byte) error, func()) {
	return func(b *testing.B) (func([]byte) error, func()) {
		return rawPingPongOn(b, withTLS)
	}
}

func rawPingPongOn(b *testing.B, withTLS bool) (func([]byte) error, func()) {
	scfg, ccfg := rawTLS(b, withTLS)
	addr, stopSrv := rawServer(b, scfg, rawEcho)
	r := dialRaw(b, addr, ccfg)
	rt := func(p []byte) error {
		if err := r.write(p); err != nil {
			return err
		}
		if err := r.bw.Flush(); err != nil {
			return err
		}
		if _, err := io.ReadFull(r.br, r.hdr[:]); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(r.hdr[:]))
		if cap(r.buf) < n {
			r.buf = make([]byte, n)
		}
		if _, err := io.ReadFull(r.br, r.buf[:n]); err != nil {
			return err
		}
		if n != len(p) {
			return errors.New("rawtcp: short echo")
		}
		return nil
	}
	return rt, func() { r.c.Close(); stopSrv() }
}

func rawStream(withTLS bool) func(b *testing.B, n int) (func([]byte) error, func() error, func()) {
	return func(b *testing.B, n int) (func([]byte) error, func() error, func()) {
		return rawStreamOn(b, withTLS, n)
	}
}

func rawStreamOn(b *testing.B, withTLS bool, n int) (func([]byte) error, func() error, func()) {
	done := make(chan struct{})
	scfg, ccfg := rawTLS(b, withTLS)
	addr, stopSrv := rawServer(b, scfg, func(c net.Conn) {
		br := bufio.NewReaderSize(c, rawBufSize)
		var hdr [4]byte
		buf := make([]byte, 4096)
		for count := 0; ; {
			if _, err := io.ReadFull(br, hdr[:]); err != nil {
				return
			}
			m := int(binary.BigEndian.Uint32(hdr[:]))
			if cap(buf) < m {
				buf = make([]byte, m)
			}
			if _, err := io.ReadFull(br, buf[:m]); err != nil {
				return
			}
			if count++; count == n {
				close(done)
			}
		}
	})
	r := dialRaw(b, addr, ccfg)
	wait := waitChan(done)
	// The client's bufio writer fills and writes on its own; the last,
	// partial buffer is flushed before waiting for the server.
	waitFlushed := func() error {
		if err := r.bw.Flush(); err != nil {
			return err
		}
		return wait()
	}
	return r.write, waitFlushed, func() { r.c.Close(); stopSrv() }
}
