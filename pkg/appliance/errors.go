package appliance

import (
	"errors"

	"github.com/hellopics/hellopics/pkg/pconn"
)

// Errors returned by Node's methods and passed to Call's callback. Test
// with errors.Is.
var (
	// ErrNoRoute: the target is not connected and ready now (mgmt not
	// reached yet, the peer not ready, an unknown pair). Nothing was sent.
	ErrNoRoute = errors.New("appliance: no route to the target")
	// ErrQueueFull: the link's send queue is at its bound (the receiver
	// is slower than the sender). Nothing was sent; try again later.
	ErrQueueFull = pconn.ErrQueueFull
	// ErrTooLarge: the message is larger than the link's frame limit.
	ErrTooLarge = pconn.ErrFrameTooLarge
	// ErrTimeout: a Call got no reply within its deadline.
	ErrTimeout = errors.New("appliance: call timed out")
	// ErrLinkLost: the link a Call went out on was lost before the reply.
	ErrLinkLost = errors.New("appliance: link lost before the reply")
	// ErrUnknownType: the receiver has no handler for the message's type.
	ErrUnknownType = errors.New("appliance: unknown application message type")
	// ErrNotMaster: only the master mgmt may do this (Replicate).
	ErrNotMaster = errors.New("appliance: not the master mgmt")
	// ErrNotCall: Reply on a message that was not a Call, or a second
	// Reply.
	ErrNotCall = errors.New("appliance: nothing to reply to")
	// ErrUnavailable: the management instance cannot do this now (it is
	// still reaching the other instances); try again.
	ErrUnavailable = errors.New("appliance: not available yet")
	// ErrBadRequest: an operator request that cannot be answered as
	// asked (a status page token of another query).
	ErrBadRequest = errors.New("appliance: bad request")
	// ErrStopped: the component is stopping.
	ErrStopped = errors.New("appliance: component stopped")
	// ErrWrongRole: the operation does not exist in this tier (Broadcast
	// from ctrl, Replicate from data, a Target this tier cannot reach).
	ErrWrongRole = errors.New("appliance: not available in this tier")
	// ErrPermission: an operator without admin rights called a handler
	// registered with Admin.
	ErrPermission = errors.New("appliance: permission denied")
	// ErrStaleEpoch: the receiver fenced the message off by its epoch
	// (Context.Epoch): ctrl or data knows a newer master than the
	// sender did, or mgmt is deposed. Resend after OnMasterChanged.
	ErrStaleEpoch = errors.New("appliance: message of a fenced-off epoch")
	// ErrMalformed: an operator request whose body does not decode as
	// its type.
	ErrMalformed = errors.New("appliance: malformed message")
)

// RemoteError is the error a peer's handler returned for a Call, or
// its refusal of a message (ErrUnknownType, a malformed body). Its
// Message is the peer's text.
type RemoteError struct {
	Peer    Peer
	Message string
}

func (e *RemoteError) Error() string { return "appliance: " + e.Peer.String() + ": " + e.Message }
