package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/hellopics/hellopics/internal/cli"
	"github.com/hellopics/hellopics/mgmt/operator"
	"github.com/hellopics/hellopics/pkg/identity"
	"github.com/hellopics/hellopics/pkg/tlsconf"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

func init() {
	register(&command{name: "ctl", summary: "operator client: status, pairs, events, watch, switchover", run: runCtl})
}

const ctlUsage = `Usage: hellopics ctl [flags] <command> [command flags]

Talks to the operator API of the management component (hellopics mgmt).

Commands:
  status [-check]      the instance, its management peers and its pairs;
                       with -check, one line per problem and an exit status
                       for scripts (below)
  pairs [-pair ID]     a table of the pairs, one a row, from the master
  events [-since D] [-follow] [-pair ID]
                       the events mgmt kept (its last 1024) since D, a
                       duration back from now (5m) or an RFC 3339 time;
                       with -follow, then the new ones until Ctrl-C
  watch                stream events, one a line, until Ctrl-C
  switchover [-to ID]  hand mastership to backup ID (default: the best)
  health               SERVING or NOT_SERVING; exit status 0 only if serving

-addr may list several instances, comma-separated: status, pairs and
health ask each of them (pairs shows the master's answer); events and
watch use the first that answers; switchover tries each until the master
accepts. -pair ID selects one pair, -pair 'PREFIX*' those whose id begins
with PREFIX. The flags below may also follow the command.

With -tls-cert, -tls-key and -tls-ca (or HELLOPICS_TLS_*), ctl speaks
mutual TLS, presents its certificate (an operator's: read for status,
pairs, events, watch and health, admin for switchover) and accepts only a server whose
certificate names a mgmt of the CA's trust domain. Without them it
speaks plaintext, to any address: the server decides whether it allows
that (mgmt serves plaintext only on loopback or with -insecure).

Exit status: 0 on success, 1 on failure (no mgmt answered, a call was
refused, -pair matched no pair), 2 on bad usage. status -check exits
  0  a master is known and every registered pair is ready and cycling
  1  no mgmt of -addr answered
  2  bad usage
  3  degraded: a pair is not ready or its cycle stopped, or a mgmt of
     -addr did not answer (the master did)
  4  no master: mgmt answered, but none is master or knows one

Flags:
`

// ctlOptions are the flags every ctl command accepts.
type ctlOptions struct {
	addr    string
	timeout time.Duration
	output  string

	tls      cli.TLSFlags
	tlsFlags []*flag.Flag // tls's -tls-cert, -tls-key, -tls-ca

	addrs []string                         // addr split
	creds credentials.TransportCredentials // from tls; nil: plaintext
}

// newCtlOptions returns the options with their defaults, from the
// environment where it says.
func newCtlOptions() *ctlOptions {
	o := &ctlOptions{addr: operator.DefaultAddr, timeout: 3 * time.Second, output: "text"}
	if v := os.Getenv("HELLOPICS_OPERATOR_ADDR"); v != "" {
		o.addr = v
	}
	// The daemons' TLS flags, registered once (they read the environment
	// then) and added to each flag set by register. ctl has no
	// -insecure: as a client it may speak plaintext anywhere (the
	// server refuses it where it should).
	all := flag.NewFlagSet("tls", flag.ContinueOnError)
	o.tls.Register(all)
	for _, name := range []string{"tls-cert", "tls-key", "tls-ca"} {
		o.tlsFlags = append(o.tlsFlags, all.Lookup(name))
	}
	return o
}

func (o *ctlOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.addr, "addr", o.addr, "operator API address host:port, or a comma-separated list (env HELLOPICS_OPERATOR_ADDR)")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "time allowed for each request (for watch: to subscribe)")
	fs.StringVar(&o.output, "o", o.output, "output format: text (for people) or json (for scripts)")
	for _, f := range o.tlsFlags {
		fs.Var(f.Value, f.Name, f.Usage)
	}
}

// loadTLS reads the certificate files, if given, into o.creds: mutual
// TLS, the server's certificate checked to name a mgmt.
func (o *ctlOptions) loadTLS() error {
	if !o.tls.Files.Set() {
		return nil
	}
	src, err := tlsconf.Load(o.tls.Files, nil)
	if err != nil {
		return err
	}
	o.creds = credentials.NewTLS(src.ClientConfig(tlsconf.Roles(identity.RoleMgmt)))
	return nil
}

func (o *ctlOptions) check() error {
	o.addrs = o.addrs[:0]
	for _, a := range strings.Split(o.addr, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("bad -addr %q: want host:port", a)
		}
		o.addrs = append(o.addrs, a)
	}
	if len(o.addrs) == 0 {
		return errors.New("-addr is empty")
	}
	if o.timeout <= 0 {
		return fmt.Errorf("bad -timeout %v: want a positive duration", o.timeout)
	}
	if o.output != "text" && o.output != "json" {
		return fmt.Errorf("bad -o %q: want text or json", o.output)
	}
	return o.tls.Files.Validate()
}

func runCtl(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return ctlMain(ctx, args, os.Stdout, os.Stderr)
}

// ctlMain runs `hellopics ctl args` until ctx is done and returns the exit
// status.
func ctlMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o := newCtlOptions()
	fs := flag.NewFlagSet("hellopics ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), ctlUsage)
		fs.PrintDefaults()
	}
	o.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "hellopics ctl: no command given")
		fs.Usage()
		return 2
	}
	name, rest := fs.Arg(0), fs.Args()[1:]
	if name == "help" {
		fs.SetOutput(stdout)
		fs.Usage()
		return 0
	}

	// Each command parses its own flags, the common ones included, so that
	// they may come before or after the command name.
	sub := flag.NewFlagSet("hellopics ctl "+name, flag.ContinueOnError)
	sub.SetOutput(stderr)
	o.register(sub)
	var target string
	var run func(context.Context, *ctlOptions, io.Writer, io.Writer) int
	switch name {
	case "status":
		var check bool
		var sa ctlStatusArgs
		sub.BoolVar(&check, "check", false, "print one line per problem and exit 0 if healthy, 3 if degraded, 4 if there is no master, 1 if no mgmt answers")
		sub.StringVar(&sa.pair, "pair", "", "show only pair ID, or with 'PREFIX*' the pairs whose id begins with PREFIX")
		sub.IntVar(&sa.maxPairs, "max-pairs", 100, "show at most this many pairs (in pair id order) and how many more there are; 0 shows all (-o json always has all)")
		sub.IntVar(&sa.pageSize, "page-size", ctlPageSize, "ask mgmt for at most this many pairs per request")
		run = func(ctx context.Context, o *ctlOptions, stdout, stderr io.Writer) int {
			if check {
				return ctlStatusCheck(ctx, o, stdout, stderr)
			}
			return ctlStatus(ctx, o, sa, stdout, stderr)
		}
	case "pairs":
		var pair string
		pageSize := ctlPageSize
		sub.StringVar(&pair, "pair", "", "show only pair ID, or with 'PREFIX*' the pairs whose id begins with PREFIX")
		sub.IntVar(&pageSize, "page-size", ctlPageSize, "ask mgmt for at most this many pairs per request")
		run = func(ctx context.Context, o *ctlOptions, stdout, stderr io.Writer) int {
			return ctlPairs(ctx, o, pair, pageSize, stdout, stderr)
		}
	case "events":
		var a ctlEventsArgs
		sub.StringVar(&a.since, "since", "", "show the kept events since this: a duration back from now (5m) or an RFC 3339 time; default all kept (the last 1024)")
		sub.BoolVar(&a.follow, "follow", false, "after the kept events, stream new ones until Ctrl-C")
		sub.StringVar(&a.pair, "pair", "", "show only the events of pair ID, or with 'PREFIX*' of the pairs whose id begins with PREFIX")
		run = func(ctx context.Context, o *ctlOptions, stdout, stderr io.Writer) int {
			return ctlEvents(ctx, o, a, stdout, stderr)
		}
	case "watch":
		run = ctlWatch
	case "health":
		run = ctlHealth
	case "switchover":
		sub.StringVar(&target, "to", "", "id of the backup to hand over to (default: the best)")
		run = func(ctx context.Context, o *ctlOptions, stdout, stderr io.Writer) int {
			return ctlSwitchover(ctx, o, target, stdout, stderr)
		}
	default:
		fmt.Fprintf(stderr, "hellopics ctl: unknown command %q\n", name)
		fs.Usage()
		return 2
	}
	sub.Usage = func() {
		fmt.Fprintf(sub.Output(), "Usage: hellopics ctl %s [flags]\n\nFlags:\n", name)
		sub.PrintDefaults()
	}
	if err := sub.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if sub.NArg() > 0 {
		fmt.Fprintf(stderr, "hellopics ctl %s: unexpected arguments %q\n", name, sub.Args())
		sub.Usage()
		return 2
	}
	if err := o.check(); err != nil {
		fmt.Fprintf(stderr, "hellopics ctl: %v\n", err)
		return 2
	}
	if err := o.loadTLS(); err != nil {
		fmt.Fprintf(stderr, "hellopics ctl: %v\n", err)
		return 1
	}
	return run(ctx, o, stdout, stderr)
}

// ctlDial returns a client connection to addr, over mutual TLS if o says
// so. It connects lazily: errors show at the first call.
func ctlDial(o *ctlOptions, addr string) (*grpc.ClientConn, error) {
	creds := o.creds
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("mgmt at %s: %w", addr, err)
	}
	return cc, nil
}

// ctlEach runs f on every address at once, each with the -timeout, and
// returns the results in the order of the addresses.
func ctlEach[T any](ctx context.Context, o *ctlOptions, f func(ctx context.Context, cc *grpc.ClientConn) (T, error)) ([]T, []error) {
	res := make([]T, len(o.addrs))
	errs := make([]error, len(o.addrs))
	var wg sync.WaitGroup
	for i, addr := range o.addrs {
		wg.Go(func() {
			cc, err := ctlDial(o, addr)
			if err != nil {
				errs[i] = err
				return
			}
			defer cc.Close()
			cctx, cancel := context.WithTimeout(ctx, o.timeout)
			defer cancel()
			res[i], err = f(cctx, cc)
			if err != nil {
				errs[i] = ctlRPCError(o, addr, err)
			}
		})
	}
	wg.Wait()
	return res, errs
}

// ctlStatusArgs are the flags of ctl status.
type ctlStatusArgs struct {
	pair     string
	maxPairs int
	pageSize int
}

// ctlPageSize is how many pairs one GetStatus asks for by default (ctl
// -page-size): pages keep each answer, and mgmt's work on it, small.
const ctlPageSize = 500

// ctlGetStatus gets the status of the instance behind cc with the pairs
// matching filter ("" every pair), pageSize at a time: all of them, or
// the first limit when limit > 0, then NextPageToken says whether there
// are more. Instance fields are the first page's.
func ctlGetStatus(ctx context.Context, cc *grpc.ClientConn, filter string, limit, pageSize int) (*hellopicsv1.GetStatusResponse, error) {
	c := hellopicsv1.NewOperatorServiceClient(cc)
	size := ctlPageSize
	if pageSize > 0 {
		size = pageSize
	}
	if limit > 0 {
		size = min(size, limit)
	}
	req := &hellopicsv1.GetStatusRequest{Pair: filter, PageSize: uint32(size)}
	st, err := c.GetStatus(ctx, req)
	if err != nil {
		return nil, err
	}
	for st.GetNextPageToken() != "" && (limit <= 0 || len(st.Pairs) < limit) {
		req.PageToken = st.GetNextPageToken()
		if limit > 0 {
			req.PageSize = uint32(min(size, limit-len(st.Pairs)))
		}
		next, err := c.GetStatus(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("status page after pair %q: %w", req.PageToken, err)
		}
		st.Pairs = append(st.Pairs, next.GetPairs()...)
		st.NextPageToken = next.GetNextPageToken()
	}
	return st, nil
}

func ctlStatus(ctx context.Context, o *ctlOptions, a ctlStatusArgs, stdout, stderr io.Writer) int {
	limit := a.maxPairs
	if o.output == "json" {
		limit = 0
	}
	sts, errs := ctlEach(ctx, o, func(ctx context.Context, cc *grpc.ClientConn) (*hellopicsv1.GetStatusResponse, error) {
		return ctlGetStatus(ctx, cc, a.pair, limit, a.pageSize)
	})
	code := 0
	for _, err := range errs {
		if err != nil {
			fmt.Fprintf(stderr, "hellopics ctl: %v\n", err)
			code = 1
		}
	}
	if o.output == "json" {
		if err := ctlStatusJSON(stdout, o.addrs, sts, errs); err != nil {
			fmt.Fprintf(stderr, "hellopics ctl: %v\n", err)
			return 1
		}
		return code
	}
	now := time.Now()
	first := true
	for i, st := range sts {
		if errs[i] != nil {
			continue
		}
		if !first {
			fmt.Fprintln(stdout)
		}
		first = false
		addr := ""
		if len(o.addrs) > 1 {
			addr = o.addrs[i]
		}
		if err := ctlFormatStatus(stdout, addr, st, now); err != nil {
			fmt.Fprintf(stderr, "hellopics ctl: %v\n", err)
			return 1
		}
		if a.pair != "" && len(st.GetPairs()) == 0 {
			fmt.Fprintf(stdout, "no pair matches -pair %q\n", a.pair)
		}
		if n := len(st.GetPairs()); st.GetNextPageToken() != "" {
			fmt.Fprintf(stdout, "\nshowing %d of %d pairs (%d cycling): 'hellopics ctl pairs' lists them all, -pair ID or 'PREFIX*' picks, -max-pairs 0 shows all here\n",
				n, st.GetTotalPairs(), st.GetCyclingPairs())
		}
	}
	return code
}

// ctlStatusJSON writes, for one address, its GetStatusResponse; for
// several, an array of {"addr", "status"} or {"addr", "error"}.
func ctlStatusJSON(w io.Writer, addrs []string, sts []*hellopicsv1.GetStatusResponse, errs []error) error {
	if len(addrs) == 1 {
		if errs[0] != nil {
			return nil
		}
		b, err := ctlMarshalJSON(sts[0], true)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	type entry struct {
		Addr   string          `json:"addr"`
		Status json.RawMessage `json:"status,omitempty"`
		Error  string          `json:"error,omitempty"`
	}
	out := make([]entry, len(addrs))
	for i, addr := range addrs {
		out[i].Addr = addr
		if errs[i] != nil {
			out[i].Error = errs[i].Error()
			continue
		}
		b, err := ctlMarshalJSON(sts[i], false)
		if err != nil {
			return err
		}
		out[i].Status = b
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding JSON: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func ctlHealth(ctx context.Context, o *ctlOptions, stdout, stderr io.Writer) int {
	res, errs := ctlEach(ctx, o, func(ctx context.Context, cc *grpc.ClientConn) (healthpb.HealthCheckResponse_ServingStatus, error) {
		r, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: operator.ServiceName})
		return r.GetStatus(), err
	})
	serving := false
	type entry struct {
		Addr   string `json:"addr,omitempty"`
		Status string `json:"status"`
		Error  string `json:"error,omitempty"`
	}
	var out []entry
	for i, addr := range o.addrs {
		e := entry{Status: res[i].String()}
		if len(o.addrs) > 1 {
			e.Addr = addr
		}
		if errs[i] != nil {
			fmt.Fprintf(stderr, "hellopics ctl: %v\n", errs[i])
			e.Status, e.Error = "UNREACHABLE", errs[i].Error()
		} else if res[i] == healthpb.HealthCheckResponse_SERVING {
			serving = true
		}
		out = append(out, e)
	}
	if o.output == "json" {
		var v any = out
		if len(out) == 1 {
			v = out[0]
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			fmt.Fprintf(stderr, "hellopics ctl: encoding JSON: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		for _, e := range out {
			if e.Addr != "" {
				fmt.Fprintf(stdout, "%-21s  %s\n", e.Addr, e.Status)
			} else {
				fmt.Fprintln(stdout, e.Status)
			}
		}
	}
	if !serving {
		return 1
	}
	return 0
}

func ctlWatch(ctx context.Context, o *ctlOptions, stdout, stderr io.Writer) int {
	for _, addr := range o.addrs {
		st, cleanup, err := ctlSubscribe(ctx, o, addr)
		if err != nil {
			if ctx.Err() != nil {
				return 0
			}
			fmt.Fprintf(stderr, "hellopics ctl: %v\n", err)
			continue
		}
		if len(o.addrs) > 1 {
			fmt.Fprintf(stderr, "hellopics ctl: watching the events of mgmt at %s\n", addr)
		}
		code := ctlStream(ctx, o, addr, st, "", stdout, stderr)
		cleanup()
		return code
	}
	return 1
}

// ctlSubscribe opens a WatchEvents stream to addr and waits, up to
// -timeout, until the server has subscribed it.
func ctlSubscribe(ctx context.Context, o *ctlOptions, addr string) (grpc.ServerStreamingClient[hellopicsv1.WatchEventsResponse], func(), error) {
	return ctlSubscribeReq(ctx, o, addr, &hellopicsv1.WatchEventsRequest{})
}

// ctlStream prints the events of st whose pair matches the -pair filter
// pair ("" all) until the stream ends or ctx is done.
func ctlStream(ctx context.Context, o *ctlOptions, addr string, st grpc.ServerStreamingClient[hellopicsv1.WatchEventsResponse], pair string, stdout, stderr io.Writer) int {
	for {
		ev, err := st.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return 0 // Ctrl-C
			}
			if errors.Is(err, io.EOF) {
				fmt.Fprintf(stderr, "hellopics ctl: mgmt at %s ended the event stream\n", addr)
				return 1
			}
			fmt.Fprintf(stderr, "hellopics ctl: event stream from mgmt at %s ended: %v\n", addr, ctlRPCError(o, addr, err))
			return 1
		}
		if !ctlPairMatch(pair, ev.GetPairId()) {
			continue
		}
		if err := ctlPrintEvent(o, stdout, ev); err != nil {
			if strings.HasPrefix(err.Error(), "encoding ") {
				fmt.Fprintf(stderr, "hellopics ctl: %v\n", err)
			}
			return 1 // or stdout closed, e.g. `| head`
		}
	}
}

func ctlSwitchover(ctx context.Context, o *ctlOptions, target string, stdout, stderr io.Writer) int {
	var errs []error
	for _, addr := range o.addrs {
		resp, err := func() (*hellopicsv1.SwitchoverResponse, error) {
			cc, err := ctlDial(o, addr)
			if err != nil {
				return nil, err
			}
			defer cc.Close()
			cctx, cancel := context.WithTimeout(ctx, o.timeout)
			defer cancel()
			resp, err := hellopicsv1.NewOperatorServiceClient(cc).Switchover(cctx, &hellopicsv1.SwitchoverRequest{TargetId: target})
			if err != nil {
				return nil, ctlRPCError(o, addr, err)
			}
			return resp, nil
		}()
		if err == nil {
			if o.output == "json" {
				b, err := ctlMarshalJSON(resp, true)
				if err != nil {
					fmt.Fprintf(stderr, "hellopics ctl: %v\n", err)
					return 1
				}
				fmt.Fprintf(stdout, "%s\n", b)
			} else {
				fmt.Fprintf(stdout, "switchover done: %s is master at epoch %d\n", resp.GetNewMasterId(), resp.GetEpoch())
			}
			return 0
		}
		errs = append(errs, err)
		// Not the master, or not reachable: the master may be another
		// of the addresses. Any other refusal is the master's answer.
		if c := status.Code(errors.Unwrap(err)); c != codes.FailedPrecondition && c != codes.Unavailable || len(o.addrs) == 1 {
			break
		}
	}
	for _, err := range errs {
		fmt.Fprintf(stderr, "hellopics ctl: switchover: %v\n", err)
	}
	return 1
}

// ctlError is a failed call described for a person; it wraps the gRPC
// error.
type ctlError struct {
	msg string
	err error
}

func (e *ctlError) Error() string { return e.msg }
func (e *ctlError) Unwrap() error { return e.err }

// ctlRPCError describes a failed call to the mgmt at addr: what happened
// and, where it helps, what to do.
func ctlRPCError(o *ctlOptions, addr string, err error) error {
	var ce *ctlError
	if errors.As(err, &ce) {
		return err
	}
	st := status.Convert(err)
	msg := st.Message()
	var s string
	switch st.Code() {
	case codes.Unavailable:
		switch {
		case strings.Contains(msg, "authentication handshake failed: "):
			// We refused the server's certificate.
			s = fmt.Sprintf("TLS with mgmt at %s failed: %s (is -tls-ca the CA of mgmt's certificate, and addr a mgmt?)",
				addr, strings.TrimRight(msg[strings.Index(msg, "authentication handshake failed: ")+len("authentication handshake failed: "):], `"`))
		case strings.Contains(msg, "remote error: tls:"):
			// The server refused ours.
			s = fmt.Sprintf("TLS with mgmt at %s failed: mgmt refused our certificate (%s): is -tls-cert issued by the CA mgmt trusts, for its trust domain, and still valid?",
				addr, strings.TrimRight(msg[strings.Index(msg, "remote error: tls:")+len("remote error: "):], `"`))
		case o.creds != nil && (strings.Contains(msg, "broken pipe") || strings.Contains(msg, "connection reset") || strings.Contains(msg, "EOF")):
			// The same, when the connection closed before its alert
			// was read.
			s = fmt.Sprintf("TLS with mgmt at %s failed: mgmt closed the connection (%s), most likely refusing our certificate: is -tls-cert issued by the CA mgmt trusts, for its trust domain, and still valid?",
				addr, ctlDialReason(msg))
		case o.creds == nil && (strings.Contains(msg, "connection reset") || strings.Contains(msg, "EOF") || strings.Contains(msg, "preface")):
			s = fmt.Sprintf("mgmt at %s closed the connection before answering: %s (does it require TLS? give -tls-cert, -tls-key and -tls-ca)",
				addr, ctlDialReason(msg))
		case strings.Contains(msg, "dial") || strings.Contains(msg, "connection") || strings.Contains(msg, "transport"):
			s = fmt.Sprintf("cannot reach mgmt at %s: %s (is `hellopics mgmt` running? set -addr)", addr, ctlDialReason(msg))
		default:
			s = fmt.Sprintf("mgmt at %s is unavailable: %s", addr, msg)
		}
	case codes.DeadlineExceeded:
		s = fmt.Sprintf("no answer from mgmt at %s within %v (is it reachable? raise -timeout)", addr, o.timeout)
	case codes.Unimplemented:
		s = fmt.Sprintf("%s does not serve the hellopics operator API (%s); check -addr", addr, msg)
	case codes.Canceled:
		s = fmt.Sprintf("call to mgmt at %s canceled", addr)
	case codes.PermissionDenied:
		s = fmt.Sprintf("mgmt at %s refused: permission denied: %s", addr, msg)
	case codes.Unauthenticated:
		s = fmt.Sprintf("mgmt at %s refused: unauthenticated: %s (give -tls-cert, -tls-key and -tls-ca)", addr, msg)
	case codes.FailedPrecondition, codes.NotFound, codes.ResourceExhausted:
		s = fmt.Sprintf("mgmt at %s: %s", addr, msg)
	default:
		s = fmt.Sprintf("mgmt at %s: %s (%s)", addr, msg, st.Code())
	}
	return &ctlError{msg: s, err: err}
}

// ctlDialReason shortens grpc's transport error, e.g.
// `connection error: desc = "transport: Error while dialing: dial tcp
// 127.0.0.1:7400: connect: connection refused"`, to its cause.
func ctlDialReason(msg string) string {
	msg = strings.TrimRight(msg, `"`)
	for _, known := range []string{"connection refused", "broken pipe", "no such host", "i/o timeout", "network is unreachable", "no route to host", "connection reset by peer"} {
		if strings.Contains(msg, known) {
			return known
		}
	}
	if i := strings.LastIndex(msg, `desc = "`); i >= 0 {
		msg = msg[i+len(`desc = "`):]
	}
	return msg
}
