package pairload

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hellopics/hellopics/mgmt"
)

func TestSourceAddr(t *testing.T) {
	for _, c := range []struct {
		base string
		i    int
		want string
	}{
		{"127.1.0.0", 0, "127.1.0.1"},
		{"127.1.0.0", 253, "127.1.0.254"},
		{"127.1.0.0", 254, "127.1.1.1"},
		{"127.9.0.0", 999, "127.9.3.238"},
		{"127.1.0.0", 254*256 - 1, "127.1.255.254"},
	} {
		got, err := SourceAddr(c.base, c.i)
		if err != nil || got.String() != c.want {
			t.Errorf("SourceAddr(%s, %d) = %v, %v; want %s", c.base, c.i, got, err, c.want)
		}
	}
	for _, c := range []struct {
		base string
		i    int
	}{{"10.1.0.0", 0}, {"127.1.2.0", 0}, {"127.1.0.0", 254 * 256}, {"127.1.0.0", -1}, {"nonsense", 0}, {"::1", 0}} {
		if got, err := SourceAddr(c.base, c.i); err == nil {
			t.Errorf("SourceAddr(%s, %d) = %v, want an error", c.base, c.i, got)
		}
	}
}

// startMgmt runs a standalone plaintext mgmt in this process.
func startMgmt(t *testing.T) *mgmt.Server {
	t.Helper()
	mc := mgmt.DefaultConfig()
	mc.ListenAddr, mc.OperatorAddr = "127.0.0.1:0", "127.0.0.1:0"
	mc.HelloInterval = 100 * time.Millisecond
	m, err := mgmt.New(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// With a host per pair, 40 pairs (2 sessions each to a lone mgmt: 80, above its
// 64 per host) all cycle and their hellos come back; from one host the
// same pairs cannot all be admitted.
func TestRunPairsFromTheirOwnHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 40 pairs twice")
	}
	m := startMgmt(t)
	cfg := DefaultConfig()
	cfg.Mgmt, cfg.Operator = []string{m.Addr().String()}, []string{m.OperatorAddr().String()}
	cfg.Pairs, cfg.Window, cfg.Settle = 40, 2*time.Second, 60*time.Second
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("run from a host per pair: %v", err)
	}
	if res.Received == 0 || res.RTTSamples == 0 {
		t.Errorf("no hellos came back over the window: %+v", res)
	}
	if res.EpochChanges != 0 {
		t.Errorf("%d mastership changes on a standalone mgmt", res.EpochChanges)
	}

	m2 := startMgmt(t)
	cfg.Mgmt, cfg.Operator = []string{m2.Addr().String()}, []string{m2.OperatorAddr().String()}
	cfg.SourceNet, cfg.Settle, cfg.Window = "", 3*time.Second, time.Second
	_, err = Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "of 40 pairs cycling") {
		t.Fatalf("40 pairs from one host: %v, want some refused by the per-host limit", err)
	}
	t.Logf("from one host: %v", err)
}
