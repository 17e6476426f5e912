package election

import (
	"errors"
	"fmt"
	"net"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// MaxEpoch is the largest epoch the machine ever accepts or takes, from
// a peer or from the epoch file: 2^63-1. Epochs at or above 2^63 are
// refused wherever they come from, so that no arithmetic on an epoch
// can wrap.
const MaxEpoch = 1<<63 - 1

// DefaultMaxEpochJump is Config.MaxEpochJump when it is zero.
const DefaultMaxEpochJump = 1 << 16

// Limits on the strings of HA messages. A message over any of them is
// refused with ErrRefused.
const (
	// MaxIDLen bounds an instance id, in bytes.
	MaxIDLen = 64
	// MaxAddrLen bounds an address (host:port), in bytes.
	MaxAddrLen = 256
)

// ErrRefused is wrapped by the error Step returns for a message it
// refuses because of what it says: an epoch out of range or beyond the
// jump window, a Handover from an instance that is not the master, a
// string over its limit. A refused message changes nothing, not even
// the sender's liveness. The shell should count it (Refusal names the
// reason) and log it, rate-limited.
var ErrRefused = errors.New("election: message refused")

// Refusal is the error Step returns for a refused message. Reason is a
// short machine-readable word for metrics ("epoch_range",
// "epoch_jump", "handover", "field"); Detail is for people.
type Refusal struct {
	Reason string
	Detail string
}

func (r *Refusal) Error() string { return "election: message refused: " + r.Detail }

// Unwrap makes errors.Is(err, ErrRefused) true.
func (r *Refusal) Unwrap() error { return ErrRefused }

func refuse(reason, format string, args ...any) error {
	return &Refusal{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// ValidEpoch reports whether n may be used as an epoch at all.
func ValidEpoch(n uint64) bool { return n <= MaxEpoch }

// checkEpoch refuses an epoch a peer announces that is out of range or
// further above the highest epoch we know than the jump window allows.
// Lower epochs always pass: they are stale, and the machine handles
// them as such.
func (e *Election) checkEpoch(from, what string, epoch uint64) error {
	if !ValidEpoch(epoch) {
		return refuse("epoch_range", "%s from %s carries epoch %d, beyond the maximum %d", what, from, epoch, uint64(MaxEpoch))
	}
	if epoch > e.epoch && epoch-e.epoch > e.cfg.maxEpochJump() {
		return refuse("epoch_jump", "%s from %s carries epoch %d, more than %d above ours (%d); if that instance is right, restart this one with a larger -max-epoch-jump",
			what, from, epoch, e.cfg.maxEpochJump(), e.epoch)
	}
	return nil
}

// checkHeartbeat checks a heartbeat's fields; the epoch is checked
// apart.
func (e *Election) checkHeartbeat(from string, m *hellopicsv1.Heartbeat) error {
	if m.GetId() != from {
		return refuse("field", "heartbeat from %q claims id %.64q", from, m.GetId())
	}
	if mid := m.GetMasterId(); mid != "" && mid != e.cfg.ID && e.peers[mid] == nil {
		return refuse("field", "heartbeat from %s names %.64q master, which is not a member", from, mid)
	}
	if a := m.GetComponentAddr(); a != "" {
		if len(a) > MaxAddrLen {
			return refuse("field", "heartbeat from %s: component address of %d bytes (maximum %d)", from, len(a), MaxAddrLen)
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return refuse("field", "heartbeat from %s: component address %.64q: %v", from, a, err)
		}
	}
	return e.checkEpoch(from, "heartbeat", m.GetEpoch())
}

// nextOwnEpoch returns the next epoch of slot after the highest we
// know, or false if none is left below MaxEpoch.
func (e *Election) nextOwnEpoch(slot uint64) (uint64, bool) {
	n := uint64(len(e.members))
	if e.epoch > MaxEpoch-2*n {
		return 0, false
	}
	return NextEpoch(e.epoch, slot, n), true
}
