package sim

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hellopics/hellopics/pkg/election"
	"github.com/hellopics/hellopics/pkg/handshake"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// HostileKind is what a hostile peer sends. Each is content the
// machines or the shells must refuse, within the bounds they enforce
// (limits.go of pkg/election and pkg/handshake), but for HostileSeqBomb:
// peers are not authenticated without TLS, so what a real component
// may say is not a forgery; only what no one may say is refused.
// Hostile peers speak on their own connections from their own hosts: a
// TCP session of another cannot be written into.
type HostileKind int

// The kinds of hostile peer.
const (
	// HostileHAEpochRange: at a mgmt's HA port, a heartbeat in a peer's
	// name with an epoch at or above 2^63 (refused: epoch_range).
	HostileHAEpochRange HostileKind = iota + 1
	// HostileHAEpochJump: a heartbeat in a peer's name more than
	// MaxEpochJump above the target's epoch (epoch_jump).
	HostileHAEpochJump
	// HostileHAUnknownPeer: a heartbeat from an id that is no member
	// (the shell refuses: unknown_peer).
	HostileHAUnknownPeer
	// HostileHABadField: a heartbeat in a peer's name whose master is
	// no member, or whose component address is no host:port (field).
	HostileHABadField
	// HostileHAMalformed: a frame of no HA type, or of the wrong body
	// (the shell refuses: malformed).
	HostileHAMalformed
	// HostileIdentify: at a mgmt's component port, a frame before
	// Identify, then an Identify that breaks a rule (role, pair id,
	// epoch or last_seq at 2^63, epoch ahead, no data address, an
	// overlong instance), or a frame whose body is not its type's.
	HostileIdentify
	// HostileSeqBomb: a valid Identify of a new pair whose last_seq is
	// just below 2^63: accepted by design (a real component may have
	// forwarded that much); the master's numbers then start there.
	HostileSeqBomb
	// HostileDataPort: at ctrl's data port, a frame before Identify or
	// an Identify that ctrl refuses (wrong pair, role, epoch at 2^63,
	// epoch ahead of ctrl's).
	HostileDataPort
	// HostileWatchIdentify: at a mgmt's component port, a watch
	// Identify wrong in itself (role, pair id, epoch at 2^63, an
	// overlong instance), or an Elected or a frame of the wrong body
	// before any Identify.
	HostileWatchIdentify
	// HostileElected: at ctrl's data port (the only component port a
	// stranger can reach: watch sessions are the component's own
	// connections), an Elected from that non-mgmt end, at EpochLimit or
	// just above ctrl's fence, with or without an Identify before it.
	HostileElected

	hostileKinds = HostileElected
)

var hostileNames = map[HostileKind]string{
	HostileHAEpochRange: "ha-epoch-range", HostileHAEpochJump: "ha-epoch-jump", HostileHAUnknownPeer: "ha-unknown-peer",
	HostileHABadField: "ha-bad-field", HostileHAMalformed: "ha-malformed", HostileIdentify: "bad-identify",
	HostileSeqBomb: "seq-bomb", HostileDataPort: "data-port", HostileWatchIdentify: "bad-watch", HostileElected: "forged-elected",
}

// String is the kind's name.
func (k HostileKind) String() string {
	if s, ok := hostileNames[k]; ok {
		return s
	}
	return fmt.Sprintf("hostile(%d)", int(k))
}

// target picks whom a hostile peer of kind k attacks.
func (k HostileKind) target(r *rand.Rand, sc *Scenario, mgmts []string) string {
	if k == HostileDataPort || k == HostileElected {
		return fmt.Sprintf("c%d", 1+r.IntN(sc.Pairs))
	}
	return pick(r, mgmts...)
}

// hostileProc is a hostile peer: its own host, one connection, a few
// frames, then it closes.
type hostileProc struct {
	proc
	w *World
	f Fault
	n int
}

// spawnHostile starts the hostile peer of fault f.
func (w *World) spawnHostile(f Fault) {
	w.nHostile++
	h := &hostileProc{w: w, f: f, n: w.nHostile}
	h.name = fmt.Sprintf("x%d", h.n)
	h.host = h.name
	h.hostile = true
	h.owner = h
	h.up = true
	h.inc = 1
	w.hosts[h.host] = &h.proc
	var addr string
	switch f.Hostile {
	case HostileHAEpochRange, HostileHAEpochJump, HostileHAUnknownPeer, HostileHABadField, HostileHAMalformed:
		addr = fmt.Sprintf("%s:%d", f.Proc, haPort)
	case HostileIdentify, HostileSeqBomb, HostileWatchIdentify:
		addr = fmt.Sprintf("%s:%d", f.Proc, compPort)
	default:
		addr = fmt.Sprintf("%s:%d", f.Proc, dataPort)
	}
	w.tracef("hostile %s connects to %s: %s", h.name, addr, f.Hostile)
	w.net.connect(&h.proc, addr, w.sc.Timers.Dial, time.Second, w.sc.Timers.Linger, handler{
		frame: func(*end, int32, proto.Message) {},
		ended: func(*end, error) {},
	}, func(e *end, err error) {
		if err != nil {
			return
		}
		for _, fr := range h.frames() {
			_ = w.net.send(e, fr.typ, fr.msg)
		}
		w.after(50*time.Millisecond, func() { w.net.close(e) })
		w.after(2*time.Second, func() { h.up = false })
	})
}

const handshakeEpochLimit = handshake.EpochLimit

type frame struct {
	typ int32
	msg proto.Message
}

// frames are what the peer sends, chosen by the fault's variant; the
// epochs are relative to what the target knows now (the attacker
// watched the traffic).
func (h *hostileProc) frames() []frame {
	w, f := h.w, h.f
	v := f.Variant
	ha := func(t hellopicsv1.HAMsgType, m proto.Message) frame { return frame{int32(t), m} }
	hs := func(t hellopicsv1.MsgType, m proto.Message) frame { return frame{int32(t), m} }
	hb := hellopicsv1.HAMsgType_HA_MSG_TYPE_HEARTBEAT
	var peer string // a member the target knows, not the target
	var targetEpoch uint64
	for _, m := range w.mgmts {
		if m.name == f.Proc {
			targetEpoch = m.persisted
			if m.el != nil {
				targetEpoch = m.el.Epoch()
			}
		} else if peer == "" {
			peer = m.name
		}
	}
	switch f.Hostile {
	case HostileHAEpochRange:
		return []frame{ha(hb, &hellopicsv1.Heartbeat{Id: peer, MasterId: peer, Epoch: 1<<63 + uint64(v)})}
	case HostileHAEpochJump:
		return []frame{ha(hb, &hellopicsv1.Heartbeat{Id: peer, MasterId: peer, Epoch: targetEpoch + election.DefaultMaxEpochJump + 1<<20 + uint64(v)})}
	case HostileHAUnknownPeer:
		return []frame{ha(hb, &hellopicsv1.Heartbeat{Id: "intruder", MasterId: "intruder", Epoch: targetEpoch + 1})}
	case HostileHABadField:
		if v%2 == 0 {
			return []frame{ha(hb, &hellopicsv1.Heartbeat{Id: peer, MasterId: "nobody", Epoch: targetEpoch + 1})}
		}
		return []frame{ha(hb, &hellopicsv1.Heartbeat{Id: peer, MasterId: peer, Epoch: targetEpoch + 1, ComponentAddr: "no address"})}
	case HostileHAMalformed:
		if v%2 == 0 {
			return []frame{{99, &hellopicsv1.Heartbeat{Id: peer}}}
		}
		return []frame{ha(hellopicsv1.HAMsgType_HA_MSG_TYPE_SYNC, &hellopicsv1.Heartbeat{Id: peer})}
	case HostileSeqBomb:
		return []frame{hs(hellopicsv1.MsgType_MSG_TYPE_ID, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA,
			PairId: fmt.Sprintf("evil%d", h.n), Instance: "evil", LastSeq: 1<<63 - 1 - uint64(v)*1000})}
	case HostileIdentify:
		id := hellopicsv1.MsgType_MSG_TYPE_ID
		out := []frame{hs(hellopicsv1.MsgType_MSG_TYPE_HELLO, &hellopicsv1.Hello{Seq: 1, PairId: "p1", Epoch: targetEpoch})}
		switch v % 8 {
		case 0:
			out = append(out, hs(id, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_MGMT, PairId: "px"}))
		case 1:
			out = append(out, hs(id, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: "bad pair!"}))
		case 2:
			out = append(out, hs(id, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: "px", Epoch: 1 << 63}))
		case 3:
			out = append(out, hs(id, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_CTRL, PairId: "px", DataAddr: "x:1", LastSeq: 1 << 63}))
		case 4:
			out = append(out, hs(id, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_CTRL, PairId: "px"}))
		case 5:
			out = append(out, hs(id, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: "px", Epoch: targetEpoch + 1000}))
		case 6:
			out = append(out, hs(id, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: "px", Instance: strings.Repeat("i", 200)}))
		default:
			out = append(out, hs(hellopicsv1.MsgType_MSG_TYPE_HELLO, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: "px"}))
		}
		return out
	case HostileWatchIdentify:
		id := hellopicsv1.MsgType_MSG_TYPE_ID
		el := hellopicsv1.MsgType_MSG_TYPE_ELECTED
		switch v % 6 {
		case 0:
			return []frame{hs(id, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_MGMT, PairId: "p1", Instance: "evil", Watch: true})}
		case 1:
			return []frame{hs(id, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: "bad pair!", Instance: "evil", Watch: true})}
		case 2:
			return []frame{hs(id, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_CTRL, PairId: "p1", DataAddr: "x:1", Epoch: 1 << 63, Watch: true})}
		case 3:
			return []frame{hs(id, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: "p1", Instance: strings.Repeat("i", 200), Watch: true})}
		case 4:
			return []frame{hs(el, &hellopicsv1.Elected{Epoch: handshakeEpochLimit}),
				hs(id, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_UNSPECIFIED, PairId: "p1", Watch: true})}
		default:
			return []frame{hs(el, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: "p1", Watch: true})}
		}
	case HostileElected:
		var fence uint64
		for _, c := range w.comps {
			if c.name == f.Proc && c.up && c.ctrl != nil {
				fence = c.ctrl.Epoch()
			}
		}
		el := hellopicsv1.MsgType_MSG_TYPE_ELECTED
		pair := "p" + f.Proc[1:]
		switch v % 3 {
		case 0:
			return []frame{hs(el, &hellopicsv1.Elected{Epoch: handshakeEpochLimit + uint64(v)})}
		case 1:
			return []frame{hs(el, &hellopicsv1.Elected{Epoch: fence + 1})}
		default:
			return []frame{hs(hellopicsv1.MsgType_MSG_TYPE_ID, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: pair, Epoch: 1 << 63, Instance: "evil"}),
				hs(el, &hellopicsv1.Elected{Epoch: fence + 1})}
		}
	default: // HostileDataPort
		var ctrl *compProc
		for _, c := range w.comps {
			if c.name == f.Proc {
				ctrl = c
			}
		}
		var fence uint64
		if ctrl != nil && ctrl.up && ctrl.ctrl != nil {
			fence = ctrl.ctrl.Epoch()
		}
		pair := "p" + f.Proc[1:]
		id := hellopicsv1.MsgType_MSG_TYPE_ID
		switch v % 5 {
		case 0:
			return []frame{hs(hellopicsv1.MsgType_MSG_TYPE_HELLO, &hellopicsv1.Hello{Seq: 7, PairId: pair}),
				hs(id, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: "px", Instance: "evil"})}
		case 1:
			return []frame{hs(id, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_CTRL, PairId: pair, DataAddr: "x:1", Instance: "evil"})}
		case 2:
			return []frame{hs(id, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: pair, Epoch: 1 << 63, Instance: "evil"})}
		case 3:
			// Ahead of ctrl's epoch by more than any run can move it: a
			// bad-identify at a mgmt may legitimately lift the epochs by
			// 1000 (ObserveComponentEpoch adopts up to MaxEpochJump, one
			// per 20 heartbeats), so a claim of fence+1000 could be an
			// epoch ctrl has seen by the time a paused ctrl reads it
			// (seed 743621), and then nothing tells it from a real data.
			return []frame{hs(id, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: pair, Epoch: fence + 1<<40 + uint64(v), Instance: "evil"})}
		default:
			return []frame{hs(hellopicsv1.MsgType_MSG_TYPE_READY, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: pair})}
		}
	}
}
