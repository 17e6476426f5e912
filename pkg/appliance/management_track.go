package appliance

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hellopics/hellopics/pkg/track"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// startTrack runs the tracked health checks' first runs (all at once,
// waiting at most their longest timeout) and then their loops, on the
// tracker's goroutines; a check that changes state is handed to the
// loop (trackChanged). The election, set up after it, starts from the
// priority and fault state the first runs give. Called from
// StartManagement before startHA.
func (s *Management) startTrack() error {
	prio := s.cfg.Priority
	if len(s.cfg.Track) == 0 {
		s.loop.Do(func() { s.trackPrio = prio })
		return nil
	}
	t, err := track.Start(s.cfg.Track, func(st track.State) {
		s.loop.Post(func() { s.trackChanged(st) })
	})
	if err != nil {
		return err
	}
	s.loop.Do(func() {
		s.tracker = t
		for i, st := range t.States() {
			c := s.cfg.Track[i].WithDefaults()
			args := []any{"component", "mgmt", "step", "track", "check", st.Name, "state", trackState(st.OK), "weight", st.Weight,
				"interval", c.Interval, "fall", c.Fall, "rise", c.Rise}
			if st.OK {
				s.log.Info("tracking a health check", args...)
			} else {
				s.log.Warn("tracked check failing", append(args, "error", st.LastError)...)
			}
		}
		s.trackPrio = prio
		// No election yet: startHA hands it this state before its
		// first tick (startTrackedElection) and tells the scripts.
		s.updateTrack()
	})
	return nil
}

// trackChanged is told, on the loop, that a check changed state (once
// per change): it logs it and carries the new priority and fault state
// to the election.
func (s *Management) trackChanged(st track.State) {
	if s.tracker == nil {
		return
	}
	args := []any{"component", "mgmt", "step", "track", "check", st.Name, "state", trackState(st.OK), "weight", st.Weight}
	if st.OK {
		s.log.Info("tracked check passing again", args...)
	} else {
		s.log.Warn("tracked check failing", append(args, "error", st.LastError)...)
	}
	s.applyTrack(fmt.Sprintf("tracked check %s %s", st.Name, trackState(st.OK)))
}

func trackState(ok bool) string {
	if ok {
		return "ok"
	}
	return "failing"
}

// applyTrack brings the election's priority and fault state in line with
// the checks' states (each is computed afresh from all of them, so a
// change seen early is harmless), and tells the notify scripts. Loop
// goroutine.
func (s *Management) applyTrack(reason string) {
	failing, changed := s.updateTrack()
	if !changed {
		return
	}
	if s.el == nil {
		if len(s.cfg.Peers) == 0 {
			// A single instance stays master (nobody could take over);
			// it reports the fault and runs its notify-fault script.
			s.checkNotify(reason)
		}
		// Else the election is not set up yet (the peers are being
		// reached): it starts from this state (startTrackedElection).
		return
	}
	s.flushApp() // a master may step down: its backups get what it committed first
	now := time.Now()
	if s.fault {
		s.el.SetFault(now, true, "failing: "+strings.Join(failing, ", ")) // steps down first
		s.el.SetPriority(now, s.trackPrio)
	} else {
		s.el.SetPriority(now, s.trackPrio)
		s.el.SetFault(now, false, "")
	}
	s.checkNotify(reason)
	s.drainElection()
}

// updateTrack computes the priority and fault state the checks leave,
// records and logs them, and reports the failing checks and whether
// anything changed. Loop goroutine.
func (s *Management) updateTrack() (failing []string, changed bool) {
	prio, fault, failing := track.Effective(s.cfg.Priority, s.tracker.States())
	if prio == s.trackPrio && fault == s.fault {
		return failing, false
	}
	wasFault := s.fault
	s.trackPrio, s.fault = prio, fault
	args := []any{"component", "mgmt", "step", "track", "priority", prio, "base_priority", s.cfg.Priority,
		"fault", fault, "failing", strings.Join(failing, ", ")}
	switch {
	case fault && !wasFault:
		s.log.Warn("fault state: this instance will not be master while a check of weight 0 fails", args...)
	case !fault && wasFault:
		s.log.Info("fault state over", args...)
	default:
		s.log.Info("election priority changed by the tracked checks", args...)
	}
	return failing, true
}

// trackStatus fills the status's priority, fault and checks. Loop
// goroutine.
func (s *Management) trackStatus(st *hellopicsv1.GetStatusResponse) {
	st.BasePriority = s.cfg.Priority
	st.Priority = s.trackPrio
	st.Fault = s.fault
	if s.fault {
		st.Priority = 0 // what the heartbeats announce
	}
	if s.tracker == nil {
		return
	}
	for _, t := range s.tracker.States() {
		ts := &hellopicsv1.TrackStatus{Name: t.Name, Weight: t.Weight, Ok: t.OK, LastError: t.LastError}
		if !t.Since.IsZero() {
			ts.Since = timestamppb.New(t.Since)
		}
		st.Tracks = append(st.Tracks, ts)
	}
}

// stopTrack stops the checks (killing a running script) and waits for
// their goroutines.
func (s *Management) stopTrack() {
	var t *track.Tracker
	s.loop.Do(func() { t = s.tracker })
	if t != nil {
		t.Close()
	}
}

// startTrackedElection hands the election just set up the priority and
// fault state of the checks' first runs, before its first tick: an
// instance never elects on unknown health. Loop goroutine.
func (s *Management) startTrackedElection() {
	if s.tracker == nil {
		return
	}
	_, _, failing := track.Effective(s.cfg.Priority, s.tracker.States())
	now := time.Now()
	s.el.SetPriority(now, s.trackPrio)
	if s.fault {
		s.el.SetFault(now, true, "failing: "+strings.Join(failing, ", "))
	}
}
