package pconn

import (
	"fmt"
	"net"
)

// Message is one application frame as received.
type Message struct {
	// Type is the application message type (1..MaxUserType).
	Type MsgType
	// Flags are the header's flags, as sent.
	Flags uint8
	// Payload aliases the session's read buffer: it is valid only until
	// the handler returns. Copy it to keep it.
	Payload []byte
}

// Handler handles the frames of sessions. Returning an error closes the
// session (the error is logged and given to the EventHandler as the
// reason); return nil to keep it open.
type Handler interface {
	ServeFrame(s *Session, m Message) error
}

// BatchHandler is a Handler that is also told when it has served every
// frame read together: EndBatch runs on the session's goroutine after a
// frame when no further application frame is buffered (the session is
// about to wait for the network), and before the session ends. A handler
// that hands frames on to another goroutine uses it to hand them on a
// batch at a time.
type BatchHandler interface {
	Handler
	EndBatch(s *Session)
}

// HandlerFunc adapts a function to the Handler interface.
type HandlerFunc func(s *Session, m Message) error

// ServeFrame calls f(s, m).
func (f HandlerFunc) ServeFrame(s *Session, m Message) error { return f(s, m) }

// Mux routes frames to a Handler per message type. A frame of a type that
// has no handler closes its session with an *UnknownTypeError. Register
// every handler before the Mux is used; it is not safe to change later.
type Mux struct {
	handlers map[MsgType]Handler
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{handlers: make(map[MsgType]Handler)} }

// Handle registers h for frames of type t. It panics on a reserved or
// duplicate type, a programming error.
func (m *Mux) Handle(t MsgType, h Handler) {
	if t == 0 || t > MaxUserType {
		panic(fmt.Sprintf("pconn: Mux.Handle: type %d is reserved", t))
	}
	if _, dup := m.handlers[t]; dup {
		panic(fmt.Sprintf("pconn: Mux.Handle: type %d registered twice", t))
	}
	m.handlers[t] = h
}

// HandleFunc registers f for frames of type t.
func (m *Mux) HandleFunc(t MsgType, f func(s *Session, m Message) error) {
	m.Handle(t, HandlerFunc(f))
}

// ServeFrame dispatches m to the handler registered for its type.
func (m *Mux) ServeFrame(s *Session, msg Message) error {
	h, ok := m.handlers[msg.Type]
	if !ok {
		return &UnknownTypeError{Type: msg.Type}
	}
	return h.ServeFrame(s, msg)
}

// UnknownTypeError is returned by Mux for a type without a handler.
type UnknownTypeError struct{ Type MsgType }

func (e *UnknownTypeError) Error() string {
	return fmt.Sprintf("pconn: no handler for message type %d", uint16(e.Type))
}

// EventType says what happened to a session.
type EventType int

const (
	// EventEstablished: the session is up; it comes before any frame.
	EventEstablished EventType = iota + 1
	// EventShutdown: the session ended gracefully, closed by us or by the
	// peer's goodbye. Err says which (ErrClosed or ErrPeerClosed).
	EventShutdown
	// EventFailed: the session ended on an error (peer vanished, dead
	// peer, protocol error, handler error), or, with a nil Session, a
	// client's connection attempt failed. Err says why.
	EventFailed
)

func (t EventType) String() string {
	switch t {
	case EventEstablished:
		return "established"
	case EventShutdown:
		return "shutdown"
	case EventFailed:
		return "failed"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is what an EventHandler is told.
type Event struct {
	// Type of the event.
	Type EventType
	// Session concerned; nil for a client's failed connection attempt.
	Session *Session
	// Addr is the peer address (the dialled one for a failed attempt).
	Addr net.Addr
	// Err is the reason a session ended or an attempt failed.
	Err error
}

// EventHandler is told about session life cycle events. For one session,
// EventEstablished comes first and exactly one of EventShutdown or
// EventFailed last, after the last frame was handled; calls for one
// session never overlap.
type EventHandler interface {
	HandleEvent(ev Event)
}

// EventHandlerFunc adapts a function to the EventHandler interface.
type EventHandlerFunc func(ev Event)

// HandleEvent calls f(ev).
func (f EventHandlerFunc) HandleEvent(ev Event) { f(ev) }
