package tier

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hellopics/hellopics/pkg/pconn"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// FuzzDecode feeds arbitrary frame types and payloads to Decode: it must
// never panic, and a frame it accepts must re-encode to a message that
// decodes the same.
func FuzzDecode(f *testing.F) {
	seed := func(t hellopicsv1.MsgType, m proto.Message) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint16(t), b)
	}
	seed(hellopicsv1.MsgType_MSG_TYPE_ID, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_CTRL, PairId: "pic0", Instance: "i", DataAddr: "127.0.0.1:7301", Epoch: 3, LastSeq: 9})
	seed(hellopicsv1.MsgType_MSG_TYPE_HELLO, &hellopicsv1.Hello{Seq: 7, Direction: hellopicsv1.Direction_DIRECTION_MGMT_CTRL_DATA, Epoch: 2, PairId: "pic0"})
	seed(hellopicsv1.MsgType_MSG_TYPE_REPORT, &hellopicsv1.Report{Role: hellopicsv1.Role_ROLE_DATA, Relay: &hellopicsv1.RelayStats{Counters: map[string]uint64{"a": 1}}})
	f.Add(uint16(99), []byte{1, 2, 3})
	f.Add(uint16(hellopicsv1.MsgType_MSG_TYPE_PEER), []byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, typ uint16, payload []byte) {
		mt, msg, err := Decode(pconn.Message{Type: pconn.MsgType(typ), Payload: payload})
		if err != nil {
			return
		}
		if uint16(mt) != typ || msg == nil {
			t.Fatalf("Decode(%d) returned type %d, message %v", typ, mt, msg)
		}
		b, err := proto.Marshal(msg)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		_, again, err := Decode(pconn.Message{Type: pconn.MsgType(typ), Payload: b})
		if err != nil || !proto.Equal(msg, again) {
			t.Fatalf("round trip changed the message: %v / %v (%v)", msg, again, err)
		}
	})
}
