package appliance

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"unicode/utf8"
)

// Limits of the application's sequences (Node.Sequence).
const (
	// MaxSequences is how many sequences one application may have.
	MaxSequences = 64
	// MaxSequenceName bounds a sequence's name, in bytes.
	MaxSequenceName = 64
	// SequenceReserve is how far ahead of the numbers in use the master
	// tells its backups where each sequence stands: a master that took
	// over starts there, above every number the old one could have
	// handed out. The master syncs again once half of it is used.
	SequenceReserve = 4096
)

// ErrSequenceExhausted: a sequence reached the end of its range (it
// hands out numbers below 2^64 - SequenceReserve).
var ErrSequenceExhausted = errors.New("appliance: sequence exhausted")

// seqLimit is the first number a sequence never hands out: room for the
// reserve above the last one.
const seqLimit = math.MaxUint64 - SequenceReserve

// Sequence is a replicated counter on mgmt: the numbers Next hands out
// grow, and none is handed out twice, by this master or by any later
// one, across switchovers and crash failovers, as long as the new
// master had a sync from the old one (a backup in sync). It is the
// scheme the Hello cycle numbers its hellos by: the master tells its
// backups, in every registry sync, a mark SequenceReserve above the
// next number; a new master starts at the highest mark it was told.
// Numbers are not dense: a failover skips up to SequenceReserve of them.
//
// A single management instance (no peers) has no backup to tell, and a
// restart starts its sequences again at 1: feed them the numbers seen
// elsewhere with Observe (the Hello cycle takes the highest hello number
// ctrl and data report). Loop only, like the Node.
type Sequence struct {
	rt   *Runtime
	name string
	next uint64 // the next number to hand out
	told uint64 // the mark the backups were last told (0: none yet)
}

// Sequence returns the application's sequence called name, creating it
// the first time (mgmt only). Create each sequence on every instance,
// from OnStart: a backup keeps the marks it is told for the sequence
// even before the application created it.
func (n *Node) Sequence(name string) (*Sequence, error) {
	r := n.rt
	if r.cfg.Role != Mgmt {
		return nil, fmt.Errorf("%w: sequences live on mgmt", ErrWrongRole)
	}
	if q := r.seqs[name]; q != nil {
		return q, nil
	}
	if err := checkSequenceName(name); err != nil {
		return nil, err
	}
	if len(r.seqs) >= MaxSequences {
		return nil, fmt.Errorf("appliance: sequence %q: at most %d sequences", name, MaxSequences)
	}
	q := &Sequence{rt: r, name: name, next: max(1, r.seqMarks[name])}
	if r.seqs == nil {
		r.seqs = make(map[string]*Sequence)
	}
	r.seqs[name] = q
	return q, nil
}

func checkSequenceName(name string) error {
	if name == "" || len(name) > MaxSequenceName || !utf8.ValidString(name) {
		return fmt.Errorf("appliance: sequence name %.80q: want 1 to %d bytes of UTF-8", name, MaxSequenceName)
	}
	return nil
}

// Name is the sequence's name.
func (q *Sequence) Name() string { return q.name }

// Next hands out the next number (the first is 1), on the master only
// (ErrNotMaster elsewhere).
func (q *Sequence) Next() (uint64, error) {
	r := q.rt
	if r.stopped {
		return 0, ErrStopped
	}
	if !r.master {
		return 0, ErrNotMaster
	}
	if q.next >= seqLimit {
		return 0, fmt.Errorf("%w: %s", ErrSequenceExhausted, q.name)
	}
	v := q.next
	q.next++
	q.checkLow()
	return v, nil
}

// Peek is the number Next would hand out now.
func (q *Sequence) Peek() uint64 { return q.next }

// Observe makes sure Next never hands out v or a number below it: for
// numbers learned elsewhere (from components that outlived a master).
func (q *Sequence) Observe(v uint64) {
	if v >= q.next {
		q.next = min(v, seqLimit-1) + 1
		q.checkLow()
	}
}

// checkLow asks the shell for a sync, once until it comes, when the
// master's numbers run low.
func (q *Sequence) checkLow() {
	r := q.rt
	if r.master && !r.seqSyncAsked && q.low() && r.cfg.OnSequenceLow != nil {
		r.seqSyncAsked = true
		r.cfg.OnSequenceLow()
	}
}

// low reports whether the numbers in use came within half the reserve
// of what the backups were told.
func (q *Sequence) low() bool {
	return q.next > q.told || q.told-q.next < SequenceReserve/2
}

// SequencesLow reports whether a sequence's numbers in use came within
// half the reserve of the mark the backups were told: the mgmt shell
// syncs at once. Loop only.
func (r *Runtime) SequencesLow() bool {
	if !r.master {
		return false
	}
	for _, q := range r.seqs {
		if q.low() {
			return true
		}
	}
	return false
}

// SequenceMarks returns, for a sync to the backups, each sequence's mark
// (its next number plus SequenceReserve) and records them as told. The
// marks of sequences the application has not created here are passed
// on as they were received. nil without sequences. Loop only, master.
func (r *Runtime) SequenceMarks() map[string]uint64 {
	if len(r.seqs) == 0 && len(r.seqMarks) == 0 {
		return nil
	}
	r.seqSyncAsked = false
	out := make(map[string]uint64, len(r.seqs)+len(r.seqMarks))
	for name, m := range r.seqMarks {
		out[name] = m
	}
	for name, q := range r.seqs {
		q.told = max(q.told, q.next+SequenceReserve)
		out[name] = q.told
	}
	return out
}

// RestoreSequences records the marks a sync from the master carried
// (a backup): each sequence starts at least there if this instance
// becomes master. Marks only grow; a name that is not valid or one past
// MaxSequences is refused. Loop only.
func (r *Runtime) RestoreSequences(marks map[string]uint64) error {
	if len(marks) == 0 {
		return nil
	}
	if len(marks) > MaxSequences {
		return fmt.Errorf("appliance: %d sequences (limit %d)", len(marks), MaxSequences)
	}
	names := make([]string, 0, len(marks))
	for name := range marks {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := checkSequenceName(name); err != nil {
			return err
		}
		if _, known := r.seqMarks[name]; !known && len(r.seqMarks) >= MaxSequences {
			return fmt.Errorf("appliance: sequence %q: at most %d sequences", name, MaxSequences)
		}
	}
	if r.seqMarks == nil {
		r.seqMarks = make(map[string]uint64, len(marks))
	}
	for _, name := range names {
		m := min(marks[name], seqLimit)
		r.seqMarks[name] = max(r.seqMarks[name], m)
		if q := r.seqs[name]; q != nil && !r.master {
			q.next = max(q.next, r.seqMarks[name])
		}
	}
	return nil
}

// takeOverSequences starts every sequence at least at the marks synced
// from the old master, and none told yet: the first sync goes at once.
func (r *Runtime) takeOverSequences() {
	for name, q := range r.seqs {
		q.next = max(q.next, r.seqMarks[name])
		q.told = 0
	}
	r.seqSyncAsked = false
}
