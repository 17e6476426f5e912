package chaos

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hellopics/hellopics/data/tpce"
	"github.com/hellopics/hellopics/pkg/meds"
)

// command is one MEDS command the client sent and what came back.
type command struct {
	id        uint32
	sent      time.Time
	conn      int       // which connection (1, 2, ...) carried it
	responses int       // responses echoing the command
	errors    int       // relay errors
	wrong     []string  // responses whose text is not the command's
	lostAt    time.Time // its connection ended (or was given up) before an answer
}

func (c *command) answers() int { return c.responses + c.errors }

// relayClient is a TPCE client of the relay on data: it sends a command
// every interval on one connection, redials when the connection ends,
// and records every answer.
type relayClient struct {
	addr     string
	interval time.Duration
	stall    time.Duration // a command unanswered this long on a live connection: the connection is given up

	mu       sync.Mutex
	cmds     map[uint32]*command
	order    []uint32
	unknown  []string // answers to ids never sent
	dials    int      // connections made
	dialErrs int
	connErrs []string // how each connection ended (first few)
	next     uint32
	conn     int
}

func newRelayClient(addr string, interval time.Duration) *relayClient {
	return &relayClient{addr: addr, interval: interval, stall: 15 * time.Second, cmds: map[uint32]*command{}}
}

// run keeps a connection to the relay until ctx ends, sending a
// command every interval until sendCtx ends, then returns once its last
// connection is closed.
func (r *relayClient) run(ctx, sendCtx context.Context) {
	for ctx.Err() == nil {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		c, err := tpce.Dial(dctx, r.addr, 0)
		cancel()
		if err != nil {
			r.mu.Lock()
			r.dialErrs++
			r.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		r.mu.Lock()
		r.dials++
		r.conn++
		gen := r.conn
		r.mu.Unlock()
		r.serve(ctx, sendCtx, c, gen)
	}
}

// serve runs one connection until it ends, ctx ends, or a command
// stalls.
func (r *relayClient) serve(ctx, sendCtx context.Context, c *tpce.Conn, gen int) {
	recvDone := make(chan error, 1)
	go func() {
		for {
			m, err := c.Recv()
			if err != nil {
				recvDone <- err
				return
			}
			r.answer(m)
		}
	}()
	tick := time.NewTicker(r.interval)
	defer tick.Stop()
	why := ""
	defer func() {
		_ = c.Close()
		err := <-recvDone
		if why == "" {
			why = err.Error()
		}
		r.mu.Lock()
		now := time.Now()
		for _, id := range r.order {
			cm := r.cmds[id]
			if cm.conn == gen && cm.answers() == 0 && cm.lostAt.IsZero() {
				cm.lostAt = now
			}
		}
		if len(r.connErrs) < 20 {
			r.connErrs = append(r.connErrs, fmt.Sprintf("%s connection %d ended: %s", now.Format("15:04:05.000"), gen, why))
		}
		r.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			why = "run over"
			return
		case err := <-recvDone:
			recvDone <- err
			return
		case <-tick.C:
		}
		if r.stalled(gen) {
			why = fmt.Sprintf("a command unanswered for %v: given up", r.stall)
			return
		}
		if sendCtx.Err() != nil {
			continue
		}
		r.mu.Lock()
		r.next++
		id := r.next
		cm := &command{id: id, sent: time.Now(), conn: gen}
		r.cmds[id] = cm
		r.order = append(r.order, id)
		r.mu.Unlock()
		if err := c.Command(id, []byte(text(id))); err != nil {
			why = err.Error()
			return
		}
	}
}

func text(id uint32) string { return "chaos command " + strconv.FormatUint(uint64(id), 10) }

func (r *relayClient) stalled(gen int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	for i := len(r.order) - 1; i >= 0; i-- {
		cm := r.cmds[r.order[i]]
		if cm.conn != gen {
			break
		}
		if cm.answers() == 0 && now.Sub(cm.sent) > r.stall {
			return true
		}
	}
	return false
}

func (r *relayClient) answer(m meds.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cm, ok := r.cmds[m.ID]
	if !ok {
		if len(r.unknown) < 20 {
			r.unknown = append(r.unknown, fmt.Sprintf("%s id=%d %q", m.Type, m.ID, m.Text))
		}
		return
	}
	switch m.Type {
	case meds.TypeResponse:
		cm.responses++
		if string(m.Text) != text(m.ID) {
			cm.wrong = append(cm.wrong, string(m.Text))
		}
	case meds.TypeRelayError:
		cm.errors++
	default:
		if len(r.unknown) < 20 {
			r.unknown = append(r.unknown, fmt.Sprintf("unexpected %s id=%d %q", m.Type, m.ID, m.Text))
		}
	}
}

// owed returns how many commands sent on a live connection have no
// answer yet.
func (r *relayClient) owed() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, cm := range r.cmds {
		if cm.answers() == 0 && cm.lostAt.IsZero() {
			n++
		}
	}
	return n
}

// RelayStats is what the relay client counted.
type RelayStats struct {
	Sent, Answered, RelayErrors, Lost, Twice, Wrong int
	// Excused are the relay errors and lost commands that a fault on
	// data excuses (Config.RelayGrace).
	ExcusedErrors, ExcusedLost int
	Connections, DialFailures  int
	ConnEnds                   []string
}

// relayCheck judges every command: excused(t) reports whether a
// command sent at t is excused by a fault on data.
func (r *relayClient) check(excused func(time.Time) string) (RelayStats, []Violation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var st RelayStats
	var vs []Violation
	st.Connections, st.DialFailures, st.ConnEnds = r.dials, r.dialErrs, r.connErrs
	add := func(what string, cm *command) {
		if len(vs) < 50 {
			vs = append(vs, Violation{InvRelay, fmt.Sprintf("command %d (sent %s, connection %d): %s", cm.id, cm.sent.Format("15:04:05.000"), cm.conn, what), nil})
		}
	}
	for _, id := range r.order {
		cm := r.cmds[id]
		st.Sent++
		ex := excused(cm.sent)
		switch {
		case cm.answers() > 1:
			st.Twice++
			add(fmt.Sprintf("answered %d times (%d responses, %d relay errors)", cm.answers(), cm.responses, cm.errors), cm)
		case cm.responses == 1:
			st.Answered++
		case cm.errors == 1:
			st.RelayErrors++
			if ex != "" {
				st.ExcusedErrors++
			} else {
				add("relay error, no fault on data excuses it", cm)
			}
		default:
			st.Lost++
			if ex != "" {
				st.ExcusedLost++
			} else {
				lost := "never answered"
				if !cm.lostAt.IsZero() {
					lost = "no answer before its connection ended at " + cm.lostAt.Format("15:04:05.000")
				}
				add(lost+", no fault on data excuses it", cm)
			}
		}
		if len(cm.wrong) > 0 {
			st.Wrong++
			add(fmt.Sprintf("response text %q, want %q", cm.wrong[0], text(cm.id)), cm)
		}
	}
	for _, u := range r.unknown {
		vs = append(vs, Violation{InvRelay, "an answer to no command sent: " + u, nil})
	}
	return st, vs
}
