package handshake

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hellopics/hellopics/pkg/hello"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// SessionID names one connection as the shell sees it. The shell chooses
// the values; a machine only compares them. An ID must not be reused for
// another connection while the machine may still know the old one.
type SessionID uint64

// Output is one thing a machine asks its shell to do. It is one of Send,
// Close, Dial, SwitchMgmt or Event. The shell handles the outputs of one
// call in order.
type Output interface {
	isOutput()
}

// Send asks the shell to write Msg as a frame of type Type on Session.
// The machine does not keep or change Msg after returning it.
type Send struct {
	Session SessionID
	Type    hellopicsv1.MsgType
	Msg     proto.Message
}

// Close asks the shell to close Session after writing what was sent on it
// before. The machine has already forgotten the session; the shell may
// still report it down, which is then ignored.
type Close struct {
	Session SessionID
	Reason  string
}

// Dial asks the data shell to connect to the ctrl component at Addr and to
// report the result with Data.CtrlUp or Data.DialFailed. Data has at most
// one dial pending; it asks for the next only after that report.
type Dial struct {
	Addr string
}

// SwitchMgmt asks a ctrl or data shell to connect to the mgmt instance at
// Addr (the master named by a Redirect) instead of the one it used, and to
// report the new session with MgmtUp. Epoch is the master's epoch.
type SwitchMgmt struct {
	Addr  string
	Epoch uint64
}

// Event reports something worth a log line or an operator notice. The shell
// logs it at Kind.Level() with the keys component (the shell's own role),
// peer, pair, step (Kind), seq and epoch.
type Event struct {
	// Kind says what happened; its String is the "step" log key.
	Kind EventKind
	// Peer is the role of the other side concerned, if known.
	Peer hellopicsv1.Role
	// PairID is the pair concerned, if known.
	PairID string
	// Session is the session concerned, if any.
	Session SessionID
	// Seq is the hello number concerned, if any.
	Seq uint64
	// Epoch is the mastership epoch concerned, if any.
	Epoch uint64
	// Message says what happened, for people, in words: the values
	// belong in Attrs.
	Message string
	// Race marks an expected race of a normal start or failover that
	// the sides retry by themselves (data reaching ctrl before mgmt told
	// ctrl the epoch): logged at Debug, refusal or not.
	Race bool
	// Attrs are further key/value pairs for the log line (addr,
	// instance, ...), after the keys above.
	Attrs []any
	// RTT is the round-trip time of a returned hello (EventHelloReturned).
	RTT time.Duration
	// Outage is how long a pair's cycle was silent across a failover
	// (EventOutage).
	Outage time.Duration
	// PeerEpoch is the epoch a refused component has seen, above this
	// mgmt's (EventRejected with RefusedEpochAhead): the shell tells its
	// election, which claims above it.
	PeerEpoch uint64
	// Refused is set when the event reports input refused under one of
	// the rules of this package (bad input, see limits.go): one of the
	// Refused* constants, for the shell to count. Such events log at Warn.
	Refused string
}

// attrString is Attrs as " key=value" pairs, for String.
func (e Event) attrString() string {
	var b strings.Builder
	for i := 0; i+1 < len(e.Attrs); i += 2 {
		fmt.Fprintf(&b, " %v=%v", e.Attrs[i], e.Attrs[i+1])
	}
	return b.String()
}

// Attr returns the value of key in Attrs as a string, "" if absent.
func (e Event) Attr(key string) string {
	for i := 0; i+1 < len(e.Attrs); i += 2 {
		if k, ok := e.Attrs[i].(string); ok && k == key {
			return fmt.Sprint(e.Attrs[i+1])
		}
	}
	return ""
}

// Level is the log level of the event: Warn for a refusal, Debug for the loss of a session that never identified, else its
// Kind's level.
func (e Event) Level() slog.Level {
	if e.Race {
		return slog.LevelDebug
	}
	if e.Refused != "" && e.Kind.Level() < slog.LevelWarn {
		return slog.LevelWarn
	}
	if e.Kind == EventDown && e.PairID == "" {
		// A connection that never identified: a scanner, a stray or a
		// flood. The transport logs and counts what it did wrong,
		// rate-limited; one line each here would undo that.
		return slog.LevelDebug
	}
	return e.Kind.Level()
}

func (Send) isOutput()       {}
func (Close) isOutput()      {}
func (Dial) isOutput()       {}
func (SwitchMgmt) isOutput() {}
func (Event) isOutput()      {}

// String formats the event for tests and debugging.
func (e Event) String() string {
	if e.Refused != "" {
		return fmt.Sprintf("%s peer=%s pair=%q session=%d seq=%d epoch=%d refused=%s: %s%s",
			e.Kind, RoleName(e.Peer), e.PairID, e.Session, e.Seq, e.Epoch, e.Refused, e.Message, e.attrString())
	}
	return fmt.Sprintf("%s peer=%s pair=%q session=%d seq=%d epoch=%d: %s%s",
		e.Kind, RoleName(e.Peer), e.PairID, e.Session, e.Seq, e.Epoch, e.Message, e.attrString())
}

// EventKind classifies an Event. ONLY APPEND TO THIS LIST: shells and tests
// may match on the values.
type EventKind int

const (
	// EventIgnored: a message was ignored (before identification, malformed,
	// of an unknown type or unexpected where it arrived).
	EventIgnored EventKind = iota + 1
	// EventRejected: an identity was refused, or the other side refused ours.
	EventRejected
	// EventIdentified: a session identified itself and was accepted.
	EventIdentified
	// EventPeer: a peer address was sent (mgmt) or learned (data).
	EventPeer
	// EventReady: a component reported ready.
	EventReady
	// EventCycleStarted: a pair's Hello cycle started.
	EventCycleStarted
	// EventCycleStopped: a pair's Hello cycle stopped; Message says why.
	EventCycleStopped
	// EventHelloSent: mgmt sent a hello.
	EventHelloSent
	// EventHelloReturned: a hello came back to mgmt with the expected number.
	EventHelloReturned
	// EventHelloMissed: a hello did not come back before the next was due.
	EventHelloMissed
	// EventHelloOutOfOrder: a hello came back with an unexpected number.
	EventHelloOutOfOrder
	// EventHelloForwarded: ctrl or data passed a hello on.
	EventHelloForwarded
	// EventDropped: a message was dropped because its next hop is missing.
	EventDropped
	// EventStaleEpoch: a message from a lower epoch was dropped, or a
	// component has seen a higher epoch than this mgmt.
	EventStaleEpoch
	// EventRedirect: a backup mgmt redirected a component, or a component
	// was redirected.
	EventRedirect
	// EventDown: a session or component was lost.
	EventDown
	// EventUp: a session was established.
	EventUp
	// EventMastership: the mgmt machine's mastership or epoch changed.
	EventMastership
	// EventPairExpired: mgmt removed a pair whose components had both been
	// gone for MgmtConfig.PairExpiry.
	EventPairExpired
	// EventHeld: a backup that knows no live master holds a component's
	// Identify instead of redirecting it; it answers it the moment it
	// becomes master or learns the master (SetMastership).
	EventHeld
	// EventOutage: the first hello came back under a new master; Outage
	// is the time since the old master's last returned hello, and the
	// hellos due in between were counted as missed.
	EventOutage
	// EventWatch: a watch session opened or closed, or an Elected on one
	// was not acted on (a component switching to the new master reports
	// EventRedirect).
	EventWatch
	// EventPairReady: both components of a pair are ready, with the
	// machine's own cycle off (MgmtConfig.NoCycle; with it on,
	// EventCycleStarted says so).
	EventPairReady
	// EventPairLost: a ready pair lost a component, with the cycle off
	// (else EventCycleStopped); Message says why.
	EventPairLost
)

var eventKindNames = map[EventKind]string{
	EventIgnored:         "ignored",
	EventRejected:        "rejected",
	EventIdentified:      "identified",
	EventPeer:            "peer",
	EventReady:           "ready",
	EventCycleStarted:    "cycle_started",
	EventCycleStopped:    "cycle_stopped",
	EventHelloSent:       "hello_sent",
	EventHelloReturned:   "hello_returned",
	EventHelloMissed:     "hello_missed",
	EventHelloOutOfOrder: "hello_out_of_order",
	EventHelloForwarded:  "hello_forwarded",
	EventDropped:         "dropped",
	EventStaleEpoch:      "stale_epoch",
	EventRedirect:        "redirect",
	EventDown:            "down",
	EventUp:              "up",
	EventMastership:      "mastership",
	EventPairExpired:     "pair_expired",
	EventHeld:            "held",
	EventOutage:          "outage",
	EventWatch:           "watch",
	EventPairReady:       "pair_ready",
	EventPairLost:        "pair_lost",
}

// String returns the kind's log name, such as "hello_missed".
func (k EventKind) String() string {
	if s, ok := eventKindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Level is the log level a shell should use: Debug for the per-hello
// events of a healthy cycle, Warn for losses and refusals, Info otherwise.
func (k EventKind) Level() slog.Level {
	switch k {
	case EventHelloSent, EventHelloReturned, EventHelloForwarded, EventUp, EventHeld, EventWatch,
		EventPairReady, EventPairLost:
		// PairReady and PairLost: the application running the cycle
		// tells the story (its cycle started or stopped).
		return slog.LevelDebug
	case EventIgnored, EventMastership:
		// An ignored message without a refusal is a race of a normal
		// start or failover (a frame on a session just closed, a
		// repeated identify): Debug; a refusal is raised to Warn by
		// Event.Level. Mastership echoes what the shell told the
		// machine; the election's own events tell it at INFO.
		return slog.LevelDebug
	case EventHelloMissed, EventHelloOutOfOrder, EventRejected, EventStaleEpoch,
		EventDropped, EventDown, EventCycleStopped, EventOutage:
		return slog.LevelWarn
	default:
		return slog.LevelInfo
	}
}

// NewMessage returns an empty message of the Go type that frames of type t
// carry, for the shell to unmarshal a frame into. It returns false for a
// type this package does not know; the shell should log and skip the frame.
func NewMessage(t hellopicsv1.MsgType) (proto.Message, bool) {
	switch t {
	case hellopicsv1.MsgType_MSG_TYPE_ID:
		return new(hellopicsv1.Identify), true
	case hellopicsv1.MsgType_MSG_TYPE_GET_PEER:
		return new(hellopicsv1.GetPeer), true
	case hellopicsv1.MsgType_MSG_TYPE_PEER:
		return new(hellopicsv1.Peer), true
	case hellopicsv1.MsgType_MSG_TYPE_READY:
		return new(hellopicsv1.Ready), true
	case hellopicsv1.MsgType_MSG_TYPE_HELLO:
		return new(hellopicsv1.Hello), true
	case hellopicsv1.MsgType_MSG_TYPE_REDIRECT:
		return new(hellopicsv1.Redirect), true
	case hellopicsv1.MsgType_MSG_TYPE_REPORT:
		return new(hellopicsv1.Report), true
	case hellopicsv1.MsgType_MSG_TYPE_REJECT:
		return new(hellopicsv1.Reject), true
	case hellopicsv1.MsgType_MSG_TYPE_ELECTED:
		return new(hellopicsv1.Elected), true
	}
	return nil, false
}

// checkMessage reports whether msg is of the Go type that frames of type t
// carry.
func checkMessage(t hellopicsv1.MsgType, msg proto.Message) bool {
	want, ok := NewMessage(t)
	if !ok || msg == nil {
		return false
	}
	return want.ProtoReflect().Descriptor() == msg.ProtoReflect().Descriptor()
}

// RoleName is the short name of a role used in logs and events: mgmt,
// ctrl, data ("unknown" otherwise).
func RoleName(r hellopicsv1.Role) string { return hello.RoleName(r) }

// outputs accumulates a call's outputs; the machines' methods append to it
// and return the slice.
type outputs []Output

func (o *outputs) send(s SessionID, t hellopicsv1.MsgType, m proto.Message) {
	*o = append(*o, Send{Session: s, Type: t, Msg: m})
}

func (o *outputs) event(e Event) {
	*o = append(*o, e)
}
