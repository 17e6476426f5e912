package appliance

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// OperatorCall is the client side of the operator API's AppCall: it
// sends req to the application running in the master mgmt (its
// HandleOperator handler of req's type) over c and decodes the answer
// into resp, which must be of the type the handler replies with (resp
// may be nil to ignore the answer; a reply without a message resets it).
// The error is the RPC's (a gRPC
// status: Unimplemented for a type the application does not handle,
// PermissionDenied for an Admin handler without an admin identity,
// FailedPrecondition on a backup, Unknown with the handler's text) or a
// mismatch of the answer's type.
//
//	var st acmev1.LimitStatus
//	err := appliance.OperatorCall(ctx, hellopicsv1.NewOperatorServiceClient(conn), &acmev1.GetLimit{}, &st)
func OperatorCall(ctx context.Context, c hellopicsv1.OperatorServiceClient, req, resp proto.Message) error {
	if req == nil {
		return fmt.Errorf("appliance: OperatorCall with a nil request")
	}
	body, err := proto.Marshal(req)
	if err != nil {
		return fmt.Errorf("appliance: marshal %s: %w", req.ProtoReflect().Descriptor().FullName(), err)
	}
	typ := string(req.ProtoReflect().Descriptor().FullName())
	r, err := c.AppCall(ctx, &hellopicsv1.AppCallRequest{Type: typ, Body: body})
	if err != nil {
		return err
	}
	if resp == nil {
		return nil
	}
	if r.GetType() == "" {
		proto.Reset(resp) // the handler replied with no message
		return nil
	}
	want := string(resp.ProtoReflect().Descriptor().FullName())
	if r.GetType() != want {
		return fmt.Errorf("appliance: %s answered with %q, not %s", typ, r.GetType(), want)
	}
	if err := proto.Unmarshal(r.GetBody(), resp); err != nil {
		return fmt.Errorf("%w: answer %s: %v", ErrMalformed, want, err)
	}
	return nil
}
