package tier

import (
	"fmt"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/hellopics/hellopics/pkg/handshake"
	"github.com/hellopics/hellopics/pkg/pconn"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// Decode turns a frame into the protobuf message of its hellopics type.
// An unknown type or a payload that does not unmarshal is an error; the
// caller's pconn handler returns it, which closes that session alone.
func Decode(m pconn.Message) (hellopicsv1.MsgType, proto.Message, error) {
	t := hellopicsv1.MsgType(m.Type)
	msg, ok := handshake.NewMessage(t)
	if !ok {
		return t, nil, fmt.Errorf("unknown message type %d", m.Type)
	}
	if err := proto.Unmarshal(m.Payload, msg); err != nil {
		return t, nil, fmt.Errorf("malformed %s (%d bytes): %w", t, len(m.Payload), err)
	}
	return t, msg, nil
}

// Handler returns a pconn.Handler that decodes each frame and runs
// fn(session, type, message) on the loop, in arrival order.
func (l *Loop) Handler(fn func(s *pconn.Session, t hellopicsv1.MsgType, msg proto.Message)) pconn.Handler {
	return pconn.HandlerFunc(func(s *pconn.Session, m pconn.Message) error {
		t, msg, err := Decode(m)
		if err != nil {
			return err
		}
		l.Post(func() { fn(s, t, msg) })
		return nil
	})
}

// EventHandler returns a pconn.EventHandler that runs fn(event) on the
// loop. Events of a session reach fn in order with its frames.
func (l *Loop) EventHandler(fn func(ev pconn.Event)) pconn.EventHandler {
	return pconn.EventHandlerFunc(func(ev pconn.Event) { l.Post(func() { fn(ev) }) })
}

// Registry maps handshake session ids to pconn sessions. It is used from
// the loop goroutine only.
type Registry struct {
	m map[handshake.SessionID]*pconn.Session
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry { return &Registry{m: make(map[handshake.SessionID]*pconn.Session)} }

// Add registers s under its pconn id and returns that id.
func (r *Registry) Add(s *pconn.Session) handshake.SessionID {
	id := handshake.SessionID(s.ID())
	r.m[id] = s
	return id
}

// Remove forgets s and reports whether it was known.
func (r *Registry) Remove(s *pconn.Session) bool {
	id := handshake.SessionID(s.ID())
	if r.m[id] != s {
		return false
	}
	delete(r.m, id)
	return true
}

// Get returns the session with id, or nil.
func (r *Registry) Get(id handshake.SessionID) *pconn.Session { return r.m[id] }

// Len is the number of sessions.
func (r *Registry) Len() int { return len(r.m) }

// Send carries out a handshake.Send; a session that is gone or full is
// logged and skipped: the machine learns of the loss from its events.
func (r *Registry) Send(log hclog.Logger, o handshake.Send) {
	s := r.m[o.Session]
	if s == nil {
		log.Debug("send to a session that is gone", "type", o.Type.String(), "session", uint64(o.Session))
		return
	}
	if err := s.SendProto(pconn.MsgType(o.Type), o.Msg); err != nil {
		log.Warn("send failed", "type", o.Type.String(), "peer", s.RemoteAddr().String(), "error", err)
	}
}

// Close carries out a handshake.Close: a graceful close of the session.
func (r *Registry) Close(log hclog.Logger, o handshake.Close) {
	if s := r.m[o.Session]; s != nil {
		log.Debug("closing session", "peer", s.RemoteAddr().String(), "reason", o.Reason)
		s.Close()
	}
}
