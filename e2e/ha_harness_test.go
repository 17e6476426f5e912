package e2e

// The harness of the master/backup tests: several mgmt instances that
// elect a master, each a child process with its own ports and -state-dir,
// and ctrl/data pairs that know every mgmt address. It builds on the
// single-mgmt harness (proc, cluster, freePort, the log matchers): the
// embedded cluster starts the components (its mgmtAddr is the
// comma-separated list of every mgmt) and formats the failure context of
// every process, mgmt instances included.
//
// The file is a _test.go file because the harness it builds on is.

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/hellopics/hellopics/pkg/election"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

const (
	roleMaster = hellopicsv1.MgmtRole_MGMT_ROLE_MASTER
	roleBackup = hellopicsv1.MgmtRole_MGMT_ROLE_BACKUP
)

// steady are the mgmt flags of the tests that do not measure failure
// detection: the default heartbeat (50ms) with 10 misses instead of 3, so
// a peer is dead after 500 ms instead of 150 ms. On a loaded two-core
// machine under the race detector a process is now and then not
// scheduled for 200 ms; with the default dead interval its peer then
// takes over although nothing failed (seen: a restarted backup, stalled
// 230 ms right after its start, found the master's heartbeats 224 ms old
// when it ran again and claimed mastership before reading the heartbeats
// buffered meanwhile). TestHAFailoverLoop and the benchmarks keep the
// defaults.
var steady = []string{"-dead-misses", "10"}

// haSpec describes one mgmt instance of an haCluster.
type haSpec struct {
	id       string
	priority int
	// flags are extra mgmt flags (such as -nopreempt).
	flags []string
}

// haMgmt is one mgmt instance: fixed addresses and state directory that
// survive restarts, and its current process.
type haMgmt struct {
	haSpec
	listen, op, ha, stateDir string
	// peerAddr, when set, is the address the other instances are given
	// to reach this one's -ha-listen (a proxy in between); else ha.
	peerAddr string
	p        *proc   // the current (or last) process
	procs    []*proc // every process started, in order
}

// epochPath is the instance's epoch file.
func (m *haMgmt) epochPath() string { return filepath.Join(m.stateDir, "epoch") }

// haCluster is several mgmt instances and any number of ctrl/data pairs
// that know all of them.
type haCluster struct {
	*cluster
	t     testing.TB
	mgmts []*haMgmt // in the order given
	// mgmtLevel is the mgmt instances' -log-level ("debug" if empty).
	mgmtLevel string
	// opTLS, when set, is the client configuration for the operator API
	// of instances started with certificates.
	opTLS *tls.Config
}

// newHACluster allocates the ports and state directories of the mgmt
// instances; nothing is started.
func newHACluster(t testing.TB, tm timing, specs ...haSpec) *haCluster {
	t.Helper()
	h := &haCluster{cluster: newCluster(t, tm), t: t}
	t.Cleanup(h.saveLogs)
	var addrs []string
	for _, s := range specs {
		m := &haMgmt{haSpec: s, listen: freePort(t), op: freePort(t), ha: freePort(t),
			stateDir: filepath.Join(t.TempDir(), "state-"+s.id)}
		h.mgmts = append(h.mgmts, m)
		addrs = append(addrs, m.listen)
	}
	// The components are started by the embedded cluster, with every mgmt
	// address (-mgmt takes a comma-separated list).
	h.mgmtAddr = strings.Join(addrs, ",")
	return h
}

// saveLogs writes every process's whole log to a directory under
// $HELLOPICS_E2E_LOGDIR when the variable is set and the test failed, or
// always with HELLOPICS_E2E_KEEPLOGS=1 (the failure message shows only
// the recent lines).
func (h *haCluster) saveLogs() {
	root := os.Getenv("HELLOPICS_E2E_LOGDIR")
	if root == "" || !h.t.Failed() && os.Getenv("HELLOPICS_E2E_KEEPLOGS") != "1" {
		return
	}
	dir := filepath.Join(root, strings.ReplaceAll(h.t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		h.t.Logf("saving logs: %v", err)
		return
	}
	h.cluster.mu.Lock()
	procs := append([]*proc(nil), h.procs...)
	h.cluster.mu.Unlock()
	for _, p := range procs {
		var b strings.Builder
		for _, l := range p.Lines(0) {
			b.WriteString(l.At.Format("15:04:05.000000 "))
			b.WriteString(l.Raw)
			b.WriteByte('\n')
		}
		if err := os.WriteFile(filepath.Join(dir, strings.ReplaceAll(p.name, "#", "-")+".log"), []byte(b.String()), 0o644); err != nil {
			h.t.Logf("saving logs: %v", err)
		}
	}
	h.t.Logf("logs saved in %s", dir)
}

// M returns the instance named id.
func (h *haCluster) M(id string) *haMgmt {
	h.t.Helper()
	for _, m := range h.mgmts {
		if m.id == id {
			return m
		}
	}
	h.t.Fatalf("no mgmt instance %q", id)
	return nil
}

// Other returns the instance of a two-instance cluster that is not id.
func (h *haCluster) Other(id string) *haMgmt {
	h.t.Helper()
	for _, m := range h.mgmts {
		if m.id != id {
			return m
		}
	}
	h.t.Fatalf("no mgmt instance other than %q", id)
	return nil
}

// StartMgmt starts instance id (again, if it ran before: same id, ports
// and -state-dir) with its flags and extra, and waits until it listens for
// components, for the operator API and for its peers.
func (h *haCluster) StartMgmt(id string, extra ...string) *proc {
	h.t.Helper()
	m := h.M(id)
	var peers []string
	for _, o := range h.mgmts {
		if o != m {
			addr := o.ha
			if o.peerAddr != "" {
				addr = o.peerAddr
			}
			peers = append(peers, o.id+"="+addr)
		}
	}
	lvl := h.mgmtLevel
	if lvl == "" {
		lvl = "debug"
	}
	args := []string{"mgmt",
		"-id", m.id,
		"-priority", strconv.Itoa(m.priority),
		"-listen", m.listen,
		"-operator", m.op,
		"-ha-listen", m.ha,
		"-peers", strings.Join(peers, ","),
		"-state-dir", m.stateDir,
		"-hello-interval", h.tm.hello.String(),
		"-dead-timeout", h.tm.dead.String(),
		"-log-json", "-log-level", lvl,
	}
	args = append(args, m.flags...)
	args = append(args, extra...)
	name := "mgmt-" + m.id
	if len(m.procs) > 0 {
		name += fmt.Sprintf("#%d", len(m.procs)+1)
	}
	p := startProc(h.t, name, args...)
	h.add(p)
	m.p = p
	m.procs = append(m.procs, p)
	for _, want := range []match{msg("listening for components"), msg("operator API listening"), msg("electing a master")} {
		if _, _, err := p.waitFor(0, want, 1, waitTimeout); err != nil {
			h.t.Fatalf("%s did not start: %v\n%s", name, err, h.Tails())
		}
	}
	return p
}

// StartPair starts ctrl and data of pair, both given every mgmt address.
func (h *haCluster) StartPair(pair string) (ctrl, data *proc) {
	h.t.Helper()
	return h.StartCtrl(pair), h.StartData(pair)
}

// Running returns the instances whose current process runs.
func (h *haCluster) Running() []*haMgmt {
	var out []*haMgmt
	for _, m := range h.mgmts {
		if m.p != nil && !m.p.Exited() {
			out = append(out, m)
		}
	}
	return out
}

// dialOp connects to an operator API address, in plaintext or, with
// tc, over TLS.
func dialOp(addr string, tc ...*tls.Config) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if len(tc) > 0 && tc[0] != nil {
		creds = credentials.NewTLS(tc[0])
	}
	return grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
}

// Status calls GetStatus on instance id, on a fresh connection (a
// restarted instance listens on the same address; a fresh client does not
// inherit gRPC's reconnect backoff).
func (h *haCluster) Status(id string) (*hellopicsv1.GetStatusResponse, error) {
	cc, err := dialOp(h.M(id).op, h.opTLS)
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hellopicsv1.NewOperatorServiceClient(cc).GetStatus(ctx, &hellopicsv1.GetStatusRequest{})
}

// MustStatus is Status failing the test on error.
func (h *haCluster) MustStatus(id string) *hellopicsv1.GetStatusResponse {
	h.t.Helper()
	st, err := h.Status(id)
	if err != nil {
		h.t.Fatalf("GetStatus on %s: %v\n%s", id, err, h.Tails())
	}
	return st
}

// Health calls the standard health check on instance id.
func (h *haCluster) Health(id string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	cc, err := dialOp(h.M(id).op, h.opTLS)
	if err != nil {
		return 0, err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	return r.GetStatus(), err
}

// Switchover asks instance id to hand mastership to target.
func (h *haCluster) Switchover(id, target string) (*hellopicsv1.SwitchoverResponse, error) {
	cc, err := dialOp(h.M(id).op, h.opTLS)
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	return hellopicsv1.NewOperatorServiceClient(cc).Switchover(ctx, &hellopicsv1.SwitchoverRequest{TargetId: target})
}

// poll calls f every 5 ms until it returns "" and fails the test with
// f's last answer (what is still missing) after waitTimeout. It polls an
// API: nothing depends on the period.
func (h *haCluster) poll(what string, f func() string) {
	h.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		why := f()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: not within %v: %s\n%s", what, waitTimeout, why, h.Tails())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// WaitMaster waits until the running instances agree: exactly one is
// master, every other running one is backup following it at its epoch,
// and the master sees every running backup alive. It returns the master
// and every running instance's status.
func (h *haCluster) WaitMaster() (*haMgmt, map[string]*hellopicsv1.GetStatusResponse) {
	h.t.Helper()
	var master *haMgmt
	var sts map[string]*hellopicsv1.GetStatusResponse
	h.poll("one master", func() string {
		master, sts = nil, map[string]*hellopicsv1.GetStatusResponse{}
		running := h.Running()
		for _, m := range running {
			st, err := h.Status(m.id)
			if err != nil {
				return fmt.Sprintf("GetStatus on %s: %v", m.id, err)
			}
			sts[m.id] = st
			if st.GetRole() == roleMaster {
				if master != nil {
					return fmt.Sprintf("two masters: %s and %s", master.id, m.id)
				}
				master = m
			}
		}
		if master == nil {
			return "no master: " + summarize(sts)
		}
		ms := sts[master.id]
		for _, m := range running {
			st := sts[m.id]
			if m == master {
				continue
			}
			if st.GetRole() != roleBackup || st.GetMasterId() != master.id || st.GetEpoch() != ms.GetEpoch() {
				return "not settled: " + summarize(sts)
			}
			alive := false
			for _, ps := range ms.GetMgmtPeers() {
				if ps.GetId() == m.id && ps.GetAlive() {
					alive = true
				}
			}
			if !alive {
				return fmt.Sprintf("master %s does not see %s alive yet: %s", master.id, m.id, summarize(sts))
			}
		}
		return ""
	})
	return master, sts
}

// summarize formats the role, epoch, master and sync version of statuses.
func summarize(sts map[string]*hellopicsv1.GetStatusResponse) string {
	ids := make([]string, 0, len(sts))
	for id := range sts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var b strings.Builder
	for _, id := range ids {
		st := sts[id]
		fmt.Fprintf(&b, "[%s: %v epoch=%d master=%q sync_version=%d] ", id, st.GetRole(), st.GetEpoch(), st.GetMasterId(), st.GetSyncVersion())
	}
	return b.String()
}

// pairOf returns pair's entry in st, or nil.
func pairOf(st *hellopicsv1.GetStatusResponse, pair string) *hellopicsv1.PairStatus {
	for _, ps := range st.GetPairs() {
		if ps.GetPairId() == pair {
			return ps
		}
	}
	return nil
}

// WaitSynced waits until backup has applied what master had sent when it
// is called: the master's sync version (at the same epoch), and pair's
// counters at least as far as the master's then. It returns the master's
// status read at the start.
func (h *haCluster) WaitSynced(master, backup, pair string) *hellopicsv1.GetStatusResponse {
	h.t.Helper()
	ms, err := h.trySynced(master, backup, pair)
	if err != nil {
		h.t.Fatalf("%v\n%s", err, h.Tails())
	}
	return ms
}

// trySynced is WaitSynced returning an error, at once if the mastership
// changes meanwhile.
func (h *haCluster) trySynced(master, backup, pair string) (*hellopicsv1.GetStatusResponse, error) {
	ms, err := h.Status(master)
	if err != nil {
		return nil, fmt.Errorf("GetStatus on %s: %w", master, err)
	}
	mp := pairOf(ms, pair)
	if ms.GetRole() != roleMaster || mp == nil {
		return nil, fmt.Errorf("%s is not master of a cycle of %s: %v", master, pair, summarize(map[string]*hellopicsv1.GetStatusResponse{master: ms}))
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		bs, err := h.Status(backup)
		if err != nil {
			return nil, fmt.Errorf("GetStatus on %s: %w", backup, err)
		}
		bp := pairOf(bs, pair)
		bc, mc := bp.GetCounters(), mp.GetCounters()
		if bs.GetEpoch() > ms.GetEpoch() || bs.GetMasterId() != master && bs.GetMasterId() != "" {
			return nil, fmt.Errorf("mastership changed while %s synced from %s: %v", backup, master,
				summarize(map[string]*hellopicsv1.GetStatusResponse{master: ms, backup: bs}))
		}
		if bs.GetRole() == roleBackup && bs.GetEpoch() == ms.GetEpoch() && bs.GetSyncVersion() >= ms.GetSyncVersion() &&
			bc.GetLastSeq() >= mc.GetLastSeq() && bc.GetSent() >= mc.GetSent() && bc.GetReceived() >= mc.GetReceived() {
			return ms, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s not synced from %s within %v: master (%v epoch %d sync_version %d) %v; backup (%v epoch %d sync_version %d) %v",
				backup, master, waitTimeout, ms.GetRole(), ms.GetEpoch(), ms.GetSyncVersion(), mc, bs.GetRole(), bs.GetEpoch(), bs.GetSyncVersion(), bc)
		}
		time.Sleep(5 * time.Millisecond) // polling an API, not timing
	}
}

// WaitCycle waits, in instance id's current log from position from, for
// pair's cycle to start and then for n of its hellos to return; it
// returns the position after the last.
func (h *haCluster) WaitCycle(id string, from int, pair string, n int) int {
	h.t.Helper()
	p := h.M(id).p
	_, pos := p.WaitFor(from, step("cycle_started", pair))
	_, pos = p.WaitForN(pos, step("hello_returned", pair), n)
	return pos
}

// readEpoch reads an instance's epoch file in the format of
// election.SaveEpoch (a decimal number and a newline); a missing file is
// 0.
func readEpoch(t testing.TB, m *haMgmt) uint64 {
	t.Helper()
	b, err := os.ReadFile(m.epochPath())
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatalf("epoch file of %s: %v", m.id, err)
	}
	s := string(b)
	if !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 {
		t.Errorf("epoch file of %s is %q; want one decimal line", m.id, s)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		t.Fatalf("epoch file of %s: %q: %v", m.id, s, err)
	}
	if ln, err := election.LoadEpoch(m.epochPath()); err != nil || ln != n {
		t.Errorf("election.LoadEpoch(%s) = %d, %v; the file says %d", m.epochPath(), ln, err, n)
	}
	return n
}

// seqLog collects the hello numbers seen in logs, to check that none is
// used twice.
type seqLog struct {
	seen map[uint64]string // seq -> where it was first seen
	dups []string
}

func newSeqLog() *seqLog { return &seqLog{seen: map[uint64]string{}} }

// add records the seq of every line from position from of p that m
// matches; it returns the position after the last line read.
func (s *seqLog) add(p *proc, from int, m match) int {
	ls := p.Lines(from)
	for _, l := range ls {
		if !m.f(l) {
			continue
		}
		seq := l.Uint("seq")
		where := fmt.Sprintf("%s: %s", p.name, l.Raw)
		if first, ok := s.seen[seq]; ok {
			s.dups = append(s.dups, fmt.Sprintf("hello %d twice:\n  %s\n  %s", seq, first, where))
			continue
		}
		s.seen[seq] = where
	}
	return from + len(ls)
}

// addMgmt records the hello numbers every mgmt process of h sent.
func (s *seqLog) addMgmt(h *haCluster) {
	for _, m := range h.mgmts {
		for _, p := range m.procs {
			s.add(p, 0, step("hello_sent", ""))
		}
	}
}

// instances returns the ctrl and data instance ids of pair in st.
func instances(st *hellopicsv1.GetStatusResponse, pair string) (ctrl, data string) {
	ps := pairOf(st, pair)
	return ps.GetCtrl().GetInstance(), ps.GetData().GetInstance()
}
