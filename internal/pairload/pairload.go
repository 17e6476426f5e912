// Package pairload runs many ctrl/data pairs in one process against real
// mgmt processes, over real TCP, and measures what mgmt pays for them:
// the load tool behind `hellopics bench pairs` (issue 14).
//
// Each simulated pair is the real component code (ctrl.New, data.New):
// the same handshake, watch sessions, hello forwarding and retries as
// the daemons, only sharing a process. What is measured comes from
// outside mgmt: its CPU time and RSS from /proc, the pairs' counters and
// round-trip times from the operator API, and the bytes its HA sockets
// sent from the kernel (ss).
package pairload

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hellopics/hellopics/ctrl"
	"github.com/hellopics/hellopics/data"
	"github.com/hellopics/hellopics/pkg/pconn"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// Config configures a run. Start from DefaultConfig.
type Config struct {
	// Mgmt are the mgmt component addresses (host:port) the pairs use.
	Mgmt []string
	// Operator are the same instances' operator API addresses, in the
	// same order (plaintext).
	Operator []string
	// PIDs are the same instances' process ids, for CPU and RSS, the HA
	// bytes and -kill; empty measures neither.
	PIDs []int
	// HAPorts are the instances' HA ports, for the sync bytes (with PIDs).
	HAPorts []int
	// Pairs is how many pairs to run; Prefix names them (Prefix0001...).
	Pairs  int
	Prefix string
	// SourceNet, if set, gives pair i a loopback host of its own: its
	// ctrl and data dial from, and ctrl listens on, the i-th address of
	// this 127.x.0.0/16 network (127.1.0.0: 127.1.0.1, 127.1.0.2, ...),
	// so that mgmt sees one host per pair, as it would a line card each,
	// and its per-host session limit applies per pair. Linux routes all
	// of 127/8 to lo. Empty: every pair dials from the default source
	// (one host for all), and mgmt refuses pairs beyond its per-host
	// limit.
	SourceNet string
	// MgmtDeadTimeout, if set, is the components' MgmtDeadTimeout (how
	// often they ping mgmt: a fifth of it while idle); 0 keeps their
	// default.
	MgmtDeadTimeout time.Duration
	// StartRate is how many pairs start a second; 0 starts all at once.
	StartRate float64
	// Settle bounds the wait for every pair to cycle.
	Settle time.Duration
	// Window is the steady-state measurement.
	Window time.Duration
	// Freeze, when set, stops the master with SIGSTOP for this long
	// after the window (then SIGCONT), and measures the time until every
	// pair cycles again and the mastership changes over the next
	// FreezeWatch (default 10 s): the metastable-collapse test of issue
	// 14. It comes before Kill.
	Freeze      time.Duration
	FreezeWatch time.Duration
	// Kill, when set, SIGKILLs the master after the window and measures
	// the time until every pair cycles under the new one.
	Kill bool
	// Logger receives the components' logs (named "pair").
	Logger hclog.Logger
	// Out receives progress lines.
	Out io.Writer
}

// DefaultConfig returns 10 pairs, each from its own 127.1.x.y host, all at once, 60 s to settle, a 20 s
// window, no kill.
func DefaultConfig() Config {
	return Config{Pairs: 10, Prefix: "load", SourceNet: "127.1.0.0", Settle: 60 * time.Second, Window: 20 * time.Second,
		Logger: hclog.NewNullLogger(), Out: io.Discard}
}

// Result is what a run measured.
type Result struct {
	Pairs          int
	StartTook      time.Duration // from the first start to every pair cycling
	Master         string        // id of the master during the window
	MasterCPU      float64       // fraction of one core over the window
	BackupCPU      float64
	MasterRSS      int64 // bytes, at the end of the window
	MasterPeakRSS  int64 // VmHWM
	BackupRSS      int64
	SyncBytesPerS  float64 // bytes the master's HA sockets sent, per second
	RTTP50, RTTP99 time.Duration
	RTTSamples     int
	Sent, Received uint64 // over the window, all pairs
	Missed         uint64
	OutOfOrder     uint64
	EpochChanges   int           // masters' epoch changes seen during the window
	FailoverAll    time.Duration // SIGKILL -> every pair cycling (Kill)
	FreezeSettle   time.Duration // SIGCONT -> every pair cycling (Freeze)
	FreezeEpochs   [2]uint64     // the highest epoch before the freeze and at the end of FreezeWatch
	FailoverFirst  time.Duration // SIGKILL -> a new master with its first pair cycling
	// FailoverCPU is the CPU the surviving mgmt instance and this process
	// (the pairs) used from SIGKILL until every pair cycled, as fractions
	// of one core: near 1 for the new master means it was the bottleneck;
	// the pairs' own share shows what the load generator cost beside it.
	FailoverCPU, FailoverPairsCPU float64
}

// Run starts the pairs, waits for them to cycle, measures, optionally
// kills the master, and stops the pairs.
func Run(ctx context.Context, cfg Config) (Result, error) {
	res := Result{Pairs: cfg.Pairs}
	if cfg.Pairs <= 0 || len(cfg.Mgmt) == 0 || len(cfg.Operator) != len(cfg.Mgmt) {
		return res, errors.New("pairload: need pairs > 0 and as many operator addresses as mgmt addresses")
	}
	if len(cfg.PIDs) != 0 && len(cfg.PIDs) != len(cfg.Mgmt) {
		return res, errors.New("pairload: give one pid per mgmt instance, or none")
	}
	if cfg.SourceNet != "" {
		if _, err := SourceAddr(cfg.SourceNet, cfg.Pairs-1); err != nil {
			return res, err
		}
	}
	ops := make([]hellopicsv1.OperatorServiceClient, len(cfg.Operator))
	for i, a := range cfg.Operator {
		cc, err := grpc.NewClient("passthrough:///"+a, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return res, fmt.Errorf("operator %s: %w", a, err)
		}
		defer cc.Close()
		ops[i] = hellopicsv1.NewOperatorServiceClient(cc)
	}
	want := map[string]bool{}
	for i := 0; i < cfg.Pairs; i++ {
		want[fmt.Sprintf("%s%04d", cfg.Prefix, i)] = true
	}

	// Start.
	var mu sync.Mutex
	var closers []io.Closer
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		var wg sync.WaitGroup
		for _, c := range closers {
			wg.Add(1)
			go func() { defer wg.Done(); c.Close() }()
		}
		wg.Wait()
	}()
	begin := time.Now()
	for i := 0; i < cfg.Pairs; i++ {
		if cfg.StartRate > 0 {
			due := begin.Add(time.Duration(float64(i) / cfg.StartRate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return res, ctx.Err()
				}
			}
		}
		id := fmt.Sprintf("%s%04d", cfg.Prefix, i)
		log := cfg.Logger.Named("pair").With("pair", id)
		listen, transport := "127.0.0.1:0", (*pconn.Config)(nil)
		if cfg.SourceNet != "" {
			ip, _ := SourceAddr(cfg.SourceNet, i) // checked above
			listen, transport = net.JoinHostPort(ip.String(), "0"), sourceTransport(ip)
		}
		cc := ctrl.DefaultConfig()
		cc.MgmtAddrs, cc.PairID, cc.ListenAddr, cc.Logger, cc.Version = cfg.Mgmt, id, listen, log, "pairload"
		cc.Transport = transport
		if cfg.MgmtDeadTimeout > 0 {
			cc.MgmtDeadTimeout = cfg.MgmtDeadTimeout
		}
		c, err := ctrl.New(cc)
		if err != nil {
			return res, fmt.Errorf("pair %s: ctrl: %w", id, err)
		}
		dc := data.DefaultConfig()
		dc.MgmtAddrs, dc.PairID, dc.Logger, dc.Version = cfg.Mgmt, id, log, "pairload"
		dc.Transport = transport
		if cfg.MgmtDeadTimeout > 0 {
			dc.MgmtDeadTimeout = cfg.MgmtDeadTimeout
		}
		d, err := data.New(dc)
		if err != nil {
			c.Close()
			return res, fmt.Errorf("pair %s: data: %w", id, err)
		}
		mu.Lock()
		closers = append(closers, c, d)
		mu.Unlock()
	}
	fmt.Fprintf(cfg.Out, "%d pairs started in %v\n", cfg.Pairs, time.Since(begin).Round(time.Millisecond))

	master, _, err := waitAllCycling(ctx, ops, cfg.Prefix, want, cfg.Settle, -1)
	if err != nil {
		return res, fmt.Errorf("waiting for every pair to cycle: %w", err)
	}
	res.StartTook = time.Since(begin)
	fmt.Fprintf(cfg.Out, "every pair cycling after %v\n", res.StartTook.Round(time.Millisecond))

	// The window.
	st0, err := status(ctx, ops[master])
	if err != nil {
		return res, err
	}
	res.Master = st0.GetId()
	cpu0 := cpuTimes(cfg.PIDs)
	ha0 := haBytes(cfg.PIDs, master, cfg.HAPorts)
	t0 := time.Now()
	var rtts []time.Duration
	epochs := map[int]uint64{}
	for time.Since(t0) < cfg.Window {
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return res, ctx.Err()
		}
		for i, op := range ops {
			st, err := status(ctx, op)
			if err != nil {
				continue
			}
			if e, ok := epochs[i]; ok && e != st.GetEpoch() {
				res.EpochChanges++
			}
			epochs[i] = st.GetEpoch()
			if i == master {
				for _, p := range st.GetPairs() {
					if want[p.GetPairId()] && p.GetCounters().GetLastRtt() != nil {
						rtts = append(rtts, p.GetCounters().GetLastRtt().AsDuration())
					}
				}
			}
		}
	}
	el := time.Since(t0)
	cpu1 := cpuTimes(cfg.PIDs)
	ha1 := haBytes(cfg.PIDs, master, cfg.HAPorts)
	st1, err := status(ctx, ops[master])
	if err != nil {
		return res, err
	}
	if st1.GetId() != res.Master {
		res.EpochChanges++
	}
	c0, c1 := counters(st0, want), counters(st1, want)
	res.Sent, res.Received, res.Missed, res.OutOfOrder = c1[0]-c0[0], c1[1]-c0[1], c1[2]-c0[2], c1[3]-c0[3]
	if len(cfg.PIDs) > 0 {
		for i := range cfg.PIDs {
			frac := (cpu1[i] - cpu0[i]).Seconds() / el.Seconds()
			rss, peak := rssOf(cfg.PIDs[i])
			if i == master {
				res.MasterCPU, res.MasterRSS, res.MasterPeakRSS = frac, rss, peak
			} else {
				res.BackupCPU, res.BackupRSS = frac, rss
			}
		}
		if ha0 >= 0 && ha1 >= ha0 {
			res.SyncBytesPerS = float64(ha1-ha0) / el.Seconds()
		}
	}
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	res.RTTSamples = len(rtts)
	if len(rtts) > 0 {
		res.RTTP50 = rtts[(len(rtts)-1)*50/100]
		res.RTTP99 = rtts[(len(rtts)-1)*99/100]
	}

	if cfg.Freeze > 0 && len(cfg.PIDs) > 0 && len(ops) > 1 {
		if err := freeze(ctx, cfg, ops, want, master, &res); err != nil {
			return res, err
		}
		// The master may have changed: the kill goes to the one now.
		if m, _, err := waitAllCycling(ctx, ops, cfg.Prefix, want, cfg.Settle, -1); err == nil {
			master = m
			if st, err := status(ctx, ops[m]); err == nil {
				res.Master = st.GetId()
			}
		}
	}

	// The failover.
	if cfg.Kill && len(cfg.PIDs) > 0 && len(ops) > 1 {
		cpuK, selfK := cpuTimes(cfg.PIDs), selfCPU()
		killed := time.Now()
		if err := syscall.Kill(cfg.PIDs[master], syscall.SIGKILL); err != nil {
			return res, fmt.Errorf("kill master (pid %d): %w", cfg.PIDs[master], err)
		}
		fmt.Fprintf(cfg.Out, "master %s (pid %d) killed\n", res.Master, cfg.PIDs[master])
		_, first, err := waitAllCycling(ctx, ops, cfg.Prefix, want, cfg.Settle, master)
		if err != nil {
			return res, fmt.Errorf("after the kill: %w", err)
		}
		res.FailoverAll = time.Since(killed)
		res.FailoverFirst = first.Sub(killed)
		cpuE, selfE := cpuTimes(cfg.PIDs), selfCPU()
		for i := range cfg.PIDs {
			if i != master {
				res.FailoverCPU = max(res.FailoverCPU, (cpuE[i]-cpuK[i]).Seconds()/res.FailoverAll.Seconds())
			}
		}
		res.FailoverPairsCPU = (selfE - selfK).Seconds() / res.FailoverAll.Seconds()
	}
	return res, nil
}

// freeze stops the master for cfg.Freeze, lets it go on, and measures
// how the appliance settles: the time to every pair cycling (on any
// master) and the highest epoch before and FreezeWatch after.
func freeze(ctx context.Context, cfg Config, ops []hellopicsv1.OperatorServiceClient, want map[string]bool, master int, res *Result) error {
	highest := func() uint64 {
		var e uint64
		for _, op := range ops {
			if st, err := status(ctx, op); err == nil {
				e = max(e, st.GetEpoch())
			}
		}
		return e
	}
	res.FreezeEpochs[0] = highest()
	pid := cfg.PIDs[master]
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("freeze master (pid %d): %w", pid, err)
	}
	fmt.Fprintf(cfg.Out, "master %s (pid %d) stopped for %v\n", res.Master, pid, cfg.Freeze)
	select {
	case <-time.After(cfg.Freeze):
	case <-ctx.Done():
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		return fmt.Errorf("continue master (pid %d): %w", pid, err)
	}
	cont := time.Now()
	if _, _, err := waitAllCycling(ctx, ops, cfg.Prefix, want, cfg.Settle, -1); err != nil {
		return fmt.Errorf("after the freeze: %w", err)
	}
	res.FreezeSettle = time.Since(cont)
	watch := cfg.FreezeWatch
	if watch <= 0 {
		watch = 10 * time.Second
	}
	select {
	case <-time.After(time.Until(cont.Add(watch))):
	case <-ctx.Done():
		return ctx.Err()
	}
	res.FreezeEpochs[1] = highest()
	return nil
}

// SourceAddr is pair i's address in the loopback network base
// (127.x.0.0): 127.x.(i/254).(i%254+1), never .0 or .255. It refuses a
// base outside 127/8 or not a /16 network address, and an i past the
// 65,024 hosts it holds.
func SourceAddr(base string, i int) (netip.Addr, error) {
	a, err := netip.ParseAddr(base)
	if err != nil || !a.Is4() || !a.IsLoopback() {
		return netip.Addr{}, fmt.Errorf("pairload: source network %q: want a 127.x.0.0 address", base)
	}
	b := a.As4()
	if b[2] != 0 || b[3] != 0 {
		return netip.Addr{}, fmt.Errorf("pairload: source network %q: want a 127.x.0.0 address", base)
	}
	if i < 0 || i >= 254*256 {
		return netip.Addr{}, fmt.Errorf("pairload: pair %d: a 127.x.0.0/16 network holds %d pairs", i, 254*256)
	}
	b[2], b[3] = byte(i/254), byte(i%254+1)
	return netip.AddrFrom4(b), nil
}

// sourceTransport is pconn's default configuration dialling from ip.
func sourceTransport(ip netip.Addr) *pconn.Config {
	t := pconn.DefaultConfig(nil)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip.AsSlice()}}
	t.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", addr)
	}
	return &t
}

// waitAllCycling polls the instances (skipping index skip) every 50 ms
// until one is master with every wanted pair cycling; it returns its
// index and when a master first had a wanted pair cycling. It asks for
// one pair of those named prefix*, whose counts say how many cycle: a
// whole status of a thousand pairs, 20 times a second, would load the
// new master it measures.
func waitAllCycling(ctx context.Context, ops []hellopicsv1.OperatorServiceClient, prefix string, want map[string]bool, d time.Duration, skip int) (int, time.Time, error) {
	deadline := time.Now().Add(d)
	var first time.Time
	last := "no status yet"
	for {
		for i, op := range ops {
			if i == skip {
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			st, err := op.GetStatus(sctx, &hellopicsv1.GetStatusRequest{Pair: prefix + "*", PageSize: 1})
			cancel()
			if err != nil {
				last = err.Error()
				continue
			}
			if st.GetRole() != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
				continue
			}
			n := int(st.GetCyclingPairs())
			if st.GetTotalPairs() == 0 && len(st.GetPairs()) > 0 { // a mgmt without pages: every pair came
				n = 0
				for _, p := range st.GetPairs() {
					if want[p.GetPairId()] && p.GetCycleRunning() {
						n++
					}
				}
			}
			if n > 0 && first.IsZero() {
				first = time.Now()
			}
			if n >= len(want) {
				return i, first, nil
			}
			last = fmt.Sprintf("%s: %d of %d pairs cycling", st.GetId(), n, len(want))
		}
		if time.Now().After(deadline) {
			return -1, first, fmt.Errorf("not within %v (%s)", d, last)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return -1, first, ctx.Err()
		}
	}
}

func status(ctx context.Context, op hellopicsv1.OperatorServiceClient) (*hellopicsv1.GetStatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return op.GetStatus(ctx, &hellopicsv1.GetStatusRequest{})
}

// counters sums sent, received, missed and out of order over the wanted
// pairs.
func counters(st *hellopicsv1.GetStatusResponse, want map[string]bool) [4]uint64 {
	var c [4]uint64
	for _, p := range st.GetPairs() {
		if !want[p.GetPairId()] {
			continue
		}
		k := p.GetCounters()
		c[0] += k.GetSent()
		c[1] += k.GetReceived()
		c[2] += k.GetMissed()
		c[3] += k.GetOutOfOrder()
	}
	return c
}

// cpuTimes reads each process's user+system CPU time.
// selfCPU is the CPU time this process has used (user and system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func cpuTimes(pids []int) []time.Duration {
	out := make([]time.Duration, len(pids))
	for i, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		j := strings.LastIndexByte(s, ')')
		if j < 0 {
			continue
		}
		f := strings.Fields(s[j+1:])
		// After the name: state is field 3, utime 14, stime 15.
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		out[i] = time.Duration(u+st) * time.Second / clockTicks
	}
	return out
}

// clockTicks is USER_HZ, 100 on Linux everywhere that matters.
const clockTicks = 100

// rssOf returns VmRSS and VmHWM in bytes.
func rssOf(pid int) (rss, peak int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = kb * 1024
		case "VmHWM":
			peak = kb * 1024
		}
	}
	return rss, peak
}

// haBytes sums bytes_sent over the established TCP sockets of process
// pids[i] with a local or remote port among haPorts (ss -tinp), or
// returns -1 when it cannot tell.
func haBytes(pids []int, i int, haPorts []int) int64 {
	if len(pids) == 0 || len(haPorts) == 0 {
		return -1
	}
	out, err := exec.Command("ss", "-tinpH", "state", "established").Output()
	if err != nil {
		return -1
	}
	return sumHABytes(string(out), pids[i], haPorts)
}

// sumHABytes parses ss -tinpH output: a socket line (addresses and
// users:((...,pid=N,...))) followed by its info line (bytes_sent:N).
func sumHABytes(out string, pid int, haPorts []int) int64 {
	ports := map[string]bool{}
	for _, p := range haPorts {
		ports[strconv.Itoa(p)] = true
	}
	var total int64
	lines := strings.Split(out, "\n")
	pidTag := "pid=" + strconv.Itoa(pid) + ","
	for k := 0; k+1 < len(lines); k++ {
		sock := lines[k]
		if !strings.Contains(sock, pidTag) {
			continue
		}
		f := strings.Fields(sock)
		if len(f) < 4 {
			continue
		}
		ha := false
		for _, a := range f[2:4] {
			if j := strings.LastIndexByte(a, ':'); j >= 0 && ports[a[j+1:]] {
				ha = true
			}
		}
		if !ha {
			continue
		}
		for _, w := range strings.Fields(lines[k+1]) {
			if v, ok := strings.CutPrefix(w, "bytes_sent:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				total += n
			}
		}
		k++
	}
	return total
}
