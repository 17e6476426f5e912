package appliance

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/hellopics/hellopics/pkg/election"
)

// peerAddrs knows which IP addresses each mgmt peer's connections may
// come from: those its configured HA address resolves to. A name that
// does not resolve yet (DNS not up at boot, a container not started) or
// that moved is looked up again when a connection does not match, at
// most once per resolveEvery per peer, so a peer is never locked out
// for good and a flood of strangers costs no flood of lookups. Safe for
// concurrent use: the accept goroutines and the loop ask it.
type peerAddrs struct {
	resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	now     func() time.Time

	mu    sync.Mutex
	peers map[string]*peerAddr // by id
}

type peerAddr struct {
	host     string
	ips      map[netip.Addr]bool
	resolved time.Time // last lookup attempt
	err      error     // of the last lookup
}

// resolveEvery bounds the lookups of one peer's name.
const resolveEvery = 5 * time.Second

func newPeerAddrs(peers []election.Peer) (*peerAddrs, error) {
	pa := &peerAddrs{
		resolve: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		},
		now:   time.Now,
		peers: make(map[string]*peerAddr, len(peers)),
	}
	for _, p := range peers {
		host, _, err := net.SplitHostPort(p.Addr)
		if err != nil {
			return nil, fmt.Errorf("mgmt peer %s: address %q: %w", p.ID, p.Addr, err)
		}
		pa.peers[p.ID] = &peerAddr{host: host}
	}
	return pa, nil
}

// refresh looks up every peer's name now; it returns the first error,
// for a warning at start (the lookups are retried when needed).
func (pa *peerAddrs) refresh() error {
	pa.mu.Lock()
	defer pa.mu.Unlock()
	var first error
	for id, p := range pa.peers {
		if err := pa.lookupLocked(p); err != nil && first == nil {
			first = fmt.Errorf("mgmt peer %s: %w", id, err)
		}
	}
	return first
}

func (pa *peerAddrs) lookupLocked(p *peerAddr) error {
	p.resolved = pa.now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addrs, err := pa.resolve(ctx, p.host)
	if err != nil {
		p.err = fmt.Errorf("resolve %q: %w", p.host, err)
		return p.err
	}
	ips := make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		ips[a.Unmap()] = true
	}
	p.ips, p.err = ips, nil
	return nil
}

// known reports whether id is a configured peer.
func (pa *peerAddrs) known(id string) bool {
	pa.mu.Lock()
	defer pa.mu.Unlock()
	return pa.peers[id] != nil
}

// from reports whether ip is an address of peer id ("" for any peer),
// looking names up again, rate-limited, when it is not.
func (pa *peerAddrs) from(id string, ip netip.Addr) bool {
	ip = ip.Unmap()
	pa.mu.Lock()
	defer pa.mu.Unlock()
	match := func() bool {
		for pid, p := range pa.peers {
			if (id == "" || pid == id) && p.ips[ip] {
				return true
			}
		}
		return false
	}
	if match() {
		return true
	}
	again := false
	for pid, p := range pa.peers {
		if (id == "" || pid == id) && pa.now().Sub(p.resolved) >= resolveEvery {
			_ = pa.lookupLocked(p)
			again = true
		}
	}
	return again && match()
}

// remoteIP is the IP address of a connection's remote end.
func remoteIP(a net.Addr) (netip.Addr, error) {
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return netip.Addr{}, err
	}
	return netip.ParseAddr(host)
}
