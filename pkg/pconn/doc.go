// Package pconn is hellopics' framed transport: long-lived, bidirectional
// sessions over TCP (optionally TLS or mutual TLS) that carry typed,
// length-prefixed frames.
//
// A frame is an 8-byte header (version 1, flags, a 16-bit message type and
// a 32-bit payload length, in network byte order) followed by the payload.
// Types 1 to MaxUserType belong to the application; pconn reserves the
// types above for its control frames: ping and pong (keepalive), goodbye
// (graceful close) and error (the reason for closing on a peer's protocol
// error). The layout and the rules are documented in docs/pconn.md.
//
// A Server (Listen, Serve) accepts sessions; a Client (Dial) keeps one
// session to one of a list of servers, reconnecting by itself, and Connect
// makes a single session without retries. Both sides are the same Session
// once established: frames arrive at the Config's Handler, one at a time
// and in order per session, on the session's read loop; Session.Send
// queues a frame and never waits for the peer. The EventHandler hears
// when a session is established and how it ended (EventShutdown for a
// graceful close by either side, EventFailed otherwise).
//
// pconn protects the process from its peers: frame sizes are checked from
// the header before anything is read or allocated, send queues are
// bounded (Send fails with ErrQueueFull), a peer that stops reading is
// cut off after Config.WriteTimeout (ErrPeerNotReading), a silent one
// after Config.DeadTimeout (ErrDeadPeer), and a peer that sends a bad
// frame is told why and disconnected without disturbing other sessions.
package pconn
