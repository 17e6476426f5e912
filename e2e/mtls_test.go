package e2e

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hellopics/hellopics/pkg/identity"
	"github.com/hellopics/hellopics/pkg/pki"
	"github.com/hellopics/hellopics/pkg/tlsconf"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// testPKI is a deployment's certificates, made with pkg/pki.
type testPKI struct {
	t   testing.TB
	dir string
}

func newTestPKI(t testing.TB, mgmt []string, pairs []string) *testPKI {
	t.Helper()
	p := &testPKI{t: t, dir: filepath.Join(t.TempDir(), "pki")}
	if _, _, err := pki.Deploy(p.dir, pki.Deployment{Mgmt: mgmt, Pairs: pairs,
		Operators: []identity.ID{{Role: identity.RoleOperator, Perm: identity.PermAdmin, Name: "e2e"}}}); err != nil {
		t.Fatal(err)
	}
	return p
}

// flags are the -tls-* flags for the certificate named base (such as
// "mgmt-a", "ctrl-pic0").
func (p *testPKI) flags(base string) []string {
	return []string{"-tls-cert", filepath.Join(p.dir, base+".crt"), "-tls-key", filepath.Join(p.dir, base+".key"),
		"-tls-ca", filepath.Join(p.dir, "ca.crt")}
}

// issue makes another certificate with this CA (a stranger's, valid for
// validity; 0: a year) and returns its base name.
func (p *testPKI) issue(id identity.ID, name string, validity time.Duration) string {
	p.t.Helper()
	if _, _, err := pki.Issue(p.dir, id, pki.IssueOptions{Name: name, Validity: validity}); err != nil {
		p.t.Fatal(err)
	}
	return name
}

// clientConfig is a TLS client configuration with base's certificate
// that accepts any mgmt of the deployment.
func (p *testPKI) clientConfig(base string) *tls.Config {
	p.t.Helper()
	src, err := tlsconf.Load(tlsconf.Files{Cert: filepath.Join(p.dir, base+".crt"), Key: filepath.Join(p.dir, base+".key"),
		CA: filepath.Join(p.dir, "ca.crt")}, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	return src.ClientConfig(tlsconf.Roles(identity.RoleMgmt))
}

func (p *testPKI) keyPair(base string) tls.Certificate {
	p.t.Helper()
	c, err := tls.LoadX509KeyPair(filepath.Join(p.dir, base+".crt"), filepath.Join(p.dir, base+".key"))
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

// tlsResult is what a TLS client saw: whether the handshake (or the
// server's verdict on our certificate, which TLS 1.3 sends after it)
// failed, and the Reject reason if the server sent one.
type tlsResult struct {
	handshakeErr error
	reject       string
	closed       bool
}

// tlsAttack connects to addr with the given certificates (none for a
// client without one), accepting any server, writes frames, and reads
// until the server closes or waitTimeout.
func tlsAttack(t *testing.T, addr string, certs []tls.Certificate, frames ...[]byte) tlsResult {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tc := tls.Client(conn, &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, Certificates: certs})
	_ = tc.SetDeadline(time.Now().Add(waitTimeout))
	var res tlsResult
	if err := tc.Handshake(); err != nil {
		res.handshakeErr, res.closed = err, true
		return res
	}
	for _, f := range frames {
		if _, err := tc.Write(f); err != nil {
			break
		}
	}
	r := bufio.NewReader(tc)
	for {
		var h [8]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return res
			}
			if strings.Contains(err.Error(), "certificate") || strings.Contains(err.Error(), "tls:") {
				res.handshakeErr = err // the server's verdict on our certificate
			}
			res.closed = true
			return res
		}
		b := make([]byte, binary.BigEndian.Uint32(h[4:8]))
		if _, err := io.ReadFull(r, b); err != nil {
			res.closed = true
			return res
		}
		if binary.BigEndian.Uint16(h[2:4]) == uint16(hellopicsv1.MsgType_MSG_TYPE_REJECT) {
			var rj hellopicsv1.Reject
			_ = proto.Unmarshal(b, &rj)
			res.reject = rj.GetReason()
		}
	}
}

// TestMutualTLS runs two mgmt instances, ctrl and data with mutual TLS
// and checks who may speak: a ctrl certificate of another pair, a data
// certificate claiming ctrl, an HA peer whose certificate names another
// id, a client without a certificate, one of another CA, an expired one.
// Each is refused and counted; the pair's cycle runs on with nothing
// missed. Then ctrl's certificate is replaced on disk under load: no
// session drops, no hello is missed, and a restarted data handshakes
// with ctrl's new certificate.
func TestMutualTLS(t *testing.T) {
	skipShort(t)
	t.Parallel()
	tm := fast
	tm.hello = 200 * time.Millisecond
	p := newTestPKI(t, []string{"a", "b"}, []string{haPair})
	h := newHACluster(t, tm, haSpec{id: "a", priority: 200, flags: steady}, haSpec{id: "b", priority: 100, flags: steady})
	metA, metB := freePort(t), freePort(t)
	h.opTLS = p.clientConfig("operator-e2e")
	a := h.StartMgmt("a", append(p.flags("mgmt-a"), "-metrics", metA)...)
	h.StartMgmt("b", append(p.flags("mgmt-b"), "-metrics", metB)...)
	ctrl := h.startComponent("ctrl", haPair, h.ctrl, append(p.flags("ctrl-"+haPair), "-listen", "127.0.0.1:0")...)
	data := h.startComponent("data", haPair, h.data, p.flags("data-"+haPair)...)
	if m, sts := h.WaitMaster(); m.id != "a" {
		t.Fatalf("master is %s; want a: %s", m.id, summarize(sts))
	}
	h.WaitCycle("a", 0, haPair, 3)
	ctrlData := ctrl.Find(0, and(msg("starting"), field("component", "ctrl")))[0].Str("data_listen")
	before := pairOf(h.MustStatus("a"), haPair).GetCounters()
	aMark, ctrlMark, dataMark := a.Mark(), ctrl.Mark(), data.Mark()

	other := newTestPKI(t, []string{"a"}, []string{haPair}) // another CA, same names
	otherPair := p.issue(identity.ID{Role: identity.RoleCtrl, Name: "pic9"}, "ctrl-pic9", 0)
	stranger := p.issue(identity.ID{Role: identity.RoleMgmt, Name: "x"}, "mgmt-x", 0)
	expired := p.issue(identity.ID{Role: identity.RoleCtrl, Name: haPair}, "ctrl-expired", time.Nanosecond)
	identify := func(role hellopicsv1.Role, pair string) []byte {
		in := &hellopicsv1.Identify{Role: role, PairId: pair, Instance: "impostor", Version: "e2e"}
		if role == hellopicsv1.Role_ROLE_CTRL {
			in.DataAddr = "127.0.0.1:9"
		}
		return pbFrame(t, hellopicsv1.MsgType_MSG_TYPE_ID, in)
	}
	certRefused := func(name, labels string) float64 {
		return max(0, scrape(t, metA, name, labels))
	}

	// 1. A valid ctrl certificate of another pair, identifying as pic0's ctrl.
	n0 := certRefused("hellopics_mgmt_refused_total", `reason="certificate"`)
	r := tlsAttack(t, h.M("a").listen, []tls.Certificate{p.keyPair(otherPair)}, identify(hellopicsv1.Role_ROLE_CTRL, haPair))
	if !strings.Contains(r.reject, "ctrl/pic9") || !r.closed {
		t.Errorf("another pair's ctrl certificate: %+v", r)
	}
	// 2. data's certificate claiming ctrl.
	r = tlsAttack(t, h.M("a").listen, []tls.Certificate{p.keyPair("data-" + haPair)}, identify(hellopicsv1.Role_ROLE_CTRL, haPair))
	if !strings.Contains(r.reject, "/data/"+haPair) || !r.closed {
		t.Errorf("a data certificate claiming ctrl: %+v", r)
	}
	waitScrape(t, metA, "hellopics_mgmt_refused_total", `reason="certificate"`, n0+2, h.Tails)

	// 3. An HA connection whose certificate names mgmt x, speaking as b.
	hb := haPB(t, hellopicsv1.HAMsgType_HA_MSG_TYPE_HEARTBEAT, &hellopicsv1.Heartbeat{Id: "b", Epoch: 1 << 40, MasterId: "b"})
	h0 := certRefused("hellopics_mgmt_ha_refused_total", `reason="certificate"`)
	if r := tlsAttack(t, h.M("a").ha, []tls.Certificate{p.keyPair(stranger)}, hb); !r.closed {
		t.Errorf("a heartbeat in b's name under x's certificate: %+v", r)
	}
	waitScrape(t, metA, "hellopics_mgmt_ha_refused_total", `reason="certificate"`, h0+1, h.Tails)

	// 4-6. No certificate, another CA's, an expired one: the handshake
	// fails, on mgmt's component port and on ctrl's data port.
	t0 := certRefused("hellopics_listener_refused_total", `listener="components",reason="tls"`)
	for _, c := range []struct {
		name  string
		certs []tls.Certificate
	}{
		{"no certificate", nil},
		{"another CA", []tls.Certificate{other.keyPair("ctrl-" + haPair)}},
		{"expired", []tls.Certificate{p.keyPair(expired)}},
	} {
		for _, addr := range []string{h.M("a").listen, ctrlData} {
			if r := tlsAttack(t, addr, c.certs, identify(hellopicsv1.Role_ROLE_DATA, haPair)); r.handshakeErr == nil || r.reject != "" {
				t.Errorf("%s at %s: %+v", c.name, addr, r)
			}
		}
	}
	waitScrape(t, metA, "hellopics_listener_refused_total", `listener="components",reason="tls"`, t0+3, h.Tails)

	// 7. A read-only operator asks for a switchover through ctl: refused,
	// counted, and mastership stays where it is.
	reader := p.issue(identity.ID{Role: identity.RoleOperator, Perm: identity.PermRead, Name: "viewer"}, "operator-viewer", 0)
	o0 := certRefused("hellopics_operator_refused_total", `reason="permission"`)
	out, err := exec.Command(binPath, append([]string{"ctl", "-addr", h.M("a").op}, append(p.flags(reader), "switchover")...)...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "operator/admin") {
		t.Errorf("a read-only operator's switchover: %v\n%s", err, out)
	}
	if out, err := exec.Command(binPath, append([]string{"ctl", "-addr", h.M("a").op}, append(p.flags(reader), "status")...)...).CombinedOutput(); err != nil {
		t.Errorf("a read-only operator's status: %v\n%s", err, out)
	}
	waitScrape(t, metA, "hellopics_operator_refused_total", `reason="permission"`, o0+1, h.Tails)
	if st := h.MustStatus("a"); st.GetRole() != roleMaster {
		t.Errorf("a is %v after the refused switchover", st.GetRole())
	}

	// The appliance did not notice.
	if a.Count(aMark, step("cycle_stopped", haPair)) > 0 || ctrl.Count(ctrlMark, step("down", "")) > 0 || data.Count(dataMark, step("down", "")) > 0 {
		t.Errorf("the attacks disturbed the pair\n%s", h.Tails())
	}

	// Rotation under load: a new certificate for ctrl, written over its
	// files; ctrl picks it up (within its 5 s poll) with no session lost.
	rot := ctrl.Mark()
	p.issue(identity.ID{Role: identity.RoleCtrl, Name: haPair}, "ctrl-"+haPair, 0)
	ctrl.WaitForIn(t, rot, msg("TLS certificate loaded"))
	a.WaitForN(a.Mark(), step("hello_returned", haPair), 3)
	if rc := pairOf(h.MustStatus("a"), haPair).GetCounters(); rc.GetMissed() != before.GetMissed() || rc.GetOutOfOrder() != before.GetOutOfOrder() {
		t.Errorf("hellos missed or out of order across the attacks and the rotation: %v -> %v", before, rc)
	}
	// data reconnects to ctrl: the new certificate is accepted.
	data.Kill()
	data = h.startComponent("data", haPair, h.data, p.flags("data-"+haPair)...)
	data.WaitFor(0, step("ready", haPair))
	a.WaitForN(a.Mark(), step("hello_returned", haPair), 3)
	after := pairOf(h.MustStatus("a"), haPair).GetCounters()
	if after.GetMissed() > before.GetMissed()+2 { // data's restart may cost the hello in flight
		t.Errorf("missed went from %d to %d", before.GetMissed(), after.GetMissed())
	}
	for _, l := range ctrl.Lines(rot) {
		if l.Step() == "down" && l.Str("peer") == "mgmt" {
			t.Errorf("ctrl lost mgmt during the rotation: %s", l.Raw)
		}
	}
}
