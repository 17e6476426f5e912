package pconn

import (
	"errors"
	"fmt"
)

// Errors a session ends with, or Send returns. Test with errors.Is.
var (
	// ErrClosed: the session or client was closed by this side.
	ErrClosed = errors.New("pconn: closed")
	// ErrPeerClosed: the peer closed the session gracefully (goodbye).
	ErrPeerClosed = errors.New("pconn: closed by peer")
	// ErrPeerVanished: the connection ended without a goodbye.
	ErrPeerVanished = errors.New("pconn: connection lost")
	// ErrDeadPeer: nothing was received within Config.DeadTimeout.
	ErrDeadPeer = errors.New("pconn: dead peer: nothing received within the dead timeout")
	// ErrPeerNotReading: a write blocked longer than Config.WriteTimeout.
	ErrPeerNotReading = errors.New("pconn: peer not reading: write timed out")
	// ErrQueueFull: the session's send queue is at its bound; the frame
	// was not queued. The peer is reading slower than we send.
	ErrQueueFull = errors.New("pconn: send queue full")
	// ErrNotConnected: a Client has no session at the moment.
	ErrNotConnected = errors.New("pconn: not connected")
	// ErrServerFull: the server refused a connection over MaxSessions.
	ErrServerFull = errors.New("pconn: server full")
	// ErrTooManyFromHost: the server refused a connection over
	// MaxSessionsPerHost.
	ErrTooManyFromHost = errors.New("pconn: too many connections from this host")
	// ErrIdentifyTimeout: a server session was not marked identified
	// (Session.SetIdentified) within Config.IdentifyTimeout.
	ErrIdentifyTimeout = errors.New("pconn: peer not identified in time")
	// ErrRedirected: Client.Redirect ended the session at once, without
	// a goodbye, to move to another address. It wraps ErrClosed: the
	// session ends with EventShutdown.
	ErrRedirected = fmt.Errorf("%w: redirected to another address", ErrClosed)
	// ErrGaveUp: a Client spent its MaxRetries.
	ErrGaveUp = errors.New("pconn: gave up connecting")
)

// PeerError is the reason a peer gave, in a TypeError frame, for closing
// the session because of something we sent.
type PeerError struct{ Reason string }

func (e *PeerError) Error() string { return "pconn: peer reported an error: " + e.Reason }

// Is reports a server's refusal for load as the error it was on the
// server: errors.Is(err, ErrServerFull) and errors.Is(err,
// ErrTooManyFromHost) hold for a PeerError carrying their text.
func (e *PeerError) Is(target error) bool {
	return (target == ErrServerFull || target == ErrTooManyFromHost) && e.Reason == target.Error()
}

// overloaded reports whether err is a server's refusal for load.
func overloaded(err error) bool {
	return errors.Is(err, ErrServerFull) || errors.Is(err, ErrTooManyFromHost)
}

// HandlerError wraps the error a Handler returned, which closed the session.
type HandlerError struct {
	Type MsgType
	Err  error
}

func (e *HandlerError) Error() string {
	return fmt.Sprintf("pconn: handler for type %s: %v", e.Type, e.Err)
}

func (e *HandlerError) Unwrap() error { return e.Err }

// errGoodbye is returned by the read loop when the peer says goodbye.
var errGoodbye = errors.New("pconn: goodbye")
