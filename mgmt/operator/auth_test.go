package operator

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/hellopics/hellopics/internal/testpki"
	"github.com/hellopics/hellopics/pkg/identity"
	"github.com/hellopics/hellopics/pkg/tlsconf"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

const testTD = "hellopics.test"

// tlsHarness is a Server with TLS on a loopback port; its log is kept.
type tlsHarness struct {
	srv  *Server
	br   *Broker
	addr string
	ca   *testpki.CA
	log  *syncBuffer
}

// startTLS serves b over mutual TLS with a mgmt certificate of a new CA,
// as mgmt does (ServerConfig(nil): any identity of the trust domain, the
// RPCs authorised by the interceptors), or with cfg when given.
func startTLS(t *testing.T, b Backend, cfg func(*tlsconf.Source) *tls.Config, opts ...Option) *tlsHarness {
	t.Helper()
	ca := testpki.NewCA(t, testTD)
	src := ca.Source(t, ca.ID(t, identity.RoleMgmt, "mgmt-1"))
	sc := src.ServerConfig(nil)
	if cfg != nil {
		sc = cfg(src)
	}
	var buf syncBuffer
	log := hclog.New(&hclog.LoggerOptions{Name: "mgmt", Level: hclog.Debug, Output: &buf})
	br := NewBroker(16)
	srv := New(b, br, log, append([]Option{WithTLS(sc)}, opts...)...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		br.Close()
	})
	return &tlsHarness{srv: srv, br: br, addr: ln.Addr().String(), ca: ca, log: &buf}
}

// dial connects to the harness with client TLS configuration cfg (nil:
// plaintext); the connection is closed when the test ends.
func (h *tlsHarness) dial(t *testing.T, cfg *tls.Config) *grpc.ClientConn {
	t.Helper()
	creds := insecure.NewCredentials()
	if cfg != nil {
		creds = credentials.NewTLS(cfg)
	}
	cc, err := grpc.NewClient("passthrough:///"+h.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// as connects with a certificate of the harness's CA for role and name
// (for an operator, "read/NAME" or "admin/NAME"), checking that the
// server is a mgmt, as ctl does.
func (h *tlsHarness) as(t *testing.T, role identity.Role, name string) *grpc.ClientConn {
	t.Helper()
	src := h.ca.Source(t, h.ca.ID(t, role, name))
	return h.dial(t, src.ClientConfig(tlsconf.Roles(identity.RoleMgmt)))
}

func (h *tlsHarness) refused(t *testing.T, reason string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(h.srv.Collectors()...)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no hellopics_operator_refused_total{reason=%q}", reason)
	return 0
}

// reads calls every read-only RPC and returns their errors by name.
func reads(t *testing.T, cc *grpc.ClientConn) map[string]error {
	t.Helper()
	ctx := ctxT(t)
	errs := map[string]error{}
	_, errs["GetStatus"] = hellopicsv1.NewOperatorServiceClient(cc).GetStatus(ctx, &hellopicsv1.GetStatusRequest{})
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if st, err := hellopicsv1.NewOperatorServiceClient(cc).WatchEvents(wctx, &hellopicsv1.WatchEventsRequest{}); err != nil {
		errs["WatchEvents"] = err
	} else {
		_, errs["WatchEvents"] = st.Header()
		if errs["WatchEvents"] == nil {
			// A refusal comes as the stream's status, after the (empty)
			// headers.
			cancel()
			if _, err := st.Recv(); status.Code(err) != codes.Canceled {
				errs["WatchEvents"] = err
			}
		}
	}
	_, errs["Health"] = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: ServiceName})
	if rs, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctx); err != nil {
		errs["Reflection"] = err
	} else {
		err = rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
		// A stream the server has already ended (a refusal) makes Send
		// return io.EOF; the status is what Recv returns then.
		if err == nil || errors.Is(err, io.EOF) {
			_, err = rs.Recv()
		}
		errs["Reflection"] = err
		rs.CloseSend()
	}
	return errs
}

func TestTLSReadOnlyOperator(t *testing.T) {
	fb := &fakeBackend{status: sampleStatus()}
	h := startTLS(t, fb, nil)
	cc := h.as(t, identity.RoleOperator, "read/alice")
	for name, err := range reads(t, cc) {
		if err != nil {
			t.Errorf("%s as a read-only operator: %v", name, err)
		}
	}
	_, err := hellopicsv1.NewOperatorServiceClient(cc).Switchover(ctxT(t), &hellopicsv1.SwitchoverRequest{TargetId: "mgmt-2"})
	want := "spiffe://hellopics.test/operator/read/alice may not switch over: needs operator/admin"
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || st.Message() != want {
		t.Errorf("Switchover as a read-only operator: %v, want PermissionDenied %q", err, want)
	}
	fb.mu.Lock()
	if len(fb.targets) != 0 {
		t.Errorf("the backend was asked to switch over to %q", fb.targets)
	}
	fb.mu.Unlock()
	if got := h.refused(t, RefusedPermission); got != 1 {
		t.Errorf("refused{permission} = %v, want 1", got)
	}
	out := h.log.String()
	for _, want := range []string{
		"[WARN]  mgmt.operator: operator API request refused: permission denied:",
		"identity=spiffe://hellopics.test/operator/read/alice",
		"method=/hellopics.v1.OperatorService/Switchover",
		`needs=operator/admin`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestTLSAdminOperator(t *testing.T) {
	fb := &fakeBackend{status: sampleStatus(), swResp: &hellopicsv1.SwitchoverResponse{NewMasterId: "mgmt-2", Epoch: 8}}
	h := startTLS(t, fb, nil)
	cc := h.as(t, identity.RoleOperator, "admin/bob")
	for name, err := range reads(t, cc) {
		if err != nil {
			t.Errorf("%s as an admin: %v", name, err)
		}
	}
	resp, err := hellopicsv1.NewOperatorServiceClient(cc).Switchover(ctxT(t), &hellopicsv1.SwitchoverRequest{TargetId: "mgmt-2"})
	if err != nil || resp.GetNewMasterId() != "mgmt-2" {
		t.Fatalf("Switchover as an admin: %v, %v", resp, err)
	}
	fb.mu.Lock()
	if len(fb.targets) != 1 || fb.targets[0] != "mgmt-2" {
		t.Errorf("backend saw targets %q, want [mgmt-2]", fb.targets)
	}
	fb.mu.Unlock()
	if got := h.refused(t, RefusedPermission); got != 0 {
		t.Errorf("refused{permission} = %v", got)
	}
	// Who switched over is logged.
	if out := h.log.String(); !strings.Contains(out, `switchover requested: target=mgmt-2`) ||
		!strings.Contains(out, "identity=spiffe://hellopics.test/operator/admin/bob") {
		t.Errorf("log does not say who switched over:\n%s", out)
	}
}

// A mgmt peer may read (a monitoring mgmt, ctl with mgmt's own
// certificate), not act.
func TestTLSMgmtPeerReadsOnly(t *testing.T) {
	h := startTLS(t, &fakeBackend{status: sampleStatus()}, nil)
	cc := h.as(t, identity.RoleMgmt, "mgmt-2")
	for name, err := range reads(t, cc) {
		if err != nil {
			t.Errorf("%s as a mgmt peer: %v", name, err)
		}
	}
	_, err := hellopicsv1.NewOperatorServiceClient(cc).Switchover(ctxT(t), &hellopicsv1.SwitchoverRequest{})
	if want := "spiffe://hellopics.test/mgmt/mgmt-2 may not switch over: needs operator/admin"; status.Convert(err).Message() != want || status.Code(err) != codes.PermissionDenied {
		t.Errorf("Switchover as a mgmt peer: %v, want %q", err, want)
	}
}

func TestTLSComponentRefused(t *testing.T) {
	fb := &fakeBackend{status: sampleStatus()}
	h := startTLS(t, fb, nil)
	cc := h.as(t, identity.RoleCtrl, "pic0")
	want := "spiffe://hellopics.test/ctrl/pic0 may not read the operator API: needs operator/read, operator/admin or mgmt"
	errs := reads(t, cc)
	for name, err := range errs {
		if st := status.Convert(err); st.Code() != codes.PermissionDenied || st.Message() != want {
			t.Errorf("%s as ctrl: %v, want PermissionDenied %q", name, err, want)
		}
	}
	_, err := hellopicsv1.NewOperatorServiceClient(cc).Switchover(ctxT(t), &hellopicsv1.SwitchoverRequest{})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("Switchover as ctrl: %v", err)
	}
	if got, want := h.refused(t, RefusedPermission), float64(len(errs)+1); got != want {
		t.Errorf("refused{permission} = %v, want %v", got, want)
	}
}

// Refusals are logged at most once per kind and interval; every one is
// counted.
func TestTLSRefusalsRateLimited(t *testing.T) {
	h := startTLS(t, &fakeBackend{status: sampleStatus()}, nil, WithRefusalLogInterval(time.Hour))
	c := hellopicsv1.NewOperatorServiceClient(h.as(t, identity.RoleData, "pic0"))
	const n = 20
	for range n {
		if _, err := c.GetStatus(ctxT(t), &hellopicsv1.GetStatusRequest{}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("GetStatus as data: %v", err)
		}
	}
	if got := h.refused(t, RefusedPermission); got != n {
		t.Errorf("refused{permission} = %v, want %d", got, n)
	}
	if got := strings.Count(h.log.String(), "operator API request refused"); got != 1 {
		t.Errorf("%d refusal lines logged, want 1:\n%s", got, h.log.String())
	}
}

// handshakeRefused checks that a client with cfg cannot call anything
// and that the server counted and logged the failed handshake.
func handshakeRefused(t *testing.T, h *tlsHarness, fb *fakeBackend, cfg *tls.Config, wantLog string) {
	t.Helper()
	cc := h.dial(t, cfg)
	_, err := hellopicsv1.NewOperatorServiceClient(cc).GetStatus(ctxT(t), &hellopicsv1.GetStatusRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("GetStatus: %v, want Unavailable (handshake refused)", err)
	}
	_, err = hellopicsv1.NewOperatorServiceClient(cc).Switchover(ctxT(t), &hellopicsv1.SwitchoverRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("Switchover: %v, want Unavailable (handshake refused)", err)
	}
	fb.mu.Lock()
	if len(fb.targets) != 0 {
		t.Errorf("backend reached: %q", fb.targets)
	}
	fb.mu.Unlock()
	// The server sees the failure after the client; wait for it.
	deadline := time.Now().Add(wait)
	for h.refused(t, RefusedHandshake) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if h.refused(t, RefusedHandshake) == 0 {
		t.Error("refused{handshake} not counted")
	}
	if h.refused(t, RefusedPermission) != 0 || h.refused(t, RefusedNoIdentity) != 0 {
		t.Error("an RPC got through the handshake")
	}
	out := h.log.String()
	if !strings.Contains(out, "[WARN]  mgmt.operator: operator API: TLS handshake failed; connection closed:") || !strings.Contains(out, wantLog) {
		t.Errorf("log lacks the handshake failure with %q:\n%s", wantLog, out)
	}
}

func TestTLSNoClientCertificate(t *testing.T) {
	fb := &fakeBackend{status: sampleStatus()}
	h := startTLS(t, fb, nil)
	handshakeRefused(t, h, fb, &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}, "didn't provide a certificate")
}

func TestTLSClientOfAnotherCA(t *testing.T) {
	fb := &fakeBackend{status: sampleStatus()}
	h := startTLS(t, fb, nil)
	// Same trust domain name, same identity, another CA: the client
	// trusts our server, but the server does not trust it.
	other := testpki.NewCA(t, testTD)
	cfg := other.Source(t, other.ID(t, identity.RoleOperator, "admin/mallory")).ClientConfig(nil)
	cfg.VerifyConnection = nil
	handshakeRefused(t, h, fb, cfg, "certificate signed by unknown authority")
}

func TestTLSPlaintextClient(t *testing.T) {
	fb := &fakeBackend{status: sampleStatus()}
	h := startTLS(t, fb, nil)
	handshakeRefused(t, h, fb, nil, "tls:")
}

// With a tls.Config that lets clients in without a certificate, a
// request with no identity is refused as Unauthenticated.
func TestTLSNoIdentity(t *testing.T) {
	fb := &fakeBackend{status: sampleStatus()}
	h := startTLS(t, fb, func(src *tlsconf.Source) *tls.Config {
		c := src.ServerConfig(nil)
		c.ClientAuth, c.VerifyConnection = tls.NoClientCert, nil
		return c
	})
	cc := h.dial(t, &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true})
	for name, err := range reads(t, cc) {
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s without identity: %v, want Unauthenticated", name, err)
		}
	}
	if h.refused(t, RefusedNoIdentity) == 0 {
		t.Error("refused{no_identity} not counted")
	}
	if !strings.Contains(h.log.String(), "operator API request refused: the client has no identity") {
		t.Errorf("log:\n%s", h.log.String())
	}
}

func TestMethodAccess(t *testing.T) {
	for m, want := range map[string]access{
		hellopicsv1.OperatorService_GetStatus_FullMethodName:             accessRead,
		hellopicsv1.OperatorService_WatchEvents_FullMethodName:           accessRead,
		hellopicsv1.OperatorService_Switchover_FullMethodName:            accessAct,
		hellopicsv1.OperatorService_AppCall_FullMethodName:               accessRead, // Admin handlers: checked by the application
		"/grpc.health.v1.Health/Watch":                                   accessRead,
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": accessRead,
		"/hellopics.v1.OperatorService/SomethingNew":                     accessAct,
		"/grpc.health.v1.HealthX/Check":                                  accessAct,
	} {
		if got := methodAccess(m); got != want {
			t.Errorf("methodAccess(%s) = %v, want %v", m, got, want)
		}
	}
}

// Without TLS nothing is authorised and Collectors still exports the
// counter, at zero.
func TestPlaintextCollectors(t *testing.T) {
	h := start(t, &fakeBackend{swResp: &hellopicsv1.SwitchoverResponse{NewMasterId: "mgmt-2"}})
	if _, err := h.client.Switchover(ctxT(t), &hellopicsv1.SwitchoverRequest{}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(h.srv.Collectors()...)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(fams) != 1 || fams[0].GetName() != "hellopics_operator_refused_total" || len(fams[0].GetMetric()) != 3 {
		t.Fatalf("metrics: %v", fams)
	}
	for _, m := range fams[0].GetMetric() {
		if m.GetCounter().GetValue() != 0 {
			t.Errorf("%v", m)
		}
	}
}
