package election

import "time"

// SyncPacer decides when a master sends its registry's changes to its
// backups, so that what the sync costs does not grow with the rate of
// changes: a change after a quiet spell goes at once; changes within
// Interval of the last sync wait for the next one and go together (one
// delta, each pair once, counters as absolute values). Whatever the
// interval, a sync goes at once when the hello numbers in use come
// within half of Reserve of the next number the backups were last told:
// a backup that takes over starts at that number, so it never reuses
// one the old master sent.
//
// Like the election it is a pure machine: the shell asks Plan after each
// change, arms a timer for the instant it returns, and reports every
// sync it sends (Sent), which tells it the next number to announce.
type SyncPacer struct {
	// Interval is the least time between two syncs carrying changes
	// (a switchover's flush and a low reserve do not wait for it).
	Interval time.Duration
	// Reserve is how far ahead of the number in use the master tells
	// its backups its next hello number.
	Reserve uint64

	last time.Time // when the last sync went out
	told uint64    // the next hello number the backups were last told
}

// Plan says what to do at now about changes (pending: the machine has
// some) while the machine's next hello number is nextSeq: sync now, or
// at the instant returned (the zero time: nothing to do).
func (p *SyncPacer) Plan(now time.Time, pending bool, nextSeq uint64) (syncNow bool, at time.Time) {
	if p.low(nextSeq) {
		return true, time.Time{}
	}
	if !pending {
		return false, time.Time{}
	}
	due := p.last.Add(p.Interval)
	if p.last.IsZero() || !now.Before(due) {
		return true, time.Time{}
	}
	return false, due
}

// low reports whether the numbers in use came within half of the
// reserve of what the backups were told.
func (p *SyncPacer) low(nextSeq uint64) bool {
	return nextSeq > p.told || p.told-nextSeq < p.Reserve/2
}

// Sent records a sync (a delta, a flush or a snapshot) sent at now by
// a machine whose next hello number is nextSeq, and returns the number
// to announce in it: nextSeq plus Reserve.
func (p *SyncPacer) Sent(now time.Time, nextSeq uint64) uint64 {
	p.last = now
	if t := nextSeq + p.Reserve; t > p.told {
		p.told = t
	}
	return p.told
}

// Reset forgets what the backups were told (a new mastership: every
// backup gets a snapshot first).
func (p *SyncPacer) Reset() {
	p.last, p.told = time.Time{}, 0
}
