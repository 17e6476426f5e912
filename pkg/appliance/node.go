package appliance

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"
)

// Node is the component an application runs in, as the application
// sees it: who it is and how to reach the other components. Its methods
// must be called on the component's loop (from handlers, hooks and
// functions given to Do or Post), except Do, Post, Role, PairID and
// Logger, which any goroutine may call.
type Node struct {
	rt *Runtime
	// part is the application's part of a composed State (Compose with
	// several States), 0 for the whole State.
	part int
}

// withPart is n as the application owning State part p sees it (p 0:
// n itself).
func (n *Node) withPart(p int) *Node {
	if p == 0 || n.part == p {
		return n
	}
	r := n.rt
	for len(r.partNodes) < p {
		r.partNodes = append(r.partNodes, &Node{rt: r, part: len(r.partNodes) + 1})
	}
	return r.partNodes[p-1]
}

// Role is the component's tier.
func (n *Node) Role() Role { return n.rt.cfg.Role }

// PairID is the component's pair ("" on mgmt).
func (n *Node) PairID() string { return n.rt.cfg.PairID }

// Logger is the application's logger (the component's, named App.Name).
func (n *Node) Logger() hclog.Logger { return n.rt.log }

// Epoch is the epoch the component's messages are stamped with: the
// highest mastership epoch it has seen (on mgmt, its own).
func (n *Node) Epoch() uint64 { return n.rt.stamp() }

// HandedOver reports whether this mgmt instance's mastership came
// from a graceful switchover (the old master flushed its state here and
// stopped on purpose) rather than a failover: read it in
// App.OnMastership to tell a planned pause from an outage.
func (n *Node) HandedOver() bool { return n.rt.master && n.rt.handedOver }

// IsMaster reports whether this mgmt instance is the master (false on
// ctrl and data).
func (n *Node) IsMaster() bool { return n.rt.master }

// Send sends m to to, one way. Messages to the same target arrive in
// the order sent while the link lasts; a message in flight when the link
// is lost is lost (the hooks say when), so use Call for what must be
// acknowledged. A target that is not reachable now (ErrNoRoute), a full
// queue (ErrQueueFull) or a message over the frame limit (ErrTooLarge)
// is an error, never a silent drop.
func (n *Node) Send(to Target, m proto.Message) error {
	if m == nil {
		return fmt.Errorf("appliance: Send of a nil message")
	}
	return n.rt.sendEnvelope(to, string(m.ProtoReflect().Descriptor().FullName()), m, 0, false, "")
}

// Call sends m to to as a request and runs done on the loop with the
// reply, or with an error: the receiver's (*RemoteError), ErrTimeout
// after timeout (0: DefaultCallTimeout), ErrLinkLost if the link went
// down first. done runs exactly once, unless Call itself returns an
// error (then never). The reply's Go type must be linked into the
// program (import its generated package).
func (n *Node) Call(to Target, m proto.Message, timeout time.Duration, done func(reply proto.Message, err error)) error {
	r := n.rt
	if m == nil {
		return fmt.Errorf("appliance: Call with a nil message")
	}
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	r.nextCall++
	id := r.nextCall
	if err := r.sendEnvelope(to, string(m.ProtoReflect().Descriptor().FullName()), m, id, false, ""); err != nil {
		return err
	}
	c := &pendingCall{to: r.resolve(to), done: done}
	r.calls[id] = c
	c.timer = time.AfterFunc(timeout, func() {
		r.cfg.Loop.Post(func() {
			if r.calls[id] == c {
				r.finishCall(id, c, nil, fmt.Errorf("%w after %v: %s to %s", ErrTimeout, timeout, m.ProtoReflect().Descriptor().FullName(), c.to))
			}
		})
	})
	return nil
}

// Broadcast sends m to the component of role in every pair that is
// ready now (mgmt master only) and returns how many it reached; errors
// for single pairs are joined in err (the others were still sent). A
// pair that becomes ready later does not get it: send from
// App.OnPairReady.
func (n *Node) Broadcast(role Role, m proto.Message) (int, error) {
	pl, ok := n.rt.cfg.Link.(PairLister)
	if !ok || n.rt.cfg.Role != Mgmt {
		return 0, ErrWrongRole
	}
	var errs []error
	sent := 0
	for _, t := range pl.ReadyTargets(role) {
		if err := n.Send(t, m); err != nil {
			errs = append(errs, err)
			continue
		}
		sent++
	}
	if len(errs) > 0 {
		return sent, fmt.Errorf("appliance: broadcast: %d of %d not sent: %w", len(errs), sent+len(errs), errs[0])
	}
	return sent, nil
}

// ReadyPairs lists the pairs whose two components are ready (mgmt
// master); nil elsewhere.
func (n *Node) ReadyPairs() []string {
	pl, ok := n.rt.cfg.Link.(PairLister)
	if !ok {
		return nil
	}
	var out []string
	for _, t := range pl.ReadyTargets(Ctrl) {
		out = append(out, t.PairID)
	}
	return out
}

// Replicate applies update to the application's State at once and
// streams it to the backups (mgmt master only); done, if not nil, runs
// on the loop once every live backup acknowledged it (see Commit and
// State for the guarantees). An error from State.Apply is returned and
// nothing is replicated.
func (n *Node) Replicate(update []byte, done func(Commit)) error {
	r := n.rt
	rep, ok := r.cfg.Link.(Replicator)
	if !ok || r.cfg.Role != Mgmt || r.app.State == nil {
		return fmt.Errorf("%w: Replicate needs mgmt and an App.State", ErrWrongRole)
	}
	if !r.master {
		return ErrNotMaster
	}
	if r.stopped {
		return ErrStopped
	}
	if n.part != 0 {
		update = tagPart(n.part, update)
	}
	if err := r.app.State.Apply(update); err != nil {
		return fmt.Errorf("appliance: update refused by State.Apply: %w", err)
	}
	v, err := rep.Replicate(update)
	if err != nil {
		return err
	}
	r.commits = append(r.commits, pendingCommit{version: v, done: done})
	return nil
}

// Do runs f on the loop and waits for it to finish; false if the
// component stopped. Call it from other goroutines only (never from the
// loop: it would wait for itself).
func (n *Node) Do(f func()) bool { return n.rt.cfg.Loop.Do(f) }

// Post queues f to run on the loop and returns at once; false if the
// component stopped.
func (n *Node) Post(f func()) bool { return n.rt.cfg.Loop.Post(f) }
