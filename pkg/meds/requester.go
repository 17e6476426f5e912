package meds

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/gosnmp/gosnmp"
)

// Conn is what a V2cRequester needs of a connected datagram socket; a
// *net.UDPConn from net.DialUDP is one. The caller owns it.
type Conn interface {
	Read(b []byte) (int, error)
	Write(b []byte) (int, error)
	SetReadDeadline(t time.Time) error
}

// V2cRequester sends MEDS fragments as SNMPv2c SetRequests or
// notifications over a Conn it does not own, and waits for the matching
// Response, with a timeout and retries. It reuses its buffers: a steady
// stream of fragments does not allocate. It is not safe for concurrent
// use; give each sending goroutine its own, with its own socket.
type V2cRequester struct {
	Conn      Conn          // connected to the peer; owned by the caller
	Community string        // SNMPv2c community sent and required in answers
	Timeout   time.Duration // per attempt
	Retries   int           // attempts after the first
	OnRetry   func()        // called before each retry, if set

	reqID   uint32
	out, in []byte
}

// ErrNoAnswer: a request was not answered after its retries.
var ErrNoAnswer = errors.New("meds: no answer")

// Send sends f in a message of type pdu (gosnmp.SetRequest,
// gosnmp.InformRequest or gosnmp.SNMPv2Trap) and, except for a trap,
// waits for the Response with the same request-id, returning its
// error-status and error-index. Answers with another request-id or
// community, or that do not parse, are ignored.
func (q *V2cRequester) Send(pdu gosnmp.PDUType, uptime uint32, f Fragment) (status, index uint8, err error) {
	if q.in == nil {
		q.in = make([]byte, 65536)
		q.reqID = rand.Uint32() & 0x7fffffff
	}
	var last error
	for attempt := 0; attempt <= q.Retries; attempt++ {
		if attempt > 0 && q.OnRetry != nil {
			q.OnRetry()
		}
		q.reqID = (q.reqID + 1) & 0x7fffffff
		q.out = AppendV2cFragment(q.out[:0], pdu, q.Community, q.reqID, uptime, f)
		if _, err := q.Conn.Write(q.out); err != nil {
			last = err
			continue
		}
		if pdu == gosnmp.SNMPv2Trap {
			return 0, 0, nil
		}
		if err := q.Conn.SetReadDeadline(time.Now().Add(q.Timeout)); err != nil {
			return 0, 0, fmt.Errorf("meds: set read deadline: %w", err)
		}
		for {
			n, err := q.Conn.Read(q.in)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					last = fmt.Errorf("timeout after %v", q.Timeout)
				} else {
					last = err
				}
				break
			}
			p, err := ParseV2c(q.in[:n])
			if err != nil || p.PDU != gosnmp.GetResponse || p.RequestID != q.reqID || string(p.Community) != q.Community {
				continue // stale, foreign or broken: keep waiting
			}
			return p.ErrorStatus, p.ErrorIndex, nil
		}
	}
	return 0, 0, fmt.Errorf("%w after %d retries: %w", ErrNoAnswer, q.Retries, last)
}

// slot is one fragment in flight.
type slot struct {
	index    uint32
	reqID    uint32
	deadline time.Time
	attempts int
}

// Refused is the error SendMessage returns when the peer answers a
// fragment with a non-zero error-status.
type Refused struct {
	Index, Count uint32 // the fragment refused, of how many
	Status       uint8  // the answer's error-status
	ErrorIndex   uint8  // the answer's error-index
}

// Error says which fragment was refused and how.
func (e *Refused) Error() string {
	return fmt.Sprintf("fragment %d of %d refused: %s at binding %d", e.Index, e.Count, gosnmp.SNMPError(e.Status), e.ErrorIndex)
}

// SendMessage sends the whole encoded message msg as fragments of at
// most size octets with transfer id transfer, keeping up to window of
// them in flight (1: one at a time), each retried on its own. It returns
// nil when every fragment was answered with noError, a *Refused when one
// was refused, or an error matching ErrNoAnswer naming the fragment that
// was never answered. Traps are sent without waiting.
func (q *V2cRequester) SendMessage(pdu gosnmp.PDUType, uptime uint32, msg []byte, transfer uint32, size, window int) error {
	count := FragmentCount(len(msg), size)
	if pdu == gosnmp.SNMPv2Trap || window <= 1 || count == 1 {
		for i := uint32(0); i < count; i++ {
			status, index, err := q.Send(pdu, uptime, fragmentOf(msg, transfer, count, size, i))
			if err != nil {
				return fmt.Errorf("fragment %d of %d: %w", i, count, err)
			}
			if status != 0 {
				return &Refused{Index: i, Count: count, Status: status, ErrorIndex: index}
			}
		}
		return nil
	}
	if q.in == nil {
		q.in = make([]byte, 65536)
		q.reqID = rand.Uint32() & 0x7fffffff
	}
	slots := make([]slot, 0, min(window, int(count))) // small; one per message
	send := func(s *slot) error {
		q.reqID = (q.reqID + 1) & 0x7fffffff
		s.reqID = q.reqID
		s.deadline = time.Now().Add(q.Timeout)
		s.attempts++
		q.out = AppendV2cFragment(q.out[:0], pdu, q.Community, s.reqID, uptime, fragmentOf(msg, transfer, count, size, s.index))
		_, err := q.Conn.Write(q.out)
		return err
	}
	var last error
	next := uint32(0)
	for next < count || len(slots) > 0 {
		for len(slots) < window && next < count {
			slots = append(slots, slot{index: next})
			if err := send(&slots[len(slots)-1]); err != nil {
				last = err
			}
			next++
		}
		oldest := slots[0].deadline
		for _, s := range slots[1:] {
			if s.deadline.Before(oldest) {
				oldest = s.deadline
			}
		}
		if err := q.Conn.SetReadDeadline(oldest); err != nil {
			return fmt.Errorf("meds: set read deadline: %w", err)
		}
		n, err := q.Conn.Read(q.in)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				last = fmt.Errorf("timeout after %v", q.Timeout)
			} else {
				last = err
				// A refused port or similar: every fragment in flight failed.
				for i := range slots {
					slots[i].deadline = time.Now()
				}
			}
			now := time.Now()
			for i := range slots {
				s := &slots[i]
				if s.deadline.After(now) {
					continue
				}
				if s.attempts > q.Retries {
					return fmt.Errorf("fragment %d of %d: %w after %d retries: %w", s.index, count, ErrNoAnswer, q.Retries, last)
				}
				if q.OnRetry != nil {
					q.OnRetry()
				}
				if err := send(s); err != nil {
					last = err
					s.deadline = time.Now()
				}
			}
			continue
		}
		p, err := ParseV2c(q.in[:n])
		if err != nil || p.PDU != gosnmp.GetResponse || string(p.Community) != q.Community {
			continue
		}
		for i := range slots {
			if slots[i].reqID != p.RequestID {
				continue
			}
			if p.ErrorStatus != 0 {
				return &Refused{Index: slots[i].index, Count: count, Status: p.ErrorStatus, ErrorIndex: p.ErrorIndex}
			}
			slots[i] = slots[len(slots)-1]
			slots = slots[:len(slots)-1]
			break
		}
	}
	return nil
}

// fragmentOf returns fragment i of msg cut at size.
func fragmentOf(msg []byte, transfer, count uint32, size int, i uint32) Fragment {
	lo := int(i) * size
	hi := min(lo+size, len(msg))
	return Fragment{Transfer: transfer, Index: i, Count: count, Data: msg[lo:hi:hi]}
}
