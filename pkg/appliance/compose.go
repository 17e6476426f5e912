package appliance

import "strings"

// Compose runs several applications in one component, side by side: the
// built-in ones of an appliance beside its own, say. Their Muxes are
// merged (a message type handled by two of them panics, like a second
// Handle), and each hook runs for every application that set it, in the
// order given, on the loop as always. Several may have a State: the
// component's replicated state is then theirs side by side, each
// application's updates (Node.Replicate on the Node its OnStart was
// given) applied to its own State, on the backups too; the mgmt
// instances of one appliance must compose the same applications in the
// same order. The name is theirs joined with "+" unless name is set.
// nil entries are skipped.
func Compose(name string, apps ...*App) *App {
	var live []*App
	var names []string
	// part[i] is the state part of live[i] (0: it has no State).
	var part []int
	var states []State
	out := &App{Mux: NewMux()}
	for _, a := range apps {
		if a == nil {
			continue
		}
		live = append(live, a)
		names = append(names, nameOr(a.Name, "app"))
		p := 0
		if a.State != nil {
			states = append(states, a.State)
			p = len(states)
		}
		part = append(part, p)
	}
	switch len(states) {
	case 0:
	case 1:
		// One State is the component's as it is, untagged.
		out.State = states[0]
		clear(part)
	default:
		out.State = &multiState{parts: states}
	}
	for i, a := range live {
		if a.Mux == nil {
			continue
		}
		for _, r := range a.Mux.components {
			out.Mux.add(out.Mux.components, r.inPart(part[i]))
		}
		for _, r := range a.Mux.operators {
			out.Mux.add(out.Mux.operators, r.inPart(part[i]))
		}
	}
	out.Name = name
	if out.Name == "" {
		out.Name = strings.Join(names, "+")
	}
	each := func(f func(a *App)) {
		for _, a := range live {
			f(a)
		}
	}
	out.OnStart = func(n *Node) {
		for i, a := range live {
			if a.OnStart != nil {
				a.OnStart(n.withPart(part[i]))
			}
		}
	}
	out.OnStop = func() {
		each(func(a *App) {
			if a.OnStop != nil {
				a.OnStop()
			}
		})
	}
	out.OnPeerReady = func(p Peer, epoch uint64) {
		each(func(a *App) {
			if a.OnPeerReady != nil {
				a.OnPeerReady(p, epoch)
			}
		})
	}
	out.OnPeerLost = func(p Peer, reason string) {
		each(func(a *App) {
			if a.OnPeerLost != nil {
				a.OnPeerLost(p, reason)
			}
		})
	}
	out.OnMasterChanged = func(addr string, epoch uint64) {
		each(func(a *App) {
			if a.OnMasterChanged != nil {
				a.OnMasterChanged(addr, epoch)
			}
		})
	}
	out.OnMgmtLost = func(reason string) {
		each(func(a *App) {
			if a.OnMgmtLost != nil {
				a.OnMgmtLost(reason)
			}
		})
	}
	out.OnPairReady = func(pair string, epoch uint64) {
		each(func(a *App) {
			if a.OnPairReady != nil {
				a.OnPairReady(pair, epoch)
			}
		})
	}
	out.OnPairLost = func(pair, reason string) {
		each(func(a *App) {
			if a.OnPairLost != nil {
				a.OnPairLost(pair, reason)
			}
		})
	}
	out.OnSwitchover = func(target string) {
		each(func(a *App) {
			if a.OnSwitchover != nil {
				a.OnSwitchover(target)
			}
		})
	}
	out.OnMastership = func(master bool, epoch uint64) {
		each(func(a *App) {
			if a.OnMastership != nil {
				a.OnMastership(master, epoch)
			}
		})
	}
	return out
}
