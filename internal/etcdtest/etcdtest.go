// Package etcdtest runs a real etcd cluster for tests: etcd processes
// (Debian's etcd-server, /usr/bin/etcd, or $HELLOPICS_ETCD) on loopback
// with their own ports and data directories, killed when the test ends.
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Binary is the etcd binary the tests run: $HELLOPICS_ETCD, else
// etcd on PATH, else /usr/bin/etcd; "" when there is none.
func Binary() string {
	if b := os.Getenv("HELLOPICS_ETCD"); b != "" {
		return b
	}
	if b, err := exec.LookPath("etcd"); err == nil {
		return b
	}
	if _, err := os.Stat("/usr/bin/etcd"); err == nil {
		return "/usr/bin/etcd"
	}
	return ""
}

// Member is one etcd process of a Cluster.
type Member struct {
	// Name is the member's etcd name (etcd0, etcd1, ...).
	Name string
	// Client is its client address, host:port.
	Client string
	peer   string
	dir    string
	args   []string
	bin    string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Cluster is a running etcd cluster.
type Cluster struct {
	// Members are the cluster's members, in order.
	Members []*Member
}

// Start starts an n-member cluster and waits until it answers; the test
// is skipped when no etcd binary is installed (the Debian package
// etcd-server; .ci/run installs it). The processes are killed at the
// end of the test.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartAt(t, n, func() string { return freeAddr(t) })
}

// StartAt is Start with the members' addresses (host:port, two per
// member) from addr.
func StartAt(t testing.TB, n int, addr func() string) *Cluster {
	t.Helper()
	bin := Binary()
	if bin == "" {
		t.Skip("no etcd binary (install the Debian package etcd-server, or set HELLOPICS_ETCD): the etcd election tests need a real etcd")
	}
	base := t.TempDir()
	c := &Cluster{}
	var initial []string
	for i := 0; i < n; i++ {
		m := &Member{Name: fmt.Sprintf("etcd%d", i), Client: addr(), peer: addr(), dir: filepath.Join(base, fmt.Sprintf("etcd%d", i)), bin: bin}
		c.Members = append(c.Members, m)
		initial = append(initial, m.Name+"=http://"+m.peer)
	}
	for _, m := range c.Members {
		m.args = []string{
			"--name", m.Name, "--data-dir", m.dir,
			"--listen-client-urls", "http://" + m.Client, "--advertise-client-urls", "http://" + m.Client,
			"--listen-peer-urls", "http://" + m.peer, "--initial-advertise-peer-urls", "http://" + m.peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", filepath.Base(base),
			// A faster etcd: its leader is replaced within a second, and
			// the least lease TTL is 1 s (1.5 election timeouts).
			"--heartbeat-interval", "50", "--election-timeout", "500",
			"--logger", "zap", "--log-outputs", filepath.Join(base, m.Name+".log"),
		}
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, m := range c.Members {
			m.Kill()
		}
		if t.Failed() {
			for _, m := range c.Members {
				if b, err := os.ReadFile(filepath.Join(base, m.Name+".log")); err == nil {
					lines := strings.Split(strings.TrimSpace(string(b)), "\n")
					t.Logf("%s log (last lines):\n%s", m.Name, strings.Join(lines[max(0, len(lines)-15):], "\n"))
				}
			}
		}
	})
	if err := c.Wait(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	return c
}

// Endpoints are the members' client addresses.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.Client)
	}
	return eps
}

// Wait waits until a write through the cluster succeeds, for at most d.
func (c *Cluster) Wait(d time.Duration) error {
	cli, err := c.Client()
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Put(ctx, "/etcdtest/ready", "1")
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd cluster not ready after %v: %w", d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Client returns a client of the cluster; close it.
func (c *Cluster) Client() (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
}

// Leader returns the member that is etcd's raft leader, or nil.
func (c *Cluster) Leader() *Member {
	cli, err := c.Client()
	if err != nil {
		return nil
	}
	defer cli.Close()
	for _, m := range c.Members {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := cli.Status(ctx, m.Client)
		cancel()
		if err == nil && st.Header != nil && st.Leader == st.Header.MemberId {
			return m
		}
	}
	return nil
}

// Start starts (or restarts, on its data) the member's process.
func (m *Member) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cmd := exec.Command(m.bin, m.args...)
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", m.Name, err)
	}
	m.cmd = cmd
	return nil
}

// Kill kills the member's process with SIGKILL and reaps it.
func (m *Member) Kill() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
	m.cmd = nil
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
