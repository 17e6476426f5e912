package tier

import (
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/hellopics/hellopics/pkg/handshake"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// LogEvent writes a machine event as one line at the event's level, with
// the keys component, peer, pair, step, seq, epoch and refused (the last
// three only when set).
func LogEvent(log hclog.Logger, component string, ev handshake.Event) {
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
		// Refusals of hostile input log at WARN. TODO(issue 10): rate-limit
		// them here, keyed by component and ev.Refused, once
		// internal/ratelog exists.
		args = append(args, "refused", ev.Refused)
	}
	msg := ev.Message
	if msg == "" {
		msg = strings.ReplaceAll(ev.Kind.String(), "_", " ")
	}
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
