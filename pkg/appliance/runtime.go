package appliance

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/hellopics/hellopics/internal/ratelog"
	"github.com/hellopics/hellopics/pkg/pconn"
	"github.com/hellopics/hellopics/pkg/tier"
)

// Link is how a Runtime reaches other components. The tier shells
// implement it; tests may swap in their own.
type Link interface {
	// SendApp queues rec, one AppMessage as a record of an AppBatch
	// (pconn.Session.SendRecord), on the link to to, in order with what
	// was queued on it before. It
	// returns ErrNoRoute when to is not connected and ready, or the
	// transport's error (ErrQueueFull, ErrTooLarge). It must not keep
	// rec.
	SendApp(to Target, rec []byte) error
}

// RecordLink is a Link that takes a message written straight into the
// link's send queue (pconn.Session.SendRecordFrom): n bytes from w.
// The component shell implements it; the Runtime uses it when there.
type RecordLink interface {
	SendAppFrom(to Target, n int, w pconn.RecordWriter) error
}

// PairLister is implemented by the mgmt shell's Link: the pairs whose
// components of role can be sent to now (Broadcast).
type PairLister interface {
	ReadyTargets(role Role) []Target
}

// Replicator is implemented by the mgmt shell's Link: it queues an
// application state update for the backups and returns the version that
// will carry it. The shell reports progress with Runtime.Committed and
// Runtime.CommitsLost.
type Replicator interface {
	Replicate(update []byte) (version uint64, err error)
}

// Fence is a component's mastership epoch fence, kept by its handshake
// machine: the epoch its application messages are stamped with, and
// whether a message stamped with an epoch may be delivered. The
// component shells implement it (RuntimeConfig.Fence says what a
// Runtime without one does).
type Fence interface {
	// Epoch is the epoch to stamp outgoing messages with.
	Epoch() uint64
	// Admit reports whether a message from from stamped with epoch may
	// be delivered. It may raise the fence (a master's message).
	Admit(from Peer, epoch uint64) bool
}

// RuntimeConfig configures a Runtime.
type RuntimeConfig struct {
	// Role is the component's tier; PairID its pair (ctrl, data).
	Role   Role
	PairID string
	// App is the application; nil runs none (every message refused).
	App *App
	// Link reaches the other components.
	Link Link
	// Fence stamps and fences messages by epoch. Without one the
	// runtime stamps the highest epoch its hooks reported, and mgmt
	// refuses messages stamped above it (ctrl and data deliver all).
	Fence Fence
	// Loop is the component's loop: every callback runs on it.
	Loop *tier.Loop
	// Logger is the component's logger; the runtime logs under App.Name.
	Logger hclog.Logger
	// RefusalLogInterval rate-limits the log lines of refused messages
	// (0 logs every one).
	RefusalLogInterval time.Duration
	// OnSequenceLow (mgmt) is called on the loop when a Sequence's
	// numbers come within half the reserve of what the backups were
	// told: the shell syncs (SequenceMarks) soon.
	OnSequenceLow func()
}

// Runtime joins an App to a component's shell. It is for the hellopics
// shells (package ctrl, data, mgmt use it); an application sees only its
// Node. Methods other than Decode, OperatorCall and Collectors must be
// called on the loop.
type Runtime struct {
	cfg  RuntimeConfig
	app  *App
	mux  *Mux
	log  hclog.Logger
	rlog *ratelog.Logger
	node *Node

	// loop goroutine only
	calls    map[uint64]*pendingCall
	nextCall uint64
	commits  []pendingCommit
	master   bool
	// handedOver: the mastership came from a graceful switchover
	// (Node.HandedOver).
	handedOver bool
	// partNodes are the Nodes of the parts of a composed State
	// (Node.withPart), made on first use.
	partNodes []*Node
	epoch     uint64
	started   bool
	stopped   bool
	scratch   []byte
	oneway    Context   // the Context of one-way messages, reused
	out       outRecord // the message being sent (RecordLink)
	seqs      map[string]*Sequence
	seqMarks  map[string]uint64 // marks synced from a master (sequence.go)
	// seqSyncAsked: OnSequenceLow was called and no sync went since.
	seqSyncAsked bool
	timers       map[*Timer]struct{} // the application's pending timers (timer.go)

	msgs    *prometheus.CounterVec
	refused *prometheus.CounterVec
	callRes *prometheus.CounterVec
	sent    prometheus.Counter
	recv    prometheus.Counter
}

type pendingCall struct {
	to    Target
	done  func(proto.Message, error)
	timer *time.Timer
}

type pendingCommit struct {
	version uint64
	done    func(Commit)
}

// The reasons of hellopics_<role>_app_refused_total.
const (
	// RefusedUnknownType: no handler for the message's type here.
	RefusedUnknownType = "unknown_type"
	// RefusedMalformed: the body does not decode as its type.
	RefusedMalformed = "malformed"
	// RefusedByPeer: the peer refused a message we sent.
	RefusedByPeer = "refused_by_peer"
	// RefusedLateReply: a reply to no pending call (late or forged).
	RefusedLateReply = "late_reply"
	// RefusedUnidentified: a message on a link whose peer has not
	// identified itself (or is no longer current); dropped.
	RefusedUnidentified = "unidentified"
	// RefusedHandlerError: a handler returned an error for a Send.
	RefusedHandlerError = "handler_error"
	// RefusedStaleEpoch: the message's epoch is fenced off: below the
	// one ctrl or data knows (a deposed master's, or sent before a
	// failover), or above mgmt's own (it is deposed).
	RefusedStaleEpoch = "stale_epoch"
)

// NewRuntime returns the runtime of cfg.App; call Start on the loop
// once the shell can send.
func NewRuntime(cfg RuntimeConfig) *Runtime {
	app := cfg.App
	if app == nil {
		app = &App{}
	}
	name := app.Name
	if name == "" {
		name = "app"
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	log = log.Named(name)
	role := cfg.Role.String()
	r := &Runtime{
		cfg: cfg, app: app, mux: app.Mux, log: log, rlog: ratelog.New(log, cfg.RefusalLogInterval),
		calls: make(map[uint64]*pendingCall),
		msgs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hellopics_" + role + "_app_messages_total",
			Help: "Application messages sent and received by this component (replies included).",
		}, []string{"direction"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hellopics_" + role + "_app_refused_total",
			Help: "Application messages refused, by reason: unknown_type, malformed, unidentified, refused_by_peer, late_reply, handler_error, stale_epoch.",
		}, []string{"reason"}),
		callRes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hellopics_" + role + "_app_calls_total",
			Help: "Calls made by the application, by result: ok, error, timeout, lost.",
		}, []string{"result"}),
	}
	r.sent = r.msgs.WithLabelValues("sent")
	r.recv = r.msgs.WithLabelValues("received")
	for _, k := range []string{RefusedUnknownType, RefusedMalformed, RefusedUnidentified, RefusedByPeer, RefusedLateReply, RefusedHandlerError, RefusedStaleEpoch} {
		r.refused.WithLabelValues(k)
	}
	for _, k := range []string{"ok", "error", "timeout", "lost"} {
		r.callRes.WithLabelValues(k)
	}
	r.node = &Node{rt: r}
	return r
}

// Collectors are the runtime's metrics, for the component's registry.
func (r *Runtime) Collectors() []prometheus.Collector {
	return []prometheus.Collector{r.msgs, r.refused, r.callRes}
}

// Node is the application's handle on the component.
func (r *Runtime) Node() *Node { return r.node }

// Start calls App.OnStart. Loop only.
func (r *Runtime) Start() {
	if r.started {
		return
	}
	r.started = true
	if r.app.OnStart != nil {
		r.app.OnStart(r.node)
	}
}

// Stop fails every pending call and commit with ErrStopped; later
// sends fail too. Loop only.
func (r *Runtime) Stop() {
	if r.stopped {
		return
	}
	r.stopped = true
	r.stopTimers()
	if r.started && r.app.OnStop != nil {
		r.app.OnStop()
	}
	for id, c := range r.calls {
		r.finishCall(id, c, nil, ErrStopped)
	}
	r.CommitsLost(ErrStopped)
}

// Inbound is an application message decoded off the loop (Decode),
// to hand to Deliver on the loop.
type Inbound struct {
	route *route
	msg   proto.Message
	call  uint64
	epoch uint64
	reply bool
	rare  *inboundRare // replies and refusals only: a message stays small
}

// inboundRare is what only a reply or a refused message carries.
type inboundRare struct {
	typ     string
	body    []byte // a reply's body, decoded on the loop once the call is known
	errText string
	bad     string // a refusal reason for a message we cannot take
	badErr  string
}

// Decode parses the payload of an application frame (an AppBatch) on
// the session's goroutine (it may run concurrently with the loop) and
// returns its messages, in order. An error means the batch itself is
// broken: the shell should close the session. A message of an unknown
// type or with a malformed body is not an error here: Deliver refuses it
// and tells the sender.
func (r *Runtime) Decode(payload []byte) ([]Inbound, error) {
	var out []Inbound
	if p, _ := inboundPool.Get().(*[]Inbound); p != nil {
		out = (*p)[:0]
	}
	err := eachEnvelope(payload, func(e envelope) error {
		out = append(out, r.decodeOne(e))
		return nil
	})
	return out, err
}

// inboundPool holds the slices Decode returns, given back by ReleaseInbound
// once delivered: a stream of batches does not allocate one each.
var inboundPool sync.Pool

// ReleaseInbound gives back a slice Decode returned, once its messages were
// delivered.
func ReleaseInbound(ins []Inbound) {
	if cap(ins) > 1024 {
		return
	}
	clear(ins)
	ins = ins[:0]
	inboundPool.Put(&ins)
}

func (r *Runtime) decodeOne(e envelope) Inbound {
	in := Inbound{call: e.call, reply: e.reply, epoch: e.epoch}
	if e.reply {
		in.rare = &inboundRare{typ: string(e.typ), body: append([]byte(nil), e.body...), errText: string(e.errText)}
		return in
	}
	rt := r.mux.lookup(false, e.typ)
	if rt == nil {
		in.rare = &inboundRare{typ: string(e.typ), bad: RefusedUnknownType, badErr: fmt.Sprintf("%v: %q", ErrUnknownType, e.typ)}
		return in
	}
	m := rt.newM()
	// A new message: Merge spares the Reset that Unmarshal would do.
	if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(e.body, m); err != nil {
		in.rare = &inboundRare{typ: string(rt.name), bad: RefusedMalformed,
			badErr: fmt.Sprintf("malformed %s (%d bytes): %v", rt.name, len(e.body), err)}
		return in
	}
	in.route, in.msg = rt, m
	return in
}

// Deliver hands a decoded message from from to the application. Loop
// only; the shell must have checked that from is who the link says.
func (r *Runtime) Deliver(from Peer, in Inbound) {
	if r.stopped {
		return
	}
	r.recv.Inc()
	switch {
	case in.reply:
		r.deliverReply(from, in)
	case in.rare != nil:
		r.refuse(from, in.rare.bad, in.call, in.rare.badErr)
	case !r.admit(from, in.epoch):
		r.refuse(from, RefusedStaleEpoch, in.call, fmt.Sprintf("%v: %s stamped epoch %d, %s knows epoch %d",
			ErrStaleEpoch, in.route.name, in.epoch, r.cfg.Role, r.stamp()))
	default:
		// A call's Context may be kept for a later Reply; a one-way
		// message's is valid only during the handler, and reused.
		c := &r.oneway
		if in.call != 0 {
			c = &Context{}
		}
		*c = Context{Node: r.node, From: from, Epoch: in.epoch, call: in.call}
		err := in.route.serve(c, in.msg)
		if err == nil {
			return
		}
		if c.call != 0 && !c.replied {
			c.replied = true
			r.sendEnvelope(from, "", nil, c.call, true, err.Error())
			return
		}
		r.refused.WithLabelValues(RefusedHandlerError).Inc()
		r.rlog.Warn("handler-"+string(in.route.name), "application handler failed", "component", r.cfg.Role.String(),
			"peer", from.String(), "type", string(in.route.name), "error", err)
	}
}

// refuse counts and logs a message we cannot take, and tells the sender.
func (r *Runtime) refuse(from Peer, reason string, call uint64, text string) {
	r.refused.WithLabelValues(reason).Inc()
	r.rlog.Warn("refused-"+reason, "application message refused", "component", r.cfg.Role.String(),
		"peer", from.String(), "reason", reason, "error", text)
	r.sendEnvelope(from, "", nil, call, true, text)
}

func (r *Runtime) deliverReply(from Peer, in Inbound) {
	rr := in.rare // always set on a reply
	if in.call == 0 {
		// The peer refused a one-way message of ours.
		r.refused.WithLabelValues(RefusedByPeer).Inc()
		r.rlog.Warn("refused-by-peer", "the peer refused an application message", "component", r.cfg.Role.String(),
			"peer", from.String(), "error", rr.errText)
		return
	}
	c := r.calls[in.call]
	if c == nil || !sameTarget(r, c.to, from) {
		r.refused.WithLabelValues(RefusedLateReply).Inc()
		r.log.Debug("reply to no pending call", "component", r.cfg.Role.String(), "peer", from.String(), "call", in.call)
		return
	}
	if rr.errText != "" {
		r.finishCall(in.call, c, nil, &RemoteError{Peer: from, Message: rr.errText})
		return
	}
	if rr.typ == "" {
		r.finishCall(in.call, c, nil, nil) // answered with no message
		return
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(rr.typ))
	if err != nil {
		r.finishCall(in.call, c, nil, fmt.Errorf("%w: reply of type %q (not linked into this program)", ErrUnknownType, rr.typ))
		return
	}
	m := mt.New().Interface()
	if err := proto.Unmarshal(rr.body, m); err != nil {
		r.finishCall(in.call, c, nil, fmt.Errorf("malformed reply %s: %w", rr.typ, err))
		return
	}
	r.finishCall(in.call, c, m, nil)
}

// sameTarget reports whether a reply from from may answer a call to to.
func sameTarget(r *Runtime, to, from Peer) bool {
	if to.Role != from.Role {
		return false
	}
	if to.Role == Mgmt {
		return true
	}
	pair := to.PairID
	if pair == "" {
		pair = r.cfg.PairID
	}
	return pair == from.PairID
}

func (r *Runtime) finishCall(id uint64, c *pendingCall, m proto.Message, err error) {
	delete(r.calls, id)
	if c.timer != nil {
		c.timer.Stop()
	}
	var rerr *RemoteError
	switch {
	case err == nil:
		r.callRes.WithLabelValues("ok").Inc()
	case errors.Is(err, ErrTimeout):
		r.callRes.WithLabelValues("timeout").Inc()
	case errors.Is(err, ErrLinkLost), errors.Is(err, ErrStopped):
		r.callRes.WithLabelValues("lost").Inc()
	case errors.As(err, &rerr):
		r.callRes.WithLabelValues("error").Inc()
	default:
		r.callRes.WithLabelValues("error").Inc()
	}
	if c.done != nil {
		c.done(m, err)
	}
}

// LinkLost fails the pending calls to to (a whole pair when to.Role is
// 0 and PairID set; mgmt when to.Role is Mgmt) with ErrLinkLost. Loop only.
func (r *Runtime) LinkLost(to Target) {
	for id, c := range r.calls {
		if (to.Role == 0 && c.to.PairID == to.PairID) || sameTarget(r, c.to, to) {
			r.finishCall(id, c, nil, fmt.Errorf("%w: %s", ErrLinkLost, to))
		}
	}
}

// resolve fills a target's pair from the component's own.
func (r *Runtime) resolve(to Target) Target {
	if to.Role != Mgmt && to.PairID == "" && r.cfg.Role != Mgmt {
		to.PairID = r.cfg.PairID
	}
	return to
}

// sendEnvelope encodes and sends one AppMessage.
func (r *Runtime) sendEnvelope(to Target, typ string, m proto.Message, call uint64, reply bool, errText string) error {
	if r.stopped {
		return ErrStopped
	}
	if r.cfg.Link == nil {
		return ErrNoRoute
	}
	if rl, ok := r.cfg.Link.(RecordLink); ok {
		n := r.out.set(typ, m, header{call: call, reply: reply, errText: errText, epoch: r.stamp()})
		if err := rl.SendAppFrom(r.resolve(to), n, &r.out); err != nil {
			r.out = outRecord{}
			return fmt.Errorf("appliance: send %s to %s: %w", nameOr(typ, "reply"), r.resolve(to), err)
		}
		r.out = outRecord{} // keep no message
		r.sent.Inc()
		return nil
	}
	rec, buf, err := appendRecord(r.scratch[:0], typ, m, header{call: call, reply: reply, errText: errText, epoch: r.stamp()})
	if cap(buf) <= 64<<10 {
		r.scratch = buf[:0] // reuse; the link copies
	}
	if err != nil {
		return err
	}
	if err := r.cfg.Link.SendApp(r.resolve(to), rec); err != nil {
		return fmt.Errorf("appliance: send %s to %s: %w", nameOr(typ, "reply"), r.resolve(to), err)
	}
	r.sent.Inc()
	return nil
}

// admit fences a message by its epoch: the Fence's rule, or on mgmt
// without one its own: a message stamped above this instance's epoch
// comes from a component that has seen a newer master, so this one is
// deposed and must not act on it.
func (r *Runtime) admit(from Peer, epoch uint64) bool {
	if r.cfg.Fence != nil {
		return r.cfg.Fence.Admit(from, epoch)
	}
	if r.cfg.Role == Mgmt {
		return epoch <= r.epoch
	}
	return true
}

// stamp is the epoch outgoing messages carry: the Fence's, else the
// highest the hooks reported.
func (r *Runtime) stamp() uint64 {
	if r.cfg.Fence != nil {
		return r.cfg.Fence.Epoch()
	}
	return r.epoch
}

func nameOr(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// SetMastership tells the application of mgmt's mastership (the hook
// runs on a change only). Losing it fails pending commits. Loop only.
func (r *Runtime) SetMastership(master bool, epoch uint64) {
	if r.stopped {
		return // no hook after OnStop
	}
	changed := master != r.master || (master && epoch != r.epoch)
	if master && !r.master {
		r.takeOverSequences()
	}
	r.master, r.epoch = master, epoch
	if !master {
		r.CommitsLost(ErrNotMaster)
	}
	if changed && r.app.OnMastership != nil {
		r.app.OnMastership(master, epoch)
	}
}

// Switchover runs App.OnSwitchover on the master, before a switchover
// hands over. Loop only.
func (r *Runtime) Switchover(target string) {
	if r.stopped || !r.master || r.app.OnSwitchover == nil {
		return
	}
	r.app.OnSwitchover(target)
}

// PairReady runs App.OnPairReady. Loop only.
func (r *Runtime) PairReady(pairID string, epoch uint64) {
	if r.stopped {
		return // no hook after OnStop
	}
	r.epoch = max(r.epoch, epoch)
	if r.app.OnPairReady != nil {
		r.app.OnPairReady(pairID, epoch)
	}
}

// PairLost fails the calls to the pair's components and runs
// App.OnPairLost. Loop only.
func (r *Runtime) PairLost(pairID, reason string) {
	if r.stopped {
		return // no hook after OnStop
	}
	r.LinkLost(Target{PairID: pairID})
	if r.app.OnPairLost != nil {
		r.app.OnPairLost(pairID, reason)
	}
}

// PeerReady runs App.OnPeerReady. Loop only.
func (r *Runtime) PeerReady(p Peer, epoch uint64) {
	if r.stopped {
		return // no hook after OnStop
	}
	r.epoch = max(r.epoch, epoch)
	if r.app.OnPeerReady != nil {
		r.app.OnPeerReady(p, epoch)
	}
}

// PeerLost fails the calls to p and runs App.OnPeerLost. Loop only.
func (r *Runtime) PeerLost(p Peer, reason string) {
	if r.stopped {
		return // no hook after OnStop
	}
	r.LinkLost(p)
	if r.app.OnPeerLost != nil {
		r.app.OnPeerLost(p, reason)
	}
}

// MasterChanged runs App.OnMasterChanged. Loop only.
func (r *Runtime) MasterChanged(addr string, epoch uint64) {
	if r.stopped {
		return // no hook after OnStop
	}
	r.epoch = max(r.epoch, epoch)
	if r.app.OnMasterChanged != nil {
		r.app.OnMasterChanged(addr, epoch)
	}
}

// MgmtLost fails the calls to mgmt and runs App.OnMgmtLost. Loop only.
func (r *Runtime) MgmtLost(reason string) {
	if r.stopped {
		return // no hook after OnStop
	}
	r.LinkLost(ToMgmt)
	if r.app.OnMgmtLost != nil {
		r.app.OnMgmtLost(reason)
	}
}

// Committed reports that every live backup acknowledged the state up to
// version (acked is how many backups did; 0 with none): the matching
// Replicate callbacks run. Loop only.
func (r *Runtime) Committed(version uint64, acked int) {
	n := 0
	for _, c := range r.commits {
		if c.version > version {
			break
		}
		n++
		if c.done != nil {
			c.done(Commit{Version: c.version, Acked: acked})
		}
	}
	r.commits = r.commits[n:]
}

// PendingCommit reports the lowest version still awaiting
// acknowledgement, if any. Loop only.
func (r *Runtime) PendingCommit() (uint64, bool) {
	if len(r.commits) == 0 {
		return 0, false
	}
	return r.commits[0].version, true
}

// CommitsLost fails every pending Replicate callback with err. Loop only.
func (r *Runtime) CommitsLost(err error) {
	cs := r.commits
	r.commits = nil
	for _, c := range cs {
		if c.done != nil {
			c.done(Commit{Version: c.version, Err: err})
		}
	}
}

// HasState reports whether the application has replicated state.
func (r *Runtime) HasState() bool { return r.app.State != nil }

// ApplyState applies a replicated update on a backup. Loop only.
func (r *Runtime) ApplyState(update []byte) error {
	if r.app.State == nil {
		return nil
	}
	return r.app.State.Apply(update)
}

// SnapshotState returns the application's state for a backup. Loop only.
func (r *Runtime) SnapshotState() ([]byte, error) {
	if r.app.State == nil {
		return nil, nil
	}
	return r.app.State.Snapshot()
}

// RestoreState replaces the application's state with a snapshot from
// the master. Loop only.
func (r *Runtime) RestoreState(snapshot []byte) error {
	if r.app.State == nil {
		return nil
	}
	return r.app.State.Restore(snapshot)
}

// OperatorCall runs the HandleOperator handler of typ with body for an
// operator (any goroutine) and waits for its reply or ctx. admin says
// whether the operator may call Admin handlers.
func (r *Runtime) OperatorCall(ctx context.Context, who Peer, admin bool, typ string, body []byte) (string, []byte, error) {
	if len(typ) > MaxTypeName {
		return "", nil, fmt.Errorf("%w: a type name of %d bytes (limit %d)", ErrUnknownType, len(typ), MaxTypeName)
	}
	rt := r.mux.lookup(true, []byte(typ))
	if rt == nil {
		return "", nil, fmt.Errorf("%w: %q (the application in this mgmt has no operator handler for it)", ErrUnknownType, typ)
	}
	if rt.perm == Admin && !admin {
		return "", nil, fmt.Errorf("%w: %s needs an operator admin identity", ErrPermission, typ)
	}
	m := rt.newM()
	if err := proto.Unmarshal(body, m); err != nil {
		return "", nil, fmt.Errorf("%w: %s: %v", ErrMalformed, typ, err)
	}
	type result struct {
		m   proto.Message
		err error
	}
	done := make(chan result, 1)
	who.Role = Operator
	if !r.cfg.Loop.Post(func() {
		if r.stopped {
			done <- result{err: ErrStopped}
			return
		}
		c := &Context{Node: r.node, From: who, call: 1, operator: func(m proto.Message, err error) { done <- result{m, err} }}
		if err := rt.serve(c, m); err != nil && !c.replied {
			c.replied = true
			done <- result{err: err}
		}
	}) {
		return "", nil, ErrStopped
	}
	select {
	case res := <-done:
		if res.err != nil {
			return "", nil, res.err
		}
		if res.m == nil {
			return "", nil, nil
		}
		b, err := proto.Marshal(res.m)
		if err != nil {
			return "", nil, err
		}
		return string(res.m.ProtoReflect().Descriptor().FullName()), b, nil
	case <-ctx.Done():
		return "", nil, ctx.Err()
	}
}
