package handshake

import (
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// refusals returns the Refused values of the events in outs.
func refusals(outs []Output) []string {
	var r []string
	for _, o := range outs {
		if e, ok := o.(Event); ok && e.Refused != "" {
			r = append(r, e.Refused)
		}
	}
	return r
}

func wantRefused(t *testing.T, outs []Output, refused string) {
	t.Helper()
	if r := refusals(outs); len(r) != 1 || r[0] != refused {
		t.Fatalf("refusals %v, want [%s]: %s", r, refused, summary(outs))
	}
}

// rejectReason returns the reason of the Reject in outs, "" if none.
func rejectReason(outs []Output) string {
	for _, o := range outs {
		if s, ok := o.(Send); ok && s.Type == msgReject {
			return s.Msg.(*hellopicsv1.Reject).GetReason()
		}
	}
	return ""
}

// TestCtrlEpochNeverRaisedByData: a forged Identify on the data port with
// a huge epoch neither replaces the live data link nor raises ctrl's
// fence; hellos from mgmt keep flowing.
func TestCtrlEpochNeverRaisedByData(t *testing.T) {
	c := newTestCtrl(t)
	c.MgmtUp(1)
	c.Receive(1, msgPeer, &hellopicsv1.Peer{Role: roleDataPB, PairId: "p1", Epoch: 2})
	c.DataUp(2, "10.0.0.2:5000")
	c.Receive(2, msgID, &hellopicsv1.Identify{Role: roleDataPB, PairId: "p1", Instance: "d-1", Epoch: 2})
	c.Receive(2, msgReady, &hellopicsv1.Ready{Role: roleDataPB, PairId: "p1", Epoch: 2})

	for _, epoch := range []uint64{3, 1 << 62, math.MaxUint64} {
		c.DataUp(3, "10.0.0.66:4000")
		outs := c.Receive(3, msgID, &hellopicsv1.Identify{Role: roleDataPB, PairId: "p1", Instance: "evil", Epoch: epoch})
		if epoch >= EpochLimit {
			wantRefused(t, outs, RefusedEpochRange)
			continue
		}
		if got := summary(outs); got != " | held" {
			t.Fatalf("epoch %d: %s", epoch, got)
		}
		// Held, it gets nothing through: not its Ready, not its hellos.
		c.Receive(3, msgReady, &hellopicsv1.Ready{Role: roleDataPB, PairId: "p1", Epoch: epoch})
		if got := summary(c.Receive(3, msgHello, helloMsg(5, dirDC, 2))); got != " | ignored" {
			t.Fatalf("hello from a held data: %s", got)
		}
		if s, ok := c.DataSession(); !ok || s != 2 {
			t.Fatalf("data session %d %v while evil is held", s, ok)
		}
		outs = c.IdentifyExpired(3)
		if got := summary(outs); got != "send 3 REJECT; close 3 | rejected" {
			t.Fatalf("epoch %d at the identify timeout: %s", epoch, got)
		}
		wantRefused(t, outs, RefusedEpochAhead)
		if strings.Contains(rejectReason(outs), "d-1") || strings.Contains(rejectReason(outs), "10.0.0.2") {
			t.Fatalf("reject reveals the live data: %q", rejectReason(outs))
		}
	}
	// A hello from the accepted data with a huge epoch is not stale, but
	// does not raise the fence either; neither does its Ready.
	c.Receive(2, msgHello, helloMsg(5, dirDC, 1<<40))
	c.Receive(2, msgReady, &hellopicsv1.Ready{Role: roleDataPB, PairId: "p1", Epoch: 1 << 40})
	if c.Epoch() != 2 || !c.Ready() {
		t.Fatalf("epoch %d ready %v after forged identifies", c.Epoch(), c.Ready())
	}
	if got := summary(c.Receive(1, msgHello, helloMsg(6, dirCD, 2))); got != "send 2 HELLO | hello_forwarded" {
		t.Fatalf("real hello after attack: %s", got)
	}
	// Out of range from anyone, mgmt included: refused.
	wantRefused(t, c.Receive(1, msgHello, helloMsg(7, dirCD, EpochLimit)), RefusedEpochRange)
	wantRefused(t, c.Receive(2, msgHello, helloMsg(7, dirDC, math.MaxUint64)), RefusedEpochRange)
	wantRefused(t, c.Receive(1, msgPeer, &hellopicsv1.Peer{Role: roleDataPB, PairId: "p1", Epoch: EpochLimit}), RefusedEpochRange)
	wantRefused(t, c.Receive(1, msgRedir, &hellopicsv1.Redirect{MasterAddr: "m:1", Epoch: math.MaxUint64}), RefusedEpochRange)
	if c.Epoch() != 2 {
		t.Fatalf("epoch %d", c.Epoch())
	}
}

// TestCtrlDataEpochAheadHeld: real data that has seen a newer master than
// ctrl (it heard mgmt's Peer first) is held, its Ready kept, and taken the
// moment mgmt tells ctrl that epoch: no refusal, no lost link. Without
// that word before the identify timer, it is refused with "retry" and
// accepted on its next try.
func TestCtrlDataEpochAheadHeld(t *testing.T) {
	c := newTestCtrl(t)
	c.MgmtUp(1)
	c.DataUp(2, "10.0.0.2:5000")
	if got := summary(c.Receive(2, msgID, &hellopicsv1.Identify{Role: roleDataPB, PairId: "p1", Instance: "d-1", Epoch: 4})); got != " | held" {
		t.Fatalf("identify ahead: %s", got)
	}
	if got := summary(c.Receive(2, msgReady, &hellopicsv1.Ready{Role: roleDataPB, PairId: "p1", Epoch: 4})); got != " | " {
		t.Fatalf("ready while held: %q", got)
	}
	if c.Ready() {
		t.Fatal("ready while held")
	}
	// An older Peer does not release it.
	if got := summary(c.Receive(1, msgPeer, &hellopicsv1.Peer{Role: roleDataPB, PairId: "p1", Addr: "10.0.0.2:5000", Epoch: 3})); got != " | peer" {
		t.Fatalf("peer at 3: %s", got)
	}
	got := summary(c.Receive(1, msgPeer, &hellopicsv1.Peer{Role: roleDataPB, PairId: "p1", Addr: "10.0.0.2:5000", Epoch: 4}))
	if got != "send 1 READY | peer identified ready" {
		t.Fatalf("peer at 4: %s", got)
	}
	if s, ok := c.DataSession(); !ok || s != 2 || !c.Ready() || c.Epoch() != 4 {
		t.Fatalf("after mgmt's epoch: session %d %v ready %v epoch %d", s, ok, c.Ready(), c.Epoch())
	}
	if outs := c.IdentifyExpired(2); len(outs) != 0 {
		t.Fatalf("identify timer of a taken session: %s", summary(outs))
	}

	// The timer first: refused, then accepted once mgmt told ctrl.
	c = newTestCtrl(t)
	c.MgmtUp(1)
	c.DataUp(2, "10.0.0.2:5000")
	c.Receive(2, msgID, &hellopicsv1.Identify{Role: roleDataPB, PairId: "p1", Instance: "d-1", Epoch: 4})
	outs := c.IdentifyExpired(2)
	wantRefused(t, outs, RefusedEpochAhead)
	if !strings.Contains(rejectReason(outs), "retry") {
		t.Fatalf("reason %q", rejectReason(outs))
	}
	c.DataDown(2, "closed")
	c.Receive(1, msgPeer, &hellopicsv1.Peer{Role: roleDataPB, PairId: "p1", Addr: "10.0.0.2:5000", Epoch: 4})
	c.DataUp(3, "10.0.0.2:5001")
	if got := summary(c.Receive(3, msgID, &hellopicsv1.Identify{Role: roleDataPB, PairId: "p1", Instance: "d-1", Epoch: 4})); got != " | identified" {
		t.Fatalf("after mgmt's epoch: %s", got)
	}
	// A held session that goes away is forgotten.
	c.DataUp(4, "10.0.0.9:1")
	c.Receive(4, msgID, &hellopicsv1.Identify{Role: roleDataPB, PairId: "p1", Instance: "d-2", Epoch: 9})
	c.DataDown(4, "eof")
	if len(c.held) != 0 {
		t.Fatalf("held %v after its session ended", c.held)
	}
}

// TestCtrlDataLinkTakeover: a live data link is replaced only by the same
// instance from the same host; a restarted data (new instance) gets in
// once the old link is down.
func TestCtrlDataLinkTakeover(t *testing.T) {
	c := newTestCtrl(t)
	c.MgmtUp(1)
	c.Receive(1, msgPeer, &hellopicsv1.Peer{Role: roleDataPB, PairId: "p1", Epoch: 1})
	c.DataUp(2, "10.0.0.2:5000")
	if got := summary(c.Receive(2, msgID, dataID("p1", "d-1"))); got != " | identified" {
		t.Fatalf("data: %s", got)
	}
	steps := []struct {
		name, from, inst, want, refused string
	}{
		{"new instance while live", "10.0.0.2:5001", "d-2", "send 3 REJECT; close 3 | rejected", RefusedInUse},
		{"same instance, other host", "10.0.0.66:5001", "d-1", "send 3 REJECT; close 3 | rejected", RefusedInUse},
		{"no instance", "10.0.0.2:5001", "", "send 3 REJECT; close 3 | rejected", RefusedInUse},
		{"same instance, same host", "10.0.0.2:5002", "d-1", "close 2 | identified", ""},
	}
	for _, s := range steps {
		c.DataUp(3, s.from)
		outs := c.Receive(3, msgID, dataID("p1", s.inst))
		if got := summary(outs); got != s.want {
			t.Fatalf("%s: %s", s.name, got)
		}
		if r := refusals(outs); s.refused != "" && (len(r) != 1 || r[0] != s.refused) {
			t.Fatalf("%s: refusals %v", s.name, r)
		}
	}
	// Restarted data: refused while the old link lives, accepted after.
	c.DataUp(4, "10.0.0.2:6000")
	if got := summary(c.Receive(4, msgID, dataID("p1", "d-new"))); got != "send 4 REJECT; close 4 | rejected" {
		t.Fatalf("restart while old live: %s", got)
	}
	c.DataDown(3, "dead peer")
	c.DataUp(5, "10.0.0.2:6001")
	if got := summary(c.Receive(5, msgID, dataID("p1", "d-new"))); got != " | identified" {
		t.Fatalf("restart after old down: %s", got)
	}
}

// TestCtrlDataIdentifyLimits: data's Identify keeps to the limits.
func TestCtrlDataIdentifyLimits(t *testing.T) {
	tests := []struct {
		name    string
		id      *hellopicsv1.Identify
		refused string
	}{
		{"ctrl role", ctrlID("p1", "x"), RefusedRole},
		{"long pair", dataID(strings.Repeat("p", 100_000), "x"), RefusedPairID},
		{"bad pair chars", dataID("p1\n", "x"), RefusedPairID},
		{"other pair", dataID("p2", "x"), RefusedWrongPair},
		{"long instance", dataID("p1", strings.Repeat("i", MaxInstanceLen+1)), RefusedInstance},
		{"data addr on data", &hellopicsv1.Identify{Role: roleDataPB, PairId: "p1", DataAddr: "a:1"}, RefusedDataAddr},
		{"long version", &hellopicsv1.Identify{Role: roleDataPB, PairId: "p1", Version: strings.Repeat("v", MaxVersionLen+1)}, RefusedVersion},
		{"last seq", &hellopicsv1.Identify{Role: roleDataPB, PairId: "p1", LastSeq: math.MaxUint64}, RefusedSeqRange},
		{"epoch", &hellopicsv1.Identify{Role: roleDataPB, PairId: "p1", Epoch: EpochLimit}, RefusedEpochRange},
	}
	for _, tc := range tests {
		c := newTestCtrl(t)
		c.DataUp(2, "10.0.0.2:1")
		outs := c.Receive(2, msgID, tc.id)
		wantRefused(t, outs, tc.refused)
		if r := rejectReason(outs); len(r) > MaxReasonLen || strings.Contains(r, "c-1") {
			t.Fatalf("%s: reason %q", tc.name, r)
		}
	}
	c := newTestCtrl(t)
	c.DataUp(2, "10.0.0.2:1")
	wantRefused(t, c.Receive(2, msgReady, &hellopicsv1.Ready{}), RefusedNotIdentified)
	wantRefused(t, c.IdentifyExpired(2), RefusedIdentifyTimeout)
}

// TestDataRefusesBadPeerAndRedirect: data dials only valid addresses and
// takes no epoch from what it refuses.
func TestDataRefusesBadPeerAndRedirect(t *testing.T) {
	d := newTestData(t)
	d.MgmtUp(1, t0)
	for _, addr := range []string{"", "nohost", ":1", "h:0", "h:99999", strings.Repeat("h", MaxAddrLen) + ":1", "h\x00:1"} {
		outs := d.Receive(1, msgPeer, &hellopicsv1.Peer{Role: roleCtrlPB, PairId: "p1", Addr: addr, Epoch: 5}, t0)
		wantRefused(t, outs, RefusedAddr)
	}
	wantRefused(t, d.Receive(1, msgRedir, &hellopicsv1.Redirect{MasterAddr: "m 1", Epoch: 6}, t0), RefusedAddr)
	wantRefused(t, d.Receive(1, msgHello, helloMsg(1, dirDC, EpochLimit), t0), RefusedEpochRange)
	if d.Epoch() != 0 {
		t.Fatalf("epoch %d", d.Epoch())
	}
	outs := d.Receive(1, msgPeer, &hellopicsv1.Peer{Role: roleCtrlPB, PairId: "p1", Addr: "10.0.0.1:7301", Epoch: 5}, t0)
	if got := summary(outs); got != "dial 10.0.0.1:7301 | peer" || d.Epoch() != 5 {
		t.Fatalf("valid peer: %s epoch %d", got, d.Epoch())
	}
	d.CtrlUp(2, t0)
	// ctrl cannot raise data's fence either.
	d.Receive(2, msgHello, helloMsg(9, dirCD, 1<<50), t0)
	if d.Epoch() != 5 {
		t.Fatalf("epoch %d after ctrl's hello", d.Epoch())
	}
	// Nor push the reported last_seq out of mgmt's range.
	d.Receive(2, msgHello, helloMsg(math.MaxUint64, dirCD, 5), t0)
	if got := d.identify().GetLastSeq(); got >= SeqLimit {
		t.Fatalf("reports last_seq %d", got)
	}
}

// TestMgmtNoTakeoverFromElsewhere: knowing the live ctrl's instance id is
// not enough to take over its registration from another host.
func TestMgmtNoTakeoverFromElsewhere(t *testing.T) {
	m := runningMgmt(t) // ctrl c-1 from 10.0.0.1, data d-1 from 10.0.0.2
	m.SessionUp(9, "10.0.0.66:4444", t0)
	forged := ctrlID("p1", "c-1")
	forged.DataAddr = "10.0.0.66:7301"
	outs := m.Receive(9, msgID, forged, t0)
	if got := summary(outs); got != "send 9 REJECT; close 9 | rejected" {
		t.Fatalf("forged: %s", got)
	}
	wantRefused(t, outs, RefusedInUse)
	if r := rejectReason(outs); strings.Contains(r, "c-1") || strings.Contains(r, "10.0.0") {
		t.Fatalf("reject reveals the live ctrl: %q", r)
	}
	p := m.Pairs()[0]
	if !p.GetCycleRunning() || p.GetCtrl().GetAddr() != "10.0.0.1:1111" || p.GetCtrl().GetDataAddr() != "c:7000" {
		t.Fatalf("registry changed: %v", p)
	}
	// The same instance from the same host (a reconnect) does supersede.
	m.SessionUp(10, "10.0.0.1:5555", t0)
	if got := summary(m.Receive(10, msgID, ctrlID("p1", "c-1"), t0)); !strings.HasPrefix(got, "close 1;") {
		t.Fatalf("reconnect: %s", got)
	}
	// IPv6 forms of one address are the same host.
	if !sameHost("[::1]:1", "[0:0::1]:2") || sameHost("10.0.0.1:1", "10.0.0.10:1") || sameHost("", "") {
		t.Fatal("sameHost")
	}
}

// TestMgmtIdentifyLimits: every field of Identify is bounded, refusals
// are counted and leave the registry and the hello counter alone.
func TestMgmtIdentifyLimits(t *testing.T) {
	long := strings.Repeat("x", 100_000)
	tests := []struct {
		name    string
		id      *hellopicsv1.Identify
		refused string
	}{
		{"long pair", dataID(long, "d"), RefusedPairID},
		{"pair with space", dataID("p 1", "d"), RefusedPairID},
		{"pair max+1", dataID(strings.Repeat("p", MaxPairIDLen+1), "d"), RefusedPairID},
		{"long instance", dataID("p2", long), RefusedInstance},
		{"instance with newline", dataID("p2", "d\n"), RefusedInstance},
		{"long version", &hellopicsv1.Identify{Role: roleDataPB, PairId: "p2", Version: long}, RefusedVersion},
		{"ctrl bad data addr", &hellopicsv1.Identify{Role: roleCtrlPB, PairId: "p2", DataAddr: "nohost"}, RefusedDataAddr},
		{"ctrl long data addr", &hellopicsv1.Identify{Role: roleCtrlPB, PairId: "p2", DataAddr: long + ":1"}, RefusedDataAddr},
		{"data with data addr", &hellopicsv1.Identify{Role: roleDataPB, PairId: "p2", DataAddr: "a:1"}, RefusedDataAddr},
		{"last seq 2^64-1", &hellopicsv1.Identify{Role: roleDataPB, PairId: "p2", LastSeq: math.MaxUint64}, RefusedSeqRange},
		{"last seq 2^63", &hellopicsv1.Identify{Role: roleDataPB, PairId: "p2", LastSeq: SeqLimit}, RefusedSeqRange},
		{"epoch 2^63", &hellopicsv1.Identify{Role: roleDataPB, PairId: "p2", Epoch: EpochLimit}, RefusedEpochRange},
		{"epoch ahead", &hellopicsv1.Identify{Role: roleDataPB, PairId: "p2", Epoch: 2}, RefusedEpochAhead},
		{"role", &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_MGMT, PairId: "p2"}, RefusedRole},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := runningMgmt(t)
			before := m.Snapshot()
			m.SessionUp(9, "10.0.0.9:9", t0)
			outs := m.Receive(9, msgID, tc.id, t0)
			if got := summary(outs); got != "send 9 REJECT; close 9 | rejected" {
				t.Fatalf("got %s", got)
			}
			wantRefused(t, outs, tc.refused)
			if r := rejectReason(outs); len(r) > MaxReasonLen {
				t.Fatalf("reason of %d bytes", len(r))
			}
			for _, o := range outs {
				if e, ok := o.(Event); ok && (len(e.PairID) > MaxPairIDLen || len(e.Message) > 2*MaxReasonLen+MaxInstanceLen) {
					t.Fatalf("event carries the hostile input: %d/%d bytes", len(e.PairID), len(e.Message))
				}
			}
			if after := m.Snapshot(); after.NextSeq != before.NextSeq || len(after.Pairs) != 1 {
				t.Fatalf("state changed: next %d -> %d, %d pairs", before.NextSeq, after.NextSeq, len(after.Pairs))
			}
		})
	}
}

// TestMgmtLastSeqBound: an Identify's last_seq moves the counter by less
// than MaxSeqJump, a larger jump is refused without touching the state,
// and the counter stops below SeqLimit-1 (where a component's report
// saturates) rather than send a number twice or wrap.
func TestMgmtLastSeqBound(t *testing.T) {
	m := newTestMgmt(t, MgmtConfig{Epoch: 1})
	start := m.NextSeq()
	m.SessionUp(1, "10.0.0.1:1", t0)
	if got := summary(m.Receive(1, msgID, &hellopicsv1.Identify{Role: roleCtrlPB, PairId: "p1", Instance: "c", DataAddr: "c:1",
		LastSeq: start + MaxSeqJump - 1}, t0)); got != " | identified" {
		t.Fatalf("last_seq just under the jump bound: %s", got)
	}
	if m.NextSeq() != start+MaxSeqJump {
		t.Fatalf("next seq %d, want %d", m.NextSeq(), start+MaxSeqJump)
	}
	// A jump of MaxSeqJump or more: refused, nothing changes.
	next := m.NextSeq()
	m.SessionUp(3, "10.0.0.3:1", t0)
	outs := m.Receive(3, msgID, &hellopicsv1.Identify{Role: roleDataPB, PairId: "p9", Instance: "evil", LastSeq: next + MaxSeqJump}, t0)
	wantRefused(t, outs, RefusedSeqRange)
	if m.NextSeq() != next || len(m.Pairs()) != 1 {
		t.Fatalf("a refused jump changed the state: next %d -> %d, %d pairs", next, m.NextSeq(), len(m.Pairs()))
	}
	// The counter at SeqLimit-1 stops the cycle: a component reports at
	// most SeqLimit-1, so a number from there on could be sent twice.
	m.cycle.Observe(SeqLimit - 2) // the next number is SeqLimit-1
	m.SessionUp(2, "10.0.0.2:1", t0)
	m.Receive(2, msgID, dataID("p1", "d"), t0)
	m.Receive(2, msgReady, &hellopicsv1.Ready{Role: roleDataPB, PairId: "p1"}, t0)
	outs = m.Receive(1, msgReady, &hellopicsv1.Ready{Role: roleCtrlPB, PairId: "p1"}, t0)
	if got := summary(outs); got != " | ready cycle_started cycle_stopped" || m.NextSeq() != SeqLimit-1 {
		t.Fatalf("at the end of the numbers: %s, next %d", got, m.NextSeq())
	}
	// SetMastership ignores epochs out of range.
	m.SetMastership(true, math.MaxUint64, "", t0)
	if m.Epoch() != 1 {
		t.Fatalf("epoch %d", m.Epoch())
	}
	if _, err := NewMgmt(MgmtConfig{Epoch: EpochLimit}); err == nil {
		t.Fatal("epoch 2^63 accepted in config")
	}
}

// TestMgmtMaxPairs: new pairs beyond MaxPairs are refused; known pairs
// still register.
func TestMgmtMaxPairs(t *testing.T) {
	m := newTestMgmt(t, MgmtConfig{Epoch: 1, MaxPairs: 2})
	for i, p := range []string{"a", "b"} {
		m.SessionUp(SessionID(i+1), "10.0.0.1:1", t0)
		if got := summary(m.Receive(SessionID(i+1), msgID, dataID(p, "d"+p), t0)); got != " | identified" {
			t.Fatalf("pair %s: %s", p, got)
		}
	}
	m.SessionUp(3, "10.0.0.1:1", t0)
	outs := m.Receive(3, msgID, dataID("c", "dc"), t0)
	wantRefused(t, outs, RefusedTooManyPairs)
	if len(m.Pairs()) != 2 {
		t.Fatalf("%d pairs", len(m.Pairs()))
	}
	m.SessionUp(4, "10.0.0.1:1", t0)
	if got := summary(m.Receive(4, msgID, ctrlID("a", "ca"), t0)); !strings.Contains(got, "identified") {
		t.Fatalf("known pair: %s", got)
	}
	// Twelve identifies with 100 KB pair ids: all refused, nothing kept.
	for i := 0; i < 12; i++ {
		id := SessionID(100 + i)
		m.SessionUp(id, "10.0.0.66:1", t0)
		wantRefused(t, m.Receive(id, msgID, dataID(strings.Repeat(string(rune('a'+i)), 100_000), "x"), t0), RefusedPairID)
	}
	if len(m.Pairs()) != 2 || len(m.sessions) != 3 {
		t.Fatalf("%d pairs, %d sessions", len(m.Pairs()), len(m.sessions))
	}
}

// TestMgmtPairExpiry: a pair whose components are both gone is removed
// after PairExpiry, with an event; one that comes back in time stays.
func TestMgmtPairExpiry(t *testing.T) {
	m := newTestMgmt(t, MgmtConfig{Epoch: 1, PairExpiry: time.Minute})
	m.SessionUp(1, "10.0.0.1:1", t0)
	m.Receive(1, msgID, ctrlID("p1", "c"), t0)
	m.SessionUp(2, "10.0.0.2:1", t0)
	m.Receive(2, msgID, dataID("p1", "d"), t0)
	m.SessionDown(1, "eof", t0)
	if _, ok := m.NextDeadline(); ok {
		t.Fatal("deadline while data is live")
	}
	m.SessionDown(2, "eof", t0.Add(time.Second))
	at, ok := m.NextDeadline()
	if !ok || !at.Equal(t0.Add(61*time.Second)) {
		t.Fatalf("deadline %v %v", at, ok)
	}
	if got := summary(m.Tick(at.Add(-time.Millisecond))); got != " | " {
		t.Fatalf("early tick: %s", got)
	}
	// Back in time: no expiry.
	m.SessionUp(3, "10.0.0.2:1", at.Add(-time.Millisecond))
	m.Receive(3, msgID, dataID("p1", "d2"), at.Add(-time.Millisecond))
	if got := summary(m.Tick(at)); got != " | " || len(m.Pairs()) != 1 {
		t.Fatalf("tick with data back: %s", got)
	}
	end := at.Add(time.Hour)
	m.SessionDown(3, "eof", end)
	if got := summary(m.Tick(end.Add(time.Minute))); got != " | pair_expired" || len(m.Pairs()) != 0 {
		t.Fatalf("expiry: %s, %d pairs", got, len(m.Pairs()))
	}
	// Restored pairs expire too, counted from the first time the machine
	// is told the time.
	if err := m.Restore(Snapshot{NextSeq: 5, Pairs: []*hellopicsv1.PairStatus{{PairId: "old"}}}); err != nil {
		t.Fatal(err)
	}
	m.SetMastership(true, 1, "", end)
	if got := summary(m.Tick(end.Add(time.Minute))); got != " | pair_expired" {
		t.Fatalf("restored: %s", got)
	}
	// A negative expiry keeps pairs forever.
	m2 := newTestMgmt(t, MgmtConfig{Epoch: 1, PairExpiry: -1})
	m2.SessionUp(1, "10.0.0.1:1", t0)
	m2.Receive(1, msgID, dataID("p1", "d"), t0)
	m2.SessionDown(1, "eof", t0)
	if _, ok := m2.NextDeadline(); ok || len(refusals(m2.Tick(t0.Add(1000*time.Hour)))) != 0 || len(m2.Pairs()) != 1 {
		t.Fatal("pair expired with expiry disabled")
	}
}

// TestMgmtReportLimits: reports are for the sender's own pair and role and
// bounded; others are refused and the stored relay stats kept.
func TestMgmtReportLimits(t *testing.T) {
	m := runningMgmt(t)
	good := &hellopicsv1.Report{Role: roleDataPB, PairId: "p1", Relay: &hellopicsv1.RelayStats{Commands: 7, Counters: map[string]uint64{"retries": 1}}}
	if r := refusals(m.Receive(2, msgReport, good, t0)); len(r) != 0 {
		t.Fatalf("good report refused: %v", r)
	}
	many := map[string]uint64{}
	for i := 0; i <= MaxRelayCounters; i++ {
		many[strings.Repeat("c", i+1)] = 1
	}
	for name, r := range map[string]*hellopicsv1.Report{
		"too many counters": {Role: roleDataPB, PairId: "p1", Relay: &hellopicsv1.RelayStats{Counters: many}},
		"long name":         {Role: roleDataPB, PairId: "p1", Relay: &hellopicsv1.RelayStats{Counters: map[string]uint64{strings.Repeat("n", 100_000): 1}}},
		"bad name":          {Role: roleDataPB, PairId: "p1", Relay: &hellopicsv1.RelayStats{Counters: map[string]uint64{"a\x00": 1}}},
		"other pair":        {Role: roleDataPB, PairId: "p2", Relay: &hellopicsv1.RelayStats{}},
		"as ctrl":           {Role: roleCtrlPB, PairId: "p1"},
	} {
		if got := refusals(m.Receive(2, msgReport, r, t0)); len(got) != 1 || got[0] != RefusedReport {
			t.Fatalf("%s: %v", name, got)
		}
	}
	if got := m.Pairs()[0].GetRelay(); !proto.Equal(got, good.GetRelay()) {
		t.Fatalf("relay %v", got)
	}
}

// TestMgmtRefusalsCounted: messages before Identify and malformed ones
// carry a refusal.
func TestMgmtRefusalsCounted(t *testing.T) {
	m := newTestMgmt(t, MgmtConfig{Epoch: 1})
	m.SessionUp(1, "10.0.0.1:1", t0)
	wantRefused(t, m.Receive(1, msgReady, &hellopicsv1.Ready{}, t0), RefusedNotIdentified)
	wantRefused(t, m.Receive(1, msgHello, &hellopicsv1.Ready{}, t0), RefusedMalformed)
	wantRefused(t, m.Tick(t0.Add(DefaultIdentifyTimeout)), RefusedIdentifyTimeout)
	if lvl := (Event{Kind: EventIgnored, Refused: RefusedMalformed}).Level(); lvl.String() != "WARN" {
		t.Fatalf("refusal logs at %v", lvl)
	}
	if s := Sanitize(strings.Repeat("é", 1000)); len(s) > MaxReasonLen || strings.ContainsRune(s, 'é') {
		t.Fatalf("sanitize: %q", s)
	}
}

// TestMgmtWorstCaseSyncFits: a registry of DefaultMaxPairs pairs with
// every string at its limit still fits in one 1 MiB state-sync frame.
func TestMgmtWorstCaseSyncFits(t *testing.T) {
	m := newTestMgmt(t, MgmtConfig{Epoch: 1})
	counters := map[string]uint64{}
	for i := 0; i < MaxRelayCounters; i++ {
		counters[strings.Repeat(string(rune('a'+i)), MaxCounterNameLen)] = math.MaxUint64
	}
	host := strings.Repeat("h", MaxAddrLen-6) + ":65535"
	remote := "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
	sid := SessionID(0)
	for i := 0; i < DefaultMaxPairs; i++ {
		pid := strings.Repeat("p", MaxPairIDLen-4) + string(rune('a'+i/26/26%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i%26)) + "z"
		for _, role := range []hellopicsv1.Role{roleCtrlPB, roleDataPB} {
			sid++
			m.SessionUp(sid, remote, t0)
			id := &hellopicsv1.Identify{Role: role, PairId: pid, Instance: strings.Repeat("i", MaxInstanceLen-1) + string(rune('0'+role)),
				Version: strings.Repeat("v", MaxVersionLen), Epoch: 1}
			if role == roleCtrlPB {
				id.DataAddr = host
			}
			if got := summary(m.Receive(sid, msgID, id, t0)); !strings.Contains(got, "identified") {
				t.Fatalf("pair %d: %s", i, got)
			}
			if role == roleDataPB {
				r := &hellopicsv1.Report{Role: role, PairId: pid, Relay: &hellopicsv1.RelayStats{Commands: math.MaxUint64, Counters: counters}}
				if len(refusals(m.Receive(sid, msgReport, r, t0))) != 0 {
					t.Fatal("report refused")
				}
			}
		}
	}
	su := &hellopicsv1.SyncUpdate{Epoch: math.MaxUint64, Version: math.MaxUint64, Full: true, Pairs: m.Pairs(), NextSeq: math.MaxUint64}
	b, err := proto.Marshal(su)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("worst-case sync of %d pairs: %d bytes", DefaultMaxPairs, len(b))
	if len(b) >= 1<<20 {
		t.Fatalf("worst-case sync of %d pairs is %d bytes, over 1 MiB", DefaultMaxPairs, len(b))
	}
}

// TestRestoreFullAndLimits: a full snapshot forgets pairs the master no
// longer has (unless live here); pair ids beyond the limits are refused.
func TestRestoreFullAndLimits(t *testing.T) {
	m := newTestMgmt(t, MgmtConfig{Epoch: 1})
	m.SessionUp(1, "10.0.0.1:1", t0)
	m.Receive(1, msgID, dataID("live", "d"), t0)
	if err := m.Restore(Snapshot{Pairs: []*hellopicsv1.PairStatus{{PairId: "a"}, {PairId: "b"}}}); err != nil {
		t.Fatal(err)
	}
	if err := m.Restore(Snapshot{Full: true, Pairs: []*hellopicsv1.PairStatus{{PairId: "b"}}}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range m.Pairs() {
		ids = append(ids, p.GetPairId())
	}
	if strings.Join(ids, ",") != "b,live" {
		t.Fatalf("pairs after a full restore: %v", ids)
	}
	for _, bad := range []string{"", strings.Repeat("x", MaxPairIDLen+1), "a b"} {
		if err := m.Restore(Snapshot{Pairs: []*hellopicsv1.PairStatus{{PairId: bad}}}); err == nil {
			t.Fatalf("pair id %q restored", bad)
		}
	}
}
