package election

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// FuzzElectionSteps feeds instance "a" of {a, b, c} a sequence of
// messages and ticks decoded from the input: heartbeats, handovers,
// sync updates and acks from members and from a stranger, with epochs
// near ours, far above it and at the end of the range. After every step
// it checks the invariants that hostile input must not break:
//   - the epoch never decreases and never passes MaxEpoch, nor does
//     any epoch the machine asks to persist;
//   - a message from a stranger, or one the machine refuses, changes
//     nothing it reports;
//   - mastership is only ever held at an epoch of a's own slot, and a
//     Handover makes a master only when it comes from the master a
//     followed.
func FuzzElectionSteps(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 0, 5, 2, 1, 1, 0, 1, 3})
	f.Add([]byte{1, 0, 0xff, 0, 0, 0, 1, 1, 0xfe, 2, 2, 0})
	f.Add([]byte{0, 1, 2, 1, 1, 1, 3, 0, 3, 1, 0, 9, 4, 1, 2, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		cfg := DefaultConfig("a", 150, Peer{ID: "b"}, Peer{ID: "c"})
		cfg.MaxEpochJump = 100
		e, err := New(cfg, 7)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Unix(1000, 0)
		e.Tick(now)
		senders := []string{"b", "c", "stranger"}
		masters := []string{"", "a", "b", "c", "stranger"}
		lastEpoch := e.Epoch()
		for len(in) >= 4 {
			op, who, ep, arg := in[0]%6, senders[int(in[1])%len(senders)], in[2], in[3]
			in = in[4:]
			epoch := e.Epoch() + uint64(ep%16)
			switch {
			case ep >= 0xf0:
				epoch = 1<<64 - 1 - uint64(ep&0x0f)
			case ep >= 0xe0:
				epoch = e.Epoch() + 1000 + uint64(ep)
			case ep >= 0xd0 && e.Epoch() >= 16:
				epoch = e.Epoch() - uint64(ep&0x0f)
			}
			var msg proto.Message
			switch op {
			case 0:
				msg = &hellopicsv1.Heartbeat{Id: who, Priority: uint32(arg), Epoch: epoch,
					MasterId: masters[int(arg)%len(masters)], ComponentAddr: "127.0.0.1:1"}
			case 1:
				msg = &hellopicsv1.Handover{Epoch: epoch, FromId: who}
			case 2:
				msg = &hellopicsv1.SyncUpdate{Epoch: epoch, Version: uint64(arg), Full: arg%2 == 0, NextSeq: uint64(arg) << 56}
			case 3:
				msg = &hellopicsv1.SyncAck{Epoch: epoch, Version: uint64(arg)}
			case 4:
				now = now.Add(time.Duration(arg) * time.Millisecond)
				e.Tick(now)
			case 5:
				_, _ = e.Switchover(now, "")
			}
			wasMaster := e.Role() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER
			followed := e.lastMaster
			if msg != nil {
				before := e.Status()
				err := e.Step(now, who, msg)
				if who == "stranger" && !errors.Is(err, ErrUnknownPeer) {
					t.Fatalf("stranger's %T: %v", msg, err)
				}
				if err != nil && !sameStatus(before, e.Status()) {
					t.Fatalf("%T from %s refused (%v) but changed the state", msg, who, err)
				}
				if _, ok := msg.(*hellopicsv1.Handover); ok && !wasMaster && e.Role() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER && who != followed {
					t.Fatalf("handover from %s made a master; it followed %q", who, followed)
				}
			}
			rd := e.Ready()
			if rd.PersistEpoch > MaxEpoch {
				t.Fatalf("asked to persist epoch %d", rd.PersistEpoch)
			}
			if e.Epoch() < lastEpoch || e.Epoch() > MaxEpoch {
				t.Fatalf("epoch went from %d to %d", lastEpoch, e.Epoch())
			}
			lastEpoch = e.Epoch()
			if e.Role() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER && e.Epoch()%3 != e.slot {
				t.Fatalf("master at epoch %d, not of slot %d", e.Epoch(), e.slot)
			}
		}
	})
}
