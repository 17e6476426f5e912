package appliance

import (
	"google.golang.org/protobuf/proto"

	"github.com/hellopics/hellopics/pkg/pconn"
	"github.com/hellopics/hellopics/pkg/tier"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// MsgTypeApp is the pconn frame type of application messages.
const MsgTypeApp = pconn.MsgType(hellopicsv1.MsgType_MSG_TYPE_APP)

// Handler is a shell's pconn handler: application frames are decoded on
// the session goroutine (Decode) and delivered on the loop, if
// from(session) then names the sender (a session that has not
// identified itself, or is no longer the current link of its peer,
// yields ok false: the message is dropped and counted, unless hold, if
// not nil, takes it to deliver later); other frames are
// decoded (tier.Decode) and given to onFrame on the loop. Frames reach
// the loop in order, a batch at a time (tier.Loop.Frames). A broken
// envelope closes the session.
func (r *Runtime) Handler(onFrame func(*pconn.Session, hellopicsv1.MsgType, proto.Message), from func(*pconn.Session) (Peer, bool),
	hold func(*pconn.Session, []Inbound) bool) pconn.Handler {
	return r.cfg.Loop.Frames(func(s *pconn.Session, m pconn.Message) (func(), error) {
		if m.Type != MsgTypeApp {
			return tier.Prepare(s, m, onFrame)
		}
		ins, err := r.Decode(m.Payload)
		if err != nil || len(ins) == 0 {
			return nil, err
		}
		return func() {
			p, ok := from(s)
			if !ok {
				defer ReleaseInbound(ins)
				if hold != nil && hold(s, ins) {
					return
				}
				r.DropUnidentified(s.RemoteAddr().String(), len(ins))
				return
			}
			for _, in := range ins {
				r.Deliver(p, in)
			}
			ReleaseInbound(ins)
		}, nil
	})
}

// DropUnidentified counts and logs n application messages dropped
// because their session has not identified itself (or no longer is its
// peer's current link). Loop only.
func (r *Runtime) DropUnidentified(remote string, n int) {
	r.refused.WithLabelValues(RefusedUnidentified).Add(float64(n))
	r.rlog.Warn("refused-unidentified", "application message from a session that has not identified itself dropped",
		"component", r.cfg.Role.String(), "remote", remote, "messages", n)
}

// DropClosed counts n application messages that arrived on a session
// this component closed already (a redirect), and logs them at DEBUG:
// their loss is expected. Loop only.
func (r *Runtime) DropClosed(remote string, n int) {
	r.refused.WithLabelValues(RefusedUnidentified).Add(float64(n))
	r.log.Debug("application message on a closed session dropped", "component", r.cfg.Role.String(), "remote", remote, "messages", n)
}
