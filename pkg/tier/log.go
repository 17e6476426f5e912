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
type EventLog struct {
	log       hclog.Logger
	component string
	refusals  *ratelog.Logger
}

// NewEventLog returns an EventLog for component writing to log, with
// refusals logged at most once per interval per rule (0 logs them all).
func NewEventLog(log hclog.Logger, component string, interval time.Duration) *EventLog {
	return &EventLog{log: log, component: component, refusals: ratelog.New(log, interval)}
}

// Log writes ev.
func (l *EventLog) Log(ev handshake.Event) {
	switch {
	case ev.Race:
		LogEvent(l.log, l.component, ev) // at Debug
	case ev.Refused != "":
		msg, args := eventLine(l.component, ev)
		l.refusals.Warn(ev.Refused, msg, args...)
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
