package election

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// Peer names another management instance.
type Peer struct {
	// ID is the peer's unique instance id, as it announces it in its
	// Heartbeat. Every instance must list the same set of ids (itself
	// plus its peers): the set decides which epochs each one may take.
	ID string
	// Addr is the peer's HA address. The machine never dials it; it is
	// reported in the status and used by the shell.
	Addr string
}

// Config configures one management instance's election machine.
type Config struct {
	// ID is this instance's unique id. Required; must not be empty and
	// must differ from every peer's id.
	ID string
	// Priority decides the election: the highest wins, ties broken by
	// the greater ID (byte-wise string comparison). Any value is allowed.
	Priority uint32
	// ComponentAddr is where this instance accepts ctrl and data; it is
	// announced in heartbeats. Optional.
	ComponentAddr string
	// Peers are the other instances. At least one; ids must be unique.
	// All instances must be configured with the same membership.
	Peers []Peer

	// HeartbeatInterval is how often a Heartbeat goes to every peer.
	// Must be positive. Suggested: 50ms (the default).
	HeartbeatInterval time.Duration
	// DeadMisses is how many heartbeat intervals without hearing from a
	// peer make it dead. Must be at least 1. Suggested: 3 (the default):
	// a master that crashes is replaced within (DeadMisses+1) intervals.
	DeadMisses int
	// StartupHold is how long a freshly started instance listens before
	// it may claim mastership, so it joins an existing master instead of
	// fighting it. Zero means DeadMisses*HeartbeatInterval (the default).
	// Must not be negative.
	StartupHold time.Duration

	// NoPreempt, like keepalived's nopreempt, stops this instance from
	// taking over from a working master of lower priority. It still
	// becomes master when there is none. Default false (preemption on).
	NoPreempt bool
	// PreemptDelay is how long this instance must continuously see
	// itself preferred over a working master before it takes over.
	// Zero preempts at once (the default). Must not be negative.
	// Ignored when NoPreempt is set.
	PreemptDelay time.Duration

	// SwitchoverTimeout bounds a graceful switchover: if the target has
	// not acknowledged the flushed state within it, the switchover is
	// abandoned and this instance stays master. Zero means
	// 20*HeartbeatInterval (1s with the default). Must not be negative.
	SwitchoverTimeout time.Duration
	// MaxSyncLag is how many state updates a backup may leave
	// unacknowledged before the master stops sending it updates and asks
	// the shell for a full snapshot instead. Zero means 256 (the
	// default).
	MaxSyncLag uint64

	// External hands the decision of who is master to an outside
	// authority, such as an etcd election (see external.go): the machine
	// never claims mastership, never preempts and never hands over by
	// itself; it becomes master only when told (Lead, at the authority's
	// epoch), stops when told (Release) or when fenced by a higher epoch,
	// and follows the peer that claims mastership at the highest epoch
	// the authority or a heartbeat reported (Follow). Heartbeats,
	// liveness and state sync to the backups work as without it.
	// Priority, NoPreempt, PreemptDelay, StartupHold and
	// SwitchoverTimeout are then unused. Default false (the built-in
	// election).
	External bool

	// MaxEpochJump is how far above the highest epoch this instance
	// knows a peer's epoch may be. A heartbeat, sync update or handover
	// further above is refused (Step returns a *Refusal with reason
	// "epoch_jump") and changes nothing: one forged frame cannot push
	// the epoch to the end of its range. Elections raise the epoch by
	// at most the number of instances each, so the default allows tens
	// of thousands of failovers while an instance is away. An instance
	// that was away longer refuses the others until restarted with a
	// larger value. Zero means DefaultMaxEpochJump (65,536).
	MaxEpochJump uint64
}

// DefaultConfig returns a Config with the suggested timings for an
// instance with the given id, priority and peers.
func DefaultConfig(id string, priority uint32, peers ...Peer) Config {
	return Config{
		ID:                id,
		Priority:          priority,
		Peers:             peers,
		HeartbeatInterval: 50 * time.Millisecond, // a heartbeat every 50 ms
		DeadMisses:        3,                     // dead after 150 ms of silence
		StartupHold:       0,                     // listen one dead interval at start
		NoPreempt:         false,                 // the preferred instance takes over
		PreemptDelay:      0,                     // and does so at once
		SwitchoverTimeout: 0,                     // 20 heartbeats: 1 s
		MaxSyncLag:        0,                     // 256 updates
		MaxEpochJump:      0,                     // 65,536 epochs
	}
}

// Validate reports the first problem with c, or nil.
func (c *Config) Validate() error {
	if c.ID == "" {
		return errors.New("election: config: ID is empty")
	}
	if len(c.Peers) == 0 {
		return errors.New("election: config: no peers")
	}
	if len(c.ID) > MaxIDLen {
		return fmt.Errorf("election: config: ID of %d bytes (maximum %d)", len(c.ID), MaxIDLen)
	}
	seen := map[string]bool{c.ID: true}
	for i, p := range c.Peers {
		if p.ID == "" {
			return fmt.Errorf("election: config: peer %d has an empty ID", i)
		}
		if len(p.ID) > MaxIDLen {
			return fmt.Errorf("election: config: peer id of %d bytes (maximum %d)", len(p.ID), MaxIDLen)
		}
		if seen[p.ID] {
			return fmt.Errorf("election: config: duplicate id %q", p.ID)
		}
		seen[p.ID] = true
	}
	if c.HeartbeatInterval <= 0 {
		return fmt.Errorf("election: config: HeartbeatInterval %v must be positive", c.HeartbeatInterval)
	}
	if c.DeadMisses < 1 {
		return fmt.Errorf("election: config: DeadMisses %d must be at least 1", c.DeadMisses)
	}
	if c.StartupHold < 0 {
		return fmt.Errorf("election: config: StartupHold %v must not be negative", c.StartupHold)
	}
	if c.PreemptDelay < 0 {
		return fmt.Errorf("election: config: PreemptDelay %v must not be negative", c.PreemptDelay)
	}
	if c.SwitchoverTimeout < 0 {
		return fmt.Errorf("election: config: SwitchoverTimeout %v must not be negative", c.SwitchoverTimeout)
	}
	return nil
}

// deadAfter is the silence after which a peer is dead.
func (c *Config) deadAfter() time.Duration {
	return time.Duration(c.DeadMisses) * c.HeartbeatInterval
}

func (c *Config) startupHold() time.Duration {
	if c.StartupHold == 0 {
		return c.deadAfter()
	}
	return c.StartupHold
}

func (c *Config) switchoverTimeout() time.Duration {
	if c.SwitchoverTimeout == 0 {
		return 20 * c.HeartbeatInterval
	}
	return c.SwitchoverTimeout
}

func (c *Config) maxEpochJump() uint64 {
	if c.MaxEpochJump == 0 {
		return DefaultMaxEpochJump
	}
	return c.MaxEpochJump
}

func (c *Config) maxSyncLag() uint64 {
	if c.MaxSyncLag == 0 {
		return 256
	}
	return c.MaxSyncLag
}

// members returns every instance id, sorted; an instance's index in it
// is its epoch slot.
func (c *Config) members() []string {
	ids := []string{c.ID}
	for _, p := range c.Peers {
		ids = append(ids, p.ID)
	}
	sort.Strings(ids)
	return ids
}
