package handshake

import (
	"fmt"

	"github.com/hellopics/hellopics/pkg/hello"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// fence remembers the highest mastership epoch a ctrl or data machine has
// seen, so that messages from a deposed master can be dropped.
type fence struct {
	epoch uint64
	// relay passes hellos on (pkg/hello) and keeps the highest number
	// forwarded, capped below SeqLimit, reported in Identify so that a
	// new master never reuses one.
	relay *hello.Relay
}

// newFence returns the fence of the role component of pair pairID.
func newFence(role hellopicsv1.Role, pairID string) (fence, error) {
	r, err := hello.NewRelay(role, pairID)
	if err != nil {
		return fence{}, err
	}
	return fence{relay: r}, nil
}

// maxSeq is the highest hello number forwarded.
func (f *fence) maxSeq() uint64 { return f.relay.LastSeq() }

// admit reports whether a message stamped with epoch e may be acted on.
// Only mgmt raises the fence (from is ROLE_MGMT): a higher epoch from ctrl
// or data is let through without raising it, since fence epochs are
// mgmt's to give. An epoch at or above EpochLimit is refused from anyone.
// On refusal it records an event.
func (f *fence) admit(out *outputs, e uint64, what string, from hellopicsv1.Role, pairID string, s SessionID, seq uint64) bool {
	if e >= EpochLimit {
		out.event(Event{Kind: EventIgnored, Peer: from, PairID: pairID, Session: s, Seq: seq, Epoch: e, Refused: RefusedEpochRange,
			Message: fmt.Sprintf("dropped %s with an epoch out of range", what)})
		return false
	}
	if e < f.epoch {
		out.event(Event{Kind: EventStaleEpoch, Peer: from, PairID: pairID, Session: s, Seq: seq, Epoch: e,
			Message: "message of an older epoch dropped", Attrs: []any{"what", what, "known_epoch", f.epoch}})
		return false
	}
	if from == hellopicsv1.Role_ROLE_MGMT {
		f.epoch = e
	}
	return true
}

// admitApp is admit for an application message: the same fence as
// hellos, no event (the application runtime counts and logs a refusal).
func (f *fence) admitApp(from hellopicsv1.Role, e uint64) bool {
	var out outputs
	return f.admit(&out, e, "application message", from, "", 0, 0)
}

// redirect handles a Redirect from the mgmt session s: it closes s and, if
// a master is named, asks the shell to switch to it. It reports whether
// the session was given up.
func (f *fence) redirect(out *outputs, s SessionID, r *hellopicsv1.Redirect, pairID string) bool {
	if a := r.GetMasterAddr(); !printable(a, MaxAddrLen, false) {
		out.event(Event{Kind: EventIgnored, Peer: hellopicsv1.Role_ROLE_MGMT, PairID: pairID, Session: s, Epoch: r.GetEpoch(), Refused: RefusedAddr,
			Message: "dropped redirect with an invalid master address"})
		return false
	}
	if !f.admit(out, r.GetEpoch(), "redirect", hellopicsv1.Role_ROLE_MGMT, pairID, s, 0) {
		return false
	}
	*out = append(*out, Close{Session: s, Reason: "redirected by a backup mgmt"})
	if r.GetMasterAddr() == "" {
		out.event(Event{Kind: EventRedirect, Peer: hellopicsv1.Role_ROLE_MGMT, PairID: pairID, Session: s, Epoch: r.GetEpoch(),
			Message: "mgmt is a backup and knows no master; retrying later"})
		return true
	}
	*out = append(*out, SwitchMgmt{Addr: r.GetMasterAddr(), Epoch: r.GetEpoch()})
	out.event(Event{Kind: EventRedirect, Peer: hellopicsv1.Role_ROLE_MGMT, PairID: pairID, Session: s, Epoch: r.GetEpoch(),
		Message: "mgmt is a backup; switching to the master", Attrs: []any{"master_addr", Sanitize(r.GetMasterAddr())}})
	return true
}

// elected handles an Elected heard on a watch session to the mgmt at
// addr (an address from the shell's own configuration). A mastership
// above every epoch seen raises the fence, closes the mgmt session (s, if
// up) and asks the shell to switch to addr; anything else is old news. It
// reports whether the session was given up.
func (f *fence) elected(out *outputs, s SessionID, up bool, addr string, epoch uint64, pairID string) bool {
	if epoch >= EpochLimit {
		out.event(Event{Kind: EventIgnored, Peer: hellopicsv1.Role_ROLE_MGMT, PairID: pairID, Epoch: epoch, Refused: RefusedEpochRange,
			Message: "dropped an elected with an epoch out of range from " + addr})
		return false
	}
	if epoch <= f.epoch {
		out.event(Event{Kind: EventWatch, Peer: hellopicsv1.Role_ROLE_MGMT, PairID: pairID, Epoch: epoch,
			Message: fmt.Sprintf("mgmt at %s elected at epoch %d, not above %d: nothing to do", addr, epoch, f.epoch)})
		return false
	}
	f.epoch = epoch
	if up {
		*out = append(*out, Close{Session: s, Reason: "a new master was elected"})
	}
	*out = append(*out, SwitchMgmt{Addr: addr, Epoch: epoch})
	out.event(Event{Kind: EventRedirect, Peer: hellopicsv1.Role_ROLE_MGMT, PairID: pairID, Session: s, Epoch: epoch,
		Message: "a new master was elected; switching to it", Attrs: []any{"master_addr", addr}})
	return up
}

func ignored(out *outputs, from hellopicsv1.Role, pairID string, s SessionID, format string, args ...any) {
	out.event(Event{Kind: EventIgnored, Peer: from, PairID: pairID, Session: s, Message: fmt.Sprintf(format, args...)})
}

// refusedMsg reports a message dropped under rule refused.
func refusedMsg(out *outputs, refused string, from hellopicsv1.Role, pairID string, s SessionID, format string, args ...any) {
	out.event(Event{Kind: EventIgnored, Peer: from, PairID: pairID, Session: s, Refused: refused, Message: fmt.Sprintf(format, args...)})
}

// hop is one leg of a hello through ctrl or data: where it comes from
// and where it goes (the relay checks that the hello travels that way).
type hop struct {
	from, to    hellopicsv1.Role
	fromSession SessionID
	toSession   SessionID
	toUp        bool
	pairID      string
}

// forwardHello passes h on along hp: it must pass the epoch fence and
// travel in hp's direction, and the next hop must be connected.
func (f *fence) forwardHello(out *outputs, h *hellopicsv1.Hello, hp hop) {
	if h.GetPairId() != hp.pairID {
		refusedMsg(out, RefusedWrongPair, hp.from, hp.pairID, hp.fromSession, "dropped hello %d of another pair", h.GetSeq())
		return
	}
	if !f.admit(out, h.GetEpoch(), "hello", hp.from, hp.pairID, hp.fromSession, h.GetSeq()) {
		return
	}
	from, to := RoleName(hp.from), RoleName(hp.to)
	if next, err := f.relay.Forward(hp.from, h); err != nil || next != hp.to {
		ignored(out, hp.from, hp.pairID, hp.fromSession, "hello %d from %s travelling %s", h.GetSeq(), from, h.GetDirection())
		return
	}
	if !hp.toUp {
		out.event(Event{Kind: EventDropped, Peer: hp.from, PairID: hp.pairID, Session: hp.fromSession, Seq: h.GetSeq(), Epoch: h.GetEpoch(),
			Message: "hello dropped: the next hop is not connected", Attrs: []any{"to", to}})
		return
	}
	out.send(hp.toSession, hellopicsv1.MsgType_MSG_TYPE_HELLO, h)
	out.event(Event{Kind: EventHelloForwarded, Peer: hp.to, PairID: hp.pairID, Session: hp.toSession, Seq: h.GetSeq(), Epoch: h.GetEpoch(),
		Message: from + " -> " + to})
}
