package appliance

import (
	"errors"
	"strings"
	"testing"

	"github.com/hellopics/hellopics/internal/await"
	"github.com/hellopics/hellopics/pkg/pconn"
	"github.com/hellopics/hellopics/pkg/tier"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// TestDataSessionIdentified: pconn's small frame limit applies to a data
// session until ctrl's handshake accepts its Identify.
func TestDataSessionIdentified(t *testing.T) {
	cc := tier.DefaultComponentConfig()
	cc.MgmtAddrs = []string{"127.0.0.1:1"} // no mgmt: not needed here
	c, err := StartComponent(ComponentSpec{Role: Ctrl, Config: cc, ListenAddr: "127.0.0.1:0", IdentifyTimeout: DefaultIdentifyTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := pconn.DefaultConfig(pconn.HandlerFunc(func(*pconn.Session, pconn.Message) error { return nil }))

	big, err := pconn.Connect(t.Context(), cfg, c.PeerAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := big.Send(pconn.MsgType(hellopicsv1.MsgType_MSG_TYPE_ID), make([]byte, 5000)); err != nil {
		t.Fatal(err)
	}
	<-big.Done()
	var pe *pconn.PeerError
	if !errors.As(big.Err(), &pe) || !strings.Contains(pe.Reason, "frame too large") {
		t.Fatalf("oversized frame before Identify: session ended with %v", big.Err())
	}

	s, err := pconn.Connect(t.Context(), cfg, c.PeerAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.SendProto(pconn.MsgType(hellopicsv1.MsgType_MSG_TYPE_ID), &hellopicsv1.Identify{
		Role: hellopicsv1.Role_ROLE_DATA, PairId: cc.PairID, Instance: "d1", Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	await.True(t, func() bool {
		for _, x := range c.peerSrv.Sessions() {
			if x.RemoteAddr().String() == s.LocalAddr().String() && x.Identified() {
				return true
			}
		}
		return false
	}, "data session identified after its Identify")
}
