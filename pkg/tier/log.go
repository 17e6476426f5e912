package tier

import (
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/hellopics/hellopics/pkg/handshake"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// LogEvent writes a machine event as one line at the event's level, with
// the keys component, peer, pair, step, seq and epoch (seq and epoch only
// when set).
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
