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
	Conn      Conn
	Community string
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
