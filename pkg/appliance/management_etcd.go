package appliance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/hellopics/hellopics/internal/ratelog"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// The values of ManagementConfig.Election.
const (
	// ElectionBuiltin is the built-in election among the instances
	// (pkg/election), the default: heartbeats decide, for a pair of
	// hosts or more.
	ElectionBuiltin = "builtin"
	// ElectionEtcd is the election on etcd (docs/ha.md, "Election on
	// etcd"): the instances campaign for a key under EtcdConfig.Prefix
	// with a lease, the leader key's create revision is the epoch, and
	// a master that cannot renew its lease steps down.
	ElectionEtcd = "etcd"
)

// DefaultEtcdPrefix is the default EtcdConfig.Prefix.
const DefaultEtcdPrefix = "/hellopics/mgmt/election"

// DefaultEtcdLeaseTTL is the default EtcdConfig.LeaseTTL.
const DefaultEtcdLeaseTTL = 2 * time.Second

// etcdEpochFile is the epoch file of the etcd election in
// ManagementConfig.StateDir: etcd's revisions are another epoch space
// than the built-in election's.
const etcdEpochFile = "epoch-etcd"

// EtcdConfig configures the election on etcd (ManagementConfig.Election
// "etcd").
type EtcdConfig struct {
	// Endpoints are the etcd cluster's client URLs or host:port
	// addresses. Required for the etcd election.
	Endpoints []string
	// Prefix is the election's key prefix; every instance of one
	// appliance must use the same, and no other appliance. Default
	// DefaultEtcdPrefix.
	Prefix string
	// LeaseTTL is the session lease's time to live, in whole seconds
	// (etcd may grant more: its minimum is 1.5 election timeouts,
	// rounded up to a second, 2 s with etcd's defaults). It bounds the
	// failover time after a master dies, and a master that has had no
	// keepalive answered for two thirds of it steps down, before etcd
	// can expire its lease and elect another. Default
	// DefaultEtcdLeaseTTL (2 s).
	LeaseTTL time.Duration
	// DialTimeout bounds each request to etcd but the campaign. Default
	// 2 s.
	DialTimeout time.Duration
}

func (c *EtcdConfig) prefix() string {
	if c.Prefix == "" {
		return DefaultEtcdPrefix
	}
	return strings.TrimSuffix(c.Prefix, "/")
}

func (c *EtcdConfig) leaseTTL() time.Duration {
	if c.LeaseTTL == 0 {
		return DefaultEtcdLeaseTTL
	}
	return c.LeaseTTL
}

func (c *EtcdConfig) dialTimeout() time.Duration {
	if c.DialTimeout == 0 {
		return 2 * time.Second
	}
	return c.DialTimeout
}

// problems lists what is wrong with the etcd election's configuration.
func (c *EtcdConfig) problems() []error {
	var errs []error
	if len(c.Endpoints) == 0 {
		errs = append(errs, errors.New("election etcd: no etcd endpoints"))
	}
	if ttl := c.LeaseTTL; ttl < 0 || (ttl != 0 && (ttl < time.Second || ttl%time.Second != 0)) {
		errs = append(errs, fmt.Errorf("etcd lease TTL %v is not a whole number of seconds, at least 1 s", ttl))
	}
	if c.DialTimeout < 0 {
		errs = append(errs, fmt.Errorf("etcd dial timeout %v is negative", c.DialTimeout))
	}
	return errs
}

// errResigned ends a term after a switchover's resignation.
var errResigned = errors.New("resigned")

// etcdRunner campaigns on etcd for one management instance: its
// goroutines own the etcd client and feed the election machine
// (Config.External) through the loop: Lead when this instance's key
// leads, Follow with every leader observed, Release when the lease is
// or may be lost. Each term is one lease: a master whose lease is in
// doubt never gets it back, it campaigns again with a new one (a new
// key, a higher revision).
type etcdRunner struct {
	s      *Management
	cfg    EtcdConfig
	cli    *clientv3.Client
	log    hclog.Logger
	rl     *ratelog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	resign chan chan error // a switchover asks the leading term to resign
	lost   chan uint64     // the loop: the machine left the mastership of this term
}

// newEtcd sets up the etcd client; startEtcd starts campaigning. The
// client dials lazily: etcd need not be up yet. Called before the
// machine is set on the loop.
func (s *Management) newEtcd() error {
	c := s.cfg.Etcd
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   c.Endpoints,
		DialTimeout: c.dialTimeout(),
		// Detects a connection that a partition left open, without
		// tripping etcd's keepalive enforcement (5 s minimum).
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: c.dialTimeout(),
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return fmt.Errorf("etcd client: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &etcdRunner{s: s, cfg: c, cli: cli, log: s.log.Named("etcd"), ctx: ctx, cancel: cancel,
		resign: make(chan chan error), lost: make(chan uint64, 1)}
	r.rl = ratelog.New(r.log, s.cfg.RefusalLogInterval)
	s.etcd = r
	return nil
}

// startEtcd starts campaigning, once the machine is set: what the
// runner posts to the loop finds it.
func (s *Management) startEtcd() {
	r := s.etcd
	s.log.Info("campaigning on etcd", "component", "mgmt", "id", s.cfg.ID, "endpoints", strings.Join(r.cfg.Endpoints, ","),
		"prefix", r.cfg.prefix(), "lease_ttl", r.cfg.leaseTTL())
	r.wg.Add(1)
	go r.run()
}

// stopEtcd ends the campaign: a leading instance revokes its lease, so
// that the next campaigner takes over without waiting for the TTL.
func (s *Management) stopEtcd() {
	r := s.etcd
	if r == nil {
		return
	}
	r.cancel()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(r.cfg.dialTimeout()):
		// Something waits on an etcd it cannot reach (the campaign
		// resigns on the client's own context when cancelled): closing
		// the client ends it.
	}
	_ = r.cli.Close()
	<-done
}

// post runs f on the loop, ahead of component work.
func (r *etcdRunner) post(f func()) { r.s.loop.PostUrgent(f) }

// run runs terms until the runner stops, backing off after a failed one.
func (r *etcdRunner) run() {
	defer r.wg.Done()
	ttl := r.cfg.leaseTTL()
	backoff := 100 * time.Millisecond
	for term := uint64(1); r.ctx.Err() == nil; term++ {
		start := time.Now()
		err := r.term(term)
		if r.ctx.Err() != nil {
			return
		}
		if errors.Is(err, errResigned) {
			// Back in the queue behind the others, once one of them is
			// master (or the TTL twice over, if none becomes it):
			// campaigning at once could find the queue empty, or about
			// to be, and lead again.
			r.awaitOtherMaster(2 * ttl)
			continue
		}
		if time.Since(start) > 2*ttl {
			backoff = 100 * time.Millisecond // it worked for a while: retry soon
		}
		r.rl.Warn("etcd_term", "etcd session ended; campaigning again", "component", "mgmt", "error", err, "retry_in", backoff)
		select {
		case <-time.After(backoff):
		case <-r.ctx.Done():
			return
		}
		backoff = min(2*backoff, ttl)
	}
}

// term is one lease: grant it, keep it alive, observe the leader,
// campaign, and lead while the lease is surely alive. It returns why it
// ended; a leading term has then told the loop to step down.
func (r *etcdRunner) term(id uint64) (err error) {
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	ttlWant := int64(r.cfg.leaseTTL() / time.Second)
	sent := time.Now()
	gctx, gcancel := context.WithTimeout(ctx, r.cfg.dialTimeout())
	grant, err := r.cli.Grant(gctx, ttlWant)
	gcancel()
	if err != nil {
		return fmt.Errorf("grant a lease: %w", err)
	}
	ttl := time.Duration(grant.TTL) * time.Second
	// Step down when no keepalive sent within this long has been
	// answered: the lease lives at least TTL past the sending of the
	// last one answered, so a third of the TTL is left before etcd could
	// expire it and elect another.
	stepDownAfter := ttl * 2 / 3
	var wg sync.WaitGroup
	var leading uint64
	defer func() {
		if leading != 0 {
			why := fmt.Sprintf("etcd lease %x: %v", int64(grant.ID), err)
			r.post(func() { r.s.etcdRelease(id, why) })
		}
		cancel()
		wg.Wait()
		// Best effort, beside the next term: without the lease the key
		// goes at once and the next campaigner need not wait for the TTL.
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			rctx, rcancel := context.WithTimeout(context.Background(), min(time.Second, ttl))
			_, _ = r.cli.Revoke(rctx, grant.ID)
			rcancel()
		}()
	}()

	// Our own keepalives, every sixth of the TTL (the client's are every
	// third, rounded up to half a second: too few to step down in time).
	renewed := make(chan time.Time, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.keepAlive(ctx, grant.ID, ttl, renewed)
	}()

	sess, err := concurrency.NewSession(r.cli, concurrency.WithLease(grant.ID), concurrency.WithTTL(int(grant.TTL)),
		concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	el := concurrency.NewElection(sess, r.cfg.prefix())
	own := fmt.Sprintf("%s/%x", r.cfg.prefix(), int64(grant.ID))

	wg.Add(1)
	go func() {
		defer wg.Done()
		r.observe(ctx, el, own)
	}()
	// The campaign is not waited for when the term ends: cancelled, it
	// resigns on the client's own context, which may wait for as long as
	// etcd does not answer (seen: a term that never ended, whose lease
	// then expired, and the instance never campaigned again). It ends
	// with an answer, or when stopEtcd closes the client.
	campaign := make(chan error, 1)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		campaign <- el.Campaign(ctx, r.s.cfg.ID)
	}()
	missing := make(chan struct{}, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.keyCheck(ctx, own, ttl, missing)
	}()

	lastOK := sent
	deadline := time.NewTimer(stepDownAfter)
	defer deadline.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case at, ok := <-renewed:
			if !ok {
				return errors.New("the lease is gone (expired or revoked)")
			}
			if at.After(lastOK) {
				lastOK = at
			}
			deadline.Reset(time.Until(lastOK.Add(stepDownAfter)))
		case <-deadline.C:
			return fmt.Errorf("no keepalive answered for %v (lease TTL %v): stepping down before the lease can expire",
				time.Since(lastOK).Round(time.Millisecond), ttl)
		case err := <-campaign:
			campaign = nil
			if err != nil {
				return fmt.Errorf("campaign: %w", err)
			}
			lctx, lcancel := context.WithTimeout(ctx, stepDownAfter)
			resp, err := el.Leader(lctx)
			lcancel()
			if err != nil {
				return fmt.Errorf("confirm the leadership: %w", err)
			}
			if kv := resp.Kvs[0]; string(kv.Key) != own {
				return fmt.Errorf("campaign returned, but the leader key is %s (%s)", kv.Key, kv.Value)
			}
			if time.Since(lastOK) >= stepDownAfter {
				return fmt.Errorf("elected, but no keepalive answered for %v", time.Since(lastOK).Round(time.Millisecond))
			}
			leading = uint64(resp.Kvs[0].CreateRevision)
			epoch := leading
			r.post(func() { r.s.etcdLead(id, epoch) })
		case <-missing:
			return fmt.Errorf("the campaign's key %s is gone from etcd", own)
		case t := <-r.lost:
			if t == id && leading != 0 {
				return errors.New("the election machine left the mastership (fenced by a higher epoch, refused the epoch, or in the fault state)")
			}
		case reply := <-r.resign:
			if leading == 0 {
				reply <- ErrNotMaster
				continue
			}
			rctx, rcancel := context.WithTimeout(ctx, r.cfg.dialTimeout())
			err := el.Resign(rctx)
			rcancel()
			leading = 0
			r.post(func() { r.s.etcdRelease(id, "switchover: resigned on etcd") })
			reply <- err
			return errResigned
		}
	}
}

// awaitOtherMaster waits until another instance is master, as this
// one's machine sees it (etcd elected it and its heartbeats claim it),
// for at most d.
func (r *etcdRunner) awaitOtherMaster(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		var m string
		if !r.s.loop.Do(func() {
			if r.s.el != nil {
				m = r.s.el.Master()
			}
		}) {
			return // stopped
		}
		if m != "" && m != r.s.cfg.ID {
			return
		}
		select {
		case <-r.ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// keyCheck reports, every check, whether the term's campaign key still
// exists (a campaign whose key is gone waits for ever): it sends on
// missing once it has found the key absent twice in a row.
func (r *etcdRunner) keyCheck(ctx context.Context, own string, every time.Duration, missing chan<- struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	absent := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		gctx, cancel := context.WithTimeout(ctx, every)
		resp, err := r.cli.Get(gctx, own, clientv3.WithCountOnly())
		cancel()
		switch {
		case err != nil:
			continue // etcd unreachable: the keepalives tell
		case resp.Count == 0:
			absent++
		default:
			absent = 0
		}
		if absent >= 2 {
			select {
			case missing <- struct{}{}:
			default:
			}
			return
		}
	}
}

// keepAlive renews the lease every sixth of ttl until ctx ends, and
// sends on renewed the time each answered keepalive was sent. It closes
// renewed when etcd says the lease is gone.
func (r *etcdRunner) keepAlive(ctx context.Context, lease clientv3.LeaseID, ttl time.Duration, renewed chan time.Time) {
	every := max(ttl/6, 100*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		sent := time.Now()
		kctx, cancel := context.WithTimeout(ctx, ttl/3)
		resp, err := r.cli.KeepAliveOnce(kctx, lease)
		cancel()
		switch {
		case err == nil && resp.TTL > 0:
			select {
			case <-renewed: // the term has not taken the last one: keep the newest
			default:
			}
			renewed <- sent
		case ctx.Err() != nil:
			return
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			close(renewed)
			return
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// observe tells the loop of every leader etcd names, but this term's own
// key (Lead reports that one), until ctx ends.
func (r *etcdRunner) observe(ctx context.Context, el *concurrency.Election, own string) {
	for ctx.Err() == nil {
		for resp := range el.Observe(clientv3.WithRequireLeader(ctx)) {
			if len(resp.Kvs) == 0 || string(resp.Kvs[0].Key) == own {
				continue
			}
			leader, epoch := string(resp.Kvs[0].Value), uint64(resp.Kvs[0].CreateRevision)
			r.post(func() { r.s.etcdFollow(leader, epoch) })
		}
		select { // the watch broke (no etcd leader, a lost connection): again
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// etcdLead makes this instance master at epoch for the term. Loop only.
func (s *Management) etcdLead(term, epoch uint64) {
	if s.el == nil {
		return
	}
	if err := s.el.Lead(time.Now(), epoch, fmt.Sprintf("elected on etcd (leader key revision %d)", epoch)); err != nil {
		s.haLog.Error("etcd_lead", "elected on etcd but not taking the mastership; campaigning again", "component", "mgmt",
			"epoch", epoch, "known_epoch", s.el.Epoch(), "error", err)
		s.etcd.relinquish(term)
	} else {
		s.etcdLeadEpoch, s.etcdLeadTerm = epoch, term
	}
	s.drainElection()
}

// etcdFollow hands the election a leader that etcd names. Loop only.
func (s *Management) etcdFollow(leader string, epoch uint64) {
	if s.el == nil {
		return
	}
	if err := s.el.Follow(time.Now(), leader, epoch); err != nil {
		s.haLog.Warn("etcd_follow", "etcd leader not followed", "component", "mgmt", "peer", leader, "epoch", epoch, "error", err)
	}
	s.drainElection()
}

// etcdRelease steps down: the term's lease is lost or in doubt, or it
// resigned. Loop only.
func (s *Management) etcdRelease(term uint64, why string) {
	if s.el == nil {
		return
	}
	if s.etcdLeadTerm == term {
		s.etcdLeadEpoch, s.etcdLeadTerm = 0, 0
	}
	s.el.Release(time.Now(), why)
	s.drainElection()
}

// etcdAligned gives up the etcd leadership when the machine left the
// mastership by itself (fenced by a higher epoch, a fault). Loop only,
// from alignMastership.
func (s *Management) etcdAligned(master bool, epoch uint64) {
	if s.etcd == nil || s.etcdLeadEpoch == 0 || (master && epoch == s.etcdLeadEpoch) {
		return
	}
	term := s.etcdLeadTerm
	s.etcdLeadEpoch, s.etcdLeadTerm = 0, 0
	s.etcd.relinquish(term)
}

// relinquish asks the term to end. Any goroutine.
func (r *etcdRunner) relinquish(term uint64) {
	select {
	case r.lost <- term:
	default:
		select { // replace a stale request
		case <-r.lost:
		default:
		}
		select {
		case r.lost <- term:
		default:
		}
	}
}

// switchoverEtcd is Switchover with the etcd election: the master
// flushes its state to the backups and resigns; the next instance in
// etcd's queue takes over, then this one campaigns again behind it. A
// named target cannot be honoured (etcd's queue decides).
func (s *Management) switchoverEtcd(ctx context.Context, target string) (*hellopicsv1.SwitchoverResponse, error) {
	if target != "" {
		return nil, fmt.Errorf("%w: with the etcd election the next instance in etcd's queue takes over; a switchover to %q cannot be honoured (give no target)", ErrBadRequest, target)
	}
	var master, backup bool
	if !s.loop.Do(func() {
		master = s.el != nil && s.el.Role() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER && s.etcdLeadEpoch != 0
		if master {
			for _, p := range s.el.Status().Peers {
				backup = backup || (p.GetAlive() && !p.GetFault())
			}
		}
		if master && backup {
			if err := s.sendChanges(); err != nil {
				s.log.Debug("flush not sent", "error", err)
			}
			s.drainElection()
		}
	}) {
		return nil, fmt.Errorf("mgmt: %w", ErrStopped)
	}
	if !master {
		return nil, fmt.Errorf("%w: not the master on etcd", ErrNotMaster)
	}
	if !backup {
		return nil, errors.New("switchover: no live backup out of the fault state to take over")
	}
	reply := make(chan error, 1)
	select {
	case s.etcd.resign <- reply:
	case <-ctx.Done():
		return nil, fmt.Errorf("switchover: %w", ctx.Err())
	}
	select {
	case err := <-reply:
		if errors.Is(err, ErrNotMaster) {
			return nil, fmt.Errorf("%w: not the master on etcd", ErrNotMaster)
		}
		if err != nil {
			return nil, fmt.Errorf("switchover: resign on etcd: %w", err)
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("switchover: %w", ctx.Err())
	}
	s.log.Info("switchover: resigned on etcd", "component", "mgmt", "step", "switchover")
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		var m string
		var epoch uint64
		s.loop.Do(func() { m, epoch = s.el.Master(), s.el.Epoch() })
		if m != "" && m != s.cfg.ID {
			return &hellopicsv1.SwitchoverResponse{NewMasterId: m, Epoch: epoch}, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("switchover: resigned, but no new master confirmed: %w", ctx.Err())
		case <-tick.C:
		}
	}
}
