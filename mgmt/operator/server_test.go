package operator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// wait bounds every wait for something to happen over the loopback
// connection; it is generous so that a loaded -race run does not flake.
const wait = 10 * time.Second

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := checkLeaks(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// checkLeaks fails when goroutines of grpc or of this package outlive the
// tests. Goroutines take a moment to exit after Close and Stop return, so
// it polls for a while.
func checkLeaks() error {
	deadline := time.Now().Add(wait)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "checkLeaks") || strings.Contains(g, "testing.(*M)") {
				continue
			}
			if strings.Contains(g, "google.golang.org/grpc") || strings.Contains(g, "hellopics/mgmt/operator") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("goroutines leaked:\n\n%s", strings.Join(leaked, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type fakeBackend struct {
	mu        sync.Mutex
	status    *hellopicsv1.GetStatusResponse
	statusErr error
	swResp    *hellopicsv1.SwitchoverResponse
	swErr     error
	targets   []string
}

func (f *fakeBackend) Status(ctx context.Context, _ *hellopicsv1.GetStatusRequest) (*hellopicsv1.GetStatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status, f.statusErr
}

func (f *fakeBackend) Switchover(ctx context.Context, target string) (*hellopicsv1.SwitchoverResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.targets = append(f.targets, target)
	return f.swResp, f.swErr
}

type harness struct {
	srv    *Server
	broker *Broker
	conn   *grpc.ClientConn
	client hellopicsv1.OperatorServiceClient
}

// start serves a Server on a loopback port with a client connected to it;
// both are stopped when the test ends.
func start(t *testing.T, b Backend) *harness {
	t.Helper()
	br := NewBroker(1024)
	srv := New(b, br, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(wait):
			t.Error("Serve did not return after Stop")
		}
		br.Close()
	})
	return &harness{srv: srv, broker: br, conn: conn, client: hellopicsv1.NewOperatorServiceClient(conn)}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

func sampleStatus() *hellopicsv1.GetStatusResponse {
	return &hellopicsv1.GetStatusResponse{
		Id:            "mgmt-1",
		Role:          hellopicsv1.MgmtRole_MGMT_ROLE_MASTER,
		Epoch:         7,
		MasterId:      "mgmt-1",
		ComponentAddr: "10.0.0.1:7300",
		Version:       "v1.0.0",
		SyncVersion:   42,
		Started:       timestamppb.New(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)),
		MgmtPeers:     []*hellopicsv1.MgmtPeerStatus{{Id: "mgmt-2", Addr: "10.0.0.2:7401", Alive: true, Priority: 100, Epoch: 7}},
		Pairs: []*hellopicsv1.PairStatus{{
			PairId:       "pic0",
			Ctrl:         &hellopicsv1.ComponentStatus{Role: hellopicsv1.Role_ROLE_CTRL, PairId: "pic0", Addr: "10.0.0.5:41000", State: hellopicsv1.ComponentState_COMPONENT_STATE_READY},
			CycleRunning: true,
			Counters:     &hellopicsv1.HelloCounters{Sent: 10, Received: 9, Missed: 1, LastSeq: 10, LastRtt: durationpb.New(1500 * time.Microsecond)},
			Relay:        &hellopicsv1.RelayStats{AgentReachable: true, Clients: 2, Counters: map[string]uint64{"x": 1}},
		}},
	}
}

func TestGetStatus(t *testing.T) {
	want := sampleStatus()
	h := start(t, &fakeBackend{status: want})
	got, err := h.client.GetStatus(ctxT(t), &hellopicsv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) {
		t.Errorf("GetStatus = %v\nwant %v", got, want)
	}
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		err  error
		code codes.Code
	}{
		{fmt.Errorf("%w: the master is mgmt-2", ErrNotMaster), codes.FailedPrecondition},
		{fmt.Errorf("electing: %w", ErrUnavailable), codes.Unavailable},
		{fmt.Errorf("%w %q", ErrUnknownTarget, "mgmt-9"), codes.NotFound},
		{fmt.Errorf("%w: mgmt-2 lags by 3", ErrTargetNotReady), codes.FailedPrecondition},
		{fmt.Errorf("waiting for mgmt-2: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{context.Canceled, codes.Canceled},
		{fmt.Errorf("wrapped: %w", status.Error(codes.Aborted, "raced")), codes.Aborted},
		{errors.New("disk on fire"), codes.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.code.String()+"/"+tt.err.Error(), func(t *testing.T) {
			if got := Code(tt.err); got != tt.code {
				t.Errorf("Code = %v, want %v", got, tt.code)
			}
			fb := &fakeBackend{statusErr: tt.err, swErr: tt.err}
			h := start(t, fb)
			ctx := ctxT(t)
			_, err := h.client.Switchover(ctx, &hellopicsv1.SwitchoverRequest{TargetId: "mgmt-2"})
			if st := status.Convert(err); st.Code() != tt.code || st.Message() != tt.err.Error() {
				t.Errorf("Switchover error = %v, want code %v message %q", err, tt.code, tt.err.Error())
			}
			_, err = h.client.GetStatus(ctx, &hellopicsv1.GetStatusRequest{})
			if got := status.Code(err); got != tt.code {
				t.Errorf("GetStatus code = %v, want %v (%v)", got, tt.code, err)
			}
		})
	}
}

func TestSwitchover(t *testing.T) {
	fb := &fakeBackend{swResp: &hellopicsv1.SwitchoverResponse{NewMasterId: "mgmt-2", Epoch: 8}}
	h := start(t, fb)
	got, err := h.client.Switchover(ctxT(t), &hellopicsv1.SwitchoverRequest{TargetId: "mgmt-2"})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetNewMasterId() != "mgmt-2" || got.GetEpoch() != 8 {
		t.Errorf("Switchover = %v", got)
	}
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if len(fb.targets) != 1 || fb.targets[0] != "mgmt-2" {
		t.Errorf("backend saw targets %q, want [mgmt-2]", fb.targets)
	}
}

func TestNilResults(t *testing.T) {
	h := start(t, &fakeBackend{})
	ctx := ctxT(t)
	if _, err := h.client.GetStatus(ctx, &hellopicsv1.GetStatusRequest{}); status.Code(err) != codes.Internal {
		t.Errorf("GetStatus with nil status: %v, want Internal", err)
	}
	if _, err := h.client.Switchover(ctx, &hellopicsv1.SwitchoverRequest{}); status.Code(err) != codes.Internal {
		t.Errorf("Switchover with nil result: %v, want Internal", err)
	}
}

func event(i int) *hellopicsv1.WatchEventsResponse {
	return &hellopicsv1.WatchEventsResponse{
		Time:    timestamppb.New(time.Unix(int64(1_800_000_000+i), 0)),
		Kind:    "hello_missed",
		PairId:  "pic0",
		Message: fmt.Sprintf("event %d", i),
		Epoch:   7,
	}
}

// watch opens a WatchEvents stream and waits until the server has
// subscribed it to the broker.
func watch(t *testing.T, ctx context.Context, h *harness) grpc.ServerStreamingClient[hellopicsv1.WatchEventsResponse] {
	t.Helper()
	st, err := h.client.WatchEvents(ctx, &hellopicsv1.WatchEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Header(); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestWatchEvents(t *testing.T) {
	h := start(t, &fakeBackend{})
	for i := range 3 {
		h.broker.Publish(event(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	st := watch(t, ctx, h)
	for i := 3; i < 10; i++ {
		h.broker.Publish(event(i))
	}
	for i := range 10 {
		ev, err := st.Recv()
		if err != nil {
			t.Fatalf("Recv %d: %v", i, err)
		}
		if !proto.Equal(ev, event(i)) {
			t.Fatalf("event %d = %v, want %v", i, ev, event(i))
		}
	}
	cancel()
	if _, err := st.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("Recv after cancel: %v, want Canceled", err)
	}
}

func TestWatchEventsSeveralClients(t *testing.T) {
	h := start(t, &fakeBackend{})
	ctx := ctxT(t)
	a, b := watch(t, ctx, h), watch(t, ctx, h)
	const n = 500
	for i := range n {
		h.broker.Publish(event(i))
	}
	for _, st := range []grpc.ServerStreamingClient[hellopicsv1.WatchEventsResponse]{a, b} {
		for i := range n {
			ev, err := st.Recv()
			if err != nil {
				t.Fatalf("Recv %d: %v", i, err)
			}
			if ev.GetMessage() != event(i).GetMessage() {
				t.Fatalf("event %d = %q, want %q", i, ev.GetMessage(), event(i).GetMessage())
			}
		}
	}
}

// A client that does not read fills its stream's flow-control window, then
// its subscriber buffer; it is then dropped with ResourceExhausted while
// Publish goes on unhindered.
func TestWatchSlowClientDropped(t *testing.T) {
	h := start(t, &fakeBackend{})
	ctx := ctxT(t)
	st := watch(t, ctx, h)
	big := strings.Repeat("x", 4096)
	published := make(chan struct{})
	go func() {
		defer close(published)
		// 40 MB, more than any flow-control window grpc grows to.
		for i := range 10000 {
			ev := event(i)
			ev.Message = big
			h.broker.Publish(ev)
		}
	}()
	select {
	case <-published:
	case <-time.After(wait):
		t.Fatal("Publish blocked on a slow client")
	}
	if got := h.broker.Stats().Dropped; got != 1 {
		t.Errorf("Dropped = %d, want 1", got)
	}
	var err error
	n := 0
	for err == nil {
		_, err = st.Recv()
		n++
	}
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("slow client ended with %v after %d events, want ResourceExhausted", err, n)
	}
	if n > 10000 {
		t.Errorf("slow client received %d events", n)
	}
}

func TestWatchEndsOnStop(t *testing.T) {
	for _, graceful := range []bool{false, true} {
		t.Run(fmt.Sprint("graceful=", graceful), func(t *testing.T) {
			h := start(t, &fakeBackend{})
			st := watch(t, ctxT(t), h)
			done := make(chan struct{})
			go func() {
				defer close(done)
				if graceful {
					h.srv.GracefulStop()
				} else {
					h.srv.Stop()
				}
			}()
			select {
			case <-done:
			case <-time.After(wait):
				t.Fatal("stop did not return")
			}
			if _, err := st.Recv(); status.Code(err) != codes.Unavailable {
				t.Errorf("Recv after stop: %v, want Unavailable", err)
			}
		})
	}
}

// A health Watch stream does not end on GracefulStop; GracePeriod bounds
// the wait.
func TestGracefulStopGracePeriod(t *testing.T) {
	h := start(t, &fakeBackend{})
	h.srv.GracePeriod = 50 * time.Millisecond
	hc := healthpb.NewHealthClient(h.conn)
	w, err := hc.Watch(ctxT(t), &healthpb.HealthCheckRequest{Service: ServiceName})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health Watch: %v, %v", r, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.srv.GracefulStop()
	}()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("GracefulStop did not return")
	}
}

func TestHealth(t *testing.T) {
	h := start(t, &fakeBackend{})
	hc := healthpb.NewHealthClient(h.conn)
	ctx := ctxT(t)
	check := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for _, svc := range []string{"", ServiceName} {
			r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
			if err != nil {
				t.Fatalf("Check(%q): %v", svc, err)
			}
			if r.GetStatus() != want {
				t.Errorf("Check(%q) = %v, want %v", svc, r.GetStatus(), want)
			}
		}
	}
	w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: ServiceName})
	if err != nil {
		t.Fatal(err)
	}
	next := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		r, err := w.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r.GetStatus() != want {
			t.Errorf("Watch = %v, want %v", r.GetStatus(), want)
		}
	}
	check(healthpb.HealthCheckResponse_NOT_SERVING)
	next(healthpb.HealthCheckResponse_NOT_SERVING)
	h.srv.SetServing(true)
	check(healthpb.HealthCheckResponse_SERVING)
	next(healthpb.HealthCheckResponse_SERVING)
	h.srv.SetServing(false)
	check(healthpb.HealthCheckResponse_NOT_SERVING)
	next(healthpb.HealthCheckResponse_NOT_SERVING)
	h.srv.SetServing(true)
	next(healthpb.HealthCheckResponse_SERVING)
	// Stop says NOT_SERVING (which may or may not reach the client before
	// the connection closes) and ends the stream.
	h.srv.Stop()
	for range 2 {
		r, err := w.Recv()
		if err != nil {
			return
		}
		if r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("health Watch after Stop = %v, want NOT_SERVING", r.GetStatus())
		}
	}
	t.Error("health Watch goes on after Stop")
}

func TestReflection(t *testing.T) {
	h := start(t, &fakeBackend{})
	rc := reflectionpb.NewServerReflectionClient(h.conn)
	st, err := rc.ServerReflectionInfo(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	r, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, s := range r.GetListServicesResponse().GetService() {
		got[s.GetName()] = true
	}
	for _, want := range []string{ServiceName, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"} {
		if !got[want] {
			t.Errorf("reflection lists %v, missing %s", got, want)
		}
	}
	// The service's descriptor resolves too, as grpcurl describe needs.
	if err := st.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: ServiceName}}); err != nil {
		t.Fatal(err)
	}
	r, err = st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Errorf("no descriptor for %s: %v", ServiceName, r)
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
}

func TestAddr(t *testing.T) {
	srv := New(&fakeBackend{}, NewBroker(0), nil)
	if srv.Addr() != nil {
		t.Errorf("Addr before Serve = %v", srv.Addr())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	// Serve records the listener before it accepts: a client that got an
	// answer proves Addr is set.
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := healthpb.NewHealthClient(conn).Check(ctxT(t), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if got := srv.Addr(); got == nil || got.String() != ln.Addr().String() {
		t.Errorf("Addr = %v, want %v", got, ln.Addr())
	}
	srv.GracefulStop()
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRPCLogged(t *testing.T) {
	var buf syncBuffer
	log := hclog.New(&hclog.LoggerOptions{Name: "mgmt", Level: hclog.Debug, Output: &buf})
	srv := New(&fakeBackend{statusErr: fmt.Errorf("%w: electing", ErrUnavailable)}, nil, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		srv.Stop()
		<-served
	}()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The interceptor logs before the answer is sent.
	if _, err := hellopicsv1.NewOperatorServiceClient(conn).GetStatus(ctxT(t), &hellopicsv1.GetStatusRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("GetStatus: %v", err)
	}
	out := buf.String()
	for _, want := range []string{"[DEBUG] mgmt.operator: rpc:", "method=/hellopics.v1.OperatorService/GetStatus", "code=Unavailable", "error=\"unavailable: electing\""} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// WatchEvents with since replays the kept events at or after it, beyond
// the last DefaultHistory, then streams; with history_only it ends, OK,
// after the history.
func TestWatchEventsSince(t *testing.T) {
	h := start(t, &fakeBackend{})
	const n = DefaultHistory + 200
	for i := range n {
		h.broker.Publish(event(i))
	}
	ctx := ctxT(t)
	from := 10 // older than the last DefaultHistory
	st, err := h.client.WatchEvents(ctx, &hellopicsv1.WatchEventsRequest{Since: event(from).GetTime()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Header(); err != nil {
		t.Fatal(err)
	}
	h.broker.Publish(event(n))
	for i := from; i <= n; i++ {
		ev, err := st.Recv()
		if err != nil {
			t.Fatalf("Recv %d: %v", i, err)
		}
		if ev.GetMessage() != event(i).GetMessage() {
			t.Fatalf("event = %q, want %q", ev.GetMessage(), event(i).GetMessage())
		}
	}

	for _, tc := range []struct {
		name string
		req  *hellopicsv1.WatchEventsRequest
		from int
	}{
		{"since", &hellopicsv1.WatchEventsRequest{Since: event(from).GetTime(), HistoryOnly: true}, from},
		{"no since", &hellopicsv1.WatchEventsRequest{HistoryOnly: true}, n + 1 - DefaultHistory},
		{"after the last", &hellopicsv1.WatchEventsRequest{Since: event(n + 1).GetTime(), HistoryOnly: true}, n + 1},
	} {
		st, err := h.client.WatchEvents(ctx, tc.req)
		if err != nil {
			t.Fatal(err)
		}
		i := tc.from
		for {
			ev, err := st.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: Recv: %v", tc.name, err)
			}
			if ev.GetMessage() != event(i).GetMessage() {
				t.Fatalf("%s: event = %q, want %q", tc.name, ev.GetMessage(), event(i).GetMessage())
			}
			i++
		}
		if i != n+1 {
			t.Errorf("%s: history ended after event %d, want %d", tc.name, i-1, n)
		}
	}

	bad, err := h.client.WatchEvents(ctx, &hellopicsv1.WatchEventsRequest{Since: &timestamppb.Timestamp{Seconds: 1, Nanos: -5}})
	if err == nil {
		_, err = bad.Recv()
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("malformed since: %v, want InvalidArgument", err)
	}
}
