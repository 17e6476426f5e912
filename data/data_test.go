package data_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hellopics/hellopics/data"
	"github.com/hellopics/hellopics/data/agentsim"
	"github.com/hellopics/hellopics/data/relay"
	"github.com/hellopics/hellopics/data/tpce"
	"github.com/hellopics/hellopics/pkg/meds"
)

// TestRelayWithoutMgmt: the data component relays TPCE commands through
// the SNMP agent although no management instance answers (its mgmt
// address is closed), and exports the relay's counters and latency.
func TestRelayWithoutMgmt(t *testing.T) {
	ag := agentsim.DefaultConfig()
	ag.Addr = "127.0.0.1:0"
	agent, err := agentsim.New(ag, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()

	rc := relay.DefaultConfig()
	rc.CommandSecurity.Community, rc.NotifySecurity.Community = "private", "public" // the simulator's
	rc.AgentAddr = agent.Addr().String()
	rc.NotifyAddr = "127.0.0.1:0"
	rc.CommandsAddr = "127.0.0.1:0"
	cfg := data.DefaultConfig()
	cfg.MgmtAddrs = []string{"127.0.0.1:1"} // nothing listens there
	cfg.Relay = &rc
	cfg.MetricsAddr = "127.0.0.1:0"
	d, err := data.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	agent.SetNotifyAddr(d.Relay().Addrs().Notify.String())
	if err := agent.Start(context.Background()); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := tpce.Dial(ctx, d.Relay().Addrs().Commands.String(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := uint32(1); i <= 3; i++ {
		if err := c.Command(i, []byte("show version")); err != nil {
			t.Fatal(err)
		}
		m, err := c.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if m.Type != meds.TypeResponse || m.ID != i || string(m.Text) != "show version" {
			t.Fatalf("answer %d: %v %d %q", i, m.Type, m.ID, m.Text)
		}
	}

	// The first failed attempt to reach mgmt may still be under way:
	// scrape until everything is there, or give up after a while.
	wants := []string{
		`hellopics_relay_messages_total{direction="in",port="commands"} 3`,
		`hellopics_relay_response_seconds_count 3`,
		`hellopics_handshake_ready 0`,
		`hellopics_sessions_total{event="connect_failed",link="mgmt"} `,
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + d.MetricsAddr().String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var missing []string
		for _, want := range wants {
			if !strings.Contains(string(b), want) {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics lack %q", missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
