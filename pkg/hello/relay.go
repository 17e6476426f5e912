package hello

import (
	"errors"
	"fmt"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// Relay is the Hello cycle in ctrl or data: it passes each hello on to
// its next hop and remembers the highest number it passed, which the
// component reports to a new master so that no number is used twice.
// A hello goes mgmt -> ctrl -> data -> mgmt (MGMT_CTRL_DATA) or mgmt ->
// data -> ctrl -> mgmt (MGMT_DATA_CTRL). The epoch fence is its
// driver's: the framework refuses a message of an older epoch before it
// gets here. Not safe for concurrent use.
type Relay struct {
	role   hellopicsv1.Role
	pairID string
	maxSeq uint64
}

// Errors of Relay.Forward.
var (
	// ErrOtherPair: the hello names another pair than the component's.
	ErrOtherPair = errors.New("hello of another pair")
	// ErrWrongWay: the hello does not travel this way through the
	// component (its direction and where it came from disagree).
	ErrWrongWay = errors.New("hello travelling the wrong way")
)

// NewRelay returns the relay of the role (ctrl or data) component of
// pair pairID.
func NewRelay(role hellopicsv1.Role, pairID string) (*Relay, error) {
	if role != hellopicsv1.Role_ROLE_CTRL && role != hellopicsv1.Role_ROLE_DATA {
		return nil, fmt.Errorf("hello: a relay is ctrl or data, not %s", RoleName(role))
	}
	if pairID == "" {
		return nil, errors.New("hello: a relay needs its pair id")
	}
	return &Relay{role: role, pairID: pairID}, nil
}

// Forward says where a hello that came from the role from goes next, or
// why it goes nowhere (ErrOtherPair, ErrWrongWay). A hello of the
// component's own pair counts toward LastSeq even when it goes nowhere.
func (r *Relay) Forward(from hellopicsv1.Role, h *hellopicsv1.Hello) (to hellopicsv1.Role, err error) {
	if h.GetPairId() != r.pairID {
		return 0, fmt.Errorf("%w: %.80q, not %q", ErrOtherPair, h.GetPairId(), r.pairID)
	}
	r.maxSeq = max(r.maxSeq, min(h.GetSeq(), SeqLimit-1))
	cd := h.GetDirection() == hellopicsv1.Direction_DIRECTION_MGMT_CTRL_DATA
	dc := h.GetDirection() == hellopicsv1.Direction_DIRECTION_MGMT_DATA_CTRL
	mgmt, ctrl, data := hellopicsv1.Role_ROLE_MGMT, hellopicsv1.Role_ROLE_CTRL, hellopicsv1.Role_ROLE_DATA
	switch {
	case r.role == ctrl && from == mgmt && cd:
		return data, nil
	case r.role == ctrl && from == data && dc:
		return mgmt, nil
	case r.role == data && from == mgmt && dc:
		return ctrl, nil
	case r.role == data && from == ctrl && cd:
		return mgmt, nil
	}
	return 0, fmt.Errorf("%w: %s from %s at %s", ErrWrongWay, h.GetDirection(), RoleName(from), RoleName(r.role))
}

// LastSeq is the highest hello number of this pair the relay saw,
// capped below SeqLimit: what the component reports to a new master.
func (r *Relay) LastSeq() uint64 { return r.maxSeq }
