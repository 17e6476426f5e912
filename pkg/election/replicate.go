package election

import (
	"errors"
	"fmt"
	"sort"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// ErrNotMaster is returned by operations only a master may perform.
var ErrNotMaster = errors.New("election: not master")

// Replicator keeps the state-sync bookkeeping: on the master it numbers
// SyncUpdates, tracks what every backup acknowledged and decides when a
// backup needs a full snapshot; on a backup it checks that updates
// arrive in order, hands them to the shell to apply, and acknowledges
// them. Like the election it is a pure machine: it never touches the
// state itself (the shell builds the pairs) and never sends anything.
//
// Within a mastership versions grow by one per update; across
// masterships the pair (epoch, version) grows, and a backup takes a
// full snapshot from every new master before any update. A new
// mastership starts by taking a fresh version, so version 0 never
// names real state; a SyncAck with version
// 0 means "I lost track, send me a full snapshot".
//
// An Election owns one Replicator and keeps its role in step; use a
// Replicator directly only in tests or tools.
type Replicator struct {
	self    string
	maxLag  uint64
	master  bool
	epoch   uint64 // master: epoch we send at; backup: lowest epoch accepted
	version uint64 // master: last version assigned; backup: last applied

	backups map[string]*follower // master only

	// backup only
	syncEpoch uint64 // epoch of the master whose state we hold
	needFull  bool

	msgs  []Message
	snaps []string
	apply []*hellopicsv1.SyncUpdate
}

// follower is the master's view of one backup.
type follower struct {
	acked    uint64 // highest version acknowledged
	baseline bool   // a full snapshot went out at this mastership
	pending  bool   // a full snapshot was requested from the shell
}

// NewReplicator returns a Replicator for the instance self, in the
// backup role, that asks for a full snapshot once a backup leaves more
// than maxLag updates unacknowledged (0 means 256).
func NewReplicator(self string, maxLag uint64) *Replicator {
	if maxLag == 0 {
		maxLag = 256
	}
	return &Replicator{self: self, maxLag: maxLag, needFull: true}
}

// BecomeMaster starts replicating at epoch to the given backups: it
// takes a fresh version and asks for a full snapshot for each of them.
func (r *Replicator) BecomeMaster(epoch uint64, backups []string) {
	r.master = true
	r.epoch = epoch
	r.version++
	r.backups = map[string]*follower{}
	for _, id := range backups {
		r.AddBackup(id)
	}
}

// BecomeBackup stops replicating and accepts updates from masters at
// epoch or above. The last applied version is kept, so that a backup
// that later becomes master continues the numbering.
func (r *Replicator) BecomeBackup(epoch uint64) {
	if r.master {
		// Our own state is the newest there is, but the new master will
		// send a snapshot anyway: it cannot know what we hold.
		r.needFull = true
	}
	r.master = false
	r.backups = nil
	r.ObserveEpoch(epoch)
}

// ObserveEpoch raises the lowest epoch a backup accepts updates from.
func (r *Replicator) ObserveEpoch(epoch uint64) {
	if !r.master && epoch > r.epoch {
		r.epoch = epoch
	}
}

// AddBackup starts replicating to a backup that (re)joined: it gets a
// full snapshot before any update. A no-op on a backup or for a backup
// already known.
func (r *Replicator) AddBackup(id string) {
	if !r.master || r.backups[id] != nil {
		return
	}
	f := &follower{}
	r.backups[id] = f
	r.requestSnapshot(id, f)
}

// RemoveBackup forgets a backup that died; if it returns it is added
// again and gets a snapshot.
func (r *Replicator) RemoveBackup(id string) {
	delete(r.backups, id)
}

func (r *Replicator) requestSnapshot(id string, f *follower) {
	f.baseline = false
	if !f.pending {
		f.pending = true
		r.snaps = append(r.snaps, id)
	}
}

// Update assigns the next version to a change of the registry and
// addresses it to every backup that holds a baseline; backups waiting
// for a snapshot skip it (the snapshot will include it). A backup whose
// lag then exceeds the limit is switched to a snapshot. Update returns
// the assigned version. Master only.
func (r *Replicator) Update(pairs []*hellopicsv1.PairStatus, nextSeq uint64) (uint64, error) {
	return r.UpdateWith(&hellopicsv1.SyncUpdate{Pairs: pairs, NextSeq: nextSeq})
}

// UpdateApp assigns the next version to a batch of application state
// updates (pkg/appliance State) and addresses them, as one SyncUpdate
// with app_only set and the registry absent, to the backups like
// Update. Master only.
func (r *Replicator) UpdateApp(updates [][]byte) (uint64, error) {
	return r.UpdateWith(&hellopicsv1.SyncUpdate{AppOnly: true, App: updates})
}

// UpdateWith is Update for a body the shell builds: its pairs,
// next_seq, app_only and app are sent; the machine sets epoch and
// version (full is never set). The backups' copies share the body's
// slices, which belong to the shell. Master only.
func (r *Replicator) UpdateWith(body *hellopicsv1.SyncUpdate) (uint64, error) {
	if !r.master {
		return 0, ErrNotMaster
	}
	r.version++
	for _, id := range r.sortedBackups() {
		f := r.backups[id]
		if !f.baseline {
			continue
		}
		if r.version-f.acked > r.maxLag {
			r.requestSnapshot(id, f)
			continue
		}
		r.msgs = append(r.msgs, Message{To: id, Type: hellopicsv1.HAMsgType_HA_MSG_TYPE_SYNC, Body: r.stamp(body, false)})
	}
	return r.version, nil
}

// stamp returns a copy of body at the current epoch and version.
func (r *Replicator) stamp(body *hellopicsv1.SyncUpdate, full bool) *hellopicsv1.SyncUpdate {
	u := &hellopicsv1.SyncUpdate{Epoch: r.epoch, Version: r.version, Full: full, AppOnly: body.GetAppOnly() && !full,
		Pairs: body.GetPairs(), NextSeq: body.GetNextSeq(), AppSnapshot: body.GetAppSnapshot(), Sequences: body.GetSequences()}
	if !full {
		u.App = body.GetApp()
		u.RemovedPairs = body.GetRemovedPairs()
		u.Delta = body.GetDelta()
	}
	return u
}

// Snapshot addresses a full snapshot of the current state (as of the
// last version) to backup to. Call it for every id in
// Ready.Snapshots. Master only.
func (r *Replicator) Snapshot(to string, pairs []*hellopicsv1.PairStatus, nextSeq uint64) error {
	return r.SnapshotWith(to, &hellopicsv1.SyncUpdate{Pairs: pairs, NextSeq: nextSeq})
}

// SnapshotWith is Snapshot for a body the shell builds: its pairs,
// next_seq and app_snapshot (the application's whole state as of the
// last version) are sent as a full update. Master only.
func (r *Replicator) SnapshotWith(to string, body *hellopicsv1.SyncUpdate) error {
	if !r.master {
		return ErrNotMaster
	}
	f := r.backups[to]
	if f == nil {
		return fmt.Errorf("election: snapshot for %q: not a live backup", to)
	}
	f.pending = false
	f.baseline = true
	r.msgs = append(r.msgs, Message{To: to, Type: hellopicsv1.HAMsgType_HA_MSG_TYPE_SYNC, Body: r.stamp(body, true)})
	return nil
}

// Committed is what every live backup holds (master): the highest
// version acknowledged by every live backup that has a baseline, and
// how many such backups there are. With none, it is the last version
// assigned and 0: nothing is waiting. A backup waiting for a snapshot
// does not count: the snapshot will carry everything. 0, 0 on a backup.
func (r *Replicator) Committed() (version uint64, backups int) {
	if !r.master {
		return 0, 0
	}
	version = r.version
	for _, f := range r.backups {
		if !f.baseline {
			continue
		}
		backups++
		version = min(version, f.acked)
	}
	return version, backups
}

// Reject reports, on a backup, that the shell could not apply u (one of
// Ready.Apply): the backup holds no consistent state until the next full
// snapshot. msgs are the Messages of the same Ready, not yet sent: the
// acknowledgements in them of u's version and later become requests for
// a snapshot (version 0), so that the master never counts an update this
// backup does not hold. Updates after u are refused until the snapshot.
func (r *Replicator) Reject(u *hellopicsv1.SyncUpdate, msgs []Message) {
	if r.master {
		return
	}
	r.needFull = true
	for _, m := range msgs {
		if a, ok := m.Body.(*hellopicsv1.SyncAck); ok && a.GetEpoch() == u.GetEpoch() && a.GetVersion() >= u.GetVersion() {
			a.Version = 0
		}
	}
}

// StepAck handles a SyncAck from a backup. An ack of version 0 asks for
// a full snapshot. Acks for another epoch are stale and ignored.
func (r *Replicator) StepAck(from string, a *hellopicsv1.SyncAck) {
	if !r.master || a.GetEpoch() != r.epoch {
		return
	}
	f := r.backups[from]
	if f == nil {
		return
	}
	v := a.GetVersion()
	if v == 0 {
		r.requestSnapshot(from, f)
		return
	}
	if v > r.version {
		v = r.version // never trust an ack from the future
	}
	if v > f.acked {
		f.acked = v
	}
}

// StepUpdate handles a SyncUpdate on a backup: it accepts a full
// snapshot, or the update that follows the last one applied, from a
// master at or above the accepted epoch, hands it to the shell
// (Ready.Apply) and acknowledges it. A gap asks for a snapshot (ack of
// version 0); a duplicate is acknowledged again; anything from a lower
// epoch is ignored (that master is fenced).
func (r *Replicator) StepUpdate(from string, u *hellopicsv1.SyncUpdate) {
	if r.master || u.GetEpoch() < r.epoch {
		return
	}
	r.epoch = u.GetEpoch()
	ack := func(v uint64) {
		r.msgs = append(r.msgs, Message{To: from, Type: hellopicsv1.HAMsgType_HA_MSG_TYPE_SYNC_ACK, Body: &hellopicsv1.SyncAck{
			Epoch: u.GetEpoch(), Version: v,
		}})
	}
	switch {
	case u.GetFull():
		r.needFull = false
		r.syncEpoch = u.GetEpoch()
		r.version = u.GetVersion()
		r.apply = append(r.apply, u)
		ack(r.version)
	case r.needFull || u.GetEpoch() != r.syncEpoch:
		r.needFull = true
		ack(0)
	case u.GetVersion() == r.version+1:
		r.version = u.GetVersion()
		r.apply = append(r.apply, u)
		ack(r.version)
	case u.GetVersion() <= r.version:
		ack(r.version)
	default:
		r.needFull = true
		ack(0)
	}
}

// Version is the last version assigned (master) or applied (backup).
func (r *Replicator) Version() uint64 { return r.version }

// Acked is the highest version backup id acknowledged at this
// mastership (0 if none or unknown).
func (r *Replicator) Acked(id string) uint64 {
	if f := r.backups[id]; f != nil {
		return f.acked
	}
	return 0
}

// Lag is how many versions backup id has not acknowledged; 0 on a
// backup or for an unknown id.
func (r *Replicator) Lag(id string) uint64 {
	if f := r.backups[id]; f != nil {
		return r.version - f.acked
	}
	return 0
}

// InSync reports whether backup id holds a baseline and acknowledged
// every version.
func (r *Replicator) InSync(id string) bool {
	f := r.backups[id]
	return f != nil && f.baseline && f.acked == r.version
}

// take returns and clears the pending outputs.
func (r *Replicator) take() (msgs []Message, snaps []string, apply []*hellopicsv1.SyncUpdate) {
	msgs, snaps, apply = r.msgs, r.snaps, r.apply
	r.msgs, r.snaps, r.apply = nil, nil, nil
	return msgs, snaps, apply
}

func (r *Replicator) sortedBackups() []string {
	ids := make([]string, 0, len(r.backups))
	for id := range r.backups {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
