package mgmt_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/hellopics/hellopics/ctrl"
	"github.com/hellopics/hellopics/data"
	"github.com/hellopics/hellopics/mgmt"
)

func healthOf(t *testing.T, addr string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("health check of %s: %v", addr, err)
	}
	return resp.GetStatus()
}

func waitHealth(t *testing.T, addr string, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := healthOf(t, addr)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s reports %v, want %v", addr, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestComponentHealth: ctrl and data report NOT_SERVING on the gRPC health
// service until their handshake is complete, and mgmt SERVING as master.
func TestComponentHealth(t *testing.T) {
	mc := mgmt.DefaultConfig()
	mc.ListenAddr, mc.OperatorAddr = "127.0.0.1:0", "127.0.0.1:0"
	m, err := mgmt.New(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	waitHealth(t, m.OperatorAddr().String(), healthpb.HealthCheckResponse_SERVING)

	cc := ctrl.DefaultConfig()
	cc.MgmtAddrs, cc.ListenAddr, cc.HealthAddr = []string{m.Addr().String()}, "127.0.0.1:0", "127.0.0.1:0"
	c, err := ctrl.New(cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Without its data component, ctrl's handshake cannot complete.
	if got := healthOf(t, c.HealthAddr().String()); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("ctrl without data reports %v", got)
	}

	dc := data.DefaultConfig()
	dc.MgmtAddrs, dc.HealthAddr = []string{m.Addr().String()}, "127.0.0.1:0"
	d, err := data.New(dc)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	waitHealth(t, c.HealthAddr().String(), healthpb.HealthCheckResponse_SERVING)
	waitHealth(t, d.HealthAddr().String(), healthpb.HealthCheckResponse_SERVING)

	// Losing data undoes ctrl's readiness.
	d.Close()
	waitHealth(t, c.HealthAddr().String(), healthpb.HealthCheckResponse_NOT_SERVING)
}
