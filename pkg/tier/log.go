package tier

import (
	"log/slog"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hellopics/hellopics/internal/ratelog"
	"github.com/hellopics/hellopics/pkg/handshake"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// EventLog writes a component's machine events like LogEvent, but
// refusals of bad or hostile input (Event.Refused set) at most once per
// interval per rule, and a backup's redirects at most once per interval
// per pair and role, the next line carrying suppressed=N: a flood of
// forged frames costs a few lines, not one per frame. Safe for
// concurrent use.
//
// Events that repeat on every hello while a link is cut (a hello
// dropped because its next hop is not connected, a hello missed) are
// logged the same way per kind and pair, once per FloodInterval, the
// ones left out at DEBUG; Repeated does it for a shell's own lines.
type EventLog struct {
	log       hclog.Logger
	component string
	refusals  *ratelog.Logger
	floods    *ratelog.Logger
}

// FloodInterval is how often an EventLog writes a repeated event at its
// level: the first at once, then at most one line per interval carrying
// suppressed=N, the others at DEBUG.
const FloodInterval = 10 * time.Second

// NewEventLog returns an EventLog for component writing to log, with
// refusals logged at most once per interval per rule (0 logs them all).
func NewEventLog(log hclog.Logger, component string, interval time.Duration) *EventLog {
	return &EventLog{log: log, component: component, refusals: ratelog.New(log, interval),
		floods: ratelog.NewDebug(log, FloodInterval)}
}

// floodKind reports whether events of kind k repeat once per hello
// while a link is cut.
func floodKind(k handshake.EventKind) bool {
	return k == handshake.EventDropped || k == handshake.EventHelloMissed
}

// Repeated writes a line of the shell's own that may repeat in a loop
// (level Info, Warn or Error; others are written as they are): the
// first with a key at once, then at most one per FloodInterval with
// suppressed=N, the others at DEBUG. key names the kind of line and
// what it is about (a small set: not a sequence number).
func (l *EventLog) Repeated(key string, level hclog.Level, msg string, args ...any) {
	switch level {
	case hclog.Error:
		l.floods.Error(key, msg, args...)
	case hclog.Warn:
		l.floods.Warn(key, msg, args...)
	case hclog.Info:
		l.floods.Info(key, msg, args...)
	default:
		l.log.Log(level, msg, args...)
	}
}

// Log writes ev.
func (l *EventLog) Log(ev handshake.Event) {
	switch {
	case ev.Race:
		LogEvent(l.log, l.component, ev) // at Debug
	case ev.Refused != "":
		msg, args := eventLine(l.component, ev)
		l.refusals.Warn(ev.Refused, msg, args...)
	case floodKind(ev.Kind) && ev.Level() >= slog.LevelWarn:
		// Once per hello while a link is cut: the first, then a line
		// per interval with the count, the rest at DEBUG.
		msg, args := eventLine(l.component, ev)
		key := ev.Kind.String() + ":" + ev.PairID
		if ev.Level() >= slog.LevelError {
			l.floods.Error(key, msg, args...)
		} else {
			l.floods.Warn(key, msg, args...)
		}
	case ev.Kind == handshake.EventRedirect && ev.Level() >= slog.LevelInfo:
		// A backup redirects whoever identifies; a stranger can make it
		// do so in a loop. Each component's redirect is still logged:
		// the key is its pair and role.
		msg, args := eventLine(l.component, ev)
		l.refusals.Info("redirect:"+ev.PairID+":"+ev.Peer.String(), msg, args...)
	default:
		LogEvent(l.log, l.component, ev)
	}
}

// LogEvent writes a machine event as one line at the event's level, with
// the keys component, peer, pair, step, seq, epoch and refused (the last
// three only when set).
func LogEvent(log hclog.Logger, component string, ev handshake.Event) {
	msg, args := eventLine(component, ev)
	switch lvl := ev.Level(); {
	case lvl >= slog.LevelError:
		log.Error(msg, args...)
	case lvl >= slog.LevelWarn:
		log.Warn(msg, args...)
	case lvl >= slog.LevelInfo:
		log.Info(msg, args...)
	default:
		log.Debug(msg, args...)
	}
}

func eventLine(component string, ev handshake.Event) (string, []any) {
	args := []any{"component", component, "step", ev.Kind.String()}
	if ev.Peer != hellopicsv1.Role_ROLE_UNSPECIFIED {
		args = append(args, "peer", handshake.RoleName(ev.Peer))
	}
	if ev.PairID != "" {
		args = append(args, "pair", ev.PairID)
	}
	if ev.Seq != 0 {
		args = append(args, "seq", ev.Seq)
	}
	if ev.Epoch != 0 {
		args = append(args, "epoch", ev.Epoch)
	}
	if ev.Refused != "" {
		args = append(args, "refused", ev.Refused)
	}
	args = append(args, ev.Attrs...)
	msg := ev.Message
	if msg == "" {
		msg = strings.ReplaceAll(ev.Kind.String(), "_", " ")
	}
	return msg, args
}
