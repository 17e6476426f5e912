package appliance

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hellopics/hellopics/pkg/election"
	"github.com/hellopics/hellopics/pkg/handshake"
	"github.com/hellopics/hellopics/pkg/notify"
	"github.com/hellopics/hellopics/pkg/pconn"
	"github.com/hellopics/hellopics/pkg/tlsconf"
	"github.com/hellopics/hellopics/pkg/track"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// ManagementConfig configures the management shell (StartManagement):
// the component port, the registry and Hello cycle, and mastership
// among the management instances. The election's fields (ID, Priority,
// Peers, HeartbeatInterval, DeadMisses, NoPreempt, PreemptDelay,
// MaxEpochJump and the rest, documented on election.Config) are
// promoted from the embedded election.Config; its ComponentAddr is
// ignored (the shell sets it from AdvertiseAddr). Start from
// DefaultManagementConfig.
type ManagementConfig struct {
	election.Config

	// App is the application running in mgmt: its handlers, hooks and
	// replicated State. Nil runs none.
	App *App

	// ListenAddr is where ctrl and data connect (host:port). Default ":7300".
	ListenAddr string

	// AdvertiseAddr is the address components should use for this
	// instance, given to them by a backup's redirect. Default: ListenAddr
	// if it names a host, else this host's address toward the first peer.
	AdvertiseAddr string

	// HelloInterval is the period of the Hello cycle, at least 10 ms.
	// Default 1 s.
	HelloInterval time.Duration

	// AppCycle hands the Hello cycle to an application on this API (the
	// mgmt package composes pkg/hellocycle's with App): the registry's
	// own cycle stays off, pairs still become ready. Default false: the
	// handshake machine runs the cycle.
	AppCycle bool

	// CycleView, with AppCycle, is the application's view of its
	// cycle: the pairs' counters and cycle state in the status, the
	// metrics and the summary lines come from it (the mgmt package sets
	// it to pkg/hellocycle's Cycle). Its methods run on the loop.
	CycleView CycleView

	// SyncInterval is the least time between two state syncs to the
	// backups that carry registry changes (docs/ha.md, "State sync"): a
	// change after a quiet spell goes at once, the changes within the
	// interval go together in one delta, each pair once. Longer saves
	// HA bytes and CPU with many pairs; a backup that takes over after a
	// crash has counters up to this old. 0 (the default) is the Hello
	// interval, at most DefaultSyncInterval (100 ms).
	SyncInterval time.Duration

	// IdentifyTimeout closes a session that has not identified itself in
	// time. Default 10 s.
	IdentifyTimeout time.Duration

	// MaxPairs bounds the registry: an Identify that would register a new
	// pair beyond it is refused (counted as
	// hellopics_mgmt_refused_total{reason="too_many_pairs"}). Default 512:
	// at that size a registry with every string at its limit still fits
	// in one 1 MiB state-sync frame.
	MaxPairs int

	// PairExpiry removes a pair from the registry once its ctrl and data
	// have both been gone this long (event pair_expired). Default 10 min;
	// 0 keeps pairs forever.
	PairExpiry time.Duration

	// DeadTimeout is the dead-peer time of component sessions: a
	// component silent this long is declared lost. Default 3 s.
	DeadTimeout time.Duration

	// Transport, if set, is the base pconn configuration (limits); its
	// handlers are replaced.
	Transport *pconn.Config

	// TLS, when set, puts the component port and the HA links under
	// mutual TLS 1.3 with identities checked (docs/security.md): ctrl
	// and data may identify only as the role and pair their certificate
	// names, a peer only as the mgmt id its certificate names. This
	// instance's own certificate must name mgmt/ID. Nil is plaintext.
	TLS *tlsconf.Source

	// Logger is the root logger; the instance logs under "mgmt". Nil
	// discards logs.
	Logger hclog.Logger

	// HAListenAddr is where the other management instances connect for
	// heartbeats and state sync. Required when Peers is not empty.
	HAListenAddr string

	// StateDir holds the epoch file, written atomically and fsynced, so a
	// restarted instance never reuses an epoch. "" keeps the epoch in
	// memory only (tests, demos): a warning is logged.
	StateDir string

	// Version is reported in the operator status.
	Version string

	// RefusalLogInterval is how often at most each kind of refused input
	// (a rule of the handshake or of the election, a transport error) is
	// logged; the ones in between are counted in the metrics and the
	// next line says how many ("suppressed"). 0 logs every one. Default
	// 10 s.
	RefusalLogInterval time.Duration

	// HelloSummaryInterval is how often the master logs, for each
	// running Hello cycle, one INFO line "hello cycle summary" with the
	// hellos sent, received, missed and out of order and the RTT median
	// and 99th percentile over the period. 0 disables it. Default
	// DefaultHelloSummaryInterval (1 min).
	HelloSummaryInterval time.Duration

	// HAAnySource accepts a mgmt peer's connection from any address.
	// By default a connection whose first heartbeat names peer X must
	// come from an IP address of X's configured HA address, so that a
	// stranger cannot speak for X by knowing its name. Set it for peers
	// behind NAT or whose connections leave from another interface.
	HAAnySource bool

	// OnServing, if set, is told (on the loop; it must not block) when
	// this instance starts (true) or stops (false) serving as the
	// master: the operator API's health service follows it.
	OnServing func(master bool)

	// Notify holds the notify scripts run when this instance's state
	// (master, backup, fault), epoch or master changes or is re-asserted
	// (docs/ha.md, "Notify scripts"); its ID and
	// Logger are set by the shell. No command runs none.
	Notify notify.Config

	// Election chooses who decides mastership among the instances:
	// ElectionBuiltin ("" too, the default), the built-in election
	// (heartbeats, priorities), or ElectionEtcd, a campaign on etcd
	// configured by Etcd (docs/ha.md, "Election on etcd"), which needs
	// Peers for the heartbeats and state sync between the instances.
	// The etcd election sets election.Config.External itself; set
	// External only with it.
	Election string

	// Etcd configures the election on etcd (Election "etcd").
	Etcd EtcdConfig

	// Track are the tracked health checks (docs/ha.md, "Tracked
	// health"): each runs on its own goroutine; while one of weight W > 0
	// fails, the election priority is Priority less W (at least 0);
	// while one of weight 0 fails, the instance is in the fault state:
	// never master, and the notify-fault script runs. The instance
	// starts electing only after every check's first run. None: no
	// check.
	Track []track.Check
}

// DefaultSyncInterval bounds the default SyncInterval.
const DefaultSyncInterval = 100 * time.Millisecond

// syncInterval is SyncInterval with its default resolved.
func (c *ManagementConfig) syncInterval() time.Duration {
	if c.SyncInterval > 0 {
		return c.SyncInterval
	}
	return min(c.HelloInterval, DefaultSyncInterval)
}

// DefaultManagementConfig returns the defaults described on
// ManagementConfig and election.DefaultConfig (priority 100, a
// heartbeat every 50 ms, a peer dead after 3 missed).
func DefaultManagementConfig() ManagementConfig {
	return ManagementConfig{
		Config:          election.DefaultConfig("", 100),
		ListenAddr:      ":7300",
		HelloInterval:   handshake.DefaultHelloInterval,
		IdentifyTimeout: handshake.DefaultIdentifyTimeout,
		MaxPairs:        handshake.DefaultMaxPairs,
		PairExpiry:      handshake.DefaultPairExpiry,
		DeadTimeout:     3 * time.Second,

		RefusalLogInterval:   10 * time.Second,
		HelloSummaryInterval: DefaultHelloSummaryInterval,
	}
}

// CycleView is what mgmt reads of a Hello cycle run by an application
// (ManagementConfig.CycleView), on the loop.
type CycleView interface {
	// Counters are a pair's counters, nil for a pair never seen.
	Counters(pairID string) *hellopicsv1.HelloCounters
	// Running reports whether the pair's cycle runs.
	Running(pairID string) bool
}

// Problems lists every invalid field, for the embedding config's
// Validate. The election's own rules (ids, peers) are checked when the
// instance starts, by election.Config.Validate.
func (c *ManagementConfig) Problems() []error {
	var errs []error
	if c.ListenAddr == "" {
		errs = append(errs, errors.New("ListenAddr is empty"))
	}
	if c.HelloInterval < handshake.MinHelloInterval {
		errs = append(errs, fmt.Errorf("HelloInterval %v below the minimum %v", c.HelloInterval, handshake.MinHelloInterval))
	}
	if c.IdentifyTimeout <= 0 {
		errs = append(errs, fmt.Errorf("IdentifyTimeout %v must be positive", c.IdentifyTimeout))
	}
	if c.MaxPairs < 1 {
		errs = append(errs, fmt.Errorf("MaxPairs %d must be at least 1", c.MaxPairs))
	}
	if c.PairExpiry < 0 {
		errs = append(errs, fmt.Errorf("PairExpiry %v must not be negative (0 keeps pairs forever)", c.PairExpiry))
	}
	if c.DeadTimeout < pconn.MinDeadTimeout {
		errs = append(errs, fmt.Errorf("DeadTimeout %v below the minimum %v", c.DeadTimeout, pconn.MinDeadTimeout))
	}
	if len(c.Peers) > 0 && c.HAListenAddr == "" {
		errs = append(errs, errors.New("HAListenAddr is empty but Peers are given"))
	}
	if c.HeartbeatInterval <= 0 {
		errs = append(errs, fmt.Errorf("HeartbeatInterval %v must be positive", c.HeartbeatInterval))
	}
	if c.SyncInterval < 0 {
		errs = append(errs, fmt.Errorf("SyncInterval %v is negative", c.SyncInterval))
	}
	if c.HelloSummaryInterval < 0 {
		errs = append(errs, fmt.Errorf("HelloSummaryInterval %v is negative", c.HelloSummaryInterval))
	}
	if c.RefusalLogInterval < 0 {
		errs = append(errs, fmt.Errorf("RefusalLogInterval %v is negative", c.RefusalLogInterval))
	}
	for _, tc := range c.Track {
		if err := tc.Problem(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.DeadMisses < 1 {
		errs = append(errs, fmt.Errorf("DeadMisses %d must be at least 1", c.DeadMisses))
	}
	switch c.Election {
	case "", ElectionBuiltin:
		if c.External {
			errs = append(errs, errors.New("election.Config.External is set without an outside election (Election \"etcd\")"))
		}
	case ElectionEtcd:
		if len(c.Peers) == 0 {
			errs = append(errs, errors.New("election etcd needs Peers (the other instances, for heartbeats and state sync)"))
		}
		errs = append(errs, c.Etcd.problems()...)
	default:
		errs = append(errs, fmt.Errorf("election %q is neither %q nor %q", c.Election, ElectionBuiltin, ElectionEtcd))
	}
	return errs
}
