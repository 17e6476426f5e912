package tier

import (
	"fmt"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
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
	return l.Frames(func(s *pconn.Session, m pconn.Message) (func(), error) { return Prepare(s, m, fn) })
}

// Prepare decodes a frame on its session's goroutine and returns the
// work that hands it to fn on the loop (see Frames).
func Prepare(s *pconn.Session, m pconn.Message, fn func(s *pconn.Session, t hellopicsv1.MsgType, msg proto.Message)) (func(), error) {
	t, msg, err := Decode(m)
	if err != nil {
		return nil, err
	}
	return func() { fn(s, t, msg) }, nil
}

// Frames returns a pconn.Handler that hands a session's frames to the
// loop a batch at a time. prepare runs on the session's goroutine for
// each frame and returns the work to run on the loop for it (nil for
// none), or an error, which closes the session. The work of the frames
// read together (pconn.BatchHandler) is posted as one item, in order,
// so a stream of frames costs one hand-off per batch, not per frame.
func (l *Loop) Frames(prepare func(s *pconn.Session, m pconn.Message) (func(), error)) pconn.Handler {
	return &frameBatcher{loop: l, prepare: prepare}
}

// maxBatch bounds the work of one batch: a flood is handed on in pieces,
// each held up by the loop's queue bound.
const maxBatch = 256

type frameBatcher struct {
	loop    *Loop
	prepare func(s *pconn.Session, m pconn.Message) (func(), error)
}

// sessionBatch is a session's pending work (pconn.Session.ReaderLocal).
type sessionBatch struct{ work []func() }

func (b *frameBatcher) ServeFrame(s *pconn.Session, m pconn.Message) error {
	w, err := b.prepare(s, m)
	if err != nil || w == nil {
		return err
	}
	local := s.ReaderLocal()
	sb, _ := (*local).(*sessionBatch)
	if sb == nil {
		sb = &sessionBatch{}
		*local = sb
	}
	sb.work = append(sb.work, w)
	if len(sb.work) >= maxBatch {
		b.flush(sb)
	}
	return nil
}

// EndBatch posts the session's pending work.
func (b *frameBatcher) EndBatch(s *pconn.Session) {
	if sb, _ := (*s.ReaderLocal()).(*sessionBatch); sb != nil && len(sb.work) > 0 {
		b.flush(sb)
	}
}

func (b *frameBatcher) flush(sb *sessionBatch) {
	if len(sb.work) == 1 {
		w := sb.work[0]
		sb.work[0] = nil
		sb.work = sb.work[:0] // the loop did not get the slice: keep it
		b.loop.Post(w)
		return
	}
	work := sb.work
	sb.work = make([]func(), 0, len(work))
	b.loop.Post(func() {
		for _, w := range work {
			w()
		}
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
// A send that fails because the session is already closing (the peer
// was lost: a killed master during a failover) is logged at DEBUG, since
// the loss has its own line; any other failure (a full queue) at WARN.
func (r *Registry) Send(log hclog.Logger, o handshake.Send) {
	s := r.m[o.Session]
	if s == nil {
		log.Debug("send to a session that is gone", "type", o.Type.String(), "session", uint64(o.Session))
		return
	}
	if err := s.SendProto(pconn.MsgType(o.Type), o.Msg); err != nil {
		if s.Closing() {
			log.Debug("send failed", "type", o.Type.String(), "peer", s.RemoteAddr().String(), "error", err, "session_closing", true)
			return
		}
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

// Carry carries out the outputs every shell handles the same way and
// reports whether o was one of them: a Send or Close on its session, an
// Event logged (refusals rate-limited) and counted in refused when it
// reports refused input, and a session marked identified (lifting
// pconn's MaxFrameSizeUnidentified) when the machine accepted it.
func Carry(o handshake.Output, reg *Registry, log hclog.Logger, events *EventLog, refused *prometheus.CounterVec) bool {
	switch o := o.(type) {
	case handshake.Send:
		reg.Send(log, o)
	case handshake.Close:
		reg.Close(log, o)
	case handshake.Event:
		events.Log(o)
		// A watch session is accepted with an EventWatch: it is
		// identified too, and must not meet pconn's identify timeout.
		if o.Kind == handshake.EventIdentified || (o.Kind == handshake.EventWatch && o.Refused == "") {
			if ps := reg.Get(o.Session); ps != nil {
				ps.SetIdentified()
			}
		}
		if o.Refused != "" {
			refused.WithLabelValues(o.Refused).Inc()
		}
	default:
		return false
	}
	return true
}

// Admit is the start every shell's frame handler shares: the frame's
// session id, and whether the machine should see the frame. A frame of a
// session the registry no longer has (it raced with the session's end)
// is dropped; an Identify that contradicts the session's certificate is
// refused, and refuse holds the outputs to carry out instead.
func Admit(reg *Registry, ps *pconn.Session, t hellopicsv1.MsgType, msg proto.Message) (id handshake.SessionID, refuse []handshake.Output, ok bool) {
	id = handshake.SessionID(ps.ID())
	if reg.Get(id) == nil {
		return id, nil, false
	}
	if refuse = CheckIdentify(ps, t, msg); refuse != nil {
		return id, refuse, false
	}
	return id, nil, true
}
