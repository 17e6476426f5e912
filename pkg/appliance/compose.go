package appliance

import (
	"fmt"
	"strings"
)

// Compose runs several applications in one component, side by side: the
// built-in ones of an appliance beside its own, say. Their Muxes are
// merged (a message type handled by two of them panics, like a second
// Handle), and each hook runs for every application that set it, in the
// order given, on the loop as always. At most one may have a State (it
// is the component's replicated state); Compose panics otherwise. The
// name is theirs joined with "+" unless name is set. nil entries are
// skipped.
func Compose(name string, apps ...*App) *App {
	var live []*App
	var names []string
	out := &App{Mux: NewMux()}
	for _, a := range apps {
		if a == nil {
			continue
		}
		live = append(live, a)
		names = append(names, nameOr(a.Name, "app"))
		if a.Mux != nil {
			for _, r := range a.Mux.components {
				out.Mux.add(out.Mux.components, r)
			}
			for _, r := range a.Mux.operators {
				out.Mux.add(out.Mux.operators, r)
			}
		}
		if a.State != nil {
			if out.State != nil {
				panic(fmt.Sprintf("appliance: Compose: two applications have a State (%s)", strings.Join(names, ", ")))
			}
			out.State = a.State
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
		each(func(a *App) {
			if a.OnStart != nil {
				a.OnStart(n)
			}
		})
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
	out.OnMastership = func(master bool, epoch uint64) {
		each(func(a *App) {
			if a.OnMastership != nil {
				a.OnMastership(master, epoch)
			}
		})
	}
	return out
}
