package appliance

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hellopics/hellopics/pkg/election"
	"github.com/hellopics/hellopics/pkg/pconn"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// waitUntil polls cond, failing the test after a generous bound.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ignoreFrames() pconn.Config {
	return pconn.DefaultConfig(pconn.HandlerFunc(func(*pconn.Session, pconn.Message) error { return nil }))
}

// TestComponentSessionIdentified: pconn's small frame limit applies to a
// component session until the handshake accepts its Identify.
func TestComponentSessionIdentified(t *testing.T) {
	mc := DefaultManagementConfig()
	mc.ListenAddr = "127.0.0.1:0"
	m, err := StartManagement(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	// Before identification a frame over 4 KiB is refused from its header.
	big, err := pconn.Connect(t.Context(), ignoreFrames(), m.Addr().String())
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

	s, err := pconn.Connect(t.Context(), ignoreFrames(), m.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ss *pconn.Session
	waitUntil(t, "the component session", func() bool {
		for _, x := range m.srv.Sessions() {
			if x.RemoteAddr().String() == s.LocalAddr().String() {
				ss = x
			}
		}
		return ss != nil
	})
	if ss.Identified() {
		t.Fatal("component session identified before its Identify")
	}
	err = s.SendProto(pconn.MsgType(hellopicsv1.MsgType_MSG_TYPE_ID), &hellopicsv1.Identify{
		Role: hellopicsv1.Role_ROLE_CTRL, PairId: "pic0", Instance: "i1", DataAddr: "127.0.0.1:1", Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the session to be identified", ss.Identified)
	if st := m.srv.Stats(); st.ProtocolErrors != 1 {
		t.Fatalf("component listener stats %+v, want 1 protocol error", st)
	}
}

// TestHAInboundIdentifyTimeout: an inbound HA connection that never sends
// a heartbeat naming a configured peer is closed after the identify
// timeout; one that does stays.
func TestHAInboundIdentifyTimeout(t *testing.T) {
	mc := DefaultManagementConfig()
	mc.ListenAddr, mc.HAListenAddr = "127.0.0.1:0", "127.0.0.1:0"
	mc.ID, mc.Priority = "a", 200
	mc.Peers = []election.Peer{{ID: "b", Addr: "127.0.0.1:1"}} // never answers
	mc.IdentifyTimeout = 200 * time.Millisecond
	m, err := StartManagement(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	haAddr := m.haSrv.Addr().String()

	// Answers pings (so the dead-peer timer does not close it) but never
	// sends a heartbeat.
	cfg := ignoreFrames()
	cfg.DeadTimeout = time.Minute
	silent, err := pconn.Connect(t.Context(), cfg, haAddr)
	if err != nil {
		t.Fatal(err)
	}
	<-silent.Done()
	var pe *pconn.PeerError
	if !errors.As(silent.Err(), &pe) || !strings.Contains(pe.Reason, "not identified in time") {
		t.Fatalf("silent HA connection ended with %v", silent.Err())
	}

	// A heartbeat from a stranger does not identify the session either.
	stranger, err := pconn.Connect(t.Context(), cfg, haAddr)
	if err != nil {
		t.Fatal(err)
	}
	if err := stranger.SendProto(pconn.MsgType(hellopicsv1.HAMsgType_HA_MSG_TYPE_HEARTBEAT), &hellopicsv1.Heartbeat{Id: "zz"}); err != nil {
		t.Fatal(err)
	}
	<-stranger.Done()

	// The configured peer's heartbeat does.
	peer, err := pconn.Connect(t.Context(), cfg, haAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if err := peer.SendProto(pconn.MsgType(hellopicsv1.HAMsgType_HA_MSG_TYPE_HEARTBEAT), &hellopicsv1.Heartbeat{Id: "b", Priority: 100}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the peer's session to be identified", func() bool {
		for _, x := range m.haSrv.Sessions() {
			if x.RemoteAddr().String() == peer.LocalAddr().String() && x.Identified() {
				return true
			}
		}
		return false
	})
	if st := m.haSrv.Stats(); st.IdentifyTimeouts < 1 {
		t.Fatalf("HA listener stats %+v, want identify timeouts counted", st)
	}
}
