package mgmt_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hellopics/hellopics/mgmt"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// attack connects to addr (from local, if set), sends msgs as pconn
// frames and reads until the server closes. It returns the Reject
// reasons received.
func attack(t *testing.T, local, addr string, msgs ...proto.Message) []string {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	for _, m := range msgs {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		h := make([]byte, 8, 8+len(b))
		h[0] = 1
		binary.BigEndian.PutUint16(h[2:4], uint16(hellopicsv1.MsgType_MSG_TYPE_ID))
		binary.BigEndian.PutUint32(h[4:8], uint32(len(b)))
		if _, err := conn.Write(append(h, b...)); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for {
		var h [8]byte
		if _, err := io.ReadFull(conn, h[:]); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("%s did not close the attacker's connection", addr)
			}
			return reasons
		}
		b := make([]byte, binary.BigEndian.Uint32(h[4:8]))
		if _, err := io.ReadFull(conn, b); err != nil {
			return reasons
		}
		if binary.BigEndian.Uint16(h[2:4]) == uint16(hellopicsv1.MsgType_MSG_TYPE_REJECT) {
			var r hellopicsv1.Reject
			if err := proto.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			reasons = append(reasons, r.GetReason())
		}
	}
}

// waitMetric scrapes addr until the sample prefix reaches at least want.
func waitMetric(t *testing.T, addr, prefix string, want float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		text := scrape(t, addr)
		if value(text, prefix) >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached %v:\n%s", prefix, want, grep(text, "hellopics_"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHostileIdentify runs the three tiers in-process and attacks them
// with the forged Identify frames of issue 10: each is refused and
// counted, and the real pair keeps its registration and its Hello cycle.
func TestHostileIdentify(t *testing.T) {
	m, c, d := startTiers(t, 50*time.Millisecond, false)
	mAddr, cAddr := m.MetricsAddr().String(), c.MetricsAddr().String()
	waitMetric(t, mAddr, `hellopics_hellos_received_total{pair="pic0"}`, 2)

	before := m.Pairs()[0]
	live := before.GetCtrl()
	st, err := m.Status(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	epoch := st.GetEpoch()

	// 1. ctrl's data port: a forged data with a huge epoch is refused; one
	// ahead of ctrl's epoch is held (ctrl waits to hear that epoch from
	// mgmt), gets nothing through, and is closed: this attacker answers
	// no keepalive, so ctrl's dead-peer check (3 s) ends it before the
	// identify timeout (10 s) would refuse it.
	r := attack(t, "", c.DataAddr().String(), &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: "pic0", Instance: "evil", Epoch: math.MaxUint64})
	if len(r) != 1 {
		t.Fatalf("epoch 2^64-1 at ctrl's data port: rejects %q", r)
	}
	waitMetric(t, cAddr, `hellopics_ctrl_refused_total{reason="epoch_range"}`, 1)
	if r := attack(t, "", c.DataAddr().String(), &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: "pic0", Instance: "evil", Epoch: epoch + 1000}); len(r) > 1 {
		t.Fatalf("epoch %d at ctrl's data port: rejects %q", epoch+1000, r)
	}
	if !c.Ready() {
		t.Fatal("ctrl lost its data to a held forgery")
	}

	// 2. mgmt: the live ctrl's instance id from another source address.
	forged := &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_CTRL, PairId: "pic0", Instance: live.GetInstance(), DataAddr: "127.0.0.2:9", Epoch: epoch}
	r = attack(t, "127.0.0.2", m.Addr().String(), forged)
	if len(r) != 1 || strings.Contains(r[0], live.GetInstance()) || strings.Contains(r[0], "127.0.0.1") {
		t.Fatalf("takeover: rejects %q", r)
	}
	waitMetric(t, mAddr, `hellopics_mgmt_refused_total{reason="in_use"}`, 1)

	// 3. last_seq 2^64-1.
	attack(t, "", m.Addr().String(), &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: "x", Instance: "y", LastSeq: math.MaxUint64})
	waitMetric(t, mAddr, `hellopics_mgmt_refused_total{reason="seq_range"}`, 1)

	// 4. Twelve 100 KB pair ids: over the transport's frame limit before
	// identification (4 KiB), refused from the frame header; and twelve
	// that fit a frame but not the pair id limit, refused by the machine.
	for i := 0; i < 12; i++ {
		attack(t, "", m.Addr().String(), &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: strings.Repeat(string(rune('a'+i)), 100_000)})
		attack(t, "", m.Addr().String(), &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: strings.Repeat(string(rune('a'+i)), 65)})
	}
	waitMetric(t, mAddr, `hellopics_listener_refused_total{listener="components",reason="protocol"}`, 12)
	waitMetric(t, mAddr, `hellopics_mgmt_refused_total{reason="pair_id"}`, 12)

	// The real pair: same registration, cycle running, hellos still
	// coming back, nothing missed because of the attacks.
	recv := before.GetCounters().GetReceived()
	waitMetric(t, mAddr, `hellopics_hellos_received_total{pair="pic0"}`, float64(recv+3))
	ps := m.Pairs()
	if len(ps) != 1 {
		t.Fatalf("%d pairs after the attacks", len(ps))
	}
	after := ps[0]
	if !after.GetCycleRunning() || !proto.Equal(after.GetCtrl().GetConnectedSince(), live.GetConnectedSince()) ||
		after.GetCtrl().GetAddr() != live.GetAddr() || after.GetCtrl().GetDataAddr() != live.GetDataAddr() ||
		!proto.Equal(after.GetData().GetConnectedSince(), before.GetData().GetConnectedSince()) {
		t.Fatalf("pair changed:\nbefore %v\nafter  %v", before, after)
	}
	if !c.Ready() || !d.Ready() {
		t.Fatalf("ctrl ready %v, data ready %v", c.Ready(), d.Ready())
	}
}

// TestConfigLimits: MaxPairs and PairExpiry are validated.
func TestConfigLimits(t *testing.T) {
	cfg := mgmt.DefaultConfig()
	if cfg.MaxPairs != 512 || cfg.PairExpiry != 10*time.Minute {
		t.Fatalf("defaults %d %v", cfg.MaxPairs, cfg.PairExpiry)
	}
	cfg.MaxPairs, cfg.PairExpiry = 0, -time.Second
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "MaxPairs") || !strings.Contains(err.Error(), "PairExpiry") {
		t.Fatalf("validate: %v", err)
	}
	cfg = mgmt.DefaultConfig()
	cfg.PairExpiry = 0 // never
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}
