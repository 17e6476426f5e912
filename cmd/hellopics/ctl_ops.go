package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// This file holds the ctl commands an operator's scripts use: pairs,
// events and status -check.

// The exit statuses of ctl. Every command exits ctlExitOK on success,
// ctlExitFailure when it could not do what it was asked (no mgmt
// answered, a call was refused) and ctlExitUsage on bad usage; status
// -check adds ctlExitDegraded and ctlExitNoMaster.
const (
	ctlExitOK       = 0
	ctlExitFailure  = 1
	ctlExitUsage    = 2
	ctlExitDegraded = 3
	ctlExitNoMaster = 4
)

// ctlPick chooses, among the answers of the -addr instances, the one to
// show pairs from: the master's, else the first backup's that names a
// master (its synced copy), else the first answer. It returns -1 when
// nothing answered.
func ctlPick(sts []*hellopicsv1.GetStatusResponse, errs []error) int {
	pick := -1
	for i, st := range sts {
		if errs[i] != nil || st == nil {
			continue
		}
		switch {
		case st.GetRole() == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER:
			return i
		case pick < 0, st.GetMasterId() != "" && sts[pick].GetMasterId() == "":
			pick = i
		}
	}
	return pick
}

// ctlPairMatch reports whether pair id matches the -pair filter: "" all,
// "ID" exactly that one, "PREFIX*" those beginning with PREFIX.
func ctlPairMatch(filter, id string) bool {
	if filter == "" {
		return true
	}
	if p, ok := strings.CutSuffix(filter, "*"); ok {
		return strings.HasPrefix(id, p)
	}
	return id == filter
}

// ctlFilterPairs returns the pairs of st that match filter.
func ctlFilterPairs(st *hellopicsv1.GetStatusResponse, filter string) []*hellopicsv1.PairStatus {
	var out []*hellopicsv1.PairStatus
	for _, ps := range st.GetPairs() {
		if ctlPairMatch(filter, ps.GetPairId()) {
			out = append(out, ps)
		}
	}
	return out
}

// ctlPairsJSON is the JSON of `ctl pairs -o json`: which instance
// answered, and the pairs (PairStatus, proto names).
type ctlPairsJSON struct {
	From  string            `json:"from"`
	Addr  string            `json:"addr"`
	Role  string            `json:"role"`
	Epoch uint64            `json:"epoch"`
	Pairs []json.RawMessage `json:"pairs"`
}

func ctlPairs(ctx context.Context, o *ctlOptions, filter string, pageSize int, stdout, stderr io.Writer) int {
	sts, errs := ctlEach(ctx, o, func(ctx context.Context, cc *grpc.ClientConn) (*hellopicsv1.GetStatusResponse, error) {
		return ctlGetStatus(ctx, cc, filter, 0, pageSize)
	})
	i := ctlPick(sts, errs)
	for _, err := range errs {
		if err != nil {
			fmt.Fprintf(stderr, "hellopics ctl: %v\n", err)
		}
	}
	if i < 0 {
		return ctlExitFailure
	}
	st := sts[i]
	if st.GetRole() != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		fmt.Fprintf(stderr, "hellopics ctl: no master among -addr: pairs as %s (%s) last synced them\n", ctlDash(st.GetId()), ctlRole(st.GetRole()))
	}
	pairs := ctlFilterPairs(st, filter)
	if filter != "" && len(pairs) == 0 {
		fmt.Fprintf(stderr, "hellopics ctl: no pair matches -pair %q\n", filter)
		return ctlExitFailure
	}
	if o.output == "json" {
		out := ctlPairsJSON{From: st.GetId(), Addr: o.addrs[i], Role: ctlRole(st.GetRole()), Epoch: st.GetEpoch(), Pairs: []json.RawMessage{}}
		for _, ps := range pairs {
			b, err := ctlMarshalJSON(ps, false)
			if err != nil {
				fmt.Fprintf(stderr, "hellopics ctl: %v\n", err)
				return ctlExitFailure
			}
			out.Pairs = append(out.Pairs, b)
		}
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			fmt.Fprintf(stderr, "hellopics ctl: encoding JSON: %v\n", err)
			return ctlExitFailure
		}
		fmt.Fprintf(stdout, "%s\n", b)
		return ctlExitOK
	}
	if err := ctlFormatPairs(stdout, st.GetEpoch(), pairs, time.Now()); err != nil {
		fmt.Fprintf(stderr, "hellopics ctl: %v\n", err)
		return ctlExitFailure
	}
	return ctlExitOK
}

// ctlParseSince reads -since: a positive duration back from now (5m,
// 2h30m) or an RFC 3339 time (2026-12-06T13:00:00Z). "" is the zero
// time: the whole history.
func ctlParseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("bad -since %q: a duration back from now must not be negative", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad -since %q: want a duration (5m, 2h) or an RFC 3339 time (2026-12-06T13:00:00Z)", s)
	}
	return t, nil
}

// ctlEventsArgs are the flags of ctl events.
type ctlEventsArgs struct {
	since  string
	follow bool
	pair   string
}

func ctlEvents(ctx context.Context, o *ctlOptions, a ctlEventsArgs, stdout, stderr io.Writer) int {
	since, err := ctlParseSince(a.since, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "hellopics ctl: %v\n", err)
		return ctlExitUsage
	}
	req := &hellopicsv1.WatchEventsRequest{Since: timestamppb.New(since), HistoryOnly: !a.follow}
	for _, addr := range o.addrs {
		if !a.follow {
			code, err := ctlEventHistory(ctx, o, addr, req, a.pair, stdout, stderr)
			if err != nil {
				fmt.Fprintf(stderr, "hellopics ctl: %v\n", err)
				continue
			}
			return code
		}
		st, cleanup, err := ctlSubscribeReq(ctx, o, addr, req)
		if err != nil {
			if ctx.Err() != nil {
				return ctlExitOK
			}
			fmt.Fprintf(stderr, "hellopics ctl: %v\n", err)
			continue
		}
		if len(o.addrs) > 1 {
			fmt.Fprintf(stderr, "hellopics ctl: watching the events of mgmt at %s\n", addr)
		}
		code := ctlStream(ctx, o, addr, st, a.pair, stdout, stderr)
		cleanup()
		return code
	}
	return ctlExitFailure
}

// ctlEventHistory prints the history the mgmt at addr keeps, within
// -timeout. An error means nothing was printed: another address may be
// tried.
func ctlEventHistory(ctx context.Context, o *ctlOptions, addr string, req *hellopicsv1.WatchEventsRequest, pair string, stdout, stderr io.Writer) (int, error) {
	cc, err := ctlDial(o, addr)
	if err != nil {
		return 0, err
	}
	defer cc.Close()
	cctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	st, err := hellopicsv1.NewOperatorServiceClient(cc).WatchEvents(cctx, req)
	if err != nil {
		return 0, ctlRPCError(o, addr, err)
	}
	printed := 0
	for {
		ev, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return ctlExitOK, nil
		}
		if err != nil {
			if printed == 0 {
				return 0, ctlRPCError(o, addr, err)
			}
			fmt.Fprintf(stderr, "hellopics ctl: event history from mgmt at %s cut: %v\n", addr, ctlRPCError(o, addr, err))
			return ctlExitFailure, nil
		}
		printed++
		if !ctlPairMatch(pair, ev.GetPairId()) {
			continue
		}
		if err := ctlPrintEvent(o, stdout, ev); err != nil {
			fmt.Fprintf(stderr, "hellopics ctl: %v\n", err)
			return ctlExitFailure, nil
		}
	}
}

// ctlPrintEvent writes one event, as text or as one line of JSON.
func ctlPrintEvent(o *ctlOptions, w io.Writer, ev *hellopicsv1.WatchEventsResponse) error {
	if o.output == "json" {
		b, err := ctlMarshalJSON(ev, false)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	_, err := fmt.Fprintln(w, ctlFormatEvent(ev))
	return err
}

// ctlCheckResult is the verdict of status -check.
type ctlCheckResult struct {
	// State is "ok", "degraded", "no_master" or "unreachable".
	State string `json:"state"`
	// Code is the exit status.
	Code int `json:"code"`
	// Master is the master's id ("" if none), Epoch its epoch.
	Master string `json:"master"`
	Epoch  uint64 `json:"epoch"`
	// From is the id of the instance whose pairs were checked.
	From string `json:"from,omitempty"`
	// Pairs is how many pairs were checked, Healthy how many of them
	// are ready and cycling.
	Pairs   int `json:"pairs"`
	Healthy int `json:"healthy"`
	// Problems are one line each, for a person.
	Problems []string `json:"problems"`
}

// ctlCheck judges the answers of the -addr instances: ok when a master
// is known and every registered pair has both components ready and its
// cycle running; degraded when a master is known but a pair is not so,
// or an instance of -addr did not answer; no_master when instances
// answered but none is or names a master; unreachable when none
// answered.
func ctlCheck(addrs []string, sts []*hellopicsv1.GetStatusResponse, errs []error) ctlCheckResult {
	r := ctlCheckResult{Problems: []string{}}
	i := ctlPick(sts, errs)
	if i < 0 {
		r.State, r.Code = "unreachable", ctlExitFailure
		for _, err := range errs {
			r.Problems = append(r.Problems, err.Error())
		}
		return r
	}
	st := sts[i]
	r.Master, r.Epoch, r.From = st.GetMasterId(), st.GetEpoch(), st.GetId()
	if r.Master == "" {
		r.State, r.Code = "no_master", ctlExitNoMaster
		for j, s := range sts {
			if errs[j] != nil {
				r.Problems = append(r.Problems, errs[j].Error())
				continue
			}
			r.Problems = append(r.Problems, fmt.Sprintf("no master: %s at %s is %s at epoch %d and knows no master", ctlDash(s.GetId()), addrs[j], ctlRole(s.GetRole()), s.GetEpoch()))
		}
		return r
	}
	for _, err := range errs {
		if err != nil {
			r.Problems = append(r.Problems, err.Error())
		}
	}
	if st.GetRole() != hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
		r.Problems = append(r.Problems, fmt.Sprintf("master %s is not among -addr: pairs checked on %s's synced copy", r.Master, ctlDash(st.GetId())))
	}
	for _, ps := range st.GetPairs() {
		r.Pairs++
		var what []string
		for _, c := range []struct {
			role string
			c    *hellopicsv1.ComponentStatus
		}{{"ctrl", ps.GetCtrl()}, {"data", ps.GetData()}} {
			if c.c.GetState() != hellopicsv1.ComponentState_COMPONENT_STATE_READY {
				what = append(what, c.role+" "+ctlComponentState(c.c))
			}
		}
		if !ps.GetCycleRunning() {
			what = append(what, "cycle stopped")
		}
		if len(what) == 0 {
			r.Healthy++
		} else {
			r.Problems = append(r.Problems, fmt.Sprintf("pair %s: %s", ctlDash(ps.GetPairId()), strings.Join(what, ", ")))
		}
	}
	r.State, r.Code = "ok", ctlExitOK
	if len(r.Problems) > 0 {
		r.State, r.Code = "degraded", ctlExitDegraded
	}
	return r
}

// ctlFormatCheck writes the verdict as text: one line per problem, then
// a summary line.
func ctlFormatCheck(w io.Writer, r ctlCheckResult) error {
	for _, p := range r.Problems {
		if _, err := fmt.Fprintln(w, p); err != nil {
			return err
		}
	}
	var err error
	switch r.State {
	case "ok":
		_, err = fmt.Fprintf(w, "OK: master %s at epoch %d, %d of %d pairs ready and cycling\n", r.Master, r.Epoch, r.Healthy, r.Pairs)
	case "degraded":
		_, err = fmt.Fprintf(w, "DEGRADED: master %s at epoch %d, %d of %d pairs ready and cycling\n", r.Master, r.Epoch, r.Healthy, r.Pairs)
	case "no_master":
		_, err = fmt.Fprintln(w, "NO MASTER")
	default:
		_, err = fmt.Fprintln(w, "UNREACHABLE: no mgmt answered")
	}
	return err
}

func ctlStatusCheck(ctx context.Context, o *ctlOptions, stdout, stderr io.Writer) int {
	sts, errs := ctlEach(ctx, o, func(ctx context.Context, cc *grpc.ClientConn) (*hellopicsv1.GetStatusResponse, error) {
		return ctlGetStatus(ctx, cc, "", 0, 0)
	})
	r := ctlCheck(o.addrs, sts, errs)
	if o.output == "json" {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			fmt.Fprintf(stderr, "hellopics ctl: encoding JSON: %v\n", err)
			return ctlExitFailure
		}
		fmt.Fprintf(stdout, "%s\n", b)
		return r.Code
	}
	if err := ctlFormatCheck(stdout, r); err != nil {
		return ctlExitFailure
	}
	return r.Code
}

// ctlSubscribeReq is ctlSubscribe with a request of its own.
func ctlSubscribeReq(ctx context.Context, o *ctlOptions, addr string, req *hellopicsv1.WatchEventsRequest) (grpc.ServerStreamingClient[hellopicsv1.WatchEventsResponse], func(), error) {
	cc, err := ctlDial(o, addr)
	if err != nil {
		return nil, nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(o.timeout, cancel)
	cleanup := func() {
		timer.Stop()
		cancel()
		cc.Close()
	}
	st, err := hellopicsv1.NewOperatorServiceClient(cc).WatchEvents(sctx, req)
	if err == nil {
		_, err = st.Header()
	}
	if !timer.Stop() && ctx.Err() == nil {
		err = status.Error(codes.DeadlineExceeded, "subscribing timed out")
	}
	if err != nil {
		cleanup()
		return nil, nil, ctlRPCError(o, addr, err)
	}
	return st, cleanup, nil
}
