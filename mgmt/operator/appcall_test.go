package operator

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/hellopics/hellopics/pkg/appliance"
	"github.com/hellopics/hellopics/pkg/identity"
	"github.com/hellopics/hellopics/pkg/tier"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// testApp is an application with a Read handler (echo, StringValue), an
// Admin one (Empty) and one that fails (Duration), running on its own
// loop; its AppCallFunc is what mgmt gives the operator server.
func testApp(t *testing.T) AppCallFunc {
	t.Helper()
	mux := appliance.NewMux()
	appliance.HandleOperator(mux, appliance.Read, func(c *appliance.Context, m *wrapperspb.StringValue) error {
		return c.Reply(wrapperspb.String(c.From.String() + ": " + m.GetValue()))
	})
	appliance.HandleOperator(mux, appliance.Admin, func(c *appliance.Context, _ *emptypb.Empty) error {
		return c.Reply(&emptypb.Empty{})
	})
	appliance.HandleOperator(mux, appliance.Read, func(c *appliance.Context, m *durationpb.Duration) error {
		if m.GetSeconds() == 1 {
			return fmt.Errorf("replicate: %w", appliance.ErrNotMaster)
		}
		return errors.New("limit out of range")
	})
	loop := tier.NewLoop(16)
	t.Cleanup(loop.Close)
	rt := appliance.NewRuntime(appliance.RuntimeConfig{Role: appliance.Mgmt, App: &appliance.App{Mux: mux}, Loop: loop})
	loop.Do(rt.Start)
	return func(ctx context.Context, name string, admin bool, typ string, body []byte) (string, []byte, error) {
		return rt.OperatorCall(ctx, appliance.Peer{Role: appliance.Operator, Name: name}, admin, typ, body)
	}
}

// TestAppCallTLS: AppCall needs read permission; the application's
// Admin handlers an admin identity; errors map to their codes.
func TestAppCallTLS(t *testing.T) {
	h := startTLS(t, &fakeBackend{status: sampleStatus()}, nil, WithAppCall(testApp(t)))
	ctx := ctxT(t)
	read := hellopicsv1.NewOperatorServiceClient(h.as(t, identity.RoleOperator, "read/alice"))
	admin := hellopicsv1.NewOperatorServiceClient(h.as(t, identity.RoleOperator, "admin/bob"))
	ctrl := hellopicsv1.NewOperatorServiceClient(h.as(t, identity.RoleCtrl, "pic0"))

	var got wrapperspb.StringValue
	if err := appliance.OperatorCall(ctx, read, wrapperspb.String("hi"), &got); err != nil {
		t.Fatal(err)
	}
	if got.GetValue() != "operator/alice: hi" {
		t.Fatalf("echo = %q", got.GetValue())
	}
	if err := appliance.OperatorCall(ctx, ctrl, wrapperspb.String("hi"), &got); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("AppCall from ctrl: %v", err)
	}
	before := h.refused(t, RefusedPermission)
	if err := appliance.OperatorCall(ctx, read, &emptypb.Empty{}, nil); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("Admin handler from a read identity: %v", err)
	}
	if n := h.refused(t, RefusedPermission); n != before+1 {
		t.Fatalf("permission refusals %v, want %v", n, before+1)
	}
	if err := appliance.OperatorCall(ctx, admin, &emptypb.Empty{}, nil); err != nil {
		t.Fatalf("Admin handler from an admin identity: %v", err)
	}
	// The answer's type is checked.
	if err := appliance.OperatorCall(ctx, read, wrapperspb.String("x"), &emptypb.Empty{}); err == nil {
		t.Fatal("an answer of another type was accepted")
	}
}

// TestAppCallCodes: the errors of the application, and of a server
// without one, as gRPC codes.
func TestAppCallCodes(t *testing.T) {
	h := start(t, &fakeBackend{status: sampleStatus()})
	if _, err := h.client.AppCall(ctxT(t), &hellopicsv1.AppCallRequest{Type: "x.Y"}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("AppCall without an application: %v", err)
	}

	h2 := startTLS(t, &fakeBackend{status: sampleStatus()}, nil, WithAppCall(testApp(t)))
	c := hellopicsv1.NewOperatorServiceClient(h2.as(t, identity.RoleOperator, "admin/bob"))
	ctx := ctxT(t)
	for _, tc := range []struct {
		name string
		req  *hellopicsv1.AppCallRequest
		want codes.Code
	}{
		{"unknown type", &hellopicsv1.AppCallRequest{Type: "acme.v1.Nope"}, codes.Unimplemented},
		{"no type", &hellopicsv1.AppCallRequest{}, codes.InvalidArgument},
		{"malformed", &hellopicsv1.AppCallRequest{Type: "google.protobuf.StringValue", Body: []byte{0x0a, 0x05}}, codes.InvalidArgument},
		{"not master", &hellopicsv1.AppCallRequest{Type: "google.protobuf.Duration", Body: []byte{0x08, 0x01}}, codes.FailedPrecondition},
		{"handler error", &hellopicsv1.AppCallRequest{Type: "google.protobuf.Duration"}, codes.Unknown},
	} {
		_, err := c.AppCall(ctx, tc.req)
		if status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := c.AppCall(ctx, &hellopicsv1.AppCallRequest{Type: "google.protobuf.Duration"}); status.Convert(err).Message() != "limit out of range" {
		t.Errorf("handler error text: %v", err)
	}

	for err, want := range map[error]codes.Code{
		nil:                                 codes.OK,
		appliance.ErrStopped:                codes.Unavailable,
		context.DeadlineExceeded:            codes.DeadlineExceeded,
		context.Canceled:                    codes.Canceled,
		fmt.Errorf("x: %w", ErrNotMaster):   codes.FailedPrecondition,
		status.Error(codes.Aborted, "gone"): codes.Aborted,
	} {
		if got := AppCode(err); got != want {
			t.Errorf("AppCode(%v) = %v, want %v", err, got, want)
		}
	}
}
