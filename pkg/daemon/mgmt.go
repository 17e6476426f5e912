package daemon

import (
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/hellopics/hellopics/internal/cli"
	"github.com/hellopics/hellopics/mgmt"
	"github.com/hellopics/hellopics/pkg/appliance"
	"github.com/hellopics/hellopics/pkg/election"
	"github.com/hellopics/hellopics/pkg/notify"
	"github.com/hellopics/hellopics/pkg/sdnotify"
	"github.com/hellopics/hellopics/pkg/track"
)

const mgmtUsage = `Usage: %s [flags]

Runs the management component: it accepts the control and data
components, tells each where its peer is, and runs the Hello cycle of
every pair that is ready. Stops cleanly on SIGINT or SIGTERM.

Flags:
`

// RunMgmt runs the management component with apps.Mgmt as its
// application until SIGINT or SIGTERM, configured by args (the flags of
// "hellopics mgmt", and their environment variables), and returns the
// process exit code: 0 after a clean stop or -h, 1 on failure, 2 on bad
// usage. name is the command as its usage and errors show it: the
// program and the subcommand ("counters mgmt"), or the program alone
// for a binary that runs only mgmt; its first word names the logger.
func RunMgmt(name string, args []string, apps Apps) int {
	cfg, log, code, ok := mgmtConfig(name, args, apps)
	if !ok {
		return code
	}
	ctx, stop := cli.UntilSignal()
	defer stop()
	watchTLS(ctx, cfg.TLS, log)
	d, err := mgmt.New(cfg)
	if err != nil {
		return cli.Fail(os.Stderr, name, err)
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
		return cli.Fail(os.Stderr, name, err)
	}
	d.Close()
	return 0
}

// mgmtConfig parses args into mgmt's configuration and builds its
// logger; when it returns false, the command stops with code.
func mgmtConfig(name string, args []string, apps Apps) (mgmt.Config, hclog.Logger, int, bool) {
	cfg := mgmt.DefaultConfig()
	var lf cli.LogFlags
	var tf cli.TLSFlags
	fs := cli.NewFlagSet(name, fmt.Sprintf(mgmtUsage, name))
	fs.StringVar(&cfg.ListenAddr, "listen", envOr("HELLOPICS_MGMT_LISTEN", cfg.ListenAddr), "address for ctrl and data to connect to (env HELLOPICS_MGMT_LISTEN)")
	fs.StringVar(&cfg.AdvertiseAddr, "advertise", cfg.AdvertiseAddr, "address components use for this instance (default: -listen, or when it names no host, this host's address toward the first peer)")
	fs.StringVar(&cfg.OperatorAddr, "operator", envOr("HELLOPICS_OPERATOR_ADDR", cfg.OperatorAddr), "operator gRPC API address; empty disables it (env HELLOPICS_OPERATOR_ADDR)")
	fs.DurationVar(&cfg.HelloInterval, "hello-interval", cfg.HelloInterval, "Hello cycle period (at least 10ms)")
	fs.DurationVar(&cfg.SyncInterval, "sync-interval", cfg.SyncInterval, "least time between two state syncs to the backups carrying registry changes; changes meanwhile go together (0: the hello interval, at most 100ms)")
	helloCycle := envOr("HELLOPICS_HELLO_CYCLE", "app")
	fs.StringVar(&helloCycle, "hello-cycle", helloCycle, "who runs the Hello cycle: builtin (the registry's machine) or app (pkg/hellocycle, an application on the framework); every mgmt instance must run the same (env HELLOPICS_HELLO_CYCLE)")
	fs.DurationVar(&cfg.HelloSummaryInterval, "hello-summary", cfg.HelloSummaryInterval, "log one INFO summary per Hello cycle this often (sent, received, missed, out of order, RTT p50/p99); 0 disables")
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
	var etcdEndpoints string
	fs.StringVar(&cfg.Election, "election", envOr("HELLOPICS_MGMT_ELECTION", appliance.ElectionBuiltin), "who decides mastership: builtin (heartbeats and priorities among -peers) or etcd (a campaign on -etcd-endpoints; -peers still carry heartbeats and state sync; docs/ha.md) (env HELLOPICS_MGMT_ELECTION)")
	fs.StringVar(&etcdEndpoints, "etcd-endpoints", envOr("HELLOPICS_ETCD_ENDPOINTS", ""), "with -election etcd: the etcd cluster's client addresses, host:port or URLs, comma-separated (env HELLOPICS_ETCD_ENDPOINTS)")
	fs.StringVar(&cfg.Etcd.Prefix, "etcd-prefix", appliance.DefaultEtcdPrefix, "with -election etcd: the election's key prefix, the same for every instance of the appliance")
	fs.DurationVar(&cfg.Etcd.LeaseTTL, "etcd-lease-ttl", appliance.DefaultEtcdLeaseTTL, "with -election etcd: the lease TTL, whole seconds; bounds the failover time; a master steps down after 2/3 of it without a keepalive answered")
	fs.BoolVar(&cfg.HAAnySource, "ha-any-source", false, "accept a mgmt peer's connection from any address, not only from its -peers address (NAT, multi-homed hosts)")
	fs.StringVar(&cfg.MetricsAddr, "metrics", envOr("HELLOPICS_METRICS_ADDR", ""), "serve Prometheus metrics on this address (/metrics); empty disables (env HELLOPICS_METRICS_ADDR)")
	fs.StringVar(&cfg.Notify.OnMaster, "notify-master", "", "shell command run when this instance becomes (or is re-asserted) master; args and env: state, epoch, master, reason (docs/ha.md)")
	fs.StringVar(&cfg.Notify.OnBackup, "notify-backup", "", "shell command run when this instance becomes (or is re-asserted) backup, or its master changes")
	fs.StringVar(&cfg.Notify.OnFault, "notify-fault", "", "shell command run when this instance enters the fault state (a -track-script or -track-interface of -track-weight 0 fails)")
	fs.StringVar(&cfg.Notify.OnAny, "notify", "", "shell command run on every state, after the state's own script")
	fs.DurationVar(&cfg.Notify.Timeout, "notify-timeout", notify.DefaultTimeout, "kill a notify script's process group after this long")
	var trf track.Flags
	trf.Register(fs)
	lf.Register(fs)
	lf.RegisterRefusals(fs)
	tf.Register(fs)
	if code, ok := cli.ParseFlags(fs, args); !ok {
		return cfg, nil, code, false
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return cfg, nil, 2, false
	}
	if cfg.Notify.Timeout <= 0 {
		fmt.Fprintf(os.Stderr, "%s: -notify-timeout must be positive\n", name)
		return cfg, nil, 2, false
	}
	checks, err := trf.Checks()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return cfg, nil, 2, false
	}
	cfg.Track = checks
	switch helloCycle {
	case "builtin":
		cfg.AppCycle = false
	case "app":
		cfg.AppCycle = true
	default:
		fmt.Fprintf(os.Stderr, "%s: -hello-cycle %q: want builtin or app\n", name, helloCycle)
		return cfg, nil, 2, false
	}
	cfg.Etcd.Endpoints = cli.SplitList(etcdEndpoints)
	cfg.Priority = uint32(prio)
	cfg.RefusalLogInterval = lf.RefusalsEvery
	cfg.Version = apps.version()
	cfg.App = apps.Mgmt
	for _, p := range cli.SplitList(peers) {
		id, addr, ok := strings.Cut(p, "=")
		if !ok || id == "" || addr == "" {
			fmt.Fprintf(os.Stderr, "%s: -peers: %q is not id=host:port\n", name, p)
			return cfg, nil, 2, false
		}
		cfg.Peers = append(cfg.Peers, election.Peer{ID: id, Addr: addr})
	}
	log, err := lf.Logger(logName(name), nil)
	if err != nil {
		return cfg, nil, cli.Fail(os.Stderr, name, err), false
	}
	cfg.Logger = log
	addrs := []string{cfg.ListenAddr, cfg.HAListenAddr, cfg.OperatorAddr}
	for _, p := range cfg.Peers {
		addrs = append(addrs, p.Addr)
	}
	if cfg.TLS, err = tf.Load(log, addrs...); err != nil {
		return cfg, nil, cli.Fail(os.Stderr, name, err), false
	}
	if cfg.TLS != nil {
		// Any identity of the trust domain gets through the handshake;
		// each call is then authorised from it, so that a ctrl
		// certificate is told why (PermissionDenied) rather than cut off.
		cfg.OperatorTLS = cfg.TLS.ServerConfig(nil)
	}
	return cfg, log, 0, true
}
