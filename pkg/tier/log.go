package tier

import (
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/hellopics/hellopics/pkg/handshake"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// RoleName is the short name of a role used in logs: mgmt, ctrl, data.
func RoleName(r hellopicsv1.Role) string {
	switch r {
	case hellopicsv1.Role_ROLE_MGMT:
		return "mgmt"
	case hellopicsv1.Role_ROLE_CTRL:
		return "ctrl"
	case hellopicsv1.Role_ROLE_DATA:
		return "data"
	}
	return "unknown"
}

// LogEvent writes a machine event as one line at the event's level, with
// the keys component, peer, pair, step, seq and epoch (seq and epoch only
// when set).
func LogEvent(log hclog.Logger, component string, ev handshake.Event) {
	args := []any{"component", component, "step", ev.Kind.String()}
	if ev.Peer != hellopicsv1.Role_ROLE_UNSPECIFIED {
		args = append(args, "peer", RoleName(ev.Peer))
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
	msg := ev.Message
	if msg == "" {
		msg = strings.ReplaceAll(ev.Kind.String(), "_", " ")
	}
	switch lvl := ev.Kind.Level(); {
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
