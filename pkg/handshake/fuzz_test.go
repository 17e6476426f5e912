package handshake

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// FuzzMachines feeds each machine arbitrary frames, interleaved with
// sessions coming and going and time passing, and checks that nothing
// panics and that a machine never sends on a session it does not know.
// Each op is 3 bytes: what, session, frame type; frame payloads are the
// rest of the input, cut into pieces.
func FuzzMachines(f *testing.F) {
	seed := func(msgs ...proto.Message) []byte {
		var b []byte
		for i, m := range msgs {
			typ := byte(0)
			for t := range hellopicsv1.MsgType_name {
				if nm, ok := NewMessage(hellopicsv1.MsgType(t)); ok && nm.ProtoReflect().Descriptor() == m.ProtoReflect().Descriptor() {
					typ = byte(t)
				}
			}
			b = append(b, 0, byte(i%3+1), 0, 2, byte(i%3+1), typ)
		}
		b = append(b, 0xff)
		for _, m := range msgs {
			p, _ := proto.Marshal(m)
			b = append(b, byte(len(p)))
			b = append(b, p...)
		}
		return b
	}
	f.Add(seed(ctrlID("p1", "c"), dataID("p1", "d"), &hellopicsv1.GetPeer{PairId: "p1"}))
	f.Add(seed(dataID("p1", "d"), &hellopicsv1.Ready{Role: roleDataPB, PairId: "p1"}, ctrlID("p1", "c"),
		&hellopicsv1.Ready{Role: roleCtrlPB, PairId: "p1"}, &hellopicsv1.Hello{Seq: 1, Direction: dirCD, PairId: "p1", Epoch: 1}))
	f.Add(seed(&hellopicsv1.Peer{Role: roleCtrlPB, PairId: "p1", Addr: "c:1", Epoch: 1}, &hellopicsv1.Redirect{MasterAddr: "m2", Epoch: 2}))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, in []byte) {
		ops, payload := in, []byte(nil)
		for i, b := range in {
			if b == 0xff {
				ops, payload = in[:i], in[i+1:]
				break
			}
		}
		next := func() []byte {
			if len(payload) == 0 {
				return nil
			}
			n := min(int(payload[0]), len(payload)-1)
			p := payload[1 : 1+n]
			payload = payload[1+n:]
			return p
		}
		m, _ := NewMgmt(MgmtConfig{HelloInterval: MinHelloInterval, Epoch: 1})
		c, _ := NewCtrl(CtrlConfig{PairID: "p1", Instance: "c", DataAddr: "c:1"})
		d, _ := NewData(DataConfig{PairID: "p1", Instance: "d"})
		now := t0
		known := map[string]map[SessionID]bool{"m": {}, "c": {}, "d": {}}
		check := func(who string, outs []Output) {
			for _, o := range outs {
				if s, ok := o.(Send); ok && !known[who][s.Session] {
					t.Fatalf("%s sends %s on session %d it was never given", who, s.Type, s.Session)
				}
			}
		}
		for len(ops) >= 3 {
			what, sid, typ := ops[0], SessionID(ops[1]%4), hellopicsv1.MsgType(ops[2]%10)
			ops = ops[3:]
			msg, ok := NewMessage(typ)
			if ok && proto.Unmarshal(next(), msg) != nil {
				msg = nil
			}
			switch what % 12 {
			case 0:
				known["m"][sid] = true
				check("m", m.SessionUp(sid, "x", now))
			case 1:
				check("m", m.SessionDown(sid, "eof", now))
			case 2:
				check("m", m.Receive(sid, typ, msg, now))
			case 3:
				now = now.Add(7 * time.Millisecond)
				check("m", m.Tick(now))
				check("d", d.Tick(now))
			case 4:
				known["c"][sid] = true
				check("c", c.MgmtUp(sid))
			case 5:
				known["c"][sid] = true
				check("c", c.DataUp(sid, "x"))
			case 6:
				check("c", c.Receive(sid, typ, msg))
			case 7:
				check("c", c.DataDown(sid, "eof"))
				check("c", c.MgmtDown(sid, "eof"))
			case 8:
				known["d"][sid] = true
				check("d", d.MgmtUp(sid, now))
			case 9:
				known["d"][sid] = true
				check("d", d.CtrlUp(sid, now))
			case 10:
				check("d", d.Receive(sid, typ, msg, now))
			case 11:
				check("d", d.CtrlDown(sid, "eof", now))
				check("d", d.MgmtDown(sid, "eof", now))
				check("d", d.DialFailed("refused", now))
				check("m", m.SetMastership(sid%2 == 0, uint64(sid), "m2", now))
			}
			m.Pairs()
		}
	})
}
