package appliance

import (
	"github.com/hellopics/hellopics/pkg/pconn"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// MsgTypeApp is the pconn frame type of application messages.
const MsgTypeApp = pconn.MsgType(hellopicsv1.MsgType_MSG_TYPE_APP)

// Handler wraps a shell's pconn handler: application frames are decoded
// on the session goroutine (Decode) and delivered on the loop, if
// from(session) then names the sender (a session that has not
// identified itself, or is no longer the current link of its peer,
// yields ok false: the message is dropped and counted); other frames go
// to next. A broken envelope closes the session.
func (r *Runtime) Handler(next pconn.Handler, from func(*pconn.Session) (Peer, bool)) pconn.Handler {
	return pconn.HandlerFunc(func(s *pconn.Session, m pconn.Message) error {
		if m.Type != MsgTypeApp {
			return next.ServeFrame(s, m)
		}
		in, err := r.Decode(m.Payload)
		if err != nil {
			return err
		}
		r.cfg.Loop.Post(func() {
			p, ok := from(s)
			if !ok {
				r.refused.WithLabelValues(RefusedUnidentified).Inc()
				r.rlog.Warn("refused-unidentified", "application message from a session that has not identified itself dropped",
					"component", r.cfg.Role.String(), "remote", s.RemoteAddr().String())
				return
			}
			r.Deliver(p, in)
		})
		return nil
	})
}
