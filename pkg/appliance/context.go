package appliance

import (
	"google.golang.org/protobuf/proto"
)

// Context is what a handler knows of the message it handles. The
// Context of a Call may be kept to Reply later (on the loop); that of a
// one-way message is valid only until the handler returns.
type Context struct {
	// Node is the component the handler runs in.
	Node *Node
	// From is the sender.
	From Peer
	// Epoch is the mastership epoch the sender stamped the message with
	// (0 from a sender that knew none, or an operator). The framework has
	// already fenced it: on ctrl and data it is at least the epoch the
	// component knows, on mgmt at most its own.
	Epoch uint64

	call     uint64
	replied  bool
	operator func(proto.Message, error) // the operator API's way back
}

// IsCall reports whether the sender waits for a reply.
func (c *Context) IsCall() bool { return c.call != 0 }

// Reply answers a Call with m. It may be called later than the handler's
// return (from the loop: a hook, a Replicate callback), at most once.
// Replying to a Send is ErrNotCall.
func (c *Context) Reply(m proto.Message) error {
	if c.call == 0 || c.replied {
		return ErrNotCall
	}
	c.replied = true
	if c.operator != nil {
		c.operator(m, nil)
		return nil
	}
	typ := ""
	if m != nil {
		typ = string(m.ProtoReflect().Descriptor().FullName())
	}
	return c.Node.rt.sendEnvelope(c.From, typ, m, c.call, true, "")
}

// ReplyError answers a Call with an error; the caller gets a
// *RemoteError with err's text.
func (c *Context) ReplyError(err error) error {
	if c.call == 0 || c.replied {
		return ErrNotCall
	}
	c.replied = true
	if c.operator != nil {
		c.operator(nil, err)
		return nil
	}
	return c.Node.rt.sendEnvelope(c.From, "", nil, c.call, true, err.Error())
}
