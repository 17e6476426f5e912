// Package appliance is the API for building your own appliance on
// hellopics: the messages between its three tiers, hooks on readiness
// and mastership, and application state that mgmt replicates to its
// backups. The framework owns the connections, the handshake, failover
// and the event loop; the application registers behaviour, like
// net/http handlers or hashicorp/raft's FSM.
//
// An application is an App: a Mux of handlers for its own protobuf
// messages, optional hooks and, on mgmt, an optional State. It runs in
// a component (mgmt.Config.App, ctrl.Config.App, data.Config.App) and
// reaches the other components through its Node:
//
//	mux := appliance.NewMux()
//	appliance.Handle(mux, func(c *appliance.Context, m *acmev1.SetLimit) error {
//		limit = m.GetValue() // on the loop: no lock needed
//		return c.Node.Send(appliance.Target{Role: appliance.Data}, m) // on to the pair's data
//	})
//	cfg.App = &appliance.App{Name: "acme", Mux: mux}
//
// # Guarantees
//
//   - Every handler, hook and State method runs on the component's loop
//     goroutine, one at a time, in the order things happened.
//   - Messages on one link (ctrl<->data of a pair, a component<->the
//     master mgmt) arrive in the order sent while the link lasts. A
//     message in flight when a link drops is lost, and the hooks say so
//     (OnPeerLost, OnMgmtLost, OnPairLost); Call gets ErrLinkLost.
//   - Send never drops silently: no route, a full queue or a message over
//     the frame limit is an error to the sender.
//   - A message of a type the receiver has no handler for is refused: a
//     Call fails with a *RemoteError naming the type, a Send is logged
//     and counted on both sides (hellopics_<role>_app_refused_total).
//   - Messages are accepted only from components that identified
//     themselves (and, with mutual TLS, whose certificate matches).
//   - State: see State and Commit. Updates are applied on the backups in
//     the master's order; a switchover waits for the target to hold
//     every update; after a crash the new master holds every update it
//     acknowledged.
//
// # Shells
//
// The daemons are built on two shells in this package: Component (ctrl
// and data) and Management (mgmt). Each joins the pconn sessions to the
// pure machines of its role (pkg/handshake, and pkg/election on mgmt)
// and to the application's Runtime on one loop goroutine (tier.Loop);
// they share the frame admission (tier.Admit) and the carrying out of
// the machines' outputs (tier.Carry). The daemons talk to this package
// alone.
//
// docs/framework.md is the tutorial; examples/ holds a complete
// appliance built on this package.
package appliance
