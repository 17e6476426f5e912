package appliance

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hellopics/hellopics/pkg/pconn"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// FuzzDecodeHA feeds arbitrary frames to the decoder of the messages
// between management instances: it must never panic, and only accept the
// HA types.
func FuzzDecodeHA(f *testing.F) {
	hb, _ := proto.Marshal(&hellopicsv1.Heartbeat{Id: "a", Priority: 200, Epoch: 4, MasterId: "a", ComponentAddr: "x:7300"})
	f.Add(uint16(hellopicsv1.HAMsgType_HA_MSG_TYPE_HEARTBEAT), hb)
	su, _ := proto.Marshal(&hellopicsv1.SyncUpdate{Epoch: 4, Version: 9, Full: true, NextSeq: 100, Pairs: []*hellopicsv1.PairStatus{{PairId: "pic0"}}})
	f.Add(uint16(hellopicsv1.HAMsgType_HA_MSG_TYPE_SYNC), su)
	f.Add(uint16(1), hb)
	f.Fuzz(func(t *testing.T, typ uint16, payload []byte) {
		mt, msg, err := decodeHA(pconn.Message{Type: pconn.MsgType(typ), Payload: payload})
		if err != nil {
			return
		}
		if _, ok := haMessage(mt); !ok || msg == nil {
			t.Fatalf("accepted type %d", typ)
		}
	})
}
