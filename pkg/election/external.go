package election

import (
	"errors"
	"fmt"
	"time"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// ErrExternal is returned by Switchover when Config.External is set:
// the outside authority decides who is master, so the shell must ask it
// (an etcd election: resign).
var ErrExternal = errors.New("election: mastership is decided by an outside authority")

// ErrStaleEpoch is returned by Lead for an epoch at or below the
// highest this instance knows: becoming master there would not fence
// the masters before it.
var ErrStaleEpoch = errors.New("election: epoch not above the highest known")

// Lead tells a machine with Config.External, at now, that the authority
// made this instance master at epoch (an etcd election: the create
// revision of this instance's leader key). The machine becomes master
// at once, announces it in a heartbeat to every peer and, as after an
// election, asks for a snapshot for every live backup. It returns
// ErrStaleEpoch for an epoch at or below the highest known (the shell
// should give the leadership up and campaign again, for a higher one),
// an error in the fault state or without Config.External, and nil,
// changing nothing, when it is already master at epoch. why is the
// event's reason.
func (e *Election) Lead(now time.Time, epoch uint64, why string) error {
	if !e.cfg.External {
		return errors.New("election: Lead without Config.External")
	}
	e.advance(now)
	if e.role == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER && e.masterEpoch == epoch {
		return nil
	}
	if !ValidEpoch(epoch) {
		return fmt.Errorf("election: epoch %d beyond the maximum %d", epoch, uint64(MaxEpoch))
	}
	if epoch <= e.epoch || epoch <= e.lastOwn {
		return fmt.Errorf("%w: %d, known %d", ErrStaleEpoch, epoch, max(e.epoch, e.lastOwn))
	}
	if e.fault {
		return errors.New("election: in the fault state: not taking mastership")
	}
	e.becomeMaster(epoch, why)
	e.evaluate()
	return nil
}

// Follow tells a machine with Config.External, at now, that the
// authority names leader as master at epoch. The epoch is adopted as
// the highest known (and persisted) when it is higher: a master at a
// lower epoch steps down (fenced). The machine then follows the live
// peer that claims mastership at the highest epoch known, as its
// heartbeats announce it: leader itself, once its heartbeat arrives.
// A leader naming this instance at an epoch it is not master at (the
// key of a previous run, until its lease expires) only raises the
// epoch. Unlike a heartbeat, the epoch is not checked against
// Config.MaxEpochJump: the authority is trusted.
func (e *Election) Follow(now time.Time, leader string, epoch uint64) error {
	if !e.cfg.External {
		return errors.New("election: Follow without Config.External")
	}
	if !ValidEpoch(epoch) {
		return fmt.Errorf("election: epoch %d beyond the maximum %d", epoch, uint64(MaxEpoch))
	}
	e.advance(now)
	if epoch == e.masterEpoch && e.role == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		return nil // our own leadership
	}
	e.observe(epoch, fmt.Sprintf("the election authority (leader %.64q)", leader))
	e.evaluate()
	return nil
}

// Release tells a machine with Config.External, at now, that this
// instance is no longer master by the authority's word: its lease was
// lost, or may be about to be, or it resigned (why says which). A
// master steps down at once (EventSteppedDown) and follows whatever
// master the heartbeats and Follow name next; otherwise nothing
// changes.
func (e *Election) Release(now time.Time, why string) {
	e.advance(now)
	if e.role == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		e.stepDown(why)
		e.evaluate()
	}
}

// External reports whether an outside authority decides mastership
// (Config.External).
func (e *Election) External() bool { return e.cfg.External }
