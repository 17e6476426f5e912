// Package handshake is the hellopics component protocol as pure state
// machines: the registration of ctrl and data with mgmt, the ctrl<->data
// connection, the readiness of each pair and mgmt's Hello cycle.
//
// There is one machine per role: Mgmt, Ctrl and Data. Like etcd-io/raft,
// they do no I/O: no sockets, no clocks, no goroutines. A shell (the
// daemon) feeds a machine what happened, with the current time where it
// matters, and carries out the []Output it returns, in order:
//
//   - Send: marshal Msg and write it as a pconn frame of type Type on
//     Session.
//   - Close: close Session after what was sent on it (a Reject, a
//     Redirect). The machine has already forgotten it; reporting it down
//     afterwards is harmless.
//   - Dial (data only): connect to ctrl at Addr, then call Data.CtrlUp or
//     Data.DialFailed.
//   - SwitchMgmt (ctrl and data): reconnect to the mgmt at Addr, then call
//     MgmtUp.
//   - Event: log it at Kind.Level() with the keys component, peer, pair,
//     step (Kind), seq and epoch.
//
// Sessions are named by SessionID, chosen by the shell. Frames are decoded
// into the message NewMessage returns for their type; unknown types and
// malformed frames are reported as events, never a panic. The machines are
// not safe for concurrent use: a shell drives each from one goroutine.
//
// # The protocol
//
// ctrl and data connect to mgmt and send Identify (MSG_ID) first. mgmt
// ignores anything else before it, and rejects a bad identity (role not
// ctrl or data, empty pair id, ctrl without a data address, a second live
// ctrl or data for a pair, a component that has seen a higher epoch than
// mgmt's, a field beyond the limits of limits.go, a new pair beyond
// MgmtConfig.MaxPairs) with MSG_REJECT and a Close. The same instance
// identifying on a new connection from the same source IP replaces its old
// session, which is dead; from another IP it is refused.
//
// data asks mgmt where its ctrl listens (MSG_GET_PEER); mgmt answers
// MSG_PEER with ctrl's Identify.data_addr, at once if ctrl is registered,
// else when it registers. data dials ctrl, identifies itself, and sends
// MSG_READY to ctrl and to mgmt; ctrl then sends its own Ready to mgmt.
// When both ctrl and data of a pair are ready, mgmt starts the Hello cycle:
// a hello at once and one every HelloInterval, alternately
// mgmt->ctrl->data->mgmt and mgmt->data->ctrl->mgmt. mgmt counts hellos
// sent, received, missed (not back when the next is due) and out of order
// (any other number coming back, such as a late one), and measures the
// round-trip time of each. A hello in flight when its cycle stops counts
// neither as received nor as missed (if it comes back, as out of order).
// Hello numbers come from one counter per mgmt,
// shared by all pairs, never reused, and carried to a new master by
// Snapshot and Restore.
//
// Losing either component of a pair stops its cycle and clears the
// readiness of both: data's readiness is about its ctrl and ctrl's about
// its data, so neither outlives the other. To start again without new
// message types, mgmt sends the surviving side a Peer when the lost one
// identifies again (data learns ctrl's address, ctrl learns data is back)
// and a component that receives one re-announces its readiness if it
// still is ready. A component that restarts always redoes Ready itself.
// Any component may thus restart, in any order, at any time, and the pair
// finds its way back to a running cycle; the tests check every start order
// and a restart of each component after every step of the handshake.
//
// # Fencing
//
// Every message mgmt sends to ctrl and data carries mgmt's epoch. ctrl
// and data remember the highest epoch they have seen from mgmt (never
// from each other: only mgmt raises a fence) and drop hellos, peers and
// redirects with a lower one. ctrl refuses data that has seen a higher
// epoch than ctrl, which retries. A
// backup mgmt answers Identify with MSG_REDIRECT naming the master and
// closes; ctrl and data then switch to the master and redo only Identify
// (and Ready, and GetPeer if data has no ctrl), keeping their ctrl<->data
// connection. Mgmt.SetMastership turns a master into a backup (redirecting
// every component) and back.
//
// # Hostile input
//
// Peers are not authenticated: a component is what its Identify says plus
// its source address. Bad input is refused and reported as an Event whose
// Refused names the rule (RefusalReasons lists them) for the shell to
// count and log at Warn; it costs the sender its connection at most. No
// one takes over a live registration at mgmt, or ctrl's live data link,
// unless it is the same instance from the same host. Epochs and hello
// numbers from the wire are bounded below 2^63, so nothing wraps; every
// string and list is bounded (limits.go); mgmt's registry holds at most
// MaxPairs pairs and forgets a pair whose components have been gone for
// PairExpiry. Rejects reveal nothing about other components.
package handshake
