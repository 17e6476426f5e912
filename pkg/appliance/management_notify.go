package appliance

import (
	"fmt"

	"github.com/hellopics/hellopics/pkg/notify"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// notified is the state the notify scripts were last told.
type notified struct {
	state  string
	epoch  uint64
	master string
}

// startNotify starts the notify runner when a script is configured.
func (s *Management) startNotify() {
	if s.cfg.Notify.Empty() {
		return
	}
	nc := s.cfg.Notify
	nc.ID = s.cfg.ID
	if nc.Logger == nil {
		nc.Logger = s.log
	}
	s.notifier = notify.New(nc, s.notifyResult)
}

// notifyResult counts a finished script run (runner goroutine).
func (s *Management) notifyResult(r notify.Result) {
	result := "ok"
	switch {
	case r.TimedOut:
		result = "timeout"
	case r.Err != nil:
		result = "failed"
	}
	s.metrics.notifyRuns.WithLabelValues(r.State.State, result).Inc()
	s.metrics.notifySeconds.Observe(r.Duration.Seconds())
}

// currentNotify is the state the scripts should see now, and false while
// there is none to assert (a backup that knows no master yet and was not
// master before: it is electing). Loop goroutine.
func (s *Management) currentNotify() (notified, bool) {
	if s.faulty() {
		return notified{state: notify.Fault, epoch: s.aligned.epoch, master: s.notifyMaster()}, true
	}
	if s.el == nil {
		if !s.aligned.master {
			return notified{}, false
		}
		return notified{state: notify.Master, epoch: s.aligned.epoch, master: s.cfg.ID}, true
	}
	if s.el.Role() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		return notified{state: notify.Master, epoch: s.el.Epoch(), master: s.cfg.ID}, true
	}
	if s.el.Master() == "" && s.lastNotified.state != notify.Master {
		return notified{}, false
	}
	return notified{state: notify.Backup, epoch: s.el.Epoch(), master: s.el.Master()}, true
}

// faulty reports whether a tracked check with weight 0 fails (the fault
// state). Loop goroutine.
func (s *Management) faulty() bool { return s.fault }

func (s *Management) notifyMaster() string {
	if s.el == nil {
		return s.cfg.ID
	}
	return s.el.Master()
}

// checkNotify runs the scripts when the state, the epoch or the master
// differs from what they were last told. Loop goroutine.
func (s *Management) checkNotify(reason string) {
	now, ok := s.currentNotify()
	if !ok || now == s.lastNotified {
		return
	}
	if reason == "" {
		reason = s.lastHAWhy
	}
	if s.lastNotified == (notified{}) {
		reason = "start: " + reason
	}
	s.lastNotified = now
	s.sendNotify(now, reason)
}

// reassertNotify runs the scripts again for the current state even if it
// did not change: the world outside may not match it (a partition
// healed). Loop goroutine.
func (s *Management) reassertNotify(reason string) {
	now, ok := s.currentNotify()
	if !ok {
		return
	}
	s.lastNotified = now
	s.sendNotify(now, reason)
}

func (s *Management) sendNotify(n notified, reason string) {
	s.metrics.notifyState.Reset()
	s.metrics.notifyState.WithLabelValues(n.state).Set(1)
	if s.notifier == nil {
		return
	}
	s.log.Info("running notify scripts", "component", "mgmt", "state", n.state, "epoch", n.epoch, "master", n.master,
		"reason", reason, "step", "notify")
	s.notifier.Notify(notify.State{State: n.state, Epoch: n.epoch, Master: n.master, Reason: reason})
}

// seenMaster is called for every heartbeat of a peer claiming mastership
// while this instance is master. Each such peer at each epoch re-asserts
// the state once: after a partition heals, the master that stays runs
// its notify-master script again (the other steps down and runs
// notify-backup). Loop goroutine.
func (s *Management) seenMaster(peer string, epoch uint64) {
	if s.el.Role() != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		return
	}
	key := fmt.Sprintf("%s@%d", peer, epoch)
	if s.rivals[key] {
		return
	}
	if s.rivals == nil || len(s.rivals) > 64 {
		s.rivals = make(map[string]bool)
	}
	s.rivals[key] = true
	s.reassertNotify(fmt.Sprintf("another master seen: %s at epoch %d", peer, epoch))
}

// stopNotify stops the runner (killing a running script).
func (s *Management) stopNotify() {
	if s.notifier != nil {
		s.notifier.Close()
	}
}
