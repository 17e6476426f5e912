package hellocycle

import (
	"github.com/hashicorp/go-hclog"

	"github.com/hellopics/hellopics/internal/ratelog"
	"github.com/hellopics/hellopics/pkg/appliance"
	"github.com/hellopics/hellopics/pkg/hello"
	hellocyclev1 "github.com/hellopics/hellopics/proto/hellopics/hellocycle/v1"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// Relayer is the handle on a running Relay application (for tests and
// status): call its methods on the component's loop.
type Relayer struct {
	node   *appliance.Node
	log    hclog.Logger
	floods *ratelog.Logger
	relay  *hello.Relay
	// forwarded counts the hellos passed on.
	forwarded uint64
}

// Relay returns the Hello cycle application of ctrl and data, and its
// handle: each hello passes on to its next hop (ctrl -> data, data ->
// mgmt, or the other way round), and each master the component
// identifies to is told the highest number it saw.
func Relay() (*appliance.App, *Relayer) {
	r := &Relayer{}
	mux := appliance.NewMux()
	appliance.Handle(mux, r.hello)
	return &appliance.App{
		Name:            "hellocycle",
		Mux:             mux,
		OnStart:         r.start,
		OnMasterChanged: r.masterChanged,
	}, r
}

func (r *Relayer) start(n *appliance.Node) {
	r.node = n
	r.log = n.Logger()
	r.floods = ratelog.NewDebug(r.log, floodInterval)
	rl, err := hello.NewRelay(n.Role().Wire(), n.PairID())
	if err != nil {
		r.log.Error("hello relay cannot run", "component", n.Role().String(), "error", err)
		return
	}
	r.relay = rl
}

// masterChanged tells the new master the highest number seen, on the
// link the Identify just went on, so it arrives before the component's
// Ready: the master's cycle starts above it. A component that saw no
// hello of this cycle has nothing to report (and a mgmt running the
// built-in cycle does not know Seen).
func (r *Relayer) masterChanged(addr string, epoch uint64) {
	if r.relay == nil || r.relay.LastSeq() == 0 {
		return
	}
	if err := r.node.Send(appliance.ToMgmt, &hellocyclev1.Seen{LastSeq: r.relay.LastSeq()}); err != nil {
		r.floods.Warn("seen", "highest hello number not reported to the master", "component", r.node.Role().String(),
			"step", "seen", "epoch", epoch, "master_addr", addr, "error", err)
	}
}

// hello passes a hello on. The framework has fenced its epoch already.
func (r *Relayer) hello(c *appliance.Context, h *hellopicsv1.Hello) error {
	if r.relay == nil {
		return nil
	}
	to, err := r.relay.Forward(c.From.Role.Wire(), h)
	if err != nil {
		return err // counted and logged as a handler error
	}
	target := appliance.Target{Role: appliance.RoleOf(to)}
	if err := r.node.Send(target, h); err != nil {
		r.floods.Warn("forward", "hello not passed on", "component", r.node.Role().String(), "step", "hello_forward_failed",
			"peer", target.Role.String(), "pair", h.GetPairId(), "seq", h.GetSeq(), "epoch", h.GetEpoch(), "error", err)
		return nil
	}
	r.forwarded++
	if r.log.IsDebug() {
		// The keys in the built-in cycle's order (component, step,
		// peer, pair, seq, epoch): scripts match on it.
		r.log.Debug("hello forwarded", "component", r.node.Role().String(), "step", "hello_forwarded",
			"peer", target.Role.String(), "pair", h.GetPairId(), "seq", h.GetSeq(), "epoch", h.GetEpoch())
	}
	return nil
}

// LastSeq is the highest hello number this component saw.
func (r *Relayer) LastSeq() uint64 {
	if r.relay == nil {
		return 0
	}
	return r.relay.LastSeq()
}

// Forwarded counts the hellos passed on.
func (r *Relayer) Forwarded() uint64 { return r.forwarded }

// WithRelay is app with the Hello cycle's relay beside it (app may be
// nil), named as app: what ctrl and data run.
func WithRelay(app *appliance.App) *appliance.App {
	relay, _ := Relay()
	name := "app"
	if app != nil && app.Name != "" {
		name = app.Name
	}
	return appliance.Compose(name, relay, app)
}
