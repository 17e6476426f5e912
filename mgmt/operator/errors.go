package operator

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinel errors a Backend wraps (with fmt.Errorf and %w) so that the
// operator API answers with the right gRPC code. The wrapping message is
// what the operator sees, so say what to do: "%w: the master is mgmt-2".
var (
	// ErrNotMaster: the request needs the master and this instance is not
	// (codes.FailedPrecondition).
	ErrNotMaster = errors.New("not the master")
	// ErrUnavailable: the instance cannot answer now, e.g. it is still
	// starting or electing (codes.Unavailable; the client may retry).
	ErrUnavailable = errors.New("unavailable")
	// ErrUnknownTarget: the switchover target names no known management
	// instance (codes.NotFound).
	ErrUnknownTarget = errors.New("unknown target")
	// ErrTargetNotReady: the switchover target is known but cannot take
	// over now, e.g. it is not alive or not in sync
	// (codes.FailedPrecondition).
	ErrTargetNotReady = errors.New("target not ready")
	// ErrInvalidArgument: the request cannot be answered as asked, e.g. a
	// page token of another query (codes.InvalidArgument).
	ErrInvalidArgument = errors.New("invalid argument")
)

// Code returns the gRPC code for an error from a Backend: the code of a
// gRPC status error as is, the codes above for the sentinels, Canceled and
// DeadlineExceeded for context errors, Internal for anything else and OK
// for nil.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	switch {
	case errors.Is(err, ErrNotMaster), errors.Is(err, ErrTargetNotReady):
		return codes.FailedPrecondition
	case errors.Is(err, ErrUnavailable):
		return codes.Unavailable
	case errors.Is(err, ErrUnknownTarget):
		return codes.NotFound
	case errors.Is(err, ErrInvalidArgument):
		return codes.InvalidArgument
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	}
	return codes.Internal
}

// toStatus turns a Backend error into a gRPC status error carrying the
// error's message.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok {
		return s.Err()
	}
	return status.Error(Code(err), err.Error())
}
