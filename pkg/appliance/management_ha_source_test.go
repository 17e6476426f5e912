package appliance

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/hellopics/hellopics/pkg/election"
)

// TestHASourceCheck: a connection that names peer X must come from X's
// configured address, whatever other peers' addresses are allowed to
// connect at all; -ha-any-source lifts both checks but not the name.
func TestHASourceCheck(t *testing.T) {
	s := &Management{cfg: ManagementConfig{Config: election.Config{Peers: []election.Peer{{ID: "b", Addr: "127.0.0.2:7311"}, {ID: "c", Addr: "127.0.0.3:7311"}}}}}
	var err error
	if s.haSources, err = newPeerAddrs(s.cfg.Peers); err != nil {
		t.Fatal(err)
	}
	if err := s.haSources.refresh(); err != nil {
		t.Fatal(err)
	}
	from := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000} }
	tests := []struct {
		id, src, reason string
	}{
		{"b", "127.0.0.2", ""},
		{"b", "::ffff:127.0.0.2", ""},
		{"b", "127.0.0.3", "source"}, // c's host speaking for b
		{"b", "127.0.0.9", "source"},
		{"mallory", "127.0.0.2", "unknown_peer"},
	}
	for _, tt := range tests {
		reason, err := s.checkHASource(tt.id, from(tt.src))
		if reason != tt.reason || (err == nil) != (tt.reason == "") {
			t.Errorf("%s from %s: %q, %v; want %q", tt.id, tt.src, reason, err, tt.reason)
		}
		if tt.reason == "unknown_peer" && !errors.Is(err, election.ErrUnknownPeer) {
			t.Errorf("%s: %v is not ErrUnknownPeer", tt.id, err)
		}
	}
	for ip, ok := range map[string]bool{"127.0.0.2": true, "127.0.0.3": true, "127.0.0.9": false} {
		if err := s.haAcceptFilter(from(ip)); (err == nil) != ok {
			t.Errorf("accept filter for %s: %v", ip, err)
		}
	}
	s.cfg.HAAnySource = true
	if reason, err := s.checkHASource("b", from("10.9.9.9")); err != nil {
		t.Errorf("-ha-any-source: %s %v", reason, err)
	}
	if reason, _ := s.checkHASource("mallory", from("10.9.9.9")); reason != "unknown_peer" {
		t.Errorf("-ha-any-source with an unknown name: %q", reason)
	}
}

// TestPeerAddrsLateAndMoved: a peer name that does not resolve at start,
// or that moves, is looked up again when a connection does not match,
// at most once per resolveEvery.
func TestPeerAddrsLateAndMoved(t *testing.T) {
	pa, err := newPeerAddrs([]election.Peer{{ID: "b", Addr: "mgmt-b:7310"}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	pa.now = func() time.Time { return now }
	answer, lookups := []netip.Addr(nil), 0
	pa.resolve = func(context.Context, string) ([]netip.Addr, error) {
		lookups++
		if answer == nil {
			return nil, errors.New("no such host")
		}
		return answer, nil
	}
	if err := pa.refresh(); err == nil {
		t.Fatal("refresh of an unresolvable name: no error")
	}
	ip := netip.MustParseAddr("198.18.0.12")
	if pa.from("b", ip) {
		t.Fatal("matched before the name resolves")
	}
	answer = []netip.Addr{ip}
	for range 100 { // a flood within resolveEvery: no lookup
		if pa.from("b", ip) {
			t.Fatal("matched without a new lookup")
		}
	}
	if lookups != 1 {
		t.Fatalf("%d lookups within resolveEvery; want 1", lookups)
	}
	now = now.Add(resolveEvery)
	if !pa.from("b", ip) {
		t.Fatal("not matched once the name resolves")
	}
	// The peer moves: refused until the next lookup finds it there.
	moved := netip.MustParseAddr("198.18.0.13")
	answer = []netip.Addr{moved}
	now = now.Add(resolveEvery)
	if !pa.from("", moved) || pa.from("b", ip) {
		t.Fatal("the move was not followed")
	}
}
