// Package election elects the master among the management instances
// and keeps the hot backups' state in sync with it.
//
// It is a pure state machine in the style of etcd-io/raft: it never
// touches the network, the clock or goroutines. The shell feeds it the
// time (Tick), received frames (Step) and operator commands
// (Switchover, Sync, Snapshot), then takes what the machine wants done
// with Ready and does it in order: persist the epoch, apply sync
// updates, send frames, answer snapshot and flush requests, log events.
// Only epochstore.go does I/O (LoadEpoch, SaveEpoch), and only when the
// shell calls it.
//
// # Election
//
// Every instance sends a Heartbeat to every other one each
// HeartbeatInterval (50 ms) and holds a peer dead after DeadMisses (3)
// intervals of silence. An instance becomes master when it knows no
// live master and it is the best live instance it knows of: highest priority, ties broken by the greater id. A freshly
// started instance first listens for StartupHold (one dead interval),
// so that it joins a working master rather than fights it. If the best
// live instance never claims (it hears a master we do not), any
// instance claims after two more dead intervals.
//
// The best live instance preempts a working master it is preferred
// over, after PreemptDelay, unless it has NoPreempt set (keepalived's
// nopreempt) or it handed mastership to that master in a switchover.
// Instances that are not the best live one never preempt.
//
// # Epochs
//
// Every mastership has an epoch. Epochs are dealt round-robin to the
// instances: with n members sorted by id, the one at index i only ever
// takes epochs e with e mod n == i (see NextEpoch), always above the
// highest epoch it knows. So two instances can never be master at the
// same epoch, even when partitioned from each other, and a partition
// heals to a strict order. The highest epoch known is persisted
// (Ready.PersistEpoch) before it is acted on or announced, so a
// restarted instance starts above every epoch it ever held or saw.
//
// # Fencing
//
// Heartbeats carry the highest epoch the sender knows. A master that
// learns of a higher epoch, from any heartbeat or sync update, steps
// down at once and reports EventSteppedDown ("fenced"); the instances
// that hear a master announce a lower epoch than theirs reply at once
// so that it learns quickly. Instances follow only the live master at
// the highest known epoch. A stepped-down instance waits a dead
// interval before it claims again, giving the master that fenced it
// time to be heard.
//
// When a partition heals, the master at the lower epoch steps down and
// follows the other; then the normal rules apply: if the loser is the
// best live instance and may preempt, it takes over with a fresh,
// higher epoch. The result is always exactly one master. A paused
// master that resumes keeps acting as master at its old epoch until the
// first heartbeat from the new master fences it; ctrl and data fence by
// epoch as well and refuse its orders meanwhile.
//
// # Switchover
//
// Switchover (master only) picks the target (the best live backup, or
// a named one), asks the shell to flush (Ready.Flush, answered with a
// Sync that is the barrier), waits for the target to acknowledge the
// barrier, then sends it a Handover carrying a fresh epoch of the
// target's and becomes a backup. The target becomes master as soon as
// the Handover arrives, without waiting for any timeout. The Handover
// is resent with each heartbeat until the target announces itself; if
// it never does within a dead interval, the normal election runs.
//
// # State sync
//
// A Replicator inside the machine numbers SyncUpdates with versions
// that only grow, tracks each backup's acknowledged version (its sync
// lag is sent minus acknowledged) and asks the shell for a full
// snapshot (Ready.Snapshots) for every backup when a mastership starts,
// when a backup (re)joins, when its lag exceeds MaxSyncLag, and when it
// reports a gap (a SyncAck of version 0). A backup applies updates in
// order (Ready.Apply) and acknowledges each; it ignores updates from an
// epoch below the highest it knows.
//
// # An outside authority
//
// With Config.External, an outside authority (an etcd election, run by
// the shell: pkg/appliance's management_etcd.go) decides who is master
// and deals the epochs. The machine never claims, preempts or hands
// over by itself: it becomes master when the shell calls Lead with the
// authority's epoch, steps down when told with Release (a lease lost or
// about to be) or when fenced by a higher epoch, and follows the peer
// that claims mastership at the highest epoch reported by Follow or a
// heartbeat. Heartbeats, liveness, fencing and state sync work as in
// the built-in election, so backups stay hot.
package election
