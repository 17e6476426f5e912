package handshake

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// Dictionaries the hostile fuzzers pick message fields from, so that most
// generated messages are well-formed and reach the rules, with hostile
// values mixed in.
var (
	fzPairs     = []string{"p1", "p2", "p3", "p4", "p5", "p6", "", "p 1", strings.Repeat("p", MaxPairIDLen), strings.Repeat("q", MaxPairIDLen+1), strings.Repeat("x", 100_000)}
	fzInstances = []string{"c-1", "d-1", "c-2", "d-2", "evil", "", strings.Repeat("i", MaxInstanceLen+1), "a\nb"}
	fzEpochs    = []uint64{0, 1, 2, 3, 7, EpochLimit - 1, EpochLimit, math.MaxUint64}
	fzSeqs      = []uint64{0, 1, 2, 3, 5, 1000, SeqLimit - 1, SeqLimit, math.MaxUint64}
	fzAddrs     = []string{"10.0.0.1:7301", "c:7000", "", "nohost", "h:0", strings.Repeat("h", MaxAddrLen) + ":1", "[::1]:7301"}
	fzRoles     = []hellopicsv1.Role{hellopicsv1.Role_ROLE_CTRL, hellopicsv1.Role_ROLE_DATA, hellopicsv1.Role_ROLE_MGMT, hellopicsv1.Role_ROLE_UNSPECIFIED, 99}
	fzDirs      = []hellopicsv1.Direction{hellopicsv1.Direction_DIRECTION_MGMT_CTRL_DATA, hellopicsv1.Direction_DIRECTION_MGMT_DATA_CTRL, 0, 7}
	// Remote addresses by session: 1-3 from the ctrl host, 4-6 from the
	// data host, 7-9 from strangers.
	fzRemote = []string{"10.0.0.1:1001", "10.0.0.1:1002", "10.0.0.1:1003", "10.0.0.2:2001", "10.0.0.2:2002", "10.0.0.2:2003",
		"10.0.0.66:6001", "127.0.0.2:6002", "[fe80::66]:6003"}
)

// fzReader hands out the fuzz input a byte at a time (zeros once empty).
type fzReader struct{ b []byte }

func (r *fzReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func pick[T any](r *fzReader, xs []T) T { return xs[int(r.byte())%len(xs)] }

// message builds one message of a type chosen by the input.
func (r *fzReader) message() (hellopicsv1.MsgType, proto.Message) {
	switch r.byte() % 9 {
	case 0, 1:
		return hellopicsv1.MsgType_MSG_TYPE_ID, &hellopicsv1.Identify{Role: pick(r, fzRoles), PairId: pick(r, fzPairs), Instance: pick(r, fzInstances),
			DataAddr: pick(r, fzAddrs), Epoch: pick(r, fzEpochs), LastSeq: pick(r, fzSeqs)}
	case 2:
		return hellopicsv1.MsgType_MSG_TYPE_GET_PEER, &hellopicsv1.GetPeer{PairId: pick(r, fzPairs)}
	case 3:
		return hellopicsv1.MsgType_MSG_TYPE_PEER, &hellopicsv1.Peer{Role: pick(r, fzRoles), PairId: pick(r, fzPairs), Addr: pick(r, fzAddrs), Epoch: pick(r, fzEpochs)}
	case 4:
		return hellopicsv1.MsgType_MSG_TYPE_READY, &hellopicsv1.Ready{Role: pick(r, fzRoles), PairId: pick(r, fzPairs), Epoch: pick(r, fzEpochs)}
	case 5, 6:
		return hellopicsv1.MsgType_MSG_TYPE_HELLO, &hellopicsv1.Hello{Seq: pick(r, fzSeqs), Direction: pick(r, fzDirs), Epoch: pick(r, fzEpochs), PairId: pick(r, fzPairs)}
	case 7:
		return hellopicsv1.MsgType_MSG_TYPE_REDIRECT, &hellopicsv1.Redirect{MasterAddr: pick(r, fzAddrs), Epoch: pick(r, fzEpochs)}
	default:
		rs := &hellopicsv1.RelayStats{Commands: pick(r, fzSeqs), Counters: map[string]uint64{}}
		for i := int(r.byte() % 20); i > 0; i-- {
			rs.Counters[pick(r, fzPairs)] = 1
		}
		return hellopicsv1.MsgType_MSG_TYPE_REPORT, &hellopicsv1.Report{Role: pick(r, fzRoles), PairId: pick(r, fzPairs), Relay: rs}
	}
}

// FuzzHostileMgmt drives one Mgmt with sequences of messages from nine
// sessions, three from the ctrl host, three from the data host and three
// from strangers, with time passing, and checks after every step: the
// epoch and the hello counter never decrease or wrap, a live registration
// never passes to a session from another host, the registry stays within
// MaxPairs and the limits, refusals are events with a reason.
func FuzzHostileMgmt(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 3, 0, 1, 1, 0, 0})
	f.Add([]byte{0, 6, 0, 6, 0, 0, 4, 0, 7, 7, 1, 6, 0, 0, 0, 0, 0, 4, 4, 1, 0, 0})
	f.Add([]byte("\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00\x03\x00\x01\x00\x01\x00\x04\x00\x02\x00\x02\x01\x02\x03\x00\x02\x03"))
	f.Fuzz(hostileMgmt)
}

func hostileMgmt(t *testing.T, in []byte) {
	{
		r := &fzReader{b: in}
		const maxPairs = 3
		m, err := NewMgmt(MgmtConfig{HelloInterval: MinHelloInterval, Epoch: 1, MaxPairs: maxPairs, PairExpiry: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		now := t0
		up := map[SessionID]bool{}
		// shadow is a backup fed only m's deltas (TakeChanges): after
		// every step it must hold m's registry.
		shadow, err := NewMgmt(MgmtConfig{HelloInterval: MinHelloInterval, Epoch: 1, Backup: true})
		if err != nil {
			t.Fatal(err)
		}
		type reg struct {
			session SessionID
			addr    string
		}
		for step := 0; len(r.b) > 0 && step < 500; step++ {
			epoch, next := m.Epoch(), m.NextSeq()
			before := map[string]reg{}
			for id, p := range m.pairs {
				for role, mb := range map[string]*member{"ctrl": &p.ctrl, "data": &p.data} {
					if mb.live {
						before[id+"/"+role] = reg{mb.session, mb.addr}
					}
				}
			}
			sid := SessionID(r.byte()%9 + 1)
			var outs []Output
			switch op := r.byte() % 8; op {
			case 0, 1, 2, 3:
				if !up[sid] {
					outs = m.SessionUp(sid, fzRemote[sid-1], now)
					up[sid] = true
				}
				typ, msg := r.message()
				outs = append(outs, m.Receive(sid, typ, msg, now)...)
			case 4:
				outs = m.SessionDown(sid, "eof", now)
				delete(up, sid)
			case 5:
				now = now.Add(time.Duration(r.byte()) * time.Millisecond)
				outs = m.Tick(now)
			case 6:
				// A hello coming back as it should, to drive the counters.
				for _, p := range m.pairs {
					if seq, dir, ok := m.cycle.InFlight(p.id); ok {
						lastHop := p.data.session
						if dir == hellopicsv1.Direction_DIRECTION_MGMT_DATA_CTRL {
							lastHop = p.ctrl.session
						}
						outs = m.Receive(lastHop, msgHello, &hellopicsv1.Hello{Seq: seq, Direction: dir, Epoch: m.Epoch(), PairId: p.id}, now)
						break
					}
				}
			case 7:
				outs = m.SetMastership(r.byte()%4 != 0, pick(r, fzEpochs), pick(r, fzAddrs), now)
				if !m.IsMaster() {
					up = map[SessionID]bool{}
					for id := range m.sessions {
						up[id] = true
					}
				}
			}
			// Sessions the machine closed are gone for the shell too.
			for _, o := range outs {
				if c, ok := o.(Close); ok {
					if _, known := m.sessions[c.Session]; !known {
						delete(up, c.Session)
					}
				}
			}

			checkDeadlines(t, m, fmt.Sprintf("step %d", step))
			if err := shadow.Restore(m.TakeChanges()); err != nil {
				t.Fatalf("step %d: delta not restored: %v", step, err)
			}
			if got, want := registryView(shadow.Pairs()), registryView(m.Pairs()); got != want {
				t.Fatalf("step %d: backup fed deltas differs:\n got %s\nwant %s", step, got, want)
			}
			if m.Epoch() < epoch || m.Epoch() >= EpochLimit {
				t.Fatalf("step %d: epoch %d -> %d", step, epoch, m.Epoch())
			}
			if m.NextSeq() < next || m.NextSeq() == 0 {
				t.Fatalf("step %d: next seq %d -> %d", step, next, m.NextSeq())
			}
			if len(m.pairs) > maxPairs {
				t.Fatalf("step %d: %d pairs", step, len(m.pairs))
			}
			for id, p := range m.pairs {
				if !ValidPairID(id) {
					t.Fatalf("step %d: pair id of %d bytes registered", step, len(id))
				}
				if !checkRelay(p.relay) {
					t.Fatalf("step %d: relay stats beyond the limits", step)
				}
				for role, mb := range map[string]*member{"ctrl": &p.ctrl, "data": &p.data} {
					was, ok := before[id+"/"+role]
					if ok && mb.live && mb.session != was.session && !sameHost(mb.addr, was.addr) {
						t.Fatalf("step %d: live %s of %s taken over from %s by %s", step, role, id, was.addr, mb.addr)
					}
					if len(mb.instance) > MaxInstanceLen || len(mb.dataAddr) > MaxAddrLen {
						t.Fatalf("step %d: oversized member strings", step)
					}
				}
			}
			for _, o := range outs {
				switch o := o.(type) {
				case Event:
					if o.Kind == EventRejected && o.Refused == "" && o.Message != "" && !strings.HasPrefix(o.Message, "peer refuses") {
						t.Fatalf("step %d: rejection without a reason to count: %v", step, o)
					}
					if len(o.PairID) > MaxPairIDLen {
						t.Fatalf("step %d: event with a %d-byte pair id", step, len(o.PairID))
					}
				case Send:
					if rj, ok := o.Msg.(*hellopicsv1.Reject); ok && len(rj.GetReason()) > MaxReasonLen {
						t.Fatalf("step %d: %d-byte reject", step, len(rj.GetReason()))
					}
				}
			}
		}
	}
}

// FuzzHostileComponents drives a Ctrl and a Data with message sequences
// on their mgmt session and on several data (ctrl) or ctrl (data)
// sessions, and checks after every step that only a message on the mgmt
// session changes a component's epoch, that epochs and the reported
// last_seq stay in range, and that a live data link at ctrl is only
// replaced by the same instance from the same host.
func FuzzHostileComponents(f *testing.F) {
	f.Add([]byte{0, 3, 0, 1, 1, 2, 1, 1, 1, 1, 0, 0, 0, 1})
	f.Add([]byte{0, 3, 1, 1, 1, 4, 2, 2, 1, 1, 1, 0, 6, 4, 1, 0, 5, 1, 1, 1, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := &fzReader{b: in}
		c, _ := NewCtrl(CtrlConfig{PairID: "p1", Instance: "c-1", DataAddr: "10.0.0.1:7301"})
		d, _ := NewData(DataConfig{PairID: "p1", Instance: "d-1"})
		const mgmtSID = 1
		c.MgmtUp(mgmtSID)
		d.MgmtUp(mgmtSID, t0)
		now := t0
		for step := 0; len(r.b) > 0 && step < 500; step++ {
			ce, de := c.Epoch(), d.Epoch()
			cData, cHas := c.data, c.hasData
			var oldAddr, oldInst string
			if cHas {
				oldAddr, oldInst = c.dataSessions[cData].remoteAddr, c.dataSessions[cData].instance
			}
			sid := SessionID(r.byte()%5 + 1)
			fromMgmt := sid == mgmtSID
			switch r.byte() % 6 {
			case 0, 1, 2:
				typ, msg := r.message()
				c.Receive(sid, typ, msg)
				d.Receive(sid, typ, msg, now)
			case 3:
				if !fromMgmt {
					c.DataUp(sid, fzRemote[int(r.byte())%len(fzRemote)])
					d.DialFailed("x", now)
					d.CtrlUp(sid, now)
				}
			case 4:
				if !fromMgmt {
					c.DataDown(sid, "eof")
					d.CtrlDown(sid, "eof", now)
				} else {
					c.IdentifyExpired(SessionID(r.byte()%5 + 1))
				}
			case 5:
				now = now.Add(time.Duration(r.byte()) * time.Millisecond)
				d.Tick(now)
			}
			if !fromMgmt && (c.Epoch() != ce || d.Epoch() != de) {
				t.Fatalf("step %d: a peer component moved the epochs: ctrl %d -> %d, data %d -> %d", step, ce, c.Epoch(), de, d.Epoch())
			}
			if c.Epoch() < ce || d.Epoch() < de || c.Epoch() >= EpochLimit || d.Epoch() >= EpochLimit {
				t.Fatalf("step %d: epochs ctrl %d -> %d, data %d -> %d", step, ce, c.Epoch(), de, d.Epoch())
			}
			if c.identify().GetLastSeq() >= SeqLimit || d.identify().GetLastSeq() >= SeqLimit {
				t.Fatalf("step %d: last_seq out of range", step)
			}
			if cHas && c.hasData && c.data != cData {
				if _, stillThere := c.dataSessions[cData]; !stillThere {
					nw := c.dataSessions[c.data]
					if nw.instance != oldInst || !sameHost(nw.remoteAddr, oldAddr) {
						t.Fatalf("step %d: live data link (%s from %s) replaced by %s from %s", step, oldInst, oldAddr, nw.instance, nw.remoteAddr)
					}
				}
			}
			if len(c.dataSessions) > 5 {
				t.Fatalf("step %d: %d data sessions", step, len(c.dataSessions))
			}
		}
	})
}
