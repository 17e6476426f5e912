package e2e

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// frame encodes one pconn frame by hand: version 1, flags 0, type (u16
// big endian), payload length (u32 big endian), payload.
func frame(t uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	b[0], b[1] = 1, 0
	binary.BigEndian.PutUint16(b[2:4], t)
	binary.BigEndian.PutUint32(b[4:8], uint32(len(payload)))
	return append(b, payload...)
}

// pbFrame is a frame of type t carrying m marshalled with protobuf.
func pbFrame(tb testing.TB, t hellopicsv1.MsgType, m proto.Message) []byte {
	tb.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return frame(uint16(t), b)
}

// rawResult is what a raw client saw: the frames the server sent before
// closing, and how long the server took to close.
type rawResult struct {
	local  string
	types  []uint16
	frames [][]byte
	closed time.Duration
}

// rawExchangeFrom connects to addr from the local IP from ("" for any),
// writes b and reads frames until the server closes the connection. It
// fails the test if the server does not close it within waitTimeout. It
// never answers pings: a raw client is silent, as a stray or a scanner
// would be.
func rawExchangeFrom(t *testing.T, from, addr string, b []byte) rawResult {
	t.Helper()
	var d net.Dialer
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	res := rawResult{local: conn.LocalAddr().String()}
	start := time.Now()
	if _, err := conn.Write(b); err != nil {
		t.Fatalf("write to %s: %v", addr, err)
	}
	if err := conn.SetReadDeadline(start.Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	for {
		var h [8]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("%s did not close the connection from %s within %v (frames received: %v)", addr, res.local, waitTimeout, res.types)
			}
			res.closed = time.Since(start)
			return res // EOF or reset: closed by the server
		}
		n := binary.BigEndian.Uint32(h[4:8])
		if n > 1<<20 {
			t.Fatalf("server sent a %d-byte frame", n)
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(r, p); err != nil {
			res.closed = time.Since(start)
			return res
		}
		res.types = append(res.types, binary.BigEndian.Uint16(h[2:4]))
		res.frames = append(res.frames, p)
	}
}

// reject returns the reason of the first Reject the server sent, or "".
func (r rawResult) reject(t *testing.T) string {
	t.Helper()
	for i, ty := range r.types {
		if ty == uint16(hellopicsv1.MsgType_MSG_TYPE_REJECT) {
			var rj hellopicsv1.Reject
			if err := proto.Unmarshal(r.frames[i], &rj); err != nil {
				t.Fatalf("undecodable Reject: %v", err)
			}
			return rj.GetReason()
		}
	}
	return ""
}

// closedFor matches pconn's WARN line that closes a session for what the
// peer sent, whose error names cause.
func closedFor(cause string) match {
	return match{fmt.Sprintf("WARN closing session, error containing %q", cause), func(l logLine) bool {
		return l.Str("@level") == "warn" && strings.HasPrefix(l.Msg(), "closing session") && strings.Contains(l.Str("error"), cause)
	}}
}

// contains matches lines whose raw text contains s.
func contains(s string) match {
	return match{fmt.Sprintf("line containing %q", s), func(l logLine) bool { return strings.Contains(l.Raw, s) }}
}

// TestBadInput connects raw TCP clients to mgmt and to ctrl's data port
// while a pair's cycle runs, and sends garbage, well-formed frames with a
// wrong identity, and a Hello before any Identify. Each connection is
// closed and logged, and the cycle is not disturbed: no hello is missed
// or out of order, received keeps growing and the cycle never stops.
func TestBadInput(t *testing.T) {
	skipShort(t)
	t.Parallel()
	const pair = "pic0"
	// Hellos every 200 ms rather than 50: the test asserts that not one
	// hello is missed, and a loaded two-core machine can stall a process
	// for more than 50 ms.
	tm := fast
	tm.hello = 200 * time.Millisecond
	c := newCluster(t, tm)
	// Every refusal logged, not one per kind and 10 s: each case looks
	// for its own line.
	c.mgmtFlags = []string{"-log-refusals-every", "0"}
	c.componentFlags = []string{"-log-refusals-every", "0"}
	m := c.StartMgmt()
	ctrl := c.StartCtrl(pair)
	data := c.StartData(pair)
	c.WaitRunning(0, pair, 3)
	ctrlStart, _ := ctrl.WaitFor(0, and(msg("starting"), field("component", "ctrl")))
	ctrlDataAddr := ctrlStart.Str("data_listen")
	if ctrlDataAddr == "" {
		t.Fatalf("ctrl did not log its data_listen address: %s", ctrlStart.Raw)
	}
	mMark, ctrlMark, dataMark := m.Mark(), ctrl.Mark(), data.Mark()
	before := c.Counters(pair)

	hello := &hellopicsv1.Hello{Seq: before.lastSeq + 1000, Direction: hellopicsv1.Direction_DIRECTION_MGMT_DATA_CTRL,
		Epoch: 1, PairId: pair, SentUnixNano: time.Now().UnixNano()}
	live := c.PairStatus(pair).GetCtrl()
	takeover := &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_CTRL, PairId: pair, Instance: live.GetInstance(),
		DataAddr: "127.0.0.2:9", Version: "e2e"}
	id := func(role hellopicsv1.Role, pairID, dataAddr string) *hellopicsv1.Identify {
		return &hellopicsv1.Identify{Role: role, PairId: pairID, Instance: "impostor-1", DataAddr: dataAddr, Version: "e2e"}
	}
	type tc struct {
		name       string
		target     *proc
		addr       string
		from       string // local IP to connect from; "" for any
		send       []byte
		wantReject string // substring of the Reject reason; "" for none expected
		wantLog    match  // a line the target must log about this connection
		peerLogged bool   // wantLog carries the client's address
		// silentClose: the daemon ignores the frame and keeps the
		// connection; it is closed by pconn's dead-peer timer because a
		// raw client never answers pings.
		silentClose bool
	}
	cases := []tc{
		{name: "mgmt/garbage", target: m, addr: c.mgmtAddr, send: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
			wantLog: closedFor("unsupported frame version"), peerLogged: true},
		{name: "mgmt/oversized", target: m, addr: c.mgmtAddr, send: []byte{1, 0, 0, 5, 0xff, 0xff, 0xff, 0xff},
			wantLog: closedFor("frame too large"), peerLogged: true},
		{name: "mgmt/undecodable-payload", target: m, addr: c.mgmtAddr,
			send:    frame(uint16(hellopicsv1.MsgType_MSG_TYPE_ID), []byte{0xff, 0xff, 0xff, 0xff, 0xff}),
			wantLog: closedFor("malformed MSG_TYPE_ID"), peerLogged: true},
		{name: "mgmt/unknown-type", target: m, addr: c.mgmtAddr, send: frame(0x7777, []byte("x")),
			wantLog: closedFor("unknown message type"), peerLogged: true},
		{name: "mgmt/identify-role-mgmt", target: m, addr: c.mgmtAddr,
			send:       pbFrame(t, hellopicsv1.MsgType_MSG_TYPE_ID, id(hellopicsv1.Role_ROLE_MGMT, pair, "")),
			wantReject: "may not register", wantLog: step("rejected", pair), peerLogged: true},
		{name: "mgmt/identify-empty-pair", target: m, addr: c.mgmtAddr,
			send:       pbFrame(t, hellopicsv1.MsgType_MSG_TYPE_ID, id(hellopicsv1.Role_ROLE_CTRL, "", "127.0.0.1:1")),
			wantReject: "pair id must be", wantLog: step("rejected", ""), peerLogged: true},
		{name: "mgmt/identify-ctrl-without-data-addr", target: m, addr: c.mgmtAddr,
			send:       pbFrame(t, hellopicsv1.MsgType_MSG_TYPE_ID, id(hellopicsv1.Role_ROLE_CTRL, "pic7", "")),
			wantReject: "data address", wantLog: step("rejected", "pic7"), peerLogged: true},
		{name: "mgmt/impostor-data-of-live-pair", target: m, addr: c.mgmtAddr,
			send:       pbFrame(t, hellopicsv1.MsgType_MSG_TYPE_ID, id(hellopicsv1.Role_ROLE_DATA, pair, "")),
			wantReject: "identity in use", wantLog: step("rejected", pair), peerLogged: true},
		// Issue 10: the live ctrl's instance id, from another address.
		{name: "mgmt/takeover-from-another-host", target: m, addr: c.mgmtAddr, from: "127.0.0.2",
			send:       pbFrame(t, hellopicsv1.MsgType_MSG_TYPE_ID, takeover),
			wantReject: "identity in use", wantLog: and(step("rejected", pair), field("refused", "in_use")), peerLogged: true},
		{name: "mgmt/last-seq-max", target: m, addr: c.mgmtAddr,
			send: pbFrame(t, hellopicsv1.MsgType_MSG_TYPE_ID, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: "pic8",
				Instance: "impostor-1", LastSeq: math.MaxUint64}),
			wantReject: "last_seq out of range", wantLog: and(step("rejected", "pic8"), field("refused", "seq_range")), peerLogged: true},
		{name: "mgmt/hello-before-identify", target: m, addr: c.mgmtAddr,
			send:    pbFrame(t, hellopicsv1.MsgType_MSG_TYPE_HELLO, hello),
			wantLog: step("ignored", ""), peerLogged: true, silentClose: true},
		{name: "ctrl/garbage", target: ctrl, addr: ctrlDataAddr, send: []byte("\x00\x01garbage garbage garbage\r\n"),
			wantLog: closedFor("unsupported frame version"), peerLogged: true},
		{name: "ctrl/identify-role-mgmt", target: ctrl, addr: ctrlDataAddr,
			send:       pbFrame(t, hellopicsv1.MsgType_MSG_TYPE_ID, id(hellopicsv1.Role_ROLE_MGMT, pair, "")),
			wantReject: "may not connect to ctrl", wantLog: step("rejected", pair)},
		{name: "ctrl/identify-empty-pair", target: ctrl, addr: ctrlDataAddr,
			send:       pbFrame(t, hellopicsv1.MsgType_MSG_TYPE_ID, id(hellopicsv1.Role_ROLE_DATA, "", "")),
			wantReject: "pair id must be", wantLog: step("rejected", pair)},
		{name: "ctrl/identify-other-pair", target: ctrl, addr: ctrlDataAddr,
			send:       pbFrame(t, hellopicsv1.MsgType_MSG_TYPE_ID, id(hellopicsv1.Role_ROLE_DATA, "pic9", "")),
			wantReject: "wrong pair", wantLog: step("rejected", pair)},
		// Issue 10: data's Identify with a huge epoch, and one just ahead
		// of ctrl's: refused, ctrl keeps its data link and its epoch.
		{name: "ctrl/identify-huge-epoch", target: ctrl, addr: ctrlDataAddr,
			send: pbFrame(t, hellopicsv1.MsgType_MSG_TYPE_ID, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: pair,
				Instance: "impostor-1", Epoch: math.MaxUint64}),
			wantReject: "epoch out of range", wantLog: and(step("rejected", pair), field("refused", "epoch_range")), peerLogged: true},
		{name: "ctrl/identify-epoch-ahead", target: ctrl, addr: ctrlDataAddr,
			send: pbFrame(t, hellopicsv1.MsgType_MSG_TYPE_ID, &hellopicsv1.Identify{Role: hellopicsv1.Role_ROLE_DATA, PairId: pair,
				Instance: "impostor-1", Epoch: 1 << 40}),
			// Held until ctrl hears that epoch from mgmt (never), it gets
			// nothing through; this attacker answers no keepalive, so
			// ctrl's dead-peer check closes it before the identify
			// timeout would refuse it ("retry").
			wantLog: step("held", pair), silentClose: true},
		{name: "ctrl/identify-new-instance-while-live", target: ctrl, addr: ctrlDataAddr,
			send:       pbFrame(t, hellopicsv1.MsgType_MSG_TYPE_ID, id(hellopicsv1.Role_ROLE_DATA, pair, "")),
			wantReject: "live data link", wantLog: and(step("rejected", pair), field("refused", "in_use")), peerLogged: true},
		{name: "ctrl/hello-before-identify", target: ctrl, addr: ctrlDataAddr,
			send:    pbFrame(t, hellopicsv1.MsgType_MSG_TYPE_HELLO, hello),
			wantLog: step("ignored", pair), silentClose: true},
	}
	// Issue 10: twelve Identify frames with 100 KB pair ids: over the
	// 4 KiB frame limit before identification, refused from the header;
	// and twelve that fit a frame but not the pair id rules.
	for i := 0; i < 12; i++ {
		cases = append(cases, tc{name: fmt.Sprintf("mgmt/100KB-pair-id-%d", i), target: m, addr: c.mgmtAddr,
			send:    pbFrame(t, hellopicsv1.MsgType_MSG_TYPE_ID, id(hellopicsv1.Role_ROLE_DATA, strings.Repeat(string(rune('a'+i)), 100_000), "")),
			wantLog: closedFor("frame too large"), peerLogged: true})
		cases = append(cases, tc{name: fmt.Sprintf("mgmt/65B-pair-id-%d", i), target: m, addr: c.mgmtAddr,
			send:       pbFrame(t, hellopicsv1.MsgType_MSG_TYPE_ID, id(hellopicsv1.Role_ROLE_DATA, strings.Repeat(string(rune('a'+i)), 65), "")),
			wantReject: "pair id must be", wantLog: and(step("rejected", ""), field("refused", "pair_id")), peerLogged: true})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mark := tc.target.Mark()
			res := rawExchangeFrom(t, tc.from, tc.addr, tc.send)
			if tc.wantReject != "" {
				got := res.reject(t)
				if !strings.Contains(got, tc.wantReject) {
					t.Errorf("Reject reason %q; want one containing %q (frame types received: %v)", got, tc.wantReject, res.types)
				}
				// A Reject tells a stranger nothing about the others.
				for _, secret := range []string{live.GetInstance(), live.GetAddr(), live.GetDataAddr()} {
					if secret != "" && strings.Contains(got, secret) {
						t.Errorf("Reject reason %q reveals %q", got, secret)
					}
				}
			}
			want := tc.wantLog
			if tc.peerLogged {
				want = and(want, contains(res.local))
			}
			tc.target.WaitForIn(t, mark, want)
			if tc.silentClose {
				// The session ends with pconn.ErrDeadPeer ("dead peer").
				tc.target.WaitForIn(t, mark, and(match{"WARN line about a dead peer", func(l logLine) bool {
					return l.Str("@level") == "warn" && strings.Contains(strings.ToLower(l.Raw), "dead")
				}}, contains(res.local)))
			}
			// Whatever closed it, the session's end is logged with the
			// client's address.
			tc.target.WaitForIn(t, mark, and(match{"session ended or closed", func(l logLine) bool {
				return l.Msg() == "session ended" || l.Msg() == "closing session" || strings.HasPrefix(l.Msg(), "closing session:")
			}}, contains(res.local)))
			t.Logf("closed after %v; frames %v", res.closed.Round(time.Millisecond), res.types)
		})
	}

	// The cycle went on undisturbed throughout, the registry holds the
	// one pair, its ctrl is the real one.
	after := c.WaitReceivedGrowing(pair, 3)
	if st, err := c.Status(); err != nil || len(st.GetPairs()) != 1 {
		t.Errorf("registry after the bad input: %v (%v)", st.GetPairs(), err)
	}
	if now := c.PairStatus(pair).GetCtrl(); now.GetAddr() != live.GetAddr() || now.GetDataAddr() != live.GetDataAddr() ||
		!proto.Equal(now.GetConnectedSince(), live.GetConnectedSince()) {
		t.Errorf("ctrl registration changed: before %v, after %v", live, now)
	}
	checkConsistent(t, pair, after)
	during := logCounters(m, mMark, pair)
	if during.stopped != 0 || during.started != 0 || !after.running {
		t.Errorf("the cycle stopped or restarted during the bad input: %v\n%s", during, c.Tails())
	}
	if during.missed != 0 || during.outOfOrder != 0 || after.missed != before.missed || after.outOfOrder != before.outOfOrder {
		t.Errorf("bad input disturbed the cycle: during %v; before %v; after %v\n%s", during, before, after, c.Tails())
	}
	if after.received < before.received+3 {
		t.Errorf("received did not keep growing: before %v, after %v", before, after)
	}
	for p, mark := range map[*proc]int{ctrl: ctrlMark, data: dataMark} {
		if ls := p.Find(mark, step("down", pair)); len(ls) > 0 {
			t.Errorf("%s lost a peer during the bad input: %s\n%s", p.name, ls[0].Raw, c.Tails())
		}
	}
}
