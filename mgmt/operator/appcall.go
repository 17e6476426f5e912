package operator

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hellopics/hellopics/pkg/appliance"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// AppCallFunc runs an operator request in the application of the
// management daemon (appliance.Runtime.OperatorCall): name is the
// operator's identity name ("" without TLS), admin whether it may call
// the handlers registered with appliance.Admin, typ and body the
// request. It returns the answer's type and body.
type AppCallFunc func(ctx context.Context, name string, admin bool, typ string, body []byte) (respType string, respBody []byte, err error)

// WithAppCall serves AppCall with f; without it AppCall is
// Unimplemented.
func WithAppCall(f AppCallFunc) Option { return func(o *options) { o.appCall = f } }

// AppCall implements hellopicsv1.OperatorServiceServer: the request goes
// to the application's HandleOperator handler of its type. The
// interceptor checked read permission; admin permission is the
// application's to check, per handler.
func (s *Server) AppCall(ctx context.Context, req *hellopicsv1.AppCallRequest) (*hellopicsv1.AppCallResponse, error) {
	if s.appCall == nil {
		return nil, status.Error(codes.Unimplemented, "no application runs in this management instance")
	}
	if req.GetType() == "" || len(req.GetType()) > appliance.MaxTypeName {
		return nil, status.Errorf(codes.InvalidArgument, "request type must be a protobuf message name of 1 to %d bytes", appliance.MaxTypeName)
	}
	name, admin := "", true
	if s.tls {
		id, err := peerIdentity(ctx)
		if err != nil {
			return nil, status.Errorf(codes.Unauthenticated, "no hellopics identity in the client certificate: %v", err)
		}
		name, admin = id.Name, id.CanAct()
	}
	typ, body, err := s.appCall(ctx, name, admin, req.GetType(), req.GetBody())
	if err != nil {
		st := status.New(AppCode(err), err.Error())
		if st.Code() == codes.PermissionDenied {
			s.refused.WithLabelValues(RefusedPermission).Inc()
			s.refusals.Warn("permission app "+req.GetType(), "operator API request refused: permission denied",
				append([]any{"method", hellopicsv1.OperatorService_AppCall_FullMethodName, "type", req.GetType(), "needs", "operator/admin",
					"peer", peerAddr(ctx)}, whoArgs(ctx)...)...)
		}
		return nil, st.Err()
	}
	return &hellopicsv1.AppCallResponse{Type: typ, Body: body}, nil
}

// AppCode returns the gRPC code of an error from the application
// (AppCallFunc): Unimplemented for a type it has no operator handler
// for, PermissionDenied for an Admin handler without admin rights,
// InvalidArgument for a malformed request, FailedPrecondition when it
// needs the master (appliance.ErrNotMaster, ErrNotMaster),
// Unavailable while stopping, DeadlineExceeded and Canceled for the
// RPC's context, and Unknown for the handler's own errors.
func AppCode(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	switch {
	case errors.Is(err, appliance.ErrUnknownType):
		return codes.Unimplemented
	case errors.Is(err, appliance.ErrPermission):
		return codes.PermissionDenied
	case errors.Is(err, appliance.ErrMalformed):
		return codes.InvalidArgument
	case errors.Is(err, appliance.ErrNotMaster), errors.Is(err, ErrNotMaster):
		return codes.FailedPrecondition
	case errors.Is(err, appliance.ErrStopped), errors.Is(err, ErrUnavailable):
		return codes.Unavailable
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	return codes.Unknown
}
