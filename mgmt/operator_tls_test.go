package mgmt_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/hellopics/hellopics/internal/testpki"
	"github.com/hellopics/hellopics/mgmt"
	"github.com/hellopics/hellopics/pkg/identity"
	"github.com/hellopics/hellopics/pkg/tlsconf"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// TestOperatorTLS: with Config.OperatorTLS the operator API speaks
// mutual TLS and authorises each RPC from the client's identity; its
// refusals are in mgmt's metrics.
func TestOperatorTLS(t *testing.T) {
	ca := testpki.NewCA(t, "hellopics.test")
	mc := mgmt.DefaultConfig()
	mc.ID = "a"
	mc.ListenAddr, mc.OperatorAddr, mc.MetricsAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	mc.OperatorTLS = ca.Source(t, ca.ID(t, identity.RoleMgmt, "a")).ServerConfig(nil)
	m, err := mgmt.New(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	src := ca.Source(t, ca.ID(t, identity.RoleOperator, "read/alice"))
	cc, err := grpc.NewClient("passthrough:///"+m.OperatorAddr().String(),
		grpc.WithTransportCredentials(credentials.NewTLS(src.ClientConfig(tlsconf.Roles(identity.RoleMgmt)))))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := hellopicsv1.NewOperatorServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.GetStatus(ctx, &hellopicsv1.GetStatusRequest{})
	if err != nil || st.GetId() != "a" {
		t.Fatalf("GetStatus as a read-only operator: %v, %v", st, err)
	}
	_, err = c.Switchover(ctx, &hellopicsv1.SwitchoverRequest{})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "operator/read/alice may not switch over") {
		t.Fatalf("Switchover as a read-only operator: %v", err)
	}
	text := scrape(t, m.MetricsAddr().String())
	if v := value(text, `hellopics_operator_refused_total{reason="permission"}`); v != 1 {
		t.Errorf("hellopics_operator_refused_total{reason=\"permission\"} = %v, want 1:\n%s", v, grep(text, "hellopics_operator"))
	}
}
