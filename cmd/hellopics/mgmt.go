package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/hellopics/hellopics/internal/cli"
	"github.com/hellopics/hellopics/mgmt"
	"github.com/hellopics/hellopics/mgmt/election"
	"github.com/hellopics/hellopics/pkg/sdnotify"
)

func init() {
	register(&command{name: "mgmt", summary: "run the management component", run: runMgmt})
}

const mgmtUsage = `Usage: hellopics mgmt [flags]

Runs the management component: it accepts the control and data
components, tells each where its peer is, and runs the Hello cycle of
every pair that is ready. Stops cleanly on SIGINT or SIGTERM.

Flags:
`

func runMgmt(args []string) int {
	cfg := mgmt.DefaultConfig()
	var lf cli.LogFlags
	var tf cli.TLSFlags
	fs := cli.NewFlagSet("hellopics mgmt", mgmtUsage)
	fs.StringVar(&cfg.ListenAddr, "listen", envOr("HELLOPICS_MGMT_LISTEN", cfg.ListenAddr), "address for ctrl and data to connect to (env HELLOPICS_MGMT_LISTEN)")
	fs.StringVar(&cfg.AdvertiseAddr, "advertise", cfg.AdvertiseAddr, "address components use for this instance (default: -listen, or when it names no host, this host's address toward the first peer)")
	fs.StringVar(&cfg.OperatorAddr, "operator", envOr("HELLOPICS_OPERATOR_ADDR", cfg.OperatorAddr), "operator gRPC API address; empty disables it (env HELLOPICS_OPERATOR_ADDR)")
	fs.DurationVar(&cfg.HelloInterval, "hello-interval", cfg.HelloInterval, "Hello cycle period (at least 10ms)")
	fs.DurationVar(&cfg.DeadTimeout, "dead-timeout", cfg.DeadTimeout, "declare a silent component lost after this long (at least 30ms)")
	fs.DurationVar(&cfg.IdentifyTimeout, "identify-timeout", cfg.IdentifyTimeout, "close a session that does not identify itself in time")
	fs.IntVar(&cfg.MaxPairs, "max-pairs", cfg.MaxPairs, "most ctrl/data pairs in the registry; an Identify for a new pair beyond it is refused")
	fs.DurationVar(&cfg.PairExpiry, "pair-expiry", cfg.PairExpiry, "remove a pair from the registry once its ctrl and data have both been gone this long (0: never)")
	var peers string
	prio := uint(cfg.Priority)
	fs.StringVar(&cfg.ID, "id", envOr("HELLOPICS_MGMT_ID", ""), "this instance's id among the mgmt instances (default: the host name)")
	fs.UintVar(&prio, "priority", prio, "election priority: highest wins, ties broken by id")
	fs.StringVar(&cfg.HAListenAddr, "ha-listen", envOr("HELLOPICS_MGMT_HA_LISTEN", ""), "address for the other mgmt instances (heartbeats, state sync)")
	fs.StringVar(&peers, "peers", envOr("HELLOPICS_MGMT_PEERS", ""), "the other mgmt instances as id=host:port, comma-separated (their -ha-listen); empty runs a single instance")
	fs.StringVar(&cfg.StateDir, "state-dir", envOr("HELLOPICS_STATE_DIR", ""), "directory for the epoch file (empty: not persisted, a warning)")
	fs.DurationVar(&cfg.HeartbeatInterval, "heartbeat", cfg.HeartbeatInterval, "heartbeat interval between mgmt instances")
	fs.IntVar(&cfg.DeadMisses, "dead-misses", cfg.DeadMisses, "missed heartbeats after which a mgmt peer is dead")
	fs.BoolVar(&cfg.NoPreempt, "nopreempt", false, "do not take over from a working master of lower priority")
	fs.DurationVar(&cfg.PreemptDelay, "preempt-delay", 0, "wait this long before preempting a lower-priority master")
	fs.Uint64Var(&cfg.MaxEpochJump, "max-epoch-jump", election.DefaultMaxEpochJump, "refuse a mgmt peer's epoch this far above the highest this instance knows (forged or corrupt)")
	fs.BoolVar(&cfg.HAAnySource, "ha-any-source", false, "accept a mgmt peer's connection from any address, not only from its -peers address (NAT, multi-homed hosts)")
	fs.StringVar(&cfg.MetricsAddr, "metrics", envOr("HELLOPICS_METRICS_ADDR", ""), "serve Prometheus metrics on this address (/metrics); empty disables (env HELLOPICS_METRICS_ADDR)")
	lf.Register(fs)
	lf.RegisterRefusals(fs)
	tf.Register(fs)
	if code, ok := cli.ParseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	cfg.Priority = uint32(prio)
	cfg.RefusalLogInterval = lf.RefusalsEvery
	cfg.Version = version
	for _, p := range cli.SplitList(peers) {
		id, addr, ok := strings.Cut(p, "=")
		if !ok || id == "" || addr == "" {
			fmt.Fprintf(os.Stderr, "hellopics mgmt: -peers: %q is not id=host:port\n", p)
			return 2
		}
		cfg.Peers = append(cfg.Peers, election.Peer{ID: id, Addr: addr})
	}
	log, err := lf.Logger("hellopics", nil)
	if err != nil {
		return cli.Fail(os.Stderr, "hellopics mgmt", err)
	}
	cfg.Logger = log
	addrs := []string{cfg.ListenAddr, cfg.HAListenAddr, cfg.OperatorAddr}
	for _, p := range cfg.Peers {
		addrs = append(addrs, p.Addr)
	}
	if cfg.TLS, err = tf.Load(log, addrs...); err != nil {
		return cli.Fail(os.Stderr, "hellopics mgmt", err)
	}
	if cfg.TLS != nil {
		// Any identity of the trust domain gets through the handshake;
		// each call is then authorised from it, so that a ctrl
		// certificate is told why (PermissionDenied) rather than cut off.
		cfg.OperatorTLS = cfg.TLS.ServerConfig(nil)
	}
	ctx, stop := cli.UntilSignal()
	defer stop()
	watchTLS(ctx, cfg.TLS, log)
	d, err := mgmt.New(cfg)
	if err != nil {
		return cli.Fail(os.Stderr, "hellopics mgmt", err)
	}
	// mgmt is ready once it serves: components and the operator API.
	_ = sdnotify.Ready()
	_ = sdnotify.Status("mgmt: serving components at " + d.Addr().String())
	select {
	case <-ctx.Done():
		log.Info("signal received; stopping", "component", "mgmt")
		_ = sdnotify.Stopping()
	case err := <-d.Failed():
		d.Close()
		return cli.Fail(os.Stderr, "hellopics mgmt", err)
	}
	d.Close()
	return 0
}
