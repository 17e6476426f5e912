package appliance

import (
	"time"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// Role is the tier a component plays, or Operator for a person or
// program using mgmt's operator API.
type Role int

// The roles.
const (
	// Mgmt is the management tier (master and backups).
	Mgmt Role = iota + 1
	// Ctrl is the control half of a pair.
	Ctrl
	// Data is the data half of a pair.
	Data
	// Operator is a client of mgmt's operator API (AppCall); only
	// handlers registered with HandleOperator receive its requests.
	Operator
)

// String is the role's short name: mgmt, ctrl, data, operator.
func (r Role) String() string {
	switch r {
	case Mgmt:
		return "mgmt"
	case Ctrl:
		return "ctrl"
	case Data:
		return "data"
	case Operator:
		return "operator"
	}
	return "unknown"
}

// RoleOf converts a wire role; 0 for an unknown one.
func RoleOf(r hellopicsv1.Role) Role {
	switch r {
	case hellopicsv1.Role_ROLE_MGMT:
		return Mgmt
	case hellopicsv1.Role_ROLE_CTRL:
		return Ctrl
	case hellopicsv1.Role_ROLE_DATA:
		return Data
	}
	return 0
}

// Wire is the wire form of r (ROLE_UNSPECIFIED for Operator).
func (r Role) Wire() hellopicsv1.Role {
	switch r {
	case Mgmt:
		return hellopicsv1.Role_ROLE_MGMT
	case Ctrl:
		return hellopicsv1.Role_ROLE_CTRL
	case Data:
		return hellopicsv1.Role_ROLE_DATA
	}
	return hellopicsv1.Role_ROLE_UNSPECIFIED
}

// Peer names the other end of a message: a component by role and pair
// (PairID is empty for mgmt), or an operator by the name in its
// certificate ("" without TLS).
type Peer struct {
	Role   Role
	PairID string
	// Name is the operator's identity name, when Role is Operator.
	Name string
}

// String is "ctrl/pic0", "mgmt" or "operator/alice".
func (p Peer) String() string {
	switch {
	case p.Role == Operator && p.Name != "":
		return "operator/" + p.Name
	case p.PairID != "":
		return p.Role.String() + "/" + p.PairID
	}
	return p.Role.String()
}

// Target says where Send and Call deliver: a role and, from mgmt, the
// pair. From ctrl or data, Target{Role: Mgmt} is the master mgmt and the
// other role of the component's own pair is its peer (PairID may be
// left empty); mgmt names both.
type Target = Peer

// ToMgmt is the master management instance, seen from ctrl or data.
var ToMgmt = Target{Role: Mgmt}

// To is a target component: role of pair (from mgmt).
func To(role Role, pairID string) Target { return Target{Role: role, PairID: pairID} }

// App is an application running inside a hellopics component: the
// handlers of its messages, its hooks and (on mgmt) its replicated
// state. Every function is called on the component's loop goroutine,
// one at a time and in the order things happened, so an application
// needs no locks for state it touches only from them. None may block:
// a hook that waits holds up the component's protocol (hellos,
// failover). Every field is optional.
type App struct {
	// Name appears in log lines ("app" by default).
	Name string

	// Mux routes the application's messages to its handlers. It must
	// not change once the component started.
	Mux *Mux

	// OnStart is called once, before anything else, with the component
	// the application runs in: keep n to send messages from hooks.
	OnStart func(n *Node)
	// OnStop is called once when the component stops, after which sends
	// fail with ErrStopped and no other hook runs: stop the
	// application's timers here.
	OnStop func()

	// OnPeerReady (ctrl and data) reports that the other half of the
	// pair is connected and ready: Send to it works from now on.
	OnPeerReady func(peer Peer, epoch uint64)
	// OnPeerLost (ctrl and data) reports that the other half is gone;
	// messages in flight to it may be lost.
	OnPeerLost func(peer Peer, reason string)
	// OnMasterChanged (ctrl and data) reports that the component has
	// connected and identified itself to the mgmt instance it takes for
	// the master: at start, after a failover or switchover, or after the
	// link was restored; epoch is the highest the component has seen.
	// Send(ToMgmt, ...) goes there from now on, after the Identify. If
	// that instance is a backup, it redirects the component: OnMgmtLost,
	// then OnMasterChanged again for the master (a Call sent meanwhile
	// fails with ErrLinkLost). Messages in flight to the previous master
	// may be lost: resend what was not acknowledged.
	OnMasterChanged func(masterAddr string, epoch uint64)
	// OnMgmtLost (ctrl and data) reports that the link to mgmt is down;
	// Send to mgmt fails until OnMasterChanged.
	OnMgmtLost func(reason string)

	// OnPairReady (mgmt master) reports that both halves of a pair are
	// ready (its Hello cycle starts): send to its components from now.
	OnPairReady func(pairID string, epoch uint64)
	// OnPairLost (mgmt master) reports that a ready pair lost a half,
	// or that this instance stopped being master.
	OnPairLost func(pairID string, reason string)
	// OnMastership (mgmt) reports that this instance became master
	// (true) or stopped being master (false) at epoch. A new master's
	// State holds every update a backup acknowledged (see State);
	// Node.HandedOver says whether a switchover handed it over.
	OnMastership func(master bool, epoch uint64)
	// OnSwitchover (mgmt master) reports that an operator asked for a
	// switchover to target ("" for the best backup): replicate now what
	// the new master must have and the application keeps back (batched
	// counters, say). The handover waits until the target acknowledged
	// every update replicated before it, these included.
	OnSwitchover func(target string)

	// State (mgmt) is the application's replicated state; nil for none.
	State State
}

// State is an application's replicated state on mgmt, in the manner of
// hashicorp/raft's FSM. The master changes it only through
// Node.Replicate, which applies the update here at once and streams it
// to every backup, where it is applied in the same order. A backup that
// joins (or falls behind) gets a Snapshot first, then the updates after
// it. A switchover hands over only once the target has acknowledged
// every update. After a crash of the master, the new master holds every
// update it acknowledged: an update whose Commit reported Acked >= 1
// with a single backup is never lost; one not yet acknowledged may be.
//
// The methods run on the loop, like every application callback.
type State interface {
	// Apply applies one update. An error refuses it on the master
	// (Replicate returns it, nothing is replicated); on a backup it
	// marks the backup out of sync until the next snapshot.
	Apply(update []byte) error
	// Snapshot returns the whole state, for a backup that needs it.
	Snapshot() ([]byte, error)
	// Restore replaces the whole state with a snapshot (nil or empty:
	// the empty state).
	Restore(snapshot []byte) error
}

// Commit reports what became of one replicated update.
type Commit struct {
	// Version is the state version that carried the update.
	Version uint64
	// Acked is how many backups acknowledged it; 0 with no live backup.
	Acked int
	// Err is set if mastership was lost (or mgmt stopped) before every
	// live backup acknowledged: the update may or may not survive.
	Err error
}

// DefaultCallTimeout is the deadline of a Call made with timeout 0.
const DefaultCallTimeout = 5 * time.Second
