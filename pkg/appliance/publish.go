package appliance

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/hellopics/hellopics/pkg/handshake"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// Limits of an application event (Node.Publish).
const (
	// MaxEventKind bounds an event's kind, in bytes.
	MaxEventKind = 64
	// MaxEventMessage bounds an event's message, in bytes.
	MaxEventMessage = 1024
)

// Publisher is implemented by the mgmt shell's Link: it puts an event
// in the operator API's event stream (WatchEvents, `hellopics ctl
// events`).
type Publisher interface {
	Publish(ev *hellopicsv1.WatchEventsResponse)
}

// HelloObserver is implemented by the mgmt shell's Link: the Hello
// cycle's metrics, fed by the application that runs the cycle when the
// registry's own does not (ManagementConfig.AppCycle, pkg/hellocycle).
type HelloObserver interface {
	HelloReturned(pairID string, rtt time.Duration)
	HelloOutage(d time.Duration)
}

// HelloReturned records a returned hello's round trip in mgmt's
// hellopics_hello_rtt_seconds (for the application that runs the Hello
// cycle; a no-op elsewhere). Loop only.
func (n *Node) HelloReturned(pairID string, rtt time.Duration) {
	if o, ok := n.rt.cfg.Link.(HelloObserver); ok && n.rt.cfg.Role == Mgmt {
		o.HelloReturned(pairID, rtt)
	}
}

// HelloOutage records the silence a failover cost a pair's cycle in
// mgmt's hellopics_mgmt_failover_outage_seconds (for the application
// that runs the Hello cycle; a no-op elsewhere). Loop only.
func (n *Node) HelloOutage(d time.Duration) {
	if o, ok := n.rt.cfg.Link.(HelloObserver); ok && n.rt.cfg.Role == Mgmt {
		o.HelloOutage(d)
	}
}

// Publish puts an event in mgmt's operator event stream, beside the
// handshake's and the election's (`hellopics ctl events`), stamped with
// the time and this instance's epoch (mgmt only). kind is a short
// machine-readable name of lower-case letters, digits and "_" (1 to
// MaxEventKind bytes), pairID the pair concerned or "", message one line
// for people (UTF-8, at most MaxEventMessage bytes). Loop only.
func (n *Node) Publish(kind, pairID, message string) error {
	r := n.rt
	pub, ok := r.cfg.Link.(Publisher)
	if !ok || r.cfg.Role != Mgmt {
		return fmt.Errorf("%w: events are published by mgmt", ErrWrongRole)
	}
	if r.stopped {
		return ErrStopped
	}
	if !validKind(kind) {
		return fmt.Errorf("appliance: event kind %.80q: want 1 to %d bytes of a-z, 0-9 and _", kind, MaxEventKind)
	}
	if pairID != "" && !handshake.ValidPairID(pairID) {
		return fmt.Errorf("appliance: event pair id %.80q: not a valid pair id", pairID)
	}
	if len(message) > MaxEventMessage || !utf8.ValidString(message) {
		return fmt.Errorf("appliance: event message of %d bytes: want at most %d bytes of UTF-8", len(message), MaxEventMessage)
	}
	pub.Publish(&hellopicsv1.WatchEventsResponse{Kind: kind, PairId: pairID, Message: message, Epoch: r.stamp()})
	return nil
}

func validKind(k string) bool {
	if k == "" || len(k) > MaxEventKind {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}
