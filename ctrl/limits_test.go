package ctrl

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hellopics/hellopics/pkg/pconn"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// TestDataSessionIdentified: pconn's small frame limit applies to a data
// session until ctrl's handshake accepts its Identify.
func TestDataSessionIdentified(t *testing.T) {
	cc := DefaultConfig()
	cc.MgmtAddrs, cc.ListenAddr = []string{"127.0.0.1:1"}, "127.0.0.1:0" // no mgmt: not needed here
	c, err := New(cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := pconn.DefaultConfig(pconn.HandlerFunc(func(*pconn.Session, pconn.Message) error { return nil }))

	big, err := pconn.Connect(t.Context(), cfg, c.DataAddr().String())
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

	s, err := pconn.Connect(t.Context(), cfg, c.DataAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.SendProto(pconn.MsgType(hellopicsv1.MsgType_MSG_TYPE_ID), &hellopicsv1.Identify{
		Role: hellopicsv1.Role_ROLE_DATA, PairId: cc.PairID, Instance: "d1", Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok := false
		for _, x := range c.dataSrv.Sessions() {
			if x.RemoteAddr().String() == s.LocalAddr().String() && x.Identified() {
				ok = true
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("data session not identified after its Identify")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
