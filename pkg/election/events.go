package election

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// Message is a frame for the shell to send to another instance.
type Message struct {
	// To is the id of the receiving instance.
	To string
	// Type is the pconn frame type for Body.
	Type hellopicsv1.HAMsgType
	// Body is a *hellopicsv1.Heartbeat, *hellopicsv1.Handover,
	// *hellopicsv1.SyncUpdate or *hellopicsv1.SyncAck. The machine keeps
	// no reference to it once handed out, except for the pairs of a
	// SyncUpdate, which belong to the shell that passed them in.
	Body proto.Message
}

// EventKind says what an Event reports.
type EventKind int

// The kinds of Event. Every one is worth an INFO log line.
const (
	// EventBecameMaster: this instance is now master at Epoch.
	EventBecameMaster EventKind = iota + 1
	// EventSteppedDown: this instance stopped being master, because it
	// learned of a higher epoch (it is fenced), or because of a
	// conflicting claim, or because it handed over.
	EventSteppedDown
	// EventMasterChanged: this instance now follows Master at Epoch, or
	// has no master (Master empty) and is electing.
	EventMasterChanged
	// EventPeerUp: heartbeats from Peer started arriving.
	EventPeerUp
	// EventPeerDown: Peer missed too many heartbeats and is dead.
	EventPeerDown
	// EventSwitchoverStarted: a graceful switchover to Peer began; the
	// state is being flushed to it.
	EventSwitchoverStarted
	// EventHandoverSent: the switchover handed mastership to Peer at
	// Epoch; this instance is now a backup.
	EventHandoverSent
	// EventSwitchoverAborted: the switchover to Peer was abandoned
	// (Reason says why); this instance is still master.
	EventSwitchoverAborted
)

var kindNames = map[EventKind]string{
	EventBecameMaster:      "became_master",
	EventSteppedDown:       "stepped_down",
	EventMasterChanged:     "master_changed",
	EventPeerUp:            "peer_up",
	EventPeerDown:          "peer_down",
	EventSwitchoverStarted: "switchover_started",
	EventHandoverSent:      "handover_sent",
	EventSwitchoverAborted: "switchover_aborted",
}

// String returns the kind's short machine-readable name.
func (k EventKind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("event(%d)", int(k))
}

// Event reports a change worth logging at INFO level and, for the
// mastership ones, worth publishing to WatchEvents (kind "mastership").
type Event struct {
	// Kind says what happened.
	Kind EventKind
	// Time is the instant of the Tick or Step that caused it.
	Time time.Time
	// Epoch is the epoch concerned: the new mastership's, or the highest
	// known at the time.
	Epoch uint64
	// Master is the master after the event ("" if none).
	Master string
	// Peer is the other instance concerned, if any.
	Peer string
	// Reason says why, for people.
	Reason string
}

// String formats the event as one log line.
func (ev Event) String() string {
	s := fmt.Sprintf("%s epoch=%d master=%q", ev.Kind, ev.Epoch, ev.Master)
	if ev.Peer != "" {
		s += fmt.Sprintf(" peer=%q", ev.Peer)
	}
	if ev.Reason != "" {
		s += ": " + ev.Reason
	}
	return s
}

// Ready is what the machine asks of the shell. Handle the fields in the
// order they are listed: persist, apply, send, flush/snapshot, log.
type Ready struct {
	// PersistEpoch, when not zero, must be written with SaveEpoch and
	// synced before any of Messages is sent: it is the highest epoch
	// this instance knows, possibly one it is about to be master at.
	// If it cannot be saved, send nothing and stop the instance: the
	// machine already acts on that epoch.
	PersistEpoch uint64
	// Apply are SyncUpdates (backup) to apply to the local copy of the
	// registry, in order, before sending Messages (they hold the acks).
	Apply []*hellopicsv1.SyncUpdate
	// Messages are frames to send, in order per receiver. Sending is
	// best effort: a frame that cannot be sent is dropped.
	Messages []Message
	// Snapshots are backups that need a full snapshot (master): call
	// Snapshot for each with the whole current state.
	Snapshots []string
	// Flush is set when a switchover began (master): call Sync once with
	// whatever change is pending, even none; that update is the barrier
	// the target must acknowledge before the handover.
	Flush bool
	// Events are changes to log at INFO.
	Events []Event
	// NextTick is the latest instant at which the shell should call
	// Tick; if it is not after the current time, Tick at once. Calling
	// Tick earlier or more often is harmless.
	NextTick time.Time
}

// Status is the machine's state for the operator API.
type Status struct {
	// ID of this instance.
	ID string
	// Role of this instance: master, backup (following a master), or
	// candidate (no master known).
	Role hellopicsv1.MgmtRole
	// Epoch is the highest epoch known (the current mastership's, when
	// there is a master).
	Epoch uint64
	// MasterID is the current master ("" if none).
	MasterID string
	// Peers are the other instances, sorted by id.
	Peers []*hellopicsv1.MgmtPeerStatus
	// SyncVersion is the last state version sent (master) or applied
	// (backup).
	SyncVersion uint64
}
