package appliance

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Permission is what an operator needs to call a HandleOperator handler.
type Permission int

const (
	// Read: any operator identity (read or admin) or none without TLS.
	Read Permission = iota + 1
	// Admin: an operator admin identity, or none without TLS.
	Admin
)

// Mux routes an application's messages to its handlers by protobuf
// type, like http.ServeMux by path. Register every handler before the
// component starts; a Mux must not change afterwards (it is read from
// the session goroutines).
type Mux struct {
	components map[string]*route
	operators  map[string]*route
}

// NewMux returns an empty Mux.
func NewMux() *Mux {
	return &Mux{components: map[string]*route{}, operators: map[string]*route{}}
}

// route is one registered handler.
type route struct {
	name  protoreflect.FullName
	newM  func() proto.Message
	serve func(c *Context, m proto.Message) error
	perm  Permission
}

// inPart is r serving its handler with the Node of State part p
// (Compose): c.Node.Replicate then reaches the handler's own State.
func (r *route) inPart(p int) *route {
	if p == 0 {
		return r
	}
	w := *r
	serve := r.serve
	w.serve = func(c *Context, m proto.Message) error {
		c.Node = c.Node.withPart(p)
		return serve(c, m)
	}
	return &w
}

// Handle registers fn for the messages of type M from other components.
// fn runs on the loop. If the message was sent with Call, fn answers
// with c.Reply (now or later, from the loop); an error returned without
// a reply is the caller's error. Handle panics if M already has a
// handler, like http.ServeMux.
func Handle[T any, M message[T]](mux *Mux, fn func(c *Context, m M) error) {
	mux.add(mux.components, newRoute[T](fn, 0))
}

// message is a generated protobuf message type: a pointer to a struct
// T. Naming T lets the Mux allocate messages without reflection.
type message[T any] interface {
	*T
	proto.Message
}

// HandleCall registers fn as the answer to Calls of type M: its result,
// or its error, is the reply. A Send of M (no reply expected) runs fn
// and drops the result.
func HandleCall[T any, M message[T], R proto.Message](mux *Mux, fn func(c *Context, m M) (R, error)) {
	mux.add(mux.components, newRoute[T](func(c *Context, m M) error {
		r, err := fn(c, m)
		if err != nil {
			return err
		}
		if c.IsCall() {
			return c.Reply(r)
		}
		return nil
	}, 0))
}

// HandleOperator registers fn for requests of type M from the operator
// API of mgmt (AppCall; `hellopics ctl app`). fn answers with c.Reply,
// now or later; an error returned without a reply is the operator's
// error. With TLS, perm says which operator identities may call it.
// Operator requests reach only these handlers, and component messages
// only those of Handle and HandleCall.
func HandleOperator[T any, M message[T]](mux *Mux, perm Permission, fn func(c *Context, m M) error) {
	if perm != Read && perm != Admin {
		panic("appliance: HandleOperator: permission must be Read or Admin")
	}
	mux.add(mux.operators, newRoute[T](fn, perm))
}

func newRoute[T any, M message[T]](fn func(c *Context, m M) error, perm Permission) *route {
	return &route{
		name:  M(new(T)).ProtoReflect().Descriptor().FullName(),
		newM:  func() proto.Message { return M(new(T)) },
		serve: func(c *Context, m proto.Message) error { return fn(c, m.(M)) },
		perm:  perm,
	}
}

func (mux *Mux) add(m map[string]*route, r *route) {
	if mux == nil {
		panic("appliance: nil Mux")
	}
	if _, dup := m[string(r.name)]; dup {
		panic(fmt.Sprintf("appliance: a handler for %s is already registered", r.name))
	}
	m[string(r.name)] = r
}

// lookup finds the route of a type name; b is the name's bytes (the
// map index with string(b) does not allocate).
func (mux *Mux) lookup(operator bool, b []byte) *route {
	if mux == nil {
		return nil
	}
	if operator {
		return mux.operators[string(b)]
	}
	return mux.components[string(b)]
}

// Types lists the registered component message types (for docs, tests).
func (mux *Mux) Types() []string {
	if mux == nil {
		return nil
	}
	out := make([]string, 0, len(mux.components))
	for n := range mux.components {
		out = append(out, n)
	}
	return out
}
