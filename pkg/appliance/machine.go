package appliance

import (
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hellopics/hellopics/pkg/handshake"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// machine is the handshake machine of a component's role, as the shell
// drives it: handshake.Ctrl and handshake.Data take their inputs in
// slightly different forms.
type machine interface {
	mgmtUp(id handshake.SessionID, now time.Time) []handshake.Output
	mgmtDown(id handshake.SessionID, reason string, now time.Time) []handshake.Output
	peerUp(id handshake.SessionID, remote string, now time.Time) []handshake.Output
	peerDown(id handshake.SessionID, reason string, now time.Time) []handshake.Output
	receive(id handshake.SessionID, t hellopicsv1.MsgType, msg proto.Message, now time.Time) []handshake.Output
	tick(now time.Time) []handshake.Output
	nextDeadline() (time.Time, bool)
	ready() bool
	epoch() uint64
	peerSession() (handshake.SessionID, bool)
	// AdmitApp fences an application message by its epoch (handshake
	// Ctrl and Data).
	AdmitApp(from hellopicsv1.Role, epoch uint64) bool
	// WatchIdentify and MasterElected: the watch sessions (handshake
	// Ctrl and Data).
	WatchIdentify() *hellopicsv1.Identify
	MasterElected(addr string, epoch uint64) []handshake.Output
}

// ctrlMachine adapts handshake.Ctrl: no clock, no deadlines.
type ctrlMachine struct{ *handshake.Ctrl }

func (m ctrlMachine) mgmtUp(id handshake.SessionID, _ time.Time) []handshake.Output {
	return m.MgmtUp(id)
}

func (m ctrlMachine) mgmtDown(id handshake.SessionID, r string, _ time.Time) []handshake.Output {
	return m.MgmtDown(id, r)
}

func (m ctrlMachine) peerUp(id handshake.SessionID, remote string, _ time.Time) []handshake.Output {
	return m.DataUp(id, remote)
}

func (m ctrlMachine) peerDown(id handshake.SessionID, r string, _ time.Time) []handshake.Output {
	return m.DataDown(id, r)
}

func (m ctrlMachine) receive(id handshake.SessionID, t hellopicsv1.MsgType, msg proto.Message, _ time.Time) []handshake.Output {
	return m.Receive(id, t, msg)
}

func (m ctrlMachine) tick(time.Time) []handshake.Output        { return nil }
func (m ctrlMachine) nextDeadline() (time.Time, bool)          { return time.Time{}, false }
func (m ctrlMachine) ready() bool                              { return m.Ready() }
func (m ctrlMachine) epoch() uint64                            { return m.Epoch() }
func (m ctrlMachine) peerSession() (handshake.SessionID, bool) { return m.DataSession() }

// dataMachine adapts handshake.Data.
type dataMachine struct{ *handshake.Data }

func (m dataMachine) mgmtUp(id handshake.SessionID, now time.Time) []handshake.Output {
	return m.MgmtUp(id, now)
}

func (m dataMachine) mgmtDown(id handshake.SessionID, r string, now time.Time) []handshake.Output {
	return m.MgmtDown(id, r, now)
}

func (m dataMachine) peerUp(id handshake.SessionID, _ string, now time.Time) []handshake.Output {
	return m.CtrlUp(id, now)
}

func (m dataMachine) peerDown(id handshake.SessionID, r string, now time.Time) []handshake.Output {
	return m.CtrlDown(id, r, now)
}

func (m dataMachine) receive(id handshake.SessionID, t hellopicsv1.MsgType, msg proto.Message, now time.Time) []handshake.Output {
	return m.Receive(id, t, msg, now)
}

func (m dataMachine) tick(now time.Time) []handshake.Output    { return m.Tick(now) }
func (m dataMachine) nextDeadline() (time.Time, bool)          { return m.NextDeadline() }
func (m dataMachine) ready() bool                              { return m.Ready() }
func (m dataMachine) epoch() uint64                            { return m.Epoch() }
func (m dataMachine) peerSession() (handshake.SessionID, bool) { return m.CtrlSession() }
