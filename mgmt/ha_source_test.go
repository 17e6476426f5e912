package mgmt

import (
	"errors"
	"net"
	"testing"

	"github.com/hellopics/hellopics/mgmt/election"
)

// TestHASourceCheck: a connection that names peer X must come from X's
// configured address, whatever other peers' addresses are allowed to
// connect at all; -ha-any-source lifts both checks but not the name.
func TestHASourceCheck(t *testing.T) {
	s := &Server{cfg: Config{Peers: []election.Peer{{ID: "b", Addr: "127.0.0.2:7311"}, {ID: "c", Addr: "127.0.0.3:7311"}}}}
	s.haSources = map[string]map[string]bool{}
	for _, p := range s.cfg.Peers {
		ips, err := peerIPs(p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		s.haSources[p.ID] = ips
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
