package meds

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Key identifies one transfer for reassembly: the sender's address and
// its medsTransfer value.
type Key struct {
	Sender   netip.AddrPort // source address and port of the fragments
	Transfer uint32         // the sender's medsTransfer
}

// ReassemblerConfig bounds a Reassembler. Zero fields take the defaults
// of DefaultReassemblerConfig.
type ReassemblerConfig struct {
	// Timeout is how long a transfer may stay incomplete, counted from
	// its first fragment, and how long a delivered transfer is
	// remembered to ignore its duplicates. Default 5 s (spec section 2).
	Timeout time.Duration
	// MaxMessage is the largest reassembled message in octets, header
	// included. Default HeaderLen + DefaultMaxText.
	MaxMessage int
	// MaxCount is the largest medsFragments accepted. Default 4096.
	MaxCount uint32
	// MaxTransfers is how many incomplete transfers are kept at once; a
	// new one past it is refused. Default 1024.
	MaxTransfers int
	// MaxBuffered is how many octets incomplete transfers may hold in
	// all, counting 32 octets of bookkeeping per announced fragment; a
	// fragment past it is refused. Default 16 MiB.
	MaxBuffered int
	// Remember is how many delivered transfers are remembered for
	// duplicate detection; the oldest is forgotten past it. Default 8192.
	Remember int
}

// DefaultReassemblerConfig returns the defaults described on
// ReassemblerConfig.
func DefaultReassemblerConfig() ReassemblerConfig {
	return ReassemblerConfig{
		Timeout:      5 * time.Second,
		MaxMessage:   HeaderLen + DefaultMaxText,
		MaxCount:     4096,
		MaxTransfers: 1024,
		MaxBuffered:  16 << 20,
		Remember:     8192,
	}
}

// Result says what Reassembler.Add did with a fragment.
type Result int

// The results of Reassembler.Add.
const (
	Buffered  Result = iota // kept, the message is not complete yet
	Delivered               // the message is complete and returned
	Duplicate               // already held, or its message was already delivered: ignored
	Rejected                // refused, see the error
)

// String returns the result's name.
func (r Result) String() string {
	switch r {
	case Buffered:
		return "buffered"
	case Delivered:
		return "delivered"
	case Duplicate:
		return "duplicate"
	case Rejected:
		return "rejected"
	}
	return fmt.Sprintf("result(%d)", int(r))
}

// Reassembly refusals; Add's errors match one of them.
var (
	ErrReassemblyLimit = errors.New("meds: reassembly limit reached")
	ErrInconsistent    = errors.New("meds: fragment inconsistent with its transfer")
)

// partOverhead is what one announced fragment costs before it comes.
const partOverhead = 32

type transfer struct {
	overhead int // partOverhead per announced fragment
	started  time.Time
	count    uint32
	have     uint32
	size     int
	parts    [][]byte
}

type remembered struct {
	key Key
	at  time.Time
}

// Reassembler joins fragments into messages, keyed by (sender,
// transfer). It has no clock and no goroutine: the caller passes the
// time to Add and calls Expire from time to time. Memory is bounded by
// its config. A Reassembler is not safe for concurrent use.
type Reassembler struct {
	cfg       ReassemblerConfig
	open      map[Key]*transfer
	buffered  int
	done      map[Key]struct{}
	doneRing  []remembered // FIFO of done, oldest at doneHead
	doneHead  int
	doneCount int
}

// NewReassembler returns an empty Reassembler.
func NewReassembler(cfg ReassemblerConfig) *Reassembler {
	d := DefaultReassemblerConfig()
	if cfg.Timeout <= 0 {
		cfg.Timeout = d.Timeout
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = d.MaxMessage
	}
	if cfg.MaxCount == 0 {
		cfg.MaxCount = d.MaxCount
	}
	if cfg.MaxTransfers <= 0 {
		cfg.MaxTransfers = d.MaxTransfers
	}
	if cfg.MaxBuffered <= 0 {
		cfg.MaxBuffered = d.MaxBuffered
	}
	if cfg.Remember <= 0 {
		cfg.Remember = d.Remember
	}
	return &Reassembler{
		cfg:      cfg,
		open:     make(map[Key]*transfer),
		done:     make(map[Key]struct{}, cfg.Remember),
		doneRing: make([]remembered, cfg.Remember),
	}
}

// Add offers fragment f from key.Sender at time now. When it completes a
// message, Add returns the whole message with Delivered. For a message of
// one fragment, msg is f.Data itself (no copy); otherwise it is a new
// slice. Add copies what it keeps, so f.Data may be reused afterwards.
func (r *Reassembler) Add(now time.Time, key Key, f Fragment) (msg []byte, res Result, err error) {
	if key.Transfer != f.Transfer {
		return nil, Rejected, fmt.Errorf("%w: key transfer %d, fragment transfer %d", ErrInconsistent, key.Transfer, f.Transfer)
	}
	if f.Count == 0 || f.Index >= f.Count {
		return nil, Rejected, fmt.Errorf("%w: fragment %d of %d", ErrInconsistent, f.Index, f.Count)
	}
	if f.Count > r.cfg.MaxCount {
		return nil, Rejected, fmt.Errorf("%w: %d fragments, limit %d", ErrReassemblyLimit, f.Count, r.cfg.MaxCount)
	}
	if _, ok := r.done[key]; ok {
		return nil, Duplicate, nil
	}
	if len(f.Data) > r.cfg.MaxMessage {
		return nil, Rejected, fmt.Errorf("%w: fragment of %d octets, message limit %d", ErrReassemblyLimit, len(f.Data), r.cfg.MaxMessage)
	}
	if f.Count == 1 {
		r.remember(now, key)
		return f.Data, Delivered, nil
	}
	t := r.open[key]
	if t == nil {
		if len(r.open) >= r.cfg.MaxTransfers {
			return nil, Rejected, fmt.Errorf("%w: %d incomplete transfers", ErrReassemblyLimit, len(r.open))
		}
		// The table of parts counts against the budget too, so that
		// announcing many fragments cannot cost more than sending them.
		overhead := int(f.Count) * partOverhead
		if r.buffered+overhead > r.cfg.MaxBuffered {
			return nil, Rejected, fmt.Errorf("%w: %d octets buffered", ErrReassemblyLimit, r.buffered)
		}
		t = &transfer{started: now, count: f.Count, parts: make([][]byte, f.Count), overhead: overhead}
		r.buffered += overhead
		r.open[key] = t
	}
	if t.count != f.Count {
		return nil, Rejected, fmt.Errorf("%w: fragment says %d fragments, transfer started with %d", ErrInconsistent, f.Count, t.count)
	}
	if t.parts[f.Index] != nil {
		return nil, Duplicate, nil
	}
	if t.size+len(f.Data) > r.cfg.MaxMessage {
		r.drop(key, t)
		return nil, Rejected, fmt.Errorf("%w: transfer grows past %d octets, dropped", ErrReassemblyLimit, r.cfg.MaxMessage)
	}
	if r.buffered+len(f.Data) > r.cfg.MaxBuffered {
		return nil, Rejected, fmt.Errorf("%w: %d octets buffered", ErrReassemblyLimit, r.buffered)
	}
	t.parts[f.Index] = append(make([]byte, 0, len(f.Data)), f.Data...)
	t.have++
	t.size += len(f.Data)
	r.buffered += len(f.Data)
	if t.have < t.count {
		return nil, Buffered, nil
	}
	msg = make([]byte, 0, t.size)
	for _, p := range t.parts {
		msg = append(msg, p...)
	}
	r.drop(key, t)
	r.remember(now, key)
	return msg, Delivered, nil
}

func (r *Reassembler) drop(key Key, t *transfer) {
	r.buffered -= t.size + t.overhead
	delete(r.open, key)
}

func (r *Reassembler) remember(now time.Time, key Key) {
	if r.doneCount == len(r.doneRing) {
		old := r.doneRing[r.doneHead]
		delete(r.done, old.key)
		r.doneHead = (r.doneHead + 1) % len(r.doneRing)
		r.doneCount--
	}
	r.doneRing[(r.doneHead+r.doneCount)%len(r.doneRing)] = remembered{key: key, at: now}
	r.doneCount++
	r.done[key] = struct{}{}
}

// Expired describes a transfer dropped by Expire.
type Expired struct {
	Key    Key           // the transfer
	Have   uint32        // fragments received
	Count  uint32        // fragments announced
	Octets int           // octets received
	Age    time.Duration // since the first fragment
}

// Expire drops the transfers that stayed incomplete for longer than the
// timeout at time now, calling fn (if not nil) with each, forgets the
// delivered transfers older than the timeout, and returns how many
// transfers it dropped.
func (r *Reassembler) Expire(now time.Time, fn func(Expired)) int {
	n := 0
	for k, t := range r.open {
		if age := now.Sub(t.started); age > r.cfg.Timeout {
			if fn != nil {
				fn(Expired{Key: k, Have: t.have, Count: t.count, Octets: t.size, Age: age})
			}
			r.drop(k, t)
			n++
		}
	}
	for r.doneCount > 0 {
		old := r.doneRing[r.doneHead]
		if now.Sub(old.at) <= r.cfg.Timeout {
			break
		}
		delete(r.done, old.key)
		r.doneRing[r.doneHead] = remembered{}
		r.doneHead = (r.doneHead + 1) % len(r.doneRing)
		r.doneCount--
	}
	return n
}

// Pending returns the number of incomplete transfers and the octets they
// hold (data and bookkeeping).
func (r *Reassembler) Pending() (transfers, octets int) { return len(r.open), r.buffered }
